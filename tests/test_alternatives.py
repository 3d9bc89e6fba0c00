"""Local and routing attention (paper §4; Routing Transformer, TACL 2021) against dense references, the local
module and model option, and the duplication runner's ``local`` setting."""

from __future__ import annotations

import json

import pytest
import torch

from reformer_lab.alternatives import (
    LocalSelfAttention,
    fit_centroids,
    local_attention,
    nearest_centroid,
    routing_attention,
)
from reformer_lab.attention import MASK_VALUE, SELF_PENALTY, FullSelfAttention, LSHSelfAttention, full_attention
from reformer_lab.measure import experiments
from reformer_lab.model import ReformerConfig, ReformerLM

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(length: int = 16, dim: int = 6, seed: int = 0, lead: tuple[int, ...] = (2, 3)):
    g = torch.Generator().manual_seed(seed)
    qk = torch.randn(*lead, length, dim, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(*lead, length, dim - 1, generator=g, dtype=torch.float64, requires_grad=True)
    return qk, v


def _dense(qk: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, causal: bool) -> torch.Tensor:
    """Shared-QK attention over the ``allowed`` [..., L, L] pairs, written out: q·k̂, self −1e5, others −1e9."""
    logits = qk @ (qk / qk.norm(dim=-1, keepdim=True)).transpose(-1, -2)
    pos = torch.arange(qk.shape[-2])
    logits = logits - SELF_PENALTY * (pos[:, None] == pos[None, :])
    if causal:
        allowed = allowed & (pos[None, :] <= pos[:, None])
    return torch.softmax(logits.masked_fill(~allowed, MASK_VALUE), dim=-1) @ v


def _band(length: int, chunk: int) -> torch.Tensor:
    """Key j is in query i's window when j's chunk is i's own or the one before it."""
    block = torch.arange(length) // chunk
    return (block[None, :] == block[:, None]) | (block[None, :] == block[:, None] - 1)


def _assert_same_with_grads(ours: torch.Tensor, ref: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> None:
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(9), dtype=ours.dtype)
    for a, b in zip(torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(ref, inputs, upstream),
                    strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunk", [2, 4, 8, 16])
def test_local_attention_equals_a_dense_band(causal: bool, chunk: int) -> None:
    """Outputs and gradients equal softmax over the band of the own and the previous chunk (float64, 1e-10)."""
    qk, v = _inputs()
    ours = local_attention(qk, v, chunk_size=chunk, causal=causal)
    _assert_same_with_grads(ours, _dense(qk, v, _band(16, chunk), causal), (qk, v))


def test_local_attention_passes_gradcheck() -> None:
    qk, v = _inputs(length=8, dim=3, lead=(1,))
    assert torch.autograd.gradcheck(lambda a, b: local_attention(a, b, chunk_size=2, causal=True), (qk, v))


def test_local_attention_is_lsh_with_everything_in_one_bucket_in_the_original_order() -> None:
    qk, v = _inputs()
    _, info = local_attention(qk, v, chunk_size=4, return_info=True)
    positions = torch.arange(16).expand(2, 3, 1, 16)
    assert torch.equal(info.sort_indices, positions) and torch.equal(info.chunk_ids, positions // 4)
    off_diagonal = _band(16, 4) & ~torch.eye(16, dtype=torch.bool)  # the self penalty leaves the own key 0
    assert torch.equal(info.weights > 0, off_diagonal.expand(2, 3, 16, 16))


def test_local_attention_covering_the_sequence_is_full_attention() -> None:
    """One chunk sees everything; causal, two chunks do too (the second looks back at the first)."""
    qk, v = _inputs()
    torch.testing.assert_close(local_attention(qk, v, chunk_size=16), full_attention(qk, v), atol=1e-12, rtol=0)
    torch.testing.assert_close(local_attention(qk, v, chunk_size=8, causal=True), full_attention(qk, v, causal=True),
                               atol=1e-12, rtol=0)


def test_a_local_window_at_the_lesson_sizes_misses_the_key_the_duplication_task_needs() -> None:
    """0w0w with |w| = 63 (L = 128), chunks of 32: position i's answer sits at key i − 63, which only the last
    position of a chunk can see, so local attention reaches it for 1 of the 63 second-copy positions."""
    qk, v = _inputs(length=128, lead=(1,))
    _, info = local_attention(qk.detach(), v.detach(), chunk_size=32, causal=True, return_info=True)
    second_copy = torch.arange(64, 127)
    reached = info.weights[0, second_copy, second_copy - 63] > 0
    assert second_copy[reached].tolist() == [95]


@pytest.mark.parametrize("causal", [False, True])
def test_routing_attention_equals_a_dense_same_cluster_window(causal: bool) -> None:
    """Given centroids: softmax over keys of the query's cluster within its sorted chunk and the one before
    (float64, 1e-10, outputs and gradients)."""
    qk, v = _inputs(length=24)
    centroids = torch.randn(3, 3, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)  # per head
    chunk = 4
    ours = routing_attention(qk, v, chunk_size=chunk, centroids=centroids, causal=causal)
    clusters = nearest_centroid(qk, centroids)  # [2, 3, 24]
    slot = torch.argsort(torch.argsort(clusters * 24 + torch.arange(24), dim=-1), dim=-1)
    block = slot // chunk
    allowed = (clusters[..., None, :] == clusters[..., :, None]) & (
        (block[..., None, :] == block[..., :, None]) | (block[..., None, :] == block[..., :, None] - 1))
    _assert_same_with_grads(ours, _dense(qk, v, allowed, causal), (qk, v))


def test_routing_with_one_cluster_is_local_attention() -> None:
    qk, v = _inputs()
    one = torch.ones(1, 6, dtype=torch.float64)
    torch.testing.assert_close(routing_attention(qk, v, chunk_size=4, centroids=one, causal=True),
                               local_attention(qk, v, chunk_size=4, causal=True), atol=1e-12, rtol=0)


def _objective(x: torch.Tensor, centroids: torch.Tensor) -> float:
    unit = torch.nn.functional.normalize(x, dim=-1)
    return float((unit @ centroids.transpose(-1, -2)).max(-1).values.sum())


def test_fit_centroids_is_deterministic_unit_length_and_never_worse_with_more_steps() -> None:
    qk, _ = _inputs(length=64, dim=8)
    qk = qk.detach()
    fits = [fit_centroids(qk, 5, steps=steps, generator=torch.Generator().manual_seed(1)) for steps in range(5)]
    assert fits[0].shape == (2, 3, 5, 8)
    torch.testing.assert_close(fits[-1].norm(dim=-1), torch.ones(2, 3, 5, dtype=torch.float64))
    assert torch.equal(fits[3], fit_centroids(qk, 5, steps=3, generator=torch.Generator().manual_seed(1)))
    objectives = [_objective(qk, c) for c in fits]  # spherical k-means: Σ max cosine never decreases
    assert all(b >= a - 1e-9 for a, b in zip(objectives, objectives[1:], strict=False))
    assert objectives[-1] > objectives[0]


def test_routing_fits_its_centroids_from_a_generator_and_takes_an_odd_cluster_count() -> None:
    qk, v = _inputs()
    a = routing_attention(qk, v, chunk_size=4, n_clusters=3, generator=torch.Generator().manual_seed(2))
    b = routing_attention(qk, v, chunk_size=4, n_clusters=3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give centroids, or n_clusters"),
    ({"n_clusters": 17}, "n_clusters=17 must be at most"),
    ({"centroids": torch.ones(2, 6, dtype=torch.float64), "n_clusters": 3}, "hold 2 clusters but n_clusters=3"),
    ({"centroids": torch.ones(2, 5, dtype=torch.float64)}, r"centroids must be \[..., n_clusters, d=6\]"),
])
def test_routing_argument_errors_are_clear(kwargs: dict, message: str) -> None:
    qk, v = _inputs()
    with pytest.raises(ValueError, match=message):
        routing_attention(qk, v, chunk_size=4, **kwargs)


def test_local_module_has_the_parameters_of_the_shared_qk_modules_and_computes_local_attention() -> None:
    torch.manual_seed(0)
    local = LocalSelfAttention(16, 4, chunk_size=4, causal=True)
    shapes = {k: v.shape for k, v in local.state_dict().items()}
    assert shapes == {k: v.shape for k, v in LSHSelfAttention(16, 4).state_dict().items()}
    assert shapes == {k: v.shape for k, v in FullSelfAttention(16, 4).state_dict().items()}
    x = torch.randn(2, 12, 16)
    heads = lambda t: t.view(2, 12, 4, 4).transpose(1, 2)  # noqa: E731
    expected = local_attention(heads(local.to_qk(x)), heads(local.to_v(x)), chunk_size=4, causal=True)
    torch.testing.assert_close(local(x), local.to_out(expected.transpose(1, 2).reshape(2, 12, 16)))
    with pytest.raises(ValueError, match="multiple of chunk_size=4"):
        local(torch.randn(2, 10, 16))


def _config(**changes) -> ReformerConfig:
    return ReformerConfig(**{"vocab_size": 11, "max_len": 16, "d_model": 16, "d_ff": 16, "n_heads": 2,
                             "chunk_size": 4, **changes})


def test_a_model_switches_to_local_attention_with_its_weights() -> None:
    """Local with chunks of max_len is full attention, so the switched model gives the same logits; shorter
    chunks give others."""
    torch.manual_seed(0)
    tokens = torch.randint(0, 11, (2, 16))
    full = ReformerLM(_config(attention="full", chunk_size=16)).eval()
    as_local = full.with_attention("local")
    assert as_local.config.attention == "local" and isinstance(as_local.stack.blocks[0].f.attention,
                                                               LocalSelfAttention)
    torch.testing.assert_close(as_local(tokens), full(tokens), atol=1e-5, rtol=1e-5)
    short = ReformerLM(_config(attention="full")).eval().with_attention("local")
    assert not torch.allclose(short(tokens), full(tokens), atol=1e-3)
    loss = ReformerLM(_config(attention="local"))(tokens, targets=tokens)
    loss.backward()


@pytest.mark.parametrize(("changes", "message"), [
    ({"shared_qk": False}, "local attention here is shared-QK"),
    ({"max_len": 18}, "max_len=18 must be a multiple of chunk_size=4"),
])
def test_local_config_errors_are_clear(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(attention="local", **changes)


def test_a_local_model_refuses_a_length_that_is_not_a_multiple_of_the_chunk() -> None:
    with pytest.raises(ValueError, match="multiple of chunk_size=4"):
        ReformerLM(_config(attention="local"))(torch.zeros(1, 6, dtype=torch.long))


def test_local_is_a_duplication_setting() -> None:
    assert experiments.parse_setting("local") == ("local", 1)
    spec = experiments.spec_for("duplication", "local", "lesson")
    assert spec.model.attention == "local" and spec.model.chunk_size == 32 and spec.model.max_len == 128
    with pytest.raises(ValueError, match="setting of charlm must be one of"):
        experiments.spec_for("charlm", "local", "tiny")


def test_a_local_checkpoint_names_its_setting_when_a_run_would_resume_it() -> None:
    local, full = experiments.spec_for("duplication", "local", "tiny"), experiments.spec_for("duplication", "full",
                                                                                           "tiny")
    state = {"model_config": local.model.to_dict(), "train_config": {}}
    identity = {"experiment": "duplication", "setting": "full", "scale": "tiny", "task": full.task, "data": None}
    conflicts = experiments.resume_conflicts(state, None, identity, full)
    assert conflicts[0] == "setting: checkpoint 'local', this run 'full'"


def test_a_tiny_local_run_writes_a_table2_row_with_its_own_column(tmp_path) -> None:
    out = tmp_path / "local.json"
    args = ["duplication", "--setting", "local", "--scale", "tiny", "--steps", "2", "--out", str(out), "--no-progress"]
    assert experiments.main(args) == 0
    record = json.loads(out.read_text())
    assert record["setting"] == "local" and record["config"]["model"]["attention"] == "local"
    assert list(record["table2"]) == [*experiments.EVAL_COLUMNS, "local"]
    assert record["table2"]["local"] == pytest.approx(record["final"]["accuracy"])
