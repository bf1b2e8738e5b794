"""The outermost middleware: structured access logs, Prometheus-style counters, and the
``Docker-Distribution-API-Version`` header every response carries.

One JSON line per request goes to the ``mdl.registry.access`` logger: time, remote address,
user, method, path, status, bytes in and out, duration. It wraps ``send`` without touching the
scope, so ``FileResponse`` still hands whole files to the server (pathsend).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdl.registry.context import ACCESS_SCOPE_KEY

access_log = logging.getLogger("mdl.registry.access")
API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Counted by name; any other method a client invents is counted as ``OTHER`` (bounded labels)."""


class Metrics:
    """Counters since start, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0
        self.seconds = 0.0
        self._gauges: list[tuple[str, str, Callable[[], int], str]] = []

    def gauge(
        self, name: str, description: str, read: Callable[[], int], kind: str = "gauge"
    ) -> None:
        """A value read when the metrics are rendered (``kind`` counter: one only growing)."""
        self._gauges.append((name, description, read, kind))

    def record(
        self, method: str, status: int, bytes_in: int, bytes_out: int, seconds: float
    ) -> None:
        self.requests[(method if method in METHODS else "OTHER", status)] += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.seconds += seconds

    def render(self) -> str:
        lines = [
            "# HELP mdl_registry_requests_total HTTP requests served, by method and status.",
            "# TYPE mdl_registry_requests_total counter",
        ]
        for (method, status), count in sorted(self.requests.items()):
            labels = f'method="{method}",status="{status}"'
            lines.append(f"mdl_registry_requests_total{{{labels}}} {count}")
        total = sum(self.requests.values())
        lines += [
            "# TYPE mdl_registry_request_duration_seconds summary",
            f"mdl_registry_request_duration_seconds_sum {self.seconds:.6f}",
            f"mdl_registry_request_duration_seconds_count {total}",
            "# TYPE mdl_registry_received_bytes_total counter",
            f"mdl_registry_received_bytes_total {self.bytes_in}",
            "# TYPE mdl_registry_sent_bytes_total counter",
            f"mdl_registry_sent_bytes_total {self.bytes_out}",
        ]
        for name, description, read, kind in self._gauges:
            lines += [f"# HELP {name} {description}", f"# TYPE {name} {kind}", f"{name} {read()}"]
        return "\n".join(lines) + "\n"


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500, "in": 0, "out": 0, "length": 0}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["in"] += len(message.get("body", b""))
            return message

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append(API_VERSION)
                for key, value in headers:
                    if key.lower() == b"content-length":
                        seen["length"] = int(value)
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            elif message["type"] == "http.response.pathsend":
                seen["out"] += seen["length"]
            await send(message)

        try:
            await self.app(scope, counted_receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.record(scope["method"], seen["status"], seen["in"], seen["out"], seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(json.dumps(_entry(scope, seen, seconds)))


def _entry(scope: Scope, seen: dict[str, Any], seconds: float) -> dict[str, Any]:
    access = scope.get(ACCESS_SCOPE_KEY)
    client = scope.get("client")
    return {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "remote": client[0] if client else None,
        "user": getattr(access, "user", None),
        "method": scope["method"],
        "path": scope["path"],
        "status": seen["status"],
        "bytes_in": seen["in"],
        "bytes_out": seen["out"],
        "duration_ms": round(seconds * 1000, 3),
    }
