"""Lesson 09's measurements (paper §5, Figures 3, 4, 5 left): bits per position on the repeated-text task, their
split, the n-gram yardstick, the runner's final evaluation, and the statistics over seeds."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reformer_lab.data import CharCorpus, RepeatedTextTask
from reformer_lab.measure.ablation_stats import (
    CROSS_COLUMNS,
    curve_bits,
    final_evaluation,
    largest_depth_within,
    load_runs,
    ngram_baselines,
    position_bits,
    seed_spread,
    split_bits,
    step_activation_bytes,
    verdict,
)
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.ngram import fit_ngrams
from reformer_lab.train import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")

LN2 = math.log(2)


@pytest.fixture(scope="module")
def task() -> RepeatedTextTask:
    """w w with |w| = 8 characters of Python's documentation: length 16, 15 targets, the copy's from position 7."""
    return RepeatedTextTask(CharCorpus.python_docs(seq_len=16), 16)


def _model(task: RepeatedTextTask, seed: int = 0, **changes) -> ReformerLM:
    torch.manual_seed(seed)
    config = dict(vocab_size=task.vocab_size, max_len=task.length, d_model=16, d_ff=32, n_heads=2, n_layers=2,
                  chunk_size=8, attention="full")
    return ReformerLM(ReformerConfig(**{**config, **changes}))


def _drawn(task: RepeatedTextTask, batches: int, batch_size: int, seed: int, unrelated: bool = False) -> torch.Tensor:
    """The validation batches a fresh generator seeded with ``seed`` gives, stacked: what every evaluation must see."""
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([task.batch(batch_size, generator, split="valid", unrelated=unrelated).inputs
                      for _ in range(batches)])


class _Recorder(nn.Module):
    """A model-free stand-in: uniform logits, and a record of every input it was shown and its train/eval mode."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size, self.seen, self.modes = vocab_size, [], []

    def forward(self, tokens: torch.Tensor, n_hashes: int | None = None) -> torch.Tensor:
        self.seen.append(tokens.clone())
        self.modes.append(self.training)
        return torch.zeros(*tokens.shape, self.vocab_size)


# position_bits: the same number as the training loop's evaluation, in bits, position by position


@pytest.mark.parametrize("attention", ["full", "lsh"])
def test_position_bits_average_is_evaluate_loss_in_bits(task: RepeatedTextTask, attention: str) -> None:
    """Tolerance 1e-6 bits on float64 models (measured ≤ 2e-8: position_bits takes log-softmax in float32)."""
    model = _model(task, attention=attention, n_hashes=2).double()
    bits = position_bits(model, task, batches=3, batch_size=4, seed=7)
    assert bits.shape == (15,) and bits.dtype == np.float64 and (bits > 0).all()
    loss = evaluate(model, task, batches=3, batch_size=4, seed=7)["loss"]
    assert abs(bits.mean() - loss / LN2) < 1e-6, (bits.mean(), loss / LN2)
    # and another seed gives other batches (so the agreement above is not two constant numbers)
    assert abs(position_bits(model, task, batches=3, batch_size=4, seed=8).mean() - bits.mean()) > 1e-3


@pytest.mark.parametrize("training", [True, False])
def test_position_bits_leaves_the_rng_and_the_mode_alone(task: RepeatedTextTask, training: bool) -> None:
    model = _model(task, attention="lsh").train(training)
    torch.manual_seed(99)
    before = torch.get_rng_state()
    first = position_bits(model, task, batches=2, batch_size=2, seed=3)
    assert torch.equal(torch.get_rng_state(), before) and model.training is training
    assert np.array_equal(position_bits(model, task, batches=2, batch_size=2, seed=3), first)  # LSH rotations too
    recorder = _Recorder(task.vocab_size).train(training)
    position_bits(recorder, task, batches=2, batch_size=2, seed=3)
    assert recorder.modes == [False, False] and recorder.training is training  # evaluated in eval mode


