"""AnnData into every estimator (issue 32): ``fit(adata, layer=...)`` fits the layer and
remembers it for ``transform``/``score``, ``y=`` names an obs column (a conditional
VAE's labels or covariates), var_names become ``feature_names_in_``; bad names are
one-line errors listing what there is. A sparse X trains the VAE a minibatch at a time
with the same numbers as its dense copy. The CLI's ``--layer``/``--labels``, and the
report's sentence where it draws no parallel-analysis scree. Every file is written here."""

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from elbokit import PCA, PPCA, VBPCA, FactorAnalysis, LinearAutoencoder
from elbokit.cli import main
from elbokit.cli.common import DATA_HELP
from elbokit.exceptions import DataError, ParameterError
from elbokit.nn import VAE, Autoencoder

anndata = pytest.importorskip("anndata")

N_CELLS, N_GENES = 80, 10
TINY = dict(epochs=3, hidden=(8,), seed=0, progress=False)


@pytest.fixture(scope="module")
def adata():
    """Counts in a "counts" layer, their log1p as X; a cell type, a batch and a depth."""
    rng = np.random.default_rng(0)
    rate = np.exp(0.5 + 0.7 * rng.normal(size=(N_CELLS, 2)) @ rng.normal(size=(2, N_GENES)))
    counts = rng.poisson(rate).astype(np.float32)
    obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice(["B", "NK", "T"], N_CELLS)),
                        "batch": rng.choice(["a", "b"], N_CELLS),
                        "depth": rng.normal(size=N_CELLS)},
                       index=[f"cell{i}" for i in range(N_CELLS)])
    var = pd.DataFrame(index=[f"Gene{j}" for j in range(N_GENES)])
    result = anndata.AnnData(X=np.log1p(counts), obs=obs, var=var)
    result.layers["counts"] = sparse.csr_matrix(counts)
    return result


def _counts(adata):
    return adata.layers["counts"].toarray()


pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names",
                                        "ignore::UserWarning:elbokit")

ESTIMATORS = [lambda: PCA(2), lambda: PPCA(2), lambda: FactorAnalysis(2, random_state=0),
              lambda: LinearAutoencoder(2, random_state=0), lambda: VBPCA(2, random_state=0),
              lambda: VAE(2, **TINY),
              lambda: Autoencoder(2, likelihood="gaussian", epochs=3, hidden=(8,))]


@pytest.mark.parametrize("make", ESTIMATORS,
                         ids=["PCA", "PPCA", "FA", "LinearAE", "VBPCA", "VAE", "AE"])
def test_every_estimator_fits_the_layer_and_reads_it_again(make, adata):
    layer = adata.layers["counts"]  # sparse, as the layer is stored
    model = make().fit(adata, layer="counts")
    reference = make().fit(layer)  # the same numbers as the layer's own matrix
    assert model.layer_ == "counts"
    assert list(model.feature_names_in_) == list(adata.var_names)
    # transform and score read the fitted layer of the AnnData, not its X
    np.testing.assert_allclose(model.transform(adata), reference.transform(layer),
                               rtol=1e-5, atol=1e-5)
    assert model.score(adata) == pytest.approx(reference.score(layer), rel=1e-5)


def test_names_that_are_not_there_are_one_line_errors_that_list_the_choices(adata):
    with pytest.raises(DataError, match=r"no layer 'raw'; its layers: \['counts'\]"):
        PCA(2).fit(adata, layer="raw")
    with pytest.raises(DataError, match=r"no column 'celltype'; its columns: .*cell_type"):
        VAE(2, conditional=True, **TINY).fit(adata, y="celltype")
    with pytest.raises(ParameterError, match="layer='counts' names a layer of an AnnData"):
        FactorAnalysis(2).fit(_counts(adata), layer="counts")
    with pytest.raises(DataError, match="names an obs column: X must then be an AnnData"):
        VAE(2, conditional=True, **TINY).fit(_counts(adata), y="cell_type")
    model = PCA(2).fit(adata, layer="counts")
    assert model.score(adata) != pytest.approx(model.score(np.asarray(adata.X)), rel=1e-3)
    # refitted on X, the layer is forgotten: transform reads X again
    np.testing.assert_allclose(PCA(2).fit(adata).transform(adata),
                               PCA(2).fit(np.asarray(adata.X)).transform(np.asarray(adata.X)))
    assert not hasattr(PCA(2).fit(adata, layer="counts").fit(adata), "layer_")
    without = anndata.AnnData(X=np.asarray(adata.X), var=adata.var)  # no "counts" layer
    with pytest.raises(DataError, match="no layer 'counts'"):
        model.transform(without)
    # a failed fit leaves no attribute that makes the model look fitted
    fresh = PCA(2)
    with pytest.raises(DataError):
        fresh.fit(adata, layer="raw")
    assert not [name for name in vars(fresh) if name.endswith("_")]


def test_an_obs_column_conditions_the_vae_and_is_remembered(adata):
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    vae = VAE(2, conditional=True, **TINY).fit(adata, y="cell_type", layer="counts")
    assert vae.y_column_ == "cell_type" and list(vae.classes_) == ["B", "NK", "T"]
    same = VAE(2, conditional=True, **TINY).fit(_counts(adata), labels)
    # transform(adata) reads the fitted column: the same codes as given the labels
    np.testing.assert_allclose(vae.transform(adata), same.encode(_counts(adata), y=labels),
                               rtol=1e-5, atol=1e-6)
    assert vae.score(adata) == pytest.approx(same.score(_counts(adata), labels), rel=1e-5)
    # a batch column is a covariate through the same path; a float column a (n, 1) one
    batch = VAE(2, conditional=True, **TINY).fit(adata, y="batch", layer="counts")
    assert list(batch.classes_) == ["a", "b"]
    depth = VAE(2, conditional=True, **TINY).fit(adata, y="depth", layer="counts")
    assert depth.classes_ is None and depth.n_condition_ == 1
    both = VAE(2, conditional=True, **TINY).fit(adata, y=["batch", "depth"], layer="counts")
    assert both.n_condition_ == 3  # batch one-hot (2) and depth


