"""The long probes of a save (issue 31, item 5), short here; ``benchmarks/fuzz.py saves``
runs them long (``ELBOKIT_SAVE_PROBES=long``): a full disk (a small tmpfs, filled to
leave each few KiB free; skipped where mounting is not allowed), ``ulimit -f`` at every
limit up to the largest file, SIGKILL at every file boundary of a save (each rename,
the swap, the carry-over), and two ``compare`` writers on one --out. Each outcome must
be the new run whole (exit 0) or the previous run whole with one line (exit 2); a
compare.json always agrees with the runs beside it."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

LONG = os.environ.get("ELBOKIT_SAVE_PROBES", "short") == "long"
KINDS = {"pca": [], "fa": [], "ppca": [],
         "vae": ["--hidden", "8", "--epochs", "1", "--no-progress"]}
SHORT_KINDS = ("pca",)  # make test: seconds; the VAE in the long run
# the long run's limits per kind, from 512 B to past the largest file: a VAE's fit in a
# fresh interpreter takes ~6 s on 2 shared cores, 48 of them ran past pytest's 300 s
LIMITS = {"vae": 12}
LONG_TIMEOUT = 1800  # seconds per long probe (pytest-timeout's 300 s is make test's)
long_timeout = pytest.mark.timeout(LONG_TIMEOUT if LONG else 300)

EVENTS = """
import os, signal, atexit
import elbokit.persistence.commit as commit
count = [0]
def event(real):
    def wrapped(*args, **kwargs):
        count[0] += 1
        if count[0] == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return wrapped
