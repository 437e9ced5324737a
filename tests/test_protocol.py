"""The model protocol and the registry of model kinds: every model implements the
protocol with the right numbers, every kind is declared once, and a new model class
that implements the protocol and registers gets evaluate, plots, report and compare
support with no other change."""

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator

import elbokit
from elbokit import PCA, PPCA, FactorAnalysis, LinearAutoencoder, evaluate, kinds, plots
from elbokit.exceptions import ParameterError
from elbokit.protocol import LatentVariableModel, as_model

LINEAR = [PCA, PPCA, FactorAnalysis, LinearAutoencoder, elbokit.VBPCA]


@pytest.fixture(scope="module")
def wine():
    return elbokit.data.load("wine")


# --------------------------------------------------------------------------- the kinds

def test_every_kind_is_declared_once_and_names_its_class():
    names = kinds.kind_names(presets=False)
    assert names == ("pca", "ppca", "fa", "vbpca", "linear-ae", "vae", "ae", "semisupervised-vae")
    for name in ("pca", "ppca", "fa", "vbpca", "linear-ae"):
        cls = kinds.get_kind(name).resolve()
        assert cls.kind == name
        assert kinds.kind_of(kinds.build_model(name, 2)) == name
    # the derived views agree with the registry
    from elbokit.cli.compare import COMPARE_MODELS
    from elbokit.models import classical_registry
    from elbokit.runs import CLASSICAL_KINDS

    assert CLASSICAL_KINDS == ("pca", "ppca", "fa", "linear-ae")
    assert set(COMPARE_MODELS) == set(names) | {"vae-linear"}
    assert {k: c.kind for k, c in classical_registry().items()} == {
        k: k for k in ("pca", "ppca", "fa", "vbpca", "linear-ae")}


def test_builders_pass_seed_and_options_as_the_cli_did():
    assert kinds.build_model("ppca", 3, seed=7, solver="em").get_params()["random_state"] == 7
    assert kinds.build_model("ppca", 3, solver="em").solver == "em"
    assert kinds.build_model("pca", 4, whiten=True).get_params() == PCA(4, whiten=True).get_params()


def test_unknown_kind_and_foreign_model_are_one_line_errors():
    with pytest.raises(ParameterError, match="unknown model 'nope'; choose from"):
        kinds.build_model("nope", 2)
    with pytest.raises(ParameterError, match="not an elbokit model"):
        kinds.kind_of(object())

    class Sub(PCA):  # inherits kind "pca" but is not the registered class
        pass

    with pytest.raises(ParameterError, match="cannot save a Sub"):
        kinds.kind_of(Sub(2))
    with pytest.raises(ParameterError, match="lacks .*posterior_moments"):
        evaluate.posterior_moments(object(), np.zeros((2, 2)))


# --------------------------------------------------------------------------- linear models

@pytest.mark.parametrize("cls", LINEAR, ids=lambda c: c.__name__)
def test_linear_models_implement_the_protocol_exactly(cls, wine):
    X = wine.train
    model = cls(3).fit(X) if cls is not elbokit.VBPCA else cls(3, random_state=0).fit(X)
    assert isinstance(model, LatentVariableModel) and as_model(model) is model
    assert model.exact_log_likelihood and model.linear_gaussian
    W, psi = model._loadings(), model._noise_diag()
    L = W.shape[1]
    # p(z|x) = N(G W' Psi^-1 (x - mu), G), G = (I + W' Psi^-1 W)^-1 (closed form)
    G = np.linalg.inv(np.eye(L) + W.T @ (W / psi[:, None]))
    mean, var = model.posterior_moments(X[:20])
    np.testing.assert_allclose(mean, (X[:20] - model.mean_) @ (W / psi[:, None]) @ G,
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var, np.broadcast_to(np.diag(G), (20, L)), rtol=1e-8)
    Z = np.random.default_rng(0).standard_normal((4, L))
    np.testing.assert_allclose(model.decode_mean(Z), Z @ W.T + model.mean_, rtol=1e-10)
    np.testing.assert_allclose(model.log_likelihood_samples(X[:5]), model.score_samples(X[:5]))
    np.testing.assert_allclose(model.elbo_samples(X[:5]), model.score_samples(X[:5]))
    np.testing.assert_allclose(model.reconstruct(X[:5]),
                               model.inverse_transform(model.transform(X[:5])))
    model.check_fit(X)  # never raises for an exact model
    trace = getattr(model, "loglike_", None)  # the EM models' log-likelihood per iteration
    assert model.training_curve() == (list(trace) if trace else None)
    if cls is FactorAnalysis:
        assert len(model.training_curve()) > 1


