"""Lesson 00, the memory problem (paper §1): the checks of the notebook's three exercises.

Each one uses the lesson's formulas on a question the lesson did not answer: Table 3's memory for a
configuration it never showed, then the largest batch of it that fits 80 GiB (exercise 1), the length at which the
feed-forward term overtakes attention (exercise 2), and the longest sequence whose attention matrices fit in a given
memory (exercise 3). A passing check ends with the answer to the notebook's "predict first" question, so the reader
can compare.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade
from reformer_lab.measure import complexity
from reformer_lab.measure.memory import format_bytes

__all__ = ["check_transformer_memory_bytes", "check_ff_attention_crossover", "check_longest_sequence"]

GiB = 2**30

#: The paper's ablation model (§5: 3 layers, d_model 1024, d_ff 4096, 8 heads) on one imagenet64 image
#: (64·64·3 = 12,288 tokens), in half precision (2 bytes a value): exercise 1's "predict first".
ABLATION_IMAGENET64 = dict(batch=1, length=12288, d_model=1024, d_ff=4096, n_layers=3, n_heads=8, bytes_per_value=2)

#: Exercise 1's transfer step: the memory that the largest batch of :data:`ABLATION_IMAGENET64` images must fit.
TRANSFER_MEMORY = 80 * GiB


def _with_reveal(result: CheckResult, reveal: str) -> CheckResult:
    """A passing result with the answer to the notebook's prediction appended; any other result unchanged."""
    if not result.passed:
        return result
    return CheckResult(result.exercise, True, f"{result.message} {reveal}")


def _table3_transformer_bytes(batch, length, d_model, d_ff, n_layers, n_heads, bytes_per_value) -> float:
    return complexity.model_complexity("transformer", batch=batch, length=length, d_model=d_model, d_ff=d_ff,
                                       n_heads=n_heads, n_layers=n_layers).memory * bytes_per_value


def check_transformer_memory_bytes(fn: Callable[..., float], largest_batch: object = None) -> CheckResult:
    """Exercise 1: Table 3's Transformer memory in bytes, ``fn(batch, length, d_model, d_ff, n_layers, n_heads,
    bytes_per_value)`` = max(b·l·d_ff, b·n_h·l²)·n_l·bytes_per_value.

    Then the transfer step, graded when ``largest_batch`` is given: the largest batch of
    :data:`ABLATION_IMAGENET64` images whose memory fits :data:`TRANSFER_MEMORY` (80 GiB).
    """
    # (batch, length, d_model, d_ff, n_layers, n_heads, bytes): the first case has the feed-forward term larger
    # (so d_model in place of d_ff shows), the second attention (so a missing n_heads shows); batch ≠ 1 and
    # n_layers ≠ 1 throughout, two precisions.
    shapes = [
        (3, 128, 512, 2048, 6, 8, 4),
        (3, 1024, 256, 1024, 6, 4, 2),
        (1, 65536, 1024, 4096, 16, 8, 4),
        (8, 512, 1024, 4096, 3, 16, 2),
        (1, 12288, 1024, 4096, 3, 8, 2),
    ]
    cases = [Case(s, _table3_transformer_bytes(*s)) for s in shapes]
    mistakes = [
        Mistake(lambda b, n, dm, df, nl, h, p: (b * n * df + b * h * n * n) * nl * p,
                "Table 3 takes the larger of the two terms (max), not their sum: it gives the order of the memory."),
        Mistake(lambda b, n, dm, df, nl, h, p: max(b * n * df, b * h * n * n) * p,
                "a Transformer keeps every layer's activations for backprop: multiply by n_layers."),
        Mistake(lambda b, n, dm, df, nl, h, p: max(b * n * df, b * n * n) * nl * p,
                "every head forms its own l × l matrix: the attention term is b·n_h·l²."),
        Mistake(lambda b, n, dm, df, nl, h, p: max(b * n * dm, b * h * n * n) * nl * p,
                "d_model is the chunked models' width; the plain Transformer keeps the d_ff-wide feed-forward "
                "activations."),
        Mistake(lambda b, n, dm, df, nl, h, p: max(b * n * df, b * h * n * n) * nl,
                "that is a count of values: multiply by bytes_per_value."),
        Mistake(lambda b, n, dm, df, nl, h, p: max(n * df, h * n * n) * nl * p,
                "every sequence in the batch has its own activations and matrices: multiply by batch."),
    ]
    result = grade("Exercise 1 (transformer_memory_bytes)", fn, cases, mistakes)
    config = ABLATION_IMAGENET64
    b, n, f, h, p = config["batch"], config["length"], config["d_ff"], config["n_heads"], config["bytes_per_value"]
    feedforward, attention = b * n * f * p, b * h * n * n * p
    bigger = "attention" if attention > feedforward else "the feed-forward"
    reveal = (f"The ablation model on one imagenet64 image in fp16: {bigger} wins, {format_bytes(attention)} against "
              f"{format_bytes(feedforward)} per layer, {format_bytes(_table3_transformer_bytes(**config))} for the "
              f"{config['n_layers']} layers.")
    if not result.passed:
        return result
    if largest_batch is None:
        return _with_reveal(result, f"{reveal} Now, with your function, find the largest batch of these images that "
                                    f"fits {format_bytes(TRANSFER_MEMORY)} and pass it as `largest_batch=`.")
    problem = _largest_batch_problem(largest_batch)
    if problem is not None:
        return CheckResult(result.exercise, False, f"your function is right; the largest batch is not: {problem}")
    want = _largest_batch()
    return _with_reveal(result, (
        f"{reveal} And {want} images fit in {format_bytes(TRANSFER_MEMORY)} ({format_bytes(_batch_bytes(want))}); "
        f"{want + 1} would need {format_bytes(_batch_bytes(want + 1))}."))


