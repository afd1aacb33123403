"""`wormflow run`, `wormflow fetch`: config, resume after SIGKILL, failure isolation, external
Dask scheduler, locking, and the report checked in headless Chromium."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from connectome.store import open_connectome
from click.testing import CliRunner

from activity import open_activity
from activity.readers import read_recordings
from pipeline.cli import main
from pipeline.config import ConfigError, load_config, parse
from pipeline.registry import select
from pipeline.storage import open_result

BIN = Path(sys.executable).parent
FLAVELL = ["activity/Dag2023/swf702_with_id/2022-07-26-31-data.h5", "activity/Dag2023/swf702_with_id/2022-07-27-45-data.h5"]


def small_config(tmp_path, mirror, *, bad: bool = False) -> Path:
    """Two labelled Flavell worms (with their JLD2 labels), one connectome, every stage;
    with ``bad``, a truncated copy of a Flavell file among them."""
    data = tmp_path / "data" / "Dag2023"
    data.mkdir(parents=True)
    for name in FLAVELL:
        shutil.copyfile(mirror / name, data / Path(name).name)
    shutil.copyfile(mirror / "activity/Dag2023/NeuroPAL_labels_dict.jld2", data / "NeuroPAL_labels_dict.jld2")
    if bad:
        (data / "2022-09-09-09-data.h5").write_bytes((mirror / FLAVELL[0]).read_bytes()[:50_000])
    cfg = tmp_path / "small.toml"
    cfg.write_text(f"""
[[sources]]
kind = "activity"
path = "{data}"

[[sources]]
kind = "connectome"
name = "connectome/White1986/aconnectome_white_1986_whole.csv"

[stages.export_nwb]
validate = false

[stages.tsnet]
constructions = ["horizontal"]

[stages.hmmglm]
n_states = 2
max_neurons = 20

