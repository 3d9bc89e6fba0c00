"""Lesson 06, the whole Reformer (paper §3–5): the checks of the two exercises.

Count the parameters of one reversible block of :class:`~reformer_lab.model.ReformerLM` (exercise 1), and name
the :class:`~reformer_lab.model.ReformerConfig` switch that removes each memory term (exercise 2; the terms
are :data:`MEMORY_TERMS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade, run_cases
from reformer_lab.model import ReformerConfig

__all__ = ["MEMORY_TERMS", "check_block_parameters", "check_memory_switch"]


def _block_parameters(d_model: int, d_ff: int) -> float:
    """One reversible block of ReformerLM: F = LayerNorm (2d) → shared-QK attention (to_qk, to_v without bias,
    to_out with bias: 3d² + d); G = LayerNorm (2d) → Linear d→d_ff → Linear d_ff→d (2·d·d_ff + d_ff + d)."""
    return float(3 * d_model**2 + 2 * d_model * d_ff + d_ff + 6 * d_model)


def check_block_parameters(fn: Callable[[int, int], float]) -> CheckResult:
    """Exercise 1: ``fn(d_model, d_ff)`` → the number of parameters of one reversible block of
    :class:`~reformer_lab.model.ReformerLM` (the count ``n_heads``, ``n_hashes`` and ``chunk_size`` do not change)."""
    ref = _block_parameters
    cases = [Case((d, f), ref(d, f)) for d, f in [(16, 24), (64, 128), (256, 256), (1024, 4096), (8, 1)]]
    mistakes = [
        Mistake(lambda d, f: ref(d, f) + d * d, "shared-QK: one linear layer makes both queries and keys (3 d×d "
                "matrices, not 4)."),
        Mistake(lambda d, f: ref(d, f) - 4 * d, "each branch starts with a LayerNorm: 2·d_model parameters (scale "
                "and shift) in F and in G."),
        Mistake(lambda d, f: ref(d, f) - f - 2 * d, "count the biases: w_in has d_ff, w_out and to_out d_model each "
                "(to_qk and to_v have none)."),
        Mistake(lambda d, f: ref(d, f) - d * f, "the feed-forward has two d_model×d_ff matrices, in and out."),
        Mistake(lambda d, f: 2 * ref(d, f), "reversibility adds no parameters: X₁ and X₂ go through the same F and "
                "G once each."),
        Mistake(lambda d, f: ref(d, f) - 3 * d**2 - 3 * d, "the block holds the attention (F) as well as the "
                "feed-forward (G)."),
    ]
    return grade("Exercise 1 (block_parameters)", fn, cases, mistakes)


#: Memory terms of a Transformer (paper §1 and Table 3) and the ReformerConfig switch that removes each.
_SWITCHES = {
    "n_layers copies of the activations, n_l·b·l·d_model": "reversible",
    "the feed-forward's wide activation, b·l·d_ff": "ff_chunks",
    "the attention matrix, b·n_heads·l²": "attention",
    "the output logits, b·l·vocab_size": "loss_chunks",
}

#: The memory terms :func:`check_memory_switch` asks about.
MEMORY_TERMS = tuple(_SWITCHES)

_SWITCH_HINTS = {
    ("the attention matrix, b·n_heads·l²", "chunk_size"): "chunk_size sets the chunk length, but only once "
    'attention="lsh" replaces the l×l matrix by chunks.',
    ("the attention matrix, b·n_heads·l²", "n_hashes"): "n_hashes adds rounds (memory grows with it); the switch "
    'is attention="lsh".',
    ("the attention matrix, b·n_heads·l²", "shared_qk"): "shared-QK alone still forms all l² logits; LSH needs it, "
    'but the switch that removes l² is attention="lsh".',
    ("n_layers copies of the activations, n_l·b·l·d_model", "n_layers"): "fewer layers is a smaller model; the "
    "switch that stores one layer's activations whatever n_layers is, is reversible.",
    ("the feed-forward's wide activation, b·l·d_ff", "d_ff"): "a smaller d_ff is a smaller model; the switch that "
    "computes the feed-forward a piece at a time is ff_chunks.",
    ("the output logits, b·l·vocab_size", "ff_chunks"): "ff_chunks chunks the blocks' feed-forward; the output "
    "layer has its own count, loss_chunks.",
    ("the feed-forward's wide activation, b·l·d_ff", "loss_chunks"): "loss_chunks chunks the output logits; the "
    "blocks' feed-forward has its own count, ff_chunks.",
}


def _switch_verdict(case: Case, got: Any) -> str | None:
    (term,) = case.args
    if isinstance(got, str) and got == case.want:
        return None
    if not isinstance(got, str) or got not in {f.name for f in fields(ReformerConfig)}:
        return (f"you returned {got!r}, which is not a ReformerConfig field; return one of its names as a string, "
                "e.g. 'n_hashes'.")
    hint = _SWITCH_HINTS.get((term, got), "which switch's docstring in reformer_lab/model.py names this approximation?")
    return f"you returned {got!r}. Hint: {hint}"


def check_memory_switch(fn: Callable[[str], str]) -> CheckResult:
    """Exercise 2: ``fn(term)`` → the name of the :class:`~reformer_lab.model.ReformerConfig` field that removes
    that memory term (the terms are :data:`MEMORY_TERMS`)."""
    cases = [Case((term,), switch, repr(term)) for term, switch in _SWITCHES.items()]
    return run_cases("Exercise 2 (memory_switch)", fn, cases, _switch_verdict)
