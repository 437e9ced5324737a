"""A save is one commit of the whole run (issue 31, item 1): a full disk, a file-size
limit or a kill at any boundary between the files of a save leaves the previous run
whole; a run whose files do not match its manifest is refused and never reused; a
symlinked run or checkpoint folder is refused, never followed into deletion; stale
temporaries are cleaned at the next start; demo and compare do not overwrite runs or
the table of another writer."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from elbokit.cli import main
from elbokit.exceptions import ModelFileError
from elbokit.models import load_model
from elbokit.persistence import check_manifest

PCA = ["fit", "pca", "--data", "digits"]
VAE = ["fit", "vae", "--latent", "2", "--hidden", "8", "--no-progress"]


def refused(argv, capsys, *parts: str) -> str:
    """The CLI on ``argv`` exits with code 2, one line on stderr holding every part."""
    capsys.readouterr()
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and all(p in lines[0] for p in parts), lines
    return lines[0]


def _digests(run: Path) -> dict:
    """Every file of a run directory (checkpoints included) by its content."""
    import hashlib

    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def _no_leftovers(parent: Path) -> None:
    left = [p.name for p in parent.iterdir() if ".elbokit-" in p.name]
    assert not left, f"staging or old directories left behind: {left}"


def _run_cli(argv: list[str], before: str = "", env_limit: int | None = None):
    """The CLI in a subprocess, after the Python lines ``before`` (monkeypatches);
    ``env_limit``: a file-size limit (RLIMIT_FSIZE, bytes) for the child alone."""
    code = before + f"\nimport sys\nfrom elbokit.cli import main\nsys.exit(main({argv!r}))\n"

    def limit():
        if env_limit is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (env_limit, env_limit))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture
def pca_run(tmp_path):
    out = tmp_path / "r"
    assert main(PCA + ["--latent", "3", "--out", str(out)]) == 0
    return out


# --------------------------------------------------------------------------- the disk

def test_a_file_size_limit_during_overwrite_keeps_the_previous_run(pca_run):
    """ulimit -f below the size of the new weights: safetensors' own error (EFBIG), one
    line naming the file, the free space and the limit; the old run is untouched."""
    before = _digests(pca_run)
    done = _run_cli(PCA + ["--latent", "5", "--overwrite", "--out", str(pca_run)],
                    env_limit=1000)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for part in ("cannot write", "weights.safetensors", "File too large",
                 "free on its file system", "ulimit -f", f"{pca_run} keeps the previous run"):
        assert part in err, err
    assert _digests(pca_run) == before
    assert load_model(pca_run).n_components == 3
    _no_leftovers(pca_run.parent)


def test_a_failed_vae_overwrite_keeps_the_old_checkpoint(tmp_path, capsys, monkeypatch):
    """The new fit trains into the staging directory: a save that fails (disk full)
    leaves the old run and its checkpoint as they were."""
    import errno

    import elbokit._run_commit as commit

    out = tmp_path / "v"
    base = VAE + ["--out", str(out)]
    assert main(base + ["--epochs", "1"]) == 0
    before = _digests(out)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(commit, "write_model", full)
    line = refused(base + ["--epochs", "2", "--overwrite"], capsys,
                           "No space left on device")
    assert f"{out} keeps the previous run" in line
    assert _digests(out) == before  # checkpoints/ included
    _no_leftovers(tmp_path)


# --------------------------------------------------------------------------- kills

KILL_AT = """
import os, signal
from pathlib import Path
import elbokit.persistence.commit as commit
real_replace, real_carry = os.replace, commit.carry_over
def replace(src, dst, *args, **kwargs):
    if Path(dst).name == {name!r} and ".elbokit-new-" in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)
def carry_over(old, target):
    if {name!r} == "swap":  # after the exchange, before the old run is removed
        os.kill(os.getpid(), signal.SIGKILL)
    return real_carry(old, target)
