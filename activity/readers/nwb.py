"""NWB (HDF5) activity files, read with h5py so no extension package is needed.

Two layouts:

* **community** (WormID / NWBelegans, DANDI 000692/000776): a ``RoiResponseSeries``
  under ``processing/CalciumActivity`` (``data`` T x N, ``timestamps`` or
  ``starting_time`` + ``rate``) whose ``rois`` region points at a segmentation table
  with an ``ID_labels`` column (plain or ragged). Behaviour: every ``TimeSeries`` under
  ``processing/Behavior`` (or ``behavior``).
* **legacy** (NWB 2.1 conversions such as Scholz et al. 2018): one ``TimeSeries`` per
  neuron in ``acquisition`` (``Activity_0000``...), all on one time base; ``Position``
  / ``SpatialSeries`` become behaviour.

A file with neither (e.g. the early Kato 2015 conversion, which holds only the
behavioural ``States`` series) is refused with the list of what it does hold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

from activity.raw import RawRecording, Series
from activity.readers._hdf5 import is_hdf5, open_hdf5, read_array
from wormflow.core.errors import FormatError

FORMAT = "nwb"
DESCRIPTION = "NWB 2.x HDF5: community layout (processing/CalciumActivity, ID_labels) or legacy one-TimeSeries-per-neuron"
DATASET = "NWB"
_NEURON_SERIES = re.compile(r"^(Activity|Neuron|neuron|ROI|roi)[_ ]?\d+$")
_PREFERRED = ("SignalCalciumImResponseSeries", "SignalDFoF", "DfOverF", "SignalRawFluor", "Fluorescence")


def sniff(path: Path) -> bool:
    if not (path.is_file() and is_hdf5(path)):
        return False
    try:
        with h5py.File(path, "r") as f:
            return _attr(f, "neurodata_type") == "NWBFile" or "nwb_version" in f.attrs
    except OSError:
        return False


def _attr(obj, name: str, default: str = "") -> str:
    value = obj.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return value if isinstance(value, str) else str(value)


def _text(f: h5py.File, name: str) -> str:
    if name not in f:
        return ""
    v = f[name][()]
    if isinstance(v, np.ndarray):
        v = v.ravel()[0] if v.size else b""
    return v.decode() if isinstance(v, bytes) else str(v)


def _values(f: h5py.File, name: str) -> list[str]:
    """A text dataset as a list of strings ([] when absent)."""
    if name not in f or not isinstance(f[name], h5py.Dataset):
        return []
    v = f[name][()]
    items = v.ravel().tolist() if isinstance(v, np.ndarray) else [v]
    return [x.decode() if isinstance(x, bytes) else str(x) for x in items]


_SUBJECT_FIELDS = ("species", "strain", "genotype", "sex", "age", "date_of_birth", "description",
                   "subject_id", "growth_stage", "cultivation_temp")


def file_metadata(f: h5py.File) -> dict:
    """The file's own descriptive metadata under :data:`activity.raw.METADATA_KEYS` names
    (NWB's ``general/`` fields, the subject, reference frames); absent fields stay absent."""
    out: dict = {}
    for key in ("institution", "lab", "experiment_description"):
        if _values(f, f"general/{key}"):
            out[key] = _text(f, f"general/{key}")
    for key in ("experimenter", "related_publications", "keywords"):
        if _values(f, f"general/{key}"):
            out[key] = _values(f, f"general/{key}")
    for key in ("session_description", "session_start_time"):
        if _values(f, key):
            out[key] = _text(f, key)
    if "general/subject" in f:
        subject = {k: _text(f, f"general/subject/{k}") for k in _SUBJECT_FIELDS if f"general/subject/{k}" in f}
        if "general/subject/age" in f and "reference" in f["general/subject/age"].attrs:
            subject["age_reference"] = _attr(f["general/subject/age"], "reference")
        if "growth_stage_time" in f["general/subject"].attrs:
            subject["growth_stage_time"] = _attr(f["general/subject"], "growth_stage_time")
        if subject:
            out["subject"] = subject
    frames = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.endswith("/reference_frame"):
            frames[name[: -len("/reference_frame")].rsplit("/", 1)[-1]] = _text(f, obj.name)
    for top in ("acquisition", "processing"):
        if top in f:
            f[top].visititems(visit)
    if frames:
        out["position_reference_frame"] = frames
    return out


_PLACEHOLDER_DESCRIPTION = re.compile(r"^(activity|neuron|roi)[:_ ]*\d+$", re.I)     # "Neuron: 0" says nothing
_SIGNAL_BY_NAME = {"SignalDFoF": "dF/F", "DfOverF": "dF/F", "SignalRawFluor": "raw fluorescence",
                   "SignalCalciumImResponseSeries": "calcium imaging response"}


def _signal(series: h5py.Group, description: str) -> tuple[str, str]:
    """(signal, units) of a trace series as the file states them."""
    unit = _attr(series["data"], "unit") if "data" in series else ""
    name = series.name.rsplit("/", 1)[-1]
    said = description.strip()
    if said.lower() in ("", "no description") or _PLACEHOLDER_DESCRIPTION.match(said):
        said = ""
    kind = next((v for k, v in _SIGNAL_BY_NAME.items() if k in series.name), "")
    signal = "; ".join(x for x in (kind, said) if x) or f"not stated in the file (series {name})"
    return signal, unit or "not stated in the file"


def _series_time(group: h5py.Group, n: int, where: str) -> np.ndarray:
    if "timestamps" in group:
        return np.asarray(read_array(group.file, Path(group.file.filename), group["timestamps"]), dtype=np.float64)
    if "starting_time" in group:
        st = group["starting_time"]
        rate = float(st.attrs.get("rate", 0))
        if rate <= 0:
            raise FormatError(f"{where}: {group.name}/starting_time has no positive 'rate' attribute")
        return float(st[()]) + np.arange(n, dtype=np.float64) / rate
    raise FormatError(f"{where}: {group.name} has neither timestamps nor starting_time")


def _find_typed(root: h5py.Group, types: set[str]) -> list[h5py.Group]:
    found = []

    def visit(_name, obj):
        if isinstance(obj, h5py.Group) and _attr(obj, "neurodata_type") in types:
            found.append(obj)
    root.visititems(visit)
    return found


def _column_strings(table: h5py.Group, column: str) -> list[str] | None:
    if column not in table:
        return None
    values = [v.decode() if isinstance(v, bytes) else str(v)
              for v in np.asarray(read_array(table.file, Path(table.file.filename), table[column])).ravel()]
    index_name = f"{column}_index"
    if index_name in table:          # ragged column: several labels per ROI
        ends = table[index_name][()].astype(int)
        starts = np.concatenate([[0], ends[:-1]])
        return ["/".join(x for x in values[s:e] if x) for s, e in zip(starts, ends)]
    return values


def _table_rows(table: h5py.Group) -> int:
    if "id" in table:
        return int(table["id"].shape[0])
    cols = [table[c] for c in ("voxel_mask_index", "image_mask", "pixel_mask_index") if c in table]
    return int(cols[0].shape[0]) if cols else -1


def _neuron_ids(f: h5py.File, table: h5py.Group) -> tuple[list[str] | None, str]:
    """The labels of ``processing/CalciumActivity/NeuronIDs`` (the WormID extension's
    ``SegmentationLabels``) when its ``ImageSegmentation`` link names the segmentation that
    holds ``table``; (None, why not) otherwise."""
    if "processing/CalciumActivity/NeuronIDs" not in f:
        return None, "the file has no processing/CalciumActivity/NeuronIDs"
    group = f["processing/CalciumActivity/NeuronIDs"]
    if not isinstance(group, h5py.Group) or "labels" not in group:
        return None, "processing/CalciumActivity/NeuronIDs holds no labels"
    link = group.get("ImageSegmentation", getlink=True)
    if link is None:
        return None, "NeuronIDs names no ImageSegmentation"
    target = group["ImageSegmentation"]
    named = link.path if isinstance(link, h5py.SoftLink) else target.name
    if target != table.parent:                  # the same object, however it is reached
        return None, f"NeuronIDs labels {named}, not {table.parent.name} that the traces point to"
    return _column_strings(group, "labels"), ""


def _community_labels(f: h5py.File, series: h5py.Group, n: int, where: str) -> tuple[list[str], list[str]]:
    """(one label per trace column, notes). Labels are attached only through the references
    the file holds: the ROI table the series' ``rois`` region points to, and ``NeuronIDs``
    when it is linked to that table's segmentation. Never by row position across tables."""
    if "rois" not in series:
        return [""] * n, [f"{where}: {series.name} has no rois region: nothing links its {n} traces to labels; "
                          "kept unlabelled"]
    ref = series["rois"].attrs.get("table")
    if not (isinstance(ref, h5py.h5r.Reference) and ref):
        return [""] * n, [f"{where}: {series.name}/rois names no table; its {n} traces are kept unlabelled"]
    table = f[ref]
    rows = np.asarray(read_array(f, Path(f.filename), series["rois"])).astype(int).ravel()
    n_rows = _table_rows(table)
    if rows.size != n:
        raise FormatError(f"{where}: {series.name}/rois lists {rows.size} rows of {table.name} for {n} traces")
    if rows.size and (rows.min() < 0 or (n_rows >= 0 and rows.max() >= n_rows)):
        raise FormatError(f"{where}: {series.name}/rois points at row {int(rows.max())} of {table.name}, "
                          f"which has {n_rows} rows")
    named, why = _neuron_ids(f, table)
    if named is not None:
        if n_rows >= 0 and len(named) != n_rows:
            raise FormatError(f"{where}: NeuronIDs has {len(named)} labels for the {n_rows} ROIs of {table.name}")
        return [named[i] for i in rows], []
    labels = _column_strings(table, "ID_labels")
    if labels is not None:
        if n_rows >= 0 and len(labels) != n_rows:
            raise FormatError(f"{where}: ID_labels of {table.name} has {len(labels)} rows, the table {n_rows}")
        return [labels[i] for i in rows], []
    return [""] * n, [f"{where}: no labels are linked to {series.name} ({table.name} has no ID_labels; {why}); "
                      f"its {n} traces are kept unlabelled"]


def _behavior(f: h5py.File, where: str) -> dict[str, Series]:
    out = {}
    for module in ("Behavior", "behavior"):
        if f"processing/{module}" in f:
            for grp in _find_typed(f[f"processing/{module}"], {"TimeSeries", "SpatialSeries", "BehavioralTimeSeries"}):
                if "data" in grp:
                    values = read_array(f, Path(f.filename), grp["data"])
                    out[grp.name.rsplit("/", 1)[-1]] = Series(_series_time(grp, len(values), where), values,
                                                             unit=_attr(grp["data"], "unit"))
    return out


def _read_community(f: h5py.File, path: Path) -> RawRecording | None:
    if "processing/CalciumActivity" not in f:
        return None
    candidates = _find_typed(f["processing/CalciumActivity"], {"RoiResponseSeries"})
    if not candidates:
        raise FormatError(f"{path.name}: processing/CalciumActivity holds no RoiResponseSeries")
    candidates.sort(key=lambda g: next((i for i, p in enumerate(_PREFERRED) if p in g.name), len(_PREFERRED)))
    series = candidates[0]
    data = np.asarray(read_array(f, path, series["data"]), dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    t = _series_time(series, data.shape[0], path.name)
    labels, notes = _community_labels(f, series, data.shape[1], path.name)
    exported = _wormflow_provenance(f)
    metadata = {**file_metadata(f), "layout": "community", "series": series.name,
                "identifier": _text(f, "identifier"), "nwb_version": _attr(f, "nwb_version")}
    if exported:
        metadata["wormflow_export"] = exported
    signal, units = _signal(series, _attr(series, "description"))
    if exported.get("signal"):                   # our own export: the source lab's words come back
        signal, units = exported["signal"], exported.get("units") or units
    return RawRecording(
        source_file=str(path), worm_id=exported.get("worm_id") or _text(f, "identifier") or path.stem,
        dataset=exported.get("dataset") or DATASET, format=FORMAT, timestamps=t, traces=data, roi_labels=labels,
        behavior=_behavior(f, path.name), metadata=metadata, signal=signal, units=units, notes=notes)


def _wormflow_provenance(f: h5py.File) -> dict:
    """The provenance JSON wormflow's exporter writes into ``notes`` ({} for other files)."""
    notes = _text(f, "general/notes")
    if '"wormflow_version"' not in notes:
        return {}
    try:
        value = json.loads(notes)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _read_legacy(f: h5py.File, path: Path) -> RawRecording | None:
    if "acquisition" not in f:
        return None
    names = sorted(n for n, g in f["acquisition"].items()
                   if isinstance(g, h5py.Group) and _NEURON_SERIES.match(n) and "data" in g)
    if not names:
        return None
    first = f["acquisition"][names[0]]
    t = _series_time(first, first["data"].shape[0], path.name)
    columns = []
    for n in names:
        g = f["acquisition"][n]
        d = np.asarray(read_array(f, path, g["data"]), dtype=np.float64).ravel()
        tn = _series_time(g, d.size, path.name)
        if tn.shape != t.shape or not np.allclose(tn, t, rtol=0, atol=1e-9):
            raise FormatError(f"{path.name}: acquisition/{n} is on a different time base than acquisition/{names[0]}; "
                              "the legacy layout needs one shared time base")
        columns.append(d)
    behavior = {}
    for g in _find_typed(f["acquisition"], {"SpatialSeries"}):
        values = read_array(f, path, g["data"])
        behavior[g.name.rsplit("/", 1)[-1]] = Series(_series_time(g, len(values), path.name), values,
                                                     unit=_attr(g["data"], "unit"))
    return RawRecording(
        source_file=str(path), worm_id=_text(f, "identifier") or path.stem, dataset=DATASET, format=FORMAT,
        timestamps=t, traces=np.stack(columns, axis=1), roi_labels=[""] * len(columns), behavior=behavior,
        metadata={**file_metadata(f), "layout": "legacy", "identifier": _text(f, "identifier"),
                  "nwb_version": _attr(f, "nwb_version"),
                  "roi_descriptions": [_attr(f["acquisition"][n], "description") for n in names]},
        signal=_signal(first, _attr(first, "description"))[0], units=_signal(first, "")[1])


def read(path: Path) -> list[RawRecording]:
    path = Path(path)
    with open_hdf5(path) as f:
        if not (_attr(f, "neurodata_type") == "NWBFile" or "nwb_version" in f.attrs):
            raise FormatError(f"{path.name}: HDF5 file is not NWB (no NWBFile root)")
        rec = _read_community(f, path) or _read_legacy(f, path)
        if rec is None:
            held = []
            for top in ("acquisition", "processing"):
                if top in f:
                    held += [f"{top}/{k} ({_attr(v, 'neurodata_type') or 'group'})" for k, v in f[top].items()]
            raise FormatError(
                f"{path.name}: no calcium traces: neither processing/CalciumActivity nor per-neuron "
                f"TimeSeries in acquisition; the file holds only {', '.join(held) or 'nothing'}")
    return [rec]
