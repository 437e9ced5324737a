"""L_B's training step for the preset MLP VAE, forward and backward written out.

The lecture's L_B for one draw per point, with the Bernoulli decoder and p(z) = N(0, I):

    L_B(x) = sum_d [x_d l_d - softplus(l_d)] - KL(q(z|x) || N(0, I)),
    z = mu(x) + exp(logvar(x) / 2) * eps,  eps ~ N(0, I),
    KL = 1/2 sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j),

and the minibatch loss -1/B sum_b [log p(x_b|z_b) - w KL_b] (w the KL weight of the
warm-up, 1 without it). Its gradient, by the chain rule from the logits back:

    dloss/dl = (sigmoid(l) - x) / B                                 (B, d)
    dloss/dmu = dloss/dz + w mu / B
    dloss/dlogvar = dloss/dz * eps * exp(logvar / 2) / 2 + w (exp(logvar) - 1) / (2 B)

(zero where the clamp of ``clamp_logvar`` holds logvar at a bound, as hardtanh's
gradient is), and through each dense layer y = a W^T + b: dW = g^T a, db = sum_b g,
da = g W; ReLU passes g where its output is > 0; the gated layer h = v * sigmoid(u)
passes g * sigmoid(u) to v and g * v * s (1 - s) to u.

A mixture prior p(z) = sum_k pi_k N(z | m_k, diag exp(s_k)) (``prior="mog"`` with K > 1,
or the VampPrior, whose (m_k, s_k) are the encoder's output at the pseudo-inputs u_k and
pi_k = 1/K) has no closed-form KL; L_B then uses, as :class:`.single_sample.AnalyticKLELBO` does,
KL = KL(q || r) + log r(z) - log p(z) with r = N(m_r, diag v_r) the prior's
moment-matched Gaussian, held constant. With rho_bk = pi_k N(z_b | m_k, s_k) / p(z_b)
(the responsibilities) its gradients are

    dKL_b/dmu = (mu - m_r) / v_r,  dKL_b/dlogvar = (exp(logvar) / v_r - 1) / 2,
    dKL_b/dz_b = -(z_b - m_r) / v_r + sum_k rho_bk (z_b - m_k) exp(-s_k),
    dKL_b/dm_k = -rho_bk (z_b - m_k) exp(-s_k),
    dKL_b/ds_k = -rho_bk ((z_b - m_k)^2 exp(-s_k) - 1) / 2,
    dKL_b/dlogit_k = pi_k - rho_bk                              (the mixture's weights);

the VampPrior's pseudo-inputs run through the encoder in the same matmuls as the batch
(B + K rows), and its (m_k, s_k) gradients flow back through it to the encoder's weights
and to u_k.

Autograd computes the same numbers (``tests/nn/test_fused_step.py`` compares every gradient and
a seeded fit's history); what this saves is its bookkeeping: recording the graph, one
node and one small kernel per operation, the transposes and gradient accumulation:
a fit of the 784-300-300-40 benchmark model ran 1.25x faster than with autograd's
backward on 2 CPU threads (``benchmarks/vae_speed.py --with-autograd``, 2026-12-01); the
long run's gated recipe 1.04x under N(0, I), 1.25x under the VampPrior (K = 10) and 1.09x
under a 10-component mixture, on 1 thread (``benchmarks/prior_speed.py``, medians of 3
rounds, 2026-12-01).
It is the step L_B's objective picks (:meth:`.elbo.ELBOObjective.make_step`) where
the model is one it covers (:func:`fused_step`); anything else (other networks,
likelihoods, priors, flows, estimators, free bits, torchrun) takes autograd's step.
``fused_step=False`` turns it off.

With ``precision="bfloat16"`` (mixed precision, the rule of
:mod:`elbokit.nn.train.precision`) the step's matmuls take bfloat16 operands: the
weights are rounded once per step, the networks' activations are kept in bfloat16
between layers, and oneDNN accumulates each product in float32. Everything the lecture's
formulas compute from the networks' outputs (the reparameterised z, log p(x|z), the KL,
dloss/dlogits and the prior's gradients) stays float32, as do the weights, their
gradients and Adam's state (the master copy).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._math import (
    bernoulli_log_prob_sum,
    diag_gaussian_log_prob,
    kl_diag_gaussian_standard,
    kl_diag_gaussians_dims,
)
from ..config import LOGVAR_CLAMP
from ..likelihoods import Bernoulli
from ..networks import GatedLinear, MLPDecoder, MLPEncoder
from ..priors import MixtureOfGaussians, StandardNormal, VampPrior, moment_matched
from ..train.precision import compute_dtype
from .loss import kl_weight
from .single_sample import AnalyticKLELBO


class FusedLB:
    """The step: ``loss, neg_elbo = step(x, generator, step_index, steps_per_epoch)``
    sets every parameter's ``.grad`` (overwritten in place where it has one: what a
    ``backward`` after ``zero_grad()`` leaves, without the allocation) and returns the
    loss that gradient is of and the batch's mean -ELBO, both detached."""

    def __init__(self, model, config, encoder_layers, decoder_layers):
        self.model, self.config = model, config
        self.encoder, self.decoder = encoder_layers, decoder_layers  # see _layers
        self.latent = model.config.latent_dim
        self.clamp = model.config.clamp_logvar
        prior = model.prior
        self.vamp = prior if type(prior) is VampPrior else None
        self.mog = prior if type(prior) is MixtureOfGaussians else None
        # the matmuls' operand type (None: the parameters' own, float32)
        self.dtype = compute_dtype(config.precision)

    def __call__(self, x: torch.Tensor, generator, step: int, steps_per_epoch: int):
        weight = kl_weight(self.config, step, steps_per_epoch) \
            if self.config.kl_weighted else 1.0
        with torch.no_grad():
            return self._step(x, generator, float(weight))

    def _step(self, x, generator, weight):
        n, latent, vamp = x.shape[0], self.latent, self.vamp
        # the VampPrior's pseudo-inputs ride along as K more rows of the encoder's batch
        inputs = x if vamp is None else torch.cat([x, vamp.pseudo_inputs])
        encoded, enc_saved = _forward(self.encoder, inputs, self.dtype)  # (B [+ K], 2L)
        raw_logvar = encoded[:, latent:]
        logvars = raw_logvar.clamp(*LOGVAR_CLAMP) if self.clamp else raw_logvar
        mean, logvar = encoded[:n, :latent], logvars[:n]
        eps = torch.randn(tuple(mean.shape), generator=generator, device=mean.device,
                          dtype=mean.dtype)  # the draw _math.reparameterize makes
        std = torch.exp(0.5 * logvar)
        z = mean + std * eps
        logits, dec_saved = _forward(self.decoder, z, self.dtype)  # (B, d)
        log_lik = bernoulli_log_prob_sum(x, logits)  # (B,)
        var = torch.exp(logvar)

        grad = torch.sigmoid(logits).sub_(x).div_(n)  # dloss/dlogits
        grad_z = _backward(self.decoder, dec_saved, grad, need_input=0)  # (B, L)
        grad_encoded = torch.empty_like(encoded)
        grad_mean, grad_logvar = grad_encoded[:n, :latent], grad_encoded[:n, latent:]
        scale = weight / n  # dloss/dKL_b
        if vamp is None and self.mog is None:  # N(0, I): dKL/dmu = mu, dKL/dlogvar = (v - 1)/2
            kl = kl_diag_gaussian_standard(mean, logvar)  # (B,)
            d_mean, d_logvar = mean, (var - 1).mul_(0.5)
        else:
            if vamp is not None:
                means, comp_logvars = encoded[n:, :latent], logvars[n:]
                log_weights = torch.full((vamp.n_components,), -math.log(vamp.n_components),
                                         dtype=x.dtype, device=x.device)
            else:
                means, comp_logvars = self.mog.means, self.mog.logvars
                log_weights = torch.log_softmax(self.mog.logits, dim=0)
            kl, d_mean, d_logvar, d_z, d_means, d_logvars, d_logits = _mixture_kl(
                mean, logvar, var, z, means, comp_logvars, log_weights,
                with_logits=vamp is None)
            grad_z.add_(d_z, alpha=scale)
            if vamp is not None:  # the components are encoder rows n.. (B + K)
                torch.mul(d_means, scale, out=grad_encoded[n:, :latent])
                torch.mul(d_logvars, scale, out=grad_encoded[n:, latent:])
            else:
                _set_grad(self.mog.means, torch.mul, d_means, scale)
                _set_grad(self.mog.logvars, torch.mul, d_logvars, scale)
                _set_grad(self.mog.logits, torch.mul, d_logits, scale)
        # dloss/dmu = dloss/dz + w dKL/dmu / B; dloss/dlogvar = dloss/dz eps std / 2 + ...
        torch.add(grad_z, d_mean, alpha=scale, out=grad_mean)
        torch.mul(grad_z, eps, out=grad_logvar)
        grad_logvar.mul_(std).mul_(0.5).add_(d_logvar, alpha=scale)
        if self.clamp:  # hardtanh's gradient: 0 at and beyond the bounds
            grad_encoded[:, latent:] = torch.ops.aten.hardtanh_backward(
                grad_encoded[:, latent:], raw_logvar, *LOGVAR_CLAMP)
        grad_inputs = _backward(self.encoder, enc_saved, grad_encoded,
                                need_input=None if vamp is None else n)
        if vamp is not None:  # dloss/du_k, a new (K, d) tensor of _backward's
            vamp.pseudo_inputs.grad = grad_inputs
        neg_elbo = (kl - log_lik).mean()
        loss = neg_elbo if weight == 1.0 else weight * kl.mean() - log_lik.mean()
        return loss, neg_elbo


