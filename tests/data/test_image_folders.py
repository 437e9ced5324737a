"""Folders of PNG/JPEG images (elbokit.data.images via data.load): sizes, modes, labels,
errors; and an RGB conv VAE on colour patches, through its report's image grids."""

import json

import numpy as np
import pytest
from PIL import Image

from elbokit import data
from elbokit.data import images as _images
from elbokit.persistence import memory
from elbokit.exceptions import DataError


def _write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)


def _rows(dataset):
    """Every row of the data set, in a fixed order (the split permutes them)."""
    X = np.vstack([dataset.train, dataset.test])
    return X[np.lexsort(X.T[::-1])]


def test_a_grey_folder_reads_every_pixel_in_0_1(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 6, 4))  # five 6x4 (height x width) images
    for i, image in enumerate(images):
        _write(tmp_path / f"{i}.png", image)
    dataset = data.load(str(tmp_path), test_fraction=0.4)
    assert dataset.image_shape == (6, 4) and dataset.channels == 1
    assert dataset.train.dtype == np.float32 and dataset.train.shape == (3, 24)
    expected = images.reshape(5, -1) / 255.0
    np.testing.assert_allclose(_rows(dataset), expected[np.lexsort(expected.T[::-1])],
                               rtol=0, atol=1e-7)
    assert dataset.train_labels is None and dataset.target_names is None


def test_rgb_rows_are_channel_first_and_labels_come_from_sub_folders(tmp_path):
    red = np.zeros((4, 4, 3)); red[..., 0] = 255; red[..., 2] = 102
    grey = np.full((4, 4, 3), 51)
    for i in range(3):
        _write(tmp_path / "reds" / f"r{i}.png", red)
        _write(tmp_path / "greys" / f"g{i}.jpg", grey)
    dataset = data.load(str(tmp_path), test_fraction=0.5)
    assert dataset.channels == 3 and dataset.image_shape == (4, 4)
    assert dataset.target_names == ["greys", "reds"]
    X = np.vstack([dataset.train, dataset.test])
    labels = np.concatenate([dataset.train_labels, dataset.test_labels])
    reds = X[labels == 1]
    assert reds.shape == (3, 48)
    np.testing.assert_allclose(reds[:, :16], 1.0)  # the R plane first, then G, then B
    np.testing.assert_allclose(reds[:, 16:32], 0.0)
    np.testing.assert_allclose(reds[:, 32:], 0.4)
    np.testing.assert_allclose(X[labels == 0], 0.2, atol=0.02)  # JPEG, nearly exact


def test_mixed_modes_become_rgb_with_a_warning_and_alpha_is_dropped(tmp_path):
    _write(tmp_path / "a.png", np.full((4, 4), 255))
    rgba = np.zeros((4, 4, 4)); rgba[..., 1] = 255; rgba[..., 3] = 10
    _write(tmp_path / "b.png", rgba, "RGBA")
    with pytest.warns(UserWarning, match="1 grey image.*read as RGB"):
        dataset = data.load(str(tmp_path), test_fraction=0.5)
    X = _rows(dataset)
    assert dataset.channels == 3
    np.testing.assert_allclose(X[0], np.repeat([0.0, 1.0, 0.0], 16))  # green, alpha gone
    np.testing.assert_allclose(X[1], 1.0)  # white grey, replicated


def test_sizes_must_agree_unless_resized_or_cropped(tmp_path):
    for i in range(3):
        _write(tmp_path / f"s{i}.png", np.zeros((8, 8)))
    image = np.zeros((10, 12)); image[1:9, 2:10] = 255  # the centre 8x8 is white
    _write(tmp_path / "big.png", image)
    with pytest.raises(DataError, match=r"2 sizes \(height x width\): 8x8 \(3 files, e.g. "
                                        r"s0.png\), 10x12 \(1 files, e.g. big.png\).*resize"):
        data.load(str(tmp_path))
    cropped = data.load(str(tmp_path), crop="center", test_fraction=0.5)
    assert cropped.image_shape == (8, 8)
    assert _rows(cropped)[-1].min() == 1.0  # big.png's white centre, exactly
    resized = data.load(str(tmp_path), resize=(4, 6), test_fraction=0.5)
    assert resized.image_shape == (4, 6) and resized.train.shape[1] == 24
    assert resized.load_options == {"resize": [4, 6], "crop": None}
    with pytest.raises(DataError, match="resize must be"):
        data.load(str(tmp_path), resize=(4,))
    with pytest.raises(DataError, match="crop must be"):
        data.load(str(tmp_path), crop="middle")
    with pytest.raises(DataError, match="folders of images only"):
        data.load("digits", resize=(4, 4))


