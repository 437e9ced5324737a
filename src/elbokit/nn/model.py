"""The neural models as torch modules, built from an :class:`ArchitectureConfig` alone:
the VAE's :class:`VAENetwork` and the deterministic autoencoder's :class:`AENetwork`.

Encoder q(z|x) = N(mean(x), diag exp(logvar(x))), optionally followed by an inverse
autoregressive flow (``posterior="iaf"``, see ``flows.py``); prior p(z) the module
``self.prior`` (N(0, I) by default, see ``priors.py``); decoder p(x|z) given by the
likelihood. No training code here (see ``train/``) and no estimator of the ELBO (see
``objectives/``): they draw z and log q(z|x) from :meth:`VAENetwork.posterior`, which
accounts for the flow's log-determinant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ._math import gaussian_log_prob, reparameterize
from ._sizes import check_network_memory
from .config import LOGVAR_CLAMP, ArchitectureConfig
from .flows import IAF
from .likelihoods import build_likelihood
from .networks import build_decoder, build_encoder
from .priors import Prior, build_prior


@dataclass
class PosteriorSample:
    """Draws z ~ q(z|x) with what the estimators need about them.

    ``z0`` is the Gaussian draw, ``z`` the latent (after the flow, if any), both
    (S, B, L) or (B, L); ``mean``, ``logvar`` (B, L) the Gaussian's parameters;
    ``log_det`` (like z) each coordinate's share of the flow's log-determinant, or
    None for the plain Gaussian posterior."""

    z0: torch.Tensor
    z: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor
    log_det: torch.Tensor | None = None

    @property
    def gaussian(self) -> bool:
        return self.log_det is None

    def log_q_dims(self) -> torch.Tensor:
        """Per-coordinate terms of log q(z|x), like z; their sum over the last axis is
        log q(z|x) = log N(z0 | mean, diag exp(logvar)) - log |det dz/dz0|."""
        log_q = gaussian_log_prob(self.z0, self.mean, self.logvar)
        return log_q if self.log_det is None else log_q - self.log_det

    def log_q(self) -> torch.Tensor:
        """log q(z|x), shape (S, B) or (B,)."""
        return self.log_q_dims().sum(-1)


class VAENetwork(nn.Module):
    """The VAE's torch module (encoder, optional flow, decoder, likelihood); the
    scikit-learn-style estimator around it is :class:`elbokit.nn.VAE`. ``prior``: a
    :class:`~elbokit.nn.priors.Prior` object (default: the one ``config.prior`` names).

    ``gmm_*`` buffers (``config.gmm_components`` > 0): the Gaussian mixture over the
    training codes that ``VAE.sample(sampler="gmm")`` draws from, all zeros until
    fitted."""

    def __init__(self, config: ArchitectureConfig, prior: Prior | None = None, *,
                 encoder: nn.Module | None = None, decoder: nn.Module | None = None):
        """``encoder``, ``decoder``: the modules of a config whose encoder / decoder is
        "custom" (see :mod:`elbokit.nn.protocols`); the presets are built by name, after
        their size is checked against the memory available."""
        check_network_memory(config)
        super().__init__()
        self.config = config
        self.likelihood = build_likelihood(config.likelihood, min_variance=config.min_variance,
                                           sigma=config.sigma, n_features=config.n_features)
        self.flow = None
        self._context_half = 0
        if config.posterior == "iaf":
            # the context h(x) comes out of the encoder's last layer, as extra outputs
            # of its "mean" and "logvar" halves (any encoder type, unchanged code)
            self._context_half = math.ceil(config.flow_context / 2)
            self.encoder = encoder if encoder is not None else build_encoder(
                config, config.latent_dim + self._context_half)
            self.flow = IAF(config.latent_dim, config.flow_steps, config.flow_hidden,
                            config.flow_context)
        else:
            self.encoder = encoder if encoder is not None else build_encoder(config)
        self.decoder = decoder if decoder is not None else \
            build_decoder(config, self.likelihood.n_heads)
        if config.standardize:
            # x_std = (x - data_mean) / data_scale; set from the training data by the
            # estimator, saved with the weights (buffers are part of the state dict)
            self.register_buffer("data_mean", torch.zeros(config.n_features))
            self.register_buffer("data_scale", torch.ones(config.n_features))
        # built last, so the networks' initial weights do not depend on the prior
        self.prior = build_prior(config) if prior is None else prior
        self.prior.attach(self)
        if config.gmm_components:
            k, latent = config.gmm_components, config.latent_dim
            self.register_buffer("gmm_weights", torch.zeros(k))
            self.register_buffer("gmm_means", torch.zeros(k, latent))
            self.register_buffer("gmm_scale_tril", torch.zeros(k, latent, latent))

    @torch.no_grad()
    def set_standardization(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        """Set the per-feature affine map x_std = (x - mean) / scale, (d,) each."""
        self.data_mean.copy_(mean)
        self.data_scale.copy_(scale)

    def standardized(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., d) in the coordinates the networks work in: (x - m) / s, or x."""
        if not self.config.standardize:
            return x
        return (x - self.data_mean) / self.data_scale

    def log_jacobian(self, mask: torch.Tensor | None = None) -> torch.Tensor | float:
        """log |dx_std/dx| = -sum_j log s_j: what turns a density of x_std into one of
        x as given, log p(x) = log p_std((x - m) / s) - sum_j log s_j (0 without
        standardization); with ``mask`` (B, d), over each row's observed j, (B,)."""
        if not self.config.standardize:
            return 0.0
        if mask is not None:
            return -(mask * torch.log(self.data_scale)).sum(-1)
        return -torch.log(self.data_scale).sum()

    def observed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(x with its missing entries (NaN) set to 0, mask (B, d), True where
        observed), or (x, None) when every entry is observed. A model fitted on complete
        rows (``config.missing`` False) looks for NaN in eval mode only: the rows it
        trains on hold none (the estimator checked them), so its training step is
        unchanged; evaluated (imputation, scores) it takes rows with NaN too, its
        encoder seeing them at 0 (the training mean when it standardizes)."""
        if not self.config.missing and self.training:
            return x, None
        mask = ~torch.isnan(x)
        if not self.config.missing and bool(mask.all()):
            return x, None
        return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)), mask

    def split_condition(self, x: torch.Tensor):
        """A conditional model's input (..., d + c) -> (x (..., d), y (..., c)); an
        unconditional one's x -> (x, None). The conditioning y travels as the last c
        columns of x, so the estimators, the training loop and importance sampling
        serve both models unchanged."""
        c = self.config.condition_dim
        return (x, None) if not c else (x[..., :-c], x[..., -c:])

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, d) (conditional: (B, d + c), y last) as the encoder sees it: standardized,
        the likelihood's transform (counts: log(1 + x)), the 0/1 mask of a model fitted on
        missing values after it, then y."""
        x, y = self.split_condition(x)
        x = self._encoder_data(x)
        return x if y is None else torch.cat([x, y], dim=-1)

    def _encoder_data(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`encoder_input` of x (B, d) without y."""
        x, mask = self.observed(self.standardized(x))
        x = self.likelihood.encoder_input(x)  # counts: log(1 + x)
        if self.config.missing:  # the encoder sees (x zero-filled, its 0/1 mask)
            x = torch.cat([x, torch.ones_like(x) if mask is None else mask.to(x.dtype)], -1)
        return x

    def encode_posterior(self, x: torch.Tensor):
        """x (B, d) (conditional: (B, d + c), y last) -> mean, logvar (B, L) of the
        Gaussian and the flow's context (B, flow_context), None without a flow."""
        return self._posterior_parts(*self.encoder(self.encoder_input(x)))

    def encode_posterior_each(self, x: torch.Tensor, codes: torch.Tensor):
        """:meth:`encode_posterior` of a conditional model for every row of x (B, d)
        with each code of ``codes`` (K, c), class-major (K B rows): those of the rows
        ``cat([x.repeat(K, 1), codes.repeat_interleave(B, 0)], -1)``. The presets'
        encoders (``forward_each``) compute x's part once; another encoder sees the
        K B rows."""
        each = getattr(self.encoder, "forward_each", None)
        if each is None:
            return self.encode_posterior_copies(x, codes)
        return self._posterior_parts(*each(self._encoder_data(x), codes))

    def encode_posterior_copies(self, x: torch.Tensor, codes: torch.Tensor):
        """:meth:`encode_posterior_each` the plain way: every row copied K times, each
        copy through the whole encoder (a custom encoder's way, and the reference of
        ``benchmarks/semisupervised.py --speed``)."""
        return self.encode_posterior(torch.cat(
            [x.repeat(len(codes), 1), codes.repeat_interleave(x.shape[0], 0)], -1))

    def _posterior_parts(self, mean: torch.Tensor, logvar: torch.Tensor):
        """The encoder's two halves -> (mean, logvar (B, L), the flow's context or None)."""
        if self.flow is None:
            return mean, self._clamped(logvar), None
        latent = self.config.latent_dim
        context = torch.cat([mean[:, latent:], logvar[:, latent:]], dim=-1)
        return (mean[:, :latent], self._clamped(logvar[:, :latent]),
                context[:, :self.config.flow_context])

    def _clamped(self, logvar: torch.Tensor) -> torch.Tensor:
        """The encoder's log-variance, clamped to LOGVAR_CLAMP with ``clamp_logvar``."""
        if not self.config.clamp_logvar:
            return logvar
        return torch.nn.functional.hardtanh(logvar, *LOGVAR_CLAMP)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, d) -> mean, logvar of the Gaussian part of q(z|x), (B, L) each (the
        whole q(z|x) without a flow)."""
        mean, logvar, _ = self.encode_posterior(x)
        return mean, logvar

    def posterior(self, x: torch.Tensor, n_samples: int | None,
                  generator: torch.Generator | None = None, *, encoding=None) -> PosteriorSample:
        """Reparameterised draws from q(z|x): z of shape (n_samples, B, L), or (B, L)
        for ``n_samples=None``. ``encoding``: a precomputed :meth:`encode_posterior`."""
        mean, logvar, context = self.encode_posterior(x) if encoding is None else encoding
        z0 = reparameterize(mean, logvar, n_samples, generator)
        if self.flow is None:
            return PosteriorSample(z0, z0, mean, logvar)
        z, log_det = self.flow(z0, context)
        return PosteriorSample(z0, z, mean, logvar, log_det)

    def sample_posterior(self, x: torch.Tensor, n_samples: int,
                         generator: torch.Generator | None = None):
        """(z, log q(z|x)): z (n_samples, B, L) ~ q(z|x) and its log-density (n_samples, B),
        the flow's log-determinant included."""
        post = self.posterior(x, n_samples, generator)
        return post.z, post.log_q()

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """z (..., L) -> the likelihood's per-pixel parameters, (..., d) each (of the
        standardized x when the model standardizes). ``y`` (B, c): the conditioning of
        a conditional model, broadcast over z's leading sample axis."""
        if y is not None:
            z = torch.cat([z, y.expand(*z.shape[:-1], y.shape[-1])], dim=-1)
        out = self.decoder(z)
        return (out,) if torch.is_tensor(out) else tuple(out)  # a custom decoder's one head

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, params=None) -> torch.Tensor:
        """log p(x|z) of x (B, d) as given, for z (S, B, L) or (B, L): shape (S, B) or
        (B,). With standardization, log p_std(x_std|z) - sum_j log s_j (a Gaussian of
        mean m + s mu(z) and variance s^2 v(z) in the data's units). Entries of x that
        are NaN are missing: log p(x_obs|z), the sum over the observed ones (Mattei &
        Frellsen 2019). ``params``: the decoder's output at z, when the caller has it."""
        x, y = self.split_condition(x)
        x, mask = self.observed(self.standardized(x))
        params = self.decode(z, y) if params is None else params
        return self.likelihood.log_prob(x, params, mask) + self.log_jacobian(mask)

    def decoder_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x|z] (conditional: E[x|z, y]) in the data's units, (..., d)."""
        return self._in_data_units(self.likelihood.mean(self.decode(z, y)))

    def _in_data_units(self, x_std: torch.Tensor) -> torch.Tensor:
        if not self.config.standardize:
            return x_std
        return self.data_mean + self.data_scale * x_std

    def row_mean(self, x: torch.Tensor, params) -> torch.Tensor:
        """E[x|z] in the data's units (..., B, d) for the rows x (B, d) (NaN: missing)
        and the decoder's output ``params`` at their z (the counts' at each row's
        library, its observed total)."""
        x, mask = self.observed(self.standardized(self.split_condition(x)[0]))
        return self._in_data_units(self.likelihood.row_mean(x, params, mask))

    def sample_rows(self, x: torch.Tensor, params, generator=None) -> torch.Tensor:
        """Draws x ~ p(x|z) in the data's units (..., B, d), for the rows x (B, d) and
        the decoder's output ``params`` at their z."""
        x, mask = self.observed(self.standardized(self.split_condition(x)[0]))
        return self._in_data_units(self.likelihood.sample(x, params, mask, generator))


