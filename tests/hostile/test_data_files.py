"""Hostile and careless data files (issue 13): every header is checked against the file
and the memory before anything is allocated, and every failure is a one-line DataError.

The cases the issue lists are kept here as a regression corpus; tests/hostile/test_fuzz_data.py
looks for new ones."""

import gzip
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elbokit import data
from elbokit.persistence import memory
from elbokit.exceptions import DataError


def npy_bytes(shape, descr="<f8", fortran=False, payload=b"", version=(1, 0)):
    """A .npy file with a header written by hand (it may lie about the payload)."""
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)}, }}"
    header += " " * ((-len(header) - 11) % 64) + "\n"
    length = struct.pack("<H" if version == (1, 0) else "<I", len(header))
    return b"\x93NUMPY" + bytes(version) + length + header.encode("latin1") + payload


def idx_bytes(type_code, dims, payload=b""):
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def idx_file(path, type_code, dims, payload=b"", compress=False):
    """An IDX file at ``path`` (gzip-compressed with ``compress``); returns the path."""
    raw = idx_bytes(type_code, dims, payload)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def one_line_error(call, match):
    with pytest.raises(DataError, match=match) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    return message


def peak_bytes(call):
    tracemalloc.start()
    try:
        call()
    except DataError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# --------------------------------------------------------------------------- .npy

def test_small_npy_claiming_745_gib_is_refused_before_allocating(tmp_path):
    path = tmp_path / "claim.npy"
    path.write_bytes(npy_bytes((10**6, 10**5), payload=b"\0" * 72))
    assert path.stat().st_size == 200
    load = lambda: data.load(str(path))  # noqa: E731
    one_line_error(load, r"shape \(1000000, 100000\).*file holds 72 bytes.*truncated")
    assert peak_bytes(load) < 2**20


@pytest.mark.parametrize("shape, descr, match", [
    ((), "<f8", "0-dimensional"),
    ((0, 5, 5), "<f8", "0 sample"),
    ((5, 0), "<f8", "zero features"),
    ((4, 0, 3), "<f4", "zero features"),
    ((1, 3), "<f8", "1 sample"),
    ((3, 2), "<c16", "expected a numeric array"),
    ((3,), "<U4", "expected a numeric array"),
    ((3,), [("a", "<f8"), ("b", "<i4")], "expected a numeric array"),
    ((3,), "<M8[s]", "expected a numeric array"),
])
def test_degenerate_npy_arrays(tmp_path, shape, descr, match):
    itemsize = np.dtype(descr).itemsize if not isinstance(descr, list) else 12
    path = tmp_path / "x.npy"
    path.write_bytes(npy_bytes(shape, descr, payload=b"\0" * (itemsize * int(np.prod(shape)))))
    one_line_error(lambda: data.load(str(path)), match)


@pytest.mark.parametrize("raw, match", [
    (npy_bytes((-3, 2)), "shape"),
    (npy_bytes((3, 2), descr="xyz"), "unreadable header"),
    (npy_bytes(("a", 2)), "shape"),
    (b"\x93NUMPY\x01\x00\xff\xff{'descr'", "truncated header"),
    (b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16, "version 9.0"),
    (b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{", "refused as unsafe"),
    (b"\x93NUMPY\x01\x00\x10\x00" + b"(" * 15 + b"\n", "unreadable header"),
    (b"PK\x03\x04 not numpy", "bad magic string"),
    (b"", "bad magic string"),
])
def test_broken_npy_headers(tmp_path, raw, match):
    path = tmp_path / "h.npy"
    path.write_bytes(raw)
    one_line_error(lambda: data.load(str(path)), match)


def test_mangled_npy_header_prints_no_python_warning(tmp_path, recwarn):
    path = tmp_path / "w.npy"
    path.write_bytes(npy_bytes((3, 2), descr="<f8").replace(b"'<f8'", b"{1and"))
    one_line_error(lambda: data.load(str(path)), "unreadable header")
    assert not [w for w in recwarn if issubclass(w.category, SyntaxWarning)]


def test_object_npy_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "o.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    one_line_error(lambda: data.load(str(path)), "object arrays are refused")


def test_npy_with_extra_bytes_is_corrupted(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 2)))
    path.write_bytes(path.read_bytes() + b"junk")
    one_line_error(lambda: data.load(str(path)), "holds 68 bytes of data")


def test_array_larger_than_memory_names_the_gib(tmp_path, monkeypatch):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((1000, 100)))
    monkeypatch.setattr(memory, "available_memory", lambda: 2**20)
    one_line_error(lambda: data.load(str(path)),
                   r"x.npy: an array of shape \(1000, 100\) \(float64\) needs 0.0 GiB of memory"
                   r" to load but only 0.0 GiB is available")