[stages.ntf]
enabled = false
""")
    return cfg


def run_cli(*args, env_extra=None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", **(env_extra or {})}
    return subprocess.run([str(BIN / "wormflow"), *args], capture_output=True, text=True, env=env, **kw)


def same_outputs(a: Path, b: Path) -> None:
    """Two workdirs hold the same results (creation times aside)."""
    x, y = open_activity(a / "activity.zarr"), open_activity(b / "activity.zarr")
    xr.testing.assert_identical(x.drop_attrs(), y.drop_attrs())
    assert x.attrs["homogenize_params"] == y.attrs["homogenize_params"]
    cx = open_connectome(a / "connectome.zarr").load()
    cy = open_connectome(b / "connectome.zarr").load()
    xr.testing.assert_identical(cx.drop_attrs(), cy.drop_attrs())
    tx, ty = open_result(a / "analysis" / "tsnet.zarr"), open_result(b / "analysis" / "tsnet.zarr")
    xr.testing.assert_identical(tx.drop_attrs(), ty.drop_attrs())
    hx, hy = open_result(a / "analysis" / "hmmglm.zarr"), open_result(b / "analysis" / "hmmglm.zarr")
    xr.testing.assert_identical(hx.drop_attrs(), hy.drop_attrs())
    files = sorted(p.relative_to(a) for p in (a / "nwb").rglob("*.nwb"))
    assert files == sorted(p.relative_to(b) for p in (b / "nwb").rglob("*.nwb")) and files
    for f in files:
        ra, rb = read_recordings(a / f)[0], read_recordings(b / f)[0]
        np.testing.assert_array_equal(ra.traces, rb.traces)
        assert ra.roi_labels == rb.roi_labels


# ---------------------------------------------------------------- config

def test_config_errors_name_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[stages.tsnet]\nconstrictions = ["horizontal"]\n')
    with pytest.raises(ConfigError, match=r"bad.toml: stages.tsnet.constrictions: unknown key"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"stages.ingest_activity.dt: must be a positive number"):
        parse({"stages": {"ingest_activity": {"dt": -1}}})
    with pytest.raises(ConfigError, match=r"sources\[0\].kind"):
        parse({"sources": [{"kind": "spikes", "path": "x"}]})
    with pytest.raises(ConfigError, match=r"sources\[0\]: give exactly one of 'name'"):
        parse({"sources": [{"kind": "activity", "path": "x", "name": "y"}]})
    with pytest.raises(ConfigError, match="unknown stage"):
        parse({"stages": {"publsh": {}}})
    yml = tmp_path / "c.yaml"
    yml.write_text("stages:\n  tsnet:\n    variable: spikes\n")
    with pytest.raises(ConfigError, match=r"c.yaml: stages.tsnet.variable: must be one of"):
        load_config(yml)
    broken = tmp_path / "broken.toml"
    broken.write_text("[stages\n")
    result = CliRunner().invoke(main, ["run", str(broken), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2 and "broken.toml: not valid TOML" in result.output
    ok = load_config(None)
    assert set(ok.stages) == {"ingest_activity", "ingest_connectome", "export_nwb", "tsnet", "hmmglm", "ntf", "publish", "report"}


# ---------------------------------------------------------------- fetch

def test_fetch_from_a_mirror_verifies_checksums_and_names_a_corrupted_file(tmp_path, mirror):
    names = ["connectome/White1986/aconnectome_white_1986_A.csv", "connectome/White1986/aconnectome_white_1986_L4.csv"]
    fake = tmp_path / "mirror"
    for n in names:
        (fake / n).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / n, fake / n)
    ok = CliRunner().invoke(main, ["fetch", "connectome/White1986/aconnectome_white_1986_A.csv",
                                   "--dest", str(tmp_path / "d"), "--mirror", str(fake)])
    assert ok.exit_code == 0 and (tmp_path / "d" / names[0]).read_bytes() == (mirror / names[0]).read_bytes()
    with open(fake / names[1], "r+b") as fh:
        fh.seek(100)
        fh.write(b"XXXX")
    bad = CliRunner().invoke(main, ["fetch", *names, "--dest", str(tmp_path / "d"), "--mirror", str(fake)])
    assert bad.exit_code == 1
    assert "aconnectome_white_1986_L4.csv" in bad.output and "sha256 mismatch" in bad.output
    assert not (tmp_path / "d" / names[1]).exists()
    unknown = CliRunner().invoke(main, ["fetch", "activity/Nobody2030", "--dest", str(tmp_path / "d")])
    assert unknown.exit_code == 2 and "activity/Nobody2030" in unknown.output


def test_the_registry_pins_every_mirror_file_to_a_commit(mirror):
    import csv

    manifest = {r["file"]: r for r in csv.DictReader(open(mirror / "manifest.csv"))}
    entries = select()
    assert {e.name for e in entries} == set(manifest)
    for e in entries:
        assert e.sha256 == manifest[e.name]["sha256"]
        if e.url:
            assert e.commit in e.url and e.url.startswith("https://raw.githubusercontent.com/")
    assert sum(bool(e.url) for e in entries) >= 60


# ---------------------------------------------------------------- runs

def test_a_bad_file_fails_alone_and_is_listed_in_failures_json(tmp_path, mirror):
    cfg = small_config(tmp_path, mirror, bad=True)
    result = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--workers", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    failures = json.loads((tmp_path / "w" / "failures.json").read_text())
    assert [(Path(f["file"]).name, f["stage"]) for f in failures] == [("2022-09-09-09-data.h5", "ingest_activity")]
    assert "2022-09-09-09-data.h5" in result.stdout + result.stderr
    ds = open_activity(tmp_path / "w" / "activity.zarr")
    assert ds.sizes["worm"] == 2
    assert len(list((tmp_path / "w" / "nwb").rglob("*.nwb"))) == 2
    assert (tmp_path / "w" / "analysis" / "tsnet.zarr").exists()
    assert (tmp_path / "w" / "report" / "index.html").exists()
    assert list((tmp_path / "w" / "logs").glob("run-*.log"))


def _kill_when(proc, ready, timeout=240):
    t0 = time.time()
    while not ready() and proc.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_at_two_points_then_rerun_gives_the_outputs_of_an_uninterrupted_run(tmp_path, mirror):
    cfg = small_config(tmp_path, mirror)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert run_cli("run", str(cfg), "--workdir", str(ref), "--workers", "2").returncode == 0
    env = {**os.environ, "COLUMNS": "200"}
    args = [str(BIN / "wormflow"), "run", str(cfg), "--workdir", str(killed), "--workers", "2"]
    # first kill: while activity files are being ingested (the store's repository begun)
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: (killed / "activity.zarr").exists())
    # second kill: during the NWB export
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: (killed / ".wormflow" / "done" / "ingest_connectome").exists())
    final = run_cli("run", str(cfg), "--workdir", str(killed), "--workers", "2")
    assert final.returncode == 0, final.stdout + final.stderr
    assert "cached" in final.stdout
    same_outputs(ref, killed)
    assert not [p for p in killed.rglob("*") if "staging" in p.name or "partial" in p.name]


def test_a_second_run_on_a_busy_workdir_stops_with_a_clear_message(tmp_path):
    import fcntl

    lock = tmp_path / "w" / ".wormflow" / "run.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write("pid 12345, started now")
        fh.flush()
        result = CliRunner().invoke(main, ["run", "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "another wormflow run is using this workdir" in result.output and "pid 12345" in result.output


# ---------------------------------------------------------------- default run on an external cluster

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, mirror):
    """The built-in default pipeline through a real `dask scheduler` and two `dask worker`s."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "WORMFLOW_MIRROR": str(mirror)}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(3)
    for _ in range(2):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    try:
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        workdir = tmp_path_factory.mktemp("default")
        result = run_cli("run", "--workdir", str(workdir), "--scheduler", address, env_extra=env)
        again = run_cli("run", "--workdir", str(workdir), "--scheduler", address, env_extra=env)
        yield workdir, result, again
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_the_default_pipeline_runs_every_stage_on_an_external_scheduler(default_run):
    workdir, result, _ = default_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 worker(s) at tcp://127.0.0.1" in result.stdout
    for stage in ("ingest_activity", "ingest_connectome", "export_nwb", "tsnet", "hmmglm", "ntf", "publish", "report"):
        assert stage in result.stdout
    assert json.loads((workdir / "failures.json").read_text()) == []
    assert open_activity(workdir / "activity.zarr").sizes["worm"] == 8
    assert len(list((workdir / "nwb").rglob("*.nwb"))) == 8
    assert open_result(workdir / "analysis" / "tsnet.zarr").sizes["worm"] == 8
    states = open_result(workdir / "analysis" / "hmmglm.zarr")
    assert states.sizes["worm"] == 5 and states.sizes["state"] == 3      # the five labelled Flavell worms
    assert "balanced accuracy" in result.stdout
    connectome = open_result(workdir / "analysis" / "ntf.zarr")
    assert connectome.sizes["component"] == 3 and connectome.sizes["worm"] == 5
    assert sorted(p.name for p in (workdir / "published").iterdir()) == ["activity", "analysis", "connectome"]