def test_posterior_samples_have_the_posterior_moments(wine):
    model = FactorAnalysis(2).fit(wine.train)
    draws = model.posterior_samples(wine.test[:3], 20000, random_state=1)  # (3, k, L)
    mean, var = model.posterior_moments(wine.test[:3])
    assert draws.shape == (3, 20000, 2)
    se = np.sqrt(var / 20000)
    assert np.all(np.abs(draws.mean(axis=1) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(draws[0].T), model.posterior_covariance(), rtol=0.05,
                               atol=0.01 * np.max(var))


def test_posterior_of_a_row_with_missing_entries_conditions_on_the_observed_ones(wine):
    model = FactorAnalysis(2).fit(wine.train)
    x = wine.test[:1].copy()
    x[0, [1, 4]] = np.nan
    mean, var = model.posterior_moments(x)
    np.testing.assert_allclose(mean, model.transform(x), rtol=1e-10)
    observed = ~np.isnan(x[0])
    W, psi = model._loadings()[observed], model._noise_diag()[observed]
    G = np.linalg.inv(np.eye(2) + W.T @ (W / psi[:, None]))
    np.testing.assert_allclose(var[0], np.diag(G), rtol=1e-8)
    assert np.all(np.isfinite(plots.encode_mean(model, x)))


# --------------------------------------------------------------------------- the VAE

def test_vae_implements_the_protocol(digits):
    pytest.importorskip("torch")
    from elbokit.nn import VAE

    model = VAE(2, hidden=(16,), epochs=1, seed=0, progress=False).fit(digits.train[:200])
    X = digits.test[:6]
    assert isinstance(model, LatentVariableModel) and kinds.kind_of(model) == "vae"
    assert not model.exact_log_likelihood and not model.linear_gaussian
    assert model.has_density and not model.conditional and model.accepts_missing
    assert model.samplers == ("prior",) and "checkpoint_dir" in model.fit_options
    assert model.latent_dim_ == 2 and model.n_iter_ == 1
    assert model.binarize == model.get_params()["binarize"]
    np.testing.assert_allclose(model.prior_moments()[1], np.ones(2))
    mean, var = model.posterior_moments(X)
    np.testing.assert_allclose(mean, model.encode(X), rtol=1e-6)
    np.testing.assert_allclose(var, model.encode(X, n_samples=1)[1] ** 2, rtol=1e-6)
    assert model.posterior_samples(X, 4).shape == (6, 4, 2)
    np.testing.assert_allclose(model.decode_mean(mean), model.reconstruct(X), rtol=1e-6)
    ll = model.log_likelihood_samples(X, n_importance=50)
    # the importance-sampled log p(x) is at least the single-sample bound on average
    assert ll.shape == (6,) and ll.mean() >= model.elbo_samples(X, n_samples=50).mean() - 1.0


# --------------------------------------------------------------------------- a new kind

class IsotropicModel(BaseEstimator):
    """A model written from scratch against the protocol alone: PPCA by its closed
    form, x = W z + mu + noise, noise ~ N(0, s2 I); not a subclass of any elbokit class."""

    kind = "test-isotropic"
    exact_log_likelihood = True
    has_density = True
    linear_gaussian = False  # no loading_matrix() / noise_variances() for the loadings figures
    conditional = False
    accepts_missing = False
    fit_options = frozenset()
    binarize = "none"
    samplers = ("prior",)
    n_iter_ = None

    def __init__(self, n_components=2):
        self.n_components = n_components

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        eigvals, eigvecs = np.linalg.eigh(np.cov(X.T, bias=True))
        eigvals, eigvecs = eigvals[::-1], eigvecs[:, ::-1]
        L = self.n_components
        self.n_components_ = L  # the fitted attributes elbokit's estimator files require
        self.noise_variance_ = float(max(eigvals[L:].mean(), 1e-6))
        self.components_ = (eigvecs[:, :L] * np.sqrt(np.maximum(
            eigvals[:L] - self.noise_variance_, 0.0))).T  # W', (L, d)
        return self

    @property
    def W_(self):  # (d, L)
        return self.components_.T

    @property
    def s2_(self):
        return self.noise_variance_

    def _G(self):
        return np.linalg.inv(np.eye(self.W_.shape[1]) + self.W_.T @ self.W_ / self.s2_)

    @property
    def latent_dim_(self):
        return self.n_components_

    def posterior_moments(self, X):
        X = np.asarray(X, dtype=np.float64)
        mean = (X - self.mean_) @ self.W_ @ self._G() / self.s2_
        return mean, np.tile(np.diag(self._G()), (X.shape[0], 1))

    def transform(self, X):
        return self.posterior_moments(X)[0]

    def prior_moments(self):
        return np.zeros(self.n_components_), np.ones(self.n_components_)

    def prior_log_prob(self, Z):
        Z = np.asarray(Z, dtype=np.float64)
        return -0.5 * np.sum(Z**2 + np.log(2 * np.pi), axis=1)

    def kl_to_prior(self, X, *, per_dimension=False, n_samples=256, random_state=0, y=None):
        mean, var = self.posterior_moments(X)
        kl = 0.5 * (var + mean**2 - 1.0 - np.log(var))  # G is diagonal: W's columns are orthogonal
        return kl if per_dimension else kl.sum(axis=1)

    def posterior_samples(self, X, n_samples, random_state=0):
        mean, _ = self.posterior_moments(X)
        eps = np.random.default_rng(random_state).standard_normal(
            (mean.shape[0], n_samples, mean.shape[1]))
        return mean[:, None, :] + eps @ np.linalg.cholesky(self._G()).T

    def decode_mean(self, Z):
        return np.asarray(Z, dtype=np.float64) @ self.W_.T + self.mean_

    def reconstruct(self, X):
        return self.decode_mean(self.posterior_moments(X)[0])

    def sample(self, n_samples=1, random_state=None, *, sampler="prior"):
        rng = np.random.default_rng(random_state)
        z = rng.standard_normal((n_samples, self.W_.shape[1]))
        return self.decode_mean(z) + np.sqrt(self.s2_) * rng.standard_normal(
            (n_samples, self.n_features_in_))

    def score_samples(self, X):
        C = self.W_ @ self.W_.T + self.s2_ * np.eye(self.n_features_in_)
        Xc = np.asarray(X, dtype=np.float64) - self.mean_
        _, logdet = np.linalg.slogdet(C)
        quad = np.sum(Xc * np.linalg.solve(C, Xc.T).T, axis=1)
        return -0.5 * (self.n_features_in_ * np.log(2 * np.pi) + logdet + quad)

    def log_likelihood_samples(self, X, *, n_importance=5000, batch_size=None,
                               random_state=0, progress=None):
        return self.score_samples(X)

    def elbo_samples(self, X, *, n_samples=1, random_state=0):
        return self.score_samples(X)

    def check_fit(self, X, what="test", *, reference=None):
        pass

    def training_curve(self):
        return None


@pytest.fixture
def new_kind():
    kind = kinds.register_kind(kinds.ModelKind(
        IsotropicModel.kind, IsotropicModel,
        build=lambda latent, **_: IsotropicModel(latent)))
    yield kind
    kinds.unregister_kind(kind.name)


def test_a_new_kind_gets_evaluate_support(new_kind, digits):
    model = IsotropicModel(5).fit(digits.train)
    reference = PPCA(5).fit(digits.train)  # the same model, fitted by elbokit
    ll = evaluate.log_likelihood(model, digits.test)
    assert ll.exact and ll.n_importance is None
    np.testing.assert_allclose(ll.values, reference.score_samples(digits.test), rtol=1e-6)
    np.testing.assert_allclose(evaluate.elbo(model, digits.test), ll.values)
    mean, var = evaluate.posterior_moments(model, digits.test)
    ref_mean, ref_var = reference.posterior_moments(digits.test)
    np.testing.assert_allclose(np.abs(mean), np.abs(ref_mean), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(var, ref_var, rtol=1e-5)
    np.testing.assert_allclose(evaluate.kl_per_dimension(model, digits.test),
                               evaluate.kl_per_dimension(reference, digits.test), rtol=1e-4)
    assert evaluate.active_units(model, digits.test)[0] == 5
    np.testing.assert_allclose(evaluate.reconstruction_error(model, digits.test),
                               np.mean(np.sum((digits.test - model.reconstruct(digits.test))
                                              ** 2, axis=1)))


def test_a_new_kind_gets_plots_support(new_kind, digits, wine, tmp_path):
    model = IsotropicModel(2).fit(digits.train)
    written = plots.all_figures(model, digits, tmp_path / "images")
    assert set(written) == {"samples", "reconstructions", "uncertainty", "traversals",
                            "manifold", "latent", "kl_per_dim", "latent_arithmetic"}
    table = IsotropicModel(2).fit(wine.train)
    figures = plots.table_figures(table, wine, tmp_path / "table")
    assert set(figures) == {"reconstruction_error", "latent", "kl_per_dim"}
    for path in list(written.values()) + [f.path for f in figures.values()]:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_new_kind_gets_saving_report_and_compare_support(new_kind, digits, tmp_path,
                                                           monkeypatch):
    from typer.testing import CliRunner

    from elbokit.cli import app
    from elbokit.models import load_model
    from elbokit.report import write_report
    from elbokit.runs import fit_and_record

    model = kinds.build_model(IsotropicModel.kind, 3)
    metrics = fit_and_record(model, digits, tmp_path / "runs" / "iso", spec="digits")
    loaded = load_model(tmp_path / "runs" / "iso")
    assert type(loaded) is IsotropicModel
    np.testing.assert_allclose(loaded.score_samples(digits.test).mean(),
                               metrics["test_loglike"], rtol=1e-12)
    page = write_report(tmp_path / "runs").read_text()
    assert f"iso ({IsotropicModel.kind})" in page
    assert page.count("data:image/png;base64,") == 7  # samples ... latent arithmetic, no manifold

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["compare", "--models", f"pca,{IsotropicModel.kind}",
                                      "--latent", "3", "--out", "cmp"])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())["models"]
    # the same model as PPCA's closed form: nearly PCA's log p(x), exact, all units active
    assert table[IsotropicModel.kind]["method"] == "exact"
    assert table[IsotropicModel.kind]["active_units"] == 3
    np.testing.assert_allclose(table[IsotropicModel.kind]["test_loglike"],
                               PPCA(3).fit(digits.train).score(digits.test), rtol=1e-6)


