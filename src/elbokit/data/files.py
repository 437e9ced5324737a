"""User files: ``.npy`` arrays, ``.npz`` archives (the data array ``X`` and labels ``y``)
and numeric CSV tables with an optional header row.

Every file is checked before it is trusted: the header of an ``.npy`` array is read
first, its shape compared with the size of the file (or of the zip member) and the
memory it would take compared with the memory available, before anything is
allocated. A CSV file is read line by line (each line bounded, valid UTF-8), the
memory checked as the values grow, and the first bad cell is named by line, column
and header name. A bad file raises :class:`~elbokit.exceptions.DataError` with a
one-line message.
"""

from __future__ import annotations

import array
import ast
import csv
import gzip
import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._columns import drop_hint, selected_indices
from ..exceptions import DataError
from ._reading import (brief, byte_count, check_fits, load_peak_bytes, open_binary,
                       read_payload, read_up_to)

CSV_MAX_LINE_BYTES = 16 * 2**20  # a physical CSV line longer than this is refused
CSV_FIRST_MEMORY_CHECK = 2**20  # values parsed before the memory is first checked (doubling)
_CSV_MISSING = frozenset({"", "na", "n/a", "nan", "+nan", "-nan", "null"})
# A CSV number: decimal digits (ASCII only), optional fraction and exponent, or inf.
_CSV_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                         r"|[+-]?(?:inf|infinity)", re.IGNORECASE)
_CSV_DECIMAL = r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*"
_CSV_DECIMAL_ROW = re.compile(rf"{_CSV_DECIMAL}(?:,{_CSV_DECIMAL})*")  # the common case, fast


# --------------------------------------------------------------------------- .npy / .npz

def load_file(path: Path, allow_nan: bool, selection=(None, None)):
    """(X, y or None, feature names or None, class names or None) from a user file;
    ``selection``: the (columns, drop_columns) of a CSV file with a header."""
    suffix = path.suffix.lower()
    if table_suffix(path):
        X, names = read_csv(path, allow_nan, selection)
        return X, None, names, None
    selected_indices(None, *selection, str(path))  # no names: a selection is refused
    with open_binary(path, "data file") as handle:
        if suffix == ".npy":
            size = os.fstat(handle.fileno()).st_size
            return _read_npy(handle, size, str(path)), None, None, None
        try:
            return _read_npz(handle, path)
        except DataError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
                NotImplementedError, RuntimeError, ValueError, struct.error) as exc:
            # ValueError: zipfile's UnicodeDecodeError on a mangled member name, and the like
            raise DataError(f"{path} is not a valid .npz file ({brief(exc)})") from None


def _read_npz(handle, path: Path):
    with zipfile.ZipFile(handle) as archive:
        members = {info.filename[:-4]: info for info in archive.infolist()
                   if info.filename.endswith(".npy")}
        keys = list(members)
        names = _read_names(archive, members, path, NAME_KEYS)
        classes = _read_names(archive, members, path, CLASS_KEYS)
        if _is_sparse(members):
            return _read_sparse(archive, members, path), None, names, classes
        key = next((k for k in ("X", "x", "data") if k in members), None)
        if key is None and len(keys) == 1:
            key = keys[0]
        if key is None:
            raise DataError(f"{path} holds arrays {brief(keys)}; name the data array 'X' "
                            "(and labels 'y')")
        label_key = next((k for k in ("y", "labels") if k in members and k != key), None)

        def read(k):
            info = members[k]
            with archive.open(info) as stream:
                return _read_npy(stream, info.file_size, f"{path}[{k}]", size_is_proven=False)

        X = read(key)
        y = read(label_key) if label_key is not None else None
    return X, y, names, classes


NAME_KEYS = ("feature_names", "var_names", "genes", "gene_names", "names", "columns")
CLASS_KEYS = ("target_names", "class_names", "classes")  # the names of labels 0, 1, ...


def _read_names(archive, members: dict, path: Path, keys) -> list[str] | None:
    """The names an archive carries under the first of ``keys`` (a 1-D string array, as
    ``np.savez(..., feature_names=genes, target_names=cell_types)`` writes it), or None."""
    key = next((k for k in keys if k in members), None)
    if key is None:
        return None
    info = members[key]
    with archive.open(info) as stream:
        names = _read_npy(stream, info.file_size, f"{path}[{key}]", size_is_proven=False,
                          text=True, names=True)
    if names.ndim != 1:
        raise DataError(f"{path}[{key}]: names must be a 1-D array of strings; got "
                        f"shape {brief(names.shape)}")
    return [str(v) for v in names.tolist()]


# --------------------------------------------------------------------------- sparse .npz

# scipy.sparse.save_npz's members, by format: the usual file of a cells x genes matrix
SPARSE_MEMBERS = {"csr": ("data", "indices", "indptr"), "csc": ("data", "indices", "indptr"),
                  "coo": ("data", "row", "col")}


