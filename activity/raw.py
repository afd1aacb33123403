"""A recording as the lab published it, and the checks every reader's output passes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wormflow.core.errors import RecordingError

# The descriptive metadata every reader returns under these names when its file states
# them (the lab's other facts keep their own names beside them). Nothing is filled in
# from outside the file: a key the file does not state is absent.
METADATA_KEYS = {
    "experimenter": "who recorded it (list of names)",
    "institution": "where it was recorded",
    "lab": "the lab",
    "experiment_description": "the experiment, in the lab's words",
    "session_description": "this recording, in the lab's words",
    "session_start_time": "when the recording started (ISO 8601, as the file states it)",
    "related_publications": "publications of the data (list: DOIs or citations)",
    "keywords": "the lab's keywords (list)",
    "subject": "the animal: species, strain, genotype, sex, age, description (dict)",
    "position_reference_frame": "what the zero of tracked positions is ({series: text})",
}

# Whole-brain imaging runs at roughly 0.5-10 volumes per second; anything outside
# [0.01 Hz, 200 Hz] is a unit error (ms read as s) or a corrupt time base.
MIN_DT_S = 0.005
MAX_DT_S = 100.0


@dataclass
class Series:
    """One behavioural variable at its own native timestamps."""

    timestamps: np.ndarray          # (T,) float64 seconds, same clock as the traces
    values: np.ndarray              # (T,) or (T, K)
    unit: str = ""
    discrete: bool = False          # states/flags: resampled by nearest sample, not interpolated


@dataclass
class RawRecording:
    """One worm's recording, untouched: native timestamps, the lab's own ROI labels."""

    source_file: str
    worm_id: str                    # unique within the source file
    dataset: str                    # the lab/paper dataset name, e.g. "Dag2023"
    format: str                     # registry name of the reader that produced it
    timestamps: np.ndarray          # (T,) float64 seconds (absolute clocks allowed)
    traces: np.ndarray              # (T, N) float, one column per ROI
    roi_labels: list[str]           # (N,) the lab's labels, "" where none
    roi_label_confidence: np.ndarray | None = None   # (N,) lab's own confidence, NaN if none
    behavior: dict[str, Series] = field(default_factory=dict)
    events: dict[str, list] = field(default_factory=dict)     # non-time-series arrays
    metadata: dict[str, object] = field(default_factory=dict)
    extra_sources: list[str] = field(default_factory=list)    # side files read (labels)
    notes: list[str] = field(default_factory=list)            # the reader's warnings, reported at ingest
    signal: str = ""                # what the traces are, e.g. "z-scored F/F20", "dF/F0"
    units: str = ""                 # their unit as the file states it ("1": a dimensionless ratio)

    @property
    def n_frames(self) -> int:
        return int(self.traces.shape[0])

    @property
    def n_rois(self) -> int:
        return int(self.traces.shape[1])

    @property
    def where(self) -> str:
        name = Path(self.source_file).name
        return name if self.worm_id in (name, Path(name).stem) else f"{name} [{self.worm_id}]"


def check_timestamps(where: str, field_name: str, t: np.ndarray) -> None:
    """Refuse time bases that are not strictly increasing or have an absurd rate."""
    if t.ndim != 1 or t.size < 2:
        raise RecordingError(f"{where}: {field_name} must be a 1-D series of at least 2 samples, got shape {t.shape}")
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise RecordingError(f"{where}: {field_name} has a non-finite value at index {bad[0]}")
    d = np.diff(t)
    dup = np.flatnonzero(d == 0)
    if dup.size:
        i = int(dup[0]) + 1
        raise RecordingError(f"{where}: {field_name} is duplicated at index {i} (t={t[i]:.3f} s appears twice)")
    back = np.flatnonzero(d < 0)
    if back.size:
        i = int(back[0]) + 1
        raise RecordingError(
            f"{where}: {field_name} is not increasing at index {i} (t={t[i]:.3f} s after t={t[i - 1]:.3f} s)")
    dt = float(np.median(d))
    if not (MIN_DT_S <= dt <= MAX_DT_S):
        raise RecordingError(
            f"{where}: {field_name} implies an absurd sampling rate ({1 / dt:.4g} Hz, median step {dt:.4g} s); "
            f"expected a step between {MIN_DT_S} and {MAX_DT_S} s")


def check_recording(rec: RawRecording) -> RawRecording:
    """Validate a reader's output; raise RecordingError naming the file and the cause."""
    where = rec.where
    t = np.asarray(rec.timestamps, dtype=np.float64)
    x = np.asarray(rec.traces)
    if x.ndim != 2:
        raise RecordingError(f"{where}: traces must be 2-D (time x ROI), got shape {x.shape}")
    if x.shape[1] == 0:
        raise RecordingError(f"{where}: the recording has no ROI traces")
    if t.shape[0] != x.shape[0]:
        raise RecordingError(
            f"{where}: trace/timestamp length mismatch: {x.shape[0]} frames of traces but {t.shape[0]} timestamps")
    check_timestamps(where, "timestamps", t)
    if not np.isfinite(x).any():
        raise RecordingError(f"{where}: every trace is NaN (no usable activity)")
    for name in ("signal", "units"):
        if not (isinstance(getattr(rec, name), str) and getattr(rec, name).strip()):
            raise RecordingError(f"{where}: the {rec.format} reader did not say the traces' {name} "
                                 "(a reader states it, or 'not stated in the file')")
    if len(rec.roi_labels) != x.shape[1]:
        raise RecordingError(f"{where}: {len(rec.roi_labels)} ROI labels for {x.shape[1]} trace columns")
    for name, s in rec.behavior.items():
        if len(s.timestamps) != len(s.values):
            raise RecordingError(
                f"{where}: behaviour {name!r} has {len(s.values)} samples but {len(s.timestamps)} timestamps")
        if s.timestamps is not rec.timestamps and s.timestamps is not t:     # the traces' clock: checked above
            check_timestamps(where, f"timestamps of behaviour {name!r}", np.asarray(s.timestamps, dtype=np.float64))
    rec.timestamps = t
    if rec.roi_label_confidence is None:
        rec.roi_label_confidence = np.full(x.shape[1], np.nan)
    return rec
