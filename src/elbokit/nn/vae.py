"""The VAE estimator: scikit-learn-like API over :class:`VAEModel`.

``VAE(latent_dim, likelihood=..., decoder=...).fit(X)`` then ``encode``, ``decode``,
``reconstruct``, ``sample``, ``interpolate``, ``elbo``, ``score_samples``, ``score``,
``save`` and ``VAE.load``. Inputs and outputs are numpy arrays; all numbers are
nats per sample unless stated.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .._validation import check_data
from ..exceptions import DataError, ParameterError
from . import checkpoint as ckpt
from .config import ArchitectureConfig, TrainingConfig
from .model import VAEModel
from .objectives import get_estimator
from .train import EVAL_BATCH, as_float_tensor, evaluate_elbo, resolve_device, train

FLOW_MOMENT_SAMPLES = 256  # draws behind the posterior mean and std of an IAF model


class VAE(BaseEstimator):
    """Variational autoencoder of the lecture: Gaussian encoder, N(0, I) prior.

    Parameters
    ----------
    latent_dim : L, the dimension of z.
    likelihood : ``"bernoulli"`` (data in [0, 1]), ``"gaussian"`` (learned
        per-pixel variance, floored at ``min_variance``) or ``"gaussian-fixed"``
        (standard deviation ``sigma``).
    decoder : ``"mlp"``, ``"linear"`` (x = W z + b + noise: factor analysis with an
        amortised posterior) or ``"conv"``. Default: ``"conv"`` if ``arch="conv"``,
        else ``"mlp"``.
    encoder : ``"mlp"``, ``"linear"`` or ``"conv"``. Default: linear for a linear
        decoder (the exact FA posterior mean is linear in x), else ``arch``.
    arch : ``"mlp"`` or ``"conv"``, the family of the non-linear networks (conv needs
        ``image_shape`` with sides divisible by 4, e.g. 8x8 or 28x28).
    hidden : hidden layer sizes of the MLP encoder; the MLP decoder mirrors them.
    posterior : ``"gaussian"`` (diagonal) or ``"iaf"``: an inverse autoregressive flow
        of ``flow_steps`` MADE steps (hidden sizes ``flow_hidden``, a context of
        ``flow_context`` numbers from the encoder) on the Gaussian sample.
    epochs, batch_size, lr, lr_schedule, objective, n_samples, binarize, patience, seed, device,
    progress : training settings, see :class:`~elbokit.nn.config.TrainingConfig`.
        ``objective`` is ``"a"`` (L_A), ``"b"`` (L_B) or ``"iwae"`` (with
        ``n_samples=k``, the k-sample bound of Burda et al.).
    kl_warmup, free_bits, beta : weighting of the KL term in the training loss
        (objectives "a" and "b"); the recorded ELBO stays unweighted.

    Attributes
    ----------
    model_ : the fitted :class:`~elbokit.nn.model.VAEModel` (torch module).
    architecture_, training_ : the configs it was built and fitted with.
    history_ : list of per-epoch dicts (``train_elbo``, ``val_elbo``, ``seconds``).
    n_features_in_ : d.

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

    def __init__(self, latent_dim: int = 20, *, likelihood: str = "bernoulli",
                 decoder: str | None = None, encoder: str | None = None, arch: str = "mlp",
                 hidden=(400,), image_shape=None, min_variance: float = 1e-3,
                 sigma: float = 1.0, posterior: str = "gaussian", flow_steps: int = 2,
                 flow_hidden=(320,), flow_context: int = 64, epochs: int = 10,
                 batch_size: int = 128, lr: float = 1e-3,
                 lr_schedule: str = "constant", objective: str = "b", n_samples: int = 1,
                 binarize: str = "none",
                 patience: int = 0, seed: int = 0, device: str = "auto", progress: bool = True,
                 kl_warmup: int = 0, free_bits: float = 0.0, beta: float = 1.0):
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.decoder = decoder
        self.encoder = encoder
        self.arch = arch
        self.hidden = hidden
        self.image_shape = image_shape
        self.min_variance = min_variance
        self.sigma = sigma
        self.posterior = posterior
        self.flow_steps = flow_steps
        self.flow_hidden = flow_hidden
        self.flow_context = flow_context
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.objective = objective
        self.n_samples = n_samples
        self.binarize = binarize
        self.patience = patience
        self.seed = seed
        self.device = device
        self.progress = progress
        self.kl_warmup = kl_warmup
        self.free_bits = free_bits
        self.beta = beta

    # ------------------------------------------------------------------ configs

    def _architecture(self, n_features: int) -> ArchitectureConfig:
        if self.arch not in ("mlp", "conv"):
            raise ParameterError(f"arch must be 'mlp' or 'conv'; got {self.arch!r}")
        decoder = self.decoder or ("conv" if self.arch == "conv" else "mlp")
        encoder = self.encoder or ("linear" if decoder == "linear" else self.arch)
        image_shape = self.image_shape
        if image_shape is None and "conv" in (encoder, decoder):
            side = math.isqrt(n_features)
            image_shape = (side, side) if side * side == n_features else None
        hidden = _sizes(self.hidden)
        return ArchitectureConfig(
            n_features=n_features, latent_dim=self.latent_dim, likelihood=self.likelihood,
            encoder=encoder, decoder=decoder, hidden=hidden,
            image_shape=None if image_shape is None else tuple(image_shape),
            min_variance=self.min_variance, sigma=self.sigma, posterior=self.posterior,
            flow_steps=self.flow_steps, flow_hidden=_sizes(self.flow_hidden),
            flow_context=self.flow_context)

    def _training(self, **overrides) -> TrainingConfig:
        settings = dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                        lr_schedule=self.lr_schedule, objective=self.objective,
                        n_samples=self.n_samples,
                        binarize=self.binarize, patience=self.patience, seed=self.seed,
                        device=self.device, progress=self.progress, kl_warmup=self.kl_warmup,
                        free_bits=self.free_bits, beta=self.beta)
        settings.update({k: v for k, v in overrides.items() if v is not None})
        if not isinstance(settings["objective"], str):  # an ELBOEstimator object
            name = getattr(settings["objective"], "name", "custom")
            settings["objective"] = name if name in ("a", "b", "iwae") else "custom"
        return TrainingConfig(**settings)

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y=None, *, validation=None, epochs: int | None = None,
            batch_size: int | None = None, lr: float | None = None, checkpoint_dir=None,
            resume: bool = False, on_nan: str = "stop"):
        """Maximise the ELBO of X (n, d) by Adam.

        ``validation``: held-out rows, whose ELBO (L_B, one sample) is recorded each
        epoch and drives early stopping (``patience``). ``checkpoint_dir``: where a
        checkpoint is written after every epoch; ``resume=True`` continues from it.
        ``on_nan``: ``"stop"`` (raise :class:`TrainingError`, keep the last good
        checkpoint) or ``"skip-batch"`` (skip steps with a non-finite loss or gradient;
        counted as ``skipped_batches`` in ``history_``).
        """
        X = self._check_X(X, "X", reset=True)
        if validation is not None:
            validation = self._check_X(validation, "validation", reset=False)
        objective = self.objective if not isinstance(self.objective, str) else None
        training = self._training(epochs=epochs, batch_size=batch_size, lr=lr)
        if objective is None:
            objective = training.objective
        architecture = self._architecture(X.shape[1])
        if training.binarize != "none" and architecture.likelihood != "bernoulli":
            raise ParameterError("binarize applies to likelihood='bernoulli' only")
        if training.patience and validation is None:
            raise ParameterError("early stopping (patience > 0) needs validation data")
        device = resolve_device(training.device)
        self.model_ = self._build(architecture, training.seed).to(device)
        if hasattr(self.model_.decoder, "init_from_data"):
            self.model_.decoder.init_from_data(as_float_tensor(X), self.model_.likelihood)
        self.history_ = train(self.model_, X, training, architecture, validation=validation,
                              objective=objective, run_dir=checkpoint_dir, resume=resume,
                              on_nan=on_nan)
        self.architecture_, self.training_ = architecture, training
        self.model_.eval()
        return self

    @staticmethod
    def _build(architecture: ArchitectureConfig, seed: int) -> VAEModel:
        """The module with weights initialised from ``seed``, leaving torch's global
        random state untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return VAEModel(architecture)

    def _check_X(self, X, name: str, *, reset: bool) -> np.ndarray:
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

    def _input(self, X) -> torch.Tensor:
        self._check_fitted()
        return self._tensor(self._check_X(X, "X", reset=False))

    # ------------------------------------------------------------------ using the model

    @torch.no_grad()
    def encode(self, X, n_samples: int | None = None, random_state=0):
        """Posterior mean E[z|x] (the MAP estimate for a Gaussian q), shape (n, L).

        With ``n_samples=k``: returns ``(samples, std)``: k draws from q(z|x) per
        point, shape (n, k, L), and the per-dimension posterior standard deviation,
        shape (n, L): the encoder's uncertainty about z.

        With ``posterior="iaf"`` q(z|x) has no closed-form moments: the mean and std
        are Monte-Carlo estimates over ``max(k, 256)`` seeded draws of the flow."""
        x = self._input(X)
        if self.model_.flow is not None:
            return self._encode_flow(x, n_samples, random_state)
        means, logvars = zip(*(self.model_.encode(x[i:i + EVAL_BATCH])
                               for i in range(0, x.shape[0], EVAL_BATCH)))
        mean, logvar = torch.cat(means), torch.cat(logvars)  # (n, L) each
        if n_samples is None:
            return mean.cpu().numpy()
        std = torch.exp(0.5 * logvar)
        eps = torch.randn((mean.shape[0], n_samples, mean.shape[1]),
                          generator=self._generator(random_state), device=mean.device)
        samples = mean[:, None, :] + std[:, None, :] * eps  # (n, k, L)
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
    def decode(self, Z) -> np.ndarray:
        """Decoder mean E[x|z] of each row of Z (n, L), shape (n, d)."""
        self._check_fitted()
        Z = check_data(Z, "Z", dtype=np.float32)
        if Z.shape[1] != self.architecture_.latent_dim:
            raise DataError(f"Z has {Z.shape[1]} columns; the latent dimension is "
                            f"{self.architecture_.latent_dim}")
        z = self._tensor(Z)
        out = [self.model_.decoder_mean(z[i:i + EVAL_BATCH])
               for i in range(0, z.shape[0], EVAL_BATCH)]
        return torch.cat(out).cpu().numpy()

    def reconstruct(self, X) -> np.ndarray:
        """Decoder mean at the posterior mean: decode(encode(X)), shape (n, d)."""
        return self.decode(self.encode(X))

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Decoder means of n draws z ~ N(0, I) from the prior, shape (n, d)."""
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ParameterError(f"n_samples must be a positive integer; got {n_samples!r}")
        z = torch.randn((int(n_samples), self.architecture_.latent_dim),
                        generator=self._generator(random_state), device=self.device_)
        return self.decode(z.cpu().numpy())

    def interpolate(self, x1, x2, steps: int = 10) -> np.ndarray:
        """Decoder means along the straight line between the posterior means of two
        inputs (each of shape (d,) or (1, d)), shape (steps, d)."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
            raise ParameterError(f"steps must be an integer >= 2; got {steps!r}")
        ends = self.encode(np.vstack([np.reshape(x1, (1, -1)), np.reshape(x2, (1, -1))]))
        t = np.linspace(0.0, 1.0, int(steps), dtype=np.float32)[:, None]  # (steps, 1)
        return self.decode((1 - t) * ends[0] + t * ends[1])

    def elbo(self, X, estimator: str = "b", n_samples: int = 1, random_state=0) -> np.ndarray:
        """Per-sample ELBO estimates (nats), shape (n,): ``"a"`` L_A, ``"b"`` L_B, or
        ``"iwae"`` (a tighter bound, tending to log p(x) as n_samples grows)."""
        x = self._input(X)
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ParameterError(f"n_samples must be a positive integer; got {n_samples!r}")
        seed = random_state
        if isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(2**31 - 1))
        values = evaluate_elbo(self.model_, x, estimator=get_estimator(estimator),
                               n_samples=int(n_samples), seed=seed)
        return values.cpu().numpy().astype(np.float64)

    def score_samples(self, X) -> np.ndarray:
        """Per-sample ELBO (L_B, one sample, seeded), a lower bound on log p(x)."""
        return self.elbo(X, "b", n_samples=1, random_state=0)

    def score(self, X, y=None) -> float:
        """Mean per-sample ELBO (nats)."""
        return float(np.mean(self.score_samples(X)))

    def bits_per_dim(self, X) -> float:
        """-ELBO / (d ln 2): the bound in bits per dimension."""
        return -self.score(X) / (self.n_features_in_ * math.log(2.0))

    # ------------------------------------------------------------------ saving

    def save(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write model.json (with ``extra``, JSON) and weights.safetensors to ``directory``."""
        self._check_fitted()
        return ckpt.save_model(directory, self.model_, self.architecture_, self.training_,
                               self.history_, extra=extra)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "cpu", *,
             meta: dict | None = None) -> "VAE":
        """Load a VAE saved by :meth:`save` (JSON and safetensors only, no pickle);
        ``meta``: its model.json, when the caller has read it already."""
        architecture, training, history, tensors = ckpt.read_model(directory, meta)
        model = VAEModel(architecture)
        ckpt.check_state_dict(model, tensors, Path(directory) / ckpt.WEIGHTS_FILE)
        model.load_state_dict(tensors)
        a, t = architecture, training
        vae = cls(a.latent_dim, likelihood=a.likelihood, decoder=a.decoder, encoder=a.encoder,
                  hidden=a.hidden, image_shape=a.image_shape, min_variance=a.min_variance,
                  sigma=a.sigma, posterior=a.posterior, flow_steps=a.flow_steps,
                  flow_hidden=a.flow_hidden, flow_context=a.flow_context, epochs=t.epochs,
                  batch_size=t.batch_size, lr=t.lr,
                  lr_schedule=t.lr_schedule, objective=t.objective, n_samples=t.n_samples,
                  binarize=t.binarize,
                  patience=t.patience, seed=t.seed, device=device, progress=t.progress,
                  kl_warmup=t.kl_warmup, free_bits=t.free_bits, beta=t.beta)
        vae.model_ = model.to(resolve_device(device)).eval()
        vae.architecture_, vae.training_, vae.history_ = architecture, training, history
        vae.n_features_in_ = architecture.n_features
        return vae


def _sizes(value) -> tuple:
    """Layer sizes given as an int or a sequence, as a tuple."""
    if isinstance(value, (int, np.integer)):
        return (int(value),)
    return tuple(value)


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
