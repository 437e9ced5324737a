"""What the neural estimators share (:class:`NeuralEstimator`, the base of
:class:`~elbokit.nn.VAE` and :class:`~elbokit.nn.Autoencoder`): the input checks and
feature names, the fitted torch module ``model_`` and its device, seeded generators,
batched evaluation, and the scikit-learn surface (``transform``, ``inverse_transform``,
``decode_mean``, ``get_feature_names_out``, ``latent_dim_``, ``n_iter_``).

Each subclass declares ``noun`` (its name in messages) and implements ``encode``,
``decode``, ``fit``, ``save`` and ``load``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from scipy import sparse
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import _check_feature_names

from .._anndata import fitted_layer, restore_keys, saved_keys, split_anndata
from .._validation import check_data, check_memory, check_seed, check_sparse, dense_input
from .._warn import warn
from ..exceptions import DataError
from . import saved
from ._rows import SparseRows, dense_block
from .likelihoods import check_data as check_likelihood_data
from .train import EVAL_BATCH, as_float_tensor


class NeuralEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base of the neural estimators: a fitted ``model_`` (a torch module with a
    ``config``, its :class:`~elbokit.nn.config.ArchitectureConfig`) and ``history_``."""

    noun = "model"  # the estimator's name in messages
    accepts_missing = False  # rows with NaN are refused
    keeps_sparse = False  # a scipy sparse X is densified (after a memory check)
    exact_log_likelihood = False
    linear_gaussian = False

    def _store_settings(self, arguments: dict) -> None:
        """Keep each constructor argument as the attribute of its name (scikit-learn's
        rule: ``__init__`` only stores; every check is at ``fit``)."""
        for name, value in arguments.items():
            if name != "self":
                setattr(self, name, value)

    # ------------------------------------------------------------------ the data

    def _check_X(self, X, name: str, *, reset: bool) -> np.ndarray:
        """X as checked float32 (n, d); ``reset``: at fit (records ``n_features_in_``
        and a DataFrame's column names or an AnnData's var_names, needs 2 rows), else
        checked against them. An AnnData gives the fitted layer (``layer_``); a scipy
        sparse matrix stays sparse (CSR) for a model that takes it (``keeps_sparse``)."""
        X, names = split_anndata(X if reset else fitted_layer(self, X))
        if reset or names is not None or hasattr(X, "columns"):
            # scikit-learn's bookkeeping of DataFrame column names: recorded by fit,
            # checked against a DataFrame later (an array is taken by position)
            try:
                _check_feature_names(self, X if names is None else _named(names), reset=reset)
            except (TypeError, ValueError) as exc:  # mixed-type column names: TypeError
                raise DataError(one_line(exc)) from None
        if self.keeps_sparse and sparse.issparse(X):
            X = check_sparse(X, name)
            low, high = sparse_range(X)
        else:
            X, low, high = checked_float32(X, name, allow_nan=self.accepts_missing)
        if math.isnan(low):  # NaN entries, missing values (an estimator that accepts them)
            check_observed(X, name, fit=reset, noun=self.noun)
            low, high = float(np.nanmin(X)), float(np.nanmax(X))
        if reset:
            if X.shape[0] < 2:
                raise DataError(f"{name} has {X.shape[0]} sample(s) (shape {X.shape}); at "
                                "least 2 are required to fit")
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise DataError(f"{name} has {X.shape[1]} features, but the {self.noun} was "
                            f"fitted on {self.n_features_in_}")
        # the fitted likelihood (a fit's "auto" is resolved from the data, then checked)
        fitted = not reset and hasattr(self, "model_")
        check_likelihood_data(self.model_.config.likelihood if fitted else self.likelihood,
                              X, name, low, high)
        return X

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {self.noun} is not fitted yet; call fit(X) or "
                                 f"{self.noun}.load(dir)")

    @property
    def device_(self) -> torch.device:
        return next(self.model_.parameters()).device

    def _tensor(self, X) -> torch.Tensor:
        """X on the model's device: a tensor, or the rows of a sparse X, densified a
        batch at a time (:class:`~elbokit.nn._rows.SparseRows`)."""
        if sparse.issparse(X):
            return SparseRows(X, self.device_)
        return as_float_tensor(X, self.device_)

    def _input(self, X) -> torch.Tensor:
        """X checked, as a tensor on the model's device, in the data's units."""
        self._check_fitted()
        return self._tensor(self._check_X(X, "X", reset=False))

    def _latent(self, Z) -> torch.Tensor:
        """Z (n, L) checked, as a tensor on the model's device."""
        self._check_fitted()
        Z = check_data(Z, "Z", dtype=np.float32)
        if Z.shape[1] != self.latent_dim_:
            raise DataError(f"Z has {Z.shape[1]} columns; the latent dimension is "
                            f"{self.latent_dim_}")
        return self._tensor(Z)

    def _generator(self, random_state) -> torch.Generator | None:
        """A torch generator seeded by ``random_state`` (:func:`check_seed`), or None."""
        seed = check_seed(random_state)
        if seed is None:
            return None
        generator = torch.Generator(device=self.device_)
        generator.manual_seed(seed)
        return generator

    def _check_draws(self, n_rows: int, n_draws: int, width: int, name: str) -> None:
        """Refuse, before drawing, ``n_draws`` draws of ``width`` float32 numbers for each
        of ``n_rows`` rows beyond the memory available (one line naming ``name``)."""
        check_memory(4.0 * n_rows * n_draws * width,
                     f"{name} = {n_draws} draws of {width} numbers for each of {n_rows} row(s)",
                     hint=f"lower {name}")

    @staticmethod
    @torch.no_grad()
    def _batched(fn, *tensors: torch.Tensor | None) -> torch.Tensor:
        """fn over EVAL_BATCH rows at a time of the tensors (None passed as is)."""
        n = tensors[0].shape[0]
        return torch.cat([fn(*(None if t is None else t[i:i + EVAL_BATCH] for t in tensors))
                          for i in range(0, n, EVAL_BATCH)])

    # ------------------------------------------------------------------ the surface

    def transform(self, X) -> np.ndarray:
        """The codes (the VAE's posterior means), (n, L): ``encode`` for pipelines."""
        return self.encode(X)

    def inverse_transform(self, Z) -> np.ndarray:
        """Decoder means of Z, (n, d): ``decode`` for pipelines."""
        return self.decode(Z)

    def decode_mean(self, Z) -> np.ndarray:
        """The decoder mean of each row of Z: ``decode``."""
        return self.decode(np.asarray(Z, dtype=np.float32))

    @property
    def latent_dim_(self) -> int:
        self._check_fitted()
        return self.model_.config.latent_dim

    @property
    def n_iter_(self) -> int:
        """Epochs run: ``len(history_)``."""
        self._check_fitted()
        return len(self.history_)

    @property
    def image_shape_(self):
        return self.model_.config.image_shape

    @property
    def latent_layers_(self) -> tuple[int, ...]:
        """The sizes of the stochastic layers in z's order: (L,) for one layer, (L1, L2)
        for two (``top_latent_dim``; z = (z1, z2)). The report splits the active units
        and the KL per dimension by it (read with ``getattr``: other models have one)."""
        self._check_fitted()
        config = self.model_.config
        top = getattr(config, "top_latent_dim", 0)
        return (config.latent_dim - top, top) if top else (config.latent_dim,)

    @property
    def standardize_(self) -> bool:
        """Whether the networks see x standardized: x_std = (x - m) / s."""
        self._check_fitted()
        return self.model_.config.standardize

    @property
    def mean_(self) -> np.ndarray | None:
        """m of x_std = (x - m) / s, (d,); None when the model does not standardize."""
        return self._buffer("data_mean")

    @property
    def scale_(self) -> np.ndarray | None:
        """s of x_std = (x - m) / s, (d,); None when the model does not standardize."""
        return self._buffer("data_scale")

    def _buffer(self, name):
        self._check_fitted()
        if not self.model_.config.standardize:
            return None
        return getattr(self.model_, name).cpu().numpy().astype(np.float64)

    @property
    def _n_features_out(self) -> int:
        return self.latent_dim_

    # ------------------------------------------------------------------ saving

    def save(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        """Save the model to ``directory`` as one commit (:func:`elbokit.models.save_model`):
        model.json (the schema of :mod:`elbokit.persistence.model_file`: ``settings``
        the two configs, ``fitted`` the features, the history; ``extra``: the caller's
        JSON), weights.safetensors, a run.json of the model alone (what ``elbokit
        report`` reads) and manifest.json are written beside ``directory`` and swapped
        in by one rename: a failed or killed save leaves the previous one whole. A custom
        network that gives no constructor arguments is saved with a warning
        (:func:`~elbokit.nn.protocols.unbuildable_warning`)."""
        from ..models import save_model  # models imports the kinds, which name this class

        return save_model(self, directory, extra=extra)

    def write_files(self, directory: str | os.PathLike, extra: dict | None = None, *,
                    named: str | os.PathLike | None = None) -> Path:
        """Write model.json and weights.safetensors into ``directory`` itself: the
        writer of a commit (:func:`elbokit._run_commit.write_model`); ``named``: the
        directory the model is saved to, which the warning names."""
        from .protocols import unbuildable_warning

        self._check_fitted()
        names = getattr(self, "feature_names_in_", None)
        fitted = {"n_features_in_": int(self.n_features_in_),
                  "feature_names_in_": None if names is None else [str(n) for n in names],
                  **saved_keys(self)}  # the AnnData layer and obs column it reads
        path = saved.save_model(directory, kind=self.kind, cls_name=type(self).__name__,
                                model=self.model_, training=self.training_,
                                history=self.history_, fitted=fitted,
                                tensors=self._saved_tensors(), extra=extra)
        warning = unbuildable_warning(self.model_.config)
        if warning:
            warn(f"{directory if named is None else named}: {warning}", UserWarning)
        return path

    def _saved_tensors(self) -> dict:
        """Tensors saved beside the network's state dict (none by default)."""
        return {}

    def _set_fitted_names(self, config, fitted: dict | None = None, path=None) -> None:
        """``n_features_in_`` and ``feature_names_in_`` of a loaded model, and the AnnData
        layer and obs column it reads (``layer_``, ``y_column_``) from its ``fitted``."""
        restore_keys(self, fitted or {}, path)
        self.n_features_in_ = config.n_features
        if config.feature_names is not None:
            self.feature_names_in_ = np.asarray(config.feature_names, dtype=object)


# --------------------------------------------------------------------------- helpers

def sizes(value):
    """Layer sizes given as an int or a sequence (a list, tuple or array), as a tuple;
    any other value as it is, for the config's check to name (2.5, None, "x")."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),)
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(value)
    return value


def names(feature_names) -> tuple[str, ...] | None:
    return None if feature_names is None else tuple(str(n) for n in feature_names)


def one_line(exc: Exception) -> str:
    """scikit-learn's multi-line feature-name message on one line ("- name" bullets
    joined by commas)."""
    parts: list[str] = []
    for line in (line.strip() for line in str(exc).splitlines()):
        if line.startswith("- ") and parts and parts[-1].endswith(":"):
            parts[-1] += " " + line[2:]
        elif line.startswith("- "):
            parts[-1] += ", " + line[2:]
        elif line:
            parts.append(line)
    return " ".join(p if p.endswith(".") or p is parts[-1] else p + ";" for p in parts)


def moments(X, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance (ddof 0) of X in float64, in chunks of rows (no
    float64 copy of a large X); of each feature's observed entries where X has NaN
    (missing values)."""
    n = X.shape[0]
    blocks = lambda: (np.asarray(dense_block(X[i:i + chunk]), dtype=np.float64)
                      for i in range(0, n, chunk))  # a sparse X densified a block at a time
    total = sum(block.sum(0) for block in blocks())
    if not np.isnan(total).any():
        mean = total / n
        return mean, sum(((block - mean) ** 2).sum(0) for block in blocks()) / n
    counts = np.maximum(sum((~np.isnan(block)).sum(0) for block in blocks()), 1)
    mean = sum(np.nansum(block, 0) for block in blocks()) / counts
    return mean, sum(np.nansum((block - mean) ** 2, 0) for block in blocks()) / counts


