"""Blob uploads over raw HTTP: monolithic, POST+PUT, chunked, streamed, out of order, status,
cancel, mount, digest mismatch, sessions that survive a restart."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from oci import digest, errors, push_blob
from servers import RunningServer, start_mdl_registry

DATA = os.urandom(3 * 1024 + 17)


def start(http: httpx.Client, repo: str) -> str:
    response = http.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202
    assert response.headers["range"] == "0-0"
    assert response.headers["docker-upload-uuid"]
    assert response.headers["location"].startswith(f"/v2/{repo}/blobs/uploads/")
    return response.headers["location"]


def test_monolithic_post_with_digest_is_201(http: httpx.Client, repo: str) -> None:
    dgst = digest(DATA)
    response = http.post(f"/v2/{repo}/blobs/uploads/", params={"digest": dgst}, content=DATA)
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/{repo}/blobs/{dgst}"
    assert response.headers["docker-content-digest"] == dgst
    assert http.get(response.headers["location"]).content == DATA


def test_post_then_put_with_body(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)
    dgst = digest(DATA)
    response = http.put(location, params={"digest": dgst}, content=DATA)
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == dgst
    assert http.get(response.headers["location"]).content == DATA
    assert http.get(location).status_code == 404


def test_chunked_upload_with_content_range(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)
    chunks = [DATA[:1024], DATA[1024:2048], DATA[2048:]]
    offset = 0
    for chunk in chunks[:-1]:
        response = http.patch(
            location,
            content=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        offset += len(chunk)
        assert response.status_code == 202
        assert response.headers["range"] == f"0-{offset - 1}"
        assert response.headers["content-length"] == "0"
        location = response.headers["location"]
        status = http.get(location)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{offset - 1}"
    last = chunks[-1]
    response = http.put(
        location,
        params={"digest": digest(DATA)},
        content=last,
        headers={"Content-Range": f"{offset}-{offset + len(last) - 1}"},
    )
    assert response.status_code == 201
    assert http.get(f"/v2/{repo}/blobs/{digest(DATA)}").content == DATA


def test_streamed_patch_without_content_range(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)

    def body() -> object:
        yield DATA[:100]
        yield DATA[100:]

    response = http.patch(location, content=body())
    assert response.status_code == 202
    assert response.headers["range"] == f"0-{len(DATA) - 1}"
    done = http.put(response.headers["location"], params={"digest": digest(DATA)})
    assert done.status_code == 201


def test_out_of_order_chunk_is_416_with_range_and_recoverable(
    http: httpx.Client, repo: str
) -> None:
    location = start(http, repo)
    http.patch(location, content=DATA[:1024], headers={"Content-Range": "0-1023"})
    for method in ("PATCH", "PUT"):
        bad = http.request(
            method,
            location,
            params={"digest": digest(DATA)} if method == "PUT" else None,
            content=DATA[2048:],
            headers={"Content-Range": f"2048-{len(DATA) - 1}"},
        )
        assert bad.status_code == 416
        assert bad.headers["range"] == "0-1023"
        assert bad.headers["location"] == location
        assert errors(bad) == ["BLOB_UPLOAD_INVALID"]
    again = http.patch(location, content=DATA[:10], headers={"Content-Range": "0-9"})
    assert again.status_code == 416
    status = http.get(location)
    assert (status.status_code, status.headers["range"]) == (204, "0-1023")
    rest = http.put(
        location,
        params={"digest": digest(DATA)},
        content=DATA[1024:],
        headers={"Content-Range": f"1024-{len(DATA) - 1}"},
    )
    assert rest.status_code == 201


def test_chunk_length_must_match_content_range(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)
    response = http.patch(location, content=DATA[:10], headers={"Content-Range": "0-19"})
    assert response.status_code == 400
    assert errors(response) == ["SIZE_INVALID"]
    assert http.get(location).headers["range"] == "0-0"


def test_malformed_content_range_is_400(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)
    response = http.patch(location, content=b"x", headers={"Content-Range": "bytes=0-0"})
    assert response.status_code == 400
    assert errors(response) == ["BLOB_UPLOAD_INVALID"]


@pytest.mark.parametrize("mode", ["post-only", "post-put", "chunked", "stream"])
def test_digest_mismatch_is_400_and_nothing_is_stored(
    http: httpx.Client, repo: str, mode: str
) -> None:
    claimed = digest(DATA)
    corrupt = DATA + b"oh no"
    if mode == "post-only":
        response = http.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=corrupt
        )
    else:
        location = start(http, repo)
        if mode == "post-put":
            response = http.put(location, params={"digest": claimed}, content=corrupt)
        else:
            headers = {"Content-Range": f"0-{len(corrupt) - 1}"} if mode == "chunked" else {}
            location = http.patch(location, content=corrupt, headers=headers).headers["location"]
            response = http.put(location, params={"digest": claimed})
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]
    assert http.head(f"/v2/{repo}/blobs/{claimed}").status_code == 404


def test_put_without_digest_is_400(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)
    for params in ({}, {"digest": "sha256:nope"}):
        response = http.put(location, params=params, content=b"x")
        assert response.status_code == 400
        assert errors(response) == ["DIGEST_INVALID"]


def test_cancel_then_unknown(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)
    assert http.delete(location).status_code == 204
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        response = http.request(method, location, params={"digest": digest(b"")})
        assert response.status_code == 404
        assert errors(response) == ["BLOB_UPLOAD_UNKNOWN"]


def test_malformed_upload_id_is_404(http: httpx.Client, repo: str) -> None:
    response = http.get(f"/v2/{repo}/blobs/uploads/..%2f..%2fx")
    assert response.status_code == 404


def test_session_of_another_repository_is_unknown(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)
    other = location.replace(repo, f"{repo}-other")
    assert http.get(other).status_code == 404


def test_sha512_chunked_upload(http: httpx.Client, repo: str) -> None:
    location = start(http, repo)
    location = http.patch(location, content=DATA, headers={"Content-Range": f"0-{len(DATA) - 1}"})
    dgst = digest(DATA, "sha512")
    response = http.put(location.headers["location"], params={"digest": dgst})
    assert response.status_code == 201
    assert http.get(f"/v2/{repo}/blobs/{dgst}").content == DATA


def test_mount_from_another_repository_is_201(http: httpx.Client, repo: str) -> None:
    dgst = push_blob(http, f"{repo}-src", DATA)
    response = http.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": dgst, "from": f"{repo}-src"}
    )
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/{repo}/blobs/{dgst}"
    assert response.headers["docker-content-digest"] == dgst
    assert http.get(f"/v2/{repo}/blobs/{dgst}").content == DATA


def test_mount_of_a_missing_blob_falls_back_to_202(http: httpx.Client, repo: str) -> None:
    dgst = digest(os.urandom(8))
    response = http.post(f"/v2/{repo}/blobs/uploads/", params={"mount": dgst, "from": "x/y"})
    assert response.status_code == 202
    assert "/blobs/uploads/" in response.headers["location"]


def test_anonymous_mount_on_an_open_registry(http: httpx.Client, repo: str) -> None:
    dgst = push_blob(http, f"{repo}-src", DATA)
    response = http.post(f"/v2/{repo}/blobs/uploads/", params={"mount": dgst})
    assert response.status_code == 201
    assert http.head(f"/v2/{repo}/blobs/{dgst}").status_code == 200


def test_upload_sessions_survive_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with start_mdl_registry(root) as first, httpx.Client(base_url=first.url) as client:
        location = start(client, "restart/me")
        client.patch(location, content=DATA[:2000], headers={"Content-Range": "0-1999"})
        empty = start(client, "restart/me")
    with start_mdl_registry(root) as second, httpx.Client(base_url=second.url) as client:
        assert isinstance(second, RunningServer)
        status = client.get(location)
        assert (status.status_code, status.headers["range"]) == (204, "0-1999")
        response = client.put(
            location,
            params={"digest": digest(DATA)},
            content=DATA[2000:],
            headers={"Content-Range": f"2000-{len(DATA) - 1}"},
        )
        assert response.status_code == 201
        assert client.get(f"/v2/restart/me/blobs/{digest(DATA)}").content == DATA
        assert client.get(empty).headers["range"] == "0-0"
        assert client.put(empty, params={"digest": digest(b"")}).status_code == 201


def upload_hashes(http: httpx.Client) -> int:
    """The running hashes the server holds in memory, from /metrics."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("mdl_registry_upload_hashes "):
            return int(line.split()[1])
    raise AssertionError("mdl_registry_upload_hashes is not in /metrics")


