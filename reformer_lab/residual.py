"""The ordinary single-stream Transformer stack, the baseline of paper Figure 3 (right).

Each layer is pre-norm residual: x ← x + F(x), then x ← x + G(x), with the very branches a reversible
block uses (F = LayerNorm → attention → dropout, G = LayerNorm → feed-forward), so the only difference
from :class:`~reformer_lab.reversible.ReversibleSequence` is the residual wiring. A reversible stack
carries two streams of width d_model; this one carries one, trains with ordinary autograd and stores
every layer's activations for the backward pass (paper §3: the n_l factor of Table 3 that reversibility
removes).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from reformer_lab.feedforward import chunk_length
from reformer_lab.reversible import ReversibleBlock
from reformer_lab.validation import positive_int

__all__ = ["ResidualSequence"]


class ResidualSequence(nn.Module):
    """A stack of pre-norm residual layers ``x + F(x)``, ``x + G(x)`` over one stream ``[..., L, d_model]``.

    ``blocks`` are :class:`~reformer_lab.reversible.ReversibleBlock` s, used only for their two branches
    (``f`` and ``g``), so a config builds either stack from the same modules. ``ff_chunks`` runs G over
    that many slices of the sequence (paper eq. 10); it must divide L.
    """

    def __init__(self, blocks: Sequence[ReversibleBlock], ff_chunks: int = 1) -> None:
        super().__init__()
        blocks = list(blocks)
        if not blocks or not all(isinstance(b, ReversibleBlock) for b in blocks):
            raise ValueError("ResidualSequence needs at least one block, each a ReversibleBlock (for its branches)")
        self.blocks = nn.ModuleList(blocks)
        self.ff_chunks = positive_int("ff_chunks", ff_chunks)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor [..., L, d_model], got {x.dtype} {tuple(x.shape)}")
        chunk_length(x, self.ff_chunks, -2)
        for block in self.blocks:
            x = x + block.run_f(x, None)
            x = x + block.run_g(x, None, self.ff_chunks)
        return x
