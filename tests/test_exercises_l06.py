"""Lesson 06's graded checks accept the solutions, agree with the real model, and name the usual mistakes."""

from __future__ import annotations

import pytest

from reformer_lab.lessons.exercises import l06 as exercises
from reformer_lab.lessons.solutions import l06
from reformer_lab.model import ReformerConfig, ReformerLM


@pytest.mark.parametrize("attention", ["full", "lsh"])
@pytest.mark.parametrize("d_model, d_ff, n_heads", [(16, 24, 2), (64, 128, 4), (32, 32, 1)])
def test_block_count_is_the_real_models(attention, d_model, d_ff, n_heads) -> None:
    """The reference count equals one block of ReformerLM, for LSH and shared-QK full attention alike."""
    config = ReformerConfig(vocab_size=11, max_len=32, d_model=d_model, d_ff=d_ff, n_heads=n_heads, n_layers=3,
                            attention=attention, chunk_size=8)
    model = ReformerLM(config)
    block = sum(p.numel() for p in model.stack.blocks[0].parameters())
    assert block == l06.block_parameters(d_model, d_ff)  # and the solution passes the check, so the check agrees
    outside = 11 * d_model + 32 * d_model + 2 * (2 * d_model) + (2 * d_model * 11 + 11)  # embeddings, norm, head
    assert model.num_parameters() == 3 * block + outside


def test_separate_qk_full_attention_has_one_more_matrix() -> None:
    """The first mistake's hint is true: shared_qk=False adds a d_model² key projection."""
    base = dict(vocab_size=11, max_len=32, d_model=16, d_ff=24, n_heads=2, attention="full")
    shared = ReformerLM(ReformerConfig(**base)).num_parameters()
    separate = ReformerLM(ReformerConfig(**base, shared_qk=False)).num_parameters()
    assert separate - shared == 16 * 16


def _ref(d, f):
    return l06.block_parameters(d, f)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda d, f: _ref(d, f) + d * d, "shared-QK"),
        (lambda d, f: _ref(d, f) - 4 * d, "LayerNorm"),
        (lambda d, f: _ref(d, f) - f - 2 * d, "biases"),
        (lambda d, f: _ref(d, f) - d * f, "two d_model×d_ff"),
        (lambda d, f: 2 * _ref(d, f), "reversibility adds no parameters"),
        (lambda d, f: _ref(d, f) - 3 * d * d - 3 * d, "attention (F)"),
    ],
)
def test_block_parameters_names_the_mistake(wrong, hint) -> None:
    result = exercises.check_block_parameters(wrong)
    assert not result.passed and hint in result.message, result.message


def test_a_wrong_count_without_a_known_mistake_shows_the_expected_value() -> None:
    result = exercises.check_block_parameters(lambda d, f: 1)
    assert not result.passed and "expected" in result.message


def _answers(fragment: str, value):
    def answer(term: str):
        return value if _matches(term, fragment) else l06.memory_switch(term)

    return answer


def _matches(term: str, fragment: str) -> bool:
    return {"layers": term.startswith("n_layers"), "ff": "d_ff" in term, "attn": "l²" in term,
            "logits": "vocab" in term}[fragment]


@pytest.mark.parametrize(
    "fragment, value, hint",
    [
        ("attn", "chunk_size", 'only once attention="lsh"'),
        ("attn", "n_hashes", "adds rounds"),
        ("attn", "shared_qk", "still forms all l²"),
        ("layers", "n_layers", "smaller model"),
        ("ff", "d_ff", "smaller model"),
        ("ff", "loss_chunks", "its own count, ff_chunks"),
        ("logits", "ff_chunks", "its own count, loss_chunks"),
        ("logits", "dropout", "docstring"),
        ("attn", "lsh", "not a ReformerConfig field"),
        ("layers", True, "not a ReformerConfig field"),
    ],
)
def test_memory_switch_names_the_mistake(fragment, value, hint) -> None:
    result = exercises.check_memory_switch(_answers(fragment, value))
    assert not result.passed and result.attempted and hint in result.message, result.message


