"""Export homogenized worms as NWB files in the C. elegans community layout.

The layout follows the WormID / NWBelegans convention of DANDI sets 000692 and 000776,
written with pynwb's core types only (no extension package is needed to read it):

- ``/general/devices/Microscope`` and ``/general/optophysiology/CalciumImVol``: the
  imaging device and volume (an ``ImagingPlane``; the community's ``ImagingVolume``
  extends it), volume rate from the native median frame interval.
- ``/general/subject``: species *Caenorhabditis elegans*, ``sex`` "XX" (hermaphrodite) or
  "XO" (male), as the community's ``CElegansSubject``.
- ``/processing/CalciumActivity/CalciumSeriesSegmentation/NeuronIDs``: a
  ``PlaneSegmentation`` with one row per recorded ROI and its ``ID_labels`` (the lab's
  label as published: "" when unlabelled, a trailing "?" kept for uncertain ones), plus
  ``wormflow_neuron`` (the canonical registry name or ""), ``ID_status`` and
  ``ID_confidence``. The sources give no ROI positions, so every ``voxel_mask`` is one
  zero-weight voxel at the origin, which marks "position not recorded".
- ``/processing/CalciumActivity/SignalRawFluor/SignalCalciumImResponseSeries``: the native
  traces (frames x ROIs) at their native timestamps (seconds from the first frame; the
  lab's clock offset is kept in the provenance). Optionally
  ``.../HomogenizedFluor/HomogenizedCalciumResponseSeries``: the ROIs on the store's grid.
- ``/processing/Behavior/<name>/<name>``: every behavioural variable as a ``TimeSeries``
  on the store's grid (inside a ``BehavioralTimeSeries``).
- Provenance: ``notes`` holds JSON with the source file, its sha256, format, dataset,
  worm id, the lab clock offset, the store's homogenization parameters, the export
  parameters and the wormflow version; ``source_script`` names wormflow and its version.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from connectome.errors import WormflowError

SPECIES = "Caenorhabditis elegans"
MODULE = "CalciumActivity"
SEGMENTATION = "CalciumSeriesSegmentation"
TABLE = "NeuronIDs"
NATIVE_SERIES = ("SignalRawFluor", "SignalCalciumImResponseSeries")
GRID_SERIES = ("HomogenizedFluor", "HomogenizedCalciumResponseSeries")

# nwbinspector checks the community layout departs from on purpose, with the reason.
IGNORED_CHECKS = {
    "check_subject_age": "C. elegans are staged by growth stage (L1-L4, young adult), which the community's "
                         "CElegansSubject records instead of an age; the labs' files give no age or birth date",
    "check_processing_module_name": "the community layout names its modules CalciumActivity and Behavior, which "
                                    "readers of DANDI 000692/000776 look for",
}


class ExportError(WormflowError):
    """A worm cannot be exported (nothing observed, target exists...)."""


@dataclass(frozen=True)
class ExportParams:
    grid: bool = False          # also write the ROIs on the store's homogenized grid
    sex: str = "XX"             # used when the source does not say: the hermaphrodite


def _regular(t: np.ndarray) -> tuple[float, float] | None:
    """(start, rate) when ``t`` is exactly start + i / rate, else None (then timestamps are written)."""
    if t.size < 3:
        return None
    rate = 1.0 / float(np.median(np.diff(t)))
    rebuilt = float(t[0]) + np.arange(t.size) / rate
    return (float(t[0]), rate) if np.array_equal(rebuilt, t) else None


def _time_kwargs(t: np.ndarray) -> dict:
    reg = _regular(t)
    if reg is not None:
        return {"starting_time": reg[0], "rate": reg[1]}
    diffs = np.diff(t)
    if diffs.size and np.allclose(diffs, diffs[0], rtol=0, atol=1e-9):
        # regular to a nanosecond (what nwbinspector calls regular): starting_time + rate
        return {"starting_time": float(t[0]), "rate": 1.0 / float(diffs.mean())}
    return {"timestamps": t}


def _when(text) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _session_start(worm: dict) -> datetime:
    """The session start from the source's metadata, else the date in the worm id, else unknown (epoch)."""
    meta = worm["metadata"]
    raw = meta.get("session_start_time") if isinstance(meta, dict) else None
    if raw:
        try:
            when = datetime.fromisoformat(str(raw))
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    m = re.search(r"(20\d\d)-(\d\d)-(\d\d)", worm["worm_id"])
    if m:
        return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=timezone.utc)
    return datetime(1970, 1, 1, tzinfo=timezone.utc)


