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
    (a failed fit). A run directory that is a symbolic link is refused (a save replaces
    the directory and removes the old one: never through a link). A save that swaps a
    new directory in (:mod:`elbokit.persistence.commit`) locks it first
    (:meth:`adopt`), and a lock taken on a directory that was swapped out meanwhile is
    taken again on the one now there. Under torchrun only rank 0 (the writer) locks."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.fd = None
        self.adopted: list[int] = []
        self.created = False
        if env_rank() != 0:
            return
        if self.directory.is_symlink():
            raise ParameterError(f"--out {self.directory} is a symbolic link (to "
                                 f"{os.readlink(self.directory)}); give the directory itself")
        if self.directory.exists() and not self.directory.is_dir():
            raise ParameterError(f"--out {self.directory} exists and is not a directory")
        self.created = not self.directory.exists()
        for _ in range(5):  # a directory swapped in between the open and the lock: again
            self.fd = self._lock(self.directory)
            if _same_file(self.fd, self.directory):
                return
            os.close(self.fd)
            self.fd = None
        raise RunLockedError(f"{self.directory} is being replaced by another elbokit "
                             "process; wait for it to finish or choose another --out")

    @staticmethod
    def _lock(directory: Path) -> int:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise ParameterError(f"cannot write to {directory} ({exc.strerror or exc}); "
                                 "choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(f"{directory} is being written by another elbokit "
                                 "process; wait for it to finish or choose another --out") \
                from None
        return fd

    def adopt(self, directory: str | os.PathLike) -> None:
        """Lock ``directory`` too (a staging directory, before it is swapped in: a
        process that opens the run afterwards finds it locked)."""
        if self.fd is not None:
            self.adopted.append(self._lock(Path(directory)))

    def release(self, failed: bool = False) -> None:
        for fd in self.adopted:
            os.close(fd)
        self.adopted = []
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


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open directory ``fd`` is still the one at ``path``."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
