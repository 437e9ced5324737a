"""What the hostile tests share: a process stopped by a signal in the middle of its
work."""

import os
import subprocess
import sys
import time

import pytest


@pytest.fixture
def seconds_to_stop():
    """``stop(code, ready, signum)``: run ``code`` in a fresh interpreter, wait for it to
    print ``ready``, let it work a second, send ``signum``; returns (seconds from the
    signal to the exit, return code, stderr)."""
    def stop(code: str, ready: str, signum: int) -> tuple[float, int, str]:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline().strip() == ready
            time.sleep(1.0)  # inside the long loop
            os.kill(process.pid, signum)
            start = time.monotonic()
            process.wait(timeout=30)
            return time.monotonic() - start, process.returncode, process.stderr.read()
        finally:
            process.kill()

    return stop
