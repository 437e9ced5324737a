"""VAEs on incomplete data (issue 34; Mattei & Frellsen 2019): the bound over the
observed entries is the full bound when nothing is missing, for every likelihood; with
an exact posterior of the observed coordinates, log p(x_obs) is the Gaussian marginal
in closed form; the counts' rates are shares of the observed total; a linear-decoder
VAE trained with NaN imputes the exact conditional mean of the true model; draws leave
the observed entries alone; the CLI's ``impute`` round trip and its errors."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import stats  # noqa: E402

from conftest import one_line_exit_2  # noqa: E402
from elbokit.exceptions import DataError, ParameterError  # noqa: E402
from elbokit.nn import VAE, ArchitectureConfig, VAENetwork  # noqa: E402
from elbokit.nn.importance import importance_log_likelihood  # noqa: E402
from elbokit.nn.likelihoods import Poisson  # noqa: E402
from elbokit.nn.objectives import IWAE, AnalyticKLELBO  # noqa: E402

D, L = 6, 2


def _rows(likelihood: str, rng, n=8, d=D):
    if likelihood == "bernoulli":
        return (rng.random((n, d)) < 0.4).astype(np.float64)
    if likelihood == "logistic":
        return rng.integers(0, 256, (n, d)) / 255.0
    if likelihood in ("poisson", "nb", "zinb"):
        return rng.poisson(3.0, (n, d)).astype(np.float64)
    return rng.normal(size=(n, d)) * 3 + 1


@pytest.mark.parametrize("likelihood, standardize", [
    ("gaussian", True), ("gaussian", False), ("gaussian-fixed", False), ("bernoulli", False),
    ("logistic", False), ("poisson", False), ("nb", False), ("zinb", False)])
def test_the_observed_bound_is_the_full_bound_when_nothing_is_missing(likelihood, standardize):
    """A network fitted on NaN (its encoder also sees the mask, here with zero weights)
    gives the same IWAE and L_B values, with the same noise, as the plain network on
    complete rows; and each likelihood's masked sum with every entry observed is its sum."""
    rng = np.random.default_rng(1)
    x = torch.as_tensor(_rows(likelihood, rng))
    common = dict(n_features=D, latent_dim=L, likelihood=likelihood, hidden=(8,),
                  standardize=standardize)
    torch.manual_seed(0)
    plain = VAENetwork(ArchitectureConfig(**common)).double().eval()
    masked = VAENetwork(ArchitectureConfig(**common, missing=True)).double().eval()
    state = plain.state_dict()
    first = state["encoder.net.0.weight"]  # (hidden, d) -> (hidden, 2 d): mask weights 0
    state["encoder.net.0.weight"] = torch.cat([first, torch.zeros_like(first)], dim=1)
    if standardize:
        state["data_mean"], state["data_scale"] = torch.full((D,), 1.0), torch.full((D,), 3.0)
    masked.load_state_dict(state)
    if standardize:
        plain.load_state_dict({**state, "encoder.net.0.weight": first})
    for estimator, k in ((IWAE(), 5), (AnalyticKLELBO(), 1)):
        values = [estimator(m, x, k, torch.Generator().manual_seed(3)) for m in (plain, masked)]
        torch.testing.assert_close(values[1], values[0], rtol=1e-12, atol=1e-12)
    params = plain.decode(torch.randn(3, 8, L, dtype=torch.float64))
    x_std = plain.standardized(x)
    torch.testing.assert_close(plain.likelihood.log_prob(x_std, params, torch.ones_like(x, dtype=bool)),
                               plain.likelihood.log_prob(x_std, params), rtol=1e-12, atol=1e-9)


