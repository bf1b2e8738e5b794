"""The native inference service both APIs adapt: generate, chat and embed.

Each request resolves its model name in the store *now*, merges options (request over
``params.json`` over defaults), waits for the model's runner (the scheduler loads it, queues the
request), renders the prompt with the model's template, system prompt and seed messages, and
streams typed events: ``Token``… then ``Finished``. Errors are raised, whenever they happen:
found before the first event (unknown model, bad options, a full queue, a failed load) the APIs
answer them with a status code; later (the worker died midway) they end the stream in its own
error format (``streaming.answer``).

Store reads (names, manifests, GGUF headers, signatures) and prompts run in worker threads
(``offloop``); prompts within a budget (``templates.budget``): a template,
the model's or the request's, never holds up the event loop. A request's own template that
fails is that request's fault (400).

``generate`` and ``chat`` are async generators: close them early (the client went away) and
the generation stops.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from mdl.runtime import offloop
from mdl.runtime import options as opts
from mdl.runtime.config import parse_keep_alive
from mdl.runtime.errors import BadRequest, RuntimeFailure, TemplateError
from mdl.runtime.messages import ROLES, Message, Tool, ToolCall
from mdl.runtime.models import ModelResolver, ResolvedModel
from mdl.runtime.runner import (
    CompletionRequest,
    Done,
    Embeddings,
    Failed,
    LoadSpec,
    ModelFacts,
    Token,
)
from mdl.runtime.scheduler import Lease, Scheduler, Want
from mdl.runtime.speech import refuse_speech
from mdl.runtime.templates import ChatTemplate, chat_template, make_template
from mdl.runtime.templates.budget import Budget
from mdl.runtime.tools import ToolCallParser
from mdl.runtime.trust import check_trusted
from mdl.spec.footprint import DEFAULT_NUM_PARALLEL, estimate_bytes
from mdl.spec.modelpack import template_format
from mdl.spec.policy import Policy

T = TypeVar("T")


@dataclass(frozen=True)
class GenerateRequest:
    model: str
    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    raw: bool = False
    context: tuple[int, ...] | None = None
    options: Mapping[str, Any] | None = None
    format: str | None = None
    """None, ``json``, or a JSON schema as JSON text."""
    keep_alive: Any = None
    """As the client sent it (seconds, a duration string, or None for the server default)."""
    images: int = 0


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...] = ()
    tools: tuple[Tool, ...] = ()
    options: Mapping[str, Any] | None = None
    format: str | None = None
    keep_alive: Any = None
    images: int = 0


@dataclass(frozen=True)
class EmbedRequest:
    model: str
    inputs: tuple[str, ...] = ()
    truncate: bool = True
    options: Mapping[str, Any] | None = None
    keep_alive: Any = None


@dataclass(frozen=True)
class Finished:
    """The end of an answer, with Ollama's counters (durations in nanoseconds)."""

    reason: str
    """``stop``, ``length``, ``load`` (a preload), ``unload``, or ``cancel``."""
    prompt_tokens: int = 0
    eval_tokens: int = 0
    total_ns: int = 0
    load_ns: int = 0
    prompt_ns: int = 0
    eval_ns: int = 0
    context: tuple[int, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class EmbedResult:
    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int
    total_ns: int
    load_ns: int


Event = Token | Finished


@dataclass
class Service:
    resolver: ModelResolver
    scheduler: Scheduler
    default_keep_alive: float | None = 300.0
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_context: int | None = None
    """``MDL_MAX_CONTEXT``; None: each model's trained context length bounds ``num_ctx``."""
    policy: Policy = field(default_factory=lambda: Policy("no policy"))
    """The trust policy every model must pass before it is loaded (the default accepts all)."""
    num_parallel: int = DEFAULT_NUM_PARALLEL
    """``MDL_NUM_PARALLEL``: requests one loaded model decodes at once."""
    served: dict[str, ResolvedModel] = field(default_factory=dict)
    """The models runners were loaded for, by manifest digest (what ``/api/ps`` describes)."""

    async def resolve(self, name: str) -> ResolvedModel:
        """The model a name means now (read in a thread: the tag index is a file)."""
        return await offloop.blocking(self.resolver.resolve, name)

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Event, None]:
        started = time.perf_counter_ns()
        model, values, keep_alive = await self._prepare(request, request.images)
        if not request.prompt and not request.suffix:
            yield await self._preload(model, values, keep_alive, started)
            return

        async def work(lease: Lease) -> AsyncGenerator[Event, None]:
            facts = lease.runner.facts
            prompt = await _render(
                lambda budget: _generate_prompt(model, request, facts, budget),
                from_request=bool(request.template),
            )
            completion = CompletionRequest(
                prompt,
                opts.sampling(values),
                context=request.context or (),
                format=request.format,
                want_context=True,
            )
            async with aclosing(self._complete(lease, completion, started, None)) as events:
                async for event in events:
                    yield event

        async with aclosing(await self._serve(model, values, keep_alive, work)) as events:
            async for event in events:
                yield event

    async def chat(self, request: ChatRequest) -> AsyncGenerator[Event, None]:
        started = time.perf_counter_ns()
        model, values, keep_alive = await self._prepare(request, request.images)
        for message in request.messages:
            if message.role not in ROLES:
                raise BadRequest(f"invalid message role {message.role!r}")
        if not request.messages:
            yield await self._preload(model, values, keep_alive, started)
            return

        async def work(lease: Lease) -> AsyncGenerator[Event, None]:
            facts = lease.runner.facts
            prompt = await _render(lambda budget: _chat_prompt(model, request, facts, budget))
            completion = CompletionRequest(prompt, opts.sampling(values), format=request.format)
            parser = ToolCallParser({t.name for t in request.tools}) if request.tools else None
            async with aclosing(self._complete(lease, completion, started, parser)) as events:
                async for event in events:
                    yield event

        async with aclosing(await self._serve(model, values, keep_alive, work)) as events:
            async for event in events:
                yield event

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        started = time.perf_counter_ns()
        model, values, keep_alive = await self._prepare(request)

        async def work(lease: Lease) -> AsyncGenerator[EmbedResult, None]:
            result = (
                await lease.runner.embed(request.inputs, request.truncate)
                if request.inputs
                else Embeddings((), 0)  # no input: only load the model, as Ollama does
            )
            if isinstance(result, Failed):
                raise _error(result)
            total = time.perf_counter_ns() - started
            yield EmbedResult(result.vectors, result.prompt_tokens, total, lease.load_ns)

        async with aclosing(await self._serve(model, values, keep_alive, work)) as answers:
            return await anext(answers)

    # -- internals ----------------------------------------------------------------------------

    async def _prepare(
        self, request: GenerateRequest | ChatRequest | EmbedRequest, images: int = 0
    ) -> tuple[ResolvedModel, opts.Values, float | None]:
        """The model, its options under the request's, and the keep-alive; or the 4xx."""
        model = await self.resolve(request.model)
        raw = request.keep_alive
        keep_alive = self.default_keep_alive if raw is None else parse_keep_alive(raw)
        values = {**model.params, **opts.check_options(request.options)}
        if images:
            raise BadRequest(f"{model.name} does not support images (it has no vision projector)")
        return model, values, keep_alive

    def _want(self, model: ResolvedModel, values: opts.Values) -> Want:
        runner = opts.runner_options(
            values, model.gguf.context_length, self.cores, self.max_context
        )
        spec = LoadSpec(
            name=model.name,
            weights=str(model.weights),
            adapters=tuple(str(a) for a in model.adapters),
            num_ctx=runner.num_ctx,
            num_batch=runner.num_batch,
            num_thread=runner.num_thread,
            use_mmap=runner.use_mmap,
            pooling_mean=model.pooling_mean,
            num_parallel=self.num_parallel,
        )
        size = estimate_bytes(model.shape, runner.num_ctx, runner.num_batch, self.num_parallel)
        return Want(model.name, str(model.digest), spec, size)

    async def _acquire(self, model: ResolvedModel, values: opts.Values) -> Lease:
        return await self.scheduler.acquire(await self._wanted(model, values))

    async def _serve(
        self,
        model: ResolvedModel,
        values: opts.Values,
        keep_alive: float | None,
        work: Callable[[Lease], AsyncGenerator[T, None]],
    ) -> AsyncGenerator[T, None]:
        """``work`` on the model's runner (``Scheduler.serve``: a runner found dead is replaced)."""
        return self.scheduler.serve(await self._wanted(model, values), keep_alive, work)

    async def _wanted(self, model: ResolvedModel, values: opts.Values) -> Want:
        refuse_speech(model)
        await check_trusted(model, self.policy)
        want = await offloop.blocking(self._want, model, values)  # stats the weights
        self.served[want.identity] = model
        return want

    async def _preload(
        self, model: ResolvedModel, values: opts.Values, keep_alive: float | None, started: int
    ) -> Finished:
        """An empty prompt loads the model (or, with keep_alive 0, unloads it)."""
        if keep_alive == 0:
            await self.scheduler.unload(str(model.digest))
            return Finished("unload", total_ns=time.perf_counter_ns() - started)
        lease = await self._acquire(model, values)
        self.scheduler.release(lease, keep_alive)
        return Finished("load", total_ns=time.perf_counter_ns() - started, load_ns=lease.load_ns)

    async def _complete(
        self,
        lease: Lease,
        request: CompletionRequest,
        started: int,
        parser: ToolCallParser | None,
    ) -> AsyncGenerator[Event, None]:
        async with aclosing(lease.runner.complete(request)) as events:
            async for event in events:
                if isinstance(event, Token):
                    text = parser.feed(event.text) if parser else event.text
                    if text:
                        yield Token(text)
                elif isinstance(event, Done):
                    content, calls = parser.finish() if parser else ("", ())
                    if content:
                        yield Token(content)
                    yield _finished(event, lease, started, calls)
                else:
                    raise _error(event)


