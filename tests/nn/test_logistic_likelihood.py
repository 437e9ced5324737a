"""The discretized logistic likelihood ("logistic", 8-bit data) and ``likelihood="auto"``:
the 256 level probabilities sum to 1 per pixel, log p matches scipy's logistic CDF
differences, stays finite with finite gradients at the extremes, bits/dim is
-log p / (d ln 2) and is reported only for a density of the data as given, and "auto"
picks each likelihood on data made for it."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import stats  # noqa: E402

from elbokit.exceptions import DataError  # noqa: E402
from elbokit.nn import _math  # noqa: E402
from elbokit.nn.likelihoods import (DiscretizedLogistic, check_data,  # noqa: E402
                                    density_kind, resolve)

LEVELS = np.arange(256) / 255.0


@np.errstate(divide="ignore")  # log(0) in the branch np.where leaves out
def _scipy_log_prob(x, mean, scale):
    """log P(level of x) by scipy: differences of the logistic's CDF (below the mean) or
    of its survival function (above, where the CDF rounds to 1), the outer bins open."""
    h = 0.5 / 255
    x = np.broadcast_to(x, np.broadcast_shapes(x.shape, mean.shape))
    dist = stats.logistic(loc=mean, scale=scale)
    below = np.where(x < h, 0.0, dist.cdf(x - h)), np.where(x > 1 - h, 1.0, dist.cdf(x + h))
    above = np.where(x < h, 1.0, dist.sf(x - h)), np.where(x > 1 - h, 0.0, dist.sf(x + h))
    return np.where(x < mean, np.log(below[1] - below[0]), np.log(above[0] - above[1]))


def _log_prob(x, mean, log_scale):
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))
    return _math.discretized_logistic_log_prob(t(x), t(mean), t(log_scale)).numpy()


@pytest.mark.parametrize("mean, scale", [(0.3, 0.05), (-0.4, 0.2), (1.3, 0.01),
                                         (0.5, 1e-3), (0.0, 3.0)])
def test_level_probabilities_sum_to_one(mean, scale):
    log_p = _log_prob(LEVELS, np.full(256, mean), np.full(256, math.log(scale)))
    assert np.all(log_p <= 0)
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-10)


def test_log_prob_matches_scipy_and_broadcasts():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, 30)) / 255.0  # (B, d), edges included
    x[0, :3] = 0.0
    x[1, :3] = 1.0
    mean = rng.uniform(-0.2, 1.2, size=(3, 4, 30))  # (S, B, d)
    scale = np.exp(rng.uniform(-5, 0, size=(3, 4, 30)))
    got = _log_prob(x, mean, np.log(scale))
    np.testing.assert_allclose(got, _scipy_log_prob(x, mean, scale), rtol=1e-9, atol=1e-12)


def test_log_prob_finite_with_finite_gradients_at_extremes():
    x = torch.tensor(LEVELS[[0, 1, 128, 254, 255]] * np.ones((4, 1)), dtype=torch.float32)
    mean = torch.tensor([[-50.0], [50.0], [0.5], [0.5]]).expand(4, 5).clone().requires_grad_()
    raw = torch.tensor([[-30.0], [-30.0], [-30.0], [40.0]]).expand(4, 5).clone()
    raw.requires_grad_()
    log_p = DiscretizedLogistic().log_prob(x, (mean, raw))
    log_p.sum().backward()
    assert torch.isfinite(log_p).all()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(raw.grad).all()
    # a mean far below 0 puts (nearly) all mass on level 0: log P(0) ~ 0
    assert DiscretizedLogistic().log_prob(torch.zeros(1, 1), (torch.tensor([[-50.0]]),
                                          torch.tensor([[-3.0]]))).item() == pytest.approx(0)


def test_mean_is_within_half_a_level_of_the_discrete_mean():
    likelihood = DiscretizedLogistic()
    for mean, raw in [(0.3, -3.0), (-0.1, -2.0), (0.97, -4.0), (0.5, 1.0)]:
        params = (torch.tensor([mean], dtype=torch.float64),
                  torch.tensor([raw], dtype=torch.float64))
        log_scale = likelihood.log_scale(params[1])
        probs = np.exp(_log_prob(LEVELS, np.full(256, mean), np.full(256, log_scale.item())))
        assert abs(likelihood.mean(params).item() - probs @ LEVELS) < 0.5 / 255


def test_bits_per_dim_is_minus_log_p_over_d_ln2(digits):
    from elbokit.nn import VAE

    X = np.round(digits.train[:300] * 255) / 255  # 8-bit values
    model = VAE(4, likelihood="logistic", hidden=(32,), epochs=2, progress=False,
                device="cpu").fit(X)
    score = model.score(X)
    assert model.bits_per_dim(X) == pytest.approx(-score / (X.shape[1] * math.log(2)))


def _images(rng, n=40, d=48):
    return rng.integers(0, 256, size=(n, d)) / 255.0


def test_auto_picks_each_likelihood_on_data_made_for_it():
    rng = np.random.default_rng(0)
    eight_bit = _images(rng).astype(np.float32)
    binary = (rng.random((40, 48)) < 0.3).astype(np.float32)
    intensities = rng.random((40, 48)).astype(np.float32)  # in [0, 1], off the grid
    assert resolve("auto", eight_bit) == "logistic"
    assert resolve("auto", binary) == "bernoulli"
    assert resolve("auto", intensities) == "bernoulli"
    assert resolve("auto", eight_bit, binarize="dynamic") == "bernoulli"
    assert resolve("auto", np.rint(eight_bit * 255) / 256) == "bernoulli"  # not k/255
    assert resolve("auto", np.rint(eight_bit * 255) / 16) == "gaussian"  # beyond [0, 1]
    assert resolve("auto", eight_bit - 0.5) == "gaussian"  # negative values
    assert resolve("gaussian", eight_bit) == "gaussian"


def test_auto_is_resolved_at_fit_and_recorded():
    from elbokit.nn import VAE

    rng = np.random.default_rng(1)
    model = VAE(3, hidden=(16,), epochs=1, progress=False, device="cpu")
    assert model.likelihood == "auto"
    model.fit(_images(rng))
    assert model.architecture_.likelihood == "logistic"
    assert model.likelihood == "auto"  # the setting itself is left as given
    model.fit((rng.random((40, 48)) < 0.5).astype(np.float32))
    assert model.architecture_.likelihood == "bernoulli"


def test_logistic_refuses_data_off_the_grid_in_one_line():
    rng = np.random.default_rng(2)
    with pytest.raises(DataError, match="off the 8-bit grid"):
        check_data("logistic", rng.random((10, 5)))
    with pytest.raises(DataError, match="outside"):
        check_data("logistic", _images(rng) * 255)


def test_density_of_the_data_as_given():
    rng = np.random.default_rng(3)
    assert density_kind("logistic", _images(rng)) == "discrete"
    assert density_kind("bernoulli", (rng.random((9, 4)) < 0.5).astype(float)) == "discrete"
    assert density_kind("bernoulli", rng.random((9, 4))) is None  # a cross-entropy
    assert density_kind("gaussian", rng.random((9, 4))) == "continuous"


def test_saved_and_loaded_logistic_model_scores_identically(tmp_path):
    from elbokit.nn import VAE

    rng = np.random.default_rng(4)
    X = _images(rng, n=64, d=3 * 8 * 8).astype(np.float32)
    model = VAE(3, arch="conv", image_shape=(8, 8), channels=3, epochs=2, progress=False,
                device="cpu").fit(X)
    assert model.architecture_.likelihood == "logistic"
    model.save(tmp_path / "m")
    loaded = VAE.load(tmp_path / "m")
    assert loaded.architecture_.likelihood == "logistic"
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(loaded.log_likelihood_samples(X, n_importance=8),
                                  model.log_likelihood_samples(X, n_importance=8))
    recon = loaded.reconstruct(X)
    assert recon.shape == X.shape and recon.min() >= 0 and recon.max() <= 1


def test_the_fused_step_declines_the_logistic_and_autograd_trains_it():
    from elbokit.nn import VAE, AnalyticKLELBO
    from elbokit.nn.objectives.fused import fused_step

    rng = np.random.default_rng(5)
    X = _images(rng, n=64)
    model = VAE(2, hidden=(16,), epochs=3, progress=False, device="cpu").fit(X)
    assert model.architecture_.likelihood == "logistic" and model.training_.fused_step
    assert fused_step(model.model_, model.training_, AnalyticKLELBO(), False) is None
    elbos = [h["train_elbo"] for h in model.history_]
    assert np.all(np.isfinite(elbos)) and elbos[-1] > elbos[0]


def test_the_written_out_gradient_is_autograds():
    rng = np.random.default_rng(6)
    x = torch.tensor(rng.integers(0, 256, size=(3, 40)) / 255.0)
    x[0, :4], x[1, :4] = 0.0, 1.0  # both open bins
    mean = torch.tensor(rng.uniform(-0.3, 1.3, size=(2, 3, 40)), requires_grad=True)
    log_scale = torch.tensor(rng.uniform(-6, 1, size=(2, 3, 40)), requires_grad=True)
    weights = torch.tensor(rng.normal(size=(2, 3)))
    fused = _math.discretized_logistic_log_prob_sum(x, mean, log_scale)
    composite = _math.discretized_logistic_log_prob(x, mean, log_scale).sum(-1)
    torch.testing.assert_close(fused, composite)
    grads = torch.autograd.grad((fused * weights).sum(), (mean, log_scale))
    expected = torch.autograd.grad((composite * weights).sum(), (mean, log_scale))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(
        lambda m, s: _math.discretized_logistic_log_prob_sum(x, m, s), (mean, log_scale))
