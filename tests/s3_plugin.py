"""Fixtures that stand up an S3 emulator: moto's server, a real HTTP process, as a bucket in production is.

One `moto_server` process starts per test session (so once per xdist worker) on a free port; each
test gets a bucket of its own (`s3_bucket`) and AWS credentials in its environment that only the
emulator accepts, with boto3's config files and instance metadata kept out of reach.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.redis_plugin import free_port

INSTALL_HINT = "install moto's S3 server and boto3: pip install 'moto[server]' boto3"


@dataclass
class S3Server:
    """A moto server process of the tests, on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    log_file: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def require_moto() -> None:
    missing = [name for name in ("moto", "flask_cors", "boto3") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: {INSTALL_HINT}", pytrace=False)


def start_s3_server(directory: Path) -> S3Server:
    """Start moto's server on a free port and wait until it answers HTTP."""
    require_moto()
    directory.mkdir(parents=True, exist_ok=True)
    log_file = directory / "moto.log"
    for _ in range(5):  # another process may take the free port before moto binds it
        port = free_port()
        log_file = directory / f"moto-{port}.log"
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        server = S3Server(port, process, log_file)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                requests.get(f"{server.endpoint}/moto-api/", timeout=1)
            except requests.ConnectionError:
                time.sleep(0.05)
                continue
            return server
        server.stop()
    pytest.fail(f"moto's S3 server did not start ({INSTALL_HINT}); its output:\n{log_file.read_text()}",
                pytrace=False)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@dataclass
class S3Bucket:
    """A bucket of the emulator, created for one test, with a boto3 client to look inside it."""

    name: str
    endpoint: str
    client: Any

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listing.get("Contents", []))


_buckets = itertools.count(1)


@pytest.fixture
def s3_bucket(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket, and an environment in which boto3 reaches only the emulator's fake credentials."""
    import boto3  # type: ignore[import-untyped]

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    name = f"atlas-test-{next(_buckets)}-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return S3Bucket(name, s3_server.endpoint, client)
