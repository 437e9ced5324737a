"""The bad-input matrix: every public entry point, fed each kind of bad input, raises
an exception of a documented type (``elbokit.ElbokitError`` subclasses; CLI: one line
on stderr, exit code 2) whose message names the problem, and leaves saved runs alone.
The "What happens with bad input" table of docs/guide/saved-models.md is this file in
prose."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

import elbokit
from elbokit import (PCA, PPCA, VAE, VBPCA, FactorAnalysis, LinearAutoencoder, load_model,
                     save_model)
from elbokit.cli import main
from conftest import edit_json as _json
from elbokit.exceptions import (DataError, DataFileNotFoundError, ElbokitError,
                                ModelFileError, ParameterError)

FACTORIES = {
    "pca": lambda: PCA(3),
    "ppca": lambda: PPCA(3),
    "ppca-em": lambda: PPCA(3, solver="em", random_state=0, max_iter=50),
    "fa": lambda: FactorAnalysis(3, max_iter=50),
    "linear-ae": lambda: LinearAutoencoder(3, random_state=0, max_iter=200),
    "vbpca": lambda: VBPCA(3, max_iter=20),
    "vae": lambda: VAE(3, epochs=1, hidden=(16,), progress=False),
}
ACCEPTS_NAN = {"ppca-em", "vbpca", "fa", "vae"}  # NaN as missing values (issues 12, 34)


@pytest.fixture(scope="module")
def X():
    return elbokit.data.load("digits").train[:120].astype(np.float64)


def _with(X, value):
    X = X.copy()
    X[3, 7] = value
    return X


BAD_FIT = {
    "nan": (lambda X: _with(X, np.nan), r"NaN.*row 3, column 7"),
    "inf": (lambda X: _with(X, np.inf), r"inf.*row 3, column 7"),
    "1-D": (lambda X: X[0], r"2-D array"),
    "3-D": (lambda X: X[:, :, None], r"2-D array"),
    "empty": (lambda X: X[:0], r"0 sample"),
    "single sample": (lambda X: X[:1], r"1 sample"),
    "strings": (lambda X: np.array([["a", "b"], ["c", "d"]]), r"string|numeric"),
}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("model", FACTORIES)
@pytest.mark.parametrize("case", BAD_FIT)
def test_fit_rejects_bad_arrays(X, model, case):
    make, message = BAD_FIT[case]
    if case == "nan" and model in ACCEPTS_NAN:
        FACTORIES[model]().fit(make(X))  # NaN is a missing value here
        return
    with pytest.raises(DataError, match=message):
        FACTORIES[model]().fit(make(X))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("model", [m for m in FACTORIES if m != "vae"])
def test_integer_and_boolean_arrays_are_data(X, model):
    """Integer and boolean arrays are accepted and read as floats (not an error)."""
    counts = np.rint(X * 16).astype(np.int64)
    a = FACTORIES[model]().fit(counts).score(counts)
    b = FACTORIES[model]().fit(counts.astype(np.float64)).score(counts.astype(np.float64))
    assert a == pytest.approx(b, rel=1e-6)
    flags = X > 0.5
    assert np.isfinite(FACTORIES[model]().fit(flags.astype(float) + 0.0).score(flags))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("model", FACTORIES)
def test_wrong_feature_count_after_fit(X, model):
    fitted = FACTORIES[model]().fit(X)
    method = fitted.encode if model == "vae" else fitted.transform
    for call in (method, fitted.score_samples):
        with pytest.raises(DataError, match=r"64"):
            call(X[:, :10])


def test_bernoulli_needs_values_in_unit_interval(X):
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        VAE(3, likelihood="bernoulli", epochs=1, progress=False).fit(X * 3)


@pytest.mark.parametrize("make, message", [
    (lambda: PCA(-1), "n_components must be >= 1"),
    (lambda: FactorAnalysis(0), "n_components must be >= 1"),
    (lambda: FactorAnalysis(3, rotation="equamax"), "rotation must be one of"),
    (lambda: FactorAnalysis(3, normalize="yes"), "normalize must be True or False"),
    (lambda: PPCA(3, solver="svd"), "solver must be one of"),
    (lambda: FactorAnalysis(3, max_iter=0), "max_iter must be >= 1"),
    (lambda: VAE(latent_dim=-1, progress=False), "latent_dim must be >= 1"),
    (lambda: VAE(3, epochs=0, progress=False), "epochs must be >= 1"),
    (lambda: VAE(3, likelihood="cauchy", progress=False), "likelihood must be one of"),
])
def test_invalid_hyper_parameters(X, make, message):
    with pytest.raises(ParameterError, match=message):
        make().fit(X)


# --------------------------------------------------------------------------- files


def _digest(directory: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(params=["fa", "vae"])
def saved(request, X, tmp_path):
    model = FACTORIES[request.param]().fit(X)
    save_model(model, tmp_path / "m")
    return tmp_path / "m", request.param


def test_newer_format_version(saved):
    directory, _ = saved
    _json(directory / "model.json", lambda m: m.update(format_version=1000))
    with pytest.raises(ModelFileError, match="newer"):
        load_model(directory)


def test_truncated_weights(saved):
    directory, kind = saved
    name = "weights.safetensors"
    path = directory / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ModelFileError):
        load_model(directory)


def test_truncated_or_tampered_json(saved):
    directory, _ = saved
    text = (directory / "model.json").read_text()
    (directory / "model.json").write_text(text[: len(text) // 2])
    with pytest.raises(ModelFileError, match="JSON"):
        load_model(directory)
    (directory / "model.json").write_text(text)
    _json(directory / "model.json", lambda m: m.update(kind="pickle"))
    with pytest.raises(ModelFileError, match="kind"):
        load_model(directory)


def test_tensor_of_the_wrong_shape_with_a_matching_checksum(saved):
    """An attacker who rewrites the array file and its checksum still cannot load a
    tensor of another shape."""
    from safetensors.numpy import load_file, save_file

    from elbokit.persistence import sha256_file

    directory, kind = saved
    name = "weights.safetensors"
    tensors = load_file(str(directory / name))
    key = sorted(k for k, v in tensors.items() if v.ndim == 2)[0]
    tensors[key] = np.zeros((tensors[key].shape[0] + 1, tensors[key].shape[1]),
                            tensors[key].dtype)
    save_file(tensors, str(directory / name))
    _json(directory / "model.json", lambda m: m["sha256"].update({name: sha256_file(
        directory / name)}))
    with pytest.raises(ModelFileError, match="shape"):
        load_model(directory)


def test_data_files(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\nthree,4\n")
    with pytest.raises(DataError, match="line 3, column 1"):
        elbokit.data.load(str(tmp_path / "bad.csv"))
    with pytest.raises(DataFileNotFoundError):
        elbokit.data.load(str(tmp_path / "missing.npy"))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match="truncated"):
        elbokit.data.read_idx(tmp_path / "train-images-idx3-ubyte")
    (tmp_path / "x").write_bytes(b"\x89PNG....")
    with pytest.raises(DataError, match="not an IDX file"):
        elbokit.data.read_idx(tmp_path / "x")


# --------------------------------------------------------------------------- CLI

CLI_CASES = [
    (["fit", "fa", "--latent", "-2"], "n_components must be >= 1"),
    (["fit", "vae", "--latent", "3", "--epochs", "0"], "epochs must be >= 1"),
    (["fit", "vae", "--latent", "3", "--likelihood", "cauchy"], "likelihood must be one of"),
    (["fit", "vae", "--latent", "3", "--on-nan", "retry"], "on_nan must be one of"),
    (["fit", "pca", "--data", "nowhere.csv"], "does not exist"),
    (["fit", "pca", "--data", "{bad_csv}"], "non-numeric cell"),
    (["fit", "pca", "--data", "{nan_npy}"], "NaN"),
    (["evaluate", "{run}", "--data", "{wide_npy}"], "features"),
    (["evaluate", "{tmp}/no-run"], "does not exist"),
    (["sample", "{run}", "-n", "0"], "-n must be >= 1"),
]


@pytest.mark.parametrize("argv, message", CLI_CASES)
def test_cli_errors_are_one_line_exit_2_and_leave_runs_unchanged(tmp_path, capsys, argv,
                                                                  message):
    run = tmp_path / "run"
    assert main(["fit", "pca", "--latent", "2", "--out", str(run)]) == 0
    (tmp_path / "bad.csv").write_text("a,b\n1,oops\n")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]]))
    np.save(tmp_path / "wide.npy", np.random.default_rng(0).random((10, 3)))
    capsys.readouterr()
    before = _digest(run)
    paths = {"bad_csv": tmp_path / "bad.csv", "nan_npy": tmp_path / "nan.npy",
             "wide_npy": tmp_path / "wide.npy", "run": run, "tmp": tmp_path}
    argv = [a.format(**paths) for a in argv]
    if argv[0] == "fit":
        argv += ["--out", str(run), "--overwrite"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert _digest(run) == before


def test_every_error_type_is_an_elbokit_error():
    for cls in (DataError, DataFileNotFoundError, ModelFileError, ParameterError):
        assert issubclass(cls, ElbokitError)
