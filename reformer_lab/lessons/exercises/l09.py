"""Lesson 09, what the approximations cost (paper §5): the checks of the two graded exercises.

Both read the lesson's numbers before the committed curves do: exercise 1 puts the text half's and the copy half's
bits per character together into the total the training curves show (so the reader can predict how low a total a
model gets from copying alone), exercise 2 writes the rule by which the lesson calls two settings "same within
noise" (their seed ranges overlap). A passing check ends with the numbers the notebook asked to predict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import mean
from typing import Any

import numpy as np

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, first_hint, grade, run_cases
from reformer_lab.measure.ablation_stats import verdict

__all__ = ["check_total_bits", "check_same_within_noise"]

#: Exercise 1's "predict first": the lesson scale's length, the text half modelled as well as the best n-gram
#: (about 1.8 bits/char), the copy half perfect (0 bits).
PREDICT_LENGTH = 128
PREDICT_TEXT_BITS = 1.8


def _with_reveal(result: CheckResult, reveal: str) -> CheckResult:
    """A passing result with the answer to the notebook's prediction appended; any other result unchanged."""
    if not result.passed:
        return result
    return CheckResult(result.exercise, True, f"{result.message} {reveal}")


# Exercise 1: the total from the two halves ------------------------------------------------------------------------


def _total(text: float, copy: float, length: int) -> float:
    half = length // 2
    return ((half - 1) * text + half * copy) / (length - 1)


