"""Rebuild ``wormflow/core/data/neurons.csv`` (the registry every package stands on) from the real tables of the local mirror.

The committed CSV is what the package ships; this module documents (and tests check)
how it was derived:

* names: the 302 hermaphrodite neurons of ``neurons/NeuropalCanonicalColors.csv``
  (unpadded spelling, e.g. ``VB2``);
* class, cell type, side (L/R), D/V and category: ``connectome/NemaNode/connectome_neurons.csv``
  (zero-padded there, e.g. ``VB02``; unpadded here);
* dominant and alternative neurotransmitter: Fenyves et al. 2020, sheet ``1. NT expr``;
* position: ``neurons/LowResAtlasWithHighResHeadsAndTails.csv`` (Skuhersky et al.),
  columns c1, c2, c3 in microns stored as ``x_um`` (anterior-posterior distance from the
  nose), ``y_um`` and ``z_um`` (positive on the left side). CANL/CANR are not in that
  atlas and have NaN positions.

Run ``python -m connectome.build_registry [MIRROR]`` to regenerate.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from wormflow.core.errors import FormatError

_PADDED = re.compile(r"^([A-Z]+)0+(\d+)$")
COLUMNS = [
    "name", "neuron_class", "cell_type", "lr", "dv", "category",
    "neurotransmitter", "alternative_neurotransmitter", "x_um", "y_um", "z_um",
]


def _unpad(name: str) -> str:
    name = name.strip().strip("'\"")
    m = _PADDED.match(name)
    return f"{m.group(1)}{m.group(2)}" if m else name


def natural_key(name: str) -> tuple:
    """Sort key that puts VB2 before VB10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


# the mirror files the registry is built from (names under a mirror, as in wormflow's file registry)
NAMES_FILE = "neurons/NeuropalCanonicalColors.csv"
CLASSES_FILE = "connectome/NemaNode/connectome_neurons.csv"
TRANSMITTERS_FILE = "connectome/Fenyves2020/journal.pcbi.1007974.s003.xlsx"
POSITIONS_FILE = "neurons/LowResAtlasWithHighResHeadsAndTails.csv"
SOURCES = (NAMES_FILE, CLASSES_FILE, TRANSMITTERS_FILE, POSITIONS_FILE)


def build_table(mirror: Path) -> pd.DataFrame:
    colors = mirror / NAMES_FILE
    names = [line.split(",")[0].strip().strip("'\"") for line in colors.read_text().splitlines() if line.strip()]
    if len(names) != 302 or len(set(names)) != 302:
        raise FormatError(f"{colors}: expected 302 distinct neuron names, found {len(set(names))}")

    nema = pd.read_csv(mirror / CLASSES_FILE, dtype=str).fillna("")
    nema["name"] = nema["name"].map(_unpad)
    nema = nema.set_index("name")
    missing = sorted(set(names) - set(nema.index))
    if missing:
        raise FormatError(f"connectome_neurons.csv: no row for {missing}")

    nt = pd.read_excel(mirror / TRANSMITTERS_FILE,
                       sheet_name="1. NT expr")
    nt = nt.rename(columns={nt.columns[0]: "name", nt.columns[1]: "nt", nt.columns[2]: "alt"})
    nt["name"] = nt["name"].astype(str).map(_unpad)
    nt = nt.set_index("name")

    pos = pd.read_csv(mirror / POSITIONS_FILE, header=None,
                      names=["name", "c1", "c2", "c3"])
    pos["name"] = pos["name"].map(_unpad)
    pos = pos.set_index("name")

    rows = []
    for name in sorted(names, key=natural_key):
        n = nema.loc[name]
        rows.append({
            "name": name,
            "neuron_class": n["class"],
            "cell_type": n["type"],
            "lr": n["lr"].upper(),
            "dv": n["dv"].upper(),
            "category": n["category"],
            "neurotransmitter": _text(nt["nt"].get(name)),
            "alternative_neurotransmitter": _text(nt["alt"].get(name)),
            "x_um": pos["c1"].get(name, float("nan")),
            "y_um": pos["c2"].get(name, float("nan")),
            "z_um": pos["c3"].get(name, float("nan")),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def build_other_cells(mirror: Path) -> pd.DataFrame:
    """Cells of the NemaNode table that are not among the 302 (muscles, glia, end organs,
    male-specific neurons): connectome readers keep edges to them and report anything
    that is in neither table."""
    nema = pd.read_csv(mirror / CLASSES_FILE, dtype=str).fillna("")
    neurons = set(build_table(mirror)["name"])
    other = nema[~nema["name"].map(_unpad).isin(neurons)][["name", "type", "category"]]
    return other.sort_values("name", key=lambda s: s.map(natural_key)).reset_index(drop=True)


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    mirror = Path(argv[0]) if argv else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    out = Path(__file__).resolve().parents[1] / "wormflow" / "core" / "data" / "neurons.csv"
    build_table(mirror).to_csv(out, index=False)
    build_other_cells(mirror).to_csv(out.with_name("other_cells.csv"), index=False)
    print(f"wrote {out} and {out.with_name('other_cells.csv')}")


if __name__ == "__main__":
    main()
