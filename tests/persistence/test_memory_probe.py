"""elbokit.persistence.memory: the one memory probe (MemAvailable, a container's cgroup,
the address-space limit) and the one rule that uses it."""

import resource

import pytest

from elbokit.exceptions import DataError, ModelFileError
from elbokit.persistence import memory


@pytest.fixture
def fake_machine(tmp_path, monkeypatch):
    """A meminfo with 5000 kB available, no cgroup and no address-space limit; the
    process maps 2 kB."""
    (tmp_path / "meminfo").write_text("MemTotal: 9000 kB\nMemAvailable: 5000 kB\n")
    (tmp_path / "status").write_text("Name: python\nVmPeak: 3 kB\nVmSize: 2 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "meminfo")
    monkeypatch.setattr(memory, "SELF_STATUS", tmp_path / "status")
    monkeypatch.setattr(memory, "CGROUP_MEMORY_FILES",
                        ((tmp_path / "memory.max", tmp_path / "memory.current"),))
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    return tmp_path


def test_this_machine_has_memory():
    available = memory.available_memory()
    assert available is None or available > 0


def test_mem_available_is_read(fake_machine):
    assert memory.available_memory() == 5000 * 1024


def test_a_container_limit_that_leaves_less_wins(fake_machine):
    (fake_machine / "memory.max").write_text("3000000\n")
    (fake_machine / "memory.current").write_text("1000000\n")
    assert memory.available_memory() == 2_000_000
    (fake_machine / "memory.max").write_text("max\n")  # no limit
    assert memory.available_memory() == 5000 * 1024


def test_an_address_space_limit_that_leaves_less_wins(fake_machine, monkeypatch):
    """ulimit -v: what it leaves is the limit less what the process maps already (a
    Python with torch maps gigabytes; the limit alone overstated the room)."""
    monkeypatch.setattr(resource, "getrlimit", lambda which: (6144, resource.RLIM_INFINITY))
    assert memory.available_memory() == 6144 - 2048
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, resource.RLIM_INFINITY))
    assert memory.available_memory() == 0  # mapped beyond the limit already: no room


def test_ulimit_v_is_seen_in_a_real_process():
    """Under a real RLIMIT_AS of 1.5 GiB (a subprocess), the probe gives less than it."""
    import subprocess
    import sys

    code = ("import resource; from elbokit.persistence import memory; "
            "resource.setrlimit(resource.RLIMIT_AS, (3 * 2**29, 3 * 2**29)); "
            "print(memory.available_memory(), memory._mapped_bytes())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    available, mapped = int(out[0]), int(out[1])
    assert mapped > 0 and available <= max(3 * 2**29 - mapped, 0)


def test_unknown_when_nothing_can_be_read(fake_machine, monkeypatch):
    (fake_machine / "meminfo").unlink()

    def no_sysconf(name):
        raise ValueError(name)

    monkeypatch.setattr("os.sysconf", no_sysconf)
    assert memory.available_memory() is None
    memory.check_memory(2**70, "anything")  # unknown: nothing is refused


def test_check_memory_is_one_line_in_the_callers_error(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 2**30)
    memory.check_memory(2**30, "exactly what is there")
    with pytest.raises(ModelFileError, match=r"^the tensors of m needs 2\.0 GiB of memory but "
                                             r"only 1\.0 GiB is available$"):
        memory.check_memory(2**31, "the tensors of m")
    with pytest.raises(DataError, match="; use fewer rows$"):
        memory.check_memory(2**31, "the table", error=DataError, hint="use fewer rows")
    with pytest.raises(ModelFileError, match=r"about 2\^70 GiB"):
        memory.check_memory(2**100, "a header's claim")
