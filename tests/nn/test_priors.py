"""Priors as objects (nn/priors.py): the standard normal, a learned mixture of
Gaussians, the VampPrior and a caller's own, in every estimator, in saving, resuming
and the CLI; and the GMM sampler of ``VAE.sample(sampler="gmm")``."""

import json
import math
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import assert_same_weights  # noqa: E402

from elbokit.cli import main  # noqa: E402
from elbokit.exceptions import ParameterError  # noqa: E402
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.config import ArchitectureConfig  # noqa: E402
from elbokit.nn.importance import importance_log_likelihood  # noqa: E402
from elbokit.nn.model import PosteriorSample, VAENetwork  # noqa: E402
from elbokit.nn.objectives import ESTIMATORS, MonteCarloELBO, AnalyticKLELBO  # noqa: E402
from elbokit.nn.priors import MixtureOfGaussians, Prior, StandardNormal, VampPrior  # noqa: E402

FAST = dict(hidden=(32,), epochs=2, batch_size=100, progress=False, gmm_components=0,
            validation_fraction=0)


def _network(prior=None, latent=3, **settings):
    config = ArchitectureConfig(n_features=64, latent_dim=latent, hidden=(16,), **settings)
    torch.manual_seed(0)
    return VAENetwork(config, prior)


def _x(digits, n=40):
    return torch.as_tensor(digits.train[:n], dtype=torch.float32)


def _seeded(seed=3):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ the mixture at N(0, I)

@pytest.mark.parametrize("posterior", ["gaussian", "iaf"])
def test_a_one_component_mixture_frozen_at_the_standard_normal_gives_the_same_numbers(
        digits, posterior):
    standard = _network(posterior=posterior)
    mixture = _network(MixtureOfGaussians(3, 1), posterior=posterior)
    mixture.load_state_dict({**standard.state_dict(), **{
        f"prior.{k}": v for k, v in mixture.prior.state_dict().items()}})
    for p in mixture.prior.parameters():
        p.requires_grad_(False)
        assert torch.count_nonzero(p) == 0  # mean 0, log-variance 0, one logit
    x = _x(digits)
    for name, estimator in ESTIMATORS.items():
        for n_samples in (1, 4):
            a = estimator()(standard, x, n_samples, _seeded())
            b = estimator()(mixture, x, n_samples, _seeded())
            assert torch.equal(a, b), (name, n_samples)
    a = importance_log_likelihood(standard, x, 50, generator=_seeded())
    b = importance_log_likelihood(mixture, x, 50, generator=_seeded())
    assert torch.equal(a, b)
    # and its draws are the standard normal's in distribution (mean 0, std 1)
    z = mixture.prior.sample(20000, _seeded())
    assert z.mean(0).abs().max() < 0.05 and (z.std(0) - 1).abs().max() < 0.05


# ------------------------------------------------------------------ the VampPrior

def test_the_vamp_prior_density_is_the_mixture_of_the_encoder_posteriors(digits):
    net = _network(VampPrior(3, 64, 5))
    net.prior.init_from_data(_x(digits, 200), _seeded())
    u = net.prior.pseudo_inputs.detach().double()  # (K, d)
    assert any(torch.equal(u[0].float(), row) for row in _x(digits, 200))  # training rows
    z = torch.randn(7, 3, generator=_seeded()).double()
    with torch.no_grad():
        mean, logvar = (t.double() for t in net.encoder(u.float()))  # (K, L) each
        direct = torch.stack([torch.distributions.Normal(mean[k], (0.5 * logvar[k]).exp())
                              .log_prob(z).sum(-1) for k in range(5)])  # (K, 7)
        direct = torch.logsumexp(direct, 0) - math.log(5)
        got = net.prior.log_prob(z.float()).double()
    torch.testing.assert_close(got, direct, rtol=0, atol=1e-5)


def test_the_vamp_prior_trains_its_pseudo_inputs_and_its_samples_decode(digits):
    vae = VAE(3, prior="vamp", prior_components=4, **FAST).fit(digits.train[:400])
    start = VAE(3, prior="vamp", prior_components=4, **{**FAST, "epochs": 1})
    start = start.fit(digits.train[:400]).model_.prior.pseudo_inputs
    assert not torch.equal(vae.model_.prior.pseudo_inputs, start)
    assert isinstance(vae.model_.prior, VampPrior)
    samples = vae.sample(6, random_state=0)
    assert samples.shape == (6, 64) and np.array_equal(samples, vae.sample(6, random_state=0))


# ------------------------------------------------------------------ bounds under each prior

