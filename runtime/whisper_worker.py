"""A speech model's worker process: ``python -m mdl.runtime.whisper_worker FD NAME``.

As ``worker.py`` for llama.cpp: the first message loads the model, then one transcription at a
time until ``exit`` or until the server's end closes. A crash in whisper.cpp ends this process
alone; the server fails this model's request and every other model keeps serving.
"""

from __future__ import annotations

import contextlib
import socket
import sys

from mdl.runtime import speech, wire
from mdl.runtime.channel import WorkerChannel
from mdl.runtime.errors import BadRequest, LoadFailed
from mdl.runtime.runner import Failed, ModelFacts
from mdl.runtime.whisper import WhisperModel
from mdl.runtime.worker import _die_with_parent


def main(argv: list[str]) -> int:
    _die_with_parent()
    channel = WorkerChannel(socket.socket(fileno=int(argv[1])))
    first = channel.recv()
    if not isinstance(first, dict) or first.get("op") != "load":
        return 2
    try:
        model = WhisperModel(wire.load_spec(first))
    except LoadFailed as exc:
        channel.send(wire.event_message(Failed(str(exc))))
        return 1
    channel.send(wire.event_message(ModelFacts(0, "", "")))
    with contextlib.suppress(BrokenPipeError, ConnectionError):  # the server went away
        serve(channel, model)
    model.close()
    return 0


def serve(channel: WorkerChannel, model: WhisperModel) -> None:
    while not channel.exiting and (message := channel.recv()) is not None:
        if not isinstance(message, dict):
            continue
        op = message.get("op")
        if op == "exit":
            return
        if op != "transcribe":
            continue  # a "cancel" that arrives after its request finished
        try:
            request = speech.transcribe_request(message)
            done = model.transcribe(
                request,
                lambda segment: channel.send(speech.event_message(segment)),
                channel.cancel_requested,
            )
            channel.send(speech.event_message(done))
        except (BrokenPipeError, ConnectionError):
            raise
        except BadRequest as exc:
            channel.send(speech.event_message(Failed(str(exc), bad_request=True)))
        except Exception as exc:  # report what whisper.cpp raised; the process stays usable
            channel.send(speech.event_message(Failed(f"transcribe failed: {exc}")))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
