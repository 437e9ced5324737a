"""The neural models' prior members of the protocol: ``has_density``, ``conditional``,
``prior_log_prob`` and ``kl_to_prior`` (against the model's own prior, per row and per
dimension), checked against closed forms and 1-D quadrature."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit.exceptions import NoDensityError  # noqa: E402
from elbokit.nn import VAE, Autoencoder  # noqa: E402

FAST = dict(hidden=(32,), epochs=1, batch_size=100, progress=False, latent_dim=3)


@pytest.fixture(scope="module")
def fitted(digits):
    return {prior: VAE(prior=prior, **FAST).fit(digits.train[:300])
            for prior in ("standard", "mog", "vamp")}


def _standard_kl_dims(mean, var):
    return 0.5 * (var + mean**2 - 1.0 - np.log(var))


def test_the_standard_prior_kl_is_the_closed_form_per_row_and_per_dimension(fitted, digits):
    vae, X = fitted["standard"], digits.test[:20]
    mean, var = vae.posterior_moments(X)
    expected = _standard_kl_dims(mean, var)
    dims = vae.kl_to_prior(X, per_dimension=True)
    assert dims.shape == (20, 3)
    np.testing.assert_allclose(dims, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vae.kl_to_prior(X), expected.sum(1), rtol=1e-4, atol=1e-5)
    Z = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(vae.prior_log_prob(Z),
                               -0.5 * (3 * np.log(2 * np.pi) + (Z**2).sum(1)), rtol=1e-5)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_a_mixture_prior_kl_is_its_own_not_the_kl_to_the_standard_normal(fitted, digits,
                                                                            prior):
    vae, X = fitted[prior], digits.test[:10]
    network = vae.model_
    x = torch.as_tensor(X)
    with torch.no_grad():  # a reference with many draws: E_q[log q - log p]
        post = network.posterior(x, 20000, torch.Generator().manual_seed(1))
        reference = (post.log_q() - network.prior.log_prob(post.z)).mean(0).numpy()
    kl = vae.kl_to_prior(X, n_samples=4000, random_state=0)
    assert kl.shape == (10,)
    np.testing.assert_allclose(kl, reference, atol=0.05)
    mean, var = vae.posterior_moments(X)
    assert np.abs(kl - _standard_kl_dims(mean, var).sum(1)).max() > 0.02  # the fix
    with torch.no_grad():
        Z = network.prior.sample(6, torch.Generator().manual_seed(2))
        expected = network.prior.log_prob(Z).numpy()
    np.testing.assert_allclose(vae.prior_log_prob(Z.numpy()), expected, rtol=1e-6)
    np.testing.assert_array_equal(vae.kl_to_prior(X, n_samples=64),
                                  vae.kl_to_prior(X, n_samples=64))  # seeded


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_the_per_dimension_kl_is_against_the_priors_one_dimensional_marginal(fitted, digits,
                                                                             prior):
    vae, X = fitted[prior], digits.test[:4]
    network = vae.model_
    with torch.no_grad():
        if prior == "mog":
            weights = torch.softmax(network.prior.logits, 0).numpy()
            means, logvars = network.prior.means.numpy(), network.prior.logvars.numpy()
        else:
            means, logvars = (t.numpy() for t in network.prior.components())
            weights = np.full(len(means), 1.0 / len(means))
    mean, var = vae.posterior_moments(X)
    grid = np.linspace(-12.0, 12.0, 24001)
    step = grid[1] - grid[0]

    def normal(z, m, v):
        return np.exp(-0.5 * (z - m) ** 2 / v) / np.sqrt(2 * np.pi * v)

    expected = np.empty_like(mean)
    for j in range(mean.shape[1]):  # quadrature of q_j log(q_j / p_j) on the grid
        p = sum(w * normal(grid, m, np.exp(s)) for w, m, s in
                zip(weights, means[:, j], logvars[:, j]))
        for i in range(mean.shape[0]):
            q = normal(grid, mean[i, j], var[i, j])
            expected[i, j] = np.sum(q * (np.log(q + 1e-300) - np.log(p))) * step
    dims = vae.kl_to_prior(X, per_dimension=True, n_samples=20000)
    np.testing.assert_allclose(dims, expected, atol=0.03)


def test_iaf_and_conditional_models_answer_the_kl(digits):
    iaf = VAE(posterior="iaf", flow_steps=1, flow_hidden=(16,), flow_context=8, prior="mog",
              **FAST).fit(digits.train[:200])
    kl = iaf.kl_to_prior(digits.test[:5], n_samples=32)
    assert kl.shape == (5,) and np.isfinite(kl).all()
    assert iaf.kl_to_prior(digits.test[:5], per_dimension=True, n_samples=32).shape == (5, 3)
    cvae = VAE(conditional=True, **FAST).fit(digits.train[:200], digits.train_labels[:200])
    assert cvae.conditional is True and iaf.conditional is False
    kl = cvae.kl_to_prior(digits.test[:5], y=digits.test_labels[:5])
    assert kl.shape == (5,) and (kl >= 0).all()
    assert VAE.has_density is True


def test_the_autoencoder_has_no_prior(digits):
    ae = Autoencoder(3, hidden=(16,), epochs=1).fit(digits.train[:100])
    assert Autoencoder.has_density is False and ae.conditional is False
    with pytest.raises(NoDensityError):
        ae.kl_to_prior(digits.test[:3])
    with pytest.raises(NoDensityError):
        ae.prior_log_prob(np.zeros((2, 3)))


def test_the_protocol_answers_what_consumers_used_to_probe_for(fitted, digits):
    vae = fitted["standard"]
    assert vae.samplers == ("prior",) and vae.latent_dim_ == 3 and vae.n_iter_ == 1
    assert vae.accepts_missing is True and "checkpoint_dir" in VAE.fit_options
    gmm = VAE(gmm_components=2, **FAST).fit(digits.train[:200])
    assert gmm.samplers == ("prior", "gmm")
    ae = Autoencoder(3, hidden=(16,), epochs=2).fit(digits.train[:100])
    assert ae.samplers == ("prior", "fitted") and ae.fit_options == {"validation"}
    assert ae.latent_dim_ == 3 and ae.n_iter_ == 2 and ae.binarize == "none"
    mean, std = ae.prior_moments()
    np.testing.assert_array_equal(mean, np.zeros(3))
    np.testing.assert_array_equal(std, np.ones(3))
    assert ae.sample(4, random_state=0, sampler="fitted").shape == (4, 64)
