"""The pull-through cache (``mdl registry serve --proxy``): a warm pull through it against a
pull from the same storage served without ``--proxy``.

Goal (from the issue): the warm pull at least 0.9x the plain one. The upstream is Debian's
``docker-registry`` (distribution 2.8) holding a tagged image whose one layer is
``--size-mib``; the cache fills once (untimed), then a second ``mdl registry serve`` on the
same root, without ``--proxy``, is the baseline. A pull is what a client does: the manifest by
tag (the cache's TTL is not over, so the upstream is not asked), then the layer, both with curl.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Iterator
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
)
from registry_bench import OCI_MANIFEST, _descriptor, _write_blob

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import RunningServer, start_distribution, start_mdl_registry

NAME = "proxy"
GOAL = 0.9
REPO = "bench/pulled"


def run(options: Options) -> FamilyResult:
    for tool in ("curl", "docker-registry"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the proxy benchmark needs {tool} (scripts/setup.sh installs it)")
    layer = options.workdir / "layer.bin"
    digest = _write_blob(layer, options.size_mib * MiB)
    size = layer.stat().st_size
    root = options.workdir / "cache"
    with start_distribution(options.workdir / "upstream") as upstream:
        _push_image(upstream, layer, digest)
        quiet = "--no-access-log"
        with (
            start_mdl_registry(root, quiet, "--proxy", upstream.url) as cache,
            start_mdl_registry(root, quiet) as plain,
        ):
            _pull(cache, digest, size)()  # fills the cache (untimed)
            through, direct = (
                Timing("warm pull via the cache", size),
                Timing("same storage, no --proxy", size),
            )
            contenders = [
                Contender((through,), _pull(cache, digest, size)),
                Contender((direct,), _pull(plain, digest, size)),
            ]
            run_interleaved(contenders, options.repeat)
    ratio = direct.median / through.median
    check = Check("warm pull via cache vs plain", ratio, "x", f"≥ {GOAL:.2f}x", ratio >= GOAL)
    notes = (
        f"{size / MiB:.0f} MiB random layer, {options.repeat} rounds, medians; one untimed "
        "warm-up round; contender order shuffled each round",
        "a pull: curl GET of the manifest by tag, then of the layer to /dev/null (one shell, "
        "curl's start-up included)",
        "both: mdl registry serve, granian, 1 worker, access log off, one root; the cache with "
        "--proxy to distribution 2.8 (default TTL, so tags are not revalidated)",
    )
    return FamilyResult(NAME, "pull-through cache", notes, (through, direct), (check,))


def _push_image(upstream: RunningServer, layer: Path, digest: str) -> None:
    """The layer (streamed), a config and a tagged manifest, each blob POST then PUT."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    with httpx.Client(base_url=upstream.url, timeout=600) as client:
        for body, blob_digest in ((_chunks(layer), digest), (config, config_digest)):
            location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
            separator = "&" if "?" in location else "?"
            put = client.put(f"{location}{separator}digest={blob_digest}", content=body)
            if put.status_code != 201:
                raise RuntimeError(f"{upstream.url}: blob PUT {put.status_code}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest,
                    "size": layer.stat().st_size,
                }
            ],
        }
        answer = client.put(
            f"/v2/{REPO}/manifests/v1",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"{upstream.url}: manifest PUT {answer.status_code}")


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


def _pull(server: RunningServer, digest: str, size: int) -> Callable[[], tuple[float]]:
    script = (
        'curl -sS -f -o /dev/null -H "Accept: $2" "$1/manifests/v1" && '
        'curl -sS -f -o /dev/null -w "%{size_download}" "$1/blobs/$3"'
    )
    argv = ["sh", "-c", script, "sh", f"{server.url}/v2/{REPO}", OCI_MANIFEST, digest]

    def measure() -> tuple[float]:
        elapsed, out = time_subprocess(argv)
        if int(out) != size:
            raise RuntimeError(f"{server.url}: the layer came back with {out} bytes")
        return (elapsed,)

    return measure