def test_every_answer_is_a_config_field_and_the_terms_are_the_papers() -> None:
    from dataclasses import fields

    names = {f.name for f in fields(ReformerConfig)}
    assert {l06.memory_switch(t) for t in exercises.MEMORY_TERMS} <= names
    assert len(exercises.MEMORY_TERMS) == 4


def _tiny_corpus_and_config(**changes):
    from reformer_lab.data import CharCorpus

    corpus = CharCorpus.python_docs(seq_len=32)
    config = ReformerConfig(vocab_size=corpus.vocab_size, max_len=32, d_model=16, d_ff=32, n_heads=2, n_layers=2,
                            attention="lsh", n_hashes=1, chunk_size=8, ff_chunks=2, loss_chunks=4, **changes)
    return corpus, config


def test_reformer_lm_is_its_parts_assembled_by_hand() -> None:
    """Lesson 06 §1: embedding twice → ReversibleSequence → LayerNorm([Y1; Y2]) → Linear equals ReformerLM exactly."""
    import torch
    from torch import nn

    from reformer_lab.attention import LSHSelfAttention
    from reformer_lab.feedforward import FeedForward
    from reformer_lab.reversible import AttentionBranch, ReversibleBlock, ReversibleSequence

    corpus, config = _tiny_corpus_and_config()
    torch.manual_seed(0)
    model = ReformerLM(config)
    d = config.d_model
    positions = nn.Module()
    positions.weight = nn.Parameter(torch.zeros(config.max_len, d))
    blocks = [ReversibleBlock(AttentionBranch(LSHSelfAttention(d, config.n_heads, chunk_size=config.chunk_size,
                                                               n_hashes=config.n_hashes, causal=True)),
                              FeedForward(d, config.d_ff)) for _ in range(config.n_layers)]
    parts = nn.ModuleDict({"token_embedding": nn.Embedding(config.vocab_size, d), "positions": positions,
                           "stack": ReversibleSequence(blocks, config.ff_chunks), "norm": nn.LayerNorm(2 * d),
                           "head": nn.Linear(2 * d, config.vocab_size)})
    parts.load_state_dict(model.state_dict())
    tokens = corpus.train[:64].view(2, 32)
    torch.manual_seed(1)
    x = parts["token_embedding"](tokens) + positions.weight[:32]
    y1, y2 = parts["stack"](x, x)
    ours = parts["head"](parts["norm"](torch.cat([y1, y2], -1)))
    torch.manual_seed(1)
    assert torch.equal(ours, model(tokens))


def test_a_short_training_run_is_repeatable_and_beats_the_frequencies() -> None:
    """Lesson 06 §2 prints its losses: with one thread two seeded runs give identical histories; and the
    model beats the frequencies-only guess on the validation text after a short run."""
    import torch

    from reformer_lab.train import TrainConfig, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        corpus, config = _tiny_corpus_and_config()
        runs = []
        for _ in range(2):
            torch.manual_seed(0)
            model = ReformerLM(config)
            runs.append(train(model, corpus, TrainConfig(steps=120, batch_size=8, lr=5e-3, warmup=10, eval_every=60,
                                                         eval_batches=2, log_every=10, checkpoint_every=0),
                              progress=False))
    finally:
        torch.set_num_threads(threads)
    assert [r["loss"] for r in runs[0].history] == [r["loss"] for r in runs[1].history]
    assert runs[0].evals == runs[1].evals
    counts = torch.bincount(corpus.train, minlength=corpus.vocab_size).double() + 1
    unigram = -(counts / counts.sum()).log()[corpus.valid].mean().item()
    assert runs[0].final["loss"] < unigram


def test_seeded_sampling_repeats() -> None:
    """Lesson 06 §2 compares its sample: seeded hashing and a seeded sampling generator give the same text twice."""
    import torch

    corpus, config = _tiny_corpus_and_config()
    torch.manual_seed(0)
    model = ReformerLM(config)
    prompt = corpus.vocab.encode("The ")[None]
    samples = []
    for _ in range(2):
        torch.manual_seed(5)  # the LSH rotations come from the global generator, the sampling from its own
        sampler = torch.Generator().manual_seed(0)
        samples.append(model.generate(prompt, 12, temperature=0.8, top_k=10, generator=sampler))
    assert torch.equal(samples[0], samples[1]) and samples[0].shape == (1, 16)
