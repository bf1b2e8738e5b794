"""Write small GGUF files for tests: a tiny llama that llama.cpp really runs, LoRA adapters for
it, and broken files. Every writer is deterministic: the same arguments give the same bytes.

The tiny model has random weights, so on its own it would emit byte tokens that form broken UTF-8
(llama-cpp-python then runs past ``max_tokens``) or stop early on EOS. Residual dimension 0 is
therefore held constant (set in every embedding, never written by a layer, ignored by the layer
norms) and column 0 of ``output.weight`` turns it into a per-token bias: byte, control and EOS
tokens get a large negative logit. Output is then plain ASCII, greedy decoding is deterministic and
exactly ``max_tokens`` long, and stop sequences can match.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import gguf
import numpy as np
import numpy.typing as npt

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128
LORA_RANK = 4
WORDS = ("the", "and", "hello", "world", "model", "cat", "dog", "tiny")
BAN = -1000.0  # logit weight on the constant dimension for tokens that must never be sampled

Array = npt.NDArray[np.float32]


def vocab() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and types of the tiny SPM vocabulary (ids: 0 <unk>, 1 <s>, 2 </s>, ...)."""
    tt = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [tt.UNKNOWN, tt.CONTROL, tt.CONTROL] + [tt.BYTE] * 256
    pieces = ["\u2581", *"abcdefghijklmnopqrstuvwxyz"] + ["\u2581" + w for w in WORDS]
    tokens += pieces
    types += [tt.NORMAL] * len(pieces)
    tokens += ["<|im_start|>", "<|im_end|>"]
    types += [tt.CONTROL, tt.CONTROL]
    scores = [0.0] * len(tokens)
    first = 3 + 256
    for i in range(len(pieces)):
        scores[first + i] = float(i + 1)  # increasing, so SPM prefers the longer, later pieces
    return tokens, scores, [int(t) for t in types]


def _matrix(rng: np.random.Generator, rows: int, cols: int) -> Array:
    """A (rows, cols) numpy matrix, i.e. a ggml tensor with ne = {cols, rows}."""
    m: Array = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
    return m


