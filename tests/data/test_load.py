import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elbokit import data
from elbokit.data import files, idx
from elbokit.persistence import memory
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
    monkeypatch.setattr(idx, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "nowhere")
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


# --------------------------------------------------------------------------- built-in tables

@pytest.mark.parametrize("spec, loader, n_classes", [
    ("breast-cancer", "load_breast_cancer", 2), ("wine", "load_wine", 3),
    ("iris", "load_iris", 3), ("diabetes", "load_diabetes", None)])
def test_builtin_tables_are_unscaled_named_and_split_like_digits(spec, loader, n_classes):
    from sklearn import datasets

    kwargs = {"scaled": False} if spec == "diabetes" else {}
    bunch = getattr(datasets, loader)(**kwargs)
    ds = data.load(spec, test_fraction=0.25, seed=3)
    n, d = bunch.data.shape
    assert ds.train.shape[0] + ds.test.shape[0] == n and ds.n_features == d
    assert ds.test.shape[0] == round(0.25 * n)
    assert ds.train.dtype == np.float64  # exactly the shipped values, in their own units
    rows = np.concatenate([ds.train, ds.test])
    order = np.lexsort(rows.T)
    np.testing.assert_array_equal(rows[order], bunch.data[np.lexsort(bunch.data.T)])
    assert ds.feature_names == [str(f) for f in bunch.feature_names]
    assert ds.image_shape is None and ds.value_range is None and ds.name == spec
    if n_classes is None:  # diabetes: a continuous target, not class labels
        assert ds.train_labels is None and ds.target_names is None
    else:
        assert ds.target_names == [str(t) for t in bunch.target_names]
        assert ds.train_labels.dtype == np.int64
        assert set(np.concatenate([ds.train_labels, ds.test_labels])) == set(range(n_classes))
        # labels follow their rows through the split
        full = {tuple(x): t for x, t in zip(bunch.data, bunch.target)}
        assert all(full[tuple(x)] == t for x, t in zip(ds.test, ds.test_labels))
    again = data.load(spec, test_fraction=0.25, seed=3)
    np.testing.assert_array_equal(again.test, ds.test)
    assert not np.array_equal(data.load(spec, test_fraction=0.25, seed=4).test, ds.test)


def test_breast_cancer_is_raw_not_standardized():
    ds = data.load("breast-cancer")
    # 'mean area' is in the hundreds to thousands, 'mean smoothness' about 0.1
    area = ds.feature_names.index("mean area")
    assert 100 < ds.train[:, area].mean() < 2000
    assert ds.train.std(axis=0).max() / ds.train.std(axis=0).min() > 1e4


def test_unknown_spec_lists_every_builtin():
    with pytest.raises(DataError) as info:
        data.load("breast_cancer")
    for spec in ("digits", "breast-cancer", "wine", "diabetes", "iris", "mnist"):
        assert spec in str(info.value)


def test_digits_and_idx_name_their_classes(tmp_path):
    assert data.load("digits").target_names == [str(i) for i in range(10)]
    make_idx_dir(tmp_path)
    assert data.load("fashion-mnist", data_dir=tmp_path).target_names[0] == "T-shirt/top"


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_bad_seed_is_a_parameter_error(seed):
    from elbokit.exceptions import ParameterError

    with pytest.raises(ParameterError, match="seed"):
        data.load("iris", seed=seed)


def test_huge_seed_is_fine():
    assert data.load("iris", seed=2**100).train.shape == (120, 4)


# --------------------------------------------------------------------------- CSV

def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_csv_header_becomes_feature_names_kept_through_the_split(tmp_path):
    body = "\n".join(f"{i},{10 * i},{i % 3}" for i in range(10))
    ds = data.load(write(tmp_path / "h.csv", " a , b,c\n" + body + "\n"), test_fraction=0.3)
    assert ds.feature_names == ["a", "b", "c"]
    # the columns stay in order: b is 10 a in every row of both parts
    for part in (ds.train, ds.test):
        np.testing.assert_array_equal(part[:, 1], 10 * part[:, 0])
    assert data.load(write(tmp_path / "n.csv", body + "\n")).feature_names is None


def test_csv_header_detection(tmp_path):
    # a first row with any number in it is data: a cell like 0x10 is named, not dropped
    with pytest.raises(DataError, match=r"'0x10' at line 1, column 1 \(elbokit reads decimal"):
        data.load(write(tmp_path / "hex.csv", "0x10,1\n3,4\n5,6\n"))
    with pytest.raises(DataError, match=r"'year' at line 1, column 1.*header row must hold no"):
        data.load(write(tmp_path / "year.csv", "year,1990\n3,4\n5,6\n"))
    # ... in any notation: 0x10 alone, 1_000 or a decimal comma is no header name
    for text in ("0x10\n3\n5\n", "1_000,0b1\n3,4\n5,6\n", '"1,5",x\n3,4\n5,6\n'):
        with pytest.raises(DataError, match="at line 1, column 1 .elbokit reads decimal"):
            data.load(write(tmp_path / "one.csv", text))
    # numbers in every cell (exponents, signs, inf-free) are data: 3 rows, no header
    ds = data.load(write(tmp_path / "num.csv", "1e3,-.5\n+3,4.\n5,6\n7,8\n"))
    assert ds.feature_names is None and ds.train.shape[0] + ds.test.shape[0] == 4
    assert 1000.0 in np.concatenate([ds.train, ds.test])
    # names only (an empty name, as pandas' index column writes it) is a header
    ds = data.load(write(tmp_path / "pd.csv", ",x,y\n0,1,2\n1,3,4\n2,5,6\n"))
    assert ds.feature_names == ["column_1", "x", "y"]
    # Python-only spellings are not numbers: underscores, non-ASCII digits, hex
    for cell in ("1_000", "\u0661\u0662", "0x1p3"):
        with pytest.raises(DataError, match="non-numeric cell"):
            data.load(write(tmp_path / "odd.csv", f"a,b\n1,2\n{cell},4\n"))


