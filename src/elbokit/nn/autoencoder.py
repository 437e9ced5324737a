"""The deterministic autoencoder: the VAE's networks trained on reconstruction error.

``Autoencoder(latent_dim, likelihood=..., arch=...).fit(X)`` then ``transform``
(= ``encode``: the code f(x)), ``decode`` / ``inverse_transform`` (g(z)),
``reconstruct`` (g(f(x))), ``sample`` (g of codes drawn from N(0, I), or from a
Gaussian fitted to the training codes), ``score_samples`` (minus the reconstruction
error: **not** a density), ``save`` and ``Autoencoder.load``.

The encoder and decoder are the VAE's (:func:`elbokit.nn.networks.build_encoder`,
``build_decoder``: mlp, linear or conv); the code is the mean half of the encoder's
output (its log-variance half is unused), so an autoencoder and a VAE of the same
settings have networks of the same shapes. The loss per sample is the VAE's
reconstruction term with z = f(x) and no KL: Bernoulli cross-entropy (nats) for
``likelihood="bernoulli"``, the squared error sum_j (x_j - g(f(x))_j)^2 for
``"gaussian"``. There is no prior and no posterior, so there is no log p(x): the
model-protocol members that would be densities raise :class:`NoDensityError`.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from torch import nn

from .._validation import check_choice, check_data, check_float, check_int
from ..exceptions import DataError, ModelFileError, NoDensityError, ParameterError, TrainingError
from ..persistence import (DESCRIPTION_KEY, FORMAT_VERSION, MODEL_FILE, WEIGHTS_FILE,
                           atomic_write_json, check_checksum, check_description, check_type,
                           description_digest, read_model_file, read_safetensors,
                           read_safetensors_header, sha256_file, write_safetensors)
from .config import LATENT_DIM, ArchitectureConfig
from .networks import build_decoder, build_encoder

KIND = "ae"
AE_LIKELIHOODS = ("bernoulli", "gaussian")
AE_SCHEDULES = ("constant", "cosine")
EVAL_BATCH = 4096
_DESCRIBED = ("params", "fitted", "tensors")  # the JSON that says what the weights are
_META_KEYS = ("format_version", "kind", "class", "params", "fitted", "history", "tensors",
              "sha256", "extra")
NO_DENSITY = ("an Autoencoder has no prior and no posterior, so no log p(x) or ELBO; "
              "compare it by reconstruction error (reconstruction_error, score_samples)")


class AENetwork(nn.Module):
    """Encoder f and decoder g of the VAE's shapes; buffers ``data_mean`` (d,) and
    ``data_scale`` (): the networks see (x - data_mean) / data_scale (for the Gaussian
    loss: one scale for all features, so the loss stays proportional to the squared
    error in the data's units)."""

    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config)
        self.decoder = build_decoder(config, 1)
        self.register_buffer("data_mean", torch.zeros(config.n_features))
        self.register_buffer("data_scale", torch.ones(()))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, d) -> the code f(x), (B, L): the mean half of the encoder's output."""
        code, _ = self.encoder((x - self.data_mean) / self.data_scale)
        return code

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L) -> the decoder's output (B, d): logits, or standardized means."""
        return self.decoder(z)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L) -> g(z) in the data's units, (B, d)."""
        out = self.decode_raw(z)
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(out)
        return self.data_mean + self.data_scale * out

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample training loss (B,): the Bernoulli cross-entropy (nats), or the
        squared error of the scaled x (times data_scale^2: the squared error of x)."""
        out = self.decode_raw(self.encode(x))
        if self.config.likelihood == "bernoulli":
            return nn.functional.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
        return (((x - self.data_mean) / self.data_scale - out) ** 2).sum(-1)

    def loss_in_data_units(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`loss` in the data's units (the squared error times data_scale^2)."""
        loss = self.loss(x)
        return loss if self.config.likelihood == "bernoulli" else loss * self.data_scale**2


class Autoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
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
        autoencoder, whose optimum is PCA's subspace).
    epochs, batch_size, lr, lr_schedule, seed, device, progress : Adam's run
        (``lr_schedule="cosine"`` anneals the rate to 0 over the run).

    Attributes
    ----------
    network_ : the fitted :class:`AENetwork`. history_ : one dict per epoch
        (``epoch``, ``train_loss``, ``val_loss`` when validation data are given,
        ``seconds``); losses in the data's units, per sample.
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
    exact_log_likelihood = False
    linear_gaussian = False
    has_density = False  # the protocol's density members raise NoDensityError
    conditional = False  # fitted on x alone
    accepts_missing = False  # rows with NaN are refused
    binarize = "none"  # the training rows are used as given
    samplers = ("prior", "fitted")  # the sampler= names of sample, the default first
    fit_options = frozenset({"validation"})

    def __init__(self, latent_dim: int = LATENT_DIM, *, likelihood: str = "bernoulli",
                 arch: str = "mlp", encoder: str | None = None, decoder: str | None = None,
                 hidden=(400,), image_shape=None, epochs: int = 10, batch_size: int = 128,
                 lr: float = 1e-3, lr_schedule: str = "constant", seed: int = 0,
                 device: str = "cpu", progress: bool = False):
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.arch = arch
        self.encoder = encoder
        self.decoder = decoder
        self.hidden = hidden
        self.image_shape = image_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.seed = seed
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ settings

    def _architecture(self, n_features: int) -> ArchitectureConfig:
        """The networks' settings as a VAE's ArchitectureConfig (its checks, its builders);
        the likelihood names the decoder's single head."""
        check_choice(self.likelihood, "likelihood", AE_LIKELIHOODS)
        decoder = self.decoder or self.arch
        encoder = self.encoder or ("linear" if decoder == "linear" else self.arch)
        image_shape = self.image_shape
        if image_shape is None and "conv" in (encoder, decoder):
            side = math.isqrt(n_features)
            image_shape = (side, side) if side * side == n_features else None
        hidden = (self.hidden,) if isinstance(self.hidden, (int, np.integer)) else self.hidden
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise ParameterError(f"hidden must be a tuple of integers; got {self.hidden!r}") \
                from None
        return ArchitectureConfig(
            n_features=n_features, latent_dim=self.latent_dim,
            likelihood="bernoulli" if self.likelihood == "bernoulli" else "gaussian-fixed",
            arch=self.arch, encoder=encoder, decoder=decoder, hidden=hidden,
            image_shape=None if image_shape is None else tuple(image_shape))

    def _check_training(self) -> None:
        check_int(self.epochs, "epochs", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_float(self.lr, "lr", low=0.0, low_inclusive=False)
        check_choice(self.lr_schedule, "lr_schedule", AE_SCHEDULES)
        check_int(self.seed, "seed", minimum=0)
        check_choice(self.device, "device", ("cpu", "cuda", "auto"))
        if not isinstance(self.progress, bool):
            raise ParameterError(f"progress must be True or False; got {self.progress!r}")

    def _device(self) -> torch.device:
        from .train import resolve_device

        return resolve_device(self.device)

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None, *, validation=None):
        """Minimise the mean reconstruction loss of X (n, d) by Adam; ``validation``:
        held-out rows whose loss is recorded each epoch (``history_``)."""
        self._check_training()
        X = self._check_X(X, "X", reset=True)
        if validation is not None:
            validation = self._check_X(validation, "validation")
        architecture = self._architecture(X.shape[1])
        device = self._device()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            network = AENetwork(architecture)
        if self.likelihood == "gaussian":
            mean = X.astype(np.float64).mean(0)
            scale = math.sqrt(float(X.astype(np.float64).var(0).mean())) or 1.0
            network.data_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            network.data_scale.fill_(scale)
        self.network_ = network.to(device)
        self.history_ = self._train(X, validation)
        self.network_.eval()
        codes = self.transform(X).astype(np.float64)
        self.code_mean_ = codes.mean(0)
        self.code_cov_ = np.atleast_2d(np.cov(codes, rowvar=False))
        self.n_components_ = int(architecture.latent_dim)
        return self

    def _train(self, X: np.ndarray, validation) -> list[dict]:
        """Adam over shuffled minibatches (seeded); one history entry per epoch."""
        network, device = self.network_, self.network_.data_mean.device
        x_all = torch.as_tensor(X, device=device)
        generator = torch.Generator().manual_seed(int(self.seed))
        optimizer = torch.optim.Adam(network.parameters(), lr=float(self.lr))
        n, batch = x_all.shape[0], min(int(self.batch_size), x_all.shape[0])
        steps = self.epochs * math.ceil(n / batch)
        scheduler = None
        if self.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        history = []
        for epoch in range(1, self.epochs + 1):
            start, total = time.perf_counter(), 0.0
            network.train()
            for rows in torch.randperm(n, generator=generator).split(batch):
                loss = network.loss(x_all[rows.to(device)]).mean()
                if not torch.isfinite(loss):
                    raise TrainingError(f"the reconstruction loss became {loss.item()} in "
                                        f"epoch {epoch}; lower lr (now {self.lr})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += loss.item() * rows.numel()
            network.eval()
            scale = 1.0 if self.likelihood == "bernoulli" else float(network.data_scale) ** 2
            entry = {"epoch": epoch, "train_loss": total / n * scale}
            if validation is not None:
                entry["val_loss"] = float(np.mean(self.reconstruction_error(validation)))
            entry["seconds"] = time.perf_counter() - start
            history.append(entry)
            if self.progress:
                print(f"epoch {epoch}: train loss {entry['train_loss']:.4f}")
        return history

    def _check_X(self, X, name: str, *, reset: bool = False) -> np.ndarray:
        X = check_data(X, name, dtype=np.float32, min_samples=2 if reset else 1)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise DataError(f"{name} has {X.shape[1]} features, but the Autoencoder was "
                            f"fitted on {self.n_features_in_}")
        if self.likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise DataError(f"{name} has values outside [0, 1] (min {X.min():.3g}, max "
                            f"{X.max():.3g}); the Bernoulli loss needs intensities in [0, 1]: "
                            "rescale the data or use likelihood='gaussian'")
        return X

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this Autoencoder is not fitted yet; call fit(X) or "
                                 "Autoencoder.load(dir)")

    def _input(self, X) -> torch.Tensor:
        self._check_fitted()
        return torch.as_tensor(self._check_X(X, "X"), device=self.network_.data_mean.device)

    @torch.no_grad()
    def _batched(self, fn, x: torch.Tensor) -> np.ndarray:
        return torch.cat([fn(x[i:i + EVAL_BATCH]) for i in range(0, x.shape[0], EVAL_BATCH)]
                         ).cpu().numpy()

    # ------------------------------------------------------------------ the codes

    def encode(self, X) -> np.ndarray:
        """The codes f(x), (n, L)."""
        x = self._input(X)  # checks the fit first
        return self._batched(self.network_.encode, x)

    def transform(self, X) -> np.ndarray:
        """The codes f(x), (n, L): :meth:`encode` for pipelines."""
        return self.encode(X)

    def decode(self, Z) -> np.ndarray:
        """g(z) in the data's units (for the Bernoulli loss: the pixel probabilities), (n, d)."""
        self._check_fitted()
        Z = check_data(Z, "Z", dtype=np.float32)
        if Z.shape[1] != self.network_.config.latent_dim:
            raise DataError(f"Z has {Z.shape[1]} columns; the code has "
                            f"{self.network_.config.latent_dim}")
        z = torch.as_tensor(Z, device=self.network_.data_mean.device)
        return self._batched(self.network_.decode, z)

    def inverse_transform(self, Z) -> np.ndarray:
        """g(z), (n, d): :meth:`decode` for pipelines."""
        return self.decode(Z)

    def reconstruct(self, X) -> np.ndarray:
        """g(f(x)), (n, d)."""
        return self.decode(self.encode(X))

    def reconstruction_error(self, X) -> np.ndarray:
        """The training loss per row (n,), in the data's units: cross-entropy (nats) for
        the Bernoulli loss, squared error sum_j (x_j - g(f(x))_j)^2 for the Gaussian."""
        x = self._input(X)
        return self._batched(self.network_.loss_in_data_units, x).astype(np.float64)

    def score_samples(self, X) -> np.ndarray:
        """Minus :meth:`reconstruction_error` per row (higher is better). NOT a
        log-density: an autoencoder defines no p(x), so these numbers are not
        comparable with the nats of PCA/FA/VAE log-likelihoods."""
        return -self.reconstruction_error(X)

    def score(self, X, y=None) -> float:
        """Mean of :meth:`score_samples` (minus the mean reconstruction error; not nats)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state=None, *, sampler: str = "prior") -> np.ndarray:
        """g(z) for n codes z drawn from N(0, I) (``sampler="prior"``: the VAE's prior,
        which the AE was never trained to match) or from the Gaussian fitted to the
        training codes (``sampler="fitted"``), (n, d)."""
        self._check_fitted()
        n = check_int(n_samples, "n_samples", minimum=1)
        check_choice(sampler, "sampler", self.samplers)
        rng = np.random.default_rng(random_state)
        L = self.network_.config.latent_dim
        if sampler == "prior":
            Z = rng.standard_normal((n, L))
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
        codes = self.encode(X)
        return np.repeat(codes[:, None, :], k, axis=1)

    def decode_mean(self, Z) -> np.ndarray:
        """g(z): :meth:`decode`."""
        return self.decode(np.asarray(Z, dtype=np.float32))

    def log_likelihood_samples(self, X, **_) -> np.ndarray:
        """Raises :class:`NoDensityError`: an autoencoder has no log p(x)."""
        raise NoDensityError(NO_DENSITY)

    def elbo_samples(self, X, **_) -> np.ndarray:
        """Raises :class:`NoDensityError`: an autoencoder has no ELBO."""
        raise NoDensityError(NO_DENSITY)

    @property
    def latent_dim_(self) -> int:
        self._check_fitted()
        return self.network_.config.latent_dim

    @property
    def n_iter_(self) -> int:
        """Epochs run: ``len(history_)``."""
        self._check_fitted()
        return len(self.history_)

    def prior_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Zeros and ones (L,): the N(0, I) that ``sample(sampler="prior")`` draws from
        (what traversals sweep)."""
        L = self.latent_dim_
        return np.zeros(L), np.ones(L)

    def prior_log_prob(self, Z) -> np.ndarray:
        """Raises :class:`NoDensityError`: an autoencoder has no prior."""
        raise NoDensityError(NO_DENSITY)

    def kl_to_prior(self, X, **_) -> np.ndarray:
        """Raises :class:`NoDensityError`: an autoencoder has no prior and no posterior."""
        raise NoDensityError(NO_DENSITY)

    def check_fit(self, X, what: str = "test", *, reference=None) -> None:
        """Raise :class:`TrainingError` if the reconstruction error on X is not finite."""
        error = self.reconstruction_error(X)
        if not np.isfinite(error).all():
            raise TrainingError(f"the Autoencoder's reconstruction error on the {what} rows "
                                "is not finite; refit with a lower lr")

    def training_curve(self) -> list | None:
        """None: the history holds reconstruction losses, not ELBOs (see ``history_``)."""
        return None

    # ------------------------------------------------------------------ saving

    def save(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write model.json (settings, fitted scalars, history, tensor list, checksums;
        ``extra``: JSON) and weights.safetensors (the network, the code Gaussian)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous().numpy()
                   for k, v in self.network_.state_dict().items()}
        tensors["code_mean_"] = self.code_mean_.astype(np.float64)
        tensors["code_cov_"] = self.code_cov_.astype(np.float64)
        write_safetensors(directory / WEIGHTS_FILE, tensors)
        config = self.network_.config
        params = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in self.get_params(deep=False).items()}
        meta = {
            "format_version": FORMAT_VERSION, "kind": KIND, "class": type(self).__name__,
            "params": params,
            "fitted": {"n_features_in_": int(self.n_features_in_),
                       "image_shape": None if config.image_shape is None
                       else list(config.image_shape),
                       "feature_names_in_": None if not hasattr(self, "feature_names_in_")
                       else [str(v) for v in self.feature_names_in_]},
            "history": self.history_,
            "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                        for k, v in tensors.items()},
            "sha256": {WEIGHTS_FILE: sha256_file(directory / WEIGHTS_FILE)},
            "extra": extra or {},
        }
        meta["sha256"][DESCRIPTION_KEY] = description_digest(meta, _DESCRIBED)
        atomic_write_json(directory / MODEL_FILE, meta)  # last: the commit record
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu", *,
             meta: dict | None = None) -> "Autoencoder":
        """Load an Autoencoder saved by :meth:`save` (JSON and safetensors, no pickle);
        every field and tensor is checked before use (:class:`ModelFileError`)."""
        directory = Path(directory)
        path = directory / MODEL_FILE
        meta = read_model_file(directory) if meta is None else meta
        ae, architecture = _checked_settings(cls, meta, path, device)
        weights = directory / WEIGHTS_FILE
        sha = meta["sha256"]
        check_type(sha, dict, "sha256", path)
        check_checksum(weights, sha.get(WEIGHTS_FILE))
        header = read_safetensors_header(weights)
        check_description(meta, _DESCRIBED, path)
        with torch.device("meta"):
            expected = AENetwork(architecture).state_dict()
        L = architecture.latent_dim
        need = {k: (tuple(v.shape), "float32") for k, v in expected.items()}
        need.update(code_mean_=((L,), "float64"), code_cov_=((L, L), "float64"))
        _check_header(header, need, weights)
        tensors = read_safetensors(weights, header=header)
        for name, array in tensors.items():
            if not np.isfinite(array).all():
                raise ModelFileError(f"{weights}: tensor {name!r} holds NaN or inf values")
        network = AENetwork(architecture)
        state = {k: torch.as_tensor(np.array(tensors[k])) for k in expected}
        network.load_state_dict(state)
        for name in ("code_mean_", "code_cov_"):
            setattr(ae, name, np.array(tensors[name], dtype=np.float64))
        ae.network_ = network.to(ae._device()).eval()
        return ae


