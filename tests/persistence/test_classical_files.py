"""The classical models' files (PCA, PPCA, FactorAnalysis, LinearAutoencoder, VBPCA) in
the one model.json schema: they round-trip, and every field and array of a careless or
hostile file gives a one-line ModelFileError (exit code 2 in the CLI), checked with
the description digest recomputed as an attacker would."""

import json
import warnings

import numpy as np
import pytest

from elbokit import PCA, PPCA, FactorAnalysis, LinearAutoencoder, load_model, save_model
from elbokit.exceptions import ModelFileError
from elbokit.persistence import sha256_file

from conftest import edit_json, edit_model_json
from conftest import one_line_exit_2 as _one_line_exit_2


@pytest.mark.parametrize("model", [PCA(4), PPCA(4), PPCA(4, solver="em", random_state=0),
                                   FactorAnalysis(4), LinearAutoencoder(4, random_state=0)])
def test_roundtrip_gives_identical_predictions(tmp_path, digits, model):
    model.fit(digits.train)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    # equal to round-off (BLAS may sum in another order for a C- vs F-ordered copy)
    np.testing.assert_allclose(loaded.score_samples(digits.test),
                               model.score_samples(digits.test), rtol=1e-12)
    np.testing.assert_allclose(loaded.transform(digits.test), model.transform(digits.test),
                               rtol=1e-12, atol=1e-12)
    assert loaded.get_params() == model.get_params()


