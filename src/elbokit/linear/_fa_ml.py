"""Maximum-likelihood factor analysis on the correlation scale, by the concentrated
(profile) likelihood in the log-uniquenesses, as R's ``factanal`` computes it.

For a correlation matrix R (d, d) and uniquenesses Psi = diag(psi), the loadings that
maximise the likelihood are W = Psi^1/2 U (Lambda - I)_+^1/2 with (Lambda, U) the top-L
eigenpairs of Psi^-1/2 R Psi^-1/2 (Joreskog 1967; Lawley & Maxwell 1971, ch. 4). The
mean log-likelihood per sample of N(0, Psi + W W') is then -1/2 (d log 2 pi + F(x)),

    F(x) = sum_j x_j + sum_j R_jj exp(-x_j) + sum_{i<=L} [log l_i - l_i + 1]_{l_i > 1},

x = log psi, l_i the eigenvalues; its gradient is (factanal's FAgr in log psi)

    dF/dx_j = 1 - R_jj / psi_j + sum_{i<=L} (l_i - 1)_+ U_ji^2 = (W W' + Psi - R)_jj / psi_j.

Only the top-L eigenpairs enter, so R may be singular (no log det R, no R^-1). F is
minimised by L-BFGS-B on box bounds in x (below: the Heywood floor; above: log 1, a
uniqueness is at most the variance) from several starts, and the best is polished by
Newton steps with a Hessian from central differences of the analytic gradient where d
is small, until the projected gradient of the mean log-likelihood is below ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize
from scipy.linalg import lapack

LOG_2PI = float(np.log(2.0 * np.pi))

#: up to this many features the best start is polished by Newton steps (2 d gradient
#: evaluations per Hessian)
NEWTON_FEATURES = 100
#: the number of starts n_init="auto" uses (the profile start and factanal's; more
#: are seeded random ones) up to AUTO_STARTS_FEATURES features; above, the profile
#: start alone. Measured on scikit-learn's five tables, L = 1..6, three splits (78
#: fits): four more random starts found a better maximum in 4 fits, by at most 0.0014
#: nats/sample, and cost as much again as the two deterministic starts
AUTO_STARTS = 2
AUTO_STARTS_FEATURES = 256


@dataclass
class MLResult:
    """The best of the starts: correlation-scale uniquenesses ``psi`` (d,) and loadings
    ``W`` (d, L), the mean log-likelihood per sample of N(0, Psi + W W') for the
    correlation matrix, the projected gradient's largest entry (d loglike / d log psi),
    and the log-likelihood after each iteration of the best start (non-decreasing)."""

    psi: np.ndarray
    W: np.ndarray
    loglike: float
    gradient_norm: float
    converged: bool
    n_iter: int
    trace: list = field(default_factory=list)
    loglike_per_start: list = field(default_factory=list)
    method: str = "L-BFGS-B"


class ProfileLikelihood:
    """F(x) and its gradient for the correlation matrix R (see the module docstring),
    with the top-L eigenpairs of the last point cached."""

    def __init__(self, R: np.ndarray, L: int):
        self.R, self.L, self.d = R, L, R.shape[0]
        self.r = np.diag(R).copy()
        self.n_eval = 0

    def eigenpairs(self, x: np.ndarray):
        """Top-L eigenpairs (increasing) of Psi^-1/2 R Psi^-1/2, psi = exp(x)."""
        root = np.exp(-0.5 * x)
        A = self.R * np.outer(root, root)
        self.n_eval += 1
        if self.L == 0:
            return np.zeros(0), np.zeros((self.d, 0))
        # LAPACK's dsyevr directly: scipy's eigh wrapper costs as much as a 30 x 30 solve
        eigenvalues, U, found, _, info = lapack.dsyevr(A, range="I", il=self.d - self.L + 1,
                                                       iu=self.d, compute_v=1)
        if info != 0 or found != self.L:
            raise linalg.LinAlgError(f"dsyevr failed (info {info})")
        return eigenvalues[:found], U[:, :found]

    def value_and_gradient(self, x: np.ndarray):
        """(F(x), dF/dx); the mean log-likelihood is -(d log 2pi + F) / 2."""
        eigenvalues, U = self.eigenpairs(x)
        excess = np.maximum(eigenvalues - 1.0, 0.0)
        big = eigenvalues > 1.0
        scaled = self.r * np.exp(-x)
        value = float(np.sum(x) + np.sum(scaled)
                      + np.sum(np.log(eigenvalues[big]) - excess[big]))
        gradient = 1.0 - scaled + (U * U) @ excess
        return value, gradient

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self.value_and_gradient(x)[1]

    def loglike(self, value: float) -> float:
        return -0.5 * (self.d * LOG_2PI + value)

    def loadings(self, x: np.ndarray) -> np.ndarray:
        """The optimal W (d, L) given psi = exp(x)."""
        eigenvalues, U = self.eigenpairs(x)
        return np.exp(0.5 * x)[:, None] * U * np.sqrt(np.maximum(eigenvalues - 1.0, 0.0))


#: the gradient norm at which L-BFGS-B hands over to the Newton polish (small d)
POLISH_FROM = 1e-5

#: a uniqueness below exp(HEYWOOD_SPAN) = 1e4 times its floor is a Heywood case
HEYWOOD_SPAN = float(np.log(1e4))


def projected_gradient(x, gradient, lower, upper) -> np.ndarray:
    """The gradient of F with the entries that point out of the box [lower, upper]
    at an active bound set to 0 (a descent step would leave the box there)."""
    g = gradient.copy()
    g[(x <= lower) & (g > 0)] = 0.0
    g[(x >= upper) & (g < 0)] = 0.0
    return g


def loglike_gradient_norm(x, gradient, lower, upper) -> float:
    """Largest |d loglike / d log psi_j| over the free directions (loglike = -F/2 - c)."""
    return 0.5 * float(np.max(np.abs(projected_gradient(x, gradient, lower, upper)),
                              initial=0.0))


def factanal_start(R: np.ndarray, L: int) -> np.ndarray | None:
    """R's factanal start, psi = (1 - L / 2d) / diag(R^-1); None if R is singular."""
    try:
        factor = linalg.cho_factor(R, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return None
    inverse_diag = np.diag(linalg.cho_solve(factor, np.eye(R.shape[0]), check_finite=False))
    if not np.all(np.isfinite(inverse_diag)) or np.any(inverse_diag <= 0):
        return None
    return (1.0 - 0.5 * L / R.shape[0]) / inverse_diag


def starting_points(R, L, n_init, rng, profile_start) -> list:
    """``n_init`` starting uniquenesses: the profile-likelihood start, factanal's
    (when R is invertible), then seeded random ones, psi_j ~ U(0.1, 0.9) (0.05 .. 1
    after the box); the deterministic ones first."""
    starts = [profile_start]
    if n_init > 1:
        fa = factanal_start(R, L)
        if fa is not None:
            starts.append(fa)
    while len(starts) < n_init:
        starts.append(rng.uniform(0.1, 0.9, R.shape[0]))
    return starts[:n_init]


def lbfgs(problem: ProfileLikelihood, x0, bounds, tol: float, max_iter: int):
    """L-BFGS-B on F from x0; returns (x, F, n_iter, trace of F per iteration)."""
    trace = [problem.value_and_gradient(x0)[0]]

    def record(intermediate_result):
        trace.append(float(intermediate_result.fun))

    result = optimize.minimize(problem.value_and_gradient, x0, jac=True, method="L-BFGS-B",
                               bounds=bounds, callback=record,
                               options={"maxiter": max_iter, "gtol": 2.0 * tol,
                                        "ftol": 1e-15, "maxcor": 20, "maxls": 40})
    if result.fun <= trace[-1]:
        if len(trace) == 1 or result.fun < trace[-1]:
            trace.append(float(result.fun))
    return result.x, float(result.fun), int(result.nit), trace


def newton_polish(problem: ProfileLikelihood, x, value, lower, upper, tol, max_iter):
    """Projected Newton steps on the free coordinates, Hessian from central differences
    of the analytic gradient (symmetrised, eigenvalues floored to stay a descent
    direction), backtracking so that F never rises. Returns (x, F, n_iter, trace)."""
    trace, n_iter = [], 0
    gradient = problem.gradient(x)
    for n_iter in range(1, max_iter + 1):
        g = projected_gradient(x, gradient, lower, upper)
        free = (g != 0.0) | ((x > lower) & (x < upper))
        if 0.5 * np.max(np.abs(g), initial=0.0) < tol or not free.any():
            return x, value, n_iter - 1, trace
        step = newton_direction(problem, x, gradient, free)
        moved = line_search(problem, x, value, gradient, step, lower, upper)
        if moved is None:
            return x, value, n_iter - 1, trace
        if moved[1] < min(trace, default=value):  # the trace lists strict improvements
            trace.append(moved[1])
        x, value, gradient = moved
    return x, value, n_iter, trace


def newton_direction(problem, x, gradient, free) -> np.ndarray:
    """-H^-1 g on the free coordinates (zero elsewhere), H by central differences."""
    index = np.flatnonzero(free)
    H = np.empty((index.size, index.size))
    h = 1e-5
    for column, j in enumerate(index):
        e = np.zeros_like(x)
        e[j] = h
        H[:, column] = (problem.gradient(x + e)[index] - problem.gradient(x - e)[index]) / (2 * h)
    eigenvalues, V = linalg.eigh(0.5 * (H + H.T))
    eigenvalues = np.maximum(np.abs(eigenvalues), 1e-8 * max(eigenvalues.max(), 1e-300))
    step = np.zeros_like(x)
    step[index] = -V @ ((V.T @ gradient[index]) / eigenvalues)
    return step


def line_search(problem, x, value, gradient, step, lower, upper):
    """Backtrack along the projected step until F falls; None if it never does.

    Near a Heywood case (psi_j ~ 1e-9) F sums terms of size 1/psi_j that cancel, so it
    is known only to ~eps / psi_j: a step that changes F by less than that rounding is
    taken when it lowers the projected gradient instead."""
    noise = 16.0 * np.finfo(float).eps * (abs(value) + float(np.sum(problem.r * np.exp(-x))))
    norm = np.max(np.abs(projected_gradient(x, gradient, lower, upper)))
    for t in 0.5 ** np.arange(30):
        trial = np.clip(x + t * step, lower, upper)
        trial_value, trial_gradient = problem.value_and_gradient(trial)
        if trial_value < value:
            return trial, trial_value, trial_gradient
        if trial_value <= value + noise and np.max(np.abs(projected_gradient(
                trial, trial_gradient, lower, upper))) < 0.5 * norm:
            return trial, trial_value, trial_gradient
    return None


def optimize_from(problem, starts, lo, hi, tol, max_iter, spiky=None, polish_at_floor=True):
    """The best L-BFGS-B run over ``starts`` (x values), polished by Newton (small d).
    A run that leaves a ``spiky`` feature (mask (d,), see
    :func:`elbokit.linear._gaussian.spiky_features`) at a Heywood case ranks below every
    run that does not. Returns (x, F, n_iter, trace of F, F per start, method)."""
    bounds = list(zip(lo, hi))
    # with the Newton polish to come, L-BFGS-B only has to find the basin
    coarse = max(tol, POLISH_FROM) if problem.d <= NEWTON_FEATURES else tol
    runs = [lbfgs(problem, np.clip(x0, lo, hi), bounds, coarse, max_iter) for x0 in starts]

    def rank(run):
        improper = spiky is not None and bool(np.any(spiky & (run[0] <= lo + HEYWOOD_SPAN)))
        return (improper, run[1])

    x, value, n_iter, trace = min(runs, key=rank)
    method = "L-BFGS-B"
    # at a Heywood case F is known only to ~eps / psi_j and Newton flails in that
    # rounding (17 steps x d gradients on breast cancer): the exact limit
    # (heywood_limit, in fit_correlation) does the polishing there instead
    at_floor = bool(np.any(x <= lo + HEYWOOD_SPAN)) and polish_at_floor is False
    if problem.d <= NEWTON_FEATURES and n_iter < max_iter and not at_floor:
        x, value, more, polish = newton_polish(problem, x, value, lo, hi, tol, max_iter - n_iter)
        n_iter, trace = n_iter + more, trace + polish
        method = "L-BFGS-B + Newton" if more else method
    return x, value, n_iter, trace, [run[1] for run in runs], method


def fit_correlation(R: np.ndarray, L: int, lower: np.ndarray, *, profile_start,
                    n_init: int, rng, tol: float, max_iter: int, spiky=None) -> MLResult:
    """ML factor analysis of the correlation (or any covariance with unit-free bounds)
    matrix R: the best of ``n_init`` L-BFGS-B runs, then Newton polish (d small), then
    the exact Heywood limit (:func:`heywood_limit`) for the uniquenesses at the floor.

    ``lower`` (d,) are the smallest uniquenesses allowed (the upper bound is
    max(1, lower)); ``profile_start`` (d,) the first start; ``tol`` the tolerance on
    the largest |d loglike / d log psi_j|; ``max_iter`` bounds the iterations per start.
    """
    problem = ProfileLikelihood(R, L)
    lo = np.log(lower)
    hi = np.maximum(lo, 0.0)
    starts = [np.log(np.maximum(s, 1e-300))
              for s in starting_points(R, L, n_init, rng, profile_start)]
    x, value, n_iter, trace, per_start, method = optimize_from(
        problem, starts, lo, hi, tol, max_iter, spiky, polish_at_floor=False)
    result = _result(problem, x, value, n_iter, trace, per_start, method, lo, hi, tol)
    polished = problem.d > NEWTON_FEATURES or not np.any(x <= lo + HEYWOOD_SPAN)
    seen = None
    for _ in range(L):  # each pass may find more features at the floor
        heywood = np.flatnonzero(np.log(result.psi) <= lo + HEYWOOD_SPAN)  # < 1e4 x floor
        if seen is not None and np.array_equal(heywood, seen):
            break
        seen = heywood
        limit = _heywood_pass(R, L, lower, lo, result, method, tol, max_iter)
        if limit is None:
            break
        result, polished = limit, True
    if not polished:  # the floor was not the maximum after all: Newton on everything
        x, value, more, trace, _, method = optimize_from(problem, [x], lo, hi, tol,
                                                         max_iter - n_iter)
        result = _result(problem, x, value, n_iter + more, result.trace[:-1] + [
            problem.loglike(v) for v in trace], per_start, method, lo, hi, tol, traced=True)
    return result


def _result(problem, x, value, n_iter, trace, per_start, method, lo, hi, tol,
            traced=False) -> MLResult:
    gradient_norm = loglike_gradient_norm(x, problem.gradient(x), lo, hi)
    return MLResult(psi=np.exp(x), W=problem.loadings(x), loglike=problem.loglike(value),
                    gradient_norm=gradient_norm, converged=gradient_norm < tol,
                    n_iter=n_iter, trace=trace if traced else [problem.loglike(v) for v in trace],
                    loglike_per_start=[problem.loglike(v) for v in per_start], method=method)


def _heywood_pass(R, L, lower, lo, result, method, tol, max_iter) -> MLResult | None:
    """The exact limit for the uniquenesses of ``result`` at the floor, when it is at
    least as good (up to the rounding of F there); else None."""
    heywood = np.flatnonzero(np.log(result.psi) <= lo + HEYWOOD_SPAN)
    if not 0 < heywood.size <= L or result.n_iter >= max_iter:
        return None
    limit = heywood_limit(R, L, lower, heywood, np.log(result.psi), tol,
                          max_iter - result.n_iter)
    if limit is None or limit.loglike <= result.loglike - 1e-6:  # rounding of F
        return None
    limit.trace = result.trace + [v for v in limit.trace if v > result.trace[-1]]
    limit.n_iter += result.n_iter
    limit.loglike_per_start = result.loglike_per_start
    limit.method = f"{method}; Heywood limit ({heywood.size})"
    return limit


def heywood_limit(R, L, lower, H, x, tol, max_iter) -> MLResult | None:
    """The fit on the face psi_H = 0 of the Heywood cases H, without the rounding of
    F there (terms of size 1/psi_j): with psi_H = 0, x_H spans k = |H| factors, so
    (Joreskog 1967, sec. 5) log p(x) = log N(x_H | 0, R_HH) + log p(x_F | x_H), and
    x_F | x_H is a factor model with L - k factors of the partial covariance
    R_FF - R_FH R_HH^-1 R_HF. W = [[B, 0], [R_FH B^-T, W_2]] with B B' = R_HH.
    None where R_HH is singular. The uniquenesses of H are returned at ``lower``."""
    d, k = R.shape[0], H.size
    F = np.setdiff1d(np.arange(d), H)
    try:
        B = linalg.cholesky(R[np.ix_(H, H)], lower=True, check_finite=False)
    except linalg.LinAlgError:
        return None
    coupling = linalg.solve_triangular(B, R[np.ix_(H, F)], lower=True).T  # R_FH B^-T
    partial = R[np.ix_(F, F)] - coupling @ coupling.T
    loglike_H = -0.5 * (k * LOG_2PI + 2.0 * np.sum(np.log(np.diag(B))) + k)
    lo, W = np.log(lower[F]), np.zeros((d, L))
    hi = np.maximum(lo, 0.0)
    if L == k:  # no factor left: the diagonal model, psi_F = diag(partial)
        xF = np.clip(np.log(np.maximum(np.diag(partial), 1e-300)), lo, hi)
        value = float(np.sum(xF + np.diag(partial) * np.exp(-xF)))
        n_iter, trace, method, gradient_norm = 0, [value], "closed form", 0.0
        problem = ProfileLikelihood(partial, 0)
    else:
        problem = ProfileLikelihood(partial, L - k)
        xF, value, n_iter, trace, _, method = optimize_from(problem, [x[F]], lo, hi, tol,
                                                            max_iter)
        gradient_norm = loglike_gradient_norm(xF, problem.gradient(xF), lo, hi)
        W[F, k:] = problem.loadings(xF)
    W[H, :k], W[F, :k] = B, coupling
    psi = lower.copy()
    psi[F] = np.exp(xF)
    return MLResult(psi=psi, W=W, loglike=loglike_H + problem.loglike(value),
                    gradient_norm=gradient_norm, converged=gradient_norm < tol,
                    n_iter=n_iter, trace=[loglike_H + problem.loglike(v) for v in trace],
                    method=method)