def test_a_second_run_reuses_everything(default_run):
    workdir, _, again = default_run
    assert again.returncode == 0
    lines = [ln for ln in again.stdout.splitlines()
             if any(s in ln for s in ("ingest_", "export_nwb", "tsnet", "hmmglm", "ntf", "publish"))]
    assert len(lines) == 7 and all("cached" in ln for ln in lines)


def test_the_report_renders_in_headless_chromium_with_every_figure(default_run, tmp_path):
    workdir, _, _ = default_run
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for this test (.ci/run installs it)"
    index = workdir / "report" / "index.html"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
                          "--virtual-time-budget=10000", "--dump-dom", index.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    n_png = len(list((workdir / "report" / "figures").glob("*.png")))
    assert n_png >= 3
    assert f'data-images-loaded="{n_png}/{n_png}"' in dom
    for text in ("Dag2023", "Scholz2018", "Connectomes", "cook_2019_herm", "Provenance", "tsnet_degree_distributions",
                 "hmmglm_states", "hmmglm_prior_vs_connectome", "ntf_loadings", "ntf_communities"):
        assert text in dom
    assert 'data-min-image-scale="1.00"' in dom                # no figure shrunk: each at its own size
    # captions say what a figure shows and its number, not its file name
    assert "circular-shift null" in dom or "circularly shifted" in dom
    assert "phase-randomized" in dom
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", dom, flags=re.S)
    assert len(captions) == n_png
    for caption in captions:                                    # each states what it shows, with a number
        assert len(caption) > 60 and re.search(r"\d", caption), caption
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
                    "--virtual-time-budget=10000", "--window-size=1400,4000", f"--screenshot={shot}", index.as_uri()],
                   capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] >= 4000 * 0.9 and pixels.std() > 0.05          # rendered, and not a blank page
    assert (pixels.reshape(-1, 3).std(axis=1) > 0.1).mean() > 0.01       # coloured figures on it
