"""elbokit._validation: every check raises an elbokit error whose one-line message
names the argument and the problem, and passes good values through unchanged."""

import numpy as np
import pytest

from elbokit._validation import (check_choice, check_data, check_finite, check_float,
                                 check_int, describe_nonfinite)
from elbokit.exceptions import DataError, ElbokitError, ParameterError


def test_parameter_errors_are_elbokit_errors():
    assert issubclass(ParameterError, ElbokitError) and issubclass(DataError, ElbokitError)


@pytest.mark.parametrize("value, message", [
    (1.5, "n_components must be an integer; got 1.5"),
    (True, "n_components must be an integer; got True"),
    ("3", "n_components must be an integer; got '3'"),
    (0, "n_components must be >= 1; got 0"),
])
def test_check_int_names_the_parameter(value, message):
    with pytest.raises(ParameterError) as info:
        check_int(value, "n_components", minimum=1)
    assert str(info.value) == message


def test_check_int_and_float_pass_good_values():
    assert check_int(np.int64(3), "k", minimum=1) == 3 and type(check_int(3, "k")) is int
    assert check_int(None, "k", allow_none=True) is None
    assert check_float(np.float32(0.5), "tol", low=0.0, high=1.0) == 0.5
    assert check_float(0.0, "tol", low=0.0) == 0.0


@pytest.mark.parametrize("value, kwargs, message", [
    (float("nan"), {}, "must be a finite real number"),
    (float("inf"), {}, "must be a finite real number"),
    (0.0, {"low": 0.0, "low_inclusive": False}, "tol must be > 0.0; got 0.0"),
    (-1.0, {"low": 0.0}, "tol must be >= 0.0; got -1.0"),
    (2.0, {"high": 1.0}, "tol must be <= 1.0; got 2.0"),
])
def test_check_float_rejects_out_of_range(value, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        check_float(value, "tol", **kwargs)


def test_check_choice_lists_the_choices():
    assert check_choice("em", "solver", {"em", "closed"}) == "em"
    with pytest.raises(ParameterError, match=r"solver must be one of \['closed', 'em'\]; got 'x'"):
        check_choice("x", "solver", {"em", "closed"})


def test_nonfinite_entries_are_counted_and_located():
    X = np.zeros((4, 3))
    X[1, 2], X[3, 0] = np.nan, np.inf
    message = describe_nonfinite(X)
    assert "2 non-finite value(s) (1 NaN, 1 inf)" in message
    assert "(row 1, column 2), (row 3, column 0)" in message
    assert describe_nonfinite(np.zeros((2, 2))) is None
    check_finite(np.where(np.isinf(X), 0.0, X), allow_nan=True)  # NaN allowed as missing
    with pytest.raises(DataError, match=r"1 inf value\(s\), first at \(row 3, column 0\)"):
        check_finite(X, allow_nan=True)


@pytest.mark.parametrize("X, message", [
    (np.zeros(5), "must be a 2-D array"),
    (np.zeros((3, 0)), "0 feature"),
    (np.array([["a", "b"]]), "must be numeric"),
    (np.array([[1 + 2j]]), "must be real"),
    ([[1.0, 2.0], [3.0]], "cannot be read as a numeric array"),
])
def test_check_data_names_the_problem(X, message):
    with pytest.raises(DataError, match=message):
        check_data(X)


def test_check_data_converts_and_counts_samples():
    arr = check_data([[1, 2], [3, 4]])
    assert arr.dtype == np.float64 and arr.shape == (2, 2)
    assert check_data(np.ones((2, 2), np.float32), dtype=np.float32).dtype == np.float32
    with pytest.raises(DataError, match="2 sample"):
        check_data(np.ones((2, 3)), min_samples=3)