def _error(failed: Failed) -> RuntimeFailure:
    return (BadRequest if failed.bad_request else RuntimeFailure)(failed.message)


def _finished(done: Done, lease: Lease, started: int, calls: tuple[ToolCall, ...]) -> Finished:
    return Finished(
        reason=done.reason,
        prompt_tokens=done.prompt_tokens,
        eval_tokens=done.eval_tokens,
        total_ns=time.perf_counter_ns() - started,
        load_ns=lease.load_ns,
        prompt_ns=done.prompt_ns,
        eval_ns=done.eval_ns,
        context=done.context,
        tool_calls=calls,
    )


async def _render(work: Callable[[Budget], str], from_request: bool = False) -> str:
    """Run ``work`` (which renders a prompt) in a thread within a fresh budget. The budget
    stops the thread itself; the timeout here only spares the loop a thread stuck in one call."""
    budget = Budget()
    try:
        with anyio.fail_after(budget.seconds + 1):
            return await offloop.abandonable(work, budget)
    except TimeoutError:
        error = TemplateError(f"template: rendering took more than {budget.seconds:g} s")
        raise (BadRequest(str(error)) if from_request else error) from None
    except TemplateError as exc:
        if from_request and exc.status >= 500:
            raise BadRequest(str(exc)) from exc
        raise


