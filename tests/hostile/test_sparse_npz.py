"""A scipy.sparse.save_npz file (the usual file of a cells x genes matrix) is read as
the matrix it is, not as its non-zero values in one column (it was fitted as 174,400
rows x 1 feature, exit code 0)."""

import io
import zipfile

import numpy as np
import pytest
from scipy import sparse

from elbokit.data import load
from elbokit.data import _reading
from elbokit.exceptions import DataError


@pytest.fixture(scope="module")
def matrix():
    return sparse.random(50, 30, density=0.2, format="csr", random_state=0, dtype=np.float64)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("compressed", [True, False])
def test_sparse_files_read_as_their_dense_matrix(tmp_path, matrix, fmt, compressed):
    path = tmp_path / "cells.npz"
    sparse.save_npz(path, matrix.asformat(fmt), compressed=compressed)
    data = load(str(path), test_fraction=0.2, seed=0)
    assert data.train.shape[1] == 30 and data.train.shape[0] + data.test.shape[0] == 50
    both = np.vstack([data.train, data.test])
    # the rows of the dense matrix, shuffled by the split: the same multiset of rows
    assert np.allclose(np.sort(both.sum(1)), np.sort(matrix.toarray().sum(1)))
    assert np.allclose(np.sort(both, axis=None), np.sort(matrix.toarray(), axis=None))


def _rewrite(path, **members):
    """The archive at path with some members replaced (name -> array)."""
    buffer = io.BytesIO(path.read_bytes())
    with zipfile.ZipFile(buffer) as old, zipfile.ZipFile(path, "w") as new:
        for info in old.infolist():
            key = info.filename[:-4]
            if key in members:
                out = io.BytesIO()
                np.save(out, members[key])
                new.writestr(info.filename, out.getvalue())
            else:
                new.writestr(info, old.read(info))


def test_indices_out_of_range_are_one_line(tmp_path, matrix):
    path = tmp_path / "bad.npz"
    sparse.save_npz(path, matrix)
    _rewrite(path, indices=matrix.indices + 1000)
    with pytest.raises(DataError, match=r"bad\.npz is not a valid scipy\.sparse csr file"):
        load(str(path))


def test_a_shape_larger_than_memory_is_refused_before_densifying(tmp_path, matrix,
                                                                 monkeypatch):
    path = tmp_path / "huge.npz"
    sparse.save_npz(path, matrix)
    _rewrite(path, shape=np.array([10**7, 10**7]))
    monkeypatch.setattr(_reading.memory, "available_memory", lambda: 2**30)
    with pytest.raises(DataError, match=r"sparse matrix of shape \(10000000, 10000000\) as a "
                                        r"dense array needs .* GiB"):
        load(str(path))


def test_a_malformed_shape_is_one_line(tmp_path, matrix):
    path = tmp_path / "shape.npz"
    sparse.save_npz(path, matrix)
    _rewrite(path, shape=np.array([50, 30, 2]))
    with pytest.raises(DataError, match="shape must be two non-negative integers"):
        load(str(path))


def test_another_sparse_format_is_named(tmp_path, matrix):
    path = tmp_path / "bsr.npz"
    sparse.save_npz(path, matrix.tobsr())
    with pytest.raises(DataError, match=r"format 'bsr'.*convert it"):
        load(str(path))


def test_an_ordinary_archive_with_a_data_array_still_reads(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, data=np.arange(20.0).reshape(10, 2))
    assert load(str(path)).train.shape[1] == 2
