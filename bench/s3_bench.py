"""``mdl registry serve --storage s3://...`` against distribution 2.8's S3 driver, on one RGW.

Both registries store in their own bucket of the same Ceph RADOS Gateway (``scripts/s3.sh``,
started for the run and stopped by its PIDs). Timed with curl, as ``registry_bench``: a blob
PUT in one streamed request, the same blob in 64 MiB PATCH chunks, and a GET streamed through
the registry (mdl with ``--s3-redirect false``, distribution with ``redirect: disable``); a GET
that follows mdl's 307 to the gateway is reported beside them. Goal: each ratio at least 1.0x.
Then four clients push a ``--memory-mib`` blob (1 GiB) to the streaming replica at once while
its memory (main process and worker, PSS) is sampled every 0.1 s: goal under 200 MB.

    .venv/bin/python bench/s3_bench.py [--size-mib 1024] [--repeat 3] [--memory-mib 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from common import (
    Check,
    Contender,
    FamilyResult,
    MiB,
    Options,
    Timing,
    run_interleaved,
    time_subprocess,
    warm_page_cache,
)
from registry_bench import _write_blob

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "registry"))
from rgw import Rgw, start_rgw
from servers import RunningServer, _start, free_port

NAME = "s3"
GOAL = 1.0
PATCH_BYTES = 64 * MiB
MEMORY_CLIENTS = 4
MEMORY_GOAL_MB = 200.0

PUT_SCRIPT = (
    'loc=$(curl -sS --max-time 600 -X POST -D - -o /dev/null "$1/v2/$2/blobs/uploads/" '
    "| tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'); "
    'case "$loc" in http*) ;; *) loc="$1$loc" ;; esac; '
    'case "$loc" in *\\?*) sep="&" ;; *) sep="?" ;; esac; '
    'code=$(curl -sS --max-time 600 -o /dev/null -w "%{http_code}" -X PUT -H "Expect:" '
    '-H "Content-Type: application/octet-stream" -T "$3" "$loc${sep}digest=$4"); '
    '[ "$code" = 201 ] || { echo "PUT returned $code" >&2; exit 1; }'
)
# $3 is a directory of chunk files (split -b), sent in order as PATCHes with Content-Range;
# each response's Location is followed (distribution changes it every time).
CHUNKED_SCRIPT = (
    'loc=$(curl -sS --max-time 600 -X POST -D - -o /dev/null "$1/v2/$2/blobs/uploads/" '
    "| tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'); offset=0; "
    'for part in "$3"/*; do '
    'case "$loc" in http*) ;; *) loc="$1$loc" ;; esac; '
    'size=$(stat -c %s "$part"); last=$((offset + size - 1)); '
    'loc=$(curl -sS --max-time 600 -X PATCH -D - -o /dev/null -H "Expect:" '
    '-H "Content-Type: application/octet-stream" -H "Content-Range: $offset-$last" '
    '--data-binary @"$part" "$loc" | tr -d "\\r" | sed -n "s/^[Ll]ocation: //p"); '
    "offset=$((last + 1)); done; "
    'case "$loc" in http*) ;; *) loc="$1$loc" ;; esac; '
    'case "$loc" in *\\?*) sep="&" ;; *) sep="?" ;; esac; '
    'code=$(curl -sS --max-time 600 -o /dev/null -w "%{http_code}" -X PUT -H "Content-Length: 0" '
    '"$loc${sep}digest=$4"); '
    '[ "$code" = 201 ] || { echo "chunked PUT returned $code" >&2; exit 1; }'
)


def run(options: Options, memory_mib: int = 1024) -> FamilyResult:
    for tool in ("curl", "docker-registry", "split"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the S3 benchmark needs {tool} (scripts/setup.sh installs it)")
    blob = options.workdir / "blob.bin"
    digest = _write_blob(blob, options.size_mib * MiB)
    size = blob.stat().st_size
    chunks = options.workdir / "chunks"
    chunks.mkdir()
    time_subprocess(["split", "-a", "4", "-b", str(PATCH_BYTES), str(blob), f"{chunks}/c"])
    warm_page_cache(blob)
    with ExitStack() as stack:
        rgw = stack.enter_context(start_rgw(options.workdir / "rgw"))
        mdl_bucket, distribution_bucket = rgw.bucket(), rgw.bucket()
        mdl = stack.enter_context(
            rgw.serve(
                mdl_bucket, options.workdir / "mdl", "--no-access-log", "--s3-redirect", "false"
            )
        )
        redirecting = stack.enter_context(
            rgw.serve(mdl_bucket, options.workdir / "mdl-redirect", "--no-access-log")
        )
        distribution = stack.enter_context(
            _distribution(rgw, distribution_bucket, options.workdir / "distribution")
        )
        timings: dict[str, Timing] = {}
        contenders = []
        for label, server in (("mdl", mdl), ("distribution", distribution)):
            put = Timing(f"{label} blob PUT", size)
            chunked = Timing(f"{label} blob PUT chunked", size)
            get = Timing(f"{label} blob GET", size)
            timings.update({t.label: t for t in (put, chunked, get)})
            contenders.append(
                Contender((put, chunked, get), _round(server, blob, chunks, digest, label))
            )
        followed = Timing("mdl blob GET via 307", size)
        timings[followed.label] = followed
        contenders.append(Contender((followed,), _redirect_round(redirecting, mdl, blob, digest)))
        big, big_digest = blob, digest
        if memory_mib != options.size_mib:
            big = options.workdir / "memory.bin"
            big_digest = _write_blob(big, memory_mib * MiB)
        peak_pss, peak_rss = _peak_resident(mdl, big, big_digest)  # first: the gateway is empty
        run_interleaved(contenders, options.repeat, before_each=lambda: warm_page_cache(blob))
    memory = Check(
        f"replica memory (PSS), {MEMORY_CLIENTS} x {memory_mib} MiB PUT at once",
        peak_pss / 1e6,
        "MB",
        f"< {MEMORY_GOAL_MB:.0f} MB",
        peak_pss / 1e6 < MEMORY_GOAL_MB,
    )
    summed = Check("the same, RSS summed", peak_rss / 1e6, "MB", "(shared pages twice)", None)
    checks = (
        *(
            _check(what, timings[f"mdl {what}"], timings[f"distribution {what}"])
            for what in ("blob PUT", "blob PUT chunked", "blob GET")
        ),
        memory,
        summed,
    )
    notes = (
        f"{size / MiB:.0f} MiB random blob, {options.repeat} rounds, medians, one untimed "
        "warm-up round, order shuffled each round; a new repository each round",
        "storage: Ceph RGW 16.2 (scripts/s3.sh, bluestore on a sparse file), one bucket each",
        f"PUT: curl POST + one streamed PUT ?digest=; chunked: POST, {PATCH_BYTES // MiB} MiB "
        "PATCHes with Content-Range, PUT ?digest=; GET: curl to /dev/null through the registry",
        "mdl: granian, 1 worker, --s3-redirect false (GET via 307: curl -L to the gateway); "
        "distribution: Debian docker-registry 2.8, s3 driver, redirect disabled",
        f"memory: {MEMORY_CLIENTS} curl PUTs of {memory_mib} MiB at once to the streaming "
        "replica (before the timed rounds); peak over samples every 0.1 s of its main process "
        "and worker together: PSS (shared pages split between them) and RSS summed",
    )
    return FamilyResult(
        NAME, "registry on S3 vs distribution 2.8", notes, tuple(timings.values()), checks
    )


def _round(
    server: RunningServer, blob: Path, chunks: Path, digest: str, label: str
) -> Callable[[], tuple[float, float, float]]:
    rounds = iter(range(1_000_000))

    def measure() -> tuple[float, float, float]:
        number = next(rounds)
        whole, parts = f"bench/{label}-whole{number}", f"bench/{label}-chunked{number}"
        put, _ = time_subprocess(
            ["sh", "-c", PUT_SCRIPT, "sh", server.url, whole, str(blob), digest]
        )
        chunked, _ = time_subprocess(
            ["sh", "-c", CHUNKED_SCRIPT, "sh", server.url, parts, str(chunks), digest]
        )
        get = _get(f"{server.url}/v2/{whole}/blobs/{digest}", blob)
        return put, chunked, get

    return measure


def _peak_resident(server: RunningServer, blob: Path, digest: str) -> tuple[int, int]:
    """Peak (PSS, RSS) bytes of ``server``'s processes while several clients push at once."""
    pushes = [
        subprocess.Popen(
            ["sh", "-c", PUT_SCRIPT, "sh", server.url, f"bench/memory{n}", str(blob), digest],
            stderr=subprocess.PIPE,
        )
        for n in range(MEMORY_CLIENTS)
    ]
    peak_pss = peak_rss = 0
    while any(push.poll() is None for push in pushes):
        pss, rss = _resident(server.process.pid)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.1)
    for push in pushes:
        if push.returncode != 0:
            stderr = push.stderr.read().decode() if push.stderr else ""
            raise RuntimeError(f"a concurrent PUT failed: {stderr}")
    return peak_pss, peak_rss


