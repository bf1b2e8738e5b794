"""``mdl registry serve --storage s3://...`` on Ceph's RADOS Gateway, end to end: ``mdl push``
and ``mdl pull`` of a model of several S3 parts (monolithic and chunked), blob GETs with the
307 to a presigned URL and streamed, ranges both ways, an upload that two registry processes
share, gc on a bucket, and clear refusals of a bad ``--storage``."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from ggufs import write_padded_llama
from oci import digest, image, push_blob
from rgw import Rgw
from servers import RunningServer

MdlRunner = Callable[..., Any]
MiB = 1024 * 1024


def redirects(server: RunningServer) -> int:
    """Blob GETs this registry answered with a 307 so far (from its /metrics)."""
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(r'mdl_registry_requests_total\{method="GET",status="307"\} (\d+)', text)
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize(
    ("padding_mib", "chunk"),
    [(40, None), (72, 11 * MiB + 3)],
    ids=["monolithic", "chunked"],
)
def test_mdl_push_and_pull_through_both_registries(
    mdl: MdlRunner,
    tmp_path: Path,
    registry: RunningServer,
    redirecting: RunningServer,
    padding_mib: int,
    chunk: int | None,
) -> None:
    """Pushed to the redirecting process, pulled from it (following 307s to the gateway, in
    ranged segments for the larger model) and from the streaming one on the same bucket."""
    work = tmp_path / "model"
    work.mkdir()
    write_padded_llama(work / "big.gguf", padding_mib)
    (work / "Modelfile").write_text("FROM ./big.gguf\n")
    built = mdl("build", "-t", "big:1", "-q", cwd=work).out.strip()
    env = {"MDL_CHUNK_SIZE": str(chunk)} if chunk else {}
    remote = f"{redirecting.host}/s3/big-{padding_mib}:1"
    assert mdl("push", "big:1", remote, "--json", env=env).json()["digest"] == built

    before = redirects(redirecting)
    mdl("rm", "big:1")
    assert mdl("pull", remote, "--json").json()["digest"] == built
    assert redirects(redirecting) > before
    shutil.rmtree(work)

    mdl("rm", remote)
    streamed = f"{registry.host}/s3/big-{padding_mib}:1"
    assert mdl("pull", streamed, "--json").json()["digest"] == built
    assert mdl("show", streamed, "--json").json()["digest"] == built


def test_blob_get_redirects_to_a_presigned_url_or_streams(
    http: httpx.Client, repo: str, registry: RunningServer, redirecting: RunningServer, rgw: Rgw
) -> None:
    data = os.urandom(3 * MiB + 5)
    dgst = push_blob(http, repo, data)
    path = f"/v2/{repo}/blobs/{dgst}"
    with httpx.Client(base_url=redirecting.url, timeout=60) as direct:
        answer = direct.get(path)
        assert answer.status_code == 307
        assert answer.headers["location"].startswith(rgw.endpoint + "/")
        assert answer.headers["docker-content-digest"] == dgst
        head = direct.head(path)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(data))
        followed = direct.get(path, follow_redirects=True)
        assert followed.content == data
        ranged = direct.get(path, headers={"Range": "bytes=100-199"}, follow_redirects=True)
        assert ranged.status_code == 206
        assert ranged.content == data[100:200]
        refused = direct.get(path, headers={"Range": f"bytes={len(data)}-"})
        assert refused.status_code == 416
    streamed = http.get(path, headers={"Range": "bytes=-7"})
    assert streamed.status_code == 206
    assert streamed.content == data[-7:]
    assert http.get(path).content == data


def test_an_upload_started_on_one_process_finishes_on_another(
    http: httpx.Client, repo: str, redirecting: RunningServer
) -> None:
    """Chunks that are not part-sized, alternating between two processes on one bucket."""
    data = os.urandom(21 * MiB + 333)
    cuts = [0, 6 * MiB + 1, 13 * MiB, 17 * MiB + 9, len(data)]
    with httpx.Client(base_url=redirecting.url, timeout=60) as other:
        location = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
        for number, (first, end) in enumerate(itertools.pairwise(cuts[:-1])):
            client = (http, other)[number % 2]
            answer = client.patch(
                location,
                content=data[first:end],
                headers={"Content-Range": f"{first}-{end - 1}"},
            )
            assert answer.status_code == 202, answer.text
            assert answer.headers["range"] == f"0-{end - 1}"
        assert http.get(location).headers["range"] == f"0-{cuts[-2] - 1}"
        dgst = digest(data)
        finished = other.put(
            location,
            params={"digest": dgst},
            content=data[cuts[-2] :],
            headers={"Content-Range": f"{cuts[-2]}-{len(data) - 1}"},
        )
        assert finished.status_code == 201, finished.text
    fetched = http.get(f"/v2/{repo}/blobs/{dgst}")
    assert hashlib.sha256(fetched.content).hexdigest() == dgst.split(":")[1]


def test_a_mismatching_upload_never_becomes_visible(http: httpx.Client, repo: str) -> None:
    data = os.urandom(9 * MiB)
    claimed = digest(data + b"!")
    location = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    assert http.patch(location, content=data).status_code == 202
    answer = http.put(location, params={"digest": claimed})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert http.head(f"/v2/{repo}/blobs/{claimed}").status_code == 404
    assert http.get(location).status_code == 404


def test_gc_sweeps_a_bucket(mdl: MdlRunner, tmp_path: Path, rgw: Rgw) -> None:
    """``mdl registry gc --storage s3://...``: the unreferenced blob and the idle session go,
    the image stays whole."""
    bucket = rgw.bucket()
    with (
        rgw.serve(bucket, tmp_path / "root") as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        manifest, _ = image(http, "gc/kept")
        loose = push_blob(http, "gc/loose", os.urandom(1000))
        assert http.post("/v2/gc/loose/blobs/uploads/").status_code == 202
    storage = ("--storage", f"s3://{bucket}", "--s3-endpoint", rgw.endpoint)
    sweep = ("registry", "gc", *storage, "--grace-period", "0", "--upload-expiry", "0", "--json")
    report = mdl(*sweep).json()
    assert report["blobs"] == [loose]
    assert report["uploads_removed"] == 1
    assert report["blobs_kept"] == 4  # config, two layers, the manifest
    with (
        rgw.serve(bucket, tmp_path / "root") as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        assert http.get(f"/v2/gc/kept/manifests/{manifest}").status_code == 200
        assert http.head(f"/v2/gc/loose/blobs/{loose}").status_code == 404


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("s3://no-such-bucket-here", "does not exist"),
        ("http://bucket", "s3://BUCKET"),
        ("s3://bucket/../x", "invalid storage key"),
    ],
)
def test_bad_storage_is_refused_at_start(
    mdl: MdlRunner, tmp_path: Path, rgw: Rgw, storage: str, message: str
) -> None:
    refused = mdl(
        "registry", "serve", "--root", str(tmp_path), "--storage", storage,
        "--s3-endpoint", rgw.endpoint, "--port", "1", ok=False,
    )  # fmt: skip
    assert refused.code == 2
    assert message in refused.err
