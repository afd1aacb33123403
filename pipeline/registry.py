"""The registry of every public raw file wormflow knows, and ``wormflow fetch``.

``pipeline/data/registry.csv`` holds one row per file: its name (the path under a mirror),
size, sha256, the public repository, path and commit it comes from, the download URL
pinned to that commit, the licence as the source states it, and what it holds. It is
generated from a mirror's ``manifest.csv`` with ``python -m pipeline.registry MANIFEST``.

Fetching takes files from a local mirror (checksum-verified) or downloads them with pooch
(checksum-verified); a mismatch is an error naming the file. ``resolve_sources`` turns
a run configuration's sources (registry names or paths) into verified paths.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from wormflow.core.atomic import replacing
from wormflow.core.errors import WormflowError
from wormflow.core.provenance import sha256_of

if TYPE_CHECKING:
    from pipeline.config import Config

FIELDS = ("name", "bytes", "sha256", "url", "license", "source_repo", "source_path", "commit", "description")
_GITHUB = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


class FetchError(WormflowError):
    """A registry name is unknown, a file is missing, or a checksum does not match."""


@dataclass(frozen=True)
class Entry:
    name: str
    bytes: int
    sha256: str
    url: str
    license: str
    source_repo: str
    source_path: str
    commit: str
    description: str


@lru_cache(maxsize=1)
def registry() -> tuple[Entry, ...]:
    text = resources.files("pipeline").joinpath("data/registry.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple(Entry(**{**r, "bytes": int(r["bytes"])}) for r in rows)


def select(names: Iterable[str] = ()) -> list[Entry]:
    """Entries whose name equals, or lies under, one of ``names`` (every entry when empty)."""
    names = [n.strip("/") for n in names]
    entries = registry()
    if not names:
        return list(entries)
    out, unknown = [], []
    for n in names:
        hits = [e for e in entries if e.name == n or e.name.startswith(n + "/")]
        if not hits:
            unknown.append(n)
        out.extend(h for h in hits if h not in out)
    if unknown:
        tops = sorted({e.name.split("/")[0] + "/" + e.name.split("/")[1] for e in entries if e.name.count("/") >= 1})
        raise FetchError(f"unknown registry name(s): {', '.join(unknown)}; names are file paths or folders such as "
                         f"{', '.join(tops)} (see `wormflow fetch --list`)")
    return out


def _sha256(path: Path) -> str:
    return sha256_of(path)


def verify(entry: Entry, path: Path) -> Path:
    """``path`` if it holds ``entry``'s bytes; a FetchError naming the file otherwise."""
    if not path.is_file():
        raise FetchError(f"{entry.name}: not found at {path}")
    got = _sha256(path)
    if got != entry.sha256:
        raise FetchError(f"{entry.name}: sha256 mismatch at {path}: expected {entry.sha256}, got {got} "
                         "(corrupted or a different version)")
    return path


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def mirror_dir(mirror: str | Path | None = None) -> Path | None:
    """The local mirror: the argument, else WORMFLOW_MIRROR, else ``shared/data`` beside the
    project's folder (resolved from the project, whatever the current directory) when it
    holds a manifest.csv, else None (files are downloaded)."""
    value = mirror or os.environ.get("WORMFLOW_MIRROR")
    if value:
        return Path(value)
    beside = PROJECT_ROOT.parent / "shared" / "data"
    return beside if (beside / "manifest.csv").is_file() else None


def fetch(entries: Iterable[Entry], dest: str | Path, *, mirror: str | Path | None = None,
          on_file: Callable[[Entry], None] | None = None) -> tuple[list[Path], list[tuple[str, str]]]:
    """Put every entry under ``dest`` (same relative names): (paths fetched, (name, error) failed).

    A file already at its destination with the right checksum is kept. From a mirror the
    file is verified, then copied through a temporary name; otherwise pooch downloads it
    against the registry's sha256.
    """
    dest = Path(dest)
    mirror = mirror_dir(mirror)
    done, failed = [], []
    for e in entries:
        target = dest / e.name
        try:
            if target.is_file() and _sha256(target) == e.sha256:
                done.append(target)
            elif mirror is not None:
                source = verify(e, mirror / e.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                if source.resolve() != target.resolve():
                    with replacing(target) as partial:
                        shutil.copyfile(source, partial)
                done.append(verify(e, target))
            else:
                done.append(_download(e, target))
        except FetchError as exc:
            failed.append((e.name, str(exc)))
        if on_file is not None:
            on_file(e)
    return done, failed


def _download(e: Entry, target: Path) -> Path:
    import pooch

    if not e.url:
        raise FetchError(f"{e.name}: no public download address ({e.source_repo}); take it from a mirror (--mirror)")
    try:
        path = pooch.retrieve(e.url, known_hash=f"sha256:{e.sha256}", fname=target.name, path=target.parent,
                              progressbar=False)
    except ValueError as exc:           # pooch's hash mismatch
        raise FetchError(f"{e.name}: sha256 mismatch after download from {e.url}: {exc}") from exc
    except Exception as exc:            # network errors of every kind
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise FetchError(f"{e.name}: download from {e.url} failed: {first}") from exc
    return Path(path)


def entries_from_manifest(manifest: Path) -> list[dict]:
    """Registry rows from a mirror's manifest.csv; URLs pinned to the commit for GitHub sources."""
    rows = []
    with open(manifest, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            repo, commit = r["source_repo"].strip(), r["commit"].strip()
            url = (f"https://raw.githubusercontent.com/{repo}/{commit}/{r['source_path']}"
                   if _GITHUB.match(repo) and _COMMIT.match(commit) else "")
            rows.append({"name": r["file"], "bytes": r["bytes"], "sha256": r["sha256"], "url": url,
                         "license": r["license"], "source_repo": repo, "source_path": r["source_path"],
                         "commit": commit, "description": r["content"]})
    return rows


def resolve_sources(config: Config, kind: str, raw_dir: Path, mirror: Path | None) -> list[dict]:
    """Paths (with format/dataset) of the sources of ``kind``; registry names are checksum-
    verified in the mirror, or fetched into ``raw_dir`` without one."""
    out = []
    for s in config.sources:
        if s.kind != kind:
            continue
        if s.path:
            p = Path(s.path)
            out.append({"path": p if p.is_absolute() else config.base / p, "format": s.format, "dataset": s.dataset})
            continue
        entries = select([s.name])
        if mirror is not None:
            for e in entries:
                verify(e, mirror / e.name)
            root = mirror
        else:
            _, failed = fetch(entries, raw_dir)
            if failed:
                raise WormflowError("; ".join(err for _, err in failed))
            root = raw_dir
        out.append({"path": root / s.name, "format": s.format, "dataset": s.dataset})
    return out


def main(argv: list[str] | None = None) -> None:
    manifest = Path((argv or sys.argv[1:])[0])
    out = Path(__file__).with_name("data") / "registry.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(entries_from_manifest(manifest))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
