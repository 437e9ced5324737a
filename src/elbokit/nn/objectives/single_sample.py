"""The lecture's two estimators of the ELBO from L draws z_j ~ q(z|x): L_A
(:class:`MonteCarloELBO`, objective "a") and L_B (:class:`AnalyticKLELBO`, objective
"b"). Both are unbiased for the ELBO; they differ in how the KL is estimated (and so in
variance), and each has a separate KL term, per dimension (``kl_dims``), which the
KL-weighted training loss (:mod:`elbokit.nn.objectives.loss`) reweights."""

from __future__ import annotations

from .._math import diag_gaussian_log_prob, gaussian_log_prob, kl_diag_gaussians_dims
from .base import ELBOEstimator, model_prior, path_log_weights, prior_log_prob, sample_mean


def _log_prior_dims(model, z):
    """Per-coordinate terms of log p(z) summing to it, like z: the prior's own when it
    factorizes over dimensions, else log p(z) / L in each (only the sum is a density)."""
    prior = model_prior(model)
    dims = prior.log_prob_dims(z)
    if dims is not None:
        return dims
    return (prior.log_prob(z) / z.shape[-1]).unsqueeze(-1).expand_as(z)


def _mc_kl_dims(post, model=None):
    """Monte-Carlo KL per dimension: the sample mean of log q(z|x) - log p(z), split
    into per-coordinate terms (for a flow, coordinate i carries its share -s_i of the
    log-determinant; only the sum is a KL)."""
    terms = post.log_q_dims() - _log_prior_dims(model, post.z)
    return terms if post.z.dim() == 2 else terms.mean(0)


class MonteCarloELBO(ELBOEstimator):
    """L_A (slide "Computing the loss"): the Monte-Carlo average of
    log p(x, z) - log q(z|x), z ~ q(z|x); the KL is estimated from the samples too.
    Selected by ``objective="a"``. ``gradient="stl"``: sticking the landing (see
    :mod:`elbokit.nn.objectives`)."""

    name = "a"
    gradients = ("stl",)
    config_fields = {"gradient": "gradient"}

    def __init__(self, gradient: str = "standard"):
        self.gradient = self._check_gradient(gradient)

    def from_posterior(self, model, x, post):
        if post.gaussian:
            return self.from_encoding(model, x, post.mean, post.logvar, post.z)
        if self.gradient != "standard":
            self._gaussian_for_gradient(post)
        return sample_mean(self.posterior_log_weights(model, x, post), post.z)

    def from_encoding(self, model, x, mean, logvar, z):
        if self.gradient == "stl":  # log q with its parameters stopped: no score term
            return sample_mean(path_log_weights(self, model, x, mean, logvar, z)[0], z)
        return sample_mean(self.log_weights(model, x, mean, logvar, z), z)

    def kl_dims(self, post, model=None):
        return _mc_kl_dims(post, model)


class AnalyticKLELBO(ELBOEstimator):
    """L_B (slide "A lower variance estimator of the loss"): closed-form -KL(q || p)
    plus the Monte-Carlo average of log p(x|z). With a flow posterior, the Gaussian
    base's KL in closed form plus a Monte-Carlo estimate of the flow's change to it
    (see :mod:`elbokit.nn.objectives`). Selected by ``objective="b"`` (the default).

    A prior without a closed-form KL (a mixture: ``prior="mog"`` with K > 1, or
    ``"vamp"``) gets a closed-form KL to a reference Gaussian r(z) = N(m, diag v), the
    prior's moment-matched Gaussian (``Prior.reference_gaussian``, held constant), plus
    a Monte-Carlo estimate of the difference, over the same draws z_j ~ q(z|x) that
    estimate the reconstruction term (z_0j the Gaussian draws before the flow, if any):

        KL(q || p) = KL(q_0 || r) + E_q[log r(z_0) - log |det dz/dz_0| - log p(z)]
                   ~= KL(q_0 || r) + 1/L sum_j [log r(z_0j) - log|det|_j - log p(z_j)]

    (exact: KL(q || p) = -H[q] - E_q[log p], and -H[q_0] = KL(q_0 || r) + E_{q_0}[log r];
    the log-determinant is 0 without a flow). Unbiased for every r, since only
    expectations are sampled. With r near p the sampled term is small: for one draw
    under a 3-component mixture in 3 dimensions its variance was 0.01 to 0.3 nats^2,
    against 0.2 to 6 for L_A's log q(z|x) - log p(z) and 0.3 to 7 for the closed-form
    entropy with a sampled cross-entropy, -H[q] - log p(z) (tests/nn/test_priors.py)."""

    name = "b"

    def from_posterior(self, model, x, post):
        if post.gaussian:  # through from_encoding, the hook subclasses override
            return self.from_encoding(model, x, post.mean, post.logvar, post.z)
        expected_log_lik = sample_mean(model.log_likelihood(x, post.z), post.z)  # (B,)
        return expected_log_lik - self.kl_dims(post, model).sum(-1)

    def from_encoding(self, model, x, mean, logvar, z):
        expected_log_lik = sample_mean(model.log_likelihood(x, z), z)  # (B,)
        prior = model_prior(model)
        closed = prior.kl_dims(mean, logvar)  # (B, L), or None for a mixture
        if closed is not None:
            return expected_log_lik - closed.sum(-1)
        r_mean, r_logvar = prior.reference_gaussian()  # (L,) each
        sampled = diag_gaussian_log_prob(z, r_mean, r_logvar) - prior_log_prob(model, z)
        kl = kl_diag_gaussians_dims(mean, logvar, r_mean, r_logvar).sum(-1) \
            + sample_mean(sampled, z)  # (B,)
        return expected_log_lik - kl

    def kl_dims(self, post, model=None):
        prior = model_prior(model)
        if hasattr(post, "analytic_kl_dims"):  # two stochastic layers: nn/hierarchical.py
            return post.analytic_kl_dims(self, prior)
        closed = prior.kl_dims(post.mean, post.logvar)  # (B, L) or None
        if closed is None:  # KL(q_0 || r) + E[log r(z_0) - log|det| - log p(z)], per coordinate
            r_mean, r_logvar = prior.reference_gaussian()
            terms = gaussian_log_prob(post.z0, r_mean, r_logvar) - _log_prior_dims(model, post.z)
            if not post.gaussian:
                terms = terms - post.log_det
            return kl_diag_gaussians_dims(post.mean, post.logvar, r_mean, r_logvar) \
                + sample_mean(terms, post.z)
        if post.gaussian:
            return closed
        # per coordinate: log p(z0_i) - log p(z_i) - s_i (only the sum is a KL term)
        flow_terms = (_log_prior_dims(model, post.z0) - _log_prior_dims(model, post.z)
                      - post.log_det)
        return closed + sample_mean(flow_terms, post.z)

