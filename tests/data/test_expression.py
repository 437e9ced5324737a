"""Expression data in (issue 32 item 1): AnnData (.h5ad and in memory), scipy sparse
matrices (in memory and save_npz), .mtx with 10x's genes/barcodes, 10x folders, .tsv
and .csv.gz tables; names and labels from every format that has them; sparse kept
sparse in the covariance pass of PCA/FA/PPCA. Every file writes itself here."""

import gzip
import io

import numpy as np
import pandas as pd
import pytest
import scipy.io
from scipy import sparse

from elbokit import PCA, PPCA, VBPCA, FactorAnalysis
from elbokit.cli import main
from elbokit.data import _reading, load
from elbokit.exceptions import DataError
from elbokit.persistence import memory

anndata = pytest.importorskip("anndata")

N_CELLS, N_GENES = 60, 12
GENES = [f"Gene{j}" for j in range(N_GENES)]


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)  # two programmes of genes: a low-rank log rate
    log_rate = 1.0 + 0.6 * rng.normal(size=(N_CELLS, 2)) @ rng.normal(size=(2, N_GENES))
    dense = rng.poisson(np.exp(log_rate)).astype(np.float64)
    return sparse.csr_matrix(dense)


def _write_mtx(path, matrix):
    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, sparse.coo_matrix(matrix))
    data = buffer.getvalue()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _write_lines(path, lines):
    text = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)


def _ten_x(folder, counts, *, gz=True, n_genes=N_GENES):
    folder.mkdir()
    z = ".gz" if gz else ""
    _write_mtx(folder / f"matrix.mtx{z}", counts.T)  # 10x: genes x barcodes
    _write_lines(folder / f"features.tsv{z}",
                 [f"ENSG{j:05d}\t{GENES[j]}\tGene Expression" for j in range(n_genes)])
    _write_lines(folder / f"barcodes.tsv{z}", [f"AAAC{i:04d}-1" for i in range(N_CELLS)])
    return folder


def _adata(counts):
    rng = np.random.default_rng(1)
    cell_types = pd.Categorical(rng.choice(["B", "NK", "T"], N_CELLS))
    obs = pd.DataFrame({"cell_type": cell_types, "batch": rng.choice(["a", "b"], N_CELLS)},
                       index=[f"c{i}" for i in range(N_CELLS)])
    adata = anndata.AnnData(X=np.log1p(counts.toarray()), obs=obs,
                            var=pd.DataFrame(index=GENES))
    adata.layers["counts"] = counts.copy()
    return adata


def _rows(dataset):
    return np.vstack([dataset.train, dataset.test])


def _same_rows(a, b):
    """The same multiset of rows (the split shuffles them)."""
    key = lambda m: m[np.lexsort(m.T[::-1])]  # noqa: E731
    return a.shape == b.shape and np.allclose(key(a), key(b))


# --------------------------------------------------------------------------- files

def test_a_bare_mtx_reads_rows_as_samples(tmp_path, counts):
    _write_mtx(tmp_path / "m.mtx", counts)
    data = load(str(tmp_path / "m.mtx"))
    assert _same_rows(_rows(data), counts.toarray()) and data.feature_names is None


@pytest.mark.parametrize("gz", [True, False])
def test_a_10x_folder_is_cells_by_genes_named_by_symbol(tmp_path, counts, gz):
    folder = _ten_x(tmp_path / "filtered_feature_bc_matrix", counts, gz=gz)
    data = load(str(folder), test_fraction=0)
    assert np.array_equal(data.train, counts.toarray())  # transposed back, file order
    assert data.feature_names == GENES
    # the .mtx inside the folder, named directly, reads the same
    inner = load(str(folder / ("matrix.mtx.gz" if gz else "matrix.mtx")), test_fraction=0)
    assert inner.feature_names == GENES and np.array_equal(inner.train, data.train)


def test_names_that_do_not_match_the_matrix_are_one_line(tmp_path, counts):
    folder = _ten_x(tmp_path / "tenx", counts, n_genes=N_GENES - 1)
    with pytest.raises(DataError, match=r"is 12 x 60 but features\.tsv\.gz names 11 genes"):
        load(str(folder))


def test_a_10x_folder_without_barcodes_is_named(tmp_path, counts):
    folder = _ten_x(tmp_path / "tenx", counts)
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(DataError, match="needs features.tsv .* and barcodes.tsv"):
        load(str(folder))


def test_an_mtx_claiming_more_entries_than_it_holds_is_refused(tmp_path, counts):
    path = tmp_path / "short.mtx"
    _write_mtx(path, counts)
    lines = path.read_text().splitlines()
    size = next(i for i, line in enumerate(lines) if not line.startswith("%"))
    lines[size] = f"{N_CELLS} {N_GENES} 10000000"
    path.write_text("\n".join(lines[:size + 5]) + "\n")
    with pytest.raises(DataError, match="gives 10000000 entries but the file holds"):
        load(str(path))


