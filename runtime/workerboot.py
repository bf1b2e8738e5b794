"""The start-up every worker process shares (``worker.py``, ``whisper_worker.py``).

It dies with the server, reads the first message (the load) from the channel on FD, loads the
model, answers with its facts or the reason it failed (id 0, ``process.py``'s protocol), then
serves until the server's end closes, and closes the model.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
from collections.abc import Callable
from typing import Protocol, TypeVar

from mdl.runtime import wire
from mdl.runtime.channel import WorkerChannel
from mdl.runtime.errors import LoadFailed
from mdl.runtime.runner import Failed, LoadSpec, ModelFacts

_PR_SET_PDEATHSIG = 1
LOAD = 0
"""The id of the load and its reply."""


class _Model(Protocol):
    def close(self) -> None: ...


M = TypeVar("M", bound=_Model)


def run(
    argv: list[str],
    load: Callable[[LoadSpec], M],
    facts: Callable[[M], ModelFacts],
    serve: Callable[[WorkerChannel, M], None],
) -> int:
    """``main`` of a worker run as ``python -m MODULE FD NAME``; its exit status."""
    _die_with_parent()
    channel = WorkerChannel(socket.socket(fileno=int(argv[1])))
    first = channel.recv()
    if not isinstance(first, dict) or first.get("op") != "load":
        return 2
    try:
        model = load(wire.load_spec(first))
    except LoadFailed as exc:
        channel.send(wire.event_message(LOAD, Failed(str(exc))))
        return 1
    channel.send(wire.event_message(LOAD, facts(model)))
    with contextlib.suppress(BrokenPipeError, ConnectionError):  # the server went away
        serve(channel, model)
    model.close()
    return 0


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the server dies, so no worker outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
