"""The README says what the program does: its CLI synopsis matches every command's --help."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import click

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _synopsis() -> dict[tuple[str, ...], set[str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands: dict[tuple[str, ...], set[str]] = {}
    current = None
    for line in block.splitlines():
        line = line.split("#", 1)[0]
        if line.startswith("wormflow "):
            words = line.split()[1:]
            path = tuple(w for w in words[:2] if re.fullmatch(r"[a-z][a-z-]*", w) and w.upper() != w)
            group = main.get_command(click.Context(main), path[0])
            path = path[:2] if isinstance(group, click.Group) else path[:1]
            current = commands.setdefault(path, set())
        if current is not None:
            current.update(re.findall(r"(--[a-z][a-z0-9-]*|-v)\b", line))
    return commands


def _options(path: tuple[str, ...]) -> set[str]:
    command = main
    for name in path:
        command = command.get_command(click.Context(command), name)
    names = set()
    for p in command.params:
        if isinstance(p, click.Option):
            names.update(o for o in p.opts + p.secondary_opts if o.startswith("--") or o == "-v")
    return names - {"--help", "--verbose"}


def test_the_readme_synopsis_lists_every_command_with_exactly_its_options():
    documented = _synopsis()
    every = {("ingest", c) for c in main.get_command(click.Context(main), "ingest").commands}
    every |= {("analyze", c) for c in main.get_command(click.Context(main), "analyze").commands}
    every |= {(c,) for c, cmd in main.commands.items() if not isinstance(cmd, click.Group)}
    assert set(documented) == every
    for path, options in documented.items():
        assert options - {"-v"} == _options(path) - {"-v"}, path


def test_a_built_wheel_carries_the_card_templates_and_data_and_the_build_warns_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("wormflow-*.whl"))).namelist()
    for needed in ("data_cards/citations.toml", "data_cards/activity.md", "wormflow/core/data/neurons.csv",
                   "pipeline/data/registry.csv", "analysis/hmmglm/__init__.py", "pipeline/publish/cards.py"):
        assert needed in names


def test_fetch_list_into_a_pipe_keeps_whole_names(tmp_path):
    from click.testing import CliRunner

    out = CliRunner().invoke(main, ["fetch", "--list", "activity/Scholz2018"]).output
    lines = out.strip().splitlines()
    assert lines[0] == "name\tbytes\tlicence\tsource"
    assert lines[1].split("\t")[0] == "activity/Scholz2018/ScholzEtAl2018.AML175_moving.BrainScanner20180223_141721.nwb"
