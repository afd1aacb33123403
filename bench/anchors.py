"""The reference implementations the benches run beside ours, each in its own environment.

    python bench/anchors.py setup [NAME ...]   # check out, build a virtual environment, prepare inputs
    python bench/anchors.py status
    python bench/anchors.py table              # the README's performance table from bench/results/*.json

Three references are research code that is not on PyPI, and two of them state no licence,
so none of their code enters this project. ``setup`` clones each repository at the commit
the anchors were measured at into ``.anchors/NAME/src`` (or ``$WORMFLOW_ANCHORS/NAME``),
from a local bare mirror when one is there (``$WORMFLOW_ANCHOR_GIT/<owner>+<name>/repo``,
by default ``../.mirror``, where the search tool's ``fetch`` puts them) or else from
GitHub, builds ``.anchors/NAME/venv`` with the packages it imports (never the project's
environment) and prepares its inputs. A bench runs a reference through a small runner of
ours (``bench/anchor_runners/NAME.py``) under that environment's Python, which imports the
reference's own modules from its checkout and prints one JSON line of measurements.

Where a reference is not set up or cannot run, :func:`run` raises :class:`Unavailable`
with the reason; the bench prints it and no ratio. ``make test`` never needs any of this.

:func:`pairs` alternates ours and theirs (ours, theirs, ours, theirs, ...) so slow drift of
a shared machine falls on both, and :func:`ratio_line` prints the per-pair ratios as
min-median-max.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = Path(__file__).resolve().parent / "anchor_runners"
TORCH = "torch==2.13.0"          # the CPU wheel the project installs too (see the README for CUDA)


@dataclass(frozen=True)
class Anchor:
    name: str
    repo: str                    # owner/name on GitHub
    commit: str                  # the commit the anchors were measured at
    licence: str                 # as the repository states it
    requirements: tuple[str, ...]
    what: str
    packages: tuple[str, ...] = ()   # folders of the checkout installed into its environment (no dependencies)


ANCHORS = {a.name: a for a in (
    Anchor("worm-data-preprocess", "qsimeon/worm-data-preprocess", "953f66a", "not stated",
           (TORCH, "torch-geometric", "numpy", "pandas", "scipy", "h5py", "mat73", "scikit-learn", "tqdm",
            "pynwb", "openpyxl", "xlrd"),
           "worm-graph's preprocessing (its Dag2023 preprocessor)"),
    Anchor("onehot-hmmglm", "JerrySoybean/onehot-hmmglm", "f5c482c", "not stated",
           (TORCH, "numpy", "scipy", "pandas", "matplotlib"),
           "the one-hot HMM-GLM paper's code (ICLR 2024, its deprecated module)", packages=("hmmglm",)),
    Anchor("LangevinFlow_CCN", "KingJamesSong/LangevinFlow_CCN", "68dcbfa", "MIT (its LICENSE file)",
           (TORCH, "numpy", "scipy", "pytorch-lightning", "h5py", "pandas"),   # its pin, lightning 1.6.0, predates torch 2
           "LangevinFlow's released model (CCN 2025)"),
)}


class Unavailable(RuntimeError):
    """A reference is not set up here or could not run: the message says why."""


def home() -> Path:
    return Path(os.environ.get("WORMFLOW_ANCHORS", ROOT / ".anchors"))


def _git_source(anchor: Anchor) -> str:
    owner, name = anchor.repo.split("/")
    base = Path(os.environ.get("WORMFLOW_ANCHOR_GIT", ROOT.parent / ".mirror"))
    bare = base / f"{owner}+{name}" / "repo"
    return str(bare) if bare.is_dir() else f"https://github.com/{anchor.repo}.git"


def _sh(*cmd, **kw) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode:
        raise Unavailable(f"{' '.join(map(str, cmd[:4]))}…: {(proc.stderr or proc.stdout).strip()[-800:]}")


def _checkout(src: Path, commit: str) -> list[str]:
    """The files of ``commit`` into ``src``. A snapshot may lack the blobs of large data files
    (the references' own example data, which no bench uses); those are left out and listed."""
    if subprocess.run(["git", "-C", str(src), "checkout", "-q", "-f", commit], capture_output=True).returncode == 0:
        return []
    listing = subprocess.run(["git", "-C", str(src), "ls-tree", "-r", "-z", commit], capture_output=True,
                             check=True).stdout.decode().split("\0")
    missing = []
    for entry in filter(None, listing):
        meta, path = entry.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind != "blob":
            continue
        content = subprocess.run(["git", "-C", str(src), "cat-file", "blob", blob], capture_output=True)
        if content.returncode:
            missing.append(path)
            continue
        target = src / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.stdout)
    return missing


