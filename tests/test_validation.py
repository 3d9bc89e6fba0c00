"""The one set of argument checks every layer uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reformer_lab.validation import (
    ArgumentTypeError,
    as_bool,
    as_float,
    as_int,
    one_of,
    positive_float,
    positive_int,
)


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), torch.tensor(3)])
def test_integers_of_every_kind_are_taken(value) -> None:
    assert positive_int("n", value) == 3 and type(positive_int("n", value)) is int


@pytest.mark.parametrize("value", [True, False, 3.0, "3", None, np.float64(3.0), torch.tensor(3.0)])
def test_non_integers_are_refused_with_the_name_and_value(value) -> None:
    with pytest.raises(ArgumentTypeError, match=r"^n_hashes must be an int >= 1, got ") as info:
        positive_int("n_hashes", value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert repr(value) in str(info.value)


def test_integer_bounds() -> None:
    assert as_int("x", 0, minimum=0) == 0
    assert as_int("x", -5) == -5
    with pytest.raises(ValueError, match=r"^x must be an int >= 1, got 0$"):
        positive_int("x", 0)
    with pytest.raises(ValueError, match=r"^x must be an int in \[0, 4\], got 5$"):
        as_int("x", 5, minimum=0, maximum=4)
    with pytest.raises(ValueError, match=r"^x must be an int <= 4, got 5$"):
        as_int("x", 5, maximum=4)


def test_floats() -> None:
    assert as_float("lr", 3) == 3.0 and type(as_float("lr", np.float32(0.5))) is float
    assert as_float("p", 0.0, minimum=0.0, maximum=1.0) == 0.0
    assert positive_float("lr", 1e-30) == 1e-30
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"^lr must be a finite number > 0"):
            positive_float("lr", bad)
    for bad in (True, "0.1", None):
        with pytest.raises(ArgumentTypeError, match=r"^lr must be a finite number > 0"):
            positive_float("lr", bad)
    with pytest.raises(ValueError, match=r"^p must be a finite number in \[0.0, 1.0\], got 1.5$"):
        as_float("p", 1.5, minimum=0.0, maximum=1.0)


def test_flags_refuse_strings_and_numbers() -> None:
    assert as_bool("causal", True) is True and as_bool("causal", np.bool_(False)) is False
    for bad in ("False", 0, 1, None):
        with pytest.raises(ArgumentTypeError, match=r"^causal must be True or False, got "):
            as_bool("causal", bad)


def test_one_of() -> None:
    assert one_of("attention", "lsh", ("full", "lsh")) == "lsh"
    with pytest.raises(ValueError, match=r"^attention must be one of 'full', 'lsh'; got 'LSH'$"):
        one_of("attention", "LSH", ("full", "lsh"))
    with pytest.raises(ValueError, match=r"got \[1\]$"):
        one_of("attention", [1], ("full", "lsh"))
