"""Shared test fixtures: the local mirror of real files, and lab-layout fixture writers."""

from __future__ import annotations

import os
import sys
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
    import shutil
    import socket
    import subprocess
    import time
    import urllib.request

    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"moto_server did not start on {endpoint}")
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": endpoint}
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="wormflow-test")
        yield endpoint, "wormflow-test", env
    finally:
        proc.terminate()
        proc.wait(timeout=10)
