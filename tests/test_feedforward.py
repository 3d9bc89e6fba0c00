"""The feed-forward, its chunked application along the sequence (paper eq. 10) and the chunked loss (§3).

Tolerances: float64 comparisons to 1e-12 (chunking reorders no sums inside a position, so the results
agree to rounding); float32 to 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reformer_lab.feedforward import (
    ChunkedFeedForward,
    FeedForward,
    chunk_divisors,
    chunk_length,
    chunked,
    chunked_cross_entropy,
)
from reformer_lab.measure.memory import saved_tensor_bytes
from reformer_lab.validation import ArgumentTypeError

B, L, D, D_FF = 2, 24, 8, 32


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ff(dtype: torch.dtype = torch.float64) -> FeedForward:
    torch.manual_seed(0)
    return FeedForward(D, D_FF).to(dtype)


def _output_and_grads(module: nn.Module, fn, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    out = fn(x)
    out.backward(torch.randn(out.shape, generator=_gen(1), dtype=out.dtype))
    grads = [out.detach(), x.grad] + [p.grad.clone() for p in module.parameters()]
    module.zero_grad(set_to_none=True)
    return grads


def _max_error(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((u - v).abs().max()) for u, v in zip(a, b, strict=True))


def test_feedforward_keeps_shape_and_has_layernorm_inside() -> None:
    ff, x = _ff(), torch.randn(B, L, D, generator=_gen(), dtype=torch.float64)
    assert ff(x).shape == (B, L, D)
    # LayerNorm first: shifting every feature of a position by the same amount changes nothing
    torch.testing.assert_close(ff(x + 3.0), ff(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_chunks", chunk_divisors(L))
def test_chunked_ff_equals_unchunked_in_outputs_and_gradients(n_chunks: int) -> None:
    ff, x = _ff(), torch.randn(B, L, D, generator=_gen(), dtype=torch.float64)
    plain = _output_and_grads(ff, ff, x)
    chunk = _output_and_grads(ff, lambda t: chunked(ff, t, n_chunks), x)
    assert _max_error(plain, chunk) < 1e-12


def test_chunked_ff_module_equals_unchunked_in_float32() -> None:
    ff, x = _ff(torch.float32), torch.randn(B, L, D, generator=_gen())
    plain = _output_and_grads(ff, ff, x)
    chunk = _output_and_grads(ff, ChunkedFeedForward(ff, n_chunks=6), x)
    assert _max_error(plain, chunk) < 1e-6


@pytest.mark.parametrize("n_chunks", [5, 7, 25])
def test_chunk_count_that_does_not_divide_length_is_a_clear_error(n_chunks: int) -> None:
    with pytest.raises(ValueError, match=f"n_chunks={n_chunks} must divide the length {L}"):
        chunked(_ff(), torch.zeros(B, L, D, dtype=torch.float64), n_chunks)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (0, r"^n_chunks must be an int >= 1, got 0$"),
        (-2, r"^n_chunks must be an int >= 1, got -2$"),
        (1.5, r"^n_chunks must be an int >= 1, got 1\.5 \(float\)$"),
        (True, r"^n_chunks must be an int >= 1, got the bool True$"),
    ],
)
def test_chunk_count_must_be_a_positive_int(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chunked(_ff(), torch.zeros(B, L, D, dtype=torch.float64), bad)  # type: ignore[arg-type]


def test_chunked_works_along_another_dim() -> None:
    x = torch.randn(6, 4, generator=_gen())
    torch.testing.assert_close(chunked(torch.sin, x, 3, dim=0), torch.sin(x))


def test_activation_choices() -> None:
    assert isinstance(FeedForward(D, D_FF, activation="gelu").activation, nn.GELU)
    with pytest.raises(ValueError, match="unknown activation"):
        FeedForward(D, D_FF, activation="swish-ish")
    with pytest.raises(ValueError, match="dropout"):
        FeedForward(D, D_FF, dropout=1.0)


def test_wrong_width_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="d_model=8"):
        _ff()(torch.zeros(2, 3, 5, dtype=torch.float64))


# --------------------------------------------------------------------------------------------------
# Chunked output projection + cross-entropy

VOCAB = 50


def _loss_inputs(dtype: torch.dtype = torch.float64, bias: bool = True):
    g = _gen(2)
    hidden = torch.randn(B, L, D, generator=g, dtype=dtype, requires_grad=True)
    weight = torch.randn(VOCAB, D, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(VOCAB, generator=g, dtype=dtype, requires_grad=True) if bias else None
    targets = torch.randint(0, VOCAB, (B, L), generator=g)
    targets[0, :5] = -100  # ignored positions
    return hidden, weight, b, targets


def _loss_and_grads(loss_fn, hidden, weight, bias, targets) -> list[torch.Tensor]:
    loss = loss_fn(hidden, weight, bias, targets)
    leaves = [t for t in (hidden, weight, bias) if t is not None]
    return [loss.detach(), *torch.autograd.grad(loss, leaves)]


def _plain_ce(reduction: str = "mean"):
    def loss(hidden, weight, bias, targets):
        logits = F.linear(hidden, weight, bias)
        return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction=reduction)

    return loss


@pytest.mark.parametrize("n_chunks", [1, 2, 3, 8, 24])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_chunked_cross_entropy_equals_unchunked_loss_and_gradients(n_chunks: int, reduction: str) -> None:
    inputs = _loss_inputs()
    plain = _loss_and_grads(_plain_ce(reduction), *inputs)
    chunk = _loss_and_grads(lambda *a: chunked_cross_entropy(*a, n_chunks, reduction=reduction), *inputs)
    assert _max_error(plain, chunk) < 1e-12


def test_chunked_cross_entropy_without_bias_in_float32() -> None:
    inputs = _loss_inputs(torch.float32, bias=False)
    plain = _loss_and_grads(_plain_ce(), *inputs)
    chunk = _loss_and_grads(lambda *a: chunked_cross_entropy(*a, 4), *inputs)
    assert _max_error(plain, chunk) < 1e-6


def test_chunked_cross_entropy_never_saves_the_logits() -> None:
    hidden, weight, bias, targets = _loss_inputs(torch.float32)
    logits_bytes = B * L * VOCAB * 4
    plain = saved_tensor_bytes(_plain_ce(), hidden, weight, bias, targets, ignore=(weight, bias))
    chunk = saved_tensor_bytes(chunked_cross_entropy, hidden, weight, bias, targets, 4, ignore=(weight, bias))
    assert plain.total_bytes >= logits_bytes
    # inputs plus one logsumexp per position: hidden, targets, lse
    assert chunk.total_bytes == hidden.nbytes + targets.nbytes + B * L * 4


def test_chunked_cross_entropy_checks_its_arguments() -> None:
    hidden, weight, bias, targets = _loss_inputs()
    with pytest.raises(ValueError, match="must divide the length"):
        chunked_cross_entropy(hidden, weight, bias, targets, 5)
    with pytest.raises(ValueError, match="targets must have shape"):
        chunked_cross_entropy(hidden, weight, bias, targets[:, :-1], 2)
    with pytest.raises(ValueError, match="weight must have shape"):
        chunked_cross_entropy(hidden, weight.T, bias, targets, 2)
    with pytest.raises(ValueError, match="reduction"):
        chunked_cross_entropy(hidden, weight, bias, targets, 2, reduction="none")


# --------------------------------------------------------------------------------------------------
# Argument checks (reformer_lab.validation): NumPy integers accepted, bool and float refused by name


def test_numpy_integers_work_like_python_ints() -> None:
    torch.manual_seed(0)
    plain = FeedForward(D, D_FF).double()
    torch.manual_seed(0)
    numpy_sized = FeedForward(np.int64(D), np.int64(D_FF)).double()
    assert (type(numpy_sized.d_model), type(numpy_sized.d_ff)) == (int, int)
    x = torch.randn(B, L, D, generator=_gen(), dtype=torch.float64)
    torch.testing.assert_close(numpy_sized(x), plain(x), rtol=0, atol=0)
    torch.testing.assert_close(chunked(plain, x, np.int64(4)), plain(x))
    assert ChunkedFeedForward(plain, np.int64(3)).n_chunks == 3
    assert chunk_divisors(np.int64(6)) == [1, 2, 3, 6]
    assert chunk_length(x, np.int64(4)) == L // 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(d_model=True), r"^d_model must be an int >= 1, got the bool True$"),
        (dict(d_ff=32.0), r"^d_ff must be an int >= 1, got 32\.0 \(float\)$"),
        (dict(dropout=True), r"^dropout must be a finite number in \[0\.0, 1\.0\], got True \(bool\)$"),
        (dict(dropout="0.1"), r"^dropout must be a finite number in \[0\.0, 1\.0\], got '0\.1' \(str\)$"),
    ],
)
def test_bad_argument_types_are_refused_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ArgumentTypeError, match=message):
        FeedForward(**{"d_model": D, "d_ff": D_FF, **kwargs})


def test_dropout_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^dropout must be a finite number in \[0, 1\), got 1\.0$"):
        FeedForward(D, D_FF, dropout=1.0)


def test_chunked_loss_checks_its_counts() -> None:
    hidden, weight = torch.randn(2, 8, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    targets = torch.zeros(2, 8, dtype=torch.long)
    with pytest.raises(ArgumentTypeError, match="n_chunks must be an int >= 1, got the bool True"):
        chunked_cross_entropy(hidden, weight, None, targets, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum'"):
        chunked_cross_entropy(hidden, weight, None, targets, 2, reduction="none")
    loss = chunked_cross_entropy(hidden, weight, None, targets, np.int64(2))
    torch.testing.assert_close(loss, F.cross_entropy((hidden @ weight.T).flatten(0, 1), targets.flatten()))


# --------------------------------------------------------------------------------------------------
# A fully ignored batch, non-integer or out-of-range targets, mixed dtypes


@pytest.mark.parametrize("n_chunks", [1, 4])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_every_target_ignored_matches_f_cross_entropy(n_chunks: int, reduction: str) -> None:
    # F.cross_entropy's mean over no counted position is 0/0 = NaN with gradients exactly 0 (its sum is 0). The
    # chunked loss had NaN gradients there, so one fully masked batch turned every parameter into NaN.
    hidden, weight, bias, targets = _loss_inputs()
    targets = torch.full_like(targets, -100)
    plain = _loss_and_grads(_plain_ce(reduction), hidden, weight, bias, targets)
    chunk = _loss_and_grads(lambda *a: chunked_cross_entropy(*a, n_chunks, reduction=reduction),
                            hidden, weight, bias, targets)
    assert (plain[0].isnan().item(), chunk[0].isnan().item()) == ((reduction == "mean"),) * 2
    for want, got in zip(plain[1:], chunk[1:], strict=True):
        assert torch.equal(got, torch.zeros_like(got)) and torch.equal(want, got)


def test_a_fully_ignored_batch_leaves_the_parameters_finite_after_a_step() -> None:
    hidden, weight, bias, targets = _loss_inputs()
    weight = nn.Parameter(weight.detach().clone())
    optimizer = torch.optim.Adam([weight], lr=0.1)
    chunked_cross_entropy(hidden.detach(), weight, None, torch.full_like(targets, -100), 4).backward()
    optimizer.step()
    assert torch.isfinite(weight).all()


def test_targets_must_be_integer_ids_in_range() -> None:
    hidden, weight, bias, targets = _loss_inputs()
    with pytest.raises(ArgumentTypeError, match=r"^targets must hold integer class ids, got torch\.float64$"):
        chunked_cross_entropy(hidden, weight, bias, targets.double() + 0.7, 2)  # was refused already; still is
    with pytest.raises(ArgumentTypeError, match=r"^targets must hold integer class ids, got torch\.bool$"):
        chunked_cross_entropy(hidden, weight, bias, targets > 0, 2)
    for bad in (VOCAB, -1, -99):
        wrong = targets.clone()
        wrong[1, 3] = bad
        with pytest.raises(ValueError, match=rf"^targets must be class ids in \[0, vocab=50\) or ignore_index=-100, "
                                             rf"got {bad}$"):
            chunked_cross_entropy(hidden, weight, bias, wrong, 2)
    ignored_elsewhere = targets.masked_fill(targets == 0, 7)
    ignored_elsewhere[0, 0] = -1  # counted when ignore_index is 7... and out of range
    with pytest.raises(ValueError, match="got -1$"):
        chunked_cross_entropy(hidden, weight, bias, ignored_elsewhere, 2, ignore_index=7)


def test_loss_inputs_of_different_float_dtypes_are_refused() -> None:
    hidden, weight, bias, targets = _loss_inputs()
    with pytest.raises(ArgumentTypeError, match=r"^weight must have hidden's dtype torch\.float32, got torch\.float64"):
        chunked_cross_entropy(hidden.float(), weight, None, targets, 2)
    with pytest.raises(ArgumentTypeError, match=r"^bias must have hidden's dtype torch\.float64, got torch\.float32$"):
        chunked_cross_entropy(hidden, weight, bias.float(), targets, 2)
    with pytest.raises(ArgumentTypeError, match=r"^hidden must be a floating-point tensor, got torch\.int64$"):
        chunked_cross_entropy(hidden.long(), weight, bias, targets, 2)


def test_feedforward_refuses_integer_and_mismatched_inputs() -> None:
    ff = _ff(torch.float32)
    message = r"^x must be a floating-point tensor \[\.\.\., d_model=8\], got torch\.int64$"
    with pytest.raises(ArgumentTypeError, match=message):
        ff(torch.ones(2, 4, D, dtype=torch.long))
    with pytest.raises(ArgumentTypeError, match=r"^x has dtype torch\.float64 but the module's parameters are"):
        ff(torch.ones(2, 4, D, dtype=torch.float64))
    with pytest.raises(ArgumentTypeError, match=r"^x must be a floating-point tensor"):
        chunked(ff, torch.ones(2, 4, D, dtype=torch.long), 2)