def _mixture_kl(mean, logvar, var, z, means, logvars, log_weights, with_logits=True):
    """The mixture prior's KL_b = KL(q_b || r) + log r(z_b) - log p(z_b) (r the
    moment-matched Gaussian, constant) and its gradients (module docstring): per row
    with respect to mu, logvar, z (B, L) each; summed over the rows with respect to the
    components' means, log-variances (K, L) and mixing logits (K,; None unless
    ``with_logits``: the VampPrior's weights are fixed)."""
    r_mean, r_logvar = moment_matched(torch.exp(log_weights), means, logvars)  # (L,)
    log_joint = log_weights + diag_gaussian_log_prob(z.unsqueeze(-2), means, logvars)  # (B, K)
    log_p = torch.logsumexp(log_joint, dim=-1)  # (B,)
    kl = (kl_diag_gaussians_dims(mean, logvar, r_mean, r_logvar).sum(-1)
          + diag_gaussian_log_prob(z, r_mean, r_logvar) - log_p)
    rho = torch.exp(log_joint - log_p.unsqueeze(-1))  # responsibilities (B, K)
    inv_r_var = torch.exp(-r_logvar)
    diff = z.unsqueeze(-2) - means  # (B, K, L)
    scaled = diff * torch.exp(-logvars)  # (z_b - m_k) / v_k
    weighted = rho.unsqueeze(-1) * scaled  # rho_bk (z_b - m_k) / v_k
    d_z = weighted.sum(1) - (z - r_mean) * inv_r_var
    d_mean = (mean - r_mean) * inv_r_var
    d_logvar = 0.5 * (var * inv_r_var - 1)
    d_means = -weighted.sum(0)
    d_logvars = -0.5 * ((weighted * diff).sum(0) - rho.sum(0).unsqueeze(-1))
    # sum_b (pi_k - rho_bk)
    d_logits = z.shape[0] * torch.exp(log_weights) - rho.sum(0) if with_logits else None
    return kl, d_mean, d_logvar, d_z, d_means, d_logvars, d_logits