def _exact_linear_model(observed: np.ndarray, s2=0.5, seed=0):
    """A float64 linear-Gaussian VAENetwork fitted on missing values whose encoder is the
    exact posterior p(z | x_O) of the coordinates ``observed`` (W_O with orthogonal
    columns and isotropic noise: a diagonal posterior covariance); (model, W, b)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((observed.sum(), L)))
    W = rng.standard_normal((D, L))
    W[observed] = Q * np.array([2.0, 1.0])
    b = rng.standard_normal(D)
    W_o, b_o = W[observed], b[observed]
    G = np.linalg.inv(np.eye(L) + W_o.T @ W_o / s2)  # diagonal
    A = G @ W_o.T / s2  # E[z | x_O] = A (x_O - b_O)
    config = ArchitectureConfig(n_features=D, latent_dim=L, likelihood="gaussian",
                                encoder="linear", decoder="linear", min_variance=1e-8,
                                missing=True)
    model = VAENetwork(config).double().eval()
    with torch.no_grad():
        model.decoder.linear.weight.copy_(torch.tensor(W))
        model.decoder.linear.bias.copy_(torch.tensor(b))
        model.decoder.raw_variance.fill_(math.log(math.expm1(s2 - 1e-8)))
        linear = model.encoder.net[0]  # (2 L, 2 D): [x zero-filled, mask] -> (mean, logvar)
        linear.weight.zero_()
        linear.weight[:L, :D][:, observed] = torch.tensor(A)
        linear.bias[:L] = torch.tensor(-A @ b_o)
        linear.bias[L:] = torch.tensor(np.log(np.diag(G)))
    return model, W, b


def test_log_p_of_the_observed_entries_is_the_gaussian_marginal():
    observed = np.array([True, False, True, True, False, True])
    model, W, b = _exact_linear_model(observed)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((20, L)) @ W.T + b + rng.standard_normal((20, D)) * math.sqrt(0.5)
    C = W @ W.T + 0.5 * np.eye(D)
    want = stats.multivariate_normal(b[observed], C[np.ix_(observed, observed)]).logpdf(
        X[:, observed])
    X[:, ~observed] = np.nan
    got = importance_log_likelihood(model, torch.as_tensor(X), 3,
                                    generator=torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)  # exact q: every weight is p(x_O)
    full = stats.multivariate_normal(b, C).logpdf(np.nan_to_num(X))
    assert np.all(np.abs(full - want) > 1e-3)  # the missing entries are not scored at 0


def test_count_rates_are_shares_of_the_observed_total():
    rng = np.random.default_rng(3)
    x = rng.poisson(4.0, (4, D)).astype(np.float64)
    mask = rng.random((4, D)) < 0.7
    mask[:, 0] = True
    logits = torch.as_tensor(rng.normal(size=(4, D)))
    got = Poisson().log_prob(torch.as_tensor(np.where(mask, x, 0.0)), (logits,),
                             torch.as_tensor(mask)).numpy()
    for i in range(4):
        share = np.exp(logits[i].numpy()[mask[i]])
        rate = x[i, mask[i]].sum() * share / share.sum()
        assert got[i] == pytest.approx(stats.poisson.logpmf(x[i, mask[i]], rate).sum(),
                                       rel=1e-10)


# --------------------------------------------------------------------------- a fitted VAE

def _linear_gaussian_data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, L)) * np.array([2.0, 1.0])
    b = rng.normal(size=D) * 3
    psi = rng.uniform(0.2, 0.6, size=D)
    X = rng.standard_normal((n, L)) @ W.T + b + rng.standard_normal((n, D)) * np.sqrt(psi)
    missing = rng.random(X.shape) < 0.2
    missing[missing.all(axis=1), 0] = False
    return X, np.where(missing, np.nan, X), W @ W.T + np.diag(psi), b


def _exact_conditional_mean(X_nan, C, b):
    out = X_nan.copy()
    for i, row in enumerate(X_nan):
        m = np.isnan(row)
        if m.any():
            o = ~m
            out[i, m] = b[m] + C[np.ix_(m, o)] @ np.linalg.solve(C[np.ix_(o, o)], row[o] - b[o])
    return out


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    X, X_nan, C, b = _linear_gaussian_data()
    # the posterior of x_O depends on which entries are observed: an MLP encoder of
    # (x, mask), and the IWAE bound, whose fit an imperfect amortization biases less;
    # the noise here is 4-10% of each feature's variance, below the default floor of a
    # fit with NaN (config.MISSING_MIN_VARIANCE, 0.2): the floor of complete fits
    vae = VAE(L, likelihood="gaussian", decoder="linear", encoder="mlp", hidden=(64,),
              objective="iwae", n_samples=5, epochs=60, lr=1e-2, validation_fraction=0,
              min_variance=1e-3, progress=False).fit(X_nan)
    return vae, X, X_nan, C, b


def test_a_linear_vae_fitted_with_nan_imputes_the_exact_conditional_mean(fitted):
    vae, X, X_nan, C, b = fitted
    assert vae.architecture_.missing and vae.model_.encoder.net[0].in_features == 2 * D
    assert vae.training_.objective == "iwae"
    missing = np.isnan(X_nan)
    exact = _exact_conditional_mean(X_nan, C, b)
    imputed = vae.impute(X_nan, n_samples=200)
    spread = X.std(axis=0)
    to_exact = np.sqrt(np.mean(((imputed - exact) / spread)[missing] ** 2))
    column_means = np.where(missing, np.nanmean(X_nan, axis=0), X_nan)
    baseline = np.sqrt(np.mean(((column_means - exact) / spread)[missing] ** 2))
    assert to_exact < 0.12 and to_exact < 0.2 * baseline, (to_exact, baseline)  # FA: 0.03
    np.testing.assert_array_equal(imputed[~missing], X_nan[~missing])


def test_draws_have_the_shape_and_keep_the_observed_entries(fitted):
    vae, _, X_nan, _, _ = fitted
    rows = X_nan[:30]
    draws = vae.impute(rows, n_draws=4, n_samples=100, random_state=1)
    assert draws.shape == (4, 30, D) and np.all(np.isfinite(draws))
    missing = np.isnan(rows)
    np.testing.assert_array_equal(draws[:, ~missing], np.broadcast_to(rows[~missing],
                                                                      (4, (~missing).sum())))
    assert np.all(draws[0][missing] != draws[1][missing])  # draws, not the mean
    again = vae.impute(rows, n_draws=4, n_samples=100, random_state=1)
    np.testing.assert_array_equal(again, draws)  # seeded


def test_scores_of_rows_with_missing_values(fitted):
    vae, X, X_nan, _, _ = fitted
    elbo, log_p = vae.score_samples(X_nan[:50]), vae.log_likelihood_samples(
        X_nan[:50], n_importance=200)
    assert np.all(np.isfinite(elbo)) and np.mean(elbo) <= np.mean(log_p) + 1e-3
    # fewer observed entries, a larger density: log p(x_obs) is above log p(x)
    assert np.mean(log_p) > np.mean(vae.log_likelihood_samples(X[:50], n_importance=200))


def test_dataframes_come_back_as_dataframes_when_set_output_says_so(fitted):
    pd = pytest.importorskip("pandas")
    vae, _, X_nan, _, _ = fitted
    frame = pd.DataFrame(X_nan[:5], columns=[f"c{j}" for j in range(D)], index=list("abcde"))
    model = VAE(L, likelihood="gaussian", decoder="linear", epochs=1, progress=False)
    model.fit(pd.DataFrame(X_nan[:100], columns=frame.columns))
    assert isinstance(model.impute(frame, n_samples=10), np.ndarray)
    out = model.set_output(transform="pandas").impute(frame, n_samples=10)
    assert list(out.columns) == list(frame.columns) and list(out.index) == list("abcde")
    assert not out.isna().any().any()


def test_a_model_fitted_on_complete_rows_imputes_too(fitted):
    """Its encoder never saw a mask (missing entries reach it at the training mean), so
    its proposal is poorer than that of a model fitted on NaN: far better than the
    column means still, not as close to the exact conditional mean."""
    _, X, X_nan, C, b = fitted
    vae = VAE(L, likelihood="gaussian", decoder="linear", objective="iwae", n_samples=5,
              epochs=60, lr=1e-2, validation_fraction=0, progress=False).fit(X)
    assert not vae.architecture_.missing
    rows = X_nan[:200]
    missing = np.isnan(rows)
    exact = _exact_conditional_mean(rows, C, b)
    error = lambda imputed: np.sqrt(np.mean(((imputed - exact) / X.std(0))[missing] ** 2))
    column_means = np.where(missing, np.nanmean(X_nan, axis=0), rows)
    assert error(vae.impute(rows, n_samples=200)) < 0.3 * error(column_means)


def test_the_proposal_of_a_model_fitted_on_complete_rows_is_refined(fitted, monkeypatch):
    """Its encoder sees missing entries at 0; proposal_encoding fills them with their
    conditional mean first. On a linear-Gaussian VAE, log p(x_obs) by importance sampling
    with few draws then comes closer to the exact marginal of the model's own Gaussian
    than with the zero-filled proposal."""
    from elbokit.nn import _impute

    _, X, X_nan, _, _ = fitted
    vae = VAE(L, likelihood="gaussian", decoder="linear", objective="iwae", n_samples=5,
              epochs=60, lr=1e-2, validation_fraction=0, progress=False).fit(X)
    C, b = _own_gaussian(vae)
    rows = X_nan[:300]
    rows = rows[np.isnan(rows).any(axis=1)]
    exact = np.array([stats.multivariate_normal(b[o], C[np.ix_(o, o)]).logpdf(r[o])
                      for r, o in ((r, ~np.isnan(r)) for r in rows)])
    refined = vae.log_likelihood_samples(rows, n_importance=20) - exact
    monkeypatch.setattr(_impute, "PROPOSAL_ROUNDS", 0)
    zero_filled = vae.log_likelihood_samples(rows, n_importance=20) - exact
    # both fall short (IS is a lower bound; q(z|x filled) is narrower than p(z|x_obs)),
    # the refined one by less than half as much (0.20 against 0.46 nats a row here)
    assert zero_filled.mean() < refined.mean() < 0 and np.abs(refined).mean() < 0.5 * np.abs(
        zero_filled).mean(), (np.abs(refined).mean(), np.abs(zero_filled).mean())


def test_bad_missing_values_are_one_line_errors(fitted):
    vae, _, X_nan, _, _ = fitted
    rows = X_nan[:4].copy()
    rows[2] = np.nan
    with pytest.raises(DataError, match=r"row\(s\) \[2\] have no observed entry"):
        vae.impute(rows)
    with pytest.raises(DataError, match="every value is missing"):
        vae.impute(np.full((3, D), np.nan))
    column = X_nan[:50].copy()
    column[:, 3] = np.nan
    with pytest.raises(DataError, match=r"feature\(s\) \[3\] are missing \(NaN\) in every"):
        VAE(L, likelihood="gaussian", epochs=1, progress=False).fit(column)
    with pytest.raises(ParameterError, match="binarize"):
        VAE(L, binarize="dynamic", epochs=1, progress=False).fit(
            np.where(np.isnan(X_nan[:50]), np.nan, 0.5))
    inf = X_nan[:4].copy()
    inf[0, 0] = np.inf
    with pytest.raises(DataError, match="inf"):
        vae.impute(inf)
    with pytest.raises(ParameterError, match="n_draws"):
        vae.impute(X_nan[:4], n_draws=0)


# --------------------------------------------------------------------------- the CLI

def test_cli_impute_round_trip_and_errors(tmp_path, capsys):
    from elbokit.cli import main

    X, X_nan, _, _ = _linear_gaussian_data(n=200, seed=4)
    names = [f"q{j}" for j in range(D)]
    table = tmp_path / "t.csv"
    cells = [[("" if np.isnan(v) else repr(float(v))) for v in row] for row in X_nan]
    table.write_text(",".join(names) + "\n" + "\n".join(",".join(r) for r in cells) + "\n")
    run, out = tmp_path / "run", tmp_path / "filled.csv"
    assert main(["fit", "vae", "--latent", "2", "--likelihood", "gaussian", "--decoder",
                 "linear", "--epochs", "3", "--data", str(table), "--out", str(run)]) == 0
    assert main(["impute", str(run), "--data", str(table), "--out", str(out),
                 "--n-samples", "50"]) == 0
    header, *lines = out.read_text().splitlines()
    filled = np.array([[float(v) for v in line.split(",")] for line in lines])
    assert header.split(",") == names and filled.shape == X.shape
    missing = np.isnan(X_nan)
    np.testing.assert_array_equal(filled[~missing], X_nan[~missing])
    assert np.all(np.isfinite(filled))
    one_line_exit_2(["impute", str(run), "--data", str(table), "--out", str(out)], capsys,
                    "exists; pass --overwrite")
    draws = tmp_path / "draws.csv"
    assert main(["impute", str(run), "--data", str(table), "--out", str(draws), "--draws",
                 "2", "--n-samples", "20"]) == 0
    assert draws.read_text().splitlines()[0].startswith("draw,q0")
    assert len(draws.read_text().splitlines()) == 1 + 2 * X.shape[0]
    np.savetxt(tmp_path / "c.csv", X, delimiter=",", header=",".join(names), comments="")
    assert main(["fit", "pca", "--latent", "2", "--data", str(tmp_path / "c.csv"),
                 "--out", str(tmp_path / "pca")]) == 0
    one_line_exit_2(["impute", str(tmp_path / "pca"), "--data", str(table), "--out",
                     str(tmp_path / "p.csv")], capsys, "does not impute")
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(names) + "\n" + ",".join([""] * D) + "\n"
                   + "\n".join(",".join(r) for r in cells[:3]) + "\n")
    one_line_exit_2(["impute", str(run), "--data", str(bad), "--out", str(tmp_path / "b.csv")],
                    capsys, "no observed entry")
    assert not (tmp_path / "b.csv").exists()


# --------------------------------------------------------------------------- complete

def _own_gaussian(vae):
    """The linear-decoder VAE's own x ~ N(b, W W' + diag(v)) in the data's units, read
    from its decoder (an independent route to the densities complete() estimates)."""
    Z = np.vstack([np.zeros(L), np.eye(L)])
    means = vae.decode_mean(Z)
    b, W = means[0], (means[1:] - means[0]).T
    model = vae.model_
    raw = model.decoder.raw_variance.detach().double().numpy()
    v = (model.likelihood.variance(torch.as_tensor(raw)).numpy()
         * model.data_scale.double().numpy() ** 2)
    return W @ W.T + np.diag(v), b


def test_complete_scores_the_hidden_entries_by_the_gaussian_conditional(fitted):
    """On a linear-Gaussian VAE, log p(x_mis | x_obs) of the truth (an IS difference)
    matches the conditional density of the model's own Gaussian; every answer keeps the
    observed entries, the answers differ in the hidden ones, and each is scored by the
    model's log p(x)."""
    vae, X, _, _, _ = fitted
    C, b = _own_gaussian(vae)
    rows = X[:40]
    region = np.array([False, True, False, True, True, False])
    done = vae.complete(rows, region, 3, n_samples=2000, random_state=1)
    o, m = ~region, region
    full = stats.multivariate_normal(b, C).logpdf(rows)
    seen = stats.multivariate_normal(b[o], C[np.ix_(o, o)]).logpdf(rows[:, o])
    error = done.conditional_log_likelihood - (full - seen)
    assert np.abs(error).mean() < 0.05 and abs(error.mean()) < 0.03, error
    assert np.abs(done.observed_log_likelihood - seen).mean() < 0.05
    assert done.images.shape == (3, 40, D) and done.mask.shape == (40, D)
    np.testing.assert_array_equal(done.images[:, :, o], np.broadcast_to(rows[:, o],
                                                                        (3, 40, o.sum())))
    assert np.all(done.images[0][:, m] != done.images[1][:, m])
    again = vae.log_likelihood_samples(done.images.reshape(-1, D), n_importance=2000,
                                       random_state=1).reshape(3, 40)
    np.testing.assert_allclose(done.log_likelihood, again, rtol=1e-12)
    # the answers are draws from p(x_mis | x_obs): their mean and spread are the
    # conditional's (many answers of one row)
    many = vae.complete(rows[:1], region, 400, n_samples=400, random_state=2).images[:, 0]
    cond_mean = b[m] + C[np.ix_(m, o)] @ np.linalg.solve(C[np.ix_(o, o)], rows[0, o] - b[o])
    cond_cov = C[np.ix_(m, m)] - C[np.ix_(m, o)] @ np.linalg.solve(C[np.ix_(o, o)],
                                                                   C[np.ix_(o, m)])
    se = np.sqrt(np.diag(cond_cov) / 400)
    assert np.all(np.abs(many[:, m].mean(0) - cond_mean) < 5 * se + 0.05 * np.sqrt(
        np.diag(cond_cov)))
    np.testing.assert_allclose(many[:, m].std(0), np.sqrt(np.diag(cond_cov)), rtol=0.2)


