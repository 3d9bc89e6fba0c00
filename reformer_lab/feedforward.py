"""The position-wise feed-forward, chunked along the sequence, and a chunked output projection + loss (paper §3).

The feed-forward acts on every position independently, so it can run a chunk of positions at a time
(paper eq. 10):

    Y₂ = [Y₂⁽¹⁾; …; Y₂⁽ᶜ⁾] = [X₂⁽¹⁾ + FeedForward(Y₁⁽¹⁾); …; X₂⁽ᶜ⁾ + FeedForward(Y₁⁽ᶜ⁾)]

and then its d_ff-wide activation exists for only L/c positions at once instead of all L. The result
is numerically the same computation ("chunking only affects the implementation", §1). Under plain
autograd every chunk's activations are still *saved* for the backward pass; the saving pays off where
nothing is saved: the reversible stack's no-grad forward and its chunk-by-chunk backward
recomputation (:mod:`reformer_lab.reversible`), and inference.

For large vocabularies the paper chunks the output log-probabilities too and computes the loss one
section of the sequence at a time (§3): :func:`chunked_cross_entropy`.

Chunks are given as a *count* (``n_chunks``, like reformer-pytorch's ``ff_chunks``; HF uses a chunk
*size*), and the count must divide the length: we raise a ``ValueError`` rather than pad or fall back
silently (trax falls back to one chunk).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reformer_lab.validation import ArgumentTypeError, as_float, as_int, one_of, positive_int

__all__ = [
    "ACTIVATIONS",
    "ChunkedFeedForward",
    "FeedForward",
    "chunk_divisors",
    "chunk_length",
    "chunked",
    "chunked_cross_entropy",
    "dropout_probability",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}


def dropout_probability(name: str, value: object) -> float:
    """``value`` as a dropout probability in [0, 1), the rule for every ``dropout`` argument of the model.

    A number (not a ``bool`` or a string) checked by :func:`reformer_lab.validation.as_float`; 1 is
    refused too, since it would zero every activation.
    """
    p = as_float(name, value, minimum=0.0, maximum=1.0)
    if p == 1.0:
        raise ValueError(f"{name} must be a finite number in [0, 1), got {value!r}")
    return p


def _activation(activation: str | nn.Module | Callable[[Tensor], Tensor]) -> nn.Module | Callable[[Tensor], Tensor]:
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)} or pass a module")
        return ACTIVATIONS[activation]()
    if not callable(activation):
        raise ValueError(f"activation must be a name, a module or a callable, got {type(activation).__name__}")
    return activation


class FeedForward(nn.Module):
    """The G branch of a reversible block (paper eq. 9): LayerNorm → Linear → activation → dropout → Linear.

    LayerNorm sits inside the residual branch, as the paper moves it for the reversible Transformer
    (§3), so ``x + FeedForward(x)`` is a pre-norm residual layer. ``d_ff`` is the inner width (the
    paper's d_ff ≫ d_model, the second of its three memory problems, §1). ``activation`` is
    ``"relu"`` (the paper's Transformer and the trax enwik8 config), ``"gelu"``, or any module or
    callable. The one dropout sits on the d_ff-wide activation, as in trax's FF block; the attention
    branch's dropout (:class:`reformer_lab.reversible.AttentionBranch`) is on its output.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str | nn.Module | Callable[[Tensor], Tensor] = "relu",
    ) -> None:
        super().__init__()
        d_model, d_ff = positive_int("d_model", d_model), positive_int("d_ff", d_ff)
        self.d_model, self.d_ff = d_model, d_ff
        self.norm = nn.LayerNorm(d_model)
        self.w_in = nn.Linear(d_model, d_ff)
        self.activation = _activation(activation)
        self.dropout = nn.Dropout(dropout_probability("dropout", dropout))
        self.w_out = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[..., L, d_model]`` → ``[..., L, d_model]``, each position on its own."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            what = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise ArgumentTypeError(f"x must be a floating-point tensor [..., d_model={self.d_model}], got {what}")
        if x.dim() == 0 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape [..., d_model={self.d_model}], got {tuple(x.shape)}")
        weight = self.w_in.weight
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise ArgumentTypeError(f"x has dtype {x.dtype} but the module's parameters are {weight.dtype}: "
                                    f"convert one of them (x.to({weight.dtype}) or module.to({x.dtype}))")
        return self.w_out(self.dropout(self.activation(self.w_in(self.norm(x)))))


def chunk_divisors(length: int) -> list[int]:
    """The chunk counts :func:`chunked` accepts for a sequence of ``length``: the divisors of ``length``."""
    length = positive_int("length", length)
    return [n for n in range(1, length + 1) if length % n == 0]


def chunk_length(x: Tensor, n_chunks: int, dim: int = -2) -> int:
    """The length of each of ``n_chunks`` equal slices of ``x`` along ``dim`` (eq. 10's L/c).

    The one check of a chunk count, shared by :func:`chunked`, :func:`chunked_cross_entropy` and the
    reversible stack's chunked recomputation: ``n_chunks`` must be a positive int that divides
    ``x.shape[dim]`` (a ``ValueError`` naming nearby divisors otherwise; we never pad).
    """
    n_chunks = positive_int("n_chunks", n_chunks)
    if x.dim() == 0:
        raise ValueError("chunked needs a tensor with at least one dimension")
    dim = as_int("dim", dim, minimum=-x.dim(), maximum=x.dim() - 1)  # was a bare IndexError
    size = x.shape[dim]
    if size % n_chunks:
        nearby = [n for n in chunk_divisors(size) if n <= 4 * n_chunks][-4:] if size else []
        raise ValueError(
            f"n_chunks={n_chunks} must divide the length {size} of dim {dim} (we do not pad); "
            f"divisors near it: {nearby}"
        )
    return size // n_chunks


def chunked(fn: Callable[[Tensor], Tensor], x: Tensor, n_chunks: int, dim: int = -2) -> Tensor:
    """Apply a position-wise ``fn`` to ``n_chunks`` equal slices of ``x`` along ``dim`` and concatenate (eq. 10).

    Equal to ``fn(x)`` whenever ``fn`` treats positions independently (the feed-forward does; attention
    does not). Only one chunk's intermediates are alive at a time when no graph is being recorded
    (``torch.no_grad``, a reversible forward); under autograd each chunk's saved tensors stay until
    the backward pass, so the *saved* bytes do not fall. ``n_chunks`` must divide ``x.shape[dim]``
    (``ValueError`` otherwise; no padding). Chunks run in order, so random draws (dropout) follow
    the same sequence whenever the same call is replayed under the same RNG state.
    """
    size = chunk_length(x, n_chunks, dim)
    if size == x.shape[dim]:  # one chunk
        return fn(x)
    return torch.cat([fn(part) for part in x.split(size, dim=dim)], dim=dim)


class ChunkedFeedForward(nn.Module):
    """A position-wise module applied ``n_chunks`` slices of the sequence at a time (paper eq. 10).

    ``ChunkedFeedForward(FeedForward(d_model, d_ff), n_chunks=8)(x)`` equals the plain feed-forward's
    output and gradients (dropout off). Inside a reversible stack, pass the plain :class:`FeedForward`
    and set ``ReversibleSequence(..., ff_chunks=...)`` instead: the stack then chunks both the forward
    and the backward recomputation.
    """

    def __init__(self, module: nn.Module | Callable[[Tensor], Tensor], n_chunks: int, dim: int = -2) -> None:
        super().__init__()
        self.module, self.n_chunks, self.dim = module, positive_int("n_chunks", n_chunks), dim

    def forward(self, x: Tensor) -> Tensor:
        return chunked(self.module, x, self.n_chunks, self.dim)


# --------------------------------------------------------------------------------------------------
# Chunked output projection + cross-entropy


def _check_loss_inputs(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor) -> None:
    for name, t in (("hidden", hidden), ("weight", weight), ("bias", bias), ("targets", targets)):
        if t is not None and not isinstance(t, Tensor):
            raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    for name, t in (("hidden", hidden), ("weight", weight), ("bias", bias)):
        if t is not None and not t.is_floating_point():
            raise ArgumentTypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t is not None and t.dtype != hidden.dtype:
            raise ArgumentTypeError(f"{name} must have hidden's dtype {hidden.dtype}, got {t.dtype}")
    if hidden.dim() < 2:
        raise ValueError(f"hidden must have shape [..., L, d_model], got {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1] or weight.shape[0] == 0:
        raise ValueError(f"weight must have shape [vocab >= 1, d_model={hidden.shape[-1]}], got {tuple(weight.shape)}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must have shape [vocab={weight.shape[0]}], got {tuple(bias.shape)}")
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(f"targets must have shape {tuple(hidden.shape[:-1])} (hidden without its last dim), "
                         f"got {tuple(targets.shape)}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ArgumentTypeError(f"targets must hold integer class ids, got {targets.dtype}")


def _check_target_range(targets: Tensor, vocab: int, ignore_index: int) -> None:
    """Every counted target is a class id in [0, vocab) (an out-of-range id would be a device-side assert on CUDA)."""
    counted = targets != ignore_index
    bad = counted & ((targets < 0) | (targets >= vocab))
    if bool(bad.any()):
        value = int(targets[bad].flatten()[0])
        raise ValueError(f"targets must be class ids in [0, vocab={vocab}) or ignore_index={ignore_index}, "
                         f"got {value}")


def _chunk_nll(h: Tensor, weight: Tensor, bias: Tensor | None, t: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """One chunk: summed negative log-likelihood and the logsumexp per position."""
    logits = F.linear(h, weight, bias)
    lse = torch.logsumexp(logits, dim=-1)
    valid = t != ignore_index
    picked = logits.gather(-1, t.masked_fill(~valid, 0).unsqueeze(-1)).squeeze(-1)
    return ((lse - picked) * valid).sum(), lse


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Logits one chunk of positions at a time, forward and backward; saves inputs and one logsumexp per position."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, n_chunks, ignore_index, mean):  # type: ignore[override]
        size = hidden.shape[-2] // n_chunks
        total, lses = hidden.new_zeros(()), []
        for h, t in zip(hidden.split(size, -2), targets.split(size, -1), strict=True):
            nll, lse = _chunk_nll(h, weight, bias, t, ignore_index)
            total, lses = total + nll, lses + [lse]
        count = int((targets != ignore_index).sum()) if mean else 1
        ctx.save_for_backward(hidden, weight, bias, targets, torch.cat(lses, dim=-1))
        ctx.size, ctx.ignore_index, ctx.count = size, ignore_index, count
        return total / count if count else total * float("nan")  # F.cross_entropy's mean over nothing: 0/0

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        # Nothing counted: F.cross_entropy's gradients are then exactly 0 (not NaN), and so are ours.
        scale = grad / ctx.count if ctx.count else torch.zeros_like(grad)
        d_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        d_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        d_bias = torch.zeros_like(bias) if bias is not None and ctx.needs_input_grad[2] else None
        for start in range(0, hidden.shape[-2], max(ctx.size, 1)):  # L = 0: no chunk (and no zero step)
            h, t = hidden.narrow(-2, start, ctx.size), targets.narrow(-1, start, ctx.size)
            valid = (t != ctx.ignore_index).unsqueeze(-1)
            # d loss / d logits = softmax − one-hot, per valid position, times the upstream scale
            d_logits = (F.linear(h, weight, bias) - lse.narrow(-1, start, ctx.size).unsqueeze(-1)).exp_()
            d_logits.scatter_add_(-1, t.masked_fill(~valid.squeeze(-1), 0).unsqueeze(-1),
                                  -torch.ones_like(d_logits[..., :1]))
            d_logits.mul_(valid).mul_(scale)
            if d_hidden is not None:
                d_hidden.narrow(-2, start, ctx.size).copy_(d_logits @ weight)
            if d_weight is not None:
                d_weight += d_logits.flatten(0, -2).T @ h.flatten(0, -2)
            if d_bias is not None:
                d_bias += d_logits.flatten(0, -2).sum(0)
        return d_hidden, d_weight, d_bias, None, None, None, None


def chunked_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    n_chunks: int,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """Cross-entropy of ``hidden @ weight.T + bias`` against ``targets``, a chunk of positions at a time (§3).

    Equal to ``F.cross_entropy(F.linear(hidden, weight, bias).flatten(0, -2), targets.flatten(),
    ignore_index=ignore_index, reduction=reduction)`` in value and gradients, but the ``[..., L, vocab]``
    logits never exist at once: a custom ``torch.autograd.Function`` computes them for ``L / n_chunks``
    positions at a time in the forward pass (keeping only one logsumexp per position) and recomputes
    them chunk by chunk in the backward pass, where d loss/d logits = softmax − one-hot. It saves (via
    ``save_for_backward``) only its inputs and the ``[..., L]`` logsumexps.

    Shapes: ``hidden [..., L, d_model]``, ``weight [vocab, d_model]``, ``bias [vocab]`` or None,
    ``targets [..., L]`` (integer ids; ``ignore_index`` positions do not count). ``n_chunks`` must
    divide L. ``reduction`` is ``"mean"`` (over counted positions) or ``"sum"``.

    Like ``F.cross_entropy``, a mean over no counted position (every target ``ignore_index``) is NaN,
    0/0, with gradients exactly 0, so one fully masked batch leaves the parameters finite. Float or
    bool targets, a counted target outside [0, vocab), and tensors of different float dtypes are
    refused with an error naming the argument.
    """
    _check_loss_inputs(hidden, weight, bias, targets)
    n_chunks, ignore_index = positive_int("n_chunks", n_chunks), as_int("ignore_index", ignore_index)
    _check_target_range(targets, weight.shape[0], ignore_index)
    targets = targets.long()  # gather needs int64 ids; any other integer type converts exactly
    chunk_length(hidden, n_chunks, -2)
    one_of("reduction", reduction, ("mean", "sum"))
    return _ChunkedCrossEntropy.apply(hidden, weight, bias, targets, n_chunks, ignore_index, reduction == "mean")
