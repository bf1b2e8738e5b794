"""Open access on loopback answers only local hosts and refuses cross-site browser requests
(``mdl.spec.browser``, as ``mdl serve`` does); auth modes keep answering any host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from oci import digest, errors
from servers import RunningServer, start_mdl_registry

BLOB = b"uploaded from a web page"


@pytest.fixture(scope="module")
def with_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("origin")
    with start_mdl_registry(root, "--origin", "https://models.example") as server:
        yield server


@pytest.mark.parametrize("host", ["evil.example", "attacker.example:5000", "10.0.0.1"])
def test_a_foreign_host_is_refused_on_loopback(http: httpx.Client, host: str) -> None:
    response = http.get("/v2/", headers={"Host": host})
    assert response.status_code == 403
    assert errors(response) == ["DENIED"]


def test_local_hosts_are_answered(http: httpx.Client, registry: RunningServer) -> None:
    for host in (registry.host, f"localhost:{registry.port}", "registry.localhost"):
        assert http.get("/v2/", headers={"Host": host}).status_code == 200, host


def test_a_cross_site_simple_upload_is_refused(http: httpx.Client, repo: str) -> None:
    """A page can POST text/plain without a preflight; it must not store a blob."""
    headers = {"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}
    params = {"digest": digest(BLOB)}
    response = http.post(f"/v2/{repo}/blobs/uploads/", params=params, content=BLOB, headers=headers)
    assert response.status_code == 403
    assert errors(response) == ["DENIED"]
    assert http.head(f"/v2/{repo}/blobs/{digest(BLOB)}").status_code == 404


def test_a_foreign_origin_is_refused_and_a_local_one_answered(
    http: httpx.Client, repo: str
) -> None:
    foreign = http.post(f"/v2/{repo}/blobs/uploads/", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert errors(foreign) == ["DENIED"]
    local = http.post(f"/v2/{repo}/blobs/uploads/", headers={"Origin": "http://localhost:3000"})
    assert local.status_code == 202


def test_origin_adds_a_host_and_an_origin(with_origin: RunningServer) -> None:
    with httpx.Client(base_url=with_origin.url) as http:
        headers = {"Host": "models.example", "Origin": "https://models.example"}
        assert http.get("/v2/", headers=headers).status_code == 200
        assert http.get("/v2/", headers={"Origin": "https://other.example"}).status_code == 403


def test_auth_modes_answer_any_host(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"user:{hashed}\n")
    server = start_mdl_registry(tmp_path / "root", "--htpasswd", str(tmp_path / "htpasswd"))
    with server, httpx.Client(base_url=server.url, auth=("user", "secret")) as http:
        assert http.get("/v2/", headers={"Host": "registry.example.com"}).status_code == 200
