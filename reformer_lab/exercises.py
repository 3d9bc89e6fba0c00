"""Graded checks for the lessons' exercises.

Each ``check_*`` function runs the reader's function on a handful of cases, compares it with the
package's reference, and says what is wrong in words ("you counted one head; there are n_heads").
It never raises for a wrong answer: it returns a :class:`CheckResult` that prints as one line, so a
lesson keeps running. Solutions live in :mod:`reformer_lab.solutions`, one module per lesson.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reformer_lab import complexity

__all__ = ["CheckResult", "check_qk_bytes", "check_fit_exponent", "check_feedforward_bytes"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one graded check; prints as a single line."""

    exercise: str
    passed: bool
    message: str
    attempted: bool = True

    def __str__(self) -> str:
        mark = "PASS" if self.passed else ("TODO" if not self.attempted else "FAIL")
        return f"[{mark}] {self.exercise}: {self.message}"

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class _Mistake:
    """A wrong answer we know how to recognise, and the hint it earns."""

    wrong: Callable[..., float]
    hint: str


def _close(got: Any, want: float, rel: float) -> bool:
    try:
        return math.isclose(float(got), float(want), rel_tol=rel, abs_tol=0.0)
    except (TypeError, ValueError):
        return False


def _grade(
    exercise: str,
    fn: Callable[..., Any],
    cases: Sequence[tuple[tuple, float]],
    mistakes: Sequence[_Mistake] = (),
    rel: float = 1e-9,
) -> CheckResult:
    if not callable(fn):
        raise TypeError(f"{exercise}: pass your function itself (no parentheses), got {type(fn).__name__}")
    for args, want in cases:
        shown = ", ".join(repr(a) for a in args)
        try:
            got = fn(*args)
        except NotImplementedError:
            return CheckResult(exercise, False, "not attempted yet: replace `raise NotImplementedError`.", False)
        except Exception as error:  # the reader's code may raise anything; report it, don't crash the lesson
            return CheckResult(exercise, False, f"calling it with ({shown}) raised {type(error).__name__}: {error}")
        if _close(got, want, rel):
            continue
        for mistake in mistakes:
            if _close(got, mistake.wrong(*args), rel):
                return CheckResult(exercise, False, f"for ({shown}) you returned {got!r}. Hint: {mistake.hint}")
        return CheckResult(exercise, False, f"for ({shown}) expected {want!r}, you returned {got!r}.")
    return CheckResult(exercise, True, f"all {len(cases)} cases pass.")


def check_qk_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Lesson 00, exercise 1: bytes of the attention matrices QKᵀ, ``fn(length, batch, n_heads, bytes_per_value)``."""
    cases = [
        ((a, b, h, p), complexity.qk_matrix_bytes(a, b, h, p))
        for a, b, h, p in [(1024, 1, 1, 4), (65536, 1, 1, 4), (4096, 8, 8, 2), (512, 3, 4, 4), (2048, 2, 16, 8)]
    ]
    mistakes = [
        _Mistake(lambda a, b, h, p: a * b * h * p, "QKᵀ has length × length entries per head: square the length."),
        _Mistake(lambda a, b, h, p: a * a * b * p, "every head has its own matrix: multiply by n_heads."),
        _Mistake(
            lambda a, b, h, p: a * a * h * p, "every sequence in the batch has its own matrices: multiply by batch."
        ),
        _Mistake(lambda a, b, h, p: a * a * b * h, "that is a count of values; multiply by bytes_per_value for bytes."),
        _Mistake(lambda a, b, h, p: a * a * b * h * p / 2**30, "return bytes, not GiB: the lesson formats units."),
    ]
    return _grade("Exercise 1 (qk_bytes)", fn, cases, mistakes)


def check_feedforward_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Lesson 00, exercise 2: feed-forward activations in fp32, ``fn(batch, length, d_ff, n_layers)``."""
    shapes = [(1, 65536, 4096, 16), (8, 1024, 4096, 12), (2, 512, 2048, 3), (1, 100, 7, 1)]
    cases = [(s, complexity.feedforward_activation_bytes(*s)) for s in shapes]
    mistakes = [
        _Mistake(lambda b, n, f, layers: b * n * f * 4, "each of the n_layers layers keeps its own activations."),
        _Mistake(lambda b, n, f, layers: b * n * f * layers, "4 bytes per fp32 value: multiply the count by 4."),
        _Mistake(lambda b, n, f, layers: n * f * layers * 4, "every sequence in the batch has its own activations."),
    ]
    return _grade("Exercise 2 (feedforward_bytes)", fn, cases, mistakes)


