"""The grader behind the lessons' exercises: one module per lesson (``l00`` … ``l10``) over what is here.

Each lesson's ``check_*`` function runs the reader's function on a handful of :class:`Case` objects, compares
the answers with the package's reference, and says what is wrong in words ("you counted one head; there are
n_heads"). A check never raises for a wrong answer: it returns a :class:`CheckResult` that prints as one line,
so a lesson keeps running. A notebook imports its lesson's checks as
``from reformer_lab.lessons.exercises import l01 as exercises``; the worked solutions live in
:mod:`reformer_lab.lessons.solutions`, one module per lesson as well.

The shared machinery, from the bottom up:

- :func:`run_cases` calls the reader's function on fresh copies of each case's arguments and turns a
  *verdict* (None, or what is wrong) into a :class:`CheckResult`; an untouched stub (raising
  ``NotImplementedError``) reads TODO, any other exception FAIL with its name.
- :func:`grade` is the verdict for answers that are numbers; :func:`grade_tensors` for answers that are
  tensors (one converter, :func:`as_answer_tensor`, and one comparison, :func:`same_tensor`: exact, or
  within ``atol`` for floating-point references).
- A :class:`Mistake` is a wrong answer we can recompute; when the reader's answer equals it,
  :func:`first_hint` returns the hint that goes with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from reformer_lab.validation import ArgumentTypeError, as_float

__all__ = [
    "Case",
    "CheckResult",
    "Mistake",
    "Verdict",
    "as_answer_tensor",
    "first_difference",
    "first_hint",
    "grade",
    "grade_tensors",
    "run_cases",
    "same_tensor",
    "show_args",
]


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
class Mistake:
    """A wrong answer we know how to recognise: ``wrong(*args)`` recomputes it, ``hint`` is what it earns."""

    wrong: Callable[..., Any]
    hint: str


@dataclass(frozen=True)
class Case:
    """One call of the reader's function: its arguments, the reference answer, and how a message names it.

    ``shown`` describes the arguments in a message ("x of shape [12, 4] and ..."); when it is None the
    arguments themselves are shown (:func:`show_args`).
    """

    args: tuple[Any, ...]
    want: Any
    shown: str | None = None

    @property
    def label(self) -> str:
        return show_args(self.args) if self.shown is None else self.shown


#: What a check says about one answer: None when it is right, else what is wrong, in words.
Verdict = Callable[[Case, Any], str | None]


def show_args(args: Sequence[Any]) -> str:
    """The arguments of a call as a message shows them: ``(…, …)``, short 1-D tensors as lists."""

    def show(value: Any) -> str:
        if isinstance(value, Tensor) and value.dim() == 1 and len(value) <= 64:
            return str(value.tolist())
        return repr(value)

    return "(" + ", ".join(show(a) for a in args) + ")"


def _require_callable(exercise: str, fn: Any) -> None:
    if not callable(fn):
        raise ArgumentTypeError(f"{exercise}: pass your function itself (no parentheses), got {type(fn).__name__}")


@dataclass(frozen=True)
class _Raised:
    """The reader's function raised instead of answering; ``result`` says so."""

    result: CheckResult


