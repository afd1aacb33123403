"""The Parquet configs of a published collection.

A config is one table. Its rows are cut into files of about ``SHARD_BYTES`` of Arrow data
(one file when smaller), named as the Hub names them (``train-00000-of-00001.parquet``).
Files are written with pyarrow in a fixed order and with fixed settings, so publishing
twice gives the same bytes. A table whose rows come from inputs under different licences
is split into one config per licence (``edges-mit``, ``edges-gpl-3.0``…): each config then
has exactly one licence, which the card states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.publish.cards import RESTRICTIVENESS, combined_licence, input_licence
from wormflow.core.atomic import replacing

SHARD_BYTES = 256 * 2**20     # Arrow bytes per file: large enough that a config is a few files, small enough to stream
ROW_GROUP = 2000              # rows per Parquet row group (a row of the activity config is one whole trace)


@dataclass
class Collection:
    """A dataset folder being written: its configs, their files, rows, licence, inputs and notes."""
    name: str
    folder: Path
    configs: dict[str, list[str]] = field(default_factory=dict)    # config -> data files (relative)
    rows: dict[str, int] = field(default_factory=dict)
    licences: dict[str, str] = field(default_factory=dict)         # config -> Hub licence id
    inputs: dict[str, list[str]] = field(default_factory=dict)     # config -> sha256 of the inputs behind its rows
    notes: dict[str, str] = field(default_factory=dict)            # config -> what a row is, for the card
    pushed_to: str = ""


def _write_table(table, path: Path) -> None:
    import pyarrow.parquet as pq

    with replacing(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=3, use_dictionary=True,
                       write_statistics=True, row_group_size=ROW_GROUP)


OWN_LICENCE = "mit"          # wormflow's licence, for tables that are wormflow's own description of its inputs


def write_config(col: Collection, config: str, columns: dict, *, inputs, note: str,
                 shard_bytes: int | None = None, own: bool = False) -> list[str]:
    """Write ``columns`` (pyarrow arrays of equal length) as config ``config`` of ``col``.

    ``inputs``: the sha256 of the inputs every row comes from (a list of str), or one such
    list per row. Rows under different licences become configs ``<config>-<licence>``.
    With ``own``, the rows are wormflow's own description of the inputs (their names, sha256,
    formats), not their data, and take wormflow's licence. Returns the names of the configs written."""
    import pyarrow as pa

    table = pa.table(columns)
    if inputs and not isinstance(inputs[0], str):        # one list of inputs per row
        row_inputs = [tuple(r) for r in inputs]
    else:
        row_inputs = [tuple(inputs)] * table.num_rows
    licence = np.asarray([OWN_LICENCE if own else combined_licence(map(input_licence, r)) for r in row_inputs],
                         dtype=object)
    groups = sorted(set(licence), key=RESTRICTIVENESS.index) or [
        OWN_LICENCE if own else combined_licence(map(input_licence, inputs))]
    limit = shard_bytes or SHARD_BYTES
    names = []
    for lic in groups:
        name = config if len(groups) == 1 else f"{config}-{lic}"
        idx = np.flatnonzero(licence == lic)
        part = table if len(groups) == 1 else table.take(pa.array(idx, type=pa.int64()))
        per_file = max(1, math.ceil(part.num_rows / max(1, math.ceil(part.nbytes / limit))))
        n_files = max(1, math.ceil(part.num_rows / per_file))
        files = []
        for k in range(n_files):
            rel = f"data/{name}/train-{k:05d}-of-{n_files:05d}.parquet"
            _write_table(part.slice(k * per_file, per_file), col.folder / rel)
            files.append(rel)
        col.configs[name] = files
        col.rows[name] = part.num_rows
        col.licences[name] = lic
        rows_here = [row_inputs[i] for i in idx] or [tuple(inputs)]     # an empty table keeps its inputs
        col.inputs[name] = list(dict.fromkeys(s for r in rows_here for s in r))
        col.notes[name] = note if len(groups) == 1 else f"{note} Only the rows whose inputs are under {lic}."
        names.append(name)
    return names


def strs(values) -> list[str]:
    """Any numpy string array (StringDType, object, fixed width) as a list of str."""
    return [str(v) for v in np.asarray(values, dtype=object).ravel()]


def lists(values, dtype):
    """A list of 1-d arrays as an Arrow list column of ``dtype``."""
    import pyarrow as pa

    return pa.array([np.asarray(v, dtype=dtype) for v in values], type=pa.list_(pa.from_numpy_dtype(dtype)))


def nested(values, dtype):
    """A list of 2-d arrays (e.g. time x state) as an Arrow list-of-lists column of ``dtype``."""
    import pyarrow as pa

    inner = pa.from_numpy_dtype(dtype)
    return pa.array([np.asarray(v, dtype=dtype).tolist() for v in values], type=pa.list_(pa.list_(inner)))
