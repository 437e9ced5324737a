"""Multi-sample bounds (MIWAE, CIWAE, PIWAE; Rainforth et al. 2018) and the gradient
estimators STL (Roeder et al. 2017) and DReG (Tucker et al. 2019).

Limits are checked on the same draws (one seeded generator per call); the gradient
estimators on a linear-Gaussian VAE whose exact posterior is known (conftest's
``rotated_problem``: W' Psi^-1 W diagonal, so p(z|x) is a diagonal Gaussian)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import exact_posterior, linear_vae_model, rotated_problem  # noqa: E402
from elbokit.exceptions import ParameterError  # noqa: E402
from elbokit.nn import (CIWAE, IWAE, MIWAE, PIWAE, VAE, ArchitectureConfig,  # noqa: E402
                        MonteCarloELBO, TrainingConfig, VAENetwork, get_estimator)


@pytest.fixture(scope="module")
def small():
    """A random (untrained) float64 MLP VAE on 6 binary features, and 4 rows."""
    torch.manual_seed(0)
    model = VAENetwork(ArchitectureConfig(n_features=6, latent_dim=2, hidden=(8,))).double()
    x = torch.bernoulli(torch.full((4, 6), 0.4, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))
    return model, x


def _value(estimator, model, x, n, seed=0):
    with torch.no_grad():
        return estimator(model, x, n, torch.Generator().manual_seed(seed))


def _grads(estimator, model, x, n, seed=0):
    """(value, encoder gradient, decoder gradient) of the summed estimate, flattened."""
    model.zero_grad()
    value = estimator(model, x, n, torch.Generator().manual_seed(seed))
    value.sum().backward()
    flat = [torch.cat([p.grad.flatten() for p in getattr(model, part).parameters()])
            for part in ("encoder", "decoder")]
    return (value.detach(), *flat)


def _same(actual, expected):
    """Equal to 1e-12 relative: the same draws, the same bound."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=0)


def test_miwae_reduces_to_the_elbo_average_and_to_iwae(small):
    model, x = small
    # K = 1: the mean of M one-sample ELBOs, the same M draws as L_A with M samples
    _same(_value(MIWAE(5), model, x, 1), _value(MonteCarloELBO(), model, x, 5))
    # M = 1: IWAE with K samples
    _same(_value(MIWAE(1), model, x, 7), _value(IWAE(), model, x, 7))
    # in between, MIWAE(M, K) lies between L_A and IWAE of the same M * K draws
    miwae = _value(MIWAE(4), model, x, 3)
    assert torch.all(_value(MonteCarloELBO(), model, x, 12) < miwae)
    assert torch.all(miwae < _value(IWAE(), model, x, 12))


def test_ciwae_reduces_to_the_elbo_and_to_iwae(small):
    model, x = small
    _same(_value(CIWAE(1.0), model, x, 6), _value(MonteCarloELBO(), model, x, 6))
    _same(_value(CIWAE(0.0), model, x, 6), _value(IWAE(), model, x, 6))
    half = 0.5 * (_value(MonteCarloELBO(), model, x, 6) + _value(IWAE(), model, x, 6))
    _same(_value(CIWAE(0.5), model, x, 6), half)


