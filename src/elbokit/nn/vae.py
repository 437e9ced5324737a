"""The VAE estimator: scikit-learn-like API over :class:`VAENetwork`.

``VAE(latent_dim, likelihood=..., decoder=...).fit(X)`` then ``encode``, ``decode``,
``reconstruct``, ``sample``, ``interpolate``, ``elbo``, ``score_samples``, ``score``,
``save`` and ``VAE.load``. Inputs are numpy arrays or pandas DataFrames, outputs
numpy arrays in the data's units; all numbers are nats per sample of x as given
unless stated.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import numpy as np
import torch

from .._anndata import fitted_y, reads_anndata
from .._provenance import RowsRecord, check_rows, rows_digest
from .._validation import check_int
from ..exceptions import ParameterError, TrainingError
from ..persistence import MODEL_FILE
from . import saved
from . import _vae_settings as settings_of
from ._bounds import Bounds
from ._conditioning import Conditioning
from ._divergence import DivergenceCheck
from ._estimator import NeuralEstimator, init_from_data
from ._impute import Imputation
from ._kl import PriorMembers
from ._math import reparameterize
from ._rows import append_columns, as_rows, dense_block
from ._sampling import GMMSampler
from .callbacks import check_callbacks
from .config import LATENT_DIM, ArchitectureConfig, TrainingConfig, config_kwargs
from .likelihoods import check_data
from .hierarchical import build_network
from .model import VAENetwork
from .priors import Prior
from .protocols import PARTS, check_shapes, network_builder
from .train import EVAL_BATCH, as_float_tensor, resolve_device, train

FLOW_MOMENT_SAMPLES = 256  # draws behind the posterior mean and std of an IAF model


class VAE(Conditioning, DivergenceCheck, GMMSampler, Bounds, Imputation, PriorMembers,
          NeuralEstimator):
    """Variational autoencoder of the lecture: Gaussian encoder, N(0, I) prior (or a
    mixture, the VampPrior, or one of the caller's: ``prior``).

    Parameters
    ----------
    latent_dim : L, the dimension of z (default 10, as ``--latent`` of the CLI).
    top_latent_dim : L2 > 0 makes the VAE hierarchical, with two stochastic layers
        (the HVAE of Tomczak & Welling 2018): z2 (L2) ~ p(z2) (``prior``), z1 (L - L2)
        ~ p(z1|z2), x ~ p(x|z1, z2), and q(z2|x) q(z1|x, z2); z = (z1, z2), so
        ``latent_dim`` counts both (see :mod:`elbokit.nn.hierarchical`). Default 0: one layer.
    likelihood : ``"auto"`` (default: resolved at ``fit`` from the data and recorded
        resolved, ``architecture_.likelihood``: ``"bernoulli"`` when ``binarize`` is on
        or the data are all 0/1, ``"logistic"`` when every value lies on the 8-bit grid
        k/255, ``"nb"`` when every value is a non-negative integer, else
        ``"bernoulli"``), ``"bernoulli"`` (data in [0, 1]), ``"logistic"``
        (the discretized logistic of 8-bit values, a density in bits/dim),
        ``"gaussian"`` (learned per-pixel variance, floored at ``min_variance``; its
        default None resolves to ``elbokit.nn.config.MISSING_MIN_VARIANCE`` for a
        standardized fit on rows with NaN, else ``MIN_VARIANCE``),
        ``"gaussian-fixed"`` (standard deviation ``sigma``), or for raw counts
        ``"poisson"``, ``"nb"`` (negative binomial, a learned dispersion per feature) and
        ``"zinb"`` (zero-inflated NB), of rate = share(z) x the row's total count; see
        :mod:`elbokit.nn.likelihoods`.
    standardize : ``"auto"`` (default), True or False. True: the networks work on
        (x - m) / s, m and s the training data's per-feature mean and standard
        deviation (a constant feature gets the root-mean-square std of all features),
        and every density is of x as given: log p(x) = log p_std((x - m) / s)
        - sum_j log s_j; ``min_variance`` and ``sigma`` are then in units of each
        feature's std. ``"auto"`` is True for ``likelihood="gaussian"`` (so raw
        tables in any units fit with the defaults) and False otherwise; True is refused
        for the Bernoulli likelihood.
    decoder : ``"mlp"``, ``"linear"`` (x = W z + b + noise: factor analysis with an
        amortised posterior) or ``"conv"``. Default: ``"conv"`` if ``arch="conv"``,
        else ``"mlp"``.
    encoder : ``"mlp"``, ``"linear"`` or ``"conv"``. Default: linear for a linear
        decoder (the exact FA posterior mean is linear in x), else ``arch``.
        ``encoder`` and ``decoder`` may also be your own ``torch.nn.Module`` (see
        :mod:`elbokit.nn.protocols`: the shapes, and how it is saved); ``fit`` trains a
        copy of it.
    channels : colour channels of image data (1 grey, 3 RGB; rows hold C*H*W values,
        channel first), for the conv networks.
    arch : ``"mlp"`` or ``"conv"``, the family of the non-linear networks (conv needs
        ``image_shape`` with sides divisible by 4, e.g. 8x8 or 28x28).
    hidden : hidden layer sizes of the MLP encoder; the MLP decoder mirrors them.
    activation : ``"relu"`` or ``"gated"`` (gated dense hidden layers,
        h = (W x + b) * sigmoid(V x + c), as in the VampPrior/Exemplar-VAE code).
    clamp_logvar : clamp the encoder's log-variance to [-6, 2] (that code's hardtanh).
    posterior : ``"gaussian"`` (diagonal) or ``"iaf"``: an inverse autoregressive flow
        of ``flow_steps`` MADE steps (hidden sizes ``flow_hidden``, a context of
        ``flow_context`` numbers from the encoder) on the Gaussian sample.
    prior : p(z): ``"standard"`` N(0, I) (default), ``"mog"`` (a learned mixture of
        ``prior_components`` diagonal Gaussians, default 10), ``"vamp"`` (the VampPrior of
        Tomczak & Welling 2018, ``prior_components`` learned pseudo-inputs, default 50), or a
        :class:`~elbokit.nn.priors.Prior` object (copied at fit; ``VAE.load`` then needs
        one like it, ``prior=``). See :mod:`elbokit.nn.priors`.
    gmm_components : components of the Gaussian mixture (scikit-learn's
        ``GaussianMixture``, full covariances) fitted after training to the posterior
        means of up to 10000 training rows, for ``sample(sampler="gmm")`` (0: none).
    conditional : False (default) or True, the conditional VAE q(z|x, y), p(x|z, y):
        ``fit(X, y)`` with y either class labels (1-D, (n,): one-hot coded, the classes
        kept in ``classes_``) or a covariate matrix (2-D, (n, c)); y is concatenated to
        the encoder's input and to the decoder's z. Every method that reads x or
        generates one (``encode``, ``elbo``, ``score``, ``sample``, ``decode``, ...) then
        takes ``y=`` too; ``log_likelihood_samples`` estimates log p(x|y).
    epochs, batch_size, lr, lr_schedule, objective, n_samples, binarize, patience,
    validation_fraction, seed, device, progress : training settings, see
        :class:`~elbokit.nn.config.TrainingConfig` (``epochs="auto"``, the default:
        :func:`~elbokit.nn.config.auto_epochs` of the training rows, or with
        ``max_minutes`` as many as the budget holds;
        ``validation_fraction="auto"`` and ``patience="auto"``, the defaults:
        :func:`~elbokit.nn.config.auto_validation`, a validation split and early stopping
        on a fit of at most 12,800 rows, none on a larger one).
        ``objective`` is ``"a"`` (L_A), ``"b"`` (L_B) or ``"iwae"`` (with
        ``n_samples=k``, the k-sample bound of Burda et al.).
    fused_step, precision : the written-out L_B step for the preset MLP VAE (see
        :mod:`elbokit.nn.objectives.fused`; False: autograd's backward), and the training matmuls'
        precision: ``"auto"`` (bfloat16 for the Bernoulli likelihood on a device with
        native bfloat16 matmuls, float32 otherwise; the resolved value is what
        ``training_`` records), ``"float32"`` or ``"bfloat16"`` (mixed precision: the
        weights, gradients, Adam's state, the densities, the loss and every evaluation
        stay float32). See :func:`~elbokit.nn.train.resolve_precision`.
    lr_warmup, max_minutes, ema : the published recipe's learning-rate warm-up (epochs),
        a budget of the fit's wall-clock (minutes, validation and checkpoint writes
        included; a cosine schedule anneals over it) and Polyak
        averaging of the weights (decay, e.g. 0.999: the average is validated, kept
        and saved); see :class:`~elbokit.nn.config.TrainingConfig`.
    kl_warmup, free_bits, beta : weighting of the KL term in the training loss
        (objectives "a" and "b"); the recorded ELBO stays unweighted.
    gradient, miwae_m, ciwae_beta : ``objective="miwae"`` / ``"piwae"`` (M = ``miwae_m``
        bounds of K = ``n_samples`` draws each) and ``"ciwae"`` (weight ``ciwae_beta``),
        Rainforth et al. 2018; ``gradient="stl"`` (objective "a") or ``"dreg"`` (the
        importance-weighted ones), see :mod:`elbokit.nn.objectives`. An estimator object
        as ``objective`` records its own settings.
    schedule, e_steps, m_steps : ``"joint"`` (default: every step updates encoder and
        decoder) or ``"alternating"``: EM-style phases of ``e_steps`` encoder-only and
        ``m_steps`` decoder-only steps, see :mod:`elbokit.nn.schedules`.

    Attributes
    ----------
    model_ : the fitted :class:`~elbokit.nn.model.VAENetwork` (torch module).
    architecture_, training_ : the configs it was built and fitted with.
    validation_rows_ : the indices of the rows of X that ``fit`` held out for
        validation (``validation_fraction``), or None.
    history_ : list of per-epoch dicts (``train_elbo``, ``val_elbo``, ``seconds`` of the
        training steps, ``wall_seconds`` of the whole epoch).
    n_features_in_ : d.
    feature_names_in_ : the column names, when fitted on a DataFrame (kept in the
        saved model).
    standardize_ : whether the fitted model standardizes; ``mean_``, ``scale_`` its
        m and s (None when it does not).
    classes_ : the class labels of a model conditioned on labels (one-hot order);
        ``n_condition_``: c, the width of y (0 when not conditional).

    Examples
    --------
    >>> from elbokit.data import load
    >>> from elbokit.nn import VAE
    >>> digits = load("digits")
    >>> vae = VAE(4, hidden=(64,), epochs=2, binarize="dynamic", progress=False)
    >>> vae = vae.fit(digits.train, validation=digits.test)
    >>> vae.encode(digits.test[:3]).shape            # posterior means
    (3, 4)
    >>> samples, std = vae.encode(digits.test[:3], n_samples=10)
    >>> samples.shape, std.shape                     # draws from q(z|x), its std
    ((3, 10, 4), (3, 4))
    >>> vae.sample(5, random_state=0).shape          # decoder means of z ~ N(0, I)
    (5, 64)
    >>> bool(vae.elbo(digits.test, "a", n_samples=10).mean() < 0)   # nats per image
    True
    """

    kind = "vae"  # the registry name (elbokit.kinds)
    noun = "VAE"
    has_density = True  # log p(x), the ELBO and the KL to the prior exist
    accepts_missing = True  # NaN entries are missing values: see fit and impute
    keeps_sparse = True  # a sparse X is densified a minibatch at a time (nn._rows)
    fit_options = frozenset({"validation", "checkpoint_dir", "resume", "on_nan", "callbacks"})
    # ``conditional`` (the protocol's "fitted with labels / covariates") is the
    # constructor's setting, which fit requires to be True or False

    # the signature of every setting: the fields of ArchitectureConfig and TrainingConfig,
    # with their defaults (tests/nn/test_config.py holds the two equal); scikit-learn's
    # get_params reads the names from here
    def __init__(self, latent_dim: int = LATENT_DIM, *, top_latent_dim: int = 0,
                 likelihood: str = "auto",
                 arch: str = "mlp", encoder: str | None = None, decoder: str | None = None,
                 hidden=(400,), activation: str = "relu", clamp_logvar: bool = False,
                 image_shape=None, channels: int = 1, min_variance: float | None = None,
                 sigma: float = 1.0, posterior: str = "gaussian", flow_steps: int = 2,
                 flow_hidden=(320,), flow_context: int = 64, prior="standard",
                 prior_components: int | None = None, gmm_components: int = 0,
                 standardize="auto",
                 conditional: bool = False,
                 epochs: int | str = "auto", batch_size: int = 128, lr: float = 1e-3,
                 lr_schedule: str = "constant", lr_warmup: int = 0, max_minutes: float = 0.0,
                 ema: float = 0.0, objective: str = "b", n_samples: int = 1,
                 fused_step: bool = True, precision: str = "auto", binarize: str = "none",
                 patience: int | str = "auto", validation_fraction: float | str = "auto",
                 seed: int = 0,
                 device: str = "auto", progress: bool = True, kl_warmup: int = 0,
                 free_bits: float = 0.0, beta: float = 1.0, gradient: str = "standard",
                 miwae_m: int = 8, ciwae_beta: float = 0.5, schedule: str = "joint",
                 e_steps: int = 1, m_steps: int = 1):
        self._store_settings(locals())

    # ------------------------------------------------------------------ fitting

    def _architecture(self, n_features: int, condition_dim: int = 0, classes=None, *,
                      likelihood: str | None = None, missing: bool = False
                      ) -> ArchitectureConfig:
        return settings_of.architecture(self, n_features, condition_dim, classes,
                                        likelihood=likelihood, missing=missing)

    def _training(self, *, likelihood: str | None = None, n_rows: int | None = None,
                  validation_given: bool = False, missing: bool = False) -> TrainingConfig:
        return settings_of.training(self, likelihood=likelihood, n_rows=n_rows,
                                    validation_given=validation_given, missing=missing)

    @reads_anndata
    def fit(self, X, y=None, *, validation=None, checkpoint_dir=None, resume: bool = False,
            on_nan: str = "stop", callbacks=None):
        """Maximise the ELBO of X (n, d) by Adam.

        ``validation``: held-out rows, whose ELBO (L_B, one sample) is recorded each
        epoch and drives early stopping (``patience``); without it a
        ``validation_fraction`` of X is held out (seeded by ``seed``; their indices in
        ``validation_rows_``). By default (``"auto"``, see
        :func:`~elbokit.nn.config.auto_validation`) a fit of at most 12,800 rows holds 10%
        out and stops 10 epochs or 200 steps (the longer) after the best validation ELBO,
        keeping that epoch's weights; a larger one fits every row for every epoch. Every
        setting is the constructor's (change one with ``set_params``). ``checkpoint_dir``:
        where a checkpoint is written after every epoch; ``resume=True`` continues from it
        (changing only the settings :mod:`elbokit.nn.train.resume` allows, as the CLI's
        ``--resume``).
        ``on_nan``: ``"stop"`` (raise :class:`TrainingError`, keep the last good
        checkpoint) or ``"skip-batch"`` (skip steps with a non-finite loss or gradient;
        counted as ``skipped_batches`` in ``history_``). ``callbacks``: objects
        called at the start, after each epoch and at the end of training
        (:class:`~elbokit.nn.callbacks.Callback`, e.g. ``TensorBoardCallback``,
        ``MLflowCallback``).

        A fit that diverged raises :class:`TrainingError` naming the likely cause: a
        non-finite loss, or (Gaussian likelihoods) an ELBO far below that of a diagonal
        Gaussian fitted to the same rows, see :meth:`check_fit`.

        ``conditional=True``: y is required (class labels (n,) or covariates (n, c)),
        and ``validation`` is a pair ``(X_val, y_val)``; otherwise y is ignored, as
        scikit-learn's pipelines pass it.
        """
        started = time.perf_counter()  # max_minutes budgets the fit from here
        callbacks = check_callbacks(callbacks)
        X = self._check_X(X, "X", reset=True)
        likelihood = settings_of.resolve_likelihood(self, X)  # "auto": from the data
        condition = self._fit_condition(y, X.shape[0])
        validation, val_y = self._validation_with_condition(validation, condition)
        if checkpoint_dir is not None:  # a resumed fit continues on the rows it began on
            rows = rows_digest(X, condition, validation)
            if resume:
                check_rows(checkpoint_dir, rows)
            callbacks = [RowsRecord(checkpoint_dir, rows, resume), *callbacks]
        missing = any(part is not None and bool(np.isnan(part.min())) for part in (X, validation))
        training = self._training(likelihood=likelihood, n_rows=X.shape[0],
                                  validation_given=validation is not None, missing=missing)
        self.validation_rows_ = None
        if validation is None and training.validation_fraction:  # held out of X, seeded
            fitted, self.validation_rows_ = settings_of.split_rows(
                X.shape[0], training.validation_fraction, training.seed)
            validation = X[self.validation_rows_] if condition is None else append_columns(
                X[self.validation_rows_], condition[self.validation_rows_])
            val_y = None if condition is None else np.asarray(y)[self.validation_rows_]
            X = X[fitted]
            y, condition = (None, None) if condition is None else \
                (np.asarray(y)[fitted], condition[fitted])
        objective = self._objective(training)
        if validation is not None:  # checked before the likelihood was known
            check_data(likelihood, validation[:, :X.shape[1]], "validation")
        architecture = self._architecture(
            X.shape[1], 0 if condition is None else condition.shape[1],
            None if self.classes_ is None else tuple(self.classes_.tolist()),
            likelihood=likelihood, missing=missing)
        settings_of.check_combination(architecture, training, validation=validation,
                                      conditional=condition is not None,
                                      labels=self.classes_ is not None)
        device = resolve_device(training.device)
        modules = {part: copy.deepcopy(getattr(self, part)) for part in PARTS
                   if getattr(architecture, part) == "custom"}  # refits start afresh
        self.model_ = self._build(architecture, training.seed,
                                  settings_of.prior_object(self, architecture),
                                  **modules).to(device)
        if modules:
            check_shapes(self.model_, as_float_tensor(dense_block(X[:2]), device))
        init_from_data(self.model_, X, training.seed)
        try:
            data = X if condition is None else append_columns(X, condition)  # y: the last columns
            # a sparse X stays sparse: each minibatch is densified as it is drawn
            self.history_ = train(self.model_, as_rows(data), training, architecture,
                                  validation=as_rows(validation), objective=objective,
                                  run_dir=checkpoint_dir, resume=resume, on_nan=on_nan,
                                  callbacks=callbacks, started=started)
        except TrainingError as exc:
            raise TrainingError(f"{exc}{self._likely_cause(X)}") from None
        self.architecture_, self.training_ = architecture, training
        self.model_.eval()
        if architecture.gmm_components and condition is None:  # q(z) of a CVAE needs y
            self._fit_gmm(X, training.seed)
        if validation is None:
            self.check_fit(X, "training", y=None if condition is None else y)
        elif not self._validated_finite(training.patience):
            d = X.shape[1]
            self.check_fit(validation[:, :d], "validation", reference=X,
                           y=None if condition is None else val_y)
        return self

    def _objective(self, training: TrainingConfig):
        """What the fit's training loop maximises: the estimator object given as
        ``objective``, or the name the training config resolved."""
        return self.objective if not isinstance(self.objective, str) else training.objective

    @staticmethod
    def _build(architecture: ArchitectureConfig, seed: int, prior=None,
               **modules) -> VAENetwork:
        """The module with weights initialised from ``seed`` (a custom network's own
        weights as given), leaving torch's global random state untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_network(architecture, prior, **modules)

    def _input(self, X, y=None) -> torch.Tensor:
        """X checked, as a tensor on the model's device, in the data's units (the model
        standardizes internally); a conditional model's y coded in its last columns."""
        self._check_fitted()
        y = fitted_y(self, X, y)  # an AnnData's obs column (the fit's, by default)
        return self._tensor(self._with_condition(self._check_X(X, "X", reset=False), y))

    # ------------------------------------------------------------------ using the model

    @torch.no_grad()
    def encode(self, X, n_samples: int | None = None, random_state=0, y=None):
        """Posterior mean E[z|x] (the MAP estimate for a Gaussian q), shape (n, L).

        With ``n_samples=k``: returns ``(samples, std)``: k draws from q(z|x) per
        point, shape (n, k, L), and the per-dimension posterior standard deviation,
        shape (n, L): the encoder's uncertainty about z.

        With ``posterior="iaf"`` q(z|x) has no closed-form moments: the mean and std
        are Monte-Carlo estimates over ``max(k, 256)`` seeded draws of the flow.
        ``y``: a conditional model's labels or covariates of X (q(z|x, y))."""
        x = self._input(X, y)
        if n_samples is not None:
            n_samples = check_int(n_samples, "n_samples", minimum=1)
            self._check_draws(x.shape[0], n_samples, 2 * self.latent_dim_, "n_samples")
        if self.model_.flow is not None:
            return self._encode_flow(x, n_samples, random_state)
        means, logvars = zip(*(self.model_.encode(x[i:i + EVAL_BATCH])
                               for i in range(0, x.shape[0], EVAL_BATCH)))
        mean, logvar = torch.cat(means), torch.cat(logvars)  # (n, L) each
        if n_samples is None:
            return mean.cpu().numpy()
        std = torch.exp(0.5 * logvar)
        per_row = lambda t: t[:, None, :].expand(-1, n_samples, -1)  # (n, k, L)
        samples = reparameterize(per_row(mean), per_row(logvar), None,
                                 self._generator(random_state))  # (n, k, L)
        return samples.cpu().numpy(), std.cpu().numpy()

    def _encode_flow(self, x, n_samples, random_state):
        generator = self._generator(random_state)
        m = max(n_samples or 0, FLOW_MOMENT_SAMPLES)
        batch = max(1, (1 << 22) // (m * max(self.architecture_.flow_hidden)))
        draws = torch.cat([self.model_.posterior(x[i:i + batch], m, generator).z
                           for i in range(0, x.shape[0], batch)], dim=1)  # (m, n, L)
        mean = draws.mean(0)
        if n_samples is None:
            return mean.cpu().numpy()
        std = draws.std(0)
        return draws[:n_samples].transpose(0, 1).cpu().numpy(), std.cpu().numpy()

    @torch.no_grad()
    def decode(self, Z, y=None) -> np.ndarray:
        """Decoder mean E[x|z] of each row of Z (n, L), shape (n, d), in the data's
        units; a conditional model's E[x|z, y] for the labels or covariates ``y``."""
        z = self._latent(Z)
        c = self._condition_tensor(y, z.shape[0])
        return self._batched(self.model_.decoder_mean, z, c).cpu().numpy()

    def reconstruct(self, X, y=None) -> np.ndarray:
        """Decoder mean at the posterior mean: decode(encode(X)), shape (n, d); under a
        count likelihood at each row's own library size (its total count), where
        ``decode`` gives the training rows' median."""
        means = self.decode(self.encode(X, y=y), y=y)
        library = getattr(self.model_.likelihood, "library_size", None)
        if library is None:
            return means
        totals = np.asarray(self._check_X(X, "X", reset=False).sum(1)).reshape(-1, 1)
        return means * (totals / float(library)).astype(means.dtype)

    def sample(self, n_samples: int = 1, random_state=None, sampler: str = "prior",
               y=None) -> np.ndarray:
        """Decoder means of n draws of z, shape (n, d): ``sampler="prior"`` draws
        z ~ p(z) (N(0, I) for the standard prior); ``"gmm"`` draws from the Gaussian
        mixture fitted to the training codes after the fit (``gmm_components``; the GMM
        sampler of pythae), which follows the aggregate posterior q(z) = E_x q(z|x)
        where the decoder was trained, and so gives sharper samples when q(z) and p(z)
        differ. A conditional model generates for ``y``: one label (or covariate row)
        for all n, or one per sample."""
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ParameterError(f"n_samples must be a positive integer; got {n_samples!r}")
        if sampler not in ("prior", "gmm"):
            raise ParameterError(f"sampler must be one of ['prior', 'gmm']; got {sampler!r}")
        self._check_draws(1, int(n_samples), self.latent_dim_ + self.n_features_in_,
                          "n_samples")
        generator = self._generator(random_state)
        with torch.no_grad():
            if sampler == "gmm":
                z = self._gmm_sample(int(n_samples), generator)
            else:
                z = self.model_.prior.sample(int(n_samples), generator)
        return self.decode(z.cpu().numpy(), y=self._repeat(y, int(n_samples)))

    def interpolate(self, x1, x2, steps: int = 10, y=None) -> np.ndarray:
        """Decoder means along the straight line between the posterior means of two
        inputs (each of shape (d,) or (1, d)), shape (steps, d); a conditional model's
        ``y`` is one label (covariate row), for both ends and every step."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise ParameterError(f"steps must be an integer >= 2; got {steps!r}")
        ends = self.encode(np.vstack([np.reshape(x1, (1, -1)), np.reshape(x2, (1, -1))]),
                           y=self._repeat(y, 2))
        t = np.linspace(0.0, 1.0, int(steps), dtype=np.float32)[:, None]  # (steps, 1)
        return self.decode((1 - t) * ends[0] + t * ends[1], y=self._repeat(y, int(steps)))

    # ------------------------------------------------------------------ the model protocol

    @property
    def samplers(self) -> tuple[str, ...]:
        """The ``sampler=`` names :meth:`sample` accepts, the default first."""
        return ("prior", "gmm") if self.has_gmm_sampler_ else ("prior",)

    def posterior_moments(self, X, y=None) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n, L) and per-dimension variance (n, L) of q(z|x) (see :meth:`encode`)."""
        mean = self.encode(X, y=y)
        _, std = self.encode(X, n_samples=1, y=y)
        return mean, std**2

    def posterior_samples(self, X, n_samples: int, random_state=0, y=None) -> np.ndarray:
        """``n_samples`` draws from q(z|x) per row, shape (n, k, L)."""
        n_samples = check_int(n_samples, "n_samples", minimum=1)  # None is encode's mean
        return self.encode(X, n_samples=n_samples, random_state=random_state, y=y)[0]

    def training_curve(self) -> list | None:
        """One dict per epoch (``train_elbo``, ``val_elbo``): ``history_``."""
        return getattr(self, "history_", None) or None

    # ------------------------------------------------------------------ saving

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu", *,
             meta: dict | None = None, prior: Prior | None = None, networks=None,
             encoder=None, decoder=None, encoder_class=None, decoder_class=None) -> "VAE":
        """Load a VAE saved by :meth:`save` (JSON and safetensors only, no pickle);
        ``meta``: its model.json, when the caller has read it already. ``prior``: for
        a model fitted with a custom prior object, one built like it (its class comes
        from the caller, never from the file; the saved weights are loaded into it).

        A model with a custom encoder or decoder is rebuilt from the caller's code (no
        name written in the file is ever imported): ``encoder_class`` (built with the
        saved arguments, ``encoder_class(**args)``, or none when the module had no
        config), ``networks`` (the dict :func:`~elbokit.nn.protocols.import_networks`
        returns, looked up by the saved class name), or ``encoder``, a module object a
        copy of which gets the weights; the weights are checked against the module."""
        modules = network_builder(Path(directory) / MODEL_FILE, cls.noun, networks=networks,
                                  encoder=encoder, decoder=decoder,
                                  encoder_class=encoder_class, decoder_class=decoder_class)
        record, architecture, training, tensors = saved.read_model(
            directory, kind=cls.kind, meta=meta, prior=prior, modules=modules)
        model = build_network(architecture, None if prior is None else copy.deepcopy(prior),
                              **modules(architecture))
        saved.check_state_dict(model, tensors, record.weights)
        model.load_state_dict(tensors)
        settings = config_kwargs(ArchitectureConfig, architecture)
        settings.update(modules(architecture))  # fresh modules, as fit is given them
        if prior is not None:
            settings["prior"] = prior
        vae = cls(**settings, **{**config_kwargs(TrainingConfig, training), "device": device})
        vae.model_ = model.to(resolve_device(device)).eval()
        vae.architecture_, vae.training_ = architecture, training
        vae.history_ = record.history
        vae._set_fitted_names(architecture, record.fitted, record.path)
        vae.n_condition_ = architecture.condition_dim
        vae.classes_ = None if architecture.classes is None else np.asarray(architecture.classes)
        return vae


def load_vae(directory, device: str = "cpu") -> VAE:
    """Load a saved VAE directory (``"kind": "vae"``)."""
    return VAE.load(directory, device=device)


__all__ = ["VAE", "load_vae"]
