"""Python's ``save`` is one commit, as ``elbokit fit`` is (issue 31, item 1): VAE.save,
Autoencoder.save and ``elbokit.save_model`` for every kind write model.json, the
tensors, run.json and manifest.json beside the directory and swap them in by one
rename. A file-size limit or a kill -9 during the save of a second model over a first
leaves the first loadable and matching its manifest; the user's other files survive;
a save of an older elbokit (no manifest) still loads."""

import os
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from elbokit.exceptions import ParameterError, SaveError
from elbokit.models import load_model, save_model
from elbokit.persistence import check_manifest

ROWS = np.random.default_rng(0).random((40, 300)).astype(np.float32)  # weights > 4 KiB


def _model(kind: str, latent: int):
    from elbokit.kinds import build_model

    options = {"epochs": 1} if kind in ("vae", "ae") else {}
    model = build_model(kind, latent, seed=0, **options)
    if kind in ("vae", "ae"):
        model.set_params(hidden=(8,))
    return model.fit(ROWS)


def _left(parent) -> list[str]:
    return [p.name for p in parent.iterdir() if ".elbokit-" in p.name]


@pytest.mark.parametrize("kind", ["pca", "ppca", "fa", "linear-ae", "vae", "ae"])
def test_a_saved_model_passes_its_manifest_and_loads_back(kind, tmp_path):
    model = _model(kind, 2)
    save_model(model, tmp_path / "m")
    assert sorted(check_manifest(tmp_path / "m")) == \
        ["model.json", "run.json", "weights.safetensors"]
    assert not _left(tmp_path)
    np.testing.assert_allclose(load_model(tmp_path / "m").transform(ROWS[:5]),
                               model.transform(ROWS[:5]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["pca", "vae"])
def test_a_file_size_limit_during_a_second_save_keeps_the_first(kind, tmp_path):
    """ulimit -f below the new weights: one line naming the file and the limit; the
    first save is untouched, still whole, and the user's file in it survives."""
    out = tmp_path / "m"
    save_model(_model(kind, 2), out)
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    second = _model(kind, 5)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(SaveError) as caught:
            save_model(second, out)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    line = str(caught.value)
    assert "\n" not in line and str(out) in line and "ulimit -f" in line
    assert "keeps the previous run" in line and ".elbokit-new-" not in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    check_manifest(out)
    assert load_model(out).latent_dim_ == 2 and not _left(tmp_path)


_KILL_AT = """
import os, signal, numpy as np
import elbokit.persistence.files as files
from elbokit import PCA, save_model
calls, real = [0], os.replace
def replace(a, b):  # the atomic write of each file of the save
    calls[0] += 1
    if calls[0] == {n}:
        os.kill(os.getpid(), signal.SIGKILL)
    real(a, b)
files.os.replace = replace
X = np.random.default_rng(0).random((40, 12))
save_model(PCA(5).fit(X), {out!r})
"""


@pytest.mark.parametrize("boundary", [1, 2, 3, 4])
def test_a_kill_at_each_file_of_a_second_save_keeps_the_first(boundary, tmp_path):
    """SIGKILL before the weights, model.json, run.json or manifest.json of the new
    save lands: the first save loads and matches its manifest; the next save cleans
    the staging directory the kill left."""
    out = tmp_path / "m"
    first = _model("pca", 2)
    save_model(first, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code = textwrap.dedent(_KILL_AT.format(n=boundary, out=str(out)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == -9, done.stderr[-500:]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    check_manifest(out)
    assert load_model(out).latent_dim_ == 2
    assert _left(tmp_path)  # the kill's staging directory, until the next save
    save_model(first, out)
    assert not _left(tmp_path)


def test_a_save_without_a_manifest_still_loads(tmp_path):
    """A model saved by an older elbokit has no manifest.json: it loads as before."""
    model = _model("fa", 2)
    save_model(model, tmp_path / "m")
    (tmp_path / "m" / "manifest.json").unlink()
    assert load_model(tmp_path / "m").latent_dim_ == 2


def test_a_symlink_or_a_file_is_refused_in_one_line(tmp_path):
    model = _model("pca", 2)
    save_model(model, tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("x")
    for name, words in (("link", "symbolic link"), ("file", "is a file")):
        with pytest.raises(ParameterError, match=words):
            save_model(model, tmp_path / name)
    assert (tmp_path / "file").read_text() == "x"
    check_manifest(tmp_path / "real")


def test_saving_into_the_working_directory_keeps_it_usable(tmp_path, monkeypatch):
    """save(".") swaps the directory itself: the process is moved into the new one."""
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path / "m")
    save_model(_model("pca", 2), ".")
    assert os.path.samefile(os.getcwd(), tmp_path / "m")
    assert sorted(check_manifest(".")) == ["model.json", "run.json", "weights.safetensors"]
