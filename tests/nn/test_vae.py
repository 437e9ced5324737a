"""The VAE estimator: API and shapes, determinism, save/load and its errors,
checkpoints and resume, NaN handling, and linear VAE vs factor analysis on digits."""

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import assert_same_weights as _assert_same_weights  # noqa: E402
from conftest import edit_json as _edit_json  # noqa: E402
from conftest import edit_model_json  # noqa: E402
from elbokit.exceptions import (DataError, ModelFileError, ParameterError,  # noqa: E402
                                TrainingError)
from elbokit.nn import VAE, AnalyticKLELBO, ArchitectureConfig, TrainingConfig  # noqa: E402


@pytest.fixture(scope="module")
def fitted(digits):
    vae = VAE(4, hidden=(64,), epochs=3, binarize="dynamic", progress=False)
    return vae.fit(digits.train, validation=digits.test)


def _weights(vae):
    return {k: v.clone() for k, v in vae.model_.state_dict().items()}


# --------------------------------------------------------------------------- API

def test_import_elbokit_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, elbokit; assert 'torch' not in sys.modules; elbokit.VAE; " \
           "assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docstring_example_runs():
    import doctest

    import elbokit.nn.vae

    result = doctest.testmod(elbokit.nn.vae, verbose=False)
    assert result.attempted >= 7 and result.failed == 0


def test_shapes_of_every_method(fitted, digits):
    X = digits.test[:7]
    assert fitted.n_features_in_ == 64
    assert fitted.encode(X).shape == (7, 4)
    samples, std = fitted.encode(X, n_samples=5)
    assert samples.shape == (7, 5, 4) and std.shape == (7, 4) and np.all(std > 0)
    assert fitted.decode(np.zeros((3, 4))).shape == (3, 64)
    assert fitted.reconstruct(X).shape == (7, 64)
    assert fitted.sample(6, random_state=0).shape == (6, 64)
    assert fitted.interpolate(X[0], X[1], steps=5).shape == (5, 64)
    assert fitted.score_samples(X).shape == (7,)
    for estimator in ("a", "b", "iwae"):
        assert fitted.elbo(X, estimator, n_samples=3).shape == (7,)
    assert len(fitted.history_) == 3
    assert {"epoch", "train_elbo", "val_elbo", "seconds"} <= set(fitted.history_[0])


def test_encode_samples_scatter_around_the_mean_with_the_reported_std(fitted, digits):
    X = digits.test[:20]
    samples, std = fitted.encode(X, n_samples=4000)
    np.testing.assert_allclose(samples.mean(1), fitted.encode(X), atol=5 * std.max() / 60)
    np.testing.assert_allclose(samples.std(1), std, rtol=0.1)


def test_decoder_means_are_probabilities_and_interpolation_ends_at_reconstructions(fitted,
                                                                                     digits):
    out = fitted.sample(50, random_state=1)
    assert out.min() >= 0 and out.max() <= 1
    path = fitted.interpolate(digits.test[0], digits.test[1], steps=4)
    np.testing.assert_allclose(path[[0, -1]], fitted.reconstruct(digits.test[:2]), atol=1e-6)


def test_score_is_seeded_mean_of_score_samples_and_bounded_by_iwae(fitted, digits):
    X = digits.test
    np.testing.assert_array_equal(fitted.score_samples(X), fitted.score_samples(X))
    assert fitted.score(X) == pytest.approx(fitted.score_samples(X).mean())
    elbo = fitted.elbo(X, "b", n_samples=20).mean()
    iwae = fitted.elbo(X, "iwae", n_samples=20).mean()
    assert iwae > elbo  # a tighter bound
    binary = (X > 0.5).astype(np.float32)  # bits/dim: of binary pixels under the Bernoulli
    assert fitted.bits_per_dim(binary) == pytest.approx(-fitted.score(binary) / (64 * np.log(2)))
    with pytest.raises(ParameterError, match="cross-entropy, not a density"):
        fitted.bits_per_dim(X)  # intensities: no density of X


def test_training_improves_the_elbo(fitted):
    elbos = [h["train_elbo"] for h in fitted.history_]
    assert elbos[-1] > elbos[0] + 5


