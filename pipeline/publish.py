"""`wormflow publish`: activity, connectome and analysis results as HuggingFace dataset folders.

Each collection becomes a folder in the Hub layout: Parquet shards under ``data/<config>/``
and a ``README.md`` dataset card, filled from ``data_cards/<collection>.md`` with counts,
sources, per-file sha256, licences and citations. Parquet files are written with pyarrow
from arrays in a fixed order and with fixed settings, so publishing twice gives the same
bytes. With ``repo_id``, each folder is uploaded with ``huggingface_hub``.
"""

from __future__ import annotations

import json
from importlib import resources
import os
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import numpy as np

from activity.store import store_fact
from wormflow.core.provenance import wormflow_version
from wormflow.core.atomic import recover, replacing, swap_in
from wormflow.core.repository import store_kind
from wormflow.core.errors import WormflowError

CARDS = resources.files("data_cards")          # the card templates and citations, inside the package
ROWS_PER_SHARD = 2000


class PublishError(WormflowError):
    """Nothing to publish, or a bad target."""


@dataclass
class Collection:
    name: str
    folder: Path
    configs: dict[str, list[str]] = field(default_factory=dict)    # config -> data files (relative)
    rows: dict[str, int] = field(default_factory=dict)
    pushed_to: str = ""


# ---------------------------------------------------------------- parquet

def _write_table(columns: dict, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns)
    with replacing(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=3, use_dictionary=True,
                       write_statistics=True, row_group_size=ROWS_PER_SHARD)


def _write_config(col: Collection, config: str, columns: dict, shard_by: list[str] | None = None) -> None:
    """Columns (pyarrow arrays of equal length) as shards data/<config>/<group>-NNNNN.parquet."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(next(iter(columns.values())))
    groups = sorted(set(shard_by)) if shard_by is not None else ["all"]
    files = []
    for g in groups:
        idx = np.arange(n) if shard_by is None else np.flatnonzero(np.asarray(shard_by) == g)
        for k, start in enumerate(range(0, max(len(idx), 1), ROWS_PER_SHARD)):
            take = pa.array(idx[start: start + ROWS_PER_SHARD], type=pa.int64())
            part = {name: pc.take(arr, take) for name, arr in columns.items()}
            rel = f"data/{config}/{_safe(g)}-{k:05d}.parquet"
            _write_table(part, col.folder / rel)
            files.append(rel)
    col.configs[config] = files
    col.rows[config] = n


def _strs(values) -> list[str]:
    """Any numpy string array (StringDType, object, fixed width) as a list of str."""
    return [str(v) for v in np.asarray(values, dtype=object).ravel()]


def _safe(s: str) -> str:
    from pipeline.export import safe_component

    return safe_component(s)


def _lists(values: list[np.ndarray], dtype):
    import pyarrow as pa

    return pa.array([np.asarray(v, dtype=dtype) for v in values], type=pa.list_(pa.from_numpy_dtype(dtype)))


# ---------------------------------------------------------------- provenance, licences, citations

def _citations() -> dict:
    with (CARDS / "citations.toml").open("rb") as fh:
        return tomllib.load(fh)


def _cite(names: list[str]) -> str:
    found = []
    for key, c in _citations().items():
        if any(m in n.lower() for n in names for m in c["match"]):
            found.append(f"- {c['cite']}")
    return "\n".join(found) or "- (no citation known for these sources; see their files below)"


def _licences(shas: list[str]) -> tuple[str, list[str]]:
    """Markdown list of each input's licence as its source states it (from the registry by sha256)."""
    from pipeline.registry import registry

    by_sha = {e.sha256: e for e in registry()}
    lines, seen = [], []
    for sha in shas:
        e = by_sha.get(sha)
        text = f"{e.license} ({e.source_repo}@{e.commit[:10]})" if e else "not in wormflow's registry: see the source"
        name = e.name if e else sha[:12]
        lines.append(f"- `{name}`: {text}")
        seen.append(e.license if e else "unknown")
    return "\n".join(lines), seen


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "1M<n<10M"


def _write_card(col: Collection, template: str, pretty: str, tags: list[str], values: dict,
                default: str) -> None:
    import yaml

    front = {
        "license": "other",
        "license_name": "mixed: see the Licences section",
        "pretty_name": pretty,
        "size_categories": [_size_category(max(col.rows.values(), default=0))],
        "tags": tags,
        "configs": [{"config_name": c, "data_files": [{"split": "train", "path": files}],
                     **({"default": True} if c == default else {})} for c, files in col.configs.items()],
    }
    text = Template((CARDS / template).read_text(encoding="utf-8")).substitute(
        front_matter=yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), pretty_name=pretty,
        version=wormflow_version(), **values)
    (col.folder / "README.md").write_text(text, encoding="utf-8")


