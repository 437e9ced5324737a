"""What the codes are good for: linear probes, the mutual information I(x; z) under q,
latent diagnostics with the collapse warning, latent arithmetic figure."""

import warnings

import numpy as np
import pytest

import elbokit
from elbokit import evaluate
from elbokit.exceptions import DataError, ParameterError, PosteriorCollapseWarning


@pytest.fixture(scope="module")
def pca(digits):
    return elbokit.PCA(10).fit(digits.train)


def test_probe_accuracy_is_far_above_chance_and_equals_sklearn_on_the_same_codes(pca, digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    result = evaluate.linear_probe(pca, digits.train, digits.train_labels, digits.test,
                                   digits.test_labels)
    assert set(result) == {"logistic", "svm"}
    assert set(result["logistic"]) == {"100", "1000", "all"}
    for accuracies in result.values():
        assert all(0.7 < a <= 1 for a in accuracies.values())  # chance is 0.1
    # the same numbers by hand: the codes are PCA's transform, the subset a seeded draw
    train, test = pca.transform(digits.train), pca.transform(digits.test)
    rows = np.random.default_rng(0).permutation(len(train))[:100]
    direct = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    direct.fit(train[rows], digits.train_labels[rows])
    assert result["logistic"]["100"] == direct.score(test, digits.test_labels)
    direct.fit(train, digits.train_labels)
    assert result["logistic"]["all"] == direct.score(test, digits.test_labels)


def test_probe_on_random_codes_is_near_chance(digits):
    """A model whose codes ignore x: the probe must not find the classes."""
    class Noise:
        def transform(self, X):
            return np.random.default_rng(len(X)).standard_normal((len(X), 5))

    result = evaluate.linear_probe(Noise(), digits.train, digits.train_labels, digits.test,
                                   digits.test_labels, n_labels=(None,),
                                   classifiers=("logistic",))
    assert result["logistic"]["all"] < 0.2


def test_probe_bad_input(pca, digits):
    with pytest.raises(DataError, match="need class labels"):
        evaluate.linear_probe(pca, digits.train, None, digits.test, digits.test_labels)
    with pytest.raises(DataError, match="one label per row"):
        evaluate.linear_probe(pca, digits.train, digits.train_labels[:5], digits.test,
                              digits.test_labels)
    with pytest.raises(ParameterError, match="classifier must be one of"):
        evaluate.linear_probe(pca, digits.train, digits.train_labels, digits.test,
                              digits.test_labels, classifiers=("forest",))
    with pytest.raises(DataError, match="one class"):
        evaluate.linear_probe(pca, digits.train, np.zeros(len(digits.train), int),
                              digits.test, digits.test_labels, n_labels=(None,))
    huge = evaluate.linear_probe(pca, digits.train, digits.train_labels, digits.test,
                                 digits.test_labels, n_labels=(10**6,),
                                 classifiers=("logistic",))
    assert huge == {"logistic": {str(10**6): None}}


def test_mutual_information_matches_the_closed_form_of_ppca():
    """PPCA's posterior is N(A (x - mu), G) with G diagonal and the same for every x; for
    Gaussian data the aggregate posterior is N(0, Cov(A x) + G), so
    I(x; z) = 1/2 log det(Cov(A x) + G) - 1/2 log det G."""
    rng = np.random.default_rng(0)
    W = 2 * rng.standard_normal((6, 2))
    X = rng.standard_normal((3000, 2)) @ W.T + 0.5 * rng.standard_normal((3000, 6))
    model = elbokit.PPCA(2).fit(X)
    mean, var = model.posterior_moments(X)
    S = np.cov(mean, rowvar=False, bias=True) + np.diag(var[0])
    closed = 0.5 * np.linalg.slogdet(S)[1] - 0.5 * np.sum(np.log(var[0]))
    estimate = evaluate.mutual_information(model, X, n_points=3000)
    assert closed > 3  # a case where the estimate is informative
    assert estimate == pytest.approx(closed, abs=0.1)
    assert estimate <= np.log(3000)


def test_mutual_information_is_between_zero_and_the_kl_on_a_trained_vae(digits):
    pytest.importorskip("torch")
    vae = elbokit.VAE(4, likelihood="gaussian", hidden=(64,), epochs=3, lr=3e-3,
                      progress=False).fit(digits.train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorCollapseWarning)
        diag = evaluate.latent_diagnostics(vae, digits.test)
    assert 0 < diag["mutual_information"] <= diag["kl"]
    assert diag["marginal_kl"] == pytest.approx(diag["kl"] - diag["mutual_information"])
    assert diag["kl"] == pytest.approx(sum(diag["kl_per_dimension"]))
    assert diag["latent_dim"] == 4 and 0 <= diag["active_units"] <= 4


def test_collapse_warning_when_most_units_are_inactive(digits):
    """PPCA with more latents than the data support is fine; a model whose posterior
    equals the prior for most units warns."""
    class Collapsed:
        kind = "collapsed"

        def posterior_moments(self, X):
            n = len(X)
            mean = np.zeros((n, 4))
            mean[:, 0] = np.asarray(X)[:, 20]  # one informative unit
            var = np.ones((n, 4))
            var[:, 0] = 0.01
            return mean, var

        def kl_to_prior(self, X, *, per_dimension=False, **_):  # q Gaussian, p = N(0, I)
            mean, var = self.posterior_moments(X)
            kl = 0.5 * (var + mean**2 - 1.0 - np.log(var))
            return kl if per_dimension else kl.sum(axis=1)

    from elbokit.protocol import _MEMBERS

    for name in _MEMBERS:  # the members these diagnostics do not read
        setattr(Collapsed, name, getattr(Collapsed, name, None))
    with pytest.warns(PosteriorCollapseWarning, match="1 of 4 latent units are active"):
        diag = evaluate.latent_diagnostics(Collapsed(), digits.test)
    assert diag["active_units"] == 1
    # inactive units have q(z_j|x) = p(z_j): they add nothing to I(x; z) nor the KL
    assert diag["kl_per_dimension"][1:] == [0.0, 0.0, 0.0]
    assert 0 <= diag["mutual_information"] <= diag["kl"]


def test_report_shows_codes_latent_arithmetic_and_the_ae_vae_figure(tmp_path):
    pytest.importorskip("torch")
    from elbokit.cli import main
    from elbokit.report import write_report

    fast = ["--latent", "3", "--hidden", "32", "--epochs", "2"]
    assert main(["fit", "ae", *fast, "--out", str(tmp_path / "ae")]) == 0
    assert main(["fit", "vae", *fast, "--no-progress", "--out", str(tmp_path / "vae")]) == 0
    page = write_report(tmp_path).read_text()
    assert page.count("linear-probe test accuracy") == 2
    assert page.count("I(x; z) under q") == 1  # the VAE's; the autoencoder's q has no spread
    assert "autoencoder vs VAE" in page
    assert (tmp_path / "figures" / "ae_vs_vae.png").read_bytes()[:4] == b"\x89PNG"
    for run in ("ae", "vae"):
        assert (tmp_path / run / "figures" / "latent_arithmetic.png").is_file()
    assert not (tmp_path / "ae" / "figures" / "kl_per_dim.png").exists()


def test_latent_arithmetic_moves_codes_by_the_class_difference(pca, digits, tmp_path):
    """For PCA the decoder is affine, so the decoded shift is W delta for every image."""
    from elbokit import plots

    calls = []
    original = pca.decode_mean
    pca.decode_mean = lambda Z: calls.append(np.array(Z)) or original(Z)  # the protocol's
    try:
        a, b = plots.latent_arithmetic_figure(pca, digits.train, digits.train_labels,
                                              digits.test, digits.test_labels, (8, 8),
                                              tmp_path / "arith.png", a=3, b=5, n=4)
    finally:
        del pca.decode_mean
    assert (a, b) == (3, 5) and (tmp_path / "arith.png").is_file()
    codes = plots.encode_mean(pca, digits.train)
    delta = codes[digits.train_labels == 3].mean(0) - codes[digits.train_labels == 5].mean(0)
    np.testing.assert_allclose(calls[1] - calls[0], np.broadcast_to(delta, calls[0].shape),
                               atol=1e-10)
    with pytest.raises(DataError, match="no rows"):
        plots.latent_arithmetic_figure(pca, digits.train, digits.train_labels, digits.test,
                                       digits.test_labels, (8, 8), tmp_path / "x.png", a=3,
                                       b=42)
