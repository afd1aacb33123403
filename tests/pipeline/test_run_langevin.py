"""LangevinFlow as a `wormflow run` stage: off by default, on when the configuration says so."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.config import parse
from tests.pipeline.test_run import FLAVELL, run_cli


def test_langevin_is_off_by_default():
    assert "langevin" not in parse({}, origin="default").stages
    assert parse({"stages": {"langevin": {"enabled": True}}}, origin="c").stages["langevin"]["epochs"] == 150


def test_an_enabled_langevin_stage_runs_and_its_figures_reach_the_report(tmp_path, mirror):
    data = tmp_path / "data" / "Dag2023"
    data.mkdir(parents=True)
    for name in FLAVELL:
        shutil.copyfile(mirror / name, data / Path(name).name)
    shutil.copyfile(mirror / "activity/Dag2023/NeuroPAL_labels_dict.jld2", data / "NeuroPAL_labels_dict.jld2")
    cfg = tmp_path / "l.toml"
    cfg.write_text(f'[[sources]]\nkind = "activity"\npath = "{data}"\n'
                   "[stages.langevin]\nenabled = true\nepochs = 2\nmax_neurons = 20\nhidden = 16\n"
                   + "".join(f"[stages.{s}]\nenabled = false\n" for s in
                             ("ingest_connectome", "export_nwb", "tsnet", "hmmglm", "ntf", "publish")))
    result = run_cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--workers", "2", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "langevin" in result.stdout and "held-out R²" in " ".join(result.stdout.split())
    assert (tmp_path / "w" / "analysis" / "langevin.zarr").exists()
    html = (tmp_path / "w" / "report" / "index.html").read_text()
    assert "langevin_latents.png" in html and "langevin_heldout.png" in html
