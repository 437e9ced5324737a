"""Out-of-core fitting (issue 8): memmaps, .npy paths, shard directories and Dask arrays
give the same models and the same row-wise outputs as in-memory arrays."""

import os
import warnings

import numpy as np
import pytest

from elbokit import PCA, PPCA, FactorAnalysis, LinearAutoencoder
from elbokit.exceptions import DataError, DataFileNotFoundError
from elbokit.linear._streaming import CHUNK_ROWS, as_chunk_source

N, D, L = 2 * CHUNK_ROWS + 1234, 10, 3  # three chunks, the last one short


def _data(n=N, d=D, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, L)) * 2.0
    X = rng.standard_normal((n, L)) @ W.T + rng.standard_normal((n, d)) * rng.uniform(0.3, 1, d)
    return (X + 50.0).astype(dtype)  # a large mean tests the shifted one-pass sums


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def files(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ooc")
    path = root / "x.npy"
    np.save(path, data)
    shards = root / "shards"
    shards.mkdir()
    # uneven shards, one of them smaller than a chunk; names sort in row order
    for i, (a, b) in enumerate([(0, 5000), (5000, 5300), (5300, N)]):
        np.save(shards / f"part-{i:02d}.npy", data[a:b])
    (shards / "README.txt").write_text("not a shard")  # ignored
    return {"path": path, "shards": shards}


SOURCES = ["memmap", "path", "shards", "dask"]


def _source(kind, data, files):
    if kind == "memmap":
        return np.load(files["path"], mmap_mode="r")
    if kind == "path":
        return str(files["path"])
    if kind == "shards":
        return files["shards"]
    da = pytest.importorskip("dask.array")
    return da.from_array(data, chunks=(3000, 4))  # blocks split the columns too


ESTIMATORS = {
    "PCA": lambda: PCA(L),
    "PCA-whiten": lambda: PCA(L, whiten=True),
    "PPCA": lambda: PPCA(L),
    "PPCA-em": lambda: PPCA(L, solver="em", random_state=0),
    "FA": lambda: FactorAnalysis(L, tol=1e-10),
    "LinearAE": lambda: LinearAutoencoder(L, random_state=0),
}


_IN_MEMORY = {}


def _in_memory(name, data):
    """The in-memory fit of each estimator, made once."""
    if name not in _IN_MEMORY:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _IN_MEMORY[name] = ESTIMATORS[name]().fit(data)
    return _IN_MEMORY[name]


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_out_of_core_fit_equals_in_memory(name, kind, data, files):
    X = _source(kind, data, files)
    ref = _in_memory(name, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = ESTIMATORS[name]().fit(X)
    assert est.n_features_in_ == D and not hasattr(est, "feature_names_in_")
    np.testing.assert_allclose(est.mean_, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(est.get_covariance(), ref.get_covariance(), rtol=1e-8,
                               atol=1e-10)
    np.testing.assert_allclose(est.noise_variance_, ref.noise_variance_, rtol=1e-8)
    if name.startswith("PCA"):  # same directions, same signs
        np.testing.assert_allclose(est.components_, ref.components_, atol=1e-9)
        np.testing.assert_allclose(est.singular_values_, ref.singular_values_, rtol=1e-9)
        np.testing.assert_allclose(est.explained_variance_ratio_,
                                   ref.explained_variance_ratio_, rtol=1e-9)
    # row-wise methods stream, and equal the in-memory ones
    np.testing.assert_allclose(est.score_samples(X), ref.score_samples(data), rtol=1e-10)
    np.testing.assert_allclose(est.transform(X), ref.transform(data), rtol=1e-7, atol=1e-8)
    assert est.score(X) == pytest.approx(ref.score(data), rel=1e-12)


def test_float32_memmap_matches_in_memory_float32(tmp_path):
    X = _data(dtype=np.float32)
    np.save(tmp_path / "x32.npy", X)
    mm = np.load(tmp_path / "x32.npy", mmap_mode="r")
    ref, est = FactorAnalysis(L).fit(X), FactorAnalysis(L).fit(mm)
    # float32 chunk products: agreement to float32 rounding, not to the last bit
    np.testing.assert_allclose(est.get_covariance(), ref.get_covariance(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(est.score_samples(mm), ref.score_samples(X), rtol=1e-5)
    # PCA works in float64 in memory; out of core its products are float64 too
    ref, est = PCA(L).fit(X), PCA(L).fit(mm)
    np.testing.assert_allclose(est.components_, ref.components_, atol=1e-9)
    np.testing.assert_allclose(est.explained_variance_, ref.explained_variance_, rtol=1e-10)


def test_one_pass_moments_are_accurate_with_a_huge_mean(data, tmp_path):
    X = data - 50.0 + 1e6  # naive sum-of-squares would lose ~all digits here
    np.save(tmp_path / "big.npy", X)
    mean, S = as_chunk_source(tmp_path / "big.npy").moments(chunk_rows=1000)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(S, np.cov(X, rowvar=False, bias=True), rtol=1e-7, atol=1e-9)


def test_nan_in_a_shard_names_the_shard_and_rows(data, tmp_path):
    for i, (a, b) in enumerate([(0, 6000), (6000, N)]):
        part = data[a:b].copy()
        if i == 1:
            part[17, 4] = np.nan
        np.save(tmp_path / f"s{i}.npy", part)
    with pytest.raises(DataError, match=r"NaN at row 6017 \(row 17 of shard s1\.npy\), "
                                        r"column 4"):
        FactorAnalysis(L).fit(tmp_path)
    # PPCA's missing-data EM needs the data in memory: out of core it is refused clearly
    with pytest.raises(DataError, match="out-of-core fitting needs complete data"):
        PPCA(L, solver="em").fit(tmp_path)


def test_nonfinite_values_in_memmap_and_dask_give_global_rows(data, tmp_path):
    X = data.copy()
    X[CHUNK_ROWS + 5, 2] = np.inf
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(DataError, match=f"inf at row {CHUNK_ROWS + 5}, column 2"):
        PCA(L).fit(np.load(tmp_path / "x.npy", mmap_mode="r"))
    da = pytest.importorskip("dask.array")
    with pytest.raises(DataError, match=f"inf at row {CHUNK_ROWS + 5}, column 2"):
        PCA(L).fit(da.from_array(X, chunks=(1000, D)))
    fitted = PCA(L).fit(data)
    with pytest.raises(DataError, match=f"inf at row {CHUNK_ROWS + 5}, column 2"):
        fitted.transform(da.from_array(X, chunks=(1000, D)))


def test_ppca_em_streams_nan_aware_inference(data, tmp_path):
    model = _in_memory("PPCA-em", data)
    X = data.copy()
    X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    np.save(tmp_path / "nan.npy", X)
    mm = np.load(tmp_path / "nan.npy", mmap_mode="r")
    np.testing.assert_allclose(model.score_samples(mm), model.score_samples(X), rtol=1e-12)
    np.testing.assert_allclose(model.transform(mm), model.transform(X), rtol=1e-12)
    np.testing.assert_allclose(model.impute(str(tmp_path / "nan.npy")), model.impute(X),
                               rtol=1e-12)


def test_mismatched_shard_feature_counts_are_named(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((5, 4)))
    np.save(tmp_path / "b.npy", np.zeros((5, 3)))
    with pytest.raises(DataError, match=r"shard b\.npy .* has 3 feature\(s\) but shard a\.npy "
                                        r"has 4"):
        FactorAnalysis(2).fit(tmp_path)


def test_bad_paths_and_files(tmp_path, data):
    with pytest.raises(DataFileNotFoundError, match="no such file"):
        FactorAnalysis(2).fit(tmp_path / "missing.npy")
    (tmp_path / "x.csv").write_text("1,2\n3,4\n")
    with pytest.raises(DataError, match=r"\.npy file or a directory"):
        PCA(1).fit(str(tmp_path / "x.csv"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .npy shards"):
        PCA(1).fit(empty)
    np.save(tmp_path / "f.npy", np.asfortranarray(data))
    with pytest.raises(DataError, match="Fortran"):
        PCA(1).fit(tmp_path / "f.npy")
    np.save(tmp_path / "v.npy", data[:, 0])
    with pytest.raises(DataError, match="2-D"):
        PCA(1).fit(tmp_path / "v.npy")
    model = PCA(2).fit(data)
    np.save(tmp_path / "narrow.npy", data[:, :4])
    with pytest.raises(DataError, match="4 features"):
        model.transform(tmp_path / "narrow.npy")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_memmap_fit_keeps_resident_memory_to_a_chunk(tmp_path):
    """Pages read through the map are released after each chunk: fitting a 160 MB
    memmap leaves far less than that mapped into the process."""
    path = tmp_path / "big.npy"
    rows, d = 800_000, 50
    with open(path, "wb") as f:  # written without holding it all in memory
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (rows, d)})
        rng = np.random.default_rng(0)
        for _ in range(rows // 100_000):
            f.write(rng.standard_normal((100_000, d), dtype=np.float32).tobytes())
    mm = np.load(path, mmap_mode="r")

    def rss_file():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssFile"))

    before = rss_file()
    PCA(5).fit(mm)
    grown = rss_file() - before
    assert grown < 32 * 2**20, f"{grown / 2**20:.0f} MiB of the file stayed resident"