@pytest.mark.parametrize("gradient", ["standard", "dreg"])
def test_piwae_gives_the_decoder_iwaes_gradient_and_the_encoder_miwaes(small, gradient):
    model, x = small
    value, encoder, decoder = _grads(PIWAE(3, gradient), model, x, 4)
    iwae_value, iwae_encoder, iwae_decoder = _grads(IWAE(gradient), model, x, 12)
    _, miwae_encoder, miwae_decoder = _grads(MIWAE(3, gradient), model, x, 4)
    _same(value, iwae_value)  # IWAE_{MK} in value
    torch.testing.assert_close(decoder, iwae_decoder, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(encoder, miwae_encoder, rtol=1e-9, atol=1e-12)
    # and the two bounds' gradients do differ, so the split is not vacuous
    assert not torch.allclose(iwae_encoder, miwae_encoder, rtol=1e-3)
    assert not torch.allclose(iwae_decoder, miwae_decoder, rtol=1e-3)


@pytest.mark.parametrize("standard, other", [
    (MonteCarloELBO(), MonteCarloELBO("stl")), (IWAE(), IWAE("dreg")),
    (MIWAE(2), MIWAE(2, "dreg")), (CIWAE(0.3), CIWAE(0.3, "dreg")),
    (PIWAE(2), PIWAE(2, "dreg"))], ids=["stl", "dreg", "miwae-dreg", "ciwae-dreg", "piwae-dreg"])
def test_a_gradient_estimator_keeps_the_value_and_the_decoder_gradient(small, standard, other):
    model, x = small
    value, encoder, decoder = _grads(standard, model, x, 5)
    value_other, encoder_other, decoder_other = _grads(other, model, x, 5)
    _same(value_other, value)
    torch.testing.assert_close(decoder_other, decoder, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(encoder_other, encoder, rtol=1e-3)  # the encoder's changes


def test_dreg_of_ciwae_is_stl_and_dreg_mixed_and_miwae_m1_is_iwae(small):
    model, x = small
    beta = 0.3
    _, encoder, decoder = _grads(CIWAE(beta, "dreg"), model, x, 5)
    _, stl_encoder, stl_decoder = _grads(MonteCarloELBO("stl"), model, x, 5)
    _, dreg_encoder, dreg_decoder = _grads(IWAE("dreg"), model, x, 5)
    torch.testing.assert_close(encoder, beta * stl_encoder + (1 - beta) * dreg_encoder)
    torch.testing.assert_close(decoder, beta * stl_decoder + (1 - beta) * dreg_decoder)
    for got, want in zip(_grads(MIWAE(1, "dreg"), model, x, 5), _grads(IWAE("dreg"), model, x, 5)):
        torch.testing.assert_close(got, want)


def _exact_model(seed=2):
    W, psi, b, X = rotated_problem(seed=seed)
    gaussian, G, A = exact_posterior(W, psi, b)
    return linear_vae_model(W, psi, b, A, -A @ b, np.log(np.diag(G))), torch.tensor(X), \
        gaussian.logpdf(X - b)


def test_stl_encoder_gradient_is_exactly_zero_at_the_exact_posterior():
    """q = p(z|x): log w = log p(x) for every z, so the path term is 0 per draw; the
    standard gradient keeps the score term, 0 only in expectation."""
    model, x, log_px = _exact_model()
    for seed in range(20):
        value, encoder, _ = _grads(MonteCarloELBO("stl"), model, x, 1, seed)
        np.testing.assert_allclose(value.numpy(), log_px, rtol=1e-10)  # the value: log p(x)
        assert float(encoder.abs().max()) < 1e-10, seed
        _, standard, _ = _grads(MonteCarloELBO(), model, x, 1, seed)
        assert float(standard.abs().max()) > 1e-2, seed
        # DReG is the path derivative too: zero as well
        assert float(_grads(IWAE("dreg"), model, x, 8, seed)[1].abs().max()) < 1e-10


def _per_point_gradients(estimator, model, x, k, n_draws, seed=0):
    """Gradients of the estimate with respect to q's parameters (mean, logvar) of each
    point, for n_draws independent draws of k samples: (n_draws, n, 2 L); and the
    decoder's gradient summed over all of them. (The encoder's weights get linear maps
    of these; the rows of the repeated batch are independent draws.)"""
    outputs = {}

    def keep(module, inputs, out):
        outputs["out"] = out
        for t in out:
            t.retain_grad()

    handle = model.encoder.register_forward_hook(keep)
    model.zero_grad()
    estimator(model, x.repeat(n_draws, 1), k, torch.Generator().manual_seed(seed)).sum().backward()
    handle.remove()
    per_point = torch.cat([t.grad for t in outputs["out"]], dim=-1)
    decoder = torch.cat([p.grad.flatten() for p in model.decoder.parameters()])
    return per_point.view(n_draws, x.shape[0], -1), decoder


def test_dreg_has_lower_encoder_variance_than_iwae_for_the_same_expected_gradient():
    """A q near the posterior (a perturbed exact encoder), k = 64: the paired difference
    of the two encoder gradients has mean 0 within its standard error (both unbiased for
    the gradient of IWAE_64), DReG's variance is below IWAE's, and the decoder gradient
    is the same. (Far from the posterior, perturbation 0.3, DReG's variance here was
    1.7x IWAE's; at 0.05, 0.006x.)"""
    W, psi, b, X = rotated_problem()
    _, G, A = exact_posterior(W, psi, b)
    A_q = A + 0.1 * np.random.default_rng(1).normal(size=A.shape)
    model = linear_vae_model(W, psi, b, A_q, -A_q @ b + 0.2, np.log(np.diag(G)) + 0.3)
    x, n_draws = torch.tensor(X), 1000
    standard, decoder = _per_point_gradients(IWAE(), model, x, 64, n_draws)
    dreg, decoder_dreg = _per_point_gradients(IWAE("dreg"), model, x, 64, n_draws)
    torch.testing.assert_close(decoder_dreg, decoder)
    difference = standard - dreg
    standard_error = difference.std(0) / np.sqrt(n_draws)
    assert torch.all(difference.mean(0).abs() < 4 * standard_error)
    var_standard, var_dreg = standard.var(0).sum(), dreg.var(0).sum()
    assert var_dreg < 0.6 * var_standard, (var_dreg, var_standard)


@pytest.mark.parametrize("settings, message", [
    (dict(objective="b", gradient="dreg"), "does not apply to objective 'b'"),
    (dict(objective="iwae", gradient="stl"), "'stl' is for objective 'a'"),
    (dict(objective="a", gradient="dreg"), "'dreg' for 'iwae'"),
    (dict(objective="a", gradient="stl", beta=2.0), "does not combine with kl_warmup"),
    (dict(objective="iwae", miwae_m=4), "miwae_m applies to objectives 'miwae'"),
    (dict(objective="miwae", ciwae_beta=0.2), "ciwae_beta applies to objective 'ciwae'"),
    (dict(objective="ciwae", ciwae_beta=1.5), r"ciwae_beta must be a number in \[0, 1\]"),
    (dict(objective="miwae", miwae_m=0), "miwae_m must be >= 1"),
    (dict(gradient="fast"), "gradient must be one of"),
])
def test_settings_that_do_not_apply_are_refused(settings, message):
    with pytest.raises(ParameterError, match=message):
        TrainingConfig(**settings)


def test_estimator_objects_check_their_arguments():
    with pytest.raises(ParameterError, match="MonteCarloELBO takes gradient in"):
        MonteCarloELBO("dreg")
    with pytest.raises(ParameterError, match="IWAE takes gradient in"):
        IWAE("stl")
    with pytest.raises(ParameterError, match="miwae_m"):
        MIWAE(0)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        CIWAE(-0.1)
    config = TrainingConfig(objective="piwae", miwae_m=3, gradient="dreg")
    estimator = get_estimator("piwae", config)
    assert isinstance(estimator, PIWAE) and (estimator.m, estimator.gradient) == (3, "dreg")
    assert repr(estimator) == "PIWAE(m=3, gradient='dreg')"


def test_iaf_refuses_the_path_gradients(digits):
    vae = VAE(2, hidden=(8,), posterior="iaf", flow_hidden=(8,), flow_context=4,
              objective="iwae", n_samples=2, gradient="dreg", epochs=1, progress=False)
    with pytest.raises(ParameterError, match="needs posterior='gaussian'"):
        vae.fit(digits.train[:50])


def test_fit_records_the_bound_and_the_gradient_and_loads_them(digits, tmp_path):
    X = digits.train[:100]
    vae = VAE(2, hidden=(16,), objective="piwae", miwae_m=2, n_samples=2, gradient="dreg",
              epochs=2, batch_size=50, progress=False).fit(X)
    assert np.all(np.isfinite([h["train_elbo"] for h in vae.history_]))
    vae.save(tmp_path / "piwae")
    loaded = VAE.load(tmp_path / "piwae")
    assert (loaded.training_.objective, loaded.training_.miwae_m,
            loaded.training_.gradient) == ("piwae", 2, "dreg")
    # an estimator object records its own settings
    obj = VAE(2, hidden=(16,), objective=CIWAE(0.25, "dreg"), n_samples=3, epochs=1,
              progress=False).fit(X)
    assert (obj.training_.objective, obj.training_.ciwae_beta,
            obj.training_.gradient) == ("ciwae", 0.25, "dreg")
    # and the value of a trained model's bounds orders as the theory says
    elbo = vae.elbo(X[:50], "a", n_samples=16).mean()
    assert elbo < vae.elbo(X[:50], "miwae", n_samples=2).mean()


def test_the_cli_refuses_a_gradient_that_does_not_apply(tmp_path, capsys):
    from elbokit.cli import main

    argv = ["fit", "vae", "--data", "digits", "--latent", "2", "--hidden", "8",
            "--no-progress", "--objective", "b", "--gradient", "dreg", "--out",
            str(tmp_path / "run")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "gradient='dreg' does not apply to objective 'b'" in error
    assert "\n" not in error and not (tmp_path / "run").exists()
