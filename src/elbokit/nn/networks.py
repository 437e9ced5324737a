"""Encoders and decoders: MLPs, linear maps and small conv nets for images.

An encoder maps x (B, d) to the mean and log-variance of q(z|x), each (B, L).
A decoder maps z (..., L) to ``n_heads`` per-pixel tensors (..., d), which the
likelihood interprets (logits; mean and variance pre-activation; ...). Leading
axes of z (the L samples per point) pass through. Image rows hold C*H*W values,
channel first (C = 1 grey, 3 RGB). These presets are built from the config by name;
any other ``nn.Module`` that keeps the same contract can be passed instead
(``VAE(encoder=module, decoder=module)``, see :mod:`elbokit.nn.protocols`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..exceptions import ParameterError
from .likelihoods import Bernoulli


class GatedLinear(nn.Module):
    """The gated dense layer of the VampPrior and Exemplar-VAE code (Dauphin et al. 2017):
    h = (W x + b) * sigmoid(V x + c). Both halves come out of one matmul, (B, 2 n_out)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.linear = nn.Linear(n_in, 2 * n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.linear(x))

    @staticmethod
    def activate(pre: torch.Tensor) -> torch.Tensor:
        """The layer's output from its matmul's (..., 2 n_out)."""
        value, gate = pre.chunk(2, dim=-1)
        return value * torch.sigmoid(gate)


def linear_each(layer: nn.Linear, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``layer`` on every row of x (B, D) with each code of ``codes`` (K, c) after it,
    class-major, (K B, n_out): the rows of layer(cat([x.repeat(K, 1),
    codes.repeat_interleave(B, 0)], -1)), with x's part of the matmul computed once. The
    encoders' ``forward_each`` (M2's unlabeled rows take every class,
    :mod:`elbokit.nn.semisupervised`)."""
    c = codes.shape[-1]
    weight = layer.weight
    of_x = nn.functional.linear(x, weight[:, :-c], layer.bias)  # (B, n_out)
    of_code = nn.functional.linear(codes, weight[:, -c:])  # (K, n_out)
    return (of_code[:, None, :] + of_x[None]).flatten(0, 1)


def mlp(sizes: list[int], activation: str = "relu") -> nn.Sequential:
    """Layers of the given sizes: ``"relu"``, linear layers with ReLU between them;
    ``"gated"``, a :class:`GatedLinear` for each hidden layer. The last layer is
    linear either way."""
    layers: list[nn.Module] = []
    pairs = list(zip(sizes[:-1], sizes[1:]))
    for i, (n_in, n_out) in enumerate(pairs):
        if activation == "gated" and i < len(pairs) - 1:
            layers.append(GatedLinear(n_in, n_out))
            continue
        layers.append(nn.Linear(n_in, n_out))
        if i < len(pairs) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """d -> hidden... -> (mean, logvar); with no hidden layer it is a linear map."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], latent_dim: int,
                 activation: str = "relu"):
        super().__init__()
        self.net = mlp([n_features, *hidden, 2 * latent_dim], activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=-1)  # (B, L) each
        return mean, logvar

    def forward_each(self, x: torch.Tensor, codes: torch.Tensor):
        """:meth:`forward` of every row of x (B, D) with each code of ``codes`` (K, c)
        after it, class-major, (K B, L) each (see :func:`linear_each`)."""
        first = self.net[0]
        if isinstance(first, GatedLinear):
            hidden = first.activate(linear_each(first.linear, x, codes))
        else:
            hidden = linear_each(first, x, codes)
        mean, logvar = self.net[1:](hidden).chunk(2, dim=-1)
        return mean, logvar


