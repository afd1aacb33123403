"""The activity and connectome stores as published collections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from activity.store import store_fact
from pipeline.publish.cards import write_card
from pipeline.publish.tables import Collection, lists, nested, strs, write_config

TRACE_COLUMNS = ("time_in_seconds", "calcium_data", "mask", "original_time_in_seconds", "original_calcium_data")


def _dataset_extras(prov: dict) -> dict[str, list[str]]:
    """Dataset -> sha256 of the ingest's inputs that are not a worm's file but belong to that
    dataset in the registry (e.g. the label table of the Flavell recordings)."""
    from pipeline.registry import registry

    by_sha = {e.sha256: e for e in registry()}
    out: dict[str, list[str]] = {}
    for i in prov.get("last_ingest", {}).get("inputs", []):
        e = by_sha.get(i.get("sha256", ""))
        if e and e.name.startswith("activity/"):
            out.setdefault(e.name.split("/")[1], []).append(e.sha256)
    return out


def publish_activity(store, folder: Path, repo: str) -> Collection:
    import pyarrow as pa

    from activity.store import open_activity
    from wormflow.core.neurons import neuron_index

    ds = open_activity(store).load()
    col = Collection("activity", folder)
    index = neuron_index()
    dt = float(ds.attrs["dt"])
    prov = store_fact(ds, "provenance")
    prov = json.loads(prov) if isinstance(prov, str) else (prov or {})
    extras = _dataset_extras(prov)
    rows = {k: [] for k in ("source_dataset", "worm", "worm_id", "raw_data_file", "raw_data_sha256", "roi", "neuron",
                            "is_labeled_neuron", "slot", "roi_label", "label_status", *TRACE_COLUMNS,
                            "median_dt", "original_median_dt")}
    behaviours = sorted(v for v in ds.data_vars if v.startswith("behavior_"))
    worms = {k: [] for k in ("source_dataset", "worm", "worm_id", "raw_data_file", "raw_data_sha256", "n_rois",
                             "n_labelled", "duration_s", "time_in_seconds", *behaviours)}
    row_inputs, worm_inputs = [], []
    time = ds.time.values
    for w in range(ds.sizes["worm"]):
        one = ds.isel(worm=w)
        valid = one.valid.values.astype(bool)
        n_frames, n_rois = int(one.n_frames), int(one.n_rois)
        meta = {"source_dataset": str(one.dataset.values), "worm": str(one.worm.values),
                "worm_id": str(one.worm_id.values), "raw_data_file": Path(str(one.source_file.values)).name,
                "raw_data_sha256": str(one.source_sha256.values)}
        inputs = [meta["raw_data_sha256"], *extras.get(meta["source_dataset"], [])]
        grid = one.roi_calcium.values[valid]
        native = one.native_calcium.values[:n_frames]
        native_t = one.native_time.values[:n_frames]
        for j in range(n_rois):
            neuron = str(one.roi_neuron.values[j])
            for k, v in meta.items():
                rows[k].append(v)
            rows["roi"].append(j)
            rows["neuron"].append(neuron)
            rows["is_labeled_neuron"].append(bool(neuron))
            rows["slot"].append(index.get(neuron, -1))
            rows["roi_label"].append(str(one.roi_label.values[j]))
            rows["label_status"].append(str(one.roi_status.values[j]))
            rows["time_in_seconds"].append(time[valid])
            rows["calcium_data"].append(grid[:, j])
            rows["mask"].append(np.isfinite(grid[:, j]))
            rows["original_time_in_seconds"].append(native_t)
            rows["original_calcium_data"].append(native[:, j])
            rows["median_dt"].append(dt)
            rows["original_median_dt"].append(float(one.native_median_dt.values))
            row_inputs.append(inputs)
        for k, v in meta.items():
            worms[k].append(v)
        worms["n_rois"].append(n_rois)
        worms["n_labelled"].append(int(one.observed.values.sum()))
        worms["duration_s"].append(float(one.duration_s.values))
        worms["time_in_seconds"].append(time[valid])
        for b in behaviours:
            worms[b].append(one[b].values[valid])
        worm_inputs.append(inputs)
    columns = {k: pa.array(v) for k, v in rows.items() if k not in TRACE_COLUMNS}
    columns["roi"] = pa.array(rows["roi"], type=pa.int32())
    columns["slot"] = pa.array(rows["slot"], type=pa.int32())
    columns["time_in_seconds"] = lists(rows["time_in_seconds"], np.float64)
    columns["calcium_data"] = lists(rows["calcium_data"], np.float32)
    columns["mask"] = lists(rows["mask"], np.bool_)
    columns["original_time_in_seconds"] = lists(rows["original_time_in_seconds"], np.float64)
    columns["original_calcium_data"] = lists(rows["original_calcium_data"], np.float64)
    write_config(col, "neurons", columns, inputs=row_inputs, note=(
        "one row per (worm, ROI). `neuron` is the canonical name from the 302-neuron registry, or empty for an "
        "unlabelled ROI; `slot` is its registry index (-1 if none). `calcium_data` and `time_in_seconds` hold the "
        f"trace on the uniform grid of {dt} s (float32 values, float64 times); `original_calcium_data` and "
        "`original_time_in_seconds` hold it at the native frame times as recorded (float64, seconds from the first "
        "frame); `mask` is true where the grid value is finite."))
    wcols = {k: pa.array(worms[k]) for k in ("source_dataset", "worm", "worm_id", "raw_data_file",
                                             "raw_data_sha256", "n_labelled", "duration_s")}
    wcols["n_rois"] = pa.array(worms["n_rois"], type=pa.int32())
    wcols["time_in_seconds"] = lists(worms["time_in_seconds"], np.float64)
    for b in behaviours:
        values = worms[b]
        wcols[b] = lists(values, np.float32) if values[0].ndim == 1 else nested(values, np.float32)
    write_config(col, "worms", wcols, inputs=worm_inputs,
                 note="one row per worm, with every behavioural variable on the same grid as `neurons`.")
    datasets = sorted(set(rows["source_dataset"]))
    sources = "\n".join(f"- `{f}` ({d}): sha256 `{s}`" for d, f, s in
                        dict.fromkeys(zip(worms["source_dataset"], worms["raw_data_file"], worms["raw_data_sha256"])))
    write_card(col, "activity.md", pretty="C. elegans whole-brain calcium activity (wormflow)",
               tags=["neuroscience", "c-elegans", "calcium-imaging", "whole-brain", "time-series"],
               task_categories=["time-series-forecasting"], default="neurons", repo=repo, names=datasets,
               values={"n_worms": ds.sizes["worm"], "n_datasets": len(datasets), "n_rows": len(rows["roi"]),
                       "n_labelled": int(sum(rows["is_labeled_neuron"])),
                       "homogenize_params": store_fact(ds, "homogenize_params"), "sources": sources})
    return col


def _registry_inputs() -> list[str]:
    """sha256 of the mirror files the 302-neuron registry table was built from."""
    from connectome.build_registry import SOURCES
    from pipeline.registry import registry

    by_name = {e.name: e.sha256 for e in registry()}
    return [by_name[n] for n in SOURCES if n in by_name]


def publish_connectome(store, folder: Path, repo: str) -> Collection:
    import pyarrow as pa

    from connectome.graph import consensus
    from connectome.store import open_connectome
    from wormflow.core.neurons import neuron_table

    ds = open_connectome(store).load()
    col = Collection("connectome", folder)
    names = strs(ds.source.values)
    shas = strs(ds.source_sha256.values)
    sha_of = dict(zip(names, shas))
    src = strs(ds.edge_source.values)
    write_config(col, "edges", {
        "source": pa.array(src), "pre": pa.array(strs(ds.edge_pre.values)),
        "post": pa.array(strs(ds.edge_post.values)),
        "pre_neuron": pa.array(strs(ds.edge_pre_neuron.values)),
        "post_neuron": pa.array(strs(ds.edge_post_neuron.values)),
        "kind": pa.array(strs(ds.edge_kind.values)), "weight": pa.array(ds.edge_weight.values.astype(np.float64)),
        "detail": pa.array(strs(ds.edge_detail.values))}, inputs=[[sha_of[s]] for s in src], note=(
        "every edge of every source with its raw cell names (`pre`, `post`), their registry names (`pre_neuron`, "
        "`post_neuron`, empty for non-neuronal cells), the layer (`kind`), the `weight` and what the source says "
        "about it (`detail`)."))
    cons = {k: [] for k in ("kind", "pre", "post", "mean", "std", "n_sources", "n_covering", "fraction")}
    used: list[str] = []
    for kind in ("chemical", "electrical"):
        c = consensus(ds, kind=kind)
        i, j = np.nonzero(c["n_sources"].values > 0)
        cons["kind"] += [kind] * len(i)
        cons["pre"] += strs(c.pre.values[i])
        cons["post"] += strs(c.post.values[j])
        for k in ("mean", "std", "fraction"):
            cons[k].append(c[k].values[i, j].astype(np.float64))
        for k in ("n_sources", "n_covering"):
            cons[k].append(c[k].values[i, j].astype(np.int32))
        used += [sha_of[str(s)] for s in c.attrs["sources"]]
    write_config(col, "consensus", {
        "kind": pa.array(cons["kind"]), "pre": pa.array(cons["pre"]), "post": pa.array(cons["post"]),
        **{k: pa.array(np.concatenate(cons[k])) for k in ("mean", "std", "n_sources", "n_covering", "fraction")}},
        inputs=list(dict.fromkeys(used)), note=(
            "per layer (chemical, electrical) and neuron pair with an edge in at least one source: the mean and "
            "standard deviation of the weight over the sources covering the pair, how many sources saw an edge, "
            "how many covered the pair, and that fraction."))
    table = neuron_table().reset_index()
    write_config(col, "neurons", {c: pa.array(table[c].to_numpy(dtype=np.float64 if table[c].dtype.kind == "f"
                                                                 else object)) for c in table.columns},
                 inputs=_registry_inputs(), note="the 302-neuron registry (class, type, side, transmitter, position).")
    files = [Path(f).name for f in strs(ds.source_file.values)]
    write_config(col, "sources", {"source": pa.array(names), "file": pa.array(files), "sha256": pa.array(shas),
                                  "format": pa.array(strs(ds["format"].values)),
                                  "weight": pa.array(strs(ds["weight"].values)) if "weight" in ds
                                  else pa.array([""] * len(names))},
                 inputs=[[s] for s in shas], own=True,
                 note="one row per source: file, sha256, format, what its weights mean (wormflow's description).")
    sources = "\n".join(f"- `{n}`: `{f}`, sha256 `{s}`" for n, f, s in zip(names, files, shas))
    write_card(col, "connectome.md", pretty="C. elegans connectomes and signalling layers (wormflow)",
               tags=["neuroscience", "c-elegans", "connectome", "graph"], task_categories=["graph-ml"],
               default="edges", repo=repo, names=names,
               values={"n_sources": len(names), "n_edges": len(src), "sources": sources})
    return col