# ---------------------------------------------------------------- collections

def publish_activity(store: Path, folder: Path, repo: str) -> Collection:
    import pyarrow as pa

    from activity.store import open_activity
    from wormflow.core.neurons import neuron_index

    ds = open_activity(store).load()
    col = Collection("activity", folder)
    index = neuron_index()
    dt = float(ds.attrs["dt"])
    rows = {k: [] for k in ("source_dataset", "worm", "worm_id", "raw_data_file", "raw_data_sha256", "roi", "neuron",
                            "is_labeled_neuron", "slot", "roi_label", "label_status", "time_in_seconds",
                            "calcium_data", "mask", "original_time_in_seconds", "original_calcium_data",
                            "median_dt", "original_median_dt")}
    behaviours = sorted(v for v in ds.data_vars if v.startswith("behavior_"))
    worms = {k: [] for k in ("source_dataset", "worm", "worm_id", "raw_data_file", "raw_data_sha256", "n_rois",
                             "n_labelled", "duration_s", "time_in_seconds", *behaviours)}
    time = ds.time.values
    for w in range(ds.sizes["worm"]):
        one = ds.isel(worm=w)
        valid = one.valid.values.astype(bool)
        n_frames, n_rois = int(one.n_frames), int(one.n_rois)
        meta = {"source_dataset": str(one.dataset.values), "worm": str(one.worm.values),
                "worm_id": str(one.worm_id.values), "raw_data_file": Path(str(one.source_file.values)).name,
                "raw_data_sha256": str(one.source_sha256.values)}
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
        for k, v in meta.items():
            worms[k].append(v)
        worms["n_rois"].append(n_rois)
        worms["n_labelled"].append(int(one.observed.values.sum()))
        worms["duration_s"].append(float(one.duration_s.values))
        worms["time_in_seconds"].append(time[valid])
        for b in behaviours:
            worms[b].append(one[b].values[valid])
    columns = {k: pa.array(v) for k, v in rows.items()
               if k not in ("time_in_seconds", "calcium_data", "mask", "original_time_in_seconds",
                            "original_calcium_data")}
    columns["roi"] = pa.array(rows["roi"], type=pa.int32())
    columns["slot"] = pa.array(rows["slot"], type=pa.int32())
    columns["time_in_seconds"] = _lists(rows["time_in_seconds"], np.float64)
    columns["calcium_data"] = _lists(rows["calcium_data"], np.float32)
    columns["mask"] = _lists(rows["mask"], np.bool_)
    columns["original_time_in_seconds"] = _lists(rows["original_time_in_seconds"], np.float64)
    columns["original_calcium_data"] = _lists(rows["original_calcium_data"], np.float64)
    _write_config(col, "neurons", columns, shard_by=rows["source_dataset"])
    wcols = {k: pa.array(worms[k]) for k in ("source_dataset", "worm", "worm_id", "raw_data_file",
                                             "raw_data_sha256", "n_labelled", "duration_s")}
    wcols["n_rois"] = pa.array(worms["n_rois"], type=pa.int32())
    wcols["time_in_seconds"] = _lists(worms["time_in_seconds"], np.float64)
    for b in behaviours:
        values = worms[b]
        if values[0].ndim == 1:
            wcols[b] = _lists(values, np.float32)
        else:   # (time, k) -> list of per-time lists
            wcols[b] = pa.array([np.asarray(v, dtype=np.float32).tolist() for v in values],
                                type=pa.list_(pa.list_(pa.float32())))
    _write_config(col, "worms", wcols)
    datasets = sorted(set(rows["source_dataset"]))
    shas = list(dict.fromkeys(worms["raw_data_sha256"]))
    prov = store_fact(ds, "provenance")
    prov = json.loads(prov) if isinstance(prov, str) else prov
    extra = [i["sha256"] for i in prov.get("last_ingest", {}).get("inputs", []) if i.get("sha256")]
    licences, _ = _licences(list(dict.fromkeys(shas + extra)))
    sources = "\n".join(f"- `{f}` ({d}): sha256 `{s}`" for d, f, s in
                        dict.fromkeys(zip(worms["source_dataset"], worms["raw_data_file"], worms["raw_data_sha256"])))
    _write_card(col, "activity.md", "C. elegans whole-brain calcium activity (wormflow)",
                ["neuroscience", "c-elegans", "calcium-imaging", "whole-brain", "time-series"],
                {"n_worms": ds.sizes["worm"], "n_datasets": len(datasets), "n_rows": len(rows["roi"]),
                 "n_labelled": int(sum(rows["is_labeled_neuron"])), "dt": dt,
                 "homogenize_params": store_fact(ds, "homogenize_params"), "repo": repo,
                 "sources": sources, "licences": licences, "citations": _cite(datasets)}, "neurons")
    return col


