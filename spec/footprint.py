"""How much memory a loaded model takes: pure arithmetic over a GGUF header.

The estimate is the GGUF files (mapped, so resident once touched) plus the KV cache (f16 keys
and values per layer) of every sequence at the context length (``num_ctx`` times the number of
sequences, as Ollama counts it: each sequence has its own ``num_ctx`` cells) plus llama.cpp's
compute buffer, which grows with the micro-batch and the vocabulary. It errs high rather than low:
the scheduler uses it to decide what to evict, and an eviction too many costs a reload while
one too few costs an OOM kill. It lives in spec/ because the builder records it in variant
annotations and the runtime schedules by it: both must give the same number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mdl.spec.gguf import ArraySummary, GGUFInfo

_F16 = 2
_F32 = 4
DEFAULT_NUM_CTX = 4096
DEFAULT_NUM_BATCH = 512
MICRO_BATCH = 128
"""Tokens llama.cpp computes in one graph (``n_ubatch``): a ``num_batch`` step is cut into
pieces of this many. Its compute buffer grows with it (for SmolLM2-135M with 4 x 4096 cells of
context: 99 MiB at 512, 50 at 256, 25 at 128), while a 2,000-token prompt took as long at 128
as at 512 on 2 cores (7.8 s at 128, 7.9 at 256; in another run 8.4 at 256, 8.7 at 512)."""
DEFAULT_NUM_PARALLEL = 4
"""Sequences ``mdl serve`` decodes at once by default (``MDL_NUM_PARALLEL``), each with its own
``num_ctx`` of KV: a variant's memory annotation is at this many."""
_INT32 = 2**31 - 1


@dataclass(frozen=True)
class Shape:
    """The numbers of a model's GGUF header that size its buffers."""

    file_bytes: int
    layers: int = 0
    embedding: int = 0
    heads: int = 1
    kv_heads: int = 1
    vocab: int = 0


def shape_of(info: GGUFInfo, file_bytes: int) -> Shape:
    """The shape of a model whose weights have header ``info`` and whose files (weights plus
    adapters) take ``file_bytes``."""
    arch = info.architecture or ""
    meta = info.metadata
    heads = _int(meta, f"{arch}.attention.head_count", 1)
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = tokens.length if isinstance(tokens, ArraySummary) else 0
    return Shape(
        file_bytes=file_bytes,
        layers=_int(meta, f"{arch}.block_count", 0),
        embedding=_int(meta, f"{arch}.embedding_length", 0),
        heads=heads,
        kv_heads=_int(meta, f"{arch}.attention.head_count_kv", heads),
        vocab=_int(meta, f"{arch}.vocab_size", vocab),
    )


def estimate_bytes(
    shape: Shape, num_ctx: int, num_batch: int = DEFAULT_NUM_BATCH, sequences: int = 1
) -> int:
    kv_cache = kv_bytes(shape, num_ctx * max(1, sequences))
    compute = min(num_batch, MICRO_BATCH) * (shape.vocab + 4 * shape.embedding) * _F32
    return shape.file_bytes + kv_cache + compute


def context_of(
    values: Mapping[str, Any], trained_ctx: int | None, max_ctx: int | None = None
) -> tuple[int, int]:
    """The ``num_ctx`` and ``num_batch`` a model loads with under options ``values``:
    ``num_ctx`` defaults to 4096, or the trained length if smaller; larger values are cut to
    ``max_ctx`` (default: the trained length), as Ollama cuts them; ``num_batch`` to ``num_ctx``."""
    default_ctx = min(DEFAULT_NUM_CTX, trained_ctx) if trained_ctx else DEFAULT_NUM_CTX
    limit = min(max_ctx or trained_ctx or default_ctx, _INT32)
    num_ctx = min(values.get("num_ctx", default_ctx), limit)
    return num_ctx, min(values.get("num_batch", DEFAULT_NUM_BATCH), num_ctx)


def kv_bytes(shape: Shape, cells: int) -> int:
    """The KV cache of ``cells`` tokens."""
    kv_width = shape.embedding * shape.kv_heads // max(shape.heads, 1)
    return 2 * shape.layers * cells * kv_width * _F16


def _int(meta: Mapping[str, Any], key: str, default: int) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
