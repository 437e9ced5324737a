"""The count likelihoods ("poisson", "nb", "zinb"): each log-pmf matches scipy.stats and
sums to 1 over the counts, the ZINB without zero inflation is the NB and the NB of a huge
inverse dispersion the Poisson (in float32 too), gradients stay finite at the extremes,
the rates are shares of each row's observed total, and a VAE fitted to a small count
table has ELBO <= its importance-sampled log p(x), conditions on a batch, saves and
loads, and is what ``likelihood="auto"`` picks for a table of counts."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import stats  # noqa: E402

from elbokit.exceptions import DataError, ParameterError  # noqa: E402
from elbokit.nn import VAE, _math  # noqa: E402
from elbokit.nn.likelihoods import (NegativeBinomial, Poisson, ZeroInflatedNB,  # noqa: E402
                                    check_data, density_kind, resolve)


def t64(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def test_poisson_and_nb_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 400, size=(5, 40)).astype(np.float64)
    x[:, :5] = 0
    mean = np.exp(rng.uniform(-4, 6, size=(3, 5, 40)))  # (S, B, d) against x (B, d)
    theta = np.exp(rng.uniform(-3, 5, size=40))  # one per feature
    got = _math.poisson_log_prob(t64(x), t64(np.log(mean))).numpy()
    np.testing.assert_allclose(got, stats.poisson.logpmf(x, mean), rtol=1e-10, atol=1e-10)
    got = _math.nb_log_prob(t64(x), t64(np.log(mean)), t64(np.log(theta))).numpy()
    want = stats.nbinom.logpmf(x, theta, theta / (theta + mean))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def _zinb(x, log_mean, log_theta, logit):
    return _math.zinb_log_prob(t64(x), t64(log_mean), t64(log_theta), t64(logit)).numpy()


@pytest.mark.parametrize("mean, theta, logit", [(0.02, 0.5, -1.0), (3.0, 2.0, 0.5),
                                                (150.0, 30.0, 2.0), (40.0, 1e4, -4.0)])
def test_each_pmf_sums_to_one_over_the_counts(mean, theta, logit):
    x = np.arange(6000, dtype=np.float64)
    lm, lt = np.full_like(x, math.log(mean)), np.full_like(x, math.log(theta))
    for log_p in (_math.poisson_log_prob(t64(x), t64(lm)).numpy(),
                  _math.nb_log_prob(t64(x), t64(lm), t64(lt)).numpy(),
                  _zinb(x, lm, lt, np.full_like(x, logit))):
        assert np.all(log_p <= 0)
        assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-9)
    # the ZINB's zero holds the inflation pi = sigmoid(logit) on top of the NB's zero
    pi = 1 / (1 + math.exp(-logit))
    nb0 = (theta / (theta + mean)) ** theta
    assert math.exp(_zinb(x[:1], lm[:1], lt[:1], np.full(1, logit))[0]) == \
        pytest.approx(pi + (1 - pi) * nb0, rel=1e-12)


def test_zinb_without_inflation_is_the_nb():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 50, size=(4, 30)).astype(np.float64)
    log_mean, log_theta = rng.normal(1, 2, size=(4, 30)), rng.normal(0, 1, size=30)
    nb = _math.nb_log_prob(t64(x), t64(log_mean), t64(log_theta)).numpy()
    np.testing.assert_allclose(_zinb(x, log_mean, log_theta, np.full((4, 30), -60.0)), nb,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 2e-3)])
@pytest.mark.parametrize("log_theta", [12.0, 16.0])
def test_nb_of_huge_inverse_dispersion_is_the_poisson(dtype, tol, log_theta):
    rng = np.random.default_rng(2)
    x = torch.as_tensor(rng.integers(0, 300, size=(6, 50)), dtype=dtype)
    log_mean = torch.as_tensor(rng.uniform(-3, 6, size=(6, 50)), dtype=dtype)
    poisson = _math.poisson_log_prob(x, log_mean)
    nb = _math.nb_log_prob(x, log_mean, torch.full((50,), log_theta, dtype=dtype))
    assert nb.dtype == dtype
    # log NB - log Poisson = ((x - mu)^2 - x) / (2 theta) + O(theta^-2); in float32,
    # lgamma(x + theta) - lgamma(theta) taken as it is would be off by units here
    first_order = ((x - log_mean.exp()).square() - x) / (2 * math.exp(log_theta))
    assert (nb - poisson - first_order).abs().max().item() < tol + 0.05 * \
        first_order.abs().max().item()


def test_gradients_finite_at_the_extremes():
    x = torch.tensor([[0.0, 1.0, 5e4, 0.0], [3.0, 0.0, 0.0, 1e3]])
    logits = torch.tensor([[-40.0, 0.0, 30.0, 5.0], [40.0, -30.0, 0.0, 0.0]],
                          requires_grad=True)
    dropout = torch.tensor([[-50.0, 50.0, 0.0, 20.0], [0.0, -20.0, 50.0, -50.0]],
                           requires_grad=True)
    for likelihood, params in [(Poisson(4), (logits,)), (NegativeBinomial(4), (logits,)),
                               (ZeroInflatedNB(4), (logits, dropout))]:
        for log_theta in (-30.0, 0.0, 40.0):  # read within LOG_THETA_RANGE
            if hasattr(likelihood, "log_theta"):
                likelihood.log_theta.data.fill_(log_theta)
            log_p = likelihood.log_prob(x, params)
            grads = torch.autograd.grad(log_p.sum(), [*params, *likelihood.parameters()],
                                        allow_unused=True)
            assert torch.isfinite(log_p).all()
            assert all(g is None or torch.isfinite(g).all() for g in grads)
    params = (t64(np.random.default_rng(3).normal(size=(2, 4))).requires_grad_(),
              t64(np.zeros((2, 4))).requires_grad_())
    theta = t64(np.array([0.3, 1.0, 2.0, 5.0])).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda lm, lt, g: _math.zinb_log_prob(t64([[0, 2, 7, 0], [1, 0, 3, 9]]), lm, lt, g),
        (params[0], theta, params[1]))


def test_rates_are_shares_of_each_rows_total():
    x = torch.tensor([[3.0, 0.0, 7.0], [30.0, 50.0, 20.0], [0.0, 0.0, 0.0]])
    logits = torch.tensor([[0.0, 1.0, -1.0]]).expand(3, 3)
    shares = torch.softmax(logits[0], 0)
    want = stats.poisson.logpmf(x.numpy(), (x.sum(1, keepdim=True) * shares).numpy())
    got = Poisson(3).log_prob(x, (logits,)).numpy()
    np.testing.assert_allclose(got[:2], want.sum(1)[:2], rtol=1e-5)
    assert got[2] == pytest.approx(0.0, abs=1e-5)  # a row of zeros: l = 0, p(0) = 1


def test_auto_picks_nb_for_count_tables_only_and_gaussian_for_other_tables():
    from sklearn.datasets import load_digits, load_wine

    rng = np.random.default_rng(0)
    assert resolve("auto", rng.negative_binomial(2, 0.1, (200, 30)).astype(float)) == "nb"
    assert resolve("auto", rng.poisson(0.5, (200, 30)).astype(float)) == "nb"
    not_counts = {"wine (floats)": load_wine().data,
                  "digits' raw 0-16 pixels (a bounded scale)": load_digits().data,
                  "Likert answers 1-5 (no zeros)": rng.integers(1, 6, (200, 10)),
                  "answers 0-4 (a bounded scale)": rng.integers(0, 5, (200, 10))}
    for what, X in not_counts.items():
        assert resolve("auto", np.asarray(X, dtype=float)) == "gaussian", what


def test_data_checks_and_auto():
    counts = np.array([[0, 3, 12], [5, 0, 1]], dtype=np.float32)
    assert resolve("auto", counts) == "nb"
    assert resolve("auto", (counts > 0).astype(np.float32)) == "bernoulli"
    assert density_kind("nb", counts) == "discrete"
    for name in ("poisson", "nb", "zinb"):
        check_data(name, counts)
        for bad in (counts + 0.5, counts - 1, np.log1p(counts)):
            with pytest.raises(DataError, match="not non-negative integers"):
                check_data(name, bad)
    with pytest.raises(ParameterError, match="raw counts"):
        VAE(2, likelihood="nb", standardize=True, progress=False).fit(counts)


@pytest.fixture(scope="module")
def table():
    """400 rows x 30 counts: three types' profiles, log-normal library sizes, NB noise
    (theta 2), and a batch that doubles the first ten features' share."""
    rng = np.random.default_rng(0)
    n, d = 400, 30
    types, batch = rng.integers(0, 3, n), rng.integers(0, 2, n)
    profiles = rng.dirichlet(np.full(d, 0.5), size=3)[types]
    profiles[:, :10] *= 1 + batch[:, None]
    profiles /= profiles.sum(1, keepdims=True)
    mean = profiles * rng.lognormal(math.log(300), 0.5, n)[:, None]
    X = rng.negative_binomial(2.0, 2.0 / (2.0 + mean)).astype(np.float32)
    return X, types, batch