def test_fit_is_deterministic_and_the_seed_matters(digits):
    X = digits.train[:300]
    a = VAE(3, hidden=(32,), epochs=2, binarize="dynamic", progress=False).fit(X)
    b = VAE(3, hidden=(32,), epochs=2, binarize="dynamic", progress=False).fit(X)
    c = VAE(3, hidden=(32,), epochs=2, binarize="dynamic", seed=1, progress=False).fit(X)
    _assert_same_weights(_weights(a), _weights(b))
    assert not torch.equal(a.model_.decoder.net[0].weight, c.model_.decoder.net[0].weight)


@pytest.mark.parametrize("kwargs", [
    dict(likelihood="gaussian"),
    dict(likelihood="gaussian-fixed", sigma=0.2),
    dict(arch="conv"),
    dict(arch="conv", likelihood="gaussian"),
    dict(decoder="linear", likelihood="bernoulli"),
    dict(objective="a", n_samples=2),
    dict(objective="iwae", n_samples=3),
    dict(lr_schedule="cosine"),
])
def test_every_variant_trains_and_improves(digits, kwargs):
    X = digits.train[:400]
    vae = VAE(3, hidden=(32,), epochs=3, lr=3e-3, progress=False, **kwargs).fit(X)
    elbos = [h["train_elbo"] for h in vae.history_]
    assert np.all(np.isfinite(elbos)) and elbos[-1] > elbos[0]
    assert np.isfinite(vae.score(digits.test))