def write_tiny_llama(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    chat_template: str | None = CHATML,
    ctx: int = 512,
    name: str = "tiny",
) -> Path:
    """Write a ~0.5 MB llama GGUF (F32, 2 layers, n_embd 64) with random weights from ``seed``."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, _, types = vocab()
    n_vocab = len(tokens)

    w = _llama_writer(path, name, gguf.LlamaFileType.ALL_F32, ctx, N_EMBD, N_FF)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    embd = rng.standard_normal((n_vocab, N_EMBD)).astype(np.float32)
    embd[:, 0] = 1.0  # the constant dimension
    norm = np.ones(N_EMBD, dtype=np.float32)
    layer_norm = norm.copy()
    layer_norm[0] = 0.0  # layers do not see the constant dimension
    w.add_tensor("token_embd.weight", embd)
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        w.add_tensor(f"{blk}.attn_norm.weight", layer_norm)
        for proj in ("attn_q", "attn_k", "attn_v"):
            w.add_tensor(f"{blk}.{proj}.weight", _matrix(rng, N_EMBD, N_EMBD))
        out = _matrix(rng, N_EMBD, N_EMBD)
        out[0, :] = 0.0  # never write the constant dimension
        w.add_tensor(f"{blk}.attn_output.weight", out)
        w.add_tensor(f"{blk}.ffn_norm.weight", layer_norm)
        w.add_tensor(f"{blk}.ffn_gate.weight", _matrix(rng, N_FF, N_EMBD))
        w.add_tensor(f"{blk}.ffn_up.weight", _matrix(rng, N_FF, N_EMBD))
        down = _matrix(rng, N_EMBD, N_FF)
        down[0, :] = 0.0
        w.add_tensor(f"{blk}.ffn_down.weight", down)
    w.add_tensor("output_norm.weight", norm)
    output = _matrix(rng, n_vocab, N_EMBD)
    output[:, 0] = [0.0 if t == gguf.TokenType.NORMAL else BAN for t in types]
    w.add_tensor("output.weight", output)

    _finish(w)
    return path


def write_padded_llama(path: Path, padding_mib: int) -> None:
    """A tiny llama followed by ``padding_mib`` MiB of random bytes (allowed after the tensor
    data): a big model for transfer and fault tests that still loads."""
    write_tiny_llama(path)
    block = os.urandom(1024 * 1024)
    with open(path, "ab") as padding:
        for _ in range(padding_mib):
            padding.write(block)


def write_lora(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    arch: str = "llama",
    alpha: float = 8.0,
    targets: tuple[str, ...] = ("attn_q", "attn_v"),
    name: str = "tiny-lora",
) -> Path:
    """Write a rank-4 LoRA adapter for the tiny llama; another ``arch`` makes a mismatched one.

    It only touches projections that never write the constant dimension, so the adapted model
    keeps the tiny model's clean ASCII output while its text changes.
    """
    path = Path(path)
    rng = np.random.default_rng(seed + 10_000)
    w = gguf.GGUFWriter(path, arch)
    w.add_name(name)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for i in range(N_LAYER):
        for target in targets:
            # W has ne {64 in, 64 out}: lora_a ne {in, r}, lora_b ne {r, out}
            a = (rng.standard_normal((LORA_RANK, N_EMBD)) / np.sqrt(N_EMBD)).astype(np.float32)
            b = (rng.standard_normal((N_EMBD, LORA_RANK))).astype(np.float32)
            w.add_tensor(f"blk.{i}.{target}.weight.lora_a", a)
            w.add_tensor(f"blk.{i}.{target}.weight.lora_b", b)
    _finish(w)
    return path


def _finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_not_gguf(
    path: str | os.PathLike[str],
    *,
    kind: Literal["text", "random", "empty"] = "text",
    seed: int = 0,
) -> Path:
    """Write a file that is not GGUF: some text, 4 KiB of seeded random bytes, or nothing."""
    path = Path(path)
    if kind == "text":
        data = b"FROM ./model.gguf\nPARAMETER temperature 0\n"
    elif kind == "random":
        data = np.random.default_rng(seed).bytes(4096)
        if data[:4] == b"GGUF":  # pragma: no cover - one chance in 2**32
            data = b"X" + data[1:]
    else:
        data = b""
    path.write_bytes(data)
    return path


def write_truncated(
    path: str | os.PathLike[str],
    *,
    cut: Literal["magic", "metadata", "tensor_infos", "data"] = "data",
    seed: int = 0,
) -> Path:
    """Write a tiny llama cut short inside its magic, metadata, tensor infos or tensor data."""
    path = Path(path)
    write_tiny_llama(path, seed=seed)
    data = path.read_bytes()
    infos = data.index(b"token_embd.weight", data.index(b"tokenizer.ggml.tokens"))
    data_start = gguf.GGUFReader(path).data_offset
    at = {
        "magic": 2,
        "metadata": 200,
        "tensor_infos": infos + 5,
        "data": data_start + (len(data) - data_start) // 2,
    }[cut]
    path.write_bytes(data[:at])
    return path


def write_wrong_version(
    path: str | os.PathLike[str],
    *,
    version: int = 4,
    byteorder: Literal["little", "big"] = "little",
    seed: int = 0,
) -> Path:
    """Write a tiny llama whose header claims another GGUF version (or a big-endian one)."""
    path = Path(path)
    write_tiny_llama(path, seed=seed)
    data = bytearray(path.read_bytes())
    data[4:8] = version.to_bytes(4, byteorder)
    path.write_bytes(bytes(data))
    return path


def gguf_bytes(
    kvs: Sequence[tuple[str, int, bytes]],
    tensors: Sequence[tuple[str, tuple[int, ...], int, int]] = (),
    *,
    version: int = 3,
    data: bytes = b"",
    alignment: int = 32,
) -> bytes:
    """Assemble GGUF bytes by hand, for headers the gguf package refuses to write.

    ``kvs`` are (key, value_type, encoded value); ``tensors`` are (name, ne, ggml_type, offset).
    ``data`` follows the header padded to ``alignment``.
    """
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)))
    for key, value_type, value in kvs:
        out += gguf_string(key) + struct.pack("<I", value_type) + value
    for name, ne, ggml_type, offset in tensors:
        out += gguf_string(name) + struct.pack("<I", len(ne))
        out += struct.pack(f"<{len(ne)}q", *ne) + struct.pack("<IQ", ggml_type, offset)
    if tensors:
        out += b"\0" * (-len(out) % alignment)
    return bytes(out + data)


def gguf_string(s: str | bytes) -> bytes:
    """A GGUF string: u64 length, then the bytes."""
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


def write_wide_llama(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    dtype: Literal["f32", "f16", "bf16"] = "f32",
    n_embd: int = 256,
    n_ff: int = 512,
    name: str = "wide",
) -> Path:
    """The tiny llama's design (same vocabulary, the same constant dimension and bias) with rows
    of ``n_embd``/``n_ff`` elements, multiples of 256 by default so llama.cpp's K-quants apply,
    and matrices stored as F32, F16 or BF16 (norms stay F32, as converters write them)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, _, types = vocab()
    n_vocab = len(tokens)
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    }[dtype]

    def matrix(name: str, values: Array) -> None:
        if dtype == "f16":
            w.add_tensor(name, values.astype(np.float16))
        elif dtype == "bf16":
            bf16 = gguf.GGMLQuantizationType.BF16
            w.add_tensor(name, gguf.quants.quantize(values, bf16), raw_dtype=bf16)
        else:
            w.add_tensor(name, values)

    w = _llama_writer(path, name, file_type, 512, n_embd, n_ff)
    w.add_chat_template(CHATML)

    embd = rng.standard_normal((n_vocab, n_embd)).astype(np.float32)
    embd[:, 0] = 1.0  # the constant dimension
    norm = np.ones(n_embd, dtype=np.float32)
    layer_norm = norm.copy()
    layer_norm[0] = 0.0
    matrix("token_embd.weight", embd)
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        w.add_tensor(f"{blk}.attn_norm.weight", layer_norm)
        for proj in ("attn_q", "attn_k", "attn_v"):
            matrix(f"{blk}.{proj}.weight", _matrix(rng, n_embd, n_embd))
        out = _matrix(rng, n_embd, n_embd)
        out[0, :] = 0.0
        matrix(f"{blk}.attn_output.weight", out)
        w.add_tensor(f"{blk}.ffn_norm.weight", layer_norm)
        matrix(f"{blk}.ffn_gate.weight", _matrix(rng, n_ff, n_embd))
        matrix(f"{blk}.ffn_up.weight", _matrix(rng, n_ff, n_embd))
        down = _matrix(rng, n_embd, n_ff)
        down[0, :] = 0.0
        matrix(f"{blk}.ffn_down.weight", down)
    w.add_tensor("output_norm.weight", norm)
    output = _matrix(rng, n_vocab, n_embd)
    output[:, 0] = [0.0 if t == gguf.TokenType.NORMAL else BAN for t in types]
    matrix("output.weight", output)

    _finish(w)
    return path