def setup(name: str) -> Path:
    """Check out ``name`` at its commit, build its environment and prepare its inputs."""
    anchor = ANCHORS[name]
    where = home() / name
    src, venv = where / "src", where / "venv"
    where.mkdir(parents=True, exist_ok=True)
    if not (src / ".git").exists():
        shutil.rmtree(src, ignore_errors=True)
        _sh("git", "clone", "-q", "--no-checkout", _git_source(anchor), src)
    missing = _checkout(src, anchor.commit)
    if not (venv / "bin" / "python").exists():
        _sh(sys.executable, "-m", "venv", venv)
    _sh(venv / "bin" / "python", "-m", "pip", "install", "-q", *anchor.requirements,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    for package in anchor.packages:
        _sh(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", src / package,
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    prepare = PREPARE.get(name)
    if prepare:
        prepare(where)
    (where / "READY.json").write_text(json.dumps({"commit": anchor.commit, "requirements": anchor.requirements,
                                                  "source": _git_source(anchor), "absent_files": missing}))
    return where


def status(name: str) -> str:
    """"ready at COMMIT" or why not."""
    ready = home() / name / "READY.json"
    if not ready.exists():
        return f"not set up (python bench/anchors.py setup {name})"
    commit = json.loads(ready.read_text())["commit"]
    if commit != ANCHORS[name].commit:
        return f"set up at {commit}, not at {ANCHORS[name].commit}: run setup again"
    return f"ready at {commit}"


def run(name: str, *args, timeout: float = 3600) -> dict:
    """Run ``bench/anchor_runners/<name>.py`` under the reference's environment; its
    measurements (the last JSON line it prints) with ``wall_s``, the whole process's time."""
    state = status(name)
    if not state.startswith("ready"):
        raise Unavailable(f"{name}: {state}")
    where = home() / name
    runner = RUNNERS / f"{name.replace('-', '_')}.py"
    t0 = time.perf_counter()
    proc = subprocess.run([str(where / "venv" / "bin" / "python"), str(runner), str(where / "src"), str(where),
                           *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=where / "src",
                          env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(where / "src")})
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise Unavailable(f"{name} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return {**json.loads(lines[-1]), "wall_s": wall}


def pairs(ours: Callable[[], dict], theirs: Callable[[], dict], n: int = 5) -> tuple[list[dict], list[dict]]:
    """``n`` alternating runs of each: ours, theirs, ours, theirs…"""
    a, b = [], []
    for _ in range(n):
        a.append(ours())
        b.append(theirs())
    return a, b


class Results:
    """The ratios one bench measured, saved to ``bench/results/<bench>.json`` with when, where
    and how, for the README's performance table (``python bench/anchors.py table``)."""

    def __init__(self, bench: str):
        self.bench = bench
        self.rows: list[dict] = []

    def ratio(self, label: str, ours: list[float], theirs: list[float], *, against: str, unit: str = "s",
              goal: str = "") -> str:
        """:func:`ratio_line`, and the row kept for the table."""
        r = sorted(o / t for o, t in zip(ours, theirs))
        self.rows.append({"label": label, "against": against, "unit": unit, "goal": goal, "n": len(r),
                          "ours": statistics.median(ours), "theirs": statistics.median(theirs),
                          "ratio": [r[0], statistics.median(r), r[-1]]})
        return ratio_line(f"{label} (vs {against})", ours, theirs, unit, goal)

    def save(self) -> Path:
        import platform
        from datetime import datetime, timezone

        out = Path(__file__).resolve().parent / "results" / f"{self.bench}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({
            "bench": self.bench, "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
            "rows": self.rows}, indent=1) + "\n")
        return out


