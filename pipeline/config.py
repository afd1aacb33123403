"""Pipeline configuration: a TOML or YAML file, validated key by key, or the built-in default.

```toml
workdir = "out"                              # outputs; --workdir overrides

[[sources]]                                  # repeatable
kind = "activity"                            # activity | connectome
name = "activity/Dag2023"                    # a registry name (file or folder) ...
# path = "/data/my_lab"                      # ... or a path (relative to this file)
format = "flavell_h5"                        # optional: reader (default: detect)
dataset = "Dag2023"                          # optional: dataset name (activity)

[cluster]                                    # optional; see pipeline/cluster.py (local | address | slurm)
kind = "local"

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
selection = "brain"                          # brain | command (the command neurons only: reversal states)
connectome = true                            # compare with (and report against) connectome.zarr
connectome_prior = false                     # start the one-hot prior from the connectome
restarts = 4
detrend_s = 120.0                            # running-mean baseline removed first (0 = off)
seed = 0
[stages.ntf]                                 # dynamic functional connectome (analysis/ntf/)
rank = 3                                     # components; 0 = choose by stability over ranks 2-6
bin_s = 5.0
min_worms = 2
restarts = 2
seed = 0
[stages.langevin]                            # off unless enabled = true (minutes on a CPU)
epochs = 150
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

from pipeline.cluster import ClusterSpec, cluster_spec
from pipeline.stages import STAGES as _STAGE_SPECS
from pipeline.stages import expected, schema, valid
from wormflow.core.errors import WormflowError

STAGES = tuple(_STAGE_SPECS)


class ConfigError(WormflowError):
    """The configuration file is unreadable or has a bad key or value."""


def _stage_keys(registry) -> tuple[dict, dict]:
    """Each stage's keys with their checks, and its defaults, from the parameters it
    declares (:mod:`pipeline.stages`)."""
    schemas = {name: schema(spec.params) for name, spec in registry.items()}
    keys = {name: {k: ((lambda v, s=s: valid(s, v)), expected(s)) for k, s in spec.items()}
            for name, spec in schemas.items()}
    return keys, {name: {k: s["default"] for k, s in spec.items()} for name, spec in schemas.items()}
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
    cluster: ClusterSpec = field(default_factory=ClusterSpec)

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


def parse(data: dict, origin: str = "<config>", base: Path | None = None, stages=None) -> Config:
    """Validate a configuration mapping; every error names ``origin`` and the key.
    ``stages``: the stage registry (default :data:`pipeline.stages.STAGES`)."""
    registry = _STAGE_SPECS if stages is None else stages
    _STAGE_KEYS, _DEFAULTS = _stage_keys(registry)
    names = tuple(registry)

    def bad(key: str, why: str):
        raise ConfigError(f"{origin}: {key}: {why}")

    for key in data:
        if key not in ("workdir", "sources", "stages", "cluster"):
            bad(key, "unknown key (known: workdir, sources, stages, cluster)")
    try:
        cluster = cluster_spec(data.get("cluster"), origin)
    except WormflowError as exc:
        raise ConfigError(str(exc)) from None
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
        if name not in names:
            bad(f"stages.{name}", f"unknown stage (known: {', '.join(names)})")
    for name in names:
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
            check, what = _STAGE_KEYS[name][k]
            if not check(v):
                bad(f"stages.{name}.{k}", f"must be {what}, got {v!r}")
            params[k] = v
        if table.get("enabled", registry[name].enabled):
            stages[name] = params
    if "ingest_activity" not in stages and any(s in stages for s in ("export_nwb", "tsnet", "hmmglm", "ntf")):
        bad("stages.ingest_activity", "is disabled, but export_nwb and the analyses read the activity store it builds")
    return Config(sources=sources, stages=stages, workdir=workdir, origin=origin, base=base or Path.cwd(),
                  cluster=cluster)


def load_config(path: str | Path | None = None) -> Config:
    """The configuration in ``path``, or the built-in default when ``path`` is None."""
    if path is None:
        return parse({}, origin="built-in default")
    path = Path(path)
    return parse(_load_file(path), origin=str(path), base=path.resolve().parent)
