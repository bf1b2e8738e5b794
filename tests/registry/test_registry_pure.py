"""The registry's pure parts: names, ranges, pagination, scopes, the error table."""

from __future__ import annotations

import pytest

from mdl.registry import names
from mdl.registry.auth.scopes import Need, RequestedScope, need
from mdl.registry.auth.throttle import LoginThrottle
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.numbers import CAP, decimal
from mdl.registry.pagination import link, page_size, paginate
from mdl.registry.ranges import Unsatisfiable, byte_range, content_range, upload_range


@pytest.mark.parametrize("name", ["a", "library/ubuntu", "a.b/c_d/e__f", "x-y--z/0", "a" * 255])
def test_valid_repository_names_pass(name: str) -> None:
    assert names.repository(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "../etc", "a/../b", "/abs", "a//b", "a/", "-a", "a_", "a..b", ".a", "a" * 256, "a b"],
)
def test_invalid_repository_names_are_name_invalid(name: str) -> None:
    with pytest.raises(OCIError) as caught:
        names.repository(name)
    assert caught.value.code is ErrorCode.NAME_INVALID


@pytest.mark.parametrize("text", ["latest", "v1.0", "_x", "A" * 128])
def test_valid_tags_pass(text: str) -> None:
    assert names.reference(text) == text


@pytest.mark.parametrize("text", [".x", "-x", "A" * 129, "a/b", ""])
def test_invalid_tags_are_tag_invalid(text: str) -> None:
    with pytest.raises(OCIError) as caught:
        names.tag(text)
    assert caught.value.code is ErrorCode.TAG_INVALID


@pytest.mark.parametrize(
    "text",
    ["sha256:baddigeststring", "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha512:" + "a" * 64],
)
def test_bad_digests_are_digest_invalid(text: str) -> None:
    with pytest.raises(OCIError) as caught:
        names.reference(text)
    assert caught.value.code is ErrorCode.DIGEST_INVALID


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=500-1499", (500, 1499)),
        ("bytes=500-", (500, 2047)),
        ("bytes=-500", (1548, 2047)),
        ("bytes=2000-5000", (2000, 2047)),
        ("bytes=0-0", (0, 0)),
        ("bytes=1-2,4-5", None),
        ("items=1-2", None),
        ("bytes=x-1", None),
    ],
)
def test_byte_range_of_2048_bytes(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 2048) == expected


@pytest.mark.parametrize("header", ["bytes=500-0", "bytes=5000-10000", "bytes=2048-", "bytes=-0"])
def test_unsatisfiable_ranges_raise(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, 2048)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0-1023", (0, 1023)),
        ("bytes 5-9/10", (5, 9)),
        ("5-9/*", (5, 9)),
        ("9-5", None),
        ("x", None),
    ],
)
def test_content_range(header: str, expected: tuple[int, int] | None) -> None:
    assert content_range(header) == expected


def test_upload_range_reports_last_byte_and_0_0_when_empty() -> None:
    assert (upload_range(0), upload_range(1), upload_range(1024)) == ("0-0", "0-0", "0-1023")


def test_paginate_and_link() -> None:
    items = ["a", "b", "c", "d", "e"]
    assert paginate(items, 2, None) == (["a", "b"], "b")
    assert paginate(items, 2, "b") == (["c", "d"], "d")
    assert paginate(items, 2, "d") == (["e"], None)
    assert paginate(items, None, "c") == (["d", "e"], None)
    assert paginate(items, 0, None) == ([], None)
    assert link("/v2/x/tags/list", 2, "b") == '</v2/x/tags/list?n=2&last=b>; rel="next"'


@pytest.mark.parametrize("n", ["-1", "abc", "10001", "1.5"])
def test_bad_page_sizes_are_refused(n: str) -> None:
    with pytest.raises(OCIError) as caught:
        page_size({"n": n})
    assert caught.value.code is ErrorCode.PAGINATION_NUMBER_INVALID


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v2/", Need("base")),
        ("GET", "/v2/_catalog", Need("catalog")),
        ("GET", "/v2/a/b/manifests/x", Need("repository", "a/b", "pull")),
        ("HEAD", "/v2/a/blobs/sha256:x", Need("repository", "a", "pull")),
        ("POST", "/v2/a/blobs/uploads/", Need("repository", "a", "push")),
        ("DELETE", "/v2/a/blobs/uploads/abc", Need("repository", "a", "push")),
        ("DELETE", "/v2/a/manifests/x", Need("repository", "a", "delete")),
        ("GET", "/v2/a/blobs/uploads/x/tags/list", Need("repository", "a/blobs/uploads/x", "pull")),
        ("GET", "/healthz", None),
        ("GET", "/token", None),
        ("GET", "/metrics", Need("metrics")),
        ("GET", "/v2/a/tags/list\n", Need("unknown")),
        ("GET", "/v2/a/unknown", Need("unknown")),
        ("GET", "/elsewhere", Need("unknown")),
        ("POST", "/v2/a/blobs/uploads/b", Need("repository", "a", "push")),
        ("HEAD", "/v2/a/blobs/uploads/b", Need("repository", "a", "pull")),
    ],
)
def test_need_from_method_and_path(method: str, path: str, expected: Need | None) -> None:
    assert need(method, path) == expected


def test_challenge_scopes() -> None:
    assert Need("repository", "a", "push").scope == "repository:a:pull,push"
    assert Need("repository", "a", "pull").scope == "repository:a:pull"
    assert Need("catalog").scope == "registry:catalog:*"
    assert RequestedScope.parse("repository:a/b:pull,push") == RequestedScope(
        "repository", "a/b", frozenset({"pull", "push"})
    )
    assert RequestedScope.parse("bogus") is None


def test_error_table_codes_and_statuses_are_distinct_entries() -> None:
    values = [member.value for member in ErrorCode]
    assert len(values) == len(set(values))
    error = OCIError(ErrorCode.BLOB_UPLOAD_OUT_OF_ORDER, {"offset": 3})
    assert (error.code.code, error.code.status) == ("BLOB_UPLOAD_INVALID", 416)
    assert error.body().startswith(b'{"errors": [{"code": "BLOB_UPLOAD_INVALID"')


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("0042", 42), ("9" * 5000, CAP), ("0" * 5000 + "7", 7), ("\u00b2", None), ("", None),
     ("-1", None), (" 1", None), ("1\n", None)],
)  # fmt: skip
def test_decimal_reads_ascii_digits_and_caps_long_numbers(text: str, value: int | None) -> None:
    assert decimal(text) == value


def test_the_login_throttle_counts_failures_in_a_window_with_bounded_memory() -> None:
    now = [0.0]
    throttle = LoginThrottle(limit=3, window=60, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
    assert throttle.retry_after("a") == 60
    now[0] = 59.5
    assert throttle.retry_after("a") == 1
    now[0] = 60.0
    assert throttle.retry_after("a") is None
    for client in ("b", "c", "d"):
        throttle.failed(client)
    assert len(throttle._failures) == 2
