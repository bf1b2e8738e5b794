"""Write tiny random-weight whisper.cpp models (ggml format) for tests. Deterministic.

The layout is whisper.cpp's own (``models/convert-pt-to-ggml.py`` writes it, ``whisper_model_load``
reads it), all little-endian int32 unless said::

    magic 0x67676d6c ("ggml")
    hparams: n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
             n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
    mel filters: n_mel n_fft, then n_mel * n_fft float32
    vocabulary: count, then per token: length, bytes
    tensors until EOF: n_dims, name length, type (0 f32, 1 f16), ne[0..n_dims), name, data

With ftype 1 (f16, as whisper.cpp's own files) matrices are f16; vectors, conv biases and the
positional embeddings f32 (the convolutions need f16 kernels).

whisper.cpp checks each tensor's name, shape and type against what the hparams imply, so the
generator lays out the same tensors as a real model, only narrow: 64-wide, one layer each side.
``n_audio_ctx`` stays 1500 (30 s windows of 3000 mel frames) so timestamps mean seconds as in a
real model. The vocabulary holds readable words, so a random model's output is words too.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = 0x67676D6C
N_VOCAB_EN = 51864
"""n_vocab of the English-only models (``tiny.en``); 51865 and up is multilingual."""
N_VOCAB_MULTI = 51865
N_STATE = 64
N_HEAD = 2
N_MELS = 80
N_FFT = 201
N_AUDIO_CTX = 1500
N_TEXT_CTX = 448
N_TEXT_WORDS = 50257
"""Ordinary text tokens (GPT-2's count); whisper.cpp adds the special tokens after them."""
WORDS = ("hello", "world", "speech", "model", "tiny", "voice", "sound", "text")


def write_tiny_whisper(path: Path, *, multilingual: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n_vocab = N_VOCAB_MULTI if multilingual else N_VOCAB_EN
    hparams = (n_vocab, N_AUDIO_CTX, N_STATE, N_HEAD, 1, N_TEXT_CTX, N_STATE, N_HEAD, 1, N_MELS, 1)
    with open(path, "wb") as f:
        f.write(struct.pack("<12i", MAGIC, *hparams))
        f.write(struct.pack("<2i", N_MELS, N_FFT))
        f.write(_mel_filters().astype("<f4").tobytes())
        f.write(struct.pack("<i", N_TEXT_WORDS))
        for i in range(N_TEXT_WORDS):
            word = f" {WORDS[i % len(WORDS)]}".encode() if i >= 256 else bytes([i])
            f.write(struct.pack("<i", len(word)) + word)
        for name, shape in tensor_shapes(n_vocab):
            f16 = len(shape) >= 2 and not name.endswith(("bias", "positional_embedding"))
            data = (rng.standard_normal(shape) * 0.05).astype("<f2" if f16 else "<f4")
            if name.endswith("ln.weight") or name.endswith("ln_post.weight"):
                data = np.ones(shape, "<f4")
            encoded = name.encode()
            ne = tuple(reversed(shape))  # ggml's ne[0] is the innermost (numpy's last) axis
            f.write(struct.pack(f"<3i{len(ne)}i", len(ne), len(encoded), int(f16), *ne))
            f.write(encoded)
            f.write(data.tobytes())
    return path


def tensor_shapes(n_vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor whisper.cpp loads, as numpy shapes (outermost first)."""
    s = N_STATE
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("encoder.positional_embedding", (N_AUDIO_CTX, s)),
        ("encoder.conv1.weight", (s, N_MELS, 3)),
        ("encoder.conv1.bias", (s, 1)),
        ("encoder.conv2.weight", (s, s, 3)),
        ("encoder.conv2.bias", (s, 1)),
        ("encoder.ln_post.weight", (s,)),
        ("encoder.ln_post.bias", (s,)),
    ]
    shapes += _block("encoder.blocks.0", cross=False)
    shapes += [
        ("decoder.positional_embedding", (N_TEXT_CTX, s)),
        ("decoder.token_embedding.weight", (n_vocab, s)),
        ("decoder.ln.weight", (s,)),
        ("decoder.ln.bias", (s,)),
    ]
    shapes += _block("decoder.blocks.0", cross=True)
    return shapes


def _block(prefix: str, cross: bool) -> list[tuple[str, tuple[int, ...]]]:
    s, ff = N_STATE, 4 * N_STATE
    out: list[tuple[str, tuple[int, ...]]] = [
        (f"{prefix}.mlp_ln.weight", (s,)),
        (f"{prefix}.mlp_ln.bias", (s,)),
        (f"{prefix}.mlp.0.weight", (ff, s)),
        (f"{prefix}.mlp.0.bias", (ff,)),
        (f"{prefix}.mlp.2.weight", (s, ff)),
        (f"{prefix}.mlp.2.bias", (s,)),
    ]
    for attn in ("attn", "cross_attn") if cross else ("attn",):
        out += [
            (f"{prefix}.{attn}_ln.weight", (s,)),
            (f"{prefix}.{attn}_ln.bias", (s,)),
            (f"{prefix}.{attn}.query.weight", (s, s)),
            (f"{prefix}.{attn}.query.bias", (s,)),
            (f"{prefix}.{attn}.key.weight", (s, s)),
            (f"{prefix}.{attn}.value.weight", (s, s)),
            (f"{prefix}.{attn}.value.bias", (s,)),
            (f"{prefix}.{attn}.out.weight", (s, s)),
            (f"{prefix}.{attn}.out.bias", (s,)),
        ]
    return out


def _mel_filters() -> np.ndarray:
    """Triangular filters over the FFT bins (not Slaney's bank: the weights are random anyway)."""
    bank = np.zeros((N_MELS, N_FFT), np.float32)
    centres = np.linspace(1, N_FFT - 2, N_MELS + 2)
    bins = np.arange(N_FFT)
    for m in range(N_MELS):
        lo, mid, hi = centres[m], centres[m + 1], centres[m + 2]
        rising = (bins - lo) / (mid - lo)
        falling = (hi - bins) / (hi - mid)
        bank[m] = np.maximum(0, np.minimum(rising, falling))
    return bank
