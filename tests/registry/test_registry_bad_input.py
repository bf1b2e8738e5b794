"""Bad input is a 4xx in the spec's error shape, never a 500: JSON no parser should accept,
numbers too long for ``int``, descriptors whose sizes lie, digests with a trailing newline."""

from __future__ import annotations

import httpx
import pytest
from oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest,
    encode,
    errors,
    push_blob,
    push_manifest,
)

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes"
LONG = "9" * 5000
"""Longer than the 4300 digits ``int()`` converts."""


def manifest_text(config_size: int | str = len(CONFIG), layer_size: int | str = len(LAYER)) -> str:
    return (
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",'
        f'"config":{{"mediaType":"{OCI_CONFIG}","digest":"{digest(CONFIG)}","size":{config_size}}},'
        f'"layers":[{{"mediaType":"{OCI_LAYER}","digest":"{digest(LAYER)}","size":{layer_size}}}]}}'
    )


@pytest.fixture
def pushed(http: httpx.Client, repo: str) -> str:
    push_blob(http, repo, CONFIG)
    push_blob(http, repo, LAYER)
    assert (
        push_manifest(http, repo, "ok", manifest_text().encode(), OCI_MANIFEST).status_code == 201
    )
    return repo


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-arrays"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="nested-objects"),
        pytest.param(manifest_text(layer_size=LONG).encode(), id="5000-digit-size"),
        pytest.param(manifest_text(layer_size=2**64).encode(), id="size-past-int64"),
        pytest.param(manifest_text(layer_size="NaN").encode(), id="nan"),
    ],
)
def test_manifests_no_parser_should_accept_are_manifest_invalid(
    http: httpx.Client, pushed: str, body: bytes
) -> None:
    response = push_manifest(http, pushed, "bad", body, OCI_MANIFEST)
    assert response.status_code == 400, response.text[:300]
    assert errors(response) == ["MANIFEST_INVALID"]


def test_a_manifest_with_a_key_twice_is_invalid(http: httpx.Client, pushed: str) -> None:
    """Parsers disagree on which of two keys wins; a registry and a client could read two
    different manifests under one digest."""
    text = manifest_text()
    twice = text.replace(
        '"config":', f'"config":{encode(descriptor(OCI_CONFIG, b"other")).decode()},"config":', 1
    )
    response = push_manifest(http, pushed, "twice", twice.encode(), OCI_MANIFEST)
    assert response.status_code == 400, response.text
    assert errors(response) == ["MANIFEST_INVALID"]
    assert "duplicate" in response.text


@pytest.mark.parametrize(
    ("config_size", "layer_size"), [(len(CONFIG) + 1, len(LAYER)), (len(CONFIG), 1)]
)
def test_descriptor_sizes_must_match_the_blobs(
    http: httpx.Client, pushed: str, config_size: int, layer_size: int
) -> None:
    body = manifest_text(config_size, layer_size).encode()
    response = push_manifest(http, pushed, "lies", body, OCI_MANIFEST)
    assert response.status_code == 400, response.text
    assert errors(response) == ["MANIFEST_INVALID"]
    assert http.get(f"/v2/{pushed}/manifests/lies").status_code == 404


def test_an_index_child_size_must_match(http: httpx.Client, pushed: str) -> None:
    child = http.get(f"/v2/{pushed}/manifests/ok")
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": child.headers["docker-content-digest"], "size": 7}
        ],
    }
    response = push_manifest(http, pushed, "index", index)
    assert response.status_code == 400, response.text
    assert errors(response) == ["MANIFEST_INVALID"]


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"bytes=0-{LONG}", 206),
        (f"bytes={LONG}-", 416),
        (f"bytes=-{LONG}", 206),
        ("bytes=\u00b2-3", 200),
    ],
)
def test_ranges_with_overlong_numbers(
    http: httpx.Client, pushed: str, header: str, status: int
) -> None:
    headers = {"Range": header.encode("latin-1")}
    response = http.get(f"/v2/{pushed}/blobs/{digest(LAYER)}", headers=headers)
    assert response.status_code == status, response.text[:300]
    if status != 416:
        assert response.content == LAYER


@pytest.mark.parametrize("content_range", [f"0-{LONG}", f"{LONG}-{LONG}", f"0-4{LONG}"])
def test_content_ranges_with_overlong_numbers(
    http: httpx.Client, repo: str, content_range: str
) -> None:
    location = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    response = http.patch(location, content=b"12345", headers={"Content-Range": content_range})
    assert 400 <= response.status_code < 500, response.text[:300]
    assert errors(response)[0] in ("BLOB_UPLOAD_INVALID", "SIZE_INVALID")
    assert http.get(location).headers["range"] == "0-0"


@pytest.mark.parametrize("n", [LONG, "\u00b2", "\u0661", "1e3", " 5"])
def test_page_sizes_that_are_not_plain_numbers_are_refused(
    http: httpx.Client, pushed: str, n: str
) -> None:
    for path in (f"/v2/{pushed}/tags/list", "/v2/_catalog"):
        response = http.get(path, params={"n": n})
        assert response.status_code == 400, (path, n, response.text[:200])
        assert errors(response) == ["PAGINATION_NUMBER_INVALID"]


def test_a_digest_with_a_trailing_newline_is_refused(http: httpx.Client, pushed: str) -> None:
    response = http.get(f"/v2/{pushed}/blobs/{digest(LAYER)}%0A")
    assert response.status_code == 400
    assert errors(response) == ["UNSUPPORTED"]
    wrapped = http.post(f"/v2/{pushed}/blobs/uploads/", params={"digest": digest(b"z") + "\n"})
    assert wrapped.status_code == 400
    assert errors(wrapped) == ["DIGEST_INVALID"]
