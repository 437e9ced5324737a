"""Numbers to compare models by: log p(x) in nats (exact or importance-sampled),
active units, KL per latent dimension, reconstruction error, bits/dim.

Every function takes any fitted model that implements the model protocol
(:class:`elbokit.protocol.LatentVariableModel`) and reads it through that protocol only:
the classical models (PCA, PPCA, FA, linear autoencoder, VBPCA) have an exact Gaussian
posterior and log-likelihood; a VAE has an encoder q(z|x), so its log p(x) is estimated
by importance sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from dataclasses import dataclass

import numpy as np

from ._warn import warn
from . import _math
from ._validation import check_int
from .exceptions import ParameterError
from .progress import progress_bar
from .protocol import as_model, optional

MAX_IMPORTANCE = 1_000_000  # importance samples per row of log_likelihood


@dataclass
class LogLikelihood:
    """Per-sample log p(x) (nats) and its summary.

    ``stderr`` is the standard error of ``mean`` over the data points; ``exact`` is
    True for closed-form values, False for importance-sampled estimates with
    ``n_importance`` samples per point."""

    values: np.ndarray
    exact: bool
    n_importance: int | None

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def stderr(self) -> float:
        n = self.values.size
        return float(np.std(self.values, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")


def check_importance(k, name: str = "n_importance") -> int:
    """k, the importance samples per row, checked before anything is fitted or drawn:
    an integer in [1, ``MAX_IMPORTANCE``] (each row costs k passes of the decoder; the
    estimate's own memory is bounded for any k, its time is not)."""
    k = check_int(k, name, minimum=1)
    if k > MAX_IMPORTANCE:
        raise ParameterError(f"{name} = {k} importance samples per row is more than "
                             f"{MAX_IMPORTANCE:,} (each costs a decoder pass per row: the "
                             "estimate would not end; 5,000 is the usual choice)")
    return k


def log_likelihood(model, X, *, n_importance: int = 5000, batch_size: int | None = None,
                   random_state: int = 0, progress: bool = False, y=None) -> LogLikelihood:
    """log p(x) for each row of X.

    Exact for the linear-Gaussian models. For a VAE: the importance-sampled estimate
    log 1/k sum_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x) (the IWAE bound with k =
    ``n_importance``), batched over data and samples so memory is bounded for any k.
    ``y``: the labels or covariates of a conditional VAE, which gives log p(x|y).
    """
    model = as_model(model)
    if y is not None:  # only a conditional model takes y (it names the problem if not)
        return LogLikelihood(np.asarray(model.log_likelihood_samples(
            X, n_importance=check_importance(n_importance),
            batch_size=batch_size, random_state=random_state, y=y)), False, n_importance)
    if model.exact_log_likelihood:
        return LogLikelihood(np.asarray(model.log_likelihood_samples(X), dtype=np.float64),
                             True, None)
    k = check_importance(n_importance)
    total = len(X) if isinstance(X, Sized) else None  # the model checks X itself
    with progress_bar(total=total, desc=f"log p(x), k={k}", disable=not progress,
                      unit="pt") as bar:
        values = model.log_likelihood_samples(X, n_importance=k, batch_size=batch_size,
                                              random_state=random_state, progress=bar.update)
    return LogLikelihood(np.asarray(values), False, k)


def elbo(model, X, *, n_samples: int = 1, random_state: int = 0) -> np.ndarray:
    """Per-sample ELBO. For the classical models q is the exact posterior, so the
    ELBO equals log p(x) (the lecture's E step makes the bound tight)."""
    return np.asarray(as_model(model).elbo_samples(X, n_samples=n_samples,
                                                   random_state=random_state),
                      dtype=np.float64)


def posterior_moments(model, X) -> tuple[np.ndarray, np.ndarray]:
    """Mean (n, L) and per-dimension variance (n, L) of q(z|x) (or of p(z|x)); for the
    linear models the probabilistic reading (for PCA and the linear autoencoder this
    differs from their transform, which returns projections/codes)."""
    return as_model(model).posterior_moments(X)


def active_units(model, X, *, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Burda et al. (2016): unit j is active if Cov_x(E_q[z_j | x]) > threshold.

    Returns the count and the per-unit activity (variance of the posterior mean)."""
    mean, _ = posterior_moments(model, X)
    activity = np.var(mean, axis=0)
    return int(np.sum(activity > threshold)), activity


KL_SAMPLES = 64  # draws per row for a mean over rows (the per-row default is the model's)


def kl_per_dimension(model, X, *, n_samples: int = KL_SAMPLES,
                     random_state: int = 0) -> np.ndarray:
    """Mean over x of KL(q(z_j|x) || p(z_j)) for each latent dimension j (nats): the
    marginal of q on dimension j against the marginal of the model's OWN prior
    (``kl_to_prior(per_dimension=True)``: closed form for N(0, I), Monte Carlo with
    ``n_samples`` draws for a mixture or VampPrior). The mean over rows averages the
    draws of every row, so 64 per row suffice: on digits tiled to 10,000 rows (L = 8,
    VampPrior) 64 draws agree with 256 to within 0.001 nats, at a quarter of the time."""
    kl = as_model(model).kl_to_prior(X, per_dimension=True, n_samples=n_samples,
                                     random_state=random_state)
    return np.mean(np.asarray(kl, dtype=np.float64), axis=0)


def kl_to_prior(model, X, *, n_samples: int = KL_SAMPLES, random_state: int = 0) -> float:
    """E_x KL(q(z|x) || p(z)) in nats per row, against the model's own prior (closed
    form for a Gaussian q and N(0, I), Monte Carlo E_q[log q - log p] otherwise)."""
    kl = as_model(model).kl_to_prior(X, n_samples=n_samples, random_state=random_state)
    return float(np.mean(kl))


def reconstruction_error(model, X) -> float:
    """Mean over samples of ||x - x_hat||^2, x_hat the model's reconstruction; with
    missing (NaN) entries, the sum over a row's observed entries scaled to all d (the
    mean squared error of its observed entries times d), rows with none left out."""
    X = np.asarray(X, dtype=np.float64)
    squared = (X - as_model(model).reconstruct(X)) ** 2
    observed = ~np.isnan(X)
    if observed.all():
        return float(np.mean(np.sum(squared, axis=1)))
    counts = observed.sum(axis=1)
    rows = counts > 0
    per_row = np.where(observed, squared, 0.0).sum(axis=1)[rows] / counts[rows]
    return float(np.mean(per_row) * X.shape[1]) if rows.any() else float("nan")


def per_feature_errors(model, X, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared reconstruction error of each feature (its squared units), over the
    observed (non-NaN) entries of X, and the feature's variance (``y``: the labels a
    conditional VAE reconstructs with)."""
    X = np.asarray(X, dtype=np.float64)
    model = as_model(model)
    X_hat = model.reconstruct(X) if y is None else model.reconstruct(X, y=y)
    squared = (X - np.asarray(X_hat, dtype=np.float64)) ** 2
    observed = ~np.isnan(X)
    count = np.maximum(observed.sum(axis=0), 1)
    mse = np.where(observed, squared, 0.0).sum(axis=0) / count
    return mse, np.nanvar(X, axis=0)


