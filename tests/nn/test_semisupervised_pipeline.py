"""M1+M2 of Kingma et al. (2014) as a scikit-learn Pipeline: make_pipeline(VAE(...),
SemiSupervisedVAE(likelihood="gaussian", ...)) with y = -1 for the unlabeled rows is M2
fitted on the VAE's posterior means, the VAE fitted as without y."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from elbokit.data import load  # noqa: E402
from elbokit.nn import VAE, SemiSupervisedVAE  # noqa: E402

M1 = dict(hidden=(32,), epochs=2, seed=3, progress=False)
M2 = dict(likelihood="gaussian", hidden=(16,), classifier_hidden=(16,), epochs=3, seed=4,
          progress=False)


@pytest.fixture(scope="module")
def digits():
    d = load("digits")
    X, labels = d.train[:300], d.train_labels[:300]
    y = np.full(300, -1)
    y[:60] = labels[:60]
    return X, y, d.test[:40]


@pytest.fixture(scope="module")
def pipeline(digits):
    X, y, _ = digits
    return make_pipeline(VAE(6, **M1), SemiSupervisedVAE(3, **M2)).fit(X, y)


def test_the_pipeline_is_m2_on_the_codes_of_a_vae_fitted_without_y(pipeline, digits):
    X, y, test = digits
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
