"""The run report: WORKDIR/report/index.html, self-contained (figures copied beside it)."""

from __future__ import annotations

import html
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from activity.store import store_fact
from pipeline.figures import caption_path
from wormflow.core.provenance import wormflow_version


def _table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def coverage_heatmap(store: Path, path: Path) -> Path | None:
    """Neurons observed in at least one worm (rows) by worm (columns)."""
    from activity.store import open_activity
    from pipeline.figures import _pyplot, _save, plain

    ds = open_activity(store)
    observed = ds["observed"].values.astype(float)
    keep = observed.any(axis=0)
    if not keep.any():
        return None
    plt = _pyplot()
    names = np.asarray(ds.neuron.values)[keep]
    fig, ax = plt.subplots(figsize=(max(5.0, 2.5 + 0.45 * observed.shape[0]), 2 + 0.12 * keep.sum()))
    ax.imshow(observed[:, keep].T, aspect="auto", interpolation="nearest", cmap="Greens", vmin=0, vmax=1)
    ax.set_xticks(range(observed.shape[0]), [plain(w) for w in ds.worm.values], rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(keep.sum()), names.tolist(), fontsize=5)
    ax.set_title(f"labelled neurons per worm ({int(keep.sum())} neurons seen)")
    per_worm = observed.sum(axis=1)
    labelled = per_worm[per_worm > 0]
    caption = (f"Neuron-by-worm coverage: green where a labelled ROI recorded the neuron; one row per neuron seen in "
               f"at least one worm ({int(keep.sum())} of 302, in {observed.shape[0]} worms). "
               + (f"{labelled.size} worms have labels, median {np.median(labelled):.0f} labelled neurons each; "
                  if labelled.size else "")
               + f"{int(observed[per_worm > 0].all(axis=0).sum())} neurons are seen in every labelled worm.")
    return _save(plt, fig, path, caption)


def write_report(root: Path, config, result) -> Path:
    root = Path(root)
    out = root / "report"
    figs = out / "figures"
    shutil.rmtree(figs, ignore_errors=True)
    figs.mkdir(parents=True, exist_ok=True)
    sections = []
    from pipeline.stages import STAGES

    stage_rows = [(s.name, STAGES[s.name].description if s.name in STAGES else "", s.status, f"{s.seconds:.1f}",
                   s.detail) for s in result.stages]
    sections.append("<h2>Stages</h2>" + _table(("stage", "what it does", "status", "seconds", "detail"), stage_rows))
    if result.failures:
        sections.append("<h2>Failures</h2>" + _table(("stage", "file", "error"),
                                                     [(f["stage"], f["file"], f["error"]) for f in result.failures]))
    else:
        sections.append("<h2>Failures</h2><p>none</p>")
    store = root / "activity.zarr"
    inputs = []
    if store.exists():
        from activity.store import open_activity
        from pipeline.summary import activity_summary

        s = activity_summary(store)
        rows = [(r["dataset"], r["worms"], f"{r['minutes']:.1f}", f"{r['labelled_median']:.0f}",
                 f"{r['neurons_seen']}/302", r["unlabelled_rois"]) for r in s["datasets"]]
        sections.append(f"<h2>Activity</h2><p>{s['n_worms']} worms, grid step {s['dt']} s.</p>" + _table(
            ("dataset", "worms", "minutes", "labelled neurons per worm (median)", "neurons seen", "unlabelled ROIs"),
            rows))
        cov = coverage_heatmap(store, figs / "coverage.png")
        if cov:
            caption = caption_path(cov).read_text(encoding="utf-8")
            sections.append('<figure><div class="scroll"><img src="figures/coverage.png" alt="neuron coverage">'
                            f"</div><figcaption>{html.escape(caption)}</figcaption></figure>")
        ds = open_activity(store)
        prov = json.loads(json.dumps(store_fact(ds, "provenance"), default=str))
        inputs += [("activity", i["file"], i["sha256"]) for i in prov.get("last_ingest", {}).get("inputs", [])]
    cstore = root / "connectome.zarr"
    if cstore.exists():
        from connectome.store import open_connectome
        from pipeline.connectome_ingest import connectome_summary

        rows = [(r["source"], r["format"], r["neurons"], r["chemical"][0], f"{r['chemical'][1]:.0f}",
                 r["electrical"][0], ", ".join(r["other_layers"])) for r in connectome_summary(cstore)]
        sections.append("<h2>Connectomes</h2>" + _table(
            ("source", "format", "neurons", "chemical edges", "chemical weight", "electrical pairs", "other layers"),
            rows))
        c = open_connectome(cstore)
        inputs += [("connectome", f, s) for f, s in zip(c["source_file"].values.tolist(),
                                                        c["source_sha256"].values.tolist())]
    nwb = sorted((root / "nwb").rglob("*.nwb")) if (root / "nwb").exists() else []
    if nwb:
        sections.append("<h2>NWB files</h2>" + _table(
            ("file", "MB"), [(str(p.relative_to(root)), f"{p.stat().st_size / 1e6:.1f}") for p in nwb]))
    pub = root / "published"
    if pub.exists():
        rows = []
        for folder in sorted(p for p in pub.iterdir() if p.is_dir()):
            files = list(folder.rglob("*.parquet"))
            configs = sorted({f.parent.name for f in files})
            rows.append((str(folder.relative_to(root)), ", ".join(configs), len(files),
                         f"{sum(f.stat().st_size for f in files) / 1e6:.1f}"))
        sections.append("<h2>Published datasets</h2>" + _table(("folder", "configs", "parquet files", "MB"), rows))
    pngs = sorted((root / "analysis" / "figures").glob("*.png")) if (root / "analysis" / "figures").exists() else []
    if pngs:
        body = []
        for p in pngs:
            shutil.copyfile(p, figs / p.name)
            cap = caption_path(p)
            text = cap.read_text(encoding="utf-8") if cap.exists() else p.stem.replace("_", " ")
            body.append(f'<figure><div class="scroll"><img src="figures/{html.escape(p.name)}" '
                        f'alt="{html.escape(p.stem)}"></div><figcaption>{html.escape(text)}</figcaption></figure>')
        sections.append("<h2>Analyses</h2>" + "".join(body))
    sections.append("<h2>Parameters</h2><pre>" + html.escape(json.dumps(json.loads(config.to_json()), indent=1))
                    + "</pre>")
    sections.append("<h2>Provenance</h2>" + _table(("kind", "file", "sha256"), inputs))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wormflow report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}
figure{{margin:1em 0}}.scroll{{overflow:auto;max-height:1400px;border:1px solid #eee}}
img{{max-width:none;max-height:none;display:block}}figcaption{{max-width:1100px;font-size:14px;margin-top:.4em}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head>
<body data-images-loaded="pending">
<h1>wormflow report</h1>
<p>wormflow {html.escape(wormflow_version())}; run finished {now}; workdir {html.escape(str(root))};
scheduler {html.escape(result.scheduler)} with {result.workers} worker(s); configuration: {html.escape(config.origin)};
log: {html.escape(str(result.log_file))}</p>
{''.join(sections)}
<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
  // figures are shown at their own size (large ones scroll), never shrunk: the smallest
  // displayed-to-natural width ratio, for the report's test
  var scale = imgs.reduce(function (m, i) {{ return Math.min(m, i.width / Math.max(i.naturalWidth, 1)); }}, 1);
  document.body.setAttribute("data-min-image-scale", scale.toFixed(2));
}});
</script>
</body></html>
"""
    path = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
