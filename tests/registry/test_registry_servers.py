"""The server helpers other suites use (tests/servers.py), and what the server writes to its log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from oci import digest
from servers import start_distribution, start_mdl_registry


def test_mdl_registry_writes_json_access_logs_and_stops(tmp_path: Path) -> None:
    with start_mdl_registry(tmp_path / "root") as server:
        with httpx.Client(base_url=server.url) as http:
            http.get("/v2/x/manifests/nope")
        deadline = time.monotonic() + 10  # the log line is written after the response is sent
        while True:
            lines = server.log().splitlines()
            entries = [json.loads(line) for line in lines if line.startswith("{")]
            miss = [e for e in entries if e["path"] == "/v2/x/manifests/nope"]
            if miss or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        process = server.process
    assert miss and miss[0]["status"] == 404 and miss[0]["method"] == "GET"
    assert set(miss[0]) >= {"time", "remote", "user", "bytes_in", "bytes_out", "duration_ms"}
    assert process.poll() is not None


def test_distribution_helper_with_basic_auth(tmp_path: Path) -> None:
    with start_distribution(tmp_path / "dist", htpasswd=("alice", "pw")) as server:
        assert server.url == f"http://{server.host}"
        with httpx.Client(base_url=server.url) as anonymous:
            assert anonymous.get("/v2/").status_code == 401
        with httpx.Client(base_url=server.url, auth=("alice", "pw")) as http:
            location = http.post("/v2/d/blobs/uploads/").headers["location"]
            separator = "&" if "?" in location else "?"
            put = http.put(f"{location}{separator}digest={digest(b'x')}", content=b"x")
            assert put.status_code == 201
            assert http.get(f"/v2/d/blobs/{digest(b'x')}").content == b"x"
        process = server.process
    assert process.poll() is not None
