"""The connectome store: every source on the registry's neuron axis, in one Zarr v3 group.

Dims: ``source``, ``pre``, ``post`` (both the 302 registry names in registry order) and
``edge`` (the long-form table). One variable per layer kind (``chemical``,
``electrical``, ``monoamine``, ``neuropeptide``, ``sign``, ``funatlas_*``) with dims
(source, pre, post): the source's own values, NaN where the source did not cover a
neuron or does not have that layer. ``covered`` (source, pre) says which neurons each
source reconstructed. Per-source coords: file, sha256, format, what its values mean.
The ``edge_*`` variables keep every edge with its raw names, partners that are not
neurons included. The store is small (tens of MB); each ingest rewrites it whole as one commit of its
Icechunk repository (:mod:`wormflow.core.repository`); sources not named in an ingest
are kept.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from wormflow.core import repository
from connectome.build import BuiltSource
from wormflow.core.errors import StoreError
from wormflow.core.neurons import neuron_names, neuron_table
from connectome.raw import KINDS, RawConnectome

STORE_FORMAT = "wormflow-connectome/1"
EDGE_FIELDS = ("pre", "post", "pre_neuron", "post_neuron", "kind", "weight", "detail")


def open_connectome(path: str | Path, version: str | None = None) -> xr.Dataset:
    """Open a connectome store (a path or URL) lazily, at its latest commit or ``version``."""
    session = repository.readonly_session(repository.open_repository(path), version)
    try:
        attrs = dict(zarr.open_group(store=session.store, mode="r", zarr_format=3).attrs)
    except Exception as exc:  # an empty repository has no root group
        raise StoreError(f"{path}: not a connectome store ({exc})") from exc
    if attrs.get("wormflow_store") != STORE_FORMAT:
        raise StoreError(f"{path}: not a wormflow connectome store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = xr.open_zarr(session.store, consolidated=False, chunks={}, zarr_format=3)
    return repository.object_strings(ds)


def _source_dataset(built: BuiltSource, raw: RawConnectome, sha256: dict[str, str]) -> xr.Dataset:
    names = list(neuron_names())
    n = len(names)
    data = {kind: (("pre", "post"), built.layers.get(kind, np.full((n, n), np.nan, np.float32)))
            for kind in KINDS}
    ds = xr.Dataset(data, coords={"pre": names, "post": names})
    ds["covered"] = ("pre", built.covered)
    ds = ds.expand_dims(source=[raw.source])
    per_source = {
        "source_file": str(Path(raw.source_file).resolve()), "source_sha256": sha256.get(raw.source_file, ""),
        "format": raw.format, "weight": json.dumps(raw.weight), "extra_sources": json.dumps(
            {p: sha256.get(p, "") for p in raw.extra_sources}),
        "unknown_names": json.dumps(built.unknown), "non_neuronal_names": json.dumps(built.non_neuronal),
        "metadata": json.dumps(raw.metadata, default=str),
    }
    return ds.assign_coords({k: ("source", np.array([v], dtype=object)) for k, v in per_source.items()})


def _edge_dataset(edges) -> xr.Dataset:
    cols = {f"edge_{c}": ("edge", edges[c].to_numpy(dtype=float if c == "weight" else object))
            for c in ("source",) + EDGE_FIELDS}
    return xr.Dataset(cols)


def write_connectome(path: str | Path, items: list[tuple[RawConnectome, BuiltSource]], sha256: dict[str, str],
                     provenance: dict | None = None, version: str = "") -> xr.Dataset:
    """Write (or update) the store with ``items`` in one commit; returns the dataset as
    written. The writer holds the store's lock (local folders) from reading the sources it
    keeps to the commit, so two ingests never lose each other's sources."""
    with repository.writer_lock(path):
        return _write_connectome(path, items, sha256, provenance, version)


def _write_connectome(path, items, sha256, provenance, version) -> xr.Dataset:
    parts = [_source_dataset(b, r, sha256) for r, b in items]
    edges = [b.edges.assign(source=r.source) for r, b in items]
    new_sources = {r.source for r, _ in items}
    old_prov: dict = {}
    if repository.exists(path):
        old = open_connectome(path).load()
        keep = [s for s in old["source"].values.tolist() if s not in new_sources]
        if keep:
            parts.append(old[[v for v in old.data_vars if not v.startswith("edge_")]].sel(source=keep))
            e = old[[v for v in old.data_vars if v.startswith("edge_")]].to_dataframe()
            e.columns = [c[len("edge_"):] for c in e.columns]
            edges.append(e[e["source"].isin(keep)])
        old_prov = json.loads(old.attrs.get("provenance", "{}"))
    ds = xr.concat(parts, dim="source", coords="different", compat="equals", join="outer") if len(parts) > 1 else parts[0]
    ds = ds.sortby("source")
    edge_table = pd.concat(edges, ignore_index=True)
    edge_table["weight"] = edge_table["weight"].astype(float)
    edge_table = edge_table.sort_values(["source", "kind", "pre", "post", "detail"], kind="stable").reset_index(drop=True)
    ds = xr.merge([ds, _edge_dataset(edge_table)])
    table = neuron_table()
    for side in ("pre", "post"):
        ds = ds.assign_coords({f"{side}_class": (side, table["neuron_class"].to_numpy(dtype=object)),
                               f"{side}_cell_type": (side, table["cell_type"].to_numpy(dtype=object))})
    for v in ds.variables:
        if ds[v].dtype.kind == "U":
            ds[v] = ds[v].astype(object)
    prov = {**old_prov, **(provenance or {})}
    ds.attrs = {"wormflow_store": STORE_FORMAT, "wormflow_version": version, "kinds": json.dumps(KINDS),
                "provenance": json.dumps(prov, sort_keys=True),
                "layout": "layer[source, pre, post] = value of pre -> post; NaN = not covered"}
    repo = repository.open_repository(path, create=True)
    session = repo.writable_session(repository.BRANCH)
    encoding = {k: {"chunks": (1, ds.sizes["pre"], ds.sizes["post"])} for k in KINDS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(session.store, mode="w", consolidated=False, zarr_format=3, encoding=encoding)
    repository.commit(session, f"connectome: {', '.join(sorted(new_sources))} (wormflow {version})",
                      {"sources": sorted(new_sources), "inputs": [{"file": f, "sha256": h} for f, h in sha256.items()],
                       "wormflow_version": version}, path)
    return ds