def checked_float32(X, name: str, *, allow_nan: bool = False) -> tuple[np.ndarray, float, float]:
    """X as a checked 2-D float32 array, with its min and max (NaN when X holds NaN,
    which ``allow_nan`` accepts: missing values).

    A float32 matrix whose min and max are finite holds no NaN or inf (NaN propagates
    through min and max), so it skips the full check (one pass over the data instead
    of three); anything else goes through :func:`check_data` and its messages."""
    if not (isinstance(X, np.ndarray) and X.dtype == np.float32 and X.ndim == 2
            and X.size > 0):
        X = check_data(X, name, dtype=np.float32, allow_nan=allow_nan)
    low, high = float(X.min()), float(X.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        # raises, naming the bad entries (NaN accepted with allow_nan, inf never)
        X = check_data(X, name, dtype=np.float32, allow_nan=allow_nan)
    return X, low, high


def sparse_range(X) -> tuple[float, float]:
    """The min and max of a sparse matrix's values, its implicit zeros included."""
    values = X.data
    if X.nnz < X.shape[0] * X.shape[1]:
        values = np.append(values, np.float32(0.0))
    return float(values.min()), float(values.max())


def _named(names):
    """An empty DataFrame of columns ``names``: what scikit-learn reads names from."""
    import pandas as pd

    return pd.DataFrame(columns=names)


def check_observed(X: np.ndarray, name: str, *, fit: bool, noun: str = "model") -> None:
    """Rows with missing values (NaN) need an observed entry each, and at fit each
    column needs one (a one-line :class:`DataError` naming them)."""
    mask = ~np.isnan(X)
    if not mask.any():
        raise DataError(f"{name} has no observed entry: every value is missing (NaN)")
    empty_rows = np.flatnonzero(~mask.any(axis=1))
    if empty_rows.size:
        raise DataError(f"{name}: row(s) {empty_rows[:10].tolist()} have no observed entry "
                        f"(every value NaN, {empty_rows.size} in all); drop them")
    if fit:
        from ..linear._gaussian import check_observed_columns

        check_observed_columns(mask, f"the {noun}")


def standardization(X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, s), (d,) each: the per-feature mean and standard deviation of X (float64
    sums); a constant feature's s is the root-mean-square std of all features (1 if
    every feature is constant), so its variance floor scales with the data."""
    mean, var = moments(X)
    fill = math.sqrt(float(var.mean())) or 1.0
    scale = np.where(var > 0, np.sqrt(var), fill)
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(scale, dtype=torch.float32)


def init_from_data(network, X: np.ndarray, seed: int) -> None:
    """What a network takes from its training rows X before the first step: the
    standardization (``config.standardize``), a custom decoder's ``init_from_data``
    and the prior's (the VampPrior's pseudo-inputs: training rows)."""
    standardize = network.config.standardize
    mean, scale = standardization(X) if standardize else (0.0, 1.0)  # NaN-aware
    if network.config.missing:  # the other inits read complete rows: NaN at column means
        X = np.where(np.isnan(X), moments(X)[0].astype(X.dtype), X)
    if standardize:
        network.set_standardization(mean, scale)
    rows = SparseRows(X) if sparse.issparse(X) else as_float_tensor(X)
    if hasattr(network.decoder, "init_from_data"):  # on the host, as the data
        x = as_float_tensor(dense_input(X)) if sparse.issparse(X) else rows  # its moments
        network.decoder.init_from_data((x - mean) / scale if standardize else x,
                                       network.likelihood)
    if hasattr(network.likelihood, "init_from_data"):  # counts: the median library size
        # of a sparse X from its row totals ((n, 1): their sums are the totals)
        network.likelihood.init_from_data(rows.row_sums() if sparse.issparse(X) else rows)
    network.prior.init_from_data(rows, torch.Generator().manual_seed(seed))