def test_fit_from_a_memmap_matches_in_memory(digits, tmp_path):
    """A float32 memmap is used in place (no copy) and gives the same fit."""
    X = np.ascontiguousarray(digits.train[:300], dtype=np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    settings = dict(hidden=(16,), epochs=2, binarize="dynamic", progress=False)
    a = VAE(2, **settings).fit(mapped, validation=mapped[:50])
    b = VAE(2, **settings).fit(X, validation=X[:50])
    _assert_same_weights(_weights(a), _weights(b))
    assert a.history_[-1]["val_elbo"] == b.history_[-1]["val_elbo"]
    shared = torch.as_tensor(mapped)
    assert shared.data_ptr() == mapped.ctypes.data  # the tensor is a view of the map


def test_conv_on_28x28_images():
    rng = np.random.default_rng(0)
    X = (rng.uniform(size=(40, 784)) > 0.7).astype(np.float32)
    vae = VAE(2, arch="conv", epochs=1, progress=False).fit(X)
    assert vae.architecture_.image_shape == (28, 28)
    assert vae.sample(3, random_state=0).shape == (3, 784)


def test_early_stopping_keeps_the_best_epoch(digits):
    # a huge learning rate makes the validation ELBO worse after the first epochs
    vae = VAE(3, hidden=(32,), epochs=30, lr=0.05, patience=2, progress=False)
    vae.fit(digits.train[:300], validation=digits.test[:100])
    history = vae.history_
    best = max(h["val_elbo"] for h in history)
    assert len(history) < 30
    assert history[-1]["epoch"] - max(history, key=lambda h: h["val_elbo"])["epoch"] == 2
    assert vae.elbo(digits.test[:100], "b", 1, random_state=0).mean() == pytest.approx(best,
                                                                                       abs=1e-3)


def test_early_stopping_waits_for_the_cosine_to_anneal(digits):
    """Under a cosine schedule, patience ends a run only once the lr is below
    STOP_BELOW_LR of its peak: the same run as above, which stops after a few epochs
    at a constant lr, trains on to the schedule's last part, then stops on patience."""
    from elbokit.nn.config import STOP_BELOW_LR
    from elbokit.nn.train import learning_rate

    # float32: the trajectory (a stop within 30 epochs at the constant lr) is float32's
    settings = dict(hidden=(32,), epochs=30, lr=0.05, patience=2, progress=False,
                    precision="float32")
    X, V = digits.train[:300], digits.test[:100]
    constant = VAE(3, **settings).fit(X, validation=V).history_
    cosine = VAE(3, lr_schedule="cosine", **settings).fit(X, validation=V).history_
    steps = -(-300 // TrainingConfig().batch_size)
    config = TrainingConfig(epochs=30, lr=0.05, lr_schedule="cosine")
    first = next(e for e in range(1, 31)
                 if learning_rate(config, e * steps, steps) <= STOP_BELOW_LR * 0.05)
    assert len(constant) < first
    assert first <= len(cosine) < 30  # stopped on patience, in the annealed part
    best = max(cosine, key=lambda h: h["val_elbo"])["epoch"]
    assert cosine[-1]["epoch"] - best >= 2


def test_fit_checks_the_kept_weights_anew_only_where_its_validation_does_not_show_them_finite(
        digits, monkeypatch):
    """check_fit's ELBO (finite, for a Bernoulli model) is not computed again when the
    fit's validation ELBO of the kept weights is on record and finite; it is when that
    record is not finite, for a Gaussian model (its baseline) and without validation."""
    import elbokit.nn.train.loop as train_module

    calls = []
    check = VAE.check_fit
    monkeypatch.setattr(VAE, "check_fit", lambda self, *a, **k: (calls.append(a[1]),
                                                                  check(self, *a, **k)))
    X, V = digits.train[:200], digits.test[:50]
    fast = dict(hidden=(8,), epochs=2, progress=False, patience=0)  # the last epoch kept
    VAE(2, **fast).fit(X, validation=V)
    assert calls == []
    VAE(2, likelihood="gaussian", **fast).fit(X, validation=V)
    VAE(2, validation_fraction=0, **fast).fit(X)
    assert calls == ["validation", "training"]
    validate, epochs = train_module._validate, []

    def nan_at_the_last_epoch(run, X_val):
        epochs.append(1)
        return float("nan") if len(epochs) == 2 else validate(run, X_val)

    monkeypatch.setattr(train_module, "_validate", nan_at_the_last_epoch)
    VAE(2, **fast).fit(X, validation=V)
    assert calls == ["validation", "training", "validation"]


def test_resuming_an_early_stopped_run_does_not_train_on(digits, tmp_path):
    # float32: the trajectory (a stop within 30 epochs at the constant lr) is float32's
    settings = dict(hidden=(32,), epochs=30, lr=0.05, patience=2, progress=False,
                    precision="float32")
    X, V = digits.train[:300], digits.test[:100]
    first = VAE(3, **settings).fit(X, validation=V, checkpoint_dir=tmp_path)
    again = VAE(3, **settings).fit(X, validation=V, checkpoint_dir=tmp_path, resume=True)
    assert again.history_ == first.history_
    _assert_same_weights(_weights(first), _weights(again))


# --------------------------------------------------------------------------- errors

def test_bad_inputs_raise_clear_errors(fitted, digits):
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        VAE(2, likelihood="bernoulli", epochs=1, progress=False).fit(digits.train * 2)
    with pytest.raises(DataError, match="64"):
        fitted.encode(np.zeros((2, 10)))
    with pytest.raises(DataError, match="no observed entry"):
        fitted.score_samples(np.full((2, 64), np.nan))
    with pytest.raises(ParameterError, match="likelihood"):
        VAE(2, likelihood="cauchy", progress=False).fit(digits.train)
    with pytest.raises(ParameterError, match="patience"):
        VAE(2, patience=3, validation_fraction=0, progress=False).fit(digits.train)
    with pytest.raises(ParameterError, match="multiples of 4"):
        VAE(2, arch="conv", image_shape=(2, 32), progress=False).fit(digits.train)
    with pytest.raises(ParameterError, match="binarize"):
        VAE(2, likelihood="gaussian", binarize="dynamic", progress=False).fit(digits.train)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        VAE(2).sample(3)


class _NaNAfter(AnalyticKLELBO):
    """L_B that returns NaN from its ``n``-th call on (to simulate a diverging run)."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, model, x, n_samples=1, generator=None):
        self.calls += 1
        value = super().__call__(model, x, n_samples, generator)
        return value * float("nan") if self.calls >= self.n else value


class _Halved(AnalyticKLELBO):
    """A custom objective object: half of L_B."""

    name = "halved"

    def from_encoding(self, model, x, mean, logvar, z):
        return 0.5 * super().from_encoding(model, x, mean, logvar, z)


def test_custom_objective_objects_train_and_are_recorded(digits, tmp_path):
    X = digits.train[:200]
    vae = VAE(2, hidden=(16,), epochs=1, objective=_Halved(), progress=False).fit(X)
    plain = VAE(2, hidden=(16,), epochs=1, progress=False).fit(X)
    assert vae.training_.objective == "custom"
    assert vae.history_[0]["train_elbo"] == pytest.approx(0.5 * plain.history_[0]["train_elbo"],
                                                          rel=0.05)
    vae.save(tmp_path)
    assert VAE.load(tmp_path).training_.objective == "custom"


def test_nan_loss_names_epoch_and_step_and_keeps_last_good_checkpoint(digits, tmp_path):
    X = digits.train  # 1437 rows: 12 steps per epoch at batch size 128
    vae = VAE(3, hidden=(32,), epochs=5, objective=_NaNAfter(12 + 3), progress=False,
              validation_fraction=0)
    with pytest.raises(TrainingError, match=r"nan at epoch 2, step 3 of 12") as info:
        vae.fit(X, checkpoint_dir=tmp_path)
    assert "epoch 1" in str(info.value) and str(tmp_path) in str(info.value)
    saved = json.loads((tmp_path / "checkpoint.json").read_text())
    assert saved["epoch"] == 1 and len(saved["history"]) == 1
    # the model in memory holds the last good weights, equal to the checkpoint's
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / saved["tensor_file"]))
    for name, value in vae.model_.state_dict().items():
        assert torch.equal(tensors[f"model.{name}"], value)
        assert torch.isfinite(value).all()


# --------------------------------------------------------------------------- checkpoints

def test_resume_gives_the_weights_of_an_uninterrupted_run(digits, tmp_path):
    X, V = digits.train[:500], digits.test[:100]
    settings = dict(hidden=(32,), binarize="dynamic", n_samples=2, progress=False)
    full = VAE(3, epochs=4, **settings).fit(X, validation=V, checkpoint_dir=tmp_path / "full")
    VAE(3, epochs=2, **settings).fit(X, validation=V, checkpoint_dir=tmp_path / "cut")
    assert json.loads((tmp_path / "cut" / "checkpoint.json").read_text())["epoch"] == 2
    resumed = VAE(3, epochs=4, **settings).fit(X, validation=V, checkpoint_dir=tmp_path / "cut",
                                               resume=True)
    _assert_same_weights(_weights(full), _weights(resumed))
    assert [h["train_elbo"] for h in resumed.history_] == [h["train_elbo"] for h in
                                                            full.history_]
    # only the newest tensor file is kept
    assert len(list((tmp_path / "cut").glob("checkpoint-e*.safetensors"))) == 1
    # a fresh run without resume restarts: different weights from the 2 + 2 run
    again = VAE(3, epochs=2, **settings).fit(X, validation=V)
    assert not torch.equal(again.model_.encoder.net[0].weight,
                           resumed.model_.encoder.net[0].weight)


def test_resume_uses_only_the_committed_checkpoint(digits, tmp_path):
    """checkpoint.json, written last, names the tensor file: a stray file from an
    interrupted later save is ignored, and a tensor file that does not match the
    recorded checksum is refused."""
    X = digits.train[:200]
    settings = dict(hidden=(16,), progress=False)
    VAE(2, epochs=1, **settings).fit(X, checkpoint_dir=tmp_path)
    (tmp_path / "checkpoint-e0002.safetensors").write_bytes(b"half a file")
    resumed = VAE(2, epochs=2, **settings).fit(X, checkpoint_dir=tmp_path, resume=True)
    full = VAE(2, epochs=2, **settings).fit(X)
    _assert_same_weights(_weights(full), _weights(resumed))
    _edit_json(tmp_path / "checkpoint.json", lambda m: m.update(sha256="0" * 64))
    with pytest.raises(ModelFileError, match="checksum"):
        VAE(2, epochs=3, **settings).fit(X, checkpoint_dir=tmp_path, resume=True)


def test_resume_refuses_another_architecture(digits, tmp_path):
    X = digits.train[:200]
    VAE(3, hidden=(32,), epochs=1, progress=False).fit(X, checkpoint_dir=tmp_path)
    with pytest.raises(ParameterError, match="another architecture"):
        VAE(4, hidden=(32,), epochs=2, progress=False).fit(X, checkpoint_dir=tmp_path,
                                                           resume=True)


def test_resume_without_checkpoint_warns_and_starts(digits, tmp_path):
    with pytest.warns(UserWarning, match="no checkpoint"):
        VAE(2, hidden=(16,), epochs=1, progress=False).fit(digits.train[:100],
                                                           checkpoint_dir=tmp_path, resume=True)


# --------------------------------------------------------------------------- save / load

def test_save_load_round_trip(fitted, digits, tmp_path):
    fitted.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["kind"] == "vae" and meta["format_version"] >= 1
    assert meta["settings"]["architecture"]["latent_dim"] == 4
    assert meta["history"] == fitted.history_
    loaded = VAE.load(tmp_path)
    _assert_same_weights(_weights(fitted), _weights(loaded))
    X = digits.test
    np.testing.assert_array_equal(loaded.score_samples(X), fitted.score_samples(X))
    np.testing.assert_array_equal(loaded.sample(4, random_state=3),
                                  fitted.sample(4, random_state=3))
    assert loaded.get_params()["latent_dim"] == 4 and loaded.n_features_in_ == 64
    # the package-wide loader dispatches on "kind"
    from elbokit.models import load_model

    assert isinstance(load_model(tmp_path), VAE)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["settings"]["architecture"].update(latent_dim="four"),
     "latent_dim must be an integer"),
    (lambda m: m["settings"]["architecture"].update(hidden=[64, "x"]), "list of integers"),
    (lambda m: m["settings"]["architecture"].update(surprise=1), "unknown field"),
    (lambda m: m["settings"]["architecture"].pop("n_features"), "n_features"),
    (lambda m: m["settings"]["architecture"].update(latent_dim=5), "shape|features"),
    (lambda m: m["settings"]["training"].update(lr=True), "lr must be a number"),
    (lambda m: m["settings"].update(other=1), "unknown field"),
    (lambda m: m.update(format_version=99), "newer"),
    (lambda m: m.update(kind="pca"), "not 'vae'"),
    (lambda m: m.update(history="long"), "history"),
    (lambda m: m["sha256"].update({"weights.safetensors": "0" * 64}), "checksum"),
])
def test_load_rejects_bad_model_files(fitted, tmp_path, edit, message):
    fitted.save(tmp_path)
    edit_model_json(tmp_path / "model.json", edit)
    with pytest.raises(ModelFileError, match=message):
        VAE.load(tmp_path)


def test_load_rejects_truncated_weights_and_missing_dirs(fitted, tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        VAE.load(tmp_path / "nothing")
    fitted.save(tmp_path)
    weights = tmp_path / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    _edit_json(tmp_path / "model.json",
               lambda m: m["sha256"].update({"weights.safetensors": __import__("hashlib")
                                             .sha256(data[: len(data) // 2]).hexdigest()}))
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        VAE.load(tmp_path)


def test_configs_round_trip_through_json():
    arch = ArchitectureConfig(n_features=64, latent_dim=3, hidden=(32, 16), image_shape=(8, 8),
                              encoder="conv", decoder="linear", likelihood="gaussian")
    train = TrainingConfig(epochs=3, lr=0.01, lr_schedule="cosine", binarize="none")
    assert ArchitectureConfig.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert TrainingConfig.from_dict(json.loads(json.dumps(train.to_dict()))) == train
    with pytest.raises(ModelFileError, match="epochs"):
        TrainingConfig.from_dict({"epochs": 0})
    with pytest.raises(ModelFileError, match="progress"):
        TrainingConfig.from_dict({"progress": "yes"})


# --------------------------------------------------------------------------- linear VAE = FA

def test_linear_vae_reaches_factor_analysis_log_likelihood(digits):
    """VAE(decoder="linear", likelihood="gaussian") is factor analysis with an amortised
    diagonal posterior; with W rotated so that W^T Psi^-1 W is diagonal the exact FA
    posterior is diagonal, so its ELBO can reach FA's log-likelihood.

    Protocol: digits training set (1437 x 64), 5 factors. Both models floor the noise
    variance at the same value, 1e-3 x the mean pixel variance (FactorAnalysis's
    ``min_noise_variance``; the VAE gets it as ``min_variance``), which is what keeps
    the three constant border pixels finite in both. FA: EM to convergence. VAE: 40
    epochs of Adam, batch 64, lr 2e-2 with cosine annealing, L_B with one sample; its
    training ELBO is then estimated with 50 samples per point. Requirement: within 1%
    of FA's mean log-likelihood, and not above it (the ELBO is a lower bound on the
    likelihood of a model that FA's maximum dominates)."""
    from elbokit.linear import FactorAnalysis

    X = digits.train
    floor = 1e-3 * float(np.mean(X.astype(np.float64).var(0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # FA names the constant pixels
        fa_loglike = FactorAnalysis(5, min_noise_variance=floor).fit(X).score(X)
    vae = VAE(5, likelihood="gaussian", decoder="linear", min_variance=floor, epochs=40,
              batch_size=64, lr=2e-2, lr_schedule="cosine", standardize=False,
              validation_fraction=0, progress=False).fit(X)  # the floor in the data's units
    elbo = vae.elbo(X, "b", n_samples=50).mean()
    assert abs(fa_loglike - elbo) < 0.01 * abs(fa_loglike), (elbo, fa_loglike)
    assert elbo < fa_loglike + 0.05
