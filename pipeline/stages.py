"""The stage contract: each stage declares its parameters once, as a dataclass whose fields
carry their default, type, choices, bounds and help; from it follow the configuration
schema and its validation (:mod:`pipeline.config`), the command-line options
(:func:`click_options`) and the attributes an output records (:func:`stage_attrs`).

:data:`STAGES` is the registry the runner, the configuration, the report and publishing
read, in run order. Adding a parameter to a stage is one field here.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields

import click


def param(default, help: str, *, choices=None, minimum=None, maximum=None, exclusive_minimum=None,
          cli: str | None = "", unit: str = ""):
    """A declared parameter. ``cli``: the option's name ('' = from the field, None = not on
    the command line); ``choices`` for a list field constrain its items."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "minimum": minimum, "maximum": maximum,
            "exclusive_minimum": exclusive_minimum, "cli": cli, "unit": unit}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return field(default=default, metadata=meta)


def _kind(cls, f) -> str:
    hint = typing.get_type_hints(cls)[f.name]
    origin = typing.get_origin(hint)
    if origin is list:
        return "list"
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return {bool: "bool", int: "int", float: "float", str: "str"}[hint]


def default_of(f):
    return f.default_factory() if f.default_factory is not MISSING else f.default


def schema(cls) -> dict[str, dict]:
    """key -> {type, default, help, choices, minimum, maximum, exclusive_minimum}: the configuration schema."""
    return {f.name: {"type": _kind(cls, f), "default": default_of(f),
                     **{k: v for k, v in f.metadata.items() if k != "cli" and v not in (None, "")}}
            for f in fields(cls)}


def expected(spec: dict) -> str:
    """What a value of this parameter must be, in words (for error messages)."""
    kind, choices = spec["type"], spec.get("choices")
    if kind == "list":
        return "a non-empty list of " + ", ".join(map(repr, choices)) if choices else "a non-empty list"
    if choices:
        return "one of " + ", ".join(map(repr, choices))
    if kind == "bool":
        return "true or false"
    if kind == "str":
        return "a string"
    lo, hi, gt = spec.get("minimum"), spec.get("maximum"), spec.get("exclusive_minimum")
    noun = "an integer" if kind == "int" else "a number"
    unit = f" {spec['unit']}" if spec.get("unit") else ""
    if gt == 0 and hi is None and lo is None:
        return f"a positive number{unit}" if kind == "float" else f"a positive integer{unit}"
    if lo is not None and hi is not None:
        return f"{noun} {lo}..{hi}{unit}"
    if lo is not None:
        return f"{noun} >= {lo}{unit}"
    if gt is not None:
        return f"{noun} > {gt}{unit}"
    return noun + unit


def valid(spec: dict, value) -> bool:
    kind = spec["type"]
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str) and (not spec.get("choices") or value in spec["choices"])
    if kind == "list":
        return (isinstance(value, list) and bool(value)
                and all(not spec.get("choices") or v in spec["choices"] for v in value))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "int" and not isinstance(value, int)):
        return False
    if spec.get("choices") and value not in spec["choices"]:
        return False
    lo, hi, gt = spec.get("minimum"), spec.get("maximum"), spec.get("exclusive_minimum")
    return (lo is None or value >= lo) and (hi is None or value <= hi) and (gt is None or value > gt)


def click_options(cls, rename: dict | None = None, only=None):
    """A decorator adding one click option per declared parameter (those with a command-line
    name), with its default, type, choices and help. ``rename`` maps a field to an option."""
    rename = rename or {}

    def decorate(fn):
        for f in reversed(fields(cls)):
            if f.metadata.get("cli") is None or (only is not None and f.name not in only):
                continue
            spec = schema(cls)[f.name]
            name = rename.get(f.name) or f.metadata.get("cli") or "--" + f.name.replace("_", "-")
            kind, choices = spec["type"], spec.get("choices")
            kwargs = {"help": spec["help"], "show_default": True}
            if kind == "bool":
                fn = click.option(name, f.name, is_flag=True, default=spec["default"], help=spec["help"])(fn)
                continue
            if kind == "list":
                kwargs.update(multiple=True, default=tuple(spec["default"]),
                              type=click.Choice(choices) if choices else str)
            elif choices:
                kwargs.update(default=spec["default"], type=click.Choice(choices))
            elif kind == "int" and (spec.get("minimum") is not None or spec.get("maximum") is not None):
                kwargs.update(default=spec["default"], type=click.IntRange(spec.get("minimum"), spec.get("maximum")))
            else:
                kwargs.update(default=spec["default"], type={"int": int, "float": float, "str": str}[kind])
            fn = click.option(name, f.name, **kwargs)(fn)
        return fn
    return decorate


def stage_attrs(stage: str, params) -> dict:
    """The attributes an output of ``stage`` records about its parameters."""
    values = asdict(params) if hasattr(params, "__dataclass_fields__") else dict(params)
    return {"wormflow_stage": stage, "stage_params": json.dumps(values, sort_keys=True, default=str)}


# ---------------------------------------------------------------- the stages' parameters

