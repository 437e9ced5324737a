"""Torch numerics of the VAE (elbokit.nn._math): reference values from
torch.distributions / closed forms, and finite values and gradients at the extremes
(log-variances of +-30, pixels at exactly 0 and 1, saturated logits)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit.nn import _math  # noqa: E402
from elbokit.nn.likelihoods import Bernoulli, FixedGaussian, Gaussian  # noqa: E402


def _dtype64(*arrays):
    return [torch.tensor(a, dtype=torch.float64) for a in arrays]


def test_gaussian_log_prob_matches_torch_distributions():
    rng = np.random.default_rng(0)
    x, mean, logvar = _dtype64(rng.normal(size=50), rng.normal(size=50), rng.normal(size=50))
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(x)
    torch.testing.assert_close(_math.gaussian_log_prob(x, mean, logvar), expected)


def test_bernoulli_log_prob_matches_definition_and_broadcasts():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.uniform(size=(4, 6)))
    logits = torch.tensor(rng.normal(size=(3, 4, 6)))  # (S, B, d) against x (B, d)
    p = torch.sigmoid(logits)
    expected = x * torch.log(p) + (1 - x) * torch.log1p(-p)
    torch.testing.assert_close(_math.bernoulli_log_prob(x, logits), expected)


def test_kl_matches_numpy_full_covariance_kl():
    from elbokit._math import gaussian_kl_to_standard

    rng = np.random.default_rng(2)
    mean, logvar = rng.normal(size=5), rng.normal(size=5)
    expected = gaussian_kl_to_standard(mean, np.diag(np.exp(logvar)))
    got = _math.kl_diag_gaussian_standard(*_dtype64(mean, logvar))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    # KL is zero exactly at the prior
    assert float(_math.kl_diag_gaussian_standard(torch.zeros(3), torch.zeros(3))) == 0.0


def test_reparameterize_has_the_right_moments():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.tensor([1.0, -2.0]), torch.tensor([0.0, math.log(4.0)])
    z = _math.reparameterize(mean, logvar, 200_000, g)  # (S, 2)
    torch.testing.assert_close(z.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0]), atol=0.02, rtol=0)


def test_log_mean_exp_is_stable():
    a = torch.tensor([[1000.0, 1000.0], [-1000.0, 1000.0]])
    got = _math.log_mean_exp(a, dim=0)
    torch.testing.assert_close(got, torch.tensor([1000.0 - math.log(2.0), 1000.0]))


@pytest.mark.parametrize("logvar_value", [-30.0, 30.0])
def test_gaussian_terms_finite_with_gradients_at_extreme_log_variances(logvar_value):
    x = torch.tensor([0.0, 1.0, 0.5])
    mean = torch.tensor([0.1, 0.9, 0.5], requires_grad=True)
    logvar = torch.full((3,), logvar_value, requires_grad=True)
    total = (_math.gaussian_log_prob(x, mean, logvar).sum()
             + _math.diag_gaussian_log_prob(x, mean, logvar)
             - _math.kl_diag_gaussian_standard(mean, logvar))
    total.backward()
    assert torch.isfinite(total)
    assert torch.isfinite(mean.grad).all() and torch.isfinite(logvar.grad).all()
    # the KL gradient in logvar is 1/2 (exp(logvar) - 1): checks the form, not just finiteness
    logvar.grad = None
    _math.kl_diag_gaussian_standard(mean.detach(), logvar).backward()
    expected = 0.5 * (math.exp(logvar_value) - 1.0)
    assert float(logvar.grad[0]) == pytest.approx(expected, rel=1e-5)


def test_reparameterized_sample_finite_at_extreme_log_variances():
    mean = torch.zeros(4, requires_grad=True)
    logvar = torch.tensor([-30.0, 30.0, -30.0, 30.0], requires_grad=True)
    z = _math.reparameterize(mean, logvar, 3, torch.Generator().manual_seed(0))
    z.sum().backward()
    assert torch.isfinite(z).all() and torch.isfinite(logvar.grad).all()


@pytest.mark.parametrize("logit", [-1e4, -50.0, 0.0, 50.0, 1e4])
def test_bernoulli_finite_for_pixels_at_0_and_1_and_saturated_logits(logit):
    x = torch.tensor([0.0, 1.0, 0.0, 1.0])
    logits = torch.full((4,), logit, requires_grad=True)
    value = _math.bernoulli_log_prob(x, logits)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(logits.grad).all()
    assert (value <= 0).all()
    # the correct pixel value under a saturated logit has log-probability ~0, the wrong one
    # -|logit|: no log(0) = -inf anywhere
    if abs(logit) >= 50:
        right = 1 if logit > 0 else 0
        assert float(value.detach()[right]) == pytest.approx(0.0, abs=1e-12)
        assert float(value.detach()[1 - right]) == pytest.approx(-abs(logit), rel=1e-6)


def test_gaussian_likelihood_floor_bounds_the_density_of_constant_pixels():
    likelihood = Gaussian(min_variance=1e-3)
    x = torch.zeros(1, 5)
    raw = torch.full((1, 5), -1e4, requires_grad=True)  # variance -> the floor
    value = likelihood.log_prob(x, (torch.zeros(1, 5), raw))
    value.sum().backward()
    bound = -0.5 * 5 * math.log(2 * math.pi * 1e-3)
    assert float(value.detach()) == pytest.approx(bound, rel=1e-6)
    assert torch.isfinite(raw.grad).all()


def test_fixed_gaussian_and_bernoulli_means():
    params = (torch.tensor([[0.0, 2.0]]),)
    torch.testing.assert_close(Bernoulli().mean(params), torch.sigmoid(params[0]))
    torch.testing.assert_close(FixedGaussian(0.5).mean(params), params[0])
    expected = torch.distributions.Normal(params[0], 0.5).log_prob(torch.ones(1, 2)).sum(-1)
    torch.testing.assert_close(FixedGaussian(0.5).log_prob(torch.ones(1, 2), params), expected)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(x=_finite, mean=_finite, logvar=st.floats(-30, 30, width=32),
       logit=st.floats(-1e4, 1e4, width=32), pixel=st.floats(0, 1, width=32))
def test_every_term_is_finite_with_finite_gradients(x, mean, logvar, logit, pixel):
    """Over the whole range the VAE can meet (|logvar| <= 30, pixels in [0, 1], any
    logit): values and gradients of every log-density and of the KL stay finite, and
    the log-probabilities of discrete outcomes stay <= 0."""
    m = torch.tensor([mean], requires_grad=True)
    lv = torch.tensor([logvar], requires_grad=True)
    lg = torch.tensor([logit], requires_grad=True)
    bern = _math.bernoulli_log_prob(torch.tensor([pixel]), lg)
    terms = [_math.gaussian_log_prob(torch.tensor([x]), m, lv), bern,
             _math.kl_diag_gaussian_standard(m, lv), _math.diag_gaussian_log_prob(m, m, lv)]
    total = sum(t.sum() for t in terms)
    total.backward()
    assert torch.isfinite(total)
    for grad in (m.grad, lv.grad, lg.grad):
        assert torch.isfinite(grad).all()
    if pixel in (0.0, 1.0):
        assert float(bern.detach()) <= 0.0
    assert float(terms[2].detach()) >= -1e-5  # KL is non-negative (up to float32 round-off)


def test_running_logsumexp_over_chunks_matches_one_logsumexp():
    log_w = torch.tensor(np.random.default_rng(8).normal(scale=300.0, size=(10, 4)))
    total = None
    for chunk in torch.split(log_w, 3):  # chunks of 3, 3, 3 and 1 samples
        total = _math.logsumexp_accumulate(total, chunk)
    torch.testing.assert_close(total, torch.logsumexp(log_w, dim=0))
    assert torch.isfinite(total).all()


def test_reparameterize_is_distributed_as_torch_normal():
    mean = torch.tensor([0.5, -2.0], dtype=torch.float64)
    logvar = torch.tensor([0.0, -3.0], dtype=torch.float64)
    z = _math.reparameterize(mean, logvar, 50_000, torch.Generator().manual_seed(3))
    reference = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    # the sample's mean log-density under the reference is minus its entropy (up to MC error)
    mean_log_prob = reference.log_prob(z).mean(0)
    torch.testing.assert_close(mean_log_prob, -reference.entropy(), atol=0.02, rtol=0)
    # and the same eps gives the same draw: z = mean + std * eps
    eps = torch.randn((50_000, 2), generator=torch.Generator().manual_seed(3),
                      dtype=torch.float64)
    torch.testing.assert_close(z, mean + torch.exp(0.5 * logvar) * eps)


def test_kl_matches_torch_distributions():
    rng = np.random.default_rng(9)
    mean, logvar = _dtype64(rng.normal(size=(3, 4)), rng.normal(size=(3, 4)))
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(_math.kl_diag_gaussian_standard_dims(mean, logvar), expected)
    torch.testing.assert_close(_math.kl_diag_gaussian_standard(mean, logvar), expected.sum(-1))


def test_numpy_and_torch_helpers_agree():
    from elbokit import _math as np_math

    rng = np.random.default_rng(10)
    x, mean, logvar = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=3)
    tx, tmean, tlogvar = _dtype64(x, mean, logvar)
    np.testing.assert_allclose(np_math.diag_gaussian_logpdf(x, mean, np.exp(logvar)),
                               _math.diag_gaussian_log_prob(tx, tmean, tlogvar).numpy())
    np.testing.assert_allclose(np_math.kl_diag_gaussian_standard_dims(mean, np.exp(logvar)),
                               _math.kl_diag_gaussian_standard_dims(tmean, tlogvar).numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inverse_softplus_inverts_softplus_over_the_whole_range(dtype):
    y = torch.tensor([1e-6, 1e-2, 1.0, 30.0, 100.0, 1e4], dtype=dtype)
    x = _math.inverse_softplus(y)
    assert torch.isfinite(x).all()  # log(expm1(y)) is inf at y = 100 in float32
    torch.testing.assert_close(torch.nn.functional.softplus(x), y, rtol=1e-5, atol=0)
