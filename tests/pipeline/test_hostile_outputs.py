"""Names from inside files stay values, publishing is atomic and keeps what it did not write,
environment errors are one line, and the run's cluster takes tasks from this process only."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from activity import open_activity
from activity.homogenize import HomogenizeParams, homogenize
from activity.nwb import ExportError
from activity.raw import RawRecording
from activity.store import StoreWriter
from pipeline.cli import main
from pipeline.export import export_store, nwb_paths

BIN = Path(sys.executable).parent


def _store(path: Path, names: list[tuple[str, str]]) -> Path:
    """A store of one small worm per (dataset, worm id), both taken as they came from a file."""
    with StoreWriter(path, HomogenizeParams()) as w:
        for i, (dataset, worm_id) in enumerate(names):
            t = 1000 + np.arange(200) * 0.6
            rec = RawRecording(f"w{i}.h5", worm_id, dataset, "fixture", t,
                               np.random.default_rng(i).normal(size=(200, 2)), ["AVAL", "AVAR"],
                               signal="synthetic fixture", units="a.u.")
            w.append(homogenize(rec), f"{i:064x}", f"{dataset}/{worm_id}")
    return path


def _files(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


def test_names_from_files_never_leave_the_output_folder(tmp_path):
    store = _store(tmp_path / "a.zarr", [("..", "escaped"), (".", ".hidden"), ("D", "../../up"), ("D", "$\\foo{$")])
    out = tmp_path / "deep" / "out"
    before = _files(tmp_path) - _files(out) if out.exists() else _files(tmp_path)
    report = export_store(store, out, validate=False)
    assert not report.failed and len(report.exported) == 4
    written = _files(tmp_path) - before
    assert written and all(p.is_relative_to(out.resolve()) for p in written)
    names = sorted(str(p.relative_to(out.resolve())) for p in written)
    assert names == ["D/_.._up.nwb", "D/_foo_.nwb", "_/escaped.nwb", "_/hidden.nwb"]


def test_two_worms_whose_names_map_to_one_file_are_refused(tmp_path):
    with pytest.raises(ExportError, match=r"worms 'D/a b' and 'D/a_b' would both be written to"):
        nwb_paths(tmp_path, ["D/a b", "D/a_b"])


def test_mathtext_in_a_worm_id_is_drawn_as_text(tmp_path):
    import xarray as xr

    from pipeline.figures import metric_heatmap
    from pipeline.report import coverage_heatmap

    store = _store(tmp_path / "a.zarr", [("D", "$\\foo{$"), ("D", "$x^$")])
    assert coverage_heatmap(store, tmp_path / "coverage.png").stat().st_size > 1000
    worms = open_activity(store).worm.values
    result = xr.Dataset({"horizontal": (("worm", "neuron", "metric"), np.ones((2, 2, 1)))},
                        coords={"worm": worms, "neuron": ["AVAL", "AVA$L"], "metric": ["hvg_lambda"]})
    assert metric_heatmap(result, "horizontal", "hvg_lambda", tmp_path / "m.png").stat().st_size > 1000


def _state(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_publish_killed_at_random_points_leaves_the_old_or_the_new_folder(tmp_path):
    old_store = _store(tmp_path / "old.zarr", [("Fix2024", "w0")])
    new_store = _store(tmp_path / "new.zarr", [("Fix2024", "w0"), ("Fix2024", "w1")])
    to = tmp_path / "hub"
    ref = tmp_path / "ref"
    assert CliRunner().invoke(main, ["publish", str(new_store), "--to", str(ref)]).exit_code == 0
    assert CliRunner().invoke(main, ["publish", str(old_store), "--to", str(to)]).exit_code == 0
    mine = to / "activity" / "data" / "my_own_project" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("a user's own notes")
    old, new = _state(to / "activity"), {**_state(ref / "activity"), **{str(mine.relative_to(to / "activity")):
                                                                         _state(to / "activity")[
                                                                             "data/my_own_project/notes.txt"]}}
    assert old != new
    rng = random.Random(0)
    seen = set()
    for _ in range(12):
        proc = subprocess.Popen([str(BIN / "wormflow"), "publish", str(new_store), "--to", str(to)],
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 2.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        state = _state(to / "activity")
        assert state in (old, new), sorted(set(state) ^ set(old))
        seen.add("new" if state == new else "old")
        if state == new:                      # start each try from the old folder again
            assert CliRunner().invoke(main, ["publish", str(old_store), "--to", str(to)]).exit_code == 0
            assert _state(to / "activity") == old
    assert mine.read_text() == "a user's own notes"
    final = CliRunner().invoke(main, ["publish", str(new_store), "--to", str(to)])
    assert final.exit_code == 0 and _state(to / "activity") == new
    assert not [p for p in to.iterdir() if "staging" in p.name]


def test_an_environment_error_is_one_line_naming_the_path(tmp_path, monkeypatch):
    import pipeline.ingest

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "s.zarr" / "calcium" / "c.0.0.0"))

    monkeypatch.setattr(pipeline.ingest, "ingest_activity", disk_full)
    f = tmp_path / "x.h5"
    f.write_bytes(b"")
    result = CliRunner().invoke(main, ["ingest", "activity", str(f), "--store", str(tmp_path / "s.zarr")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert f"error: {tmp_path}/s.zarr/calcium/c.0.0.0: no space left on the device (disk full)" in text


def test_a_hub_http_error_is_one_line(tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    from pipeline._console import environment_error

    assert environment_error(OSError(errno.EROFS, "Read-only file system", "/ro/store")) == \
        "/ro/store: the location is on a read-only file system (Read-only file system)"
    class Response:                      # what the error keeps of the Hub's answer
        status_code = 401
        url = "https://huggingface.co/api/repos/create"
        headers: dict = {}

    error = HfHubHTTPError.__new__(HfHubHTTPError)
    Exception.__init__(error, "401 Client Error: Unauthorized")
    error.response = Response()
    assert environment_error(error) == ("the Hugging Face Hub answered HTTP 401 "
                                        "https://huggingface.co/api/repos/create: 401 Client Error: Unauthorized")
    assert environment_error(ValueError("a bug")) is None


def test_another_process_cannot_run_tasks_on_the_local_cluster():
    from pipeline.cluster import dask_client

    with dask_client(1) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(lambda x: x + 1, 1).result() == 2
        intruder = textwrap.dedent(f"""
            from distributed import Client
            from distributed.security import Security
            for security in (None, Security.temporary()):
                try:
                    c = Client({address!r}, timeout=5, security=security)
                    print("RAN", c.submit(lambda: 42).result(timeout=5))
                except Exception as exc:
                    print("refused", type(exc).__name__)
            plain = {address.replace("tls://", "tcp://")!r}
            try:
                Client(plain, timeout=5).submit(lambda: 42).result(timeout=5)
                print("RAN over tcp")
            except Exception as exc:
                print("refused", type(exc).__name__)
        """)
        proc = subprocess.run([sys.executable, "-c", intruder], capture_output=True, text=True, timeout=120)
        assert "RAN" not in proc.stdout and proc.stdout.count("refused") == 3, proc.stdout + proc.stderr
        assert client.submit(lambda x: x * 2, 4).result() == 8          # the run's own client still works
