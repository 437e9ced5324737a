"""The linear-Gaussian interpretation algebra: communalities, standardized loadings
and the eigenvalues that count factors, for x = W z + mu + noise with Psi diagonal;
the rotated factor solution as psych::fa prints it, factor scores (the fit statistics are in
:mod:`._fit_statistics`). numpy/scipy only; the models
(:class:`elbokit.linear._protocol.LinearProtocolMixin`), the figures in
:mod:`elbokit.plots`, the report and FactorAnalysis read these."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_choice
from ..exceptions import DataError
from . import rotations


def communalities(W: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Communality h_j^2 = sum_k W_jk^2 (the variance of x_j the factors explain, in
    the feature's squared units) and its share h_j^2 / (h_j^2 + psi_j) of the model
    variance of x_j (unit-free, in [0, 1])."""
    h2 = np.sum(W**2, axis=1)
    total = h2 + psi
    share = np.divide(h2, total, out=np.zeros_like(h2), where=total > 0)
    return h2, share


def standardized_loadings(W: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """W_jk / sqrt(h_j^2 + psi_j): the correlation of feature j with factor k under the
    model (orthogonal factors), comparable across features in different units. The
    squares of row j sum to its communality share."""
    scale = np.sqrt(np.sum(W**2, axis=1) + psi)
    return np.divide(W, scale[:, None], out=np.zeros_like(W), where=scale[:, None] > 0)


def rotate_loadings(W: np.ndarray, psi: np.ndarray, rotation: str = "fitted", *,
                    normalize: bool = True) -> np.ndarray:
    """The loadings as fitted (``"fitted"``, ``"none"``), or rotated by an orthogonal
    rotation of :data:`elbokit.linear.rotations.ORTHOGONAL` (varimax, quartimax) on the
    standardized loadings, with Kaiser's normalization by sqrt(h_j^2) when
    ``normalize`` (Kaiser 1958), and scaled back to the data's units. W W', the
    communalities and the likelihood are unchanged, and so is the rotation when a
    feature's unit changes. Oblique rotations have no W of this kind (their pattern
    comes with factor correlations): see :func:`factor_solution`."""
    check_choice(rotation, "rotation", ("fitted", "none") + rotations.ORTHOGONAL)
    if rotation in ("fitted", "none") or W.shape[1] < 2:
        return W
    scale = np.sqrt(np.sum(W**2, axis=1) + psi)[:, None]
    return rotations.rotate(standardized_loadings(W, psi), rotation,
                            normalize=normalize).loadings * scale


def complete_rows(X) -> np.ndarray:
    """The rows of X without NaN, as float64."""
    X = np.asarray(X, dtype=np.float64)
    return X[~np.isnan(X).any(axis=1)]


def whitened_eigenvalues(X, psi: np.ndarray) -> np.ndarray:
    """Eigenvalues (decreasing) of Psi^-1/2 S Psi^-1/2, S the ML covariance of the rows
    of X. Under factor analysis with L factors the population values are 1 + the
    eigenvalues of W' Psi^-1 W for L of them and exactly 1 for the rest, so the
    eigenvalues above the noise level 1 count the factors the data support (for an
    isotropic Psi = sigma^2 I these are the covariance eigenvalues over sigma^2)."""
    X = complete_rows(X)
    Xc = (X - X.mean(axis=0)) / np.sqrt(psi)
    S = Xc.T @ Xc / X.shape[0]
    return np.sort(np.linalg.eigvalsh(S))[::-1]


def noise_edge(n_samples: int, n_features: int) -> float:
    """Largest eigenvalue of the sample covariance of n pure-noise rows of unit variance
    as n, d grow with d/n fixed: (1 + sqrt(d/n))^2 (Marchenko-Pastur). Eigenvalues
    above it are signal, not sampling noise."""
    return (1.0 + np.sqrt(n_features / max(n_samples, 1))) ** 2


def _check_loadings(A, name: str = "loadings") -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[1] == 0:
        raise DataError(f"{name} must be a (n_features, n_factors) matrix; got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise DataError(f"{name} must be finite (no NaN or inf)")
    return A


def hoffman_complexity(loadings: np.ndarray) -> np.ndarray:
    """Hoffman's (1978) complexity of each row, (sum_k l_k^2)^2 / sum_k l_k^4 (psych's
    ``complexity``): 1 for an item on one factor, L for equal loadings on all L; nan
    for a row of zeros."""
    squares = loadings**2
    fourth = np.sum(squares**2, axis=1)
    total = np.sum(squares, axis=1) ** 2
    return np.divide(total, fourth, out=np.full_like(fourth, np.nan), where=fourth > 0)


@dataclass(frozen=True)
class FactorSolution:
    """A factor solution on the correlation scale, as psych::fa prints it.

    Attributes
    ----------
    loadings : (d, L) pattern loadings Lambda (reflected: positive column sums; ordered
        by variance explained).
    factor_correlation : (L, L) Phi (the identity for unrotated and orthogonal solutions).
    structure : (d, L) Lambda Phi, the correlations of the items with the factors.
    communalities : (d,) h2 = diag(Lambda Phi Lambda').
    uniquenesses : (d,) u2 = 1 - h2.
    complexity : (d,) Hoffman's index of the pattern rows (:func:`hoffman_complexity`).
    ss_loadings : (L,) diag(Phi Lambda' Lambda), psych's "SS loadings" (for an orthogonal
        solution the column sums of squares; for an oblique one they include the factor
        overlap, so they do not sum to the total communality).
    proportion_variance : (L,) ss_loadings / d ("Proportion Var").
    cumulative_variance : (L,) its running sum ("Cumulative Var").
    rotation_matrix : (L, L) T with Lambda = A T (orthogonal) or A inv(T)' (oblique),
        columns following the reflection and order of the factors.
    rotation : the method name, or None.
    oblique : bool.
    converged : whether the rotation's iteration converged (True without rotation).
    """

    loadings: np.ndarray
    factor_correlation: np.ndarray
    structure: np.ndarray
    communalities: np.ndarray
    uniquenesses: np.ndarray
    complexity: np.ndarray
    ss_loadings: np.ndarray
    proportion_variance: np.ndarray
    cumulative_variance: np.ndarray
    rotation_matrix: np.ndarray
    rotation: str | None = None
    oblique: bool = False
    converged: bool = True


def factor_solution(A_std, rotation: str | None = None, *, normalize: bool = True,
                    **rotate_options) -> FactorSolution:
    """Rotate the standardized unrotated loadings ``A_std`` (d, L) and derive what
    psych::fa reports (see :class:`FactorSolution`).

    ``rotation`` is None (unrotated, still reflected and ordered) or one of
    :data:`elbokit.linear.rotations.ROTATIONS`; ``normalize`` is Kaiser's row
    normalization and ``rotate_options`` go to :func:`elbokit.linear.rotations.rotate`
    (gamma, power, delta, ...). The likelihood is unchanged: Lambda Phi Lambda' = A A'.
    """
    A = _check_loadings(A_std, "A_std")
    L = A.shape[1]
    if rotation is None:
        Lam, Phi, T, oblique, converged = A, np.eye(L), np.eye(L), False, True
    else:
        result = rotations.rotate(A, rotation, normalize=normalize, **rotate_options)
        Lam, Phi, T = result.loadings, result.factor_correlation, result.rotation_matrix
        oblique, converged = result.oblique, result.converged
    Lam, Phi, T = rotations.align_factors(Lam, Phi, T)
    return describe_solution(Lam, Phi, T, rotation=rotation, oblique=oblique,
                             converged=converged)


def describe_solution(loadings, factor_correlation, rotation_matrix, *,
                      rotation: str | None = None, oblique: bool | None = None,
                      converged: bool = True) -> FactorSolution:
    """The :class:`FactorSolution` of an already rotated and aligned pattern
    ``loadings`` (d, L) with factor correlations Phi (L, L): h2, u2, complexity and the
    variance explained (for a fitted model that stores its rotation)."""
    Lam = _check_loadings(loadings)
    Phi = np.asarray(factor_correlation, dtype=np.float64)
    if oblique is None:
        oblique = not np.allclose(Phi, np.eye(Phi.shape[0]))
    h2 = np.einsum("ik,kl,il->i", Lam, Phi, Lam)  # diag(Lambda Phi Lambda')
    ss = np.diag(Phi @ Lam.T @ Lam)
    proportion = ss / Lam.shape[0]
    return FactorSolution(
        loadings=Lam, factor_correlation=Phi, structure=Lam @ Phi, communalities=h2,
        uniquenesses=1.0 - h2, complexity=hoffman_complexity(Lam), ss_loadings=ss,
        proportion_variance=proportion, cumulative_variance=np.cumsum(proportion),
        rotation_matrix=np.asarray(rotation_matrix, dtype=np.float64), rotation=rotation,
        oblique=bool(oblique), converged=converged)


def factor_scores(X_std, loadings, factor_correlation, uniquenesses,
                  method: str = "regression") -> np.ndarray:
    """Factor score estimates (n, L) for standardized rows ``X_std`` (centred, each
    column divided by its sd) from a solution on the correlation scale.

    - ``"regression"`` (Thurstone 1935): F = X Sigma^-1 Lambda Phi with the model's
      Sigma = Lambda Phi Lambda' + diag(u2), the posterior mean E[f | x] for
      f ~ N(0, Phi) (psych's default uses the sample correlation instead of Sigma;
      the two agree at an exact fit).
    - ``"bartlett"`` (Bartlett 1937): F = X Psi^-1 Lambda (Lambda' Psi^-1 Lambda)^-1,
      Psi = diag(u2), the generalized least-squares estimate, conditionally unbiased
      (E[F | f] = f). Needs every uniqueness > 0 (no Heywood case).

    Both are rotation-equivariant: with Lambda = A inv(T)', Phi = T'T the scores are
    those of the unrotated solution times T.
    """
    check_choice(method, "method", ("regression", "bartlett"))
    Lam = _check_loadings(loadings)
    d, L = Lam.shape
    Phi = np.asarray(factor_correlation, dtype=np.float64)
    u2 = np.asarray(uniquenesses, dtype=np.float64)
    if Phi.shape != (L, L) or u2.shape != (d,):
        raise DataError(f"factor_correlation must be ({L}, {L}) and uniquenesses ({d},); got "
                        f"{Phi.shape} and {u2.shape}")
    X = np.asarray(X_std, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != d:
        raise DataError(f"X_std must have shape (n_samples, {d}); got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise DataError("X_std contains NaN or inf; factor scores need complete rows")
    if method == "regression":
        Sigma = Lam @ Phi @ Lam.T + np.diag(u2)
        return X @ np.linalg.solve(Sigma, Lam @ Phi)  # (n, L)
    if np.any(u2 <= 0):
        bad = np.flatnonzero(u2 <= 0)[:10].tolist()
        raise DataError(f"Bartlett scores need positive uniquenesses; item(s) {bad} have "
                        "u2 <= 0 (Heywood cases): use method='regression'")
    psi_inv_lam = Lam / u2[:, None]  # Psi^-1 Lambda, (d, L)
    return X @ np.linalg.solve(Lam.T @ psi_inv_lam, psi_inv_lam.T).T


def top_features(loadings: np.ndarray, names, n: int) -> dict[str, list[tuple[str, float]]]:
    """``{"F1": [(name, loading), ...], ...}``: for each factor (column of ``loadings``,
    d x L), the ``n`` features of largest absolute loading, largest first, with their
    signed loadings; ``names`` one per feature (x0, x1, ... when None)."""
    loadings = np.asarray(loadings, dtype=np.float64)
    d, L = loadings.shape
    names = [f"x{j}" for j in range(d)] if names is None else [str(v) for v in names]
    top = {}
    for k in range(L):
        order = np.argsort(-np.abs(loadings[:, k]), kind="stable")[:n]
        top[f"F{k + 1}"] = [(names[j], float(loadings[j, k])) for j in order]
    return top


def sorted_items(loadings: np.ndarray) -> np.ndarray:
    """psych's ``sort=TRUE``: the items grouped by the factor they load most on (by
    absolute value), factor 1 first, and within a group by decreasing loading."""
    main = np.argmax(np.abs(loadings), axis=1)
    size = np.abs(loadings[np.arange(loadings.shape[0]), main])
    return np.lexsort((-size, main))


def features_by_factor(loadings: np.ndarray, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` features to draw, grouped by factor as
    :func:`sorted_items`: every feature when there are no more, else the features that
    load most on each factor, taken in turn (each factor's first, then each one's
    second, ...) until ``limit``."""
    loadings = np.asarray(loadings, dtype=np.float64)
    d, L = loadings.shape
    if d <= limit:
        return sorted_items(loadings)
    ranked = np.argsort(-np.abs(loadings), axis=0, kind="stable")  # (d, L)
    chosen: dict[int, None] = {}
    for j in ranked.ravel():  # row r: the r-th feature of every factor
        chosen.setdefault(int(j))
        if len(chosen) == limit:
            break
    chosen = np.fromiter(chosen, dtype=np.intp)
    return chosen[sorted_items(loadings[chosen])]
