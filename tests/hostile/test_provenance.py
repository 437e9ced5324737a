"""What a run directory names and what it continues (issue 31, items 2 and 3).

A run directory received from someone may name any file on this disk in its run.json:
``report`` opens none of them (the data come from --data), checks the given data
against the recorded digest and names a difference; every string from a file is
escaped for where it is shown (terminal, HTML, matplotlib). ``fit vae --resume``
continues only on the data, split, seed and image shape it trained on; ``report``
and ``evaluate`` refuse images of another shape."""

import importlib.util
import json
import re

import numpy as np
import pytest

from elbokit.cli import main

from conftest import edit_json, one_line_exit_2

PCA = ["fit", "pca", "--latent", "2"]
torch_only = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch")
TINY_VAE = ["fit", "vae", "--latent", "2", "--hidden", "8", "--no-progress", "--epochs", "1"]


def _csv(path, X, header) -> str:
    lines = [",".join(header)] + [",".join(f"{v:.5f}" for v in row) for row in X]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def table_run(tmp_path):
    """A PCA fitted on a CSV whose header holds mathtext, HTML and a terminal escape."""
    X = np.random.default_rng(0).normal(size=(80, 4))
    data = _csv(tmp_path / "train.csv", X, ["$\\foo$", "<script>x</script>", "b\x1b[31m", "d"])
    assert main([*PCA, "--data", data, "--out", str(tmp_path / "run")]) == 0
    return tmp_path / "run", data, X


# --------------------------------------------------------------- a recorded path is never read

def test_report_opens_no_file_run_json_names(table_run, tmp_path, capsys):
    """run.json naming a file elsewhere (here another user file, holding a marker): the
    report refuses in one line saying to pass --data, and writes no page; the escape
    sequence of the crafted name is escaped on the terminal."""
    run, _, X = table_run
    secret = _csv(tmp_path / "secret.csv", X, ["SECRET-COLUMN", "b", "c", "d"])
    edit_json(run / "run.json", lambda r: r.update(data=secret + "\x1b]0;owned\x07"))
    err = one_line_exit_2(["report", str(run)], capsys, "pass the data as --data")
    assert "\x1b" not in err and "\\x1b]0;owned\\x07" in err
    assert not (run / "report.html").exists()
    # a built-in data set is no file of the user's: drawn without --data
    edit_json(run / "run.json", lambda r: r.update(data="wine"))  # 13 features, not 4
    assert main(["report", str(run)]) == 2  # loaded, then refused by its feature count
    assert "SECRET" not in capsys.readouterr().err


def _warnings_to_stderr(monkeypatch):
    """Warnings shown as the CLI shows them (pytest records them otherwise)."""
    import sys
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))

    monkeypatch.setattr(warnings, "showwarning", show)


def test_report_data_checked_against_the_recorded_digest(table_run, tmp_path, capsys,
                                                         monkeypatch):
    run, data, X = table_run
    _warnings_to_stderr(monkeypatch)
    assert main(["report", str(run), "--data", data]) == 0
    page = (run / "report.html").read_text()
    assert "the data the run was fitted on (sha256 " in page and "other data" not in page
    other = _csv(tmp_path / "other.csv", X + 1.0, ["a", "b", "c", "d"])
    capsys.readouterr()
    assert main(["report", str(run), "--data", other]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "DataMismatch" in line]
    assert len(err) == 1, err
    fitted, given = re.findall(r"sha256 ([0-9a-f]{8})", err[0])[-1], \
        re.findall(r"sha256 ([0-9a-f]{8})", err[0])[0]
    assert fitted != given and "train.csv" in err[0] and "other.csv" in err[0]
    page = (run / "report.html").read_text()
    assert "<b>warning: other data.</b>" in page and f"sha256 {fitted}" in page


def test_a_run_saved_from_python_takes_its_data_from_report_data(tmp_path):
    from elbokit import PCA as PCAModel
    from elbokit.models import save_model

    X = np.random.default_rng(1).normal(size=(60, 3))
    save_model(PCAModel(n_components=2).fit(X), tmp_path / "py")
    run = tmp_path / "py" / "run.json"
    assert not run.is_file() or json.loads(run.read_text())["data"] is None
    np.save(tmp_path / "x.npy", X)
    assert main(["report", str(tmp_path / "py"), "--data", str(tmp_path / "x.npy")]) == 0
    assert "given to the report (the run names none)" in \
        (tmp_path / "py" / "report.html").read_text()


