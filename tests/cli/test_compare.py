"""``elbokit compare`` never loses a row (issue 12): a model that fails is a row with its
one-line reason, the others print and are saved, the exit code is 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_wine

from elbokit.cli import compare as compare_module
from elbokit.cli import main
from elbokit.exceptions import TrainingError


def _failing_ppca(error):
    """A real PPCA (so the run key and the registry know it) whose fit fails as a
    diverged or numerically broken model does."""
    from elbokit import PPCA

    model = PPCA(2)

    def fit(X, y=None):
        raise error

    model.fit = fit
    return model


@pytest.fixture
def wine_npy(tmp_path):
    path = tmp_path / "wine.npy"
    np.save(path, load_wine().data.astype(np.float32))  # raw units: std 0.12 to 314
    return path


@pytest.mark.parametrize("error", [
    TrainingError("the loss became nan at epoch 1, step 1 of 3"),
    np.linalg.LinAlgError("Matrix is not positive definite"),
    FloatingPointError("overflow encountered in exp"),
])
def test_a_failing_model_is_a_row_and_the_others_are_printed_and_saved(
        tmp_path, wine_npy, capsys, monkeypatch, error):
    real_build = compare_module.build_model

    def build(kind, latent, **kwargs):
        return _failing_ppca(error) if kind == "ppca" else real_build(kind, latent, **kwargs)

    monkeypatch.setattr(compare_module, "build_model", build)
    out = tmp_path / "cmp"
    code = main(["compare", "--data", str(wine_npy), "--latent", "2", "--models",
                 "pca,ppca,fa", "--out", str(out), "--k", "5"])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.out.splitlines()
    for kind in ("pca", "fa"):
        row = next(line for line in lines if line.startswith(kind + " "))
        assert "exact" in row
    assert any(line.startswith("ppca ") and "failed" in line for line in lines)
    reason = f"ppca: failed: {type(error).__name__}: {error}"
    assert reason in lines
    assert "1 of 3 models failed (ppca)" in captured.err
    assert len(captured.err.strip().splitlines()) <= 3  # warnings aside: no traceback
    assert "Traceback" not in captured.err
    table = json.loads((out / "compare.json").read_text())["models"]
    assert table["ppca"] == {"failed": True, "error": f"{type(error).__name__}: {error}"}
    assert np.isfinite(table["pca"]["test_loglike"]) and np.isfinite(table["fa"]["test_loglike"])


def test_compare_with_vaes_on_a_raw_table_has_every_row(tmp_path, wine_npy, capsys):
    """The reported failure: on raw wine the VAE rows stopped compare with a NaN error
    and no row printed. With the default standardization every row is a number."""
    out = tmp_path / "cmp"
    code = main(["compare", "--data", str(wine_npy), "--latent", "2", "--models",
                 "fa,vae", "--epochs", "3", "--k", "5", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    table = json.loads((out / "compare.json").read_text())["models"]
    assert set(table) == {"independent", "fa", "vae"}
    for kind in ("independent", "fa", "vae"):
        assert np.isfinite(table[kind]["test_loglike"])
    # same held-out rows, same units: the VAE's bound is comparable with FA's log p(x)
    assert abs(table["vae"]["test_elbo"] - table["fa"]["test_loglike"]) < 50


def test_a_csv_with_missing_cells_gives_rows_for_the_models_that_accept_them(tmp_path, capsys):
    """Missing cells are NaN for compare: FA and VBPCA fit on the observed entries, PCA
    cannot and is a failed row naming the NaN; exit code 2."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2)) @ rng.standard_normal((2, 5)) + 0.3 * rng.standard_normal((60, 5))
    rows = [",".join("" if (i, j) in {(3, 1), (10, 4)} else f"{v:.6f}" for j, v in enumerate(r))
            for i, r in enumerate(X)]
    path = tmp_path / "holes.csv"
    path.write_text("a,b,c,d,e\n" + "\n".join(rows) + "\n")
    out = tmp_path / "cmp"
    code = main(["compare", "--data", str(path), "--latent", "2", "--models", "pca,fa,vbpca",
                 "--out", str(out), "--k", "5"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 2
    table = json.loads((out / "compare.json").read_text())["models"]
    assert table["pca"]["failed"] and "NaN" in table["pca"]["error"]
    assert np.isfinite(table["fa"]["test_loglike"]) and np.isfinite(table["vbpca"]["test_loglike"])
    assert any(line.startswith("fa ") and "exact" in line for line in lines)


def test_compare_has_the_independent_gaussians_baseline_row(tmp_path, capsys):
    """One row, "independent": a Gaussian per feature with the training rows' mean and
    variance, its held-out log p(x) computed here with scipy; on raw breast cancer
    (variances spanning 1e8) it beats PCA's shared noise, which the table must show."""
    from scipy import stats

    from elbokit.data import load

    out = tmp_path / "cmp"
    assert main(["compare", "--data", "breast-cancer", "--latent", "3", "--models", "pca",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = json.loads((out / "compare.json").read_text())["models"]
    data = load("breast-cancer")
    expected = stats.norm(data.train.mean(0), data.train.std(0)).logpdf(data.test).sum(1)
    assert table["independent"]["test_loglike"] == pytest.approx(expected.mean(), rel=1e-10)
    assert table["independent"]["test_loglike"] > table["pca"]["test_loglike"]
    assert printed.index("independent") < printed.index("pca ")


def test_a_failed_row_s_reason_is_printed_with_its_control_characters_escaped(
        tmp_path, wine_npy, capsys, monkeypatch):
    """A reason quoting a name from a file (here an escape sequence that retitles the
    terminal, and a newline) is one line with both written as escapes (issue 31)."""
    real_build = compare_module.build_model
    error = TrainingError("feature 'a\x1b]0;owned\x07b\nc' has no variance")

    def build(kind, latent, **kwargs):
        return _failing_ppca(error) if kind == "ppca" else real_build(kind, latent, **kwargs)

    monkeypatch.setattr(compare_module, "build_model", build)
    out = tmp_path / "cmp"
    code = main(["compare", "--data", str(wine_npy), "--latent", "2", "--models", "pca,ppca",
                 "--out", str(out), "--k", "5"])
    captured = capsys.readouterr()
    assert code == 2
    assert "\x1b" not in captured.out and "\x07" not in captured.out
    reason = "TrainingError: feature 'a\\x1b]0;owned\\x07b"
    assert f"ppca: failed: {reason}" in captured.out.splitlines()
    assert json.loads((out / "compare.json").read_text())["models"]["ppca"]["error"] == reason


def test_the_default_latent_size_fits_a_table_of_few_columns(tmp_path, capsys):
    """Without --latent, a table of d <= 10 columns (iris: 4) gets L = d - 1, the most
    PPCA takes, instead of 10, which every linear model refused."""
    out = tmp_path / "cmp"
    code = main(["compare", "--data", "iris", "--models", "pca,ppca,fa", "--out", str(out),
                 "--k", "5"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "d = 4, L = 3" in printed
    saved = json.loads((out / "compare.json").read_text())
    assert saved["latent"] == 3 and not any(m.get("failed") for m in saved["models"].values())
    # the three find the same maximum-likelihood model of 3 factors on 4 features
    values = [saved["models"][k]["test_loglike"] for k in ("pca", "ppca", "fa")]
    assert max(values) - min(values) < 1e-3
