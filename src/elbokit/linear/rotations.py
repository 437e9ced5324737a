"""Factor rotations as R's ``stats`` and ``GPArotation`` compute them.

For an unrotated loading matrix ``A`` (d, L) a rotation picks an L x L matrix ``T``
(GPArotation's convention, Bernaards & Jennrich 2005):

* orthogonal (``varimax``, ``quartimax``): pattern ``Lambda = A T`` with ``T'T = I``
  and factor correlations ``Phi = I``;
* oblique (``promax``, ``oblimin``, ``quartimin``, ``geomin``): ``Lambda = A inv(T)'``
  with unit-length columns of ``T`` and ``Phi = T'T``.

In both cases ``Lambda Phi Lambda' == A A'``: the model covariance, hence the
likelihood, is unchanged.

Algorithms
----------
* ``varimax``: R's ``stats::varimax`` (Kaiser 1958; the SVD iteration of R, which
  stops when the criterion's relative gain falls below ``tol``, as ``eps=1e-5``).
  ``factanal(rotation="varimax")`` and ``psych::fa(rotate="varimax")`` call it.
* ``quartimax``, ``oblimin``/``quartimin``, ``geomin``: the gradient projection
  algorithm (GPA) of Jennrich (2001, 2002) as in ``GPArotation::GPForth`` and
  ``GPFoblq`` (Bernaards & Jennrich 2005): identity start, step doubled at each
  iteration then halved up to 10 times until the criterion drops by half the
  linearised decrease, stop when the Frobenius norm of the projected gradient is
  below ``tol``. Criteria are GPArotation's ``vgQ.quartimax``, ``vgQ.oblimin``
  (``gamma``; 0 is quartimin, Carroll 1953 / Jennrich 1979) and ``vgQ.geomin``
  (Yates 1987, ``delta`` as Browne 2001).
* ``promax`` (Hendrickson & White 1964): R's ``stats::promax(x, m=power)``, which
  ``factanal(rotation="promax")`` calls: the varimax solution (Kaiser-normalized when
  ``normalize``), then the least-squares map of it onto its elementwise power
  ``x |x|^(m-1)``, columns rescaled so that ``diag(Phi) = 1``.

Kaiser normalization (``normalize=True``, the default for every method) rotates the
rows of ``A`` divided by their lengths ``sqrt(h2_j)`` and multiplies them back (a zero
row keeps weight 1); ``T`` is the rotation of the normalized rows, so the convention
above holds for ``A`` itself.

Where other implementations differ
----------------------------------
* GPArotation's functions (``quartimax``, ``oblimin``, ``quartimin``, ``geominQ``)
  default to ``normalize=FALSE``, and ``psych::fa`` calls them without it, so
  ``psych::fa(rotate="oblimin")`` equals ``rotate(A, "oblimin", normalize=False)``.
  SPSS normalizes by default, as here.
* ``psych::fa(rotate="promax")`` is ``psych::kaiser(A, "Promax")``: it divides the rows
  by ``sqrt(h2)`` *before* the whole promax (so the power target is taken of the
  normalized varimax loadings) and multiplies back; ``stats::promax`` (here) takes the
  power of the varimax loadings on their own scale. The psych solution is
  ``rotate(A / h[:, None], "promax").loadings * h[:, None]``. stats' promax is
  therefore not invariant to a rescaling of the rows of ``A`` (its varimax step is);
  for standardized loadings (the correlation scale) that is no restriction.
* factor_analyzer 0.5.1's ``Rotator``: ``varimax`` is R's; ``promax`` follows psych's
  ``kaiser`` convention above when ``normalize=True`` and uses an unnormalized varimax
  when ``normalize=False``; ``quartimax``, ``oblimin``, ``quartimin`` and
  ``geomin_obl`` ignore ``normalize`` (never Kaiser-normalize), and its ``oblimin``
  ignores ``gamma != 0`` (its gradient becomes ``p * L``), so only ``gamma = 0``
  agrees with GPArotation.

References: Kaiser (1958) Psychometrika 23, 187-200; Hendrickson & White (1964) Br J
Stat Psychol 17, 65-70; Jennrich (2001) Psychometrika 66, 289-306; Jennrich (2002)
Psychometrika 67, 7-19; Bernaards & Jennrich (2005) Educ Psychol Meas 65, 676-696;
Browne (2001) Multivariate Behav Res 36, 111-150.
"""

from __future__ import annotations
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._warn import warn
from .._validation import check_data, check_float, check_int
from ..exceptions import ConvergenceWarning, DataError, ParameterError

__all__ = ["ORTHOGONAL", "OBLIQUE", "ROTATIONS", "Rotation", "rotate", "align_factors"]

