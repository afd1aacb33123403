"""One registry of connectome readers, and format detection.

Each module exposes ``FORMAT``, ``DESCRIPTION``, ``sniff(path) -> bool`` (cheap, never
raises) and ``read(path) -> list[RawConnectome]`` (a file may hold several sources, e.g.
the hermaphrodite and the male). Order matters where two sniffers could both answer:
the more specific format comes first.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from wormflow.core.errors import FormatError, UnknownFormatError, WormflowError, sniff_safely
from connectome.raw import RawConnectome
from connectome.readers import (bentley_csv, cook_edgelist, cook_si5, fenyves_xlsx, funatlas_h5,
                                nemanode_json, openworm_xls, prepost_table, randi_anatomical,
                                varshney_xls, witvliet_matrices, wormwiring_txt)

_MODULES: tuple[ModuleType, ...] = (
    prepost_table, wormwiring_txt, varshney_xls, cook_si5, cook_edgelist, witvliet_matrices,
    nemanode_json, openworm_xls, randi_anatomical, funatlas_h5, bentley_csv, fenyves_xlsx,
)
READERS: dict[str, ModuleType] = {m.FORMAT: m for m in _MODULES}
# files that ship beside connectomes and are read by a reader (or are not wiring data):
# ingesting a folder skips them with a note instead of failing on them
COMPANIONS = {
    "neuron_ids.txt": "row/column order of the wormneuroatlas matrices (read with them)",
    "aconnectome_ids_ganglia.json": "wormneuroatlas ganglion membership (not wiring data)",
    "connectome_neurons.csv": "NemaNode cell table (used to build the neuron registry)",
    "connectome_datasets.json": "NemaNode dataset list (metadata, not wiring data)",
    "Bentley_et_al_2016_expression.csv": "Bentley 2016 gene expression table (the networks are read "
                                         "from the esconnectome_*.csv files)",
}


def known_formats() -> str:
    return ", ".join(f"{name} ({m.DESCRIPTION})" for name, m in READERS.items())


def detect(path: str | Path) -> list[str]:
    path = Path(path)
    return [name for name, m in READERS.items() if path.is_file() and sniff_safely(m.sniff, path)]


def read_connectome(path: str | Path, format: str | None = None) -> list[RawConnectome]:
    """Every source in ``path``, read with the named or detected reader."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise FormatError(f"{path.name}: the file is empty (0 bytes)")
    if format is not None and format not in READERS:
        raise UnknownFormatError(f"{path.name}: unknown format {format!r}; known formats: {known_formats()}")
    name = format or next(iter(detect(path)), None)
    if name is None:
        raise UnknownFormatError(f"{path.name}: not a recognised connectome file; known formats: {known_formats()}")
    try:
        return READERS[name].read(path)
    except WormflowError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise FormatError(f"{path.name}: cannot be read as {name}: {exc}") from exc


__all__ = ["READERS", "COMPANIONS", "detect", "read_connectome", "known_formats"]
