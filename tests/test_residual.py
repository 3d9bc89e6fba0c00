"""The single-stream pre-norm Transformer stack (paper Figure 3 right): ResidualSequence and ``stack="transformer"``."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reformer_lab.feedforward import FeedForward
from reformer_lab.model import ReformerConfig, ReformerLM, build_stack
from reformer_lab.residual import ResidualSequence
from reformer_lab.reversible import ReversibleSequence

pytestmark = pytest.mark.usefixtures("one_thread")

#: A tiny full-attention model: every test here runs in milliseconds, most of them in float64.
TINY = dict(vocab_size=11, max_len=8, d_model=8, d_ff=16, n_heads=2, n_layers=2, chunk_size=4, attention="full")
TRANSFORMER = dict(TINY, stack="transformer", reversible=False)


def _tokens(batch: int = 2, length: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, TINY["vocab_size"], (batch, length), generator=torch.Generator().manual_seed(seed))


def _model(seed: int = 0, **changes) -> ReformerLM:
    torch.manual_seed(seed)
    return ReformerLM(ReformerConfig(**{**TRANSFORMER, **changes})).double()


def _by_hand(blocks, x: torch.Tensor) -> torch.Tensor:
    """The pre-norm residual stack written out: x ← x + F(x), then x ← x + G(x), layer by layer."""
    for block in blocks:
        x = x + block.f(x)
        x = x + block.g(x)
    return x


def _model_by_hand(model: ReformerLM, tokens: torch.Tensor) -> torch.Tensor:
    """Embeddings → the hand-written stack → LayerNorm(d_model) → logits, from the model's own modules."""
    x = model.token_embedding(tokens) + model.positions(tokens.shape[1])
    return model.head(model.norm(_by_hand(model.stack.blocks, x)))


# ResidualSequence: the forward pass is the written-out residual loop


def test_residual_sequence_is_the_written_out_pre_norm_loop() -> None:
    stack = build_stack(ReformerConfig(**TRANSFORMER), seed=0).double()
    assert isinstance(stack, ResidualSequence) and len(stack.blocks) == 2
    x = torch.randn(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = stack(x)
    torch.testing.assert_close(out, _by_hand(stack.blocks, x), rtol=0, atol=1e-12)  # float64
    assert (out - x).abs().max() > 1e-2  # the layers do something (the check above is not x == x)
    # Not the reversible wiring of the same blocks: [Y₁; Y₂] of eq. 9 is another function of x.
    y1, y2 = ReversibleSequence(list(stack.blocks), reversible=False)(x, x)
    assert (y1 - out).abs().max() > 1e-3 and (y2 - out).abs().max() > 1e-3


@pytest.mark.parametrize("ff_chunks", [2, 4, 8])
def test_chunked_feed_forward_equals_one_chunk(ff_chunks: int) -> None:
    stack = build_stack(ReformerConfig(**TRANSFORMER), seed=0).double()
    x = torch.randn(2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    chunked = ResidualSequence(list(stack.blocks), ff_chunks=ff_chunks)
    assert chunked.ff_chunks == ff_chunks
    torch.testing.assert_close(chunked(x), stack(x), rtol=0, atol=1e-12)  # float64, eq. 10 is exact up to rounding
    # and through the config: ReformerLM(ff_chunks=4) gives the logits of ff_chunks=1, same weights
    one = _model()
    four = ReformerLM(dataclasses.replace(one.config, ff_chunks=4)).double()
    four.load_state_dict(one.state_dict())
    assert four.stack.ff_chunks == 4
    torch.testing.assert_close(four(_tokens()), one(_tokens()), rtol=0, atol=1e-12)


def test_residual_sequence_refuses_bad_blocks_and_inputs() -> None:
    stack = build_stack(ReformerConfig(**TRANSFORMER), seed=0)
    with pytest.raises(ValueError, match="at least one block"):
        ResidualSequence([])
    with pytest.raises(ValueError, match="each a ReversibleBlock"):
        ResidualSequence([nn.Linear(8, 8)])
    with pytest.raises(ValueError, match="each a ReversibleBlock"):
        ResidualSequence([stack.blocks[0], FeedForward(8, 16)])  # one wrong block among right ones
    with pytest.raises(ValueError, match="ff_chunks must be an int >= 1, got 0"):
        ResidualSequence(list(stack.blocks), ff_chunks=0)
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor \[\.\.\., L, d_model\], got torch\.int64"):
        stack(torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor .*got torch\.float32 \(8,\)"):
        stack(torch.zeros(8))
    with pytest.raises(ValueError, match="n_chunks=3 must divide the length 8"):
        ResidualSequence(list(stack.blocks), ff_chunks=3)(torch.zeros(1, 8, 8))


# ReformerLM(stack="transformer"): gradients, config checks, width of the head


def test_transformer_model_gradients_match_the_written_out_loop_and_finite_differences() -> None:
    model = _model()
    tokens, targets = _tokens(seed=3), _tokens(seed=4)
    params = [p for p in model.parameters() if p.requires_grad]
    loss = model.loss(tokens, targets)
    grads = torch.autograd.grad(loss, params)
    by_hand = F.cross_entropy(_model_by_hand(model, tokens).flatten(0, 1), targets.flatten())
    torch.testing.assert_close(loss, by_hand, rtol=0, atol=1e-12)
    for g, h in zip(grads, torch.autograd.grad(by_hand, params), strict=True):
        torch.testing.assert_close(g, h, rtol=0, atol=1e-10)  # float64
    assert all(g.abs().max() > 0 for g in grads[2:])  # every layer gets a gradient (the tables: only seen rows)
    # The directional derivative along a random v, against central differences (float64, ε = 1e-6: the
    # truncation error is O(ε²) ≈ 1e-12 and the rounding error ≈ 1e-16/ε = 1e-10, so 1e-7 relative is loose).
    gen = torch.Generator().manual_seed(5)
    direction = [torch.randn(p.shape, dtype=p.dtype, generator=gen) for p in params]
    analytic = sum(float((g * v).sum()) for g, v in zip(grads, direction, strict=True))
    eps, values = 1e-6, []
    with torch.no_grad():
        for sign in (1, -1):
            for p, v in zip(params, direction, strict=True):
                p.add_(sign * eps * v)
            values.append(float(model.loss(tokens, targets)))
            for p, v in zip(params, direction, strict=True):
                p.sub_(sign * eps * v)
    numeric = (values[0] - values[1]) / (2 * eps)
    assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic)), (numeric, analytic)


def test_residual_sequence_passes_gradcheck_in_its_input() -> None:
    stack = build_stack(ReformerConfig(**{**TRANSFORMER, "d_model": 4, "d_ff": 8}), seed=0).double()
    x = torch.randn(1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6), requires_grad=True)
    assert torch.autograd.gradcheck(stack, (x,), eps=1e-6, atol=1e-7, rtol=1e-5)  # torch's float64 defaults


