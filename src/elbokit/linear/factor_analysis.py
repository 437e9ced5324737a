"""Factor analysis by maximum likelihood: complete data (and out of core) by the
correlation-scale profile likelihood of :mod:`._fa_ml` (R's factanal); data with
missing entries by EM on the observed entries, as in the lecture's slides "EM for
Factor Analysis", "Factor Analysis E step" and "Factor Analysis M step".

Model: x = W z + mu + noise, z ~ N(0, I), noise ~ N(0, Psi) with Psi diagonal, so
p(x) = N(mu, Psi + W W^T). EM never needs the data after one pass: with the ML
covariance S (divisor N) every E- and M-step quantity is a d x L or L x L product.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import linalg

from .._warn import warn
from .._anndata import reads_anndata
from .._iteration import (absolute_change_below, finite_steps, iterate, single_blas_thread,
                          squarem)
from .._math import (LOG_2PI, LowRankGaussian, ObservedPosteriors, augmented_m_step, cho_solve,
                     cholesky, observed_logpdf)
from .._validation import check_float, check_int
from ..exceptions import ConvergenceWarning, ParameterError, TrainingError
from ._wide import check_wide_covariance
from ._gaussian import (LinearGaussianMixin, spiky_features, constant_features,
                        describe_features, sample_covariance, variance_scale,
                        warn_constant_features)
from ._factor_solution import FactorSolutionMixin
from ._fa_ml import (AUTO_STARTS, AUTO_STARTS_FEATURES, MLResult, ProfileLikelihood,
                      fit_correlation, loglike_gradient_norm)


def fa_em_step(S: np.ndarray, W: np.ndarray, psi: np.ndarray, floor):
    """One EM iteration of factor analysis from the covariance S; ``floor`` (scalar or
    per feature, (d,)) is the smallest noise variance the M step may return.

    Returns ``(W_new, psi_new, loglike)`` where ``loglike`` is the mean
    log-likelihood per sample of the *input* parameters (so a sequence of these
    values is the log-likelihood trace EM must never lower).

        E step (lecture):  G = (I + W' Psi^-1 W)^-1,  E[z_i] = G W' Psi^-1 x_i,
                           E[z_i z_i'] = G + E[z_i] E[z_i]'.
        Averaged over the data through S:
            (1/N) sum x_i E[z_i]'   = S Psi^-1 W G
            (1/N) sum E[z_i z_i']   = G + G W' Psi^-1 S Psi^-1 W G
        M step (lecture):  W = [sum x E[z]'] [sum E[zz']]^-1,
                           Psi = diag(S - W (1/N) sum E[z] x').
    """
    gaussian = LowRankGaussian(W, psi)
    S_piw = S @ gaussian.psi_inv_W  # S Psi^-1 W, (d, L)
    loglike = gaussian.mean_logpdf_from_cov(S, S_piw)
    G = gaussian.posterior_cov()  # (L, L)
    x_Ez = S_piw @ G  # (d, L)
    Ezz = G + G @ (gaussian.psi_inv_W.T @ S_piw) @ G  # (L, L)
    W_new = cho_solve(cholesky(Ezz), x_Ez.T).T
    psi_new = np.maximum(np.diag(S) - np.sum(W_new * x_Ez, axis=1), floor)
    return W_new, psi_new, loglike




#: the default ``tol``: on the largest |d loglike / d log psi_j| (complete data) ...
GRADIENT_TOL = 1e-9
#: ... and on the change of the mean log-likelihood per EM cycle (missing data)
LOGLIKE_TOL = 1e-7
#: above this many (non-constant) features the fit is EM from the profile start
EM_FEATURES = 256
#: Heywood guard: no feature's noise variance goes below this times its own variance
HEYWOOD_FLOOR = 1e-9
#: a non-constant feature whose noise variance ends below this times its variance (a
#: communality above 0.9999) is reported as a Heywood case
HEYWOOD_WARN = 1e-4


#: above this many features the profile iteration uses warm-started subspace iteration
#: for the top eigenvectors instead of a full eigendecomposition each step
EXACT_EIGH_FEATURES = 256


def _top_eigenpairs(A: np.ndarray, L: int, start: np.ndarray | None):
    """Top-L eigenpairs of the symmetric A, in increasing order: exact (``eigh``) for
    small A or without ``start``; else three steps of subspace iteration from the
    previous eigenvectors ``start`` (d, L + 5) and a Rayleigh-Ritz projection."""
    d = A.shape[0]
    if start is None or d <= EXACT_EIGH_FEATURES:
        k = min(L + 5, d) if d > EXACT_EIGH_FEATURES else L
        eigenvalues, U = linalg.eigh(A, subset_by_index=[d - k, d - 1], check_finite=False)
        return eigenvalues[-L:], U[:, -L:], U
    Q = start
    for _ in range(3):
        Q, _ = np.linalg.qr(A @ Q)
    ritz, V = np.linalg.eigh(Q.T @ A @ Q)
    U = Q @ V
    return ritz[-L:], U[:, -L:], U


def fa_profile_step(S: np.ndarray, psi: np.ndarray, L: int, floor: np.ndarray,
                    start: np.ndarray | None = None):
    """One step of the profile-likelihood iteration scikit-learn's FactorAnalysis runs
    (Barber, BRML, algorithm 21.1): the optimal W given Psi, from the top L eigenpairs
    (Lambda, U) of Psi^-1/2 S Psi^-1/2, W = Psi^1/2 U (Lambda - I)_+^1/2, then
    Psi = diag(S - W W'). Returns ``(W, psi_new, basis)``; ``basis`` warm-starts the
    next step's eigenvectors (see :func:`_top_eigenpairs`)."""
    root = np.sqrt(psi)
    eigenvalues, U, basis = _top_eigenpairs(S / np.outer(root, root), L, start)
    W = root[:, None] * U * np.sqrt(np.maximum(eigenvalues - 1.0, 0.0))
    return W, np.maximum(np.diag(S) - np.sum(W * W, axis=1), floor), basis


def fa_initial_loadings(S: np.ndarray, L: int, floor: np.ndarray, *, tol: float = 1e-5,
                        max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """EM's start: the profile-likelihood iteration (:func:`fa_profile_step`) from
    Psi = diag(S), run until the mean log-likelihood changes by less than ``tol`` nats.
    It reaches the basin of a better maximum than EM from a PPCA start does on some
    data (standardized breast cancer: +0.97 nats), and it is scale-equivariant, so the
    whole fit is: rescaling feature j by c_j rescales row j of W by c_j."""
    psi = np.maximum(np.diag(S).copy(), floor)
    W, previous, basis = np.zeros((S.shape[0], L)), -np.inf, None
    for _ in range(max_iter):
        W_new, psi_new, basis = fa_profile_step(S, psi, L, floor, basis)
        if not (np.all(np.isfinite(W_new)) and np.all(np.isfinite(psi_new))):
            break
        loglike = LowRankGaussian(W_new, psi_new).mean_logpdf_from_cov(S)
        if not np.isfinite(loglike) or loglike < previous:
            break  # keep the last improving iterate
        W, psi = W_new, psi_new
        if loglike - previous < tol:
            break
        previous = loglike
    return W, psi


class FactorAnalysis(FactorSolutionMixin, LinearGaussianMixin):
    """Maximum-likelihood factor analysis, as R's factanal computes it: on the
    correlation matrix of complete data (the profile likelihood in the log-uniquenesses,
    L-BFGS-B from ``n_init`` starts, Newton steps, the exact limit at Heywood cases;
    EM above 256 features), or by EM on the observed entries of each sample (NaN
    entries: missing at random); then rotated (``rotation``) and read as
    :meth:`factor_solution` (loadings, factor correlations, h2, u2, fit statistics).

    Factor analysis is scale-equivariant: multiplying feature j by s_j multiplies row j
    of W by s_j and psi_j by s_j^2 and lowers the log-likelihood by log s_j. The fit
    keeps this exactly (the start, the floors and the stopping rule are all relative).

    Parameters
    ----------
    n_components : int or None
        Number of factors L (1 <= L <= n_features); None uses ``n_features``
        (scikit-learn's convention).
    tol : float or None
        Complete data: stop when the largest |d loglike / d log psi_j| (the gradient of
        the mean log-likelihood per sample in the log-uniquenesses, at the bounds
        projected) is below ``tol``; None: 1e-9. With NaN in X, or above 256 features
        (EM, see ``convergence_["method"]``): stop when the mean log-likelihood rises by
        less than ``tol`` nats per EM iteration; None: 1e-7.
    max_iter : int
        Maximum number of iterations per start (L-BFGS-B and Newton; EM cycles with
        NaN); ``ConvergenceWarning`` if reached without meeting ``tol``.
    n_init : int or "auto"
        Number of starts (complete data): the profile-likelihood start, R's factanal
        start (1 - L / 2d) / diag(R^-1), then random uniquenesses; the best likelihood
        is kept. "auto": 2 (the profile start and factanal's) up to 256 features, else 1.
    random_state : None, int or numpy Generator
        Seeds the random starts; None uses the seed 0, so a fit is reproducible.
    noise_floor : float
        Noise variance given to exactly constant features (the corner pixels of
        digits), relative to the mean feature variance (default 1e-3); they are named
        in a warning. No other feature is floored, except that a noise variance never
        goes below 1e-9 of its feature's own variance (a Heywood case: the factors
        explain the feature exactly), reported in a warning as well.
    min_noise_variance : float or None
        An absolute lower bound on every noise variance, in the units of X (default
        None: none). Only for like-for-like comparisons with a model that floors its
        variances so, such as a Gaussian VAE's ``min_variance``; it makes the fit
        depend on the units.
    rotation : None or one of :data:`elbokit.linear.rotations.ROTATIONS`
        Rotate the factors after fitting, on the correlation scale: orthogonal
        "varimax" (R's stats::varimax) or "quartimax", oblique "promax" (R's
        stats::promax, m = 4), "oblimin"/"quartimin" or "geomin" (GPArotation). The
        likelihood is unchanged; oblique factors are correlated (``factor_correlation_``).
        Needs at least 2 factors.
    normalize : bool
        Kaiser's row normalization for the rotation (default True, as R's varimax and
        SPSS; psych::fa calls GPArotation without it).
    standardize : bool
        Fit to the standardized data (see :class:`LinearGaussianMixin`); for FA this
        changes only which units ``components_`` and ``noise_variance_`` are in.
    verbose : bool
        Show a progress bar.

    Attributes
    ----------
    components_ : (L, d) loadings W' in the model's units (scikit-learn's convention),
        in the basis where z ~ N(0, I): the rotated loadings for orthogonal rotations,
        diag(s) Lambda C (C C' = Phi) for oblique ones. Read ``loadings_`` instead.
    loadings_ : (d, L) standardized pattern loadings of the rotated factors (the
        correlation scale; reflected to positive sums, ordered by variance), as R's
        factanal and psych::fa print them.
    factor_correlation_ : (L, L) Phi, the identity unless the rotation is oblique.
    rotation_matrix_ : (L, L) T: Lambda = A T (orthogonal) or A inv(T)' (oblique).
    structure_, communalities_, uniquenesses_, variance_explained_ : the structure
        matrix Lambda Phi, h2, u2 = 1 - h2 and the SS loadings (see
        :meth:`factor_solution`).
    noise_variance_ : (d,) diagonal of Psi.
    mean_ : (d,) mean of the data.
    loglike_ : list of the mean log-likelihood per sample at each iteration of the best
        start; it never decreases (tested) and ends at ``score(X)``. With NaN in X: of
        the observed entries (EM), and
        an iteration is one SQUAREM cycle (two EM steps and a safeguarded
        extrapolation; Varadhan & Roland 2008).
    n_iter_ : number of iterations run (the best start's, complete data).
    convergence_ : dict (complete data): ``gradient_norm`` (the largest |d loglike /
        d log psi_j| at the end), ``converged`` (below ``tol``), ``n_iter``, ``n_init``,
        ``method`` and ``loglike_per_start`` (correlation scale, before polishing).
    constant_features_ : indices of the exactly constant features.
    heywood_features_ : indices of the Heywood cases (noise variance ~0).
    feature_scale_ : (d,) the standard deviations divided out (standardize=True only).
    """

    kind = "fa"  # the registry name (elbokit.kinds)

    def __init__(self, n_components=None, *, tol=None, max_iter=5000, noise_floor=1e-3,
                 min_noise_variance=None, rotation=None, normalize=True, standardize=False,
                 verbose=False, n_init="auto", random_state=None):
        self.n_components = n_components
        self.n_init = n_init
        self.random_state = random_state
        self.tol = tol
        self.max_iter = max_iter
        self.noise_floor = noise_floor
        self.min_noise_variance = min_noise_variance
        self.rotation = rotation
        self.normalize = normalize
        self.standardize = standardize
        self.verbose = verbose

    def _allow_nan_now(self) -> bool:
        return True  # in memory; out-of-core data are checked chunk by chunk

    @reads_anndata
    def fit(self, X, y=None):
        """Fit W, Psi and mu to ``X`` (n_samples, n_features) by EM; NaN entries are
        missing values. ``X`` may also be out of core (memmap, .npy path, directory of
        .npy shards, Dask array), complete then."""
        source = self._out_of_core(X)
        if source is None:
            X = self._validate(X, reset=True)
            n, d = X.shape
        else:
            n, d = source.n_samples, source.n_features
        self._check_params()
        L = self._check_n_components(n, d, max_components=d)
        self._check_rotation(L, d)
        check_wide_covariance(n, d, "FactorAnalysis")  # before any d x d is formed
        missing = None if source is not None else np.isnan(X)
        if missing is not None and missing.any():
            return self._fit_missing(np.asarray(X, dtype=np.float64), missing, L)
        mean, S = sample_covariance(X) if source is None else \
            self._moments(source, data_precision=True)[:2]
        mean, S, center, scale = self._standardize_moments(mean, S)
        spiky = spiky_features(X) if source is None and d <= EM_FEATURES else None
        self._fit_covariance(mean, S, n, L, scale, spiky=spiky)
        self.loglike_ = [v - self._log_jacobian(scale) for v in self.loglike_]
        self._finish_standardize(center, scale)
        return self

    def _check_params(self):
        if self.tol is not None:
            check_float(self.tol, "tol", low=0.0)
        if self.n_init != "auto":
            check_int(self.n_init, "n_init", minimum=1)
        try:
            if isinstance(self.random_state, (bool, np.bool_)):
                raise TypeError("a bool is not a seed")  # default_rng(True) takes it as 1
            self._rng()
        except (TypeError, ValueError):
            raise ParameterError("random_state must be None, an int or a numpy Generator; "
                                 f"got {self.random_state!r}") from None
        check_int(self.max_iter, "max_iter", minimum=1)
        check_float(self.noise_floor, "noise_floor", low=0.0, low_inclusive=False)
        if self.min_noise_variance is not None:
            check_float(self.min_noise_variance, "min_noise_variance", low=0.0)
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise ParameterError(f"normalize must be True or False; got {self.normalize!r}")

    def _floors(self, mean, variances, scale):
        """Per-feature noise floors: ``noise_floor`` x the mean variance for constant
        features (named in a warning), ``HEYWOOD_FLOOR`` x its own variance for the rest."""
        constant = constant_features(mean, variances)
        self.constant_features_ = warn_constant_features(
            constant, "FactorAnalysis", "their noise variance is set to "
            f"{self.noise_floor:g} x the mean feature variance so the log-likelihood stays "
            "finite", getattr(self, "feature_names_in_", None))
        floor = HEYWOOD_FLOOR * variances
        floor[constant] = self.noise_floor * variance_scale(mean, variances)
        if self.min_noise_variance is not None:  # in the units of X
            floor = np.maximum(floor, self.min_noise_variance / (1.0 if scale is None
                                                                 else scale**2))
            varying = np.ones(variances.shape[0], dtype=bool)
            varying[constant] = False
            if varying.any() and np.all(floor[varying] >= variances[varying]):
                # every feature all noise: the optimiser's box is empty (scipy's AttributeError)
                unit = 1.0 if scale is None else scale[varying] ** 2
                raise ParameterError(
                    f"min_noise_variance={self.min_noise_variance:g} is at or above the "
                    f"variance of every feature (the largest: "
                    f"{np.max(variances[varying] * unit):.4g}), leaving the factors nothing "
                    "to explain; use a smaller floor")
        return floor, constant

    def _run_em(self, step, state, desc):
        """Iterate ``step``; a numerically singular step becomes a TrainingError."""
        guarded = finite_steps(step, model="FactorAnalysis", hint=_SINGULAR,
                               arrays=lambda: (state["W"], state["psi"]))
        # the iterations are small products and L x L solves: BLAS threads only add
        # synchronisation (ruinous on a busy machine), so run them single-threaded
        with single_blas_thread():
            self.loglike_ = iterate(guarded, converged=absolute_change_below(self._tol(LOGLIKE_TOL)),
                                    max_iter=self.max_iter, model="FactorAnalysis",
                                    desc=desc, verbose=self.verbose)
        self.n_iter_ = len(self.loglike_)

    def _fit_covariance(self, mean, S, n_samples, L, scale=None, spiky=None):
        """ML from the mean and ML covariance of the data (also used out of core): the
        correlation-scale profile likelihood of :mod:`._fa_ml` on the non-constant
        features (their rows of W are 0, their noise variance the constant floor)."""
        start = time.perf_counter()
        variances = np.diag(S).copy()
        floor, constant = self._floors(mean, variances, scale)
        keep = np.flatnonzero(~np.isin(np.arange(S.shape[0]), constant))
        W, psi = np.zeros((S.shape[0], L)), floor.copy()
        if keep.size:
            sd = np.sqrt(variances[keep])
            R = S[np.ix_(keep, keep)] / np.outer(sd, sd)  # the correlation matrix
            if not np.all(np.isfinite(R)):
                raise TrainingError("FactorAnalysis: the covariance of X is not finite in "
                                    f"float64; {_SINGULAR}")
            result = self._fit_correlation(R, min(L, keep.size), floor[keep] / variances[keep],
                                           None if spiky is None else spiky[keep])
            W[keep, :result.W.shape[1]] = result.W * sd[:, None]
            psi[keep] = result.psi * sd**2
        final = LowRankGaussian(W, psi).mean_logpdf_from_cov(S)
        if keep.size:  # the trace on the data's scale: shifted by the constant features'
            # log-density and the Jacobian of the correlation scale; a Heywood case is
            # stored at its floor, a hair below the limit psi = 0 that the last iterates
            # reach: those (above score(X)) are left out, so the trace ends at score(X)
            const = np.setdiff1d(np.arange(S.shape[0]), keep)
            offset = -0.5 * (np.sum(np.log(variances[keep])) + np.sum(
                LOG_2PI + np.log(psi[const]) + variances[const] / psi[const]))
            self.loglike_ = [v + offset for v in result.trace if v + offset < final] + [final]
        else:
            result = None
            self.loglike_ = [final]
        self._record_convergence(result)
        self._store(W, psi, mean, L, variances, constant)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _n_starts(self, d: int) -> int:
        if self.n_init == "auto":
            return AUTO_STARTS if d <= AUTO_STARTS_FEATURES else 1
        return self.n_init

    def _fit_correlation(self, R, L, lower, spiky=None):
        """The best of the starts on the correlation matrix R (see :func:`fit_correlation`)."""
        lower = np.maximum(lower, HEYWOOD_FLOOR)
        if R.shape[0] > EM_FEATURES:
            return self._fit_correlation_em(R, L, lower)
        try:
            with single_blas_thread():  # small eigh: threads only wait
                _, profile = fa_initial_loadings(R, L, lower, tol=1e-4, max_iter=5)
                return fit_correlation(R, L, lower, profile_start=profile,
                                       n_init=self._n_starts(R.shape[0]), rng=self._rng(),
                                       spiky=spiky,
                                       tol=self._tol(GRADIENT_TOL), max_iter=self.max_iter)
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise TrainingError(f"FactorAnalysis: the fit became numerically singular ({exc}); "
                                f"{_SINGULAR}") from None

    def _fit_correlation_em(self, R, L, lower):
        """Above EM_FEATURES features: the profile start and EM on R until the mean
        log-likelihood changes by less than ``tol`` (1e-7), as before issue 28 (at
        d = 784 one exact eigendecomposition costs what a whole EM fit does); the
        gradient of the profile likelihood at the end is reported, not required."""
        with single_blas_thread():
            W, psi = fa_initial_loadings(R, L, lower)
        state = {"W": W, "psi": psi}

        def step():
            state["W"], state["psi"], loglike = fa_em_step(R, state["W"], state["psi"], lower)
            return loglike

        self._run_em(step, state, "FA EM")
        W, psi = state["W"], state["psi"]
        loglike = LowRankGaussian(W, psi).mean_logpdf_from_cov(R)
        x, lo = np.log(psi), np.log(lower)
        gradient = ProfileLikelihood(R, L).gradient(x)
        return MLResult(psi=psi, W=W, loglike=loglike, gradient_norm=loglike_gradient_norm(
            x, gradient, lo, np.maximum(lo, 0.0)), converged=True, n_iter=self.n_iter_,
            trace=self.loglike_ + [loglike], loglike_per_start=[loglike],
            method=f"EM (loglike change < {self._tol(LOGLIKE_TOL):g})")

    def _tol(self, default: float) -> float:
        return default if self.tol is None else self.tol

    def _rng(self):
        return np.random.default_rng(0 if self.random_state is None else self.random_state)

    def _record_convergence(self, result) -> None:
        """``convergence_``, ``n_iter_`` and the ConvergenceWarning of a complete-data fit."""
        if result is None:  # every feature constant: nothing to fit
            self.convergence_ = {"gradient_norm": 0.0, "converged": True, "n_iter": 0,
                                 "n_init": 0, "method": "none", "loglike_per_start": []}
            self.n_iter_ = 0
            return
        self.n_iter_ = result.n_iter
        self.convergence_ = {"gradient_norm": result.gradient_norm,
                             "converged": bool(result.converged), "n_iter": result.n_iter,
                             "n_init": len(result.loglike_per_start), "method": result.method,
                             "loglike_per_start": list(result.loglike_per_start)}
        if result.converged:
            return
        if result.n_iter >= self.max_iter:
            why = f"did not converge in max_iter={self.max_iter} iterations"
        else:
            why = "stopped where the likelihood's rounding hides further progress"
        warn(f"FactorAnalysis {why} (largest gradient |d loglike / d log psi| "
             f"{result.gradient_norm:.3g} > tol={self._tol(GRADIENT_TOL):g}); raise max_iter "
             "or tol.",
             ConvergenceWarning)

    def _fit_missing(self, X, missing, L):
        """Exact EM on the observed entries: per-sample posteriors given x_o, and the
        mean estimated together with W (augmented loadings), as PPCA(solver="em")."""
        start = time.perf_counter()
        mask, X, X0, center, scale, mean, variances = self._missing_data_start(
            X, missing, "FactorAnalysis")
        floor, constant = self._floors(mean, variances, scale)
        # start from the covariance of the mean-imputed data
        Xc = np.where(missing, 0.0, X - mean)
        W, psi = fa_initial_loadings(Xc.T @ Xc / X.shape[0], L, floor)
        state = {"W": W, "mu": mean, "psi": psi}

        def em_step(params):
            W, mu, psi = params
            post = ObservedPosteriors(X0 - mu, mask, W, psi)
            loglike = float(post.logpdf().mean())
            W, mu, residual, counts = augmented_m_step(X0, mask, post)
            return (W, mu, np.maximum(residual / counts, floor)), loglike

        def loglike_of(params):
            return float(observed_logpdf(X0 - params[1], mask, params[0], params[2]).mean())

        # each iteration: one SQUAREM cycle (two EM steps and an extrapolation kept only
        # when it does not lower the likelihood): EM on the observed entries converges
        # slowly (10,000 plain steps on breast cancer with 10% missing; 300 cycles)
        cycle = squarem(em_step, loglike_of,
                        project=lambda p: (p[0], p[1], np.maximum(p[2], floor)))

        def step():
            (state["W"], state["mu"], state["psi"]), loglike = cycle(
                (state["W"], state["mu"], state["psi"]))
            return loglike

        self._run_em(step, state, "FA EM (missing)")
        self.loglike_.append(loglike_of((state["W"], state["mu"], state["psi"])))
        jacobian = self._log_jacobian(scale, mask)
        self.loglike_ = [v - jacobian for v in self.loglike_]
        self._store(state["W"], state["psi"], state["mu"], L, variances, constant)
        self._finish_standardize(center, scale)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _store(self, W, psi, mean, L, variances, constant):
        heywood = np.setdiff1d(np.flatnonzero(psi <= HEYWOOD_WARN * variances), constant)
        if heywood.size:
            where = describe_features(heywood, getattr(self, "feature_names_in_", None))
            warn(f"FactorAnalysis: {heywood.size} feature(s) are Heywood cases ({where}"
                 f"): the {L} factors explain them almost exactly and their "
                 "noise variance went to ~0. Consider fewer factors or dropping "
                 "near-duplicate features.", UserWarning)
        self.heywood_features_ = heywood
        self.components_ = self._rotate(W, psi).T  # the rotated factors, z ~ N(0, I) basis
        self.noise_variance_ = psi
        self.mean_ = mean
        self.n_components_ = L

    def _model_loadings(self):
        return self.components_.T

    def _model_noise_diag(self):
        return self.noise_variance_


_SINGULAR = ("the data may be rank-deficient or too large for float64 at this scale; "
             "try fewer factors or standardize=True")
