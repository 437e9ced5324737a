"""Shared fixtures and fakes.

* ``digits`` (session fixture) and ``fa_problem``: real data and a known factor-analysis
  model; :func:`sample_linear_gaussian` draws from x = W z + mu + noise.
* The linear-Gaussian VAE in three forms, each with log p(x) and the ELBO known in
  closed form: :class:`LinearGaussianVAE`, a duck-typed torch module (``encode``,
  ``log_likelihood``) built by :func:`linear_gaussian_vae` (orthogonal W, exact or
  deliberately imperfect encoder) or :func:`shrunk_linear_gaussian_vae` (random W,
  shrunk mean map and inflated variance); and :func:`linear_vae_model`, a real
  float64 ``VAENetwork`` whose linear encoder and decoder are set by hand, with
  :func:`rotated_problem`, :func:`exact_posterior` and :func:`closed_form_elbo`.

* :func:`quiet`, :func:`edit_json`, :func:`edit_model_json`, :func:`one_line_exit_2` and
  :func:`assert_same_weights`: small helpers
  several test files share.

Test files import the helpers with ``from conftest import ...``.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

import elbokit
from elbokit._math import LowRankGaussian


@pytest.fixture(scope="session")
def digits():
    return elbokit.data.load("digits")


def sample_linear_gaussian(n, W, psi, mu, seed=0):
    """Draw n rows of x = W z + mu + noise, z ~ N(0, I), noise ~ N(0, diag(psi))."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, W.shape[1]))
    return z @ W.T + mu + rng.standard_normal((n, W.shape[0])) * np.sqrt(psi)


@pytest.fixture
def fa_problem():
    """A known factor-analysis model with 3 factors in 12 dimensions."""
    rng = np.random.default_rng(42)
    d, L = 12, 3
    W = rng.standard_normal((d, L))
    psi = rng.uniform(0.1, 0.5, d)
    mu = rng.standard_normal(d)
    return W, psi, mu


