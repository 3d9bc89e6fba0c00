"""Memory measurement in reformer_lab.measure.memory: saved tensors (exact), CUDA peaks, a fresh process's RSS."""

from __future__ import annotations

import pytest
import torch
from _memory_targets import allocate_and_touch, raise_value_error
from torch import nn

from reformer_lab.measure.memory import (
    PeakMemory,
    SavedGroup,
    format_bytes,
    peak_cuda_bytes,
    peak_rss_bytes,
    saved_tensor_bytes,
)

B, L, D, E = 2, 16, 8, 5
FLOAT = 4  # bytes per float32


def _inputs(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0), requires_grad=True)


# --------------------------------------------------------------------------------------------------
# saved_tensor_bytes: known answers (all exact)


def test_linear_saves_exactly_its_input_and_ignores_its_weight() -> None:
    layer, x = nn.Linear(D, E), _inputs(B, L, D)
    saved = saved_tensor_bytes(layer, x)
    assert saved.total_bytes == B * L * D * FLOAT
    assert saved.n_storages == 1
    assert saved.output.shape == (B, L, E)


def test_ignore_takes_a_module_when_fn_is_not_one() -> None:
    layer, x = nn.Linear(D, E), _inputs(B, L, D)
    with_weight = saved_tensor_bytes(lambda t: layer(t), x)
    assert with_weight.total_bytes == B * L * D * FLOAT + E * D * FLOAT  # the weight, saved for x's grad
    assert saved_tensor_bytes(lambda t: layer(t), x, ignore=layer).total_bytes == B * L * D * FLOAT
    assert saved_tensor_bytes(lambda t: layer(t), x, ignore=[layer.weight]).total_bytes == B * L * D * FLOAT


def test_two_linear_layers_save_both_inputs() -> None:
    model, x = nn.Sequential(nn.Linear(D, E), nn.Linear(E, 3)), _inputs(B, L, D)
    saved = saved_tensor_bytes(model, x)
    assert saved.total_bytes == B * L * (D + E) * FLOAT
    assert saved.n_storages == 2


def test_softmax_saves_its_l_by_l_output() -> None:
    logits = _inputs(L, L)
    saved = saved_tensor_bytes(torch.softmax, logits, dim=-1)
    assert saved.total_bytes == L * L * FLOAT
    group = SavedGroup(shape=(L, L), dtype="float32", device="cpu", count=1, total_bytes=L * L * FLOAT)
    assert saved.groups == (group,)
    assert "[16, 16]" in saved.table() and "1.00 KiB" in saved.table()


def _two_views_of_one_storage(x: torch.Tensor) -> torch.Tensor:
    base = x * 2  # multiplying by a Python number saves nothing
    return base.view(-1).sin().sum() + base.t().sin().sum()  # sin saves its input: two views of `base`


def test_a_storage_saved_through_two_views_counts_once() -> None:
    saved = saved_tensor_bytes(_two_views_of_one_storage, _inputs(L, L))
    assert saved.total_bytes == L * L * FLOAT
    assert (saved.n_storages, saved.n_saved) == (1, 2)


def test_no_grad_saves_nothing() -> None:
    layer, x = nn.Linear(D, E), _inputs(B, L, D)
    with torch.no_grad():
        saved = saved_tensor_bytes(layer, x)
    assert (saved.total_bytes, saved.n_storages, saved.peak_bytes, saved.groups) == (0, 0, 0, ())


def test_output_supports_backward_with_the_same_gradient() -> None:
    x, reference = _inputs(L, L), _inputs(L, L)
    saved = saved_tensor_bytes(torch.softmax, x, dim=-1)
    (saved.output * torch.arange(L)).sum().backward()
    (torch.softmax(reference, dim=-1) * torch.arange(L)).sum().backward()
    torch.testing.assert_close(x.grad, reference.grad, rtol=0, atol=0)


def _forward_and_backward(x: torch.Tensor) -> None:
    torch.softmax(x @ x.T, dim=-1).sum().backward()


def test_peak_counts_a_graph_that_fn_freed_itself() -> None:
    x = _inputs(L, D)
    saved = saved_tensor_bytes(_forward_and_backward, x)
    assert saved.total_bytes == 0  # backward freed the graph before fn returned
    assert saved.peak_bytes == L * D * FLOAT + L * L * FLOAT  # x (saved by matmul) and the softmax output


# --------------------------------------------------------------------------------------------------
# saved_tensor_bytes: bad input, and no leaked hooks


def _boom(x: torch.Tensor) -> None:
    torch.softmax(x, dim=-1)
    raise ValueError("boom")


def test_an_exception_propagates_and_the_hooks_are_removed() -> None:
    with pytest.raises(ValueError, match="boom"):
        saved_tensor_bytes(_boom, _inputs(L, L))
    x = _inputs(L, L)
    y = torch.softmax(x, dim=-1)
    # Raises "hooks have already been set" if default saved-tensor hooks were still installed.
    y.grad_fn._raw_saved_result.register_hooks(lambda t: t, lambda t: t)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().max() < 1e-6  # rows of a softmax sum to 1


def test_non_callable_fn_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="callable fn, got Tensor"):
        saved_tensor_bytes(torch.ones(3))
    with pytest.raises(TypeError, match="ignore= takes tensors, modules"):
        saved_tensor_bytes(torch.sin, _inputs(3), ignore=3)


# --------------------------------------------------------------------------------------------------
# format_bytes


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (16 * 2**30, "16.0 GiB"),
        (512 * 2**10, "512 KiB"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.50 KiB"),
        (2_000_000_000, "1.86 GiB"),
        (1023.99 * 2**10, "1.00 MiB"),
        (-(2**20), "-1.00 MiB"),
    ],
)
def test_format_bytes_uses_binary_units_with_three_figures(n: float, text: str) -> None:
    assert format_bytes(n) == text


def test_format_bytes_rejects_non_numbers() -> None:
    with pytest.raises(TypeError):
        format_bytes("12")
    with pytest.raises(ValueError):
        format_bytes(float("nan"))


# --------------------------------------------------------------------------------------------------
# peak_cuda_bytes


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error raised where CUDA is missing")
def test_peak_cuda_bytes_without_cuda_says_what_to_use_instead() -> None:
    message = "CUDA is not available on this machine; use peak_rss_bytes for CPU"
    with pytest.raises(RuntimeError, match=message):
        peak_cuda_bytes(torch.zeros, 4)


def test_peak_cuda_bytes_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="callable fn, got str"):
        peak_cuda_bytes("torch.zeros")


def _allocate_cuda(n_bytes: int) -> torch.Tensor:
    return torch.ones(n_bytes // 4, device="cuda").sum()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_peak_cuda_bytes_measures_a_64_mib_allocation() -> None:
    kept = torch.ones(2**20, device="cuda")  # 4 MiB that belong to the baseline
    peak = peak_cuda_bytes(_allocate_cuda, 64 * 2**20)
    assert peak.baseline_bytes >= kept.numel() * 4
    assert 64 * 2**20 <= peak.delta_bytes <= 64 * 2**20 + 2**20  # the sum's result is a small extra block
    assert peak.peak_bytes == peak.baseline_bytes + peak.delta_bytes
    assert peak.output.item() == 16 * 2**20


# --------------------------------------------------------------------------------------------------
# peak_rss_bytes (each call starts a Python process that imports torch: a few seconds)


@pytest.mark.slow
def test_peak_rss_bytes_sees_a_200_mb_numpy_array_in_the_child() -> None:
    peak = peak_rss_bytes(allocate_and_touch, 200_000_000)
    assert isinstance(peak, PeakMemory)
    assert 150e6 < peak.delta_bytes < 300e6, str(peak)
    assert peak.peak_bytes == peak.baseline_bytes + peak.delta_bytes
    assert peak.source.startswith("rss")
    assert peak.output == 1  # allocate_and_touch returns the last element of np.ones: the return value comes back


@pytest.mark.slow
def test_peak_rss_bytes_reraises_the_childs_exception() -> None:
    with pytest.raises(RuntimeError, match="raised ValueError in the child process: bad size 7"):
        peak_rss_bytes(raise_value_error, "bad size 7")


def test_peak_rss_bytes_refuses_a_lambda_before_starting_a_process() -> None:
    with pytest.raises(TypeError, match="module-level function"):
        peak_rss_bytes(lambda: None)


def test_peak_rss_bytes_rejects_non_callables_and_bad_timeouts() -> None:
    with pytest.raises(TypeError, match="callable fn, got int"):
        peak_rss_bytes(3)
    with pytest.raises(ValueError, match="timeout must be a finite number > 0.0, got"):
        peak_rss_bytes(allocate_and_touch, 8, timeout=0)


def test_peak_rss_bytes_times_out_and_kills_the_child() -> None:
    with pytest.raises(TimeoutError, match="did not finish within 0.01 s"):
        peak_rss_bytes(allocate_and_touch, 8, timeout=0.01)
