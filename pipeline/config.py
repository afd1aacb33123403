"""Pipeline configuration: a TOML or YAML file, validated key by key, or the built-in default.

```toml
workdir = "out"                              # outputs; --workdir overrides

[[sources]]                                  # repeatable
kind = "activity"                            # activity | connectome
name = "activity/Dag2023"                    # a registry name (file or folder) ...
# path = "/data/my_lab"                      # ... or a path (relative to this file)
format = "flavell_h5"                        # optional: reader (default: detect)
dataset = "Dag2023"                          # optional: dataset name (activity)

[stages.ingest_activity]                     # every stage: enabled = true by default
dt = 0.5
smoothing = "none"                           # none | gaussian | exponential
smoothing_s = 1.0
normalization = "none"                       # none | zscore | causal_zscore
gap_tolerance = 1.5                          # grid points farther than this many median frame
                                             # intervals from any recorded frame are NaN, not valid

[stages.ingest_connectome]
[stages.export_nwb]
grid = false
validate = true
metadata = ""                                # TOML table per dataset: age, strain... (DANDI needs age)
[stages.tsnet]
constructions = ["horizontal", "natural"]
variable = "calcium"                         # calcium | roi_calcium | native_calcium
max_gap = 0
[stages.hmmglm]                              # brain states (analysis/hmmglm/)
n_states = 3
prior = "onehot"                             # onehot | gaussian | none
max_neurons = 60
connectome = true                            # compare with (and report against) connectome.zarr
connectome_prior = false                     # start the one-hot prior from the connectome
seed = 0
[stages.ntf]                                 # dynamic functional connectome (analysis/ntf/)
rank = 3                                     # components; 0 = choose by stability over ranks 2-6
bin_s = 5.0
min_worms = 2
restarts = 2
seed = 0
[stages.publish]
to = "published"                             # WORKDIR/published/<collection>/ (Hub folders)
repo_id = ""                                 # ORG/NAME: also push (token from HF_TOKEN or login)
[stages.report]
```

A stage table that is absent runs with its defaults; ``enabled = false`` turns it off.
Errors name the file and the key (``stages.tsnet.variable: ...``).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from wormflow.core.errors import WormflowError

STAGES = ("ingest_activity", "ingest_connectome", "export_nwb", "tsnet", "hmmglm", "ntf", "publish", "report")


class ConfigError(WormflowError):
    """The configuration file is unreadable or has a bad key or value."""


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _choice(*options):
    return (lambda v: v in options), f"one of {', '.join(map(repr, options))}"


_BOOL = (lambda v: isinstance(v, bool)), "true or false"
_STAGE_KEYS = {
    "ingest_activity": {
        "dt": (_positive, "a positive number of seconds"),
        "smoothing": _choice("none", "gaussian", "exponential"),
        "smoothing_s": (_positive, "a positive number of seconds"),
        "normalization": _choice("none", "zscore", "causal_zscore"),
        "gap_tolerance": ((lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0.5),
                          "a number of median frame intervals, at least 0.5"),
    },
    "ingest_connectome": {},
    "export_nwb": {"grid": _BOOL, "validate": _BOOL, "sex": _choice("XX", "XO"),
                   "metadata": ((lambda v: isinstance(v, str)), "'' or the path of a TOML metadata table "
                                                                "(relative to this file)")},
    "tsnet": {
        "constructions": ((lambda v: isinstance(v, list) and v and all(
            c in ("natural", "horizontal", "cycle", "recurrence") for c in v)),
            "a non-empty list of 'natural', 'horizontal', 'cycle', 'recurrence'"),
        "variable": _choice("calcium", "roi_calcium", "native_calcium"),
        "max_gap": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0), "an integer >= 0"),
    },
    "hmmglm": {
        "n_states": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 20), "an integer 1..20"),
        "prior": _choice("onehot", "gaussian", "none"),
        "max_neurons": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2), "an integer >= 2"),
        "connectome": _BOOL, "connectome_prior": _BOOL,
        "seed": ((lambda v: isinstance(v, int) and not isinstance(v, bool)), "an integer"),
    },
    "ntf": {
        "rank": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 50), "an integer 0..50"),
        "bin_s": (_positive, "a positive number of seconds"),
        "min_worms": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1), "an integer >= 1"),
        "restarts": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1), "an integer >= 1"),
        "seed": ((lambda v: isinstance(v, int) and not isinstance(v, bool)), "an integer"),
    },
    "publish": {"to": ((lambda v: isinstance(v, str) and bool(v)), "a folder name or path"),
                "repo_id": ((lambda v: isinstance(v, str)), "'' or ORG/NAME"), "private": _BOOL},
    "report": {},
}
_DEFAULTS = {
    "ingest_activity": {"dt": 0.5, "smoothing": "none", "smoothing_s": 1.0, "normalization": "none",
                        "gap_tolerance": 1.5},
    "ingest_connectome": {},
    "export_nwb": {"grid": False, "validate": True, "sex": "XX", "metadata": ""},
    "tsnet": {"constructions": ["horizontal", "natural"], "variable": "calcium", "max_gap": 0},
    "hmmglm": {"n_states": 3, "prior": "onehot", "max_neurons": 60, "connectome": True, "connectome_prior": False,
               "seed": 0},
    "ntf": {"rank": 3, "bin_s": 5.0, "min_worms": 2, "restarts": 2, "seed": 0},
    "publish": {"to": "published", "repo_id": "", "private": False},
    "report": {},
}
_SOURCE_KEYS = {"kind", "name", "path", "format", "dataset"}

# The built-in run: every stage on the sample data of the mirror. The Kato 2015 files are
# left out: that early conversion holds no calcium traces (the reader refuses it).
DEFAULT_SOURCES = [
    {"kind": "activity", "name": "activity/Dag2023"},
    {"kind": "activity", "name": "activity/Scholz2018"},
    {"kind": "connectome", "name": "connectome"},
]


@dataclass
class Source:
    kind: str
    name: str = ""               # registry name
    path: str = ""               # filesystem path
    format: str | None = None
    dataset: str | None = None


@dataclass
class Config:
    sources: list[Source]
    stages: dict[str, dict] = field(default_factory=dict)     # enabled stages -> parameters
    workdir: str | None = None
    origin: str = "built-in default"
    base: Path = field(default_factory=Path.cwd)

    def to_json(self) -> str:
        return json.dumps({"sources": [s.__dict__ for s in self.sources], "stages": self.stages,
                           "origin": self.origin}, sort_keys=True)


def _load_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a table of keys")
    return data


def parse(data: dict, origin: str = "<config>", base: Path | None = None) -> Config:
    """Validate a configuration mapping; every error names ``origin`` and the key."""
    def bad(key: str, why: str):
        raise ConfigError(f"{origin}: {key}: {why}")

    for key in data:
        if key not in ("workdir", "sources", "stages"):
            bad(key, "unknown key (known: workdir, sources, stages)")
    workdir = data.get("workdir")
    if workdir is not None and not isinstance(workdir, str):
        bad("workdir", "must be a path (a string)")
    raw_sources = data.get("sources", DEFAULT_SOURCES)
    if not isinstance(raw_sources, list) or not raw_sources:
        bad("sources", "must be a non-empty list of tables")
    sources = []
    for i, s in enumerate(raw_sources):
        where = f"sources[{i}]"
        if not isinstance(s, dict):
            bad(where, "must be a table")
        for k in s:
            if k not in _SOURCE_KEYS:
                bad(f"{where}.{k}", f"unknown key (known: {', '.join(sorted(_SOURCE_KEYS))})")
        if s.get("kind") not in ("activity", "connectome"):
            bad(f"{where}.kind", f"must be 'activity' or 'connectome', got {s.get('kind')!r}")
        if bool(s.get("name")) == bool(s.get("path")):
            bad(where, "give exactly one of 'name' (a registry name) or 'path'")
        for k in ("name", "path", "format", "dataset"):
            if k in s and not isinstance(s[k], str):
                bad(f"{where}.{k}", "must be a string")
        sources.append(Source(kind=s["kind"], name=s.get("name", ""), path=s.get("path", ""),
                              format=s.get("format"), dataset=s.get("dataset")))
    raw_stages = data.get("stages", {})
    if not isinstance(raw_stages, dict):
        bad("stages", "must be a table of stage tables")
    stages = {}
    for name in raw_stages:
        if name not in STAGES:
            bad(f"stages.{name}", f"unknown stage (known: {', '.join(STAGES)})")
    for name in STAGES:
        table = raw_stages.get(name, {})
        if not isinstance(table, dict):
            bad(f"stages.{name}", "must be a table")
        params = dict(_DEFAULTS[name])
        for k, v in table.items():
            if k == "enabled":
                if not isinstance(v, bool):
                    bad(f"stages.{name}.enabled", "must be true or false")
                continue
            if k not in _STAGE_KEYS[name]:
                known = ", ".join(["enabled", *_STAGE_KEYS[name]])
                bad(f"stages.{name}.{k}", f"unknown key (known: {known})")
            check, expected = _STAGE_KEYS[name][k]
            if not check(v):
                bad(f"stages.{name}.{k}", f"must be {expected}, got {v!r}")
            params[k] = v
        if table.get("enabled", True):
            stages[name] = params
    if "ingest_activity" not in stages and any(s in stages for s in ("export_nwb", "tsnet", "hmmglm", "ntf")):
        bad("stages.ingest_activity", "is disabled, but export_nwb and the analyses read the activity store it builds")
    return Config(sources=sources, stages=stages, workdir=workdir, origin=origin, base=base or Path.cwd())


def load_config(path: str | Path | None = None) -> Config:
    """The configuration in ``path``, or the built-in default when ``path`` is None."""
    if path is None:
        return parse({}, origin="built-in default")
    path = Path(path)
    return parse(_load_file(path), origin=str(path), base=path.resolve().parent)
