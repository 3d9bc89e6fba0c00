"""Kneser–Ney character n-gram baselines: normalisation, a dict-based reference, row boundaries, real text."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from reformer_lab.data import CharVocab, python_docs_text
from reformer_lab.ngram import NGramModel, fit_ngrams


def reference_kn(train: list[int], order: int, vocab_size: int, discount: float):
    """Interpolated Kneser–Ney written out with dicts: returns prob(context, token)."""
    counts = {order: Counter(tuple(train[j : j + order]) for j in range(len(train) - order + 1))}
    for k in range(1, order):  # continuation count of a k-gram: the distinct (k+1)-grams it ends
        distinct = {tuple(train[j : j + k + 1]) for j in range(len(train) - k)}
        counts[k] = Counter(gram[1:] for gram in distinct)

    def prob_k(k: int, context: tuple[int, ...], token: int) -> float:
        if k == 0:
            return 1 / vocab_size
        lower = prob_k(k - 1, context[1:], token)
        following = {gram[-1]: n for gram, n in counts[k].items() if gram[:-1] == context}
        if not following:
            return lower
        total = sum(following.values())
        return (max(following.get(token, 0) - discount, 0) + discount * len(following) * lower) / total

    def prob(context: list[int], token: int) -> float:
        kept = tuple(context[max(len(context) - (order - 1), 0) :])
        return prob_k(len(kept) + 1, kept, token)

    return prob


@pytest.fixture(scope="module")
def small_text() -> np.ndarray:
    """300 tokens of a skewed Markov-ish text over ids 0 … 4 (id 5 of a 6-token vocabulary never occurs)."""
    rng = np.random.default_rng(3)
    tokens = [0]
    for _ in range(299):
        tokens.append(int((tokens[-1] + rng.choice([1, 1, 1, 2, 3])) % 5))
    return np.array(tokens)


@pytest.fixture(scope="module")
def docs() -> tuple[np.ndarray, np.ndarray, int]:
    """python_docs_text as ids: the first 90 % (train), the last 10 % (held out), the vocabulary size."""
    text = python_docs_text()
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text).numpy()
    cut = int(0.9 * len(ids))
    return ids[:cut], ids[cut:], len(vocab)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_dict_reference(small_text: np.ndarray, order: int) -> None:
    train, vocab_size, discount = small_text[:250], 6, 0.6
    model = NGramModel.fit(train, order, vocab_size, discount)
    reference = reference_kn(train.tolist(), order, vocab_size, discount)
    held_out = np.concatenate([small_text[250:], [5, 0, 5, 5, 1]])  # unseen tokens make unseen contexts
    expected = [math.log2(reference(held_out[:t + 1].tolist(), int(held_out[t + 1])))
                for t in range(len(held_out) - 1)]
    np.testing.assert_allclose(model.log2_probs(held_out)[0], expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_normalise_and_agree_with_log2_probs(small_text: np.ndarray, order: int) -> None:
    model = NGramModel.fit(torch.from_numpy(small_text), order, 6)
    rng = np.random.default_rng(order)
    contexts = [small_text[:0], small_text[:1], small_text[40:40 + order - 2], small_text[10:10 + order + 2],
                np.array([5, 5, 4, 5]), rng.integers(0, 6, order - 1)]
    for context in contexts:
        table = model.prob_table(context)
        assert table.shape == (6,) and (table > 0).all()
        assert abs(table.sum() - 1) < 1e-9, (context, table.sum())
        rows = np.stack([np.append(context, token) for token in range(6)])
        if rows.shape[1] >= 2:
            np.testing.assert_allclose(model.log2_probs(rows)[:, -1], np.log2(table), rtol=0, atol=1e-12)


def test_periodic_text_is_free_for_order_3_and_costs_log2_3_for_order_1() -> None:
    text = np.tile([0, 1, 2], 1000)
    held_out = np.stack([np.tile([0, 1, 2], 50)[phase : phase + 128] for phase in range(3)])
    models = fit_ngrams(text, [1, 3], vocab_size=3)
    assert models[3].bits_per_token(held_out) < 0.1
    assert abs(models[1].bits_per_token(held_out) - math.log2(3)) < 0.05


def test_real_text_gets_cheaper_with_order_and_order_1_is_the_unigram_entropy(docs) -> None:
    train, held_out, vocab_size = docs
    rng = np.random.default_rng(0)
    rows = np.stack([held_out[s : s + 129] for s in rng.integers(0, len(held_out) - 129, 64)])
    bits = {order: model.bits_per_token(rows) for order, model in fit_ngrams(train, [1, 2, 3], vocab_size).items()}
    assert bits[1] - bits[2] > 0.5 and bits[2] - bits[3] > 0.3, bits  # measured 4.70, 3.35, 2.49 on 200 rows

    frequency = Counter(train.tolist())
    targets = rows[:, 1:].ravel().tolist()
    cross_entropy = -sum(math.log2(frequency[c] / len(train)) for c in targets) / len(targets)
    assert abs(bits[1] - cross_entropy) < 0.01, (bits[1], cross_entropy)


def test_context_stops_at_the_start_of_a_row(small_text: np.ndarray) -> None:
    model = NGramModel.fit(small_text, 4, 6)
    rows = np.stack([small_text[:30], small_text[100:130]])
    changed = rows.copy()
    changed[0] = (changed[0] + 1) % 6
    before, after = model.log2_probs(rows), model.log2_probs(changed)
    assert not np.array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[1], model.log2_probs(rows[1])[0])
    # The first prediction of a row sees one token of context, the second two.
    assert before[1, 0] == np.log2(model.prob_table(rows[1, :1])[rows[1, 1]])
    assert before[1, 1] == np.log2(model.prob_table(rows[1, :2])[rows[1, 2]])


def test_bits_per_token_averages_the_masked_positions(small_text: np.ndarray) -> None:
    model = NGramModel.fit(small_text, 3, 6)
    rows = torch.from_numpy(small_text[:64].reshape(2, 32))
    mask = torch.rand(2, 31, generator=torch.Generator().manual_seed(0)) < 0.5
    expected = -model.log2_probs(rows)[mask.numpy()].mean()
    assert model.bits_per_token(rows, mask) == pytest.approx(expected, rel=1e-12)
    assert model.bits_per_token(rows) == pytest.approx(-model.log2_probs(rows).mean(), rel=1e-12)
    one_row = -model.log2_probs(rows[0])[0][mask[0].numpy()].mean()  # a 1-D row takes a 1-D mask
    assert model.bits_per_token(rows[0], mask[0]) == pytest.approx(one_row, rel=1e-12)


def test_fitting_is_deterministic(small_text: np.ndarray) -> None:
    rows = small_text[:60].reshape(3, 20)
    first, second = NGramModel.fit(small_text, 5, 6), NGramModel.fit(small_text.copy(), 5, 6)
    np.testing.assert_array_equal(first.log2_probs(rows), second.log2_probs(rows))


def test_orders_up_to_8_fit_and_normalise() -> None:
    text = np.random.default_rng(1).integers(0, 256, 5000)
    model = NGramModel.fit(text, 8, 256)
    assert abs(model.prob_table(text[:7]).sum() - 1) < 1e-9
    assert model.log2_probs(text[:100]).shape == (1, 99)


TEXT = np.array([0, 1, 2, 1, 0])


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"order": 0}, ValueError, "order"),
    ({"order": 9}, ValueError, "order"),
    ({"order": 2.0}, TypeError, "order"),
    ({"vocab_size": 0}, ValueError, "vocab_size"),
    ({"vocab_size": 257}, ValueError, "vocab_size"),
    ({"vocab_size": 2}, ValueError, "ids"),  # id 2 is out of range
    ({"ids": np.array([0, -1, 1])}, ValueError, "ids"),
    ({"ids": torch.tensor([0.0, 1.0])}, TypeError, "ids"),
    ({"ids": np.array([True, False])}, TypeError, "ids"),
    ({"ids": [0, 1, 2]}, TypeError, "ids"),
    ({"ids": np.array([], dtype=np.int64)}, ValueError, "ids"),
    ({"ids": np.zeros((2, 3), dtype=np.int64)}, ValueError, "ids"),
    ({"discount": 0.0}, ValueError, "discount"),
    ({"discount": 1.0}, ValueError, "discount"),
    ({"discount": "0.5"}, TypeError, "discount"),
])
def test_fit_rejects_bad_arguments(kwargs: dict, error: type[Exception], name: str) -> None:
    arguments = {"ids": TEXT, "order": 2, "vocab_size": 3} | kwargs
    with pytest.raises(error, match=name):
        NGramModel.fit(**arguments)


@pytest.mark.parametrize(("call", "error", "name"), [
    (lambda m: m.log2_probs(np.zeros((2, 2, 2), dtype=np.int64)), ValueError, "sequences"),
    (lambda m: m.log2_probs(np.array([[0, 3]])), ValueError, "sequences"),
    (lambda m: m.log2_probs(torch.zeros(2, 4)), TypeError, "sequences"),
    (lambda m: m.bits_per_token(np.zeros((2, 4), dtype=np.int64), np.ones((2, 4), dtype=bool)), ValueError, "mask"),
    (lambda m: m.bits_per_token(np.zeros((2, 4), dtype=np.int64), np.ones((2, 3))), TypeError, "mask"),
    (lambda m: m.bits_per_token(np.zeros((2, 4), dtype=np.int64), np.zeros((2, 3), dtype=bool)), ValueError, "mask"),
    (lambda m: m.prob_table([0, 1.5]), TypeError, "context"),
    (lambda m: m.prob_table(np.zeros((1, 1), dtype=np.int64)), ValueError, "context"),
])
def test_scoring_rejects_bad_arguments(call, error: type[Exception], name: str) -> None:
    with pytest.raises(error, match=name):
        call(NGramModel.fit(TEXT, 2, 3))


def test_fit_ngrams_rejects_no_orders_and_bad_order_types() -> None:
    with pytest.raises(ValueError, match="orders"):
        fit_ngrams(TEXT, [], 3)
    with pytest.raises(TypeError, match="orders"):
        fit_ngrams(TEXT, [1, 2.5], 3)