class AENetwork(nn.Module):
    """Encoder f and decoder g of the VAE's shapes; buffers ``data_mean`` (d,) and
    ``data_scale`` (): the networks see (x - data_mean) / data_scale (for the Gaussian
    loss: one scale for all features, so the loss stays proportional to the squared
    error in the data's units)."""

    def __init__(self, config: ArchitectureConfig, *, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None):
        """``encoder``, ``decoder``: the modules of a config whose encoder / decoder is
        "custom" (see :mod:`elbokit.nn.protocols`)."""
        check_network_memory(config, vae=False)
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else build_encoder(config)
        self.decoder = decoder if decoder is not None else build_decoder(config, 1)
        self.register_buffer("data_mean", torch.zeros(config.n_features))
        self.register_buffer("data_scale", torch.ones(()))

    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, d) as the networks see it: (x - data_mean) / data_scale."""
        return (x - self.data_mean) / self.data_scale

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, d) -> the code f(x), (B, L): the mean half of the encoder's output (a
        custom encoder may return the code alone)."""
        out = self.encoder(self.scaled(x))
        return out if torch.is_tensor(out) else out[0]

    def decode_heads(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """z (..., L) -> the decoder's heads (one): a custom decoder's tensor alone is one."""
        out = self.decoder(z)
        return (out,) if torch.is_tensor(out) else tuple(out)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L) -> the decoder's output (B, d): logits, or standardized means."""
        return self.decode_heads(z)[0]

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

    @property
    def loss_scale(self) -> torch.Tensor | float:
        """The factor from :meth:`loss` to the data's units: 1 for the cross-entropy,
        data_scale^2 for the squared error of the scaled x."""
        return 1.0 if self.config.likelihood == "bernoulli" else self.data_scale.detach() ** 2

    def loss_in_data_units(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`loss` in the data's units (the squared error times data_scale^2)."""
        return self.loss(x) * self.loss_scale
