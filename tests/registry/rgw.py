"""Ceph's RADOS Gateway for the S3 backend's tests: ``scripts/s3.sh`` under a temporary
directory, its credentials, a bucket maker and ``mdl registry serve --storage s3://...``."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers import RunningServer, free_port, start_mdl_registry

from mdl.registry.storage.s3 import S3Driver
from mdl.registry.storage.s3_client import S3Client

CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "s3.sh"


@dataclass(frozen=True)
class Rgw:
    endpoint: str

    def client(self) -> S3Client:
        return S3Client(self.endpoint)

    def bucket(self) -> str:
        """A new empty bucket."""
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client().call("create_bucket", Bucket=name)
        return name

    def driver(self, bucket: str, prefix: str = "") -> S3Driver:
        return S3Driver(self.client(), bucket, prefix)

    def serve(self, bucket: str, root: Path, *args: str) -> RunningServer:
        """``mdl registry serve --storage s3://BUCKET`` on this gateway."""
        storage = ("--storage", f"s3://{bucket}", "--s3-endpoint", self.endpoint)
        return start_mdl_registry(root, *storage, *args)


@contextmanager
def start_rgw(directory: Path, attempts: int = 2) -> Iterator[Rgw]:
    """scripts/s3.sh under ``directory``; a failed start (a port taken meanwhile, a daemon
    too slow on a loaded machine) is stopped and tried again once on a new port."""
    for attempt in range(1, attempts + 1):
        place = directory / f"attempt-{attempt}"
        started = subprocess.run(
            [str(SCRIPT), "start", str(free_port()), str(place)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if started.returncode == 0:
            break
        subprocess.run([str(SCRIPT), "stop", str(place)], check=False, timeout=60)
        if attempt == attempts:
            raise RuntimeError(f"scripts/s3.sh failed:\n{started.stderr}")
    try:
        values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        # The gateway's credentials, as every S3 client reads them: from the environment,
        # which registries and clients started by the tests inherit.
        saved = {key: os.environ.get(key) for key in CREDENTIALS}
        os.environ.update({key: values[key] for key in CREDENTIALS})
        try:
            yield Rgw(values["S3_ENDPOINT"].rstrip("/"))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        subprocess.run([str(SCRIPT), "stop", str(place)], check=False, timeout=60)
