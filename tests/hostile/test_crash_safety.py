"""Crash safety of VAE training: Ctrl-C, kill -9, NaN/inf losses, a full or
unwritable disk. The run directory always holds a loadable checkpoint, and a
resumed run ends with the weights of an uninterrupted one."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit.cli import main  # noqa: E402
from conftest import assert_same_weights as _assert_same_weights  # noqa: E402
from elbokit.exceptions import TrainingError  # noqa: E402
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.train import checkpoint as ckpt  # noqa: E402
from elbokit.nn.config import ArchitectureConfig, TrainingConfig  # noqa: E402
from elbokit.nn.model import VAENetwork  # noqa: E402
from elbokit.nn.objectives import AnalyticKLELBO  # noqa: E402
from elbokit.nn.train import train  # noqa: E402

EPOCHS = 12
# about 0.3 s per epoch on one thread: a signal after the first epoch lands mid-run.
# One thread everywhere: the weights compared bit for bit come from the same kernels,
# and a busy 2-core machine is not oversubscribed.
SLOW = ["fit", "vae", "--data", "digits", "--latent", "3", "--hidden", "64", "--batch-size",
        "16", "--binarize", "dynamic", "--no-progress", "--epochs", str(EPOCHS)]
CLI = ["-c", "import sys; from elbokit.cli import run; sys.argv[0] = 'elbokit'; run()"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    assert main(SLOW + ["--out", str(out)]) == 0
    return VAE.load(out)


def _checkpoint_epoch(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return -1


def _start_and_wait(out: Path, min_epoch: int = 1) -> subprocess.Popen:
    """The CLI in a subprocess, returned once the checkpoint of ``min_epoch`` exists."""
    process = subprocess.Popen([sys.executable, *CLI, *SLOW, "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"},
                               # a shell's background job ignores SIGINT and passes that on:
                               # the child must start with the default, as from a terminal
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while _checkpoint_epoch(out / "checkpoints") < min_epoch:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.02)
    return process


def _resume_and_compare(out: Path, uninterrupted: VAE) -> None:
    saved = ckpt.load_checkpoint(out / "checkpoints")  # loadable, checksums verified
    assert 1 <= saved["epoch"] < EPOCHS, "the signal should land mid-run"
    assert len(saved["history"]) == saved["epoch"]
    assert main(SLOW + ["--resume", "--out", str(out)]) == 0
    _assert_same_weights(VAE.load(out), uninterrupted)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == EPOCHS
    assert not list((out / "checkpoints").glob(".*")), "temporary files left behind"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_exit_with_one_line_and_resume_matches(tmp_path, uninterrupted,
                                                                  signum, code):
    out = tmp_path / "run"
    process = _start_and_wait(out)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("elbokit: training interrupted;")
    epoch = ckpt.load_checkpoint(out / "checkpoints")["epoch"]
    assert f"the checkpoint of epoch {epoch} is in {out / 'checkpoints'}: run the same " \
           f"command with --resume" in stderr, stderr
    assert not (out / "model.json").exists() and "saved to" not in stdout
    _resume_and_compare(out, uninterrupted)


def test_kill_9_mid_epoch_leaves_a_loadable_run_that_resumes_exactly(tmp_path,
                                                                      uninterrupted):
    out = tmp_path / "run"
    process = _start_and_wait(out)
    time.sleep(0.07)  # mid-epoch, or mid-write of a checkpoint
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    _resume_and_compare(out, uninterrupted)


# --------------------------------------------------------------------------- NaN / inf

class PoisonedB(AnalyticKLELBO):
    """L_B, but NaN for every row of the minibatch of call ``bad_call``."""

    def __init__(self, bad_call: int):
        self.bad_call, self.calls = bad_call, 0

    def __call__(self, model, x, n_samples=1, generator=None):
        self.calls += 1
        elbo = super().__call__(model, x, n_samples, generator)
        return elbo * float("nan") if self.calls == self.bad_call else elbo


def _fit(X, run_dir, objective, on_nan, epochs=3):
    architecture = ArchitectureConfig(n_features=X.shape[1], latent_dim=2, hidden=(16,))
    config = TrainingConfig(epochs=epochs, batch_size=64, progress=False, device="cpu")
    torch.manual_seed(0)
    model = VAENetwork(architecture)
    history = train(model, X, config, architecture, objective=objective, run_dir=run_dir,
                    on_nan=on_nan)
    return model, history


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_epoch(tmp_path, digits):
    X = digits.train[:640] / 16.0  # 10 steps per epoch
    with pytest.raises(TrainingError, match=r"epoch 2, step 4 of 10.*last good checkpoint "
                                            r"\(epoch 1\)"):
        _fit(X, tmp_path, PoisonedB(bad_call=14), "stop")
    saved = ckpt.load_checkpoint(tmp_path)
    assert saved["epoch"] == 1 and len(saved["history"]) == 1
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def test_skip_batch_skips_and_counts_the_poisoned_step(tmp_path, digits):
    X = digits.train[:640] / 16.0
    model, history = _fit(X, tmp_path, PoisonedB(bad_call=14), "skip-batch")
    assert [h["skipped_batches"] for h in history] == [0, 1, 0]
    assert all(np.isfinite(h["train_elbo"]) for h in history)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert ckpt.load_checkpoint(tmp_path)["history"][1]["skipped_batches"] == 1
    # the skipped step changed nothing: Adam took 29 steps, not 30
    state = ckpt.load_checkpoint(tmp_path)["optim"]
    assert float(state["0.step"]) == 29
    # without a bad step the counts are zero and the run is the plain one
    _, clean_history = _fit(X, None, AnalyticKLELBO(), "skip-batch")
    _, plain_history = _fit(X, None, AnalyticKLELBO(), "stop")
    assert [h["skipped_batches"] for h in clean_history] == [0, 0, 0]
    assert [h["train_elbo"] for h in clean_history] == [h["train_elbo"] for h in plain_history]


def test_on_nan_is_checked(digits):
    with pytest.raises(ValueError, match="on_nan must be one of"):
        _fit(digits.train[:64] / 16.0, None, AnalyticKLELBO(), "ignore", epochs=1)


# --------------------------------------------------------------------------- the disk

def test_too_little_free_space_is_an_error_before_training(tmp_path, digits, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 10_000))
    vae = VAE(2, hidden=(16,), epochs=1, progress=False, device="cpu")
    with pytest.raises(TrainingError, match=r"MiB free; training needs about"):
        vae.fit(digits.train / 16.0, checkpoint_dir=tmp_path / "ck")
    assert not hasattr(vae, "history_")
    assert not ckpt.has_checkpoint(tmp_path / "ck")


def test_unwritable_output_is_one_line_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    argv = SLOW + ["--out", str(blocker / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err and str(blocker) in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes to read-only directories; the path-under-a-file "
                           "test covers the unwritable case")
def test_read_only_output_directory_is_an_error(tmp_path, digits):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises((TrainingError, ValueError), match="cannot write"):
            VAE(2, hidden=(16,), epochs=1, progress=False, device="cpu").fit(
                digits.train / 16.0, checkpoint_dir=locked / "ck")
    finally:
        locked.chmod(0o700)


def test_disk_full_mid_run_keeps_the_previous_checkpoint_whole(tmp_path, digits,
                                                                monkeypatch):
    import safetensors.torch

    real_save = safetensors.torch.save_file
    calls = []

    def save_until_full(tensors, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:  # the checkpoint of epoch 2 (epoch 0 and 1 were written)
            Path(path).write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(tensors, path, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", save_until_full)
    vae = VAE(2, hidden=(16,), epochs=3, progress=False, device="cpu")
    with pytest.raises(TrainingError, match=r"checkpoint of epoch 2 .*No space left.*the "
                                            r"checkpoint of epoch 1 is kept"):
        vae.fit(digits.train / 16.0, checkpoint_dir=tmp_path)
    # data.json: the digest of the rows it trains on, for a resume to check
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-e0001.safetensors",
                                                         "checkpoint.json", "data.json"]
    assert ckpt.load_checkpoint(tmp_path)["epoch"] == 1


# --------------------------------------------------------------------------- swallowed stops

def test_a_swallowed_sigterm_is_never_reported_as_success(tmp_path, capsys, monkeypatch):
    """SIGTERM's KeyboardInterrupt raised inside a garbage-collection callback is
    discarded by Python. The stop is still a stop: no later write commits, exit 143."""
    import elbokit.report

    run = tmp_path / "run"
    assert main(["fit", "pca", "--latent", "2", "--out", str(run)]) == 0

    def report_that_swallows(run_dir, **options):
        try:
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        except KeyboardInterrupt:
            pass  # what a gc callback does with it
        from elbokit.persistence import atomic_write_bytes

        atomic_write_bytes(Path(run_dir) / "report.html", b"<html>partial</html>")
        return Path(run_dir) / "report.html"

    monkeypatch.setattr(elbokit.report, "write_report", report_that_swallows)
    capsys.readouterr()
    assert main(["report", str(run)]) == 143
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "terminated" in err, err
    assert not (run / "report.html").exists()
    assert not list(run.glob(".report*"))  # no temporary file left either
    monkeypatch.undo()
    assert main(["report", str(run)]) == 0  # the next command is not affected


GC_SIGTERM = """
import gc, os, signal, sys, time
from elbokit.cli import main
fired = []
def callback(phase, info):
    if phase == "start" and not fired and callable(signal.getsignal(signal.SIGTERM)):
        fired.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10000):  # the handler runs here, inside the callback: swallowed
            pass
gc.callbacks.append(callback)
gc.set_threshold(50)  # collections start often: one lands inside the report
sys.exit(main(["report", sys.argv[1]]))
"""


def test_sigterm_inside_a_gc_callback_during_report(tmp_path):
    run = tmp_path / "run"
    assert main(["fit", "pca", "--latent", "2", "--out", str(run)]) == 0
    done = subprocess.run([sys.executable, "-c", GC_SIGTERM, str(run)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 143, done.stderr[-2000:]
    assert not (run / "report.html").exists()
    assert done.stderr.strip().splitlines() == ["elbokit: terminated"], done.stderr[-2000:]
