"""Zimmer lab MATLAB files (Kato 2015, Nichols 2017, Skora 2018, Kaplan 2020, Uzel 2022).

Documented layout: one struct variable named after the condition (``WT_Stim``,
``n2_let``, ``Uzel_WT``, ``RIShisCl_Neuron2019``...) whose fields are cell arrays with
one entry per worm:

* traces: ``traces`` | ``deltaFOverF_bc`` | ``traces_bleach_corrected`` | ``deltaFOverF``
  (each T x N),
* identities: ``IDs`` | ``NeuronNames`` | ``neuron_ID`` (each a cell of N entries: empty,
  a name, or a cell of candidate names),
* time: ``timeVectorSeconds`` | ``tv`` | ``time_vector`` (each T seconds).

A struct whose fields hold one worm's arrays directly (not cells) is read as one worm.
MATLAB v5 and v7.3 are both read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from activity.raw import RawRecording
from activity.readers._matfile import (as_2d, as_text_label, is_mat, load_mat, require_field,
                                       variable_names)
from wormflow.core.errors import FormatError

FORMAT = "zimmer_mat"
DESCRIPTION = "Zimmer lab .mat (v5/v7.3): struct of per-worm cells traces/IDs/timeVectorSeconds"
DATASET = "Zimmer"
TRACE_FIELDS = ("traces", "deltaFOverF_bc", "traces_bleach_corrected", "deltaFOverF")
ID_FIELDS = ("IDs", "NeuronNames", "neuron_ID", "NeuronIds")
TIME_FIELDS = ("timeVectorSeconds", "tv", "time_vector")
_OTHER_FORMATS = {"norm_traces", "corrected_F"}
# what each trace field holds, in the Zimmer lab's naming (Kato 2015 and its successors)
SIGNALS = {
    "traces": ("fluorescence as released in the lab's 'traces' field (no normalization stated)", "a.u."),
    "deltaFOverF": ("dF/F0", "1"),
    "deltaFOverF_bc": ("dF/F0, bleach-corrected", "1"),
    "traces_bleach_corrected": ("fluorescence, bleach-corrected", "a.u."),
}


def sniff(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".mat" and is_mat(path)):
        return False
    try:
        names = variable_names(path)
    except Exception:
        return False
    return bool(names) and not (names & _OTHER_FORMATS)


def _find_struct(data: dict, where: str) -> tuple[str, dict]:
    for name, value in data.items():
        if isinstance(value, dict) and any(f in value for f in TRACE_FIELDS):
            return name, value
    raise FormatError(f"{where}: no struct variable with a traces field ({', '.join(TRACE_FIELDS)}); "
                      f"variables found: {', '.join(data) or 'none'}")


def read(path: Path) -> list[RawRecording]:
    path = Path(path)
    var, struct = _find_struct(load_mat(path), path.name)
    where = f"{path.name}:{var}"
    trace_field, traces = require_field(struct, TRACE_FIELDS, where, "traces")
    id_field, ids = require_field(struct, ID_FIELDS, where, "neuron identities")
    time_field, times = require_field(struct, TIME_FIELDS, where, "time vector")
    if not isinstance(traces, list):           # one worm stored directly
        traces, ids, times = [traces], [ids], [times]
    if not (len(traces) == len(ids) == len(times)):
        raise FormatError(f"{where}: {trace_field} has {len(traces)} worms but {id_field} has {len(ids)} "
                          f"and {time_field} has {len(times)}")
    out = []
    for i, (x, worm_ids, t) in enumerate(zip(traces, ids, times)):
        wid = f"{var}/{i}"
        x = as_2d(trace_field, x, f"{where}[{i}]")
        worm_ids = worm_ids if isinstance(worm_ids, list) else [worm_ids]
        labels = [as_text_label(v) for v in worm_ids]
        if len(labels) != x.shape[1]:
            raise FormatError(f"{where}[{i}]: {id_field} has {len(labels)} entries for {x.shape[1]} trace columns")
        out.append(RawRecording(
            source_file=str(path), worm_id=wid, dataset=DATASET, format=FORMAT,
            timestamps=np.asarray(t, dtype=np.float64).ravel(), traces=x, roi_labels=labels,
            metadata={"struct": var, "worm_index": i, "trace_field": trace_field},
            signal=SIGNALS[trace_field][0], units=SIGNALS[trace_field][1]))
    return out
