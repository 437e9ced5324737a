"""Text and small cases (issue 31): a CSV first row of missing-value tokens, NaN through
``evaluate`` for the models that accept it, bits/dim with missing entries, an --out
inside the image folder being read, ``report`` on a few images per class and on a
conditional VAE fitted on a table, and the Python API's bad arguments (each a one-line
elbokit error, never a foreign exception or a silent acceptance)."""

import math

import numpy as np
import pytest

from elbokit.cli import main
from elbokit.data import load
from elbokit.exceptions import DataError

VAE_FAST = ["--latent", "2", "--hidden", "8", "--epochs", "1", "--no-progress"]


def one_line(capsys, argv, *parts) -> str:
    capsys.readouterr()
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and all(p in lines[0] for p in parts), lines
    return lines[0]


def metric(out: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in out.splitlines()
                if line.split() and line.split()[0] == name)


@pytest.fixture
def table_with_nan(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))
    X[rng.random(X.shape) < 0.15] = np.nan
    path = tmp_path / "t.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c,d,e", comments="")
    return path, X


# --------------------------------------------------------------------------- CSV text

@pytest.mark.parametrize("first", ["NA,null", "nan,N/A", ",", " NA , NULL "])
@pytest.mark.parametrize("allow_nan", [False, True])
def test_a_first_row_of_missing_value_tokens_is_refused_not_read_as_nan(tmp_path, first,
                                                                         allow_nan):
    """Neither a header (it names nothing) nor data (no value): it was a row of NaN."""
    path = tmp_path / "na.csv"
    path.write_text(first + "\n1,2\n3,4\n5,6\n")
    with pytest.raises(DataError, match="line 1, the first, holds only missing-value") as err:
        load(str(path), allow_nan=allow_nan)
    assert "\n" not in str(err.value)


def test_a_header_with_one_name_among_missing_tokens_is_still_a_header(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("height,NA\n1,2\n3,4\n5,6\n")
    data = load(str(path), test_fraction=0.0)
    assert data.feature_names == ["height", "NA"] and data.train.shape == (3, 2)
    assert not np.isnan(data.train).any()


# --------------------------------------------------------------------------- NaN, bits/dim

@pytest.mark.parametrize("fit", [["fa", "--latent", "2"], ["ppca", "--latent", "2",
                                                          "--solver", "em"],
                                 ["vbpca", "--max-latent", "3"]])
def test_evaluate_takes_nan_for_the_models_that_accept_it(tmp_path, capsys, table_with_nan,
                                                          fit):
    """Every row scored, the share missing said; bits/dim per *observed* entry:
    -sum_i log p(x_i,obs) / (count of observed entries * ln 2), not / (n d ln 2)."""
    path, X = table_with_nan
    out = tmp_path / "r"
    assert main(["fit", *fit, "--data", str(path), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(path)]) == 0
    printed = capsys.readouterr().out
    assert metric(printed, "n_rows") == 60
    assert metric(printed, "missing_share") == pytest.approx(np.isnan(X).mean(), abs=1e-3)
    observed = np.count_nonzero(~np.isnan(X))
    expected = -metric(printed, "loglike") * 60 / (observed * math.log(2))
    assert metric(printed, "bits_per_dim") == pytest.approx(expected, abs=2e-3)


def test_a_model_that_refuses_nan_says_which_accept_it(tmp_path, capsys, table_with_nan):
    path, _ = table_with_nan
    complete = tmp_path / "c.csv"
    np.savetxt(complete, np.random.default_rng(1).normal(size=(30, 5)), delimiter=",",
               header="a,b,c,d,e", comments="")
    assert main(["fit", "pca", "--latent", "2", "--data", str(complete),
                 "--out", str(tmp_path / "p")]) == 0
    one_line(capsys, ["evaluate", str(tmp_path / "p"), "--data", str(path)],
             "missing value", "FA, PPCA solver='em', VBPCA")


def test_bits_per_dim_and_reconstruction_error_count_the_observed_entries(table_with_nan):
    from elbokit import FactorAnalysis
    from elbokit.evaluate import reconstruction_error

    _, X = table_with_nan
    model = FactorAnalysis(2, random_state=0).fit(X)
    observed = ~np.isnan(X)
    expected = -model.score_samples(X).sum() / (observed.sum() * math.log(2))
    assert model.bits_per_dim(X) == pytest.approx(expected, rel=1e-9)
    complete = np.where(observed, X, model.reconstruct(X))  # the gaps filled by the model
    assert model.bits_per_dim(complete) == pytest.approx(
        -model.score(complete) / (5 * math.log(2)), rel=1e-9)
    error = reconstruction_error(model, X)  # was NaN with a missing entry
    squared = np.where(observed, (X - model.reconstruct(X)) ** 2, 0.0)
    assert error == pytest.approx(np.mean(squared.sum(1) / observed.sum(1)) * 5, rel=1e-9)
    assert reconstruction_error(model, complete) == pytest.approx(
        np.mean(((complete - model.reconstruct(complete)) ** 2).sum(1)), rel=1e-9)


# --------------------------------------------------------------------------- image folders

@pytest.fixture
def few_images(tmp_path):
    """Three classes of two 8x8 images each: a class's only training image, or its only
    test image, is common."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    for name in ("cat", "dog", "owl"):
        (folder / name).mkdir(parents=True)
        for i in range(2):
            pixels = (rng.random((8, 8)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    return folder


def test_out_inside_the_image_folder_being_read_is_refused(tmp_path, capsys, few_images):
    inside = few_images / "run"
    one_line(capsys, ["fit", "pca", "--latent", "2", "--data", str(few_images),
                      "--out", str(inside)], "lies inside the image folder")
    assert not inside.exists()
    assert main(["fit", "pca", "--latent", "2", "--data", str(few_images),
                 "--out", str(tmp_path / "r")]) == 0
    (tmp_path / "r").rename(inside)  # a run moved in: its figures would become a class
    one_line(capsys, ["evaluate", str(inside), "--data", str(few_images)],
             "is an elbokit run directory", "move it out of")


def test_report_on_a_few_images_per_class(tmp_path, capsys, few_images):
    """Latent arithmetic needs a class with test images beside another class; with two
    images a class the report draws it from the classes that have them, or leaves it."""
    out = tmp_path / "v"
    assert main(["fit", "vae", *VAE_FAST, "--data", str(few_images), "--out", str(out)]) == 0
    assert main(["report", str(out), "--data", str(few_images)]) == 0
    assert (out / "report.html").is_file() and (out / "figures" / "samples.png").is_file()


def test_latent_arithmetic_pair_has_test_rows():
    from elbokit.plots.images import arithmetic_pair

    assert arithmetic_pair([0, 0, 0, 1, 1, 2], [1, 2]) == (0, 1)  # the usual pair
    assert arithmetic_pair([0, 0, 0, 1, 1, 2], [2]) == (0, 2)  # 1 has no test row
    assert arithmetic_pair([0, 0, 1], [0]) == (1, 0)
    assert arithmetic_pair([0, 0, 1], [3]) is None


def test_report_on_a_conditional_vae_fitted_on_a_table(tmp_path, capsys):
    """Its reconstructions need the labels: the error figure and table given the test
    labels, the training curve; no latent scatter of codes drawn without them."""
    rng = np.random.default_rng(0)
    data = tmp_path / "lab.npz"
    np.savez(data, X=rng.random((80, 6)), y=np.arange(80) % 3)
    out = tmp_path / "cv"
    assert main(["fit", "vae", *VAE_FAST, "--condition-on", "labels", "--data", str(data),
                 "--out", str(out)]) == 0
    assert main(["report", str(out), "--data", str(data)]) == 0
    page = (out / "report.html").read_text()
    assert "given its label" in page and "per-feature table" in page
    assert {p.name for p in (out / "figures").iterdir()} >= {"reconstruction_error.png",
                                                             "curves.png"}


# --------------------------------------------------------------------------- the Python API

def _linear_models():
    from elbokit import PCA, PPCA, VBPCA, FactorAnalysis, LinearAutoencoder

    return [PCA, PPCA, FactorAnalysis, VBPCA, LinearAutoencoder]


@pytest.mark.parametrize("cls", _linear_models()[1:], ids=lambda c: c.__name__)  # PCA: none
@pytest.mark.parametrize("seed", ["x", 2.5, -1, float("nan"), {}])
def test_a_bad_random_state_is_a_parameter_error(cls, seed):
    """scikit-learn's check_random_state raised its bare ValueError (VBPCA, the linear
    AE), and PPCA's closed form took any seed without a look."""
    from elbokit.exceptions import ParameterError

    X = np.random.default_rng(0).random((40, 4))
    with pytest.raises(ParameterError, match="random_state must be"):
        cls(2, random_state=seed).fit(X)


