"""How much memory a loaded model takes, and how much the machine offers. Pure but for one read.

The estimate is the GGUF files (mapped, so resident once touched) plus the KV cache at the
context length (f16 keys and values per layer) plus llama.cpp's compute buffer, which grows with
the batch and the vocabulary. It errs high rather than low: the scheduler uses it to decide
what to evict, and an eviction too many costs a reload while one too few costs an OOM kill.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MEMINFO = Path("/proc/meminfo")
_F16 = 2
_F32 = 4


@dataclass(frozen=True)
class Shape:
    """The numbers of a model's GGUF header that size its buffers."""

    file_bytes: int
    layers: int = 0
    embedding: int = 0
    heads: int = 1
    kv_heads: int = 1
    vocab: int = 0


def estimate_bytes(shape: Shape, num_ctx: int, num_batch: int = 512) -> int:
    kv_width = shape.embedding * shape.kv_heads // max(shape.heads, 1)
    kv_cache = 2 * shape.layers * num_ctx * kv_width * _F16
    compute = num_batch * (shape.vocab + 4 * shape.embedding) * _F32
    return shape.file_bytes + kv_cache + compute


def available_bytes(meminfo: Path = MEMINFO) -> int | None:
    """MemAvailable from /proc/meminfo, or None where there is no such file."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            return int(value.split()[0]) * 1024
    return None


def gib(size: int) -> str:
    """A byte count for a message: ``1.5 GiB``."""
    return f"{size / 2**30:.1f} GiB"
