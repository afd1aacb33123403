"""The reader contract, run over every registered reader, and readers as plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from activity.raw import RawRecording
from activity.readers import READERS, Reader, detect, read_recordings
from wormflow.core.errors import WormflowError
from tests.activity import layouts

BIN = Path(sys.executable).parent
T = np.arange(40) * 0.5
X = np.random.default_rng(5).normal(size=(40, 3))


def _flavell(tmp_path, mirror):
    return sorted((mirror / "activity" / "Dag2023").glob("*/*.h5"))[0]


def _nwb(tmp_path, mirror):
    return next((mirror / "activity" / "Scholz2018").glob("*.nwb"))


SAMPLES = {            # one file per registered reader: real where the mirror has one, else the lab's layout
    "flavell_h5": _flavell,
    "nwb": _nwb,
    "zimmer_mat": lambda tmp, _m: layouts.zimmer_v5(tmp / "WT_Stim.mat", [X], [["AVAL", "", "RIS"]], [T]),
    "yemini_mat": lambda tmp, _m: layouts.yemini_v5(tmp / "Head_Activity.mat", fps=2.0, files=["w1", "w2"],
                                                    neurons=["AVA", "RIS"], is_l=[[1, 1, 0, 0], [np.nan, np.nan]],
                                                    norm_traces=[[X[:, 0], X[:, 1], X[:, 2], X[:, 0]],
                                                                 [X[:, 1], X[:, 2]]]),
    "lin_mat": lambda tmp, _m: layouts.lin_v5(tmp / "worm7.mat", X.T, ["AWCL", "ASEL", "AWAL"], [1, 1, 1], T),
    "leifer_text": lambda tmp, _m: layouts.leifer_text(tmp / "Leifer", 0, X, ["AVAL", "", "RID"], T),
    "venkatachalam_csv": lambda tmp, _m: layouts.venkatachalam_csv(tmp / "worm3.csv", X, ["AVAL", "URXL", ""], T),
}
GARBAGE = {"empty.h5": b"", "noise.mat": bytes(range(256)) * 8, "noise.nwb": b"\x89HDF\r\n\x1a\n" + b"\xff" * 300,
           "noise.csv": b"\x00\x01not,a,table", "0_gcamp.txt": b"1 2 3\n"}


def test_every_registered_reader_has_a_contract_sample():
    built_in = {n for n, r in READERS.items() if r.origin == "wormflow"}
    assert built_in == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_reader_contract(name, tmp_path, mirror):
    reader = READERS[name]
    assert isinstance(reader, Reader) and reader.format == name and reader.description and reader.dataset
    path = SAMPLES[name](tmp_path, mirror)
    assert reader.sniff(path) and detect(path)[0] == name
    recordings = read_recordings(path)
    assert recordings and all(isinstance(r, RawRecording) and r.format == name for r in recordings)
    for r in recordings:
        assert r.signal and r.units and r.traces.shape[1] == len(r.roi_labels)
        assert np.all(np.diff(r.timestamps) > 0)
    for side in reader.side_files(path):
        assert Path(side).is_file()
    for fname, content in GARBAGE.items():            # never raises from a sniff; a bad file is a clear error
        bad = tmp_path / "garbage" / fname
        bad.parent.mkdir(exist_ok=True)
        bad.write_bytes(content)
        assert isinstance(reader.sniff(bad), bool)          # an answer, never an exception
        with pytest.raises(WormflowError):
            read_recordings(bad, format=name)


PLUGIN = '''
"""A throwaway lab format: a header line of neuron labels, then one line per frame: time, values."""
from pathlib import Path

import numpy as np

from activity.raw import RawRecording

FORMAT = "mylab_txt"
DESCRIPTION = "My lab's text traces (plugin)"
DATASET = "MyLab2026"


def sniff(path):
    return Path(path).suffix == ".mylab"


def read(path):
    lines = Path(path).read_text().splitlines()
    labels = lines[0].split()
    values = np.array([[float(v) for v in line.split()] for line in lines[1:]])
    return [RawRecording(str(path), Path(path).stem, DATASET, FORMAT, values[:, 0], values[:, 1:], labels,
                         signal="dF/F0", units="1")]
'''


def _plugin(tmp_path) -> tuple[Path, dict]:
    """A distribution that nobody installed: a module and its dist-info with entry points,
    on PYTHONPATH (importlib.metadata finds it there), plus a broken plugin beside it."""
    site = tmp_path / "site"
    (site / "mylab_wormflow-0.1.dist-info").mkdir(parents=True)
    (site / "mylab_wormflow.py").write_text(PLUGIN)
    (site / "mylab_wormflow-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mylab-wormflow\nVersion: 0.1\n")
    (site / "mylab_wormflow-0.1.dist-info" / "entry_points.txt").write_text(
        "[wormflow.readers]\nmylab = mylab_wormflow\nbroken = no_such_module_anywhere\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "200"}
    return site, env


def _recording(folder: Path, name: str, offset: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.mylab"
    rows = "\n".join(" ".join(f"{v:.6f}" for v in [t, *(x + offset)]) for t, x in zip(T, X))
    path.write_text("AVAL AVAR RIS\n" + rows + "\n")
    return path


def test_a_plugin_reader_ingests_through_the_cli_and_a_broken_one_only_warns(tmp_path):
    _, env = _plugin(tmp_path)
    path = _recording(tmp_path / "data", "w1")
    store = tmp_path / "s.zarr"
    help_ = subprocess.run([str(BIN / "wormflow"), "ingest", "activity", "--help"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert help_.returncode == 0 and "mylab_txt" in help_.stdout
    assert "broken" in help_.stderr and "left out" in help_.stderr
    proc = subprocess.run([str(BIN / "wormflow"), "ingest", "activity", str(path), "--store", str(store)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from activity import open_activity
        ds = open_activity({str(store)!r})
        print(ds.format.values.tolist(), ds.observed.sel(neuron="RIS").values.tolist())
    """)], env=env, capture_output=True, text=True, timeout=120)
    assert check.stdout.strip() == "['mylab_txt'] [True]", check.stderr


