"""A model's worker process: ``python -m mdl.runtime.worker FD NAME``.

It serves one model over the channel on file descriptor FD: the first message loads the model,
then it runs requests, several at once (``batching.Engine``), until ``exit`` or until the
server's end closes. One thread reads the channel into an inbox; the main thread runs the
blocking llama.cpp steps and, between two steps, takes what arrived (new requests, cancels,
embeddings), so a cancel frees its sequence at the next step. What a step (or a message)
produced goes to the server in one write after it. A crash in here (llama.cpp
aborting, an out-of-memory kill, kill -9) ends only this process; the server sees the channel
close and fails this model's requests alone. NAME only labels the process.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable

from mdl.runtime import wire, workerboot
from mdl.runtime.batching import Engine
from mdl.runtime.channel import Frame, WorkerChannel
from mdl.runtime.errors import LoadFailed
from mdl.runtime.llamacpp import LlamaCppModel
from mdl.runtime.runner import Done, Embeddings, Failed, Token

Reply = Token | Done | Failed | Embeddings

_LOAD = workerboot.LOAD


def main(argv: list[str]) -> int:
    return workerboot.run(argv, LlamaCppModel, LlamaCppModel.facts, serve)


def serve(channel: WorkerChannel, model: LlamaCppModel) -> None:
    inbox: queue.SimpleQueue[Frame | None] = queue.SimpleQueue()
    threading.Thread(target=_read, args=(channel, inbox), daemon=True).start()

    def send(request_id: int, event: Reply) -> None:
        if isinstance(event, Token):
            channel.post_token(request_id, event.text)
        else:
            channel.post(wire.event_message(request_id, event))

    engine = Engine(model, send)
    while True:
        messages = [] if engine.busy else [inbox.get()]
        while not inbox.empty():
            messages.append(inbox.get_nowait())
        for message in messages:
            if message is None or (isinstance(message, dict) and message.get("op") == "exit"):
                return
            if isinstance(message, dict):
                _handle(message, engine, model, send)
        try:
            engine.step()
        except (BrokenPipeError, ConnectionError):
            raise
        except Exception as exc:  # report whatever llama.cpp raised; the process stays usable
            engine.fail_all(f"generation failed: {exc}")
        channel.flush()


def _handle(
    message: wire.Message, engine: Engine, model: LlamaCppModel, send: Callable[[int, Reply], None]
) -> None:
    op, request_id = message.get("op"), int(message.get("id", _LOAD))
    if op == "complete":
        engine.submit(request_id, wire.completion_request(message))
    elif op == "cancel":  # one that arrives after its request finished is simply dropped
        engine.cancel(request_id)
    elif op == "embed":
        try:
            result = model.embed(message["texts"], message["truncate"])
        except LoadFailed as exc:
            result = Failed(str(exc))
        except Exception as exc:  # report whatever llama.cpp raised; the process stays usable
            result = Failed(f"embed failed: {exc}")
        send(request_id, result)


def _read(channel: WorkerChannel, inbox: queue.SimpleQueue[Frame | None]) -> None:
    while (frame := channel.recv()) is not None:
        inbox.put(frame)
    inbox.put(None)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
