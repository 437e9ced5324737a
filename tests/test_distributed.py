"""Data-parallel training under torchrun (gloo on loopback): two processes end with
the weights of one process with the same batch size and seed, and a resumed
two-process run matches an uninterrupted one."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from elbokit.cli import main  # noqa: E402
from elbokit.exceptions import ParameterError, TrainingError  # noqa: E402
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.distributed import Shard, _SlicedNoise  # noqa: E402

ELBOKIT = Path(sys.executable).with_name("elbokit")
# 1294 fit rows: 20 minibatches of 64 and one of 14, split 32 + 32 and 7 + 7;
# two z samples per row: the noise has shape (2, B, L)
ARGS = ["fit", "vae", "--data", "digits", "--latent", "3", "--hidden", "32", "--batch-size",
        "64", "--binarize", "dynamic", "--n-samples", "2", "--validation-fraction", "0.1",
        "--seed", "3", "--no-progress"]

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()
                                     and ELBOKIT.is_file()),
                                reason="needs torch.distributed with gloo and the elbokit "
                                       "console script next to the interpreter")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out: Path, epochs: int, *extra: str) -> str:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(ELBOKIT),
               *ARGS, "--epochs", str(epochs), "--out", str(out), *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _weights(out: Path) -> dict:
    return {k: v.numpy() for k, v in VAE.load(out).model_.state_dict().items()}


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's workers (OMP_NUM_THREADS=1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    stdout = _torchrun(out, 3)
    return out, stdout


@needs_gloo
def test_two_processes_train_to_the_weights_of_one(tmp_path, two_processes, one_thread):
    out, stdout = two_processes
    assert stdout.count("saved to") == 1  # rank 0 alone prints and writes
    single = tmp_path / "single"
    assert main(ARGS + ["--epochs", "3", "--out", str(single)]) == 0
    one, two = _weights(single), _weights(out)
    for name, value in one.items():
        assert np.allclose(two[name], value, rtol=0, atol=1e-5), name
        assert np.abs(value).max() > 1e-2  # trained, not trivially equal
    history_one = json.loads((single / "model.json").read_text())["history"]
    history_two = json.loads((out / "model.json").read_text())["history"]
    for a, b in zip(history_one, history_two, strict=True):
        assert b["train_elbo"] == pytest.approx(a["train_elbo"], rel=1e-5)
        assert b["val_elbo"] == pytest.approx(a["val_elbo"], rel=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert metrics["test_elbo"] == pytest.approx(
        json.loads((single / "metrics.json").read_text())["test_elbo"], rel=1e-4)


@needs_gloo
def test_a_resumed_two_process_run_matches(tmp_path, two_processes):
    out, _ = two_processes
    cut = tmp_path / "cut"
    _torchrun(cut, 1)
    assert json.loads((cut / "checkpoints" / "checkpoint.json").read_text())["epoch"] == 1
    _torchrun(cut, 3, "--resume")
    resumed, full = _weights(cut), _weights(out)
    for name, value in full.items():
        assert np.array_equal(resumed[name], value), name
    assert json.loads((cut / "run.json").read_text())["resumed"] is True


# --------------------------------------------------------------------------- the parts

def _as_rank(monkeypatch, rank: int, size: int = 2) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(size))
    monkeypatch.setenv("RANK", str(rank))


def test_each_rank_takes_its_contiguous_part_of_the_minibatch(monkeypatch):
    x = torch.arange(14.0)[:, None]  # the last minibatch of an epoch: 14 rows
    parts = []
    for rank in range(3):
        _as_rank(monkeypatch, rank, 3)
        shard = Shard(batch_size=63, n_rows=1274, generator=torch.Generator())
        parts.append(shard.take(x))
        assert (shard.start, shard.stop, shard.total) == ([0, 5, 10][rank],
                                                          [5, 10, 14][rank], 14)
    assert torch.equal(torch.cat(parts), x)


def test_batch_size_must_split_evenly(monkeypatch):
    _as_rank(monkeypatch, 0)
    with pytest.raises(ParameterError, match="batch_size 63 must be divisible by the number "
                                             "of processes"):
        Shard(batch_size=63, n_rows=1000, generator=torch.Generator())
    with pytest.raises(ParameterError, match="last minibatch of each epoch has 1 row"):
        Shard(batch_size=64, n_rows=129, generator=torch.Generator())


@pytest.mark.parametrize("shape", [(10, 3), (4, 10, 3)])
def test_each_rank_gets_its_rows_of_the_whole_minibatch_noise(shape):
    generator = torch.Generator()
    generator.manual_seed(5)
    state = generator.get_state()
    full = torch.randn(shape, generator=generator)
    after_full = generator.get_state()
    for start, stop in [(0, 4), (4, 10)]:
        generator.set_state(state)
        local = list(shape)
        local[-2] = stop - start
        with _SlicedNoise(generator, start, stop, total=10):
            noise = torch.randn(tuple(local), generator=generator)
            other = torch.randn(tuple(local))  # not the training generator: untouched
        assert torch.equal(noise, full[..., start:stop, :])
        assert other.shape == tuple(local)
        # every rank's generator moves on as in one process: the streams stay aligned
        assert torch.equal(generator.get_state(), after_full)


def test_other_draws_from_the_training_generator_are_refused():
    generator = torch.Generator()
    with _SlicedNoise(generator, 0, 4, total=8):
        with pytest.raises(TrainingError, match="can split only torch.randn noise"):
            torch.rand((4, 3), generator=generator)
