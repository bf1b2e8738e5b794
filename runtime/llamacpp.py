"""The llama.cpp backend, run inside a worker process: the one module that imports llama_cpp.

One context holds ``num_parallel`` sequences, each with its own ``num_ctx`` cells of KV
(llama.cpp's per-sequence streams: a sequence attends only over its own tokens), driven through
llama.cpp's low-level API: a ``llama_batch`` with a sequence id per token, one ``llama_decode``
per step, a sampler chain per request sampled at its row of the batch (``llama_sampler_sample``).
The step loop that decides what goes into a batch is ``batching.py``; this module only speaks
to llama.cpp.

The GGUF is mapped from the store's blob path (mmap; never copied). Every LoRA adapter of the
model is applied through llama.cpp's adapter functions. Embeddings use a second context on the
same file, made on first use.
"""

from __future__ import annotations

import ctypes
import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mdl.runtime.errors import LoadFailed
from mdl.runtime.runner import Embeddings, Failed, LoadSpec, ModelFacts, Sampling
from mdl.spec.footprint import MICRO_BATCH

if TYPE_CHECKING:
    from llama_cpp import Llama

_CTX_PAD = 256
_PIECE = 64
_GRAMMARS = 16
"""Format grammars (GBNF text) kept per model (the oldest is dropped)."""


class LlamaCppModel:
    def __init__(self, spec: LoadSpec) -> None:
        import llama_cpp
        from llama_cpp import _internals

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's own log
        self.spec = spec
        self.n_seq = max(1, spec.num_parallel)
        self.n_ctx = spec.num_ctx
        self.n_batch = spec.num_batch
        model_params = llama_cpp.llama_model_default_params()
        model_params.use_mmap = spec.use_mmap
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = spec.num_ctx * self.n_seq
        params.n_batch = spec.num_batch
        params.n_ubatch = min(spec.num_batch, MICRO_BATCH)
        params.n_seq_max = self.n_seq
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = spec.num_thread
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as Llama's default
        params.no_perf = True
        try:
            self._model = _internals.LlamaModel(
                path_model=spec.weights, params=model_params, verbose=False
            )
            self._context = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise LoadFailed(f"llama.cpp cannot load the weights: {exc}") from exc
        self.ctx = self._context.ctx
        self.vocab = self._model.vocab
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.bos = llama_cpp.llama_vocab_bos(self.vocab)
        self.can_shift = bool(llama_cpp.llama_memory_can_shift(self.memory))
        _apply_adapters(self._model.model, self.ctx, spec)
        self._batch = llama_cpp.llama_batch_init(spec.num_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(_PIECE)
        self._embedder: Llama | None = None
        self._grammars: dict[str, str] = {}
        # The first decode sets llama.cpp's buffers up: pay for it now, not in the first answer.
        self.decode([max(self.bos, 0)], [0], [0], [True])
        self.forget(0, 0)

    def facts(self) -> ModelFacts:
        model = self._model
        bos, eos = model.token_bos(), model.token_eos()
        return ModelFacts(
            n_ctx=self.n_ctx,
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
        )

    # -- what the step loop uses -------------------------------------------------------------

    def tokenize(self, text: bytes, add_bos: bool) -> list[int]:
        return list(self._model.tokenize(text, add_bos=add_bos, special=True)) if text else []

    def piece(self, token: int) -> bytes:
        import llama_cpp

        size = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece, _PIECE, 0, False)
        if size < 0:
            bigger = ctypes.create_string_buffer(-size)
            size = llama_cpp.llama_token_to_piece(self.vocab, token, bigger, -size, 0, False)
            return bigger.raw[:size]
        return self._piece.raw[:size]

    def is_eog(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def decode(
        self, tokens: list[int], positions: list[int], seqs: list[int], logits: list[bool]
    ) -> int:
        """One ``llama_decode`` of these tokens; llama.cpp's status (0: done, 1: no KV room)."""
        import llama_cpp

        batch = self._batch
        token, pos, n_seq_id, seq_id, wanted = (
            batch.token, batch.pos, batch.n_seq_id, batch.seq_id, batch.logits
        )  # fmt: skip
        for i, value in enumerate(tokens):
            token[i] = value
            pos[i] = positions[i]
            n_seq_id[i] = 1
            seq_id[i][0] = seqs[i]
            wanted[i] = logits[i]
        batch.n_tokens = len(tokens)
        return int(llama_cpp.llama_decode(self.ctx, batch))

    def forget(self, seq: int, start: int) -> None:
        """Drop the sequence's tokens from position ``start`` on."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self.memory, seq, start, -1)

    def shift(self, seq: int, keep: int, discard: int, end: int) -> None:
        """Drop positions [keep, keep + discard) and move the rest down (a context shift)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self.memory, seq, keep, keep + discard)
        llama_cpp.llama_memory_seq_add(self.memory, seq, keep + discard, end, -discard)

    def grammar(self, fmt: str) -> str:
        """The GBNF text of a format (``json`` or a JSON schema); ValueError if it has none."""
        if fmt not in self._grammars:
            from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

            try:
                text = JSON_GBNF if fmt == "json" else json_schema_to_gbnf(fmt)
            except Exception as exc:  # whatever the converter says of the request's own schema
                raise ValueError(str(exc)) from exc
            if len(self._grammars) >= _GRAMMARS:  # each request may bring its own schema
                del self._grammars[next(iter(self._grammars))]
            self._grammars[fmt] = text
        return self._grammars[fmt]

    def sampler(self, sampling: Sampling, grammar: str | None, history: Sequence[int]) -> Any:
        """A sampler chain for one request, its repeat penalty primed with the prompt's last
        tokens; ValueError if llama.cpp refuses the grammar."""
        import llama_cpp as lc

        s = sampling
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        samplers: list[Any] = []
        valid = [(t, b) for t, b in s.logit_bias if 0 <= t < self.n_vocab]
        if valid:
            pairs = (lc.llama_logit_bias(t, b) for t, b in valid)
            biases = (lc.llama_logit_bias * len(valid))(*pairs)
            samplers.append(lc.llama_sampler_init_logit_bias(self.n_vocab, len(valid), biases))
        last_n = self.n_ctx if s.repeat_last_n < 0 else s.repeat_last_n
        penalised = s.repeat_penalty != 1 or s.frequency_penalty or s.presence_penalty
        if last_n > 0 and penalised:
            penalties = lc.llama_sampler_init_penalties(
                self.n_vocab, last_n, s.repeat_penalty, s.frequency_penalty, s.presence_penalty
            )
            for token in history[-last_n:]:
                lc.llama_sampler_accept(penalties, token)
            samplers.append(penalties)
        if grammar is not None:
            constraint = lc.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
            if not constraint:
                for made in samplers:
                    lc.llama_sampler_free(made)
                lc.llama_sampler_free(chain)
                raise ValueError("llama.cpp cannot parse its grammar")
            samplers.append(constraint)
        seed = s.seed if s.seed >= 0 else random.randrange(2**31)
        if s.temperature <= 0:
            samplers.append(lc.llama_sampler_init_greedy())
        elif s.mirostat == 1:
            samplers.append(lc.llama_sampler_init_temp(s.temperature))
            samplers.append(
                lc.llama_sampler_init_mirostat(
                    self.n_vocab, seed, s.mirostat_tau, s.mirostat_eta, 100
                )
            )
        elif s.mirostat == 2:
            samplers.append(lc.llama_sampler_init_temp(s.temperature))
            samplers.append(lc.llama_sampler_init_mirostat_v2(seed, s.mirostat_tau, s.mirostat_eta))
        else:
            samplers += [
                lc.llama_sampler_init_top_k(s.top_k),
                lc.llama_sampler_init_typical(s.typical_p, 1),
                lc.llama_sampler_init_top_p(s.top_p, 1),
                lc.llama_sampler_init_min_p(s.min_p, 1),
                lc.llama_sampler_init_temp(s.temperature),
                lc.llama_sampler_init_dist(seed),
            ]
        for made in samplers:
            lc.llama_sampler_chain_add(chain, made)
        return chain

    def sample(self, sampler: Any, row: int) -> int:
        """Sample from the logits of the batch's ``row``; the chain accepts the token."""
        import llama_cpp

        return int(llama_cpp.llama_sampler_sample(sampler, self.ctx, row))

    def free_sampler(self, sampler: Any) -> None:
        import llama_cpp

        llama_cpp.llama_sampler_free(sampler)

    # -- embeddings and the end ----------------------------------------------------------------

    def embed(self, texts: Sequence[str], truncate: bool) -> Embeddings | Failed:
        if self._embedder is None:
            self._embedder = _load_embedder(self.spec)
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
        import llama_cpp

        if self._embedder is not None:
            self._embedder.close()
        llama_cpp.llama_batch_free(self._batch)
        self._context.close()  # type: ignore[no-untyped-call]
        self._model.close()  # type: ignore[no-untyped-call]


