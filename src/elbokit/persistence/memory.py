"""The one memory probe: how many bytes a new allocation can still take, and the one
rule that uses it (refuse, before allocating, what would not fit)."""

from __future__ import annotations

from pathlib import Path

from ..exceptions import ModelFileError

MEMINFO = Path("/proc/meminfo")
SELF_STATUS = Path("/proc/self/status")
# (limit, usage) files of a container's memory cgroup, v2 then v1
CGROUP_MEMORY_FILES = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
     Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")),
)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, or None where that is unknown:
    ``MemAvailable`` of ``/proc/meminfo`` (the free physical pages where it is absent),
    or less where a container's memory cgroup or the address-space limit
    (``RLIMIT_AS``, less what the process maps already) leaves less."""
    candidates = [n for n in (_mem_available(), _cgroup_free(), _address_space_limit())
                  if n is not None]
    return min(candidates) if candidates else None


def _mem_available() -> int | None:
    available = _kib_field(MEMINFO, "MemAvailable")
    if available is not None:
        return available
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _kib_field(path: Path, key: str) -> int | None:
    """The ``key:  N kB`` line of a /proc file (meminfo, status), in bytes."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_free() -> int | None:
    for limit_file, usage_file in CGROUP_MEMORY_FILES:
        try:
            limit, usage = int(limit_file.read_text()), int(usage_file.read_text())
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
        return max(limit - usage, 0) if limit < 2**60 else None
    return None


def _address_space_limit() -> int | None:
    """What ``RLIMIT_AS`` (``ulimit -v``) leaves: the soft limit less the address space
    this process maps already (``VmSize``; a Python with torch maps gigabytes)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, ValueError, OSError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    return max(soft - (_mapped_bytes() or 0), 0)


def _mapped_bytes() -> int | None:
    """This process's mapped address space (``VmSize`` of ``/proc/self/status``)."""
    return _kib_field(SELF_STATUS, "VmSize")


def gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB for a message (a header's absurd claim too)."""
    if n_bytes >= 2**80:  # float division would overflow or say nothing useful
        return f"about 2^{int(n_bytes).bit_length() - 31} GiB"
    return f"{n_bytes / 2**30:.1f} GiB"


def check_memory(n_bytes: int | float, what: str, *, error=ModelFileError,
                 hint: str = "") -> None:
    """Raise ``error`` (one line) before allocating when ``what`` needs more than the
    available memory; ``n_bytes`` is the peak the caller will hold (every copy
    counted). Nothing is refused where the available memory is unknown."""
    available = available_memory()
    if available is not None and n_bytes > available:
        raise error(f"{what} needs {gib(n_bytes)} of memory but only {gib(available)} is "
                    f"available" + (f"; {hint}" if hint else ""))