def test_complete_regions_of_images_and_bad_regions(fitted):
    from elbokit.nn._impute import region_mask

    mask = region_mask("bottom", (2, 12), (4, 3))
    np.testing.assert_array_equal(mask[0].reshape(4, 3), np.repeat([[0], [0], [1], [1]], 3, 1))
    square = region_mask("square", (1, 64), None)[0].reshape(8, 8)
    assert square.sum() == 16 and square[2:6, 2:6].all()
    right = region_mask("right", (1, 2 * 6), (2, 3), channels=2)[0].reshape(2, 2, 3)
    np.testing.assert_array_equal(right[..., 0], 0)
    np.testing.assert_array_equal(right[..., 2], 1)  # both channels of a hidden pixel
    vae, X, _, _, _ = fitted
    for region, words in [("middle", "region must be one of"),
                          (np.ones(4, bool), "boolean of shape (6,)"),
                          ("bottom", "not square images"),
                          (np.zeros(D, bool), "row 0 of X has nothing hidden")]:
        with pytest.raises((ParameterError, DataError), match=words.replace("(", r"\(")
                           .replace(")", r"\)")):
            vae.complete(X[:2], region, 2)
    with pytest.raises(ParameterError, match="does not match rows of 6"):
        vae.complete(X[:2], "bottom", 2, image_shape=(2, 2))
    done = vae.complete(X[:2], "bottom", 2, image_shape=(2, 3), n_samples=50)
    np.testing.assert_array_equal(done.mask[0], [0, 0, 0, 1, 1, 1])


