"""``mdl run``, ``mdl ps``, ``mdl stop``: clients of a running ``mdl serve`` (at ``MDL_HOST``).

They speak its Ollama API with the standard library's HTTP client, streaming NDJSON. The chat
on a terminal (``mdl run MODEL``) is ``repl.py``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from mdl.cli import console, listing
from mdl.spec.errors import MdlError, NotFound

if TYPE_CHECKING:
    import http.client

JSON = typer.Option(False, "--json", help="Print one JSON document instead of text.")


def register(app: typer.Typer) -> None:
    app.command(help="Answer PROMPT with a model, or chat with it when no prompt is given.")(run)
    app.command(help="List the models mdl serve has loaded.")(ps)
    app.command(help="Unload a model from mdl serve.")(stop)


def run(
    ref: str = typer.Argument(..., help="The model reference."),
    prompt: list[str] = typer.Argument(None, help="The prompt; without one, an interactive chat."),
    keep_alive: str | None = typer.Option(
        None, "--keepalive", help="How long the model stays loaded afterwards (e.g. 5m, 0, -1)."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Print timings after each answer."),
) -> None:
    server = Server.from_env()
    text = " ".join(prompt or [])
    if not text and not sys.stdin.isatty():
        text = sys.stdin.read()
    extra: dict[str, Any] = {} if keep_alive is None else {"keep_alive": keep_alive}
    if text:
        messages = [{"role": "user", "content": text}]
        _answer(server, {"model": ref, "messages": messages, **extra}, verbose)
        return
    from mdl.cli.repl import Chat, Repl

    server.call("/api/chat", {"model": ref, "messages": [], **extra})  # load, or fail early
    import readline  # noqa: F401  (line editing and history for input())

    def answer(chat: Chat) -> str:
        body = {"model": chat.model, "messages": chat.conversation(), **extra}
        if chat.options:
            body["options"] = chat.options
        return _answer(server, body, verbose, interruptible=True)

    Repl(server, Chat(ref), answer, extra).run()


def ps(as_json: bool = JSON) -> None:
    models = Server.from_env().call("/api/ps", None, method="GET")["models"]
    console.result({"models": models}, as_json, lambda: console.lines(_ps_lines(models)))


def _ps_lines(models: list[dict[str, Any]]) -> list[str]:
    now = datetime.now(UTC)
    cells = [
        [
            m["name"],
            m["digest"].removeprefix("sha256:")[:12],
            listing.human_bytes(m["size"]),
            str(m.get("context_length", "")),
            listing.human_time(datetime.fromisoformat(m["expires_at"]), now),
        ]
        for m in models
    ]
    return listing.table(["NAME", "ID", "SIZE", "CONTEXT", "UNTIL"], cells)


def stop(ref: str = typer.Argument(..., help="The model reference.")) -> None:
    Server.from_env().call("/api/generate", {"model": ref, "keep_alive": 0})


def _answer(
    server: Server, body: dict[str, Any], verbose: bool = False, interruptible: bool = False
) -> str:
    """Stream the chat's answer to stdout; the text. ``interruptible``: Ctrl-C ends it there
    (the connection is closed, which stops the generation) and the text so far is returned."""
    parts = []
    last: dict[str, Any] = {}
    try:
        for chunk in server.stream("/api/chat", {**body, "stream": True}):
            piece = chunk.get("message", {}).get("content", "")
            sys.stdout.write(piece)
            sys.stdout.flush()
            parts.append(piece)
            last = chunk
    except KeyboardInterrupt:
        if not interruptible:
            raise
    sys.stdout.write("\n")
    if verbose and last.get("eval_duration"):
        rate = last["eval_count"] / (last["eval_duration"] / 1e9)
        console.stderr().print(
            f"total {last['total_duration'] / 1e9:.3f}s · load {last['load_duration'] / 1e9:.3f}s"
            f" · prompt {last['prompt_eval_count']} tokens"
            f" · answer {last['eval_count']} tokens at {rate:.1f} tokens/s",
            markup=False,
        )
    return "".join(parts)


class ServerError(MdlError):
    """mdl serve failed, or cannot be reached."""


class Refused(MdlError):
    """mdl serve refused the request as invalid."""

    exit_code = 2


class Server:
    """The Ollama API of ``mdl serve`` at ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    @classmethod
    def from_env(cls) -> Server:
        from mdl.runtime.config import parse_host

        host, port = parse_host(os.environ.get("MDL_HOST", ""))
        return cls("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)

    def call(self, path: str, body: dict[str, Any] | None, method: str = "POST") -> Any:
        payload = None if body is None else {**body, "stream": False}
        with self._request(method, path, payload) as response:
            return json.loads(response.read() or b"null")

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The NDJSON chunks; closing the iterator early closes the connection, which stops
        the server's work."""
        with self._request("POST", path, body) as response:
            for line in response:
                if line.strip():
                    chunk = json.loads(line)
                    if "error" in chunk:
                        raise ServerError(chunk["error"])
                    yield chunk

    @contextmanager
    def _request(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> Iterator[http.client.HTTPResponse]:
        import http.client  # only the serve clients need it; every command's start would pay

        connection = http.client.HTTPConnection(self.host, self.port, timeout=600)
        data = None if body is None else json.dumps(body).encode()
        try:
            try:
                connection.request(method, path, data, {"Content-Type": "application/json"})
                response = connection.getresponse()
            except OSError as exc:
                raise ServerError(
                    f"cannot reach mdl serve at {self.host}:{self.port} ({exc.strerror or exc}); "
                    "start it with `mdl serve` or set MDL_HOST"
                ) from exc
            with response:
                if response.status >= 400:
                    message = _error_message(response.read(), response.status)
                    raise {404: NotFound, 400: Refused}.get(response.status, ServerError)(message)
                yield response
        finally:
            connection.close()


def _error_message(body: bytes, status: int) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return f"mdl serve answered HTTP {status}"
