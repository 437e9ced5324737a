"""Array and parameter checks that fail with a clear message.

The estimators call :func:`validate_X` (through scikit-learn's ``validate_data``
so that ``n_features_in_`` and feature-name bookkeeping follow scikit-learn), and
everything else that takes user data calls :func:`check_data`.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import sparse
from sklearn.utils.validation import validate_data

from ._anndata import fitted_layer, split_anndata
from .exceptions import DataError, ParameterError


def describe_nonfinite(X: np.ndarray, name: str = "X") -> str | None:
    """Return a message naming how many NaN/inf entries ``X`` has and where, or None."""
    bad = ~np.isfinite(X)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return None
    rows, cols = np.nonzero(bad)
    n_nan = int(np.isnan(X).sum())
    where = ", ".join(f"(row {r}, column {c})" for r, c in zip(rows[:3], cols[:3]))
    more = " ..." if n_bad > 3 else ""
    return (
        f"{name} contains {n_bad} non-finite value(s) ({n_nan} NaN, {n_bad - n_nan} inf), "
        f"at {where}{more}; remove or impute them (FactorAnalysis, PPCA(solver='em') "
        "and VBPCA accept NaN as missing)"
    )


def check_finite(X: np.ndarray, name: str = "X", allow_nan: bool = False) -> None:
    """Raise :class:`DataError` if ``X`` holds inf, or NaN when ``allow_nan`` is false."""
    if allow_nan:
        if np.isinf(X).any():
            n_inf = int(np.isinf(X).sum())
            r, c = np.argwhere(np.isinf(X))[0]
            raise DataError(
                f"{name} contains {n_inf} inf value(s), first at (row {r}, column {c}); "
                "NaN is accepted as missing, inf is not"
            )
        return
    message = describe_nonfinite(X, name)
    if message is not None:
        raise DataError(message)


def _check_shape(X: np.ndarray, name: str, min_samples: int) -> None:
    if X.ndim != 2:
        raise DataError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got {X.ndim}-D "
            f"with shape {X.shape}. Reshape your data: X.reshape(-1, 1) for a single "
            "feature, X.reshape(1, -1) for a single sample"
        )
    if X.shape[1] == 0:
        raise DataError(f"{name} has 0 feature(s) (shape {X.shape}); at least 1 is required")
    if X.shape[0] < min_samples:
        raise DataError(
            f"{name} has {X.shape[0]} sample(s) (shape {X.shape}); at least {min_samples} "
            "are required"
        )


def check_data(X, name: str = "X", *, min_samples: int = 1, allow_nan: bool = False,
               dtype=np.float64) -> np.ndarray:
    """Convert ``X`` to a 2-D float array and check it, with messages that name the problem."""
    X = dense_input(X)
    check_frame_columns(X, name)
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise DataError(f"{name} cannot be read as a numeric array: {exc}") from None
    if arr.dtype.kind == "c":  # before the cast below, which would drop the imaginary part
        raise DataError(f"{name} must be real; got complex values")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"{name} must be numeric; got an array of dtype {arr.dtype}"
            ) from None
    _check_shape(arr, name, min_samples)
    arr = arr.astype(dtype, copy=False)
    check_finite(arr, name, allow_nan=allow_nan)
    return arr


def check_frame_columns(X, name: str = "X") -> None:
    """A DataFrame's columns that are not numbers (text such as "male", dates) named in
    a one-line :class:`DataError`, before scikit-learn's bare "could not convert string
    to float". Columns of numbers stored as text ("1.5") still convert."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "columns") or getattr(X, "ndim", 2) != 2:
        return
    for column, dtype in zip(X.columns, dtypes):
        if getattr(dtype, "kind", "O") in "biuf":
            continue
        values = np.asarray(X[column])
        for i, value in enumerate(values.tolist()):
            try:
                float(value)
            except (TypeError, ValueError):
                raise DataError(
                    f"{name}: column {column!r} is not numeric (row {i}: {str(value)[:40]!r}); "
                    f"drop it (X.drop(columns=[{column!r}])) or encode it as numbers"
                ) from None


def dense_input(X):
    """AnnData and scipy sparse input for a model without a sparse path: a dense array
    (an AnnData's as a DataFrame of its var_names), the memory checked first."""
    X, names = split_anndata(X)
    if sparse.issparse(X):
        check_memory(2.0 * X.shape[0] * X.shape[1] * max(X.dtype.itemsize, 4),
                     f"the sparse matrix of shape {X.shape} as a dense array",
                     "use fewer cells or genes, or PCA/FA/PPCA or the VAE, which keep it "
                     "sparse")
        X = X.toarray()
    if names is None:
        return X
    import pandas as pd

    return pd.DataFrame(np.asarray(X), columns=names, copy=False)