def _answer(exercise: str, shown: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """``fn(*args)`` on fresh copies of the tensors in ``args``, or a :class:`_Raised` when the reader's code raised.

    ``NotImplementedError`` is the untouched template: the check then reads TODO, not FAIL.
    """
    fresh = (a.clone() if isinstance(a, Tensor) else a for a in args)
    try:
        return fn(*fresh)
    except NotImplementedError:
        return _Raised(CheckResult(exercise, False, "not attempted yet: replace `raise NotImplementedError`.", False))
    except Exception as error:  # the reader's code may raise anything; report it, don't crash the lesson
        return _Raised(CheckResult(exercise, False, f"calling it with {shown} raised {type(error).__name__}: {error}"))


def run_cases(exercise: str, fn: Callable[..., Any], cases: Sequence[Case], verdict: Verdict) -> CheckResult:
    """Call ``fn`` on each case in turn; the first case ``verdict`` finds wrong fails the check.

    The reader's function gets clones of the tensor arguments, so changing them in place changes nothing
    for the check. Raises a ``TypeError`` when ``fn`` is not callable (the reader passed ``f()``, not ``f``).
    """
    _require_callable(exercise, fn)
    for case in cases:
        got = _answer(exercise, case.label, fn, case.args)
        if isinstance(got, _Raised):
            return got.result
        problem = verdict(case, got)
        if problem is not None:
            return CheckResult(exercise, False, f"for {case.label}: {problem}")
    return CheckResult(exercise, True, f"all {len(cases)} cases pass.")


def first_hint(mistakes: Sequence[Mistake], args: tuple[Any, ...], is_answer: Callable[[Any], bool]) -> str | None:
    """The hint of the first mistake whose wrong answer for ``args`` the reader gave (``is_answer``), or None."""
    for mistake in mistakes:
        try:
            if is_answer(mistake.wrong(*args)):
                return mistake.hint
        except Exception:  # a mistake that cannot even be made for this case is not the one
            continue
    return None


def _with_hint(text: str, hint: str | None) -> str:
    return text if hint is None else f"{text} Hint: {hint}"


# Numbers --------------------------------------------------------------------------------------------------------


def _close(got: Any, want: float, rel: float) -> bool:
    """Whether ``got`` is a number within relative tolerance ``rel`` of ``want`` (False when it is no number)."""
    try:
        return math.isclose(float(got), float(want), rel_tol=rel, abs_tol=0.0)
    except (TypeError, ValueError, RuntimeError):
        return False


def grade(
    exercise: str,
    fn: Callable[..., Any],
    cases: Sequence[Case],
    mistakes: Sequence[Mistake] = (),
    rel: float = 1e-9,
) -> CheckResult:
    """Grade a function that answers with a number: right within relative tolerance ``rel``."""
    rel = as_float("rel", rel, minimum=0.0)

    def verdict(case: Case, got: Any) -> str | None:
        if isinstance(got, str | bytes | bool) or got is None:
            return f"expected a number, you returned {got!r} ({type(got).__name__}): return the value itself."
        if _close(got, case.want, rel):
            return None
        hint = first_hint(mistakes, case.args, lambda wrong: _close(got, wrong, rel))
        if hint is not None:
            return _with_hint(f"you returned {got!r}.", hint)
        return f"expected {case.want!r}, you returned {got!r}."

    return run_cases(exercise, fn, cases, verdict)


# Tensors --------------------------------------------------------------------------------------------------------


def as_answer_tensor(value: Any, like: Tensor) -> Tensor | None:
    """The reader's answer as a tensor of ``like``'s dtype, or None when it cannot be one without losing anything.

    Anything ``torch.as_tensor`` takes (tensors, arrays, nested lists) will do. For a bool reference the values
    must be 0/1; for an integer reference whole numbers (a bool answer counts as 0/1); complex numbers never.
    """
    try:
        tensor = torch.as_tensor(value)
        if tensor.dtype == torch.float32 and not isinstance(value, Tensor):  # Python floats: read in full precision
            tensor = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return None
    if tensor.is_complex():
        return None
    if like.dtype == torch.bool:
        zero_one = tensor.dtype == torch.bool or bool(((tensor == 0) | (tensor == 1)).all())
        return tensor.bool() if zero_one else None
    if not like.is_floating_point() and tensor.is_floating_point() and not torch.equal(tensor, tensor.round()):
        return None
    return tensor.to(like.dtype)


def same_tensor(got: Any, want: Tensor, atol: float = 0.0) -> bool:
    """Whether the answer ``got`` is ``want``: the same shape, floats within ``atol``, other dtypes exactly."""
    tensor = as_answer_tensor(got, want)
    if tensor is None or tensor.shape != want.shape:
        return False
    if want.is_floating_point():
        return bool(torch.allclose(tensor, want, rtol=0.0, atol=atol))
    return bool(torch.equal(tensor, want))


def first_difference(got: Tensor, want: Tensor, atol: float = 0.0) -> tuple[int, tuple[int, ...]]:
    """How many entries of ``got`` differ from ``want`` (same shape), and the index of the first."""
    wrong = (got - want).abs() > atol if want.is_floating_point() else got != want
    return int(wrong.sum()), tuple(wrong.nonzero()[0].tolist())


def _show_value(value: Tensor) -> str:
    item = value.item()
    return f"{item:.6g}" if isinstance(item, float) else str(item)


def _describe_entries(atol: float) -> Callable[[Tensor, Tensor], str]:
    def describe(got: Tensor, want: Tensor) -> str:
        count, index = first_difference(got, want, atol)
        return (f"{count} of {want.numel()} entries differ; the first is at {list(index)}: expected "
                f"{_show_value(want[index])}, you returned {_show_value(got[index])}.")

    return describe


def _kind(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return f"a {type(value).__name__} of {dtype}" if dtype is not None else f"{type(value).__name__} {value!r:.60}"


def grade_tensors(
    exercise: str,
    fn: Callable[..., Any],
    cases: Sequence[Case],
    mistakes: Sequence[Mistake] = (),
    *,
    atol: float = 0.0,
    what: str = "numbers",
    layout: str | None = None,
    describe: Callable[[Tensor, Tensor], str] | None = None,
    diagnose: Callable[..., str | None] | None = None,
) -> CheckResult:
    """Grade a function that answers with a tensor (each ``case.want`` is one).

    Options:

    - ``atol``: 0 compares exactly; otherwise floating-point references accept answers within ``atol``
      (integer and bool references are always compared exactly).
    - ``what``: what the entries are, for an answer that is no such tensor ("expected a tensor of ``what``").
    - ``layout``: how the expected shape reads in words, e.g. ``"[n_hashes, L]"``, added to a shape message.
    - ``describe(got, want)``: how a difference in values reads (default: how many entries differ, and the first).
    - ``diagnose(*args, got)``: a hint read off the answer itself when it has the right shape but no
      :class:`Mistake` matches it (e.g. "ties are not broken by position"), or None.

    Mistakes are tried first, whatever the answer's shape: a transposed answer earns its hint.
    """
    atol = as_float("atol", atol, minimum=0.0)
    describe = describe or _describe_entries(atol)

    def verdict(case: Case, got: Any) -> str | None:
        want = case.want
        if same_tensor(got, want, atol):
            return None
        hint = first_hint(mistakes, case.args, lambda wrong: same_tensor(got, torch.as_tensor(wrong), atol))
        tensor = as_answer_tensor(got, want)
        if tensor is None:
            return _with_hint(f"expected a tensor of {what}, you returned {_kind(got)}.", hint)
        if tensor.shape != want.shape:
            shape = f"{list(want.shape)}" + (f" ({layout})" if layout else "")
            return _with_hint(f"expected shape {shape}, you returned shape {list(tensor.shape)}.", hint)
        if hint is None and diagnose is not None:
            hint = diagnose(*case.args, tensor)
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return _with_hint("your answer contains NaN or inf.", hint)
        return _with_hint(describe(tensor, want), hint)

    return run_cases(exercise, fn, cases, verdict)