def test_every_classical_kind_round_trips(tmp_path):
    from elbokit.data import load
    from elbokit.models import classical_registry

    X = load("digits").train[:150]
    for kind, cls in classical_registry().items():
        model = cls(2, max_iter=20) if kind in ("vbpca", "fa", "linear-ae") else cls(2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        save_model(model, tmp_path / kind)
        meta = json.loads((tmp_path / kind / "model.json").read_text())
        assert (meta["kind"], meta["class"], meta["history"]) == (kind, cls.__name__, [])
        assert meta["settings"] == model.get_params(deep=False)
        loaded = load_model(tmp_path / kind)
        assert np.allclose(loaded.score_samples(X[:5]), model.score_samples(X[:5])), kind


def test_feature_names_round_trip(tmp_path):
    """feature_names_in_ (numpy's object array of str, which safetensors cannot hold,
    set by scikit-learn when a model is fitted on a DataFrame) is saved as a JSON list."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    model = PCA(2).fit(wine.data)
    model.feature_names_in_ = np.asarray(wine.feature_names, dtype=object)
    save_model(model, tmp_path / "pca")
    meta = json.loads((tmp_path / "pca" / "model.json").read_text())
    assert meta["fitted"]["feature_names_in_"] == list(wine.feature_names)
    assert "feature_names_in_" not in meta["tensors"]
    loaded = load_model(tmp_path / "pca")
    assert loaded.feature_names_in_.dtype == object
    assert list(loaded.feature_names_in_) == list(wine.feature_names)
    assert np.allclose(loaded.transform(wine.data[:3]), model.transform(wine.data[:3]))


# --------------------------------------------------------------------------- hostile files

@pytest.fixture
def fa_dir(tmp_path):
    from elbokit.data import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FactorAnalysis(2, max_iter=50).fit(load("digits").train[:200])
    save_model(model, tmp_path / "fa")
    return tmp_path / "fa"


def test_a_version_1_file_is_refused(fa_dir, capsys):
    edit_json(fa_dir / "model.json", lambda m: m.update(format_version=1))
    with pytest.raises(ModelFileError, match="older elbokit"):
        load_model(fa_dir)
    _one_line_exit_2(["evaluate", str(fa_dir)], capsys, "refit the model")


def test_truncated_json_and_tensors_are_refused(fa_dir):
    weights = fa_dir / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(fa_dir)
    (fa_dir / "model.json").write_text('{"format_version": 2, "kin')
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(fa_dir)


def test_missing_directory(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nothing")


def _rewrite_tensors(directory, change) -> None:
    """Change the arrays and record the new file's checksum (and the digest)."""
    from safetensors.numpy import load_file, save_file

    path = directory / "weights.safetensors"
    arrays = load_file(str(path))
    change(arrays)
    save_file(arrays, str(path))
    edit_model_json(directory / "model.json", lambda m: m["sha256"].update(
        {"weights.safetensors": sha256_file(path)}))


@pytest.mark.parametrize("case, match", [
    ("nan-mean", "NaN"), ("zero-noise", "positive"), ("negative-noise", "positive"),
])
def test_arrays_with_bad_values_are_refused(fa_dir, case, match, capsys):
    def change(arrays):
        if case == "nan-mean":
            arrays["mean_"][3] = np.nan
        elif case == "zero-noise":
            arrays["noise_variance_"][0] = 0.0
        else:
            arrays["noise_variance_"][:] = -1.0

    _rewrite_tensors(fa_dir, change)
    with pytest.raises(ModelFileError, match=match):
        load_model(fa_dir)
    _one_line_exit_2(["evaluate", str(fa_dir)], capsys, match)


def test_a_tensor_file_from_another_save_is_refused(fa_dir, tmp_path, digits):
    save_model(FactorAnalysis(2, max_iter=5).fit(digits.train[:100]), tmp_path / "other")
    (fa_dir / "weights.safetensors").write_bytes(
        (tmp_path / "other" / "weights.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="does not match the checksum in model.json"):
        load_model(fa_dir)


@pytest.mark.parametrize("name", ["__class__", "__dict__", "_private_", "__init__", "a__b_",
                                  "components__", "n components_", "Upper_", "transform",
                                  "loadings_", "fit"])
def test_attribute_names_are_plain_fitted_names(fa_dir, name):
    edit_model_json(fa_dir / "model.json", lambda m: m["fitted"].update({name: 1}))
    with pytest.raises(ModelFileError, match="fitted attribute|not a fitted"):
        load_model(fa_dir)


def test_a_tensor_name_is_a_plain_fitted_name(fa_dir):
    def rename(arrays):
        arrays["__dict__"] = arrays.pop("mean_")

    _rewrite_tensors(fa_dir, rename)
    edit_model_json(fa_dir / "model.json", lambda m: m["tensors"].update(
        __dict__=m["tensors"].pop("mean_")))
    with pytest.raises(ModelFileError, match="not a fitted attribute"):
        load_model(fa_dir)


@pytest.mark.parametrize("change, match", [
    (lambda m: m["settings"].update(os_system=1), "no parameter"),
    (lambda m: m["settings"].update(n_components=[1]), "settings.n_components"),
    (lambda m: m["fitted"].update(n_features_in_="64"), "n_features_in_"),
    (lambda m: m["fitted"].update(n_components_=True), "n_components_"),
    (lambda m: m["fitted"].update(n_iter_=-1), "n_iter_"),
    (lambda m: m["fitted"].update(loglike_=["a"]), "list of numbers"),
    (lambda m: m["fitted"].update(noise_variance_=0), "positive"),
    (lambda m: m["fitted"].update(mean_=1.0), "scalar and an array"),
    (lambda m: m["fitted"].pop("n_components_"), "missing"),
    (lambda m: m["tensors"]["mean_"].update(dtype="object"), "numeric"),
    (lambda m: m["tensors"]["mean_"].update(dtype="float32"), "dtype"),
    (lambda m: m["fitted"].update(feature_names_in_=[1, 2]), "feature_names_in_"),
    (lambda m: m["fitted"].update(feature_names_in_=["a"]), "feature_names_in_"),
    (lambda m: m.update(extra=[]), "extra"),
    (lambda m: m.update(evil={}), "unknown field"),
    (lambda m: m.update(**{"class": "PCA"}), "class"),
    (lambda m: m.update(kind="os.system"), "unknown model kind"),
    (lambda m: m["fitted"].update(n_components_=7), "components_"),
    (lambda m: m["fitted"].update(n_features_in_=7), "mean_"),
])
def test_model_json_schema(fa_dir, change, match, capsys):
    edit_model_json(fa_dir / "model.json", change)
    with pytest.raises(ModelFileError, match=match):
        load_model(fa_dir)
    _one_line_exit_2(["evaluate", str(fa_dir)], capsys, "model.json")


@pytest.mark.parametrize("field, value", [("settings", {"max_iter": 7}),
                                          ("fitted", {"n_iter_": 1}),
                                          ("history", [{"loss": 1.0}])])
def test_an_edit_of_a_described_field_alone_is_caught_by_the_digest(fa_dir, field, value):
    edit_json(fa_dir / "model.json",
              lambda m: m[field].update(value) if field != "history" else m.update(history=value))
    with pytest.raises(ModelFileError, match="do not match their checksum"):
        load_model(fa_dir)


def test_nan_json_constants_are_refused(fa_dir):
    text = (fa_dir / "model.json").read_text()
    (fa_dir / "model.json").write_text(text.replace('"fitted": {', '"fitted": {"loss_": NaN, ',
                                                    1))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(fa_dir)


def test_no_pickle_on_any_load_path():
    """Loading must never unpickle: grep the source for the banned calls."""
    import pathlib
    import re

    import elbokit

    root = pathlib.Path(elbokit.__file__).parent
    banned = re.compile(r"pickle\.load|allow_pickle\s*=\s*True|torch\.load\((?![^)]*weights_only=True)")
    offenders = [f"{p}:{i}" for p in root.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if banned.search(line)]
    assert offenders == []
