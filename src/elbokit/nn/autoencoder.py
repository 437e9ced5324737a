"""The deterministic autoencoder: the VAE's networks trained on reconstruction error.

``Autoencoder(latent_dim, likelihood=..., arch=...).fit(X)`` then ``transform``
(= ``encode``: the code f(x)), ``decode`` / ``inverse_transform`` (g(z)),
``reconstruct`` (g(f(x))), ``sample`` (g of codes drawn from N(0, I), or from a
Gaussian fitted to the training codes), ``score_samples`` (minus the reconstruction
error: **not** a density), ``save`` and ``Autoencoder.load``.

The network is :class:`~elbokit.nn.model.AENetwork` (the VAE's encoder and decoder:
mlp, linear or conv; the code is the mean half of the encoder's output), trained by the
VAE's loop (:func:`elbokit.nn.train.train`) with the objective ``"reconstruction"``:
the VAE's reconstruction term with z = f(x) and no KL, Bernoulli cross-entropy (nats)
for ``likelihood="bernoulli"``, the squared error sum_j (x_j - g(f(x))_j)^2 for
``"gaussian"``. Its settings are the config fields ``config.AUTOENCODER_SETTINGS``
names. There is no prior and no posterior, so there is no log p(x): the protocol's
density members raise :class:`NoDensityError`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from .._anndata import reads_anndata
from .._validation import check_choice, check_int, check_seed
from ..exceptions import ModelFileError, NoDensityError, TrainingError
from ..persistence import MODEL_FILE
from . import saved
from ._estimator import NeuralEstimator, sizes
from ._vae_settings import networks
from .config import (AE_LIKELIHOODS, AUTOENCODER_SETTINGS, LATENT_DIM, ArchitectureConfig,
                     TrainingConfig)
from .model import AENetwork
from .protocols import PARTS, check_autoencoder_shapes, custom_settings, network_builder
from .train import as_float_tensor, resolve_device, train

KIND = "ae"
NO_DENSITY = ("an Autoencoder has no prior and no posterior, so no log p(x) or ELBO; "
              "compare it by reconstruction error (reconstruction_error, score_samples)")
ARCHITECTURE = {f.name for f in dataclasses.fields(ArchitectureConfig)} & set(AUTOENCODER_SETTINGS)


class Autoencoder(NeuralEstimator):
    """Deterministic autoencoder x -> z = f(x) -> g(z), trained by Adam on the
    reconstruction error, with the same encoder and decoder networks as
    :class:`elbokit.nn.VAE` (the lecture's AE, to hold the VAE against).

    Parameters
    ----------
    latent_dim : L, the size of the code.
    likelihood : ``"bernoulli"`` (data in [0, 1]; loss: cross-entropy, nats) or
        ``"gaussian"`` (loss: squared error; the fixed-variance Gaussian's
        log-likelihood up to a constant).
    arch, encoder, decoder, hidden, image_shape : the networks, as for the VAE
        (``decoder="linear"`` with ``encoder="linear"`` and the Gaussian loss is a linear
        autoencoder, whose optimum is PCA's subspace). ``encoder`` and ``decoder`` may
        be your own ``torch.nn.Module`` (:mod:`elbokit.nn.protocols`: the encoder returns
        (mean, logvar) or the code alone, the decoder one head, logits for
        ``"bernoulli"``); ``fit`` trains a copy.
    epochs, batch_size, lr, lr_schedule, seed, device, progress : the training loop's
        (``lr_schedule="cosine"`` anneals the rate to 0 over the run).

    Attributes
    ----------
    model_ : the fitted :class:`~elbokit.nn.model.AENetwork`. history_ : one dict per
        epoch (``epoch``, ``train_loss``, ``val_loss`` when validation data are given,
        ``seconds``, ``wall_seconds``); losses in the data's units, per sample.
    code_mean_, code_cov_ : mean (L,) and covariance (L, L) of the training codes
        (``sample(sampler="fitted")`` draws from this Gaussian).
    n_features_in_, n_components_ : d and L.

    Examples
    --------
    >>> from elbokit.data import load
    >>> from elbokit import Autoencoder
    >>> digits = load("digits")
    >>> ae = Autoencoder(4, hidden=(64,), epochs=2).fit(digits.train)
    >>> ae.transform(digits.test[:3]).shape
    (3, 4)
    """

    kind = KIND  # the registry name (elbokit.kinds)
    noun = "Autoencoder"
    has_density = False  # the protocol's density members raise NoDensityError
    conditional = False  # fitted on x alone
    binarize = "none"  # the training rows are used as given
    samplers = ("prior", "fitted")  # the sampler= names of sample, the default first
    fit_options = frozenset({"validation"})

    # the config fields config.AUTOENCODER_SETTINGS names, with config.AUTOENCODER_DEFAULTS
    # (tests/nn/test_autoencoder.py holds the signature equal to them)
    def __init__(self, latent_dim: int = LATENT_DIM, *, likelihood: str = "bernoulli",
                 arch: str = "mlp", encoder: str | None = None, decoder: str | None = None,
                 hidden=(400,), image_shape=None, epochs: int = 10, batch_size: int = 128,
                 lr: float = 1e-3, lr_schedule: str = "constant", seed: int = 0,
                 device: str = "cpu", progress: bool = False):
        self._store_settings(locals())

    # ------------------------------------------------------------------ settings

    def _architecture(self, n_features: int) -> ArchitectureConfig:
        """The networks' settings as a VAE's ArchitectureConfig (its checks, its builders);
        the likelihood names the decoder's single head."""
        check_choice(self.likelihood, "likelihood", AE_LIKELIHOODS)
        settings = {name: getattr(self, name) for name in ARCHITECTURE}
        settings.update(custom_settings(self))  # modules of the caller's, if any
        encoder, decoder, image_shape = networks(self.arch, settings["encoder"],
                                                 settings["decoder"], self.image_shape,
                                                 n_features)
        settings.update(
            likelihood="bernoulli" if self.likelihood == "bernoulli" else "gaussian-fixed",
            encoder=encoder, decoder=decoder, hidden=sizes(self.hidden),
            image_shape=image_shape)
        names = getattr(self, "feature_names_in_", None)
        return ArchitectureConfig(n_features=n_features, feature_names=None if names is None
                                  else tuple(str(n) for n in names), **settings)

    def _training(self) -> TrainingConfig:
        """The loop's settings: the AE's, float32 and autograd's step for the rest."""
        settings = {name: getattr(self, name) for name in AUTOENCODER_SETTINGS
                    if name not in ARCHITECTURE}
        return TrainingConfig(**settings, precision="float32", fused_step=False)

    # ------------------------------------------------------------------ fitting

    @reads_anndata
    def fit(self, X, y=None, *, validation=None):
        """Minimise the mean reconstruction loss of X (n, d) by Adam; ``validation``:
        held-out rows whose loss is recorded each epoch (``history_``)."""
        started = time.perf_counter()
        training = self._training()
        check_choice(self.likelihood, "likelihood", AE_LIKELIHOODS)  # before the data's check
        X = self._check_X(X, "X", reset=True)
        if validation is not None:
            validation = self._check_X(validation, "validation", reset=False)
        architecture = self._architecture(X.shape[1])
        modules = {part: copy.deepcopy(getattr(self, part)) for part in PARTS
                   if getattr(architecture, part) == "custom"}  # refits start afresh
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            network = AENetwork(architecture, **modules)
        if self.likelihood == "gaussian":
            mean = X.astype(np.float64).mean(0)
            scale = math.sqrt(float(X.astype(np.float64).var(0).mean())) or 1.0
            network.data_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            network.data_scale.fill_(scale)
        self.model_ = network.to(resolve_device(training.device))
        if modules:
            check_autoencoder_shapes(self.model_, as_float_tensor(X[:2], self.device_))
        self.history_ = train(self.model_, X, training, architecture, validation=validation,
                              objective="reconstruction", started=started)
        self.training_ = training
        self.model_.eval()
        codes = self.transform(X).astype(np.float64)
        self.code_mean_ = codes.mean(0)
        self.code_cov_ = np.atleast_2d(np.cov(codes, rowvar=False))
        self.n_components_ = int(architecture.latent_dim)
        return self

    # ------------------------------------------------------------------ the codes

    def encode(self, X) -> np.ndarray:
        """The codes f(x), (n, L)."""
        x = self._input(X)  # checks the fit first
        return self._batched(self.model_.encode, x).cpu().numpy()

    def decode(self, Z) -> np.ndarray:
        """g(z) in the data's units (for the Bernoulli loss: the pixel probabilities), (n, d)."""
        z = self._latent(Z)
        return self._batched(self.model_.decode, z).cpu().numpy()

    def reconstruct(self, X) -> np.ndarray:
        """g(f(x)), (n, d)."""
        return self.decode(self.encode(X))

    def reconstruction_error(self, X) -> np.ndarray:
        """The training loss per row (n,), in the data's units: cross-entropy (nats) for
        the Bernoulli loss, squared error sum_j (x_j - g(f(x))_j)^2 for the Gaussian."""
        x = self._input(X)
        return self._batched(self.model_.loss_in_data_units, x).cpu().numpy().astype(np.float64)

    def score_samples(self, X) -> np.ndarray:
        """Minus :meth:`reconstruction_error` per row (higher is better). NOT a
        log-density: an autoencoder defines no p(x), so these numbers are not
        comparable with the nats of PCA/FA/VAE log-likelihoods."""
        return -self.reconstruction_error(X)

    def score(self, X, y=None) -> float:
        """Mean of :meth:`score_samples` (minus the mean reconstruction error; not nats)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state=None, *,
               sampler: str = "prior") -> np.ndarray:
        """g(z) for n codes z drawn from N(0, I) (``sampler="prior"``: the VAE's prior,
        which the AE was never trained to match) or from the Gaussian fitted to the
        training codes (``sampler="fitted"``), (n, d)."""
        self._check_fitted()
        n = check_int(n_samples, "n_samples", minimum=1)
        check_choice(sampler, "sampler", self.samplers)
        self._check_draws(1, n, 2 * (self.latent_dim_ + self.n_features_in_), "n_samples")
        rng = np.random.default_rng(check_seed(random_state))
        if sampler == "prior":
            Z = rng.standard_normal((n, self.latent_dim_))
        else:
            Z = rng.multivariate_normal(self.code_mean_, self.code_cov_, size=n,
                                        method="eigh")
        return self.decode(Z.astype(np.float32))

    # ------------------------------------------------------------------ the model protocol

    def posterior_moments(self, X) -> tuple[np.ndarray, np.ndarray]:
        """The code as a point mass: mean f(x) (n, L) and variance 0 (n, L)."""
        codes = self.encode(X)
        return codes, np.zeros_like(codes)

    def posterior_samples(self, X, n_samples: int, random_state=0) -> np.ndarray:
        """The code repeated ``n_samples`` times, (n, k, L): a point mass has no spread."""
        k = check_int(n_samples, "n_samples", minimum=1)
        check_seed(random_state)  # a point mass draws nothing; a bad seed is still refused
        codes = self.encode(X)
        self._check_draws(codes.shape[0], k, self.latent_dim_, "n_samples")
        return np.repeat(codes[:, None, :], k, axis=1)

    def prior_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Zeros and ones (L,): the N(0, I) that ``sample(sampler="prior")`` draws from
        (what traversals sweep)."""
        return np.zeros(self.latent_dim_), np.ones(self.latent_dim_)

    def log_likelihood_samples(self, X, **_) -> np.ndarray:
        """Raises :class:`NoDensityError`: an autoencoder has no log p(x)."""
        raise NoDensityError(NO_DENSITY)

    def elbo_samples(self, X, **_) -> np.ndarray:
        """Raises :class:`NoDensityError`: an autoencoder has no ELBO."""
        raise NoDensityError(NO_DENSITY)

    def prior_log_prob(self, Z) -> np.ndarray:
        """Raises :class:`NoDensityError`: an autoencoder has no prior."""
        raise NoDensityError(NO_DENSITY)

    def kl_to_prior(self, X, **_) -> np.ndarray:
        """Raises :class:`NoDensityError`: an autoencoder has no prior and no posterior."""
        raise NoDensityError(NO_DENSITY)

    def check_fit(self, X, what: str = "test", *, reference=None) -> None:
        """Raise :class:`TrainingError` if the reconstruction error on X is not finite."""
        if not np.isfinite(self.reconstruction_error(X)).all():
            raise TrainingError(f"the Autoencoder's reconstruction error on the {what} rows "
                                "is not finite; refit with a lower lr")

    def training_curve(self) -> list | None:
        """None: the history holds reconstruction losses, not ELBOs (see ``history_``)."""
        return None

    # ------------------------------------------------------------------ saving

    def _saved_tensors(self) -> dict:
        return {"code_mean_": self.code_mean_.astype(np.float64),
                "code_cov_": self.code_cov_.astype(np.float64)}

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu", *,
             meta: dict | None = None, networks=None, encoder=None, decoder=None,
             encoder_class=None, decoder_class=None) -> "Autoencoder":
        """Load an Autoencoder saved by :meth:`save` (JSON and safetensors, no pickle);
        every field and tensor is checked before use (:class:`ModelFileError`). Custom
        networks are rebuilt from the caller's code, as :meth:`VAE.load
        <elbokit.nn.VAE.load>` does (``networks``, ``encoder``/``decoder``,
        ``encoder_class``/``decoder_class``)."""
        modules = network_builder(Path(directory) / MODEL_FILE, cls.noun, networks=networks,
                                  encoder=encoder, decoder=decoder,
                                  encoder_class=encoder_class, decoder_class=decoder_class)

        def network(architecture):
            return AENetwork(architecture, **modules(architecture))

        record, architecture, training, tensors = saved.read_model(
            directory, kind=cls.kind, meta=meta, network=network, extra=_code_tensors)
        settings = {name: getattr(architecture, name, None) for name in ARCHITECTURE}
        settings.update({name: getattr(training, name) for name in AUTOENCODER_SETTINGS
                         if name not in ARCHITECTURE})
        settings.update(likelihood="bernoulli" if architecture.likelihood == "bernoulli"
                        else "gaussian", device=device)
        if architecture.likelihood not in ("bernoulli", "gaussian-fixed"):
            raise ModelFileError(f"{record.path}: an Autoencoder's likelihood is bernoulli or "
                                 f"gaussian-fixed; got {architecture.likelihood!r}")
        settings.update(modules(architecture))  # fresh modules, as fit is given them
        ae = cls(**settings)
        model = network(architecture)
        code = _code_tensors(architecture)
        weights = {k: v for k, v in tensors.items() if k not in code}
        saved.check_state_dict(model, weights, record.weights)
        model.load_state_dict(weights)
        ae.model_ = model.to(resolve_device(device)).eval()
        ae.code_mean_, ae.code_cov_ = (tensors[k].double().numpy() for k in code)
        ae.training_, ae.history_ = training, record.history
        ae.n_components_ = architecture.latent_dim
        ae._set_fitted_names(architecture, record.fitted, record.path)
        return ae


def _code_tensors(architecture) -> dict:
    """The saved tensors beside the network's: the code Gaussian's (shape, dtype)."""
    L = architecture.latent_dim
    return {"code_mean_": ((L,), "float64"), "code_cov_": ((L, L), "float64")}


__all__ = ["Autoencoder", "AENetwork"]