def test_a_sparse_matrix_trains_the_vae_with_the_numbers_of_its_dense_copy(adata):
    X = adata.layers["counts"]
    assert sparse.issparse(X)
    from_sparse = VAE(2, **TINY).fit(X)
    from_dense = VAE(2, **TINY).fit(X.toarray())
    for a, b in zip(from_sparse.history_, from_dense.history_):
        assert a["train_elbo"] == pytest.approx(b["train_elbo"], rel=1e-6)
        assert a["val_elbo"] == pytest.approx(b["val_elbo"], rel=1e-6)
    np.testing.assert_array_equal(from_sparse.validation_rows_, from_dense.validation_rows_)
    # evaluation of sparse rows: batches densified, the same numbers
    np.testing.assert_allclose(from_sparse.score_samples(X), from_dense.score_samples(X.toarray()),
                               rtol=1e-6)
    np.testing.assert_allclose(from_sparse.log_likelihood_samples(X, n_importance=20),
                               from_dense.log_likelihood_samples(X.toarray(), n_importance=20),
                               rtol=1e-6)
    np.testing.assert_allclose(from_sparse.reconstruct(X), from_dense.reconstruct(X.toarray()),
                               rtol=1e-5)
    # a conditional VAE on sparse rows: y appended as sparse columns
    labels = adata.obs["batch"].to_numpy()
    conditional = VAE(2, conditional=True, **TINY)
    assert conditional.fit(X, labels).score(X, labels) == pytest.approx(
        VAE(2, conditional=True, **TINY).fit(X.toarray(), labels).score(X.toarray(), labels),
        rel=1e-6)


def test_a_sparse_matrix_with_nan_or_static_binarization_is_refused(adata):
    X = adata.layers["counts"].copy()
    X.data[0] = np.nan
    with pytest.raises(DataError, match="non-finite stored value"):
        VAE(2, **TINY).fit(X)
    binary = sparse.csr_matrix((adata.layers["counts"].toarray() > 0).astype(np.float32))
    with pytest.raises(ParameterError, match="binarize='dynamic'"):
        VAE(2, binarize="static", **TINY).fit(binary)


# --------------------------------------------------------------------------- the CLI

def test_cli_fits_an_h5ad_layer_and_evaluate_reads_it_again(adata, tmp_path, capsys):
    import json

    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    out = tmp_path / "pca"
    assert main(["fit", "pca", "--data", str(path), "--layer", "counts", "--labels", "batch",
                 "--latent", "2", "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["load_options"] == {"layer": "counts", "labels": "batch"}
    assert run["target_names"] == ["a", "b"]
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(path)]) == 0  # the run's layer
    assert "data: the data the run was fitted on" in capsys.readouterr().out  # by digest
    assert main(["fit", "pca", "--data", str(path), "--layer", "raw", "--out",
                 str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err.strip()
    assert "no layer 'raw'; its layers: ['counts']" in error and "\n" not in error


def test_the_data_option_names_every_format_read():
    for name in (".h5ad", ".mtx", "10x folder", ".npz", "save_npz", ".csv", ".tsv", ".csv.gz",
                 "PNG/JPEG", "IDX"):
        assert name in DATA_HELP, name


# --------------------------------------------------------------------------- the report

def test_the_report_says_why_it_draws_no_parallel_analysis_scree(tmp_path):
    from elbokit.plots.tables import MAX_PARALLEL_FEATURES, parallel_scree_omitted

    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 30))  # fewer rows than features
    csv = tmp_path / "wide.csv"
    csv.write_text("\n".join([",".join(f"f{j}" for j in range(30))]
                             + [",".join(f"{v:.4f}" for v in row) for row in X]) + "\n")
    out = tmp_path / "pca"
    assert main(["fit", "pca", "--data", str(csv), "--latent", "2", "--test-fraction", "0.2",
                 "--out", str(out)]) == 0
    assert main(["report", str(out), "--data", str(csv)]) == 0
    page = (out / "report.html").read_text()
    assert 'id="figure-scree"' not in page
    assert ("No parallel-analysis scree: the 16 complete training rows are no more than the "
            "30 features") in page
    assert "more than the 500" in parallel_scree_omitted(1000, MAX_PARALLEL_FEATURES + 1)
    assert parallel_scree_omitted(1000, MAX_PARALLEL_FEATURES) is None
    assert parallel_scree_omitted(31, 30) is None


def test_a_saved_model_reads_the_same_layer_and_column_after_loading(adata, tmp_path):
    import json

    from elbokit._anndata import restore_keys
    from elbokit.exceptions import ModelFileError
    from elbokit.models import load_model, save_model

    pca = PCA(2).fit(adata, layer="counts")
    vae = VAE(2, conditional=True, **TINY).fit(adata, y="batch", layer="counts")
    for name, model in (("pca", pca), ("vae", vae)):
        save_model(model, tmp_path / name)
        loaded = load_model(tmp_path / name)
        assert loaded.layer_ == "counts"
        np.testing.assert_allclose(loaded.transform(adata), model.transform(adata), rtol=1e-6)
    assert load_model(tmp_path / "vae").y_column_ == "batch"
    assert json.loads((tmp_path / "vae" / "model.json").read_text())["fitted"]["layer_"] \
        == "counts"
    with pytest.raises(ModelFileError, match="fitted.layer_' must be a layer name"):
        restore_keys(VAE(), {"layer_": ["counts"]}, "model.json")  # not a name
