"""The lock of a run directory: one fit writes into it at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ._torchrun import env_rank
from .exceptions import ParameterError, RunLockedError


class RunLock:
    """An exclusive ``flock`` on a run directory, held while a fit writes into it.

    Created before any work: a second process that asks for the same directory gets a
    :class:`RunLockedError` at once. The lock is on the directory itself, so an existing
    run gains no file; a directory the lock created is removed again if it stays empty
    (a failed fit). Under torchrun only rank 0 (the writer) locks."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.fd = None
        self.created = False
        if env_rank() != 0:
            return
        if self.directory.exists() and not self.directory.is_dir():
            raise ParameterError(f"--out {self.directory} exists and is not a directory")
        self.created = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise ParameterError(f"cannot write to {self.directory} ({exc.strerror or exc}); "
                                 "choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(f"{self.directory} is being written by another elbokit "
                                 "process; wait for it to finish or choose another --out") \
                from None
        self.fd = fd

    def release(self, failed: bool = False) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None
        if failed and self.created:
            try:
                self.directory.rmdir()  # only if empty
            except OSError:
                pass
            self.created = False

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release(failed=exc_type is not None)

    def __del__(self):
        self.release()
