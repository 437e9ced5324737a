"""The classical (numpy) models in the one model.json schema: ``settings`` is
``get_params()``, ``fitted`` every fitted scalar and trace (names ending in ``_``),
``tensors`` every fitted array. Their kind-specific checks: the class's own parameters
only, plain fitted names, the attributes each class needs, positive variances, the
shapes the attributes must have relative to each other."""

from __future__ import annotations

import inspect
import math
import os
import re
from pathlib import Path

import numpy as np

from ..exceptions import ModelFileError
from . import model_file
from .checks import check_number_list, check_type, short
from .model_file import FEATURE_NAMES

FITTED_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*_")  # plain, one trailing "_"
POSITIVE_ATTRIBUTES = ("noise_variance_", "tau_")  # variances and precisions: > 0
_CORE = ("n_features_in_", "n_components_", "mean_", "components_", "noise_variance_")
# the fitted attributes each class's methods use (a file without one is incomplete)
REQUIRED_ATTRIBUTES = {
    "PCA": _CORE + ("explained_variance_", "explained_variance_ratio_", "singular_values_"),
    "PPCA": _CORE,
    "FactorAnalysis": _CORE + ("factor_correlation_", "rotation_matrix_"),
    "LinearAutoencoder": _CORE + ("explained_variance_", "weights_"),
    "VBPCA": _CORE + ("alpha_", "loadings_", "loadings_cov_", "mean_var_", "tau_",
                      "active_components_"),
}


def save_estimator(estimator, directory: str | os.PathLike, *, kind: str,
                   extra: dict | None = None) -> Path:
    """Save a fitted numpy estimator to ``directory``: its parameters, every fitted
    array as a tensor, every fitted scalar or list of numbers (a trace) and
    ``feature_names_in_`` (a list of strings) in ``fitted``."""
    tensors, fitted = {}, {}
    for name, value in vars(estimator).items():
        if not FITTED_NAME.fullmatch(name):
            continue
        if name == FEATURE_NAMES:
            fitted[name] = [str(v) for v in value]
        elif isinstance(value, np.ndarray):
            tensors[name] = value
        elif isinstance(value, (int, float, str, bool, np.integer, np.floating)):
            fitted[name] = value
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            fitted[name] = value  # e.g. loglike_ traces
    return model_file.write(directory, kind=kind, cls_name=type(estimator).__name__,
                            settings=estimator.get_params(deep=False), fitted=fitted,
                            history=[], tensors=tensors, extra=extra)


def load_estimator(directory: str | os.PathLike, registry: dict[str, type],
                   meta: dict | None = None):
    """Load an estimator saved by :func:`save_estimator`; ``registry`` maps kind -> class.
    ``meta``: model.json when the caller has read it already (each file is read once).

    Every field and array is checked before the estimator is built: the common fields
    by :func:`elbokit.persistence.model_file.read`, then this kind's (see the module)."""
    directory = Path(directory)
    meta = model_file.read_meta(directory) if meta is None else meta
    path = directory / model_file.MODEL_FILE
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in registry:
        raise ModelFileError(f"{path} names an unknown model kind {short(kind)}; "
                             f"known kinds: {sorted(registry)}")
    record = model_file.read(directory, kind=kind, meta=meta)
    cls = registry[kind]
    _check_meta(record, cls)
    arrays = record.load_tensors()
    for name, array in arrays.items():
        _check_positive(name, array, record.weights)
    try:
        estimator = cls(**record.settings)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad settings for {cls.__name__} ({exc})") from None
    for name, value in {**arrays, **record.fitted}.items():
        setattr(estimator, name, value)
    if FEATURE_NAMES in record.fitted:
        estimator.feature_names_in_ = np.asarray(record.fitted[FEATURE_NAMES], dtype=object)
    _check_consistent(estimator, path)
    if hasattr(estimator, "_check_loaded"):
        estimator._check_loaded()
    return estimator


