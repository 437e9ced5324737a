"""The factors a biologist reads: the features that load most on each factor (Python's
``top_features`` and the report's table and heatmap), and the warning for a one-noise
model (PCA, PPCA) that fits worse than independent Gaussians per feature."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_breast_cancer

from elbokit import PCA, PPCA, FactorAnalysis
from elbokit._factor_report import top_features_table
from elbokit.linear._interpret import features_by_factor, sorted_items


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    return data.data


def _fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X)


def test_top_features_are_the_largest_signed_loadings_of_each_factor(cancer):
    fa = _fit(FactorAnalysis(3, rotation="varimax"), cancer)
    top = fa.top_features(5)
    loadings = fa.factor_solution().loadings
    names = list(cancer.columns)
    assert list(top) == ["F1", "F2", "F3"]
    for k, rows in enumerate(top.values()):
        assert len(rows) == 5
        sizes = [abs(value) for _, value in rows]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(loadings[:, k]).max())
        for name, value in rows:  # the signed loading of that feature, by its name
            assert value == pytest.approx(loadings[names.index(name), k])
        # no feature left out loads more than the last one listed
        left_out = [j for j, n in enumerate(names) if n not in {r[0] for r in rows}]
        assert np.abs(loadings[left_out, k]).max() <= sizes[-1] + 1e-12


def test_top_features_do_not_depend_on_the_units(cancer):
    """FA is scale-equivariant, so the correlation-scale loadings and their ranking stay
    when a feature is measured in other units (mm -> um)."""
    rescaled = cancer.copy()
    rescaled["mean radius"] *= 1000.0
    a = _fit(FactorAnalysis(2, rotation="varimax"), cancer).top_features(4)
    b = _fit(FactorAnalysis(2, rotation="varimax"), rescaled).top_features(4)
    for factor in a:
        assert [n for n, _ in a[factor]] == [n for n, _ in b[factor]]
        np.testing.assert_allclose([v for _, v in a[factor]], [v for _, v in b[factor]],
                                   atol=1e-4)


def test_top_features_without_names_and_bad_n():
    X = np.random.default_rng(0).standard_normal((200, 6)) @ \
        np.random.default_rng(1).standard_normal((6, 6))
    pca = PCA(2).fit(X)
    assert all(name.startswith("x") for name, _ in pca.top_features(3)["F1"])
    assert len(pca.top_features(100)["F2"]) == 6  # at most every feature
    with pytest.raises(Exception, match="n"):
        pca.top_features(0)


def test_the_heatmap_keeps_each_factors_top_features_grouped_by_factor():
    rng = np.random.default_rng(0)
    loadings = rng.uniform(-1, 1, size=(300, 4))
    shown = features_by_factor(loadings, 50)
    assert len(shown) == 50 and len(set(shown.tolist())) == 50
    for k in range(4):  # every factor's 12 largest are there
        assert set(np.argsort(-np.abs(loadings[:, k]))[:12]) <= set(shown.tolist())
    main = np.argmax(np.abs(loadings[shown]), axis=1)
    assert np.all(np.diff(main) >= 0)  # grouped by the factor each loads most on
    few = loadings[:20]
    assert features_by_factor(few, 50).tolist() == sorted_items(few).tolist()


def test_the_report_table_lists_the_top_features_with_sign(cancer):
    fa = _fit(FactorAnalysis(2, rotation="varimax"), cancer)
    page = top_features_table(fa.factor_solution(), list(cancer.columns), n=3)
    first, value = fa.top_features(3)["F1"][0]
    assert page.count("<tr>") == 4 and f"{first} ({value:+.2f})" in page


def test_a_one_noise_model_worse_than_independent_gaussians_is_said():
    """Independent features of very different variances: PCA/PPCA's shared noise fits
    them worse than one Gaussian per feature; the warning's figures are the model's
    own score and the independent baseline computed with scipy."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 8)) * np.array([1, 1, 2, 3, 5, 10, 20, 30.0])
    baseline = stats.norm(X.mean(0), X.std(0)).logpdf(X).sum(axis=1).mean()
    for model in (PCA(2), PPCA(2)):
        with pytest.warns(UserWarning, match="below independent Gaussians") as caught:
            model.fit(X)
        message = next(str(w.message) for w in caught if "independent" in str(w.message))
        assert f"{model.score(X):.6g} nats/row" in message
        assert f"({baseline:.6g})" in message
    correlated = rng.standard_normal((500, 2)) @ rng.standard_normal((2, 8)) \
        + 0.1 * rng.standard_normal((500, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PCA(2).fit(correlated)  # far better than independent: no warning
        PCA(2, standardize=True).fit(X)  # standardized: not said


def test_the_independent_baseline_leaves_out_missing_entries_and_floors_constants():
    from elbokit.linear._gaussian import independent_log_likelihood

    rng = np.random.default_rng(0)
    train = rng.standard_normal((50, 3)) * [1.0, 3.0, 0.0] + [0.0, 1.0, 5.0]
    test = rng.standard_normal((4, 3))
    test[0, 1] = np.nan
    test[:, 2] = 5.0  # the constant's value: only its floored variance counts
    ll = independent_log_likelihood(train, test)
    var = train.var(0)
    var[2] = 1e-3 * var.mean()
    expected = stats.norm(train.mean(0), np.sqrt(var)).logpdf(test)
    np.testing.assert_allclose(ll, np.nansum(expected, axis=1), rtol=1e-12)