@pytest.mark.parametrize("prior", ["standard", "mog", "vamp"])
def test_importance_log_likelihood_is_above_the_elbo_and_rises_with_k(digits, prior):
    vae = VAE(3, prior=prior, prior_components=4, binarize="static", **FAST)
    X = (digits.train[:400] > 0.5).astype(np.float32)
    vae.fit(X)
    test = X[:150]
    elbo = vae.elbo(test, "b", n_samples=200).mean()
    ll = [vae.log_likelihood_samples(test, n_importance=k).mean() for k in (1, 10, 200)]
    assert ll[0] == pytest.approx(vae.elbo(test, "a", n_samples=1).mean(), abs=1.0)
    assert elbo < ll[1] < ll[2], (elbo, ll)


def test_the_monte_carlo_kl_of_l_b_under_a_mixture_is_unbiased():
    torch.manual_seed(1)
    prior = MixtureOfGaussians(3, 3)
    model = types.SimpleNamespace(prior=prior)
    mean = torch.tensor([[0.3, -1.0, 2.0], [1.5, 0.0, -0.5]])
    logvar = torch.tensor([[-1.0, 0.5, 0.0], [-2.0, -0.3, 0.8]])
    draws, reference_draws = 4000, 100_000

    def one_sample_kls(n, estimator, seed):  # (n, B): the estimate from one z each
        m, lv = mean.repeat(n, 1), logvar.repeat(n, 1)
        z = m + (0.5 * lv).exp() * torch.randn(m.shape, generator=_seeded(seed))
        kl = estimator.kl_dims(PosteriorSample(z, z, m, lv), model).sum(-1)
        return kl.reshape(n, -1).double()

    with torch.no_grad():
        kl_b = one_sample_kls(draws, AnalyticKLELBO(), 0)
        kl_a = one_sample_kls(draws, MonteCarloELBO(), 0)
        reference = one_sample_kls(reference_draws, MonteCarloELBO(), 1)  # log q - log p
    se = (kl_b.var(0) / draws + reference.var(0) / reference_draws).sqrt()
    assert ((kl_b.mean(0) - reference.mean(0)).abs() < 5 * se).all()
    # the reference Gaussian takes most of the noise of L_A's log q(z|x) - log p(z) away
    assert (kl_b.var(0) < 0.25 * kl_a.var(0)).all(), (kl_b.var(0), kl_a.var(0))
    assert prior.kl_dims(mean, logvar) is None  # no closed form: this is the path taken


# ------------------------------------------------------------------ saving and resuming