def worm_record(ds, worm: str) -> dict:
    """One worm of an opened activity store, loaded and trimmed to what it recorded."""
    if worm not in set(ds.worm.values.tolist()):
        raise ExportError(f"worm {worm!r} is not in the store")
    w = ds.sel(worm=worm).compute()      # one read of this worm's chunks instead of one per variable
    n_frames, n_rois = int(w.n_frames), int(w.n_rois)
    native = np.asarray(w.native_calcium.values[:n_frames, :n_rois], dtype=np.float64)
    if n_rois == 0 or not np.isfinite(native).any():
        raise ExportError(f"worm {worm!r} has no observed neurons: no ROI trace holds a finite value")
    # the grid inside the recording, gaps included (NaN there, as in the store): a re-ingest of
    # the file then finds the same gaps, and a regular grid is written as starting_time + rate
    inside = np.asarray(w.time.values) <= float(w.duration_s.values) + 1e-9
    grid_t = np.asarray(w.time.values)[inside]
    behavior = {}
    for name in ds.data_vars:
        if name.startswith("behavior_"):
            values = np.asarray(w[name].values)[inside]
            if np.isfinite(values).any():
                behavior[name[len("behavior_"):]] = (values, dict(w[name].attrs))
    meta = str(w.metadata.values)
    try:
        metadata = json.loads(meta) if meta else {}
    except json.JSONDecodeError:
        metadata = {"raw": meta}
    return {
        "worm": worm, "worm_id": str(w.worm_id.values), "dataset": str(w.dataset.values),
        "source_file": str(w.source_file.values), "source_sha256": str(w.source_sha256.values),
        "format": str(w.format.values), "native_t0": float(w.native_t0.values),
        "signal": str(w.signal.values) if "signal" in w.coords else "not recorded by this store's version",
        "units": str(w.units.values) if "units" in w.coords else "not recorded by this store's version",
        "native_time": np.asarray(w.native_time.values[:n_frames], dtype=np.float64), "native": native,
        "roi_label": [str(v) for v in w.roi_label.values[:n_rois]],
        "roi_neuron": [str(v) for v in w.roi_neuron.values[:n_rois]],
        "roi_status": [str(v) for v in w.roi_status.values[:n_rois]],
        "roi_confidence": np.asarray(w.roi_label_confidence.values[:n_rois], dtype=np.float64),
        "grid_t": grid_t, "grid": np.asarray(w.roi_calcium.values[inside][:, :n_rois], dtype=np.float64),
        "behavior": behavior, "metadata": metadata, "native_median_dt": float(w.native_median_dt.values),
        "store_attrs": {"dt": ds.attrs.get("dt"), "homogenize_params": ds.attrs.get("homogenize_params", "")},
    }


