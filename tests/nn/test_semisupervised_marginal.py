"""SemiSupervisedVAE without y, as evaluate, compare and the report ask it: log p(x) with
y summed out against quadrature over a one-dimensional z, the bound below it, the
posterior of z as the q(y|x)-mixture, the KL with the class's term; the registered kind
saved as one commit and loaded by elbokit.load_model."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit import evaluate  # noqa: E402
from elbokit.data import load  # noqa: E402
from elbokit.kinds import kind_of  # noqa: E402
from elbokit.models import load_model  # noqa: E402
from elbokit.nn import SemiSupervisedVAE  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    d = load("digits")
    X, labels = d.train[:300], d.train_labels[:300]
    keep = labels < 3  # three classes: K = 3
    X, labels = X[keep], labels[keep]
    y = np.where(np.arange(len(X)) < 30, labels, -1)
    model = SemiSupervisedVAE(1, hidden=(16,), classifier_hidden=(16,), epochs=3,
                              progress=False).fit(X, y)
    test = d.test[d.test_labels < 3][:12]
    return model, test


def _quadrature_log_px(model, X):
    """log p(x) = log (1/K) sum_y int p(x|z, y) N(z; 0, 1) dz, the integral over z (L = 1)
    by the trapezoid rule on [-10, 10]."""
    grid = torch.linspace(-10, 10, 4001, dtype=torch.float32)  # (G,)
    step = float(grid[1] - grid[0])
    log_prior = -0.5 * grid.double() ** 2 - 0.5 * math.log(2 * math.pi)
    net, k, x = model.model_, len(model.classes_), torch.as_tensor(X, dtype=torch.float32)
    per_class = []
    with torch.no_grad():
        for j in range(k):
            code = torch.zeros(len(x), k)
            code[:, j] = 1.0
            xy = torch.cat([x, code], -1)
            log_lik = net.log_likelihood(xy, grid[:, None, None].expand(-1, len(x), 1))  # (G, n)
            joint = log_lik.double() + log_prior[:, None]
            weights = torch.full((len(grid), 1), math.log(step), dtype=torch.float64)
            weights[[0, -1]] -= math.log(2)
            per_class.append(torch.logsumexp(joint + weights, 0))
    return (torch.logsumexp(torch.stack(per_class, 1), 1) - math.log(k)).numpy()


def test_log_px_without_y_is_the_class_sum(fitted):
    model, test = fitted
    exact = _quadrature_log_px(model, test)
    estimate = model.log_likelihood_samples(test, n_importance=2000)
    np.testing.assert_allclose(estimate, exact, atol=0.05)
    np.testing.assert_array_equal(model.score_samples(test, n_importance=2000), estimate)
    ticks = []
    evaluate.log_likelihood(model, test, n_importance=10)  # evaluate's path, no y
    model.log_likelihood_samples(test, n_importance=10, progress=ticks.append)
    assert sum(ticks) == len(test)  # rows of X, not K passes over them


def test_bound_without_y_is_below_log_px(fitted):
    model, test = fitted
    exact = _quadrature_log_px(model, test)
    bound = model.elbo(test, "b", n_samples=500)
    assert (bound <= exact + 0.05).all()
    assert (model.elbo(test, "iwae", n_samples=500) >= bound - 0.05).all()  # tighter
    # the bound of y latent: sum_y q(y|x) (L(x, y) - log q(y|x)) - log K
    q = model.predict_proba(test)
    per_class = np.stack([model.elbo(test, "b", n_samples=500, y=np.full(len(test), c))
                          for c in model.classes_], 1)
    np.testing.assert_allclose(bound, (q * (per_class - np.log(q))).sum(1) - np.log(3),
                               rtol=1e-5, atol=1e-4)


def test_posterior_of_z_is_the_class_mixture(fitted):
    model, test = fitted
    q = model.predict_proba(test)  # (n, K)
    means = np.stack([model.encode(test, y=np.full(len(test), c)) for c in model.classes_], 1)
    np.testing.assert_allclose(model.encode(test), (q[:, :, None] * means).sum(1), atol=1e-6)
    draws = model.posterior_samples(test, 20000, random_state=1)  # (n, k, L)
    mean, variance = model.posterior_moments(test)
    np.testing.assert_allclose(draws.mean(1), mean, atol=0.05)
    np.testing.assert_allclose(draws.var(1), variance, rtol=0.1, atol=0.01)
    assert evaluate.active_units(model, test)[0] in (0, 1)


def test_kl_without_y_adds_the_class_kl(fitted):
    """E log p(x|z, y) under the mixture is the same whether read off the bound and KL of
    y latent or of each class: elbo + KL agree both ways (a wrong class term would not)."""
    model, test = fitted
    q = model.predict_proba(test)
    kl = model.kl_to_prior(test)
    per_class = np.stack([model.kl_to_prior(test, y=np.full(len(test), c))
                          for c in model.classes_], 1)
    class_kl = (q * np.log(q * 3)).sum(1)  # KL(q(y|x) || 1/K)
    np.testing.assert_allclose(kl, (q * per_class).sum(1) + class_kl, rtol=1e-5, atol=1e-5)
    assert (kl >= 0).all()
    expected = model.elbo(test, "b", n_samples=200) + kl
    parts = np.stack([model.elbo(test, "b", n_samples=200, y=np.full(len(test), c))
                      for c in model.classes_], 1) + per_class
    np.testing.assert_allclose(expected, (q * parts).sum(1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(model.kl_to_prior(test, per_dimension=True)[:, 0],
                               (q * per_class).sum(1), rtol=1e-5, atol=1e-5)


def test_registered_kind_saves_one_commit_and_loads(fitted, tmp_path):
    model, test = fitted
    assert kind_of(model) == "semisupervised-vae"
    model.save(tmp_path / "m2")
    assert {"model.json", "manifest.json", "run.json"} <= {p.name for p in
                                                           (tmp_path / "m2").iterdir()}
    loaded = load_model(tmp_path / "m2")
    assert type(loaded) is SemiSupervisedVAE
    np.testing.assert_array_equal(loaded.predict_proba(test), model.predict_proba(test))
    np.testing.assert_array_equal(loaded.predict(test), model.predict(test))
    np.testing.assert_array_equal(loaded.encode(test), model.encode(test))
