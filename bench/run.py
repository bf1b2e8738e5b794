"""Run mdl's benchmarks and print each figure beside its goal.

    .venv/bin/python bench/run.py [--only build] [--size-mib 1024] [--repeat 3] [--workdir DIR]

Every ratio is against a baseline measured in the same run, on the same machine and file system.
Results (with machine info) go to ``bench/results/latest.json``. A family is a module whose
``run(Options) -> FamilyResult`` is registered in ``FAMILIES``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import batch_bench
import build_bench
import proxy_bench
import quantize_bench
import registry_bench
import s3_bench
import serve_bench
import sign_bench
import transfer_bench
import ui_bench
import variants_bench
import whisper_bench
from common import FamilyResult, Options, machine_info

FAMILIES: dict[str, Callable[[Options], FamilyResult]] = {
    batch_bench.NAME: batch_bench.run,
    build_bench.NAME: build_bench.run,
    quantize_bench.NAME: quantize_bench.run,
    transfer_bench.NAME: transfer_bench.run,
    registry_bench.NAME: registry_bench.run,
    proxy_bench.NAME: proxy_bench.run,
    s3_bench.NAME: s3_bench.run,
    serve_bench.NAME: serve_bench.run,
    sign_bench.NAME: sign_bench.run,
    variants_bench.NAME: variants_bench.run,
    ui_bench.NAME: ui_bench.run,
    whisper_bench.NAME: whisper_bench.run,
}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = args.only or list(FAMILIES)
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="mdl-bench-", dir=parent))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    machine = machine_info()
    if busy := _busy_warning(machine):
        print(busy)
    results: list[FamilyResult] = []
    try:
        for name in names:
            family_dir = workdir / name
            family_dir.mkdir()
            options = Options(family_dir, args.size_mib, args.repeat, args.mdl.resolve())
            result = FAMILIES[name](options)
            print(render(result), flush=True)
            results.append(result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()[0]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "started": started,
        "machine": machine,
        "options": {"size_mib": args.size_mib, "repeat": args.repeat, "mdl": str(args.mdl)},
        "load_average_1m_end": load_end,
        "families": [_as_json(r) for r in results],
    }
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(_machine_line(machine, load_end))
    print(f"results written to {args.output}")
    return 1 if any(c.passed is False for r in results for c in r.checks) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(FAMILIES), help="repeatable")
    parser.add_argument("--size-mib", type=int, default=1024, help="model size (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds; medians are shown")
    parser.add_argument("--workdir", type=Path, help="put the data here (default: a /tmp dir)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--mdl",
        type=Path,
        default=Path(sys.executable).with_name("mdl"),
        help="the mdl executable to measure (default: the one beside this Python)",
    )
    return parser


def render(result: FamilyResult) -> str:
    """The family's timings (median, throughput) and then its checks with PASS/MISS."""
    lines = [f"== {result.title} ==", *(f"  · {note}" for note in result.notes), ""]
    lines.append(f"  {'contender':<30} {'median s':>9} {'MB/s':>8}  samples s")
    for t in result.timings:
        rate = f"{t.mb_per_s:8.0f}" if t.mb_per_s else f"{'':>8}"
        samples = " ".join(f"{s:.3f}" for s in t.samples)
        lines.append(f"  {t.label:<30} {t.median:9.3f} {rate}  {samples}")
    lines.append("")
    lines.append(f"  {'figure':<30} {'value':>9} {'goal':>9}  status")
    for c in result.checks:
        value = f"{c.value:.2f}{c.unit}" if c.unit == "x" else f"{c.value:.3f} {c.unit}"
        status = {True: "PASS", False: "MISS", None: "-"}[c.passed]
        lines.append(f"  {c.label:<30} {value:>9} {c.goal:>9}  {status}")
    return "\n".join(lines) + "\n"


def _as_json(result: FamilyResult) -> dict[str, object]:
    data = asdict(result)
    for timing, row in zip(result.timings, data["timings"], strict=True):
        row["median_s"] = timing.median
        row["mb_per_s"] = timing.mb_per_s
    return data


def _busy_warning(machine: dict[str, object]) -> str | None:
    load, cores = machine["load_average_1m"], machine["cores"]
    if isinstance(load, float) and isinstance(cores, int) and load > cores / 2:
        return f"warning: load average {load:.2f} on {cores} cores; other work may skew the figures"
    return None


def _machine_line(machine: dict[str, object], load_end: float) -> str:
    ram = machine["ram_bytes"]
    ram_gib = f"{ram / 2**30:.1f} GiB" if isinstance(ram, int) else "?"
    return (
        f"machine: {machine['cores']} cores, {machine['cpu_model']}, {ram_gib} RAM, "
        f"Python {machine['python']}, kernel {machine['kernel']}, "
        f"load average {machine['load_average_1m']:.2f} at start, {load_end:.2f} at end"
    )


if __name__ == "__main__":
    sys.exit(main())