def check_total_bits(fn: Callable[[float, float, int], float]) -> CheckResult:
    """Exercise 1: ``fn(text, copy, length)`` → the mean bits/char over all ``length − 1`` targets of a w w sequence
    of ``length`` characters, from the mean over the first copy's ``half − 1`` targets (``text``) and over the
    second copy's ``half`` targets (``copy``), ``half = length // 2``: ((half − 1)·text + half·copy)/(length − 1)."""
    # the first case tells every mistake below apart; later ones bring the lengths of the lesson and copy = 0
    triples = [(2.1, 0.3, 4), (PREDICT_TEXT_BITS, 0.0, PREDICT_LENGTH), (2.4, 1.1, 1024), (1.62, 0.05, 64),
               (0.0, 0.7, 16), (3.0, 3.0, 256)]
    cases = [Case(t, _total(*t)) for t in triples]
    mistakes = [
        Mistake(lambda t, c, n: (t + c) / 2, "the halves have different numbers of targets: half − 1 and half. "
                "Weight each half's mean by its number of targets."),
        Mistake(lambda t, c, n: ((n // 2 - 1) * t + n // 2 * c) / n, "there are length − 1 targets, not length: "
                "the last character has no next one to predict."),
        Mistake(lambda t, c, n: (n // 2 * t + n // 2 * c) / (n - 1), "the first copy has half − 1 targets, not "
                "half: its first character is never a target (nothing comes before it), so the text half has one "
                "target fewer than the copy half."),
        Mistake(lambda t, c, n: (n // 2 * t + (n // 2 - 1) * c) / (n - 1), "the weights are swapped: the text half "
                "(first copy) has half − 1 targets, the copy half (second copy) has half."),
    ]
    result = grade("Exercise 1 (total_bits)", fn, cases, mistakes)
    half = PREDICT_LENGTH // 2
    total = _total(PREDICT_TEXT_BITS, 0.0, PREDICT_LENGTH)
    return _with_reveal(result, (
        f"At length {PREDICT_LENGTH} ({half - 1} text targets, {half} copy targets), text at {PREDICT_TEXT_BITS} "
        f"bits (the best n-gram's) and a perfect copy (0 bits) total {total:.2f} bits/char: a curve can fall that "
        f"low by copying alone, so read the text half before crediting the model with language."))


# Exercise 2: same within noise --------------------------------------------------------------------------------


def _first_last(xs: Sequence[float]) -> tuple[float, float]:
    return xs[0], xs[-1]


def _overlap_first_last(baseline: Sequence[float], variant: Sequence[float]) -> bool:
    (b_lo, b_hi), (v_lo, v_hi) = _first_last(baseline), _first_last(variant)
    return b_hi >= v_lo and v_hi >= b_lo


_NOISE_MISTAKES = [
    Mistake(lambda b, v: max(b) > min(v) and max(v) > min(b), "touching ranges overlap: when one seed range ends "
            "exactly where the other begins, they share that value, so the verdict is same within noise (>=, not >)."),
    Mistake(lambda b, v: max(b) >= min(v), "you checked one side only: the ranges are also apart when the variant "
            "lies entirely below the baseline (variant max < baseline min). Both sides must hold: baseline max ≥ "
            "variant min and variant max ≥ baseline min."),
    Mistake(lambda b, v: max(v) >= min(b), "you checked one side only: the ranges are also apart when the variant "
            "lies entirely above the baseline (variant min > baseline max). Both sides must hold: baseline max ≥ "
            "variant min and variant max ≥ baseline min."),
    Mistake(_overlap_first_last, "the values of the seeds come in no particular order: take min() and max(), not "
            "the first and the last entries."),
    Mistake(lambda b, v: min(b) <= min(v) <= max(b) or min(b) <= max(v) <= max(b), "one range can hold the other "
            "whole, with neither of its ends inside the other range: ask instead whether either range lies entirely "
            "beyond the other."),
    Mistake(lambda b, v: abs(mean(b) - mean(v)) < 1e-9, "compare the ranges, not the means: seeds whose ranges "
            "overlap are the same within noise however far apart their means are."),
]


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _noise_verdict(case: Case, got: Any) -> str | None:
    if not _is_bool(got):
        return (f"expected True or False, you returned {got!r:.60} ({type(got).__name__}): return whether the two "
                "seed ranges overlap.")
    if bool(got) == case.want:
        return None
    baseline, variant = case.args
    ranges = f"the seed ranges are [{min(baseline)}, {max(baseline)}] and [{min(variant)}, {max(variant)}]"
    hint = first_hint(_NOISE_MISTAKES, case.args, lambda wrong: bool(wrong) == bool(got))
    if hint is not None:
        return f"you returned {bool(got)} ({ranges}). Hint: {hint}"
    return f"expected {case.want}, you returned {bool(got)}: {ranges}."


def _on_fresh_lists(fn: Any) -> Any:
    """``fn`` called on fresh lists of the seeds' values, so an answer that sorts or pops them changes no case."""
    if not callable(fn):
        return fn  # run_cases says what is wrong with it
    return lambda baseline, variant: fn(list(baseline), list(variant))


def check_same_within_noise(fn: Callable[[list[float], list[float]], bool]) -> CheckResult:
    """Exercise 2: ``fn(baseline, variant)`` (bits/char, one value per seed) → True when the two seed ranges
    [min, max] overlap, touching included: the lesson's "same within noise" (the package's
    :func:`~reformer_lab.measure.ablation_stats.verdict`)."""
    pairs = [
        ((1.20, 1.24, 1.26), (1.25, 1.30, 1.34)),  # overlap by a little; each mean outside the other range
        ((1.20, 1.22, 1.25), (1.30, 1.33, 1.34)),  # the variant entirely above (worse)
        ((1.30, 1.33, 1.34), (1.20, 1.22, 1.25)),  # the variant entirely below (better)
        ((1.20, 1.22, 1.25), (1.25, 1.28, 1.30)),  # touching: baseline max = variant min
        ((1.30, 1.34, 1.37), (1.22, 1.30)),  # touching the other way, unequal seed counts
        ((1.24, 1.26, 1.27), (1.20, 1.30, 1.35)),  # the baseline's range inside the variant's
        ((1.26, 1.20, 1.31), (1.18, 1.22)),  # not sorted
        ((1.3,), (1.3,)),  # one seed each, equal
        ((1.30,), (1.31,)),  # one seed each, apart
        ((1.25,), (1.31, 1.20, 1.28)),  # one seed inside three
        ((1.05, 1.00), (1.10, 1.30, 1.20, 1.35)),  # unequal counts, apart
        ((1.10, 1.30, 1.20), (1.25, 1.40)),  # unequal counts, overlapping
        ((1.40, 1.38, 1.45, 1.41), (1.30, 1.35)),  # unequal counts, the variant below
    ]
    cases = [Case(p, verdict(*p) == "same within noise", f"baseline {list(p[0])} and variant {list(p[1])}")
             for p in pairs]
    result = run_cases("Exercise 2 (same_within_noise)", _on_fresh_lists(fn), cases, _noise_verdict)
    baseline, touching, apart = pairs[3][0], pairs[3][1], pairs[1][1]
    return _with_reveal(result, (
        f"Seeds {list(baseline)} against {list(touching)}: {verdict(baseline, touching)}, though the means differ by "
        f"{mean(touching) - mean(baseline):.2f}; against {list(apart)}: {verdict(baseline, apart)} bits/char."))
