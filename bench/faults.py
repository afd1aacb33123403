"""Fault injection: kill -9 at random points of an ingest, local and on S3.

For each of N kill points (default 50 per location), a fresh store gets one worm, then a
child process ingests three more worms from real Flavell files and is killed with
SIGKILL after a random delay spread over the length of an uninterrupted ingest (timed from the moment the child,
its imports done, starts ingesting). The
store must then equal the state before (1 worm) or after (4 worms) -- never anything in
between and never unreadable -- and a rerun of the same ingest must equal an
uninterrupted run, value for value.

Run: WORMFLOW_MIRROR=../shared/data .venv/bin/python bench/faults.py [--points 50] [--no-s3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402


def child_script(files, store):
    # imports first, then "ready" on stdout: the parent's clock starts where the ingest does
    return (f"import sys\nfrom pipeline.ingest import ingest_activity\n"
            f"print('ready', flush=True)\n"
            f"ingest_activity({[str(f) for f in files]!r}, {store!r})\n")


def check(store, reference) -> str:
    from activity.store import open_activity

    ds = open_activity(store)
    n = ds.sizes["worm"]
    if n not in (1, 4):
        raise AssertionError(f"{store}: {n} worms after a kill (expected 1 or 4)")
    ref = reference.isel(worm=slice(0, n))
    np.testing.assert_array_equal(ds.roi_calcium.values[:, : ref.sizes["time"]], ref.roi_calcium.values)
    return "before" if n == 1 else "after"


def run(location_of, files, points, env, label):
    from activity.store import open_activity
    from pipeline.ingest import ingest_activity

    ref_store = location_of("reference")
    ingest_activity(files[:1], ref_store)
    ingest_activity(files[1:4], ref_store)
    reference = open_activity(ref_store).load()
    # the span the kills are spread over: an uninterrupted child's ingest, from "ready" to exit
    probe = location_of("probe")
    ingest_activity(files[:1], probe)
    proc = subprocess.Popen([sys.executable, "-c", child_script(files[1:4], probe)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    proc.wait()
    span = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    outcomes = {"before": 0, "after": 0}
    for k in range(points):
        store = location_of(f"k{k}")
        ingest_activity(files[:1], store)
        proc = subprocess.Popen([sys.executable, "-c", child_script(files[1:4], store)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 1.3 * span))               # a point within the ingest (or just after)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcomes[check(store, reference)] += 1
        ingest_activity(files[1:4], store)                      # the rerun completes it
        again = open_activity(store)
        np.testing.assert_array_equal(again.roi_calcium.values, reference.roi_calcium.values)
        assert again.worm.values.tolist() == reference.worm.values.tolist()
    print(f"{label}: {points} kill points spread over {1.3 * span:.2f} s from the ingest's start: store before {outcomes['before']}, "
          f"after {outcomes['after']}, broken 0; every rerun equal to the uninterrupted run")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=50)
    ap.add_argument("--no-s3", action="store_true")
    args = ap.parse_args()
    mirror = Path(os.environ.get("WORMFLOW_MIRROR", HERE.parent.parent / "shared" / "data"))
    files = sorted((mirror / "activity" / "Dag2023").glob("*/*.h5"))[2:6]
    with tempfile.TemporaryDirectory() as tmp:
        run(lambda name: str(Path(tmp) / f"{name}.zarr"), files, args.points, dict(os.environ), "local folder")
    if args.no_s3:
        return
    from tests.s3server import moto_server

    with moto_server("wormflow-faults") as (_, env):
        os.environ.update(env)
        prefix = uuid.uuid4().hex
        run(lambda name: f"s3://wormflow-faults/{prefix}/{name}", files, args.points, dict(os.environ), "S3 (moto)")


if __name__ == "__main__":
    main()