class MLPDecoder(nn.Module):
    """L -> hidden... -> n_heads * d, split into n_heads tensors (..., d)."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...], n_features: int, n_heads: int,
                 activation: str = "relu"):
        super().__init__()
        self.n_heads = n_heads
        self.net = mlp([latent_dim, *hidden, n_heads * n_features], activation)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(z)  # (..., n_heads * d)
        return (out,) if self.n_heads == 1 else out.chunk(self.n_heads, dim=-1)


class LinearDecoder(nn.Module):
    """x = W z + b (+ noise): factor analysis when the likelihood is Gaussian.

    With two heads (the learned-variance Gaussian) the variance pre-activation is a
    free per-pixel parameter, not a function of z, so the model is exactly FA:
    x ~ N(W z + b, diag psi)."""

    def __init__(self, latent_dim: int, n_features: int, n_heads: int):
        super().__init__()
        self.linear = nn.Linear(latent_dim, n_features)
        self.raw_variance = nn.Parameter(torch.zeros(n_features)) if n_heads == 2 else None

    @torch.no_grad()
    def init_from_data(self, X: torch.Tensor, likelihood) -> None:
        """Start as FA's EM does, from the data's moments: b at the mean (the
        Bernoulli's at its logit), psi at the pixel variances (at least the floor), and
        W small, so that the first steps do not swamp low-variance pixels."""
        mean = X.mean(0).to(self.linear.bias.device)  # (d,)
        self.linear.weight.mul_(0.01)
        if hasattr(likelihood, "initial_logits"):  # counts: the features' mean shares
            mean = likelihood.initial_logits(X).to(mean.device)
        if self.raw_variance is None:
            if isinstance(likelihood, Bernoulli):
                p = mean.clamp(1e-3, 1 - 1e-3)
                mean = torch.log(p) - torch.log1p(-p)
        else:  # the Gaussian's variance or the logistic's scale: the pixel's variance
            self.raw_variance.copy_(likelihood.initial_raw(X.to(self.linear.bias.device)))
        self.linear.bias.copy_(mean)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mean = self.linear(z)  # (..., d)
        if self.raw_variance is None:
            return (mean,)
        return mean, self.raw_variance.expand_as(mean)


class ConvEncoder(nn.Module):
    """(B, C*H*W) -> two stride-2 convolutions (H/4, W/4) -> linear -> (mean, logvar).

    With ``n_condition`` = c > 0 the input is (B, C*H*W + c): the last c columns (the
    conditioning y) join the convolutions' features at the linear head."""

    def __init__(self, image_shape: tuple[int, int], latent_dim: int, channels=(32, 64),
                 image_channels: int = 1, n_condition: int = 0):
        super().__init__()
        self.image_shape = (image_channels, *image_shape)  # (C, H, W)
        self.n_condition = n_condition
        c1, c2 = channels
        h, w = image_shape[0] // 4, image_shape[1] // 4
        self.conv = nn.Sequential(
            nn.Conv2d(image_channels, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(c2 * h * w + n_condition, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.n_condition
        images = (x[:, :-c] if c else x).reshape(-1, *self.image_shape)  # (B, C, H, W)
        features = self.conv(images).flatten(1)  # (B, c2 * H/4 * W/4)
        if c:
            features = torch.cat([features, x[:, -c:]], dim=-1)
        mean, logvar = self.head(features).chunk(2, dim=-1)
        return mean, logvar

    def forward_each(self, x: torch.Tensor, codes: torch.Tensor):
        """:meth:`forward` of every image x (B, C*H*W) with each code of ``codes`` (K, c)
        after it, class-major, (K B, L) each: the convolutions run once per image."""
        features = self.conv(x.reshape(-1, *self.image_shape)).flatten(1)
        mean, logvar = linear_each(self.head, features, codes).chunk(2, dim=-1)
        return mean, logvar


class ConvDecoder(nn.Module):
    """z -> linear -> (c2, H/4, W/4) -> two stride-2 transposed convolutions -> n_heads
    tensors of C maps each."""

    def __init__(self, image_shape: tuple[int, int], latent_dim: int, n_heads: int,
                 channels=(32, 64), image_channels: int = 1):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.n_heads = n_heads
        self.image_channels = image_channels
        c1, c2 = channels
        self.grid = (c2, image_shape[0] // 4, image_shape[1] // 4)
        self.head = nn.Sequential(nn.Linear(latent_dim, c2 * self.grid[1] * self.grid[2]),
                                  nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, n_heads * image_channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lead = z.shape[:-1]  # (..., B)
        grid = self.head(z.reshape(-1, z.shape[-1])).view(-1, *self.grid)
        maps = self.deconv(grid).view(grid.shape[0], self.n_heads, -1)  # (N, n_heads, C*H*W)
        return tuple(maps[:, k].reshape(*lead, -1) for k in range(self.n_heads))


def build_encoder(config, n_outputs: int | None = None, extra_inputs: int = 0) -> nn.Module:
    """The encoder of ``config``, with ``n_outputs`` numbers in each of its two halves
    (mean, logvar): the latent size, or more when a flow takes a context from it. A
    conditional model's encoder takes y's ``condition_dim`` columns after x's; a model
    fitted on missing values (``config.missing``) takes x's 0/1 mask after x (for conv:
    as C more channels). ``extra_inputs``: more columns after those, joining as y does
    (the hierarchical VAE's z2 in q(z1|x, z2))."""
    n_outputs = n_outputs or config.latent_dim
    n_condition = getattr(config, "condition_dim", 0) + extra_inputs
    copies = 2 if getattr(config, "missing", False) else 1  # x, and its mask
    if config.encoder == "custom":
        raise ParameterError("a custom encoder is the caller's module; pass it "
                             "(VAE(encoder=module), VAE.load(path, encoder_class=...))")
    if config.encoder == "conv":
        return ConvEncoder(config.image_shape, n_outputs,
                           image_channels=copies * config.channels, n_condition=n_condition)
    hidden = () if config.encoder == "linear" else config.hidden
    return MLPEncoder(copies * config.n_features + n_condition, hidden, n_outputs,
                      config.activation)


def build_decoder(config, n_heads: int) -> nn.Module:
    """The decoder of ``config``; a conditional model's takes (z, y) concatenated."""
    n_inputs = config.latent_dim + getattr(config, "condition_dim", 0)
    if config.decoder == "custom":
        raise ParameterError("a custom decoder is the caller's module; pass it "
                             "(VAE(decoder=module), VAE.load(path, decoder_class=...))")
    if config.decoder == "conv":
        return ConvDecoder(config.image_shape, n_inputs, n_heads,
                           image_channels=config.channels)
    if config.decoder == "linear":
        return LinearDecoder(n_inputs, config.n_features, n_heads)
    return MLPDecoder(n_inputs, tuple(reversed(config.hidden)), config.n_features, n_heads,
                      config.activation)
