"""Export homogenized worms as NWB files in the WormID layout (NWBelegans, DANDI 000692/000776).

The layout, and the types of the community's extension ``ndx-multichannel-volume`` it uses:

- ``/general/subject``: a ``CElegansSubject`` (the extension's ``Subject``): species
  (NCBITaxon_6239), sex "XX" (hermaphrodite) or "XO" (male), strain, age as an ISO 8601
  duration with its reference, growth stage and cultivation temperature, from the source
  or the metadata the user gives (:class:`ExportParams`); nothing is filled in otherwise,
  and :func:`missing_for_dandi` names what DANDI needs and nobody stated.
- ``/general/devices/Microscope`` and ``/general/optophysiology/CalciumImVol``: the
  imaging device and volume, rate from the native median frame interval.
- ``/processing/CalciumActivity/CalciumSeriesSegmentation/CalciumSeriesROIs``: a
  ``PlaneSegmentation`` with one row per recorded ROI and its ``ID_labels`` (the lab's
  label as published: "" when unlabelled, a trailing "?" kept for uncertain ones), plus
  ``wormflow_neuron`` (the canonical registry name or ""), ``ID_status`` and
  ``ID_confidence``. The sources give no ROI positions, so every ``voxel_mask`` is one
  zero-weight voxel at the origin, which marks "position not recorded".
- ``/processing/CalciumActivity/NeuronIDs``: the extension's ``SegmentationLabels``, one
  label per ROI of that table, linked to ``CalciumSeriesSegmentation``.
- ``/processing/CalciumActivity/SignalRawFluor/SignalCalciumImResponseSeries``: the native
  traces (frames x ROIs) at their native timestamps (seconds from the first frame; the
  lab's clock offset is kept in the provenance), unit and signal as the lab's. Optionally
  ``.../HomogenizedFluor/HomogenizedCalciumResponseSeries``: the ROIs on the store's grid.
- ``/processing/Behavior/<name>/<name>``: every behavioural variable as a ``TimeSeries``
  on the store's grid (inside a ``BehavioralTimeSeries``).
- Provenance: ``notes`` holds JSON with the source file, its sha256, format, dataset,
  worm id, the lab clock offset, the store's homogenization parameters, the export
  parameters and the wormflow version; ``source_script`` names wormflow and its version.

No image is written (``MultiChannelVolume``, ``NeuroPALImageRaw``): the sources wormflow
reads carry traces, not the NeuroPAL volumes.

``ndx-multichannel-volume`` pins ``pynwb<3``; wormflow needs pynwb 4, so the package is
installed without its dependencies and only its YAML namespace is loaded here, with
pynwb's own ``load_namespaces`` (:func:`wormid_types`).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from wormflow.core.atomic import replacing
from wormflow.core.errors import WormflowError

SPECIES = "Caenorhabditis elegans"
MODULE = "CalciumActivity"
SEGMENTATION = "CalciumSeriesSegmentation"
TABLE = "CalciumSeriesROIs"
NATIVE_SERIES = ("SignalRawFluor", "SignalCalciumImResponseSeries")
GRID_SERIES = ("HomogenizedFluor", "HomogenizedCalciumResponseSeries")

SPECIES_ID = "http://purl.obolibrary.org/obo/NCBITaxon_6239"
NAMESPACE = "ndx-multichannel-volume"
NAMESPACE_PIN = "ndx-multichannel-volume==0.1.12"

# nwbinspector checks the community layout departs from on purpose, with the reason.
IGNORED_CHECKS = {
    "check_processing_module_name": "the community layout names its modules CalciumActivity and Behavior, which "
                                    "readers of DANDI 000692/000776 look for",
}
# C. elegans sexes in the codes DANDI reads (its schema knows M, F, O, U, not XX/XO; with the
# species given as an NCBITaxon URL, nwbinspector asks for the same codes), as NWBelegans writes them
DANDI_SEX = {"XX": "O", "XO": "M"}
# what DANDI needs of every file, and how a user states it (checked by missing_for_dandi)
DANDI_FIELDS = {
    "age": "the subject's age as an ISO 8601 duration (--age P3D, with --age-reference birth|gestational; or "
           "'age' in the dataset's metadata table)",
}


class ExportError(WormflowError):
    """A worm cannot be exported (nothing observed, target exists...)."""


# the descriptive fields a user may give, per dataset (a metadata table) or for every worm
METADATA_FIELDS = ("experimenter", "institution", "lab", "related_publications", "strain", "age", "age_reference",
                   "growth_stage", "growth_stage_time", "cultivation_temp", "genotype", "sex")
_LISTS = ("experimenter", "related_publications", "keywords")


@dataclass(frozen=True)
class ExportParams:
    grid: bool = False          # also write the ROIs on the store's homogenized grid
    sex: str = "XX"             # used when the source does not say: the hermaphrodite
    metadata: dict = field(default_factory=dict)            # METADATA_FIELDS for every worm
    dataset_metadata: dict = field(default_factory=dict)    # {dataset: {field: value}}, wins over ``metadata``

    def __post_init__(self):
        for where, table in [("metadata", self.metadata)] + [(f"dataset {k!r}", v)
                                                              for k, v in self.dataset_metadata.items()]:
            unknown = sorted(set(table) - set(METADATA_FIELDS))
            if unknown:
                raise ExportError(f"{where}: unknown metadata field(s) {', '.join(unknown)}; known: "
                                  f"{', '.join(METADATA_FIELDS)}")
            if table.get("age") and not _ISO_DURATION.match(str(table["age"])):
                raise ExportError(f"{where}: age {table['age']!r} is not an ISO 8601 duration (e.g. P3D, P2DT12H)")
            if table.get("age_reference", "birth") not in ("birth", "gestational"):
                raise ExportError(f"{where}: age_reference must be 'birth' or 'gestational'")


_ISO_DURATION = re.compile(r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
                           r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$")


def subject_metadata(worm: dict, params: ExportParams) -> dict:
    """What the export states about a worm: the source file's own metadata first, then the
    user's table for its dataset, then the user's values for every worm."""
    source = worm["metadata"] if isinstance(worm["metadata"], dict) else {}
    out = {**params.metadata, **params.dataset_metadata.get(worm["dataset"], {})}
    for key in ("experimenter", "institution", "lab", "related_publications", "experiment_description",
                "keywords", "session_start_time"):
        if source.get(key):
            out[key] = source[key]
    subject = source.get("subject") if isinstance(source.get("subject"), dict) else {}
    for key in ("strain", "genotype", "sex", "age", "growth_stage", "growth_stage_time", "cultivation_temp"):
        if subject.get(key):
            out[key] = subject[key]
    for key in _LISTS:
        if key in out and not isinstance(out[key], (list, tuple)):
            out[key] = [out[key]]
    return out


def missing_for_dandi(worm: dict, params: ExportParams) -> list[str]:
    """The fields DANDI needs that neither the source nor the user stated, with how to give them."""
    meta = subject_metadata(worm, params)
    return [f"{worm['worm']}: {key} unknown: give {how}" for key, how in DANDI_FIELDS.items() if not meta.get(key)]


def wormid_types():
    """(CElegansSubject, SegmentationLabels) of ``ndx-multichannel-volume``, its namespace
    loaded from the installed package's YAML without importing the package (which needs
    pynwb<3)."""
    import importlib.util

    import pynwb

    try:
        return pynwb.get_class("CElegansSubject", NAMESPACE), pynwb.get_class("SegmentationLabels", NAMESPACE)
    except (KeyError, ValueError):
        pass
    spec = importlib.util.find_spec("ndx_multichannel_volume")
    if spec is None or not spec.submodule_search_locations:
        raise ExportError(f"the WormID extension is not installed: pip install --no-deps {NAMESPACE_PIN} "
                          "(wormflow reads only its YAML namespace, so its pynwb<3 pin does not apply)")
    path = Path(list(spec.submodule_search_locations)[0]) / "spec" / f"{NAMESPACE}.namespace.yaml"
    if not path.is_file():
        raise ExportError(f"{path}: the WormID extension's namespace file is missing; reinstall {NAMESPACE_PIN}")
    pynwb.load_namespaces(str(path))
    return pynwb.get_class("CElegansSubject", NAMESPACE), pynwb.get_class("SegmentationLabels", NAMESPACE)


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
    when = _when(meta.get("session_start_time") if isinstance(meta, dict) else None)
    if when is not None:
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    m = re.search(r"(20\d\d)-(\d\d)-(\d\d)", worm["worm_id"])
    if m:
        return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=timezone.utc)
    return datetime(1970, 1, 1, tzinfo=timezone.utc)


def worm_record(ds, worm: str) -> dict:
    """One worm of an opened activity store, loaded and trimmed to what it recorded."""
    from activity.store import store_fact

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
        "store_attrs": {"dt": store_fact(ds, "dt"), "homogenize_params": store_fact(ds, "homogenize_params")},
    }


def build_nwbfile(worm: dict, params: ExportParams = ExportParams(), version: str = ""):
    """An in-memory ``pynwb.NWBFile`` of one worm record (see ``worm_record``)."""
    from pynwb import NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel, RoiResponseSeries

    CElegansSubject, SegmentationLabels = wormid_types()
    meta = subject_metadata(worm, params)
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
    listed = {k: [str(v) for v in meta[k]] for k in _LISTS if meta.get(k)}
    stated = [k for k in ("sex", "strain", "age", "growth_stage") if meta.get(k)]
    optional = {"strain": str(meta.get("strain") or ""), "genotype": str(meta.get("genotype") or ""),
                "age": str(meta.get("age") or ""), "growth_stage_time": str(meta.get("growth_stage_time") or "")}
    optional = {k: v for k, v in optional.items() if v}
    if "age" in optional:
        optional["age__reference"] = str(meta.get("age_reference") or "birth")
    if meta.get("cultivation_temp") not in (None, ""):
        optional["cultivation_temp"] = float(meta["cultivation_temp"])
    subject = CElegansSubject(
        subject_id=worm["worm_id"], species=SPECIES_ID, sex=DANDI_SEX[sex], **optional,
        growth_stage=str(meta.get("growth_stage") or "not recorded in the source"),
        description=f"C. elegans ({worm['dataset']}); stated by the source or the user: "
                    f"{', '.join(stated) or 'nothing'}"
                    + f"; {'hermaphrodite (XX), written as O (other)' if sex == 'XX' else 'male (XO), written as M'}"
                    + ("" if meta.get("sex") else f"; sex not recorded, {sex} given by the export's --sex"))
    nwb = NWBFile(
        session_description=f"Whole-brain calcium imaging of one C. elegans ({worm['dataset']}, worm "
                            f"{worm['worm_id']}), homogenized and exported by wormflow"
                            + ("" if meta.get("session_start_time") else
                               "; the source states no start time: the session start is the date in the "
                               "recording's id (time of day unknown), or 1970-01-01 where it has none"),
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
        subject=subject,
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
    module.add(SegmentationLabels(name="NeuronIDs", labels=list(worm["roi_label"]), ImageSegmentation=seg,
                                  description="the lab's label of every ROI of CalciumSeriesROIs, in its order "
                                              "('' unlabelled, a trailing '?' uncertain)"))
    n = len(worm["roi_label"])
    fluor = Fluorescence(name=NATIVE_SERIES[0])
    module.add(fluor)
    fluor.add_roi_response_series(RoiResponseSeries(
        name=NATIVE_SERIES[1], data=worm["native"], unit=worm["units"],
        rois=table.create_roi_table_region(region=list(range(n)), description="every ROI of CalciumSeriesROIs"),
        description=f"calcium traces of every ROI at the native frame times (seconds from the first frame); "
                    f"signal: {worm['signal']}",
        **_time_kwargs(worm["native_time"])))
    if params.grid:
        grid = Fluorescence(name=GRID_SERIES[0])
        module.add(grid)
        grid.add_roi_response_series(RoiResponseSeries(
            name=GRID_SERIES[1], data=worm["grid"], unit=worm["units"],
            rois=table.create_roi_table_region(region=list(range(n)), description="every ROI of CalciumSeriesROIs"),
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
    with replacing(path) as partial:
        with NWBHDF5IO(str(partial), "w") as io:
            io.write(nwbfile)
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
