"""AnnData input, the same for every estimator: ``fit(adata, layer="counts")`` fits
``adata.layers["counts"]`` (``adata.X`` without ``layer``), ``y="cell_type"`` names an
``obs`` column (class labels of a conditional VAE, or covariates: ``y="batch"``), and
``var_names`` become ``feature_names_in_``. The fit remembers both as ``layer_`` and
``y_column_`` (as scvi-tools' ``setup_anndata`` registers its layer and keys), so
``transform(adata)``, ``score(adata)`` and the rest read the same layer (and a
conditional VAE the same column) of the AnnData they are given.

:func:`reads_anndata` decorates each estimator's ``fit``; :func:`fitted_layer` is what
the input checks of the fitted models call (``elbokit._validation.validate_X``, the
linear models' row streaming, the neural models' ``_check_X``). ``anndata`` is never
imported here unless an AnnData is given.
"""

from __future__ import annotations

import functools

import numpy as np

from .exceptions import DataError, ParameterError


def is_anndata(X) -> bool:
    """Whether ``X`` is an AnnData object (by its type: anndata is not imported)."""
    return any(cls.__name__ == "AnnData" and (cls.__module__ or "").startswith("anndata")
               for cls in type(X).__mro__)


def select_layer(adata, layer: str | None, name: str = "adata"):
    """``adata`` with ``adata.layers[layer]`` as its X (the same obs and var; the matrix
    not copied), or ``adata`` itself for ``layer=None``; an unknown layer is a one-line
    :class:`DataError` listing the layers there are."""
    if layer is None:
        return adata
    if not isinstance(layer, str):
        raise ParameterError(f"layer must be the name of a layer of {name} (a string); "
                             f"got {layer!r}")
    from .data.expression import anndata_matrix

    matrix = anndata_matrix(adata, layer, name)
    import anndata

    return anndata.AnnData(X=matrix, obs=adata.obs, var=adata.var)


def obs_y(adata, columns, name: str = "adata") -> np.ndarray:
    """y of the ``obs`` column(s) ``columns``: one column of categories, strings,
    booleans or integers as class labels (n,), a column of floats as a covariate
    (n, 1); several columns as a covariate matrix (n, c), categories one-hot coded."""
    import pandas as pd

    keys = [columns] if isinstance(columns, str) else list(columns)
    unknown = [key for key in keys if key not in adata.obs.columns]
    if unknown:
        from .data._reading import brief

        raise DataError(f"{name}.obs has no column {unknown[0]!r}; its columns: "
                        f"{brief(list(adata.obs.columns))}")
    frame = adata.obs[keys]
    missing = [key for key in keys if frame[key].isna().any()]
    if missing:
        raise DataError(f"{name}.obs[{missing[0]!r}] has {int(frame[missing[0]].isna().sum())} "
                        "missing value(s); fill or drop those cells")
    continuous = [pd.api.types.is_float_dtype(frame[key].dtype) for key in keys]
    if isinstance(columns, str):
        column = frame[columns]
        if continuous[0]:
            return column.to_numpy(np.float64)[:, None]
        if pd.api.types.is_integer_dtype(column.dtype):
            return column.to_numpy(np.int64)
        return column.astype(str).to_numpy(dtype=object)
    parts = [frame[[key]].to_numpy(np.float64) if is_float else
             pd.get_dummies(frame[key].astype(str), dtype=np.float64).to_numpy()
             for key, is_float in zip(keys, continuous)]
    return np.hstack(parts)


def _names_columns(y, adata) -> bool:
    """Whether y names obs columns (a string, or a list of strings that is not one label
    per cell) rather than giving the labels themselves."""
    if isinstance(y, str):
        return True
    return (isinstance(y, (list, tuple)) and 0 < len(y) != adata.n_obs
            and all(isinstance(v, str) for v in y))


def reads_anndata(fit):
    """Give an estimator's ``fit(X, y=None, ...)`` the AnnData keywords: ``layer`` (the
    layer fitted instead of X) and y as an ``obs`` column name (or names); a
    ``validation`` AnnData keyword is read the same way. Sets ``layer_`` and
    ``y_column_`` when the fit succeeds (and clears those of an earlier fit first)."""

    @functools.wraps(fit)
    def wrapper(self, X, y=None, *args, layer: str | None = None, **kwargs):
        for attribute in ("layer_", "y_column_"):
            self.__dict__.pop(attribute, None)
        column = None
        if is_anndata(X):
            if _names_columns(y, X):
                column, y = y, obs_y(X, y)
            validation = kwargs.get("validation")
            if is_anndata(validation):
                rows = select_layer(validation, layer, "validation")
                conditional = getattr(self, "conditional", False) is True
                kwargs["validation"] = (rows, obs_y(validation, column, "validation")) \
                    if conditional and column is not None else rows
            X = select_layer(X, layer)
        elif layer is not None:
            raise ParameterError(f"layer={layer!r} names a layer of an AnnData; X is a "
                                 f"{type(X).__name__}")
        elif isinstance(y, str):
            raise DataError(f"y={y!r} names an obs column: X must then be an AnnData")
        fitted = fit(self, X, y, *args, **kwargs)
        if layer is not None:
            self.layer_ = layer
        if column is not None:
            self.y_column_ = column
        return fitted

    return wrapper


def fitted_layer(estimator, X):
    """An AnnData given to a fitted estimator, with the layer its fit read as X (as
    given otherwise, and for a model fitted on ``adata.X``)."""
    layer = getattr(estimator, "layer_", None)
    if layer is None or not is_anndata(X):
        return X
    return select_layer(X, layer)


def fitted_y(estimator, X, y):
    """y of a fitted model given an AnnData X: an obs column it names, else the column
    the fit read (``y_column_``) when the model is conditional; y as given otherwise."""
    if not is_anndata(X):
        if isinstance(y, str) and getattr(estimator, "y_column_", None) is not None:
            raise DataError(f"y={y!r} names an obs column: X must then be an AnnData")
        return y
    if y is None:
        column = getattr(estimator, "y_column_", None)
        return None if column is None else obs_y(X, column)
    return obs_y(X, y) if _names_columns(y, X) else y


def split_anndata(X):
    """(matrix, var_names as strings) of an AnnData; (X, None) for anything else."""
    if not is_anndata(X):
        return X, None
    if X.X is None:
        raise DataError(f"adata.X is empty; pass layer= (one of {list(X.layers)})")
    return X.X, [str(v) for v in X.var_names]


# the fitted attributes that say what a model reads of an AnnData, saved with the model
KEYS = ("layer_", "y_column_")


def saved_keys(estimator) -> dict:
    """The AnnData keys of a fitted model for its model file's ``fitted`` (none when it
    was fitted on a matrix, or on ``adata.X`` without a column)."""
    return {key: getattr(estimator, key) for key in KEYS if getattr(estimator, key, None)
            is not None}


def restore_keys(estimator, fitted: dict, path) -> None:
    """Set the AnnData keys of a loaded model from its file's ``fitted``, each checked: a
    name, or (``y_column_``) a list of names."""
    from .exceptions import ModelFileError

    for key in KEYS:
        value = fitted.get(key)
        if value is None:
            continue
        names = [value] if isinstance(value, str) else value
        if not (isinstance(names, list) and names and all(isinstance(v, str) and v
                                                          for v in names)) \
                or key == "layer_" and not isinstance(value, str):
            raise ModelFileError(f"{path}: field 'fitted.{key}' must be "
                                 + ("a layer name" if key == "layer_" else
                                    "an obs column name or a list of them")
                                 + f"; got {str(value)[:40]}")
        setattr(estimator, key, value)