def test_position_bits_sees_evaluates_batches_and_is_in_bits(task: RepeatedTextTask) -> None:
    """Model-free: the inputs position_bits, evaluate and a generator seeded by hand give are the same tensors."""
    drawn = _drawn(task, batches=3, batch_size=4, seed=11)
    by_bits, by_evaluate = _Recorder(task.vocab_size), _Recorder(task.vocab_size)
    bits = position_bits(by_bits, task, batches=3, batch_size=4, seed=11)
    evaluate(by_evaluate, task, batches=3, batch_size=4, seed=11)
    assert torch.equal(torch.cat(by_bits.seen), drawn) and torch.equal(torch.cat(by_evaluate.seen), drawn)
    # uniform logits: log2(vocab) bits at every position (float32 log-softmax: 1e-6 relative)
    np.testing.assert_allclose(bits, math.log2(task.vocab_size), rtol=1e-6)
    unrelated = _Recorder(task.vocab_size)
    position_bits(unrelated, task, batches=3, batch_size=4, seed=11, unrelated=True)
    assert torch.equal(torch.cat(unrelated.seen), _drawn(task, 3, 4, 11, unrelated=True))
    # The first batch's copies are those of the w w batch (each batch draws its w's before its u's); the later
    # batches' are not, since the u's moved the generator on: the copy with and without its source is paired only
    # within the first batch.
    assert torch.equal(torch.cat(unrelated.seen)[:4, 8:], drawn[:4, 8:])


def test_position_bits_checks_its_counts(task: RepeatedTextTask) -> None:
    with pytest.raises(ValueError, match=r"^batches must be an int >= 1, got 0$"):
        position_bits(_Recorder(task.vocab_size), task, batches=0)
    with pytest.raises(ValueError, match=r"^batch_size must be an int >= 1, got 0$"):
        position_bits(_Recorder(task.vocab_size), task, batch_size=0)


# split_bits


def test_split_bits_on_a_hand_made_vector(task: RepeatedTextTask) -> None:
    short = RepeatedTextTask(task.corpus, 8)  # 7 targets: the text's at 0, 1, 2 (half − 1 = 3), the copy's 3 … 6
    assert split_bits([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], short) == {"total": 4.0, "text": 2.0, "copy": 5.5}
    assert split_bits(np.array([0.0, 0.0, 3.0, 1.0, 1.0, 1.0, 1.0]), short) == {"total": 1.0, "text": 1.0, "copy": 1.0}
    copy = short.copy_mask()[:-1].numpy()  # the split agrees with the task's own copy mask
    bits = np.arange(7.0) ** 2
    assert split_bits(bits, short)["copy"] == bits[copy].mean()
    assert split_bits(bits, short)["text"] == bits[~copy].mean()
    for wrong in ([1.0] * 8, [1.0] * 6, np.ones((1, 7))):
        with pytest.raises(ValueError, match=r"^per_position must hold 7 values \(one per target\)"):
            split_bits(wrong, short)


# ngram_baselines: the yardstick, scored on the very batches the models are


def test_ngram_baselines_score_the_batches_position_bits_sees(task: RepeatedTextTask) -> None:
    """Model-free: fit the n-grams by hand and score the batches a generator seeded with ``seed`` gives, which are
    those position_bits is shown (test_position_bits_sees_evaluates_batches_and_is_in_bits). Exact up to 1e-12."""
    ours = fit_ngrams(task.corpus.train, [1, 2], task.vocab_size)
    for unrelated in (False, True):
        rows = _drawn(task, batches=3, batch_size=4, seed=5, unrelated=unrelated).numpy()
        result = ngram_baselines(task, (1, 2), batches=3, batch_size=4, seed=5, unrelated=unrelated)
        assert sorted(result) == [1, 2]
        for order, model in ours.items():
            per_position = -model.log2_probs(rows).mean(axis=0)
            expected = split_bits(per_position, task)
            assert {key: result[order][key] for key in expected} == pytest.approx(expected, rel=0, abs=1e-12)
            if "position_bits" in result[order]:  # the per-position curve, where the result keeps it
                np.testing.assert_allclose(result[order]["position_bits"], per_position, rtol=0, atol=1e-12)
    other = ngram_baselines(task, (2,), batches=3, batch_size=4, seed=6)[2]  # another seed, other batches
    assert abs(other["total"] - ngram_baselines(task, (2,), batches=3, batch_size=4, seed=5)[2]["total"]) > 1e-6


