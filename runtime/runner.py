"""The runner interface: what a loaded model does, and the values that cross to and from it.

A runner completes a prompt into a stream of typed events, embeds texts, and goes away. The
llama.cpp runner lives in a worker process (``process.py`` on the server side, ``worker.py`` and
``llamacpp.py`` inside the worker); the scheduler only sees ``ModelRunner`` and builds runners
with a ``RunnerFactory``, so another backend (or a test's fake) plugs in the same way.

Every value here is a frozen dataclass of JSON types, so the channel can carry it as JSON.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class LoadSpec:
    """Everything that fixes a loaded model; two requests share a runner only if these match
    (``name`` labels the worker process and its messages and does not count)."""

    name: str = field(compare=False)
    weights: str
    adapters: tuple[str, ...] = ()
    num_ctx: int = 4096
    num_batch: int = 512
    num_thread: int = 1
    use_mmap: bool = True
    pooling_mean: bool = True
    """Mean-pool token embeddings (for models whose GGUF names no pooling type)."""
    num_parallel: int = 1
    """Sequences decoded together, each with up to ``num_ctx`` tokens of one shared KV pool."""
    backend: str = "llama.cpp"
    """Which worker runs it: ``llama.cpp``, or ``whisper.cpp`` for a speech model
    (``backends.by_backend`` picks the runner factory)."""


@dataclass(frozen=True)
class ModelFacts:
    """What the runner reports once loaded."""

    n_ctx: int
    bos_token: str
    eos_token: str


@dataclass(frozen=True)
class Sampling:
    """Per-request generation settings, defaults as Ollama's (``api.DefaultOptions``)."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = -1
    num_predict: int = -1
    """-1: until the context is full or the model stops."""
    num_keep: int = 4
    stop: tuple[str, ...] = ()
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias) pairs added to the logits (OpenAI's ``logit_bias``)."""


@dataclass(frozen=True)
class CompletionRequest:
    prompt: str
    sampling: Sampling = field(default_factory=Sampling)
    context: tuple[int, ...] = ()
    """Token ids to put before the prompt (Ollama's ``context`` from an earlier answer)."""
    format: str | None = None
    """None, ``json``, or a JSON schema as JSON text: the output is constrained to it."""
    want_context: bool = False


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Done:
    reason: str
    """``stop`` (the model or a stop sequence ended it), ``length`` or ``cancel``."""
    prompt_tokens: int = 0
    """Prompt tokens evaluated for this answer (a cached prefix is not evaluated again)."""
    eval_tokens: int = 0
    prompt_ns: int = 0
    eval_ns: int = 0
    context: tuple[int, ...] = ()


@dataclass(frozen=True)
class Failed:
    message: str
    bad_request: bool = False
    """The request itself was at fault (an unusable format schema, an over-long input)."""


@dataclass(frozen=True)
class Embeddings:
    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int


RunnerEvent = Token | Done | Failed


class ModelRunner(Protocol):
    facts: ModelFacts

    def complete(self, request: CompletionRequest) -> AsyncGenerator[RunnerEvent, None]:
        """Tokens, then one Done or Failed. Closing the iterator early cancels the generation
        and frees its sequence. Raises RunnerCrashed if the runner dies."""
        ...

    async def embed(self, texts: Sequence[str], truncate: bool) -> Embeddings | Failed: ...

    async def wait_exited(self) -> None:
        """Return once the runner is gone (closed, crashed or killed)."""
        ...

    async def close(self) -> None:
        """Stop the runner and free its memory; idempotent."""
        ...


RunnerFactory = Callable[[LoadSpec], Awaitable[ModelRunner]]
"""Load a model; raises LoadFailed with a message naming the model when it cannot."""
