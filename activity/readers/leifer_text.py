"""Leifer lab per-worm text files (Randi et al. 2023 release used by worm-graph).

Documented layout: for worm ``i`` three sibling files, ``{i}_gcamp.txt`` (T lines of N
space-separated values, NaN allowed), ``{i}_labels.txt`` (one label per ROI, empty
lines for unlabelled ROIs) and ``{i}_t.txt`` (T times in seconds, one per line,
scientific notation allowed). Give the ``_gcamp.txt`` path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from activity.raw import RawRecording
from wormflow.core.errors import FormatError

FORMAT = "leifer_text"
DESCRIPTION = "Leifer lab text triplet {i}_gcamp.txt / {i}_labels.txt / {i}_t.txt"
DATASET = "Leifer2023"
SUFFIX = "_gcamp.txt"


def _siblings(path: Path) -> tuple[Path, Path]:
    stem = path.name[: -len(SUFFIX)]
    return path.with_name(f"{stem}_labels.txt"), path.with_name(f"{stem}_t.txt")


def sniff(path: Path) -> bool:
    return path.is_file() and path.name.endswith(SUFFIX)


def read(path: Path) -> list[RawRecording]:
    path = Path(path)
    labels_path, time_path = _siblings(path)
    for p in (labels_path, time_path):
        if not p.is_file():
            raise FormatError(f"{path.name}: companion file {p.name} is missing")
    try:
        x = np.loadtxt(path, dtype=np.float64, ndmin=2)
        t = np.loadtxt(time_path, dtype=np.float64, ndmin=1)
    except ValueError as exc:
        raise FormatError(f"{path.name}: non-numeric value in the text matrix or time file: {exc}") from exc
    labels = labels_path.read_text().split("\n")
    while labels and labels[-1].strip() == "":
        labels.pop()
    if len(labels) > x.shape[1]:
        raise FormatError(f"{labels_path.name}: {len(labels)} labels for {x.shape[1]} ROI columns in {path.name}")
    labels += [""] * (x.shape[1] - len(labels))
    return [RawRecording(source_file=str(path), worm_id=path.name[: -len(SUFFIX)], dataset=DATASET,
                         format=FORMAT, timestamps=t.ravel(), traces=x, roi_labels=[s.strip() for s in labels],
                         extra_sources=[str(labels_path), str(time_path)],
                         signal="GCaMP fluorescence as released (the text files state no normalization)",
                         units="not stated in the file")]