def _load_embedder(spec: LoadSpec) -> Llama:
    """A pooled embedding needs the whole input in one batch: llama.cpp pads the context to a
    multiple of 256 and asserts (aborts) when the micro-batch does not match it, so both are
    padded the same way here."""
    import llama_cpp

    size = -(-spec.num_ctx // _CTX_PAD) * _CTX_PAD
    options: dict[str, Any] = {"n_ctx": size, "n_batch": size, "n_ubatch": size}
    if spec.pooling_mean:
        options["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
    try:
        llm = llama_cpp.Llama(
            model_path=spec.weights,
            n_threads=spec.num_thread,
            n_threads_batch=spec.num_thread,
            use_mmap=spec.use_mmap,
            embedding=True,
            verbose=False,
            **options,
        )
    except (ValueError, RuntimeError) as exc:
        raise LoadFailed(f"llama.cpp cannot load the weights: {exc}") from exc
    _apply_adapters(llm.model, llm.ctx, spec)
    return llm


def _apply_adapters(model: Any, ctx: Any, spec: LoadSpec) -> None:
    """Apply every adapter at scale 1; they live as long as the model (llama.cpp frees them)."""
    import llama_cpp

    if not spec.adapters:
        return
    adapters = []
    for path in spec.adapters:
        adapter = llama_cpp.llama_adapter_lora_init(model, path.encode())
        if adapter is None:
            raise LoadFailed(f"llama.cpp cannot load the adapter {path}")
        adapters.append(adapter)
    count = len(adapters)
    array = (llama_cpp.llama_adapter_lora_p_ctypes * count)(*adapters)
    scales = (ctypes.c_float * count)(*([1.0] * count))
    if llama_cpp.llama_set_adapters_lora(ctx, array, count, scales):
        raise LoadFailed(f"llama.cpp cannot apply the {count} adapter(s)")


def _pooled(vector: Any) -> list[float]:
    """One vector per input; a model without pooling gives one per token, which are averaged."""
    if vector and isinstance(vector[0], list):
        width = len(vector[0])
        return [sum(row[i] for row in vector) / len(vector) for i in range(width)]
    return [float(x) for x in vector]
