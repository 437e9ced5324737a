"""elbokit.persistence.model_file: the one model.json schema. Written by ``write``,
read by ``read``, which checks every common field, the tensor file's checksum and
header and the description digest before a tensor is read; a file of format version 1
is refused in one line."""

import json

import numpy as np
import pytest

from elbokit.exceptions import ModelFileError
from elbokit.persistence import FORMAT_VERSION, model_file, tensors

from conftest import edit_json, edit_model_json

TENSORS = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "mask": np.array([True, False])}


def _write(directory, **changes):
    fields = dict(kind="test", cls_name="Thing", settings={"size": (2, 3)},
                  fitted={"n_features_in_": np.int64(3), "scale_": np.float64(0.5),
                          "feature_names_in_": ["a", "b", "c"]},
                  history=[{"epoch": 1, "loss": float("nan")}], tensors=TENSORS,
                  extra={"note": "x"})
    return model_file.write(directory, **{**fields, **changes})


@pytest.fixture
def saved(tmp_path):
    return _write(tmp_path / "m")


def test_write_then_read_round_trips(saved):
    meta = json.loads((saved / "model.json").read_text())
    assert sorted(meta) == sorted(model_file.KEYS)
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "weights.safetensors"]
    record = model_file.read(saved, kind="test")
    assert (record.kind, record.cls_name, record.extra) == ("test", "Thing", {"note": "x"})
    assert record.settings == {"size": [2, 3]}  # tuples as lists, numpy scalars as numbers
    assert record.fitted == {"n_features_in_": 3, "scale_": 0.5,
                             "feature_names_in_": ["a", "b", "c"]}
    assert record.history == [{"epoch": 1, "loss": None}]  # NaN is written as null
    assert record.header == {"w": ("F32", (2, 3)), "mask": ("BOOL", (2,))}
    loaded = record.load_tensors()
    for name, array in TENSORS.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_torch_tensors_are_written_and_read_as_torch(tmp_path):
    torch = pytest.importorskip("torch")
    weights = {"layer.weight": torch.ones(4, 3), "layer.bias": torch.zeros(4)}
    _write(tmp_path / "m", tensors=weights)
    record = model_file.read(tmp_path / "m")
    assert record.meta["tensors"]["layer.weight"] == {"shape": [4, 3], "dtype": "float32"}
    loaded = record.load_tensors(torch=True)
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)


def test_a_version_1_file_is_refused_in_one_line(saved):
    edit_json(saved / "model.json", lambda m: m.update(format_version=1))
    with pytest.raises(ModelFileError, match="older elbokit .*refit") as error:
        model_file.read(saved)
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize("version, match", [(99, "newer"), ("2", "no integer"),
                                            (True, "no integer"), (None, "no integer")])
def test_other_versions_are_refused(saved, version, match):
    edit_json(saved / "model.json", lambda m: m.update(format_version=version))
    with pytest.raises(ModelFileError, match=match):
        model_file.read(saved)


def test_the_directory_and_json_are_checked(tmp_path):
    with pytest.raises(ModelFileError, match="model directory .* does not exist"):
        model_file.read(tmp_path / "absent")
    (tmp_path / "model.json").write_text('{"format_version": 2, "ki')
    with pytest.raises(ModelFileError, match="not valid JSON"):
        model_file.read(tmp_path)


@pytest.mark.parametrize("change, match", [
    (lambda m: m.update(evil={}), "unknown field"),
    (lambda m: m.pop("history"), "'history' must be a list"),
    (lambda m: m.update(kind=["test"]), "'kind' must be a string"),
    (lambda m: m.update(**{"class": None}), "'class' must be a string"),
    (lambda m: m.update(settings=[]), "'settings' must be an object"),
    (lambda m: m.update(fitted="x"), "'fitted' must be an object"),
    (lambda m: m.update(extra=[]), "'extra' must be an object"),
    (lambda m: m.update(tensors=[]), "'tensors' must be an object"),
    (lambda m: m.update(sha256="x"), "'sha256' must be an object"),
    (lambda m: m["sha256"].update(evil="0" * 64), "unknown field"),
    (lambda m: m["sha256"].update({"weights.safetensors": "../x"}), "hex SHA-256"),
    (lambda m: m["fitted"].pop("n_features_in_"), "n_features_in_"),
    (lambda m: m["fitted"].update(n_features_in_=True), "n_features_in_"),
    (lambda m: m["fitted"].update(n_features_in_=0), "n_features_in_"),
    (lambda m: m["fitted"].update(n_features_in_=2**50), "n_features_in_"),
    (lambda m: m["fitted"].update(feature_names_in_=["a"]), "1 names for 3"),
    (lambda m: m["fitted"].update(feature_names_in_=[1, 2, 3]), "list of strings"),
    (lambda m: m.update(history=[1]), "list of objects"),
    (lambda m: m.update(history=[{"loss": "1"}]), "must be a number"),
    (lambda m: m.update(history=[{"loss": True}]), "must be a number"),
    (lambda m: m["tensors"]["w"].update(dtype="object"), "numeric 'dtype'"),
    (lambda m: m["tensors"]["w"].update(shape=[-1, 3]), "non-negative"),
    (lambda m: m["tensors"]["w"].update(shape=[2**40]), "non-negative"),
    (lambda m: m["tensors"]["w"].update(evil=1), "numeric 'dtype'"),
    (lambda m: m["tensors"].update(w=[2, 3]), "numeric 'dtype'"),
    (lambda m: m["tensors"]["w"].update(shape=[3, 2]), r"shape \[2, 3\], model.json records"),
    (lambda m: m["tensors"]["w"].update(dtype="float64"), "dtype F32, model.json records"),
    (lambda m: m["tensors"].pop("mask"), "holds tensors"),
    (lambda m: m["tensors"].update(extra={"shape": [1], "dtype": "float32"}), "holds tensors"),
])
def test_every_common_field_is_checked_with_the_digest_recomputed(saved, change, match):
    edit_model_json(saved / "model.json", change)
    with pytest.raises(ModelFileError, match=match) as error:
        model_file.read(saved)
    assert len(str(error.value).splitlines()) == 1


