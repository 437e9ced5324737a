"""Data-parallel training under torchrun (gloo on loopback): two processes end with
the weights of one process with the same batch size and seed, and a resumed
two-process run matches an uninterrupted one."""

import json
import os
import shutil
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
        "--seed", "3", "--no-progress",
        # float32: one process takes the written-out step, torchrun autograd's (they agree
        # to float rounding; in bfloat16 to bfloat16's, tests/nn/test_precision.py)
        "--precision", "float32"]

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()
                                     and ELBOKIT.is_file()),
                                reason="needs torch.distributed with gloo and the elbokit "
                                       "console script next to the interpreter")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_TAKEN = ("Address already in use", "EADDRINUSE", "DistNetworkError")


def _launch(*args: str, before_retry=None) -> subprocess.CompletedProcess:
    """torchrun with 2 processes on loopback; a second try if the free port we picked
    was taken meanwhile (another test run on this machine)."""
    for _ in range(2):
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                   "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *args]
        done = subprocess.run(command, check=False, capture_output=True, text=True,
                              timeout=120)
        if done.returncode == 0 or not any(s in done.stderr for s in PORT_TAKEN):
            break
        if before_retry is not None:
            before_retry()
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _torchrun(out: Path, epochs: int, *extra: str) -> str:
    # a fresh run tried again starts from an empty directory; a resumed one from its
    # last checkpoint
    fresh = "--resume" not in extra
    return _launch(str(ELBOKIT), *ARGS, "--epochs", str(epochs), "--out", str(out), *extra,
                   before_retry=(lambda: shutil.rmtree(out, ignore_errors=True)) if fresh
                   else None).stdout


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
    """torchrun's full set of variables, as it sets them (nothing less counts)."""
    for name, value in {"WORLD_SIZE": size, "RANK": rank, "LOCAL_RANK": rank,
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": 29500}.items():
        monkeypatch.setenv(name, str(value))


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
    with (_SlicedNoise(generator, 0, 4, total=8),
          pytest.raises(TrainingError, match="can split only torch.randn noise")):
        torch.rand((4, 3), generator=generator)


# --------------------------------------------------------------------------- NaN on one rank

NAN_SCRIPT = '''
import json, sys
import numpy as np
import torch
import elbokit
from elbokit.exceptions import TrainingError
from elbokit.nn import distributed
from elbokit.nn.config import ArchitectureConfig, TrainingConfig
from elbokit.nn.model import VAENetwork
from elbokit.nn.objectives import AnalyticKLELBO
from elbokit.nn.train import train


class PoisonedB(AnalyticKLELBO):
    """NaN on the rows of rank ``bad_rank`` in the minibatch of call 5."""

    def __init__(self, bad_rank):
        self.bad_rank, self.calls = bad_rank, 0

    def __call__(self, model, x, n_samples=1, generator=None):
        self.calls += 1
        elbo = super().__call__(model, x, n_samples, generator)
        poisoned = self.calls == 5 and distributed.rank() == self.bad_rank
        return elbo * float("nan") if poisoned else elbo


def fit(on_nan, bad_rank):
    X = elbokit.data.load("digits").train[:1280] / 16.0
    architecture = ArchitectureConfig(n_features=64, latent_dim=3, hidden=(32,))
    config = TrainingConfig(epochs=2, batch_size=64, binarize="dynamic", progress=False,
                            device="cpu")
    torch.manual_seed(0)
    model = VAENetwork(architecture)
    history = train(model, X, config, architecture, objective=PoisonedB(bad_rank),
                    on_nan=on_nan)
    return model, history


out = sys.argv[1]
model, history = fit("skip-batch", bad_rank=int(sys.argv[2]))
try:
    fit("stop", bad_rank=int(sys.argv[2]))
    error = None
except TrainingError as exc:
    error = str(exc)
with open(f"{out}-rank{distributed.rank()}.json", "w") as handle:
    json.dump({"history": history, "error": error,
               "weights": {k: v.tolist() for k, v in model.state_dict().items()}}, handle)
distributed.shutdown()
'''


@needs_gloo
def test_a_nan_on_one_rank_is_skipped_or_stops_on_every_rank(tmp_path, one_thread):
    script = tmp_path / "nan_run.py"
    script.write_text(NAN_SCRIPT)
    _launch(str(script), str(tmp_path / "two"), "1")
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), "0"],
                            check=False, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    one = json.loads((tmp_path / "one-rank0.json").read_text())
    ranks = [json.loads((tmp_path / f"two-rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:  # rank 1 alone saw the NaN; both skipped the step, then stopped
        assert [h["skipped_batches"] for h in rank["history"]] == [1, 0]
        assert rank["error"] == one["error"]
        assert "epoch 1, step 5 of 20" in rank["error"]
        for name, value in one["weights"].items():
            assert np.allclose(rank["weights"][name], value, rtol=0, atol=1e-5), name


# --------------------------------------------------------------------------- the environment

FULL = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500"}


def test_torchrun_env_needs_the_full_consistent_set():
    from elbokit._torchrun import torchrun_env
    from elbokit.exceptions import ParameterError

    assert torchrun_env({}) is None
    assert torchrun_env({"RANK": "3"}) is None  # a stray variable: one process
    assert torchrun_env({k: v for k, v in FULL.items() if k != "MASTER_PORT"}) is None
    assert torchrun_env(FULL).rank == 1 and torchrun_env(FULL).world_size == 2
    for change in ({"RANK": "2"}, {"RANK": "-1"}, {"WORLD_SIZE": "0"}, {"LOCAL_RANK": "x"},
                   {"MASTER_PORT": "70000"}, {"LOCAL_RANK": "2", "RANK": "1"}):
        with pytest.raises(ParameterError, match="torchrun"):
            torchrun_env({**FULL, **change})


def test_a_lone_rank_variable_means_a_single_process_run(tmp_path, monkeypatch, capsys):
    """Issue 13: RANK=1 left in the environment made `fit` print nothing, exit 0 and
    write no model. Now it trains in one process, says so, and writes the run."""
    from elbokit.cli import main

    for name in FULL:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="RANK=1 set without"):
        code = main(["fit", "vae", "--data", "digits", "--latent", "2", "--hidden", "8",
                     "--epochs", "1", "--no-progress", "--out", str(out)])
    assert code == 0
    assert (out / "model.json").is_file() and "saved to" in capsys.readouterr().out


def test_an_inconsistent_torchrun_environment_is_one_line(tmp_path, monkeypatch, capsys):
    from elbokit.cli import main

    for name, value in {**FULL, "RANK": "5"}.items():
        monkeypatch.setenv(name, value)
    assert main(["fit", "vae", "--data", "digits", "--latent", "2", "--hidden", "8",
                 "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "inconsistent torchrun environment" in err and len(err.splitlines()) == 1


@needs_gloo
@pytest.mark.parametrize("bound", [["--objective", "piwae", "--miwae-m", "2", "--gradient",
                                    "dreg"], ["--prior", "vamp", "--prior-components", "4"]],
                         ids=["piwae-dreg", "vamp-prior"])
def test_two_processes_train_a_multisample_bound_to_the_weights_of_one(tmp_path, one_thread,
                                                                       bound):
    """PIWAE's two decoder passes and DReG's gradient hook under DDP: the same weights
    as one process (noise (M * K, B, L) split by rows like any other); the same for the
    VampPrior (its pseudo-inputs pass through the encoder inside DDP's forward, so their
    gradient is averaged over the processes with the rest; a mixture prior's weights are
    plain parameters)."""
    _torchrun(tmp_path / "two", 1, *bound)
    assert main(ARGS + ["--epochs", "1", "--out", str(tmp_path / "one"), *bound]) == 0
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for name, value in one.items():
        assert np.allclose(two[name], value, rtol=0, atol=1e-5), name


def test_every_rank_waits_for_the_others_before_leaving_the_group(monkeypatch):
    """shutdown() is a barrier, then the teardown: without it the rank that left first
    sometimes aborted at exit (4 of 32 two-process runs under load)."""
    from elbokit.nn import distributed

    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group",
                        lambda: calls.append("destroy"))
    distributed.shutdown()
    assert calls == ["barrier", "destroy"]
