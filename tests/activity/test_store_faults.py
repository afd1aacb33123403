"""A store on a full disk or a read-only location: a clear error naming the store and the
operating system's cause, exit code non-zero, nothing committed, the store still readable
and equal to what it was, and a rerun once the fault is gone equals an uninterrupted ingest.

Both faults are real where this process may mount a filesystem (root with CAP_SYS_ADMIN,
as on CI): a small tmpfs filled to its last kilobytes (ENOSPC), then remounted read-only
(EROFS). Elsewhere the disk is "full" by a file-size limit on the ingest process
(RLIMIT_FSIZE: EFBIG on the first large write) and the store is made read-only by its
permissions, which bind any user but root.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from activity import open_activity
from wormflow.core import repository

WORMFLOW = [sys.executable, "-m", "pipeline.cli"]


def _can_mount(where: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = where / f"probe-{uuid.uuid4().hex[:6]}"
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True).returncode
    if ok == 0:
        subprocess.run(["umount", str(probe)], check=True)
    probe.rmdir()
    return ok == 0


@contextlib.contextmanager
def _volume(tmp_path: Path, mountable: bool):
    """A folder for the store: its own 64 MB tmpfs when mounting is allowed."""
    vol = tmp_path / "vol"
    vol.mkdir()
    if mountable:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(vol)], check=True)
    try:
        yield vol
    finally:
        if mountable:
            subprocess.run(["umount", "-l", str(vol)], check=False)


def _ingest(files, store, *extra, limit_bytes: int | None = None):
    def fault():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit fails with EFBIG instead

    return subprocess.run([*WORMFLOW, "ingest", "activity", *map(str, files), "--store", str(store), *extra],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2],
                          preexec_fn=fault if limit_bytes else None)


def _state(store):
    ds = open_activity(store).load()
    return [c.id for c in repository.open_repository(store).ancestry(branch="main")], ds


@pytest.fixture(scope="module")
def mountable(tmp_path_factory):
    return _can_mount(tmp_path_factory.mktemp("probe"))


@pytest.mark.parametrize("workers", [None, "2"])
def test_a_full_disk_gives_a_clear_error_and_commits_nothing(flavell_files, tmp_path, mountable, workers):
    first, more = flavell_files[2:4], flavell_files[4:6]
    extra = ["--workers", workers] if workers else []
    with _volume(tmp_path, mountable) as vol:
        store = vol / "a.zarr"
        done = _ingest(first, store)
        assert done.returncode == 0, done.stderr
        before_log, before = _state(store)
        filler = vol / "filler"
        if mountable:                      # leave 150 kB: the next worm's chunks do not fit
            free = shutil.disk_usage(vol).free
            with open(filler, "wb") as fh:
                fh.truncate(0)
                os.posix_fallocate(fh.fileno(), 0, free - 150_000)
            full = _ingest(more, store, *extra)
        else:
            full = _ingest(more, store, *extra, limit_bytes=20_000)
        text = " ".join((full.stdout + full.stderr).split())
        assert full.returncode != 0
        assert f"{store}: cannot write to the store:" in text and "nothing of this write was committed" in text
        assert ("No space left on device" if mountable else "File too large") in text
        assert "Traceback" not in text and "internal error" not in text
        after_log, after = _state(store)                  # still readable, and as it was
        assert after_log == before_log and after.identical(before)
        filler.unlink(missing_ok=True)
        rerun = _ingest(more, store, *extra)              # the fault gone, the rerun adds the worms
        assert rerun.returncode == 0, rerun.stderr
        _, ds = _state(store)
        assert ds.sizes["worm"] == 4
        reference = tmp_path / "ref.zarr"                 # equal to an ingest that never failed
        assert _ingest([*first, *more], reference).returncode == 0
        ref = open_activity(reference).load()
        np.testing.assert_array_equal(ds.calcium.values, ref.calcium.values)
        assert list(ds.worm.values) == list(ref.worm.values)


def test_a_read_only_location_gives_a_clear_error_and_stays_readable(flavell_files, tmp_path, mountable):
    with _volume(tmp_path, mountable) as vol:
        store = vol / "a.zarr"
        assert _ingest(flavell_files[2:4], store).returncode == 0
        before_log, before = _state(store)
        if mountable:
            subprocess.run(["mount", "-o", "remount,ro", str(vol)], check=True)
        else:
            for p in [vol, *vol.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
        try:
            refused = _ingest(flavell_files[4:5], store)
            text = " ".join((refused.stdout + refused.stderr).split())
            assert refused.returncode != 0
            assert f"{store}: cannot write here:" in text
            assert ("Read-only file system" if mountable else "Permission denied") in text
            assert "Traceback" not in text
            after_log, after = _state(store)              # a reader still reads it, unchanged
            assert after_log == before_log and after.identical(before)
        finally:
            if mountable:
                subprocess.run(["mount", "-o", "remount,rw", str(vol)], check=True)
            else:
                for p in [vol, *vol.rglob("*")]:
                    p.chmod(p.stat().st_mode | 0o200)
