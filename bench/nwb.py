"""Benchmark: NWB export and re-import per worm of the mirror.

For every worm: seconds to export (build + write the NWB file), seconds to validate it
(pynwb + nwbinspector), seconds to read it back through wormflow's reader, the file size,
and, as the named baseline, the seconds to read the worm's original source file with its
lab reader (re-import / source read is the ratio printed).

Run: WORMFLOW_MIRROR=../shared/data .venv/bin/python bench/nwb.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

import numpy as np  # noqa: E402

from activity import open_activity  # noqa: E402
from activity.nwb import ExportParams, build_nwbfile, check_nwb, worm_record, write_nwb  # noqa: E402

# the files state no age and DANDI needs one: the bench states one, as a user would
PARAMS = ExportParams(metadata={"age": "P3D", "age_reference": "birth"})
from activity.readers import read_recordings  # noqa: E402
from pipeline.export import nwb_path  # noqa: E402
from pipeline.ingest import ingest_activity  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> None:
    mirror = Path(os.environ.get("WORMFLOW_MIRROR", ROOT.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "a.zarr"
        ingest_activity([mirror / "activity" / "Dag2023", mirror / "activity" / "Scholz2018"], store)
        ds = open_activity(store)
        labels = mirror / "activity" / "Dag2023" / "NeuroPAL_labels_dict.jld2"
        print(f"{'worm':<40}{'export s':>9}{'check s':>9}{'re-import s':>12}{'source read s':>14}"
              f"{'ratio':>7}{'MB':>7}{'MB/ROI-hour':>12}")
        rows = []
        for worm in ds.worm.values.tolist():
            path = nwb_path(Path(tmp) / "nwb", worm)
            rec, t_rec = timed(lambda: worm_record(ds, worm))
            _, t_write = timed(lambda: write_nwb(build_nwbfile(rec, PARAMS, "bench"), path))
            problems, t_check = timed(lambda: check_nwb(path))
            _, t_read = timed(lambda: read_recordings(path, format="nwb"))
            src = Path(rec["source_file"])
            src = src if src.is_absolute() else Path.cwd() / src
            opts = {"labels": str(labels)} if rec["format"] == "flavell_h5" else {}
            _, t_src = timed(lambda: read_recordings(src, format=rec["format"], **opts))
            mb = path.stat().st_size / 1e6
            roi_hours = rec["native"].shape[1] * float(rec["native_time"][-1]) / 3600
            rows.append((t_rec + t_write, t_check, t_read, t_src, mb))
            flag = "" if not problems else f"  {len(problems)} problem(s)"
            print(f"{worm:<40}{t_rec + t_write:>9.2f}{t_check:>9.2f}{t_read:>12.3f}{t_src:>14.3f}"
                  f"{t_read / t_src:>7.2f}{mb:>7.2f}{mb / roi_hours:>12.2f}{flag}")
        r = np.array(rows)
        print(f"{'mean per worm':<40}{r[:, 0].mean():>9.2f}{r[:, 1].mean():>9.2f}{r[:, 2].mean():>12.3f}"
              f"{r[:, 3].mean():>14.3f}{r[:, 2].mean() / r[:, 3].mean():>7.2f}{r[:, 4].mean():>7.2f}")


if __name__ == "__main__":
    main()