def _checked_settings(cls, meta: dict, path: Path, device: str):
    """The unfitted estimator and the architecture model.json describes, every field
    checked (one-line :class:`ModelFileError` naming the field)."""
    if meta.get("kind") != KIND:
        raise ModelFileError(f"{path} holds a model of kind {str(meta.get('kind'))[:40]!r}, "
                             "not an Autoencoder")
    unknown = sorted(set(meta) - set(_META_KEYS))
    if unknown:
        raise ModelFileError(f"{path} has unknown field(s) {unknown[:5]}")
    for key in ("params", "fitted", "tensors", "sha256"):
        check_type(meta.get(key), dict, key, path)
    params, fitted = dict(meta["params"]), meta["fitted"]
    allowed = set(cls().get_params(deep=False))
    if set(params) - allowed:
        raise ModelFileError(f"{path}: Autoencoder has no parameter(s) "
                             f"{sorted(set(params) - allowed)[:5]}")
    for name in ("hidden", "image_shape"):
        if isinstance(params.get(name), list):
            params[name] = tuple(params[name])
    image_shape = fitted.get("image_shape")
    try:
        ae = cls(**{**params, "device": device})
        ae._check_training()
        n_features = fitted.get("n_features_in_")
        check_int(n_features, "fitted.n_features_in_", minimum=1)
        ae.n_features_in_ = n_features
        ae.image_shape = tuple(image_shape) if isinstance(image_shape, list) else image_shape
        architecture = ae._architecture(n_features)
    except (ParameterError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad settings ({str(exc).splitlines()[0]})") from None
    ae.image_shape = params.get("image_shape")
    history = meta.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ModelFileError(f"{path}: 'history' must be a list of objects")
    ae.history_ = history
    ae.n_components_ = architecture.latent_dim
    names = fitted.get("feature_names_in_")
    if names is not None:
        if not (isinstance(names, list) and len(names) == n_features
                and all(isinstance(v, str) for v in names)):
            raise ModelFileError(f"{path}: fitted.feature_names_in_ must be {n_features} "
                                 "strings")
        ae.feature_names_in_ = np.asarray(names, dtype=object)
    return ae, architecture


def _check_header(header: dict, need: dict, where) -> None:
    """The weights file holds exactly the tensors ``need`` lists, with their shapes and dtypes."""
    if set(header) != set(need):
        raise ModelFileError(f"{where}: the weights do not fit the settings in model.json "
                             f"(missing {sorted(set(need) - set(header))[:5]}, unexpected "
                             f"{sorted(set(header) - set(need))[:5]})")
    from ..persistence import NUMPY_DTYPES

    for name, (dtype, shape) in header.items():
        want_shape, want_dtype = need[name]
        if tuple(shape) != want_shape or NUMPY_DTYPES.get(dtype) != want_dtype:
            raise ModelFileError(f"{where}: tensor {name!r} is {dtype} {tuple(shape)}; the "
                                 f"settings need {want_dtype} {want_shape}")


__all__ = ["Autoencoder", "AENetwork"]