def fused_step(model, config, objective, distributed: bool):
    """A :class:`FusedLB` where it computes exactly what autograd would for this run:
    the preset MLP encoder and decoder (ReLU or gated), the Bernoulli likelihood, the
    standard prior, the VampPrior or a mixture of K > 1 Gaussians, no flow, no
    conditioning, no standardization, one stochastic layer, L_B with one draw and the standard gradient, no
    free bits, one process; else None."""
    arch = model.config
    covered = (config.fused_step and not distributed
               and type(objective) is AnalyticKLELBO and config.n_samples == 1
               and config.gradient == "standard" and not config.free_bits
               and type(model.encoder) is MLPEncoder and type(model.decoder) is MLPDecoder
               and getattr(model, "flow", None) is None
               and isinstance(model.likelihood, Bernoulli)
               and _covered_prior(getattr(model, "prior", None))
               and not arch.condition_dim and not arch.standardize and not arch.missing
               and not getattr(arch, "top_latent_dim", 0))
    if not covered:
        return None
    layers = _layers(model.encoder.net), _layers(model.decoder.net)
    return None if None in layers else FusedLB(model, config, *layers)


def _covered_prior(prior) -> bool:
    """N(0, I), the VampPrior, or a mixture of K > 1 Gaussians (K = 1 has a closed-form
    KL that autograd's path takes, and leaves the logit without a gradient)."""
    return (type(prior) in (StandardNormal, VampPrior)
            or (type(prior) is MixtureOfGaussians and prior.n_components > 1))


