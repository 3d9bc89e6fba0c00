"""Reversible residual layers (paper §3, eqs. 7–10; RevNet, Gomez et al. 2017, Algorithm 1).

A reversible block maps (X₁, X₂) to (Y₁, Y₂) (paper eq. 9, the Transformer form of eq. 7):

    Y₁ = X₁ + Attention(X₂)        Y₂ = X₂ + FeedForward(Y₁)

and can be run backwards from its outputs alone (eq. 8):

    X₂ = Y₂ − FeedForward(Y₁)      X₁ = Y₁ − Attention(X₂)

so a stack of n_l blocks needs to keep only the *last* block's outputs for the backward pass: walking
back, each block rebuilds its inputs and computes its gradients (RevNet Algorithm 1). Activation
memory then no longer grows with depth (Table 3: the n_l factor goes). LayerNorm sits inside F and G
(§3). Both streams are d_model wide, so a reversible model has the parameters of an ordinary one.

What the recomputation must replay exactly (otherwise the rebuilt inputs, and so the gradients, differ
from those of the forward pass):

* **Randomness (dropout).** Each block draws two seeds (one for F, one for G) from torch's global
  generator, and each branch runs under ``torch.random.fork_rng`` after seeding the CPU generator and
  the input's CUDA generator with its seed; the backward pass reseeds the same way, so every dropout
  mask is redrawn identically, on CPU and CUDA. A seed (8 bytes) is the recorded RNG state: it is
  cheaper to keep than the generator's 5 KB state, the run stays reproducible under
  ``torch.manual_seed`` (HF's ``torch.seed()`` is not), and the caller's RNG stream is left as it
  would be after one draw.
* **LSH buckets.** The forward pass records the buckets each LSH attention used
  (``LSHSelfAttention.last_buckets``) and the recomputation passes them back (``buckets=``), so the
  hashing is never redone: a reconstructed input differs from the original by rounding and could
  fall into another bucket (trax keeps buckets "for training stability"; lucidrains PR #81).

Everything the custom ``autograd.Function`` keeps for the backward pass goes through
``ctx.save_for_backward`` (the last outputs, the seeds, the buckets compacted to the smallest integer
type), so :func:`reformer_lab.measure.memory.saved_tensor_bytes` sees all of it; the buckets are the one
per-layer item left (``B·n_heads·n_hashes·L`` bytes a layer, against ``2·B·L·d_model`` floats for the
outputs).

The feed-forward is chunked along the sequence (eq. 10) in the forward pass *and* in the backward
recomputation (``ff_chunks``), so its d_ff-wide activations never exist for the whole sequence at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from reformer_lab.attention import LSHSelfAttention, check_module_input
from reformer_lab.feedforward import chunk_length, chunked, dropout_probability
from reformer_lab.validation import ArgumentTypeError, as_bool, positive_int

__all__ = [
    "STACK_VARIANTS",
    "AttentionBranch",
    "ReversibleBlock",
    "ReversibleSequence",
    "draw_seeds",
    "reversible_stack",
    "seeded",
]

#: The three stacks the memory measurements compare: plain autograd, reversible, reversible + chunked FF.
STACK_VARIANTS = ("ordinary", "reversible", "reversible+chunked")

_SEED_HIGH = 2**62
Seeds = tuple[int, int]


# --------------------------------------------------------------------------------------------------
# Replaying randomness


def draw_seeds(n_blocks: int) -> Tensor:
    """``[n_blocks, 2]`` int64 seeds (F, G) from torch's global CPU generator."""
    return torch.randint(0, _SEED_HIGH, (n_blocks, 2), dtype=torch.int64)


@contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run the body with the CPU generator (and ``device``'s CUDA generator) seeded with ``seed``.

    ``torch.random.fork_rng`` saves the generators' states before and restores them after, so the
    caller's stream is untouched. ``seed=None`` runs the body on the current RNG state (no replay).
    """
    if seed is None:
        yield
        return
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


# --------------------------------------------------------------------------------------------------
# Branches and blocks


class AttentionBranch(nn.Module):
    """The F branch of a reversible block (paper eq. 9): LayerNorm → self-attention → dropout.

    ``attention`` is an :class:`~reformer_lab.attention.LSHSelfAttention` or
    :class:`~reformer_lab.attention.FullSelfAttention` (any module ``[..., L, d] → [..., L, d]`` with a
    ``d_model`` works). ``forward(x, buckets=...)`` replays an LSH attention's hashing exactly;
    ``last_buckets`` are the buckets of the latest call (None for attention that does not hash).

    Hashing and dropout both draw random numbers. When the LSH module has no generator of its own,
    the branch draws one seed for the hashing from torch's global generator on *every* call, also
    when ``buckets`` are replayed and the seed goes unused; so the dropout after it sees the same
    random stream in the forward pass and in the recomputation.
    """

    def __init__(self, attention: nn.Module, *, dropout: float = 0.0) -> None:
        super().__init__()
        if not hasattr(attention, "d_model"):
            raise ValueError("attention must have an int attribute d_model (the width of its input and output)")
        self.norm = nn.LayerNorm(positive_int("attention.d_model", attention.d_model))
        self.attention = attention
        self.dropout = nn.Dropout(dropout_probability("dropout", dropout))

    @property
    def last_buckets(self) -> Tensor | None:
        return getattr(self.attention, "last_buckets", None)

    def forward(self, x: Tensor, buckets: Tensor | None = None) -> Tensor:
        check_module_input(x, self.norm.normalized_shape[0], self.norm.weight)  # before LayerNorm's own error
        h = self.norm(x)
        if isinstance(self.attention, LSHSelfAttention):
            out = self._lsh(h, buckets)
        elif buckets is not None:
            raise ValueError(f"buckets can only be replayed into LSH attention, not {type(self.attention).__name__}")
        else:
            out = self.attention(h)
        return self.dropout(out)

    def _lsh(self, h: Tensor, buckets: Tensor | None) -> Tensor:
        # drawn from the global stream whether or not it is used, so what follows sees the same stream
        seed = int(torch.randint(0, _SEED_HIGH, ())) if self.attention.generator is None else None
        if buckets is not None:
            return self.attention(h, buckets=buckets)
        return self.attention(h, generator=None if seed is None else torch.Generator().manual_seed(seed))


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


class ReversibleBlock(nn.Module):
    """One reversible layer (paper eq. 9): Y₁ = X₁ + F(X₂), Y₂ = X₂ + G(Y₁), and its inverse (eq. 8).

    ``f`` is the attention branch (e.g. :class:`AttentionBranch`), ``g`` the feed-forward branch (e.g.
    :class:`~reformer_lab.feedforward.FeedForward`), both with LayerNorm inside. ``g`` must be
    position-wise (it is applied ``ff_chunks`` slices of the sequence at a time). ``f`` may expose
    ``last_buckets`` and accept ``buckets=``, as :class:`AttentionBranch` and
    :class:`~reformer_lab.attention.LSHSelfAttention` do; the block then records and replays them.

    ``seeds=(seed_f, seed_g)`` runs each branch on a freshly seeded RNG (see :func:`seeded`); the
    same seeds and buckets make :meth:`inverse` undo :meth:`forward` up to rounding, dropout included.
    """

    def __init__(self, f: nn.Module, g: nn.Module) -> None:
        super().__init__()
        self.f, self.g = f, g

    def forward(
        self, x1: Tensor, x2: Tensor, *, ff_chunks: int = 1, seeds: Seeds | None = None, buckets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Eq. 9 with ordinary autograd: ``(x1, x2) → (y1, y2)``."""
        y1 = x1 + self.run_f(x2, seeds, buckets)
        y2 = x2 + self.run_g(y1, seeds, ff_chunks)
        return y1, y2

    def inverse(
        self, y1: Tensor, y2: Tensor, *, ff_chunks: int = 1, seeds: Seeds | None = None, buckets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Eq. 8: ``(y1, y2) → (x1, x2)``. Pass the forward pass's seeds and, for LSH, its buckets."""
        x2 = y2 - self.run_g(y1, seeds, ff_chunks)
        x1 = y1 - self.run_f(x2, seeds, buckets)
        return x1, x2

    @property
    def last_buckets(self) -> Tensor | None:
        """The buckets F hashed into on its latest call (None when F does not hash)."""
        return getattr(self.f, "last_buckets", None)

    def run_f(self, x: Tensor, seeds: Seeds | None, buckets: Tensor | None = None) -> Tensor:
        with seeded(None if seeds is None else seeds[0], x.device):
            return self.f(x) if buckets is None else self.f(x, buckets=buckets)

    def run_g(self, x: Tensor, seeds: Seeds | None, ff_chunks: int = 1) -> Tensor:
        with seeded(None if seeds is None else seeds[1], x.device):
            return chunked(self.g, x, ff_chunks)

    def backward_pass(
        self,
        y1: Tensor,
        y2: Tensor,
        dy1: Tensor,
        dy2: Tensor,
        *,
        seeds: Seeds | None = None,
        buckets: Tensor | None = None,
        ff_chunks: int = 1,
    ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], list[Tensor | None]]:
        """RevNet Algorithm 1 for this block: from outputs and their gradients, inputs and their gradients.

        1. G is recomputed from Y₁ a chunk of positions at a time; each chunk is backpropagated at once
           (dZ₁ = dY₁ + (∂G/∂Y₁)ᵀ dY₂, and G's parameter gradients) and X₂ = Y₂ − G(Y₁) is filled in, so
           only one chunk's d_ff activations exist at a time.
        2. F is recomputed from X₂ (replaying ``buckets``) and backpropagated with dZ₁:
           dX₂ = dY₂ + (∂F/∂X₂)ᵀ dZ₁, F's parameter gradients, and X₁ = Y₁ − F(X₂); dX₁ = dZ₁.

        Returns ``((x1, x2), (dx1, dx2), grads)`` with ``grads`` aligned with the trainable parameters
        of ``f`` then ``g`` (None where a parameter got no gradient).
        """
        f_params, g_params = _trainable(self.f), _trainable(self.g)
        x2, dz1, g_grads = self._g_backward(y1, y2, dy1, dy2, seeds, ff_chunks, g_params)
        x2 = x2.requires_grad_()
        with torch.enable_grad():
            out = self.run_f(x2, seeds, buckets)
        got = torch.autograd.grad(out, [x2, *f_params], dz1, allow_unused=True)
        dx2 = dy2 if got[0] is None else dy2 + got[0]
        x1 = y1 - out.detach()
        return (x1, x2.detach()), (dz1, dx2), list(got[1:]) + g_grads

    def _g_backward(
        self, y1: Tensor, y2: Tensor, dy1: Tensor, dy2: Tensor, seeds: Seeds | None, ff_chunks: int,
        params: list[nn.Parameter],
    ) -> tuple[Tensor, Tensor, list[Tensor | None]]:
        size = chunk_length(y1, ff_chunks, -2)
        x2, dz1, grads = torch.empty_like(y2), dy1.clone(), [None] * len(params)
        with seeded(None if seeds is None else seeds[1], y1.device):  # chunks in the forward pass's order
            for start in range(0, y1.shape[-2], size):
                y1_part = y1.narrow(-2, start, size).detach().requires_grad_()
                with torch.enable_grad():
                    out = self.g(y1_part)
                got = torch.autograd.grad(out, [y1_part, *params], dy2.narrow(-2, start, size), allow_unused=True)
                if got[0] is not None:
                    dz1.narrow(-2, start, size).add_(got[0])
                grads = [_add(a, b) for a, b in zip(grads, got[1:], strict=True)]
                x2.narrow(-2, start, size).copy_(y2.narrow(-2, start, size) - out.detach())
        return x2, dz1, grads


def _add(total: Tensor | None, new: Tensor | None) -> Tensor | None:
    if new is None:
        return total
    return new if total is None else total + new


# --------------------------------------------------------------------------------------------------
# The stack and its custom autograd Function


def _compact(buckets: Tensor | None) -> Tensor | None:
    """Buckets in the smallest integer type that holds them (uint8 for up to 256 buckets)."""
    if buckets is None or buckets.numel() == 0:
        return buckets
    top = int(buckets.max())
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if top <= torch.iinfo(dtype).max:
            return buckets.to(dtype)
    return buckets


@dataclass
class _Plan:
    """What the Function needs besides tensors: the blocks and how to run them (no activations here)."""

    blocks: Sequence[ReversibleBlock]
    ff_chunks: int
    replay_randomness: bool
    replay_buckets: bool
    params: list[nn.Parameter]


class _ReversibleFunction(torch.autograd.Function):
    """Forward without a graph, keeping only the last outputs; backward by inverting block after block."""

    @staticmethod
    def forward(ctx, x1, x2, seeds, plan, *params):  # type: ignore[override]
        recorded, has_buckets = [], []
        for block, pair in zip(plan.blocks, seeds.tolist(), strict=True):
            x1, x2 = block(x1, x2, ff_chunks=plan.ff_chunks, seeds=tuple(pair))
            buckets = _compact(block.last_buckets) if plan.replay_buckets else None
            has_buckets.append(buckets is not None)
            recorded += [buckets] if buckets is not None else []
        ctx.plan, ctx.has_buckets = plan, has_buckets
        ctx.save_for_backward(x1, x2, seeds, *recorded)
        return x1, x2

    @staticmethod
    def backward(ctx, dy1, dy2):  # type: ignore[override]
        y1, y2, seeds, *recorded = ctx.saved_tensors
        plan: _Plan = ctx.plan
        dy1 = torch.zeros_like(y1) if dy1 is None else dy1
        dy2 = torch.zeros_like(y2) if dy2 is None else dy2
        index = {id(p): i for i, p in enumerate(plan.params)}
        grads: list[Tensor | None] = [None] * len(plan.params)
        buckets_of = iter(reversed(recorded))
        for block, pair, has in zip(reversed(plan.blocks), reversed(seeds.tolist()), reversed(ctx.has_buckets),
                                    strict=True):
            buckets = next(buckets_of).long() if has else None
            (y1, y2), (dy1, dy2), block_grads = block.backward_pass(
                y1, y2, dy1, dy2, seeds=tuple(pair) if plan.replay_randomness else None, buckets=buckets,
                ff_chunks=plan.ff_chunks,
            )
            for p, g in zip(_trainable(block.f) + _trainable(block.g), block_grads, strict=True):
                grads[index[id(p)]] = _add(grads[index[id(p)]], g)
        return (dy1, dy2, None, None, *grads)


class ReversibleSequence(nn.Module):
    """A stack of :class:`ReversibleBlock` s trained with the reversible backward pass (paper §3).

    ``forward(x1, x2)`` returns the last block's ``(y1, y2)``; ``x2`` defaults to ``x1`` (the paper's
    stack takes the embedding twice; the final LayerNorm over the concatenated halves belongs to the
    model). With ``reversible=True`` a custom ``torch.autograd.Function`` runs the blocks without
    recording a graph and saves only ``(y1, y2)``, the per-block seeds and the LSH buckets; the backward
    pass rebuilds each block's inputs from its outputs and computes its gradients (RevNet Algorithm 1,
    :meth:`ReversibleBlock.backward_pass`). With ``reversible=False`` (or ``forward(...,
    reversible=False)``) the same blocks, parameters, seeds and chunking run under ordinary autograd,
    which stores every layer's activations: the comparison baseline.

    ``ff_chunks`` chunks the feed-forward along the sequence (eq. 10) in the forward pass and in the
    backward recomputation; it must divide L. ``replay_randomness=False`` and ``replay_buckets=False``
    switch off the replays in the backward pass, to show what goes wrong without them (gradients no
    longer match the forward pass once dropout or hashing is redrawn).
    """

    def __init__(
        self,
        blocks: Sequence[ReversibleBlock],
        ff_chunks: int = 1,
        *,
        reversible: bool = True,
        replay_randomness: bool = True,
        replay_buckets: bool = True,
    ) -> None:
        super().__init__()
        blocks = list(blocks)
        if not blocks or not all(isinstance(b, ReversibleBlock) for b in blocks):
            raise ValueError("ReversibleSequence needs at least one block, each a ReversibleBlock")
        self.blocks = nn.ModuleList(blocks)
        self.ff_chunks = positive_int("ff_chunks", ff_chunks)
        self.reversible = as_bool("reversible", reversible)
        self.replay_randomness = as_bool("replay_randomness", replay_randomness)
        self.replay_buckets = as_bool("replay_buckets", replay_buckets)

    def forward(self, x1: Tensor, x2: Tensor | None = None, *, reversible: bool | None = None) -> tuple[Tensor, Tensor]:
        x2 = x1 if x2 is None else x2
        if x1.shape != x2.shape or x1.dim() < 2:
            raise ValueError(f"x1 and x2 must have the same shape [..., L, d_model], got {tuple(x1.shape)} "
                             f"and {tuple(x2.shape)}")
        if not x1.is_floating_point() or x1.dtype != x2.dtype:
            raise ArgumentTypeError(f"x1 and x2 must be floating-point tensors of one dtype, got {x1.dtype} "
                                    f"and {x2.dtype}")
        chunk_length(x1, self.ff_chunks, -2)
        seeds = draw_seeds(len(self.blocks))
        use_reversible = self.reversible if reversible is None else reversible
        if not use_reversible or not torch.is_grad_enabled():
            for block, pair in zip(self.blocks, seeds.tolist(), strict=True):
                x1, x2 = block(x1, x2, ff_chunks=self.ff_chunks, seeds=tuple(pair))
            return x1, x2
        params = list({id(p): p for block in self.blocks for p in _trainable(block)}.values())
        plan = _Plan(list(self.blocks), self.ff_chunks, self.replay_randomness, self.replay_buckets, params)
        return _ReversibleFunction.apply(x1, x2, seeds, plan, *params)


def reversible_stack(
    n_layers: int,
    d_model: int,
    n_heads: int,
    d_ff: int,
    *,
    attention: str = "lsh",
    chunk_size: int = 64,
    n_hashes: int = 2,
    causal: bool = False,
    dropout: float = 0.0,
    ff_chunks: int = 1,
    reversible: bool = True,
    seed: int | None = None,
) -> ReversibleSequence:
    """Shorthand for :func:`reformer_lab.model.build_stack` with the sizes as arguments: a
    :class:`ReversibleSequence` of ``n_layers`` Reformer blocks, F = LayerNorm → attention → dropout,
    G = LayerNorm → Linear → ReLU → dropout → Linear (paper eq. 9, LayerNorm inside the blocks).

    ``attention`` is ``"lsh"`` (:class:`~reformer_lab.attention.LSHSelfAttention` with ``chunk_size``
    and ``n_hashes``; its hashes come from the global RNG through :class:`AttentionBranch`) or
    ``"full"`` (shared-QK :class:`~reformer_lab.attention.FullSelfAttention`). ``seed`` fixes the
    parameter initialisation without touching the global RNG.

    The arguments become a :class:`~reformer_lab.model.ReformerConfig`, which checks them; every field that
    shapes the stack is set here, since the config's own defaults are a language model's (causal, one hash
    round, chunks of 32). Its ``max_len`` is ``chunk_size``, the shortest sequence LSH attention takes (a
    stack has no position table, so ``max_len`` bounds nothing here).
    """
    from reformer_lab.model import ReformerConfig, build_stack  # model imports this module

    config = ReformerConfig(max_len=positive_int("chunk_size", chunk_size), d_model=d_model, d_ff=d_ff,
                            n_heads=n_heads, n_layers=n_layers, attention=attention, shared_qk=True,
                            n_hashes=n_hashes, chunk_size=chunk_size, causal=causal, reversible=reversible,
                            ff_chunks=ff_chunks, dropout=dropout, attend_across_buckets=False)
    return build_stack(config, seed=seed)
