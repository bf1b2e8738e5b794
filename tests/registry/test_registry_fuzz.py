"""Bad input never gives a 500: random methods, paths, headers and bodies against a live server."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oci import digest

SEGMENTS = st.one_of(
    st.sampled_from(
        ["v2", "blobs", "uploads", "manifests", "tags", "list", "referrers", "_catalog", "..",
         "a", "A", "x-y", "latest", digest(b"x"), "sha256:bad", "sha512:" + "a" * 128, ""]
    ),
    st.text(max_size=12),
)  # fmt: skip
HEADERS = st.dictionaries(
    st.sampled_from(["Range", "Content-Range", "Accept", "Content-Type", "Authorization"]),
    st.one_of(
        st.sampled_from(["bytes=0-1", "bytes=5-2", "0-9", "bytes 1-0/*", "Basic !!!", "*/*"]),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
    ),
)
QUERY = st.dictionaries(
    st.sampled_from(["digest", "n", "last", "mount", "from", "tag", "artifactType"]),
    st.one_of(st.sampled_from(["sha256:zz", "-1", "99999999999999999999", digest(b"")]),
              st.text(max_size=20)),
    max_size=3,
)  # fmt: skip


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]),
    segments=st.lists(SEGMENTS, min_size=1, max_size=6),
    headers=HEADERS,
    params=QUERY,
    body=st.binary(max_size=64),
)
def test_random_requests_never_get_a_server_error(
    http: httpx.Client,
    method: str,
    segments: list[str],
    headers: dict[str, str],
    params: dict[str, str],
    body: bytes,
) -> None:
    path = "/" + "/".join(quote(segment, safe=":") for segment in segments).lstrip("/")
    response = http.request(method, path, headers=headers, params=params, content=body)
    assert response.status_code < 500, (method, path, headers, params, response.text)
    if response.status_code >= 400 and method != "HEAD":
        assert "errors" in response.json()