# --------------------------------------------------------------------------- names

def test_the_estimators_and_the_network_have_names_that_say_what_they_are():
    pytest.importorskip("torch")
    from elbokit import nn
    from elbokit.nn import objectives

    # the names the training config records, and the slides named in the docstrings
    assert objectives.get_estimator("a").__class__ is nn.MonteCarloELBO
    assert objectives.get_estimator("b").__class__ is nn.AnalyticKLELBO
    assert "L_A" in nn.MonteCarloELBO.__doc__ and "Computing the loss" in nn.MonteCarloELBO.__doc__
    assert "L_B" in nn.AnalyticKLELBO.__doc__ and "lower variance" in nn.AnalyticKLELBO.__doc__


# --------------------------------------------------------------------------- the prior

def test_linear_kl_to_prior_is_the_closed_form_of_the_exact_posterior(wine):
    model = FactorAnalysis(3).fit(wine.train)
    X = wine.test[:10]
    W, psi = model.loading_matrix(), model.noise_variances()
    G = np.linalg.inv(np.eye(3) + W.T @ (W / psi[:, None]))
    mean, var = model.posterior_moments(X)
    # KL(N(m, G) || N(0, I)) = 1/2 (tr G + m'm - L - log det G)
    expected = 0.5 * (np.trace(G) + np.sum(mean**2, axis=1) - 3 - np.linalg.slogdet(G)[1])
    np.testing.assert_allclose(model.kl_to_prior(X), expected, rtol=1e-10)
    np.testing.assert_allclose(model.kl_to_prior(X, per_dimension=True),
                               0.5 * (var + mean**2 - 1 - np.log(var)), rtol=1e-10)
    np.testing.assert_allclose(model.prior_log_prob(mean),
                               -0.5 * np.sum(mean**2 + np.log(2 * np.pi), axis=1))
    # a row with a missing entry: the posterior given its observed entries
    X_missing = X.copy()
    X_missing[0, 0] = np.nan
    kl = model.kl_to_prior(X_missing)
    assert np.isfinite(kl).all() and kl[0] != pytest.approx(expected[0])
    np.testing.assert_allclose(kl[1:], expected[1:], rtol=1e-10)