def _resident(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of ``pid`` and its descendants, in bytes."""
    pss = rss = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1]) * 1024
            elif line.startswith("Rss:"):
                rss += int(line.split()[1]) * 1024
        pending += [int(child) for child in children]
    return pss, rss


def _redirect_round(
    redirecting: RunningServer, pusher: RunningServer, blob: Path, digest: str
) -> Callable[[], tuple[float]]:
    rounds = iter(range(1_000_000))

    def measure() -> tuple[float]:
        repo = f"bench/redirect{next(rounds)}"
        time_subprocess(["sh", "-c", PUT_SCRIPT, "sh", pusher.url, repo, str(blob), digest])
        return (_get(f"{redirecting.url}/v2/{repo}/blobs/{digest}", blob, follow=True),)

    return measure


def _get(url: str, blob: Path, follow: bool = False) -> float:
    argv = [
        "curl",
        "-sS",
        *(["-L"] if follow else []),
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        url,
    ]
    seconds, out = time_subprocess(argv)
    if int(out) != blob.stat().st_size:
        raise RuntimeError(f"GET {url} returned {out} bytes")
    return seconds


@contextmanager
def _distribution(rgw: Rgw, bucket: str, datadir: Path) -> Iterator[RunningServer]:
    """distribution 2.8 with its S3 driver on ``bucket`` (as /work/shared/peers shows)."""
    datadir.mkdir(parents=True)
    port = free_port()
    config = datadir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  s3:\n"
        f"    accesskey: {os.environ['AWS_ACCESS_KEY_ID']}\n"
        f"    secretkey: {os.environ['AWS_SECRET_ACCESS_KEY']}\n"
        f"    region: {os.environ['AWS_REGION']}\n    regionendpoint: {rgw.endpoint}\n"
        f"    bucket: {bucket}\n    secure: false\n    v4auth: true\n"
        "    rootdirectory: /registry\n  redirect:\n    disable: true\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {os.urandom(16).hex()}\n"
    )
    binary = shutil.which("docker-registry") or "docker-registry"
    # distribution 2.8's S3 driver panics at start when AWS_CA_BUNDLE is set.
    bundle = os.environ.pop("AWS_CA_BUNDLE", None)
    try:
        server = _start([binary, "serve", str(config)], port)
    finally:
        if bundle is not None:
            os.environ["AWS_CA_BUNDLE"] = bundle
    with server:
        yield server


def _check(what: str, mdl: Timing, distribution: Timing) -> Check:
    ratio = distribution.median / mdl.median
    return Check(f"{what} vs distribution", ratio, "x", f"≥ {GOAL:.2f}x", ratio >= GOAL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-mib", type=int, default=1024)
    args = parser.parse_args()
    from run import render

    with tempfile.TemporaryDirectory(prefix="mdl-s3-bench-") as workdir:
        mdl = Path(sys.executable).with_name("mdl")
        options = Options(Path(workdir), args.size_mib, args.repeat, mdl)
        result = run(options, args.memory_mib)
    print(render(result))
    return 1 if any(check.passed is False for check in result.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
