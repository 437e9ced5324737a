"""Folders of PNG/JPEG images as a data matrix, read with Pillow.

``read_folder(path)`` returns X of shape (n, C*H*W), float32 intensities in [0, 1],
each row one image channel first (C = 1 grey, 3 RGB), with integer labels from the
sub-folder names when the images sit in sub-folders (one level: ``path/cat/*.png``,
``path/dog/*.png``). Every file is checked before the matrix is allocated: the count
of files, each image's size from its header (at most ``MAX_PIXELS`` pixels), one size
for the whole set (or ``resize`` / ``crop="center"``), and the memory the matrix
needs. A file Pillow cannot decode, or a truncated one, raises
:class:`~elbokit.exceptions.DataError` naming it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from .._warn import warn
from ..exceptions import DataError
from ..persistence.files import not_regular
from ._reading import brief_error

SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_FILES = 1_000_000  # image files in one data set
MAX_PIXELS = 2**26  # pixels of one image (64 Mpx; Pillow's own bomb check is above)
MAX_SIDE = 8192  # pixels a side of a resize target
CROPS = (None, "center")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L")
RGB_MODES = ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX")


def _pillow():
    try:
        from PIL import Image
    except ImportError:  # a dependency of elbokit; absent only in a broken install
        raise DataError("reading image folders needs Pillow: pip install pillow") from None
    return Image


def image_files(folder: Path) -> tuple[list[Path], list[str] | None]:
    """The image files of ``folder`` (sorted), and the sub-folder names when the images
    sit in sub-folders (one per class), else None."""
    def images_in(directory):
        files = sorted(p for p in directory.iterdir() if p.suffix.lower() in SUFFIXES
                       and not p.is_dir())
        for path in files:  # a FIFO would block the read, /proc/self/pagemap never end
            why = not_regular(path) if path.exists() else "a broken symlink"
            if why is not None:
                raise DataError(f"image file {path} is {why}, not a regular file; refused")
        return files

    try:
        top = images_in(folder)
        classes = sorted(p for p in folder.iterdir()
                         if p.is_dir() and not p.name.startswith("."))
        for sub in classes:
            _refuse_run_folder(sub, folder)
        nested = {c.name: images_in(c) for c in classes}
    except OSError as exc:
        raise DataError(f"cannot list the images of {folder} ({exc.strerror or exc})") from None
    nested = {name: files for name, files in nested.items() if files}
    if top and nested:
        raise DataError(f"{folder} holds images both at its top level ({len(top)}) and in "
                        f"sub-folders ({', '.join(list(nested)[:5])}); put every image in a "
                        "class sub-folder, or none")
    if not top and not nested:
        raise DataError(f"{folder} holds no PNG or JPEG files ({', '.join(SUFFIXES)}), at its "
                        "top level or in sub-folders")
    if top:
        return top, None
    return [f for files in nested.values() for f in files], list(nested)


RUN_MARKERS = ("manifest.json", "run.json", "model.json")  # what an elbokit save writes


def _refuse_run_folder(sub: Path, folder: Path) -> None:
    """A sub-folder that is an elbokit run (an --out inside the folder being read) is not
    a class: its figures and samples would be read back as images."""
    marker = next((name for name in RUN_MARKERS if (sub / name).exists()), None)
    if marker is not None:
        raise DataError(f"{sub} is an elbokit run directory (it holds {marker}) inside the "
                        f"image folder {folder}; its figures would be read as images of a "
                        f"class: move it out of {folder}")


def refuse_out_inside(spec, out) -> None:
    """Refuse a run directory ``out`` inside the image folder ``spec`` it is fitted on:
    what it writes (samples, figures) would be read back as images."""
    folder = Path(spec)
    if not folder.is_dir():
        return
    folder, target = folder.resolve(), Path(out).resolve()
    if target == folder or folder in target.parents:
        raise DataError(f"--out {out} lies inside the image folder {spec} being read; its "
                        "figures and samples would be read back as images: write the run "
                        "elsewhere")


def _open(Image, path: Path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError:
        raise DataError(f"{path}: the image is too large to read") from None
    except (OSError, ValueError, SyntaxError) as exc:  # UnidentifiedImageError is an OSError
        raise DataError(f"{path} is not a readable PNG/JPEG image ({brief_error(exc)})") from None


def _probe(Image, files: list[Path]) -> tuple[list[tuple[int, int]], list[str]]:
    """Each file's (height, width) and mode, from its header (no pixel data read)."""
    sizes, modes = [], []
    for path in files:
        with _open(Image, path) as image:
            width, height = image.size
            mode = image.mode
        if width * height > MAX_PIXELS:
            raise DataError(f"{path} has {width}x{height} pixels, more than the "
                            f"{MAX_PIXELS} elbokit reads per image; downscale it first")
        if mode not in GREY_MODES + RGB_MODES:
            raise DataError(f"{path} has image mode {mode!r}, which elbokit does not read "
                            "(grey or RGB, 8 or 16 bits)")
        sizes.append((height, width))
        modes.append(mode)
    return sizes, modes