def test_the_kl_figures_and_report_use_the_vaes_own_prior(digits):
    """The fix: for a mixture prior the KL per dimension is to the prior's marginal,
    no longer to N(0, 1) computed from q's moments."""
    pytest.importorskip("torch")
    from elbokit.nn import VAE

    model = VAE(2, hidden=(16,), epochs=2, seed=0, prior="mog", progress=False)
    model.fit(digits.train[:300])
    X = digits.test[:200]
    assert model.has_density and not model.conditional and "prior" in model.samplers
    own = evaluate.kl_per_dimension(model, X)
    k = evaluate.KL_SAMPLES  # the evaluation's draws per row
    np.testing.assert_allclose(own, model.kl_to_prior(X, per_dimension=True, n_samples=k)
                               .mean(axis=0))
    mean, var = model.posterior_moments(X)
    to_standard = np.mean(0.5 * (var + mean**2 - 1 - np.log(var)), axis=0)
    assert not np.allclose(own, to_standard, rtol=1e-3)
    diag = evaluate.latent_diagnostics(model, X)
    assert diag["kl"] == pytest.approx(float(np.mean(model.kl_to_prior(X, n_samples=k))))
    assert diag["marginal_kl"] == pytest.approx(diag["kl"] - diag["mutual_information"])


# --------------------------------------------------------------------------- the one door

