"""Fuzzing the data readers (issue 13): hypothesis mutates valid CSV, .npy, .npz and IDX
(raw and gzip) files -- byte flips, truncations, insertions of hostile tokens, rewritten
header fields -- and every mutant must either load as a finite, correctly shaped
Dataset or raise a DataError / DataFileNotFoundError with a one-line message: never
another exception, never a warning, never more than ``PEAK_LIMIT`` bytes allocated
(tracemalloc counts numpy's buffers).

``test_csv_tables_load_exactly_what_they_hold`` adds an oracle: generated tables (random
floats in several spellings, optional header, one missing or bad cell) load to exactly
Python's float of each cell, or fail naming the first bad cell's line and column.

A short budget runs in ``make test``; ``ELBOKIT_FUZZ_EXAMPLES`` raises it
(``benchmarks/fuzz.py data`` runs a long one).
"""

import gzip
import io
import os
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elbokit import data
from elbokit.exceptions import DataError, DataFileNotFoundError

EXAMPLES = int(os.environ.get("ELBOKIT_FUZZ_EXAMPLES", "60"))
PEAK_LIMIT = 32 * 2**20
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --------------------------------------------------------------------------- valid seeds

RNG = np.random.default_rng(0)
CSV_SEED = ("a,b,c\n" + "\n".join(",".join(f"{v:.4g}" for v in row)
                                   for row in RNG.normal(size=(8, 3)) * 100) + "\n").encode()


def npy_seed(X) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, X)
    return buffer.getvalue()


def npz_seed(compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(
        buffer, X=RNG.normal(size=(8, 3)), y=np.arange(8) % 3)
    return buffer.getvalue()


def idx_seed(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, code[array.dtype], array.ndim])
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


IDX_FILES = {
    "train-images-idx3-ubyte": idx_seed(RNG.integers(0, 256, (6, 4, 4), dtype=np.uint8)),
    "train-labels-idx1-ubyte": idx_seed(RNG.integers(0, 10, 6, dtype=np.uint8)),
    "t10k-images-idx3-ubyte": idx_seed(RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8)),
    "t10k-labels-idx1-ubyte": idx_seed(RNG.integers(0, 10, 3, dtype=np.uint8)),
}

# --------------------------------------------------------------------------- mutations

HOSTILE_TOKENS = [
    b"0x10", b"1e400", b"-1e309", b"inf", b"nan", b"NA", b"", b'"', b'"a\n"', b"\xef\xbb\xbf",
    b"\xff\xfe", b"\xe9", b"\xc3", b"\x00", b";", b"\t", b"\r", b"\n", b",", b",,", b"1_0",
    b"\xd9\xa1", b"9" * 140_000, b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00",
    b"\x00\x00\x08\x03", b"\x93NUMPY", b"PK\x03\x04", b"\x1f\x8b",
]
positions = st.integers(0, 2**20)
mutation = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(1, 255)),
    st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("insert"), positions,
              st.one_of(st.sampled_from(HOSTILE_TOKENS), st.binary(max_size=8))),
    st.tuples(st.just("overwrite"), positions,
              st.one_of(st.sampled_from(HOSTILE_TOKENS), st.binary(min_size=1, max_size=8))),
)
mutations = st.lists(mutation, min_size=1, max_size=4)


def mutate(raw: bytes, ops) -> bytes:
    buf = bytearray(raw)
    for op in ops:
        at = op[1] % (len(buf) + 1)
        if op[0] == "flip" and buf:
            buf[min(at, len(buf) - 1)] ^= op[2]
        elif op[0] == "truncate":
            del buf[at:]
        elif op[0] == "insert":
            buf[at:at] = op[2]
        elif op[0] == "overwrite":
            buf[at:at + len(op[2])] = op[2]
    return bytes(buf)


dims = st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1),
                 st.sampled_from([2**31, 2**32 - 1, 60000, 10**6]))


@st.composite
def npy_header_change(draw, raw: bytes) -> bytes:
    """A .npy file whose header fields are rewritten (the payload kept)."""
    shape = tuple(draw(st.lists(st.one_of(dims, st.integers(-3, -1)), max_size=4)))
    descr = draw(st.sampled_from(["<f8", ">f4", "<f2", "|u1", "<i8", "|b1", "<c8", "|O", "<U3",
                                  "|V8", "<M8[s]", "xyz", "<f16"]))
    fortran = draw(st.sampled_from(["False", "True", "0", "'yes'"]))
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    header += " " * ((-len(header) - 11) % 64) + "\n"
    payload = raw[128:]  # np.save writes 128-byte headers for small arrays
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