def test_an_edited_description_is_caught_by_the_digest(saved):
    edit_json(saved / "model.json", lambda m: m["settings"].update(size=[3, 3]))
    with pytest.raises(ModelFileError, match="do not match their checksum"):
        model_file.read(saved)


def test_a_missing_digest_is_refused(saved):
    edit_json(saved / "model.json", lambda m: m["sha256"].pop("description"))
    with pytest.raises(ModelFileError, match="hex SHA-256 of 'description'"):
        model_file.read(saved)


def test_the_kind_asked_for_is_checked(saved):
    with pytest.raises(ModelFileError, match="kind 'test', not 'vae'"):
        model_file.read(saved, kind="vae")


def test_a_tensor_file_from_another_save_is_refused(saved, tmp_path):
    other = _write(tmp_path / "other", tensors={"w": np.zeros((2, 3), np.float32),
                                                "mask": np.array([True, True])})
    (saved / "weights.safetensors").write_bytes((other / "weights.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="does not match the checksum in model.json"):
        model_file.read(saved)
    (saved / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match="tensor file .* does not exist"):
        model_file.read(saved)


def test_no_tensor_is_read_before_every_check_passed(saved, monkeypatch):
    """read() touches the tensor file's checksum and header only; a header that claims
    a huge tensor is refused from the header, before any allocation."""
    def no_data(*args, **kwargs):
        raise AssertionError("tensor data read")

    monkeypatch.setattr(model_file, "read_safetensors", no_data)
    record = model_file.read(saved)
    assert set(record.header) == {"w", "mask"}
    with pytest.raises(AssertionError, match="tensor data read"):
        record.load_tensors()


def test_load_tensors_refuses_non_finite_values_and_what_does_not_fit(tmp_path, monkeypatch):
    _write(tmp_path / "m", tensors={"w": np.array([1.0, np.nan])})
    with pytest.raises(ModelFileError, match="'w' .* NaN or inf"):
        model_file.read(tmp_path / "m").load_tensors()
    from elbokit.persistence import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 10)
    with pytest.raises(ModelFileError, match="the tensors of .* needs .* GiB of memory"):
        model_file.read(tmp_path / "m").load_tensors()
    assert tensors.check_memory is memory.check_memory  # the one memory rule


def test_every_kind_writes_the_one_schema(tmp_path, digits):
    """A classical model, a VAE and an Autoencoder: the same fields, the same tensor
    file, read back by the same reader."""
    pytest.importorskip("torch")
    from elbokit import PCA, VAE, save_model
    from elbokit.nn import Autoencoder

    X = digits.train[:60]
    models = {"pca": PCA(2), "vae": VAE(2, hidden=(8,), epochs=1, progress=False, seed=0),
              "ae": Autoencoder(2, hidden=(8,), epochs=1, seed=0)}
    for kind, model in models.items():
        save_model(model.fit(X), tmp_path / kind)
        meta = json.loads((tmp_path / kind / "model.json").read_text())
        assert sorted(meta) == sorted(model_file.KEYS), kind
        # every kind's save is one commit: report's run.json and the manifest too
        assert sorted(p.name for p in (tmp_path / kind).iterdir()) == \
            ["manifest.json", "model.json", "run.json", "weights.safetensors"], kind
        record = model_file.read(tmp_path / kind, kind=kind)
        assert record.fitted["n_features_in_"] == 64, kind


def test_only_model_file_writes_model_json():
    """The schema is written in one place: no other module writes a model.json."""
    import pathlib
    import re

    import elbokit

    root = pathlib.Path(elbokit.__file__).parent
    writes = re.compile(r"write\w*\([^)]*MODEL_FILE")
    writers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if writes.search(p.read_text()))
    assert writers == ["persistence/model_file.py"]