def bits_per_dim(log_px: np.ndarray | float, n_features: int, *, levels: int | None = None) -> float:
    """Negative log-likelihood in bits per dimension.

    With ``levels=None`` it is the continuous density of the data as given:
    -log p(x) / (d ln 2). With ``levels=K`` (e.g. 256 for 8-bit images scaled to
    [0, 1]) the density is read as a model of the discrete values under uniform
    dequantization, each pixel bin having width 1/K: -(log p(x) - d log K) / (d ln 2).
    """
    n_features = check_int(n_features, "n_features", minimum=1)
    value = float(np.mean(log_px))
    if levels is not None:
        value -= n_features * math.log(check_int(levels, "levels", minimum=2))
    return _math.bits_per_dim(value, n_features)


def dequantize(X: np.ndarray, *, levels: int = 256, random_state: int = 0) -> np.ndarray:
    """Uniform dequantization of 8-bit-like data scaled to [0, 1]: (round(x (K-1)) + u) / K,
    u ~ U(0, 1). Evaluating a density at these points and subtracting d log K gives a
    lower bound (in expectation) on the discrete log-likelihood (Theis et al. 2016)."""
    rng = np.random.default_rng(random_state)
    counts = np.rint(np.asarray(X, dtype=np.float64) * (levels - 1))
    return ((counts + rng.random(counts.shape)) / levels).astype(np.float32)