def _batch_bytes(batch: int, **changes: int) -> float:
    """Table 3's Transformer memory for ``batch`` of exercise 1's images (``changes`` alter the configuration)."""
    return _table3_transformer_bytes(**{**ABLATION_IMAGENET64, "batch": batch, **changes})


def _largest_batch(**changes: int) -> int:
    """The largest batch of exercise 1's images whose Table 3 memory fits :data:`TRANSFER_MEMORY` (linear in b)."""
    return int(TRANSFER_MEMORY // _batch_bytes(1, **changes))


def _largest_batch_problem(answer: object) -> str | None:
    """What is wrong with ``answer`` as exercise 1's largest batch, in words; None when it is right."""
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real) or not math.isfinite(answer):
        return f"give a number of images, got {answer!r}."
    if not float(answer).is_integer():
        return f"{answer:g} is not a whole number of images: round down (a part of an image does not run)."
    answer = int(answer)
    known = {
        _largest_batch() + 1: "rounded up: that many images do not fit.",
        _largest_batch(n_layers=1): "that fits one layer; the Transformer stores all 3 layers' matrices.",
        _largest_batch(bytes_per_value=4): "that is fp32; the images are in half precision, 2 bytes a value.",
    }
    if answer == _largest_batch():
        return None
    if answer in known:
        return f"{answer}: {known[answer]}"
    if answer < 1:
        return f"a batch of {answer} runs nothing; one image takes {format_bytes(_batch_bytes(1))}, which fits."
    if _batch_bytes(answer) > TRANSFER_MEMORY:
        return f"{answer} images take {format_bytes(_batch_bytes(answer))} by Table 3, more than " \
               f"{format_bytes(TRANSFER_MEMORY)}."
    return (f"{answer} images take {format_bytes(_batch_bytes(answer))}, which fits, but a larger batch fits too: "
            f"raise the batch while your function's answer stays ≤ {format_bytes(TRANSFER_MEMORY)}.")


