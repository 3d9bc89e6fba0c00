"""Graded checks for the lessons' exercises.

Each ``check_*`` function runs the reader's function on a handful of cases, compares it with the
package's reference, and says what is wrong in words ("you counted one head; there are n_heads").
It never raises for a wrong answer: it returns a :class:`CheckResult` that prints as one line, so a
lesson keeps running. Solutions live in :mod:`reformer_lab.lessons.solutions`, one module per lesson.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reformer_lab.measure import complexity

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


def _require_callable(exercise: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{exercise}: pass your function itself (no parentheses), got {type(fn).__name__}")


@dataclass(frozen=True)
class _Raised:
    """The reader's function raised instead of answering; ``result`` says so."""

    result: CheckResult


def _answer(exercise: str, shown: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or a :class:`_Raised` when the reader's code raised (``shown`` describes the arguments).

    ``NotImplementedError`` is the untouched template: the check then reads TODO, not FAIL.
    """
    try:
        return fn(*args)
    except NotImplementedError:
        return _Raised(CheckResult(exercise, False, "not attempted yet: replace `raise NotImplementedError`.", False))
    except Exception as error:  # the reader's code may raise anything; report it, don't crash the lesson
        return _Raised(CheckResult(exercise, False, f"calling it with {shown} raised {type(error).__name__}: {error}"))


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
    _require_callable(exercise, fn)
    for args, want in cases:
        shown = ", ".join(repr(a) for a in args)
        got = _answer(exercise, f"({shown})", fn, *args)
        if isinstance(got, _Raised):
            return got.result
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
    _require_callable(exercise, fn)
    for args, want, shown in cases:
        got = _answer(exercise, shown, fn, *(a.clone() for a in args))
        if isinstance(got, _Raised):
            return got.result
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


# Lesson 03, shared-QK and LSH attention -------------------------------------------------------------

__all__ += ["check_combine_rounds", "check_visit_counts", "check_causal_window_mask"]


def _as_answer_tensor(value: Any, like: Any) -> Any:
    """The reader's answer as a tensor of ``like``'s dtype, or None when it cannot be one."""
    import torch

    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    if tensor.is_complex():
        return None
    if like.dtype == torch.bool:
        if tensor.dtype != torch.bool and not bool(((tensor == 0) | (tensor == 1)).all()):
            return None
        return tensor.bool()
    if not like.is_floating_point() and tensor.is_floating_point() and not torch.equal(tensor, tensor.round()):
        return None
    return tensor.to(like.dtype)


def _same_tensor(got: Any, want: Any, atol: float) -> bool:
    import torch

    tensor = _as_answer_tensor(got, want)
    if tensor is None or tensor.shape != want.shape:
        return False
    if want.is_floating_point():
        return bool(torch.allclose(tensor, want, rtol=0.0, atol=atol))
    return bool(torch.equal(tensor, want))


def _tensor_difference(got: Any, want: Any, what: str, atol: float) -> str:
    """Why ``got`` is not ``want``, in words: a type, a shape, NaNs, or the first entry that differs."""
    import torch

    tensor = _as_answer_tensor(got, want)
    if tensor is None:
        return f"expected a tensor of {what}, you returned {type(got).__name__} {got!r:.60}."
    if tensor.shape != want.shape:
        return f"expected shape {list(want.shape)}, you returned shape {list(tensor.shape)}."
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        return "your answer contains NaN or inf."
    wrong = ((tensor - want).abs() > atol) if want.is_floating_point() else (tensor != want)
    index = tuple(wrong.nonzero()[0].tolist())
    return (f"{int(wrong.sum())} of {want.numel()} entries differ; the first is at {list(index)}: expected "
            f"{want[index].item():.6g}, you returned {tensor[index].item():.6g}.")


def _grade_tensors(
    exercise: str,
    fn: Callable[..., Any],
    cases: Sequence[tuple[tuple, Any, str]],
    mistakes: Sequence[_Mistake] = (),
    *,
    what: str = "numbers",
    atol: float = 1e-9,
    nan_hint: str | None = None,
) -> CheckResult:
    """Like :func:`_grade` for tensor answers: floats within ``atol``, integers and booleans exactly."""
    import torch

    _require_callable(exercise, fn)
    for args, want, shown in cases:
        got = _answer(exercise, shown, fn, *(a.clone() if isinstance(a, torch.Tensor) else a for a in args))
        if isinstance(got, _Raised):
            return got.result
        if _same_tensor(got, want, atol):
            continue
        difference = _tensor_difference(got, want, what, atol)
        for mistake in mistakes:
            try:
                wrong = mistake.wrong(*args)
            except Exception:  # a mistake that cannot even be made for this case is not the one
                continue
            if _same_tensor(got, wrong, atol):
                return CheckResult(exercise, False, f"for {shown}: {difference} Hint: {mistake.hint}")
        if nan_hint and difference == "your answer contains NaN or inf.":
            return CheckResult(exercise, False, f"for {shown}: {difference} Hint: {nan_hint}")
        return CheckResult(exercise, False, f"for {shown}: {difference}")
    return CheckResult(exercise, True, f"all {len(cases)} cases pass.")


def _combine_cases() -> list[tuple[tuple, Any, str]]:
    import torch

    from reformer_lab.measure.attention_stats import combine_rounds

    generator = torch.Generator().manual_seed(2003)
    cases = []
    for n_hashes, length, d, offset in [(2, 3, 2, 0.0), (3, 5, 4, 0.0), (4, 6, 3, 2.0), (3, 4, 2, -1e5)]:
        outputs = torch.randn(n_hashes, length, d, generator=generator, dtype=torch.float64)
        lse = offset + 2 * torch.randn(n_hashes, length, generator=generator, dtype=torch.float64)
        shown = f"outputs [{n_hashes}, {length}, {d}] and lse [{n_hashes}, {length}]"
        if offset:
            shown += f" near {offset:g}"
        cases.append(((outputs, lse), combine_rounds(outputs, lse), shown))
    return cases


def check_combine_rounds(fn: Callable[[Any, Any], Any]) -> CheckResult:
    """Lesson 03, exercise 1: combine rounds, ``fn(outputs [n_hashes, L, d], lse [n_hashes, L])`` → ``[L, d]``.

    Paper eqs. 12–14: o_i = Σ_r exp(z_i^(r) − z_i) o_i^(r), with z_i = log Σ_r exp(z_i^(r)).
    """
    import torch

    mistakes = [
        _Mistake(lambda o, z: o.mean(0),
                 "the rounds are not equal: round r counts in proportion to exp(z^(r)), the total (unnormalised) "
                 "weight its keys carry (eq. 14)."),
        _Mistake(lambda o, z: (z.exp().unsqueeze(-1) * o).sum(0),
                 "the weights exp(z^(r)) must be normalised over the rounds: subtract z_i = logsumexp_r z^(r) "
                 "(divide by Σ_r exp(z^(r)))."),
        _Mistake(lambda o, z: (torch.softmax(z, dim=-1).unsqueeze(-1) * o).sum(0),
                 "you normalised over the positions (last dim of lse); normalise over the rounds (dim 0)."),
        _Mistake(lambda o, z: (torch.softmax(-z, dim=0).unsqueeze(-1) * o).sum(0),
                 "the sign is flipped: a round whose keys carry more weight (larger z^(r)) should count more."),
        _Mistake(lambda o, z: o.gather(0, z.argmax(0)[None, :, None].expand(1, *o.shape[1:]))[0],
                 "combine all rounds with their weights, not only the round with the largest z^(r)."),
    ]
    nan_hint = ("when every z^(r) is near −1e5 (a query that could see only itself), exp(z) underflows to 0 and "
                "you divide 0 by 0. Subtract the max over rounds first: torch.softmax(lse, dim=0) does it.")
    return _grade_tensors("Exercise 1 (combine_rounds)", fn, _combine_cases(), mistakes, atol=1e-9,
                          nan_hint=nan_hint)


def _window_counts(buckets: Any, chunk: int, *, same_bucket: bool = True, back: bool = True, ahead: bool = False,
                   wrap: bool = False, windowed: bool = True, add: bool = True) -> Any:
    """N_ij with one rule changed: the usual ways to get Appendix A's counts wrong."""
    import torch

    n_hashes, length = buckets.shape
    order = torch.argsort(buckets.long() * length + torch.arange(length), dim=-1)
    chunk_of = torch.argsort(order, dim=-1) // chunk
    counts = torch.zeros(length, length, dtype=torch.int64)
    for r in range(n_hashes):
        q, k = chunk_of[r, :, None], chunk_of[r, None, :]
        seen = k == q
        if back:
            seen = seen | (k == q - 1)
        if ahead:
            seen = seen | (k == q + 1)
        if not windowed:
            seen = torch.ones_like(seen)
        if wrap:
            seen |= (q == 0) & (k == length // chunk - 1)
        if same_bucket:
            seen &= buckets[r, :, None] == buckets[r, None, :]
        counts = counts + seen if add else counts | seen
    return counts


def _visit_cases() -> list[tuple[tuple, Any, str]]:
    import torch

    from reformer_lab.hashing import hash_vectors
    from reformer_lab.measure.attention_stats import visit_counts

    one_bucket = torch.zeros(1, 12, dtype=torch.int64)  # first: every rule of the window shows here
    cases = [((one_bucket, 3), visit_counts(one_bucket, 3), "12 positions all in bucket 0 and chunk_size=3")]
    generator = torch.Generator().manual_seed(2020)
    for length, n_buckets, n_hashes, chunk in [(16, 4, 2, 4), (24, 6, 3, 4), (18, 6, 2, 3)]:
        x = torch.randn(length, 6, generator=generator)
        buckets = hash_vectors(x, n_buckets, n_hashes, generator=generator)
        cases.append(((buckets, chunk), visit_counts(buckets, chunk),
                      f"buckets [{n_hashes}, {length}] from {n_buckets} buckets and chunk_size={chunk}"))
    crowded = torch.tensor([[0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1]])  # bucket 0 outgrows its window
    cases.append(((crowded, 2), visit_counts(crowded, 2), f"buckets {crowded.tolist()} and chunk_size=2"))
    return cases


def check_visit_counts(fn: Callable[[Any, int], Any]) -> CheckResult:
    """Lesson 03, exercise 2: Appendix A's N_ij, ``fn(buckets [n_hashes, L], chunk_size)`` → ``[L, L]`` counts.

    N_ij counts the rounds r in which key j is in query i's window: same bucket (eq. 4) and j's chunk is
    i's own or the previous one, after sorting round r by (bucket, position) (eq. 11, no wrap-around).
    """
    mistakes = [
        _Mistake(lambda b, c: _window_counts(b, c, same_bucket=False),
                 "only keys in the query's own bucket count (eq. 4): compare the buckets too."),
        _Mistake(lambda b, c: _window_counts(b, c, windowed=False),
                 "a same-bucket key counts only if its chunk is the query's own or the previous one (eq. 11): a "
                 "bucket can outgrow the window."),
        _Mistake(lambda b, c: _window_counts(b, c, wrap=True),
                 "a round's first chunk looks back at nothing (eq. 11): don't wrap around to the last chunk."),
        _Mistake(lambda b, c: _window_counts(b, c, ahead=True),
                 "a chunk looks back one chunk, not ahead."),
        _Mistake(lambda b, c: _window_counts(b, c, back=False),
                 "each chunk also sees the previous chunk of its round."),
        _Mistake(lambda b, c: _window_counts(b, c, add=False),
                 "N_ij counts rounds: add up the rounds' windows instead of OR-ing them."),
    ]
    return _grade_tensors("Exercise 2 (visit_counts)", fn, _visit_cases(), mistakes, what="counts (whole numbers)")


def _slot_mask(sort_indices: Any, chunk: int, *, compare: str = "positions", wrap: bool = False) -> Any:
    """The causal window mask with one rule changed (see :func:`check_causal_window_mask`)."""
    import torch

    positions = sort_indices if compare != "slots" else torch.arange(len(sort_indices))
    q = positions.view(-1, chunk)
    k = torch.cat([q.roll(1, dims=0), q], dim=1)
    if compare == "after-or-self":
        mask = k[:, None, :] >= q[:, :, None]
    elif compare == "before":
        mask = k[:, None, :] < q[:, :, None]
    else:
        mask = k[:, None, :] > q[:, :, None]
    if not wrap:
        mask[0, :, :chunk] = True
    return mask


def _mask_cases() -> list[tuple[tuple, Any, str]]:
    import torch

    from reformer_lab.attention import sort_by_bucket
    from reformer_lab.hashing import hash_vectors
    from reformer_lab.measure.attention_stats import causal_window_mask

    generator = torch.Generator().manual_seed(1)
    cases = []
    for length, n_buckets, chunk in [(12, 4, 3), (16, 4, 4), (8, 4, 2)]:
        buckets = hash_vectors(torch.randn(length, 4, generator=generator), n_buckets, 1, generator=generator)
        sort_indices = sort_by_bucket(buckets)[0][0]
        cases.append(((sort_indices, chunk), causal_window_mask(sort_indices, chunk),
                      f"sort_indices {sort_indices.tolist()} and chunk_size={chunk}"))
    return cases


def check_causal_window_mask(fn: Callable[[Any, int], Any]) -> CheckResult:
    """Lesson 03, exercise 3: which window keys a causal query may not see, ``fn(sort_indices [L], chunk_size)``.

    Returns bool ``[n_chunks, chunk_size, 2·chunk_size]`` (keys: the previous chunk, then the query's own),
    True where the key's original position is after the query's, or where chunk 0's missing previous
    chunk would be.
    """
    mistakes = [
        _Mistake(lambda s, c: _slot_mask(s, c, compare="slots"),
                 "compare original positions (sort_indices), not sorted slots: after the sort, a later slot can "
                 "hold an earlier position (§2: the positions travel with the sort)."),
        _Mistake(lambda s, c: _slot_mask(s, c, compare="after-or-self"),
                 "don't mask the query's own position: self gets the finite 1e5 penalty instead, so a token with "
                 "nothing else to see (position 0) can still attend to itself."),
        _Mistake(lambda s, c: _slot_mask(s, c, wrap=True),
                 "chunk 0 has no previous chunk (eq. 11): mask its whole look-back half instead of wrapping "
                 "around to the last chunk."),
        _Mistake(lambda s, c: _slot_mask(s, c, compare="before"),
                 "mask keys at *later* positions than the query, not earlier ones."),
    ]
    return _grade_tensors("Exercise 3 (causal_window_mask)", fn, _mask_cases(), mistakes, what="booleans")


# Lesson 02, bucketing, sorting, chunking -----------------------------------------------------------

__all__ += ["check_sort_by_bucket", "check_window_mask", "check_dropped_fraction"]


def _l02_show(value: Any) -> str:
    """A short rendering of one argument for a hint: 1-D tensors as lists."""
    if hasattr(value, "tolist") and getattr(value, "dim", lambda: 0)() == 1 and len(value) <= 64:
        return str(value.tolist())
    return repr(value)


def _l02_as_tensor(got: Any, like: Any) -> Any:
    """The reader's answer as a tensor of ``like``'s dtype, or None if it cannot be one exactly."""
    import torch

    try:
        tensor = torch.as_tensor(got)
    except (TypeError, ValueError, RuntimeError):
        return None
    if tensor.is_complex() or (tensor.is_floating_point() and not torch.equal(tensor, tensor.round())):
        return None
    if like.dtype == torch.bool:
        return tensor != 0 if bool(((tensor == 0) | (tensor == 1)).all()) else None
    return None if tensor.dtype == torch.bool else tensor.to(like.dtype)


def _l02_describe(got: Any) -> str:
    dtype = getattr(got, "dtype", None)
    return f"a {type(got).__name__} of {dtype}" if dtype is not None else f"{type(got).__name__} {got!r:.40}"


def _l02_matches(mistake: _Mistake, args: tuple, tensor: Any) -> bool:
    """Whether the reader's ``tensor`` is exactly the answer ``mistake`` would give."""
    try:
        wrong = mistake.wrong(*args)
    except Exception:  # a mistake that cannot even be made for this case is not the one
        return False
    return wrong.shape == tensor.shape and bool((wrong == tensor).all())


def _l02_grade_tensor(
    exercise: str,
    fn: Callable[..., Any],
    cases: Sequence[tuple[tuple, Any]],
    mistakes: Sequence[_Mistake] = (),
    diagnose: Callable[..., str | None] | None = None,
) -> CheckResult:
    """Like :func:`_grade` for answers that must equal a tensor exactly (permutations, masks).

    ``mistakes`` are recognised by exact equality with their wrong answer; ``diagnose(*args, got)``
    may then name what is wrong from the answer itself (e.g. "ties are not broken by position").
    """
    _require_callable(exercise, fn)
    for args, want in cases:
        shown = ", ".join(_l02_show(a) for a in args)
        got = _answer(exercise, f"({shown})", fn, *[a.clone() if hasattr(a, "clone") else a for a in args])
        if isinstance(got, _Raised):
            return got.result
        tensor = _l02_as_tensor(got, want)
        if tensor is None:
            kind = "a bool mask" if str(want.dtype) == "torch.bool" else "a tensor of integer indices"
            return CheckResult(exercise, False, f"for ({shown}) return {kind}, you returned {_l02_describe(got)}.")
        if tensor.shape != want.shape:
            return CheckResult(
                exercise, False, f"for ({shown}) expected shape {list(want.shape)}, got {list(tensor.shape)}."
            )
        if bool((tensor == want).all()):
            continue
        hint = next((m.hint for m in mistakes if _l02_matches(m, args, tensor)), None)
        if hint is None and diagnose is not None:
            hint = diagnose(*args, tensor)
        where = (tensor != want).nonzero()[0].tolist()
        message = f"for ({shown}) your answer differs at index {where} (expected {want[tuple(where)].item()})."
        return CheckResult(exercise, False, message + (f" Hint: {hint}" if hint else ""))
    return CheckResult(exercise, True, f"all {len(cases)} cases pass.")


def _l02_buckets(length: int, n_buckets: int, seed: int) -> Any:
    import torch

    return torch.randint(0, n_buckets, (length,), generator=torch.Generator().manual_seed(seed))


def _l02_sort(buckets: Any) -> Any:
    import torch

    return torch.argsort(buckets * len(buckets) + torch.arange(len(buckets)))


def _l02_slots(sort_indices: Any) -> Any:
    import torch

    return torch.empty_like(sort_indices).scatter_(0, sort_indices, torch.arange(len(sort_indices)))


def _l02_sort_diagnosis(buckets: Any, got: Any) -> str | None:
    import torch

    length = len(buckets)
    if torch.equal(got, torch.sort(buckets).values):
        return "you returned the sorted bucket ids; return the positions, in sorted order (argsort, not sort)."
    if not torch.equal(torch.sort(got).values, torch.arange(length)):
        return f"the answer must be a permutation of the positions 0 … {length - 1}, each exactly once."
    if torch.equal(got, _l02_slots(_l02_sort(buckets))):
        return "that is the inverse permutation (the sorted slot of each position); return the position at each slot."
    if torch.equal(got, torch.argsort(buckets + torch.arange(length))):
        return "with the key bucket + position, positions outweigh buckets: use bucket·L + position."
    if not bool((buckets[got].diff() >= 0).all()):
        return "the buckets at your sorted slots are not in increasing order: sort by bucket first."
    return "you sorted by bucket only: ties must be broken by position (key bucket·L + position, or a stable sort)."


def check_sort_by_bucket(fn: Callable[[Any], Any]) -> CheckResult:
    """Lesson 02, exercise 1: ``fn(buckets)`` → the original positions sorted by (bucket, position) (Figure 2c)."""
    import torch

    inputs = [
        torch.tensor([2, 0, 2, 1, 0, 2, 1, 0]),
        torch.tensor([3, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1, 1]),
        _l02_buckets(16, 4, 0),
        _l02_buckets(32, 8, 1),
        torch.tensor([5]),
    ]
    cases = [((b,), _l02_sort(b)) for b in inputs]
    return _l02_grade_tensor("Exercise 1 (sort_by_bucket)", fn, cases, diagnose=_l02_sort_diagnosis)


def _l02_window(
    sort_indices: Any,
    chunk_size: int,
    *,
    by_position: bool = False,
    back: int = 1,
    ahead: int = 0,
    wrap: bool = False,
    use_sort: bool = False,
) -> Any:
    """Eq. 5's window and its usual mistakes, as an ``[L, L]`` mask over (query, key) positions."""
    import torch

    length = len(sort_indices)
    if by_position:
        slots = torch.arange(length)
    else:
        slots = sort_indices if use_sort else _l02_slots(sort_indices)
    chunks = slots // chunk_size
    n_chunks = length // chunk_size
    q, k = chunks[:, None], chunks[None, :]
    mask = (k <= q + ahead) & (k >= q - back)
    if wrap and n_chunks > 1:
        mask |= (q == 0) & (k == n_chunks - 1)
    return mask


def check_window_mask(fn: Callable[[Any, int], Any]) -> CheckResult:
    """Lesson 02, exercise 2: ``fn(sort_indices, chunk_size)`` → eq. 5's window P̃ as an ``[L, L]`` bool mask.

    ``mask[i, j]`` is True when key position j sits in query position i's own chunk or the previous one
    of the sorted order.
    """
    import torch

    orders = [
        (_l02_sort(_l02_buckets(16, 4, 2)), 4),
        (_l02_sort(_l02_buckets(12, 4, 3)), 3),
        (_l02_sort(_l02_buckets(24, 8, 4)), 6),
        (torch.tensor([3, 0, 1, 2]), 4),
        (torch.tensor([5, 2, 4, 0, 3, 1]), 2),
    ]
    cases = [((order, m), _l02_window(order, m)) for order, m in orders]
    mistakes = [
        _Mistake(lambda s, m: _l02_window(s, m, wrap=True), "the first chunk of a round has no previous chunk."),
        _Mistake(lambda s, m: _l02_window(s, m, back=0), "each chunk also attends to the previous chunk (eq. 5)."),
        _Mistake(
            lambda s, m: _l02_window(s, m, ahead=1),
            "a chunk looks back one chunk, never forward: keys in the next chunk are outside the window.",
        ),
        _Mistake(
            lambda s, m: _l02_window(s, m, ahead=1, back=0),
            "rows are queries and columns keys: query i looks back, so the mask is transposed.",
        ),
        _Mistake(
            lambda s, m: _l02_window(s, m, by_position=True),
            "chunks are cut in the sorted order: the chunk of position i is ⌊s_i/m⌋, s_i its sorted slot "
            "(not ⌊i/m⌋), and the mask is indexed by positions (row = query position i), not by slots.",
        ),
        _Mistake(
            lambda s, m: _l02_window(s, m, use_sort=True),
            "sort_indices[s] is the position at slot s; you need the slot of each position (its inverse).",
        ),
    ]
    return _l02_grade_tensor("Exercise 2 (window_mask)", fn, cases, mistakes)


def _l02_dropped(
    buckets: Any,
    n_buckets: int,
    *,
    chunk: int | None = None,
    causal: bool = True,
    with_self: bool = False,
    own_only: bool = False,
    kept: bool = False,
    count: bool = False,
) -> float:
    """Share of causal same-bucket pairs outside the window, and the usual ways to get it wrong."""
    import torch

    length = len(buckets)
    chunk = chunk or 2 * length // n_buckets
    positions = torch.arange(length)
    if causal:
        pairs = positions[None, :] <= positions[:, None] if with_self else positions[None, :] < positions[:, None]
    else:
        pairs = positions[None, :] != positions[:, None]
    same = (buckets[:, None] == buckets[None, :]) & pairs
    lost = same & ~_l02_window(_l02_sort(buckets), chunk, back=0 if own_only else 1)
    total = int(same.sum())
    if count:
        return float(lost.sum())
    share = 0.0 if total == 0 else int(lost.sum()) / total
    return 1.0 - share if kept else share


def check_dropped_fraction(fn: Callable[[Any, int], float]) -> CheckResult:
    """Lesson 02, exercise 3: ``fn(buckets, n_buckets)`` → share of causal same-bucket pairs (j < i) lost.

    A pair is lost when the key is outside the query's window (own or previous chunk of the sorted order,
    chunk size m = 2·L/n_buckets).
    """
    import torch

    inputs = [
        (torch.tensor([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3]), 8),
        (torch.tensor([1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1]), 6),
        (torch.tensor([5, 5, 5, 5, 5, 5, 5, 5, 0, 1, 2, 3, 4, 6, 7, 5]), 8),
        (_l02_buckets(64, 2, 5) * 7, 16),  # two big buckets, ids 0 and 7
        (torch.tensor([0, 1, 2, 3]), 4),
    ]
    cases = [((b, n), _l02_dropped(b, n)) for b, n in inputs]
    mistakes = [
        _Mistake(
            lambda b, n: _l02_dropped(b, n, chunk=len(b) // n),
            "chunk size must be 2·L/n_buckets: each chunk holds twice the mean bucket size.",
        ),
        _Mistake(
            lambda b, n: _l02_dropped(b, n, with_self=True),
            "count pairs of distinct positions (j < i): i itself is always in its own chunk.",
        ),
        _Mistake(
            lambda b, n: _l02_dropped(b, n, causal=False),
            "causal attention: only keys before the query (j < i) belong to P_i.",
        ),
        _Mistake(
            lambda b, n: _l02_dropped(b, n, own_only=True),
            "a query also sees the previous chunk: only keys two or more chunks back are lost.",
        ),
        _Mistake(lambda b, n: _l02_dropped(b, n, kept=True), "that is the share kept; return the share lost."),
        _Mistake(
            lambda b, n: _l02_dropped(b, n, count=True),
            "return a fraction of all same-bucket pairs, not a count.",
        ),
    ]
    return _grade("Exercise 3 (dropped_fraction)", fn, cases, mistakes, rel=1e-6)


# Lesson 05, chunked feed-forward and Table 3 --------------------------------------------------------

__all__ += ["check_chunked_ff", "check_ff_chunk_bytes", "check_reformer_memory"]


class _l05_Recorder:
    """A position-wise function (y = tanh(x·w) per position) that records how many positions each call saw."""

    def __init__(self, width: int, seed: int) -> None:
        import torch

        self.w = torch.randn(width, 2 * width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.seen: list[int] = []

    def __call__(self, x: Any) -> Any:
        self.seen.append(int(x.shape[-2]))
        return (x @ self.w).tanh()


def _l05_ff_cases() -> list[tuple[int, int, int, int]]:
    """(batch, length, width, n_chunks) for the chunked feed-forward check."""
    return [(1, 8, 3, 2), (2, 12, 4, 3), (2, 12, 4, 12), (1, 10, 2, 1), (3, 16, 5, 4)]


def check_chunked_ff(fn: Callable[[Callable[[Any], Any], Any, int], Any]) -> CheckResult:
    """Lesson 05, exercise 1: ``fn(ff, x, n_chunks)`` applies a position-wise ``ff`` to ``x`` of shape
    ``[batch, L, d]`` in ``n_chunks`` slices along the sequence (paper eq. 10) and concatenates them.

    Checked: the output equals ``ff(x)`` (float64, atol 1e-12), and ``ff`` never saw more than
    L/n_chunks positions at once (so the d_ff-wide activation is never whole).
    """
    import torch

    exercise = "Exercise 1 (chunked_ff)"
    _require_callable(exercise, fn)
    for batch, length, width, n_chunks in _l05_ff_cases():
        x = torch.randn(batch, length, width, generator=torch.Generator().manual_seed(length), dtype=torch.float64)
        ff = _l05_Recorder(width, seed=width)
        want = (x @ ff.w).tanh()
        shown = f"(x of shape {list(x.shape)}, n_chunks={n_chunks})"
        got = _answer(exercise, shown, fn, ff, x.clone(), n_chunks)
        if isinstance(got, _Raised):
            return got.result
        message = _l05_ff_problem(got, want, ff.seen, length, n_chunks)
        if message:
            return CheckResult(exercise, False, f"for {shown}: {message}")
    return CheckResult(exercise, True, f"all {len(_l05_ff_cases())} cases pass.")


def _l05_ff_problem(got: Any, want: Any, seen: list[int], length: int, n_chunks: int) -> str | None:
    """What is wrong with a chunked feed-forward's answer, in words, or None."""
    import torch

    if not isinstance(got, torch.Tensor):
        return f"return a tensor, you returned {type(got).__name__}."
    if got.shape != want.shape:
        hint = " Hint: concatenate the chunks along the sequence (dim -2)." if got.shape[-2:] != want.shape[-2:] else ""
        return f"expected shape {list(want.shape)}, you returned {list(got.shape)}.{hint}"
    if not seen:
        return "your function never called ff."
    size = length // n_chunks
    if max(seen) > size:
        return (f"ff saw {max(seen)} positions in one call; eq. 10 runs it on L/n_chunks = {size} at a time. "
                "Hint: split x along the sequence (dim -2), not the batch or the features.")
    if sum(seen) != length:
        return f"ff saw {sum(seen)} positions in all, the sequence has {length}: every position exactly once."
    if not torch.allclose(got.to(want.dtype), want, rtol=0.0, atol=1e-12):
        return ("the values differ from ff(x) (atol 1e-12). Hint: keep the chunks in order when you "
                "concatenate them (torch.cat along dim -2).")
    return None


def _l05_ff_bytes(batch: int, length: int, d_ff: int, n_chunks: int) -> float:
    return 4.0 * batch * (length // n_chunks) * d_ff


def check_ff_chunk_bytes(fn: Callable[[int, int, int, int], float]) -> CheckResult:
    """Lesson 05, exercise 2: ``fn(batch, length, d_ff, n_chunks)`` → bytes (float32) of the d_ff-wide
    feed-forward activation alive at once when the feed-forward runs ``n_chunks`` chunks (eq. 10)."""
    cases = [((1, 256, 1024, 1), 1048576.0), ((1, 256, 1024, 8), 131072.0), ((8, 4096, 4096, 64), 8388608.0),
             ((2, 65536, 4096, 16), 134217728.0)]
    mistakes = [
        _Mistake(lambda b, n, f, c: 4.0 * b * n * f, "with n_chunks chunks only L/n_chunks positions are alive."),
        _Mistake(lambda b, n, f, c: 1.0 * b * (n // c) * f, "that is a count of floats; each takes 4 bytes."),
        _Mistake(lambda b, n, f, c: 4.0 * (n // c) * f, "each sequence of the batch has its own activations: × batch."),
        _Mistake(lambda b, n, f, c: 4.0 * b * (n // c) * f / c, "divide by n_chunks once: a chunk holds L/n_chunks "
                 "positions, each d_ff wide."),
    ]
    return _grade("Exercise 2 (ff_chunk_bytes)", fn, cases, mistakes)


def _l05_reformer(b: int, l_: int, d_model: int, d_ff: int, n_h: int, n_l: int, n_r: int, c: int) -> float:
    return float(max(b * l_ * d_model, b * n_h * l_ * n_r * c))


def check_reformer_memory(fn: Callable[..., float]) -> CheckResult:
    """Lesson 05, exercise 3: ``fn(batch, length, d_model, d_ff, n_heads, n_layers, n_hashes, c)`` → Table 3's
    memory entry for the Reformer row, in elements: max(b·l·d_model, b·n_h·l·n_r·c)."""
    sizes = [(1, 65536, 1024, 4096, 4, 16, 8, 16384), (8, 1024, 4096, 16384, 1, 12, 1, 16),
             (2, 256, 32, 1024, 2, 4, 1, 64), (4, 512, 512, 2048, 2, 3, 2, 4)]
    cases = [(args, _l05_reformer(*args)) for args in sizes]
    mistakes = [
        _Mistake(lambda b, l_, dm, df, h, n, r, c: _l05_reformer(b, l_, dm, df, h, n, r, c) * n,
                 "the Reformer is reversible: activations are stored once, not once per layer (no n_l)."),
        _Mistake(lambda b, l_, dm, df, h, n, r, c: float(max(b * l_ * df, b * h * l_ * r * c)),
                 "the Reformer chunks its feed-forward, so b·l·d_ff becomes b·l·d_model."),
        _Mistake(lambda b, l_, dm, df, h, n, r, c: float(max(b * l_ * dm, b * h * l_ * l_)),
                 "LSH attention replaces b·n_h·l² by b·n_h·l·n_r·c."),
        _Mistake(lambda b, l_, dm, df, h, n, r, c: float(b * l_ * dm + b * h * l_ * r * c),
                 "Table 3 takes the larger of the two terms (max), not their sum."),
        _Mistake(lambda b, l_, dm, df, h, n, r, c: float(max(b * l_ * dm, b * h * l_ * c)),
                 "each of the n_r hash rounds forms its own logits: × n_hashes."),
        _Mistake(lambda b, l_, dm, df, h, n, r, c: float(max(b * l_ * dm, b * l_ * r * c)),
                 "every head attends on its own: × n_heads."),
    ]
    return _grade("Exercise 3 (reformer_memory)", fn, cases, mistakes)


# Lesson 04, reversible layers ----------------------------------------------------------------------

__all__ += ["check_invert_block", "check_reversible_saved_bytes"]


def _l04_branches(seed: int) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Two different, non-invertible branch functions F and G of width 6 (RevNet: F, G need not be invertible)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    wf, wg = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, 6, generator=g, dtype=torch.float64)
    return (lambda x: torch.tanh(x @ wf)), (lambda x: torch.relu(x @ wg) - 0.5)


def _l04_invert(f: Callable, g: Callable, y1: Any, y2: Any) -> tuple[Any, Any]:
    x2 = y2 - g(y1)
    return y1 - f(x2), x2


def _l04_invert_cases() -> list[tuple[tuple, tuple[Any, Any]]]:
    import torch

    cases = []
    for seed, shape in ((0, (4, 6)), (1, (2, 5, 6)), (2, (1, 6))):
        f, g = _l04_branches(seed)
        data = torch.Generator().manual_seed(100 + seed)
        x1, x2 = (torch.randn(shape, generator=data, dtype=torch.float64) for _ in range(2))
        y1 = x1 + f(x2)
        y2 = x2 + g(y1)
        cases.append(((f, g, y1, y2), (x1, x2)))
    return cases


def _l04_pair_close(got: Any, want: tuple[Any, Any], atol: float = 1e-10) -> bool:
    import torch

    try:
        a, b = got
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    return all(t.shape == w.shape and bool(((t - w).abs() <= atol).all()) for t, w in zip((a, b), want, strict=True))


def check_invert_block(fn: Callable[[Any, Any, Any, Any], Any]) -> CheckResult:
    """Lesson 04, exercise 1: ``fn(f, g, y1, y2)`` → ``(x1, x2)``, a block's inputs from its outputs (paper eq. 8).

    The block computed y1 = x1 + f(x2), y2 = x2 + g(y1) (eq. 7); answers must match to 1e-10 (float64).
    """
    exercise = "Exercise 1 (invert_block)"
    _require_callable(exercise, fn)
    mistakes = [
        (lambda f, g, y1, y2: (_l04_invert(f, g, y1, y2)[1], _l04_invert(f, g, y1, y2)[0]),
         "return (x1, x2) in that order."),
        (lambda f, g, y1, y2: (y1 - f(y2), y2 - g(y1)),
         "F was applied to x2, not y2: recover x2 = y2 − g(y1) first, then x1 = y1 − f(x2)."),
        (lambda f, g, y1, y2: (y1 - g(y2 - f(y1)), y2 - f(y1)),
         "y2 had g (the feed-forward) added, y1 had f: undo g on y2 first, then f on y1."),
        (lambda f, g, y1, y2: (y1 + f(y2 + g(y1)), y2 + g(y1)),
         "the forward pass added f and g; the inverse subtracts them."),
    ]
    for args, want in _l04_invert_cases():
        shown = f"y1 of shape {list(args[2].shape)}"
        got = _answer(exercise, shown, fn, *args)
        if isinstance(got, _Raised):
            return got.result
        if _l04_pair_close(got, want):
            continue
        for wrong, hint in mistakes:
            if _l04_pair_close(got, wrong(*args)):
                return CheckResult(exercise, False, f"with {shown} your (x1, x2) is off. Hint: {hint}")
        return CheckResult(exercise, False, f"with {shown} your (x1, x2) does not reproduce the block's inputs "
                                            "(return two tensors; tolerance 1e-10).")
    return CheckResult(exercise, True, f"all {len(_l04_invert_cases())} cases pass.")


def _l04_saved(n: int, b: int, l_: int, d: int, h: int, r: int, *, outputs: int = 2, layers_out: bool = False,
               seed_bytes: int = 16, bucket_bytes: int = 1) -> float:
    stored_outputs = outputs * b * l_ * d * 4 * (n if layers_out else 1)
    return float(stored_outputs + seed_bytes * n + bucket_bytes * n * b * h * r * l_)


def check_reversible_saved_bytes(fn: Callable[..., float]) -> CheckResult:
    """Lesson 04, exercise 2: ``fn(n_layers, batch, length, d_model, n_heads, n_hashes)`` → the bytes a reversible
    LSH stack keeps for the backward pass (float32, at most 256 buckets): the last block's two outputs, two int64
    seeds per block, and every block's buckets as uint8: 2·b·l·d_model·4 + 16·n_l + n_l·b·n_h·n_r·l."""
    sizes = [(1, 1, 64, 32, 2, 2), (12, 1, 4096, 256, 4, 2), (4, 2, 128, 64, 2, 1), (24, 8, 1024, 512, 8, 4)]
    cases = [(args, _l04_saved(*args)) for args in sizes]
    mistakes = [
        _Mistake(lambda *a: _l04_saved(*a, layers_out=True),
                 "a reversible stack keeps only the *last* block's outputs; earlier ones are recomputed (eq. 8)."),
        _Mistake(lambda *a: _l04_saved(*a, outputs=1),
                 "both halves are kept: Y₁ and Y₂, each b·l·d_model floats."),
        _Mistake(lambda *a: _l04_saved(*a, bucket_bytes=0),
                 "the backward pass must reuse every layer's LSH buckets: n_l·b·n_h·n_r·l of them, one byte each."),
        _Mistake(lambda *a: _l04_saved(*a, seed_bytes=0),
                 "each block keeps its two dropout seeds (F and G), int64: 16 bytes per block."),
        _Mistake(lambda *a: _l04_saved(*a, bucket_bytes=8),
                 "the buckets are stored compactly as uint8 (at most 256 buckets), not int64."),
        _Mistake(lambda *a: _l04_saved(*a, seed_bytes=8),
                 "two seeds per block, one for F and one for G: 2 × 8 bytes."),
    ]
    return _grade("Exercise 2 (reversible_saved_bytes)", fn, cases, mistakes)


# Lesson 06, the whole Reformer ---------------------------------------------------------------------

__all__ += ["MEMORY_TERMS", "check_block_parameters", "check_memory_switch"]


def _l06_block_parameters(d_model: int, d_ff: int) -> float:
    """One reversible block of ReformerLM: F = LayerNorm (2d) → shared-QK attention (to_qk, to_v without bias,
    to_out with bias: 3d² + d); G = LayerNorm (2d) → Linear d→d_ff → Linear d_ff→d (2·d·d_ff + d_ff + d)."""
    return float(3 * d_model**2 + 2 * d_model * d_ff + d_ff + 6 * d_model)


def check_block_parameters(fn: Callable[[int, int], float]) -> CheckResult:
    """Lesson 06, exercise 1: ``fn(d_model, d_ff)`` → the number of parameters of one reversible block of
    :class:`~reformer_lab.model.ReformerLM` (the count ``n_heads``, ``n_hashes`` and ``chunk_size`` do not change)."""
    ref = _l06_block_parameters
    cases = [((d, f), ref(d, f)) for d, f in [(16, 24), (64, 128), (256, 256), (1024, 4096), (8, 1)]]
    mistakes = [
        _Mistake(lambda d, f: ref(d, f) + d * d, "shared-QK: one linear layer makes both queries and keys (3 d×d "
                 "matrices, not 4)."),
        _Mistake(lambda d, f: ref(d, f) - 4 * d, "each branch starts with a LayerNorm: 2·d_model parameters (scale "
                 "and shift) in F and in G."),
        _Mistake(lambda d, f: ref(d, f) - f - 2 * d, "count the biases: w_in has d_ff, w_out and to_out d_model each "
                 "(to_qk and to_v have none)."),
        _Mistake(lambda d, f: ref(d, f) - d * f, "the feed-forward has two d_model×d_ff matrices, in and out."),
        _Mistake(lambda d, f: 2 * ref(d, f), "reversibility adds no parameters: X₁ and X₂ go through the same F and "
                 "G once each."),
        _Mistake(lambda d, f: ref(d, f) - 3 * d**2 - 3 * d, "the block holds the attention (F) as well as the "
                 "feed-forward (G)."),
    ]
    return _grade("Exercise 1 (block_parameters)", fn, cases, mistakes)


#: Memory terms of a Transformer (paper §1 and Table 3) and the ReformerConfig switch that removes each.
_L06_SWITCHES = {
    "n_layers copies of the activations, n_l·b·l·d_model": "reversible",
    "the feed-forward's wide activation, b·l·d_ff": "ff_chunks",
    "the attention matrix, b·n_heads·l²": "attention",
    "the output logits, b·l·vocab_size": "loss_chunks",
}
_L06_SWITCH_HINTS = {
    ("the attention matrix, b·n_heads·l²", "chunk_size"): "chunk_size sets the chunk length, but only once "
    'attention="lsh" replaces the l×l matrix by chunks.',
    ("the attention matrix, b·n_heads·l²", "n_hashes"): "n_hashes adds rounds (memory grows with it); the switch "
    'is attention="lsh".',
    ("the attention matrix, b·n_heads·l²", "shared_qk"): "shared-QK alone still forms all l² logits; LSH needs it, "
    'but the switch that removes l² is attention="lsh".',
    ("n_layers copies of the activations, n_l·b·l·d_model", "n_layers"): "fewer layers is a smaller model; the "
    "switch that stores one layer's activations whatever n_layers is, is reversible.",
    ("the feed-forward's wide activation, b·l·d_ff", "d_ff"): "a smaller d_ff is a smaller model; the switch that "
    "computes the feed-forward a piece at a time is ff_chunks.",
    ("the output logits, b·l·vocab_size", "ff_chunks"): "ff_chunks chunks the blocks' feed-forward; the output "
    "layer has its own count, loss_chunks.",
    ("the feed-forward's wide activation, b·l·d_ff", "loss_chunks"): "loss_chunks chunks the output logits; the "
    "blocks' feed-forward has its own count, ff_chunks.",
}


def check_memory_switch(fn: Callable[[str], str]) -> CheckResult:
    """Lesson 06, exercise 2: ``fn(term)`` → the name of the :class:`~reformer_lab.model.ReformerConfig` field
    that removes that memory term (the terms are the keys of ``exercises.MEMORY_TERMS``)."""
    from dataclasses import fields

    from reformer_lab.model import ReformerConfig

    exercise = "Exercise 2 (memory_switch)"
    _require_callable(exercise, fn)
    names = {f.name for f in fields(ReformerConfig)}
    for term, want in _L06_SWITCHES.items():
        got = _answer(exercise, f"{term!r}", fn, term)
        if isinstance(got, _Raised):
            return got.result
        if got == want:
            continue
        if not isinstance(got, str) or got not in names:
            return CheckResult(exercise, False, f"for {term!r} you returned {got!r}, which is not a ReformerConfig "
                               f"field; return one of its names as a string, e.g. 'n_hashes'.")
        hint = _L06_SWITCH_HINTS.get((term, got), "which switch's docstring in reformer_lab/model.py names this "
                                     "approximation?")
        return CheckResult(exercise, False, f"for {term!r} you returned {got!r}. Hint: {hint}")
    return CheckResult(exercise, True, f"all {len(_L06_SWITCHES)} terms pass.")


#: The memory terms :func:`check_memory_switch` asks about (lesson 06, exercise 2).
MEMORY_TERMS = tuple(_L06_SWITCHES)


# Lesson 07, the duplication task -------------------------------------------------------------------

__all__ += ["check_second_copy_mask", "check_needed_key", "check_masked_accuracy"]


def _l07_mask(w_len: int, start: int, stop: int) -> Any:
    import torch

    mask = torch.zeros(2 * (w_len + 1), dtype=torch.bool)
    mask[start:stop] = True
    return mask


def check_second_copy_mask(fn: Callable[[int], Any]) -> CheckResult:
    """Lesson 07, exercise 1: ``fn(w_len)`` → the ``[2·(w_len + 1)]`` bool mask of the positions whose target is
    a symbol of the second copy of w (what :meth:`~reformer_lab.data.DuplicationTask.loss_mask` returns)."""
    import torch

    exercise = "Exercise 1 (second_copy_mask)"
    _require_callable(exercise, fn)
    mistakes = [
        (lambda n: _l07_mask(n, n + 2, 2 * n + 2),
         "you marked where the second w *sits*; the mask marks the positions whose *target* (the next token) is in "
         "it, one to the left."),
        (lambda n: _l07_mask(n, n, 2 * n + 1),
         "the target of position |w| is the separator 0: it is fixed, not part of w, and the paper does not count it."),
        (lambda n: _l07_mask(n, n + 1, 2 * n + 2),
         "the last position has no next token (its target is padding); stop at 2·|w|."),
        (lambda n: _l07_mask(n, 0, n + 1),
         "that is the first half; only the second copy of w can be predicted."),
    ]
    for w_len in (1, 3, 7, 63):
        want = _l07_mask(w_len, w_len + 1, 2 * w_len + 1)
        got = _answer(exercise, f"w_len={w_len}", fn, w_len)
        if isinstance(got, _Raised):
            return got.result
        tensor = _as_answer_tensor(got, want)
        if tensor is None or tensor.shape != want.shape:
            shape = "?" if tensor is None else list(tensor.shape)
            return CheckResult(exercise, False, f"for w_len={w_len} return a bool tensor of shape {list(want.shape)} "
                                                f"(the whole sequence, 2·(|w| + 1)); got shape {shape}.")
        if torch.equal(tensor, want):
            continue
        for wrong, hint in mistakes:
            if torch.equal(tensor, wrong(w_len)):
                return CheckResult(exercise, False, f"for w_len={w_len}: {hint}")
        return CheckResult(exercise, False, f"for w_len={w_len} expected True at positions {w_len + 1}…{2 * w_len}, "
                                            f"you marked {tensor.nonzero().flatten().tolist()}.")
    return CheckResult(exercise, True, "all 4 cases pass.")


def check_needed_key(fn: Callable[[int, int], int]) -> CheckResult:
    """Lesson 07, exercise 2: ``fn(position, w_len)`` → the position whose token is ``targets[position]`` on the
    second copy of w (the key a one-layer model must attend to): ``position − w_len``."""
    pairs = [(64, 63), (100, 63), (126, 63), (4, 3), (6, 3), (600, 511), (1022, 511)]
    cases = [((i, n), float(i - n)) for i, n in pairs]
    mistakes = [
        _Mistake(lambda i, n: i - n - 1, "position − (|w| + 1) holds the *current* token's first copy; the model "
                 "must predict the next token, which sits one further on: position − |w|."),
        _Mistake(lambda i, n: n, "return the key's position, not the distance to it."),
        _Mistake(lambda i, n: i - n + 1, "one too close: the period of 0w0w is |w| + 1, and the target is "
                 "token position + 1."),
        _Mistake(lambda i, n: i + 1, "that is where the target sits in the second copy; the model cannot read "
                 "it (causal attention), it must find the same symbol in the first copy."),
    ]
    return _grade("Exercise 2 (needed_key)", fn, cases, mistakes)


def _l07_accuracy_cases() -> list[tuple[Any, Any, Any]]:
    import torch

    generator = torch.Generator().manual_seed(7)
    cases = []
    for batch, length, vocab in ((2, 8, 5), (3, 16, 7), (4, 10, 3)):
        logits = torch.randn(batch, length, vocab, generator=generator, dtype=torch.float64)
        targets = torch.randint(0, vocab, (batch, length), generator=generator)
        right = torch.rand(batch, length, generator=generator) < 0.5  # make about half the predictions right
        targets = torch.where(right, logits.argmax(-1), targets)
        mask = torch.rand(batch, length, generator=generator) < 0.5
        mask[0, :] = False
        mask[0, 1] = True  # rows with different counts: the per-row average differs from the pooled one
        cases.append((logits, targets, mask))
    return cases


def check_masked_accuracy(fn: Callable[[Any, Any, Any], float]) -> CheckResult:
    """Lesson 07, exercise 3: ``fn(logits [B, L, V], targets [B, L], mask [B, L] bool)`` → the fraction of masked
    positions whose argmax prediction equals the target, pooled over the batch (the paper's masked accuracy)."""

    def pooled(logits: Any, targets: Any, mask: Any) -> float:
        return float((logits.argmax(-1)[mask] == targets[mask]).double().mean())

    def per_row(logits: Any, targets: Any, mask: Any) -> float:
        hits = (logits.argmax(-1) == targets) & mask
        return float((hits.sum(1).double() / mask.sum(1).clamp(min=1)).mean())

    mistakes = [
        _Mistake(lambda lo, t, m: float((lo.argmax(-1) == t).double().mean()),
                 "you averaged over every position; only the masked ones (the second w) count."),
        _Mistake(per_row, "you averaged each sequence first and then the sequences; pool all masked positions "
                 "(a sequence with more of them weighs more)."),
        _Mistake(lambda lo, t, m: float((lo.argmax(-1)[~m] == t[~m]).double().mean()),
                 "you counted the positions where the mask is False; keep those where it is True."),
        _Mistake(lambda lo, t, m: float(((lo.argmax(-1) == t) & m).sum()),
                 "return a fraction (hits / masked positions), not the number of hits."),
    ]
    exercise = "Exercise 3 (masked_accuracy)"
    _require_callable(exercise, fn)
    cases = _l07_accuracy_cases()
    for logits, targets, mask in cases:
        shown = f"logits of shape {list(logits.shape)}, {int(mask.sum())} masked positions"
        want = pooled(logits, targets, mask)
        got = _answer(exercise, shown, fn, logits, targets, mask)
        if isinstance(got, _Raised):
            return got.result
        if _close(got, want, 1e-6):
            continue
        for mistake in mistakes:
            if _close(got, mistake.wrong(logits, targets, mask), 1e-6):
                return CheckResult(exercise, False, f"with {shown} you returned {float(got):.4f}. Hint: {mistake.hint}")
        try:
            shown_got = f"{float(got):.4f}"
        except (TypeError, ValueError, RuntimeError):
            shown_got = repr(got)[:60]
        return CheckResult(exercise, False, f"with {shown} expected {want:.4f}, you returned {shown_got}.")
    return CheckResult(exercise, True, f"all {len(cases)} cases pass.")
