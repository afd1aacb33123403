"""Benchmark: the default pipeline end to end (`wormflow run`), then again fully cached.

Prints the wall time and peak memory (resident set of the run and all its worker
processes, sampled every 0.2 s) of the default run on the mirror in a fresh workdir, and
the wall time of a second run on the same workdir, where every stage is reused. The
named baseline is the first run: the cached run's time is printed as a fraction of it.

Run: WORMFLOW_MIRROR=../shared/data .venv/bin/python bench/pipeline_run.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def run(workdir: Path) -> tuple[float, float, int]:
    """(seconds, peak MB over the process tree, exit code) of one `wormflow run`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "wormflow"), "run", "--workdir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.2)
    return time.perf_counter() - t0, peak / 1e6, proc.returncode


def main() -> None:
    os.environ.setdefault("WORMFLOW_MIRROR", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        first, mem, rc1 = run(Path(tmp) / "w")
        second, mem2, rc2 = run(Path(tmp) / "w")
    print(f"default run (every stage, mirror sample data, {os.cpu_count()} CPUs): {first:.1f} s, "
          f"peak memory {mem:.0f} MB (run + workers), exit {rc1}")
    print(f"second run, everything cached: {second:.1f} s = {second / first:.3f} of the first, "
          f"peak memory {mem2:.0f} MB, exit {rc2}")


if __name__ == "__main__":
    main()
