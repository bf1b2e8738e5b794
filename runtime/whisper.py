"""The whisper.cpp backend, run inside a whisper worker: the one module that imports the
binding (pywhispercpp's ``_pywhispercpp``, whisper.cpp's C API one to one).

The model file is the store's blob, read by whisper.cpp from its path; nothing is downloaded.
whisper.cpp logs to the worker's stderr, which the server keeps (the last lines) for a crash
report; no Python log callback, which whisper.cpp could call after the interpreter stopped.
Segments are reported as whisper.cpp finishes them (its new-segment callback), and a cancel
from the server stops the decoder through its abort callback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mdl.runtime.errors import BadRequest, LoadFailed
from mdl.runtime.runner import LoadSpec
from mdl.runtime.speech import Segment, Transcribed, TranscribeRequest, clamp

Emit = Callable[[Segment], None]


class WhisperModel:
    def __init__(self, spec: LoadSpec) -> None:
        import _pywhispercpp as pw  # type: ignore[import-not-found]

        self.pw: Any = pw
        self.spec = spec
        self.ctx = pw.whisper_init_from_file_with_params(
            spec.weights, pw.whisper_context_default_params()
        )
        if self.ctx is None:
            raise LoadFailed(f"{spec.name}: whisper.cpp cannot load the model file")
        self.multilingual = bool(pw.whisper_is_multilingual(self.ctx))

    def transcribe(
        self, request: TranscribeRequest, emit: Emit, cancelled: Callable[[], bool]
    ) -> Transcribed:
        pw = self.pw
        samples = np.fromfile(request.samples, dtype="<f4")
        params = self._params(request)
        failure: list[BaseException] = []

        def on_segments(ctx: Any, n_new: int, user_data: Any = None) -> None:
            try:
                total = pw.whisper_full_n_segments(ctx)
                for i in range(total - n_new, total):
                    emit(self._segment(ctx, i, request.duration))
            except BaseException as exc:
                failure.append(exc)

        pw.assign_new_segment_callback(params, on_segments)
        pw.assign_abort_callback(params, lambda: bool(failure) or cancelled())
        started = time.perf_counter_ns()
        pw.whisper_full(self.ctx, params, samples, samples.size)
        if failure:
            raise failure[0]
        language = pw.whisper_lang_str(pw.whisper_full_lang_id(self.ctx)) or "en"
        return Transcribed(language, time.perf_counter_ns() - started)

    def close(self) -> None:
        if self.ctx is not None:
            self.pw.whisper_free(self.ctx)
            self.ctx = None

    def _params(self, request: TranscribeRequest) -> Any:
        pw = self.pw
        greedy = pw.whisper_sampling_strategy.WHISPER_SAMPLING_GREEDY
        params = pw.whisper_full_default_params(greedy)
        params.n_threads = max(1, self.spec.num_thread)
        params.print_progress = False
        params.print_realtime = False
        params.print_timestamps = False
        if request.translate and not self.multilingual:
            raise BadRequest(f"{self.spec.name} is an English-only model: it cannot translate")
        params.translate = request.translate
        params.language = request.language or ("auto" if self.multilingual else "en")
        if request.prompt:
            params.initial_prompt = request.prompt
        if request.temperature is not None:
            params.temperature = request.temperature
            params.temperature_inc = 0.0
        return params

    def _segment(self, ctx: Any, i: int, duration: float) -> Segment:
        pw = self.pw
        text = pw.whisper_full_get_segment_text(ctx, i).decode("utf-8", errors="replace")
        segment = clamp(
            i,
            pw.whisper_full_get_segment_t0(ctx, i),
            pw.whisper_full_get_segment_t1(ctx, i),
            duration,
            text,
        )
        eot = pw.whisper_token_eot(ctx)
        tokens, logprob = [], 0.0
        for j in range(pw.whisper_full_n_tokens(ctx, i)):
            token = pw.whisper_full_get_token_id(ctx, i, j)
            if token < eot:  # text tokens only, not timestamps or other special tokens
                tokens.append(token)
                logprob += math.log(max(pw.whisper_full_get_token_p(ctx, i, j), 1e-10))
        avg = logprob / len(tokens) if tokens else 0.0
        return Segment(segment.id, segment.start, segment.end, text, tuple(tokens), avg)
