"""``mdl registry gc`` against a live registry: what it sweeps, what it keeps, and that pushes
running at the same time never end up with a manifest whose blobs are gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from oci import digest, image, push_blob
from servers import RunningServer, start_mdl_registry


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gc-root")


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[RunningServer]:
    with start_mdl_registry(root) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def gc(root: Path, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "mdl.cli", "registry", "gc", "--root", str(root), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_unreferenced_blobs_go_and_referenced_stay(
    root: Path, http: httpx.Client, repo: str
) -> None:
    dgst, body = image(http, repo, "v1")
    orphan = push_blob(http, repo, os.urandom(1000))
    dry = gc(root, "--grace-period", "0", "--dry-run")
    assert dry["dry_run"] is True
    assert orphan in dry["blobs"]
    assert http.head(f"/v2/{repo}/blobs/{orphan}").status_code == 200
    report = gc(root, "--grace-period", "0")
    assert orphan in report["blobs"]
    assert report["bytes_freed"] >= 1000
    assert http.head(f"/v2/{repo}/blobs/{orphan}").status_code == 404
    assert http.get(f"/v2/{repo}/manifests/v1").content == body
    for layer in json.loads(body)["layers"]:
        assert http.head(f"/v2/{repo}/blobs/{layer['digest']}").status_code == 200
    assert dgst not in report["blobs"]


def test_recent_blobs_are_kept_for_the_grace_period(
    root: Path, http: httpx.Client, repo: str
) -> None:
    fresh = push_blob(http, repo, os.urandom(500))
    report = gc(root)
    assert fresh not in report["blobs"]
    assert http.head(f"/v2/{repo}/blobs/{fresh}").status_code == 200


def test_blobs_of_a_deleted_manifest_are_swept(root: Path, http: httpx.Client, repo: str) -> None:
    dgst, body = image(http, repo, "v1")
    layers = [layer["digest"] for layer in json.loads(body)["layers"]]
    assert http.delete(f"/v2/{repo}/manifests/{dgst}").status_code == 202
    report = gc(root, "--grace-period", "0")
    assert set(layers) <= set(report["blobs"])
    assert dgst in report["blobs"]
    assert report["links_removed"] >= 2


def test_expired_upload_sessions_are_removed(root: Path, http: httpx.Client, repo: str) -> None:
    location = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    http.patch(location, content=b"partial", headers={"Content-Range": "0-6"})
    assert gc(root)["uploads_removed"] == 0
    assert http.get(location).status_code == 204
    assert gc(root, "--upload-expiry", "0")["uploads_removed"] >= 1
    assert http.get(location).status_code == 404


def test_gc_during_pushes_never_breaks_an_accepted_manifest(
    root: Path, http: httpx.Client, server: RunningServer, repo: str
) -> None:
    accepted: list[tuple[str, bytes]] = []
    failures: list[str] = []
    stop = threading.Event()

    def push_loop() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            number = 0
            while not stop.is_set() and number < 40:
                number += 1
                try:
                    accepted.append(image(client, repo, f"v{number}", layers=2))
                except AssertionError as exc:
                    failures.append(str(exc))

    pusher = threading.Thread(target=push_loop)
    pusher.start()
    try:
        for _ in range(4):
            gc(root, "--grace-period", "0")
    finally:
        stop.set()
        pusher.join()
    assert accepted
    for dgst, body in accepted:
        assert http.head(f"/v2/{repo}/manifests/{dgst}").status_code == 200
        manifest = json.loads(body)
        for blob in [manifest["config"], *manifest["layers"]]:
            response = http.get(f"/v2/{repo}/blobs/{blob['digest']}")
            assert response.status_code == 200
            assert digest(response.content) == blob["digest"]
    assert all("MANIFEST_BLOB_UNKNOWN" in failure for failure in failures), failures
