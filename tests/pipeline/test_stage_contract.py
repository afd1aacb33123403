"""The stage contract: parameters declared once give the CLI options, the configuration
schema and the output attributes; adding one is one line."""

from __future__ import annotations

import json
from dataclasses import dataclass

import click
import pytest
from click.testing import CliRunner

from pipeline import stages
from pipeline.config import ConfigError, parse
from pipeline.stages import Stage, click_options, param, stage_attrs


@dataclass(frozen=True)
class Toy:
    window_s: float = param(30.0, "Trial windows, seconds.", exclusive_minimum=0, unit="of seconds")
    method: str = param("fast", "How to run.", choices=("fast", "exact"))


@dataclass(frozen=True)
class ToyPlusOne(Toy):
    smoothing_bins: int = param(3, "Smoothing of the toy output, bins.", minimum=1)      # the one added line


def _command(params_cls):
    @click.command()
    @click_options(params_cls)
    def toy(**values):
        out = params_cls(**values)
        click.echo(json.dumps(stage_attrs("toy", out)))
    return toy


def _registry(params_cls):
    return {**stages.STAGES, "toy": Stage("toy", params_cls, "a toy analysis")}


def test_a_parameter_added_in_one_line_is_in_help_config_and_attrs():
    before, after = _command(Toy), _command(ToyPlusOne)
    assert "--smoothing-bins" not in CliRunner().invoke(before, ["--help"]).output
    help_ = CliRunner().invoke(after, ["--help"]).output
    assert "--smoothing-bins" in help_ and "Smoothing of the toy output, bins." in help_ and "default: 3" in help_
    config = parse({"stages": {"toy": {"smoothing_bins": 5}}}, origin="t.toml", stages=_registry(ToyPlusOne))
    assert config.stages["toy"] == {"window_s": 30.0, "method": "fast", "smoothing_bins": 5}
    with pytest.raises(ConfigError, match=r"t.toml: stages.toy.smoothing_bins: must be an integer >= 1, got 0"):
        parse({"stages": {"toy": {"smoothing_bins": 0}}}, origin="t.toml", stages=_registry(ToyPlusOne))
    with pytest.raises(ConfigError, match=r"stages.toy.smoothing_bins: unknown key"):
        parse({"stages": {"toy": {"smoothing_bins": 5}}}, origin="t.toml", stages=_registry(Toy))
    ran = CliRunner().invoke(after, ["--smoothing-bins", "7", "--method", "exact"])
    attrs = json.loads(ran.output)
    assert attrs["wormflow_stage"] == "toy"
    assert json.loads(attrs["stage_params"]) == {"window_s": 30.0, "method": "exact", "smoothing_bins": 7}


def test_the_real_stages_declare_what_the_cli_and_config_use():
    from pipeline.cli import main

    help_ = CliRunner().invoke(main, ["analyze", "tsnet", "--help"]).output
    for option in ("--construction", "--variable", "--max-gap"):
        assert option in help_
    config = parse({}, origin="default")
    assert config.stages["tsnet"] == {"constructions": ["horizontal", "natural"], "variable": "calcium", "max_gap": 0}
    assert list(config.stages) == [n for n, s in stages.STAGES.items() if s.enabled]
    with pytest.raises(ConfigError, match=r"stages.hmmglm.n_states: must be an integer 1..20, got 0"):
        parse({"stages": {"hmmglm": {"n_states": 0}}}, origin="default")