def test_sparse_file_of_745_gib_is_refused_by_the_memory_check(tmp_path):
    path = tmp_path / "sparse.npy"
    header = npy_bytes((10**6, 10**5))
    try:
        with open(path, "wb") as handle:
            handle.write(header)
            handle.truncate(len(header) + 8 * 10**11)  # a hole: no disk space used
    except OSError:
        pytest.skip("this file system has no sparse files this large")
    load = lambda: data.load(str(path))  # noqa: E731
    one_line_error(load, r"needs 1490.1 GiB of memory to load but only .* GiB is available")
    assert peak_bytes(load) < 2**20


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(["<f2", "<f4", ">f4", "<f8", ">f8", "|i1", "<u2", "<i4", ">i8",
                              "|b1"]),
       shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(lambda s: [2 + s[0]] + s[1:]),
       fortran=st.booleans(), compressed=st.booleans())
def test_npy_and_npz_read_what_numpy_reads(tmp_path_factory, dtype, shape, fortran, compressed):
    rng = np.random.default_rng(0)
    X = rng.integers(-100, 100, shape).astype(dtype)
    X = np.asfortranarray(X) if fortran else X
    directory = tmp_path_factory.mktemp("npy")
    np.save(directory / "x.npy", X)
    (np.savez_compressed if compressed else np.savez)(directory / "x.npz", X=X)
    expected = X.reshape(shape[0], -1)
    small = np.dtype(dtype).kind == "b" or np.dtype(dtype).itemsize <= 2 or dtype in ("<f4", ">f4")
    for name in ("x.npy", "x.npz"):
        ds = data.load(str(directory / name), test_fraction=0.5)
        rows = np.concatenate([ds.train, ds.test])
        assert rows.dtype == (np.float32 if small else np.float64)
        order = np.random.default_rng(0).permutation(shape[0])
        n_test = ds.test.shape[0]
        np.testing.assert_array_equal(rows, expected[np.r_[order[n_test:], order[:n_test]]])


# --------------------------------------------------------------------------- .npz

@pytest.mark.parametrize("y, match", [
    (np.arange(4), "labels y hold 4 entries but X has 5 rows"),
    (np.arange(6), "labels y hold 6 entries but X has 5 rows"),
    (np.zeros((5, 1)), r"1-D array of shape \(5,\); got shape \(5, 1\)"),
    (np.array([0, 1, 0.5, 1, 1]), "integer class labels; entry 2 is 0.5"),
    (np.array([0, 1, np.nan, 1, 1]), "entry 2 is nan"),
    (np.array(list("abcde")), "dtype <U1"),
    (np.zeros(()), "1-D array"),
])
def test_npz_labels_are_checked(tmp_path, y, match):
    path = tmp_path / "xy.npz"
    np.savez(path, X=np.ones((5, 2)), y=y)
    one_line_error(lambda: data.load(str(path)), match)


def test_npz_integral_float_labels_become_int(tmp_path):
    path = tmp_path / "xy.npz"
    np.savez(path, X=np.arange(10.0).reshape(5, 2), labels=np.array([0.0, 1, 2, 1, 0]))
    ds = data.load(str(path))
    assert ds.train_labels.dtype == np.int64
    np.testing.assert_array_equal(np.sort(np.concatenate([ds.train_labels, ds.test_labels])),
                                  [0, 0, 1, 1, 2])


def test_npz_member_that_lies_about_its_size(tmp_path):
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", npy_bytes((10**6, 10**5), payload=b"\0" * 72))
    load = lambda: data.load(str(path))  # noqa: E731
    one_line_error(load, r"lie.npz\[X\]: the header gives shape \(1000000, 100000\)")
    assert peak_bytes(load) < 2**20


