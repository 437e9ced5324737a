
import numpy as np
import pytest

from elbokit import PCA, PPCA, FactorAnalysis, LinearAutoencoder, load_model, save_model
from elbokit.exceptions import ModelFileError
from conftest import edit_json as _edit_json


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


@pytest.fixture
def saved(tmp_path, digits):
    save_model(FactorAnalysis(3).fit(digits.train), tmp_path / "m")
    return tmp_path / "m"


def test_newer_format_is_refused(saved):
    _edit_json(saved / "model.json", lambda m: m.update(format_version=99))
    with pytest.raises(ModelFileError, match="newer"):
        load_model(saved)


def test_truncated_json_and_arrays_are_refused(saved):
    arrays = saved / "arrays.safetensors"
    arrays.write_bytes(arrays.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(saved)
    (saved / "model.json").write_text('{"format_version": 1, "kin')
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(saved)


def test_tampered_shape_and_fields_are_refused(saved):
    _edit_json(saved / "model.json",
               lambda m: m["arrays"]["components_"].update(shape=[2, 2]))
    with pytest.raises(ModelFileError, match="components_"):
        load_model(saved)
    _edit_json(saved / "model.json", lambda m: m.update(kind="os.system"))
    with pytest.raises(ModelFileError, match="unknown model kind"):
        load_model(saved)


def test_missing_directory(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nothing")


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