def test_an_upload_holds_memory_only_until_it_ends(http: httpx.Client, repo: str) -> None:
    before = upload_hashes(http)
    started = [start(http, repo) for _ in range(3)]
    assert upload_hashes(http) == before  # a session with no bytes yet costs no memory
    for location in started:
        assert http.patch(location, content=DATA[:10]).status_code == 202
    assert upload_hashes(http) == before + 3
    assert http.put(started[0], params={"digest": digest(DATA[:10])}).status_code == 201
    assert http.delete(started[1]).status_code == 204
    bad = http.put(started[2], params={"digest": digest(b"something else")})
    assert bad.status_code == 400
    assert upload_hashes(http) == before


def test_upload_sessions_are_bounded_per_repository(tmp_path: Path) -> None:
    server = start_mdl_registry(tmp_path / "root", "--max-uploads", "3")
    with server, httpx.Client(base_url=server.url) as http:
        locations = [start(http, "t/full") for _ in range(3)]
        refused = http.post("/v2/t/full/blobs/uploads/")
        assert refused.status_code == 429
        assert errors(refused) == ["TOOMANYREQUESTS"]
        monolithic = http.post("/v2/t/full/blobs/uploads/", params={"digest": digest(b"m")})
        assert monolithic.status_code == 429
        start(http, "t/other")
        assert http.delete(locations[0]).status_code == 204
        start(http, "t/full")


def test_an_expired_session_makes_room_and_frees_its_memory(tmp_path: Path) -> None:
    server = start_mdl_registry(tmp_path / "root", "--max-uploads", "1", "--upload-expiry", "1")
    with server, httpx.Client(base_url=server.url) as http:
        idle = start(http, "t/expiring")
        assert http.patch(idle, content=b"abc").status_code == 202
        assert upload_hashes(http) == 1
        time.sleep(2.1)  # the session's idle time is what is under test
        fresh = start(http, "t/expiring")
        assert http.get(idle).status_code == 404
        assert http.patch(fresh, content=b"def").status_code == 202
        assert upload_hashes(http) == 1
