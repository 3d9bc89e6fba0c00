"""Reversible layers (paper §3, eqs. 7–9; RevNet Algorithm 1): same results as ordinary backprop, less memory.

Tolerances: "err ≤ tol" below means max |a − b| ≤ tol · max(1, max |b|) over every compared tensor
(outputs, input gradients, each parameter's gradient): 1e-10 in float64, 1e-5 in float32. That is
``reversible_stats.scaled_error``: relative to the reference's largest entry where that is at least 1,
absolute below.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import reformer_lab.attention as attention_module
from reformer_lab.attention import FullSelfAttention, LSHSelfAttention
from reformer_lab.feedforward import FeedForward
from reformer_lab.measure.memory import step_memory
from reformer_lab.measure.reversible_stats import reconstruction_errors, scaled_error
from reformer_lab.reversible import (
    AttentionBranch,
    ReversibleBlock,
    ReversibleSequence,
    reversible_stack,
)

B, L, D, HEADS, D_FF, CHUNK = 2, 64, 16, 2, 32, 16
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


pytestmark = pytest.mark.usefixtures("one_thread")


def _stack(n_layers: int, attention: str, dropout: float = 0.0, dtype: torch.dtype = torch.float64,
           ff_chunks: int = 1) -> ReversibleSequence:
    stack = reversible_stack(n_layers, D, HEADS, D_FF, attention=attention, chunk_size=CHUNK, n_hashes=2,
                             dropout=dropout, ff_chunks=ff_chunks, seed=0)
    return stack.to(dtype)


def _input(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(B, L, D, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _run(stack: ReversibleSequence, x: torch.Tensor, reversible: bool, seed: int = 7) -> list[torch.Tensor]:
    """Outputs, input gradient and parameter gradients of one step, with the global RNG at ``seed``."""
    torch.manual_seed(seed)
    x = x.detach().clone().requires_grad_()
    y1, y2 = stack(x, reversible=reversible)
    g = torch.Generator().manual_seed(3)
    torch.autograd.backward((y1, y2), (torch.randn(y1.shape, generator=g, dtype=y1.dtype).to(y1.device),
                                       torch.randn(y2.shape, generator=g, dtype=y2.dtype).to(y2.device)))
    result = [y1.detach(), y2.detach(), x.grad] + [p.grad.clone() for p in stack.parameters()]
    stack.zero_grad(set_to_none=True)
    return result


def _error(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return scaled_error(got, want)  # max |a − b| / max(1, max |b|): see the module docstring


# --------------------------------------------------------------------------------------------------
# One block: eq. 9 and its inverse eq. 8


def test_block_inverse_undoes_forward_with_dropout_replayed() -> None:
    block = _stack(1, "lsh", dropout=0.2).blocks[0]
    x1, x2 = _input(), _input() * 2
    with torch.no_grad():
        y1, y2 = block(x1, x2, seeds=(11, 12))
        back = block.inverse(y1, y2, seeds=(11, 12), buckets=block.last_buckets)
    assert _error(list(back), [x1, x2]) < 1e-12


def test_block_computes_equation_9() -> None:
    block = _stack(1, "full").blocks[0].eval()
    x1, x2 = _input(), _input() + 1
    y1, y2 = block(x1, x2)
    torch.testing.assert_close(y1, x1 + block.f(x2), rtol=0, atol=0)
    torch.testing.assert_close(y2, x2 + block.g(y1), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# Reversible backward == ordinary backprop with the same weights


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("dropout", [0.0, 0.1], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("attention", ["full", "lsh"])
@pytest.mark.parametrize("n_layers", [1, 2, 12])
def test_reversible_equals_ordinary_outputs_and_gradients(
    n_layers: int, attention: str, dropout: float, dtype: torch.dtype
) -> None:
    stack, x = _stack(n_layers, attention, dropout, dtype, ff_chunks=4), _input(dtype)
    ordinary, reversible = _run(stack, x, reversible=False), _run(stack, x, reversible=True)
    assert _error(reversible, ordinary) <= TOLERANCE[dtype]


def test_dropout_is_really_on_and_replay_is_what_makes_it_match() -> None:
    stack, x = _stack(2, "lsh", dropout=0.2), _input()
    assert _error(_run(stack, x, False, seed=1)[:2], _run(stack, x, False, seed=2)[:2]) > 1e-3  # masks differ
    ordinary = _run(stack, x, reversible=False)
    stack.replay_randomness = False  # backward redraws the masks
    assert _error(_run(stack, x, reversible=True), ordinary) > 1e-3


def test_gradients_reach_shared_parameters_once_per_use() -> None:
    torch.manual_seed(0)
    block = ReversibleBlock(AttentionBranch(FullSelfAttention(D, HEADS)), FeedForward(D, D_FF)).double()
    stack = ReversibleSequence([block, block, block])  # the same weights three times
    x = _input()
    assert _error(_run(stack, x, True), _run(stack, x, False)) <= 1e-10


# --------------------------------------------------------------------------------------------------
# Replaying the hashes


def _own_generator_stack() -> ReversibleSequence:
    torch.manual_seed(0)
    blocks = [ReversibleBlock(AttentionBranch(LSHSelfAttention(D, HEADS, chunk_size=CHUNK, n_hashes=2, seed=i)),
                              FeedForward(D, D_FF)) for i in range(3)]
    return ReversibleSequence(blocks).double()


def _run_resetting_generators(stack: ReversibleSequence, x: torch.Tensor, reversible: bool) -> list[torch.Tensor]:
    for i, block in enumerate(stack.blocks):
        block.f.attention.generator.manual_seed(i)
    return _run(stack, x, reversible)


def test_backward_never_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = attention_module.hash_vectors
    monkeypatch.setattr(attention_module, "hash_vectors", lambda *a, **k: calls.append(1) or real(*a, **k))
    stack, x = _stack(3, "lsh"), _input().requires_grad_()
    y1, y2 = stack(x)
    assert len(calls) == 3  # one hash per layer in the forward pass
    (y1.sum() + y2.sum()).backward()
    assert len(calls) == 3  # the recomputation replayed the recorded buckets


def test_without_bucket_replay_the_gradients_are_wrong_and_with_it_they_match() -> None:
    # Each LSH module draws fresh rotations from its own generator on every call, so a backward that
    # re-hashed would put tokens into different buckets than the forward pass did.
    stack, x = _own_generator_stack(), _input()
    ordinary = _run_resetting_generators(stack, x, reversible=False)
    assert _error(_run_resetting_generators(stack, x, reversible=True), ordinary) <= 1e-10
    stack.replay_buckets = False
    assert _error(_run_resetting_generators(stack, x, reversible=True), ordinary) > 1e-3


# --------------------------------------------------------------------------------------------------
# Reconstruction error against depth


def test_reconstruction_error_after_24_layers_is_below_1e_4_in_float32() -> None:
    errors = reconstruction_errors([1, 4, 12, 24], dtype=torch.float32)
    assert list(errors) == [1, 4, 12, 24]
    assert errors[24] < 1e-4
    assert 0 < errors[1] <= errors[24]  # rounding accumulates with depth


def test_reconstruction_is_exact_to_rounding_in_float64_with_lsh_and_dropout() -> None:
    errors = reconstruction_errors([24], attention="lsh", dropout=0.1, dtype=torch.float64)
    assert errors[24] < 1e-12


# --------------------------------------------------------------------------------------------------
# Memory: what the reversible Function keeps, and how it scales with depth and chunks


def test_the_function_keeps_nothing_outside_save_for_backward() -> None:
    stack, x = _stack(4, "lsh"), _input().requires_grad_()
    y1, _ = stack(x)
    node = y1.grad_fn
    kept = {name: value for name, value in vars(node).items() if not name.startswith("_")}
    assert set(kept) == {"plan", "has_buckets"}  # ctx attributes, besides what went through save_for_backward
    assert all(isinstance(flag, bool) for flag in kept["has_buckets"])
    plan = kept["plan"]
    assert all(isinstance(p, nn.Parameter) for p in plan.params)  # parameters, not activations
    assert {type(v) for k, v in vars(plan).items() if k not in ("blocks", "params")} <= {int, bool}
    # saved: y1, y2 (float64), the seeds (int64 [4, 2]) and each layer's buckets as uint8
    buckets = B * HEADS * 2 * L
    assert sum(t.nbytes for t in node.saved_tensors) == 2 * x.nbytes + 4 * 2 * 8 + 4 * buckets


def test_reversible_saved_bytes_do_not_grow_with_depth_while_ordinary_grow_linearly() -> None:
    x = torch.randn(1, 128, 64, generator=torch.Generator().manual_seed(0))

    def measure(n_layers: int, variant: str):
        stack = reversible_stack(n_layers, 64, 2, 128, attention="lsh", chunk_size=32, n_hashes=1, seed=0)
        return step_memory(stack, x, variant)

    ordinary = {n: measure(n, "ordinary").saved_after_forward for n in (1, 2, 12)}
    reversible = {n: measure(n, "reversible") for n in (1, 12)}
    assert reversible[12].saved_after_forward < 1.10 * reversible[1].saved_after_forward
    assert reversible[12].saved_peak < 1.10 * reversible[1].saved_peak
    per_layer = ordinary[2] - ordinary[1]
    assert ordinary[12] == pytest.approx(ordinary[1] + 11 * per_layer, rel=0.01)
    assert ordinary[12] > 10 * ordinary[1]


@pytest.mark.parametrize("n_chunks", [2, 4, 8])
def test_ff_chunking_cuts_the_backward_peak_by_the_chunk_count(n_chunks: int) -> None:
    # An FF-dominated block (cheap F, d_ff = 32·d_model): the step's saved peak above what the forward
    # pass keeps is the recomputed feed-forward's activations, one chunk of them at a time.
    torch.manual_seed(0)
    block = ReversibleBlock(nn.Sequential(nn.LayerNorm(D), nn.Linear(D, D)), FeedForward(D, 32 * D))
    x = _input(torch.float32)

    def extra(chunks: int) -> int:
        memory = step_memory(ReversibleSequence([block], ff_chunks=chunks), x, "reversible+chunked")
        return memory.saved_peak - memory.saved_after_forward

    assert extra(1) / extra(n_chunks) == pytest.approx(n_chunks, rel=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_is_measured_and_replay_matches_on_cuda() -> None:
    stack, x = _stack(2, "lsh", dropout=0.1, dtype=torch.float32).cuda(), _input(torch.float32).cuda()
    assert _error(_run(stack, x, True), _run(stack, x, False)) <= 1e-5
    assert step_memory(stack, x, "reversible").cuda_peak > 0


# --------------------------------------------------------------------------------------------------
# Clear errors


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least one block"):
        ReversibleSequence([])
    with pytest.raises(ValueError, match="must divide the length 64"):
        _stack(1, "full", ff_chunks=5)(_input())
    with pytest.raises(ValueError, match="same shape"):
        _stack(1, "full")(_input(), _input()[:, :32])
    with pytest.raises(ValueError, match="only be replayed into LSH"):
        AttentionBranch(FullSelfAttention(D, HEADS))(_input().float(), buckets=torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="attention must be"):
        reversible_stack(1, D, HEADS, D_FF, attention="sparse")
    with pytest.raises(ValueError, match="unknown stack variant"):
        step_memory(_stack(1, "full"), _input(), "checkpointed")


def test_arguments_go_through_the_shared_checks() -> None:
    import numpy as np

    from reformer_lab.validation import ArgumentTypeError

    stack = reversible_stack(np.int64(1), np.int64(D), np.int64(HEADS), np.int64(D_FF), attention="full",
                             ff_chunks=np.int64(2), seed=np.int64(0))
    assert stack.ff_chunks == 2 and type(stack.ff_chunks) is int and len(stack.blocks) == 1
    assert stack(_input().float())[0].shape == (B, L, D)
    with pytest.raises(ArgumentTypeError, match=r"^n_layers must be an int >= 1, got the bool True$"):
        reversible_stack(True, D, HEADS, D_FF)
    with pytest.raises(ArgumentTypeError, match=r"^ff_chunks must be an int >= 1, got 2\.0 \(float\)$"):
        ReversibleSequence(list(stack.blocks), 2.0)
    with pytest.raises(ArgumentTypeError, match=r"^reversible must be True or False, got 'False'"):
        ReversibleSequence(list(stack.blocks), reversible="False")
    with pytest.raises(ArgumentTypeError, match=r"^causal must be True or False, got 'False'"):
        reversible_stack(1, D, HEADS, D_FF, causal="False")
    with pytest.raises(ArgumentTypeError, match=r"^seed must be an int, got 1\.5"):
        reversible_stack(1, D, HEADS, D_FF, seed=1.5)
    with pytest.raises(ArgumentTypeError, match=r"^dropout must be a finite number in \[0\.0, 1\.0\], got '0\.1'"):
        AttentionBranch(FullSelfAttention(D, HEADS), dropout="0.1")
    with pytest.raises(ValueError, match="int attribute d_model"):
        AttentionBranch(nn.Identity())


def test_streams_of_different_dtypes_or_integer_streams_are_refused() -> None:
    # A float32 x1 with a float64 x2 ran until a Linear layer failed with torch's own message; ints likewise.
    from reformer_lab.validation import ArgumentTypeError

    stack = _stack(1, "full")
    with pytest.raises(ArgumentTypeError, match=r"^x1 and x2 must be floating-point tensors of one dtype, "
                                                r"got torch\.float32 and torch\.float64$"):
        stack(_input().float(), _input())
    with pytest.raises(ArgumentTypeError, match=r"got torch\.int64 and torch\.int64$"):
        stack(_input().long())
    with pytest.raises(ArgumentTypeError, match=r"^x has dtype torch\.float32 but the module's parameters are "
                                                r"torch\.float64"):
        stack(_input().float())  # one dtype, but not the stack's
