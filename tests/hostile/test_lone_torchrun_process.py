"""torchrun's variables (RANK, WORLD_SIZE, ...) set without a peer: the process fails
within the stated rendezvous timeout with one line (it waited 12 minutes in silence)."""

import os
import socket
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from elbokit.exceptions import ParameterError  # noqa: E402
from elbokit.nn import distributed  # noqa: E402

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="needs torch.distributed with gloo")

INIT = ("import torch; from elbokit.nn import distributed as d; "
        "from elbokit.exceptions import ParameterError\n"
        "try:\n    d.init(torch.device('cpu'))\n"
        "except ParameterError as exc:\n    print(exc); raise SystemExit(2)\n")


def _free_port() -> int:  # nobody listens there: the lone process waits in vain
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("rank", [0, 1])
def test_a_process_without_its_peer_fails_within_the_timeout(rank):
    env = dict(os.environ, RANK=str(rank), LOCAL_RANK="0", WORLD_SIZE="2",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               ELBOKIT_RENDEZVOUS_TIMEOUT="1")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", INIT], env=env, capture_output=True,
                          text=True, timeout=80)
    elapsed = time.monotonic() - start
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "torchrun rendezvous at 127.0.0.1:" in lines[0]
    assert "did not start within 1 s" in lines[0] and "start all 2 processes" in lines[0]
    assert elapsed < 60  # torch's own default was 30 minutes


def test_the_timeout_is_checked(monkeypatch):
    monkeypatch.setenv("ELBOKIT_RENDEZVOUS_TIMEOUT", "soon")
    with pytest.raises(ParameterError, match="ELBOKIT_RENDEZVOUS_TIMEOUT='soon'"):
        distributed.rendezvous_timeout()
    monkeypatch.delenv("ELBOKIT_RENDEZVOUS_TIMEOUT")
    assert distributed.rendezvous_timeout() == distributed.RENDEZVOUS_TIMEOUT
