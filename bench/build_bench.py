"""``mdl build`` of a large GGUF against a durable copy (``cp`` + ``sync``) and ``hashlib``.

Goal (from the issue): a build takes at most 1.3x a ``cp && sync`` of the same file, measured in
the same run; a no-op rebuild of the unchanged file takes under a second. The hashlib ratio is
informational: it shows how close the build gets to the speed of hashing alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from pathlib import Path

from common import (
    CHUNK,
    Check,
    Contender,
    FamilyResult,
    MiB,
    Options,
    Timing,
    ratio_check,
    run_interleaved,
    scratch_dir,
    time_subprocess,
    warm_page_cache,
)

NAME = "build"
BUILD_LIMIT = 1.3  # build / (cp + sync)
NOOP_LIMIT_S = 1.0
TENSOR_BYTES = 64 * MiB
ROW = 4096  # F32 elements per tensor row
ALIGNMENT = 32

_GGUF_STRING, _GGUF_U32 = 8, 4
_HASH_SCRIPT = """
import hashlib, sys
h, buf = hashlib.sha256(), bytearray(4 << 20)
view = memoryview(buf)
with open(sys.argv[1], "rb", buffering=0) as f:
    while n := f.readinto(buf):
        h.update(view[:n])
print(h.hexdigest())
"""


def run(options: Options) -> FamilyResult:
    """Make the GGUF, warm it, then time the contenders interleaved, ``repeat`` rounds."""
    data = options.workdir / "data"
    data.mkdir()
    gguf = data / "big.gguf"
    expected = write_gguf(gguf, options.size_mib * MiB)
    (data / "Modelfile").write_text("FROM ./big.gguf\n")
    size = gguf.stat().st_size

    cp = Timing("cp + sync", size)
    sha = Timing("hashlib.sha256 (subprocess)", size)
    build = Timing("mdl build", size)
    noop = Timing("mdl build, no-op rebuild")
    run_interleaved(
        [
            Contender((cp,), lambda: (_time_cp(gguf, options.workdir),)),
            Contender((sha,), lambda: (_time_hashlib(gguf, expected),)),
            Contender((build, noop), lambda: _time_builds(options, data, expected)),
        ],
        options.repeat,
        before_each=lambda: warm_page_cache(gguf),
    )

    checks = (
        ratio_check("build / (cp + sync)", build.median / cp.median, BUILD_LIMIT),
        ratio_check("build / hashlib", build.median / sha.median, None),
        Check(
            "no-op rebuild",
            noop.median,
            "s",
            f"< {NOOP_LIMIT_S:g} s",
            noop.median < NOOP_LIMIT_S,
        ),
    )
    notes = (
        f"{size / MiB:.0f} MiB GGUF v3 (F32 tensors, random bytes), {options.repeat} rounds, "
        "medians; one untimed warm-up round first; contender order shuffled each round",
        "source read (untimed) before every run, so every contender reads it from the page cache",
        "every run writes to a fresh directory on the source's file system, deleted (and synced) "
        "between runs; mdl build fsyncs its blob, cp is followed by sync",
        "hashlib runs in its own python process (4 MiB readinto), paying interpreter start-up "
        "as mdl build does",
    )
    return FamilyResult(NAME, "mdl build", notes, (cp, sha, build, noop), checks)


def _time_cp(source: Path, workdir: Path) -> float:
    with scratch_dir(workdir, "cp-") as scratch:
        script = 'cp "$1" "$2" && sync'
        elapsed, _ = time_subprocess(["sh", "-c", script, "sh", str(source), str(scratch / "x")])
    return elapsed


def _time_hashlib(source: Path, expected: str) -> float:
    elapsed, out = time_subprocess([sys.executable, "-c", _HASH_SCRIPT, str(source)])
    if out.strip() != expected:
        raise RuntimeError(f"hashlib digest {out.strip()} != {expected}")
    return elapsed


def _time_builds(options: Options, data: Path, expected: str) -> tuple[float, float]:
    """A build into an empty ``MDL_HOME``, then the same build again (nothing to copy)."""
    argv = [str(options.mdl), "build", "-f", "Modelfile", "-t", "bench:latest", "--json"]
    with scratch_dir(options.workdir, "mdl-home-") as home:
        env = {**os.environ, "MDL_HOME": str(home)}
        elapsed, out = time_subprocess(argv, env=env, cwd=data)
        weights = json.loads(out)["layers"][0]["digest"]
        if weights != f"sha256:{expected}":
            raise RuntimeError(f"mdl build stored weights {weights}, expected sha256:{expected}")
        rebuild, out = time_subprocess(argv, env=env, cwd=data)
        copied = json.loads(out)["bytes_copied"]
        if copied:
            raise RuntimeError(f"no-op rebuild copied {copied} bytes")
    return elapsed, rebuild


def write_gguf(path: Path, data_bytes: int) -> str:
    """Write a valid GGUF v3 with ``data_bytes`` of F32 tensor data; return its sha256 hex.

    The data is a random 4 MiB block repeated, each copy stamped with its index, so no two
    blocks match and no file system can skip them; memory use stays at one block.
    """
    if data_bytes <= 0 or data_bytes % MiB:
        raise ValueError("the data size must be a positive whole number of MiB")
    sizes = [TENSOR_BYTES] * (data_bytes // TENSOR_BYTES)
    if data_bytes % TENSOR_BYTES:
        sizes.append(data_bytes % TENSOR_BYTES)
    header = _gguf_header(sizes)
    digest = hashlib.sha256(header)
    block = bytearray(os.urandom(CHUNK))
    with open(path, "wb") as f:
        f.write(header)
        for index, start in enumerate(range(0, data_bytes, CHUNK)):
            block[:8] = struct.pack("<Q", index)
            chunk = memoryview(block)[: min(CHUNK, data_bytes - start)]
            digest.update(chunk)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())  # so no contender pays for writing back the source
    return digest.hexdigest()


def _gguf_header(tensor_sizes: list[int]) -> bytes:
    """Magic, version, counts, metadata and tensor infos, padded to the data section."""
    metadata: list[tuple[str, int, str | int]] = [
        ("general.architecture", _GGUF_STRING, "llama"),
        ("general.name", _GGUF_STRING, "mdl bench"),
        ("general.file_type", _GGUF_U32, 0),
        ("general.alignment", _GGUF_U32, ALIGNMENT),
        ("llama.context_length", _GGUF_U32, 4096),
    ]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensor_sizes), len(metadata)))
    for key, kind, value in metadata:
        out += _gguf_string(key) + struct.pack("<I", kind)
        out += _gguf_string(value) if isinstance(value, str) else struct.pack("<I", value)
    offset = 0
    for index, nbytes in enumerate(tensor_sizes):
        out += _gguf_string(f"blk.{index}.ffn_up.weight")
        out += struct.pack("<I2QIQ", 2, ROW, nbytes // 4 // ROW, 0, offset)  # 0 = F32
        offset += nbytes  # whole MiB, so every offset stays aligned
    out += bytes(-len(out) % ALIGNMENT)
    return bytes(out)


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw
