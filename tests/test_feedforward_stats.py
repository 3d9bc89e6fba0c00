"""Table 3 measured beside its formula, and memory against chunk count (paper §3, eq. 10, Table 3).

Every number here is a byte count that depends on shapes only, so comparisons are exact or use a
stated relative tolerance.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from reformer_lab.measure import feedforward_stats as table3
from reformer_lab.measure.complexity import model_complexity, model_variants
from reformer_lab.measure.feedforward_stats import Table3Config

SMALL = dict(length=128, d_model=16, d_ff=512, n_heads=2, chunk_size=16, ff_chunks=8)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rows() -> dict[int, dict[str, table3.Table3Row]]:
    return {n: {r.variant: r for r in table3.measure_table3(Table3Config(n_layers=n, **SMALL))} for n in (1, 3)}


def test_rows_are_the_five_model_types_in_the_papers_order(rows) -> None:
    assert tuple(rows[1]) == model_variants()


def test_formula_columns_are_table_3_verbatim(rows) -> None:
    config = Table3Config(n_layers=3, **SMALL)
    for variant, row in rows[3].items():
        kw = dict(batch=1, length=128, d_model=16, d_ff=512, n_heads=2, n_layers=3, n_hashes=1)
        assert row.formula == model_complexity(variant, **kw, c=(4 * 16) ** 2)
        assert row.formula_window == model_complexity(variant, **kw, c=2 * 16)
        assert row.formula_bytes == 4 * row.formula.memory
    # c only enters the LSH rows
    for variant in ("transformer", "reversible", "chunked-reversible"):
        assert rows[3][variant].formula == rows[3][variant].formula_window
    assert config.paper_c == 64**2 and config.window_c == 32


def test_ordinary_rows_grow_with_depth_and_reversible_rows_do_not(rows) -> None:
    """Table 3: the n_l factor is in the Transformer and LSH Transformer rows only."""
    for variant in ("transformer", "lsh-transformer"):
        assert rows[3][variant].saved_peak == pytest.approx(3 * rows[1][variant].saved_peak, rel=0.05)
    for variant in ("reversible", "chunked-reversible", "reformer"):
        assert rows[3][variant].saved_peak < 1.10 * rows[1][variant].saved_peak
        assert rows[3][variant].saved_after_forward < 1.10 * rows[1][variant].saved_after_forward


def test_each_fix_lowers_the_measured_peak_in_the_tables_order(rows) -> None:
    """Reversible < Transformer; chunking removes d_ff (FF-dominated here); LSH removes l²."""
    measured = {v: r.saved_peak for v, r in rows[3].items()}
    assert measured["reversible"] < measured["transformer"] / 2
    assert measured["chunked-reversible"] < measured["reversible"]
    assert measured["reformer"] < measured["chunked-reversible"]
    assert measured["lsh-transformer"] < measured["transformer"]


def test_measurement_is_the_formula_with_c_as_keys_compared_times_a_constant_of_order_one(rows) -> None:
    for row in rows[3].values():
        assert 1.0 <= row.ratio < 6.0, (row.variant, row.ratio)


def test_the_papers_c_overcounts_lsh_memory_at_small_lengths(rows) -> None:
    for variant in ("lsh-transformer", "reformer"):
        assert rows[3][variant].formula_bytes > 5 * rows[3][variant].saved_peak


def test_measurement_is_deterministic() -> None:
    config = Table3Config(n_layers=1, **SMALL)
    assert table3.measure_table3(config, ["reformer"]) == table3.measure_table3(config, ["reformer"])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(length=96, ff_chunks=64), "ff_chunks=64 must divide length=96"),
        (dict(n_heads=3), "d_model=32 must be divisible by n_heads=3"),
        (dict(length=80, ff_chunks=8), "max_len=80 must be a multiple of chunk_size=32"),
        (dict(length=80, ff_chunks=8, attention="full"), "max_len=80 must be a multiple of chunk_size=32"),  # LSH rows
        (dict(n_layers=0), "n_layers must be an int >= 1, got 0"),
        (dict(batch=True), "batch must be an int >= 1, got the bool True"),
        (dict(length=256.0), r"length must be an int >= 1, got 256.0 \(float\)"),
        (dict(seed=-1), "seed must be an int >= 0, got -1"),
    ],
)
def test_config_errors_are_clear(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        Table3Config(**kw)


def test_config_is_a_model_config_and_the_input_sizes() -> None:
    config = Table3Config(length=128, d_model=16, n_layers=2)
    assert config.model == replace(table3.TABLE3_MODEL, max_len=128, d_model=16, n_layers=2)
    assert (config.length, config.batch, config.seed, config.d_model, config.n_layers) == (128, 1, 0, 16, 2)
    assert Table3Config(model=config.model) == config  # the length defaults to the model's max_len
    assert replace(config, length=64).model.max_len == 64
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['vocab'\\]"):
        Table3Config(vocab=3)


def test_unknown_variant_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="variant must be one of 'transformer'"):
        table3.stack_for("performer", Table3Config())


# --------------------------------------------------------------------------------------------------
# Peak live bytes


def test_peak_live_bytes_counts_what_is_alive_at_once() -> None:
    def two_then_one() -> torch.Tensor:
        a = torch.ones(1000)  # 4000 B
        b = a * 2  # 4000 B more: 8000 alive
        del a
        return b + 1  # b and the result: 8000

    assert table3.peak_live_bytes(two_then_one) == 8000


def test_peak_live_bytes_counts_a_view_once_and_not_the_inputs() -> None:
    x = torch.ones(10_000)
    assert table3.peak_live_bytes(lambda: (x + 1).view(100, 100)[:5]) == 40_000


def test_peak_live_bytes_does_not_count_views_of_inputs_or_parameters() -> None:
    # weight.t() (inside F.linear) and x.split(...) allocate nothing: they are views of storages made before the call
    weight, x = torch.ones(1000, 32), torch.ones(1, 256, 32)
    assert table3.peak_live_bytes(lambda w: w.t(), weight) == 0
    assert table3.peak_live_bytes(lambda t: t.split(4, dim=-2), x) == 0
    assert table3.peak_live_bytes(lambda t: t.add_(0), x) == 0  # in place on an input: nothing new either
    assert table3.peak_live_bytes(lambda t, w: torch.nn.functional.linear(t, w), x, weight) == 4 * 256 * 1000


def test_peak_live_bytes_keeps_a_storage_while_a_view_of_it_lives() -> None:
    # F.linear on 3-D input views its 2-D product as 3-D and drops the 2-D tensor; the storage lives on in the view,
    # so when the ReLU runs the product and the ReLU's output are both alive
    x, weight = torch.ones(1, 100, 10), torch.ones(50, 10)
    assert table3.peak_live_bytes(lambda: torch.relu(torch.nn.functional.linear(x, weight))) == 2 * 4 * 100 * 50


def test_peak_live_bytes_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        table3.peak_live_bytes(3)


# --------------------------------------------------------------------------------------------------
# Memory against chunk count

LENGTH, D_MODEL, D_FF, VOCAB = 128, 16, 512, 1024


@pytest.fixture(scope="module")
def chunks() -> dict[int, table3.ChunkMemory]:
    rows = table3.chunk_memory([1, 2, 4, 8, 16], length=LENGTH, d_model=D_MODEL, d_ff=D_FF, vocab=VOCAB)
    return {r.n_chunks: r for r in rows}


def test_recomputed_ff_peak_falls_by_the_chunk_count(chunks) -> None:
    one = chunks[1].ff_recompute_peak
    assert one >= 4 * LENGTH * D_FF  # the d_ff-wide activation, whole
    for c, row in chunks.items():
        assert row.ff_recompute_peak == pytest.approx(one / c, rel=0.05)  # exact while the FF chunk dominates


def test_ff_forward_peak_is_two_d_ff_wide_tensors_then_falls_about_c_fold(chunks) -> None:
    assert chunks[1].ff_forward_peak == 2 * 4 * LENGTH * D_FF  # the activation's input and output
    for c in (2, 4):
        assert chunks[1].ff_forward_peak / chunks[c].ff_forward_peak == pytest.approx(c, rel=0.1)
    assert chunks[16].ff_forward_peak < chunks[1].ff_forward_peak / 6  # the d_model-wide terms remain


def test_ff_forward_floor_is_the_output_twice_and_the_loss_floor_one_chunk_of_logits() -> None:
    # with one position a chunk: the chunks' outputs and their concatenation, d_model wide each; for the loss, one
    # chunk's logits and a few numbers per position (no weight, no input: they are not the call's allocations)
    (row,) = table3.chunk_memory([LENGTH], length=LENGTH, d_model=D_MODEL, d_ff=D_FF, vocab=VOCAB)
    assert row.ff_forward_peak == 2 * 4 * LENGTH * D_MODEL
    assert 4 * VOCAB <= row.loss_forward_peak < 4 * VOCAB + 16 * LENGTH


def test_chunking_under_plain_autograd_saves_nothing(chunks) -> None:
    assert len({row.ff_saved for row in chunks.values()}) == 1
    assert chunks[1].ff_saved >= 4 * LENGTH * D_FF


def test_chunked_loss_never_saves_logits_and_its_forward_peak_falls(chunks) -> None:
    for row in chunks.values():
        assert row.loss_saved == 4 * LENGTH * D_MODEL + 8 * LENGTH + 4 * LENGTH  # hidden, targets, lse
    peaks = [chunks[c].loss_forward_peak for c in sorted(chunks)]
    assert peaks == sorted(peaks, reverse=True)
    assert chunks[1].loss_forward_peak >= 4 * LENGTH * VOCAB
    assert chunks[16].loss_forward_peak < chunks[1].loss_forward_peak / 3


def test_the_plain_loss_saves_the_whole_logits() -> None:
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(1, LENGTH, D_MODEL, generator=g), torch.randn(VOCAB, D_MODEL, generator=g)
    targets = torch.randint(0, VOCAB, (1, LENGTH), generator=g)
    peak, saved = table3.plain_loss_memory(hidden, weight, targets)
    assert saved >= 4 * LENGTH * VOCAB and peak >= 2 * 4 * LENGTH * VOCAB


def test_chunk_count_must_divide_the_length() -> None:
    with pytest.raises(ValueError, match="n_chunks=3 must divide length=128"):
        table3.chunk_memory([3], length=LENGTH, d_model=D_MODEL, d_ff=D_FF, vocab=VOCAB)


# --------------------------------------------------------------------------------------------------
# What chunking cannot do, and the time column


def test_attention_is_not_position_wise_so_chunking_changes_it() -> None:
    from reformer_lab.attention import FullSelfAttention
    from reformer_lab.feedforward import chunked

    torch.manual_seed(0)
    attention = FullSelfAttention(16, 2).double()
    x = torch.randn(2, 48, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert (chunked(attention, x, 4) - attention(x)).abs().max() > 0.1


def test_naively_chunked_loss_under_autograd_still_saves_every_chunks_logits() -> None:
    import torch.nn.functional as F

    from reformer_lab.measure.memory import saved_tensor_bytes

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, 48, 16, generator=g, requires_grad=True)
    weight = torch.randn(512, 16, generator=g, requires_grad=True)
    targets = torch.randint(0, 512, (1, 48), generator=g)

    def naive(h: torch.Tensor) -> torch.Tensor:
        return sum(F.cross_entropy(F.linear(p, weight).flatten(0, -2), t.flatten(), reduction="sum")
                   for p, t in zip(h.split(12, -2), targets.split(12, -1), strict=True))

    assert saved_tensor_bytes(naive, hidden, ignore=weight).total_bytes >= 4 * 48 * 512


def test_matmul_flops_counts_two_m_k_n_forward_and_backward() -> None:
    layer = torch.nn.Linear(8, 5)
    x = torch.randn(3, 4, 8, requires_grad=True)
    assert table3.matmul_flops(layer, x) == 2 * 12 * 8 * 5
    # backward: d input (12×5 @ 5×8) and d weight (5×12 @ 12×8), the same count each
    assert table3.matmul_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 12 * 8 * 5
    with pytest.raises(TypeError, match="callable"):
        table3.matmul_flops(None)


@pytest.mark.parametrize("n_heads", [1, 4])
def test_reversibility_costs_four_thirds_of_the_matmuls_whatever_the_head_count(n_heads: int) -> None:
    """Table 3's reversible time rows carry an extra n_h; the measured cost is the recomputation, 4/3."""
    config = Table3Config(length=64, d_model=16, d_ff=128, n_heads=n_heads, n_layers=2, chunk_size=16, ff_chunks=4)
    flops = {r.variant: r.step_flops for r in table3.measure_table3(config)}
    assert flops["reversible"] / flops["transformer"] == pytest.approx(4 / 3, rel=1e-9)
    assert flops["chunked-reversible"] == flops["reversible"]  # chunking is free in matmuls
    # the recomputation replays the buckets, so the hashing's own matmuls are not repeated: a bit under 4/3
    assert flops["reformer"] / flops["lsh-transformer"] == pytest.approx(4 / 3, rel=0.01)
    printed = config.formula("reversible").time / config.formula("transformer").time
    assert (printed > 4 / 3 + 0.1) == (n_heads > 2)  # as printed, the ratio grows with n_h
