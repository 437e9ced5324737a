"""The deterministic Autoencoder: training lowers the loss, the linear one reaches PCA's
reconstruction error, save/load is exact, the density members raise, CLI and compare."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

import elbokit  # noqa: E402
from elbokit import evaluate  # noqa: E402
from elbokit.cli import main  # noqa: E402
from elbokit.exceptions import (DataError, ModelFileError, NoDensityError,  # noqa: E402
                                ParameterError)
from elbokit.protocol import as_model  # noqa: E402

FAST = dict(hidden=(32,), epochs=3, batch_size=64, lr=3e-3)


@pytest.fixture(scope="module")
def ae(digits):
    return elbokit.Autoencoder(4, **FAST).fit(digits.train, validation=digits.test)


def test_training_lowers_the_reconstruction_loss(ae, digits):
    losses = [h["train_loss"] for h in ae.history_]
    assert losses[-1] < 0.8 * losses[0]
    assert len(ae.history_) == 3 and "val_loss" in ae.history_[0]
    # the recorded validation loss is the per-row cross-entropy of the final weights
    assert ae.history_[-1]["val_loss"] == pytest.approx(
        ae.reconstruction_error(digits.test).mean(), rel=1e-6)
    X = digits.test[:50].astype(np.float64)
    p = np.clip(ae.reconstruct(X), 1e-7, 1 - 1e-7)
    manual = -(X * np.log(p) + (1 - X) * np.log1p(-p)).sum(1)
    np.testing.assert_allclose(ae.reconstruction_error(X), manual, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ae.score_samples(X), -ae.reconstruction_error(X))


def test_linear_autoencoder_with_squared_error_reaches_pca(digits):
    """A linear encoder and decoder with the squared-error loss: the optimum is PCA's
    subspace, so the reconstruction error cannot go below PCA's and should reach it."""
    X = digits.train[:600]
    pca = elbokit.PCA(3).fit(X)
    target = evaluate.reconstruction_error(pca, X)
    ae = elbokit.Autoencoder(3, likelihood="gaussian", decoder="linear", epochs=40,
                             batch_size=100, lr=2e-2, lr_schedule="cosine").fit(X)
    error = evaluate.reconstruction_error(ae, X)
    assert target - 1e-3 <= error <= 1.03 * target


def test_protocol_members(ae, digits):
    model = as_model(ae)
    X = digits.test[:5]
    mean, var = model.posterior_moments(X)
    np.testing.assert_array_equal(mean, ae.transform(X))
    assert np.all(var == 0)
    draws = model.posterior_samples(X, 3)
    assert draws.shape == (5, 3, 4) and np.all(draws == mean[:, None])
    np.testing.assert_allclose(model.decode_mean(mean), ae.reconstruct(X))
    assert ae.sample(6, random_state=0).shape == (6, 64)
    fitted = ae.sample(6, random_state=0, sampler="fitted")
    assert fitted.shape == (6, 64) and 0 <= fitted.min() and fitted.max() <= 1
    np.testing.assert_allclose(ae.code_mean_, ae.transform(digits.train).mean(0), atol=1e-5)
    for member in (model.log_likelihood_samples, model.elbo_samples):
        with pytest.raises(NoDensityError, match="no log p"):
            member(X)
    with pytest.raises(NoDensityError):
        evaluate.log_likelihood(ae, X)
    with pytest.raises(NoDensityError, match="points"):
        evaluate.mutual_information(ae, X)


def test_save_load_round_trip_is_exact(ae, digits, tmp_path):
    elbokit.save_model(ae, tmp_path / "ae")
    loaded = elbokit.load_model(tmp_path / "ae")
    assert type(loaded) is elbokit.Autoencoder
    assert loaded.get_params() == {**ae.get_params(), "encoder": "mlp", "decoder": "mlp"}
    for method in ("transform", "reconstruct", "score_samples"):
        np.testing.assert_array_equal(getattr(loaded, method)(digits.test),
                                      getattr(ae, method)(digits.test))
    np.testing.assert_array_equal(loaded.sample(4, random_state=1, sampler="fitted"),
                                  ae.sample(4, random_state=1, sampler="fitted"))
    assert loaded.history_ == json.loads(json.dumps(ae.history_))


def test_tampered_files_are_one_line_errors(ae, tmp_path):
    from conftest import edit_json, edit_model_json

    elbokit.save_model(ae, tmp_path / "a")
    meta = tmp_path / "a" / "model.json"
    edit_json(meta, lambda m: m["settings"]["architecture"].update(hidden=[64]))
    with pytest.raises(ModelFileError):
        elbokit.load_model(tmp_path / "a")
    elbokit.save_model(ae, tmp_path / "b")
    edit_model_json(tmp_path / "b" / "model.json",
                    lambda m: m["settings"]["training"].update(epochs=-1))
    with pytest.raises(ModelFileError, match="epochs"):
        elbokit.load_model(tmp_path / "b")
    elbokit.save_model(ae, tmp_path / "c")
    weights = tmp_path / "c" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ModelFileError):
        elbokit.load_model(tmp_path / "c")


def test_bad_input_is_a_one_line_error(ae, digits):
    with pytest.raises(ParameterError, match="likelihood must be one of"):
        elbokit.Autoencoder(2, likelihood="poisson").fit(digits.train)
    with pytest.raises(ParameterError, match="epochs"):
        elbokit.Autoencoder(2, epochs=0).fit(digits.train)
    with pytest.raises(DataError, match="outside \\[0, 1\\]"):
        elbokit.Autoencoder(2, **FAST).fit(digits.train * 5)
    with pytest.raises(DataError, match="features"):
        ae.transform(digits.test[:, :10])
    with pytest.raises(DataError, match="columns"):
        ae.decode(np.zeros((2, 3)))
    bad = digits.test[:4].copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError):
        ae.transform(bad)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        elbokit.Autoencoder(2).transform(digits.test)


def test_cli_fit_ae_and_compare_row(tmp_path, capsys):
    out = tmp_path / "ae"
    assert main(["fit", "ae", "--latent", "3", "--hidden", "32", "--epochs", "2",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_reconstruction_error"] > 0 and "test_loglike" not in metrics
    assert json.loads((out / "run.json").read_text())["kind"] == "ae"
    assert main(["fit", "ae", "--likelihood", "poisson", "--out", str(tmp_path / "x")]) == 2
    assert "likelihood must be one of" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["compare", "--models", "pca,ae", "--latent", "3", "--epochs", "2",
                 "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("ae "))
    assert "no density" in row
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())["models"]
    assert table["ae"]["test_loglike"] is None and table["ae"]["method"] == "no density"
    assert table["ae"]["reconstruction_error"] > 0 and table["pca"]["reconstruction_error"] > 0
    assert 0.1 < table["pca"]["probe_accuracy"] <= 1


def test_the_signature_is_the_config_fields_autoencoder_settings_names():
    import inspect

    from elbokit.nn.config import AUTOENCODER_DEFAULTS, autoencoder_settings
    from elbokit.nn._settings import estimator_default

    parameters = inspect.signature(elbokit.Autoencoder).parameters
    fields = autoencoder_settings()
    assert list(parameters) == [f.name for f in fields]
    for f in fields:
        expected = AUTOENCODER_DEFAULTS.get(f.name, estimator_default(f))
        assert parameters[f.name].default == expected, f.name