def test_config_requires_reversible_false_and_a_known_stack() -> None:
    with pytest.raises(ValueError, match="reversible=False"):
        ReformerConfig(**TINY, stack="transformer")  # reversible defaults to True
    with pytest.raises(ValueError, match="reversible"):
        ReformerConfig(**TINY, stack="transformer", reversible=True)
    with pytest.raises(ValueError, match=r"^stack must be one of 'reversible', 'transformer'; got 'bogus'$"):
        ReformerConfig(**TINY, stack="bogus", reversible=False)
    assert ReformerConfig(**TINY).stack == "reversible"
    assert ReformerConfig(**TINY, reversible=False).stack == "reversible"  # ordinary autograd, still two streams


def test_from_dict_of_a_config_saved_before_stack_existed() -> None:
    old = ReformerConfig(**TINY).to_dict()
    del old["stack"]  # a checkpoint's config from before commit 56dbdaa
    config = ReformerConfig.from_dict(old)
    assert config.stack == "reversible" and config == ReformerConfig(**TINY)
    assert isinstance(ReformerLM(config).stack, ReversibleSequence)
    new = ReformerConfig(**TRANSFORMER)
    assert new.to_dict()["stack"] == "transformer" and ReformerConfig.from_dict(new.to_dict()) == new


def test_the_head_reads_d_model_features_and_parameters_differ_by_the_head_and_norm() -> None:
    transformer = _model()
    torch.manual_seed(0)
    reversible = ReformerLM(ReformerConfig(**TINY, reversible=False)).double()
    d, vocab = TINY["d_model"], TINY["vocab_size"]
    assert isinstance(transformer.stack, ResidualSequence) and isinstance(reversible.stack, ReversibleSequence)
    assert transformer.hidden(_tokens()).shape == (2, 8, d)
    assert reversible.hidden(_tokens()).shape == (2, 8, 2 * d)
    assert (transformer.head.in_features, reversible.head.in_features) == (d, 2 * d)
    assert (transformer.norm.normalized_shape, reversible.norm.normalized_shape) == ((d,), (2 * d,))
    assert transformer(_tokens()).shape == reversible(_tokens()).shape == (2, 8, vocab)
    # head weight d·V more, LayerNorm weight and bias d more each; the blocks and embeddings are the same
    assert reversible.num_parameters() - transformer.num_parameters() == d * vocab + 2 * d == 104
    head_and_norm = {"head.weight", "head.bias", "norm.weight", "norm.bias"}
    shapes = {name: p.shape for name, p in transformer.named_parameters() if name not in head_and_norm}
    assert shapes == {name: p.shape for name, p in reversible.named_parameters() if name not in head_and_norm}


def test_the_transformer_model_is_the_written_out_loop_end_to_end() -> None:
    model = _model()
    torch.testing.assert_close(model(_tokens()), _model_by_hand(model, _tokens()), rtol=0, atol=1e-12)  # float64


def test_with_attention_keeps_the_transformer_stack() -> None:
    model = _model().float()  # with_attention builds its copy in float32 (the default dtype), whatever the model's
    lsh = model.with_attention("lsh", n_hashes=2)
    assert (lsh.config.stack, lsh.config.reversible, lsh.config.attention, lsh.config.n_hashes) == (
        "transformer", False, "lsh", 2)
    assert isinstance(lsh.stack, ResidualSequence) and lsh.head.in_features == TINY["d_model"]
    assert lsh(_tokens()).shape == (2, 8, TINY["vocab_size"])
    full = model.with_attention("full")
    assert full.config == model.config and isinstance(full.stack, ResidualSequence)
    assert torch.equal(full(_tokens()), model(_tokens()))  # same weights, same function (float64)
    assert torch.equal(lsh.with_attention("full")(_tokens()), model(_tokens()))  # the weights went through LSH


def test_transformer_stack_is_causal() -> None:
    model = _model().eval()
    tokens = _tokens(batch=1)
    with torch.no_grad():
        before = model(tokens)
        for t in (2, 5, 7):
            changed = tokens.clone()
            changed[0, t] = (changed[0, t] + 1) % TINY["vocab_size"]
            after = model(changed)
            assert torch.equal(after[:, :t], before[:, :t]), t  # float64, exactly: masked keys weigh exactly 0
            assert (after[:, t] - before[:, t]).abs().max() > 1e-6, t  # the changed position itself does change