def _template(model: ResolvedModel, override: str | None, facts: ModelFacts) -> ChatTemplate:
    """The model's template (parsed once), or the request's own (parsed for this request)."""
    if not override:
        return chat_template(
            model.template, model.template_format, facts.bos_token, facts.eos_token
        )
    return make_template(override, template_format(override), facts.bos_token, facts.eos_token)


def _chat_prompt(
    model: ResolvedModel, request: ChatRequest, facts: ModelFacts, budget: Budget
) -> str:
    template = _template(model, None, facts)
    if request.tools and not template.supports_tools:
        raise BadRequest(f"{request.model} does not support tools")
    return template.render(_conversation(model, request.messages), request.tools, budget)


def _conversation(model: ResolvedModel, messages: Sequence[Message]) -> list[Message]:
    """Ollama's chat prompt: the model's seed messages, then the request's, after the model's
    system prompt unless the request starts with its own."""
    conversation = [*model.messages, *messages]
    if model.system and (not messages or messages[0].role != "system"):
        conversation.insert(0, Message("system", model.system))
    return conversation


def _generate_prompt(
    model: ResolvedModel, request: GenerateRequest, facts: ModelFacts, budget: Budget
) -> str:
    """Ollama's generate prompt: raw as given; a fill-in-the-middle prompt when there is a
    suffix; else the system prompt, the model's seed messages (unless a context continues an
    earlier answer) and the prompt as a user message."""
    if request.raw:
        return request.prompt
    template = _template(model, request.template, facts)
    if request.suffix:
        if not template.supports_insert:
            raise BadRequest(
                f"{request.model} does not support insert (no .Suffix in its template)"
            )
        return template.render_insert(request.prompt, request.suffix, budget)
    messages: list[Message] = []
    system = request.system if request.system else model.system
    if system:
        messages.append(Message("system", system))
    if request.context is None:
        messages += model.messages
    messages.append(Message("user", request.prompt))
    return template.render(messages, (), budget)


def unit_vector(vector: Sequence[float], dimensions: int = 0) -> list[float]:
    """The first ``dimensions`` (all if 0) scaled to length 1, as Ollama's /api/embed returns."""
    values = list(vector[:dimensions] if dimensions > 0 else vector)
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values] if norm else values


def format_option(value: Any) -> str | None:
    """Ollama's ``format``: "" or null (free text), ``"json"``, or a JSON schema object."""
    if value in (None, ""):
        return None
    if value == "json":
        return "json"
    if isinstance(value, dict):
        return json.dumps(value)
    raise BadRequest('format must be "json" or a JSON schema object')