def test_csv_with_a_bom_keeps_its_first_row(tmp_path):
    ds = data.load(write(tmp_path / "bom.csv", "1,2\n3,4\n5,6\n", "utf-8-sig"))
    assert ds.train.shape[0] + ds.test.shape[0] == 3 and ds.feature_names is None
    ds = data.load(write(tmp_path / "bomh.csv", "a,b\n3,4\n5,6\n", "utf-8-sig"))
    assert ds.feature_names == ["a", "b"]


def test_csv_utf8_names_and_non_utf8_bytes(tmp_path):
    ds = data.load(write(tmp_path / "u.csv", "Größe,Δt\n1,2\n3,4\n"))
    assert ds.feature_names == ["Größe", "Δt"]
    with pytest.raises(DataError, match=r"line 1 is not valid UTF-8 \(byte 0xf6.*iconv"):
        data.load(write(tmp_path / "l1.csv", "Größe,b\n1,2\n3,4\n", "latin-1"))
    with pytest.raises(DataError, match=r"line 3 is not valid UTF-8"):
        data.load(write(tmp_path / "l3.csv", "a,b\n1,2\n3,4 \xe9\n", "latin-1"))
    with pytest.raises(DataError, match="UTF-16"):
        data.load(write(tmp_path / "u16.csv", "a,b\n1,2\n3,4\n", "utf-16"))


def test_csv_cell_over_the_field_limit_is_one_line(tmp_path):
    with pytest.raises(DataError, match=r"line 2 cannot be read as CSV.*field limit") as info:
        data.load(write(tmp_path / "f.csv", "a,b\n1," + "9" * 200_000 + "\n3,4\n"))
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_csv_missing_values(tmp_path):
    path = write(tmp_path / "m.csv", "a,b,c\n1,,3\n4,5,NA\n7,8,9\n10,nan,12\n")
    with pytest.raises(DataError, match=r"missing value '' at line 2, column 2"):
        data.load(path)
    ds = data.load(path, allow_nan=True, test_fraction=0.25)
    both = np.concatenate([ds.train, ds.test])
    assert np.isnan(both).sum() == 3 and np.nansum(both) == 1 + 3 + 4 + 5 + 7 + 8 + 9 + 10 + 12
    assert ds.feature_names == ["a", "b", "c"]
    with pytest.raises(DataError, match=r"line 3, column 2"):  # blank lines count
        data.load(write(tmp_path / "b.csv", "1,2\n\n3,\n5,6\n"))


def test_csv_values_beyond_float32_are_kept_and_beyond_float64_refused(tmp_path):
    ds = data.load(write(tmp_path / "big.csv", "a,b\n1,1e39\n2,-3e300\n3,4\n"))
    both = np.concatenate([ds.train, ds.test])
    assert np.isfinite(both).all() and {1e39, -3e300} <= set(both[:, 1])
    with pytest.raises(DataError, match=r"'1e400' at line 3, column 2 \('b'\) is beyond float64"):
        data.load(write(tmp_path / "huge.csv", "a,b\n1,2\n3,1e400\n"))
    with pytest.raises(DataError, match=r"infinite value '-inf' at line 2, column 1"):
        data.load(write(tmp_path / "inf.csv", "a,b\n-inf,2\n3,4\n"), allow_nan=True)


def test_csv_keeps_digits_that_float32_would_lose(tmp_path):
    # 2**24 + 1 has no float32: a float32 table would make this column constant
    ds = data.load(write(tmp_path / "p.csv", "t\n16777217\n16777218\n16777219\n16777220\n"))
    assert len(np.unique(np.concatenate([ds.train, ds.test]))) == 4


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,2\n3,4,5\n", "line 3 has 3 cells, expected 2"),
    ("a;b\n1;2\n3;4\n", "seems to use ';'"),
    ("a,b\n", "header but no data rows"),
    ("\n\n", "is empty"),
    ("1," * (data.CSV_MAX_LINE_BYTES // 2 + 1), "longer than"),
])
def test_csv_shape_errors_and_separator_hint(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        data.load(write(tmp_path / "t.csv", text))


def test_csv_that_does_not_fit_in_memory(tmp_path, monkeypatch):
    path = write(tmp_path / "tall.csv", "1,2\n" * 5000)
    monkeypatch.setattr(files, "CSV_FIRST_MEMORY_CHECK", 1024)
    monkeypatch.setattr(memory, "available_memory", lambda: 20_000)
    with pytest.raises(DataError, match=r"the table \(at line 1024\) needs 0.0 GiB of memory"):
        data.load(path)


def test_unreadable_file_is_a_data_error(tmp_path):
    import os

    path = write(tmp_path / "locked.csv", "1,2\n3,4\n")
    os.chmod(path, 0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(DataError, match="cannot read"):
        data.load(path)


def test_a_directory_is_not_a_data_file(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataError, match="not a regular file"):
        data.load(str(tmp_path / "d.csv"))
