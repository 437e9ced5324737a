"""A d x d covariance that does not fit in memory is refused before it is allocated
(a 4 x 40,000 table made PPCA/FA allocate 12 GiB without a word)."""

import warnings

import numpy as np
import pytest

from elbokit import PCA, PPCA, FactorAnalysis, LinearAutoencoder
from elbokit.persistence import memory
from elbokit.exceptions import DataError


@pytest.fixture
def little_memory(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 50 * 2**20)  # 50 MiB


def test_wide_data_raise_a_data_error_naming_shape_and_size(little_memory):
    X = np.random.default_rng(0).standard_normal((4, 4000))  # 3 x 4000^2 doubles: 0.36 GiB
    with pytest.raises(DataError, match=r"4000 x 4000 covariance matrix needs 0\.4 GiB.*"
                                        r"0\.0 GiB.*PCA"):
        FactorAnalysis(2).fit(X)


@pytest.mark.parametrize("make", [lambda: PPCA(2), lambda: PPCA(2, solver="em", max_iter=20),
                                  lambda: LinearAutoencoder(2, max_iter=50)])
def test_ppca_and_the_linear_ae_fit_wide_data_from_the_n_x_d_factor(little_memory, make):
    """Where FA needs the d x d matrix, PPCA and the linear AE work from the 4 x 4000
    data (tests/hostile/test_wide_tables.py: the same fit as the covariance path)."""
    X = np.random.default_rng(0).standard_normal((4, 4000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EM cut short
        model = make().fit(X)
    assert model.components_.shape == (2, 4000) and np.isfinite(model.score(X))


def test_out_of_core_moments_are_checked_too(little_memory, tmp_path):
    path = tmp_path / "wide.npy"
    np.save(path, np.zeros((3, 4000)))
    with pytest.raises(DataError, match="4000 x 4000"):
        FactorAnalysis(2).fit(str(path))


def test_pca_on_wide_data_uses_the_svd_and_fits(little_memory):
    X = np.random.default_rng(0).standard_normal((4, 4000))
    assert PCA(2).fit(X).components_.shape == (2, 4000)