def test_an_ngram_model_cannot_copy() -> None:
    """Order 3 on 4 × 32 sequences of length 128: the copy's bits are the text's, within 0.5 bits.

    Measured copy − text = 0.10, 0.11, 0.11, 0.10 bits (seeds 0, 1, 2, 1234; 0.07–0.15 with unrelated first
    halves): the copy costs a little more, its first contexts straddling the seam w|w. A model that copies
    would be far lower on the copy (0 bits at best). Order 1 sees no context: the same within 0.02 bits.
    """
    task = RepeatedTextTask(CharCorpus.python_docs(seq_len=128), 128)
    result = ngram_baselines(task, (1, 3), batches=4, batch_size=32, seed=1234)
    assert abs(result[3]["copy"] - result[3]["text"]) < 0.5, result[3]
    assert abs(result[1]["copy"] - result[1]["text"]) < 0.02, result[1]  # measured 0.001
    assert result[3]["text"] < result[1]["text"] - 1.0  # context helps the text (measured 2.57 against 4.67)


# final_evaluation: what the runner records after the last step


def test_final_evaluation_keys_and_cross_only_when_asked(task: RepeatedTextTask) -> None:
    model = _model(task)  # float32: with_attention's copies are float32, so the diagonal below is exact
    kwargs = dict(batches=2, batch_size=4, seed=3)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    plain = final_evaluation(model, task, cross=False, **kwargs)
    assert torch.equal(torch.get_rng_state(), before) and model.training
    assert {"position_bits", "total", "text", "copy", "unrelated_copy"} <= set(plain) and "cross" not in plain
    own = position_bits(model, task, **kwargs)
    assert len(plain["position_bits"]) == task.length - 1
    np.testing.assert_allclose(plain["position_bits"], own, rtol=0, atol=5e-6)  # rounded to 5 decimals
    assert {key: plain[key] for key in ("total", "text", "copy")} == split_bits(own, task)
    unrelated = position_bits(model, task, unrelated=True, **kwargs)
    assert plain["unrelated_copy"] == split_bits(unrelated, task)["copy"]
    json.dumps(plain)  # the record is JSON-ready
    crossed = final_evaluation(model, task, cross=True, **kwargs)
    assert tuple(crossed["cross"]) == CROSS_COLUMNS
    for column in CROSS_COLUMNS:
        assert set(crossed["cross"][column]) >= {"total", "text", "copy"}
    for key in ("total", "text", "copy"):  # a full-attention model evaluated with full attention: itself
        assert abs(crossed["cross"]["full"][key] - plain[key]) < 1e-9
        assert crossed[key] == plain[key]
    assert crossed["cross"]["lsh-1"]["total"] != crossed["cross"]["full"]["total"]  # LSH is another function
    json.dumps(crossed)


def test_final_evaluation_cross_diagonal_of_an_lsh_model(task: RepeatedTextTask) -> None:
    """Trained with LSH-2 and evaluated with LSH-2: the same weights, rounds and rotations (seeded), so itself."""
    model = _model(task, attention="lsh", n_hashes=2)
    record = final_evaluation(model, task, batches=2, batch_size=4, seed=3, cross=True)
    for key in ("total", "text", "copy"):
        assert abs(record["cross"]["lsh-2"][key] - record[key]) < 1e-9
    assert abs(record["cross"]["lsh-8"]["total"] - record["total"]) > 1e-6  # more rounds: another number


# Over seeds: spread, verdict, the records on disk, the curves


def test_seed_spread() -> None:
    spread = seed_spread([1.0, 2.0, 3.0, 6.0])
    assert spread == {"mean": 3.0, "min": 1.0, "max": 6.0, "n": 4, "std": pytest.approx(math.sqrt(14 / 3), abs=1e-12)}
    assert seed_spread(np.array([2.5])) == {"mean": 2.5, "min": 2.5, "max": 2.5, "n": 1, "std": 0.0}
    with pytest.raises(ValueError, match="at least one value"):
        seed_spread([])


