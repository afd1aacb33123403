"""What every ``wormflow`` command shares: the error console, and how a command fails."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from connectome.errors import WormflowError

console = Console(stderr=True)


def _or_exit(fn, *args, prefix: str, code: int):
    """Run ``fn``; a WormflowError becomes one red line and exit ``code`` instead of a traceback."""
    try:
        return fn(*args)
    except WormflowError as exc:
        console.print(f"[red]{prefix}:[/red] {exc}", soft_wrap=True)
        sys.exit(code)


def _exit_if_failed(failed: list[tuple[str, str]]) -> None:
    """List the files that failed, with their cause, and exit 1 (nothing when none failed)."""
    if not failed:
        return
    table = Table(title="failed files")
    table.add_column("file")
    table.add_column("cause")
    for f, err in failed:
        table.add_row(Path(f).name, err)
    console.print(table)
    sys.exit(1)
