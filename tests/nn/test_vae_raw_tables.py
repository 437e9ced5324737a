"""Gaussian VAEs on raw tables (issue 12): internal standardization with every density
for x as given, divergence as an error naming its cause, DataFrames and feature names.

Small data and tiny networks: each test takes a second or two."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

from sklearn.datasets import load_breast_cancer, load_wine  # noqa: E402

from elbokit import evaluate  # noqa: E402
from elbokit.exceptions import DataError, ParameterError, TrainingError  # noqa: E402
from elbokit.nn import VAE  # noqa: E402


TINY = dict(hidden=(32,), epochs=15, batch_size=32, progress=False, validation_fraction=0)


def _split(loader, n_test=60):
    X = loader().data.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(X))
    return X[order[n_test:]], X[order[:n_test]]


def _diagonal_gaussian(train, test):
    mean, var = train.mean(0, dtype=np.float64), train.var(0, dtype=np.float64)
    return float(np.mean(np.sum(-0.5 * (np.log(2 * np.pi * var)
                                        + (test - mean) ** 2 / var), axis=1)))


@pytest.mark.parametrize("loader", [load_wine, load_breast_cancer])
def test_raw_tables_fit_with_default_settings(loader):
    """Raw wine (std 0.12 to 314) and breast-cancer (std 0.0026 to 569) measurements:
    the defaults standardize, the fit is finite and, after a few steps, within 2 nats
    of a diagonal Gaussian on the held-out rows (a model it contains), in the data's
    own units (unstandardized, it is 1e5 nats below)."""
    train, test = _split(loader)
    vae = VAE(2, likelihood="gaussian", **TINY).fit(train)
    assert vae.standardize_
    np.testing.assert_allclose(vae.mean_, train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(vae.scale_, train.std(0), rtol=1e-4)
    scores = vae.score_samples(test)
    assert np.all(np.isfinite(scores))
    assert scores.mean() > _diagonal_gaussian(train, test) - 2.0
    assert all(math.isfinite(h["train_elbo"]) for h in vae.history_)


@pytest.mark.parametrize("loader", [load_wine, load_breast_cancer])
def test_auto_fits_a_raw_table_as_the_gaussian_vae_does(loader):
    """likelihood="auto" (the default) on measurements in their own units resolves to
    the standardized Gaussian: the same fit, value for value, as likelihood="gaussian"
    with the same seed, where it once refused the table (values outside [0, 1])."""
    train, test = _split(loader)
    auto = VAE(2, **TINY).fit(train)
    gaussian = VAE(2, likelihood="gaussian", **TINY).fit(train)
    assert auto.likelihood == "auto"
    assert auto.architecture_.likelihood == "gaussian" and auto.standardize_
    np.testing.assert_array_equal(auto.score_samples(test), gaussian.score_samples(test))
    holes = train.copy()
    holes[np.random.default_rng(1).random(train.shape) < 0.2] = np.nan
    filled = VAE(2, **TINY).fit(holes).impute(holes)
    assert np.all(np.isfinite(filled)) and np.array_equal(filled[~np.isnan(holes)],
                                                          train[~np.isnan(holes)])


def test_standardized_fit_equals_a_fit_on_standardized_data_minus_the_jacobian():
    """VAE(standardize=True) on raw x is the VAE of (x - m) / s (same seed, same
    steps): ELBO and IS log-likelihood differ by exactly -sum_j log s_j, encodings
    agree, decodings are m + s * those of the standardized model."""
    train, test = _split(load_breast_cancer)
    few = dict(TINY, epochs=4)  # the identity holds at any step
    raw = VAE(3, likelihood="gaussian", standardize=True, **few).fit(train)
    m, s = raw.mean_, raw.scale_
    std = VAE(3, likelihood="gaussian", standardize=False, **few).fit(
        ((train - m) / s).astype(np.float32))
    test_std = ((test - m) / s).astype(np.float32)
    jacobian = float(np.sum(np.log(s)))
    assert abs(jacobian) > 20  # the units matter: stds from 0.003 to 570
    elbo_raw, elbo_std = raw.score_samples(test), std.score_samples(test_std)
    assert abs(elbo_raw.mean() - (elbo_std.mean() - jacobian)) < 1.0
    np.testing.assert_allclose(elbo_raw, elbo_std - jacobian, atol=0.5)
    ll_raw = evaluate.log_likelihood(raw, test, n_importance=20).values
    ll_std = evaluate.log_likelihood(std, test_std, n_importance=20).values
    np.testing.assert_allclose(ll_raw, ll_std - jacobian, atol=0.5)
    np.testing.assert_allclose(raw.encode(test), std.encode(test_std), atol=1e-3)
    np.testing.assert_allclose((raw.reconstruct(test) - m) / s, std.reconstruct(test_std),
                               atol=1e-3)
    samples = raw.sample(200, random_state=0)  # in the user's units
    assert np.all(np.abs(samples.mean(0) - m) < 3 * s)


def test_standardized_and_manual_fits_agree_on_the_held_out_elbo_within_a_few_nats():
    """The issue's target: raw wine, default settings, against a fit on standardized
    data (its own defaults) minus the Jacobian, on held-out rows."""
    train, test = _split(load_wine)
    raw = VAE(2, likelihood="gaussian", **TINY).fit(train)
    m, s = train.mean(0), train.std(0)
    manual = VAE(2, likelihood="gaussian", standardize=False, **TINY).fit((train - m) / s)
    expected = manual.score((test - m) / s) - float(np.sum(np.log(s)))
    assert abs(raw.score(test) - expected) < 3.0


def test_constant_features_keep_a_finite_density_that_scales_with_the_data():
    train, _ = _split(load_wine)
    train = np.hstack([train, np.full((len(train), 1), 7.0, np.float32)])
    vae = VAE(2, likelihood="gaussian", **TINY).fit(train)
    assert vae.scale_[-1] == pytest.approx(np.sqrt(train[:, :-1].var(0).sum() / 14), rel=1e-4)
    assert np.all(np.isfinite(vae.score_samples(train)))


def test_unstandardized_raw_table_diverges_with_an_error_naming_the_scales():
    train, _ = _split(load_breast_cancer)
    with pytest.raises(TrainingError, match=r"max/min std = .*standardize=True / "
                                            r"--standardize"):
        VAE(2, likelihood="gaussian", standardize=False, **TINY).fit(train)


def test_an_absurd_elbo_is_a_divergence_not_a_result():
    """A fit whose ELBO lies far below a diagonal Gaussian's (here: the decoder's
    mean pushed 1000 std away) is refused by check_fit, with the cause."""
    import torch

    train, test = _split(load_wine)
    vae = VAE(2, likelihood="gaussian", **TINY).fit(train)
    vae.check_fit(test, "test")  # a good fit passes
    with torch.no_grad():
        vae.model_.decoder.net[-1].bias[:13] += 1000.0
    assert np.isfinite(vae.score(test))
    with pytest.raises(TrainingError, match="far below .* diagonal Gaussian"):
        vae.check_fit(test, "test")


def test_bernoulli_refuses_standardize_and_auto_means_off(digits):
    with pytest.raises(ParameterError, match="bernoulli"):
        VAE(2, standardize=True, **TINY).fit(digits.train[:100])
    with pytest.raises(ParameterError, match="standardize must be"):
        VAE(2, likelihood="gaussian", standardize="yes", **TINY).fit(digits.train[:100])
    vae = VAE(2, epochs=1, hidden=(16,), progress=False).fit(digits.train[:100])
    assert not vae.standardize_ and vae.mean_ is None
    fixed = VAE(2, likelihood="gaussian-fixed", epochs=1, hidden=(16,),
                progress=False).fit(digits.train[:100])
    assert not fixed.standardize_  # sigma stays in the data's units


def test_standardization_and_feature_names_survive_save_and_load(tmp_path):
    pd = pytest.importorskip("pandas")
    data = load_wine()
    frame = pd.DataFrame(data.data, columns=data.feature_names)
    vae = VAE(2, likelihood="gaussian", **TINY).fit(frame)
    assert list(vae.feature_names_in_) == list(data.feature_names)
    assert vae.n_features_in_ == 13
    assert vae.transform(frame).shape == (178, 2)
    np.testing.assert_allclose(vae.encode(frame), vae.encode(data.data), atol=1e-6)
    assert list(vae.get_feature_names_out()) == ["vae0", "vae1"]
    out = vae.set_output(transform="pandas").transform(frame.iloc[:5])
    assert list(out.columns) == ["vae0", "vae1"]
    with pytest.raises(DataError, match="feature names"):
        vae.encode(frame.rename(columns={"alcohol": "ethanol"}))
    vae.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["settings"]["architecture"]["standardize"] is True
    assert meta["settings"]["architecture"]["feature_names"] == list(data.feature_names)
    loaded = VAE.load(tmp_path / "m")
    assert list(loaded.feature_names_in_) == list(data.feature_names)
    np.testing.assert_allclose(loaded.scale_, vae.scale_)
    np.testing.assert_allclose(loaded.score_samples(frame), vae.score_samples(frame))


def test_the_linear_decoder_starts_at_the_diagonal_gaussian_of_the_standardized_data():
    """decoder="linear" starts as FA's EM does, b at the mean and psi at the feature
    variances, in the standardized coordinates: after one tiny step its ELBO on raw
    wine is close to the diagonal Gaussian's, in the data's units."""
    train, test = _split(load_wine)
    vae = VAE(2, likelihood="gaussian", decoder="linear", epochs=1, lr=1e-5,
              batch_size=len(train), progress=False).fit(train)
    assert abs(vae.score(test) - _diagonal_gaussian(train, test)) < 1.0
