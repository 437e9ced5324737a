"""Rank-deficient data and constant features: finite log-likelihoods, named warnings."""

import numpy as np
import pytest

from elbokit import PCA, PPCA, VBPCA, FactorAnalysis


@pytest.fixture
def rank_deficient():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3)) @ rng.standard_normal((3, 10))  # rank 3 in 10-D
    X[:, 4] = 2.5  # a constant feature
    X[:, 8] = 0.0
    return X


@pytest.mark.parametrize("make", [lambda: FactorAnalysis(5), lambda: PPCA(5),
                                  lambda: PPCA(5, solver="em", random_state=0)])
def test_finite_and_warned(rank_deficient, make):
    with pytest.warns(UserWarning, match=r"indices 4, 8"):
        model = make().fit(rank_deficient)
    scores = model.score_samples(rank_deficient)
    assert np.all(np.isfinite(scores))
    assert np.all(np.isfinite(model.get_precision()))
    assert np.all(np.isfinite(model.transform(rank_deficient)))


def test_pca_and_vbpca_stay_finite(rank_deficient):
    for model in (PCA(5), VBPCA(5)):
        model.fit(rank_deficient)
        assert np.all(np.isfinite(model.score_samples(rank_deficient)))


def test_all_constant_data_is_finite():
    X = np.ones((50, 4))
    with pytest.warns(UserWarning, match="indices 0, 1, 2, 3"):
        model = FactorAnalysis(2).fit(X)
    assert np.all(np.isfinite(model.score_samples(X)))
