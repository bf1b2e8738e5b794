"""Draining: a replica told to stop first fails its health check, then stops.

On SIGTERM the server's main process (``server.serve``) tells each worker with SIGUSR1; from
then on ``GET /v2/`` and ``/healthz`` answer 503 ``UNAVAILABLE`` (before any auth, so a load
balancer's check sees it in every mode) while every other request is served as before. After
the drain period the main process stops the workers, which finish the requests in flight. A
second SIGTERM (or SIGINT) stops at once.
"""

from __future__ import annotations

import asyncio
import signal

from starlette.types import ASGIApp, Receive, Scope, Send

from mdl.registry.errors import ErrorCode, OCIError, response
from mdl.spec.routes import BASE

DRAIN_SIGNAL = signal.SIGUSR1
HEALTH_PATHS = frozenset({BASE.template, BASE.template.rstrip("/"), "/healthz"})


class Drain:
    """Whether this process is draining; ``install`` makes ``DRAIN_SIGNAL`` start it."""

    def __init__(self) -> None:
        self.active = False
        self._installed = False

    def start(self) -> None:
        self.active = True

    def install(self) -> None:
        """Catch the signal now (its default would end the process), and through the event
        loop once one runs (``on_loop``): a plain handler runs only when the loop's thread next
        runs Python code, which an idle server may not do for a long time."""
        self._installed = True
        signal.signal(DRAIN_SIGNAL, lambda signum, frame: self.start())

    def on_loop(self) -> None:
        if self._installed:
            asyncio.get_running_loop().add_signal_handler(DRAIN_SIGNAL, self.start)


class DrainGuard:
    """Outermost middleware: the health check answers 503 while the process drains."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.drain.on_loop()
        elif self.drain.active and scope["type"] == "http" and scope["path"] in HEALTH_PATHS:
            answer = response(OCIError(ErrorCode.DRAINING))
            answer.headers["Connection"] = "close"
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)
