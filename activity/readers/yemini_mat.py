"""Yemini et al. 2021 NeuroPAL activity .mat (``Head_Activity_*.mat``, ``Tail_Activity_*.mat``).

Documented layout (MATLAB v5): ``fps`` (scalar), ``files`` (cell, one name per worm),
``neurons`` (cell of neuron *class* names, sides not given), ``is_L`` (per class: one
entry per worm, or two per worm for bilateral classes; 1 = left, 0 = right, NaN = an
unpaired neuron), ``norm_traces`` (per class: a trace per entry of ``is_L``; empty when
the neuron was not recorded in that worm). Entry ``j`` belongs to worm ``j mod n_worms``.
Timestamps are ``frame / fps``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from activity.raw import RawRecording
from activity.readers._matfile import is_mat, load_mat, variable_names
from wormflow.core.errors import FormatError

FORMAT = "yemini_mat"
DESCRIPTION = "Yemini 2021 NeuroPAL .mat: fps/files/neurons/is_L/norm_traces"
DATASET = "Yemini2021"
REQUIRED = ("fps", "files", "neurons", "is_L", "norm_traces")


def sniff(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".mat" and is_mat(path)):
        return False
    try:
        return {"norm_traces", "is_L"} <= variable_names(path)
    except Exception:
        return False


def _as_list(v):
    if isinstance(v, list):
        return v
    if isinstance(v, np.ndarray) and v.dtype != object and v.ndim >= 1:
        return list(v)
    return [v]


def read(path: Path) -> list[RawRecording]:
    path = Path(path)
    data = load_mat(path)
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise FormatError(f"{path.name}: missing required variable(s) {', '.join(missing)}")
    fps = float(np.asarray(data["fps"]).ravel()[0])
    files = [str(f) for f in _as_list(data["files"])]
    classes = [str(c) for c in _as_list(data["neurons"])]
    is_left, traces = _as_list(data["is_L"]), _as_list(data["norm_traces"])
    if not (len(classes) == len(is_left) == len(traces)):
        raise FormatError(f"{path.name}: neurons ({len(classes)}), is_L ({len(is_left)}) and norm_traces "
                          f"({len(traces)}) must have one entry per neuron class")
    n = len(files)
    columns: list[list[np.ndarray]] = [[] for _ in range(n)]
    labels: list[list[str]] = [[] for _ in range(n)]
    for cls, sides, entries in zip(classes, is_left, traces):
        sides = np.asarray(sides, dtype=np.float64).ravel()
        entries = _as_list(entries)
        if len(entries) != sides.size or sides.size not in (n, 2 * n):
            raise FormatError(f"{path.name}: class {cls!r} has {sides.size} is_L entries and {len(entries)} "
                              f"traces; expected {n} or {2 * n} of each for {n} worms")
        for j, (side, trace) in enumerate(zip(sides, entries)):
            trace = np.asarray(trace, dtype=np.float64).ravel()
            if trace.size == 0:
                continue
            suffix = "" if np.isnan(side) else ("L" if side == 1 else "R")
            columns[j % n].append(trace)
            labels[j % n].append(cls + suffix)
    out = []
    for w, name in enumerate(files):
        if not columns[w]:
            continue
        length = max(c.size for c in columns[w])
        x = np.full((length, len(columns[w])), np.nan)
        for k, c in enumerate(columns[w]):
            x[: c.size, k] = c
        out.append(RawRecording(
            source_file=str(path), worm_id=name, dataset=DATASET, format=FORMAT,
            timestamps=np.arange(length, dtype=np.float64) / fps, traces=x, roi_labels=labels[w],
            metadata={"fps": fps, "worm_index": w},
            signal="normalized fluorescence (the lab's norm_traces)", units="1"))
    return out
