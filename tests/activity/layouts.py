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


def _wormid(name: str):
    """A type of the WormID extension (ndx-multichannel-volume), its namespace loaded from its YAML."""
    import pynwb

    from activity.nwb import NAMESPACE, wormid_types

    wormid_types()
    return pynwb.get_class(name, NAMESPACE)


def _wormid_file(identifier: str):
    """NWBFile, CElegansSubject and ImagingVolume as NWBelegans' NWB_convert.py writes them
    (gen_file, create_subject, create_device, create_im_vol)."""
    from datetime import datetime, timezone

    from pynwb import NWBFile

    nwb = NWBFile(session_description="NeuroPAL and calcium imaging of immobilized worm", identifier=identifier,
                  session_start_time=datetime(2023, 3, 7, 14, 5, tzinfo=timezone.utc),
                  experimenter=["Fixture Person"], experiment_description="NeuroPAL images and GCaMP time series",
                  lab="FOCO lab", institution="UCSF", related_publications=["doi:10.1101/2024.04.28.591397"])
    nwb.subject = _wormid("CElegansSubject")(
        subject_id=identifier, description="NeuroPAL worm in microfluidic chip",
        date_of_birth=datetime(2023, 3, 4, tzinfo=timezone.utc), growth_stage="YA", growth_stage_time="PT2H30M",
        cultivation_temp=20.0, species="http://purl.obolibrary.org/obo/NCBITaxon_6239", sex="O", strain="OH16230")
    device = nwb.create_device(name="Spinning disk confocal", description="Leica DMi8", manufacturer="Leica")
    channel = _wormid("OpticalChannelPlus")(name="GFP-GCaMP", description="Chroma ET 525/50", excitation_lambda=488.0,
                                            excitation_range=[486.5, 489.5], emission_range=[500.0, 550.0],
                                            emission_lambda=525.0)
    refs = _wormid("OpticalChannelReferences")(name="order_optical_channels", channels=["GFP-GCaMP"])
    # the generated class asks for the core ImagingPlane's optical_channel too (the package's own
    # Python wrapper fills it from optical_channel_plus)
    volume = _wormid("ImagingVolume")(name="CalciumImVol", optical_channel=[channel], order_optical_channels=refs,
                                      description="Imaging volume used to acquire calcium imaging data",
                                      device=device, location="head", grid_spacing=[0.3208, 0.3208, 1.5],
                                      indicator="GCaMP6s", excitation_lambda=488.0,
                                      grid_spacing_unit="micrometers", origin_coords=[0, 0, 0],
                                      origin_coords_unit="micrometers", reference_frame="Worm head")
    nwb.add_imaging_plane(volume)
    return nwb, volume


def _centers(name: str, volume, n: int, labels=None, ragged: bool = True):
    """A PlaneSegmentation of neuron centres (create_vol_seg_centers): one voxel of weight 1
    per ROI, ``ID_labels`` (indexed, as NWBelegans writes it; plain, as wbfm does) when given."""
    from pynwb.ophys import PlaneSegmentation

    table = PlaneSegmentation(name=name, description=f"Neuron centers, {name}", imaging_plane=volume)
    for i in range(n):
        table.add_roi(voxel_mask=[[np.uint(i), np.uint(2 * i), np.uint(1), 1]])
    if labels is not None:
        data = [[lab] for lab in labels] if ragged else np.asarray(labels, dtype=str)
        table.add_column(name="ID_labels", description="ROI ID labels", data=data, index=ragged)
    return table


