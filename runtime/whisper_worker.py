"""A speech model's worker process: ``python -m mdl.runtime.whisper_worker FD NAME``.

As ``worker.py`` for llama.cpp: the first message loads the model, then one transcription at a
time until ``exit`` or until the server's end closes; a reader thread takes cancels meanwhile.
A crash in whisper.cpp ends this process alone; the server fails this model's request and every
other model keeps serving.
"""

from __future__ import annotations

import functools
import queue
import sys
import threading

from mdl.runtime import speech, workerboot
from mdl.runtime.channel import Frame, WorkerChannel
from mdl.runtime.errors import BadRequest
from mdl.runtime.runner import Failed, ModelFacts
from mdl.runtime.whisper import WhisperModel

_NUMBER = "_number"
"""Where the reader thread numbers each transcription it passes on."""


def main(argv: list[str]) -> int:
    return workerboot.run(argv, WhisperModel, lambda _: ModelFacts(0, "", ""), serve)


def serve(channel: WorkerChannel, model: WhisperModel) -> None:
    inbox: queue.SimpleQueue[Frame | None] = queue.SimpleQueue()
    reader = _Reader(channel, inbox)
    threading.Thread(target=reader.run, daemon=True).start()
    while (message := inbox.get()) is not None:
        if not isinstance(message, dict):
            continue
        op = message.get("op")
        if op == "exit":
            return
        if op != "transcribe":
            continue
        number = int(message[_NUMBER])
        try:
            request = speech.transcribe_request(message)
            done = model.transcribe(
                request,
                lambda segment: channel.send(speech.event_message(segment)),
                functools.partial(reader.cancelled_since, number),
            )
            channel.send(speech.event_message(done))
        except (BrokenPipeError, ConnectionError):
            raise
        except BadRequest as exc:
            channel.send(speech.event_message(Failed(str(exc), bad_request=True)))
        except Exception as exc:  # report what whisper.cpp raised; the process stays usable
            channel.send(speech.event_message(Failed(f"transcribe failed: {exc}")))


class _Reader:
    """Reads the channel in its own thread while whisper.cpp runs in the main one. A ``cancel``
    (or ``exit``, or the server's end closing) cancels the latest transcription sent before it:
    transcriptions are numbered as they arrive, and ``cancelled`` is the number cancelled up to,
    so a cancel that comes after its transcription ended never touches the next one."""

    def __init__(self, channel: WorkerChannel, inbox: queue.SimpleQueue[Frame | None]) -> None:
        self.channel = channel
        self.inbox = inbox
        self.received = 0
        self.cancelled = 0

    def cancelled_since(self, number: int) -> bool:
        return self.cancelled >= number

    def run(self) -> None:
        while (frame := self.channel.recv()) is not None:
            op = frame.get("op") if isinstance(frame, dict) else None
            if op == "transcribe" and isinstance(frame, dict):
                self.received += 1
                frame[_NUMBER] = self.received
            elif op in ("cancel", "exit"):
                self.cancelled = self.received
            if op != "cancel":
                self.inbox.put(frame)
        self.cancelled = self.received
        self.inbox.put(None)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
