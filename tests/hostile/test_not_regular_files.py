"""Reads of anything that is not a regular file are refused with one line, symlinks
resolved first (a tensor file that was a symlink to /proc/self/pagemap hung evaluate
and resume until killed; a FIFO blocks the open itself)."""

import os

import numpy as np
import pytest

from elbokit import PPCA, load_model, save_model
from elbokit.data import load
from elbokit.exceptions import DataError, ModelFileError
from elbokit.persistence import read_json, sha256_file


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "ppca"
    save_model(PPCA(2).fit(np.random.default_rng(0).standard_normal((40, 5))), path)
    return path


def _replace_with_link(path, target):
    path.unlink()
    path.symlink_to(target)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("target, match", [("/proc/self/pagemap", "kernel or device file"),
                                           ("/dev/zero", "kernel or device file")])
def test_a_tensor_file_linked_into_proc_or_dev_is_refused(saved, tmp_path, target, match):
    run = tmp_path / "run"
    run.mkdir()
    for name in os.listdir(saved):
        (run / name).write_bytes((saved / name).read_bytes())
    _replace_with_link(run / "weights.safetensors", target)
    with pytest.raises(ModelFileError, match=rf"weights\.safetensors is the {match} "
                                             r"/(proc|dev)/\S+, not a regular file; refused$"):
        load_model(run)


@pytest.mark.timeout(30)
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "data.npy"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    with pytest.raises(DataError, match=r"data\.npy is a FIFO \(named pipe\), not a regular "
                                        r"file; refused$"):
        load(str(fifo))
    with pytest.raises(ModelFileError, match="FIFO"):
        read_json(fifo, "run file")
    with pytest.raises(ModelFileError, match="FIFO"):
        sha256_file(fifo)


@pytest.mark.timeout(30)
def test_a_csv_linked_to_a_kernel_file_is_refused(tmp_path):
    link = tmp_path / "table.csv"
    link.symlink_to("/proc/self/pagemap")
    with pytest.raises(DataError, match=r"table\.csv is the kernel or device file /proc/"):
        load(str(link))


def test_a_symlink_to_a_regular_file_still_reads(saved, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(saved)
    assert load_model(link).n_components_ == 2


def test_the_checksum_reads_no_further_than_the_size(tmp_path):
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("make, match", [
    (lambda p: os.mkfifo(p), r"a FIFO \(named pipe\)"),
    (lambda p: p.symlink_to("/proc/self/pagemap"), "the kernel or device file /proc/"),
])
def test_an_image_folder_entry_that_is_not_a_regular_file_is_refused(tmp_path, make, match):
    from PIL import Image

    for i in range(3):
        Image.new("L", (4, 4), 60 * i).save(tmp_path / f"{i}.png")
    make(tmp_path / "odd.png")
    with pytest.raises(DataError, match=rf"^image file .*odd\.png is {match}"):
        load(str(tmp_path))


@pytest.mark.timeout(30)
def test_an_out_of_core_path_that_is_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "rows.npy"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"^data file .*rows\.npy is a FIFO \(named pipe\), not "
                                        r"a regular file; refused$"):
        PPCA(1).fit(str(fifo))