os.replace, commit.carry_over = replace, carry_over
"""


@pytest.mark.parametrize("boundary", ["weights.safetensors", "run.json", "manifest.json",
                                      "swap"])
def test_sigkill_at_each_boundary_of_a_save_never_mixes_two_fits(pca_run, boundary):
    """Killed before the swap: the old run (L = 3), whole; after it: the new one (L = 5),
    whole. Never a model of one fit under the run.json of the other; the next fit
    cleans what the killed one left."""
    (pca_run / "notes.txt").write_text("the user's file")
    done = _run_cli(PCA + ["--latent", "5", "--overwrite", "--out", str(pca_run)],
                    KILL_AT.format(name=boundary))
    assert done.returncode == -9, done.stderr[-2000:]
    check_manifest(pca_run)  # every file matches the manifest
    latent = json.loads((pca_run / "run.json").read_text())["latent"]
    assert latent == (5 if boundary == "swap" else 3)
    assert load_model(pca_run).n_components == latent
    assert main(PCA + ["--latent", "4", "--overwrite", "--out", str(pca_run)]) == 0
    _no_leftovers(pca_run.parent)
    assert (pca_run / "notes.txt").read_text() == "the user's file"  # carried over


def test_a_mixed_run_is_refused_in_one_line_and_never_reused(tmp_path, capsys):
    """The model of an L = 5 fit copied under the run.json of an L = 3 fit (what a kill
    between files left before): load, evaluate and compare's reuse refuse it."""
    from elbokit.runs import matching_run, read_run

    table = ["compare", "--models", "pca", "--k", "5", "--out", str(tmp_path / "c")]
    assert main(table + ["--latent", "3"]) == 0
    assert main(PCA + ["--latent", "5", "--out", str(tmp_path / "five")]) == 0
    run = tmp_path / "c" / "pca"
    key = read_run(run)["key"]
    for name in ("model.json", "weights.safetensors"):
        shutil.copy(tmp_path / "five" / name, run / name)
    with pytest.raises(ModelFileError, match="does not match its digest in .*manifest.json"):
        load_model(run)
    refused(["evaluate", str(run)], capsys, "come from different saves")
    assert not matching_run(run, key)
    capsys.readouterr()
    refused(table + ["--latent", "3"], capsys, "pass --refit or --overwrite")


# --------------------------------------------------------------------------- links

def test_symlinked_checkpoints_or_run_folders_are_refused_nothing_deleted(tmp_path, capsys):
    victim = tmp_path / "victim"
    base = VAE + ["--epochs", "1"]
    assert main(base + ["--out", str(victim)]) == 0
    before = _digests(victim)
    out = tmp_path / "new"
    out.mkdir()
    (out / "checkpoints").symlink_to(victim / "checkpoints")
    refused(base + ["--out", str(out)], capsys, "is a symbolic link")
    link = tmp_path / "link"
    link.symlink_to(victim)
    refused(base + ["--overwrite", "--out", str(link)], capsys, "is a symbolic link")
    assert _digests(victim) == before


# --------------------------------------------------------------------------- stale files

def test_stale_temporaries_are_cleaned_at_the_next_start(pca_run):
    parent = pca_run.parent
    stale_new = parent / ".r.elbokit-new-99999-0000aaaa"
    stale_new.mkdir()
    (stale_new / "model.json").write_text("{}")
    stale_old = parent / ".r.elbokit-old-99999-0000bbbb"
    stale_old.mkdir()
    (stale_old / "report.html").write_text("<html>kept</html>")
    (stale_old / "model.json").write_text("{}")  # the old run's: never carried
    (pca_run / ".model.json.abc123.json").write_text("half")
    assert main(PCA + ["--latent", "2", "--overwrite", "--out", str(pca_run)]) == 0
    _no_leftovers(parent)
    assert not list(pca_run.glob(".model.json.*"))
    assert (pca_run / "report.html").read_text() == "<html>kept</html>"
    assert load_model(pca_run).n_components == 2


# --------------------------------------------------------------------------- demo, compare

def test_demo_refuses_to_overwrite_saved_runs(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(PCA + ["--latent", "2", "--out", str(demo / "fa")]) == 0
    before = _digests(demo)
    refused(["demo", "--vae-epochs", "0", "--no-report", "--out", str(demo)], capsys,
                    "pass --overwrite")
    assert _digests(demo) == before and not (demo / "pca").exists()  # nothing fitted


def test_compare_holds_the_lock_of_its_table(tmp_path, capsys):
    """A second compare on one --out while another writes it: refused at once, nothing
    written (the table would lose the other's rows)."""
    from elbokit.runs import RunLock

    out = tmp_path / "c"
    with RunLock(out):
        refused(["compare", "--models", "pca", "--k", "5", "--out", str(out)], capsys,
                        "is being written by another elbokit process")
    assert list(out.iterdir()) == []


def test_a_checkpoint_write_error_is_one_line_naming_the_free_space(tmp_path):
    """ulimit -f below a checkpoint's size: the first checkpoint cannot be written."""
    done = _run_cli(VAE + ["--epochs", "1", "--out", str(tmp_path / "v")], env_limit=4000)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "cannot write the checkpoint of epoch 0" in err and "File too large" in err
    assert "free on its file system" in err, err
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("text", [textwrap.dedent("""\
    {"format_version": 2, "kind": "elbokit-run", "files": {"run.json": "nothex"}}""")])
def test_a_bad_manifest_is_one_line(pca_run, text):
    (pca_run / "manifest.json").write_text(text)
    with pytest.raises(ModelFileError, match="is not a run manifest"):
        load_model(pca_run)