FAST = dict(latent_dim=3, hidden=(32,), epochs=40, progress=False, seed=0)


@pytest.mark.parametrize("likelihood", ["poisson", "nb", "zinb"])
def test_vae_fits_a_count_table_with_elbo_below_log_p(table, likelihood):
    X, _, _ = table
    vae = VAE(likelihood=likelihood, **FAST).fit(X[:300])
    elbo = vae.elbo(X[300:], n_samples=1)
    log_p = vae.log_likelihood_samples(X[300:], n_importance=300)
    assert np.isfinite(elbo).all() and np.all(log_p <= 0)
    assert log_p.mean() >= elbo.mean()
    totals = vae.sample(4, random_state=0).sum(1)  # at the training rows' median library
    library = float(vae.model_.likelihood.library_size)  # (of the rows fit trained on)
    assert library == pytest.approx(np.median(X[:300].sum(1)), rel=0.05)
    if likelihood == "zinb":  # (1 - pi) of it
        assert np.all((totals > 0) & (totals < library))
    else:
        np.testing.assert_allclose(totals, library, rtol=1e-4)
        # reconstruct: each row at its own total
        np.testing.assert_allclose(vae.reconstruct(X[300:]).sum(1), X[300:].sum(1), rtol=1e-4)


def test_nb_beats_poisson_on_overdispersed_counts_and_auto_picks_it(table):
    X, types, _ = table
    scores = {name: VAE(likelihood=name, **FAST).fit(X[:300]).score(X[300:])
              for name in ("poisson", "auto")}
    assert scores["auto"] > scores["poisson"] + 5  # nats per row, held out
    vae = VAE(likelihood="auto", **FAST).fit(X[:300])
    assert vae.architecture_.likelihood == "nb"
    theta = torch.exp(vae.model_.likelihood.log_theta).detach().numpy()
    assert 0.5 < np.median(theta) < 8  # the table's theta is 2
    from elbokit.evaluate import linear_probe
    accuracy = linear_probe(vae, X[:300], types[:300], X[300:], types[300:],
                            n_labels=(None,), classifiers=("logistic",))["logistic"]["all"]
    assert accuracy > 0.8


