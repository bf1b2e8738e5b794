"""``mdl build --quantize q4_K_M`` of an F16 GGUF against ``llama_model_quantize`` called directly.

Goal (from the issue): the build takes at most 1.1x the direct quantizer on the same file in the
same run; a rebuild reuses the quantized blob, so it takes under a second. Both contenders use
one quantizer thread per core, and the build's weights must be byte-identical to the direct
output: the quantizer is deterministic, and mdl stores exactly what it wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import sys
from pathlib import Path

import gguf
import numpy as np
from common import (
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

NAME = "quantize"
QUANTIZE_LIMIT = 1.1  # build / direct
NOOP_LIMIT_S = 1.0
TYPE = "q4_K_M"
N_EMBD, N_FF, N_HEAD, N_VOCAB = 2048, 6144, 16, 512  # rows are multiples of 256
ATTENTION = ("attn_q", "attn_k", "attn_v", "attn_output")
_DIRECT = """
import ctypes, os, sys
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.nthread = len(os.sched_getaffinity(0))
params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
sys.exit(llama_cpp.llama_model_quantize(
    sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)))
"""


def run(options: Options) -> FamilyResult:
    data = options.workdir / "data"
    data.mkdir()
    source = data / "f16.gguf"
    layers = write_f16_llama(source, options.size_mib * MiB)
    (data / "Modelfile").write_text("FROM ./f16.gguf\n")
    size = source.stat().st_size

    direct = Timing("llama_model_quantize, direct", size)
    build = Timing(f"mdl build --quantize {TYPE}", size)
    noop = Timing("mdl build, rebuild (reused)")
    direct_cpu = Timing("direct, CPU seconds")
    build_cpu = Timing("mdl build, CPU seconds")
    outputs: set[str] = set()
    run_interleaved(
        [
            Contender((direct, direct_cpu), lambda: _time_direct(source, options.workdir, outputs)),
            Contender((build, build_cpu, noop), lambda: _time_builds(options, data, outputs)),
        ],
        options.repeat,
        before_each=lambda: warm_page_cache(source),
    )
    if len(outputs) != 1:
        raise RuntimeError(f"quantized outputs differ between runs: {sorted(outputs)}")
    paired = statistics.median(b / d for d, b in zip(direct.samples, build.samples, strict=True))
    checks = (
        ratio_check("build / direct quantize", paired, QUANTIZE_LIMIT),
        ratio_check("build / direct, of medians", build.median / direct.median, None),
        ratio_check("build / direct, CPU time", build_cpu.median / direct_cpu.median, None),
        Check(
            "rebuild (reused)",
            noop.median,
            "s",
            f"< {NOOP_LIMIT_S:g} s",
            noop.median < NOOP_LIMIT_S,
        ),
    )
    notes = (
        f"{size / MiB:.0f} MiB F16 llama GGUF ({layers} layers, n_embd {N_EMBD}, n_ff {N_FF}, "
        f"seeded normal weights) to {TYPE}, {os.cpu_count()} quantizer threads, "
        f"{options.repeat} rounds, medians; one untimed warm-up round first; order shuffled",
        "source read (untimed) before every run, so both contenders read it from the page cache",
        "both run in their own python process (interpreter start, import llama_cpp); the build "
        "also hashes the source, ingests the output (copy, hash, fsync, rename) and tags it",
        "every run writes into a fresh directory (a fresh MDL_HOME for the build), deleted and "
        "synced between runs; the build's weights are checked byte-identical to the direct output",
        "build / direct is the median of per-round ratios: the two run back to back in a round, "
        "so background load hits both alike; the ratio of the medians is shown beside it, and "
        "that of their CPU time (user + system), which a busy machine disturbs far less",
    )
    timings = (direct, build, noop, direct_cpu, build_cpu)
    return FamilyResult(NAME, f"mdl build --quantize {TYPE}", notes, timings, checks)


def _time_direct(source: Path, workdir: Path, outputs: set[str]) -> tuple[float, float]:
    """Wall and CPU seconds of llama_model_quantize in a python process of its own."""
    with scratch_dir(workdir, "direct-") as scratch:
        out = scratch / "q.gguf"
        cpu = _children_cpu()
        elapsed, _ = time_subprocess([sys.executable, "-c", _DIRECT, str(source), str(out)])
        cpu = _children_cpu() - cpu
        outputs.add(_sha256(out))
    return elapsed, cpu


def _time_builds(options: Options, data: Path, outputs: set[str]) -> tuple[float, float, float]:
    """A build into an empty ``MDL_HOME`` (wall and CPU seconds), then the same build again
    (the blob is reused)."""
    argv = [str(options.mdl), "build", "--quantize", TYPE, "-t", "bench:q", "--json"]
    with scratch_dir(options.workdir, "mdl-home-") as home:
        env = {**os.environ, "MDL_HOME": str(home)}
        cpu = _children_cpu()
        elapsed, out = time_subprocess(argv, env=env, cwd=data)
        cpu = _children_cpu() - cpu
        built = json.loads(out)
        if built["quantized"]["reused"]:
            raise RuntimeError("the first build into an empty MDL_HOME reused a blob")
        outputs.add(built["layers"][0]["digest"].removeprefix("sha256:"))
        rebuild, out = time_subprocess(argv, env=env, cwd=data)
        again = json.loads(out)
        if not again["quantized"]["reused"] or again["bytes_copied"]:
            raise RuntimeError(f"the rebuild quantized again: {again['quantized']}")
    return elapsed, cpu, rebuild


def _children_cpu() -> float:
    """User + system seconds of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def write_f16_llama(path: Path, data_bytes: int) -> int:
    """A llama GGUF with F16 matrices (F32 norms) of about ``data_bytes``; returns its layer
    count. Tensors are generated and written one at a time, so memory stays at one tensor."""
    per_layer = 2 * (4 * N_EMBD * N_EMBD + 3 * N_EMBD * N_FF)
    n_layer = max(1, round(data_bytes / per_layer))
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (N_VOCAB, N_EMBD))]
    for i in range(n_layer):
        shapes += [(f"blk.{i}.attn_norm.weight", (N_EMBD,))]
        shapes += [(f"blk.{i}.{p}.weight", (N_EMBD, N_EMBD)) for p in ATTENTION]
        shapes += [(f"blk.{i}.ffn_norm.weight", (N_EMBD,))]
        shapes += [(f"blk.{i}.{p}.weight", (N_FF, N_EMBD)) for p in ("ffn_gate", "ffn_up")]
        shapes += [(f"blk.{i}.ffn_down.weight", (N_EMBD, N_FF))]
    shapes += [("output_norm.weight", (N_EMBD,)), ("output.weight", (N_VOCAB, N_EMBD))]

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("mdl quantize bench")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(4096)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    for name, shape in shapes:
        dtype = np.dtype(np.float16 if len(shape) == 2 else np.float32)
        writer.add_tensor_info(name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    for _, shape in shapes:
        if len(shape) == 2:
            weights = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            writer.write_tensor_data(weights.astype(np.float16))
        else:
            writer.write_tensor_data(np.ones(shape, dtype=np.float32))
    writer.close()
    with open(path, "rb+") as f:
        os.fsync(f.fileno())  # so no contender pays for writing back the source
    return n_layer


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
