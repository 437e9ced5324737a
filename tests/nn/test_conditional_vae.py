"""The conditional VAE: VAE(conditional=True).fit(X, y), q(z|x, y) and p(x|z, y)."""

import json

import numpy as np
import pytest
import torch

import elbokit.data
import elbokit.evaluate
from elbokit.exceptions import DataError, ModelFileError, ParameterError
from elbokit.nn import VAE


def _copy_unconditional(conditional, unconditional):
    """The unconditional model's weights in the conditional one, with every weight
    that reads y (the last input columns of the encoder's first layer, or its conv
    head, and of the decoder's first layer) zero."""
    target = conditional.model_.state_dict()
    with torch.no_grad():
        for name, value in unconditional.model_.state_dict().items():
            new = torch.zeros_like(target[name])
            if value.shape == new.shape:
                new.copy_(value)
            else:  # (out, in + c): y's columns come last
                new[:, :value.shape[1]] = value
            target[name].copy_(new)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_with_the_label_channel_zeroed_the_model_is_the_unconditional_one(digits, arch):
    X, y = digits.train[:200], digits.train_labels[:200]
    settings = dict(arch=arch, hidden=(16,), epochs=1, progress=False)
    plain = VAE(3, **settings).fit(X)
    cond = VAE(3, conditional=True, **settings).fit(X, y)
    assert not np.allclose(cond.elbo(X, y=y), plain.elbo(X))  # trained apart: differ
    _copy_unconditional(cond, plain)
    T, labels = digits.test[:50], digits.test_labels[:50]
    np.testing.assert_allclose(cond.elbo(T, "iwae", 4, y=labels), plain.elbo(T, "iwae", 4),
                               rtol=1e-5)
    np.testing.assert_allclose(cond.encode(T, y=labels), plain.encode(T), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(cond.sample(6, random_state=0, y=7),
                               plain.sample(6, random_state=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        elbokit.evaluate.log_likelihood(cond, T, y=labels, n_importance=20).values,
        elbokit.evaluate.log_likelihood(plain, T, n_importance=20).values, rtol=1e-5)


def test_samples_of_each_class_are_classified_as_that_class(digits):
    """Digits (8x8), 5 epochs: 50 samples (decoder means) per class, classified by a
    logistic regression fitted to the real training images (96.7% on the real test
    set). Measured: 87% of the samples get the class they were generated for (100%
    after 10 epochs); chance is 10%."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(digits.train, digits.train_labels)
    vae = VAE(4, hidden=(128,), epochs=5, lr=3e-3, conditional=True,
              progress=False).fit(digits.train, digits.train_labels)
    y = np.repeat(np.arange(10), 50)
    rate = float(np.mean(clf.predict(vae.sample(500, random_state=0, y=y)) == y))
    assert rate > 0.5, rate


def test_covariates_and_string_labels(digits):
    X = digits.train[:120]
    rng = np.random.default_rng(0)
    covariates = rng.normal(size=(120, 3))
    vae = VAE(2, hidden=(8,), epochs=1, conditional=True, progress=False).fit(X, covariates)
    assert vae.n_condition_ == 3 and vae.classes_ is None
    assert vae.sample(4, random_state=0, y=[0.0, 1.0, -1.0]).shape == (4, 64)
    with pytest.raises(DataError, match="fitted on 3 covariates"):
        vae.score(X, covariates[:, :2])
    names = np.where(digits.train_labels[:120] % 2, "odd", "even")
    vae = VAE(2, hidden=(8,), epochs=1, conditional=True, progress=False).fit(X, names)
    assert vae.classes_.tolist() == ["even", "odd"]
    assert vae.sample(2, y="odd").shape == (2, 64)


def test_saved_and_loaded_with_its_classes(digits, tmp_path):
    X, y = digits.train[:150], digits.train_labels[:150]
    vae = VAE(2, hidden=(8,), epochs=1, conditional=True, progress=False).fit(X, y)
    vae.save(tmp_path)
    loaded = VAE.load(tmp_path)
    assert loaded.classes_.tolist() == list(range(10)) and loaded.n_condition_ == 10
    np.testing.assert_array_equal(loaded.elbo(X, y=y), vae.elbo(X, y=y))
    from elbokit.persistence import model_file
    from elbokit.persistence.files import description_digest

    meta = json.loads((tmp_path / "model.json").read_text())
    for bad, message in [(list(range(9)), "classes must be 10 distinct"),
                         ([0.5] * 10, "list of integers or of strings"),
                         (None, "needs y")]:
        edited = json.loads(json.dumps(meta))
        edited["settings"]["architecture"]["classes"] = bad
        if bad is None:
            edited["settings"]["architecture"]["condition_dim"] = 0
        edited["sha256"]["description"] = description_digest(edited, model_file.DESCRIBED)
        with pytest.raises(ModelFileError, match=message):
            VAE.load(tmp_path, meta=edited)


def test_bad_conditioning_is_a_one_line_error(digits):
    X, y = digits.train[:100], digits.train_labels[:100]
    with pytest.raises(DataError, match=r"needs y"):
        VAE(2, conditional=True, progress=False).fit(X)
    with pytest.raises(DataError, match="y has 99 entries but X has 100 rows"):
        VAE(2, conditional=True, progress=False).fit(X, y[:99])
    with pytest.raises(DataError, match="non-integer numbers"):
        VAE(2, conditional=True, progress=False).fit(X, y + 0.5)
    with pytest.raises(DataError, match="single class"):
        VAE(2, conditional=True, progress=False).fit(X, np.zeros(100, int))
    vae = VAE(2, hidden=(8,), epochs=1, conditional=True, progress=False).fit(X, y)
    with pytest.raises(DataError, match=r"label\(s\) \[12\] not seen at fit"):
        vae.sample(3, y=12)
    with pytest.raises(DataError, match="pass y="):
        vae.sample(3)
    with pytest.raises(DataError, match="pass y="):
        vae.score(X)
    with pytest.raises(DataError, match="validation=\\(X_val, y_val\\)"):
        VAE(2, conditional=True, progress=False).fit(X, y, validation=X)
    plain = VAE(2, hidden=(8,), epochs=1, progress=False).fit(X, y)  # y ignored, as sklearn
    assert plain.score(X, y) == plain.score(X)
    with pytest.raises(ParameterError, match="only for a conditional VAE"):
        plain.sample(2, y=3)


def test_cli_conditions_on_the_data_sets_labels_and_the_report_draws_a_grid_per_class(
        tmp_path, capsys):
    from elbokit.cli import main
    from elbokit.report import write_report

    out = tmp_path / "runs" / "cvae"
    argv = ["fit", "vae", "--data", "digits", "--latent", "2", "--hidden", "16",
            "--epochs", "1", "--no-progress", "--condition-on", "labels",
            "--validation-fraction", "0.1", "--out", str(out)]
    assert main(argv) == 0
    model = json.loads((out / "model.json").read_text())["settings"]["architecture"]
    assert model["conditional"] is True and model["classes"] == list(range(10))
    loaded = VAE.load(out)
    metrics = json.loads((out / "metrics.json").read_text())
    digits = elbokit.data.load("digits")
    assert metrics["test_elbo"] == pytest.approx(loaded.score(digits.test, digits.test_labels))
    assert main(["evaluate", str(out), "--data", "digits"]) == 0
    write_report(tmp_path / "runs", with_figures=True)
    assert (out / "figures" / "samples_by_class.png").read_bytes()[:4] == b"\x89PNG"
    # elbokit sample: a row per class by default, or one class by --label
    for extra, name in [([], "rows.png"), (["--label", "3"], "three.png")]:
        assert main(["sample", str(out), "-n", "20", "--out", str(tmp_path / name), *extra]) == 0
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["sample", str(out), "--label", "11", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "'11' is not one of the classes" in err and "0, 1, 2" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
    argv[argv.index("digits")] = "diabetes"
    assert main(argv[:-1] + [str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "has no class labels" in err and len(err.strip().splitlines()) == 1


def test_cli_sample_of_a_covariate_model_says_to_use_python(tmp_path, capsys):
    from elbokit.cli import main

    digits = elbokit.data.load("digits")
    X = digits.train[:200]
    covariates = np.random.default_rng(0).normal(size=(200, 2))
    VAE(2, hidden=(8,), epochs=1, conditional=True, progress=False).fit(X, covariates) \
        .save(tmp_path / "cov")
    assert main(["sample", str(tmp_path / "cov"), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err
    assert "conditioned on covariates" in err and "sample(n, y=" in err and err.count("\n") == 1