def _true_exponent(lengths: Sequence[float], sizes: Sequence[float]) -> float:
    return float(np.polyfit(np.log(lengths), np.log(sizes), 1)[0])


def check_fit_exponent(fn: Callable[[Sequence[float], Sequence[float]], float]) -> CheckResult:
    """Lesson 00, exercise 3: the exponent p of ``size ≈ a·length^p``, fitted by least squares on log–log axes."""
    lengths = [256.0, 512.0, 1024.0, 2048.0, 4096.0]
    data = [
        [3.0 * n**2 for n in lengths],
        [5.0 * n + 7.0 for n in lengths],
        [n**2 + 400.0 * n for n in lengths],
        [2.0 * n**1.5 for n in lengths],
    ]
    cases = [((lengths, sizes), _true_exponent(lengths, sizes)) for sizes in data]
    mistakes = [
        _Mistake(lambda x, y: float(np.polyfit(x, y, 1)[0]), "fit a straight line to log(size) against log(length)."),
        _Mistake(
            lambda x, y: float(np.polyfit(np.log(x), np.log(y), 1)[1]), "the exponent is the slope, not the intercept."
        ),
        _Mistake(
            lambda x, y: float(np.log(y[-1] / y[0]) / np.log(x[-1] / x[0])),
            "close, but use every point: a least-squares fit (np.polyfit), not the two end points.",
        ),
    ]
    return _grade("Exercise 3 (fit_exponent)", fn, cases, mistakes, rel=1e-6)


# Lesson 01, angular LSH ----------------------------------------------------------------------------

__all__ += ["check_hash_rounds", "check_two_bucket_collision", "check_recall"]


def _as_bucket_tensor(value: Any) -> Any:
    """The reader's answer as a long tensor, or None when it is not a tensor of whole numbers."""
    import torch

    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    if tensor.dtype == torch.bool or tensor.is_complex():
        return None
    if tensor.is_floating_point() and not torch.equal(tensor, tensor.round()):
        return None
    return tensor.long()


def _same_buckets(got: Any, want: Any) -> bool:
    import torch

    got = _as_bucket_tensor(got)
    return got is not None and got.shape == want.shape and bool(torch.equal(got, want.long()))


def _bucket_difference(got: Any, want: Any) -> str:
    """Why ``got`` is not ``want``, in words: a shape, or the first bucket that differs."""
    tensor = _as_bucket_tensor(got)
    if tensor is None:
        return f"expected a tensor of bucket ids (whole numbers), you returned {type(got).__name__} {got!r:.60}."
    if tensor.shape != want.shape:
        return f"expected shape {list(want.shape)} ([n_hashes, L]), you returned shape {list(tensor.shape)}."
    wrong = (tensor != want).nonzero()
    r, i = wrong[0].tolist()
    return (
        f"{len(wrong)} of {want.numel()} buckets differ from reformer_lab.hashing.hash_vectors; the first is "
        f"round {r}, vector {i}: expected {int(want[r, i])}, you returned {int(tensor[r, i])}."
    )


