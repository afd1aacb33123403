"""Spreadsheet and text-table helpers that turn malformed tables into errors a person can act on."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from wormflow.core.errors import FormatError


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (spreadsheet column names)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


@functools.lru_cache(maxsize=4)
def _workbook(path: str, size: int, mtime_ns: int) -> tuple[pd.ExcelFile, dict]:
    """One parse of a workbook per file version: sniffing and reading share it, and a
    reader that needs several sheets does not re-open the file for each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.ExcelFile(path), {}


def _book(path: Path) -> tuple[pd.ExcelFile, dict]:
    st = path.stat()
    try:
        return _workbook(str(path), st.st_size, st.st_mtime_ns)
    except Exception as exc:  # openpyxl/xlrd raise many types for a broken workbook
        raise FormatError(f"{path.name}: not a readable spreadsheet: {exc}") from exc


def excel_sheets(path: Path) -> list[str]:
    return list(_book(path)[0].sheet_names)


def read_sheet(path: Path, sheet: str | None = None) -> pd.DataFrame:
    """A whole sheet as raw cells (no header interpretation), so errors can name cells."""
    book, parsed = _book(path)
    sheet = book.sheet_names[0] if sheet is None else sheet
    if sheet not in book.sheet_names:
        raise FormatError(f"{path.name}: no sheet {sheet!r} (sheets: {', '.join(book.sheet_names)})")
    if sheet not in parsed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed[sheet] = book.parse(sheet, header=None)
    return parsed[sheet]


def header_table(cells: pd.DataFrame, path: Path, sheet: str, required: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Column index of each required column, found by name in the first row (any of the aliases)."""
    header = [str(v).strip().lower() for v in cells.iloc[0].tolist()]
    where = {}
    for key, aliases in required.items():
        hits = [i for i, h in enumerate(header) if h in aliases]
        if not hits:
            raise FormatError(f"{path.name}, sheet {sheet!r}: no column {aliases[0]!r} in the header row "
                              f"(found {', '.join(repr(h) for h in header)})")
        where[key] = hits[0]
    return where


def numeric_column(cells: pd.DataFrame, col: int, path: Path, sheet: str, first_row: int = 1) -> np.ndarray:
    """Column ``col`` from ``first_row`` on as float; a non-number is an error naming its cell."""
    raw = cells.iloc[first_row:, col]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isnan(values) & raw.notna().to_numpy())
    if bad.size:
        r = first_row + int(bad[0])
        raise FormatError(f"{path.name}, sheet {sheet!r}, cell {column_letter(col)}{r + 1}: "
                          f"{raw.iloc[bad[0]]!r} is not a number")
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        r = first_row + int(missing[0])
        raise FormatError(f"{path.name}, sheet {sheet!r}, cell {column_letter(col)}{r + 1}: empty count")
    return values


def text_column(cells: pd.DataFrame, col: int, first_row: int = 1) -> list[str]:
    return [("" if pd.isna(v) else str(v).strip()) for v in cells.iloc[first_row:, col]]


def read_text_table(path: Path, sep: str | None) -> pd.DataFrame:
    """A delimited text table as raw string cells, header row included (``sep=None``: any whitespace)."""
    try:
        return pd.read_csv(path, sep=r"\s+" if sep is None else sep, header=None, dtype=str,
                           engine="python" if sep is None else "c")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise FormatError(f"{path.name}: not a readable table: {exc}") from exc


def matrix_block(cells: pd.DataFrame, path: Path, sheet: str, names_row: int, names_col: int,
                 first_row: int, first_col: int) -> tuple[list[str], list[str], np.ndarray]:
    """(row names, column names, values) of an adjacency matrix laid out with name margins.

    Blank cells are 0; a cell that is neither blank nor a number is an error naming it.
    Rows and columns without a name (spacer rows, totals outside the named block) are dropped.
    """
    col_names = cells.iloc[names_row, first_col:].tolist()
    row_names = cells.iloc[first_row:, names_col].tolist()
    cols = [first_col + j for j, v in enumerate(col_names) if isinstance(v, str) and v.strip()]
    rows = [first_row + i for i, v in enumerate(row_names) if isinstance(v, str) and v.strip()]
    if not cols or not rows:
        raise FormatError(f"{path.name}, sheet {sheet!r}: no neuron names in row {names_row + 1} "
                          f"or column {column_letter(names_col)}")
    block = cells.iloc[rows, cols]
    values = block.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = np.argwhere(np.isnan(values) & block.notna().to_numpy())
    if bad.size:
        i, j = bad[0]
        raise FormatError(f"{path.name}, sheet {sheet!r}, cell {column_letter(cols[j])}{rows[i] + 1}: "
                          f"{block.iat[i, j]!r} is not a number")
    return ([str(cells.iat[r, names_col]).strip() for r in rows],
            [str(cells.iat[names_row, c]).strip() for c in cols], np.nan_to_num(values))