def check_sparse(X, name: str = "X") -> sparse.csr_matrix:
    """A scipy sparse matrix as checked float32 CSR (shape, numeric, finite stored values;
    NaN is refused: missing values need a dense X), not densified."""
    if X.ndim != 2:
        raise DataError(f"{name} must be 2-D; got a sparse array of shape {X.shape}")
    _check_shape(X, name, 1)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric; got a sparse matrix of dtype {X.dtype}")
    X = sparse.csr_matrix(X, dtype=np.float32)
    if not np.isfinite(X.data).all():
        n_bad = int((~np.isfinite(X.data)).sum())
        raise DataError(f"{name} (sparse) holds {n_bad} non-finite stored value(s); a sparse "
                        "X must be finite (missing values need a dense X with NaN)")
    return X


def validate_X(estimator, X, *, reset: bool, allow_nan: bool = False,
               min_samples: int = 1) -> np.ndarray:
    """scikit-learn's ``validate_data`` (feature counts, names, dtype) plus our own
    shape and finiteness messages. Returns a float64 (or float32) 2-D array."""
    X = dense_input(X if reset else fitted_layer(estimator, X))  # an AnnData: the fit's layer
    check_frame_columns(X)
    arr = X
    if isinstance(X, np.ndarray) and X.ndim != 2:
        _check_shape(X, "X", min_samples)
    if isinstance(X, np.ndarray) and X.dtype.kind == "c":  # scikit-learn's message
        # holds the whole array, many lines (its own words kept: its checks look for them)
        raise DataError("Complex data not supported: X must be real")
    try:
        arr = validate_data(
            estimator, arr, reset=reset, dtype=[np.float64, np.float32],
            ensure_all_finite=False, ensure_min_samples=min_samples,
        )
    except ValueError as exc:  # scikit-learn's messages are clear; give them our type
        if isinstance(exc, DataError):
            raise
        raise DataError(" ".join(str(exc).split())) from None  # one line
    _check_shape(arr, "X", min_samples)
    check_finite(arr, "X", allow_nan=allow_nan)
    return arr


def check_int(value, name: str, *, minimum: int = 0, allow_none: bool = False) -> int | None:
    """Check an integer hyper-parameter is >= ``minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_float(value, name: str, *, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True) -> float:
    """Check a real hyper-parameter lies in the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ParameterError(f"{name} must be a finite real number; got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = ">=" if low_inclusive else ">"
        raise ParameterError(f"{name} must be {bound} {low}; got {value}")
    if high is not None and value > high:
        raise ParameterError(f"{name} must be <= {high}; got {value}")
    return float(value)


def check_positive(value, name: str) -> float:
    """Check a real hyper-parameter is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
            or value == float("inf"):
        raise ParameterError(f"{name} must be a finite positive number; got {value!r}")
    return value


def check_bool(value, name: str) -> bool:
    """Check a switch is True or False (numpy's bool too): "no", -1 or [1] would
    otherwise be taken as True in silence."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_seed(value, name: str = "random_state") -> int | None:
    """A seed argument as an integer: None (unseeded) as it is, a numpy RandomState by
    an integer drawn from it, else an integer in [0, MAX_SEED] (numpy's and torch's
    seeds), or one line naming it."""
    from .persistence.files import MAX_SEED

    if value is None:
        return None
    if isinstance(value, np.random.RandomState):
        return int(value.randint(2**31 - 1))
    value = check_int(value, name)
    if value > MAX_SEED:
        raise ParameterError(f"{name} must be <= {MAX_SEED}; got {value}")
    return value


def check_random_state(seed, name: str = "random_state") -> np.random.RandomState:
    """scikit-learn's ``check_random_state`` with a one-line :class:`ParameterError`
    (None, an integer in [0, 2**32 - 1], a RandomState), not a bare ValueError."""
    from sklearn.utils import check_random_state as sklearn_check

    if isinstance(seed, (bool, np.bool_)):
        raise ParameterError(f"{name} must be None, an integer in [0, 2**32 - 1] or a "
                             f"numpy RandomState; got {seed!r}")
    try:
        return sklearn_check(seed)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be None, an integer in [0, 2**32 - 1] or a "
                             f"numpy RandomState; got {seed!r}") from None


def check_choice(value, name: str, choices, *, sort: bool = True) -> str:
    """Check a hyper-parameter is one of ``choices`` (listed sorted in the message, or
    in their own order with ``sort=False``)."""
    try:
        known = value in choices
    except TypeError:  # an unhashable value (a list, a dict) against a set
        known = False
    if not known:
        listed = sorted(choices) if sort else list(choices)
        raise ParameterError(f"{name} must be one of {listed}; got {value!r}")
    return value


def check_memory(n_bytes: float, what: str, hint: str) -> None:
    """Raise :class:`DataError` before allocating ``n_bytes`` when that exceeds the
    available memory (the one rule, :func:`elbokit.persistence.memory.check_memory`);
    ``what`` names the allocation (with its shape), ``hint`` what to do instead."""
    from .persistence import memory

    memory.check_memory(n_bytes, what, error=DataError, hint=hint)


def check_covariance_memory(n_features: int, copies: int = 3) -> None:
    """Check a d x d float64 covariance (and ``copies`` - 1 work copies) fits in memory."""
    d = int(n_features)
    check_memory(copies * 8.0 * d * d, f"a {d} x {d} covariance matrix",
                 "use fewer features (select or aggregate columns), or PCA, which for "
                 "n_samples < n_features uses the SVD of X and never forms the covariance")
