"""The pull-through cache on S3 storage (Ceph's RADOS Gateway, the ``rgw`` fixture) in front of
distribution 2.8: a cold pull streams from the upstream and lands in the bucket (a blob of
several S3 parts included); a warm pull asks the upstream for nothing and its blob GETs are
307s to the gateway, as any pull from the S3 backend."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from oci import OCI_MANIFEST, push_manifest
from proxy_peers import CONFIG, MiB, manifest, upload, upstream_requests, wait_for
from rgw import Rgw
from servers import start_distribution
from test_registry_mdl_client import build_tiny

MdlRunner = Callable[..., Any]


def _redirects(url: str) -> int:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(r'mdl_registry_requests_total\{method="GET",status="307"\} (\d+)', text)
    return int(found.group(1)) if found else 0


def test_cache_on_s3_fills_the_bucket_once(
    rgw: Rgw, tmp_path: Path, mdl: MdlRunner, models_dir: Path
) -> None:
    bucket = rgw.bucket()
    with start_distribution(tmp_path / "upstream") as upstream:
        digest = build_tiny(mdl, models_dir, tmp_path)
        mdl("push", "tiny:1", f"{upstream.host}/team/tiny:1")
        big = os.urandom(12 * MiB + 7)  # three S3 parts
        with httpx.Client(base_url=upstream.url, timeout=60) as client:
            big_digest = upload(client, "team/big", big)
            upload(client, "team/big", CONFIG)
            pushed = push_manifest(client, "team/big", "v1", manifest(big), OCI_MANIFEST)
            assert pushed.status_code == 201

        with rgw.serve(bucket, tmp_path / "cache", "--proxy", upstream.url) as cache:
            ref = f"{cache.host}/team/tiny:1"
            cold = mdl("pull", ref, "--json", env={"MDL_HOME": str(tmp_path / "a")}).json()
            assert cold["digest"] == digest
            blobs = cold["blobs_transferred"]
            wait_for(lambda: len(upstream_requests(upstream, "GET", "/blobs/")) == blobs, "log")
            streamed = httpx.get(f"{cache.url}/v2/team/big/blobs/{big_digest}", timeout=60)
            assert streamed.headers["cache-status"] == "mdl; fwd=miss; stored"
            assert hashlib.sha256(streamed.content).hexdigest() == big_digest[7:]
            driver = rgw.driver(bucket)
            assert driver.stat(f"blobs/sha256/{big_digest[7:9]}/{big_digest[7:]}").size == len(big)

            before = _redirects(cache.url)
            warm = mdl("pull", ref, "--json", env={"MDL_HOME": str(tmp_path / "b")}).json()
            assert (
                warm["digest"] == digest and warm["bytes_transferred"] == cold["bytes_transferred"]
            )
            again = httpx.get(
                f"{cache.url}/v2/team/big/blobs/{big_digest}", follow_redirects=True, timeout=60
            )
            assert again.content == big
            assert _redirects(cache.url) - before == blobs + 1
            assert len(upstream_requests(upstream, "GET", "/blobs/")) == blobs + 1