@st.composite
def idx_header_change(draw, raw: bytes) -> bytes:
    """An IDX file with a rewritten type code, dimension count and dimensions."""
    code = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]))
    new_dims = draw(st.lists(dims, min_size=0, max_size=5))
    old_ndim = raw[3]
    payload = raw[4 + 4 * old_ndim:]
    return (bytes([0, 0, code, len(new_dims)]) + struct.pack(f">{len(new_dims)}I", *new_dims)
            + payload)


# --------------------------------------------------------------------------- the property

def assert_loads_or_fails_cleanly(call, allow_nan=False):
    """``call()`` returns a valid Dataset (or array) or raises a one-line elbokit error,
    allocating less than PEAK_LIMIT either way."""
    tracemalloc.start()
    try:
        with warnings.catch_warnings(record=True) as caught:  # nothing printed but the error
            warnings.simplefilter("always")
            result = call()
        assert not caught, [str(w.message) for w in caught]
    except (DataError, DataFileNotFoundError) as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        assert len(message) < 1000, message[:200]
        result = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{peak / 2**20:.0f} MiB allocated"
    if isinstance(result, data.Dataset):
        check_dataset(result, allow_nan)
    return result


def check_dataset(ds, allow_nan=False):
    assert ds.train.ndim == ds.test.ndim == 2 and ds.train.shape[1] == ds.test.shape[1] >= 1
    assert ds.train.shape[0] >= 1 and ds.test.shape[0] >= 1
    assert ds.train.dtype in (np.float32, np.float64)
    for part in (ds.train, ds.test):
        assert not np.isinf(part).any() and (allow_nan or not np.isnan(part).any())
    for labels, part in ((ds.train_labels, ds.train), (ds.test_labels, ds.test)):
        assert labels is None or (labels.dtype == np.int64 and labels.shape == (len(part),))
    assert ds.feature_names is None or len(ds.feature_names) == ds.n_features


def load_bytes(directory, name, raw, **kwargs):
    path = directory / name
    path.write_bytes(raw)
    return assert_loads_or_fails_cleanly(lambda: data.load(str(path), **kwargs),
                                         kwargs.get("allow_nan", False))


# --------------------------------------------------------------------------- the tests

@FUZZ
@given(ops=mutations, allow_nan=st.booleans())
def test_fuzz_csv(tmp_path_factory, ops, allow_nan):
    directory = tmp_path_factory.getbasetemp()
    load_bytes(directory, "fuzz.csv", mutate(CSV_SEED, ops), allow_nan=allow_nan)


@FUZZ
@given(dtype=st.sampled_from([np.float64, np.float32, np.uint8, np.int64]),
       how=st.sampled_from(["bytes", "header"]), ops=mutations, st_data=st.data())
def test_fuzz_npy(tmp_path_factory, dtype, how, ops, st_data):
    raw = npy_seed((RNG.normal(size=(8, 3)) * 10).astype(dtype))
    if how == "header":
        raw = st_data.draw(npy_header_change(raw))
        if st_data.draw(st.booleans()):
            raw = mutate(raw, ops)
    else:
        raw = mutate(raw, ops)
    load_bytes(tmp_path_factory.getbasetemp(), "fuzz.npy", raw)


@FUZZ
@given(compressed=st.booleans(), how=st.sampled_from(["zip bytes", "member header"]),
       ops=mutations, st_data=st.data())
def test_fuzz_npz(tmp_path_factory, compressed, how, ops, st_data):
    if how == "zip bytes":
        raw = mutate(npz_seed(compressed), ops)
    else:  # a well-formed zip holding a mutated X.npy (and a correct y)
        member = st_data.draw(npy_header_change(npy_seed(RNG.normal(size=(8, 3)))))
        if st_data.draw(st.booleans()):
            member = mutate(member, ops)
        buffer = io.BytesIO()
        method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
        with zipfile.ZipFile(buffer, "w", compression=method) as archive:
            archive.writestr("X.npy", member)
            archive.writestr("y.npy", npy_seed(np.arange(8) % 3))
        raw = buffer.getvalue()
    load_bytes(tmp_path_factory.getbasetemp(), "fuzz.npz", raw)


@FUZZ
@given(target=st.sampled_from(sorted(IDX_FILES)), compress=st.booleans(),
       how=st.sampled_from(["bytes", "header", "gzip bytes"]), ops=mutations,
       st_data=st.data())
