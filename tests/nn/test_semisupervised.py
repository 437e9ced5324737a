"""SemiSupervisedVAE (model M2 of Kingma et al. 2014): the objective of unlabeled and
labeled rows against direct computations, the classifier's surface, log p(x), bad input,
save/load, and M1+M2 as a scikit-learn pipeline (make_pipeline(VAE(...),
SemiSupervisedVAE(likelihood="gaussian", ...)): M2 on the codes of a VAE fitted as without y)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from elbokit.data import load  # noqa: E402
from elbokit.exceptions import DataError  # noqa: E402
from elbokit.nn import VAE, SemiSupervisedVAE  # noqa: E402
from elbokit.nn.objectives import AnalyticKLELBO  # noqa: E402
from elbokit.nn.objectives.semisupervised import SemiSupervisedObjective  # noqa: E402

SMALL = dict(hidden=(32,), classifier_hidden=(32,), epochs=2, progress=False)


@pytest.fixture(scope="module")
def digits():
    d = load("digits")
    X, labels = d.train[:300], d.train_labels[:300]
    y = np.full(300, -1)
    y[:60] = labels[:60]
    return X, labels, y, d.test[:50]


@pytest.fixture(scope="module")
def model(digits):
    X, _, y, _ = digits
    return SemiSupervisedVAE(4, **SMALL).fit(X, y)


def _generator(seed=0):
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _closed_form_elbo(net, x, code, eps):
    """L_B of the conditional VAE written out: E log p(x|z, y) at one draw minus the
    closed-form KL of N(m, v) to N(0, I)."""
    xy = torch.cat([x, code], -1)
    mean, logvar = net.encode(xy)
    z = mean + torch.exp(0.5 * logvar) * eps
    kl = 0.5 * (logvar.exp() + mean**2 - 1 - logvar).sum(-1)
    return net.log_likelihood(xy, z) - kl


def test_unlabeled_rows_get_the_marginal_bound(model, digits):
    X, _, _, _ = digits
    net, k = model.model_, len(model.classes_)
    x = torch.as_tensor(X[:20])
    with torch.no_grad():
        got = SemiSupervisedObjective(AnalyticKLELBO(), 3.0, 1, 3, k).per_row(
            net, torch.cat([x, torch.zeros(20, k)], -1), 1, _generator())
        # the same noise: one draw of (K * B, L), class j's block j
        eps = torch.randn((k * 20, model.latent_dim_), generator=_generator()).view(k, 20, -1)
        bounds = torch.stack([_closed_form_elbo(net, x, torch.eye(k)[j].expand(20, k), eps[j])
                              for j in range(k)], 1)  # (B, K)
        q = torch.softmax(net.classifier(x), -1)
        expected = (q * bounds).sum(-1) - (q * q.log()).sum(-1)  # sum_y q L + H(q)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_labeled_rows_get_the_conditional_elbo_plus_weighted_log_q(digits):
    X, labels, _, _ = digits
    m = SemiSupervisedVAE(4, **SMALL).fit(X[:200], labels[:200])
    assert m._objective(m.training_).label_weight == pytest.approx(m.semisupervised_.alpha)  # all labeled
    codes = m._tensor(m._with_condition(X[:30], labels[:30]))
    with torch.no_grad():
        got = m._objective(m.training_).per_row(m.model_, codes, 1, _generator(5))
        log_q = m.model_.classify(codes)[torch.arange(30), torch.as_tensor(
            np.searchsorted(m.classes_, labels[:30]))]
    elbo = m.elbo(X[:30], "b", random_state=5, y=labels[:30])  # the conditional VAE's
    np.testing.assert_allclose(got.numpy(), elbo + m.semisupervised_.alpha * log_q.numpy(), rtol=1e-5, atol=1e-4)


def test_alpha_auto_grows_with_the_features(model, digits):
    """alpha="auto" is 3/64 per feature: 3 for digits' 64 pixels, and the labeled rows'
    weight alpha N / N_l; a given alpha is kept."""
    from elbokit.nn.config import auto_alpha

    X, _, y, _ = digits
    assert model.get_params()["alpha"] == "auto"
    assert model.semisupervised_.alpha == pytest.approx(3.0) == auto_alpha(64)
    objective = model._objective(model.training_)
    assert objective.label_weight == pytest.approx(3.0 * objective.n_rows / 60)
    narrow = SemiSupervisedVAE(2, **{**SMALL, "epochs": 1}).fit(X[:, :10], y)
    assert narrow.semisupervised_.alpha == pytest.approx(10 * 3 / 64)
    given = SemiSupervisedVAE(2, alpha=0.1, **{**SMALL, "epochs": 1}).fit(X, y)
    assert given.semisupervised_.alpha == 0.1


def test_predict_proba_predict_and_string_classes(model, digits):
    X, labels, y, test = digits
    proba = model.predict_proba(test)
    assert proba.shape == (50, 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(model.predict(test), model.classes_[proba.argmax(1)])
    np.testing.assert_array_equal(model.classes_, np.arange(10))
    names = np.array([f"digit{v}" for v in labels], dtype=object)
    names[y == -1] = -1  # scikit-learn's convention for string labels
    m = SemiSupervisedVAE(4, **{**SMALL, "epochs": 1}).fit(X, names)
    assert m.classes_.tolist() == sorted(f"digit{v}" for v in range(10))
    assert set(m.predict(test)) <= set(m.classes_)


def test_log_px_by_importance_sampling(model, digits):
    _, _, _, test = digits
    log_px = model.score_samples(test, n_importance=200)
    k = len(model.classes_)
    codes = torch.cat([torch.as_tensor(test), torch.zeros(len(test), k)], -1)
    with torch.no_grad():  # the marginal bound U(x) <= log p(x) - log K ... plus log p(y)
        bound = SemiSupervisedObjective(AnalyticKLELBO(), 1.0, 1, 1, k).per_row(
            model.model_, codes, 1, _generator()).numpy() - np.log(k)
    assert log_px.mean() >= bound.mean()
    per_class = np.stack([model.elbo(test, "iwae", n_samples=200, random_state=3,
                                     y=np.full(len(test), c)) for c in model.classes_], 1)
    independent = np.logaddexp.reduce(per_class, axis=1) - np.log(k)
    assert abs(log_px.mean() - independent.mean()) < 0.2
    assert model.score(test) == pytest.approx(float(np.mean(model.score_samples(test))))


def test_bad_labels_are_one_line_errors(model, digits):
    X, labels, y, _ = digits
    with pytest.raises(DataError, match=r"not seen at fit"):
        model.elbo(X[:5], y=np.array([0, 1, 2, 3, 42]))
    with pytest.raises(DataError, match=r"label rows of at least 2 classes"):
        SemiSupervisedVAE(4, **SMALL).fit(X, np.full(300, -1))
    with pytest.raises(DataError, match=r"SemiSupervisedVAE"):
        VAE(4, conditional=True, hidden=(16,), epochs=1, progress=False).fit(X, y)
    with pytest.raises(DataError, match=r"shape \(300,\)"):
        SemiSupervisedVAE(4, **SMALL).fit(X, y[:100])
    with_nan = y.astype(float)
    with_nan[7] = np.nan
    with pytest.raises(DataError, match=r"^y holds nan at row 7: mark an unlabeled row with -1$"):
        SemiSupervisedVAE(4, **SMALL).fit(X, with_nan)
    for message in ("not seen at fit", "label rows", "SemiSupervisedVAE"):
        assert "\n" not in message


def test_save_load_round_trip(model, digits, tmp_path):
    _, _, _, test = digits
    model.save(tmp_path / "m2")
    loaded = SemiSupervisedVAE.load(tmp_path / "m2")
    np.testing.assert_array_equal(loaded.predict_proba(test), model.predict_proba(test))
    assert loaded.semisupervised_ == model.semisupervised_
    assert (loaded.alpha, loaded.classifier_hidden) == (model.semisupervised_.alpha,
                                                         model.classifier_hidden)
    np.testing.assert_array_equal(loaded.classes_, model.classes_)


# ---------------------------------------------------------------- M1+M2, a pipeline

M1 = dict(hidden=(32,), epochs=2, seed=3, progress=False)
M2 = dict(likelihood="gaussian", hidden=(16,), classifier_hidden=(16,), epochs=3, seed=4,
          progress=False)


@pytest.fixture(scope="module")
def pipeline(digits):
    """M1+M2 (Kingma et al. 2014) as a scikit-learn pipeline."""
    X, _, y, _ = digits
    return make_pipeline(VAE(6, **M1), SemiSupervisedVAE(3, **M2)).fit(X, y)


def test_the_pipeline_is_m2_on_the_codes_of_a_vae_fitted_without_y(pipeline, digits):
    X, _, y, test = digits
    m1 = VAE(6, **M1).fit(X)  # no y: the pipeline's VAE must have ignored it
    np.testing.assert_array_equal(pipeline[0].transform(test), m1.transform(test))
    np.testing.assert_array_equal(m1.transform(test), m1.encode(test))  # posterior means
    m2 = SemiSupervisedVAE(3, **M2).fit(m1.transform(X), y)
    np.testing.assert_allclose(pipeline.predict_proba(test),
                               m2.predict_proba(m1.transform(test)), atol=1e-6)
    np.testing.assert_array_equal(pipeline.predict(test), m2.predict(m1.transform(test)))
    assert set(pipeline.predict(test)) <= set(range(10))


def test_the_pipeline_clones_with_its_settings(pipeline):
    copy = clone(pipeline)
    assert copy[1].get_params()["likelihood"] == "gaussian"
    assert copy[0].get_params()["latent_dim"] == 6 and copy[1].get_params()["latent_dim"] == 3
    assert not hasattr(copy[1], "model_")