def test_bad_folders_and_files_fail_in_one_line_naming_them(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no PNG or JPEG files"):
        data.load(str(empty))
    folder = tmp_path / "f"
    for i in range(2):
        _write(folder / f"{i}.png", np.zeros((4, 4)))
    (folder / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"bad.png is not a readable PNG/JPEG image"):
        data.load(str(folder))
    whole = (folder / "0.png").read_bytes()
    (folder / "bad.png").write_bytes(whole[: len(whole) // 2])  # truncated
    with pytest.raises(DataError, match=r"bad.png (cannot be decoded|is not a readable)"):
        data.load(str(folder))
    (folder / "bad.png").unlink()
    _write(folder / "sub" / "x.png", np.zeros((4, 4)))
    with pytest.raises(DataError, match="both at its top level"):
        data.load(str(folder))
    (folder / "sub" / "x.png").unlink()


@pytest.mark.parametrize("limit, value, message", [
    ("MAX_FILES", 1, "2 image files, more than the 1"),
    ("MAX_PIXELS", 15, "0.png has 4x4 pixels, more than the 15"),
    ("memory", 100, "2 images of 1x4x4 needs .* only"),  # bytes available
])
def test_folders_beyond_a_limit_are_refused_before_reading(tmp_path, monkeypatch, limit,
                                                           value, message):
    for i in range(2):
        _write(tmp_path / f"{i}.png", np.zeros((4, 4)))
    if limit == "memory":
        monkeypatch.setattr(memory, "available_memory", lambda: value)
    else:
        monkeypatch.setattr(_images, limit, value)
    with pytest.raises(DataError, match=message):
        data.load(str(tmp_path))


@pytest.fixture(scope="module")
def colour_patches(tmp_path_factory):
    """64 RGB 16x16 patches of scikit-learn's two sample photos, one sub-folder each."""
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("patches")
    photos = load_sample_images()
    for name, photo in zip(("china", "flower"), photos.images):
        small = np.asarray(Image.fromarray(photo).resize((128, 64)))  # (64, 128, 3)
        for k in range(32):
            r, c = divmod(k, 8)
            _write(folder / name / f"{k:02d}.png", small[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])
    return folder


def test_an_rgb_conv_vae_fits_and_its_report_draws_colour_grids(colour_patches, tmp_path,
                                                                monkeypatch):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from elbokit.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["fit", "vae", "--data", str(colour_patches), "--arch",
                                      "conv", "--latent", "2", "--epochs", "1", "--no-progress",
                                      "--resize", "8,8", "--crop", "center", "--out",
                                      "runs/rgb"])
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "runs" / "rgb" / "model.json").read_text())
    assert model["settings"]["architecture"]["channels"] == 3
    assert model["settings"]["architecture"]["image_shape"] == [8, 8]
    run = json.loads((tmp_path / "runs" / "rgb" / "run.json").read_text())
    assert run["channels"] == 3 and run["target_names"] == ["china", "flower"]
    assert run["load_options"] == {"resize": [8, 8], "crop": "center"}  # the report's reload
    # the folder given again; read with the run's own --resize and --crop
    result = CliRunner().invoke(app, ["report", "runs", "--data", str(colour_patches)])
    assert result.exit_code == 0, result.output
    figures = tmp_path / "runs" / "rgb" / "figures"
    samples = np.asarray(Image.open(figures / "samples.png").convert("RGB"), dtype=float)
    # colour, not grey: the channels differ somewhere in the grid of samples
    assert np.abs(samples[..., 0] - samples[..., 2]).max() > 10
    for name in ("reconstructions", "uncertainty", "traversals", "manifold", "latent"):
        assert (figures / f"{name}.png").stat().st_size > 1000, name
    page = (tmp_path / "runs" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 7  # the grids, latent, KL, curves