def _is_sparse(members: dict) -> bool:
    """Whether an archive is a scipy.sparse.save_npz file (its keys: format and shape,
    and the arrays of its format), not arrays to read as they are ('data' alone was
    read as one column of the non-zero values)."""
    return {"format", "shape", "data"} <= set(members)


def _read_sparse(archive, members: dict, path: Path) -> np.ndarray:
    """The matrix of a scipy.sparse.save_npz file, densified (its shape and the memory
    of the dense matrix checked before it is allocated; its indices checked)."""
    from scipy import sparse

    def read(key, text=False):
        info = members[key]
        with archive.open(info) as stream:
            return _read_npy(stream, info.file_size, f"{path}[{key}]", size_is_proven=False,
                             text=text)

    fmt = read("format", text=True)
    fmt = fmt.item().decode("ascii", "replace") if fmt.dtype.kind == "S" else str(fmt.item()) \
        if fmt.size == 1 else ""
    if fmt not in SPARSE_MEMBERS:
        raise DataError(f"{path} is a scipy.sparse file of format {brief(fmt)!r}; elbokit "
                        f"reads {sorted(SPARSE_MEMBERS)}: convert it (matrix.tocsr())")
    shape = read("shape")
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or (shape < 0).any():
        raise DataError(f"{path}: a sparse matrix's shape must be two non-negative integers; "
                        f"got {brief(shape.tolist())}")
    n_rows, n_columns = (int(v) for v in shape)
    data = read("data")
    check_fits(load_peak_bytes(n_rows * n_columns, data.dtype), str(path),
               f"the sparse matrix of shape ({n_rows}, {n_columns}) as a dense array")
    arrays = [data] + [read(k) for k in SPARSE_MEMBERS[fmt][1:]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "coo":
                matrix = sparse.coo_matrix((arrays[0], (arrays[1], arrays[2])),
                                           shape=(n_rows, n_columns))
            else:
                cls = sparse.csr_matrix if fmt == "csr" else sparse.csc_matrix
                matrix = cls(tuple(arrays), shape=(n_rows, n_columns))
                matrix.check_format(full_check=True)
        return matrix.toarray()
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise DataError(f"{path} is not a valid scipy.sparse {fmt} file ({brief(exc)})") \
            from None


def _read_npy_header(stream, name: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Parse a ``.npy`` header (format versions 1 to 3) without trusting it:
    (dtype, shape, fortran_order, header length in bytes)."""
    magic = read_up_to(stream, 8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise DataError(f"{name} is not a valid .npy file (bad magic string {magic[:6]!r})")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise DataError(f"{name}: unsupported .npy format version {version[0]}.{version[1]}")
    length_format = "<H" if version == (1, 0) else "<I"
    raw_length = read_up_to(stream, struct.calcsize(length_format))
    if len(raw_length) < struct.calcsize(length_format):
        raise DataError(f"{name} is not a valid .npy file (truncated header)")
    (length,) = struct.unpack(length_format, raw_length)
    if length > 65536:
        raise DataError(f"{name}: the .npy header claims {length} bytes; refused as unsafe")
    raw_header = read_up_to(stream, length)
    if len(raw_header) < length:
        raise DataError(f"{name} is not a valid .npy file (truncated header)")
    try:
        with warnings.catch_warnings():  # a mangled header must not print Python's warnings
            warnings.simplefilter("ignore")
            header = ast.literal_eval(raw_header.decode("utf8" if version == (3, 0) else
                                                        "latin1"))
        shape, fortran = header["shape"], header["fortran_order"]
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (ValueError, TypeError, SyntaxError, KeyError, IndexError, RecursionError,
            MemoryError, UnicodeDecodeError) as exc:
        raise DataError(f"{name} is not a valid .npy file (unreadable header: "
                        f"{type(exc).__name__})") from None
    if not (isinstance(shape, tuple) and all(type(s) is int and s >= 0 for s in shape)):
        raise DataError(f"{name} is not a valid .npy file (shape {brief(repr(shape))} in its "
                        "header)")
    if not isinstance(fortran, bool):
        raise DataError(f"{name} is not a valid .npy file (fortran_order {fortran!r})")
    return dtype, shape, fortran, len(magic) + len(raw_length) + length


def _read_npy(stream, size: int, name: str, size_is_proven: bool = True,
              text: bool = False, names: bool = False) -> np.ndarray:
    """Read a ``.npy`` array of ``size`` bytes from a stream, checking its header's dtype,
    shape and size against the file and the available memory before allocating.

    ``size_is_proven``: ``size`` is the size of the file itself, not a claim (a zip
    member's size in the archive's directory is a claim). ``text``: a short string array
    is accepted too (a sparse file's format); ``names``: a string array of any length
    (feature names)."""
    dtype, shape, fortran, header_len = _read_npy_header(stream, name)
    if dtype.hasobject:
        raise DataError(f"{name} cannot be read as a numeric file (dtype {brief(dtype)}); object "
                        "arrays are refused because loading them could run code")
    if text and dtype.kind in "SU" and (names or math.prod(shape) <= 1) and \
            dtype.itemsize <= 4096:
        pass
    elif dtype.kind not in "biuf":
        raise DataError(f"{name}: expected a numeric array, got dtype {brief(dtype)}")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if size - header_len != nbytes:
        raise DataError(f"{name}: the header gives shape {brief(shape)} of {dtype} "
                        f"({byte_count(nbytes)} bytes) "
                        f"but the file holds {size - header_len} bytes of data; it is "
                        "truncated or corrupted")
    check_fits(load_peak_bytes(count, dtype), name,
                f"an array of shape {brief(shape)} ({dtype})")
    payload = read_payload(stream, nbytes, size_is_proven)
    if len(payload) < nbytes:
        raise DataError(f"{name}: the data ends before the {byte_count(nbytes)} bytes its header "
                        "gives; it is truncated")
    out = payload.view(dtype)
    if fortran:
        return out.reshape(shape[::-1]).transpose()
    return out.reshape(shape)


# --------------------------------------------------------------------------- CSV

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


def table_suffix(path: Path) -> str | None:
    """".csv" or ".tsv" for a table file (a comma- or tab-separated file, plain or
    gzip; ``.txt`` is tab-separated, as scanpy.read_text), else None."""
    name = path.name.lower()
    suffix = next((s for s in TABLE_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        return None
    return ".csv" if suffix.startswith(".csv") else ".tsv"


def _csv_lines(handle, path: Path):
    """Decoded physical lines of a UTF-8 CSV file (a byte-order mark dropped), each
    checked: valid UTF-8 (else a DataError naming the line) and shorter than
    ``CSV_MAX_LINE_BYTES``."""
    for number in range(1, 2**63):
        raw = handle.readline(CSV_MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > CSV_MAX_LINE_BYTES:
            raise DataError(f"{path}: line {number} is longer than "
                            f"{CSV_MAX_LINE_BYTES // 2**20} MiB; refused")
        if number == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise DataError(f"{path} is UTF-16 encoded (byte-order mark {raw[:2].hex()}); "
                                "save it as UTF-8")
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: line {number} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                f"byte {exc.start + 1} of the line); elbokit reads UTF-8 CSV files: convert "
                f"it, e.g. iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}") from None


def _show(cell: str) -> str:
    return repr(cell if len(cell) <= 40 else cell[:37] + "...")


def _parse_cell(cell: str) -> float | None:
    """A CSV cell as a float, ``nan`` for a missing value, or None if not a number."""
    text = cell.strip()
    if text.lower() in _CSV_MISSING:
        return math.nan
    if _CSV_NUMBER.fullmatch(text):
        return float(text)
    return None


def _other_notation(cell: str) -> bool:
    """Whether a cell that is not a decimal number is one in another notation (``0x10``,
    ``0b1``, ``1_000``, ``0x1p3``, non-ASCII digits, a decimal comma ``1,5``): no header
    name, but a value elbokit does not read."""
    text = cell.strip()
    if text.lower().lstrip("+-").startswith("0x"):
        text = text.lower().replace("0x", "", 1)
        parsers = (lambda t: int(t, 16), float.fromhex)
    else:
        parsers = (float, lambda t: int(t, 0), lambda t: float(t.replace(",", ".", 1)))
    for parse in parsers:
        try:
            parse(text)
            return True
        except ValueError:
            pass
    return False


def _is_header(row: list[str]) -> bool:
    """A first row is a header when no cell is a number (in any notation) and some cell
    is not empty.

    A row with a number in it (``0x10,1,2``, and ``0x10`` alone) is data, so its bad
    cell is named rather than the row dropped as a header."""
    values = [_parse_cell(c) for c in row]
    if not any(v is None for v in values):
        return False
    return all((v is None and not _other_notation(c)) or (v is not None and math.isnan(v))
               for v, c in zip(values, row))


def _refuse_missing_first_row(row: list[str], path: Path, line: int) -> None:
    """A first row made only of missing-value tokens (NA, null, nan, blank) is neither a
    header (it names no column) nor data (it holds no value): refused, never read as
    a row of NaN."""
    if all(c.strip().lower() in _CSV_MISSING for c in row):
        raise DataError(f"{path}: line {line}, the first, holds only missing-value tokens "
                        f"({brief(row)}): a header must name its columns (not NA, null, "
                        "nan or blank) and a data row must hold a value; rename the columns "
                        "or drop the line")


def read_csv(path: Path, allow_nan: bool = False, selection=(None, None)
              ) -> tuple[np.ndarray, list[str] | None]:
    """Read a numeric CSV (an optional header row), naming the first bad cell (and its
    column, when there is a header).

    Returns the values (float64) and the header's names (None without a header): of
    the columns ``selection`` (columns, drop_columns) keeps, when it names any; the
    others are not parsed. Line and column numbers in messages count from 1 as in the
    file (blank lines included)."""
    with open_binary(path, "data file") as handle:
        stream = gzip.GzipFile(fileobj=handle) if path.suffix.lower() == ".gz" else handle
        delimiter = "\t" if table_suffix(path) == ".tsv" else ","
        reader = csv.reader(_csv_lines(stream, path), delimiter=delimiter)
        values = array.array("d")
        names, width, n_rows, next_check = None, None, 0, CSV_FIRST_MEMORY_CHECK
        keep = None  # the indices of the columns parsed (None: all)
        try:
            for row in reader:
                if not row:
                    continue  # blank line
                line = reader.line_num
                if width is None:
                    width = len(row)
                    _refuse_missing_first_row(row, path, line)
                    if _is_header(row):
                        names = [c.strip() or f"column_{j + 1}" for j, c in enumerate(row)]
                        keep = selected_indices(names, *selection, str(path))
                        continue
                    selected_indices(None, *selection, str(path))  # no header: refused
                if len(row) != width:
                    raise DataError(f"{path}: line {line} has {len(row)} cells, expected "
                                    f"{width}{_separator_hint(row)}")
                first = n_rows == 0 and names is None
                if keep is not None:
                    row = [row[j] for j in keep]
                values.extend(_parse_row(row, path, line, allow_nan, first, keep, names))
                n_rows += 1
                if len(values) >= next_check:  # the values so far and their split copy
                    check_fits(2 * len(values) * 8, str(path), f"the table (at line {line})")
                    next_check = 2 * len(values)
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num} cannot be read as CSV "
                            f"({brief(exc)})") from None
        except (OSError, EOFError, zlib.error) as exc:  # a bad or truncated gzip stream
            raise DataError(f"{path}: cannot be read after line {reader.line_num} "
                            f"({brief(exc)})") from None
    if width is None:
        raise DataError(f"{path} is empty")
    if n_rows == 0:
        raise DataError(f"{path} has a header but no data rows")
    if keep is not None:
        width, names = len(keep), [names[j] for j in keep]
    X = np.frombuffer(values, dtype=np.float64).reshape(n_rows, width)
    return X, names


def _separator_hint(row: list[str]) -> str:
    for separator, name in ((";", "';'"), ("\t", "tabs")):
        if any(separator in cell for cell in row):
            return f" (elbokit reads comma-separated files; this one seems to use {name})"
    return ""


def _parse_row(row: list[str], path: Path, line: int, allow_nan: bool,
               first: bool = False, keep=None, names=None) -> list[float]:
    """The cells of one row as floats. ``keep``: the file's column index of each cell
    (None: the cells are the whole row); ``names``: the header's names, if any."""
    if _CSV_DECIMAL_ROW.fullmatch(",".join(row)):  # plain decimal numbers only
        try:
            parsed = list(map(float, row))
        except ValueError:  # a quoted cell held a comma
            pass
        else:
            if not any(map(math.isinf, parsed)):  # else an overflow, named below
                return parsed
    parsed = []
    for i, cell in enumerate(row):
        value = _parse_cell(cell)
        j = i if keep is None else keep[i]
        where = f"at line {line}, column {j + 1}"
        if names is not None:
            where += f" ({names[j]!r})"
        if value is None:
            hint = _separator_hint([cell])
            if not hint and _other_notation(cell):
                hint = " (elbokit reads decimal numbers only, such as 16, -2.5 or 1e-3)"
            elif not hint and first:
                hint = (" (taken as data because other cells of the line are numbers: a "
                        "header row must hold no number)")
            elif not hint and names is not None:
                hint = f": the column is not numeric; {drop_hint(names[j])}"
            raise DataError(f"{path}: non-numeric cell {_show(cell)} {where}{hint}")
        if math.isnan(value) and not allow_nan:
            raise DataError(f"{path}: missing value {_show(cell)} {where}; fill it in, or fit "
                            "a model that accepts missing values (FA, PPCA solver='em', "
                            "VBPCA, VAE)")
        if math.isinf(value):
            if "inf" not in cell.lower():
                raise DataError(f"{path}: value {_show(cell)} {where} is beyond float64's "
                                "range (about 1.8e308)")
            raise DataError(f"{path}: infinite value {_show(cell)} {where}; inf is refused")
        parsed.append(value)
    return parsed