os.replace, os.rename = event(os.replace), event(os.rename)
commit._exchange, commit.carry_over = event(commit._exchange), event(commit.carry_over)
atexit.register(lambda: open({count_file!r}, "w").write(str(count[0])))
"""


def _cli(argv, before="", fsize=None, **popen):
    code = before + f"\nimport sys\nfrom elbokit.cli import main\nsys.exit(main({argv!r}))\n"

    def limit():
        if fsize is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    args = dict(capture_output=True, text=True, preexec_fn=limit,
                env={**os.environ, "OMP_NUM_THREADS": "1"})
    if popen.pop("background", False):
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=args["env"])
    return subprocess.run([sys.executable, "-c", code], timeout=300, **args)


def _digests(run: Path) -> dict:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def _fit(kind, data, out, latent, overwrite=True):
    return ["fit", kind, "--data", str(data), "--latent", str(latent), "--out", str(out),
            *KINDS[kind], *(["--overwrite"] if overwrite else [])]


def _whole(run: Path) -> int:
    """The run passes its manifest and its model is the fit its run.json names."""
    from elbokit.models import load_model
    from elbokit.persistence import check_manifest

    check_manifest(run)
    latent = json.loads((run / "run.json").read_text())["latent"]
    assert load_model(run).latent_dim_ == latent
    return latent


def _outcome(done, run: Path, before: dict, new_latent: int, foreign_lines: bool = False) -> str:
    """exit 0: the new run, whole; exit 2: one line and the previous run unchanged.
    ``foreign_lines``: a limit so low that another library may warn before elbokit's
    line (joblib's semaphore below 4 KiB of ``ulimit -f`` on some systems): elbokit's
    line is then the last and the only one of its own."""
    err = done.stderr.strip()
    if done.returncode == 0:
        assert _whole(run) == new_latent
        return "new run"
    # the error is one line; FA's EM progress bar (above 256 features) is not an error
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and "it/s" not in line]
    if foreign_lines:
        assert lines and lines[-1].startswith("elbokit: error: "), err[-800:]
        lines = [line for line in lines if line.startswith("elbokit:")]
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, err[-800:])
    assert _digests(run) == before
    return "previous run kept"


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".elbokit-" in p.name]


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.random.default_rng(0).random((200, 300)))  # in [0, 1]: a VAE too
    return path


def _kinds():
    return list(KINDS) if LONG else list(SHORT_KINDS)


# --------------------------------------------------------------------------- kills

@long_timeout
@pytest.mark.parametrize("kind", _kinds())
def test_sigkill_at_every_file_boundary_of_a_save(tmp_path, table, kind):
    run = tmp_path / "r"
    assert _cli(_fit(kind, table, run, 3, overwrite=False)).returncode == 0
    (run / "notes.txt").write_text("the user's")
    count_file = tmp_path / "events"
    done = _cli(_fit(kind, table, run, 4), EVENTS.format(kill_at=0, count_file=str(count_file)))
    assert done.returncode == 0, done.stderr[-800:]
    events = int(count_file.read_text())
    chosen = range(1, events + 1) if LONG else sorted({events // 2, events})
    seen = {}
    for k in chosen:
        latent = _whole(run)
        new = 7 - latent  # 3 <-> 4
        done = _cli(_fit(kind, table, run, new),
                    EVENTS.format(kill_at=k, count_file=str(tmp_path / "unused")))
        assert done.returncode == -9, done.stderr[-800:]
        after = _whole(run)  # never a mix of two fits
        assert after in (latent, new)
        seen[k] = "new run" if after == new else "previous run"
    # the next start cleans up, and carries over what a kill after the swap left behind
    assert _cli(_fit(kind, table, run, 2)).returncode == 0
    _no_leftovers(tmp_path)
    assert (run / "notes.txt").read_text() == "the user's"
    print(f"{kind}: {events} events per save; killed at {list(chosen)}: {seen}")


# --------------------------------------------------------------------------- the disk

@long_timeout
@pytest.mark.parametrize("kind", _kinds())
def test_every_file_size_limit_keeps_a_whole_run(tmp_path, table, kind):
    run = tmp_path / "r"
    assert _cli(_fit(kind, table, run, 3, overwrite=False)).returncode == 0
    largest = max(p.stat().st_size for p in run.rglob("*") if p.is_file())
    step = max(512, largest // LIMITS.get(kind, 48)) if LONG else largest // 2
    tally = {}
    # from 512 B; below 4 KiB joblib (imported by scikit-learn) may warn first that it
    # cannot make its semaphore: elbokit's line must then be the last
    for limit in range(512 if LONG else 4096, max(largest, 4096) + 2 * step, step):
        latent = _whole(run)
        before = _digests(run)
        done = _cli(_fit(kind, table, run, 7 - latent), fsize=max(limit, 1))
        what = _outcome(done, run, before, 7 - latent, foreign_lines=limit < 4096)
        tally[what] = tally.get(what, 0) + 1
        _no_leftovers(tmp_path)
    assert "previous run kept" in tally
    print(f"{kind}: ulimit -f up to {largest} bytes, step {step}: {tally}")


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@long_timeout
@pytest.mark.parametrize("kind", _kinds())
def test_a_full_disk_at_every_free_size_keeps_a_whole_run(tmp_path, table, kind):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "8m"):
        pytest.skip("no tmpfs can be mounted here (needs root)")
    try:
        run = disk / "r"
        assert _cli(_fit(kind, table, run, 3, overwrite=False)).returncode == 0
        size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
        step = max(4096, size // 16) if LONG else 2 * size
        tally = {}
        for leave in range(0, 2 * size + 3 * 4096, step):
            filler = disk / "filler"
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            with open(filler, "wb") as handle:
                handle.truncate(0)
                handle.write(b"\0" * max(0, free - leave))
            latent = _whole(run)
            before = _digests(run)
            what = _outcome(_cli(_fit(kind, table, run, 7 - latent)), run, before,
                            7 - latent)
            tally[what] = tally.get(what, 0) + 1
            filler.unlink()
            _no_leftovers(disk)
        assert "previous run kept" in tally
        print(f"{kind}: run of {size} bytes, free space 0..{2 * size + 3 * 4096} step "
              f"{step}: {tally}")
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# --------------------------------------------------------------------------- two writers

@long_timeout
def test_two_compare_writers_on_one_out_never_leave_the_table_out_of_step(tmp_path, table):
    out = tmp_path / "c"
    tally = {}
    for round_ in range(20 if LONG else 1):
        argv = ["compare", "--models", "pca,fa", "--k", "5", "--data", str(table),
                "--out", str(out), "--overwrite"]
        writers = [_cli(argv + ["--latent", str(latent)], background=True)
                   for latent in (3, 4)]
        results = [(w.wait(timeout=300), w.stderr.read()) for w in writers]
        for code, err in results:
            assert code in (0, 2), err[-800:]
            if code == 2:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and "being written by another elbokit" in lines[0], err
        assert any(code == 0 for code, _ in results)
        key = "/".join("ok" if code == 0 else "refused" for code, _ in results)
        tally[key] = tally.get(key, 0) + 1
        table_file = json.loads((out / "compare.json").read_text())
        for model in ("pca", "fa"):  # the table's rows are the runs on disk
            assert _whole(out / model) == table_file["latent"]
    print(f"two writers, {sum(tally.values())} rounds: {tally}")