def _check_meta(record: model_file.ModelRecord, cls: type) -> None:
    path = record.path
    if record.cls_name != cls.__name__:
        raise ModelFileError(f"{path}: class {short(record.cls_name)} does not match kind "
                             f"{record.kind!r} ({cls.__name__})")
    allowed = set(cls().get_params(deep=False))
    for name, value in record.settings.items():
        if name not in allowed:
            raise ModelFileError(f"{path}: {cls.__name__} has no parameter {short(name)}")
        check_type(value, (int, float, str, bool, type(None)), f"settings.{name}", path)
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelFileError(f"{path}: parameter {name!r} is not finite")
    for name, value in record.fitted.items():
        if name != FEATURE_NAMES:
            _check_fitted_name(name, cls, path)
            _check_scalar(name, value, path)
    for name in record.meta["tensors"]:
        _check_fitted_name(name, cls, path)
    if set(record.fitted) & set(record.meta["tensors"]):
        raise ModelFileError(f"{path}: a fitted attribute is listed as a scalar and an array")
    missing = [name for name in REQUIRED_ATTRIBUTES.get(cls.__name__, _CORE)
               if name not in record.fitted and name not in record.meta["tensors"]]
    if missing:
        raise ModelFileError(f"{path}: the fitted attribute(s) {missing} are missing; the file "
                             "is incomplete or was edited")


def _check_fitted_name(name, cls: type, path: Path) -> None:
    """A plain fitted name that sets no method or property of the class (a class-level
    default value, such as ``n_iter_ = None``, may be set)."""
    if not (isinstance(name, str) and FITTED_NAME.fullmatch(name)) or name == FEATURE_NAMES \
            or _is_member(cls, name):
        raise ModelFileError(f"{path}: {short(name)} is not a fitted attribute elbokit "
                             "saves; the file was tampered with")


def _is_member(cls: type, name: str) -> bool:
    attribute = inspect.getattr_static(cls, name, _ABSENT)
    return attribute is not _ABSENT and (callable(attribute)
                                         or hasattr(type(attribute), "__get__"))


_ABSENT = object()


def _check_scalar(name: str, value, path: Path) -> None:
    """A fitted scalar: a number, string or bool; a list of numbers (a trace; null where
    it was not finite); null for a diagnostic that was NaN. Counts (``n_*``) are
    non-negative integers, variances and precisions positive numbers."""
    vital = name.startswith("n_") or name in POSITIVE_ATTRIBUTES
    if isinstance(value, list) and not vital:
        check_number_list(value, f"fitted.{name}", path)
        return
    if value is None and not vital:
        return
    check_type(value, (int, float, str, bool), f"fitted.{name}", path)
    if name.startswith("n_") and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value < 2**40):
        raise ModelFileError(f"{path}: fitted attribute {name!r} must be a non-negative "
                             f"integer; got {short(value)}")
    if name in POSITIVE_ATTRIBUTES and not (isinstance(value, (int, float))
                                            and not isinstance(value, bool) and value > 0):
        raise ModelFileError(f"{path}: {name} must be positive; got {short(value)} (a zero "
                             "or negative variance gives NaN or infinite log-likelihoods)")


def _check_positive(name: str, array: np.ndarray, path: Path) -> None:
    if name in POSITIVE_ATTRIBUTES and not (array > 0).all():
        raise ModelFileError(f"array {name!r} in {path} must be positive (a zero or negative "
                             "variance gives NaN or infinite log-likelihoods)")


def _check_consistent(estimator, path: Path) -> None:
    """The shapes the fitted attributes must have relative to each other."""
    d = getattr(estimator, "n_features_in_", None)
    L = getattr(estimator, "n_components_", None)
    if not isinstance(d, int) or d < 1:
        raise ModelFileError(f"{path}: n_features_in_ is missing or < 1")
    if L is not None and not isinstance(L, int):
        raise ModelFileError(f"{path}: n_components_ must be an integer")
    expected = {"mean_": (d,)}
    if L is not None:
        expected["components_"] = (L, d)
    noise = getattr(estimator, "noise_variance_", None)
    if isinstance(noise, np.ndarray) and noise.ndim:
        expected["noise_variance_"] = (d,)
    for name, shape in expected.items():
        value = getattr(estimator, name, None)
        if value is not None and getattr(value, "shape", None) != shape:
            raise ModelFileError(f"{path}: {name} has shape {getattr(value, 'shape', None)}, "
                                 f"expected {shape} for {d} features and {L} components")
