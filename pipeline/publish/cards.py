"""Dataset cards of published collections: licences, citations and the card itself.

Licences. Every input is in wormflow's registry with its licence as the source states it;
``licence_id`` turns that statement into the Hub's licence id (``mit``, ``gpl-3.0``…,
``unknown`` when the source states none). A table built from several inputs takes the most
restrictive of their licences (``combined_licence``): GPL-3.0 is copyleft, so MIT with
GPL-3.0 data is GPL-3.0; an input without a stated licence makes the combination unknown.

Citations. ``data_cards/citations.toml`` holds each paper's fields once; the card's plain
reference list and its BibTeX entries are both generated from them.

Cards are ``huggingface_hub.DatasetCard`` objects with ``DatasetCardData`` metadata: the
licence ids, pretty name, size category, task categories, tags and the configs with
their data files, as the Hub and ``datasets.load_dataset`` read them.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources
from string import Template

from wormflow.core.provenance import wormflow_version

CARDS = resources.files("data_cards")          # the card templates and citations, inside the package

# (pattern in the source's own licence statement, Hub licence id), most specific first
_LICENCE_PATTERNS = (
    (r"\bgpl-?3", "gpl-3.0"), (r"\blgpl-?3", "lgpl-3.0"), (r"\bapache", "apache-2.0"), (r"\bbsd-3", "bsd-3-clause"),
    (r"\bcc-by-4", "cc-by-4.0"), (r"\bcc0", "cc0-1.0"), (r"\bmit\b", "mit"),
)
# from the most permissive to the most restrictive: a combination takes the last of its inputs'
RESTRICTIVENESS = ("cc0-1.0", "mit", "bsd-3-clause", "apache-2.0", "cc-by-4.0", "lgpl-3.0", "gpl-3.0", "unknown")


def licence_id(stated: str) -> str:
    """The Hub licence id of a source's own licence statement ("MIT (setup.py…)" -> "mit");
    "unknown" when the source states none."""
    text = stated.strip().lower()
    if not text or text.startswith("not stated") or text.startswith("unknown"):
        return "unknown"
    for pattern, lid in _LICENCE_PATTERNS:
        if re.search(pattern, text):
            return lid
    return "unknown"


@lru_cache(maxsize=1)
def _registry_by_sha() -> dict:
    """The registry by sha256, built once: every row of every config asks for its licence."""
    from pipeline.registry import registry

    return {e.sha256: e for e in registry()}


def input_licence(sha256: str) -> str:
    """The Hub licence id of an input file known by its sha256 (unknown if not in the registry)."""
    e = _registry_by_sha().get(sha256)
    return licence_id(e.license) if e else "unknown"


def combined_licence(ids) -> str:
    """The licence of a table made from inputs under ``ids``: the most restrictive one."""
    ids = list(ids)
    if not ids:
        return "unknown"
    return max(ids, key=lambda i: RESTRICTIVENESS.index(i) if i in RESTRICTIVENESS else len(RESTRICTIVENESS))


def licence_section(col) -> str:
    """Markdown: the licence of each config and, for each input behind it, its licence as stated."""
    by_sha = _registry_by_sha()
    lines = ["Each config has one licence, the most restrictive of its inputs' (a source that states no "
             "licence makes it `unknown`: ask the source before reuse).", "",
             "| config | licence | inputs (licence as the source states it) |", "|---|---|---|"]
    for config, lic in col.licences.items():
        parts = []
        for sha in col.inputs[config]:
            e = by_sha.get(sha)
            parts.append(f"`{e.name}`: {e.license} ({e.source_repo}@{e.commit[:10]})" if e
                         else f"`{sha[:12]}`: not in wormflow's registry")
        lines.append(f"| `{config}` | `{lic}` | {'<br>'.join(parts)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- citations

def citations() -> dict:
    with (CARDS / "citations.toml").open("rb") as fh:
        return tomllib.load(fh)


def cited(names) -> dict:
    """The citations.toml entries whose ``match`` occurs in any of ``names``."""
    names = [n.lower() for n in names]
    return {k: c for k, c in citations().items() if any(m in n for n in names for m in c["match"])}


def _short_author(a: str) -> str:
    family, _, given = a.partition(",")
    return f"{family.strip()} {given.replace('.', '').replace(' ', '')}".strip()


def plain_citation(c: dict) -> str:
    authors = [a for a in c["authors"] if a != "others"]
    text = ", ".join(_short_author(a) for a in authors)
    if "others" in c["authors"]:
        text += ", et al."
        if c.get("last_author"):
            text += f", {_short_author(c['last_author'])}"
    where = c["journal"] + (f" {c['volume']}" if c.get("volume") else "") + \
        (f"({c['number']})" if c.get("number") else "") + (f":{c['pages'].replace('--', '-')}" if c.get("pages") else "")
    return f"{text}. {c['title']}. {where} ({c['year']}). doi:{c['doi']}"


def bibtex(key: str, c: dict) -> str:
    fields = {"author": " and ".join(c["authors"]), "title": "{" + c["title"] + "}", "journal": c["journal"],
              "year": str(c["year"]), "volume": c.get("volume"), "number": c.get("number"), "pages": c.get("pages"),
              "doi": c["doi"]}
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items() if v)
    return f"@{c.get('type', 'article')}{{{key},\n{body}\n}}"


def citation_sections(names) -> dict:
    """``citations`` (a Markdown list) and ``bibtex`` (entries) for the papers behind ``names``."""
    found = cited(names)
    return {"citations": "\n".join(f"- {plain_citation(c)}" for c in found.values())
            or "- (no citation known for these sources; see their files above)",
            "bibtex": "\n\n".join(bibtex(k, c) for k, c in found.items()) or "% no citation known"}


# ---------------------------------------------------------------- the card

def size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                         (10_000_000, "1M<n<10M")):
        if rows < limit:
            return label
    return "10M<n<100M"


def usage(repo: str, col, default: str) -> str:
    """A snippet that loads the default config from ``repo`` (a Hub id ORG/NAME, or the
    folder's name, run from the folder ``wormflow publish --to`` wrote into) as written."""
    others = ", ".join(c for c in col.configs if c != default)
    where = "" if "/" in repo else f"# run from the folder holding {repo}/ (the --to of wormflow publish)\n"
    return ("```python\nfrom datasets import load_dataset\n\n" + where +
            f"table = load_dataset({repo!r}, {default!r}, split=\"train\")"
            + (f"   # other configs: {others}" if others else "") + "\nprint(table)\n```")


def write_card(col, template: str, *, pretty: str, tags: list[str], task_categories: list[str], values: dict,
               default: str, repo: str, names) -> None:
    """``col.folder``/README.md: the Hub metadata and the body of ``data_cards/<template>``."""
    from huggingface_hub import DatasetCard, DatasetCardData

    if default not in col.configs:            # split by licence: the first of its parts is the default
        default = next(c for c in col.configs if c.startswith(default))
    ids = list(dict.fromkeys(col.licences.values()))
    data = DatasetCardData(
        license=ids[0] if len(ids) == 1 else ids, pretty_name=pretty,
        size_categories=[size_category(max(col.rows.values(), default=0))], task_categories=task_categories,
        tags=tags,
        configs=[{"config_name": c, "data_files": [{"split": "train", "path": files}],
                  **({"default": True} if c == default else {})} for c, files in col.configs.items()])
    notes = "\n".join(f"- `{c}`{' (default)' if c == default else ''}: {col.notes[c]} {col.rows[c]} rows, "
                      f"licence `{col.licences[c]}`." for c in col.configs)
    body = Template((CARDS / template).read_text(encoding="utf-8")).substitute(
        pretty_name=pretty, version=wormflow_version(), config_notes=notes, usage=usage(repo, col, default),
        licences=licence_section(col), **citation_sections(names), **values)
    DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}").save(col.folder / "README.md")