def publish_connectome(store: Path, folder: Path, repo: str) -> Collection:
    import pyarrow as pa

    from connectome.graph import consensus
    from wormflow.core.neurons import neuron_table
    from connectome.store import open_connectome

    ds = open_connectome(store).load()
    col = Collection("connectome", folder)
    src = _strs(ds.edge_source.values)
    _write_config(col, "edges", {
        "source": pa.array(src), "pre": pa.array(_strs(ds.edge_pre.values)),
        "post": pa.array(_strs(ds.edge_post.values)),
        "pre_neuron": pa.array(_strs(ds.edge_pre_neuron.values)),
        "post_neuron": pa.array(_strs(ds.edge_post_neuron.values)),
        "kind": pa.array(_strs(ds.edge_kind.values)), "weight": pa.array(ds.edge_weight.values.astype(np.float64)),
        "detail": pa.array(_strs(ds.edge_detail.values))}, shard_by=src)
    cons = {k: [] for k in ("kind", "pre", "post", "mean", "std", "n_sources", "n_covering", "fraction")}
    for kind in ("chemical", "electrical"):
        c = consensus(ds, kind=kind)
        i, j = np.nonzero(c["n_sources"].values > 0)
        cons["kind"] += [kind] * len(i)
        cons["pre"] += _strs(c.pre.values[i])
        cons["post"] += _strs(c.post.values[j])
        for k in ("mean", "std", "fraction"):
            cons[k].append(c[k].values[i, j].astype(np.float64))
        for k in ("n_sources", "n_covering"):
            cons[k].append(c[k].values[i, j].astype(np.int32))
    _write_config(col, "consensus", {
        "kind": pa.array(cons["kind"]), "pre": pa.array(cons["pre"]), "post": pa.array(cons["post"]),
        **{k: pa.array(np.concatenate(cons[k])) for k in ("mean", "std", "n_sources", "n_covering", "fraction")}})
    table = neuron_table().reset_index()
    _write_config(col, "neurons", {c: pa.array(table[c].to_numpy(dtype=np.float64 if table[c].dtype.kind == "f"
                                                                  else object)) for c in table.columns})
    names = _strs(ds.source.values)
    shas = _strs(ds.source_sha256.values)
    files = [Path(f).name for f in _strs(ds.source_file.values)]
    _write_config(col, "sources", {"source": pa.array(names), "file": pa.array(files), "sha256": pa.array(shas),
                                   "format": pa.array(_strs(ds["format"].values)),
                                   "weight": pa.array(_strs(ds["weight"].values)) if "weight" in ds
                                   else pa.array([""] * len(names))})
    licences, _ = _licences(list(dict.fromkeys(shas)))
    sources = "\n".join(f"- `{n}`: `{f}`, sha256 `{s}`" for n, f, s in zip(names, files, shas))
    _write_card(col, "connectome.md", "C. elegans connectomes and signalling layers (wormflow)",
                ["neuroscience", "c-elegans", "connectome", "graph"],
                {"n_sources": len(names), "n_edges": col.rows["edges"], "sources": sources, "licences": licences,
                 "citations": _cite(names)}, "edges")
    return col