def _target_size(folder: Path, files, sizes, resize, crop) -> tuple[int, int]:
    if resize is not None:
        if not (isinstance(resize, (tuple, list)) and len(resize) == 2 and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                for v in resize)):
            raise DataError(f"resize must be (height, width), two positive integers; got "
                            f"{resize!r}")
        if max(resize) > MAX_SIDE:
            raise DataError(f"resize {int(resize[0])}x{int(resize[1])}: each side must be at "
                            f"most {MAX_SIDE} pixels (a VAE's images are tens to hundreds of "
                            "pixels a side)")
        return int(resize[0]), int(resize[1])
    if crop not in CROPS:
        raise DataError(f"crop must be None or 'center'; got {crop!r}")
    if crop == "center":
        return min(h for h, _ in sizes), min(w for _, w in sizes)
    counts = Counter(sizes)
    if len(counts) > 1:
        first = {size: files[sizes.index(size)].name for size in counts}
        listed = ", ".join(f"{h}x{w} ({n} files, e.g. {first[(h, w)]})"
                           for (h, w), n in counts.most_common(6))
        more = f" and {len(counts) - 6} more" if len(counts) > 6 else ""
        raise DataError(f"the images of {folder} have {len(counts)} sizes (height x width): "
                        f"{listed}{more}; pass resize=(h, w) or crop='center' (--resize H,W "
                        "or --crop center) to bring them to one size")
    return sizes[0]


def _centre_box(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """The largest centred box of width/height ratio ``aspect``."""
    if width / height > aspect:
        w, h = max(1, round(height * aspect)), height
    else:
        w, h = width, max(1, round(width / aspect))
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def _pixels(Image, path: Path, channels: int, size, crop, resize) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1]."""
    height, width = size
    with _open(Image, path) as image:
        try:
            image.load()  # a truncated file fails here
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{path} cannot be decoded ({brief_error(exc)})") from None
        if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey
            values = np.asarray(image, dtype=np.float32) / 65535.0
            image = Image.fromarray(np.clip(values, 0, 1).astype(np.float32))  # mode "F"
            scale = 1.0
        else:
            image = image.convert("RGB" if channels == 3 else "L")
            scale = 255.0
        if crop == "center" and image.size != (width, height):
            box = _centre_box(image.size[0], image.size[1], width / height)
            if not resize:  # to the set's smallest size, no scaling
                left, top = (image.size[0] - width) // 2, (image.size[1] - height) // 2
                box = (left, top, left + width, top + height)
            image = image.crop(box)
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        values = np.asarray(image, dtype=np.float32) / scale  # (H, W) or (H, W, 3)
    if values.ndim == 2:
        values = np.repeat(values[None], channels, axis=0)
    else:
        values = values.transpose(2, 0, 1)
    return np.clip(values, 0.0, 1.0)


def read_folder(folder, *, resize=None, crop=None, check_fits=None):
    """(X, labels or None, class names or None, (H, W), C) of the images in ``folder``.

    ``resize=(h, w)``: every image resized to h x w (bilinear); ``crop="center"``:
    cropped about its centre, to the smallest height and width in the set, or with
    ``resize`` to the target's aspect ratio first (no distortion). Grey and colour
    files together are read as RGB (grey replicated), with a warning; an alpha
    channel is dropped. ``check_fits(nbytes, what)``: refuses the matrix before it is
    allocated when memory is short."""
    Image = _pillow()
    folder = Path(folder)
    files, classes = image_files(folder)
    if len(files) > MAX_FILES:
        raise DataError(f"{folder} holds {len(files)} image files, more than the {MAX_FILES} "
                        "elbokit reads into memory")
    if len(files) < 2:
        raise DataError(f"{folder} holds {len(files)} image; at least 2 are needed to split "
                        "it into train and test")
    sizes, modes = _probe(Image, files)
    size = _target_size(folder, files, sizes, resize, crop)
    colour = [m in RGB_MODES for m in modes]
    channels = 3 if any(colour) else 1
    if any(colour) and not all(colour):
        warn(f"{folder}: {colour.count(False)} grey image(s) among "
             f"{colour.count(True)} colour ones; the grey ones are read as RGB "
             "(equal channels)", UserWarning)
    n_values = channels * size[0] * size[1]
    if check_fits is not None:
        check_fits(2 * len(files) * n_values * 4, f"{len(files)} images of {channels}x"
                   f"{size[0]}x{size[1]}")
    X = np.empty((len(files), n_values), dtype=np.float32)
    for i, path in enumerate(files):
        X[i] = _pixels(Image, path, channels, size, crop, resize).reshape(-1)
    labels = None
    if classes is not None:
        index = {name: k for k, name in enumerate(classes)}
        labels = np.asarray([index[p.parent.name] for p in files], dtype=np.int64)
    return X, labels, classes, size, channels
