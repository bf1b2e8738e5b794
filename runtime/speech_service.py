"""Transcription as a service over the same resolver, trust policy and scheduler as chat.

A request resolves its model now, refuses a model that cannot transcribe (naming what it can),
passes the trust policy, and leases the model's whisper runner from the scheduler (loaded on
demand, kept alive, evicted LRU, queued one request at a time like any runner). The decoded
samples are written to a temporary file the worker reads; it is removed when the request ends.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from mdl.runtime import offloop
from mdl.runtime.audio import Samples
from mdl.runtime.config import parse_keep_alive
from mdl.runtime.errors import BadRequest, RuntimeFailure
from mdl.runtime.models import ResolvedModel
from mdl.runtime.ollama_models import capabilities
from mdl.runtime.runner import Failed, LoadSpec
from mdl.runtime.scheduler import Lease, Want
from mdl.runtime.service import Service
from mdl.runtime.speech import SAMPLE_RATE, Segment, Transcribed, TranscribeRequest
from mdl.runtime.transcripts import Transcript
from mdl.runtime.trust import check_trusted
from mdl.runtime.whisper_process import WhisperRunner
from mdl.spec import whisper_ggml

BACKEND = "whisper.cpp"


@dataclass(frozen=True)
class SpeechRequest:
    model: str
    language: str | None = None
    prompt: str = ""
    temperature: float | None = None
    translate: bool = False
    keep_alive: object = None
    """As the client sent it (seconds or a duration string); None: the server's default."""


class SpeechService:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def transcribe(
        self, request: SpeechRequest, samples: Samples
    ) -> AsyncGenerator[Segment | Transcript, None]:
        """Segments as they are decoded, then the whole Transcript."""
        model = await self.service.resolve(request.model)
        if not model.speech:
            raise BadRequest(
                f"{model.name} cannot transcribe audio (capabilities: "
                f"{', '.join(capabilities(model))}); use a speech-to-text model"
            )
        languages = model.gguf.metadata.get(f"{whisper_ggml.ARCHITECTURE}.languages")
        if request.language and isinstance(languages, tuple) and request.language not in languages:
            known = ", ".join(map(str, languages[:12])) + ("…" if len(languages) > 12 else "")
            raise BadRequest(f"language {request.language!r}: {model.name} knows {known}")
        raw = request.keep_alive
        keep_alive = self.service.default_keep_alive if raw is None else parse_keep_alive(raw)
        await check_trusted(model, self.service.policy)
        want = self._want(model)
        self.service.served[want.identity] = model
        duration = samples.size / SAMPLE_RATE
        async with _samples_file(samples) as path:
            native = TranscribeRequest(
                str(path), duration, request.language, request.prompt, request.temperature,
                request.translate,
            )  # fmt: skip

            async def work(lease: Lease) -> AsyncGenerator[Segment | Transcript, None]:
                runner = lease.runner
                if not isinstance(runner, WhisperRunner):
                    raise RuntimeFailure(f"{model.name}: not served by a whisper runner")
                segments: list[Segment] = []
                async with aclosing(runner.transcribe(native)) as events:
                    async for event in events:
                        if isinstance(event, Segment):
                            segments.append(event)
                            yield event
                        elif isinstance(event, Failed):
                            raise (BadRequest if event.bad_request else RuntimeFailure)(
                                event.message
                            )
                        elif isinstance(event, Transcribed):
                            yield Transcript(
                                "translate" if request.translate else "transcribe",
                                event.language,
                                duration,
                                tuple(segments),
                                request.temperature or 0.0,
                            )

            scheduler = self.service.scheduler
            async with aclosing(scheduler.serve(want, keep_alive, work)) as answers:
                async for answer in answers:
                    yield answer

    def _want(self, model: ResolvedModel) -> Want:
        spec = LoadSpec(
            name=model.name,
            weights=str(model.weights),
            num_ctx=0,
            num_thread=self.service.cores,
            backend=BACKEND,
        )
        weights = model.stored.files.weights
        size = whisper_ggml.estimate_bytes(model.gguf, weights.size if weights else 0)
        return Want(model.name, str(model.digest), spec, size)


@asynccontextmanager
async def _samples_file(samples: Samples) -> AsyncIterator[Path]:
    """The samples in a temporary file, written and removed in a thread (never on the loop)."""
    scratch = Path(await offloop.blocking(tempfile.mkdtemp, "", "mdl-audio-"))
    try:
        path = scratch / "samples.f32"
        await offloop.blocking(samples.tofile, path)
        yield path
    finally:
        with anyio.CancelScope(shield=True):
            await offloop.blocking(shutil.rmtree, scratch, True)