# --------------------------------------------------------------------------- layers

def _layers(net: nn.Sequential):
    """[(linear, activation)] of an :func:`~elbokit.nn.networks.mlp`, activation
    "relu", "gated" or None (the last, linear layer); None for any other layout."""
    modules, layers = list(net), []
    i = 0
    while i < len(modules):
        m = modules[i]
        if type(m) is GatedLinear:
            layers.append((m.linear, "gated"))
        elif type(m) is nn.Linear:
            relu = i + 1 < len(modules) and type(modules[i + 1]) is nn.ReLU
            layers.append((m, "relu" if relu else None))
            i += relu
        else:
            return None
        i += 1
    if not layers or layers[-1][1] is not None or any(a is None for _, a in layers[:-1]):
        return None
    return layers


def _forward(layers, h, dtype=None):
    """The network's output (in the parameters' type) and, per layer, what its backward
    needs: (input, output, weight) for ReLU and linear layers, (input, value,
    sigmoid(gate), weight) for gated ones. ``dtype``: the matmuls' operand type
    (bfloat16: mixed precision; the saved tensors are then bfloat16 too); None: the
    weights' own."""
    saved = []
    if dtype is not None:
        h = h.to(dtype)
    for linear, activation in layers:
        weight, bias = linear.weight, linear.bias
        if dtype is not None:  # rounded once per step, used again by the backward
            weight, bias = weight.to(dtype), bias.to(dtype)
        out = torch.addmm(bias, h, weight.t())
        if activation == "gated":
            half = out.shape[1] // 2
            value, gate = out[:, :half], torch.sigmoid(out[:, half:])
            saved.append((h, value, gate, weight))
            h = value * gate
        else:
            if activation == "relu":
                out.relu_()
            saved.append((h, out, weight))
            h = out
    if dtype is not None:  # back to the parameters' type (float32)
        h = h.to(layers[-1][0].weight.dtype)
    return h, saved


def _backward(layers, saved, grad, need_input: int | None):
    """Set each layer's weight and bias gradients (float32) from ``grad`` =
    dloss/d(output); return dloss/d(input) (float32) for the rows from ``need_input``
    on (None: none). The matmuls run in the type :func:`_forward` saved."""
    grad = grad.to(saved[-1][-1].dtype)  # the weights' compute type: no copy in float32
    for i in range(len(layers) - 1, -1, -1):
        (linear, activation), kept = layers[i], saved[i]
        weight = kept[-1]
        if activation == "gated":
            h, value, gate, _ = kept
            pre = torch.empty(grad.shape[0], 2 * grad.shape[1], dtype=grad.dtype,
                              device=grad.device)
            torch.mul(grad, gate, out=pre[:, :grad.shape[1]])
            # d/du [v sigmoid(u)] = v s (1 - s)
            torch.mul(grad, value, out=pre[:, grad.shape[1]:])
            pre[:, grad.shape[1]:].mul_(gate).mul_(1 - gate)
        else:
            h, out, _ = kept
            # ReLU's gradient, g where the output is > 0 (one kernel, no mask tensor)
            pre = grad if activation is None else \
                torch.ops.aten.threshold_backward(grad, out, 0.0)
        if weight.dtype == linear.weight.dtype:
            _set_grad(linear.weight, torch.mm, pre.t(), h)
            _set_grad(linear.bias, torch.sum, pre, 0)
        else:  # mixed precision: the product in the compute type, stored in float32
            _set_grad(linear.weight, _copy_of, torch.mm(pre.t(), h))
            _set_grad(linear.bias, torch.sum, pre, 0, dtype=linear.bias.dtype)
        if i > 0:
            grad = torch.mm(pre, weight)
        elif need_input is not None:
            grad = torch.mm(pre[need_input:], weight).to(linear.weight.dtype)
    return grad


def _copy_of(tensor, out=None):
    """``tensor`` converted into ``out`` (a float32 gradient), or a float32 copy."""
    return tensor.float() if out is None else out.copy_(tensor)


def _set_grad(param, op, *args, **kwargs):
    """param.grad = op(*args), written into the existing gradient tensor when there is
    one of the right shape (no allocation per step), else a new one."""
    grad = param.grad
    if grad is None or grad.shape != param.shape:
        param.grad = op(*args, **kwargs)
    else:
        op(*args, **kwargs, out=grad)
