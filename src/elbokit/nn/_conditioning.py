"""The conditional VAE's y (:class:`Conditioning`, a part of :class:`~elbokit.nn.VAE`):
class labels (1-D, one-hot coded in the order of ``classes_``) or a covariate matrix
(2-D, (n, c)), coded as the (n, c) float32 block the networks see as the last c
columns of their input (see :meth:`~elbokit.nn.model.VAENetwork.split_condition`)."""

from __future__ import annotations

import numpy as np

from .._validation import check_data, check_memory
from ..exceptions import DataError, ParameterError
from ._rows import append_columns

# at most this many classes per row of y (a class of a conditional VAE needs rows of
# its own: 40,000 labels in 40,000 rows is a column of identifiers or measurements)
MAX_CLASSES_PER_ROW = 0.5


class Conditioning:
    """The VAE's handling of y: ``conditional`` (the setting), ``classes_`` (the labels
    of a model conditioned on labels, else None) and ``n_condition_`` (c)."""

    def _fit_condition(self, y, n: int) -> np.ndarray | None:
        """y coded as the (n, c) float32 block the networks see (None when the model is
        not conditional); sets ``classes_`` and ``n_condition_``."""
        self.classes_, self.n_condition_ = None, 0
        if self.conditional is False:
            return None
        if self.conditional is not True:
            raise ParameterError(f"conditional must be True or False; got {self.conditional!r}")
        if y is None:
            raise DataError("conditional=True: fit(X, y) needs y, class labels (n,) or a "
                            "covariate matrix (n, c)")
        if np.ndim(y) == 1:
            classes = np.unique(labels_of(y, n, "y"))
            if classes.dtype.kind == "i" and classes[0] == -1 and len(classes) > 2:
                raise DataError("y holds -1, scikit-learn's mark of an unlabeled row: a "
                                "conditional VAE needs every row's label; fit "
                                "elbokit.nn.SemiSupervisedVAE for partly labeled data (or "
                                "recode -1 to keep it as a class)")
            if len(classes) < 2:
                raise DataError(f"y holds a single class ({classes[0]!r}); conditioning "
                                "needs at least 2")
            if len(classes) > max(MAX_CLASSES_PER_ROW * n, 2):
                raise DataError(f"y holds {len(classes)} distinct labels in {n} rows: most "
                                "classes have a single row, so their one-hot code teaches "
                                "nothing (y looks like an identifier or a measurement); pass "
                                "it as a covariate matrix (y.reshape(-1, 1)) or group its "
                                "values into classes")
            self.classes_ = classes
        self.n_condition_ = len(self.classes_) if self.classes_ is not None \
            else covariates_of(y, n, "y", None).shape[1]
        return self._condition(y, n, "y")

    @property
    def conditional_(self) -> bool:
        self._check_fitted()
        return self.model_.config.conditional

    def _condition(self, y, n: int, name: str = "y") -> np.ndarray:
        """y of a fitted conditional model, checked and coded as (n, c) float32: the
        one-hot code of its labels, or its covariates."""
        if y is None:
            raise DataError(f"this VAE is conditional: pass {name}=, the "
                            + ("class labels (one of " + brief(self.classes_) + ")"
                               if self.classes_ is not None else
                               f"covariates ({self.n_condition_} columns)")
                            + " of each row")
        if self.classes_ is None:
            return covariates_of(y, n, name, self.n_condition_)
        labels = labels_of(y, n, name)
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        unknown = [v for v in dict.fromkeys(labels.tolist()) if v not in index]
        if unknown:
            raise DataError(f"{name} holds label(s) {unknown[:5]} not seen at fit; the classes "
                            f"are {brief(self.classes_)}")
        # the code, and X with the code appended (the caller's hstack)
        check_memory(4.0 * n * len(index) * 2, f"the one-hot code of {n} rows x "
                     f"{len(index)} classes", "use fewer classes (group the labels)")
        codes = np.zeros((n, len(index)), dtype=np.float32)
        codes[np.arange(n), [index[v] for v in labels.tolist()]] = 1.0
        return codes

    def _with_condition(self, X: np.ndarray, y) -> np.ndarray:
        """X (checked) with a conditional model's coded y appended as its last columns."""
        if not self.model_.config.conditional:
            if y is not None:
                raise ParameterError("y is only for a conditional VAE (conditional=True)")
            return X
        return append_columns(X, self._condition(y, X.shape[0]))

    def _condition_tensor(self, y, n: int):
        """The coded y of n rows as a tensor (None for an unconditional model)."""
        if self.model_.config.conditional:
            return self._tensor(self._condition(y, n))
        if y is not None:
            raise ParameterError("y is only for a conditional VAE (conditional=True)")
        return None

    def _repeat(self, y, n: int):
        """One label (covariate row) of a conditional model as n of them; anything else
        as given (checked by :meth:`_condition`)."""
        if y is None or not self.model_.config.conditional:
            return y
        single = np.ndim(y) == 0 if self.classes_ is not None else np.ndim(y) == 1
        if not single:
            return y
        return np.full(n, y) if self.classes_ is not None else np.tile(np.asarray(y), (n, 1))

    def _validation_with_condition(self, validation, condition):
        """(validation rows with their coded y, the raw y_val) of a fit; a conditional
        model takes ``validation=(X_val, y_val)``."""
        val_y = None
        if validation is not None and condition is not None:
            if not (isinstance(validation, tuple) and len(validation) == 2):
                raise DataError("a conditional VAE takes validation=(X_val, y_val)")
            validation, val_y = validation
        if validation is not None:
            validation = self._check_X(validation, "validation", reset=False)
            if condition is not None:
                validation = append_columns(validation, self._condition(
                    val_y, validation.shape[0], "y_val"))
        return validation, val_y


def brief(values, limit: int = 12) -> str:
    values = list(np.asarray(values).tolist())
    return str(values[:limit])[:-1] + ", ...]" if len(values) > limit else str(values)


def labels_of(y, n: int, name: str) -> np.ndarray:
    """1-D class labels y of n rows as an array of Python-comparable values: integers
    (integer-valued floats included) or strings."""
    values = np.asarray(y)
    if values.ndim != 1:
        raise DataError(f"{name} must be class labels of shape ({n},); got shape "
                        f"{values.shape}")
    if values.shape[0] != n:
        raise DataError(f"{name} has {values.shape[0]} entries but X has {n} rows; one label "
                        "per row is needed")
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise DataError(f"{name} holds non-integer numbers: 1-D y is class labels; pass "
                            "continuous covariates as a 2-D (n, c) matrix")
        return values.astype(np.int64)
    if values.dtype.kind in "UO" and all(isinstance(v, str) for v in values.tolist()):
        return values.astype(str)
    raise DataError(f"{name} must hold integer or string class labels; got dtype "
                    f"{values.dtype}")


def covariates_of(y, n: int, name: str, width: int | None) -> np.ndarray:
    """A 2-D covariate matrix y of n rows (and ``width`` columns, when known) as float32."""
    if np.ndim(y) != 2:
        raise DataError(f"{name} must be a covariate matrix of shape ({n}, "
                        f"{width or 'c'}); got shape {np.shape(y)}")
    values = check_data(y, name, dtype=np.float32)
    if values.shape[0] != n:
        raise DataError(f"{name} has {values.shape[0]} rows but X has {n}; one row of "
                        "covariates per row of X is needed")
    if width is not None and values.shape[1] != width:
        raise DataError(f"{name} has {values.shape[1]} columns; the model was fitted on "
                        f"{width} covariates")
    return values