# --------------------------------------------------------------------------- the codes
#
# What the latent codes are good for: linear probes (a linear classifier on the codes),
# the mutual information between x and z under q, and (plots.py) latent arithmetic.

PROBE_LABELS = (100, 1000, None)  # labelled training rows per probe; None: all
PROBE_CLASSIFIERS = ("logistic", "svm")
MI_POINTS = 2000  # rows behind the aggregate posterior q_N(z) of mutual_information
COLLAPSE_SHARE = 0.5  # warn when fewer than this share of the latent units are active


def codes(model, X) -> np.ndarray:
    """The features a model gives each row of X, (n, L): its ``transform`` (PCA's
    projections, the posterior means of PPCA/FA/VBPCA/VAE, the autoencoder's code; any
    scikit-learn transformer's)."""
    return np.asarray(model.transform(X), dtype=np.float64)


def probe_classifier(name: str = "logistic", random_state: int = 0):
    """The linear probe: standardize the codes, then scikit-learn's
    ``LogisticRegression(max_iter=2000)`` (``"logistic"``) or
    ``LinearSVC(max_iter=5000)`` (``"svm"``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from ._validation import check_choice

    check_choice(name, "classifier", PROBE_CLASSIFIERS)
    head = (LogisticRegression(max_iter=2000) if name == "logistic"
            else LinearSVC(max_iter=5000, random_state=random_state))
    return make_pipeline(StandardScaler(), head)


def probe_subset(n_train: int, n_labels: int | None, random_state: int = 0) -> np.ndarray:
    """The rows of the training set whose labels a probe with ``n_labels`` may use: a
    seeded random subset (all rows for None)."""
    order = np.random.default_rng(random_state).permutation(n_train)
    return order if n_labels is None else order[:n_labels]


def linear_probe(model, X_train, y_train, X_test, y_test, *, n_labels=PROBE_LABELS,
                 classifiers=PROBE_CLASSIFIERS, random_state: int = 0) -> dict:
    """Linear-probe accuracy of the model's codes (:func:`codes`): each classifier of
    :func:`probe_classifier` is trained on the codes of ``n`` labelled training rows
    (:func:`probe_subset`; for each ``n`` of ``n_labels``, None meaning all) and scored on
    the codes of the test rows. Returns ``{classifier: {"100": acc, "1000": acc,
    "all": acc}}`` (accuracy in [0, 1]; None where n exceeds the training rows)."""
    from .exceptions import DataError

    train_codes, test_codes = codes(model, X_train), codes(model, X_test)
    y_train, y_test = _labels(y_train, len(train_codes), "y_train"), \
        _labels(y_test, len(test_codes), "y_test")
    result = {}
    for name in classifiers:
        result[name] = {}
        for n in n_labels:
            key = "all" if n is None else str(check_int(n, "n_labels", minimum=2))
            if n is not None and n > len(train_codes):
                result[name][key] = None
                continue
            rows = probe_subset(len(train_codes), n, random_state)
            if np.unique(y_train[rows]).size < 2:
                raise DataError(f"the {len(rows)} labelled rows of the probe hold one class; "
                                "a classifier needs at least two")
            probe = probe_classifier(name, random_state).fit(train_codes[rows], y_train[rows])
            result[name][key] = float(probe.score(test_codes, y_test))
    return result


def _labels(y, n: int, name: str) -> np.ndarray:
    from .exceptions import DataError

    if y is None:
        raise DataError(f"{name} is missing: linear probes need class labels")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{name} has shape {y.shape}; it needs one label per row ({n})")
    return y


def mutual_information(model, X, *, n_points: int = MI_POINTS, random_state: int = 0) -> float:
    """I(x; z) under q, in nats: the aggregate-posterior estimate of Hoffman & Johnson
    (2016). With q(z) = E_x q(z|x), E_x KL(q(z|x) || p(z)) = I(x; z) + KL(q(z) || p(z)),
    and I(x; z) = E_x E_{q(z|x)} [log q(z|x) - log q(z)]. The estimate takes N =
    ``n_points`` rows of X (a seeded subset), one draw z_i ~ q(z|x_i) each, and the
    mixture q_N(z) = 1/N sum_j q(z|x_j) for q(z): I = 1/N sum_i [log q(z_i|x_i) -
    log q_N(z_i)]. It is at most log N (choose N well above exp(I)); q(z|x) is the
    diagonal Gaussian of the protocol's ``posterior_moments`` (the VAE's Gaussian
    encoder and PPCA exactly; a flow's or FA's correlated posterior by its moments)."""
    own, aggregate = _aggregate_terms(model, X, n_points, random_state)
    return float(np.mean(own - aggregate))


def _aggregate_terms(model, X, n_points: int, random_state: int):
    """(log q(z_i|x_i), log q_N(z_i)) for one draw z_i per row of a seeded subset of X;
    neither depends on the prior."""
    from .exceptions import NoDensityError

    n_points = check_int(n_points, "n_points", minimum=2)
    X = np.asarray(X)
    if X.shape[0] > n_points:
        X = X[np.sort(np.random.default_rng(random_state).choice(X.shape[0], n_points,
                                                               replace=False))]
    mean, var = (np.asarray(a, dtype=np.float64) for a in posterior_moments(model, X))
    if not np.all(var > 0):
        raise NoDensityError(f"{type(model).__name__}'s codes are points (q(z|x) has no "
                             "spread): I(x; z) is infinite and no KL applies")
    z = mean + np.sqrt(var) * np.random.default_rng(random_state + 1).standard_normal(mean.shape)
    return _math.aggregate_posterior_terms(mean, var, z)


def latent_diagnostics(model, X, *, n_points: int = MI_POINTS, threshold: float = 0.01,
                       random_state: int = 0) -> dict:
    """What q(z|x) uses of the latent space, in nats per row: ``kl`` = E_x KL(q(z|x) ||
    p(z)) against the model's own prior (:func:`kl_to_prior`) = ``mutual_information`` +
    ``marginal_kl`` (KL(q(z) || p(z)), the remainder), ``kl_per_dimension`` (against the
    prior's marginals: for a mixture prior these need not sum to ``kl``),
    ``active_units`` (of ``latent_dim``, Burda et al.'s threshold) and, for a model
    with several stochastic layers (``latent_layers_``, z1 first), ``active_per_layer``
    (a count per layer). Warns
    (:class:`~elbokit.exceptions.PosteriorCollapseWarning`) when fewer than half of the units are active: the posterior has collapsed onto the prior
    for the others, and they carry no information about x."""
    from .exceptions import PosteriorCollapseWarning

    kl_dims = kl_per_dimension(model, X)
    n_active, activity = active_units(model, X, threshold=threshold)
    mi = mutual_information(model, X, n_points=n_points, random_state=random_state)
    latent = int(kl_dims.size)
    if latent and n_active < COLLAPSE_SHARE * latent:
        warn(f"posterior collapse: {n_active} of {latent} latent units are active "
             f"(I(x; z) = {mi:.2f} nats); the others match the prior and carry no "
             "information about x", PosteriorCollapseWarning)
    kl = kl_to_prior(model, X, random_state=random_state)
    out = {"kl": kl, "mutual_information": mi, "marginal_kl": kl - mi,
           "kl_per_dimension": [float(v) for v in kl_dims], "active_units": n_active,
           "latent_dim": latent}
    layers = optional(model, "latent_layers_")
    if layers is not None and len(layers) > 1:
        ends = np.cumsum(layers)
        out["active_per_layer"] = [int(np.sum(activity[end - size:end] > threshold))
                                   for size, end in zip(layers, ends)]
    return out