@dataclass(frozen=True)
class IngestActivity:
    dt: float = param(0.5, "Grid step in seconds (a store parameter).", exclusive_minimum=0, unit="of seconds")
    smoothing: str = param("none", "Smoothing on the grid.", choices=("none", "gaussian", "exponential"))
    smoothing_s: float = param(1.0, "Smoothing width, seconds.", exclusive_minimum=0, unit="of seconds")
    normalization: str = param("none", "Normalization of each trace.", choices=("none", "zscore", "causal_zscore"))
    gap_tolerance: float = param(1.5, "Grid points farther than this many median frame intervals from every "
                                      "recorded frame are NaN and not valid (a store parameter).",
                                 minimum=0.5, unit="median frame intervals")


@dataclass(frozen=True)
class IngestConnectome:
    pass


@dataclass(frozen=True)
class ExportNWB:
    grid: bool = param(False, "Also write the ROIs on the store's homogenized grid.")
    validate: bool = param(True, "Check every file with pynwb and nwbinspector.", cli=None)
    sex: str = param("XX", "Subject sex where the source does not record it.", choices=("XX", "XO"))
    metadata: str = param("", "A TOML table of metadata per dataset (age, strain...), relative to the "
                              "configuration file.", cli=None)


@dataclass(frozen=True)
class Tsnet:
    constructions: list[str] = param(["horizontal", "natural"], "Network constructions.",
                                     choices=("natural", "horizontal", "cycle", "recurrence"), cli="--construction")
    variable: str = param("calcium", "calcium: labelled neurons on the grid; roi_calcium: every ROI, labelled "
                                     "or not.", choices=("calcium", "roi_calcium", "native_calcium"))
    max_gap: int = param(0, "NaN runs up to this many samples are bridged linearly; longer ones split the trace.",
                         minimum=0)


@dataclass(frozen=True)
class Hmmglm:
    n_states: int = param(3, "Hidden states.", minimum=1, maximum=20, cli="--states")
    prior: str = param("onehot", "How the states' couplings are tied together.",
                       choices=("onehot", "gaussian", "none"))
    max_neurons: int = param(60, "At most this many neurons (the most widely labelled).", minimum=2)
    selection: str = param("brain", "brain: the command neurons, then the most widely labelled, up to max_neurons; "
                                    "command: the forward and reversal command neurons only (AVA, AVB, AVE, AIB, "
                                    "RIB, RIM), whose states follow reversals.", choices=("brain", "command"))
    connectome: bool = param(True, "Compare with (and report against) the run's connectome store.", cli=None)
    connectome_prior: bool = param(False, "Start the one-hot prior from the connectome's synapses and signs, and "
                                          "keep it as its hyperprior.")
    restarts: int = param(4, "EM restarts; the best by held-out likelihood is kept.", minimum=1, maximum=100)
    detrend_s: float = param(120.0, "Subtract each trace's running mean over this many seconds before the fit, so "
                                    "that slow drifts are not taken for states; 0 = off.", minimum=0,
                             unit="of seconds")
    seed: int = param(0, "Random seed.")


@dataclass(frozen=True)
class Ntf:
    rank: int = param(3, "Components; 0 = chosen by stability over ranks 2-6.", minimum=0, maximum=50, cli=None)
    bin_s: float = param(5.0, "Time bin of the tensor, seconds.", exclusive_minimum=0, unit="of seconds")
    min_worms: int = param(2, "Pairs observed together in at least this many worms.", minimum=1)
    restarts: int = param(2, "Random restarts of every candidate rank.", minimum=1, maximum=100)
    seed: int = param(0, "Random seed.")


@dataclass(frozen=True)
class Langevin:
    window_s: float = param(30.0, "Trial windows, seconds.", exclusive_minimum=0, unit="of seconds")
    held_out: float = param(0.2, "Share of neurons held out.", exclusive_minimum=0, maximum=0.9)
    max_neurons: int = param(60, "At most this many neurons (the most widely labelled).", minimum=2)
    epochs: int = param(150, "Training epochs of each network.", minimum=1, maximum=10000)
    latent: int = param(8, "Latent channels.", minimum=1, maximum=512)
    hidden: int = param(64, "Hidden units of the encoder and decoder.", minimum=4, maximum=4096)
    seed: int = param(0, "Random seed.")


@dataclass(frozen=True)
class Publish:
    to: str = param("published", "Folder (relative to the workdir) for the Hub dataset folders.")
    repo_id: str = param("", "'' or ORG/NAME to push to.")
    private: bool = param(False, "Create private Hub repositories.")


@dataclass(frozen=True)
class Report:
    pass


@dataclass(frozen=True)
class Stage:
    name: str
    params: type
    description: str
    reads_activity: bool = False
    enabled: bool = True              # run unless the configuration says otherwise


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("ingest_activity", IngestActivity, "read and homogenize the activity files into activity.zarr"),
    Stage("ingest_connectome", IngestConnectome, "read the connectome files into connectome.zarr"),
    Stage("export_nwb", ExportNWB, "one NWB file per worm", reads_activity=True),
    Stage("tsnet", Tsnet, "visibility, cycle and recurrence networks of every trace", reads_activity=True),
    Stage("hmmglm", Hmmglm, "brain states by a state-switching GLM", reads_activity=True),
    Stage("ntf", Ntf, "the dynamic functional connectome by non-negative tensor factorization",
          reads_activity=True),
    # off by default: on this 2-core CPU the default 150 epochs of both networks take minutes
    Stage("langevin", Langevin, "LangevinFlow latent dynamics against the GRU VAE and smoothing",
          reads_activity=True, enabled=False),
    Stage("publish", Publish, "the stores and results as Hub dataset folders"),
    Stage("report", Report, "the HTML report"),
)}