def _llama_writer(
    path: Path, name: str, file_type: gguf.LlamaFileType, ctx: int, n_embd: int, n_ff: int
) -> gguf.GGUFWriter:
    """A GGUFWriter with the llama hyperparameters and the tests' SPM vocabulary written."""
    tokens, scores, types = vocab()
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_file_type(file_type)
    w.add_context_length(ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(n_embd // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    return w


def write_split_gguf(source: Path, first: Path, max_tensors: int) -> list[Path]:
    """Rewrite the GGUF ``source`` as a split GGUF, as llama.cpp's ``gguf-split`` does: shards
    ``<first stem>-0000N-of-0000M.gguf`` beside ``first``, ``max_tensors`` tensors each, every
    shard with ``split.no``/``split.count``/``split.tensors.count``, the metadata in the first.
    Returns the shard paths in order."""
    reader = gguf.GGUFReader(source)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    assert arch is not None
    w = gguf.GGUFWriter(first, str(arch.contents()), split_max_tensors=max_tensors)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == gguf.Keys.General.ARCHITECTURE:
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        w.add_tensor(tensor.name, np.array(tensor.data), raw_dtype=tensor.tensor_type)
    _finish(w)
    count = len(w.tensors)
    return [
        first.with_name(f"{first.stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)
    ]