def publish_analysis(result_path: Path, folder: Path, repo: str) -> Collection:
    import pyarrow as pa

    from analysis.tsnet import CONSTRUCTIONS
    from pipeline.storage import open_result

    res = open_result(result_path).load()
    col = Collection("analysis", folder)
    unit = next(d for d in res["n_samples"].dims if d != "worm")
    metrics = [str(m) for m in res.metric.values]
    out = {k: [] for k in ("construction", "source_dataset", "worm", unit, "n_samples", *metrics, "degree_counts")}
    for c in [c for c in CONSTRUCTIONS if c in res.data_vars]:
        values, counts = res[c].transpose("worm", unit, "metric").values, res[f"{c}_degree_counts"].values
        for w in range(res.sizes["worm"]):
            for u in range(res.sizes[unit]):
                if not np.isfinite(values[w, u, 0]):
                    continue
                out["construction"].append(c)
                out["source_dataset"].append(str(res.dataset.values[w]))
                out["worm"].append(str(res.worm.values[w]))
                out[unit].append(str(res[unit].values[u]))
                out["n_samples"].append(int(res["n_samples"].values[w, u]))
                for m, v in zip(metrics, values[w, u]):
                    out[m].append(float(v))
                out["degree_counts"].append(counts[w, u])
    columns = {k: pa.array(v) for k, v in out.items() if k != "degree_counts"}
    columns["degree_counts"] = _lists(out["degree_counts"], np.float64)
    _write_config(col, "tsnet", columns)
    shas = list(dict.fromkeys(_strs(res.source_sha256.values)))
    licences, _ = _licences(shas)
    notes = (f"- `tsnet`: one row per construction and observed trace ({col.rows['tsnet']} rows): the metrics of "
             "`analysis.tsnet.graph_metrics` and the degree counts (k = 0..k_max, last bin k >= k_max). "
             f"Parameters: `{res.attrs.get('tsnet_params', '')}`; input store variable "
             f"`{res.attrs.get('variable', '')}`.")
    datasets = sorted(set(out["source_dataset"]))
    _write_card(col, "analysis.md", "C. elegans activity: time-series network metrics (wormflow)",
                ["neuroscience", "c-elegans", "time-series", "complex-networks"],
                {"n_worms": res.sizes["worm"], "config_notes": notes,
                 "sources": "\n".join(f"- sha256 `{s}`" for s in shas), "licences": licences,
                 "citations": _cite(datasets)}, "tsnet")
    return col


def find_collections(path: Path) -> list[tuple[str, Path]]:
    """(collection, store) pairs in a workdir, or the single store ``path`` is."""
    path = Path(path)
    kind = store_kind(path)
    if kind:
        return [(kind, path)]
    found = [(k, p) for k, p in (("activity", path / "activity.zarr"), ("connectome", path / "connectome.zarr"),
                                 ("analysis", path / "analysis" / "tsnet.zarr")) if store_kind(p)]
    if not found:
        raise PublishError(f"{path}: neither a wormflow store nor a workdir holding activity.zarr, connectome.zarr "
                           "or analysis/tsnet.zarr")
    return found


MANIFEST = ".wormflow-publish.json"      # the files a publish wrote: the only ones a later one replaces


def _fresh_staging(folder: Path) -> Path:
    """An empty staging folder beside ``folder``; staging folders of killed publishes go."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover(folder)
    for stale in folder.parent.glob(f".{folder.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = folder.with_name(f".{folder.name}.staging-{os.getpid()}")
    staging.mkdir()
    return staging


def _written(folder: Path) -> set[str]:
    """Relative paths a publish wrote into ``folder`` before (its manifest), or none."""
    try:
        return set(json.loads((folder / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _swap_published(col: "Collection", staging: Path, folder: Path) -> None:
    """Replace ``folder`` by ``staging`` in one directory exchange. Files in ``folder`` that no
    publish wrote (a user's notes, their own data) are carried over first, so only what an
    earlier publish wrote is replaced; a kill at any point leaves the old folder or the new."""
    ours = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    (staging / MANIFEST).write_text(json.dumps({"wormflow_version": wormflow_version(), "files": ours}, indent=1))
    if folder.exists():
        before = _written(folder)
        for p in folder.rglob("*"):
            rel = str(p.relative_to(folder))
            if p.is_file() and rel != MANIFEST and rel not in before and not (staging / rel).exists():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(p, target)
                except OSError:
                    shutil.copy2(p, target)
    swap_in(staging, folder)


def publish(path: str | Path, to: str | Path, *, repo_id: str | None = None, private: bool = False,
            api=None) -> list[Collection]:
    """Build one Hub dataset folder per collection under ``to``; with ``repo_id`` push each one
    (ORG/NAME for a single store, ORG/NAME-<collection> for a workdir)."""
    to = Path(to)
    found = find_collections(Path(path))
    builders = {"activity": publish_activity, "connectome": publish_connectome, "analysis": publish_analysis}
    out = []
    for kind, store in found:
        repo = repo_id if (repo_id and len(found) == 1) else (f"{repo_id}-{kind}" if repo_id else f"<user>/{kind}")
        folder = to / kind
        staging = _fresh_staging(folder)
        try:
            col = builders[kind](store, staging, repo)
            _swap_published(col, staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        col.folder = folder
        col.pushed_to = repo if repo_id else ""
        out.append(col)
    if repo_id:
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi()       # token from HF_TOKEN or the user's login; never printed
        for col in out:
            api.create_repo(repo_id=col.pushed_to, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(folder_path=str(col.folder), repo_id=col.pushed_to, repo_type="dataset",
                              ignore_patterns=[MANIFEST],
                              commit_message=f"wormflow {wormflow_version()} publish")
    return out
