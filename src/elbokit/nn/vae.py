"""The VAE estimator: scikit-learn-like API over :class:`VAENetwork`.

``VAE(latent_dim, likelihood=..., decoder=...).fit(X)`` then ``encode``, ``decode``,
``reconstruct``, ``sample``, ``interpolate``, ``elbo``, ``score_samples``, ``score``,
``save`` and ``VAE.load``. Inputs are numpy arrays or pandas DataFrames, outputs
numpy arrays in the data's units; all numbers are nats per sample of x as given
unless stated.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import _check_feature_names

from .._math import bits_per_dim, diag_gaussian_logpdf
from .._validation import check_data, check_int
from ..exceptions import DataError, ParameterError, TrainingError
from . import checkpoint as ckpt
from ._kl import kl_dims, kl_rows, rows_per_batch
from ._math import reparameterize
from .callbacks import check_callbacks
from .config import (LATENT_DIM, OBJECTIVES, PRIOR_COMPONENTS, ArchitectureConfig,
                     TrainingConfig, config_kwargs)
from .model import VAENetwork
from .objectives import get_estimator
from .priors import PRIOR_NAMES, MixtureOfGaussians, Prior, StandardNormal, VampPrior
from .protocols import PARTS, check_shapes, custom_modules, is_module, module_record
from .train import (EVAL_BATCH, as_float_tensor, evaluate_elbo, resolve_device,
                    resolve_precision, train)

FLOW_MOMENT_SAMPLES = 256  # draws behind the posterior mean and std of an IAF model
STANDARDIZE = (True, False, "auto")
# a fitted Gaussian VAE whose ELBO lies more than this many nats per feature below a
# diagonal Gaussian fitted to the same rows (a model the VAE contains) has diverged
DIVERGENCE_NATS_PER_FEATURE = 10.0
DIVERGENCE_ROWS = 4096  # rows (a seeded subset) on which a fit is checked
GMM_ROWS = 10000  # training rows whose codes the GMM sampler is fitted to (a seeded subset)
SAMPLERS = ("prior", "gmm")
SCALE_SPREAD = 1e3  # max/min feature std beyond which unstandardized fits are fragile


class VAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Variational autoencoder of the lecture: Gaussian encoder, N(0, I) prior (or a
    mixture, the VampPrior, or one of the caller's: ``prior``).

    Parameters
    ----------
    latent_dim : L, the dimension of z (default 10, as ``--latent`` of the CLI).
    likelihood : ``"bernoulli"`` (data in [0, 1]), ``"gaussian"`` (learned
        per-pixel variance, floored at ``min_variance``) or ``"gaussian-fixed"``
        (standard deviation ``sigma``).
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
    epochs, batch_size, lr, lr_schedule, objective, n_samples, binarize, patience, seed, device,
    progress : training settings, see :class:`~elbokit.nn.config.TrainingConfig`.
        ``objective`` is ``"a"`` (L_A), ``"b"`` (L_B) or ``"iwae"`` (with
        ``n_samples=k``, the k-sample bound of Burda et al.).
    fused_step, precision : the written-out L_B step for the preset MLP VAE (see
        :mod:`elbokit.nn.fused`; False: autograd's backward), and the training matmuls'
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

    # the signature of every setting: the fields of ArchitectureConfig and TrainingConfig,
    # with their defaults (tests/test_vae_config.py holds the two equal); scikit-learn's
    # get_params reads the names from here
    def __init__(self, latent_dim: int = LATENT_DIM, *, likelihood: str = "bernoulli",
                 arch: str = "mlp", encoder: str | None = None, decoder: str | None = None,
                 hidden=(400,), activation: str = "relu", clamp_logvar: bool = False,
                 image_shape=None, channels: int = 1, min_variance: float = 1e-3,
                 sigma: float = 1.0, posterior: str = "gaussian", flow_steps: int = 2,
                 flow_hidden=(320,), flow_context: int = 64, prior="standard",
                 prior_components: int | None = None, gmm_components: int = 0,
                 standardize="auto",
                 conditional: bool = False,
                 epochs: int = 10, batch_size: int = 128, lr: float = 1e-3,
                 lr_schedule: str = "constant", lr_warmup: int = 0, max_minutes: float = 0.0,
                 ema: float = 0.0, objective: str = "b", n_samples: int = 1,
                 fused_step: bool = True, precision: str = "auto", binarize: str = "none",
                 patience: int = 0, seed: int = 0,
                 device: str = "auto", progress: bool = True, kl_warmup: int = 0,
                 free_bits: float = 0.0, beta: float = 1.0, gradient: str = "standard",
                 miwae_m: int = 8, ciwae_beta: float = 0.5, schedule: str = "joint",
                 e_steps: int = 1, m_steps: int = 1):
        settings = dict(locals())
        del settings["self"]
        for name, value in settings.items():
            setattr(self, name, value)

    # ------------------------------------------------------------------ configs

    def _resolve_standardize(self) -> bool:
        if self.standardize not in STANDARDIZE or not isinstance(self.standardize, (bool, str)):
            raise ParameterError(f"standardize must be True, False or 'auto'; got "
                                 f"{self.standardize!r}")
        if self.standardize == "auto":
            return self.likelihood == "gaussian"
        return self.standardize  # True with bernoulli fails ArchitectureConfig's check

    def _architecture(self, n_features: int, condition_dim: int = 0,
                      classes=None) -> ArchitectureConfig:
        """The settings of :class:`ArchitectureConfig`, with the defaults that depend on
        other settings resolved (encoder, decoder, image_shape, standardize)."""
        settings = config_kwargs(ArchitectureConfig, self)
        modules = {}
        for part in PARTS:
            given = getattr(self, part)
            if isinstance(given, str) and given == "custom":
                raise ParameterError(f"{part}='custom' stands for a module of your own: pass "
                                     f"the module itself, {part}=my_module")
            if is_module(given):
                modules[f"{part}_module"] = module_record(given, part)
                settings[part] = "custom"
        decoder = settings["decoder"] or self.arch  # an unknown arch fails its check first
        encoder = settings["encoder"] or ("linear" if decoder == "linear" else self.arch)
        image_shape = self.image_shape
        if image_shape is None and "conv" in (encoder, decoder):
            channels = self.channels if isinstance(self.channels, int) and self.channels > 0 \
                else 1  # a bad value fails its check below
            side = math.isqrt(n_features // channels)
            image_shape = (side, side) if channels * side * side == n_features else None
        settings.update(modules)
        settings.update(
            prior=_prior_name(self.prior), prior_components=self._prior_components(),
            encoder=encoder, decoder=decoder, hidden=_sizes(self.hidden),
            image_shape=None if image_shape is None else tuple(image_shape),
            flow_hidden=_sizes(self.flow_hidden), standardize=self._resolve_standardize())
        return ArchitectureConfig(n_features=n_features,
                                  feature_names=_names(getattr(self, "feature_names_in_", None)),
                                  condition_dim=condition_dim, classes=classes, **settings)

    def _prior_components(self) -> int:
        name = _prior_name(self.prior)
        if name in PRIOR_COMPONENTS and isinstance(self.prior, Prior):
            return self.prior.n_components  # a built-in mixture object: its own K
        if self.prior_components is None:  # the prior's own default (config.PRIOR_COMPONENTS)
            return PRIOR_COMPONENTS.get(name, ArchitectureConfig.prior_components)
        return self.prior_components

    def _prior_object(self, architecture: ArchitectureConfig) -> Prior | None:
        """A copy of the caller's prior object (checked), or None for a named prior."""
        if isinstance(self.prior, str):
            return None
        if not isinstance(self.prior, Prior):
            raise ParameterError(f"prior must be one of {list(PRIOR_NAMES)} or a Prior object; "
                                 f"got {self.prior!r}")
        if self.prior.latent_dim != architecture.latent_dim:
            raise ParameterError(f"the prior's latent_dim is {self.prior.latent_dim}; the "
                                 f"VAE's is {architecture.latent_dim}")
        if getattr(self.prior, "n_features", architecture.n_features) != architecture.n_features:
            raise ParameterError(f"the prior's n_features is {self.prior.n_features}; the "
                                 f"data have {architecture.n_features}")
        return copy.deepcopy(self.prior)

    def _training(self) -> TrainingConfig:
        settings = config_kwargs(TrainingConfig, self)
        if not isinstance(settings["objective"], str):  # an ELBOEstimator object
            estimator = settings["objective"]
            name = getattr(estimator, "name", "custom")
            settings["objective"] = name if name in OBJECTIVES else "custom"
            if name in OBJECTIVES and hasattr(estimator, "settings"):
                settings.update(estimator.settings())  # its M, beta, gradient are recorded
        settings["precision"] = resolve_precision(settings["precision"], self.likelihood,
                                                  settings["device"])
        return TrainingConfig(**settings)

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None, *, validation=None, checkpoint_dir=None, resume: bool = False,
            on_nan: str = "stop", callbacks=None):
        """Maximise the ELBO of X (n, d) by Adam.

        ``validation``: held-out rows, whose ELBO (L_B, one sample) is recorded each
        epoch and drives early stopping (``patience``). Every setting is the
        constructor's (change one with ``set_params``). ``checkpoint_dir``: where a
        checkpoint is written after every epoch; ``resume=True`` continues from it
        (changing only the settings :mod:`elbokit.nn.resume` allows, as the CLI's
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
        condition, val_y = self._fit_condition(y, X.shape[0]), None
        if validation is not None and condition is not None:
            if not (isinstance(validation, tuple) and len(validation) == 2):
                raise DataError("a conditional VAE takes validation=(X_val, y_val)")
            validation, val_y = validation
        if validation is not None:
            validation = self._check_X(validation, "validation", reset=False)
            if condition is not None:
                validation = np.hstack([validation, self._condition(val_y, len(validation),
                                                                    "y_val")])
        objective = self.objective if not isinstance(self.objective, str) else None
        training = self._training()
        if objective is None:
            objective = training.objective
        architecture = self._architecture(
            X.shape[1], 0 if condition is None else condition.shape[1],
            None if self.classes_ is None else tuple(self.classes_.tolist()))
        if training.binarize != "none" and architecture.likelihood != "bernoulli":
            raise ParameterError("binarize applies to likelihood='bernoulli' only")
        if training.gradient != "standard" and architecture.posterior != "gaussian":
            raise ParameterError(f"gradient={training.gradient!r} needs posterior='gaussian' "
                                 "(log q(z|x) at a given z with the flow's parameters held "
                                 "fixed needs the flow's inverse)")
        if training.binarize != "none" and condition is not None and self.classes_ is None:
            raise ParameterError("binarize would binarize the covariates y too; use "
                                 "binarize='none' with a covariate matrix")
        if training.patience and validation is None:
            raise ParameterError("early stopping (patience > 0) needs validation data")
        if training.free_bits and architecture.prior != "standard":
            raise ParameterError("free_bits needs a prior that factorizes over the latent "
                                 "dimensions; use prior='standard' or beta / kl_warmup")
        device = resolve_device(training.device)
        modules = {part: copy.deepcopy(getattr(self, part)) for part in PARTS
                   if getattr(architecture, part) == "custom"}  # refits start afresh
        self.model_ = self._build(architecture, training.seed,
                                  self._prior_object(architecture), **modules).to(device)
        if modules:
            check_shapes(self.model_, as_float_tensor(X[:2], device))
        mean, scale = _standardization(X) if architecture.standardize else (0.0, 1.0)
        if architecture.standardize:
            self.model_.set_standardization(mean, scale)
        if hasattr(self.model_.decoder, "init_from_data"):  # on the host, as the data
            x = (as_float_tensor(X) - mean) / scale if architecture.standardize \
                else as_float_tensor(X)
            self.model_.decoder.init_from_data(x, self.model_.likelihood)
        self.model_.prior.init_from_data(as_float_tensor(X), torch.Generator().manual_seed(
            training.seed))  # e.g. the VampPrior's pseudo-inputs: training rows
        try:
            data = X if condition is None else np.hstack([X, condition])  # y: the last columns
            self.history_ = train(self.model_, data, training, architecture,
                                  validation=validation, objective=objective,
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
        elif not self._validated_finite(training):
            d = X.shape[1]
            self.check_fit(validation[:, :d], "validation", reference=X,
                           y=None if condition is None else val_y)
        return self

    def _validated_finite(self, training: TrainingConfig) -> bool:
        """Whether the fit's own validation ELBO of the weights the model keeps (the
        best epoch's with ``patience``, else the last) is on record and finite: all
        that :meth:`check_fit` asks of a Bernoulli model, so it need not be computed
        again (a Gaussian model's is also compared with a baseline: checked anew)."""
        scores = [record.get("val_elbo") for record in self.history_]
        if self.architecture_.likelihood != "bernoulli" or not scores or None in scores:
            return False
        finite = [score for score in scores if math.isfinite(score)]
        return math.isfinite(max(finite) if training.patience and finite else scores[-1])

    # ------------------------------------------------------------------ conditioning

    def _fit_condition(self, y, n: int) -> np.ndarray | None:
        """y coded as the (n, c) float32 block the networks see (None when the model is
        not conditional); sets ``classes_`` and ``n_condition_``."""
        self.classes_, self.n_condition_ = None, 0
        if self.conditional is False:
            return None
        if self.conditional is not True:
            raise ParameterError(f"conditional must be True or False; got {self.conditional!r}")
        if y is None:
            raise DataError("conditional=True: fit(X, y) needs y, class labels (n,) or a "
                            "covariate matrix (n, c)")
        if np.ndim(y) == 1:
            labels = _labels(y, n, "y")
            classes = np.unique(labels)
            if len(classes) < 2:
                raise DataError(f"y holds a single class ({classes[0]!r}); conditioning "
                                "needs at least 2")
            self.classes_ = classes
        self.n_condition_ = len(self.classes_) if self.classes_ is not None \
            else _covariates(y, n, "y", None).shape[1]
        return self._condition(y, n, "y")

    @property
    def conditional_(self) -> bool:
        self._check_fitted()
        return self.architecture_.conditional

    def _condition(self, y, n: int, name: str = "y") -> np.ndarray:
        """y of a fitted conditional model, checked and coded as (n, c) float32: the
        one-hot code of its labels, or its covariates."""
        if y is None:
            raise DataError(f"this VAE is conditional: pass {name}=, the "
                            + ("class labels (one of " + _brief(self.classes_) + ")"
                               if self.classes_ is not None else
                               f"covariates ({self.n_condition_} columns)")
                            + " of each row")
        if self.classes_ is None:
            return _covariates(y, n, name, self.n_condition_)
        labels = _labels(y, n, name)
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        unknown = [v for v in dict.fromkeys(labels.tolist()) if v not in index]
        if unknown:
            raise DataError(f"{name} holds label(s) {unknown[:5]} not seen at fit; the classes "
                            f"are {_brief(self.classes_)}")
        codes = np.zeros((n, len(index)), dtype=np.float32)
        codes[np.arange(n), [index[v] for v in labels.tolist()]] = 1.0
        return codes

    def _with_condition(self, X: np.ndarray, y) -> np.ndarray:
        """X (checked) with a conditional model's coded y appended as its last columns."""
        if not self.architecture_.conditional:
            if y is not None:
                raise ParameterError("y is only for a conditional VAE (conditional=True)")
            return X
        return np.hstack([X, self._condition(y, X.shape[0])])

    @staticmethod
    def _build(architecture: ArchitectureConfig, seed: int, prior=None,
               **modules) -> VAENetwork:
        """The module with weights initialised from ``seed`` (a custom network's own
        weights as given), leaving torch's global random state untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return VAENetwork(architecture, prior, **modules)

    def _fit_gmm(self, X, seed: int) -> None:
        """Fit the ``gmm_components`` Gaussian mixture of ``sample(sampler="gmm")`` to the
        posterior means of up to GMM_ROWS training rows (pythae's GMM sampler)."""
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        if X.shape[0] > GMM_ROWS:
            X = X[np.sort(np.random.default_rng(seed).choice(X.shape[0], GMM_ROWS,
                                                             replace=False))]
        codes = self.encode(X).astype(np.float64)  # (n, L)
        k = min(self.architecture_.gmm_components, codes.shape[0])
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-6, random_state=seed)
        try:
            # one thread: k-means' OpenMP threads beside torch's ran 45x slower on 2 busy
            # cores (60 s against 1.3 s for 10000 codes of 20 dimensions)
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")  # ConvergenceWarning: any fit is usable
                gmm.fit(codes)
        except (ValueError, np.linalg.LinAlgError):  # degenerate codes: no GMM sampler
            return
        model, n = self.model_, self.architecture_.gmm_components
        as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device_)
        with torch.no_grad():
            model.gmm_weights.zero_()
            model.gmm_means.zero_()
            model.gmm_scale_tril.zero_()
            model.gmm_weights[:k] = as_tensor(gmm.weights_)  # components past k weigh 0
            model.gmm_means[:k] = as_tensor(gmm.means_)
            model.gmm_scale_tril[:k] = as_tensor(np.linalg.cholesky(gmm.covariances_))
            model.gmm_scale_tril[k:n] = torch.eye(codes.shape[1], device=self.device_)

    def _check_X(self, X, name: str, *, reset: bool) -> np.ndarray:
        if reset or hasattr(X, "columns"):
            # scikit-learn's bookkeeping of DataFrame column names: recorded by fit,
            # checked against a DataFrame later (an array is taken by position)
            try:
                _check_feature_names(self, X, reset=reset)
            except (TypeError, ValueError) as exc:  # mixed-type column names: TypeError
                raise DataError(_one_line(exc)) from None
        X, low, high = _checked_float32(X, name)
        if reset:
            if X.shape[0] < 2:
                raise DataError(f"{name} has {X.shape[0]} sample(s) (shape {X.shape}); at "
                                "least 2 are required to fit")
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise DataError(f"{name} has {X.shape[1]} features, but the VAE was fitted on "
                            f"{self.n_features_in_}")
        if self.likelihood == "bernoulli" and (low < 0 or high > 1):
            raise DataError(f"{name} has values outside [0, 1] (min {low:.3g}, max "
                            f"{high:.3g}); the Bernoulli likelihood needs intensities in "
                            "[0, 1]: rescale the data or use likelihood='gaussian'")
        return X

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this VAE is not fitted yet; call fit(X) or VAE.load(dir)")

    # ------------------------------------------------------------------ helpers

    @property
    def device_(self) -> torch.device:
        return next(self.model_.parameters()).device

    @property
    def image_shape_(self):
        return self.architecture_.image_shape

    def _tensor(self, X) -> torch.Tensor:
        return as_float_tensor(X, self.device_)

    def _generator(self, random_state) -> torch.Generator | None:
        if random_state is None:
            return None
        if isinstance(random_state, np.random.RandomState):
            random_state = int(random_state.randint(2**31 - 1))
        generator = torch.Generator(device=self.device_)
        generator.manual_seed(int(random_state))
        return generator

    def _input(self, X, y=None) -> torch.Tensor:
        """X checked, as a tensor on the model's device, in the data's units (the model
        standardizes internally); a conditional model's y coded in its last columns."""
        self._check_fitted()
        return self._tensor(self._with_condition(self._check_X(X, "X", reset=False), y))

    @property
    def standardize_(self) -> bool:
        return self.architecture_.standardize

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
        if not self.architecture_.standardize:
            return None
        return getattr(self.model_, name).cpu().numpy().astype(np.float64)

    @property
    def _n_features_out(self) -> int:
        return self.architecture_.latent_dim

    # ------------------------------------------------------------------ divergence

    def check_fit(self, X, what: str = "test", *, reference=None, y=None) -> None:
        """Raise :class:`TrainingError` if the fitted model's ELBO on (a seeded subset of
        up to 4096) rows of X is not finite or, for a Gaussian likelihood, lies more
        than 10 nats per feature below the log-likelihood of a diagonal Gaussian fitted
        to ``reference`` (the training rows; default X itself), a model the VAE
        contains (a decoder that ignores z): such an ELBO means the fit diverged.
        ``what`` names the rows in the message. ``fit`` calls it on the validation
        rows (else the training rows). ``y``: a conditional model's y of X."""
        X = self._check_X(X, "X", reset=False)
        reference = X if reference is None else self._check_X(reference, "reference",
                                                              reset=False)
        XY = self._with_condition(X, y)
        if X.shape[0] > DIVERGENCE_ROWS:
            rows = np.random.default_rng(0).choice(X.shape[0], DIVERGENCE_ROWS, replace=False)
            X, XY = X[rows], XY[rows]
        elbo = float(np.mean(self._elbo(self._tensor(XY), "b", 1, 0)))
        if not math.isfinite(elbo):
            raise TrainingError(f"the fitted VAE's ELBO on the {what} rows is {elbo}: the fit "
                                f"diverged{self._likely_cause(X)}")
        if self.architecture_.likelihood == "bernoulli":
            return
        baseline = self._diagonal_gaussian_log_likelihood(X, reference)
        if elbo < baseline - DIVERGENCE_NATS_PER_FEATURE * X.shape[1]:
            raise TrainingError(
                f"the fitted VAE's ELBO on the {what} rows, {elbo:.4g} nats per sample, is far "
                f"below the {baseline:.4g} of a diagonal Gaussian fitted to the data: the fit "
                f"diverged{self._likely_cause(X)}")

    def _diagonal_gaussian_log_likelihood(self, X, reference) -> float:
        """Mean log-density of X under N(mean, diag var) of the reference rows, var
        floored (and, for likelihood "gaussian-fixed", fixed) as the decoder's is."""
        mean, var = _moments(reference)
        X64 = np.asarray(X, dtype=np.float64)  # at most DIVERGENCE_ROWS rows
        scale = self.scale_ if self.standardize_ else np.ones(X64.shape[1])
        a = self.architecture_
        if a.likelihood == "gaussian-fixed":
            var = np.full(X64.shape[1], a.sigma**2) * scale**2
        else:
            var = np.maximum(var, a.min_variance * scale**2)
        return float(np.mean(diag_gaussian_logpdf(X64, mean, var)))

    def _likely_cause(self, X) -> str:
        """The end of a divergence message: what to change."""
        std = np.sqrt(_moments(X)[1])
        std = std[std > 0]
        spread = float(std.max() / std.min()) if std.size else 1.0
        standardized = getattr(getattr(self, "model_", None), "config", None)
        standardized = bool(standardized and standardized.standardize)
        far_from_one = std.size and (std.max() > SCALE_SPREAD or std.max() < 1 / SCALE_SPREAD)
        if not standardized and self.likelihood != "bernoulli" and std.size and (
                spread > SCALE_SPREAD or far_from_one):
            return (f"; likely cause: feature scales differ by orders of magnitude or are far "
                    f"from 1 (std from {std.min():.3g} to {std.max():.3g}, max/min std = "
                    f"{spread:.3g}); use standardize=True / --standardize")
        return f"; lower the learning rate (lr={self.lr}) or check the data"

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

    def transform(self, X) -> np.ndarray:
        """The posterior means E[z|x], (n, L): :meth:`encode` for pipelines."""
        return self.encode(X)

    def inverse_transform(self, Z) -> np.ndarray:
        """Decoder means of Z, (n, d): :meth:`decode` for pipelines."""
        return self.decode(Z)

    @torch.no_grad()
    def decode(self, Z, y=None) -> np.ndarray:
        """Decoder mean E[x|z] of each row of Z (n, L), shape (n, d), in the data's
        units; a conditional model's E[x|z, y] for the labels or covariates ``y``."""
        z = self._latent(Z)
        c = None
        if self.architecture_.conditional:
            c = self._tensor(self._condition(y, Z.shape[0]))
        elif y is not None:
            raise ParameterError("y is only for a conditional VAE (conditional=True)")
        out = [self.model_.decoder_mean(z[i:i + EVAL_BATCH],
                                        None if c is None else c[i:i + EVAL_BATCH])
               for i in range(0, z.shape[0], EVAL_BATCH)]
        return torch.cat(out).cpu().numpy()

    def _latent(self, Z) -> torch.Tensor:
        """Z (n, L) checked, as a tensor on the model's device."""
        self._check_fitted()
        Z = check_data(Z, "Z", dtype=np.float32)
        if Z.shape[1] != self.architecture_.latent_dim:
            raise DataError(f"Z has {Z.shape[1]} columns; the latent dimension is "
                            f"{self.architecture_.latent_dim}")
        return self._tensor(Z)

    def reconstruct(self, X, y=None) -> np.ndarray:
        """Decoder mean at the posterior mean: decode(encode(X)), shape (n, d)."""
        return self.decode(self.encode(X, y=y), y=y)

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
        if sampler not in SAMPLERS:
            raise ParameterError(f"sampler must be one of {list(SAMPLERS)}; got {sampler!r}")
        generator = self._generator(random_state)
        with torch.no_grad():
            if sampler == "gmm":
                z = self._gmm_sample(int(n_samples), generator)
            else:
                z = self.model_.prior.sample(int(n_samples), generator)
        return self.decode(z.cpu().numpy(), y=self._repeat(y, int(n_samples)))

    def prior_moments(self, n_draws: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std of p(z), (L,) each: 0 and 1 for N(0, I), else
        estimated from ``n_draws`` seeded prior draws (traversals sweep these)."""
        self._check_fitted()
        latent = self.architecture_.latent_dim
        if self.architecture_.prior == "standard":
            return np.zeros(latent), np.ones(latent)
        with torch.no_grad():
            z = self.model_.prior.sample(n_draws, self._generator(0)).double()
        return z.mean(0).cpu().numpy(), z.std(0).cpu().numpy()

    @property
    def has_gmm_sampler_(self) -> bool:
        """Whether ``sample(sampler="gmm")`` has a fitted mixture to draw from."""
        self._check_fitted()
        return bool(self.architecture_.gmm_components) and bool(
            self.model_.gmm_weights.sum() > 0)

    def _gmm_sample(self, n: int, generator) -> torch.Tensor:
        if not self.has_gmm_sampler_:
            raise ParameterError("this VAE has no fitted GMM sampler (gmm_components=0, or "
                                 "saved before it existed); refit with gmm_components > 0")
        model = self.model_
        k = torch.multinomial(model.gmm_weights, n, replacement=True, generator=generator)
        eps = torch.randn((n, model.gmm_means.shape[1]), generator=generator,
                          device=self.device_)
        return model.gmm_means[k] + (model.gmm_scale_tril[k] @ eps.unsqueeze(-1)).squeeze(-1)

    def _repeat(self, y, n: int):
        """One label (covariate row) of a conditional model as n of them; anything else
        as given (checked by :meth:`_condition`)."""
        if y is None or not self.architecture_.conditional:
            return y
        single = np.ndim(y) == 0 if self.classes_ is not None else np.ndim(y) == 1
        if not single:
            return y
        return np.full(n, y) if self.classes_ is not None else np.tile(np.asarray(y), (n, 1))

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

    def elbo(self, X, estimator: str = "b", n_samples: int = 1, random_state=0,
             y=None) -> np.ndarray:
        """Per-sample ELBO estimates (nats), shape (n,): ``"a"`` L_A, ``"b"`` L_B, or
        ``"iwae"`` (a tighter bound, tending to log p(x) as n_samples grows); a
        conditional model's bound on log p(x|y)."""
        return self._elbo(self._input(X, y), estimator, n_samples, random_state)

    def _elbo(self, x: torch.Tensor, estimator, n_samples, random_state) -> np.ndarray:
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ParameterError(f"n_samples must be a positive integer; got {n_samples!r}")
        seed = random_state
        if isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(2**31 - 1))
        values = evaluate_elbo(self.model_, x, estimator=get_estimator(estimator),
                               n_samples=int(n_samples), seed=seed)
        return values.cpu().numpy().astype(np.float64)

    def score_samples(self, X, y=None) -> np.ndarray:
        """Per-sample ELBO (L_B, one sample, seeded), a lower bound on log p(x) (a
        conditional model's on log p(x|y))."""
        return self.elbo(X, "b", n_samples=1, random_state=0, y=y)

    def score(self, X, y=None) -> float:
        """Mean per-sample ELBO (nats); y is used by a conditional model only (and
        ignored otherwise, as scikit-learn's pipelines pass it)."""
        return float(np.mean(self.score_samples(X, y if self.conditional_ else None)))

    def bits_per_dim(self, X, y=None) -> float:
        """-ELBO / (d ln 2): the bound in bits per dimension."""
        return bits_per_dim(self.score(X, y), self.n_features_in_)

    # ------------------------------------------------------------------ the model protocol

    exact_log_likelihood = False  # log p(x) is importance-sampled
    linear_gaussian = False

    has_density = True  # log p(x), the ELBO and the KL to the prior exist
    accepts_missing = False  # rows with NaN are refused
    fit_options = frozenset({"validation", "checkpoint_dir", "resume", "on_nan", "callbacks"})

    @property
    def samplers(self) -> tuple[str, ...]:
        """The ``sampler=`` names :meth:`sample` accepts, the default first."""
        return ("prior", "gmm") if self.has_gmm_sampler_ else ("prior",)

    @property
    def latent_dim_(self) -> int:
        self._check_fitted()
        return self.architecture_.latent_dim

    @property
    def n_iter_(self) -> int:
        """Epochs run: ``len(history_)``."""
        self._check_fitted()
        return len(self.history_)

    # ``conditional`` (the protocol's "fitted with labels / covariates") is the
    # constructor's setting, which fit requires to be True or False

    @torch.no_grad()
    def prior_log_prob(self, Z) -> np.ndarray:
        """log p(z) (nats) of each row of Z (n, L) under the model's own prior (N(0, I),
        the mixture, the VampPrior or the caller's), shape (n,)."""
        z = self._latent(Z)
        values = [self.model_.prior.log_prob(z[i:i + EVAL_BATCH])
                  for i in range(0, z.shape[0], EVAL_BATCH)]
        return torch.cat(values).cpu().numpy().astype(np.float64)

    def kl_to_prior(self, X, *, per_dimension: bool = False, n_samples: int = 256,
                    random_state=0, y=None) -> np.ndarray:
        """KL(q(z|x) || p(z)) (nats) against the model's own prior, per row (n,); with
        ``per_dimension=True`` KL(q(z_j|x) || p(z_j)) against the prior's marginal on
        each dimension j, (n, L). Closed form for a Gaussian q and the N(0, I) prior,
        else Monte Carlo over ``n_samples`` seeded draws from q (see
        :mod:`elbokit.nn._kl`; per dimension, an IAF's q(z_j|x) is moment-matched)."""
        x = self._input(X, y)
        k = check_int(n_samples, "n_samples", minimum=1)
        generator, prior = self._generator(random_state), self.model_.prior
        batch = rows_per_batch(prior, k)
        if not per_dimension:
            parts = [kl_rows(self.model_, x[i:i + batch], k, generator)
                     for i in range(0, x.shape[0], batch)]
            return torch.cat(parts).cpu().numpy().astype(np.float64)
        mean, var = self.posterior_moments(X, y=y)  # (n, L) each
        mean = self._tensor(mean)
        logvar = torch.log(self._tensor(var).clamp_min(torch.finfo(torch.float32).tiny))
        parts = [kl_dims(prior, mean[i:i + batch], logvar[i:i + batch], k, generator)
                 for i in range(0, mean.shape[0], batch)]
        return torch.cat(parts).cpu().numpy().astype(np.float64)

    def posterior_moments(self, X, y=None) -> tuple[np.ndarray, np.ndarray]:
        """Mean (n, L) and per-dimension variance (n, L) of q(z|x) (see :meth:`encode`)."""
        mean = self.encode(X, y=y)
        _, std = self.encode(X, n_samples=1, y=y)
        return mean, std**2

    def posterior_samples(self, X, n_samples: int, random_state=0, y=None) -> np.ndarray:
        """``n_samples`` draws from q(z|x) per row, shape (n, k, L)."""
        return self.encode(X, n_samples=n_samples, random_state=random_state, y=y)[0]

    def decode_mean(self, Z) -> np.ndarray:
        """Decoder mean E[x|z] of each row of Z: :meth:`decode`."""
        return self.decode(np.asarray(Z, dtype=np.float32))

    def log_likelihood_samples(self, X, *, n_importance: int = 5000, batch_size=None,
                               random_state: int = 0, progress=None, y=None) -> np.ndarray:
        """Importance-sampled log p(x) per row: log 1/k sum_i p(x, z_i)/q(z_i|x),
        z_i ~ q(z|x) (the IWAE bound with k = ``n_importance``), batched over data and
        samples so memory is bounded for any k; ``progress(rows_done)`` if given. A
        conditional model's log p(x|y), with q(z|x, y) and p(x|z, y)."""
        from .importance import importance_log_likelihood

        x = self._input(X, y)
        generator = torch.Generator(device=x.device)
        generator.manual_seed(int(random_state))
        values = importance_log_likelihood(self.model_, x, int(n_importance),
                                           batch_size=batch_size, generator=generator,
                                           progress=progress)
        return values.cpu().numpy()

    def elbo_samples(self, X, *, n_samples: int = 1, random_state: int = 0,
                     y=None) -> np.ndarray:
        """The ELBO L_B per row (nats): :meth:`elbo` with estimator ``"b"``."""
        return self.elbo(X, "b", n_samples=n_samples, random_state=random_state, y=y)

    def training_curve(self) -> list | None:
        """One dict per epoch (``train_elbo``, ``val_elbo``): ``history_``."""
        return getattr(self, "history_", None) or None

    # ------------------------------------------------------------------ saving

    def save(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write model.json (with ``extra``, JSON) and weights.safetensors to ``directory``."""
        self._check_fitted()
        return ckpt.save_model(directory, self.model_, self.architecture_, self.training_,
                               self.history_, extra=extra)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu", *,
             meta: dict | None = None, prior: Prior | None = None, encoder_class=None,
             decoder_class=None) -> "VAE":
        """Load a VAE saved by :meth:`save` (JSON and safetensors only, no pickle);
        ``meta``: its model.json, when the caller has read it already. ``prior``: for
        a model fitted with a custom prior object, one built like it (its class comes
        from the caller, never from the file; the saved weights are loaded into it).

        A model with a custom encoder or decoder is rebuilt from the classes the caller
        passes, ``encoder_class(**saved arguments)`` (no name written in the file is
        ever imported), and its weights checked against the module built."""
        classes = {"encoder": encoder_class, "decoder": decoder_class}
        where = Path(directory) / ckpt.MODEL_FILE

        def modules(architecture):
            return custom_modules(architecture, classes, where)

        architecture, training, history, tensors = ckpt.read_model(directory, meta, prior,
                                                                   modules=modules)
        model = VAENetwork(architecture, None if prior is None else copy.deepcopy(prior),
                         **modules(architecture))
        ckpt.check_state_dict(model, tensors, Path(directory) / ckpt.WEIGHTS_FILE)
        model.load_state_dict(tensors)
        settings = config_kwargs(ArchitectureConfig, architecture)
        settings.update(modules(architecture))  # fresh modules, as fit is given them
        if prior is not None:
            settings["prior"] = prior
        vae = cls(**settings, **{**config_kwargs(TrainingConfig, training), "device": device})
        vae.model_ = model.to(resolve_device(device)).eval()
        vae.architecture_, vae.training_, vae.history_ = architecture, training, history
        vae.n_features_in_ = architecture.n_features
        if architecture.feature_names is not None:
            vae.feature_names_in_ = np.asarray(architecture.feature_names, dtype=object)
        vae.n_condition_ = architecture.condition_dim
        vae.classes_ = None if architecture.classes is None else np.asarray(architecture.classes)
        return vae


def _sizes(value) -> tuple:
    """Layer sizes given as an int or a sequence, as a tuple."""
    if isinstance(value, (int, np.integer)):
        return (int(value),)
    return tuple(value)


def _one_line(exc: Exception) -> str:
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


def _prior_name(prior) -> str:
    """What model.json records for the ``prior`` argument: a name as given, the name of
    a built-in prior object, or "custom"."""
    if not isinstance(prior, Prior):
        return prior  # a string (checked by ArchitectureConfig) or a bad value
    builtin = {"standard": StandardNormal, "mog": MixtureOfGaussians, "vamp": VampPrior}
    return prior.name if builtin.get(prior.name) is type(prior) else "custom"


def _brief(values, limit: int = 12) -> str:
    values = list(np.asarray(values).tolist())
    return str(values[:limit])[:-1] + ", ...]" if len(values) > limit else str(values)


def _labels(y, n: int, name: str) -> np.ndarray:
    """1-D class labels y of n rows as an array of Python-comparable values: integers
    (integer-valued floats included) or strings."""
    values = np.asarray(y)
    if values.ndim != 1:
        raise DataError(f"{name} must be class labels of shape ({n},); got shape "
                        f"{values.shape}")
    if values.shape[0] != n:
        raise DataError(f"{name} has {values.shape[0]} entries but X has {n} rows; one label "
                        "per row is needed")
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise DataError(f"{name} holds non-integer numbers: 1-D y is class labels; pass "
                            "continuous covariates as a 2-D (n, c) matrix")
        return values.astype(np.int64)
    if values.dtype.kind in "UO" and all(isinstance(v, str) for v in values.tolist()):
        return values.astype(str)
    raise DataError(f"{name} must hold integer or string class labels; got dtype "
                    f"{values.dtype}")


def _covariates(y, n: int, name: str, width: int | None) -> np.ndarray:
    """A 2-D covariate matrix y of n rows (and ``width`` columns, when known) as float32."""
    if np.ndim(y) != 2:
        raise DataError(f"{name} must be a covariate matrix of shape ({n}, "
                        f"{width or 'c'}); got shape {np.shape(y)}")
    values = check_data(y, name, dtype=np.float32)
    if values.shape[0] != n:
        raise DataError(f"{name} has {values.shape[0]} rows but X has {n}; one row of "
                        "covariates per row of X is needed")
    if width is not None and values.shape[1] != width:
        raise DataError(f"{name} has {values.shape[1]} columns; the model was fitted on "
                        f"{width} covariates")
    return values


def _names(feature_names) -> tuple[str, ...] | None:
    return None if feature_names is None else tuple(str(n) for n in feature_names)


def _standardization(X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, s), (d,) each: the per-feature mean and standard deviation of X (float64
    sums); a constant feature's s is the root-mean-square std of all features (1 if
    every feature is constant), so its variance floor scales with the data."""
    mean, var = _moments(X)
    fill = math.sqrt(float(var.mean())) or 1.0
    scale = np.where(var > 0, np.sqrt(var), fill)
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(scale, dtype=torch.float32)


def _moments(X, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance (ddof 0) of X in float64, in chunks of rows (no
    float64 copy of a large X)."""
    n = X.shape[0]
    total = sum(np.asarray(X[i:i + chunk], dtype=np.float64).sum(0) for i in range(0, n, chunk))
    mean = total / n
    squares = sum(((np.asarray(X[i:i + chunk], dtype=np.float64) - mean) ** 2).sum(0)
                  for i in range(0, n, chunk))
    return mean, squares / n


def _checked_float32(X, name: str) -> tuple[np.ndarray, float, float]:
    """X as a checked 2-D float32 array, with its min and max.

    A float32 matrix whose min and max are finite holds no NaN or inf (NaN propagates
    through min and max), so it skips the full check (one pass over the data instead
    of three); anything else goes through :func:`check_data` and its messages."""
    if not (isinstance(X, np.ndarray) and X.dtype == np.float32 and X.ndim == 2
            and X.size > 0):
        X = check_data(X, name, dtype=np.float32)
    low, high = float(X.min()), float(X.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        X = check_data(X, name, dtype=np.float32)  # raises, naming the bad entries
    return X, low, high


def load_vae(directory, device: str = "cpu") -> VAE:
    """Load a saved VAE directory (``"kind": "vae"``)."""
    return VAE.load(directory, device=device)


__all__ = ["VAE", "load_vae"]
