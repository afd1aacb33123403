"""Turning a lab's spelling of a neuron into a registry name, or refusing to.

Rules, applied in order, each one reported when it changes the text:

1. surrounding whitespace and quotes are removed; letters are upper-cased;
2. zero padding after a class name is dropped (``VB02`` -> ``VB2``, ``DA01`` -> ``DA1``);
3. a trailing ``?`` marks an uncertain identity: the label is kept with its candidate
   names but never counted as that neuron;
4. a class name whose members differ only by side (``AVA``), or several names joined by
   ``/``, ``|`` or ``,`` are ambiguous: uncertain, with the candidates listed;
5. anything else that is not a registry name maps to nothing. There is no nearest-match
   guessing: ``AVAX`` is not ``AVAL``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wormflow.core.neurons import classes, neuron_index

_PADDED = re.compile(r"^([A-Z]+)0+(\d+)([A-Z]*)$")
_SPLIT = re.compile(r"\s*[/|,]\s*")


@dataclass(frozen=True)
class LabelParse:
    """What a raw label says about a neuron's identity."""

    raw: str
    name: str | None = None              # registry name when the identity is certain
    candidates: tuple[str, ...] = ()     # registry names it could be (uncertain labels)
    uncertain: bool = False
    renames: tuple[str, ...] = field(default=())  # human-readable rule applications

    @property
    def is_empty(self) -> bool:
        return self.raw.strip().lower() in {"", "nan", "none"}

    @property
    def status(self) -> str:
        if self.is_empty:
            return "unlabelled"
        if self.name is not None:
            return "labelled"
        if self.uncertain:
            return "uncertain"
        return "unmapped"


def _normalize_token(token: str, notes: list[str]) -> str:
    text = token.strip().strip("'\"").strip()
    upper = text.upper()
    if upper != text:
        notes.append(f"case {text!r} -> {upper!r}")
    m = _PADDED.match(upper)
    if m:
        unpadded = f"{m.group(1)}{int(m.group(2))}{m.group(3)}"
        if unpadded in neuron_index():
            notes.append(f"zero padding {upper!r} -> {unpadded!r}")
            upper = unpadded
    return upper


def parse_label(text: object) -> LabelParse:
    """Interpret one lab label. Never guesses; see the module docstring for the rules."""
    raw = "" if text is None else str(text)
    stripped = raw.strip()
    if stripped == "" or stripped.lower() in {"nan", "none"}:
        return LabelParse(raw=raw)
    notes: list[str] = []
    if stripped != raw:
        notes.append("whitespace removed")
    uncertain = stripped.endswith("?")
    body = stripped.rstrip("?").strip()
    tokens = [t for t in _SPLIT.split(body) if t]
    index = neuron_index()
    members = classes()
    candidates: list[str] = []
    for token in tokens:
        name = _normalize_token(token, notes)
        if name in index:
            candidates.append(name)
        elif name in members and len(members[name]) > 1:
            candidates.extend(members[name])
            uncertain = True
        elif uncertain and len(name) >= 2:
            # "SAAD?" / "RMF?": a class prefix followed by '?' stands for its L/R members
            sided = tuple(n for n in (name + "L", name + "R") if n in index)
            if sided:
                candidates.extend(sided)
            else:
                return LabelParse(raw=raw, uncertain=True, renames=tuple(notes))
        else:
            return LabelParse(raw=raw, renames=tuple(notes))
    candidates = list(dict.fromkeys(candidates))
    if len(candidates) > 1:
        uncertain = True
    if uncertain:
        return LabelParse(raw=raw, candidates=tuple(candidates), uncertain=True, renames=tuple(notes))
    return LabelParse(raw=raw, name=candidates[0], candidates=(candidates[0],), renames=tuple(notes))


def canonical_label(text: object) -> str | None:
    """The registry name a label certainly denotes, or None (uncertain, unknown or empty)."""
    return parse_label(text).name
