"""``mdl registry serve`` against Debian's ``docker-registry`` (CNCF distribution 2.8).

Goals (from the issue): blob PUT and GET throughput and manifest GET requests/s each at least
1.0x distribution's, measured on the same machine in the same run. Every contender is an
external client (curl for blobs, ApacheBench for manifests) so neither server is measured
through Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from common import (
    CHUNK,
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import RunningServer, start_distribution, start_mdl_registry

NAME = "registry"
GOAL = 1.0  # mdl / distribution, for every figure
MANIFEST_REQUESTS = 5000
MANIFEST_CONCURRENCY = 4
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def run(options: Options) -> FamilyResult:
    """Start both registries, then time blob PUT, blob GET and manifest GET, interleaved."""
    for tool in ("curl", "ab", "docker-registry"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"the registry benchmark needs {tool} (scripts/setup.sh installs it)"
            )
    blob = options.workdir / "blob.bin"
    digest = _write_blob(blob, options.size_mib * MiB)
    size = blob.stat().st_size
    warm_page_cache(blob)
    with (
        start_mdl_registry(options.workdir / "mdl", "--no-access-log") as mdl,
        start_distribution(options.workdir / "distribution") as distribution,
    ):
        servers = {"mdl": mdl, "distribution": distribution}
        timings: dict[str, Timing] = {}
        contenders = []
        for label, server in servers.items():
            put, get = Timing(f"{label} blob PUT", size), Timing(f"{label} blob GET", size)
            manifest = Timing(f"{label} manifest GET")
            timings.update({put.label: put, get.label: get, manifest.label: manifest})
            _push_manifest(server)
            contenders.append(Contender((put, get), _blob_round(server, blob, digest)))
            contenders.append(Contender((manifest,), _manifest_round(server)))
        run_interleaved(contenders, options.repeat, before_each=lambda: warm_page_cache(blob))
    checks = tuple(
        _throughput_check(what, timings[f"mdl {what}"], timings[f"distribution {what}"])
        for what in ("blob PUT", "blob GET", "manifest GET")
    )
    notes = (
        f"{size / MiB:.0f} MiB random blob, {options.repeat} rounds, medians; one untimed "
        "warm-up round; contender order shuffled each round",
        "blob PUT: curl POST then one streamed PUT ?digest= (a new repository each round); "
        "blob GET: curl to /dev/null; both include curl's start-up",
        f"manifest GET: ApacheBench, {MANIFEST_REQUESTS} keep-alive requests, "
        f"{MANIFEST_CONCURRENCY} concurrent, of a tagged OCI manifest",
        "mdl: granian, 1 worker, access log off; distribution: Debian docker-registry 2.8, "
        "filesystem storage, log level warn",
    )
    return FamilyResult(
        NAME, "registry vs distribution 2.8", notes, tuple(timings.values()), checks
    )


def _write_blob(path: Path, nbytes: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for start in range(0, nbytes, CHUNK):
            chunk = os.urandom(min(CHUNK, nbytes - start))
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return f"sha256:{digest.hexdigest()}"


def _blob_round(
    server: RunningServer, blob: Path, digest: str
) -> Callable[[], tuple[float, float]]:
    rounds = iter(range(1_000_000))

    def measure() -> tuple[float, float]:
        repo = f"bench/blob{next(rounds)}"
        script = (
            'loc=$(curl -sS -X POST -D - -o /dev/null "$1/v2/$2/blobs/uploads/" '
            "| tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'); "
            'case "$loc" in http*) ;; *) loc="$1$loc" ;; esac; '
            'case "$loc" in *\\?*) sep="&" ;; *) sep="?" ;; esac; '
            'code=$(curl -sS -o /dev/null -w "%{http_code}" -X PUT -H "Expect:" '
            '-H "Content-Type: application/octet-stream" -T "$3" "$loc${sep}digest=$4"); '
            '[ "$code" = 201 ] || { echo "PUT returned $code" >&2; exit 1; }'
        )
        put, _ = time_subprocess(["sh", "-c", script, "sh", server.url, repo, str(blob), digest])
        url = f"{server.url}/v2/{repo}/blobs/{digest}"
        get, out = time_subprocess(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url]
        )
        if int(out) != blob.stat().st_size:
            raise RuntimeError(f"GET {url} returned {out} bytes")
        return put, get

    return measure


def _push_manifest(server: RunningServer) -> None:
    """A small tagged image (config and one layer) in ``bench/manifest``, pushed POST+PUT."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = os.urandom(1024)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for data in (config, layer):
            location = client.post("/v2/bench/manifest/blobs/uploads/").headers["location"]
            digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
            separator = "&" if "?" in location else "?"
            put = client.put(f"{location}{separator}digest={digest}", content=data)
            if put.status_code != 201:
                raise RuntimeError(f"{server.url}: blob PUT {put.status_code}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        }
        response = client.put(
            "/v2/bench/manifest/manifests/v1",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        if response.status_code != 201:
            raise RuntimeError(f"{server.url}: manifest PUT {response.status_code}")


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _manifest_round(server: RunningServer) -> Callable[[], tuple[float]]:
    argv = [
        "ab", "-q", "-k", "-n", str(MANIFEST_REQUESTS), "-c", str(MANIFEST_CONCURRENCY),
        "-H", f"Accept: {OCI_MANIFEST}", f"{server.url}/v2/bench/manifest/manifests/v1",
    ]  # fmt: skip

    def measure() -> tuple[float]:
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        bad = re.search(r"(Failed requests|Non-2xx responses):\s+([1-9]\d*)", proc.stdout)
        if proc.returncode or bad:
            raise RuntimeError(f"ab against {server.url}: {proc.stdout[-500:]}{proc.stderr}")
        return (elapsed,)

    return measure


def _throughput_check(what: str, mdl: Timing, distribution: Timing) -> Check:
    """mdl's throughput over distribution's (the inverse ratio of their median times; for
    manifests, requests per second)."""
    ratio = distribution.median / mdl.median
    return Check(f"{what} vs distribution", ratio, "x", f"≥ {GOAL:.2f}x", ratio >= GOAL)
