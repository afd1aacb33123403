"""Where every wormflow store lives: an Icechunk repository on a local folder or on object
storage, and the rules for writing to it.

Every store wormflow writes (the activity store, the connectome store, analysis outputs)
is an Icechunk repository (https://icechunk.io): Zarr v3 arrays with ACID commits.
A reader always sees one committed snapshot, however long a writer works. Each write is
one commit, with a message and metadata (the files and their sha256, the version), and
every earlier commit can still be read. A write that fails or is killed commits nothing.

Locations:

* a path or ``file://`` URL: a local folder;
* ``s3://bucket/prefix``: Amazon S3 or an S3-compatible server (MinIO, Ceph, moto). The
  credentials and region come from the environment as boto does (``AWS_ACCESS_KEY_ID``,
  ``AWS_PROFILE``…); ``AWS_ENDPOINT_URL`` (or ``endpoint_url=``) names an S3-compatible
  server, addressed path-style;
* ``gs://bucket/prefix``: Google Cloud Storage, credentials from the environment;
* ``az://container/prefix``: Azure Blob Storage, the account from
  ``AZURE_STORAGE_ACCOUNT_NAME``, credentials from the environment.

Anything else that looks like a URL (``http://``, ``s3:/x``, ``ftp://``) is refused with
an error; it is never taken for a local folder of that name.

Concurrent writers. Icechunk detects conflicting commits on object storage: a commit
whose changes do not overlap another's is rebased onto it; one that does is refused, and
the writer gets a :class:`StoreError` saying nothing was written. Icechunk's local
storage is not safe for concurrent commits, so on a local folder a writer also holds an
exclusive lock (``flock`` on ``STORE.lock`` beside it) for the whole transaction; a
second writer is refused at once with a clear error.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

from wormflow.core.errors import StoreError, StoreWriteError

BRANCH = "main"
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?P<rest>.*)$")
_SCHEMES = ("file", "s3", "gs", "az")


@dataclass(frozen=True)
class Location:
    """A parsed store location: ``scheme`` one of file, s3, gs, az; ``path`` the local
    folder (file) or ``bucket`` and ``prefix`` (object storage)."""
    scheme: str
    path: str = ""
    bucket: str = ""
    prefix: str = ""

    @property
    def local(self) -> bool:
        return self.scheme == "file"

    def __str__(self) -> str:
        return self.path if self.local else f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


def parse_location(location: "str | os.PathLike | Location") -> Location:
    """A path or URL as a :class:`Location`; unsupported or malformed URLs are refused."""
    if isinstance(location, Location):
        return location
    text = os.fspath(location)
    match = _URL.match(text)
    if match is None or (len(match["scheme"]) == 1 and os.name == "nt"):      # a plain path
        return Location("file", path=str(Path(text).expanduser().resolve()))
    scheme, rest = match["scheme"].lower(), match["rest"]
    if scheme not in _SCHEMES:
        raise StoreError(f"{text}: stores can live on a local path, file://, s3://, gs:// or az://, "
                         f"not {scheme}://")
    if not rest.startswith("//"):
        raise StoreError(f"{text}: not a valid {scheme} URL (expected {scheme}://…)")
    rest = rest[2:]
    if scheme == "file":
        if not rest.startswith("/"):
            raise StoreError(f"{text}: a file:// URL needs an absolute path (file:///data/store)")
        return Location("file", path=str(Path(rest).resolve()))
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise StoreError(f"{text}: the URL names no bucket")
    if scheme == "s3" and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise StoreError(f"{text}: {bucket!r} is not a valid S3 bucket name (3-63 lower-case letters, digits, "
                         "dots and hyphens)")
    if not prefix:
        raise StoreError(f"{text}: give the store a prefix inside the bucket ({scheme}://{bucket}/NAME)")
    return Location(scheme, bucket=bucket, prefix=prefix)


def _storage(loc: Location, endpoint_url: str | None = None):
    import icechunk

    if loc.local:
        return icechunk.local_filesystem_storage(loc.path)
    if loc.scheme == "s3":
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return icechunk.s3_storage(bucket=loc.bucket, prefix=loc.prefix, from_env=True, endpoint_url=endpoint,
                                   allow_http=bool(endpoint and endpoint.startswith("http://")),
                                   force_path_style=bool(endpoint),
                                   region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    if loc.scheme == "gs":
        return icechunk.gcs_storage(bucket=loc.bucket, prefix=loc.prefix, from_env=True)
    account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME") or os.environ.get("AZURE_STORAGE_ACCOUNT")
    if not account:
        raise StoreError(f"{loc}: set AZURE_STORAGE_ACCOUNT_NAME to the storage account of the container")
    return icechunk.azure_storage(account=account, container=loc.bucket, prefix=loc.prefix, from_env=True)


def _quiet() -> None:
    """Icechunk warns on every local repository that local storage is unsafe for
    concurrent commits; wormflow holds a lock there (see the module), so the warning
    would only alarm users. Errors still print."""
    import icechunk

    icechunk.set_logs_filter("icechunk=error")


def exists(location, *, endpoint_url: str | None = None) -> bool:
    """Whether an Icechunk repository lives at ``location``."""
    import icechunk

    loc = parse_location(location)
    if loc.local and not Path(loc.path).exists():
        return False
    _quiet()
    try:
        return bool(icechunk.Repository.exists(_storage(loc, endpoint_url)))
    except Exception as exc:  # the storage cannot be reached or listed
        raise StoreError(f"{loc}: the storage cannot be reached: {exc}") from exc


def open_repository(location, *, create: bool = False, endpoint_url: str | None = None):
    """The Icechunk repository at ``location`` (created when ``create`` and absent). A
    folder that is not a repository (a store of wormflow's earlier plain-Zarr layout,
    any other folder) is refused, never overwritten."""
    import icechunk

    loc = parse_location(location)
    _quiet()
    if loc.local:
        folder = Path(loc.path)
        if folder.exists() and not (folder / "refs").is_dir() and any(folder.iterdir()):
            raise StoreError(_not_a_repository(folder))
        if not create and not folder.exists():
            raise StoreError(f"{loc}: no store here")
        if create:
            try:
                folder.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{loc}: cannot create the store's folder: {exc.strerror or exc}") from exc
    try:
        storage = _storage(loc, endpoint_url)
        if icechunk.Repository.exists(storage):
            return icechunk.Repository.open(storage)
        if not create:
            raise StoreError(f"{loc}: no store here")
        repo = icechunk.Repository.create(storage, _config())
        repo.save_config()
        return repo
    except StoreError:
        raise
    except Exception as exc:  # icechunk raises its own errors for unreachable or unwritable storage
        raise StoreError(f"{loc}: the store cannot be opened: {_reason(exc)}") from exc


WORMS_PER_MANIFEST = 256


def _config():
    """The repositories' configuration: manifests split every 256 worms along the ``worm``
    dim, so that a commit rewrites the manifest of the worms it touched, not one listing
    every chunk of the store (which made an append cost grow with the store's size)."""
    import icechunk as ic

    split = ic.ManifestSplittingConfig.from_dict(
        {ic.ManifestSplitCondition.AnyArray(): {ic.ManifestSplitDimCondition.DimensionName("worm"): WORMS_PER_MANIFEST}})
    return ic.RepositoryConfig(manifest=ic.ManifestConfig(splitting=split))


def _not_a_repository(folder: Path) -> str:
    meta = folder / "zarr.json"
    if meta.is_file():
        try:
            fmt = json.loads(meta.read_text()).get("attributes", {}).get("wormflow_store")
        except (OSError, json.JSONDecodeError):
            fmt = None
        if fmt:
            return (f"{folder}: a wormflow store of the earlier plain-Zarr layout ({fmt}); this version writes "
                    f"Icechunk repositories. Ingest its sources into a new store (`wormflow ingest activity "
                    f"FILES --store NEW`), or export what you need from it with an earlier wormflow.")
    return f"{folder}: exists and is not a wormflow store (no Icechunk repository in it)"


def _reason(exc: Exception) -> str:
    """The cause of an error in one line: for Icechunk's error chains (``x outer`` …
    ``-> innermost``) the innermost cause, e.g. "No space left on device (os error 28)"."""
    lines = [line.strip() for line in str(exc).strip().splitlines()]
    causes = [line.split("->", 1)[1].strip() for line in lines if line.startswith(("`->", "|->"))]
    if causes:
        return causes[-1]
    return lines[0].removeprefix("x ").strip() if lines and lines[0] else type(exc).__name__


def write_failed(location, exc: Exception) -> StoreWriteError:
    """The error for a failed write to the store at ``location`` (disk full, read-only…)."""
    return StoreWriteError(f"{parse_location(location)}: cannot write to the store: {_reason(exc)}; nothing of this "
                           "write was committed")


def readonly_session(repo, version: str | None = None):
    """A read-only session on the latest commit of the main branch, or on ``version``: a
    tag, a snapshot id, or a branch."""
    if version is None:
        return repo.readonly_session(branch=BRANCH)
    for kind in ("tag", "snapshot_id", "branch"):
        try:
            return repo.readonly_session(**{kind: version})
        except Exception:  # not that kind of name
            continue
    raise StoreError(f"no tag, snapshot or branch named {version!r} in this store")


@contextlib.contextmanager
def writer_lock(location) -> Iterator[None]:
    """An exclusive writer lock for a local store (``STORE.lock`` beside it); nothing on
    object storage, where Icechunk's conflict detection guards commits."""
    loc = parse_location(location)
    if not loc.local:
        yield
        return
    lock_path = Path(loc.path).with_name(Path(loc.path).name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "w")
    except OSError as exc:
        raise StoreWriteError(f"{loc}: cannot write here: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{loc}: another wormflow process is writing to this store; try again when it ends")
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def commit(session, message: str, metadata: dict, location) -> str:
    """Commit ``session`` with ``message`` and ``metadata``; another writer's commit to the
    same branch in the meantime is rebased over when the changes do not overlap. Returns
    the snapshot id."""
    import icechunk

    try:
        return session.commit(message, metadata=metadata, rebase_with=icechunk.ConflictDetector(), rebase_tries=5)
    except (icechunk.ConflictError, icechunk.RebaseFailedError) as exc:
        raise StoreError(f"{parse_location(location)}: another writer changed the same arrays at the same time; "
                         "nothing of this write was committed (run it again)") from exc
    except Exception as exc:
        raise StoreWriteError(f"{parse_location(location)}: the commit failed and nothing was written: "
                              f"{_reason(exc)}") from exc


PRIVATE_PREFIX = "wormflow-write-"


def private_branch(repo, location) -> tuple[str, str]:
    """(main's snapshot, a new private branch at it) for one writer. On a local folder,
    where the writer holds the lock, branches left by killed writers are removed first."""
    import uuid

    if parse_location(location).local:
        for name in repo.list_branches():
            if name.startswith(PRIVATE_PREFIX):
                drop_branch(repo, name)
    base = repo.lookup_branch(BRANCH)
    branch = f"{PRIVATE_PREFIX}{uuid.uuid4().hex[:16]}"
    repo.create_branch(branch, base)
    return base, branch


def fast_forward(repo, branch: str, snapshot_id: str, base: str, location) -> None:
    """Move ``main`` from ``base`` to ``snapshot_id`` (a commit of ``branch``, made on top
    of ``base``) in one compare-and-swap: if another writer moved ``main`` meanwhile,
    nothing changes and the writer gets a clear error."""
    try:
        repo.reset_branch(BRANCH, snapshot_id, from_snapshot_id=base)
    except Exception as exc:  # the branch moved under us
        raise StoreError(f"{parse_location(location)}: another writer committed to the store meanwhile; "
                         "nothing of this write was committed (run it again)") from exc


def drop_branch(repo, branch: str) -> None:
    """Delete a private branch (its snapshots go with Icechunk's garbage collection)."""
    try:
        repo.delete_branch(branch)
    except Exception:  # already gone, or never created
        pass


@dataclass
class Commit:
    id: str
    written_at: datetime
    message: str
    metadata: dict


def history(location, *, endpoint_url: str | None = None) -> list[Commit]:
    """The commits of the main branch, newest first."""
    repo = open_repository(location, endpoint_url=endpoint_url)
    return [Commit(s.id, s.written_at, s.message, dict(s.metadata or {})) for s in repo.ancestry(branch=BRANCH)]


def object_strings(ds):
    """Fixed-width and numpy StringDType strings of an xarray Dataset as object dtype: what
    zarr 3 writes (``<U`` breaks appends) and what the stack reads (``where``'s NaN fill
    cannot be promoted with StringDType, which is what xarray opens zarr strings as)."""
    def fix(v):
        return v.astype(object) if v.dtype.kind in "UT" else v
    ds = ds.map(fix)
    return ds.assign_coords({k: fix(c.variable) for k, c in ds.coords.items() if c.dtype.kind in "UT"})


def root_attrs(location, version: str | None = None) -> dict:
    """The attributes of the store's root group at its latest commit (or ``version``); {}
    where there is no store (or it holds nothing yet). How a command tells an activity
    store from a connectome store or an analysis result without opening its arrays."""
    import zarr

    try:
        session = readonly_session(open_repository(location), version)
        return dict(zarr.open_group(store=session.store, mode="r", zarr_format=3).attrs)
    except Exception:  # no store, not a repository, or no root group yet (zarr's own error types)
        return {}


def store_kind(location) -> str:
    """"activity", "connectome" or "analysis" for a wormflow store at ``location``, else ""."""
    attrs = root_attrs(location)
    if "wormflow_store" in attrs:
        return str(attrs["wormflow_store"]).split("/")[0].replace("wormflow-", "")
    return "analysis" if attrs.get("wormflow_analysis") else ""
