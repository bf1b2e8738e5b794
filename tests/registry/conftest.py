"""A registry served once per session on 127.0.0.1, a raw HTTP client, a fresh repository name."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rgw import Rgw, start_rgw
from servers import RunningServer, start_mdl_registry


@pytest.fixture(scope="session")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="session")
def registry(registry_root: Path) -> Iterator[RunningServer]:
    with start_mdl_registry(registry_root) as server:
        yield server


@pytest.fixture
def http(registry: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        yield client


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"t/{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rgw]:
    """Ceph's RADOS Gateway on 127.0.0.1, started by scripts/s3.sh once per session (about
    20 s) and stopped by the PIDs it recorded."""
    with start_rgw(tmp_path_factory.mktemp("rgw")) as server:
        yield server