def quiet(fn):
    """``fn()`` with every warning silenced (scale-spread, Heywood and constant-feature
    notes that a test does not look at)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def edit_json(path, change, *, drop_digest: bool = False):
    """Read the JSON file at ``path``, let ``change(meta)`` edit it in place, write it back.

    ``drop_digest``: also remove model.json's description digest (which must be there),
    so that the edit reaches the field checks instead of the digest mismatch, as in a
    file of a version without digests."""
    meta = json.loads(path.read_text())
    change(meta)
    if drop_digest:
        meta["sha256"].pop("description")
    path.write_text(json.dumps(meta))
    rehash_manifest(path)


def rehash_manifest(path) -> None:
    """After a hand edit of a committed run's file: its entry in the run's manifest.json
    recomputed, as an attacker would (the edit must reach the file's own checks; the
    manifest's own check has tests of its own, tests/hostile/test_run_commit.py)."""
    from elbokit.persistence import MANIFEST_FILE, sha256_file

    manifest = path.parent / MANIFEST_FILE
    if manifest.is_file():
        record = json.loads(manifest.read_text())
        if path.name in record["files"]:
            record["files"][path.name] = sha256_file(path)
            manifest.write_text(json.dumps(record))


def edit_model_json(path, change):
    """:func:`edit_json` for a model.json, its description digest recomputed as an
    attacker would: the edit must be caught by the checks of the fields themselves."""
    from elbokit.persistence import model_file
    from elbokit.persistence.files import description_digest

    def change_and_redigest(meta):
        change(meta)
        if isinstance(meta.get("sha256"), dict):
            meta["sha256"]["description"] = description_digest(meta, model_file.DESCRIBED)

    edit_json(path, change_and_redigest)


def one_line_exit_2(argv, capsys, match: str) -> str:
    """Run the CLI on ``argv``: it must exit with code 2 and one line on stderr holding
    ``match``; returns that line."""
    from elbokit.cli import main

    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
    return err


def assert_same_weights(a, b):
    """Two torch state dicts (or two fitted VAEs' ``model_``) hold identical tensors."""
    a, b = (x.model_.state_dict() if hasattr(x, "model_") else x for x in (a, b))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# --------------------------------------------------------------------------- linear-Gaussian VAEs

def _float64(a):
    return torch.as_tensor(a, dtype=torch.float64)


class LinearGaussianVAE(torch.nn.Module):
    """p(z) = N(0, I), p(x|z) = N(W z + b, s2 I), q(z|x) = N(A x + c, diag(v)), float64:
    the duck-typed interface the ELBO estimators and importance sampling need
    (``encode``, ``log_likelihood``), with log p(x) and the ELBO in closed form."""

    def __init__(self, W, b, s2, A, c, v):
        super().__init__()
        self.W, self.b, self.A, self.c, self.v = map(_float64, (W, b, A, c, v))
        self.s2 = float(s2)

    def encode(self, x):
        mean = x @ self.A.T + self.c
        return mean, torch.log(self.v).expand_as(mean)

    def log_likelihood(self, x, z):
        mean = z @ self.W.T + self.b
        return (-0.5 * (math.log(2 * math.pi * self.s2) + (x - mean) ** 2 / self.s2)).sum(-1)

    def log_px(self, x):
        """Exact log p(x) = log N(x | b, W W' + s2 I), (n,) tensor (torch.distributions)."""
        cov = self.W @ self.W.T + self.s2 * torch.eye(len(self.b), dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def exact_log_px(self, x):
        """The same log p(x) as a numpy array, by the Woodbury identity."""
        g = LowRankGaussian(self.W.numpy(), np.full(self.W.shape[0], self.s2))
        return g.logpdf(x.numpy() - self.b.numpy())

    def exact_elbo(self, x):
        """The ELBO in closed form, E_q[log p(x|z)] - KL(q || p), numpy (n,)."""
        m, logv = self.encode(x)
        v = torch.exp(logv)
        resid = x - m @ self.W.T - self.b
        d = x.shape[1]
        expected = -0.5 * (d * math.log(2 * math.pi * self.s2)
                           + ((resid ** 2).sum(-1) + (v * (self.W ** 2).sum(0)).sum(-1))
                           / self.s2)
        kl = 0.5 * (v + m ** 2 - 1 - logv).sum(-1)
        return (expected - kl).numpy()


def linear_gaussian_vae(exact_posterior: bool, seed=0, d=6, L=2, s2=0.5, n=200):
    """A :class:`LinearGaussianVAE` with orthogonal columns of W (so the exact posterior
    is diagonal) and its encoder either exact or deliberately imperfect, with n rows
    drawn from the model: ``(model, x)``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, L)))
    W = Q * np.arange(L, 0, -1, dtype=np.float64)  # column norms L, ..., 1
    b = rng.standard_normal(d)
    G = np.linalg.inv(np.eye(L) + W.T @ W / s2)  # posterior covariance (diagonal)
    A_exact = G @ W.T / s2
    if exact_posterior:
        A, c, v = A_exact, -A_exact @ b, np.diag(G)
    else:  # a deliberately imperfect encoder
        A, c, v = 0.7 * A_exact, -0.7 * A_exact @ b + 0.1, 1.5 * np.diag(G)
    model = LinearGaussianVAE(W, b, s2, A, c, v)
    x = torch.as_tensor(rng.standard_normal((n, L)) @ W.T + b
                        + rng.standard_normal((n, d)) * math.sqrt(s2))
    return model, x


def shrunk_linear_gaussian_vae(d=5, L=2, s2=0.5, seed=0):
    """A :class:`LinearGaussianVAE` with random W and b (torch generator ``seed``), its
    encoder the exact posterior's mean map shrunk by 0.8 and variance inflated by 1.3:
    the ELBO is strictly below log p(x)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, L, generator=g, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    G = torch.linalg.inv(torch.eye(L, dtype=torch.float64) + W.T @ W / s2)
    A = 0.8 * G @ W.T / s2  # shrunk posterior mean map
    return LinearGaussianVAE(W, b, s2, A, -A @ b, 1.3 * torch.diagonal(G))


def rotated_problem(seed=0, d=6, L=2, n=5):
    """``(W, psi, b, X)``: a decoder with heteroscedastic noise psi whose W is rotated so
    that W' Psi^-1 W is diagonal (the exact posterior is then a diagonal Gaussian), and
    n rows drawn from N(b, W W' + Psi)."""
    rng = np.random.default_rng(seed)
    psi = rng.uniform(0.2, 1.0, size=d)
    W0 = rng.normal(size=(d, L))
    _, U = np.linalg.eigh(W0.T @ (W0 / psi[:, None]))
    W = W0 @ U  # W^T Psi^-1 W diagonal
    b = rng.normal(size=d)
    X = b + rng.normal(size=(n, d)) @ np.linalg.cholesky(W @ W.T + np.diag(psi)).T
    return W, psi, b, X


def exact_posterior(W, psi, b):
    """``(gaussian, G, A)``: the LowRankGaussian of the decoder, the posterior covariance
    G = (I + W' Psi^-1 W)^-1 and the posterior mean map, E[z|x] = A (x - b)."""
    gaussian = LowRankGaussian(W, psi)
    G = gaussian.posterior_cov()
    return gaussian, G, G @ W.T / psi


def closed_form_elbo(X, W, psi, b, A, c, logvar):
    """The ELBO of q(z|x) = N(A x + c, diag exp(logvar)) under the decoder (W, b, psi)."""
    m = X @ A.T + c  # (n, L)
    s2 = np.exp(logvar)  # (L,)
    resid = X - m @ W.T - b
    expected_log_lik = -0.5 * np.sum(np.log(2 * np.pi * psi)
                                     + (resid**2 + (W**2 @ s2)) / psi, axis=1)
    kl = 0.5 * np.sum(s2 + m**2 - 1 - logvar, axis=1)
    return expected_log_lik - kl


def linear_vae_model(W, psi, b, enc_weight, enc_bias, enc_logvar):
    """A real float64 ``VAENetwork`` with decoder (W, b, psi) and encoder mean = A x + c,
    logvar = e (constant), set by hand."""
    from elbokit.nn import ArchitectureConfig, VAENetwork

    d, L = W.shape
    config = ArchitectureConfig(n_features=d, latent_dim=L, likelihood="gaussian",
                                encoder="linear", decoder="linear", min_variance=1e-8)
    model = VAENetwork(config).double()
    with torch.no_grad():
        model.decoder.linear.weight.copy_(torch.tensor(W))
        model.decoder.linear.bias.copy_(torch.tensor(b))
        excess = torch.tensor(psi - 1e-8)
        model.decoder.raw_variance.copy_(torch.log(torch.expm1(excess)))
        linear = model.encoder.net[0]
        linear.weight.zero_()
        linear.weight[:L].copy_(torch.tensor(enc_weight))
        linear.bias[:L].copy_(torch.tensor(enc_bias))
        linear.bias[L:].copy_(torch.tensor(enc_logvar))
    # the variance the model really uses (softplus round trip)
    psi_model = model.likelihood.variance(model.decoder.raw_variance).detach().numpy()
    np.testing.assert_allclose(psi_model, psi, rtol=1e-10)
    return model


# R's datasets::ability.cov (n.obs = 112), the example of ?factanal, whose printed output
# the factor-analysis tests reproduce
ABILITY_COV = np.array([
    [24.641, 5.991, 33.520, 6.023, 20.755, 29.701],
    [5.991, 6.700, 18.137, 1.782, 4.936, 7.204],
    [33.520, 18.137, 149.831, 19.424, 31.430, 50.753],
    [6.023, 1.782, 19.424, 12.711, 4.757, 9.075],
    [20.755, 4.936, 31.430, 4.757, 52.604, 66.762],
    [29.701, 7.204, 50.753, 9.075, 66.762, 135.292]])


def data_with_covariance(C, n, seed=0, shift=0.0):
    """n rows whose ML covariance (divisor n) is exactly C: whitened noise, recoloured."""
    Z = np.random.default_rng(seed).standard_normal((n, C.shape[0]))
    Z -= Z.mean(0)
    Z = Z @ np.linalg.inv(np.linalg.cholesky(Z.T @ Z / n)).T
    return Z @ np.linalg.cholesky(C).T + shift


# ---------------------------------------------------------------- the hostile tests'
@pytest.fixture
def seconds_to_stop():
    """``stop(code, ready, signum)``: run ``code`` in a fresh interpreter, wait for it to
    print ``ready``, let it work a second, send ``signum``; returns (seconds from the
    signal to the exit, return code, stderr)."""
    def stop(code: str, ready: str, signum: int) -> tuple[float, int, str]:
        # a shell's background job ignores SIGINT and passes that on: the child must
        # start with the default, as from a terminal (as in test_crash_safety)
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                    signal.SIG_DFL))
        try:
            assert process.stdout.readline().strip() == ready
            time.sleep(1.0)  # inside the long loop
            os.kill(process.pid, signum)
            start = time.monotonic()
            process.wait(timeout=30)
            return time.monotonic() - start, process.returncode, process.stderr.read()
        finally:
            process.kill()

    return stop