def test_an_mtx_larger_than_memory_is_refused_before_reading(tmp_path, counts, monkeypatch):
    path = tmp_path / "huge.mtx.gz"
    _write_lines(path, ["%%MatrixMarket matrix coordinate integer general",
                        "1000000 100000 1", "1 1 5"])
    monkeypatch.setattr(_reading.memory, "available_memory", lambda: 2**30)
    with pytest.raises(DataError, match=r"shape \(1000000, 100000\) as a dense array needs"):
        load(str(path))


@pytest.mark.parametrize("entry, message", [("61 1 5", "index lies outside the 60 x 12"),
                                            ("1 x 5", "cannot be read as Matrix Market")])
def test_a_bad_mtx_entry_is_one_line(tmp_path, entry, message):
    path = tmp_path / "bad.mtx"
    _write_lines(path, ["%%MatrixMarket matrix coordinate real general", "60 12 2",
                        "1 1 1.5", entry])
    with pytest.raises(DataError, match=message) as info:
        load(str(path))
    assert "\n" not in str(info.value)


def test_a_dense_matrix_market_file_is_named(tmp_path):
    path = tmp_path / "dense.mtx"
    scipy.io.mmwrite(path, np.ones((3, 2)))
    with pytest.raises(DataError, match="reads coordinate .* this one is array"):
        load(str(path))


def test_h5ad_layer_labels_and_var_names(tmp_path, counts):
    path = tmp_path / "cells.h5ad"
    adata = _adata(counts)
    adata.write_h5ad(path)
    data = load(str(path), layer="counts", test_fraction=0)
    assert np.array_equal(data.train, counts.toarray())
    assert data.feature_names == GENES and data.target_names == ["B", "NK", "T"]
    assert np.array_equal(data.train_labels, adata.obs["cell_type"].cat.codes)
    logged = load(str(path), labels="batch", test_fraction=0)  # X, another obs column
    assert np.allclose(logged.train, adata.X) and logged.target_names == ["a", "b"]


@pytest.mark.parametrize("kwargs, message", [({"layer": "spliced"}, "no layer 'spliced'; its "
                                              "layers: \\['counts'\\]"),
                                             ({"labels": "tissue"}, "obs has no column "
                                              "'tissue'")])
def test_h5ad_unknown_layer_or_column_is_named(tmp_path, counts, kwargs, message):
    path = tmp_path / "cells.h5ad"
    _adata(counts).write_h5ad(path)
    with pytest.raises(DataError, match=message):
        load(str(path), **kwargs)


def test_a_file_that_is_not_h5ad_is_one_line(tmp_path):
    path = tmp_path / "fake.h5ad"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match=r"fake\.h5ad is not a readable \.h5ad file"):
        load(str(path))


def test_layer_is_refused_for_other_files(tmp_path, counts):
    _write_mtx(tmp_path / "m.mtx", counts)
    with pytest.raises(DataError, match="not an .h5ad file"):
        load(str(tmp_path / "m.mtx"), layer="counts")


def test_an_npz_names_array_names_the_features(tmp_path, counts):
    path = tmp_path / "named.npz"
    np.savez(path, X=counts.toarray(), y=np.arange(N_CELLS) % 3, feature_names=np.array(GENES))
    assert load(str(path)).feature_names == GENES
    sparse_path = tmp_path / "sparse.npz"  # a save_npz file with names added beside
    sparse.save_npz(sparse_path, counts)
    with np.load(sparse_path) as archive:
        members = dict(archive)
    np.savez(sparse_path, **members, var_names=np.array(GENES))
    data = load(str(sparse_path), test_fraction=0)
    assert data.feature_names == GENES and np.array_equal(data.train, counts.toarray())
    np.savez(path, X=counts.toarray(), feature_names=np.array(GENES[:-1]))
    with pytest.raises(DataError, match="11 feature names for 12 columns"):
        load(str(path))


def test_an_npz_class_names_array_names_the_labels(tmp_path, counts):
    path = tmp_path / "labelled.npz"
    np.savez(path, X=counts.toarray(), y=np.arange(N_CELLS) % 3,
             target_names=np.array(["B", "NK", "T"]))
    assert load(str(path)).target_names == ["B", "NK", "T"]
    np.savez(path, X=counts.toarray(), y=np.arange(N_CELLS) % 3,
             target_names=np.array(["B", "NK"]))
    with pytest.raises(DataError, match="2 class names for labels from 0 to 2"):
        load(str(path))


@pytest.mark.parametrize("name, sep", [("t.tsv", "\t"), ("t.txt", "\t"), ("t.csv.gz", ","),
                                       ("t.tsv.gz", "\t")])
def test_tab_and_gzip_tables_read_as_the_csv(tmp_path, counts, name, sep):
    frame = pd.DataFrame(counts.toarray(), columns=GENES)
    frame.to_csv(tmp_path / name, sep=sep, index=False)
    data = load(str(tmp_path / name), test_fraction=0)
    assert data.feature_names == GENES and np.array_equal(data.train, counts.toarray())


