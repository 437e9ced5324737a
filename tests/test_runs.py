"""Runs that cannot be lost or mixed (issue 13): compare's cache keyed on everything
that determines a fit, no overwrite without --refit/--overwrite, a lock on the run
directory, --resume only on a VAE run, run.json and metrics.json checked on read."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import rehash_manifest
from elbokit.cli import main
from elbokit.data import Dataset
from elbokit.exceptions import ModelFileError, RunLockedError
from elbokit.linear import PCA
from elbokit.runs import (RunLock, fit_and_record, matching_run, read_metrics, read_run,
                          run_key)


def _digest(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _one_line(capsys, match: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
    return err


def set_run_field(run_dir, field, value) -> None:
    """Rewrite one field of a run's run.json (a tampered or hand-edited file)."""
    run = json.loads((run_dir / "run.json").read_text())
    run[field] = value
    (run_dir / "run.json").write_text(json.dumps(run))
    rehash_manifest(run_dir / "run.json")  # the field checks, not the manifest's, catch it


@pytest.fixture
def table(tmp_path):
    """A small CSV of 120 rows x 6 correlated features."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2)) @ rng.normal(size=(2, 6)) + 0.3 * rng.normal(size=(120, 6))
    path = tmp_path / "table.csv"
    np.savetxt(path, X, delimiter=",", fmt="%.6f")
    return path


def _compare(table, out, *extra):
    return main(["compare", "--data", str(table), "--latent", "2", "--models", "pca,fa",
                 "--k", "5", "--out", str(out), *extra])


def test_compare_reuses_only_a_run_with_the_same_key(table, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert _compare(table, out) == 0
    before = _digest(out / "fa")
    assert _compare(table, out) == 0  # same everything: reused, nothing rewritten
    assert _digest(out / "fa") == before
    run = read_run(out / "fa")
    assert run["key"]["test_fraction"] == 0.2 and run["key"]["data"].startswith("sha256:")
    assert run["latent"] == 2


@pytest.mark.parametrize("change", ["test-fraction", "data", "latent", "seed"])
def test_compare_refuses_to_replace_a_run_of_other_settings(table, tmp_path, capsys, change):
    """Issue 13: compare reused runs fitted on another split or on a data file that has
    since changed, and overwrote a saved model of another latent size."""
    out = tmp_path / "cmp"
    assert _compare(table, out) == 0
    before = _digest(out)
    extra = []
    if change == "test-fraction":
        extra = ["--test-fraction", "0.3"]
    elif change == "data":
        X = np.loadtxt(table, delimiter=",")
        np.savetxt(table, X * 1000.0, delimiter=",", fmt="%.6f")
    elif change == "latent":
        extra = ["--latent", "3"]
    else:
        extra = ["--seed", "4"]
    capsys.readouterr()
    assert _compare(table, out, *extra) == 2
    _one_line(capsys, "--refit or --overwrite")
    assert _digest(out) == before
    assert _compare(table, out, *extra, "--refit") == 0
    assert _digest(out / "fa") != before  # refitted
    assert _compare(table, out, *extra) == 0  # and now it matches


def test_compare_reuses_a_vae_run(table, tmp_path, capsys):
    """Issue 14's bug: the latent size came from n_components_, which a VAE lacks, so a
    VAE run was never reused; and the key ignored --epochs."""
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(table), "--latent", "2", "--models", "vae-linear",
            "--k", "4", "--epochs", "1", "--out", str(out)]
    assert main(argv) == 0
    assert read_run(out / "vae-linear")["latent"] == 2
    before = _digest(out / "vae-linear")
    assert main(argv) == 0
    assert _digest(out / "vae-linear") == before  # reused
    capsys.readouterr()
    assert main(argv[:-4] + ["--epochs", "2", "--out", str(out)]) == 2
    _one_line(capsys, "--refit or --overwrite")


def test_matching_run_and_the_key(tmp_path, table):
    X = np.loadtxt(table, delimiter=",")
    dataset = Dataset(X[:100], X[100:], feature_names=[f"f{j}" for j in range(6)],
                      target_names=["a", "b"])
    key = run_key("pca", PCA(2).get_params(), spec=str(table), seed=0, test_fraction=0.2)
    fit_and_record(PCA(2), dataset, tmp_path / "r", spec=str(table), seed=0,
                   test_fraction=0.2)
    assert matching_run(tmp_path / "r", key)
    assert not matching_run(tmp_path / "r", {**key, "seed": 1})
    assert not matching_run(tmp_path / "nothing", key)
    run = read_run(tmp_path / "r")
    assert run["feature_names"] == [f"f{j}" for j in range(6)]
    assert run["target_names"] == ["a", "b"]
    extra = json.loads((tmp_path / "r" / "model.json").read_text())["extra"]
    assert extra["feature_names"] == run["feature_names"]
    (tmp_path / "r" / "run.json").write_text('{"seed": "zero"}')
    assert not matching_run(tmp_path / "r", key)  # a broken run.json never matches


def test_a_non_finite_fit_is_not_recorded(tmp_path, monkeypatch):
    """FA on data scaled by 1e36 was saved with log p(x) = -inf and exit 0."""
    from elbokit.exceptions import TrainingError

    class Broken(PCA):
        def score_samples(self, X):
            return np.full(len(X), -np.inf)

    monkeypatch.setattr("elbokit.runs.kind_of", lambda model: "pca")
    X = np.random.default_rng(1).normal(size=(60, 4))
    with pytest.raises(TrainingError, match="non-finite"):
        fit_and_record(Broken(2), Dataset(X[:50], X[50:]), tmp_path / "r", spec="x", seed=0)
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- the lock

@pytest.mark.parametrize("command", [["fit", "pca", "--latent", "2"],
                                     ["fit", "vae", "--latent", "2", "--hidden", "8",
                                      "--epochs", "1", "--no-progress"]])
def test_a_second_writer_fails_at_once(tmp_path, capsys, command):
    """Two `fit` commands on the same --out both reported success and one result was
    lost. While one holds the run directory's lock, the other fails with one line."""
    out = tmp_path / "run"
    with RunLock(out):
        assert main(command + ["--out", str(out), "--overwrite"]) == 2
        _one_line(capsys, "being written by another elbokit process")
    assert list(out.iterdir()) == []
    assert main(command + ["--out", str(out)]) == 0  # released


