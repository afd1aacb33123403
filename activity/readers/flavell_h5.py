"""Flavell lab whole-brain HDF5 (Atanas & Kim 2023, Dag et al. 2023).

Layout read: ``gcamp/trace_array`` (T x N ROI traces), ``timing/timestamp_confocal``
(T, seconds on the lab's absolute clock), every ``behavior/*`` dataset, and the NeuroPAL
registration arrays ``neuropal_registration/roi_match`` (NeuroPAL ROI -> trace column,
1-based, 0 = unmatched) and ``roi_match_confidence``.

Identities come from the lab's Julia JLD2 file ``NeuroPAL_labels_dict.jld2``
(``dict_match_dict[uid] = (trace column -> label record, class -> matches)``), found
beside the recording or in its parent folder, or passed as ``labels=FILE``. Each label
record names its NeuroPAL ``roi_id``; we map it to a trace column through the
recording's own ``roi_match`` and refuse the file if the two disagree.
"""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

import h5py
import numpy as np

from activity.raw import RawRecording, Series
from activity.readers._hdf5 import is_hdf5, open_hdf5, read_array
from activity.readers._jld2 import JLD2Error, JLD2File, decode, dict_entries, dict_fields, tuple_field_raw
from wormflow.core.errors import FormatError

FORMAT = "flavell_h5"
DESCRIPTION = "Flavell lab HDF5, gcamp/trace_array + timing/timestamp_confocal"
DATASET = "Flavell"
LABELS_FILENAME = "NeuroPAL_labels_dict.jld2"
OPTIONS = ("labels", "trace")          # read()'s keyword options, for the reader contract
_LABEL_FIELDS = ("label", "roi_id", "confidence")   # all the reader uses of each label record
_UID = re.compile(r"^(\d{4}-\d{2}-\d{2}-\d{2})(?:-data)?$")
_DISCRETE = {"reversal_vec", "pumping_state"}
_EVENT_TABLES = {"reversal_events"}        # (2, n) start/stop frames of each reversal: not a series
# what each trace field holds (Atanas & Kim 2023 methods; trace_array measured here to be the
# per-ROI z-score of traces_array_F_F20 within 0.005 on the mirror's files)
SIGNALS = {
    "trace_array": ("z-scored F/F20 (per ROI over the recording)", "1"),
    "traces_array_F_F20": ("F/F20 (fluorescence over its 20th percentile)", "1"),
    "trace_array_original": ("fluorescence before the lab's normalization", "a.u."),
}
# per-body-segment series: (T, K) in most files, (T,) in some (e.g. 2022-05-02-01)
_PER_SEGMENT = {"body_angle", "body_angle_absolute", "body_angle_all"}


def sniff(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() in {".h5", ".hdf5"} and is_hdf5(path)):
        return False
    try:
        with h5py.File(path, "r") as f:
            return "gcamp" in f and "timing" in f
    except OSError:
        return False