# --------------------------------------------------------------- strings escaped for their medium

def test_names_from_a_csv_header_are_plain_text_in_figures_and_escaped_in_html(table_run):
    """A header with mathtext ($\\foo$: an unknown command, a parser error when parsed)
    draws as written; HTML in a name is escaped on the page."""
    run, data, _ = table_run
    assert main(["report", str(run), "--data", data]) == 0
    page = (run / "report.html").read_text()
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page


def test_mathtext_names_would_fail_without_plain_text(table_run, monkeypatch):
    """The property the test above relies on: matplotlib parses $\\foo$ by default."""
    import contextlib

    import elbokit.report

    run, data, _ = table_run
    monkeypatch.setattr(elbokit.report, "plain_text", contextlib.nullcontext)
    with pytest.raises(ValueError):
        elbokit.report.write_report(run, data=data)


def test_control_characters_escaped_in_every_error_and_warning_line():
    from elbokit._text import one_line, terminal_text

    assert one_line("bad \x1b[2J name\u202e\x9b; more\nsecond line") == \
        "bad \\x1b[2J name\\u202e\\x9b; more"
    assert terminal_text("tab\there\r") == "tab\\x09here\\x0d"
    assert terminal_text("plain é ü 字") == "plain é ü 字"
    from elbokit.cli import _one_line_warning

    line = _one_line_warning("class \x1b[31mred\nfake line", UserWarning, "f.py", 1)
    assert line == "elbokit: UserWarning: class \\x1b[31mred\n"


