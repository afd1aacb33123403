"""Writers of small files in each lab's documented layout (for the fixture tests).

No real file of these formats is in the mirror; each writer follows the layout described
in the matching reader's docstring.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from scipy.io import savemat


def _cell(items) -> np.ndarray:
    arr = np.empty((len(items),), dtype=object)
    for i, v in enumerate(items):
        arr[i] = v
    return arr


def zimmer_v5(path: Path, traces, ids, times, var="WT_Stim", trace_field="traces") -> Path:
    struct = {trace_field: _cell(traces), "IDs": _cell([_cell(w) for w in ids]),
              "timeVectorSeconds": _cell(times)}
    savemat(path, {var: struct})
    return path


def _v73_write(f: h5py.File, refs: h5py.Group, name: str, value, parent: h5py.Group):
    """Write one MATLAB value the way MATLAB v7.3 does (transposed, typed by MATLAB_class)."""
    if isinstance(value, str):
        if value == "":
            ds = parent.create_dataset(name, data=np.zeros(2, dtype=np.uint64))
            ds.attrs["MATLAB_class"] = np.bytes_("char")
            ds.attrs["MATLAB_empty"] = np.uint8(1)
            return ds
        ds = parent.create_dataset(name, data=np.array([[ord(c)] for c in value], dtype=np.uint16).T.T)
        ds.attrs["MATLAB_class"] = np.bytes_("char")
        return ds
    if isinstance(value, list):
        ref_list = []
        for item in value:
            key = f"r{refs.attrs.get('n', 0)}"
            refs.attrs["n"] = refs.attrs.get("n", 0) + 1
            _v73_write(f, refs, key, item, refs)
            ref_list.append(refs[key].ref)
        ds = parent.create_dataset(name, data=np.array(ref_list, dtype=h5py.ref_dtype).reshape(-1, 1),
                                   dtype=h5py.ref_dtype)
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
        return ds
    arr = np.atleast_2d(np.asarray(value, dtype=np.float64))
    ds = parent.create_dataset(name, data=arr.T)
    ds.attrs["MATLAB_class"] = np.bytes_("double")
    return ds


def zimmer_v73(path: Path, traces, ids, times, var="n2_let") -> Path:
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        g = f.create_group(var)
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        _v73_write(f, refs, "traces", [np.asarray(t) for t in traces], g)
        _v73_write(f, refs, "IDs", [[x for x in w] for w in ids], g)
        _v73_write(f, refs, "timeVectorSeconds", [np.asarray(t)[:, None] for t in times], g)
    with open(path, "r+b") as fh:
        header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Nov 27 2026 HDF5 schema 1.00 ."
        fh.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return path


def yemini_v5(path: Path, fps, files, neurons, is_l, norm_traces) -> Path:
    savemat(path, {"fps": float(fps), "files": _cell(files), "neurons": _cell(neurons),
                   "is_L": _cell([np.asarray(x, dtype=float) for x in is_l]),
                   "norm_traces": _cell([_cell([np.asarray(t, dtype=float) for t in tr]) for tr in norm_traces])})
    return path


def lin_v5(path: Path, corrected_f, names, use_flag, t) -> Path:
    savemat(path, {"corrected_F": np.asarray(corrected_f), "F_0": np.ones((len(names), 1)),
                   "proofread_neurons": _cell(names), "use_flag": np.asarray(use_flag, dtype=float),
                   "times": _cell([np.zeros(3), np.asarray(t)])})
    return path


def leifer_text(folder: Path, i: int, x, labels, t) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / f"{i}_gcamp.txt", x, delimiter=" ")
    (folder / f"{i}_labels.txt").write_text("\n".join(labels) + "\n")
    (folder / f"{i}_t.txt").write_text("\n".join(f"{v:.6e}" for v in t) + "\n")
    return folder / f"{i}_gcamp.txt"


def venkatachalam_csv(path: Path, x, labels, t) -> Path:
    import pandas as pd
    table = pd.DataFrame(np.asarray(x).T, columns=[f"{v:.3f}" for v in t])
    table.insert(0, "neuron", labels)
    table.insert(1, "cell_type", ["x"] * len(labels))
    table.to_csv(path, index=False)
    return path


def flavell_h5(path: Path, traces, t, behavior=None, roi_match=None, drop=()) -> Path:
    with h5py.File(path, "w") as f:
        if "traces" not in drop:
            f["gcamp/trace_array"] = traces
        if "timestamps" not in drop:
            f["timing/timestamp_confocal"] = t
        else:
            f.create_group("timing")
        for k, v in (behavior or {}).items():
            f[f"behavior/{k}"] = v
        if roi_match is not None:
            f["neuropal_registration/roi_match"] = roi_match
    return path


def community_nwb(path: Path, x, t, labels, behavior=None) -> Path:
    """An NWB file in the C. elegans community layout, written with pynwb core types."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.ophys import ImageSegmentation, OpticalChannel, RoiResponseSeries

    nwb = NWBFile(session_description="fixture", identifier="fixture-worm-1",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc), lab="fixture lab")
    device = nwb.create_device(name="Microscope")
    plane = nwb.create_imaging_plane(
        name="ImagingVolume", optical_channel=OpticalChannel(name="GCaMP", description="GCaMP", emission_lambda=513.0),
        description="whole brain", device=device, excitation_lambda=488.0, indicator="GCaMP6s",
        location="head", imaging_rate=2.0)
    module = nwb.create_processing_module(name="CalciumActivity", description="calcium")
    seg = ImageSegmentation(name="CalciumSeriesSegmentation")
    ps = seg.create_plane_segmentation(name="NeuronSegmentation", description="ROIs", imaging_plane=plane)
    ps.add_column(name="ID_labels", description="neuron identities")
    for i, lab in enumerate(labels):
        ps.add_roi(voxel_mask=[(i, i, i, 1.0)], ID_labels=lab)
    module.add(seg)
    region = ps.create_roi_table_region(region=list(range(len(labels))), description="all")
    module.add(RoiResponseSeries(name="SignalCalciumImResponseSeries", data=np.asarray(x), rois=region,
                                 unit="a.u.", timestamps=np.asarray(t)))
    if behavior:
        beh = nwb.create_processing_module(name="Behavior", description="behaviour")
        for k, v in behavior.items():
            beh.add(TimeSeries(name=k, data=np.asarray(v), unit="a.u.", timestamps=np.asarray(t)))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