def _grade_buckets(
    exercise: str,
    fn: Callable[..., Any],
    cases: Sequence[tuple[tuple, Any, str]],
    mistakes: Sequence[_Mistake] = (),
) -> CheckResult:
    """Like :func:`_grade`, for answers that are tensors of bucket ids (compared exactly, shape included)."""
    if not callable(fn):
        raise TypeError(f"{exercise}: pass your function itself (no parentheses), got {type(fn).__name__}")
    for args, want, shown in cases:
        try:
            got = fn(*(a.clone() for a in args))
        except NotImplementedError:
            return CheckResult(exercise, False, "not attempted yet: replace `raise NotImplementedError`.", False)
        except Exception as error:  # the reader's code may raise anything; report it, don't crash the lesson
            return CheckResult(exercise, False, f"calling it with {shown} raised {type(error).__name__}: {error}")
        if _same_buckets(got, want):
            continue
        for mistake in mistakes:
            try:
                wrong = mistake.wrong(*args)
            except Exception:  # a mistake that cannot even be made for this case is not the one
                continue
            if _same_buckets(got, wrong):
                message = f"for {shown}: {_bucket_difference(got, want)} Hint: {mistake.hint}"
                return CheckResult(exercise, False, message)
        return CheckResult(exercise, False, f"for {shown}: {_bucket_difference(got, want)}")
    return CheckResult(exercise, True, f"all {len(cases)} cases pass.")


def _hash_cases() -> list[tuple[tuple, Any, str]]:
    import torch

    from reformer_lab.hashing import hash_vectors, random_rotations

    generator = torch.Generator().manual_seed(2020)
    cases = []
    for length, d, n_hashes, n_buckets in [(12, 4, 1, 4), (20, 8, 3, 6), (16, 5, 2, 2), (30, 16, 4, 16)]:
        x = torch.randn(length, d, generator=generator, dtype=torch.float64)
        rotations = random_rotations(d, n_buckets, n_hashes, generator=generator, dtype=torch.float64)
        shown = f"x of shape [{length}, {d}] and rotations of shape [{n_hashes}, {d}, {n_buckets // 2}]"
        cases.append(((x, rotations), hash_vectors(x, n_buckets, rotations=rotations), shown))
    return cases


def _scores(x: Any, rotations: Any) -> Any:
    return x @ rotations  # [n_hashes, L, n_buckets // 2]


def check_hash_rounds(fn: Callable[[Any, Any], Any]) -> CheckResult:
    """Lesson 01, exercise 1: all rounds at once, ``fn(x, rotations)`` → buckets ``[n_hashes, L]``.

    ``x`` has shape ``[L, d]`` and ``rotations`` ``[n_hashes, d, n_buckets // 2]``; round r gives
    h_r(x) = argmax([x R_r; −x R_r]) (paper §2).
    """
    import torch

    def cat(p: Any, **kw: Any) -> Any:
        return torch.cat([p, -p], **kw)

    mistakes = [
        _Mistake(lambda x, r: _scores(x, r).argmax(-1),
                 "your buckets ignore −xR: argmax(xR) only reaches the first n_buckets/2 buckets. Take the argmax "
                 "of torch.cat([xR, -xR], dim=-1), so that a large negative projection picks a bucket too."),
        _Mistake(lambda x, r: _scores(x, r).abs().argmax(-1),
                 "abs(xR) forgets the sign, so x and −x share a bucket; the sign should choose between bucket j "
                 "and bucket j + n_buckets/2: use [xR; −xR]."),
        _Mistake(lambda x, r: torch.cat([-_scores(x, r), _scores(x, r)], dim=-1).argmax(-1),
                 "[−xR; xR] is the wrong order: the paper's [xR; −xR] puts the positive projections first, so "
                 "bucket j < n_buckets/2 means column j of R won with a positive sign."),
        _Mistake(lambda x, r: cat(_scores(x, r)).argmax(-1),
                 "torch.cat joins along dim 0 by default, which stacked the rounds of −xR under those of xR. "
                 "Concatenate along the last dim: torch.cat([xR, -xR], dim=-1)."),
        _Mistake(lambda x, r: cat(_scores(x, r), dim=-1).argmax(1),
                 "argmax over the wrong axis: take it over the n_buckets scores of each vector (dim=-1), which "
                 "leaves one bucket per round and vector."),
        _Mistake(lambda x, r: cat(_scores(x, r), dim=-1).argmax(0),
                 "argmax over the wrong axis (over the rounds): take it over the n_buckets scores (dim=-1)."),
        _Mistake(lambda x, r: cat(_scores(x, r), dim=-1).argmax(),
                 "argmax without dim= flattens everything into one number: use argmax(dim=-1)."),
        _Mistake(lambda x, r: cat(_scores(x, r), dim=-1).argmax(-1).T,
                 "right buckets, wrong layout: return [n_hashes, L] (rounds first, as hash_vectors does), "
                 "not [L, n_hashes]."),
        _Mistake(lambda x, r: cat(x @ r[0], dim=-1).argmax(-1),
                 "you hashed one round: rotations holds n_hashes matrices, one per round; return [n_hashes, L] "
                 "(x @ rotations broadcasts over the rounds)."),
    ]
    return _grade_buckets("Exercise 1 (hash_rounds)", fn, _hash_cases(), mistakes)


