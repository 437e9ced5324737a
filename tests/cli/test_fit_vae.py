"""``elbokit fit vae``, and ``evaluate`` / ``sample`` on its run directory."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from elbokit.cli import main  # noqa: E402

FAST = ["--data", "digits", "--latent", "3", "--hidden", "32", "--no-progress"]


def test_fit_vae_writes_a_run_that_evaluate_and_sample_use(tmp_path, capsys):
    out = tmp_path / "vae"
    argv = ["fit", "vae", *FAST, "--epochs", "3", "--binarize", "dynamic",
            "--validation-fraction", "0.1", "--out", str(out)]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["fit_seconds"] > 0
    assert metrics["binarized_evaluation"] is True
    assert metrics["test_elbo"] < 0
    assert metrics["test_bits_per_dim"] == pytest.approx(-metrics["test_elbo"] /
                                                         (64 * np.log(2)))
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "vae" and run["image_shape"] == [8, 8]
    model = json.loads((out / "model.json").read_text())
    assert model["kind"] == "vae" and len(model["history"]) == 3
    assert "val_elbo" in model["history"][0]
    assert (out / "checkpoints" / "checkpoint.json").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", "digits"]) == 0
    printed = capsys.readouterr().out
    # evaluate scores the same once-binarised rows as fit recorded, not the intensities
    assert f"{metrics['test_elbo']:.3f}" in printed and "binarized_evaluation" in printed
    assert main(["sample", str(out), "-n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["sample", str(out), "--label", "3", "--out", str(tmp_path / "l.png")]) == 2
    err = capsys.readouterr().err
    assert "--label is for a VAE conditioned on labels" in err and err.count("\n") == 1


def test_resume_continues_to_the_same_weights(tmp_path):
    from elbokit.nn import VAE

    base = ["fit", "vae", *FAST, "--likelihood", "gaussian"]
    assert main(base + ["--epochs", "3", "--out", str(tmp_path / "full")]) == 0
    assert main(base + ["--epochs", "1", "--out", str(tmp_path / "cut")]) == 0
    assert main(base + ["--epochs", "3", "--resume", "--out", str(tmp_path / "cut")]) == 0
    full, resumed = VAE.load(tmp_path / "full"), VAE.load(tmp_path / "cut")
    for name, value in full.model_.state_dict().items():
        assert np.array_equal(value.numpy(), resumed.model_.state_dict()[name].numpy()), name
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["epochs"] == 3


@pytest.mark.parametrize("extra, message", [
    (["--latent", "0"], "latent_dim must be >= 1"),
    (["--likelihood", "cauchy"], "likelihood must be one of"),
    (["--hidden", "4x"], "--hidden must be comma-separated"),
    (["--patience", "2", "--validation-fraction", "0"], "needs validation data"),
    (["--validation-fraction", "1.5"], "validation_fraction must be a number in [0, 1)"),
])
def test_fit_vae_errors_are_one_line_with_exit_code_2(tmp_path, capsys, extra, message):
    argv = ["fit", "vae", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.fixture
def wine_csv(tmp_path):
    """scikit-learn's wine measurements, unscaled, as a CSV with a header."""
    from sklearn.datasets import load_wine

    data = load_wine()
    path = tmp_path / "wine.csv"
    lines = [",".join(data.feature_names)] + [",".join(f"{v:g}" for v in row)
                                              for row in data.data]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_vae_gaussian_on_a_raw_csv_works_by_default(tmp_path, wine_csv, monkeypatch):
    """The reported failure (inf loss at the first step, or a test ELBO of -2.8e26
    recorded as a success): the default standardizes, the test ELBO is finite and in
    the data's units, and the CSV header's names are kept in the model file. No
    --likelihood: "auto" picks the Gaussian for a table in its own units."""
    from elbokit import data as data_module
    from sklearn.datasets import load_wine

    names = list(load_wine().feature_names)
    real_load = data_module.load

    def load_with_names(*args, **kwargs):  # the CSV header, as the loader reports it
        dataset = real_load(*args, **kwargs)
        dataset.feature_names = names
        return dataset

    monkeypatch.setattr(data_module, "load", load_with_names)
    out = tmp_path / "vae"
    argv = ["fit", "vae", "--data", str(wine_csv), "--latent", "2",
            "--hidden", "32", "--epochs", "5", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["test_elbo"]) and -60 < metrics["test_elbo"] < 0
    model = json.loads((out / "model.json").read_text())
    assert model["settings"]["architecture"]["standardize"] is True
    assert model["settings"]["architecture"]["likelihood"] == "gaussian"
    assert model["settings"]["architecture"]["feature_names"] == names


def test_fit_vae_without_standardization_on_a_raw_csv_is_one_line_naming_the_fix(
        tmp_path, wine_csv, capsys):
    out = tmp_path / "vae"
    argv = ["fit", "vae", "--data", str(wine_csv), "--likelihood", "gaussian", "--latent", "2",
            "--hidden", "32", "--epochs", "2", "--no-progress", "--no-standardize",
            "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--standardize" in err[0] and "max/min std" in err[0]
    assert not (out / "metrics.json").exists()  # a divergence is never recorded


def test_fit_vae_refuses_standardize_for_bernoulli(tmp_path, capsys):
    argv = ["fit", "vae", *FAST, "--standardize", "--epochs", "1", "--out", str(tmp_path / "v")]
    assert main(argv) == 2
    assert "bernoulli" in capsys.readouterr().err