def _prior_state(vae):
    return {k: v.clone() for k, v in vae.model_.prior.state_dict().items()}


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_save_load_round_trips_the_prior_exactly(digits, tmp_path, prior):
    vae = VAE(3, prior=prior, prior_components=3, **FAST).fit(digits.train[:400])
    vae.save(tmp_path / "m")
    loaded = VAE.load(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["settings"]["architecture"]["prior"] == prior
    state = _prior_state(vae)
    assert state and all(torch.equal(state[k], v) for k, v in _prior_state(loaded).items())
    assert np.array_equal(vae.score_samples(digits.test), loaded.score_samples(digits.test))
    assert np.array_equal(vae.sample(5, random_state=1), loaded.sample(5, random_state=1))


def test_a_resumed_fit_reaches_the_same_prior_and_weights(digits, tmp_path):
    settings = dict(prior="vamp", prior_components=3, **{**FAST, "epochs": 3})
    whole = VAE(3, **settings).fit(digits.train[:400])
    part = VAE(3, **{**settings, "epochs": 1}).fit(digits.train[:400], checkpoint_dir=tmp_path)
    part.set_params(epochs=3).fit(digits.train[:400], checkpoint_dir=tmp_path, resume=True)
    assert_same_weights(whole, part)
    assert torch.equal(whole.model_.prior.pseudo_inputs, part.model_.prior.pseudo_inputs)


class LaplacePrior(Prior):
    """A caller's prior: independent Laplace(0, b) coordinates with a learned log b."""

    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.log_scale = torch.nn.Parameter(torch.zeros(latent_dim))

    def log_prob(self, z):
        return (-z.abs() * torch.exp(-self.log_scale) - self.log_scale - math.log(2)).sum(-1)

    def sample(self, n, generator=None):
        u = torch.rand((n, self.latent_dim), generator=generator) - 0.5
        return -torch.exp(self.log_scale) * u.sign() * torch.log1p(-2 * u.abs())


def test_a_custom_prior_is_trained_saved_and_loaded_only_with_the_callers_class(
        digits, tmp_path):
    mine = LaplacePrior(3)
    vae = VAE(3, prior=mine, **FAST).fit(digits.train[:400])
    assert torch.count_nonzero(mine.log_scale) == 0  # the caller's object was copied
    assert torch.count_nonzero(vae.model_.prior.log_scale) == 3  # the copy was trained
    vae.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["settings"]["architecture"]["prior"] == "custom"
    with pytest.raises(ParameterError, match="custom prior: pass VAE.load"):
        VAE.load(tmp_path / "m")
    loaded = VAE.load(tmp_path / "m", prior=LaplacePrior(3))
    assert torch.equal(loaded.model_.prior.log_scale, vae.model_.prior.log_scale)
    assert np.array_equal(loaded.score_samples(digits.test), vae.score_samples(digits.test))
    assert loaded.sample(4, random_state=0).shape == (4, 64)


# ------------------------------------------------------------------ bad input, CLI

@pytest.mark.parametrize("settings, message", [
    (dict(prior_components=0), "prior_components must be >= 1; got 0"),
    (dict(prior_components=2.5), "prior_components must be an integer; got 2.5"),
    (dict(prior="laplace"), "prior must be one of"),
    (dict(prior="custom"), "prior='custom' is a Prior object"),
    (dict(prior=StandardNormal(4)), "the prior's latent_dim is 4; the VAE's is 3"),
    (dict(prior="mog", free_bits=0.1), "free_bits needs a prior that factorizes"),
])
def test_bad_prior_settings_are_one_line_errors(digits, settings, message):
    with pytest.raises(ParameterError, match=message) as info:
        VAE(3, **{**FAST, **settings}).fit(digits.train[:50])
    assert "\n" not in str(info.value)


def test_cli_fit_vae_with_the_vamp_prior_on_digits(tmp_path, capsys):
    out = tmp_path / "vae"
    argv = ["fit", "vae", "--data", "digits", "--latent", "3", "--hidden", "32",
            "--no-progress", "--epochs", "1", "--batch-size", "256", "--prior", "vamp", "--prior-components", "5",
            "--gmm-components", "3",
            "--out", str(out)]
    assert main(argv) == 0
    model = json.loads((out / "model.json").read_text())["settings"]["architecture"]
    assert model["prior"] == "vamp" and model["prior_components"] == 5
    vae = VAE.load(out)
    assert vae.model_.prior.pseudo_inputs.shape == (5, 64)
    for sampler in ("prior", "gmm"):
        assert main(["sample", str(out), "-n", "4", "--sampler", sampler,
                     "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert main(["fit", "vae", "--data", "digits", "--prior-components", "0",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert "prior_components must be >= 1" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------ the GMM sampler

def test_the_gmm_sampler_follows_the_training_codes_and_is_saved(digits, tmp_path):
    vae = VAE(3, **{**FAST, "gmm_components": 4}).fit(digits.train[:400])
    codes = vae.encode(digits.train[:400])
    weights, means = vae.model_.gmm_weights, vae.model_.gmm_means
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-5)
    # EM's fixed point: the mixture's mean is the codes' mean
    np.testing.assert_allclose((weights[:, None] * means).sum(0).numpy(), codes.mean(0),
                               atol=1e-3)
    gmm = vae.sample(8, random_state=0, sampler="gmm")
    assert gmm.shape == (8, 64)
    assert not np.array_equal(gmm, vae.sample(8, random_state=0))
    vae.save(tmp_path / "m")
    assert np.array_equal(VAE.load(tmp_path / "m").sample(8, random_state=0, sampler="gmm"),
                          gmm)
    with pytest.raises(ParameterError, match="sampler must be one of"):
        vae.sample(2, sampler="flow")
    with pytest.raises(ParameterError, match="no fitted GMM sampler"):
        VAE(3, **FAST).fit(digits.train[:100]).sample(2, sampler="gmm")


def test_the_samples_figure_shows_the_prior_and_gmm_grids_side_by_side(digits, tmp_path):
    from elbokit.plots import samples_figure

    vae = VAE(3, **{**FAST, "gmm_components": 3}).fit(digits.train[:400])
    titles = samples_figure(vae, (8, 8), tmp_path / "s.png", n=16)
    assert titles == ["16 samples from the prior", "16 samples from the GMM over training codes"]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    no_gmm = VAE(3, **FAST).fit(digits.train[:100])
    assert samples_figure(no_gmm, (8, 8), tmp_path / "t.png", n=16) == [
        "16 samples from the prior"]


def test_the_number_of_components_defaults_by_prior_and_a_given_one_wins(digits):
    """prior_components=None (the default) is 50 pseudo-inputs for the VampPrior and 10
    Gaussians for the mixture (config.PRIOR_COMPONENTS); a given K, or a prior object's
    own, is used as it is, and the fitted model records the resolved K."""
    rows = digits.train[:60]
    expected = {("vamp", None): 50, ("mog", None): 10, ("vamp", 7): 7, ("mog", 3): 3}
    for (prior, k), n in expected.items():
        vae = VAE(2, prior=prior, prior_components=k, **{**FAST, "epochs": 1}).fit(rows)
        assert vae.model_.config.prior_components == n, (prior, k)
        assert vae.get_params()["prior_components"] == k  # the setting is left as given
        if prior == "vamp":
            assert vae.model_.prior.pseudo_inputs.shape == (n, 64)
        else:
            assert vae.model_.prior.means.shape == (n, 2)
    own = VAE(2, prior=VampPrior(2, 64, 4), **{**FAST, "epochs": 1}).fit(rows)
    assert own.model_.config.prior_components == 4
