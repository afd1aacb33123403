"""The bench's anchor machinery: a reference that is not set up is said so (no ratio), and
ratios are per alternating pair, summarized as min-median-max."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture()
def anchors(monkeypatch, tmp_path):
    monkeypatch.setenv("WORMFLOW_ANCHORS", str(tmp_path / "anchors"))
    spec = importlib.util.spec_from_file_location("bench_anchors", BENCH / "anchors.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_anchors", module)      # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_reference_not_set_up_is_unavailable_with_the_reason(anchors):
    for name in anchors.ANCHORS:
        assert anchors.status(name).startswith("not set up")
        with pytest.raises(anchors.Unavailable, match="not set up"):
            anchors.run(name)


def test_ratios_are_per_pair_and_the_table_comes_from_saved_results(anchors, tmp_path, monkeypatch):
    line = anchors.ratio_line("x", [1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert "ours/theirs 0.500-1.000-1.500 (n=3)" in line
    results = anchors.Results("demo")
    results.ratio("time", [1.0, 3.0], [4.0, 4.0], against="ref", goal="<= 1")
    monkeypatch.setattr(anchors, "__file__", str(tmp_path / "anchors.py"))
    saved = json.loads(results.save().read_text())
    assert saved["rows"][0]["ratio"] == [0.25, 0.5, 0.75] and saved["when"] and saved["command"]
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- bench table: begin -->\nold\n<!-- bench table: end -->\nb\n")
    anchors.update_readme(readme)
    text = readme.read_text()
    assert "| demo | time | ref | 2 s | 4 s | 0.250-0.500-0.750 (2) | <= 1 |" in text and "old" not in text
