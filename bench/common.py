"""Timing helpers shared by every benchmark family: medians, subprocess timing, scratch dirs."""

from __future__ import annotations

import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024
CHUNK = 4 * MiB


@dataclass(frozen=True)
class Options:
    """What every family receives from the command line."""

    workdir: Path
    """A directory of the run's own, on the file system all data and copies share."""
    size_mib: int
    repeat: int
    mdl: Path
    """The ``mdl`` executable under test (by default the one next to this Python)."""


@dataclass
class Timing:
    """Wall-clock samples of one contender; ``nbytes`` (when set) gives a throughput."""

    label: str
    nbytes: int | None = None
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def mb_per_s(self) -> float | None:
        return self.nbytes / self.median / 1e6 if self.nbytes else None


@dataclass(frozen=True)
class Check:
    """One figure set beside its goal; ``passed`` is None for an informational figure."""

    label: str
    value: float
    unit: str
    goal: str
    passed: bool | None


@dataclass(frozen=True)
class FamilyResult:
    """Everything one benchmark family measured, ready for the table and the JSON file."""

    name: str
    title: str
    notes: tuple[str, ...]
    timings: tuple[Timing, ...]
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Contender:
    """One measured step: ``measure()`` returns one duration for each of ``timings``."""

    timings: tuple[Timing, ...]
    measure: Callable[[], tuple[float, ...]]


def run_interleaved(
    contenders: Sequence[Contender], repeat: int, before_each: Callable[[], None] | None = None
) -> None:
    """Run every contender once untimed, then ``repeat`` rounds, each in a shuffled order.

    The untimed round pays one-off costs (first page faults of fresh memory, cold imports) so
    that no contender is billed for them; interleaving spreads background noise evenly. The
    order is shuffled (seeded, so runs repeat) rather than rotated: a rotation keeps the cyclic
    order, so each contender would always follow the same one and inherit what it left behind
    (here mdl push, always right after skopeo's 1 GiB pull, measured 0.85-0.88x curl in three
    runs; shuffled, 0.98x).
    ``before_each`` runs untimed before every measurement (to re-warm a cache, say).
    """
    order = random.Random(0)
    for round_ in range(repeat + 1):
        for contender in order.sample(list(contenders), len(contenders)):
            if before_each:
                before_each()
            seconds = contender.measure()
            if round_:
                for timing, elapsed in zip(contender.timings, seconds, strict=True):
                    timing.samples.append(elapsed)


def ratio_check(label: str, value: float, limit: float | None) -> Check:
    """A ratio that passes at or below ``limit``; with no limit it is only reported."""
    if limit is None:
        return Check(label, value, "x", "info", None)
    return Check(label, value, "x", f"≤ {limit:.2f}x", value <= limit)


def time_subprocess(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, str]:
    """Run ``argv`` to completion; return its wall time in seconds and its stdout.

    Raises ``RuntimeError`` with the command's stderr when it fails, so a broken contender
    never shows up as a fast one.
    """
    start = time.perf_counter()
    proc = subprocess.run(
        list(argv), env=dict(env) if env else None, cwd=cwd, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return elapsed, proc.stdout


@contextmanager
def scratch_dir(near: Path, prefix: str = "run-") -> Iterator[Path]:
    """A fresh empty directory inside ``near`` (so on its file system), removed afterwards.

    The removal is followed by ``sync`` so freeing the blocks is not billed to the next run.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=near))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.sync()


def warm_page_cache(path: Path) -> None:
    """Read ``path`` once so every contender then reads it from the page cache."""
    buffer = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass


def machine_info() -> dict[str, object]:
    """Cores, CPU model, RAM, Python and kernel: enough to compare results across machines."""
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0],
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return None
