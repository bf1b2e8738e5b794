"""The llama.cpp backend, run inside a worker process: the one module that imports llama_cpp.

The GGUF is mapped from the store's blob path (mmap; never copied). Every LoRA adapter of the
model is applied through llama.cpp's adapter functions, which keeps the weights mapped (the
high-level ``lora_path`` would turn mmap off and takes only one adapter). Embeddings use a
second context on the same file, made on first use.
"""

from __future__ import annotations

import codecs
import ctypes
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mdl.runtime.errors import LoadFailed
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
from mdl.runtime.stops import StopScanner

if TYPE_CHECKING:
    from llama_cpp import Llama

_CTX_PAD = 256
_GRAMMARS = 16
"""Compiled format grammars kept per model (the oldest is dropped)."""


class LlamaCppModel:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.llm = _load(spec, embedding=False)
        # The first decode sets llama.cpp's buffers up: pay for it now, not in the first answer.
        self.llm.eval([max(self.llm.token_bos(), 0)])
        self.llm.n_tokens = 0  # forget it (what Llama.reset does)
        self._embedder: Llama | None = None
        self._grammars: dict[str, Any] = {}

    def facts(self) -> ModelFacts:
        model = self.llm._model
        bos, eos = model.token_bos(), model.token_eos()
        return ModelFacts(
            n_ctx=self.llm.n_ctx(),
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
        )

    def complete(
        self, request: CompletionRequest, cancelled: Callable[[], bool]
    ) -> Iterator[RunnerEvent]:
        """Generate; ``cancelled`` is polled after every token."""
        import llama_cpp

        llm, sampling = self.llm, request.sampling
        try:
            grammar = self._grammar(request.format)
        except Exception as exc:  # whatever the converter says of the request's own schema
            yield Failed(f"invalid format: {exc}", bad_request=True)
            return
        n_ctx = llm.n_ctx()
        n_vocab = llm.n_vocab()
        if any(not 0 <= token < n_vocab for token in request.context):
            yield Failed(f"context: token ids must be from 0 to {n_vocab - 1}", bad_request=True)
            return
        prompt = _fit(self._tokens(request), n_ctx, sampling.num_keep)
        limit = sampling.num_predict if sampling.num_predict > 0 else n_ctx
        repeat = sampling.repeat_last_n
        llm.last_n_tokens_size = n_ctx if repeat < 0 else min(repeat, n_ctx)
        llm.set_seed(sampling.seed if sampling.seed >= 0 else random.randrange(2**31))
        scanner = StopScanner(sampling.stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = llm._model.vocab
        generated: list[int] = []
        reason = "length"
        start = time.perf_counter_ns()
        first = 0
        tokens = llm.generate(
            prompt,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            typical_p=sampling.typical_p,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
            mirostat_mode=sampling.mirostat,
            mirostat_tau=sampling.mirostat_tau,
            mirostat_eta=sampling.mirostat_eta,
            grammar=grammar,
        )
        try:
            for token in tokens:
                first = first or time.perf_counter_ns()
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    reason = "stop"
                    break
                generated.append(token)
                text = scanner.feed(decoder.decode(llm.detokenize([token])))
                if text:
                    yield Token(text)
                if scanner.stopped:
                    reason = "stop"
                    break
                if len(generated) >= limit or len(prompt) + len(generated) >= n_ctx:
                    break
                if cancelled():
                    reason = "cancel"
                    break
        finally:
            tokens.close()
        tail = scanner.feed(decoder.decode(b"", final=True)) + scanner.flush()
        if tail:
            yield Token(tail)
        end = time.perf_counter_ns()
        first = first or end
        yield Done(
            reason=reason,
            prompt_tokens=len(prompt),
            eval_tokens=len(generated),
            prompt_ns=first - start,
            eval_ns=end - first,
            context=tuple(prompt + generated) if request.want_context else (),
        )

    def embed(self, texts: Sequence[str], truncate: bool) -> Embeddings | Failed:
        if self._embedder is None:
            self._embedder = _load(self.spec, embedding=True)
        embedder = self._embedder
        n_ctx = embedder.n_ctx()
        count = 0
        for text in texts:
            n_tokens = len(embedder.tokenize(text.encode(), add_bos=True, special=True))
            if n_tokens > n_ctx and not truncate:
                return Failed(
                    f"input of {n_tokens} tokens exceeds the context length ({n_ctx})",
                    bad_request=True,
                )
            count += min(n_tokens, n_ctx)
        vectors = embedder.embed(list(texts), truncate=True)
        return Embeddings(tuple(tuple(_pooled(v)) for v in vectors), count)

    def close(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
        self.llm.close()

    def _tokens(self, request: CompletionRequest) -> list[int]:
        llm = self.llm
        text = request.prompt.encode()
        tokens = list(request.context)
        tokens += llm.tokenize(text, add_bos=not tokens, special=True) if text else []
        bos = llm.token_bos()
        if tokens[:2] == [bos, bos]:
            tokens = tokens[1:]
        return tokens or [bos]

    def _grammar(self, fmt: str | None) -> Any:
        if fmt is None:
            return None
        if fmt not in self._grammars:
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

            if fmt == "json":
                grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            else:
                grammar = LlamaGrammar.from_json_schema(fmt, verbose=False)
            if len(self._grammars) >= _GRAMMARS:  # each request may bring its own schema
                del self._grammars[next(iter(self._grammars))]
            self._grammars[fmt] = grammar
        return self._grammars[fmt]


def _load(spec: LoadSpec, *, embedding: bool) -> Llama:
    import llama_cpp

    options: dict[str, Any] = {"n_batch": spec.num_batch, "n_ctx": spec.num_ctx}
    if embedding:  # a pooled embedding needs the whole input in one batch
        # llama.cpp pads the context to a multiple of 256 and asserts (aborts) when the
        # micro-batch does not match it, so both are padded the same way here
        size = -(-spec.num_ctx // _CTX_PAD) * _CTX_PAD
        options.update(embedding=True, n_ctx=size, n_batch=size, n_ubatch=size)
        if spec.pooling_mean:
            options["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
    try:
        llm = llama_cpp.Llama(
            model_path=spec.weights,
            n_threads=spec.num_thread,
            n_threads_batch=spec.num_thread,
            use_mmap=spec.use_mmap,
            verbose=False,
            **options,
        )
    except (ValueError, RuntimeError) as exc:
        raise LoadFailed(f"llama.cpp cannot load the weights: {exc}") from exc
    _apply_adapters(llm, spec)
    return llm


def _apply_adapters(llm: Llama, spec: LoadSpec) -> None:
    """Apply every adapter at scale 1; they live as long as the model (llama.cpp frees them)."""
    import llama_cpp

    if not spec.adapters:
        return
    adapters = []
    for path in spec.adapters:
        adapter = llama_cpp.llama_adapter_lora_init(llm.model, path.encode())
        if adapter is None:
            raise LoadFailed(f"llama.cpp cannot load the adapter {path}")
        adapters.append(adapter)
    count = len(adapters)
    array = (llama_cpp.llama_adapter_lora_p_ctypes * count)(*adapters)
    scales = (ctypes.c_float * count)(*([1.0] * count))
    if llama_cpp.llama_set_adapters_lora(llm.ctx, array, count, scales):
        raise LoadFailed(f"llama.cpp cannot apply the {count} adapter(s)")


def _fit(tokens: list[int], n_ctx: int, num_keep: int) -> list[int]:
    """Drop tokens after the first ``num_keep`` so the prompt leaves a quarter of the context
    for the answer (Ollama truncates the same way, keeping the start)."""
    room = n_ctx - max(1, n_ctx // 4)
    if len(tokens) <= room:
        return tokens
    keep = min(max(num_keep, 1), room // 2)
    return tokens[:keep] + tokens[len(tokens) - (room - keep) :]


def _pooled(vector: Any) -> list[float]:
    """One vector per input; a model without pooling gives one per token, which are averaged."""
    if vector and isinstance(vector[0], list):
        width = len(vector[0])
        return [sum(row[i] for row in vector) / len(vector) for i in range(width)]
    return [float(x) for x in vector]