def build_nwbfile(worm: dict, params: ExportParams = ExportParams(), version: str = ""):
    """An in-memory ``pynwb.NWBFile`` of one worm record (see ``worm_record``)."""
    from pynwb import NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries
    from pynwb.file import Subject
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel, RoiResponseSeries

    meta = worm["metadata"] if isinstance(worm["metadata"], dict) else {}
    sex = str(meta.get("sex") or params.sex)
    if sex not in ("XX", "XO"):
        raise ExportError(f"worm {worm['worm']!r}: sex must be 'XX' (hermaphrodite) or 'XO' (male), got {sex!r}")
    provenance = {
        "wormflow_version": version, "dataset": worm["dataset"], "worm_id": worm["worm_id"],
        "source_file": Path(worm["source_file"]).name, "source_sha256": worm["source_sha256"],
        "source_format": worm["format"], "native_t0_s": worm["native_t0"],
        "homogenize_params": worm["store_attrs"]["homogenize_params"], "grid_dt_s": worm["store_attrs"]["dt"],
        "export_params": asdict(params), "signal": worm["signal"], "units": worm["units"],
    }
    listed = {k: [str(v) for v in meta[k]] if isinstance(meta.get(k), list) else [str(meta[k])]
              for k in ("experimenter", "related_publications", "keywords") if meta.get(k)}
    nwb = NWBFile(
        session_description=f"Whole-brain calcium imaging of one C. elegans ({worm['dataset']}, worm "
                            f"{worm['worm_id']}), homogenized and exported by wormflow",
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"wormflow:{worm['source_sha256']}:{worm['worm_id']}")),
        session_start_time=_session_start(worm), session_id=worm["worm_id"],
        experiment_description=str(meta.get("experiment_description") or "")
                               or f"{worm['dataset']} whole-brain recording read from "
                                  f"{Path(worm['source_file']).name} ({worm['format']} format)",
        keywords=listed.get("keywords") or ["C. elegans", "whole-brain imaging", "calcium imaging", worm["dataset"]],
        lab=str(meta.get("lab") or "") or None,
        institution=str(meta.get("institution") or "") or None,
        experimenter=listed.get("experimenter"), related_publications=listed.get("related_publications"),
        source_script=f"wormflow {version} export-nwb", source_script_file_name="wormflow",
        notes=json.dumps(provenance, sort_keys=True),
        subject=Subject(subject_id=worm["worm_id"], species=SPECIES, sex=sex,
                        description=("sex from the source" if meta.get("sex") else
                                     "sex not recorded in the source; the hermaphrodite (XX) assumed")
                                    + "; growth stage not recorded in the source"),
    )
    device = nwb.create_device(name="Microscope", description=f"whole-brain imaging system of {worm['dataset']}; "
                                                              "see the source publication for its description")
    rate = 1.0 / worm["native_median_dt"] if worm["native_median_dt"] > 0 else 0.0
    plane = nwb.create_imaging_plane(
        name="CalciumImVol", optical_channel=OpticalChannel(name="GCaMP", description="calcium indicator channel",
                                                            emission_lambda=float("nan")),
        description="head volume of the worm (volumetric imaging)", device=device, excitation_lambda=float("nan"),
        indicator="GCaMP", location="head ganglia", imaging_rate=rate)
    module = nwb.create_processing_module(name=MODULE, description="calcium activity, ROI segmentation and "
                                                                   "neuron identities")
    seg = ImageSegmentation(name=SEGMENTATION)
    table = seg.create_plane_segmentation(
        name=TABLE, imaging_plane=plane,
        description="one row per ROI of the recording; ID_labels as the lab published them. No ROI positions are "
                    "recorded: each voxel_mask is a single zero-weight voxel at the origin.")
    table.add_column(name="ID_labels", description="neuron identity as published: '' unlabelled, trailing '?' uncertain")
    table.add_column(name="wormflow_neuron", description="canonical registry name wormflow assigned, '' if none")
    table.add_column(name="ID_status", description="labelled, unlabelled, uncertain or duplicate")
    table.add_column(name="ID_confidence", description="the lab's label confidence, NaN if none")
    no_position = np.array([(0, 0, 0, 0.0)])
    for i in range(len(worm["roi_label"])):
        table.add_roi(id=i, voxel_mask=no_position, ID_labels=worm["roi_label"][i],
                      wormflow_neuron=worm["roi_neuron"][i], ID_status=worm["roi_status"][i] or "unlabelled",
                      ID_confidence=float(worm["roi_confidence"][i]))
    module.add(seg)
    n = len(worm["roi_label"])
    fluor = Fluorescence(name=NATIVE_SERIES[0])
    module.add(fluor)
    fluor.add_roi_response_series(RoiResponseSeries(
        name=NATIVE_SERIES[1], data=worm["native"], unit=worm["units"],
        rois=table.create_roi_table_region(region=list(range(n)), description="every ROI of NeuronIDs"),
        description=f"calcium traces of every ROI at the native frame times (seconds from the first frame); "
                    f"signal: {worm['signal']}",
        **_time_kwargs(worm["native_time"])))
    if params.grid:
        grid = Fluorescence(name=GRID_SERIES[0])
        module.add(grid)
        grid.add_roi_response_series(RoiResponseSeries(
            name=GRID_SERIES[1], data=worm["grid"], unit=worm["units"],
            rois=table.create_roi_table_region(region=list(range(n)), description="every ROI of NeuronIDs"),
            description=f"the same ROIs homogenized onto wormflow's grid (dt = {worm['store_attrs']['dt']} s)",
            **_time_kwargs(worm["grid_t"])))
    if worm["behavior"]:
        beh = nwb.create_processing_module(name="Behavior", description="behavioural variables on wormflow's grid")
        for name, (values, attrs) in sorted(worm["behavior"].items()):
            container = BehavioralTimeSeries(name=name)
            container.add_timeseries(TimeSeries(
                name=name, data=values, unit=attrs.get("unit") or "a.u.",
                description=f"{name} from {worm['format']} on the grid"
                            + (" (discrete: nearest-sample resampling)" if attrs.get("discrete") else ""),
                **_time_kwargs(worm["grid_t"])))
            beh.add(container)
    return nwb


