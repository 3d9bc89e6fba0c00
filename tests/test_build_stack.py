"""One builder for the paper's reversible blocks (eq. 9): ``build_stack(ReformerConfig)``, used by the model, by the
``reversible_stack`` shorthand and by every measurement config, which all describe the stack by a ReformerConfig."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from reformer_lab.measure.bench import MemorySetting
from reformer_lab.measure.feedforward_stats import Table3Config
from reformer_lab.measure.reversible_stats import StackConfig
from reformer_lab.model import ReformerConfig, ReformerLM, build_stack
from reformer_lab.reversible import ReversibleSequence, reversible_stack
from reformer_lab.validation import ArgumentTypeError

CONFIG = ReformerConfig(max_len=64, d_model=32, d_ff=64, n_heads=2, n_layers=2, chunk_size=16, n_hashes=2,
                        ff_chunks=2, dropout=0.1)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("attention", ["lsh", "full"])
def test_the_same_seed_gives_the_same_weights_and_leaves_the_global_rng_alone(attention: str) -> None:
    config = replace(CONFIG, attention=attention)
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    first, second = build_stack(config, seed=3), build_stack(config, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert _same_weights(first, second)
    assert not _same_weights(first, build_stack(config, seed=4))


def test_the_stack_follows_the_config() -> None:
    stack = build_stack(CONFIG, seed=0)
    assert isinstance(stack, ReversibleSequence) and len(stack.blocks) == 2
    assert stack.ff_chunks == 2 and stack.reversible
    attention = stack.blocks[0].f.attention
    assert (attention.n_hashes, attention.chunk_size, attention.causal) == (2, 16, True)
    assert stack.blocks[0].f.dropout.p == stack.blocks[0].g.dropout.p == 0.1
    assert (stack.blocks[0].g.w_in.in_features, stack.blocks[0].g.w_in.out_features) == (32, 64)
    full = build_stack(replace(CONFIG, attention="full", shared_qk=False, reversible=False, ff_chunks=1), seed=0)
    assert not full.reversible and full.ff_chunks == 1 and full.blocks[0].f.attention.shared_qk is False
    with pytest.raises(ArgumentTypeError, match="seed must be an int"):
        build_stack(CONFIG, seed="3")


def test_the_models_stack_is_build_stack_of_its_config() -> None:
    model = ReformerLM(CONFIG)
    stack = build_stack(CONFIG, seed=0)
    assert repr(model.stack) == repr(stack)
    shapes = {name: tensor.shape for name, tensor in stack.state_dict().items()}
    assert {name: tensor.shape for name, tensor in model.stack.state_dict().items()} == shapes
    assert (model.stack.ff_chunks, model.stack.reversible) == (stack.ff_chunks, stack.reversible)


@pytest.mark.parametrize("attention", ["lsh", "full"])
def test_reversible_stack_is_a_shorthand_for_build_stack(attention: str) -> None:
    short = reversible_stack(2, 32, 2, 64, attention=attention, chunk_size=16, n_hashes=4, dropout=0.1, ff_chunks=2,
                             seed=5)
    config = ReformerConfig(max_len=16, d_model=32, d_ff=64, n_heads=2, n_layers=2, attention=attention, n_hashes=4,
                            chunk_size=16, causal=False, ff_chunks=2, dropout=0.1)
    built = build_stack(config, seed=5)
    assert repr(short) == repr(built) and _same_weights(short, built)
    assert (short.ff_chunks, short.reversible) == (built.ff_chunks, built.reversible)
    assert _same_weights(short, reversible_stack(2, 32, 2, 64, attention=attention, chunk_size=16, n_hashes=4,
                                                 dropout=0.1, ff_chunks=2, seed=5))


def test_reversible_stack_keeps_its_defaults() -> None:
    stack = reversible_stack(1, 32, 2, 64)
    attention = stack.blocks[0].f.attention
    assert (attention.chunk_size, attention.n_hashes, attention.causal) == (64, 2, False)
    assert stack.ff_chunks == 1 and stack.reversible
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1, got 0"):
        reversible_stack(1, 32, 2, 64, chunk_size=0)
    with pytest.raises(ValueError, match="n_layers must be an int >= 1, got 0"):
        reversible_stack(0, 32, 2, 64)


# --------------------------------------------------------------------------------------------------
# The measurement configs: a ReformerConfig and what they measure


def _make(kind: str, **kw: object):
    if kind == "table3":
        return Table3Config(**kw)
    if kind == "stack":
        return StackConfig(**kw)
    return MemorySetting("reversible", **kw)


KINDS = ["table3", "stack", "memory"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(d_model=0), "d_model must be an int >= 1, got 0"),
        (dict(d_ff=-1), "d_ff must be an int >= 1, got -1"),
        (dict(n_heads=True), "n_heads must be an int >= 1, got the bool True"),
        (dict(n_layers=2.0), r"n_layers must be an int >= 1, got 2.0 \(float\)"),
        (dict(chunk_size="32"), "chunk_size must be an int >= 1, got '32'"),
        (dict(attention="sparse"), "attention must be one of 'full', 'lsh', 'local'; got 'sparse'"),
        (dict(length=0), "length must be an int >= 1, got 0"),
        (dict(batch=0), "batch must be an int >= 1, got 0"),
        (dict(seed=-2), "seed must be an int >= 0, got -2"),
        (dict(length=128, ff_chunks=3), "ff_chunks=3 must divide length=128"),
    ],
)
def test_measurement_configs_reject_bad_sizes_naming_the_field(kind: str, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _make(kind, **kw)


@pytest.mark.parametrize("kind", KINDS)
def test_measurement_configs_build_their_models_stack(kind: str) -> None:
    setting = _make(kind, length=64, d_model=16, d_ff=32, n_heads=2, chunk_size=16, ff_chunks=2, seed=1)
    assert setting.model.max_len == setting.length == 64 and setting.d_model == setting.model.d_model == 16
    assert _same_weights(setting.build(n_layers=3), build_stack(replace(setting.model, n_layers=3), seed=1))
    (x,) = setting.inputs()
    assert x.shape == (1, 64, 16) and torch.equal(x, setting.inputs()[0])
    assert _make(kind, model=setting.model, seed=1) == setting
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        _make(kind, max_len=64)
    with pytest.raises(AttributeError, match="no attribute 'widths'"):
        _ = setting.widths