def test_a_truncated_gzip_table_is_one_line(tmp_path, counts):
    path = tmp_path / "t.csv.gz"
    pd.DataFrame(counts.toarray(), columns=GENES).to_csv(path, index=False)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"t\.csv\.gz: cannot be read after line") as info:
        load(str(path))
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- in memory

@pytest.mark.parametrize("cls", [PCA, FactorAnalysis, PPCA])
def test_sparse_and_anndata_fit_as_the_dense_matrix(cls, counts):
    dense = counts.toarray()
    reference = cls(2).fit(dense)
    on_sparse = cls(2).fit(counts)  # a covariance pass instead of the SVD/EM on X: rounding
    assert np.isclose(on_sparse.score(counts), reference.score(dense), rtol=1e-7)
    assert np.allclose(on_sparse.score_samples(counts), reference.score_samples(dense))
    adata = anndata.AnnData(X=counts, var=pd.DataFrame(index=GENES))
    on_adata = cls(2).fit(adata)
    assert list(on_adata.feature_names_in_) == GENES
    assert np.allclose(np.abs(on_adata.transform(adata)), np.abs(reference.transform(dense)),
                       atol=1e-6)
    assert {name for rows in on_adata.top_features(2).values() for name, _ in rows} <= \
        set(GENES)


@pytest.mark.filterwarnings("ignore:PCA. its log-likelihood")  # random data: no structure
def test_the_covariance_pass_never_densifies_a_sparse_matrix(monkeypatch):
    """Memory for the 12 x 12 covariance but not for the dense 40000 x 12 matrix: PCA fits
    the sparse matrix, VBPCA (no covariance pass) refuses it in one line."""
    X = sparse.random(40000, N_GENES, density=0.05, format="csr", random_state=0)
    monkeypatch.setattr(memory, "available_memory", lambda: 2**20)
    assert PCA(2).fit(X).n_features_in_ == N_GENES
    with pytest.raises(DataError, match=r"sparse matrix of shape \(40000, 12\) as a dense "
                                        "array needs"):
        VBPCA(2).fit(X)


def test_models_without_a_sparse_path_take_anndata_densified(counts):
    adata = anndata.AnnData(X=counts, var=pd.DataFrame(index=GENES))
    model = VBPCA(2).fit(adata)
    assert list(model.feature_names_in_) == GENES
    assert np.isclose(model.score(adata), VBPCA(2).fit(counts.toarray()).score(
        counts.toarray()))


def test_transform_with_genes_in_another_order_is_refused(counts):
    adata = anndata.AnnData(X=counts, var=pd.DataFrame(index=GENES))
    model = FactorAnalysis(2).fit(adata)
    shuffled = adata[:, GENES[::-1]]
    with pytest.raises(DataError, match="feature 0 is 'Gene11' but FactorAnalysis was fitted "
                                        "with 'Gene0'"):
        model.transform(shuffled)


def test_nan_in_a_sparse_matrix_is_named(counts):
    bad = counts.copy()
    bad.data[5] = np.nan
    with pytest.raises(DataError, match="NaN"):
        PCA(2).fit(bad)


# --------------------------------------------------------------------------- CLI

def test_the_cli_fits_an_h5ad_file_and_a_10x_folder(tmp_path, counts):
    path = tmp_path / "cells.h5ad"
    _adata(counts).write_h5ad(path)
    assert main(["fit", "fa", "--data", str(path), "--latent", "2",
                 "--out", str(tmp_path / "fa")]) == 0
    folder = _ten_x(tmp_path / "tenx", counts)
    assert main(["fit", "pca", "--data", str(folder), "--latent", "2",
                 "--out", str(tmp_path / "pca")]) == 0


def test_mutated_mtx_files_load_or_fail_in_one_line(tmp_path, counts):
    """Byte flips, truncations and flips inside a gzip stream (zlib's errors): each
    mutant loads as a finite matrix or is one DataError line (1,500 mutants: 1,480
    errors, 20 loads, nothing else; 90 here)."""
    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, sparse.coo_matrix(counts[:30, :8]))
    raw = buffer.getvalue()
    rng = np.random.default_rng(1)
    for trial in range(90):
        data, kind = bytearray(raw), trial % 3
        if kind == 1:
            data = data[:rng.integers(len(data))]
        else:
            data = bytearray(gzip.compress(bytes(data))) if kind == 2 else data
            for _ in range(3 - kind):
                data[rng.integers(len(data))] = rng.integers(256)
        path = tmp_path / ("f.mtx.gz" if kind == 2 else "f.mtx")
        path.write_bytes(bytes(data))
        try:
            assert np.isfinite(load(str(path)).train).all()
        except DataError as exc:
            assert "\n" not in str(exc)
