"""The server's handle on a whisper worker: a ``ModelRunner`` that transcribes.

The scheduler holds it like any runner (LRU, keep-alive, queueing, one request at a time). It
answers ``complete`` and ``embed`` with a failure, though the service refuses such requests
before they get here (``speech.refuse_speech``). A transcription closed early sends ``cancel``;
the next one first reads what is left of the cancelled one. When the process dies, the request
in flight fails with RunnerCrashed (RunnerGone before its first event); ``wait_exited`` returns,
and the scheduler forgets the model.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncGenerator, Sequence

from mdl.runtime import spawn, speech, wire
from mdl.runtime.channel import ServerChannel
from mdl.runtime.errors import RunnerCrashed, RunnerGone
from mdl.runtime.runner import (
    CompletionRequest,
    Embeddings,
    Failed,
    LoadSpec,
    ModelFacts,
    RunnerEvent,
)
from mdl.runtime.speech import Segment, SpeechEvent, TranscribeRequest

log = logging.getLogger("mdl.runtime")
LOAD_TIMEOUT = 120.0
ENTRY = "mdl.runtime.whisper_worker"


class WhisperRunner:
    def __init__(self, spec: LoadSpec, proc: asyncio.subprocess.Process, channel: ServerChannel):
        self.spec = spec
        self.proc = proc
        self.channel = channel
        self.facts = ModelFacts(0, "", "")
        self.stderr: collections.deque[str] = collections.deque(maxlen=spawn.STDERR_LINES)
        self._unfinished = False
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(cls, spec: LoadSpec) -> WhisperRunner:
        proc, channel = await spawn.spawn(ENTRY, spec.name)
        runner = cls(spec, proc, channel)
        runner._stderr_task = asyncio.create_task(spawn.read_stderr(proc, runner.stderr))
        runner.channel.send(wire.load_message(spec))
        await spawn.loaded(
            runner._load_reply(), spec.name, proc, LOAD_TIMEOUT, runner._exit_reason, runner.close
        )
        log.info("loaded %s in whisper worker %d", spec.name, proc.pid)
        return runner

    async def transcribe(self, request: TranscribeRequest) -> AsyncGenerator[SpeechEvent, None]:
        """Segments as whisper.cpp finishes them, then Transcribed (or Failed)."""
        await self._drain()
        if self.proc.returncode is not None:
            raise RunnerGone(await self._exit_reason())
        self.channel.send(speech.transcribe_message(request))
        self._unfinished = True
        answered = False
        try:
            while True:
                event = await self._next(answered)
                answered = True
                if not isinstance(event, Segment):
                    self._unfinished = False
                yield event
                if self._unfinished is False:
                    return
        finally:
            if self._unfinished:
                self.channel.send({"op": "cancel"})

    async def complete(self, request: CompletionRequest) -> AsyncGenerator[RunnerEvent, None]:
        yield Failed(f"{self.spec.name} is a speech-to-text model", bad_request=True)

    async def embed(self, texts: Sequence[str], truncate: bool) -> Embeddings | Failed:
        return Failed(f"{self.spec.name} is a speech-to-text model", bad_request=True)

    async def wait_exited(self) -> None:
        await self.proc.wait()

    async def close(self) -> None:
        await spawn.stop(self.proc, self.channel)
        if self._stderr_task is not None:
            await self._stderr_task
        self.channel.close()

    async def _load_reply(self) -> object:
        """The worker's answer to the load; None if it sent anything else or went away."""
        frame = await self.channel.recv()
        if isinstance(frame, dict) and frame.get("ev") in ("loaded", "failed"):
            return wire.event(frame)
        return None

    async def _next(self, answered: bool) -> SpeechEvent:
        """The next event; RunnerGone if the worker ends before the request's first one."""
        frame = await self.channel.recv()
        if frame is None:
            self._unfinished = False
            crashed = RunnerCrashed if answered else RunnerGone
            raise crashed(f"{await self._exit_reason()} while transcribing")
        if not isinstance(frame, dict):
            raise spawn.protocol_error(self.spec.name, frame)
        return speech.event(frame)

    async def _drain(self) -> None:
        """Read the rest of a cancelled transcription, up to its final event."""
        while self._unfinished:
            if not isinstance(await self._next(answered=False), Segment):
                self._unfinished = False

    async def _exit_reason(self) -> str:
        reason = await spawn.exit_reason(self.proc, self._stderr_task, self.spec.name)
        for line in self.stderr:  # the server's log, never the client, gets what it said
            log.warning("whisper worker %d: %s", self.pid, line)
        return reason
