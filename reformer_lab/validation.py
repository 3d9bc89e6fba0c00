"""Argument checks shared by every layer of the package: one rule for each kind of value, one message format.

Every check returns the value in its plain Python type or raises an error whose message names the argument
and repeats the value it got, e.g. ``n_buckets must be an int >= 2, got 1``. A value of the wrong *type*
raises :class:`ArgumentTypeError`, which is both a ``TypeError`` and a ``ValueError``, so callers may catch
either. Integers are taken through :func:`operator.index` (Python and NumPy integers, 0-d integer tensors),
never from ``bool``, floats or strings.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterable
from typing import TypeVar

import numpy as np

__all__ = ["ArgumentTypeError", "as_bool", "as_float", "as_int", "one_of", "positive_float", "positive_int"]

T = TypeVar("T")


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a float where an int belongs, a string where a flag belongs)."""


def _bound(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def as_int(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` within ``[minimum, maximum]`` (either bound may be omitted)."""
    what = "an int" + _bound(minimum, maximum)
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be {what}, got the bool {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be {what}, got {number}")
    return number


def positive_int(name: str, value: object) -> int:
    """``value`` as an ``int`` >= 1."""
    return as_int(name, value, minimum=1)


def as_float(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """``value`` as a finite ``float`` within the bounds; ``exclusive_minimum`` makes the lower bound strict."""
    if exclusive_minimum and minimum is not None:
        what = f"a finite number > {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    else:
        what = "a finite number" + _bound(minimum, maximum)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    number = float(value)
    too_low = minimum is not None and (number <= minimum if exclusive_minimum else number < minimum)
    if not math.isfinite(number) or too_low or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def positive_float(name: str, value: object) -> float:
    """``value`` as a finite ``float`` > 0."""
    return as_float(name, value, minimum=0.0, exclusive_minimum=True)


def as_bool(name: str, value: object) -> bool:
    """``value`` if it is a ``bool`` (NumPy's included); a string such as ``"False"`` is refused, not read as True."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ArgumentTypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def one_of(name: str, value: T, options: Iterable[T]) -> T:
    """``value`` if it is one of ``options``, else a ``ValueError`` listing them."""
    options = tuple(options)
    try:
        found = value in options
    except TypeError:  # an unhashable or incomparable value is simply not an option
        found = False
    if not found:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value
