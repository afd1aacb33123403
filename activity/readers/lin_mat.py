"""Lin et al. 2023 (Venkatachalam lab) per-worm olfactory-response .mat files.

Documented layout (MATLAB v5): ``corrected_F`` (N x T), ``F_0`` (N x 1 baseline),
``proofread_neurons`` (N names), ``use_flag`` (N, >0 for ROIs the lab kept), ``times``
(a cell whose last entry is the T-long time vector in seconds). Only ROIs with
``use_flag > 0`` are returned; how many were set aside is kept in the metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from activity.raw import RawRecording
from activity.readers._matfile import as_text_label, is_mat, load_mat, variable_names
from wormflow.core.errors import FormatError

FORMAT = "lin_mat"
DESCRIPTION = "Lin 2023 .mat: corrected_F/proofread_neurons/use_flag/times"
DATASET = "Lin2023"
REQUIRED = ("corrected_F", "proofread_neurons", "use_flag", "times")


def sniff(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".mat" and is_mat(path)):
        return False
    try:
        return {"corrected_F", "proofread_neurons"} <= variable_names(path)
    except Exception:
        return False


def read(path: Path) -> list[RawRecording]:
    path = Path(path)
    data = load_mat(path)
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise FormatError(f"{path.name}: missing required variable(s) {', '.join(missing)}")
    f = np.atleast_2d(np.asarray(data["corrected_F"], dtype=np.float64))
    names = data["proofread_neurons"]
    names = [as_text_label(v) for v in (names if isinstance(names, list) else list(np.atleast_1d(names)))]
    flags = np.asarray(data["use_flag"], dtype=np.float64).ravel()
    times = data["times"]
    t = np.asarray(times[-1] if isinstance(times, list) else times, dtype=np.float64).ravel()
    if not (f.shape[0] == len(names) == flags.size):
        raise FormatError(f"{path.name}: corrected_F has {f.shape[0]} rows, proofread_neurons {len(names)} "
                          f"and use_flag {flags.size}; they must agree (one row per ROI)")
    keep = flags > 0
    return [RawRecording(
        source_file=str(path), worm_id=path.stem, dataset=DATASET, format=FORMAT,
        timestamps=t, traces=f[keep].T, roi_labels=[n for n, k in zip(names, keep) if k],
        metadata={"rois_set_aside_by_use_flag": int((~keep).sum())},
        signal="bleach-corrected fluorescence (the lab's corrected_F)", units="a.u.")]