def test_fuzz_idx(tmp_path_factory, target, compress, how, ops, st_data):
    directory = tmp_path_factory.getbasetemp() / "fuzz-idx"
    directory.mkdir(exist_ok=True)
    for name, raw in IDX_FILES.items():
        if name == target:
            raw = st_data.draw(idx_header_change(raw)) if how == "header" else raw
            raw = mutate(raw, ops) if how != "header" or st_data.draw(st.booleans()) else raw
        suffix = ".gz" if compress else ""
        if compress:
            raw = gzip.compress(raw, mtime=0)
            if name == target and how == "gzip bytes":
                raw = mutate(raw, ops)
        (directory / (name + ".gz")).unlink(missing_ok=True)
        (directory / name).unlink(missing_ok=True)
        (directory / (name + suffix)).write_bytes(raw)
    suffix = ".gz" if compress else ""
    array = assert_loads_or_fails_cleanly(lambda: data.read_idx(directory / (target + suffix)))
    if array is not None:
        assert isinstance(array, np.ndarray) and array.size >= 1
    assert_loads_or_fails_cleanly(lambda: data.load("mnist", data_dir=directory))


# --------------------------------------------------------------------------- CSV with an oracle

NOT_NAMES = {"na", "n/a", "nan", "null", "inf", "infinity"}
names = st.from_regex(r"[A-Za-z][A-Za-z0-9 _]{0,6}", fullmatch=True).filter(
    lambda name: name.strip().lower() not in NOT_NAMES)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)
spellings = st.sampled_from(["{!r}", "{:.3e}", "{:g}", " {!r} ", "{:+.17g}"])
BAD_CELLS = ["0x10", "1_0", "abc", "1e400", "inf", "\u0661"]


@st.composite
def csv_tables(draw):
    """(text, expected values, names or None, (line, column) of the bad cells, and of the
    missing ones)."""
    # The expected value of a cell is Python's float of its text; a spelling that rounds
    # beyond float64 (``1.798e+308``) is a bad cell, as are BAD_CELLS.
    n_rows, width = draw(st.integers(2, 6)), draw(st.integers(1, 4))
    header = draw(st.lists(names, min_size=width, max_size=width)) if draw(st.booleans()) \
        else None
    cells = [[draw(spellings).format(draw(numbers)) for _ in range(width)]
             for _ in range(n_rows)]
    if draw(st.booleans()):  # one missing or bad cell
        i, j = draw(st.integers(0, n_rows - 1)), draw(st.integers(0, width - 1))
        # (an empty cell alone on its line is a blank line, skipped: not drawn)
        # ("abc" in a headerless first row may make it a header: not drawn; nor a missing
        # token alone on the first line, which the reader refuses as a header of no name)
        alone_first = width == 1 and i == 0 and header is None
        tokens = [] if alone_first else ["", "NA", "nan"][width == 1:]
        cells[i][j] = draw(st.sampled_from(tokens + [
            c for c in BAD_CELLS if not (c == "abc" and i == 0 and header is None)]))
    values = np.full((n_rows, width), np.nan)
    bad, missing = [], []
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            where = (i + 1 + (header is not None), j + 1)
            if cell in ("", "NA", "nan"):
                missing.append(where)
            elif cell in BAD_CELLS or np.isinf(float(cell)):
                bad.append(where)
            else:
                values[i, j] = float(cell)
    lines = ([",".join(header)] if header else []) + [",".join(row) for row in cells]
    return "\n".join(lines) + "\n", values, header, bad, missing


@FUZZ
@given(table=csv_tables(), allow_nan=st.booleans())
def test_csv_tables_load_exactly_what_they_hold(tmp_path_factory, table, allow_nan):
    text, values, header, bad, missing = table
    path = tmp_path_factory.getbasetemp() / "table.csv"
    path.write_text(text)
    errors = sorted(bad + ([] if allow_nan else missing))
    if errors:
        line, column = errors[0]
        message = f"at line {line}, column {column}\\b"
        with pytest.raises(DataError, match=message):
            data.load(str(path), allow_nan=allow_nan)
        return
    ds = data.load(str(path), allow_nan=allow_nan, test_fraction=0.5)
    assert ds.feature_names == (None if header is None else [h.strip() for h in header])
    order = np.random.default_rng(0).permutation(len(values))
    n_test = ds.test.shape[0]
    np.testing.assert_array_equal(np.concatenate([ds.train, ds.test]),
                                  values[np.r_[order[n_test:], order[:n_test]]])
