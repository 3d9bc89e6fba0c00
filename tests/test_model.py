"""ReformerLM and ReformerConfig (paper §3): shapes, validation, reversible ≡ ordinary, n_hashes at evaluation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reformer_lab.model import ReformerConfig, ReformerLM

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = dict(vocab_size=20, max_len=32, d_model=16, d_ff=32, n_heads=2, n_layers=2, chunk_size=8)


def tokens(batch: int = 2, length: int = 32, vocab: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attention", ["full", "lsh"])
def test_shapes(attention: str) -> None:
    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL, attention=attention))
    x = tokens()
    assert model(x).shape == (2, 32, 20)
    assert model(x[:, :16]).shape == (2, 16, 20)
    assert model.hidden(x).shape == (2, 32, 32)  # LayerNorm over the concatenated halves: 2·d_model
    assert model.loss(x, x).shape == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(attention="lsh", shared_qk=False), "shared_qk"),
        (dict(attention="lsh", max_len=36), "multiple of chunk_size"),
        (dict(attention="sparse"), "attention must be one of"),
        (dict(d_model=18, n_heads=4), "divisible by n_heads"),
        (dict(n_layers=0), "n_layers"),
        (dict(dropout=1.0), "dropout"),
        (dict(positional="sinusoidal"), "positional"),
        (dict(positional="axial", axial_shape=(4, 4)), "product is max_len"),
        (dict(positional="axial", axial_dims=(4, 4)), "summing to d_model"),
    ],
)
def test_config_validation(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReformerConfig(**{**SMALL, **changes})


def test_full_attention_may_have_separate_qk_and_any_length() -> None:
    model = ReformerLM(ReformerConfig(**{**SMALL, "max_len": 30}, attention="full", shared_qk=False))
    assert model(tokens(length=30)).shape == (2, 30, 20)


def test_bad_inputs() -> None:
    model = ReformerLM(ReformerConfig(**SMALL, attention="lsh"))
    with pytest.raises(ValueError, match="multiple of chunk_size"):
        model(tokens(length=12))
    with pytest.raises(ValueError, match="exceeds max_len"):
        model(tokens(length=40))
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.zeros(2, 32))


@pytest.mark.parametrize("attention", ["full", "lsh"])
def test_reversible_and_ordinary_share_state_dict_loss_and_gradients(attention: str) -> None:
    """Paper §3: the reversible model is the same function; float64, tolerance 1e-10."""
    config = ReformerConfig(**SMALL, attention=attention, n_hashes=2, dropout=0.1)
    torch.manual_seed(0)
    rev = ReformerLM(config).double()
    ordinary = ReformerLM(ReformerConfig(**{**SMALL, "reversible": False}, attention=attention, n_hashes=2,
                                         dropout=0.1)).double()
    ordinary.load_state_dict(rev.state_dict())  # same parameter names: loads strictly
    x = tokens()
    losses, grads = [], []
    for model in (rev, ordinary):
        torch.manual_seed(1)  # same hashes and dropout masks
        loss = model.loss(x, x.roll(-1, 1))
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-10)
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=0, atol=1e-10, msg=name)


def test_n_hashes_override_changes_lsh_logits_and_is_restored() -> None:
    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL, attention="lsh", n_hashes=1)).eval()
    x = tokens()
    torch.manual_seed(3)
    one = model(x)
    torch.manual_seed(3)
    eight = model(x, n_hashes=8)
    assert not torch.allclose(one, eight)
    assert all(m.attention.n_hashes == 1 for m in (b.f for b in model.stack.blocks))
    torch.manual_seed(3)
    torch.testing.assert_close(model(x), one)


def test_with_attention_moves_weights_between_full_and_lsh() -> None:
    torch.manual_seed(0)
    full = ReformerLM(ReformerConfig(**SMALL, attention="full"))
    lsh = full.with_attention("lsh", n_hashes=4)
    assert lsh.config.attention == "lsh" and lsh.config.n_hashes == 4
    for (n1, p1), (n2, p2) in zip(full.state_dict().items(), lsh.state_dict().items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)


def test_chunked_loss_equals_plain_loss_and_mask_selects_positions() -> None:
    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL, attention="full"))
    chunked = ReformerLM(ReformerConfig(**{**SMALL, "loss_chunks": 4, "ff_chunks": 4}, attention="full"))
    chunked.load_state_dict(model.state_dict())
    x, y = tokens(), tokens(seed=1)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 16:] = True
    expected = F.cross_entropy(model(x)[mask], y[mask])
    torch.testing.assert_close(model.loss(x, y, mask), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.loss(x, y, mask), expected, rtol=1e-5, atol=1e-6)


def test_axial_positions_have_fewer_parameters() -> None:
    learned = ReformerLM(ReformerConfig(**SMALL, attention="lsh"))
    axial = ReformerLM(ReformerConfig(**SMALL, attention="lsh", positional="axial"))
    assert axial.config.resolved_axial() == ((4, 8), (8, 8))
    assert axial(tokens()).shape == (2, 32, 20)
    assert axial.num_parameters() == learned.num_parameters() - 32 * 16 + (4 * 8 + 8 * 8)


def test_generate() -> None:
    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL, attention="full"))
    prompt = tokens(1, 5)
    greedy = model.generate(prompt, 6, temperature=0)
    assert greedy.shape == (1, 11) and torch.equal(greedy[:, :5], prompt)
    assert torch.equal(model.generate(prompt, 6, temperature=0), greedy)
    sampled = model.generate(prompt, 6, generator=torch.Generator().manual_seed(0), top_k=3)
    assert sampled.shape == (1, 11) and model.training
    with pytest.raises(ValueError, match="max_len"):
        model.generate(prompt, 40)


def test_config_round_trips_through_dict() -> None:
    config = ReformerConfig(**SMALL, positional="axial", axial_shape=(4, 8))
    assert ReformerConfig.from_dict(config.to_dict()) == config


# Argument checks (reformer_lab.validation): NumPy integers accepted and stored as int, bool/float/str refused


def test_config_accepts_numpy_integers_and_stores_plain_values() -> None:
    import json

    import numpy as np

    config = ReformerConfig(**{name: np.int64(value) for name, value in SMALL.items()}, dropout=0,
                            causal=np.bool_(True), positional="axial", axial_shape=(np.int64(4), np.int64(8)))
    assert config == ReformerConfig(**SMALL, dropout=0.0, positional="axial", axial_shape=(4, 8))
    assert all(type(getattr(config, name)) is int for name in SMALL)
    assert type(config.dropout) is float and config.causal is True and type(config.axial_shape[0]) is int
    assert ReformerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert ReformerLM(config)(tokens()).shape == (2, 32, 20)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(n_layers=True), r"^n_layers must be an int >= 1, got the bool True$"),
        (dict(d_model=16.0), r"^d_model must be an int >= 1, got 16\.0 \(float\)$"),
        (dict(n_hashes="2"), r"^n_hashes must be an int >= 1, got '2' \(str\)$"),
        (dict(causal="False"), r"^causal must be True or False, got 'False' \(str\)$"),
        (dict(reversible=0), r"^reversible must be True or False, got 0 \(int\)$"),
        (dict(dropout="0.1"), r"^dropout must be a finite number in \[0\.0, 1\.0\], got '0\.1' \(str\)$"),
        (dict(positional="axial", axial_shape=(4.0, 8)), r"^axial_shape entries must be an int >= 1, got 4\.0"),
    ],
)
def test_config_refuses_bool_float_and_string_values_by_name(changes: dict, message: str) -> None:
    from reformer_lab.validation import ArgumentTypeError

    with pytest.raises(ArgumentTypeError, match=message):
        ReformerConfig(**{**SMALL, **changes})


def test_call_time_arguments_are_checked() -> None:
    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL))
    with pytest.raises(ValueError, match=r"^n_hashes must be an int >= 1, got the bool True$"):
        model(tokens(), n_hashes=True)
    with pytest.raises(ValueError, match=r"^n_tokens must be an int >= 0, got -1$"):
        model.generate(tokens()[:, :4], -1)
    with pytest.raises(ValueError, match=r"^top_k must be an int >= 1, got 0$"):
        model.generate(tokens()[:, :4], 1, top_k=0)
    assert model.generate(tokens()[:, :4], 0).shape == (2, 4)


# Bad input: ids outside the vocabulary, empty batches, float targets and masks, negative axial sizes


def test_token_ids_outside_the_vocabulary_are_a_clear_error() -> None:
    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL))
    for bad in (20, 25, -1):  # 20 was a bare IndexError from the embedding; -1 likewise
        x = tokens()
        x[1, 7] = bad
        with pytest.raises(ValueError, match=rf"^tokens must be token ids in \[0, vocab_size=20\), got {bad}$"):
            model(x)
    for empty in (tokens()[:0], tokens()[:, :0]):
        with pytest.raises(ValueError, match=r"^tokens must hold at least one sequence of at least one token"):
            model(empty)
    with pytest.raises(ValueError, match=r"^tokens must be an integer tensor \[batch, length\], got \(2, 32\) torch"):
        model(tokens().float())


def test_loss_refuses_float_targets_float_masks_and_targets_outside_the_vocabulary() -> None:
    from reformer_lab.validation import ArgumentTypeError

    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL))
    x = tokens()
    with pytest.raises(ArgumentTypeError, match=r"^targets must be an integer tensor of token ids, got torch\.float3"):
        model.loss(x, x.float() + 0.7)  # was truncated by .long()
    with pytest.raises(ArgumentTypeError, match=r"^mask must be a bool tensor .*got torch\.float32$"):
        model.loss(x, x, torch.full((2, 32), 0.5))  # 0.5 was taken as True
    with pytest.raises(ValueError, match=r"^mask must have the shape of targets \(2, 32\), got \(32,\)$"):
        model.loss(x, x, torch.ones(32, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"^mask selects the positions of the loss: pass targets with it$"):
        model(x, mask=torch.ones(2, 32, dtype=torch.bool))
    wrong = x.clone()
    wrong[0, 3] = 20
    with pytest.raises(ValueError, match=r"^targets must be token ids in \[0, vocab_size=20\), got 20$"):
        model.loss(x, wrong)
    masked = torch.ones(2, 32, dtype=torch.bool)
    masked[0, 3] = False
    assert torch.isfinite(model.loss(x, wrong, masked))  # a masked position may hold anything


@pytest.mark.parametrize("loss_chunks", [1, 4])
def test_a_fully_masked_batch_gives_f_cross_entropy_s_nan_loss_and_zero_gradients(loss_chunks: int) -> None:
    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL, loss_chunks=loss_chunks))
    loss = model.loss(tokens(), tokens(seed=1), torch.zeros(2, 32, dtype=torch.bool))
    loss.backward()
    assert loss.isnan()  # 0/0, as F.cross_entropy's mean over nothing
    assert all(p.grad is None or torch.equal(p.grad, torch.zeros_like(p.grad)) for p in model.parameters())


def test_axial_sizes_must_be_positive_pairs() -> None:
    from reformer_lab.validation import ArgumentTypeError

    with pytest.raises(ValueError, match=r"^axial_shape entries must be an int >= 1, got -4$"):
        ReformerConfig(**SMALL, positional="axial", axial_shape=(-4, -8))  # product 32 = max_len: was accepted
    with pytest.raises(ValueError, match=r"^axial_dims entries must be an int >= 1, got 0$"):
        ReformerConfig(**SMALL, positional="axial", axial_dims=(0, 16))
    with pytest.raises(ArgumentTypeError, match=r"^axial_shape must be two positive ints, got 32 \(int\)$"):
        ReformerConfig(**SMALL, positional="axial", axial_shape=32)
    assert ReformerConfig(**SMALL, positional="axial", axial_shape=[4, 8]).axial_shape == (4, 8)


def test_generate_checks_its_prompt_and_top_k() -> None:
    from reformer_lab.validation import ArgumentTypeError

    torch.manual_seed(0)
    model = ReformerLM(ReformerConfig(**SMALL))
    prompt = tokens()[:, :4]
    with pytest.raises(ArgumentTypeError, match=r"^prompt must be an integer tensor of token ids, got torch\.float32$"):
        model.generate(prompt.float() + 0.5, 2)  # was truncated by .long()
    with pytest.raises(ValueError, match=r"^prompt must hold at least one token per sequence"):
        model.generate(prompt[:, :0], 2)
    bad = prompt.clone()
    bad[1, 2] = -3
    with pytest.raises(ValueError, match=r"^prompt must be token ids in \[0, vocab_size=20\), got -3$"):
        model.generate(bad, 2)
    with pytest.raises(ValueError, match=r"^top_k must be at most vocab_size=20, got 21$"):
        model.generate(prompt, 2, top_k=21)  # was a RuntimeError from topk
    with pytest.raises(ValueError, match=r"^n_tokens must be an int >= 0, got -1$"):
        model.generate(prompt, -1)
    assert model.generate(prompt[0], 3, top_k=20, generator=torch.Generator().manual_seed(0)).shape == (1, 7)


def test_axial_embedding_checks_its_sizes() -> None:
    from reformer_lab.model import AxialPositionalEmbedding
    from reformer_lab.validation import ArgumentTypeError

    assert AxialPositionalEmbedding((4, 8), (6, 10))(32).shape == (32, 16)
    with pytest.raises(ValueError, match=r"^shape entries must be an int >= 1, got -4$"):
        AxialPositionalEmbedding((-4, -8), (8, 8))  # was torch's "negative dimension" error
    with pytest.raises(ArgumentTypeError, match=r"^dims must be two positive ints, got 16$"):
        AxialPositionalEmbedding((4, 8), 16)
    with pytest.raises(ValueError, match=r"^length must be an int in \[0, 32\], got 33$"):
        AxialPositionalEmbedding((4, 8), (6, 10))(33)  # was 32 rows, silently
