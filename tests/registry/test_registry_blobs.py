"""Blob GET/HEAD/DELETE over raw HTTP: statuses, headers, ranges and error envelopes."""

from __future__ import annotations

import os

import httpx
import pytest
from oci import digest, errors, push_blob

BLOB = os.urandom(2048)


def test_base_endpoint_answers_200_with_api_version(http: httpx.Client) -> None:
    response = http.get("/v2/")
    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    assert response.json() == {}


def test_head_and_get_a_blob(http: httpx.Client, repo: str) -> None:
    dgst = push_blob(http, repo, BLOB)
    head = http.head(f"/v2/{repo}/blobs/{dgst}")
    assert head.status_code == 200
    assert head.headers["content-length"] == "2048"
    assert head.headers["docker-content-digest"] == dgst
    assert head.headers["content-type"] == "application/octet-stream"
    assert head.content == b""
    get = http.get(f"/v2/{repo}/blobs/{dgst}")
    assert get.status_code == 200
    assert get.content == BLOB
    assert get.headers["docker-content-digest"] == dgst
    assert get.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=500-1499", 500, 1499),
        ("bytes=500-", 500, 2047),
        ("bytes=-500", 1548, 2047),
        ("bytes=2000-5000", 2000, 2047),
    ],
)
def test_range_gets_206_with_content_range(
    http: httpx.Client, repo: str, header: str, first: int, last: int
) -> None:
    dgst = push_blob(http, repo, BLOB)
    response = http.get(f"/v2/{repo}/blobs/{dgst}", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == BLOB[first : last + 1]
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["content-range"] == f"bytes {first}-{last}/2048"


@pytest.mark.parametrize("header", ["bytes=500-0", "bytes=5000-10000"])
def test_unsatisfiable_range_is_416(http: httpx.Client, repo: str, header: str) -> None:
    dgst = push_blob(http, repo, BLOB)
    response = http.get(f"/v2/{repo}/blobs/{dgst}", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */2048"
    assert errors(response) == ["RANGE_INVALID"]


def test_multi_range_serves_the_whole_blob(http: httpx.Client, repo: str) -> None:
    dgst = push_blob(http, repo, BLOB)
    response = http.get(f"/v2/{repo}/blobs/{dgst}", headers={"Range": "bytes=0-1,5-6"})
    assert (response.status_code, response.content) == (200, BLOB)


def test_unknown_blob_is_404_blob_unknown(http: httpx.Client, repo: str) -> None:
    missing = digest(os.urandom(10))
    for method in ("GET", "HEAD"):
        response = http.request(method, f"/v2/{repo}/blobs/{missing}")
        assert response.status_code == 404
    assert errors(http.get(f"/v2/{repo}/blobs/{missing}")) == ["BLOB_UNKNOWN"]


def test_blob_of_another_repository_is_not_visible(http: httpx.Client, repo: str) -> None:
    dgst = push_blob(http, repo, BLOB)
    assert http.head(f"/v2/{repo}-other/blobs/{dgst}").status_code == 404


@pytest.mark.parametrize("bad", ["sha256:baddigeststring", "sha256:" + "Z" * 64, "nope"])
def test_malformed_digest_is_400_digest_invalid(http: httpx.Client, repo: str, bad: str) -> None:
    response = http.get(f"/v2/{repo}/blobs/{bad}")
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]


@pytest.mark.parametrize("name", ["UPPER", "a/-b", "a..b", "x/%2e%2e/y"])
def test_invalid_name_is_400_name_invalid(http: httpx.Client, name: str) -> None:
    response = http.get(f"/v2/{name}/blobs/{digest(b'x')}")
    assert response.status_code == 400
    assert errors(response) == ["NAME_INVALID"]


def test_path_traversal_never_reaches_storage(http: httpx.Client) -> None:
    response = http.get("/v2/../../etc/blobs/" + digest(b"x"))
    assert response.status_code in (400, 404)
    assert "errors" in response.json()


def test_delete_unlinks_the_blob_from_the_repository(http: httpx.Client, repo: str) -> None:
    dgst = push_blob(http, repo, BLOB)
    response = http.delete(f"/v2/{repo}/blobs/{dgst}")
    assert response.status_code == 202
    assert http.head(f"/v2/{repo}/blobs/{dgst}").status_code == 404
    second = http.delete(f"/v2/{repo}/blobs/{dgst}")
    assert second.status_code == 404
    assert errors(second) == ["BLOB_UNKNOWN"]


def test_empty_blob_round_trips(http: httpx.Client, repo: str) -> None:
    dgst = push_blob(http, repo, b"")
    head = http.head(f"/v2/{repo}/blobs/{dgst}")
    assert (head.status_code, head.headers["content-length"]) == (200, "0")
    assert http.get(f"/v2/{repo}/blobs/{dgst}").content == b""


def test_sha512_blob_round_trips(http: httpx.Client, repo: str) -> None:
    dgst = push_blob(http, repo, BLOB, "sha512")
    assert dgst.startswith("sha512:")
    response = http.get(f"/v2/{repo}/blobs/{dgst}")
    assert response.content == BLOB
    assert response.headers["docker-content-digest"] == dgst


def test_unknown_endpoint_and_wrong_method_use_the_envelope(http: httpx.Client) -> None:
    response = http.get("/nothing/here")
    assert response.status_code == 404
    assert errors(response) == ["NOT_FOUND"]
    response = http.post(f"/v2/x/blobs/{digest(b'x')}")
    assert response.status_code == 405
    assert errors(response) == ["UNSUPPORTED"]


def test_healthz_and_metrics(http: httpx.Client) -> None:
    assert http.get("/healthz").text == "ok\n"
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert 'mdl_registry_requests_total{method="GET",status="200"}' in metrics.text
    assert "mdl_registry_sent_bytes_total" in metrics.text
