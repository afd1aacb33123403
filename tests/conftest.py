"""Shared test fixtures: the local mirror of real files, and lab-layout fixture writers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def mirror_path() -> Path:
    """The one setting tests use to find the real files: WORMFLOW_MIRROR or ../shared/data."""
    env = os.environ.get("WORMFLOW_MIRROR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = mirror_path()
    if not (path / "manifest.csv").is_file():
        pytest.fail(f"local mirror not found at {path}; set WORMFLOW_MIRROR to the folder holding manifest.csv")
    return path


@pytest.fixture(scope="session")
def flavell_files(mirror) -> list[Path]:
    return sorted((mirror / "activity" / "Dag2023").glob("*/*.h5"))


@pytest.fixture(scope="session")
def mirror_store(tmp_path_factory, mirror):
    """Every activity file of the mirror ingested once through the CLI: (store, CliRunner result).

    Tests must not modify it; copy it first."""
    from click.testing import CliRunner

    from pipeline.cli import main

    store = tmp_path_factory.mktemp("s") / "mirror.zarr"
    result = CliRunner().invoke(main, ["ingest", "activity", str(mirror / "activity"), "--store", str(store)])
    return store, result


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server (moto's standalone server) on 127.0.0.1 for the session, with
    a bucket: the object-storage tests run against it, and it stops when the session ends.
    Yields (endpoint URL, bucket, environment for its clients)."""
    from tests.s3server import moto_server

    with moto_server("wormflow-test") as (endpoint, env):
        yield endpoint, "wormflow-test", env
