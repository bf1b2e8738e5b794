"""The server's handle on a worker process: a ``ModelRunner`` that talks over the channel.

Requests are multiplexed by id: the worker runs up to ``num_parallel`` at once, and one reader
task per worker routes each frame to its request's queue. ``complete`` closed early sends
``cancel`` without waiting (it may run inside a cancelled task); the worker frees the sequence
before it reads the next request, so a request sent after a cancel finds the sequence free.
When the process dies, every request in flight fails with RunnerCrashed naming the signal or
exit code (the last lines the worker wrote to stderr go to the server's log, never to a client:
they may hold tracebacks and paths); ``wait_exited`` returns so the scheduler forgets the model.

This is the llama.cpp backend's runner; ``backends.by_backend`` picks it by ``spec.backend``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import AsyncGenerator, Sequence

from mdl.runtime import spawn, wire
from mdl.runtime.channel import ServerChannel
from mdl.runtime.errors import RunnerCrashed, RunnerGone
from mdl.runtime.runner import (
    CompletionRequest,
    Done,
    Embeddings,
    Failed,
    LoadSpec,
    ModelFacts,
    RunnerEvent,
    Token,
)

log = logging.getLogger("mdl.runtime")
LOAD_TIMEOUT = 600.0
_Reply = Token | Done | Failed | Embeddings | ModelFacts | None  # None: the worker is gone
ENTRY = "mdl.runtime.worker"
"""The module run as ``python -m MODULE FD NAME`` (see ``worker.py``)."""
_LOAD = 0
"""The id of the load and its reply."""


class WorkerRunner:
    def __init__(self, spec: LoadSpec, proc: asyncio.subprocess.Process, channel: ServerChannel):
        self.spec = spec
        self.proc = proc
        self.channel = channel
        self.facts = ModelFacts(0, "", "")
        self.stderr: collections.deque[str] = collections.deque(maxlen=spawn.STDERR_LINES)
        self._streams: dict[int, asyncio.Queue[_Reply]] = {_LOAD: asyncio.Queue()}
        self._ids = itertools.count(_LOAD + 1)
        self._exited = asyncio.Event()
        self._stderr_task: asyncio.Task[None] | None = None
        self._reader_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(cls, spec: LoadSpec) -> WorkerRunner:
        """Spawn a worker and load the model in it; LoadFailed (with the worker's reason) if not."""
        proc, channel = await spawn.spawn(ENTRY, spec.name)
        runner = cls(spec, proc, channel)
        runner._stderr_task = asyncio.create_task(spawn.read_stderr(proc, runner.stderr))
        runner._reader_task = asyncio.create_task(runner._read_replies())
        runner.channel.send(wire.load_message(spec))
        runner.facts = await spawn.loaded(
            runner._streams[_LOAD].get(),
            spec.name,
            proc,
            LOAD_TIMEOUT,
            runner._exit_reason,
            runner.close,
        )
        del runner._streams[_LOAD]
        runner.stderr.clear()  # what it said while loading explains no later crash
        log.info("loaded %s in worker %d (n_ctx %d)", spec.name, proc.pid, runner.facts.n_ctx)
        return runner

    async def complete(self, request: CompletionRequest) -> AsyncGenerator[RunnerEvent, None]:
        request_id, replies = await self._open()
        self.channel.send(wire.complete_message(request_id, request))
        finished = answered = False
        try:
            while True:
                reply = await replies.get()
                if reply is None:
                    finished = True
                    crashed = RunnerCrashed if answered else RunnerGone
                    raise crashed(f"{await self._exit_reason()} while generating")
                answered = True
                if not isinstance(reply, Token | Done | Failed):
                    raise spawn.protocol_error(self.spec.name, reply)
                finished = not isinstance(reply, Token)
                yield reply
                if finished:
                    return
        finally:
            del self._streams[request_id]
            if not finished:
                self.channel.send(wire.cancel_message(request_id))

    async def embed(self, texts: Sequence[str], truncate: bool) -> Embeddings | Failed:
        request_id, replies = await self._open()
        try:
            self.channel.send(wire.embed_message(request_id, list(texts), truncate))
            reply = await replies.get()
        finally:
            del self._streams[request_id]
        if reply is None:
            raise RunnerGone(f"{await self._exit_reason()} while embedding")
        if not isinstance(reply, Embeddings | Failed):
            raise spawn.protocol_error(self.spec.name, reply)
        return reply

    async def wait_exited(self) -> None:
        await self._exited.wait()

    async def close(self) -> None:
        await spawn.stop(self.proc, self.channel)
        for task in (self._reader_task, self._stderr_task):
            if task is not None:
                await task
        self.channel.close()

    async def _open(self) -> tuple[int, asyncio.Queue[_Reply]]:
        """A new request id and the queue its replies arrive on; fail fast if the worker died."""
        if self._exited.is_set():
            raise RunnerGone(await self._exit_reason())
        request_id = next(self._ids)
        replies: asyncio.Queue[_Reply] = asyncio.Queue()
        self._streams[request_id] = replies
        return request_id, replies

    async def _read_replies(self) -> None:
        while (frame := await self.channel.recv()) is not None:
            reply: _Reply
            if isinstance(frame, tuple):
                request_id, reply = frame[0], Token(frame[1])
            else:
                request_id, reply = frame.get("id", _LOAD), wire.event(frame)
            replies = self._streams.get(request_id)
            if replies is not None:  # else its request was cancelled: drop the rest
                replies.put_nowait(reply)
        await self.proc.wait()
        self._exited.set()
        for replies in self._streams.values():
            replies.put_nowait(None)
        if self.proc.returncode:
            reason = await self._exit_reason()
            log.warning("worker %d for %s: %s", self.pid, self.spec.name, reason)
            for line in self.stderr:  # the server's log, not the client, gets what it said
                log.warning("worker %d: %s", self.pid, line)

    async def _exit_reason(self) -> str:
        return await spawn.exit_reason(self.proc, self._stderr_task, self.spec.name)