def test_batch_as_covariate_save_and_load(table, tmp_path):
    X, _, batch = table
    onehot = np.eye(2, dtype=np.float32)[batch]
    vae = VAE(likelihood="zinb", conditional=True, **FAST).fit(X[:300], onehot[:300])
    # p(x|z, y): batch 1 raises the first ten features' share (by 1.5 here), at any z
    z = vae.encode(X[300:], y=onehot[300:])
    as_batch = lambda b: np.repeat(np.eye(2, dtype=np.float32)[[b]], len(z), 0)
    first = lambda b: vae.decode(z, y=as_batch(b))[:, :10].sum(1)
    assert np.median(first(1) / first(0)) > 1.1
    vae.save(tmp_path / "m")
    again = VAE.load(tmp_path / "m")
    np.testing.assert_array_equal(again.score_samples(X[300:], onehot[300:]),
                                  vae.score_samples(X[300:], onehot[300:]))
    np.testing.assert_array_equal(again.model_.likelihood.log_theta.detach().numpy(),
                                  vae.model_.likelihood.log_theta.detach().numpy())
    with pytest.raises(DataError, match="not non-negative integers"):
        again.score(np.log1p(X[300:]), onehot[300:])


def test_linear_decoder_starts_at_the_mean_shares(table):
    X, _, _ = table
    vae = VAE(likelihood="nb", decoder="linear", latent_dim=2, epochs=1, lr=1e-9,
              progress=False).fit(X[:300])
    shares = X[:300].sum(0) / X[:300].sum()
    decoded = vae.decode(np.zeros((1, 2), dtype=np.float32))[0]
    # (of the rows fit trained on: all 300, or 90% where fit holds some out for validation)
    np.testing.assert_allclose(decoded / decoded.sum(), shares, rtol=0.15, atol=1e-4)


def test_cli_fits_a_count_csv_with_auto_and_evaluates_it(tmp_path, capsys):
    from elbokit.cli import main

    X = np.random.default_rng(0).negative_binomial(2, 0.1, size=(120, 8))
    path = tmp_path / "counts.csv"
    np.savetxt(path, X, fmt="%d", delimiter=",", comments="",
               header=",".join(f"gene{i}" for i in range(8)))
    out = tmp_path / "run"
    assert main(["fit", "vae", "--data", str(path), "--latent", "2", "--hidden", "8",
                 "--epochs", "2", "--no-progress", "--out", str(out)]) == 0
    from elbokit.nn import load_vae
    assert load_vae(out).architecture_.likelihood == "nb"
    assert main(["evaluate", str(out), "--data", str(path)]) == 0
    assert main(["fit", "vae", "--data", str(path), "--likelihood", "zinb", "--standardize",
                 "--epochs", "1", "--out", str(tmp_path / "x")]) == 2
    assert "raw counts" in capsys.readouterr().err
