"""Wide tables (d >> n): PPCA and the linear autoencoder fit from the n x d data, never
forming the d x d covariance; factor analysis, which needs it, refuses with the figure
(a 50 x 20,000 table made all three allocate 3.2 GB per copy and ignore Ctrl-C)."""

import signal
import warnings

import numpy as np
import pytest

from elbokit import PPCA, FactorAnalysis, LinearAutoencoder
from elbokit.exceptions import DataError
from elbokit.linear import _wide


@pytest.fixture
def wide():
    rng = np.random.default_rng(0)
    return rng.standard_normal((30, 4)) @ rng.standard_normal((4, 200)) \
        + 0.3 * rng.standard_normal((30, 200))


def _both(monkeypatch, make, X):
    """The model fitted from the factor, and from the dense covariance."""
    monkeypatch.setattr(_wide, "FACTOR_PATH_BYTES", 0)
    factor = make().fit(X)
    monkeypatch.setattr(_wide, "FACTOR_PATH_BYTES", float("inf"))
    return factor, make().fit(X)


@pytest.mark.parametrize("make", [lambda: PPCA(3), lambda: PPCA(3, standardize=True),
                                  lambda: LinearAutoencoder(3, random_state=0)])
def test_the_factor_path_is_the_covariance_paths_fit(monkeypatch, wide, make):
    factor, dense = _both(monkeypatch, make, wide)
    assert factor.noise_variance_ == pytest.approx(dense.noise_variance_, rel=1e-10)
    assert factor.score(wide) == pytest.approx(dense.score(wide), rel=1e-10)
    np.testing.assert_allclose(factor.get_covariance(), dense.get_covariance(), atol=1e-9)


def test_the_factor_is_never_formed_densely(wide):
    _, S = _wide.FactoredCovariance.of_rows(wide)
    with pytest.raises(TypeError, match="not formed as a dense"):
        np.asarray(S)
    W = np.ones((200, 2))
    dense = np.cov(wide.T, bias=True)
    np.testing.assert_allclose(S @ W, dense @ W, atol=1e-9)
    np.testing.assert_allclose(W.T @ S, W.T @ dense, atol=1e-9)
    assert np.trace(S) == pytest.approx(np.trace(dense))
    np.testing.assert_allclose(np.diag(S), np.diag(dense))


def test_factor_analysis_refuses_a_wide_table_with_the_figure(monkeypatch):
    monkeypatch.setattr(_wide, "WIDE_REFUSAL_BYTES", 8 * 100**2)
    X = np.random.default_rng(0).standard_normal((10, 120))
    with pytest.raises(DataError, match=r"^FactorAnalysis on 10 rows x 120 features would form "
                                        r"a 120 x 120 covariance \(0\.0 GiB.*use PPCA, PCA"):
        FactorAnalysis(2).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EM cut short
        FactorAnalysis(2, max_iter=5).fit(X[:, :90])  # 90 x 90: under the bound, fitted


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_em_on_a_wide_table_stops_promptly_on_a_signal(seconds_to_stop, signum):
    """PPCA EM on 50 x 20,000 (each iteration milliseconds on the factor): a signal
    during the loop ends the process within seconds."""
    code = ("import numpy as np\nfrom elbokit import PPCA\n"
            "X = np.random.default_rng(0).standard_normal((50, 20000))\n"
            "print('fitting', flush=True)\n"
            "PPCA(2, solver='em', max_iter=10**6, tol=0.0).fit(X)\n")
    seconds, code, _ = seconds_to_stop(code, "fitting", signum)
    assert seconds < 10 and code != 0  # under 2 s on an idle machine


def test_counting_factors_on_a_wide_table_is_one_line_before_any_d_x_d(monkeypatch):
    from elbokit.linear.n_factors import suggest_n_factors

    X = np.random.default_rng(0).standard_normal((10, 120))
    with pytest.raises(DataError, match=r"parallel analysis needs more rows than columns: .* "
                                        r"10 rows x 120 columns is singular"):
        suggest_n_factors(X, "parallel")
    monkeypatch.setattr(_wide, "WIDE_REFUSAL_BYTES", 8 * 100**2)
    with pytest.raises(DataError, match=r"^counting factors on 10 rows x 120 features would "
                                        r"form a 120 x 120 covariance"):
        suggest_n_factors(X, "bic")
