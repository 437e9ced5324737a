"""Data sets: scikit-learn's 8x8 digits (the embedded default) and tables (breast
cancer, wine, diabetes, iris), MNIST and Fashion-MNIST from IDX files, folders of
PNG/JPEG images, the user's own ``.npy``/``.npz``/``.csv`` files, and expression data
(``.h5ad``, ``.mtx``, 10x folders, ``.tsv``, ``.csv.gz``; :mod:`~elbokit.data.expression`).

:func:`load` returns a :class:`Dataset` with ``train``/``test`` arrays of shape (n, d).
Image data sets are float32 scaled to [0, 1]; tables and user files are returned as
they are (no scaling), in float64 unless the file stores values that float32 holds
exactly. Splits are seeded and so reproducible.

Every file is checked before it is trusted: the header of an ``.npy`` array or an IDX
file is read first, its shape compared with the size of the file (or of the zip
member) and the memory it would take compared with the memory available, before
anything is allocated; gzip streams are decompressed as a stream, capped at the size
the header implies. A bad file raises :class:`~elbokit.exceptions.DataError` with a
one-line message.

The modules: :mod:`~elbokit.data.datasets` (:func:`load`, :class:`Dataset`, the
built-in sets and the split), :mod:`~elbokit.data.files` (``.npy``, ``.npz``, CSV),
:mod:`~elbokit.data.idx` (IDX files) and :mod:`~elbokit.data.images` (image folders).
"""

from .datasets import (DEFAULT_TEST_FRACTION, FASHION_MNIST_CLASSES, FILE_SUFFIXES,
                       IMAGE_SPECS, SPECS, TABLE_SPECS, Dataset, binarize, load)
from .expression import LABEL_COLUMNS, from_anndata
from .files import CSV_MAX_LINE_BYTES
from .idx import read_idx

__all__ = ["CSV_MAX_LINE_BYTES", "DEFAULT_TEST_FRACTION", "FASHION_MNIST_CLASSES",
           "FILE_SUFFIXES", "IMAGE_SPECS", "LABEL_COLUMNS", "SPECS", "TABLE_SPECS", "Dataset",
           "binarize", "from_anndata", "load", "read_idx"]