def test_the_lock_leaves_no_trace(tmp_path):
    with pytest.raises(RuntimeError):
        with RunLock(tmp_path / "new"):
            raise RuntimeError("a failed fit")
    assert not (tmp_path / "new").exists()  # created by the lock, empty: removed
    (tmp_path / "old").mkdir()
    with RunLock(tmp_path / "old"):
        with pytest.raises(RunLockedError):
            RunLock(tmp_path / "old")
    assert list((tmp_path / "old").iterdir()) == []


def test_resume_refuses_a_run_of_another_kind(tmp_path, capsys):
    """Issue 13: `fit vae --resume --out DIR` replaced a saved FA model."""
    out = tmp_path / "fa"
    assert main(["fit", "fa", "--latent", "2", "--out", str(out)]) == 0
    before = _digest(out)
    capsys.readouterr()
    assert main(["fit", "vae", "--latent", "2", "--hidden", "8", "--epochs", "1",
                 "--no-progress", "--resume", "--out", str(out)]) == 2
    _one_line(capsys, "--resume continues only a run of the same model")
    assert _digest(out) == before


# --------------------------------------------------------------------------- reading runs

@pytest.fixture
def pca_run(tmp_path):
    out = tmp_path / "pca"
    assert main(["fit", "pca", "--latent", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("field, value", [("image_shape", "8x8"), ("image_shape", [8, "8"]),
                                          ("image_shape", [4, 4]), ("seed", "0"),
                                          ("seed", -1), ("latent", 1.5),
                                          ("feature_names", [1, 2])])
def test_bad_run_json_fields_are_one_line(pca_run, tmp_path, capsys, field, value):
    set_run_field(pca_run, field, value)
    capsys.readouterr()
    code = main(["sample", str(pca_run), "-n", "4", "--out", str(tmp_path / "s.png")])
    if field in ("image_shape",):
        assert code == 2
        _one_line(capsys, "image_shape")
    if value == [4, 4]:  # well-formed, but not the model's 64 features
        return
    with pytest.raises(ModelFileError, match=field):
        read_run(pca_run)


@pytest.mark.parametrize("text", ['{"fit_seconds": NaN}', '{"fit_seconds": [1]}', "[]",
                                  '{"a": 1e999}'])
def test_bad_metrics_json(pca_run, text):
    (pca_run / "metrics.json").write_text(text)
    with pytest.raises(ModelFileError, match="metrics|JSON"):
        read_metrics(pca_run)


@pytest.mark.parametrize("seed", ["-1", "4294967296", str(10**30)])
def test_seed_out_of_range_is_one_line(tmp_path, capsys, seed):
    assert main(["fit", "pca", "--seed", seed, "--out", str(tmp_path / "o")]) == 2
    _one_line(capsys, "--seed must be an integer in [0, 4294967295]")
    assert not (tmp_path / "o").exists()


def test_two_fit_processes_on_one_out_cannot_both_succeed(tmp_path, capsys):
    """A real second process: while `fit vae` trains into --out, `fit pca` into the same
    directory fails at once with one line; the VAE run then completes."""
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cli = "import sys; from elbokit.cli import run; sys.argv[0] = 'elbokit'; run()"
    first = subprocess.Popen(
        [sys.executable, "-c", cli, "fit", "vae", "--latent", "2", "--hidden", "64",
         "--batch-size", "16", "--epochs", "4", "--no-progress", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not (out / "checkpoints" / "checkpoint.json").exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    code = main(["fit", "pca", "--latent", "2", "--out", str(out), "--overwrite"])
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert code == 2
    _one_line(capsys, "being written by another elbokit process")
    assert json.loads((out / "model.json").read_text())["kind"] == "vae"


def test_a_stop_while_saving_leaves_no_partial_run(tmp_path, monkeypatch):
    """Interrupted between the model and metrics.json, a run is removed, not left
    looking complete (exit 130/143 is then the CLI's)."""
    import elbokit._run_commit as commit

    real = commit.atomic_write_json

    def stop_at_metrics(path, obj):
        if Path(path).name == "metrics.json":
            raise KeyboardInterrupt("terminated")
        real(path, obj)

    monkeypatch.setattr(commit, "atomic_write_json", stop_at_metrics)
    X = np.random.default_rng(2).normal(size=(60, 4))
    with pytest.raises(KeyboardInterrupt):
        fit_and_record(PCA(2), Dataset(X[:50], X[50:]), tmp_path / "r", spec="x", seed=0)
    assert not (tmp_path / "r").exists() or list((tmp_path / "r").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] in ([], ["r"])  # no staging directory left


def test_resume_refuses_other_training_settings(tmp_path, capsys):
    out = tmp_path / "vae"
    base = ["fit", "vae", "--latent", "2", "--hidden", "8", "--no-progress", "--out", str(out)]
    assert main(base + ["--epochs", "1"]) == 0
    before = _digest(out)
    capsys.readouterr()
    assert main(base + ["--epochs", "2", "--resume", "--lr", "0.01"]) == 2
    _one_line(capsys, "lr changed from 0.001 (the checkpoint's) to 0.01")
    assert _digest(out) == before
    assert main(base + ["--epochs", "2", "--resume"]) == 0  # more epochs: fine