def test_verdict() -> None:
    assert verdict([1.0, 1.2], [1.1, 1.3]) == "same within noise"  # overlapping ranges
    assert verdict([1.0, 1.2], [1.2, 1.3]) == "same within noise"  # touching ranges overlap
    assert verdict([1.0, 1.5], [1.2]) == "same within noise"  # one seed inside the other's range
    # separated: d = 1.6 − 1.1 = 0.5, s = √(0.1²/3 + 0.1²/3) = 0.0816 (sample std 0.1 each)
    baseline, worse = [1.0, 1.1, 1.2], [1.5, 1.6, 1.7]
    assert verdict(baseline, worse) == "worse by 0.50 ± 0.08"
    assert verdict(baseline, worse, decimals=3) == "worse by 0.500 ± 0.082"
    assert verdict(worse, baseline) == "better by 0.50 ± 0.08"  # lower bits are better
    assert verdict([2.0], [1.0, 1.2]) == "better by 0.90 ± 0.10"  # s = √(0 + 0.1414²/2) = 0.1
    assert verdict([1.0], [2.0]) == "worse by 1.00 ± 0.00"


def _record(path: Path, setting: str, seed: int, experiment: str = "ablation") -> dict:
    record = {"experiment": experiment, "setting": setting, "seed": seed, "metrics": {"eval": []}}
    path.write_text(json.dumps(record))
    return record


def test_load_runs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no ablation run records in .*make runs-ablation"):
        load_runs(tmp_path)  # empty
    (tmp_path / "full-lesson-seed0.run.json").write_text(json.dumps({"experiment": "ablation", "setting": "x"}))
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path)  # a run file is not a record
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "missing")
    full = [_record(tmp_path / f"full-lesson-seed{seed}.json", "full", seed) for seed in (10, 2, 0)]
    transformer = _record(tmp_path / "transformer-lesson-seed1.json", "transformer", 1)
    _record(tmp_path / "lsh-2-lesson-seed0.json", "lsh-2", 0, experiment="duplication")  # another experiment
    (tmp_path / "notes.txt").write_text("not json")
    runs = load_runs(tmp_path)
    assert runs == {"full": [full[2], full[1], full[0]], "transformer": [transformer]}  # by seed: 0, 2, 10
    assert load_runs(tmp_path, "duplication") == {"lsh-2": [{"experiment": "duplication", "setting": "lsh-2",
                                                             "seed": 0, "metrics": {"eval": []}}]}


def test_curve_bits() -> None:
    record = {"metrics": {"eval": [{"step": 25, "loss": 2 * LN2, "accuracy": 0.1},
                                   {"step": 50, "loss": LN2, "accuracy": 0.2}]}}
    steps, bits = curve_bits(record)
    assert steps.tolist() == [25, 50]
    np.testing.assert_allclose(bits, [2.0, 1.0], rtol=0, atol=1e-15)  # nats / ln 2


def test_activation_bytes_grow_with_depth_only_for_the_single_stream_stack() -> None:
    base = ReformerConfig(vocab_size=11, max_len=16, d_model=16, d_ff=32, n_heads=2, n_layers=1, attention="full")
    single = replace(base, stack="transformer", reversible=False)
    rev = {d: step_activation_bytes(replace(base, n_layers=d), 4) for d in (1, 2, 4)}
    ordinary = {d: step_activation_bytes(replace(single, n_layers=d), 4) for d in (1, 2, 3)}
    assert rev[4] - rev[1] < 256  # a reversible stack keeps its last outputs (+ 16 bytes of seeds a layer)
    per_layer = ordinary[2] - ordinary[1]
    assert per_layer > 10 * (rev[4] - rev[1]) and ordinary[3] - ordinary[2] == per_layer  # exactly linear
    assert largest_depth_within(ordinary[2], single, 4, max_depth=4) == 2
    assert largest_depth_within(ordinary[2] + per_layer - 1, single, 4, max_depth=4) == 2
    assert largest_depth_within(ordinary[1] - 1, single, 4) == 0
    assert largest_depth_within(10 * ordinary[3], single, 4, max_depth=3) == 3
