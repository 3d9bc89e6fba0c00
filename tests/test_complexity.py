"""The paper's formulas (§1 back-of-envelope, Table 1, Table 3) in reformer_lab.measure.complexity.

All sizes below are powers of two or small integers, so every float is exact: equality is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from reformer_lab.measure import complexity as cx

GiB = 2**30


# --------------------------------------------------------------------------------------------------
# §1 and §3 back-of-envelope: the paper's own numbers


def test_qk_matrix_at_64k_is_16_gib() -> None:
    """§1: 64K × 64K fp32 attention matrix for one sequence and one head is 16 GiB."""
    assert cx.qk_matrix_bytes(65536) == 16 * GiB


def test_qk_matrix_scales_with_batch_heads_and_precision() -> None:
    assert cx.qk_matrix_bytes(1024, 2, 8, 2) == 2 * 8 * 1024**2 * 2
    assert cx.qk_matrix_bytes(length=4096, batch=3, n_heads=4, bytes_per_value=8) == 3 * 4 * 4096**2 * 8


def test_half_a_billion_parameters_take_2_gb() -> None:
    """§1: 0.5B parameters per layer take 2 GB (decimal); 2²⁹ parameters take exactly 2 GiB."""
    assert cx.parameter_bytes(500_000_000) == 2_000_000_000
    assert cx.parameter_bytes(2**29) == 2 * GiB
    assert cx.parameter_bytes(500_000_000, bytes_per_value=2) == 1_000_000_000


def test_activations_64k_by_1024_batch_8_are_2_gib() -> None:
    """§1: 64K tokens × 1024 × batch 8 = 0.5B floats (0.5·2³⁰), 2 GiB in fp32."""
    assert cx.activation_bytes(8, 65536, 1024) == 2 * GiB
    assert cx.activation_bytes(8, 65536, 1024, bytes_per_value=1) == 0.5 * 2**30
    assert cx.activation_bytes(8, 65536, 1024, n_layers=12) == 12 * 2 * GiB


def test_feedforward_activations_d_ff_4k_16_layers_64k_are_16_gib() -> None:
    """§3: d_ff = 4K, n_l = 16, l = 64K, batch 1 → 16 GiB."""
    assert cx.feedforward_activation_bytes(1, 65536, 4096, 16) == 16 * GiB


# --------------------------------------------------------------------------------------------------
# Table 1


def test_attention_variants_are_table_1_rows() -> None:
    assert cx.attention_variants() == ("dot-product", "memory-efficient", "lsh")


def test_dot_product_attention_is_l_squared_when_l_exceeds_d_k() -> None:
    row = cx.attention_complexity("dot-product", batch=2, length=1024, n_heads=8, d_k=64)
    assert row == cx.Complexity(memory=2 * 8 * 1024**2, time=2 * 8 * 1024**2)


def test_dot_product_attention_is_l_d_k_when_d_k_exceeds_l() -> None:
    row = cx.attention_complexity("dot-product", batch=1, length=32, n_heads=2, d_k=64)
    assert row.memory == row.time == 1 * 2 * 32 * 64


def test_memory_efficient_row_equals_dot_product_as_printed() -> None:
    """Table 1's oddity, reproduced verbatim: memory-efficient memory is printed as full attention's."""
    sizes = dict(batch=4, length=8192, n_heads=8, d_k=64)
    printed = cx.attention_complexity("memory-efficient", **sizes)
    assert printed == cx.attention_complexity("dot-product", **sizes)


def test_lsh_attention_with_paper_chunks_is_b_nh_l_nr_128_squared() -> None:
    """n_c = l/32 ⇒ 4l/n_c = 128: the LSH term is b·n_h·l·n_r·128² and dominates b·n_h·l·d_k."""
    b, length, n_h, n_r = 2, 65536, 8, 4
    expected = b * n_h * length * n_r * 128**2
    explicit = cx.attention_complexity("lsh", batch=b, length=length, n_heads=n_h, d_k=64, n_hashes=n_r,
                                       n_chunks=length // 32)
    default = cx.attention_complexity("lsh", batch=b, length=length, n_heads=n_h, d_k=64, n_hashes=n_r)
    assert explicit == default == cx.Complexity(memory=expected, time=expected)


def test_lsh_attention_window_follows_n_chunks() -> None:
    row = cx.attention_complexity("lsh", batch=1, length=1024, n_heads=1, d_k=64, n_hashes=2, n_chunks=64)
    assert row.memory == 1 * 1 * 1024 * 2 * (4 * 1024 / 64) ** 2  # window 64 keys
    big_d_k = cx.attention_complexity("lsh", batch=1, length=1024, n_heads=1, d_k=10**6, n_chunks=64)
    assert big_d_k.memory == 1024 * 10**6


def test_lsh_beats_full_attention_only_at_long_lengths() -> None:
    def ratio(length: int) -> float:
        sizes = dict(batch=1, length=length, n_heads=1, d_k=64)
        full = cx.attention_complexity("dot-product", **sizes).memory
        return cx.attention_complexity("lsh", **sizes).memory / full

    assert ratio(4096) > 1  # l < 128² = 16384: the LSH bound is above l²
    assert ratio(65536) == 0.25  # l·128² / l² = 16384 / 65536


# --------------------------------------------------------------------------------------------------
# Table 3

# b=2, l=1024, d_model=64, d_ff=256, n_h=4, n_l=3, n_r=2, c=128² (values worked out by hand):
# b·l·d_ff = 524,288   b·n_h·l² = 8,388,608   b·l·d_model = 131,072   b·n_h·l·n_r·c = 268,435,456
# b·n_h·l·d_ff = 2,097,152 (the reversible rows' time term)
SMALL = dict(batch=2, length=1024, d_model=64, d_ff=256, n_heads=4, n_layers=3, n_hashes=2)
TABLE_3_SMALL = {
    "transformer": (25_165_824, 26_738_688),
    "reversible": (8_388_608, 31_457_280),
    "chunked-reversible": (8_388_608, 31_457_280),
    "lsh-transformer": (805_306_368, 806_879_232),
    "reformer": (268_435_456, 806_879_232),
}


def test_model_variants_are_table_3_rows() -> None:
    assert cx.model_variants() == tuple(TABLE_3_SMALL)


@pytest.mark.parametrize("variant", list(TABLE_3_SMALL))
def test_table_3_rows_verbatim(variant: str) -> None:
    memory, time = TABLE_3_SMALL[variant]
    assert cx.model_complexity(variant, **SMALL) == cx.Complexity(memory=memory, time=time)


def test_reversible_time_keeps_the_papers_extra_n_heads() -> None:
    """The probable typo is reproduced: reversible time uses b·n_h·l·d_ff, the Transformer b·l·d_ff."""
    one_head = dict(SMALL, n_heads=1)
    def time(variant: str, sizes: dict) -> float:
        return cx.model_complexity(variant, **sizes).time

    assert time("reversible", one_head) == time("transformer", one_head)
    assert time("reversible", SMALL) - time("transformer", SMALL) == (4 - 1) * 2 * 1024 * 256 * 3


@pytest.mark.parametrize("variant", ["transformer", "lsh-transformer"])
def test_memory_is_linear_in_layers_without_reversibility(variant: str) -> None:
    one = cx.model_complexity(variant, **dict(SMALL, n_layers=1)).memory
    for n_layers in (2, 5, 12):
        assert cx.model_complexity(variant, **dict(SMALL, n_layers=n_layers)).memory == n_layers * one


@pytest.mark.parametrize("variant", ["reversible", "chunked-reversible", "reformer"])
def test_reversible_memory_does_not_grow_with_layers(variant: str) -> None:
    memories = {cx.model_complexity(variant, **dict(SMALL, n_layers=n)).memory for n in (1, 2, 5, 12)}
    assert len(memories) == 1


@pytest.mark.parametrize("variant", list(TABLE_3_SMALL))
def test_time_is_linear_in_layers_for_every_model(variant: str) -> None:
    one = cx.model_complexity(variant, **dict(SMALL, n_layers=1)).time
    assert cx.model_complexity(variant, **dict(SMALL, n_layers=7)).time == 7 * one


def test_chunking_replaces_d_ff_by_d_model_when_the_feed_forward_dominates() -> None:
    sizes = dict(batch=1, length=64, d_model=128, d_ff=4096, n_heads=1, n_layers=4)
    assert cx.model_complexity("reversible", **sizes).memory == 64 * 4096
    assert cx.model_complexity("chunked-reversible", **sizes).memory == 64 * 128


def test_reformer_at_64k_needs_far_less_memory_than_a_transformer() -> None:
    sizes = dict(batch=1, length=65536, d_model=1024, d_ff=4096, n_heads=8, n_layers=12, n_hashes=8)
    transformer = cx.model_complexity("transformer", **sizes).memory
    reformer = cx.model_complexity("reformer", **sizes).memory
    assert reformer == 1 * 8 * 65536 * 8 * 128**2
    assert transformer / reformer == 12 * 65536 / (8 * 128**2)  # = 6: n_l · l / (n_r · c)


# --------------------------------------------------------------------------------------------------
# memory_breakdown


PAPER_STACK = dict(length=65536, batch=1, d_model=1024, d_ff=4096, n_layers=16, n_heads=1)


def test_breakdown_reproduces_the_intro_numbers_for_a_transformer() -> None:
    parts = cx.memory_breakdown(**PAPER_STACK)
    assert parts.model == "transformer"
    assert parts.feedforward == cx.feedforward_activation_bytes(1, 65536, 4096, 16) == 16 * GiB
    assert parts.activations == cx.activation_bytes(1, 65536, 1024, n_layers=16) == 4 * GiB
    assert parts.attention == 16 * cx.qk_matrix_bytes(65536) == 256 * GiB  # whole stack: 16 GiB per layer
    assert parts.total == (16 + 4 + 256) * GiB
    assert list(parts.terms()) == list(cx.MEMORY_FIXES) == ["activations", "feedforward", "attention"]


def test_breakdown_for_a_reformer_applies_all_three_fixes() -> None:
    parts = cx.memory_breakdown(**PAPER_STACK, model="reformer", n_hashes=4)
    assert parts.activations == 1 * 65536 * 1024 * 4  # n_l removed
    assert parts.feedforward == 1 * 65536 * 1024 * 4  # d_ff → d_model, n_l removed
    assert parts.attention == 1 * 1 * 65536 * 4 * 128**2 * 4  # l² → l·n_r·c, n_l removed


@pytest.mark.parametrize("model", cx.model_variants())
def test_largest_breakdown_term_is_table_3_memory(model: str) -> None:
    for sizes in (PAPER_STACK, dict(length=512, batch=3, d_model=64, d_ff=256, n_layers=6, n_heads=2)):
        parts = cx.memory_breakdown(**sizes, bytes_per_value=2, model=model, n_hashes=2)
        table = cx.model_complexity(model, **sizes, n_hashes=2)
        assert parts.largest == 2 * table.memory


@pytest.mark.parametrize("model", ["reversible", "chunked-reversible", "reformer"])
def test_reversible_breakdown_does_not_depend_on_layers(model: str) -> None:
    assert (cx.memory_breakdown(**dict(PAPER_STACK, n_layers=1), model=model)
            == cx.memory_breakdown(**dict(PAPER_STACK, n_layers=64), model=model))


# --------------------------------------------------------------------------------------------------
# Bad input


def test_negative_length_names_the_argument() -> None:
    with pytest.raises(ValueError, match=r"^length must be an int >= 1, got -3$"):
        cx.qk_matrix_bytes(-3)


@pytest.mark.parametrize("bad", [0, -1, 2.5, 64.0, "64", None, True, float("nan")])
def test_non_positive_or_non_integer_counts_raise(bad: object) -> None:
    with pytest.raises(ValueError, match="n_layers must be an int >= 1, got"):
        cx.feedforward_activation_bytes(1, 1024, 4096, bad)
    with pytest.raises(ValueError, match="d_k must be an int >= 1, got"):
        cx.attention_complexity("lsh", batch=1, length=64, n_heads=1, d_k=bad)
    with pytest.raises(ValueError, match="n_heads must be an int >= 1, got"):
        cx.memory_breakdown(64, 1, 32, 64, 2, bad)


def test_numpy_integers_are_accepted() -> None:
    assert cx.qk_matrix_bytes(np.int64(1000)) == 1000**2 * 4
    assert cx.parameter_bytes(np.int32(10), bytes_per_value=0.5) == 5


@pytest.mark.parametrize("bad", [0, -4, "4", None, float("inf")])
def test_bytes_per_value_must_be_a_positive_number(bad: object) -> None:
    with pytest.raises(ValueError, match="bytes_per_value must be a finite number > 0.0"):
        cx.parameter_bytes(100, bytes_per_value=bad)


def test_unknown_variants_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'dot-product', 'memory-efficient', 'lsh'; got 'flash'"):
        cx.attention_complexity("flash", batch=1, length=64, n_heads=1, d_k=8)
    rows = "'transformer', 'reversible', 'chunked-reversible', 'lsh-transformer', 'reformer'"
    with pytest.raises(ValueError, match=rows):
        cx.model_complexity("Reformer", **SMALL)
    with pytest.raises(ValueError, match="model must be one of 'transformer'"):
        cx.memory_breakdown(**PAPER_STACK, model="performer")


# --------------------------------------------------------------------------------------------------
# Where Table 3's LSH attention term (fixed c = 128²) overtakes full attention's


def test_one_layer_of_lsh_equals_one_of_full_attention_at_n_r_times_c() -> None:
    assert cx.attention_crossover_length() == cx.PAPER_C == 16384
    assert cx.attention_crossover_length(n_hashes=4) == 4 * 16384
    assert cx.attention_crossover_length(c=64**2) == 4096


def test_a_stack_that_stores_every_layer_crosses_n_l_times_earlier() -> None:
    assert cx.attention_crossover_length("transformer", "reformer", n_layers=16) == 16384 / 16
    # both store every layer: the n_l cancels
    assert cx.attention_crossover_length("transformer", "lsh-transformer", n_layers=16) == 16384


@pytest.mark.parametrize("full, lsh", [("chunked-reversible", "reformer"), ("transformer", "reformer"),
                                       ("reversible", "lsh-transformer")])
def test_the_crossover_is_where_memory_breakdowns_bars_meet(full: str, lsh: str) -> None:
    stack = dict(batch=2, d_model=64, d_ff=256, n_layers=8, n_heads=4, n_hashes=2)
    at = int(cx.attention_crossover_length(full, lsh, n_layers=8, n_hashes=2))

    def attention(model: str, length: int) -> float:
        return cx.memory_breakdown(length=length, **stack, model=model).attention

    assert attention(full, at) == attention(lsh, at)
    assert attention(lsh, at // 2) > attention(full, at // 2)  # below it LSH's term is the larger
    assert attention(lsh, at * 2) < attention(full, at * 2)


def test_the_crossover_rejects_models_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match="full_model must be one of 'transformer'"):
        cx.attention_crossover_length("reformer")
    with pytest.raises(ValueError, match="lsh_model must be one of 'lsh-transformer', 'reformer'"):
        cx.attention_crossover_length("transformer", "transformer")
    with pytest.raises(ValueError, match="n_hashes must be an int >= 1"):
        cx.attention_crossover_length(n_hashes=0)
