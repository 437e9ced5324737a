"""suggest_n_factors: the known count of simulated data from each method, none for pure
noise, the parallel-analysis eigenvalues against an independent computation,
reproducibility, scale invariance, a real table, and the one-line errors."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from elbokit.exceptions import DataError, ParameterError
from elbokit.linear.n_factors import suggest_n_factors


def three_factors(n=600, d=12, seed=0):
    """12 items, 4 per factor, loadings 0.6-0.8, uniquenesses making unit variances."""
    rng = np.random.default_rng(seed)
    W = np.zeros((d, 3))
    W[np.arange(d), np.arange(d) % 3] = rng.uniform(0.6, 0.8, d)
    noise = rng.standard_normal((n, d)) * np.sqrt(1 - np.sum(W**2, axis=1))
    return rng.standard_normal((n, 3)) @ W.T + noise


@pytest.fixture(scope="module")
def X3():
    return three_factors()


@pytest.mark.parametrize("method", ["parallel", "bic", "heldout"])
def test_three_known_factors(X3, method):
    options = {"max_factors": 5, "n_folds": 3} if method == "heldout" else {}
    result = suggest_n_factors(X3, method, **options)
    assert result.n_factors == 3 and result.method == method
    if method == "bic":  # the count is the minimum of the table's BIC column
        assert result.table["bic"][3] == result.table["bic"].min()
        assert list(result.table["n_factors"]) == list(range(8))  # dof > 0 up to 7


def test_heldout_with_missing_entries(X3):
    X = X3.copy()
    X[np.random.default_rng(1).random(X.shape) < 0.05] = np.nan
    assert suggest_n_factors(X, "heldout", max_factors=4, n_folds=3).n_factors == 3


def test_pure_noise_has_no_factors():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 12))
    assert suggest_n_factors(X, "bic").n_factors == 0
    assert suggest_n_factors(X, "parallel").n_factors == 0
    # psych's mean reference is liberal on noise (about a third of noise tables give >= 1
    # factor); the 95% quantile (Glorfeld 1995) is not
    counts = [suggest_n_factors(rng.standard_normal((300, 10)), "parallel", quantile=0.95,
                                random_state=s).n_factors for s in range(10)]
    assert sum(counts) <= 1


def test_parallel_eigenvalues_are_those_of_the_reduced_correlation(X3):
    """The observed column against an independent computation: each SMC as the R^2 of
    the least-squares regression of the item on all the others."""
    Z = (X3 - X3.mean(axis=0)) / X3.std(axis=0)
    smc = []
    for j in range(Z.shape[1]):
        others = np.delete(Z, j, axis=1)
        beta = np.linalg.lstsq(others, Z[:, j], rcond=None)[0]
        smc.append(1 - np.sum((Z[:, j] - others @ beta) ** 2) / np.sum(Z[:, j] ** 2))
    R = np.corrcoef(Z, rowvar=False)
    np.fill_diagonal(R, smc)
    result = suggest_n_factors(X3, "parallel")
    np.testing.assert_allclose(result.table["observed"], np.linalg.eigvalsh(R)[::-1],
                               atol=1e-10)
    assert np.all(result.table["random_q95"] >= result.table["random_mean"] - 0.05)


def test_random_reference_is_reproducible(X3):
    a = suggest_n_factors(X3, "parallel", random_state=7)
    b = suggest_n_factors(X3, "parallel", random_state=7)
    c = suggest_n_factors(X3, "parallel", random_state=8)
    np.testing.assert_array_equal(a.table["random_mean"], b.table["random_mean"])
    assert not np.array_equal(a.table["random_mean"], c.table["random_mean"])
    np.testing.assert_array_equal(a.table["observed"], c.table["observed"])


def test_wine_gives_a_sane_count_in_any_units():
    """scikit-learn's wine (178 x 13): parallel analysis says 6, the BIC 4 (measured);
    raw and standardized columns give the same tables (up to the log-likelihood's
    Jacobian)."""
    raw = load_wine().data
    std = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    parallel = suggest_n_factors(std, "parallel")
    bic = suggest_n_factors(std, "bic")
    assert parallel.n_factors == 6 and bic.n_factors == 4
    np.testing.assert_allclose(suggest_n_factors(raw, "parallel").table["observed"],
                               parallel.table["observed"], atol=1e-10)
    raw_bic = suggest_n_factors(raw, "bic")
    assert raw_bic.n_factors == 4
    # (the fits are equivariant only to their convergence: 1.3e-4 apart at 8 factors)
    np.testing.assert_allclose(raw_bic.table["chi_square"], bic.table["chi_square"],
                               rtol=1e-3)


def test_zero_factor_row_is_the_diagonal_gaussian(X3):
    n = X3.shape[0]
    var = X3.var(axis=0)
    expected = -0.5 * n * np.sum(np.log(2 * np.pi * var) + 1)
    assert suggest_n_factors(X3, "bic").table["loglike"][0] == pytest.approx(expected)


def test_dataframe_and_text(X3):
    frame = pd.DataFrame(X3, columns=[f"item{j}" for j in range(12)])
    result = suggest_n_factors(frame, "bic", max_factors=4)
    assert result.n_factors == 3
    lines = result.to_text().splitlines()
    table = lines[:6]  # header and the rows for 0..4 factors
    assert len({len(line) for line in table}) == 1  # aligned
    assert table[0].split()[:3] == ["n_factors", "dof", "loglike"]
    assert lines[-1].endswith(": 3")


def test_bad_tables_get_one_line_errors(X3):
    frame = pd.DataFrame(X3[:, :4], columns=list("abcd"))
    frame["const"] = 2.0
    with pytest.raises(DataError, match=r"constant .*\['const'\]"):
        suggest_n_factors(frame)
    frame["const"] = "x"
    with pytest.raises(DataError, match=r"\[.const.\] are not numeric"):
        suggest_n_factors(frame)
    X = X3.copy()
    X[0, 0] = np.nan
    for method in ("parallel", "bic"):
        with pytest.raises(DataError, match="method='heldout'"):
            suggest_n_factors(X, method)
    with pytest.raises(ParameterError, match="max_factors=8 is too many"):
        suggest_n_factors(X3, "bic", max_factors=8)
    with pytest.raises(ParameterError, match="method must be one of"):
        suggest_n_factors(X3, "scree")
