"""``mdl serve`` settings from the environment, with Ollama's defaults and formats. Pure.

- ``MDL_HOST``: ``host[:port]`` to listen on, default ``127.0.0.1:11434`` (``http://`` allowed)
- ``MDL_MAX_LOADED_MODELS``: models kept loaded at once, default 3
- ``MDL_KEEP_ALIVE``: how long an idle model stays loaded, default ``5m`` (a duration or
  seconds; negative: forever; 0: unload after each request)
- ``MDL_MAX_QUEUE``: requests that may wait for one model before a 503, default 512
- ``MDL_NUM_PARALLEL``: requests one loaded model decodes at once (its sequences), default 4
- ``MDL_ORIGINS``: more browser origins allowed (CORS, and their hosts under DNS-rebinding
  protection), comma-separated, ``*`` wildcards; local origins are always allowed
  (``mdl.spec.browser.LOCAL_ORIGINS``)
- ``MDL_MAX_REQUEST_BYTES``: largest request body (JSON), default 32 MiB; past it 413
- ``MDL_MAX_BLOB_BYTES``: largest ``/api/blobs`` upload, default 256 GiB; past it 413
- ``MDL_MAX_CONTEXT``: largest ``num_ctx`` a request or model may ask for; default: the
  model's trained context length
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mdl.runtime.errors import BadRequest
from mdl.spec import duration
from mdl.spec.footprint import DEFAULT_NUM_PARALLEL

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434
DEFAULT_KEEP_ALIVE = 300.0
FOREVER = 100 * 365 * 86400.0
"""A keep-alive longer than this (a century) is forever; no timer can hold more."""
MAX_REQUEST_BYTES = 32 << 20
MAX_BLOB_BYTES = 256 << 30


@dataclass(frozen=True)
class ServeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_loaded: int = 3
    keep_alive: float | None = DEFAULT_KEEP_ALIVE
    """Seconds; None keeps models loaded forever."""
    max_queue: int = 512
    num_parallel: int = DEFAULT_NUM_PARALLEL
    origins: tuple[str, ...] = ()
    """``MDL_ORIGINS``: allowed beyond the local origins."""
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_blob_bytes: int = MAX_BLOB_BYTES
    max_context: int | None = None
    """None: each model's trained context length bounds ``num_ctx``."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServeConfig:
        host, port = parse_host(env.get("MDL_HOST", ""))
        extra = tuple(o.strip() for o in env.get("MDL_ORIGINS", "").split(",") if o.strip())
        return cls(
            host=host,
            port=port,
            max_loaded=_positive(env, "MDL_MAX_LOADED_MODELS", 3),
            keep_alive=parse_keep_alive(env.get("MDL_KEEP_ALIVE") or "5m", "MDL_KEEP_ALIVE"),
            max_queue=_positive(env, "MDL_MAX_QUEUE", 512, allow_zero=True),
            num_parallel=_positive(env, "MDL_NUM_PARALLEL", DEFAULT_NUM_PARALLEL),
            origins=extra,
            max_request_bytes=_positive(env, "MDL_MAX_REQUEST_BYTES", MAX_REQUEST_BYTES),
            max_blob_bytes=_positive(env, "MDL_MAX_BLOB_BYTES", MAX_BLOB_BYTES),
            max_context=_positive(env, "MDL_MAX_CONTEXT", 0) or None,
        )


def parse_host(text: str) -> tuple[str, int]:
    """``host[:port]``, ``:port``, ``[v6]:port``, optionally ``http://…``; empty: the default."""
    text = text.strip().removeprefix("http://").rstrip("/")
    if not text:
        return DEFAULT_HOST, DEFAULT_PORT
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]*)(?::([0-9]{1,5}))?", text)
    if not match:
        raise BadRequest(f"MDL_HOST={text!r}: want host[:port]")
    host = match.group(1).strip("[]") or DEFAULT_HOST
    port = int(match.group(2)) if match.group(2) else DEFAULT_PORT
    if not 0 < port < 65536:
        raise BadRequest(f"MDL_HOST={text!r}: port out of range")
    return host, port


def parse_keep_alive(value: object, where: str = "keep_alive") -> float | None:
    """Ollama's keep_alive: a number of seconds or a Go duration (``5m``, ``1h30m``, ``-1``);
    negative means forever (None), 0 unload at once."""
    if isinstance(value, bool):
        raise BadRequest(f"{where}: want a duration or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _duration(value.strip(), where)
    else:
        raise BadRequest(f"{where}: want a duration or a number of seconds")
    return None if seconds < 0 or not seconds <= FOREVER else seconds


def _duration(text: str, where: str) -> float:
    try:
        return duration.seconds(text)
    except ValueError as exc:
        raise BadRequest(f"{where}: {exc}") from None


def _positive(env: Mapping[str, str], name: str, default: int, allow_zero: bool = False) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r}: want a whole number") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise BadRequest(f"{name}={raw!r}: want a number above 0")
    return value
