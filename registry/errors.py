"""The registry's error table and the one exception its handlers raise.

Handlers raise ``OCIError(ErrorCode.X, detail)``; ``app.py`` turns it into the distribution
spec's envelope ``{"errors": [{"code", "message", "detail"}]}`` with the table's status, in one
place. A member's name is ours; its wire code is the spec's (several members may share a code
with different statuses, e.g. an out-of-order chunk is ``BLOB_UPLOAD_INVALID`` with 416).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

from starlette.responses import Response


class ErrorCode(Enum):
    BLOB_UNKNOWN = ("BLOB_UNKNOWN", 404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = ("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
    BLOB_UPLOAD_OUT_OF_ORDER = (
        "BLOB_UPLOAD_INVALID",
        416,
        "chunk does not start where the upload ends",
    )
    BLOB_UPLOAD_UNKNOWN = ("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
    DIGEST_INVALID = ("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
    )
    MANIFEST_INVALID = ("MANIFEST_INVALID", 400, "manifest invalid")
    MANIFEST_TOO_LARGE = ("MANIFEST_INVALID", 413, "manifest is larger than the 4 MiB limit")
    MANIFEST_UNKNOWN = ("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
    NAME_INVALID = ("NAME_INVALID", 400, "invalid repository name")
    NAME_UNKNOWN = ("NAME_UNKNOWN", 404, "repository name not known to registry")
    SIZE_INVALID = ("SIZE_INVALID", 400, "provided length did not match content length")
    TAG_INVALID = ("TAG_INVALID", 400, "invalid tag")
    PAGINATION_NUMBER_INVALID = ("PAGINATION_NUMBER_INVALID", 400, "invalid number of results")
    RANGE_NOT_SATISFIABLE = ("RANGE_INVALID", 416, "requested range not satisfiable")
    TOO_MANY_UPLOADS = ("TOOMANYREQUESTS", 429, "too many upload sessions open in this repository")
    UPLOAD_BUSY = ("BLOB_UPLOAD_INVALID", 409, "another request is writing to this upload")
    UNAUTHORIZED = ("UNAUTHORIZED", 401, "authentication required")
    TOO_MANY_LOGINS = ("TOOMANYREQUESTS", 429, "too many failed logins; retry later")
    DENIED = ("DENIED", 403, "requested access to the resource is denied")
    UNSUPPORTED = ("UNSUPPORTED", 405, "the operation is unsupported")
    READ_ONLY = ("UNSUPPORTED", 405, "the registry is read-only")
    CACHE_READ_ONLY = (
        "UNSUPPORTED",
        405,
        "the registry is a pull-through cache: push to (or delete from) its upstream",
    )
    UPSTREAM_DENIED = (
        "DENIED",
        403,
        "the upstream registry refused access (is the repository there, and may the cache's "
        "--proxy-user pull it?)",
    )
    UPSTREAM_FAILED = ("UNKNOWN", 502, "the upstream registry answered with an error")
    UPSTREAM_CORRUPT = ("UNKNOWN", 502, "the upstream registry sent content that fails its digest")
    UPSTREAM_UNAVAILABLE = ("UNAVAILABLE", 503, "the upstream registry cannot be reached")
    UPSTREAM_RATE_LIMITED = ("TOOMANYREQUESTS", 429, "the upstream registry is rate-limiting us")
    NOT_FOUND = ("NOT_FOUND", 404, "no such endpoint")
    BAD_REQUEST = ("UNSUPPORTED", 400, "malformed request")
    DRAINING = ("UNAVAILABLE", 503, "this replica is shutting down; use another")
    STORAGE_FULL = ("UNKNOWN", 507, "no space left in the registry's storage")
    INTERNAL = ("UNKNOWN", 500, "internal server error")

    @property
    def code(self) -> str:
        return str(self.value[0])

    @property
    def status(self) -> int:
        return int(self.value[1])

    @property
    def message(self) -> str:
        return str(self.value[2])


class OCIError(Exception):
    """An error the client sees: a table entry, a detail, and headers for the response."""

    def __init__(
        self, code: ErrorCode, detail: Any = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code.code}: {code.message}" + (f": {detail}" if detail else ""))
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code.code, "message": self.code.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}

    def body(self) -> bytes:
        return json.dumps(self.envelope()).encode()


def response(error: OCIError) -> Response:
    """The HTTP form of an error: the only place an OCIError becomes a response."""
    headers = {**error.headers, "Content-Type": "application/json"}
    return Response(error.body(), status_code=error.code.status, headers=headers)