def recording_uid(path: Path) -> str:
    """``2022-07-27-45-data.h5`` -> ``2022-07-27-45`` (the whole stem if it has no such form)."""
    stem = path.name
    for suffix in (".h5", ".hdf5"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    m = _UID.match(stem)
    return m.group(1) if m else stem


def find_labels_file(path: Path) -> Path | None:
    for folder in (path.parent, path.parent.parent):
        candidate = folder / LABELS_FILENAME
        if candidate.is_file():
            return candidate
    return None


def side_files(path: Path) -> list[Path]:
    """The labels file a read of ``path`` opens when none is named (for provenance and caches)."""
    found = find_labels_file(Path(path)) if Path(path).is_file() else None
    return [found] if found else []


@functools.lru_cache(maxsize=2)
def _jld2(path: str, size: int, mtime_ns: int) -> JLD2File:
    """One parsed labels file per batch: every worm of a batch shares the same JLD2 file."""
    return JLD2File(path)


def load_labels(labels_path: Path, uid: str) -> dict | None:
    """{trace column (1-based): label record} for one worm of a NeuroPAL_labels_dict.jld2, or None."""
    try:
        st = labels_path.stat()
        f = _jld2(str(labels_path), st.st_size, st.st_mtime_ns)
        if "NeuroPAL_labels" not in f.links:
            raise FormatError(f"{labels_path.name}: no 'NeuroPAL_labels' variable (not a Flavell labels file)")
        top = dict_entries(f, f.root("NeuroPAL_labels"))
        if "dict_match_dict" not in top:
            raise FormatError(f"{labels_path.name}: 'NeuroPAL_labels' has no 'dict_match_dict' entry")
        worms = dict_entries(f, top["dict_match_dict"])
        if uid not in worms:
            return None
        rois, hint = {}, None
        for column, record in dict_entries(f, tuple_field_raw(f, worms[uid], 0)).items():
            fields, hint = dict_fields(f, record, _LABEL_FIELDS, hint)
            rois[column] = {k: decode(f, v) for k, v in fields.items()}
    except OSError as exc:
        raise FormatError(f"{labels_path.name}: cannot read the labels file: {exc}") from exc
    except (JLD2Error, IndexError, struct.error) as exc:
        raise FormatError(f"{labels_path.name}: not a JLD2 file this reader understands: {exc}") from exc
    if not isinstance(rois, dict):
        raise FormatError(f"{labels_path.name}: dict_match_dict[{uid!r}] does not start with a ROI dict")
    return rois


def _labels_for(path: Path, uid: str, n_rois: int, roi_match: np.ndarray | None, labels_path: Path):
    table = load_labels(labels_path, uid)
    labels = [""] * n_rois
    confidence = np.full(n_rois, np.nan)
    if table is None:
        return labels, confidence, False
    if roi_match is None:
        raise FormatError(f"{path.name}: {labels_path.name} labels this worm but the file has no "
                          "neuropal_registration/roi_match to place them")
    for column, record in table.items():
        label = str(record.get("label", ""))
        roi_id = record.get("roi_id")
        roi_id = int(roi_id[0] if isinstance(roi_id, list) else roi_id)
        if not 1 <= roi_id <= roi_match.size:
            raise FormatError(f"{labels_path.name}: {uid} label {label!r} names NeuroPAL ROI {roi_id}, "
                              f"but {path.name} has {roi_match.size} NeuroPAL ROIs")
        matched = int(roi_match[roi_id - 1])
        if matched != int(column):
            raise FormatError(f"{labels_path.name}: {uid} label {label!r} is filed under trace column {column} "
                              f"but {path.name} roi_match maps its NeuroPAL ROI {roi_id} to column {matched}")
        if not 1 <= matched <= n_rois:
            raise FormatError(f"{path.name}: roi_match sends NeuroPAL ROI {roi_id} to column {matched}, "
                              f"outside the {n_rois} trace columns")
        labels[matched - 1] = label
        conf = record.get("confidence")
        confidence[matched - 1] = float(conf) if conf is not None else np.nan
    return labels, confidence, True


def _frames_of_traces(path: Path, t: np.ndarray, n_frames: int, splits: np.ndarray | None):
    """Timestamps of the trace rows.

    When the confocal clock has more entries than the traces have rows, the rows are the
    frames listed in ``gcamp/idx_splits`` (1-based inclusive ranges); we use exactly
    those and never guess otherwise.
    """
    if t.shape[0] == n_frames or splits is None or t.ndim != 1:
        return t, 0
    ranges = splits.reshape(2, -1).T if splits.shape[0] == 2 else splits.reshape(-1, 2)
    frames = np.concatenate([np.arange(a, b + 1) for a, b in ranges.astype(int)]) if ranges.size else np.array([], int)
    if frames.size != n_frames or frames.min(initial=1) < 1 or frames.max(initial=0) > t.shape[0]:
        return t, 0          # leave the mismatch to the length check, which names it
    return t[frames - 1], int(t.shape[0] - n_frames)


def read(path: Path, labels: str | Path | None = None, trace: str = "trace_array") -> list[RawRecording]:
    path = Path(path)
    uid = recording_uid(path)
    with open_hdf5(path) as f:
        traces = np.asarray(read_array(f, path, f"gcamp/{trace}"), dtype=np.float64)
        t = np.asarray(read_array(f, path, "timing/timestamp_confocal"), dtype=np.float64)
        splits = np.asarray(read_array(f, path, "gcamp/idx_splits")) if "gcamp/idx_splits" in f else None
        roi_match = (np.asarray(read_array(f, path, "neuropal_registration/roi_match"))
                     if "neuropal_registration/roi_match" in f else None)
        t, dropped = _frames_of_traces(path, t, traces.shape[0], splits)
        behavior, events, notes = {}, {}, []
        if "behavior" in f:
            for name, ds in f["behavior"].items():
                if not isinstance(ds, h5py.Dataset):
                    raise FormatError(f"{path.name}: behavior/{name} is a group, expected a dataset")
                values = read_array(f, path, ds)
                if name in _PER_SEGMENT and values.ndim == 1:
                    values = values[:, None]
                if values.ndim >= 1 and values.shape[0] == t.shape[0]:
                    behavior[name] = Series(t, values, discrete=name in _DISCRETE or values.dtype.kind in "iub")
                else:
                    events[name] = np.asarray(values).tolist()
                    if name not in _EVENT_TABLES:
                        notes.append(f"{path.name}: behavior/{name} has shape {values.shape} for {t.shape[0]} "
                                     "frames; kept as an event array, not as a time series")
    if traces.ndim != 2:
        raise FormatError(f"{path.name}: gcamp/{trace} must be 2-D (time x ROI), got shape {traces.shape}")
    labels_path = Path(labels) if labels is not None else find_labels_file(path)
    roi_labels, confidence, labelled = [""] * traces.shape[1], np.full(traces.shape[1], np.nan), False
    extra = []
    if labels_path is not None:
        if not labels_path.is_file():
            raise FormatError(f"{labels_path}: labels file not found")
        roi_labels, confidence, labelled = _labels_for(path, uid, traces.shape[1], roi_match, labels_path)
        extra.append(str(labels_path))
    return [RawRecording(
        source_file=str(path), worm_id=uid, dataset=DATASET, format=FORMAT,
        timestamps=t, traces=traces, roi_labels=roi_labels, roi_label_confidence=confidence,
        behavior=behavior, events=events,
        metadata={"uid": uid, "trace_field": f"gcamp/{trace}", "labels_file": str(labels_path or ""),
                  "has_identities": labelled, "timestamps_not_in_idx_splits": dropped},
        extra_sources=extra, notes=notes,
        signal=SIGNALS.get(trace, (f"gcamp/{trace} as released (not described by the lab)", ""))[0],
        units=SIGNALS.get(trace, ("", "not stated in the file"))[1],
    )]
