"""elbokit.persistence's files: every file name is defined once, every file of a model
directory is read once per load, and the shared helpers (checksums, safetensors
reading and writing, the model-file reader, description digests) word their errors
one way for every caller.
"""

import builtins
import json
import os
import pathlib
from collections import Counter

import numpy as np
import pytest

from elbokit import persistence
from elbokit.exceptions import ModelFileError
from elbokit.models import load_model, save_model

def test_file_names_are_defined_once():
    """The file names are constants of persistence.files alone; the modules that read
    and write run files take them from there, not from a copy of their own."""
    import re

    import elbokit
    from elbokit import runs

    for name in ("MODEL_FILE", "RUN_FILE", "METRICS_FILE", "read_run", "read_metrics"):
        assert getattr(runs, name) is getattr(persistence, name)
    assert {"metrics.json", "run.json", "model.json", "weights.safetensors"} <= \
        set(runs.RUN_FILES)
    root = pathlib.Path(elbokit.__file__).parent
    defining = re.compile(r"^(MODEL|WEIGHTS|CHECKPOINT|RUN|METRICS)_(FILE|NAME)\s*=",
                          re.MULTILINE)
    owners = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                    if defining.search(p.read_text()))
    assert owners == ["persistence/files.py"]


def test_io_is_gone():
    with pytest.raises(ImportError):
        import elbokit.io  # noqa: F401


# --------------------------------------------------------------------------- read once

@pytest.fixture
def file_reads(monkeypatch):
    """Counts, by file name, every Python-level read of a file: ``open`` and
    ``os.open`` for reading (checksums, safetensors headers, JSON) and ``Path.read_bytes``. safetensors' own data read
    (Rust, memory-mapped) is not counted: it is the one read of the data itself."""
    counts = Counter()
    real_open, real_read_bytes = builtins.open, pathlib.Path.read_bytes

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, pathlib.Path)):
            counts[pathlib.Path(file).name] += 1
        return real_open(file, *args, **kwargs)

    def counting_read_bytes(self):
        counts[self.name] += 1
        return real_read_bytes(self)

    real_os_open = os.open

    def counting_os_open(file, flags, *args, **kwargs):  # persistence's open_regular
        if flags & os.O_ACCMODE == os.O_RDONLY:
            counts[pathlib.Path(file).name] += 1
        return real_os_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(pathlib.Path, "read_bytes", counting_read_bytes)
    monkeypatch.setattr(os, "open", counting_os_open)
    return counts


def test_a_classical_load_reads_each_file_once(tmp_path, digits, file_reads):
    from elbokit import FactorAnalysis

    save_model(FactorAnalysis(3).fit(digits.train[:200]), tmp_path / "fa")
    file_reads.clear()
    model = load_model(tmp_path / "fa")
    assert model.n_components_ == 3
    # model.json once; the tensor file once for its checksum and once for its header
    assert file_reads["model.json"] == 1
    assert file_reads["weights.safetensors"] == 2


def test_a_vae_load_reads_each_file_once(tmp_path, digits, file_reads):
    pytest.importorskip("torch")
    from elbokit import VAE

    X = digits.train[:60]
    VAE(2, hidden=(8,), epochs=1, progress=False, seed=0).fit(X).save(tmp_path / "vae")
    file_reads.clear()
    loaded = load_model(tmp_path / "vae")
    assert loaded.transform(X).shape == (60, 2)
    assert file_reads["model.json"] == 1
    assert file_reads["weights.safetensors"] == 2


# --------------------------------------------------------------------------- helpers

def test_read_model_file_checks_directory_json_and_version(tmp_path):
    with pytest.raises(ModelFileError, match="model directory .* does not exist"):
        persistence.read_model_file(tmp_path / "absent")
    (tmp_path / "model.json").write_text(json.dumps({"format_version": 99, "kind": "pca"}))
    with pytest.raises(ModelFileError, match="format version 99, newer"):
        persistence.read_model_file(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"kind": "pca"}))
    with pytest.raises(ModelFileError, match="no integer 'format_version'"):
        persistence.read_model_file(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format_version": 1, "kind": "pca"}))
    with pytest.raises(ModelFileError, match="older elbokit .* refit the model$"):
        persistence.read_model_file(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format_version": 2, "kind": "pca"}))
    assert persistence.read_model_file(tmp_path) == {"format_version": 2, "kind": "pca"}


def test_check_checksum_words_missing_and_mismatched_files(tmp_path):
    path = tmp_path / "a.bin"
    with pytest.raises(ModelFileError, match=r"^array file .*a\.bin does not exist$"):
        persistence.check_checksum(path, "0" * 64, noun="array")
    path.write_bytes(b"elbokit")
    persistence.check_checksum(path, persistence.sha256_file(path))  # matches: no error
    with pytest.raises(ModelFileError, match="checksum in model.json; the files come from"):
        persistence.check_checksum(path, "0" * 64, recorded_in="in model.json")
    with pytest.raises(ModelFileError, match="checksum recorded next to it"):
        persistence.check_checksum(path, None)  # no record never matches


def test_safetensors_roundtrip_and_header(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, False])}
    path = tmp_path / "x.safetensors"
    persistence.save_arrays(path, arrays)
    header = persistence.read_safetensors_header(path)
    assert header == {"a": ("F32", (2, 3)), "b": ("BOOL", (2,))}
    assert persistence.header_bytes(header) == 2 * 3 * 4 + 2
    loaded = persistence.read_safetensors(path, header=header)
    assert set(loaded) == {"a", "b"}
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    np.testing.assert_array_equal(loaded["b"], arrays["b"])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_read_safetensors_refuses_what_does_not_fit_in_memory(tmp_path, monkeypatch):
    path = tmp_path / "x.safetensors"
    persistence.save_arrays(path, {"a": np.zeros(1000)})
    monkeypatch.setattr(persistence.memory, "available_memory", lambda: 1000)
    with pytest.raises(ModelFileError, match=r"the tensors of .* needs .* GiB"):
        persistence.read_safetensors(path, noun="tensor")


def test_a_failed_safetensors_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.safetensors"
    persistence.save_arrays(path, {"a": np.ones(3)})
    before = path.read_bytes()

    def broken_writer(tensors, tmp):
        pathlib.Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        persistence.write_safetensors(path, {"a": np.zeros(3)}, broken_writer)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_check_description_reads_the_digest_where_each_file_keeps_it(tmp_path):
    """model.json keeps it in ``sha256.description``, checkpoint.json beside it; None
    skips the check (model_file.read refuses a model.json without one), an edited
    field does not pass."""
    meta = {"architecture": {"hidden": [8]}, "sha256": {}}
    digest = persistence.description_digest(meta, ["architecture"])
    persistence.check_description(meta, ["architecture"], tmp_path)  # none recorded
    persistence.check_description(meta, ["architecture"], tmp_path, None)
    meta["sha256"]["description"] = digest
    persistence.check_description(meta, ["architecture"], tmp_path)
    persistence.check_description(meta, ["architecture"], tmp_path, digest)
    meta["architecture"]["hidden"] = [9]
    for recorded in ({}, {"recorded": digest}):
        with pytest.raises(ModelFileError, match=r"the fields \['architecture'\] do not "
                                                 "match their checksum"):
            persistence.check_description(meta, ["architecture"], tmp_path, *recorded.values())