def test_a_plugin_reader_runs_on_two_dask_workers(tmp_path):
    _, env = _plugin(tmp_path)
    for i in range(3):
        _recording(tmp_path / "data" / "MyLab2026", f"w{i}", offset=i)      # three different recordings
    cfg = tmp_path / "plugin.toml"
    cfg.write_text(f'[[sources]]\nkind = "activity"\npath = "{tmp_path / "data"}"\nformat = "mylab_txt"\n'
                   + "".join(f"[stages.{s}]\nenabled = false\n" for s in
                             ("ingest_connectome", "export_nwb", "tsnet", "hmmglm", "ntf", "publish", "report")))
    proc = subprocess.run([str(BIN / "wormflow"), "run", str(cfg), "--workdir", str(tmp_path / "w"), "--workers", "2"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 worker(s)" in proc.stdout
    check = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from activity import open_activity
        ds = open_activity({str(tmp_path / "w" / "activity.zarr")!r})
        print(sorted(ds.worm.values.tolist()), sorted(set(ds.format.values.tolist())))
    """)], env=env, capture_output=True, text=True, timeout=120)
    assert check.stdout.strip() == "['MyLab2026/w0', 'MyLab2026/w1', 'MyLab2026/w2'] ['mylab_txt']", check.stderr


def test_two_readers_claiming_one_file_are_tried_in_order_and_named(tmp_path, monkeypatch):
    import activity.readers as registry

    path = layouts.venkatachalam_csv(tmp_path / "worm3.csv", X, ["AVAL", "URXL", ""], T)

    def refuse(p):
        raise registry.FormatError(f"{Path(p).name}: not mine after all")

    greedy = Reader("greedy_csv", "claims every csv", "Greedy", lambda p: Path(p).suffix == ".csv", refuse)
    monkeypatch.setitem(registry.READERS, "greedy_csv", greedy)
    (rec,) = read_recordings(path)
    assert rec.format == "venkatachalam_csv"
    assert "claimed by venkatachalam_csv, greedy_csv; read as venkatachalam_csv" in rec.notes[0]
    monkeypatch.setitem(registry.READERS, "venkatachalam_csv",
                        Reader("venkatachalam_csv", "x", "V", lambda p: True, refuse))
    with pytest.raises(registry.FormatError, match=r"every reader that claims it failed: venkatachalam_csv: .*"
                                                   r"\| greedy_csv: .*not mine after all"):
        read_recordings(path)