def test_a_fit_on_rows_with_nan_gets_the_missing_value_defaults():
    """config.MISSING_MIN_VARIANCE and MISSING_EPOCHS apply to a standardized fit on rows
    with NaN only: a complete fit, an unstandardized one, an explicit setting and a fit
    without early stopping keep their own."""
    from elbokit.nn import _vae_settings as settings_of
    from elbokit.nn.config import (MIN_VARIANCE, MISSING_EPOCHS, MISSING_MIN_VARIANCE,
                                   auto_epochs)

    vae = VAE(likelihood="gaussian")

    def floor(model, missing):
        return settings_of.architecture(model, D, missing=missing).min_variance

    def epochs(model, missing):
        return settings_of.training(model, likelihood="gaussian", n_rows=1797,
                                    missing=missing).epochs

    assert (floor(vae, True), floor(vae, False)) == (MISSING_MIN_VARIANCE, MIN_VARIANCE)
    assert floor(VAE(likelihood="gaussian", standardize=False), True) == MIN_VARIANCE
    assert floor(VAE(likelihood="gaussian", min_variance=0.01), True) == 0.01
    assert epochs(vae, False) == auto_epochs(1797 - 180, 128) < MISSING_EPOCHS
    assert epochs(vae, True) == MISSING_EPOCHS
    assert epochs(VAE(likelihood="gaussian", patience=0), True) == auto_epochs(1617, 128)
    assert epochs(VAE(likelihood="gaussian", epochs=7), True) == 7