def nwbelegans_nwb(path: Path, x, rate: float, neuron_ids, neuropal_labels, timepoints: int = 2) -> Path:
    """A DANDI-000692-style file as NWBelegans' ``process_*`` writes it: the NeuroPAL
    segmentation (its own ROIs and ID_labels) under processing/NeuroPAL, per-time-point
    calcium segmentations ``Seg_tpoint_<t>`` without labels, the calcium ROIs' names in
    ``CalciumActivity/NeuronIDs`` (SegmentationLabels), and the DF/F traces in
    ``SignalDFoF/SignalCalciumImResponseSeries`` pointing at ``Seg_tpoint_0``."""
    from pynwb import NWBHDF5IO
    from pynwb.ophys import DfOverF, ImageSegmentation, RoiResponseSeries

    nwb, volume = _wormid_file("20230307-fixture")
    n = np.asarray(x).shape[1]
    neuropal = nwb.create_processing_module(name="NeuroPAL", description="NeuroPAL image data and metadata")
    neuropal.add(ImageSegmentation(name="NeuroPALSegmentation", plane_segmentations=[
        _centers("NeuroPALNeurons", volume, len(neuropal_labels), neuropal_labels)]))
    calcium = nwb.create_processing_module(name="CalciumActivity", description="calcium image time series")
    segs = [_centers(f"Seg_tpoint_{t}", volume, n) for t in range(timepoints)]
    image_seg = ImageSegmentation(name="CalciumSeriesSegmentation", plane_segmentations=segs)
    calcium.add(image_seg)
    calcium.add(_wormid("SegmentationLabels")(name="NeuronIDs", labels=list(neuron_ids),
                                              description="Calcium ROI segmentation labels",
                                              ImageSegmentation=image_seg))
    region = segs[0].create_roi_table_region(description="neurons at the first time point", region=list(range(n)))
    calcium.add(DfOverF(name="SignalDFoF", roi_response_series=RoiResponseSeries(
        name="SignalCalciumImResponseSeries", description="DF/F activity for calcium imaging data",
        data=np.asarray(x), rois=region, unit="Percentage", rate=rate)))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def wbfm_nwb(path: Path, red, green, ratio, rate: float, tracker_ids, manual_ids, link_labels: bool = True) -> Path:
    """A file in the Zimmer lab's export layout (wbfm ``utils_nwb_export``, docs/nwb_format.md):
    per-time-point ``Seg_tpoint_<t>`` tables in ``CalciumSeriesSegmentationCoords`` whose plain
    ID_labels are the tracker's names, ``NeuronIDs`` (SegmentationLabels) with the manual
    names (tracker names blanked) linked to that segmentation, and red, green and ratio
    traces (``ReferenceFluorescence``, ``SignalFluorescence``, ``SignalDFoF``) on Seg_tpoint_0.
    With ``link_labels=False`` the tables carry no ID_labels and NeuronIDs is linked to
    another segmentation: nothing links the traces to names."""
    from pynwb import NWBHDF5IO
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, RoiResponseSeries

    nwb, volume = _wormid_file("2022-11-27_15-14_ZIM2165_worm1")
    n = np.asarray(green).shape[1]
    calcium = nwb.create_processing_module(name="CalciumActivity", description="calcium activity")
    segs = [_centers(f"Seg_tpoint_{t}", volume, n, tracker_ids if link_labels else None, ragged=False)
            for t in range(2)]
    coords = ImageSegmentation(name="CalciumSeriesSegmentationCoords", plane_segmentations=segs)
    calcium.add(coords)
    other = ImageSegmentation(name="CalciumSeriesSegmentationOther",
                              plane_segmentations=[_centers("Other", volume, n)])
    calcium.add(other)
    calcium.add(_wormid("SegmentationLabels")(name="NeuronIDs", labels=list(manual_ids),
                                              description="Calcium segmentation labels with xyz coordinates",
                                              ImageSegmentation=coords if link_labels else other))
    region = segs[0].create_roi_table_region(description="neurons at the first time point", region=list(range(n)))
    for container, name, data, unit in ((Fluorescence, "ReferenceFluorescence", red, "a.u."),
                                        (Fluorescence, "SignalFluorescence", green, "a.u."),
                                        (DfOverF, "SignalDFoF", ratio, "ratio")):
        series = "ReferenceCalciumImResponseSeries" if name.startswith("Reference") else "SignalCalciumImResponseSeries"
        calcium.add(container(name=name, roi_response_series=RoiResponseSeries(
            name=series, description=f"{name} traces", data=np.asarray(data), rois=region, unit=unit, rate=rate)))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