def test_npz_damage(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, X=np.ones((6, 3)), y=np.arange(6))
    raw = bytearray(path.read_bytes())
    at = raw.index(b"\x00\x00\xf0?")  # inside X's data: the CRC no longer matches
    raw[at + 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    one_line_error(lambda: data.load(str(path)), "not a valid .npz file.*CRC")
    path.write_bytes(b"PK\x05\x06" + b"\0" * 10)
    one_line_error(lambda: data.load(str(path)), "not a valid .npz file")
    np.savez(path, a=np.ones(3), b=np.ones(3))
    one_line_error(lambda: data.load(str(path)), r"holds arrays \['a', 'b'\]; name the data")


# --------------------------------------------------------------------------- IDX

@pytest.mark.parametrize("compress", [False, True])
def test_idx_dimensions_that_overflow(tmp_path, compress):
    path = idx_file(tmp_path / "o", 0x08, [2**32 - 1] * 3, b"\0" * 64, compress)
    match = "needs .* GiB of memory" if compress else "truncated or corrupted"
    one_line_error(lambda: data.read_idx(path), match)
    assert peak_bytes(lambda: data.read_idx(path)) < 2**20


@pytest.mark.parametrize("compress", [False, True])
def test_idx_with_zero_images(tmp_path, compress):
    path = idx_file(tmp_path / "z", 0x08, [0, 28, 28], compress=compress)
    one_line_error(lambda: data.read_idx(path), r"shape \(0, 28, 28\), which holds no data")


def gzip_bomb(path, header_and_data, n_zero_mb):
    """A gzip file that decompresses to ``header_and_data`` and then ``n_zero_mb`` MB of
    zeros: gzip members concatenated (one 1 kB member per 1 MB of zeros)."""
    zeros = gzip.compress(b"\0" * 10**6, compresslevel=9)
    path.write_bytes(gzip.compress(header_and_data) + zeros * n_zero_mb)


def test_gzip_bomb_stops_after_the_header_implied_size(tmp_path):
    # 10 images as the header says, then 300 MB of zeros (a 300 kB gzip file)
    path = tmp_path / "bomb.gz"
    gzip_bomb(path, idx_bytes(0x08, [10, 28, 28], b"\1" * 7840), 300)
    assert path.stat().st_size < 10**6
    read = lambda: data.read_idx(path)  # noqa: E731
    one_line_error(read, "holds more than the 7856 bytes the IDX header's shape")
    assert peak_bytes(read) < 4 * 2**20


def test_gzip_that_ends_before_its_header_size(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, [1000, 28, 28], b"\0" * 100)))
    one_line_error(lambda: data.read_idx(path), "decompressed stream holds only 116 bytes")


def test_gzip_claiming_gigabytes_allocates_only_what_it_holds(tmp_path, monkeypatch):
    path = tmp_path / "claim.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, [2000, 1000, 1000], b"\0" * 3000)))
    monkeypatch.setattr(memory, "available_memory", lambda: 2**40)  # the claim would fit
    read = lambda: data.read_idx(path)  # noqa: E731
    one_line_error(read, "holds only 3016 bytes")
    assert peak_bytes(read) < 4 * 2**20


def test_idx_claiming_more_than_memory(tmp_path, monkeypatch):
    path = tmp_path / "m.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, [60000, 28, 28], b"\0" * 1000)))
    monkeypatch.setattr(memory, "available_memory", lambda: 2**27)
    one_line_error(lambda: data.read_idx(path),
                   r"shape \(60000, 28, 28\) needs 0.2 GiB of memory to load but only 0.1 GiB")


def test_idx_sets_whose_files_disagree(tmp_path):
    def write_set(train_images, train_labels):
        for name, raw in (("train-images-idx3-ubyte", train_images),
                          ("train-labels-idx1-ubyte", train_labels),
                          ("t10k-images-idx3-ubyte", idx_bytes(0x08, [2, 2, 2], b"\0" * 8)),
                          ("t10k-labels-idx1-ubyte", idx_bytes(0x08, [2], b"\0\1"))):
            (tmp_path / name).write_bytes(raw)
        return lambda: data.load("mnist", data_dir=tmp_path)

    one_line_error(write_set(idx_bytes(0x08, [3, 2, 2], b"\0" * 12),
                             idx_bytes(0x08, [2], b"\0\1")), "images .*3, 2, 2.*labels .*2,")
    one_line_error(write_set(idx_bytes(0x0D, [2, 2, 2], b"\0" * 32),
                             idx_bytes(0x08, [2], b"\0\1")), "unsigned bytes")
    one_line_error(write_set(idx_bytes(0x08, [2, 2, 2], b"\0" * 8),
                             idx_bytes(0x0E, [2], b"\0" * 16)), "labels must be integers")
    one_line_error(write_set(idx_bytes(0x08, [2, 3, 3], b"\0" * 18),
                             idx_bytes(0x08, [2], b"\0\1")), r"train images are \(3, 3\)")
    ds = write_set(idx_bytes(0x08, [2, 2, 2], b"\xff" * 8), idx_bytes(0x0C, [2], b"\0" * 8))()
    assert ds.train.max() == 1.0 and ds.train_labels.tolist() == [0, 0]


# --------------------------------------------------------------------------- address space

