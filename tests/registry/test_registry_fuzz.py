"""Bad input never gives a 500, and never grows the server: random methods, paths, headers,
queries and bodies, then the inputs the registry parses itself (ranges, page sizes, manifest
JSON), against a live server whose memory is measured around each run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oci import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, digest, push_blob
from servers import RunningServer
from test_registry_memory import tree_rss

ALLOWED_GROWTH = 64 * 1024 * 1024
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.sampled_from(["9" * 5000, "0" * 300 + "1", "18446744073709551616", "-1", "\u00b2", ""]),
)
SEGMENTS = st.one_of(
    st.sampled_from(
        ["v2", "blobs", "uploads", "manifests", "tags", "list", "referrers", "_catalog", "..",
         "a", "A", "x-y", "latest", digest(b"x"), "sha256:bad", "sha512:" + "a" * 128, "",
         "list\n", "a\x00", "a\r\nX-Injected: 1", 'a"b', "%0A"]
    ),
    st.text(max_size=12),
)  # fmt: skip
HEADERS = st.dictionaries(
    st.sampled_from(
        ["Range", "Content-Range", "Accept", "Content-Type", "Authorization", "Origin",
         "Sec-Fetch-Site"]
    ),
    st.one_of(
        st.sampled_from(["bytes=0-1", "bytes=5-2", "0-9", "bytes 1-0/*", "Basic !!!", "*/*",
                         "cross-site", "https://evil.example", "text/plain"]),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
        NUMBERS.map(lambda n: f"bytes={n}-{n}"),
    ),
)  # fmt: skip
QUERY = st.dictionaries(
    st.sampled_from(["digest", "n", "last", "mount", "from", "tag", "artifactType"]),
    st.one_of(st.sampled_from(["sha256:zz", "-1", "99999999999999999999", digest(b"")]),
              st.text(max_size=20), NUMBERS),
    max_size=3,
)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@pytest.fixture
def memory(registry: RunningServer, http: httpx.Client) -> Iterator[None]:
    """The server's memory may not grow by more than ALLOWED_GROWTH during the test."""
    http.get("/v2/")
    before = tree_rss(registry.process.pid)
    yield
    after = tree_rss(registry.process.pid)
    assert after - before < ALLOWED_GROWTH, (before, after)


def check(response: httpx.Response, what: object) -> None:
    assert response.status_code < 500, (what, response.text[:500])
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert "errors" in response.json(), (what, response.text[:500])


@FUZZ
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "BREW"]),
    segments=st.lists(SEGMENTS, min_size=1, max_size=6),
    headers=HEADERS,
    params=QUERY,
    body=st.binary(max_size=64),
)
def test_random_requests_never_get_a_server_error(
    http: httpx.Client,
    memory: None,
    method: str,
    segments: list[str],
    headers: dict[str, str],
    params: dict[str, str],
    body: bytes,
) -> None:
    path = "/" + "/".join(quote(segment, safe=":") for segment in segments).lstrip("/")
    raw = {key: value.encode() for key, value in headers.items()}
    response = http.request(method, path, headers=raw, params=params, content=body)
    check(response, (method, path, headers, params))


@pytest.fixture(scope="module")
def stored(registry: RunningServer) -> str:
    """A repository holding one blob and one upload in progress."""
    with httpx.Client(base_url=registry.url) as http:
        push_blob(http, "fuzz/target", b"0123456789" * 100)
    return "fuzz/target"


@FUZZ
@given(
    first=NUMBERS,
    last=NUMBERS,
    unit=st.sampled_from(["bytes=", "bytes ", "", "items="]),
    n=NUMBERS,
    after=st.text(max_size=20),
)
def test_ranges_and_pages_never_get_a_server_error(
    http: httpx.Client, memory: None, stored: str, first: str, last: str, unit: str, n: str,
    after: str,
) -> None:  # fmt: skip
    blob = f"/v2/{stored}/blobs/{digest(b'0123456789' * 100)}"
    header = f"{unit}{first}-{last}".encode()
    check(http.get(blob, headers={"Range": header}), ("Range", header))
    location = http.post(f"/v2/{stored}/blobs/uploads/").headers["location"]
    patched = http.patch(location, content=b"abc", headers={"Content-Range": header})
    check(patched, ("Content-Range", header))
    http.delete(location)
    for path in (f"/v2/{stored}/tags/list", "/v2/_catalog"):
        check(http.get(path, params={"n": n, "last": after}), (path, n, after))


def manifest_like(fields: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest(b"{}"), "size": 2},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest(b"x"), "size": 1}],
    }
    return {**base, **fields}


BODIES = st.one_of(
    JSON.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(
        st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "manifests",
                         "subject", "annotations", "artifactType"]),
        JSON,
        max_size=3,
    ).map(lambda fields: json.dumps(manifest_like(fields)).encode()),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.sampled_from([b'{"a":1,"a":2}', b"1" * 5000, b"NaN", b"\xff\xfe", b""]),
    st.binary(max_size=256),
)  # fmt: skip


@FUZZ
@given(
    body=BODIES,
    media_type=st.sampled_from([OCI_MANIFEST, OCI_INDEX, "application/json", ""]),
    reference=st.sampled_from(["fuzz", digest(b"not this")]),
)
def test_manifest_bodies_never_get_a_server_error(
    http: httpx.Client, memory: None, stored: str, body: bytes, media_type: str, reference: str
) -> None:
    headers = {"Content-Type": media_type} if media_type else {}
    response = http.put(f"/v2/{stored}/manifests/{reference}", content=body, headers=headers)
    check(response, (body[:200], media_type))
