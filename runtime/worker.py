"""A model's worker process: ``python -m mdl.runtime.worker FD NAME``.

It serves one model over the channel on file descriptor FD: the first message loads the model,
then it answers one request at a time until ``exit`` or until the server's end closes. A crash
in here (llama.cpp aborting, an out-of-memory kill, kill -9) ends only this process; the server
sees the channel close and fails this model's requests alone. NAME only labels the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import sys

from mdl.runtime import wire
from mdl.runtime.channel import WorkerChannel
from mdl.runtime.errors import LoadFailed
from mdl.runtime.llamacpp import LlamaCppModel
from mdl.runtime.runner import Failed, Token

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    _die_with_parent()
    channel = WorkerChannel(socket.socket(fileno=int(argv[1])))
    first = channel.recv()
    if not isinstance(first, dict) or first.get("op") != "load":
        return 2
    try:
        model = LlamaCppModel(wire.load_spec(first))
    except LoadFailed as exc:
        channel.send(wire.event_message(Failed(str(exc))))
        return 1
    channel.send(wire.event_message(model.facts()))
    with contextlib.suppress(BrokenPipeError, ConnectionError):  # the server went away
        serve(channel, model)
    model.close()
    return 0


def serve(channel: WorkerChannel, model: LlamaCppModel) -> None:
    while not channel.exiting and (message := channel.recv()) is not None:
        if not isinstance(message, dict):
            continue
        op = message.get("op")
        if op == "exit":
            return
        try:
            if op == "complete":
                request = wire.completion_request(message)
                for event in model.complete(request, channel.cancel_requested):
                    if isinstance(event, Token):
                        channel.send_token(event.text)
                    else:
                        channel.send(wire.event_message(event))
            elif op == "embed":
                result = model.embed(message["texts"], message["truncate"])
                channel.send(wire.event_message(result))
        except (BrokenPipeError, ConnectionError):
            raise
        except Exception as exc:  # report whatever llama.cpp raised; the process stays usable
            channel.send(wire.event_message(Failed(f"{op} failed: {exc}")))
        # a "cancel" that arrives after its request finished is simply dropped


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the server dies, so no worker outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
