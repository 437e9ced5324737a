"""Estimators of the ELBO and the bounds beside it, as small interchangeable objects
(in the spirit of Pyro's ``Trace_ELBO`` / ``TraceMeanField_ELBO``), in one registry:
:data:`ESTIMATORS` maps each objective name of the training config and the CLI to its
class; :func:`get_estimator` builds one.

Each is called as ``estimator(model, x, n_samples, generator)`` and returns one
estimate per data point, shape (B,), in nats. With z_j ~ q(z|x), j = 1..L, drawn by
reparameterisation (z_j = mean + sigma * eps_j, then the flow if the model has one;
see :meth:`~elbokit.nn.model.VAENetwork.posterior`):

* :class:`MonteCarloELBO` (the slides' L_A, ``"a"``),
  L_A = 1/L sum_j [log p(x, z_j) - log q(z_j|x)] (slide "Computing the loss").
* :class:`AnalyticKLELBO` (the slides' L_B, ``"b"``),
  L_B = -KL(q(z|x) || p(z)) + 1/L sum_j log p(x|z_j), the KL in
  closed form (slide "A lower variance estimator of the loss"). With an IAF
  posterior (z_0 Gaussian, z = f(z_0)) the KL has no closed form; L_B then keeps
  the closed form for the Gaussian part and estimates only what the flow adds:

      KL(q || p) = KL(q_0 || p) + E_{z_0 ~ q_0}[log p(z_0) - log p(f(z_0)) - log|det df/dz_0|]

  (exact: change variables z = f(z_0) in E_q[log q(z) - log p(z)]). The Monte-Carlo
  term is exactly 0 for the identity flow and small near it, where the plain
  Monte-Carlo KL, 1/L sum_j [log q(z_j|x) - log p(z_j)], carries the full noise of
  log q and log p (in every collapsed dimension too).
* :class:`IWAE` (``"iwae"``), log 1/L sum_j p(x, z_j) / q(z_j|x): a tighter bound
  (Burda et al. 2016) that tends to log p(x) as L grows; equal to L_A for L = 1.
* :class:`MIWAE`, :class:`CIWAE`, :class:`PIWAE` (``"miwae"``, ``"ciwae"``,
  ``"piwae"``): the multi-sample bounds of Rainforth et al. (2018).

L_A and L_B share their target, the ELBO, and are in
:mod:`~elbokit.nn.objectives.single_sample`; the importance-weighted bounds are in
:mod:`~elbokit.nn.objectives.importance_weighted`. log q(z|x) always includes the
flow's log-determinant. p(z) is the model's prior (``model.prior``, see
:mod:`elbokit.nn.priors`), read in one place, :func:`prior_log_prob`, through
:meth:`ELBOEstimator.log_weights` and :meth:`~ELBOEstimator.posterior_log_weights`
(:mod:`~elbokit.nn.objectives.base`); L_B under a prior without a closed-form KL is
described at :class:`AnalyticKLELBO`.

**Gradient estimators** (``gradient=``; the value of every estimate is unchanged, only
its gradient differs). With log w_j = log p(x, z_j) - log q(z_j|x), z_j = z_phi(eps_j):

* ``"standard"``: autograd of the estimate. The encoder's gradient of log w_j has a
  path term, d log w_j/dz_j * dz_j/dphi, and a score term, -d log q_phi(z_j|x)/dphi at
  fixed z_j, zero in expectation but not per draw.
* ``"stl"``, sticking the landing (Roeder et al. 2017), for L_A: log q(z|x) is
  evaluated with the posterior's parameters detached, which drops the score term. The
  estimator stays unbiased, and at q = p(z|x) log w_j = log p(x) for every z, so each
  draw's encoder gradient is exactly 0.
* ``"dreg"``, doubly reparameterized gradients (Tucker et al. 2019, eq. 5), for the
  importance-weighted bounds: the encoder's gradient of IWAE is
  sum_j wt_j^2 d log w_j/dz_j dz_j/dphi with wt_j = w_j / sum_i w_i, log q with its
  parameters detached; the decoder's stays sum_j wt_j d log w_j/dtheta. One backward
  pass: the weights are computed once, with log q's parameters detached, and a hook on
  z multiplies the gradient reaching the encoder by wt_j (see :func:`scale_path_gradient`).
  Both need the Gaussian posterior (with a flow, log q at a given z needs the flow's
  inverse).

:func:`training_loss` (:mod:`~elbokit.nn.objectives.loss`) is what the training loop
minimises: -ELBO, or with ``beta`` / ``kl_warmup`` / ``free_bits`` a reweighted KL term
(the ELBO itself is returned alongside, unweighted).

**Training objectives.** The loop (:func:`elbokit.nn.train.train`) calls one step per
minibatch, and each objective owns its step (:class:`~.step.TrainingObjective`, whose
``make_step`` defaults to autograd's :class:`~.step.AutogradStep`):
:class:`~.elbo.ELBOObjective` trains the ELBO of any estimator above, with L_B's
written-out step (:mod:`~elbokit.nn.objectives.fused`) where that covers the model;
:class:`~.reconstruction.Reconstruction` (``"reconstruction"``) is the deterministic
Autoencoder's; :class:`~.semisupervised.SemiSupervisedObjective` is M2's (labeled and
unlabeled rows, :class:`~elbokit.nn.semisupervised.SemiSupervisedVAE`), built by that
estimator. :func:`get_objective` builds one from a name of :data:`OBJECTIVES`.

The modules import one way: ``base`` <- ``single_sample``, ``importance_weighted``,
``loss`` <- ``fused``, ``step`` <- ``elbo`` <- ``reconstruction``, ``semisupervised`` <-
``registry`` <- this ``__init__``.
"""

from .base import (
    ELBOEstimator,
    draw_posterior,
    encode_posterior,
    path_log_weights,
    prior_log_prob,
    scale_path_gradient,
)
from .elbo import ELBOObjective, evaluate_elbo
from .importance_weighted import CIWAE, IWAE, MIWAE, PIWAE
from .loss import kl_weight, training_loss, weighted_loss
from .reconstruction import Reconstruction
from .registry import ESTIMATORS, OBJECTIVES, get_estimator, get_objective
from .single_sample import AnalyticKLELBO, MonteCarloELBO
from .step import AutogradStep, TrainingObjective

__all__ = ["ELBOEstimator", "MonteCarloELBO", "AnalyticKLELBO", "IWAE", "MIWAE", "CIWAE",
           "PIWAE", "ESTIMATORS", "OBJECTIVES", "get_estimator", "get_objective",
           "TrainingObjective", "AutogradStep", "ELBOObjective", "Reconstruction",
           "evaluate_elbo", "training_loss", "kl_weight", "weighted_loss", "draw_posterior",
           "encode_posterior", "prior_log_prob", "path_log_weights", "scale_path_gradient"]
