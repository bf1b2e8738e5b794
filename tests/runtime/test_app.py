"""The app in-process: CORS (local pages and desktop webviews allowed by default, MDL_ORIGINS
adds others) and endpoints whose collaborator the server was started without."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mdl.runtime.app import create_app
from mdl.runtime.config import ServeConfig
from mdl.runtime.library import Library
from mdl.runtime.models import ModelResolver
from mdl.runtime.process import WorkerRunner
from mdl.runtime.scheduler import Scheduler
from mdl.runtime.service import Service
from mdl.store.store import Store


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    store = Store(tmp_path / "store")
    config = ServeConfig.from_env({"MDL_ORIGINS": "https://chat.example.com"})
    service = Service(ModelResolver(store), Scheduler(WorkerRunner.start))
    app = create_app(service, Library(store), config)
    with TestClient(app, base_url="http://localhost:11434") as client:
        yield client


def preflight(http: TestClient, origin: str) -> tuple[int, str | None]:
    response = http.options(
        "/api/chat",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    return response.status_code, response.headers.get("access-control-allow-origin")


@pytest.mark.parametrize(
    "origin",
    ["http://localhost", "http://localhost:3000", "http://127.0.0.1:8080",
     "vscode-webview://abc", "https://chat.example.com"],
)  # fmt: skip
def test_allowed_origins(http: TestClient, origin: str) -> None:
    assert preflight(http, origin) == (200, origin)


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example"])
def test_other_origins_are_refused(http: TestClient, origin: str) -> None:
    status, allowed = preflight(http, origin)
    assert status == 403 and allowed is None  # the browser guard, before CORS


def test_simple_requests_carry_the_header(http: TestClient) -> None:
    response = http.get("/api/version", headers={"Origin": "http://localhost:5173"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert response.json()["version"]


@pytest.mark.parametrize("path", ["/api/pull", "/api/push", "/api/create"])
def test_without_its_collaborator_an_endpoint_is_501(http: TestClient, path: str) -> None:
    response = http.post(path, json={"model": "localhost:5000/x", "from": "x"})
    assert response.status_code == 501 and "not available" in response.json()["error"]