#: the consumers that read models through the protocol only
CONSUMERS = ("evaluate.py", "plots", "report.py", "runs.py", "_factor_report.py")
#: getattr/hasattr calls in them that read no model (file and value checks)
NOT_A_MODEL = ()


def _consumer_sources():
    from pathlib import Path

    root = Path(elbokit.__file__).parent
    for name in CONSUMERS:
        path = root / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            yield file.relative_to(root), file.read_text()


def test_consumers_read_models_only_through_the_protocol():
    """evaluate, plots/, report, runs and _factor_report never probe a model with
    getattr/hasattr nor ask which kind it is: every question they have is a member of
    elbokit.protocol (has_density, conditional, samplers, prior_log_prob, ...)."""
    import re

    kind_names = "|".join(re.escape(name) for name in kinds.kind_names())
    kind_test = re.compile(
        rf"""(==|!=|\bin)\s*\(?\s*["']({kind_names})["']|["']({kind_names})["']\s*(==|!=)"""
        r"|kind_of\([^)]*\)\s*(==|!=|\bin\b)")
    probes, kind_tests = [], []
    for name, text in _consumer_sources():
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"\b(getattr|hasattr)\(", code) and line.strip() not in NOT_A_MODEL:
                probes.append(f"{name}:{number}: {line.strip()}")
            if kind_test.search(code):
                kind_tests.append(f"{name}:{number}: {line.strip()}")
    assert not probes, "consumers probe models:\n" + "\n".join(probes)
    assert not kind_tests, "consumers compare kind names:\n" + "\n".join(kind_tests)


def test_the_door_test_sees_a_probe():
    import re

    assert re.search(r"\b(getattr|hasattr)\(", 'if hasattr(model, "prior_moments"):')
    assert list(_consumer_sources())  # it reads the sources it guards