ORTHOGONAL = ("varimax", "quartimax")
OBLIQUE = ("promax", "oblimin", "quartimin", "geomin")
ROTATIONS = ORTHOGONAL + OBLIQUE

_MAX_HALVINGS = 10  # GPArotation: `for (i in 0:10)` step-size halvings per iteration


@dataclass(frozen=True)
class Rotation:
    """A rotated solution of an unrotated loading matrix ``A``.

    Attributes
    ----------
    loadings : ndarray (d, L)
        Pattern loadings ``Lambda`` (``A T`` orthogonal, ``A inv(T)'`` oblique).
    rotation_matrix : ndarray (L, L)
        ``T`` in GPArotation's convention (its ``Th``).
    factor_correlation : ndarray (L, L)
        ``Phi = T'T`` (the identity for orthogonal rotations).
    method : str
    oblique : bool
    n_iter : int
        Iterations of the algorithm (for promax: of its varimax step).
    converged : bool
    """

    loadings: np.ndarray
    rotation_matrix: np.ndarray
    factor_correlation: np.ndarray
    method: str
    oblique: bool
    n_iter: int
    converged: bool


# --- criteria: each returns (f, dQ/dLambda), GPArotation's vgQ.<method> -------------

def _quartimax(L: np.ndarray) -> tuple[float, np.ndarray]:
    """Quartimax (Carroll 1953): f = -sum(L^4) / 4, to be minimised."""
    return -np.sum(L**4) / 4.0, -(L**3)


def _varimax(L: np.ndarray) -> tuple[float, np.ndarray]:
    """Varimax as a minimised criterion (vgQ.varimax): f = -||L^2 - colmeans(L^2)||^2/4."""
    QL = L**2 - np.mean(L**2, axis=0)
    return -np.sum(QL**2) / 4.0, -L * QL


def _oblimin(L: np.ndarray, gamma: float) -> tuple[float, np.ndarray]:
    """Oblimin (Jennrich 1979): f = sum(L^2 * (I - gamma/p 11') L^2 N) / 4, N = 11' - I."""
    L2 = L**2
    X = L2.sum(axis=1, keepdims=True) - L2  # L^2 N: (p, k)
    if gamma != 0:
        X = X - gamma * X.mean(axis=0)  # (I - gamma/p 11') X
    return np.sum(L2 * X) / 4.0, L * X


