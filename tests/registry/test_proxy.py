"""``mdl registry serve --proxy``: a pull-through cache in front of distribution 2.8 (Debian's
``docker-registry``), whose access log tells what the cache asked for; mdl, skopeo and oras
pull through it. Also: concurrent pulls of one uncached blob make one upstream GET, tags are
revalidated after the TTL (and follow a moved tag), a down upstream leaves cached tags served,
pushes are refused, an upstream behind htpasswd or token auth, upstream errors as OCI errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import oras.client
import proxy_peers
import pytest
from oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    encode,
    errors,
    push_manifest,
)
from proxy_peers import MiB, image, sha256, start_standin, upload, upstream_requests, wait_for
from servers import RunningServer, free_port, start_distribution, start_mdl_registry
from test_registry_mdl_client import build_tiny

MdlRunner = Any
HIT = "mdl; hit"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_distribution(tmp_path_factory.mktemp("upstream")) as server:
        yield server


@pytest.fixture(scope="module")
def cache(
    upstream: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("cache")
    with start_mdl_registry(root, "--proxy", upstream.url) as server:
        yield server


def test_second_pull_asks_upstream_for_no_blob(
    mdl: MdlRunner,
    models_dir: Path,
    tmp_path: Path,
    upstream: RunningServer,
    cache: RunningServer,
) -> None:
    digest = build_tiny(mdl, models_dir, tmp_path)
    mdl("push", "tiny:1", f"{upstream.host}/team/tiny:1")
    first = mdl(
        "pull", f"{cache.host}/team/tiny:1", "--json", env={"MDL_HOME": str(tmp_path / "a")}
    )
    assert first.json()["digest"] == digest
    blobs = first.json()["blobs_transferred"]
    wait_for(lambda: len(upstream_requests(upstream, "GET", "/team/tiny/blobs/")) == blobs, "log")
    fetched = upstream_requests(upstream, "GET", "/team/tiny/")
    assert len(set(fetched)) == len(fetched)  # each blob and the manifest once

    second = mdl(
        "pull", f"{cache.host}/team/tiny:1", "--json", env={"MDL_HOME": str(tmp_path / "b")}
    )
    assert second.json()["digest"] == digest
    assert second.json()["bytes_transferred"] == first.json()["bytes_transferred"]
    skopeo = [
        "skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
        f"docker://{cache.host}/team/tiny:1", f"oci:{tmp_path / 'layout'}:1",
    ]  # fmt: skip
    subprocess.run(skopeo, check=True, capture_output=True, timeout=120)
    assert upstream_requests(upstream, "GET", "/team/tiny/") == fetched  # nothing more
    assert upstream_requests(upstream, "HEAD", "/team/tiny/") == []  # the tag is fresh
    answer = httpx.head(f"{cache.url}/v2/team/tiny/manifests/1")
    assert answer.headers["docker-content-digest"] == digest
    assert answer.headers["cache-status"] == HIT


def test_oras_pulls_through_the_cache(
    upstream: RunningServer, cache: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "notes.txt").write_text("weights notes\n")
    pusher = oras.client.OrasClient(hostname=upstream.host, insecure=True)
    pusher.push(target=f"{upstream.host}/team/notes:v1", files=["notes.txt"])
    puller = oras.client.OrasClient(hostname=cache.host, insecure=True)
    out = tmp_path / "out"
    pulled = puller.pull(target=f"{cache.host}/team/notes:v1", outdir=str(out))
    assert [Path(p).read_text() for p in pulled] == ["weights notes\n"]


def test_concurrent_pulls_of_an_uncached_blob_make_one_upstream_get(
    upstream: RunningServer, cache: RunningServer
) -> None:
    data = os.urandom(24 * MiB)
    with httpx.Client(base_url=upstream.url, timeout=60) as client:
        digest = upload(client, "team/big", data)

    def pull(_: int) -> tuple[str, str]:
        with httpx.Client(timeout=60) as client:
            answer = client.get(f"{cache.url}/v2/team/big/blobs/{digest}")
            assert answer.status_code == 200, answer.text
            return "sha256:" + hashlib.sha256(answer.content).hexdigest(), answer.headers[
                "cache-status"
            ]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(pull, range(8)))
    assert {digest for digest, _ in results} == {digest}
    assert [status for _, status in results].count("mdl; fwd=miss; stored") == 1
    wait_for(lambda: upstream_requests(upstream, "GET", digest) != [], "the upstream GET")
    assert len(upstream_requests(upstream, "GET", digest)) == 1
    assert httpx.get(f"{cache.url}/v2/team/big/blobs/{digest}").headers["cache-status"] == HIT


def test_first_bytes_flow_before_the_upstream_finishes(tmp_path: Path) -> None:
    data = os.urandom(4 * MiB)
    digest = sha256(data)
    with start_standin() as standin:
        standin.blobs[digest] = data
        standin.held[digest] = gate = threading.Event()
        with (
            start_mdl_registry(tmp_path / "cache", "--proxy", standin.url) as cache,
            httpx.stream("GET", f"{cache.url}/v2/team/held/blobs/{digest}", timeout=60) as answer,
        ):
            pieces = answer.iter_raw()
            first = next(pieces)
            assert first and not gate.is_set()  # the upstream has sent only its first MiB
            assert httpx.get(f"{cache.url}/v2/", timeout=5).status_code == 200  # not blocked
            with httpx.stream("GET", answer.url, timeout=60) as joined:
                assert joined.headers["cache-status"] == "mdl; fwd=miss; collapsed"
                joined_pieces = joined.iter_raw()
                joined_first = next(joined_pieces)  # from the same spool, still held upstream
                assert joined_first and not gate.is_set()
                gate.set()
                assert sha256(joined_first + b"".join(joined_pieces)) == digest
            body = first + b"".join(pieces)
        assert sha256(body) == digest
        assert standin.sent == [f"GET /v2/team/held/blobs/{digest}"]


def test_corrupt_upstream_content_is_never_stored(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 5)
    digest = sha256(data)
    root = tmp_path / "cache"
    with start_standin() as standin:
        standin.blobs[digest] = data
        standin.corrupt.add(digest)
        with start_mdl_registry(root, "--proxy", standin.url) as cache:
            for _ in range(2):
                received = bytearray()
                url = f"{cache.url}/v2/team/bad/blobs/{digest}"
                # the answer is cut before its last byte
                with pytest.raises(httpx.HTTPError), httpx.stream("GET", url) as r:
                    for piece in r.iter_raw():
                        received += piece
                assert len(received) < len(data)
            assert standin.sent.count(f"GET /v2/team/bad/blobs/{digest}") == 2  # not cached
            stored = root / "blobs" / "sha256" / digest[7:9] / digest[7:]
            assert not stored.exists()
            assert not list((root / "repositories" / "team" / "bad" / "_uploads").iterdir())

            manifest = proxy_peers.manifest()
            standin.manifests["v1"] = (manifest, OCI_MANIFEST, sha256(manifest + b" "))
            wrong = sha256(b"something else")
            standin.manifests[wrong] = (manifest, OCI_MANIFEST, wrong)
            for reference in ("v1", wrong):
                answer = httpx.get(f"{cache.url}/v2/team/bad/manifests/{reference}")
                assert answer.status_code == 502 and errors(answer) == ["UNKNOWN"]
                assert "digest" in answer.json()["errors"][0]["message"]
            assert not (root / "repositories" / "team" / "bad" / "_manifests").exists()
            assert "wrong digest: not stored" in cache.log()
            assert "Traceback" not in cache.log(), cache.log()


def test_tag_revalidated_after_the_ttl_follows_a_moved_tag(tmp_path: Path) -> None:
    with start_distribution(tmp_path / "upstream") as upstream:
        with httpx.Client(base_url=upstream.url, timeout=60) as client:
            old, _ = image(client, "team/moving", "v1")
        with start_mdl_registry(
            tmp_path / "cache", "--proxy", upstream.url, "--proxy-ttl", "1s"
        ) as cache:
            url = f"{cache.url}/v2/team/moving/manifests/v1"
            assert httpx.get(url).headers["cache-status"] == "mdl; fwd=miss; stored"
            assert httpx.get(url).headers["cache-status"] == HIT  # within the second
            assert upstream_requests(upstream, "HEAD", "/manifests/v1") == []

            def revalidated() -> bool:
                answer = httpx.get(url)
                assert answer.headers["docker-content-digest"] == old
                return answer.headers["cache-status"] == "mdl; fwd=stale; fwd-status=200"

            wait_for(revalidated, "a revalidation after the TTL")
            assert len(upstream_requests(upstream, "HEAD", "/team/moving/manifests/v1")) == 1
            assert len(upstream_requests(upstream, "GET", "/team/moving/manifests/v1")) == 1

            with httpx.Client(base_url=upstream.url, timeout=60) as client:
                new, _ = image(client, "team/moving", "v1")
            wait_for(
                lambda: httpx.get(url).headers["docker-content-digest"] == new,
                "the moved tag after the TTL",
            )
            by_digest = httpx.get(f"{cache.url}/v2/team/moving/manifests/{old}")
            assert by_digest.status_code == 200 and by_digest.headers["cache-status"] == HIT


def test_a_down_upstream_leaves_cached_tags_served(tmp_path: Path) -> None:
    upstream = start_distribution(tmp_path / "upstream")
    with upstream:
        with httpx.Client(base_url=upstream.url, timeout=60) as client:
            digest, body = image(client, "team/kept", "v1")
            layer = encode({})  # a blob the cache never fetches
            other = upload(client, "team/kept", layer)
        with start_mdl_registry(
            tmp_path / "cache", "--proxy", upstream.url, "--proxy-ttl", "1s"
        ) as cache:
            url = f"{cache.url}/v2/team/kept/manifests/v1"
            config = httpx.get(url).json()["config"]["digest"]
            assert httpx.get(f"{cache.url}/v2/team/kept/blobs/{config}").status_code == 200
            upstream.stop()

            def stale() -> bool:
                answer = httpx.get(url)
                assert answer.status_code == 200 and answer.content == body
                return "upstream down" in answer.headers["cache-status"]

            wait_for(stale, "the cached tag served stale")
            assert "serving team/kept:v1 as cached" in cache.log()
            assert httpx.get(f"{cache.url}/v2/team/kept/blobs/{config}").status_code == 200
            missing = httpx.get(f"{cache.url}/v2/team/kept/blobs/{other}")
            assert missing.status_code == 503 and errors(missing) == ["UNAVAILABLE"]
            tags = httpx.get(f"{cache.url}/v2/team/kept/tags/list")
            assert tags.json() == {"name": "team/kept", "tags": ["v1"]}
            assert "upstream down" in tags.headers["cache-status"]
            assert httpx.get(f"{cache.url}/v2/team/kept/manifests/{digest}").status_code == 200


def test_pushes_and_deletes_are_refused_with_unsupported(
    upstream: RunningServer, cache: RunningServer, mdl: MdlRunner, models_dir: Path, tmp_path: Path
) -> None:
    with httpx.Client(base_url=cache.url) as client:
        answers = [
            client.post("/v2/team/x/blobs/uploads/"),
            client.put("/v2/team/x/manifests/v1", content=b"{}"),
            client.delete(f"/v2/team/x/manifests/sha256:{'0' * 64}"),
            client.delete(f"/v2/team/x/blobs/sha256:{'0' * 64}"),
        ]
    for answer in answers:
        assert answer.status_code == 405 and errors(answer) == ["UNSUPPORTED"]
        assert "pull-through cache" in answer.json()["errors"][0]["message"]
    build_tiny(mdl, models_dir, tmp_path)
    refused = mdl("push", "tiny:1", f"{cache.host}/team/pushed:1", ok=False)
    assert refused.code != 0 and "UNSUPPORTED" in refused.err


def test_upstream_errors_are_oci_errors(
    upstream: RunningServer, cache: RunningServer, tmp_path: Path
) -> None:
    with httpx.Client(base_url=cache.url) as client:
        assert errors(client.get("/v2/team/none/manifests/v1")) == ["MANIFEST_UNKNOWN"]
        missing = f"sha256:{'1' * 64}"
        assert errors(client.get(f"/v2/team/none/blobs/{missing}")) == ["BLOB_UNKNOWN"]
        assert client.head(f"/v2/team/none/blobs/{missing}").status_code == 404
        assert errors(client.get("/v2/team/none/tags/list")) == ["NAME_UNKNOWN"]
    nobody = f"http://127.0.0.1:{free_port()}"
    with start_mdl_registry(tmp_path, "--proxy", nobody) as alone:
        answer = httpx.get(f"{alone.url}/v2/team/x/manifests/v1")
        assert answer.status_code == 503 and errors(answer) == ["UNAVAILABLE"]
        assert "cannot be reached" in answer.json()["errors"][0]["message"]


def test_tags_list_comes_from_upstream_sorted_and_catalog_from_the_cache(
    upstream: RunningServer, cache: RunningServer
) -> None:
    with httpx.Client(base_url=upstream.url, timeout=60) as client:
        for tag in ("a", "b", "c"):
            image(client, "team/listed", tag)
    with httpx.Client(base_url=cache.url) as client:
        assert client.get("/v2/team/listed/tags/list").json()["tags"] == ["a", "b", "c"]
        page = client.get("/v2/team/listed/tags/list", params={"n": 2})
        assert page.json()["tags"] == ["a", "b"]
        assert page.headers["link"].startswith("</v2/team/listed/tags/list?")
        assert errors(client.get("/v2/team/listed/tags/list?n=x")) == ["PAGINATION_NUMBER_INVALID"]
        assert "team/listed" not in client.get("/v2/_catalog").json()["repositories"]
        client.get("/v2/team/listed/manifests/a")
        assert "team/listed" in client.get("/v2/_catalog").json()["repositories"]


def test_upstream_behind_htpasswd(tmp_path: Path, mdl: MdlRunner, models_dir: Path) -> None:
    with start_distribution(tmp_path / "upstream", ("alice", "s3cret")) as upstream:
        with httpx.Client(base_url=upstream.url, auth=("alice", "s3cret"), timeout=60) as client:
            digest, _ = image(client, "team/private", "v1")
        (tmp_path / "password").write_text("s3cret\n")
        args = ("--proxy-user", "alice", "--proxy-password-file", str(tmp_path / "password"))
        with start_mdl_registry(tmp_path / "cache", "--proxy", upstream.url, *args) as cache:
            answer = httpx.get(f"{cache.url}/v2/team/private/manifests/v1")
            assert answer.status_code == 200 and answer.headers["docker-content-digest"] == digest
            layer = answer.json()["layers"][0]["digest"]
            assert httpx.get(f"{cache.url}/v2/team/private/blobs/{layer}").status_code == 200
            assert "s3cret" not in cache.log()
        with start_mdl_registry(tmp_path / "anonymous", "--proxy", upstream.url) as anonymous:
            denied = httpx.get(f"{anonymous.url}/v2/team/private/manifests/v1")
            assert denied.status_code == 403 and errors(denied) == ["DENIED"]
            assert "upstream" in denied.json()["errors"][0]["message"]


def test_upstream_with_a_token_flow(tmp_path: Path) -> None:
    """mdl's own registry in token mode speaks Docker Hub's flow: a 401 with a Bearer
    challenge, a token fetched from the realm with basic credentials."""
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"carol:{hashed}\n")
    (tmp_path / "password").write_text("pw")
    auth = ("--auth", "token", "--htpasswd", str(tmp_path / "htpasswd"))
    with start_mdl_registry(tmp_path / "upstream", *auth) as upstream:
        with httpx.Client(base_url=upstream.url, timeout=60) as client:
            token = client.get(
                "/token",
                params={"service": "mdl-registry", "scope": "repository:carol/m:pull,push"},
                auth=("carol", "pw"),
            ).json()["token"]
            client.headers["Authorization"] = f"Bearer {token}"
            digest, _ = image(client, "carol/m", "v1")
        args = ("--proxy-user", "carol", "--proxy-password-file", str(tmp_path / "password"))
        with start_mdl_registry(tmp_path / "cache", "--proxy", upstream.url, *args) as cache:
            answer = httpx.get(f"{cache.url}/v2/carol/m/manifests/v1")
            assert answer.status_code == 200 and answer.headers["docker-content-digest"] == digest
            for layer in answer.json()["layers"]:
                assert httpx.get(f"{cache.url}/v2/carol/m/blobs/{layer['digest']}").is_success


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--proxy", "ftp://example.com"), "want http(s)://HOST[:PORT]"),
        (("--proxy", "http://example.com/v2"), "no path"),
        (("--proxy", "http://example.com", "--proxy-user", "a"), "go together"),
        (("--proxy-user", "a"), "need --proxy URL"),
        (("--proxy", "http://example.com", "--proxy-ttl", "soon"), "invalid duration"),
        (("--proxy", "http://example.com", "--proxy-ttl", "0s"), "longer than 0"),
    ],
)
def test_bad_proxy_flags_are_refused(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    command = [sys.executable, "-m", "mdl.cli", "registry", "serve", "--root", str(tmp_path)]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_manifest_by_digest_and_an_index_child(
    upstream: RunningServer, cache: RunningServer
) -> None:
    with httpx.Client(base_url=upstream.url, timeout=60) as client:
        child, body = image(client, "team/indexed", None)
        index = encode(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [descriptor(OCI_MANIFEST, body)],
            }
        )
        pushed = push_manifest(client, "team/indexed", "multi", index, OCI_INDEX)
        assert pushed.status_code == 201, pushed.text
    with httpx.Client(base_url=cache.url) as client:
        top = client.get("/v2/team/indexed/manifests/multi")
        assert top.status_code == 200 and top.content == index
        assert client.get(f"/v2/team/indexed/manifests/{child}").content == body
        assert client.get(f"/v2/team/indexed/manifests/{child}").headers["cache-status"] == HIT
    assert len(upstream_requests(upstream, "GET", f"/team/indexed/manifests/{child}")) == 1


def test_ranges_of_an_uncached_blob_share_its_download(
    upstream: RunningServer, cache: RunningServer
) -> None:
    data = os.urandom(5 * MiB + 3)
    with httpx.Client(base_url=upstream.url, timeout=60) as client:
        digest = upload(client, "team/ranged", data)
    url = f"{cache.url}/v2/team/ranged/blobs/{digest}"
    spans = [(0, 99), (3 * MiB, 4 * MiB), (len(data) - 10, len(data) - 1)]

    def fetch(span: tuple[int, int]) -> httpx.Response:
        return httpx.get(url, headers={"Range": f"bytes={span[0]}-{span[1]}"}, timeout=60)

    with ThreadPoolExecutor(len(spans)) as pool:
        answers = list(pool.map(fetch, spans))
    for (first, last), answer in zip(spans, answers, strict=True):
        assert answer.status_code == 206 and answer.content == data[first : last + 1]
        assert answer.headers["content-range"] == f"bytes {first}-{last}/{len(data)}"
    wait_for(lambda: upstream_requests(upstream, "GET", digest) != [], "the upstream GET")
    assert len(upstream_requests(upstream, "GET", digest)) == 1
    past = httpx.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"


def test_a_blob_cached_for_one_repository_is_linked_for_another_that_has_it(
    upstream: RunningServer, cache: RunningServer
) -> None:
    data = os.urandom(1000)
    with httpx.Client(base_url=upstream.url, timeout=60) as client:
        digest = upload(client, "team/first", data)
        upload(client, "team/second", data)
        image(client, "team/third", "v1")  # the repository exists, without that blob
    assert httpx.get(f"{cache.url}/v2/team/first/blobs/{digest}").content == data
    second = httpx.get(f"{cache.url}/v2/team/second/blobs/{digest}")
    assert second.content == data and second.headers["cache-status"] == HIT
    assert upstream_requests(upstream, "GET", f"/team/second/blobs/{digest}") == []
    assert len(upstream_requests(upstream, "HEAD", f"/team/second/blobs/{digest}")) == 1
    third = httpx.get(f"{cache.url}/v2/team/third/blobs/{digest}")
    assert third.status_code == 404 and errors(third) == ["BLOB_UNKNOWN"]


def test_a_rate_limited_upstream_is_toomanyrequests_and_leaves_cached_tags_served(
    tmp_path: Path,
) -> None:
    manifest = proxy_peers.manifest()
    with start_standin() as standin:
        standin.manifests["v1"] = (manifest, OCI_MANIFEST, sha256(manifest))
        standin.refuse["/v2/team/limited/manifests/v2"] = 429
        args = ("--proxy", standin.url, "--proxy-ttl", "1s")
        with start_mdl_registry(tmp_path / "cache", *args) as cache:
            limited = httpx.get(f"{cache.url}/v2/team/limited/manifests/v2")
            assert limited.status_code == 429 and errors(limited) == ["TOOMANYREQUESTS"]
            assert limited.headers["retry-after"] == "7"
            url = f"{cache.url}/v2/team/limited/manifests/v1"
            assert httpx.get(url).content == manifest
            standin.refuse["/v2/team/limited/manifests/v1"] = 429
            wait_for(
                lambda: "upstream down" in httpx.get(url).headers["cache-status"],
                "the cached tag served while the upstream refuses",
            )


def test_serve_help_lists_the_proxy_flags() -> None:
    command = [sys.executable, "-m", "mdl.cli", "registry", "serve", "--help"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert all(flag in done.stdout for flag in ("--proxy ", "--proxy-user", "--proxy-ttl"))