def write_nwb(nwbfile, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``nwbfile`` to ``path`` through a temporary file renamed into place: a failure never
    leaves a half-written file; an existing file is replaced only with ``overwrite``."""
    from pynwb import NWBHDF5IO

    path = Path(path)
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}.nwb")
    try:
        with NWBHDF5IO(str(partial), "w") as io:
            io.write(nwbfile)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return path


def check_nwb(path: str | Path) -> list[str]:
    """Problems of an NWB file: pynwb schema validation errors and nwbinspector findings of
    importance CRITICAL or BEST_PRACTICE_VIOLATION, except the checks in ``IGNORED_CHECKS``."""
    import warnings

    import pynwb
    from nwbinspector import Importance, inspect_nwbfile

    problems = [f"schema: {e}" for e in pynwb.validate(path=str(path))]
    serious = {Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION, Importance.ERROR}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in inspect_nwbfile(nwbfile_path=str(path)):
            if m.importance in serious and m.check_function_name not in IGNORED_CHECKS:
                problems.append(f"{m.importance.name} {m.check_function_name} at {m.location}: {m.message}")
    return problems


def export_worm(ds, worm: str, path: str | Path, *, params: ExportParams = ExportParams(), version: str = "",
                overwrite: bool = False) -> Path:
    """Export one worm of an opened activity store to ``path`` (see the module doc for the layout)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists; pass --overwrite to replace it")
    return write_nwb(build_nwbfile(worm_record(ds, worm), params, version), path, overwrite=overwrite)


def roundtrip_differences(worm: dict, path: str | Path) -> list[str]:
    """What differs between a worm record and the file read back by wormflow's NWB reader
    ([] when traces, timestamps, labels and behaviour all come back exactly)."""
    from activity.readers import read_recordings

    rec = read_recordings(path, format="nwb")[0]
    out = []
    if rec.worm_id != worm["worm_id"] or rec.dataset != worm["dataset"]:
        out.append(f"worm {rec.dataset}/{rec.worm_id} read back as {worm['dataset']}/{worm['worm_id']}")
    if rec.traces.shape != worm["native"].shape or not np.array_equal(rec.traces, worm["native"], equal_nan=True):
        out.append("native traces differ")
    if rec.timestamps.shape != worm["native_time"].shape or not np.allclose(
            rec.timestamps, worm["native_time"], rtol=0, atol=1e-9):
        out.append("native timestamps differ by more than 1 ns")
    if rec.roi_labels != worm["roi_label"]:
        out.append("ID_labels differ")
    if (rec.signal, rec.units) != (worm["signal"], worm["units"]):
        out.append(f"signal [units] {rec.signal!r} [{rec.units!r}] read back for {worm['signal']!r} [{worm['units']!r}]")
    meta = worm["metadata"] if isinstance(worm["metadata"], dict) else {}
    for key in ("experimenter", "institution", "lab", "experiment_description", "related_publications"):
        if meta.get(key) and rec.metadata.get(key) != meta[key]:
            out.append(f"metadata {key} {rec.metadata.get(key)!r} read back for {meta[key]!r}")
    if meta.get("session_start_time") and _when(rec.metadata.get("session_start_time")) != _when(
            meta["session_start_time"]):
        out.append(f"session start {rec.metadata.get('session_start_time')!r} read back for "
                   f"{meta['session_start_time']!r}")
    if set(rec.behavior) != set(worm["behavior"]):
        out.append(f"behaviour variables differ: {sorted(set(rec.behavior) ^ set(worm['behavior']))}")
    for name, series in rec.behavior.items():
        if name not in worm["behavior"]:
            continue
        values = worm["behavior"][name][0]
        if not np.array_equal(np.asarray(series.values, dtype=values.dtype), values, equal_nan=True):
            out.append(f"behaviour {name} values differ")
        if not np.allclose(series.timestamps, worm["grid_t"], rtol=0, atol=1e-9):
            out.append(f"behaviour {name} timestamps differ")
    return out
