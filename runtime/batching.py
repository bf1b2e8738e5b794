"""The worker's step loop: several requests decoded together over one model's sequences.

Every ``step`` is one decode: first each generating request's next token, then, in the rest of
``num_batch``, chunks of the prompts still to evaluate (decode first, chunked prefill), so a
long prompt arriving holds running streams up for one step at most.

Prompt cache: a finished request leaves its tokens in its sequence. A new request takes the
free sequence whose tokens share the longest prefix with its prompt (if that is at least half
of it; else the least recently used of those nearest the busy ones) and evaluates only the
rest; ``Done.prompt_tokens`` counts what was evaluated.

Context shift, as Ollama's: when a sequence reaches ``num_ctx`` while ``num_predict`` asks for
more, the first ``num_keep`` tokens stay, half of the rest is dropped, and generation goes on.
A prompt longer than the context is cut the same way before it starts (``fit``).

The pure rules (``fit``, ``common_prefix``, ``choose``, ``shift_window``) are functions; the
``Engine`` applies them through a ``Backend`` (``llamacpp.LlamaCppModel``).
"""

from __future__ import annotations

import codecs
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mdl.runtime.runner import CompletionRequest, Done, Failed, RunnerEvent, Sampling, Token
from mdl.runtime.stops import StopScanner

NO_ROOM = 1
"""llama_decode's status when the KV cache has no room for the batch."""


class Backend(Protocol):
    n_seq: int
    n_ctx: int
    n_batch: int
    n_vocab: int
    bos: int
    can_shift: bool

    def tokenize(self, text: bytes, add_bos: bool) -> list[int]: ...
    def piece(self, token: int) -> bytes: ...
    def is_eog(self, token: int) -> bool: ...
    def decode(
        self, tokens: list[int], positions: list[int], seqs: list[int], logits: list[bool]
    ) -> int: ...
    def forget(self, seq: int, start: int) -> None: ...
    def shift(self, seq: int, keep: int, discard: int, end: int) -> None: ...
    def grammar(self, fmt: str) -> str: ...
    def sampler(self, sampling: Sampling, grammar: str | None, history: Sequence[int]) -> Any: ...
    def sample(self, sampler: Any, row: int) -> int: ...
    def free_sampler(self, sampler: Any) -> None: ...


Emit = Callable[[int, RunnerEvent], None]
"""Send an event of the request with this id."""