def check_ff_attention_crossover(fn: Callable[[int, int], float]) -> CheckResult:
    """Exercise 2: the length at which Table 3's feed-forward term b·l·d_ff equals attention's b·n_h·l²,
    ``fn(d_ff, n_heads)`` = d_ff / n_heads (below it the feed-forward term is the larger)."""
    # (d_ff, n_heads): the first is not a whole number (so integer division shows), then n_heads ≠ 1, d_ff ≠ n_h².
    shapes = [(1024, 3), (4096, 8), (3072, 12), (2048, 1), (64, 16)]
    cases = [Case(s, s[0] / s[1]) for s in shapes]
    mistakes = [
        Mistake(lambda f, h: f // h,
                "don't round: b·l·d_ff = b·n_h·l² holds at l = d_ff / n_h exactly, a whole number or not."),
        Mistake(lambda f, h: h / f, "upside down: l·d_ff = n_h·l² gives l = d_ff / n_h."),
        Mistake(lambda f, h: math.sqrt(f / h),
                "both terms carry one factor l already: b·l·d_ff = b·n_h·l² divides to d_ff = n_h·l, no square root."),
        Mistake(lambda f, h: f * h, "the heads multiply the attention term, so more heads make it win sooner: divide."),
        Mistake(lambda f, h: float(f), "every head has its own l × l matrix: the attention term is b·n_h·l²."),
    ]
    result = grade("Exercise 2 (ff_attention_crossover)", fn, cases, mistakes)
    reformer = complexity.memory_breakdown(length=1, batch=1, d_model=1024, d_ff=4096, n_layers=16, n_heads=8,
                                           model="reformer")
    return _with_reveal(result, (
        f"With the widget's defaults (d_ff 4096, 8 heads) that is l = {4096 / 8:,.0f}, whatever the batch and the "
        f"layers. In the Reformer's row both terms grow as l, so one of them wins at every length: attention, "
        f"{reformer.attention / reformer.feedforward:,.0f}× the feed-forward term for d_model 1024."))


def _longest(memory_bytes: int, batch: int, n_heads: int, n_layers: int, bytes_per_value: int) -> int:
    return math.isqrt(memory_bytes // (batch * n_heads * n_layers * bytes_per_value))


def check_longest_sequence(fn: Callable[[int, int, int, int, int], int]) -> CheckResult:
    """Exercise 3: the longest length l whose stored attention matrices, b·n_h·l²·n_l·bytes_per_value bytes, fit
    in ``memory_bytes``: ``fn(memory_bytes, batch, n_heads, n_layers, bytes_per_value)``, a whole number."""
    # (memory, batch, heads, layers, bytes): the first does not come out whole (so a missing round-down shows) and
    # has four different factors (so each one left out shows); the second is the paper's 16 GiB at 64K; the third's
    # square root ends in .6 (so rounding to the nearest, i.e. up, shows).
    shapes = [
        (16 * GiB, 4, 8, 3, 2),
        (16 * GiB, 1, 1, 1, 4),
        (24 * GiB, 1, 16, 24, 2),
        (10**9, 3, 4, 6, 4),
        (1024, 1, 1, 1, 4),
    ]
    cases = [Case(s, _longest(*s)) for s in shapes]
    mistakes = [
        Mistake(lambda m, b, h, nl, p: math.sqrt(m / (b * h * nl * p)),
                "a length is a whole number of tokens: round the square root down (math.isqrt, or int(...))."),
        Mistake(lambda m, b, h, nl, p: math.ceil(math.sqrt(m / (b * h * nl * p))),
                "round down, not up or to the nearest: one token more would not fit."),
        Mistake(lambda m, b, h, nl, p: m // (b * h * nl * p),
                "the matrices grow as l², so the length is the square root of what fits."),
        Mistake(lambda m, b, h, nl, p: math.isqrt(m // (b * h * p)),
                "a Transformer stores every layer's matrices for backprop: divide by n_layers too."),
        Mistake(lambda m, b, h, nl, p: math.isqrt(m // (b * h * nl)),
                "memory_bytes is in bytes: divide by bytes_per_value to count values."),
        Mistake(lambda m, b, h, nl, p: math.isqrt(m // (h * nl * p)),
                "every sequence in the batch has its own matrices: divide by batch too."),
        Mistake(lambda m, b, h, nl, p: math.isqrt(m // (b * nl * p)),
                "every head has its own matrix: divide by n_heads too."),
    ]
    result = grade("Exercise 3 (longest_sequence)", fn, cases, mistakes)
    one = _longest(16 * GiB, 1, 1, 1, 4)
    return _with_reveal(result, (
        f"In 16 GiB, fp32: one head of one layer fits l = {one:,}; 4× the memory fits "
        f"{_longest(64 * GiB, 1, 1, 1, 4) / one:g}× the length; 8 heads × 16 layers fit l = "
        f"{_longest(16 * GiB, 1, 8, 16, 4):,}."))