def _geomin(L: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Geomin (Yates 1987): f = sum_j (prod_k (L_jk^2 + delta))^(1/k)."""
    k = L.shape[1]
    L2 = L**2 + delta
    pro = np.exp(np.log(L2).sum(axis=1) / k)  # (p,)
    return float(np.sum(pro)), (2.0 / k) * (L / L2) * pro[:, None]


def _criterion(method: str, gamma: float = 0.0, delta: float = 0.01) -> Callable:
    """The minimised criterion of a GPA method, as a function of the loadings."""
    if method == "quartimax":
        return _quartimax
    if method == "varimax":
        return _varimax
    if method == "quartimin":
        return lambda L: _oblimin(L, 0.0)
    if method == "oblimin":
        return lambda L: _oblimin(L, gamma)
    if method == "geomin":
        return lambda L: _geomin(L, delta)
    raise ParameterError(f"rotation {method!r} has no gradient-projection criterion")


# --- algorithms ---------------------------------------------------------------------

def _gpa_orthogonal(A, criterion, T, tol, max_iter):
    """GPForth (Jennrich 2001): minimise Q(A T) over orthogonal T.
    Returns (T, n_iter, converged, projected gradient norm)."""
    def value_and_gradient(T):
        f, Gq = criterion(A @ T)
        return f, A.T @ Gq

    def project(T, G):  # on the tangent space of O(L)
        M = T.T @ G
        return G - T @ ((M + M.T) / 2)

    def retract(X):  # the nearest orthogonal matrix
        U, _, Vt = np.linalg.svd(X)
        return U @ Vt

    return _gpa(T, value_and_gradient, project, retract, tol, max_iter)


def _gpa_oblique(A, criterion, T, tol, max_iter):
    """GPFoblq (Jennrich 2002): minimise Q(A inv(T)') over T with unit-length columns.
    Returns (T, n_iter, converged, projected gradient norm)."""
    def value_and_gradient(T):
        T_inv = np.linalg.inv(T)
        L = A @ T_inv.T
        f, Gq = criterion(L)
        return f, -(L.T @ Gq @ T_inv).T

    def project(T, G):  # G - T diag(1'(T * G))
        return G - T * np.sum(T * G, axis=0)

    def retract(X):  # columns back to unit length
        return X / np.sqrt(np.sum(X**2, axis=0))

    return _gpa(T, value_and_gradient, project, retract, tol, max_iter)


def _gpa(T, value_and_gradient, project, retract, tol, max_iter):
    """GPArotation's gradient-projection iteration: a projected-gradient step with
    step doubling and up to ``_MAX_HALVINGS`` halvings until the Armijo condition
    f_new < f - s^2 step / 2 holds (s the projected gradient's norm)."""
    f, G = value_and_gradient(T)
    step = 1.0
    for it in range(max_iter + 1):
        Gp = project(T, G)
        s = np.linalg.norm(Gp)
        if s < tol:
            break
        step *= 2
        for _ in range(_MAX_HALVINGS + 1):
            T_new = retract(T - step * Gp)
            f_new, G_new = value_and_gradient(T_new)
            if f_new < f - 0.5 * s**2 * step:
                break
            step /= 2
        T, f, G = T_new, f_new, G_new
    return T, it, bool(s < tol), float(s)


def _varimax_svd(A, T, tol, max_iter):
    """R's stats::varimax iteration (Kaiser 1958 criterion, SVD update); stops when
    sum(singular values) grows by less than a factor (1 + tol).
    Returns (T, n_iter, converged, relative gain of the last iteration)."""
    p = A.shape[0]
    d = 0.0
    gain = np.inf
    for it in range(1, max_iter + 1):
        z = A @ T
        B = A.T @ (z**3 - z * (np.sum(z**2, axis=0) / p))
        U, sv, Vt = np.linalg.svd(B)
        T = U @ Vt
        d_past, d = d, float(np.sum(sv))
        gain = d / d_past - 1.0 if d_past > 0 else np.inf
        if d < d_past * (1 + tol):
            return T, it, True, gain
    return T, max_iter, False, gain


def _promax_step(x, power):
    """stats::promax after varimax: U = lstsq(x, x |x|^(m-1)), columns scaled so that
    diag(inv(U'U)) is matched (unit factor variances). Returns U (L, L)."""
    Q = x * np.abs(x) ** (power - 1)
    U = np.linalg.lstsq(x, Q, rcond=None)[0]
    try:
        d = np.diag(np.linalg.inv(U.T @ U))
    except np.linalg.LinAlgError:
        raise DataError("rotation='promax': the regression on the power target is "
                        "singular; use rotation='varimax'") from None
    return U * np.sqrt(d)


# --- public API ---------------------------------------------------------------------

def _check_loadings(A, method) -> np.ndarray:
    A = check_data(A, "loadings")
    if A.shape[1] < 2:
        raise ParameterError(
            f"rotation={method!r} needs at least 2 factors; got {A.shape[1]}")
    if method in OBLIQUE:  # Phi is not identified when a factor adds no direction
        sv = np.linalg.svd(A, compute_uv=False)
        rank = int(np.sum(sv > 1e-8 * sv[0])) if sv[0] > 0 else 0
        if rank < A.shape[1]:
            raise DataError(
                f"rotation={method!r} needs loadings of full column rank; these have rank "
                f"{rank} < {A.shape[1]} factors (a factor without loadings: fit fewer factors "
                "or use an orthogonal rotation)")
    return A


def _start(n_factors, random_state) -> np.ndarray:
    """Identity (GPArotation's default) or, with a seed, a random orthogonal matrix
    (QR of a Gaussian matrix, as psych's randStart)."""
    if random_state is None:
        return np.eye(n_factors)
    rng = np.random.default_rng(random_state)
    Q, R = np.linalg.qr(rng.standard_normal((n_factors, n_factors)))
    return Q * np.sign(np.diag(R))


def _kaiser_weights(A) -> np.ndarray:
    """Row lengths sqrt(h2_j) (Kaiser 1958); 1 for a zero row, which no rotation moves."""
    w = np.sqrt(np.sum(A**2, axis=1))
    return np.where(w > 0, w, 1.0)


def _check_options(method, gamma, power, delta, max_iter, tol):
    if method not in ROTATIONS:
        choices = ", ".join(repr(m) for m in ROTATIONS)
        raise ParameterError(f"rotation must be one of {choices}; got {method!r}")
    check_float(gamma, "gamma")
    check_float(power, "power", low=1.0)
    check_float(delta, "delta", low=0.0, low_inclusive=False)
    check_int(max_iter, "max_iter", minimum=1)
    check_float(tol, "tol", low=0.0, low_inclusive=False)


def rotate(A, method, *, normalize=True, gamma=0.0, power=4, delta=0.01, max_iter=1000,
           tol=1e-5, random_state=None) -> Rotation:
    """Rotate the loading matrix ``A`` (d, L) to simple structure.

    Parameters
    ----------
    A : array-like (d, L)
        Unrotated loadings (for interpretation: standardized, on the correlation scale).
    method : {"varimax", "quartimax", "promax", "oblimin", "quartimin", "geomin"}
    normalize : bool
        Kaiser normalization: rotate the rows divided by ``sqrt(h2_j)``, then scale back.
    gamma : float
        Oblimin's gamma (0: quartimin, 0.5: biquartimin); ``oblimin`` only.
    power : float >= 1
        Promax's power m (R's default 4); ``promax`` only.
    delta : float > 0
        Geomin's delta (GPArotation's 0.01); ``geomin`` only.
    max_iter : int
        Iterations allowed; a ``ConvergenceWarning`` when used up.
    tol : float
        GPA methods: bound on the norm of the projected gradient (GPArotation's eps);
        varimax and promax: bound on the relative gain of the criterion (stats' eps).
        GPA's line search cannot resolve a gradient norm much below 1e-8 (its
        sufficient-decrease test meets rounding), so a smaller tol ends in a warning.
        stats' 1e-5 leaves varimax loadings about 1e-4 to 1e-3 from the optimum
        (R's answer to the digit); 1e-10 reaches it to about 1e-7.
    random_state : None, int or Generator
        None starts from the identity (as R); otherwise a random orthogonal start.

    Returns
    -------
    Rotation
        Unaligned (factors neither reflected nor ordered; see :func:`align_factors`).
    """
    _check_options(method, gamma, power, delta, max_iter, tol)
    A = _check_loadings(A, method)
    w = _kaiser_weights(A) if normalize else np.ones(A.shape[0])
    An = A / w[:, None]
    T0 = _start(A.shape[1], random_state)
    if method in ("varimax", "promax"):
        T, n_iter, converged, gap = _varimax_svd(An, T0, tol, max_iter)
    elif method == "quartimax":
        T, n_iter, converged, gap = _gpa_orthogonal(An, _quartimax, T0, tol, max_iter)
    else:
        crit = _criterion(method, gamma, delta)
        T, n_iter, converged, gap = _gpa_oblique(An, crit, T0, tol, max_iter)
    if not converged:
        what = ("relative criterion gain" if method in ("varimax", "promax")
                else "projected gradient norm")
        warn(f"rotation={method!r} did not converge in {max_iter} iterations "
             f"({what} {gap:.2e} > tol {tol:g}); increase max_iter",
             ConvergenceWarning)
    if method == "promax":
        U = T @ _promax_step(A @ T, power)  # stats::promax: U <- xx$rotmat %*% U
        T = np.linalg.inv(U).T
        loadings = A @ U
    elif method in OBLIQUE:
        loadings = A @ np.linalg.inv(T).T
    else:
        loadings = A @ T
    oblique = method in OBLIQUE
    phi = T.T @ T if oblique else np.eye(A.shape[1])
    return Rotation(loadings=loadings, rotation_matrix=T, factor_correlation=phi,
                    method=method, oblique=oblique, n_iter=int(n_iter),
                    converged=converged)


def align_factors(loadings, factor_correlation=None, rotation_matrix=None):
    """Reflect and order factors as ``psych::fa`` does.

    Each factor is reflected so that its column of loadings sums to a non-negative
    value, then the factors are ordered by decreasing variance explained,
    ``diag(Phi Lambda' Lambda)`` (the column sums of squares when ``Phi = I``; ties
    keep their order). ``Phi`` is reflected and permuted on both sides and the columns
    of ``T`` follow, so ``Lambda = A T`` / ``A inv(T)'`` and ``Lambda Phi Lambda'``
    are unchanged.

    Parameters
    ----------
    loadings : array-like (d, L)
    factor_correlation : array-like (L, L) or None
        None means orthogonal factors (identity).
    rotation_matrix : array-like (L, L) or None

    Returns
    -------
    (loadings, factor_correlation, rotation_matrix)
        ``rotation_matrix`` is None when none was given.
    """
    Lam = check_data(loadings, "loadings")
    k = Lam.shape[1]
    phi = np.eye(k) if factor_correlation is None else check_data(
        factor_correlation, "factor_correlation")
    if phi.shape != (k, k):
        raise DataError(f"factor_correlation must be ({k}, {k}) for {k} factors; "
                        f"got {phi.shape}")
    T = None if rotation_matrix is None else check_data(rotation_matrix, "rotation_matrix")
    if T is not None and T.shape != (k, k):
        raise DataError(f"rotation_matrix must be ({k}, {k}) for {k} factors; got {T.shape}")
    signs = np.where(Lam.sum(axis=0) < 0, -1.0, 1.0)
    Lam = Lam * signs
    phi = phi * np.outer(signs, signs)
    explained = np.diag(phi @ Lam.T @ Lam)
    order = np.argsort(-explained, kind="stable")
    Lam, phi = Lam[:, order], phi[np.ix_(order, order)]
    if T is not None:
        T = (T * signs)[:, order]
    return Lam, phi, T