def test_hostile_files_under_a_2_gib_address_space(tmp_path):
    """The issue's small files that allocated without bound, loaded in a process that
    cannot map more than 2 GiB: each must be a DataError, never a MemoryError."""
    (tmp_path / "claim.npy").write_bytes(npy_bytes((10**6, 10**5), payload=b"\0" * 72))
    with zipfile.ZipFile(tmp_path / "claim.npz", "w") as archive:
        archive.writestr("X.npy", npy_bytes((10**6, 10**5), payload=b"\0" * 72))
    (tmp_path / "dims").write_bytes(idx_bytes(0x08, [10**6, 10**4, 10**4]))
    (tmp_path / "dims.gz").write_bytes(gzip.compress(idx_bytes(0x08, [10**6, 10**4, 10**4])))
    (tmp_path / "claim.gz").write_bytes(gzip.compress(idx_bytes(0x08, [1800, 1000, 1000])))
    # 3 GB once decompressed, more than the process may map
    gzip_bomb(tmp_path / "bomb.gz", idx_bytes(0x08, [10, 28, 28], b"\0" * 7840), 3000)
    script = textwrap.dedent(f"""
        import resource, sys
        from elbokit import data
        from elbokit.exceptions import DataError
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
        for name in ("claim.npy", "claim.npz", "dims", "dims.gz", "claim.gz", "bomb.gz"):
            path = {str(tmp_path)!r} + "/" + name
            try:
                data.read_idx(path) if "." not in name or name.endswith(".gz") else data.load(path)
            except DataError as exc:
                print(name, "DataError", str(exc)[:60])
            else:
                print(name, "loaded")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env={"OPENBLAS_NUM_THREADS": "1", "PATH": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 6 and all(" DataError " in line for line in lines), result.stdout


def test_zip_member_whose_directory_lies_about_its_size(tmp_path, monkeypatch):
    """An .npz whose zip directory and npy header agree on 800 MB while the member's
    compressed stream holds 72 bytes: the claim costs no 800 MB allocation."""
    claim = 10**4 * 10**4 * 8
    member = npy_bytes((10**4, 10**4), payload=b"\0" * 72)
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", member)
    raw = bytearray(path.read_bytes())
    size = struct.pack("<I", len(member))
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    assert raw[local + 22:local + 26] == size and raw[central + 24:central + 28] == size
    raw[local + 22:local + 26] = raw[central + 24:central + 28] = struct.pack("<I", claim + 128)
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(memory, "available_memory", lambda: 2**40)  # the claim would fit
    load = lambda: data.load(str(path))  # noqa: E731
    one_line_error(load, r"lie.npz(\[X\]: the data ends before| is not a valid .npz)")
    assert peak_bytes(load) < 4 * 2**20


# --------------------------------------------------------------------------- fuzzing finds

@pytest.mark.parametrize("compress", [False, True])
def test_idx_with_255_huge_dimensions_is_a_short_message(tmp_path, compress):
    # found by tests/hostile/test_fuzz_data.py: 'GiB' of a 2^8000-byte claim overflowed a float
    path = idx_file(tmp_path / "wide", 0x0E, [2**32 - 1] * 255, b"\0" * 16, compress)
    message = one_line_error(lambda: data.read_idx(path), "IDX header gives shape|GiB")
    assert len(message) < 300


def test_npz_whose_library_error_quotes_the_archive_is_a_short_message(tmp_path):
    # found by tests/hostile/test_fuzz_data.py: zipfile's message quoted 1,800 bytes of the file
    path = tmp_path / "x.npz"
    np.savez(path, X=np.ones((8, 3)), y=np.arange(8))
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"X.npy")] = ord("Z")  # the local header's name disagrees with the directory
    path.write_bytes(bytes(raw))
    message = one_line_error(lambda: data.load(str(path)), "not a valid .npz file")
    assert len(message) < 300


def test_npy_header_with_thousands_of_dimensions_is_a_short_message(tmp_path):
    path = tmp_path / "dims.npy"
    path.write_bytes(npy_bytes((3,) * 3000, version=(2, 0)))
    message = one_line_error(lambda: data.load(str(path)), r"shape \(3, 3, .*\.\.\.")
    assert len(message) < 300


def test_npz_member_name_that_is_not_utf8(tmp_path):
    # found by tests/hostile/test_fuzz_data.py: zipfile raised UnicodeDecodeError
    path = tmp_path / "x.npz"
    np.savez(path, X=np.ones((8, 3)))
    raw = bytearray(path.read_bytes())
    local = raw.index(b"PK\x03\x04")
    raw[local + 7] |= 0x08  # general-purpose flags (little-endian), bit 11: UTF-8 name ...
    raw[local + 30] = 0xD8  # ... but its first byte is not
    path.write_bytes(bytes(raw))
    one_line_error(lambda: data.load(str(path)), "not a valid .npz file")


def test_long_doubles_beyond_float64_are_named_without_a_numpy_warning(tmp_path, recwarn):
    # found by benchmarks/fuzz.py data: the cast printed "RuntimeWarning: overflow"
    X = np.ones((4, 2), dtype=np.longdouble)
    if np.finfo(np.longdouble).max <= np.finfo(np.float64).max:
        pytest.skip("long double is float64 on this platform")
    X[1, 1] = np.longdouble("1e4000")
    np.save(tmp_path / "ld.npy", X)
    one_line_error(lambda: data.load(str(tmp_path / "ld.npy")), r"1 inf.*row 1, column 1")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