def table() -> str:
    """The README's performance table: every saved bench result, one row per ratio."""
    lines = ["| bench | measure | against | ours | theirs | ours/theirs min-median-max (pairs) | goal |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for path in sorted((Path(__file__).resolve().parent / "results").glob("*.json")):
        res = json.loads(path.read_text())
        notes.append(f"`{res['bench']}`: `python {res['command']}`, {res['when']}, {res['machine']}")
        for r in res["rows"]:
            lo, mid, hi = r["ratio"]
            unit = f" {r['unit']}" if r["unit"] else ""
            lines.append(f"| {res['bench']} | {r['label']} | {r['against']} | {r['ours']:.4g}{unit} | "
                         f"{r['theirs']:.4g}{unit} | {lo:.3f}-{mid:.3f}-{hi:.3f} ({r['n']}) | {r['goal']} |")
    return "\n".join(lines) + "\n\nGenerated by `python bench/anchors.py table` from " + "; ".join(notes) + "."


def update_readme(readme: Path = ROOT / "README.md") -> None:
    """Replace the text between the README's bench markers by :func:`table`."""
    begin, end = "<!-- bench table: begin -->", "<!-- bench table: end -->"
    text = readme.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"{readme}: no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{begin}\n{table()}\n{end}{tail}", encoding="utf-8")


def ratio_line(label: str, ours: list[float], theirs: list[float], unit: str = "s", goal: str = "") -> str:
    """``label``: ours and theirs (medians) and ours/theirs per pair as min-median-max."""
    r = sorted(o / t for o, t in zip(ours, theirs))
    return (f"  {label:34s} ours {statistics.median(ours):9.4g} {unit}  theirs {statistics.median(theirs):9.4g} "
            f"{unit}  ours/theirs {r[0]:.3f}-{statistics.median(r):.3f}-{r[-1]:.3f} (n={len(r)})"
            + (f"  {goal}" if goal else ""))


# ---------------------------------------------------------------- inputs each reference needs

def _prepare_worm_data_preprocess(where: Path) -> None:
    """worm-graph reads the Flavell files from ``data/Dag2023/{swf702_with_id,swf415_no_id}``
    and their NeuroPAL labels from a JSON conversion of the lab's JLD2 (as in its own
    download). The files are linked from the mirror; the JSON holds, per recording, the
    label of each trace column, read by wormflow's JLD2 reader."""
    from activity.readers.flavell_h5 import load_labels

    mirror = Path(os.environ.get("WORMFLOW_MIRROR", ROOT.parent / "shared" / "data")) / "activity" / "Dag2023"
    data = where / "data" / "Dag2023"
    labels = {}
    for sub in ("swf702_with_id", "swf415_no_id"):
        (data / sub).mkdir(parents=True, exist_ok=True)
        for f in sorted((mirror / sub).glob("*.h5")):
            link = data / sub / f.name
            if not link.exists():
                link.symlink_to(f)
            uid = f.name.removesuffix("-data.h5")
            table = load_labels(mirror / "NeuroPAL_labels_dict.jld2", uid)
            if table:
                labels[uid] = [{str(col): {"label": str(rec.get("label", ""))} for col, rec in table.items()}, None]
    (data / "NeuroPAL_labels_dict.json").write_text(json.dumps(labels))


PREPARE = {"worm-data-preprocess": _prepare_worm_data_preprocess}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["setup", "status", "table"])
    ap.add_argument("names", nargs="*", help=f"default: all of {', '.join(ANCHORS)}")
    args = ap.parse_args()
    if args.command == "table":
        update_readme()
        print(table())
        return
    for name in args.names or list(ANCHORS):
        if name not in ANCHORS:
            raise SystemExit(f"unknown anchor {name!r} (known: {', '.join(ANCHORS)})")
        if args.command == "setup":
            try:
                print(f"{name}: set up in {setup(name)}")
            except Unavailable as exc:
                print(f"{name}: setup failed: {exc}")
        print(f"{name} ({ANCHORS[name].what}, {ANCHORS[name].repo}@{ANCHORS[name].commit}, licence "
              f"{ANCHORS[name].licence}): {status(name)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
