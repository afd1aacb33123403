"""The layering rules, read from every module's imports (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("wormflow", "activity", "connectome", "analysis", "pipeline")


def _imports(path: Path) -> set[str]:
    """Top-level package names of the wormflow packages a module imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "wormflow" and parts[1:2] == ["core"]:
                found.add("wormflow.core")
            elif parts[0] in PACKAGES:
                found.add(parts[0])
    return found


def _modules(package: str) -> dict[Path, set[str]]:
    return {p: _imports(p) for p in (ROOT / package.replace(".", "/")).rglob("*.py")}


def _offenders(package: str, forbidden: set[str]) -> list[str]:
    return [f"{p.relative_to(ROOT)} imports {sorted(i & forbidden)}"
            for p, i in _modules(package).items() if i & forbidden]


def test_the_foundation_imports_no_wormflow_package():
    assert _offenders("wormflow.core", {"activity", "connectome", "analysis", "pipeline", "wormflow"}) == []


def test_analysis_imports_no_other_wormflow_package():
    assert _offenders("analysis", {"activity", "connectome", "pipeline", "wormflow", "wormflow.core"}) == []


def test_connectome_never_imports_activity_and_nothing_below_pipeline_imports_it():
    assert _offenders("connectome", {"activity", "pipeline"}) == []
    for package in ("activity", "analysis", "wormflow.core"):
        assert _offenders(package, {"pipeline"}) == [], package


def test_the_rules_see_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from pipeline.run import run_pipeline\n    import activity.store\n")
    assert _imports(module) == {"pipeline", "activity"}


def test_one_import_gives_the_public_face():
    import wormflow

    assert wormflow.open_activity.__module__ == "activity.store"
    assert len(wormflow.neuron_names()) == 302 and "AVAL" in wormflow.neuron_names()
    assert issubclass(wormflow.FormatError, wormflow.WormflowError)