def fit(tokens: list[int], n_ctx: int, num_keep: int) -> list[int]:
    """Drop tokens after the first ``num_keep`` so the prompt leaves a quarter of the context
    for the answer (Ollama truncates the same way, keeping the start)."""
    room = n_ctx - max(1, n_ctx // 4)
    if len(tokens) <= room:
        return tokens
    keep = min(max(num_keep, 1), room // 2)
    return tokens[:keep] + tokens[len(tokens) - (room - keep) :]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def shift_window(length: int, num_keep: int) -> tuple[int, int]:
    """(tokens kept at the start, tokens dropped after them) for a full sequence of ``length``:
    Ollama's ``numKeep`` and half of the rest."""
    keep = min(max(num_keep, 0), length // 2)
    return keep, max(1, (length - keep) // 2)


@dataclass(eq=False)
class Slot:
    """One llama.cpp sequence: the tokens its KV holds (position i is ``tokens[i]``)."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    last_used: int = 0
    job: Job | None = None


def choose(
    free: Sequence[Slot], prompt: Sequence[int], busy: Sequence[int] = ()
) -> tuple[Slot, int]:
    """The free slot sharing the longest prefix with ``prompt`` if that covers at least half
    of it; else the one that keeps the ``busy`` sequences' range narrowest, the least recently
    used among those (so a new conversation that shares only a template's first tokens leaves
    another's cache alone, as llama.cpp's server does); and how many of its tokens can stay (at
    least one prompt token is evaluated: its logits start the answer).

    The range matters because llama.cpp computes a batch's attention over every sequence from
    the lowest to the highest it holds: 4 streams on sequences 0, 2, 5 and 7 of 8 cost 1.6x a
    step on 0 to 3 (measured on SmolLM2-135M)."""
    best = max(free, key=lambda s: (common_prefix(s.tokens, prompt), -s.last_used))
    if 2 * common_prefix(best.tokens, prompt) < len(prompt):
        best = min(free, key=lambda s: (_span([*busy, s.seq]), s.last_used))
    return best, min(common_prefix(best.tokens, prompt), len(prompt) - 1)


def _span(seqs: Sequence[int]) -> int:
    return max(seqs) - min(seqs)


@dataclass(eq=False)
class Job:
    request_id: int
    request: CompletionRequest
    slot: Slot
    prompt: list[int]
    pending: list[int]
    """Prompt tokens still to evaluate."""
    sampler: Any
    limit: int
    shifts: bool
    """Whether a full context shifts (``num_predict`` asks for more than fits) or ends it."""
    started: int
    scanner: StopScanner
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    generated: list[int] = field(default_factory=list)
    next_token: int = -1
    """Sampled but not yet decoded; -1 while the prompt is evaluated."""
    first: int = 0
    evaluated: int = 0


class Engine:
    def __init__(self, backend: Backend, emit: Emit) -> None:
        self.backend = backend
        self.emit = emit
        self.slots = [Slot(i) for i in range(backend.n_seq)]
        self.waiting: deque[tuple[int, CompletionRequest]] = deque()
        """Requests for which no sequence is free yet (the scheduler normally prevents it)."""
        self.jobs: dict[int, Job] = {}
        """Running requests by id, in arrival order: prompt chunks go first come, first served."""
        self._clock = itertools.count(1)

    @property
    def busy(self) -> bool:
        return bool(self.jobs or self.waiting)

    def submit(self, request_id: int, request: CompletionRequest) -> None:
        self.waiting.append((request_id, request))
        self._admit()

    def cancel(self, request_id: int) -> None:
        """Free the request's sequence now (what it had evaluated stays cached)."""
        job = self.jobs.get(request_id)
        if job is not None:
            self._finish(job, "cancel")
        else:
            self.waiting = deque(w for w in self.waiting if w[0] != request_id)

    def fail_all(self, message: str) -> None:
        for job in list(self.jobs.values()):
            self._drop(job, message)
        for request_id, _ in self.waiting:
            self.emit(request_id, Failed(message))
        self.waiting.clear()

    def step(self) -> None:
        """One decode: every generating request's next token, then prompt chunks."""
        backend = self.backend
        tokens: list[int] = []
        positions: list[int] = []
        seqs: list[int] = []
        logits: list[bool] = []
        rows: list[tuple[Job, int]] = []
        involved: list[Job] = []
        for job in list(self.jobs.values()):
            if job.next_token < 0:
                continue
            slot = job.slot
            if len(slot.tokens) >= backend.n_ctx and not self._shift(job):
                continue
            rows.append((job, len(tokens)))
            involved.append(job)
            tokens.append(job.next_token)
            positions.append(len(slot.tokens))
            seqs.append(slot.seq)
            logits.append(True)
            slot.tokens.append(job.next_token)
            job.next_token = -1
        room = backend.n_batch - len(tokens)
        for job in self.jobs.values():
            if room <= 0:
                break
            if not job.pending:
                continue
            chunk = job.pending[:room]
            del job.pending[:room]
            slot = job.slot
            start = len(slot.tokens)
            tokens += chunk
            positions += range(start, start + len(chunk))
            seqs += [slot.seq] * len(chunk)
            logits += [False] * len(chunk)
            slot.tokens += chunk
            job.evaluated += len(chunk)
            involved.append(job)
            room -= len(chunk)
            if not job.pending:
                logits[-1] = True
                rows.append((job, len(tokens) - 1))
        if not tokens:
            return
        status = backend.decode(tokens, positions, seqs, logits)
        if status == NO_ROOM and self._evict_idle():
            status = backend.decode(tokens, positions, seqs, logits)
        if status != 0:
            for job in involved:
                self._drop(job, f"llama_decode failed with status {status}")
            self._admit()
            return
        now = time.perf_counter_ns()
        for job, row in rows:
            if job.request_id in self.jobs:
                self._take(job, backend.sample(job.sampler, row), now)

    # -- internals ----------------------------------------------------------------------------

    def _admit(self) -> None:
        while self.waiting:
            free = [s for s in self.slots if s.job is None]
            if not free:
                return
            request_id, request = self.waiting.popleft()
            try:
                self._start(request_id, request, free)
            except ValueError as exc:
                self.emit(request_id, Failed(str(exc), bad_request=True))

    def _start(self, request_id: int, request: CompletionRequest, free: list[Slot]) -> None:
        backend = self.backend
        sampling = request.sampling
        if any(not 0 <= token < backend.n_vocab for token in request.context):
            raise ValueError(f"context: token ids must be from 0 to {backend.n_vocab - 1}")
        try:
            grammar = backend.grammar(request.format) if request.format else None
        except ValueError as exc:
            raise ValueError(f"invalid format: {exc}") from exc
        prompt = fit(self._tokens(request), backend.n_ctx, sampling.num_keep)
        busy = [job.slot.seq for job in self.jobs.values()]
        slot, reuse = choose(free, prompt, busy)
        sampler = backend.sampler(sampling, grammar, prompt)
        backend.forget(slot.seq, reuse)
        del slot.tokens[reuse:]
        asked = sampling.num_predict
        job = Job(
            request_id,
            request,
            slot,
            prompt,
            prompt[reuse:],
            sampler,
            limit=asked if asked > 0 else backend.n_ctx - len(prompt),
            shifts=asked > 0 and backend.can_shift,
            started=time.perf_counter_ns(),
            scanner=StopScanner(sampling.stop),
        )
        slot.job = job
        self.jobs[request_id] = job

    def _tokens(self, request: CompletionRequest) -> list[int]:
        bos = self.backend.bos
        tokens = list(request.context)
        tokens += self.backend.tokenize(request.prompt.encode(), add_bos=not tokens)
        if tokens[:2] == [bos, bos]:
            tokens = tokens[1:]
        return tokens or [bos]

    def _take(self, job: Job, token: int, now: int) -> None:
        job.first = job.first or now
        if self.backend.is_eog(token):
            self._finish(job, "stop")
            return
        job.generated.append(token)
        text = job.scanner.feed(job.decoder.decode(self.backend.piece(token)))
        if text:
            self.emit(job.request_id, Token(text))
        if job.scanner.stopped:
            self._finish(job, "stop")
        elif len(job.generated) >= job.limit:
            self._finish(job, "length")
        else:
            job.next_token = token

    def _shift(self, job: Job) -> bool:
        """Make room in a full sequence; False (and the answer ends) if it may not shift."""
        if not job.shifts:
            self._finish(job, "length")
            return False
        slot = job.slot
        keep, discard = shift_window(len(slot.tokens), job.request.sampling.num_keep)
        self.backend.shift(slot.seq, keep, discard, len(slot.tokens))
        del slot.tokens[keep : keep + discard]
        return True

    def _finish(self, job: Job, reason: str) -> None:
        tail = job.scanner.feed(job.decoder.decode(b"", final=True)) + job.scanner.flush()
        if tail and reason != "cancel":
            self.emit(job.request_id, Token(tail))
        end = time.perf_counter_ns()
        first = job.first or end
        context = tuple(job.prompt + job.generated) if job.request.want_context else ()
        self._release(job)
        self.emit(
            job.request_id,
            Done(
                reason=reason,
                prompt_tokens=job.evaluated,
                eval_tokens=len(job.generated),
                prompt_ns=first - job.started,
                eval_ns=end - first,
                context=context,
            ),
        )
        self._admit()

    def _drop(self, job: Job, message: str) -> None:
        """Fail a request whose sequence is in an unknown state: forget all of it."""
        job.slot.tokens.clear()
        self.backend.forget(job.slot.seq, 0)
        self._release(job)
        self.emit(job.request_id, Failed(message))

    def _release(self, job: Job) -> None:
        self.backend.free_sampler(job.sampler)
        job.slot.job = None
        job.slot.last_used = next(self._clock)
        del self.jobs[job.request_id]

    def _evict_idle(self) -> bool:
        """Forget the cached tokens of every free sequence; True if that freed any."""
        freed = False
        for slot in self.slots:
            if slot.job is None and slot.tokens:
                self.backend.forget(slot.seq, 0)
                slot.tokens.clear()
                freed = True
        return freed