@pytest.mark.parametrize("cls", _linear_models(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", ["no", -1, [1], None, float("nan")])
def test_a_switch_that_is_not_a_bool_is_refused(cls, value):
    """standardize="no" (or -1, [1]) was taken as True in silence; PCA's whiten too."""
    from elbokit.exceptions import ParameterError

    X = np.random.default_rng(0).random((40, 4))
    with pytest.raises(ParameterError, match="standardize must be True or False"):
        cls(2, standardize=value).fit(X)
    if cls.__name__ == "PCA":
        with pytest.raises(ParameterError, match="whiten must be True or False"):
            cls(2, whiten=value).fit(X)


def test_other_bad_arguments_of_the_linear_models_are_one_line_errors():
    import warnings

    from elbokit import PCA, PPCA, FactorAnalysis, LinearAutoencoder
    from elbokit.exceptions import ElbokitError

    X = np.random.default_rng(0).random((40, 4))
    fitted = PCA(2).fit(X)
    cases = {  # each was a foreign exception
        "unhashable solver (TypeError)": lambda: PPCA(2, solver=[1]).fit(X),
        "unhashable rotation (TypeError)": lambda: FactorAnalysis(2, rotation={}).fit(X),
        "a floor above every variance (scipy's AttributeError: nit)":
            lambda: FactorAnalysis(2, min_noise_variance=2.5).fit(X),
        "a diverging learning rate (ValueError: infs or NaNs)":
            lambda: LinearAutoencoder(2, learning_rate=2.5, max_iter=200).fit(X),
        "sample(10**12) (MemoryError)": lambda: fitted.sample(10**12),
        "a bad sample seed (ValueError)": lambda: fitted.sample(2, random_state="x"),
        "complex data (a many-line message)": lambda: fitted.transform(X + 1j),
    }
    for name, call in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ElbokitError) as err:
                call()
        assert "\n" not in str(err.value), name
