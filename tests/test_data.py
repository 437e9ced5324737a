import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elbokit import data
from elbokit.exceptions import DataError, DataFileNotFoundError


def write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def make_idx_dir(directory, n_train=12, n_test=5, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}",
                  rng.integers(0, 10, n, dtype=np.uint8), compress)


def test_digits_split_is_fixed_and_scaled(digits):
    assert digits.train.dtype == np.float32 and digits.train.shape[1] == 64
    assert digits.train.shape[0] + digits.test.shape[0] == 1797
    assert digits.train.min() == 0.0 and digits.train.max() == 1.0
    assert digits.image_shape == (8, 8)
    again = data.load("digits")
    np.testing.assert_array_equal(again.test, digits.test)
    np.testing.assert_array_equal(again.test_labels, digits.test_labels)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_dataset_from_data_dir(tmp_path, compress):
    make_idx_dir(tmp_path, compress=compress)
    ds = data.load("mnist", data_dir=tmp_path)
    assert ds.train.shape == (12, 784) and ds.test.shape == (5, 784)
    assert ds.image_shape == (28, 28) and 0 <= ds.train.min() and ds.train.max() <= 1
    assert ds.train_labels.shape == (12,)


def test_idx_found_through_environment(tmp_path, monkeypatch):
    (tmp_path / "fashion-mnist").mkdir()
    make_idx_dir(tmp_path / "fashion-mnist")
    monkeypatch.setenv("ELBOKIT_DATA", str(tmp_path))
    assert data.load("fashion-mnist").train.shape == (12, 784)


def test_missing_fashion_mnist_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("ELBOKIT_DATA", str(tmp_path))
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(DataFileNotFoundError, match="dataset-fashion-mnist"):
        data.load("fashion-mnist")


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="not an IDX file"):
        data.read_idx(bad)
    short = tmp_path / "short"
    write_idx(short, np.zeros((3, 4, 4), np.uint8))
    short.write_bytes(short.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"shape \(3, 4, 4\).*truncated"):
        data.read_idx(short)
    truncated_gz = tmp_path / "t.gz"
    write_idx(truncated_gz, np.zeros((30, 4, 4), np.uint8), compress=True)
    truncated_gz.write_bytes(truncated_gz.read_bytes()[:15])
    with pytest.raises(DataError, match="gzip"):
        data.read_idx(truncated_gz)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       compress=st.booleans(), cut=st.integers(1, 20))
def test_idx_roundtrip_and_any_truncation_is_caught(tmp_path_factory, shape, compress, cut):
    path = tmp_path_factory.mktemp("idx") / "a"
    array = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    write_idx(path, array, compress)
    np.testing.assert_array_equal(data.read_idx(path), array)
    raw = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
    path.write_bytes(raw[:max(len(raw) - cut, 0)])
    with pytest.raises(DataError):
        data.read_idx(path)


def test_csv_with_header_and_bad_cell(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("a,b,c\n" + "\n".join(f"{i},{i * 2},{i % 3}" for i in range(10)) + "\n")
    ds = data.load(str(good), test_fraction=0.3)
    assert ds.train.shape == (7, 3) and ds.test.shape == (3, 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x7\n")
    with pytest.raises(DataError, match=r"'x7' at line 3, column 2"):
        data.load(str(bad))


def test_npy_npz_and_their_errors(tmp_path):
    X = np.random.default_rng(0).random((20, 4))
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "x.npz", X=X, y=np.arange(20))
    assert data.load(str(tmp_path / "x.npy")).train.shape == (16, 4)
    ds = data.load(str(tmp_path / "x.npz"))
    assert ds.train_labels is not None and ds.train_labels.shape == (16,)
    X[2, 1] = np.inf
    np.save(tmp_path / "inf.npy", X)
    with pytest.raises(DataError, match=r"1 inf.*row 2, column 1"):
        data.load(str(tmp_path / "inf.npy"))
    np.save(tmp_path / "one.npy", np.ones((1, 4)))
    with pytest.raises(DataError, match="1 sample"):
        data.load(str(tmp_path / "one.npy"))
    np.save(tmp_path / "empty.npy", np.ones((5, 0)))
    with pytest.raises(DataError, match="zero features"):
        data.load(str(tmp_path / "empty.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="object arrays are refused"):
        data.load(str(tmp_path / "obj.npy"))
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        data.load(str(tmp_path / "nope.npy"))
    with pytest.raises(DataError, match="unknown data spec"):
        data.load("imagenet")


def test_nan_allowed_only_when_asked(tmp_path):
    X = np.random.default_rng(0).random((10, 3))
    X[4, 2] = np.nan
    np.save(tmp_path / "nan.npy", X)
    with pytest.raises(DataError, match="NaN"):
        data.load(str(tmp_path / "nan.npy"))
    ds = data.load(str(tmp_path / "nan.npy"), allow_nan=True)
    assert np.isnan(np.concatenate([ds.train, ds.test])).sum() == 1


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(0, 6), cols=st.integers(0, 4), bad=st.sampled_from(
    [None, np.nan, np.inf, -np.inf]))
def test_check_data_accepts_exactly_finite_matrices(rows, cols, bad):
    from elbokit._validation import check_data

    X = np.ones((rows, cols))
    if bad is not None and X.size:
        X[0, 0] = bad
    valid = rows >= 1 and cols >= 1 and (bad is None)
    if valid:
        assert check_data(X).shape == (rows, cols)
    else:
        with pytest.raises(DataError):
            check_data(X)