def check_two_bucket_collision(fn: Callable[[float], float]) -> CheckResult:
    """Lesson 01, exercise 2: P[h(x) = h(y)] with 2 buckets for vectors at angle θ (radians): 1 − θ/π."""
    angles = [math.pi / 6, math.pi / 3, 0.0, math.pi / 2, 2.5, math.pi]  # π/6 first: the mistakes differ there
    cases = [((theta,), 1 - theta / math.pi) for theta in angles]
    mistakes = [
        _Mistake(lambda t: t / math.pi, "θ/π is the chance that they split; the question asks for the same bucket."),
        _Mistake(lambda t: 1 - t / (2 * math.pi),
                 "the hyperplane orthogonal to r is a line through the origin with two ends: it separates x and y "
                 "for θ out of π of its directions, not θ out of 2π."),
        _Mistake(lambda t: math.cos(t), "cos θ is the similarity, not a probability (it goes negative); ask how "
                 "often a random hyperplane passes between x and y."),
        _Mistake(lambda t: 1 - t / 180, "θ is in radians here: divide by π, not by 180."),
        _Mistake(lambda t: max(0.0, 1 - 2 * t / math.pi),
                 "that is 4 buckets with an exact 2-D rotation; with 2 buckets there is one hyperplane, the sign "
                 "of x·r."),
    ]
    return _grade("Exercise 2 (two_bucket_collision)", fn, cases, mistakes)


def check_recall(fn: Callable[[float, int], float]) -> CheckResult:
    """Lesson 01, exercise 3: P[share a bucket in at least one of n independent rounds], ``fn(p, n_hashes)``."""
    pairs = [(0.3, 4), (0.5, 2), (0.9, 3), (0.1, 8), (0.55, 1), (0.0, 5), (1.0, 2)]
    cases = [((p, n), 1 - (1 - p) ** n) for p, n in pairs]
    mistakes = [
        _Mistake(lambda p, n: p**n, "p^n is the chance of colliding in every round; eq. 6 takes the union of "
                 "the rounds, so one collision is enough."),
        _Mistake(lambda p, n: n * p, "adding the rounds' probabilities counts the trials that collide in several "
                 "rounds more than once (and can exceed 1); go through the chance of missing in every round."),
        _Mistake(lambda p, n: (1 - p) ** n, "(1 − p)^n is the chance of missing in every round; recall is the "
                 "complement."),
        _Mistake(lambda p, n: 1 - p**n, "1 − p^n is the chance that at least one round misses; you want at least "
                 "one round that hits."),
    ]
    return _grade("Exercise 3 (recall)", fn, cases, mistakes)