@torch_only
def test_sample_draws_a_mathtext_class_name_as_written(tmp_path):
    """A class folder named $\\foo$ (run.json's target name) in the grid's title."""
    folder = tmp_path / "images"
    _image_folder(folder, (8, 8), n=6)
    (folder / "a").rename(folder / "$\\foo$")
    out = tmp_path / "cv"
    assert main([*TINY_VAE, "--data", str(folder), "--condition-on", "labels",
                 "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["target_names"][0] == "$\\foo$"
    assert main(["sample", str(out), "-n", "4", "--label", "$\\foo$", "--out",
                 str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------- image shapes

def _image_folder(root, shape, n=12):
    from PIL import Image

    rng = np.random.default_rng(2)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(n):
            pixels = (rng.random(shape) * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / label / f"{i}.png")
    return str(root)


def test_a_model_of_8x8_images_refuses_4x16_images(tmp_path, capsys):
    square = _image_folder(tmp_path / "square", (8, 8))
    wide = _image_folder(tmp_path / "wide", (4, 16))
    run = tmp_path / "run"
    assert main([*PCA, "--data", square, "--out", str(run)]) == 0
    for argv in (["evaluate", str(run), "--data", wide], ["report", str(run), "--data", wide]):
        err = one_line_exit_2(argv, capsys, "fitted on 8x8 images")
        assert "4x16 images" in err
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", square]) == 0
    assert "data: the data the run was fitted on (a folder of 24 files" in \
        capsys.readouterr().out


def test_evaluate_names_other_data(table_run, tmp_path, capsys):
    run, _, X = table_run
    other = _csv(tmp_path / "test.csv", X[:20], ["a", "b", "c", "d"])
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", other]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("data: ") and "is not the data the run was fitted on" in last


def test_a_directory_of_runs_on_different_files_is_reported_run_by_run(tmp_path, capsys):
    """One --data cannot be the data of two runs fitted on different files: the report
    of their directory is refused in one line naming both, saying to report each run
    alone; each run alone is reported on its own file."""
    rng = np.random.default_rng(5)
    a = _csv(tmp_path / "a.csv", rng.normal(size=(60, 4)), list("wxyz"))
    b = _csv(tmp_path / "b.csv", rng.normal(size=(60, 4)), list("wxyz"))
    runs = tmp_path / "runs"
    for name, data in (("pca_a", a), ("pca_b", b)):
        assert main([*PCA, "--data", data, "--out", str(runs / name)]) == 0
    for given in ([], ["--data", a]):
        err = one_line_exit_2(["report", str(runs), *given], capsys,
                              "were fitted on 2 different data")
        assert "pca_a: " in err and "pca_b: " in err and err.count("sha256 ") == 2
        assert f"report each run alone, e.g. elbokit report {runs / 'pca_a'} --data {a}" in err
    assert not (runs / "report.html").exists()
    assert main(["report", str(runs / "pca_a"), "--data", a]) == 0
    assert "the data the run was fitted on" in (runs / "pca_a" / "report.html").read_text()


# --------------------------------------------------------------- resume checks what it continues



@pytest.fixture
def vae_run(tmp_path):
    X = np.random.default_rng(3).normal(size=(60, 5))
    data = _csv(tmp_path / "t.csv", X, list("abcde"))
    out = tmp_path / "vae"
    assert main([*TINY_VAE, "--data", data, "--likelihood", "gaussian", "--out", str(out)]) == 0
    return out, data, X


@torch_only
def test_resume_refuses_other_data_split_or_seed(vae_run, tmp_path, capsys):
    out, data, X = vae_run
    assert (out / "checkpoints" / "data.json").is_file()
    again = [*TINY_VAE[:-1], "2", "--likelihood", "gaussian", "--out", str(out), "--resume"]
    err = one_line_exit_2([*again, "--data", data, "--test-fraction", "0.3"], capsys,
                          "cannot resume")
    assert "test_fraction 0.2, given 0.3" in err
    one_line_exit_2([*again, "--data", data, "--seed", "4"], capsys, "seed changed from 0")
    err = one_line_exit_2([*again, "--data", data, "--validation-fraction", "0.3"], capsys,
                          "cannot resume")
    assert "validation_fraction" in err and "0.3" in err
    changed = _csv(tmp_path / "t2.csv", X + 0.5, list("abcde"))
    err = one_line_exit_2([*again, "--data", changed], capsys, "the data: ")
    assert err.count("sha256 ") == 2 and "t.csv" in err and "t2.csv" in err
    assert main([*again, "--data", data]) == 0  # the same data, split and seed: resumed
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


@torch_only
def test_resume_of_an_interrupted_run_is_checked_by_its_checkpoint_record(vae_run, capsys):
    """Only checkpoints/ left (no completed run.json): its data.json is the record."""
    out, data, _ = vae_run
    for name in ("run.json", "metrics.json", "manifest.json"):
        (out / name).unlink()
    again = [*TINY_VAE[:-1], "2", "--likelihood", "gaussian", "--out", str(out), "--resume"]
    one_line_exit_2([*again, "--data", data, "--test-fraction", "0.1"], capsys,
                    "test_fraction 0.2, given 0.1")


@torch_only
def test_a_python_resume_refuses_other_rows_naming_both_digests(vae_run, tmp_path):
    """VAE.fit(checkpoint_dir=..., resume=True) from Python checks the rows as the CLI
    checks the file: their digest is in the same data.json, beside the CLI's record."""
    from elbokit.exceptions import ParameterError
    from elbokit.nn import VAE

    out, _, _ = vae_run  # a CLI run: its data.json records the file and the rows
    record = json.loads((out / "checkpoints" / "data.json").read_text())
    assert record["data"].startswith("sha256:") and record["rows"].startswith("sha256:")
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    settings = dict(latent_dim=2, hidden=(8,), epochs=1, likelihood="gaussian", progress=False)
    ckpt = tmp_path / "ckpt"
    VAE(**settings).fit(X, checkpoint_dir=ckpt)
    first = json.loads((ckpt / "data.json").read_text())["rows"]
    with pytest.raises(ParameterError) as caught:
        VAE(**{**settings, "epochs": 2}).fit(X + 0.5, checkpoint_dir=ckpt, resume=True)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"cannot resume {ckpt}: it trained on")
    assert f"the rows sha256 {first[7:15]}, given sha256 " in message
    assert message.count("sha256 ") == 2
    resumed = VAE(**{**settings, "epochs": 2}).fit(X, checkpoint_dir=ckpt, resume=True)
    assert len(resumed.history_) == 2  # the same rows: resumed from epoch 1
    assert json.loads((ckpt / "data.json").read_text())["rows"] == first
