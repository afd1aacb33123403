"""Venkatachalam lab activity CSV (one row per ROI, one column per time point).

Documented layout: a ``neuron`` column with the ROI's label, other descriptive columns,
then one column per frame whose header is the frame's time in seconds. Columns whose
header is not a number are descriptive and ignored (kept in the metadata by name);
leading frames may be blank (NaN) and stay NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from activity.raw import RawRecording
from wormflow.core.errors import FormatError

FORMAT = "venkatachalam_csv"
DESCRIPTION = "Venkatachalam lab CSV: 'neuron' column + one numeric-titled column per time point"
DATASET = "Venkatachalam2024"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def sniff(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().strip().split(",")
    except OSError:
        return False
    return "neuron" in [h.strip() for h in header] and sum(_is_number(h) for h in header) >= 2


def read(path: Path) -> list[RawRecording]:
    import pandas as pd          # here: the other readers, and the ingest path, do without it

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"neuron": str}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path.name}: not a readable CSV: {exc}") from exc
    if "neuron" not in table.columns:
        raise FormatError(f"{path.name}: missing required column 'neuron'")
    time_cols = [c for c in table.columns if _is_number(str(c))]
    if len(time_cols) < 2:
        raise FormatError(f"{path.name}: no time-point columns (headers that are times in seconds)")
    try:
        x = table[time_cols].to_numpy(dtype=np.float64).T
    except ValueError as exc:
        raise FormatError(f"{path.name}: non-numeric value in a time-point column: {exc}") from exc
    labels = ["" if pd.isna(v) else str(v) for v in table["neuron"]]
    return [RawRecording(source_file=str(path), worm_id=path.stem, dataset=DATASET, format=FORMAT,
                         timestamps=np.array([float(c) for c in time_cols]), traces=x, roi_labels=labels,
                         metadata={"descriptive_columns": [c for c in table.columns if c not in time_cols]},
                         signal="fluorescence as released (the layout states no normalization)",
                         units="not stated in the file")]
