"""Two ``mdl registry serve`` processes on one root share upload sessions without letting one
digest name other bytes: an upload is held by one request at a time across processes, a
commit re-hashes what its own process did not hash, and only verified bytes become a blob."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from oci import digest, errors, push_blob
from servers import RunningServer, start_mdl_registry

REPO = "t/poison"
SIZE = 4096


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer, Path]]:
    root = tmp_path / "root"
    with (
        start_mdl_registry(root, "--no-access-log") as first,
        start_mdl_registry(root, "--no-access-log") as second,
    ):
        yield first, second, root


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def upload_data(root: Path, location: str) -> Path:
    return root / "repositories" / REPO / "_uploads" / location.rsplit("/", 1)[1] / "data"


def test_interleaved_patches_on_two_processes_cannot_poison_a_digest(
    pair: tuple[RunningServer, RunningServer, Path],
) -> None:
    """B opens a chunk and stalls; A appends the good bytes meanwhile; B's chunk fails (cut
    back to where B began), B appends other bytes of the same length; A commits the good
    digest. Before the fix A trusted its running hash on the size alone and published B's bytes
    under the good digest, and every later genuine push of it linked to them."""
    a, b, root = pair
    good, evil = os.urandom(SIZE), os.urandom(SIZE)
    release = threading.Event()

    def stalled_body() -> Iterator[bytes]:
        yield b"x"
        release.wait(30)
        raise ConnectionAbortedError("the client gives up half-way")

    def stalled_chunk(location: str) -> None:
        headers = {"Content-Range": f"0-{2 * SIZE - 1}", "Content-Length": str(2 * SIZE)}
        with (
            httpx.Client(base_url=b.url, timeout=60) as client,
            contextlib.suppress(httpx.HTTPError, ConnectionAbortedError),
        ):
            client.patch(location, content=stalled_body(), headers=headers)

    with (
        httpx.Client(base_url=a.url, timeout=60) as on_a,
        httpx.Client(base_url=b.url, timeout=60) as on_b,
    ):
        location = on_a.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
        data = upload_data(root, location)
        stalled = threading.Thread(target=stalled_chunk, args=(location,))
        stalled.start()
        try:
            wait_until(data.exists, "B has opened its chunk")
            busy = on_a.patch(location, content=good, headers={"Content-Range": f"0-{SIZE - 1}"})
        finally:
            release.set()
            stalled.join()
        wait_until(lambda: data.stat().st_size == 0, "B's failed chunk is cut back")

        def append_evil() -> bool:
            response = on_b.patch(location, content=evil)
            assert response.status_code in (202, 409), response.text
            return response.status_code == 202

        wait_until(append_evil, "B lets go of the upload")
        commit = on_a.put(location, params={"digest": digest(good)})
        assert commit.status_code == 400, commit.text
        assert errors(commit) == ["DIGEST_INVALID"]
        for client in (on_a, on_b):
            blob = client.get(f"/v2/{REPO}/blobs/{digest(good)}")
            assert blob.status_code == 404 or blob.content == good
        push_blob(on_b, REPO, good)
        assert on_a.get(f"/v2/{REPO}/blobs/{digest(good)}").content == good
    assert busy.status_code == 409, busy.text  # A could not write while B held the upload
    assert errors(busy) == ["BLOB_UPLOAD_INVALID"]


def test_a_chunked_upload_may_move_between_processes(
    pair: tuple[RunningServer, RunningServer, Path],
) -> None:
    a, b, _ = pair
    chunks = [os.urandom(1000) for _ in range(4)]
    whole = b"".join(chunks)
    with httpx.Client(base_url=a.url) as on_a, httpx.Client(base_url=b.url) as on_b:
        location = on_a.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]
        offset = 0
        for index, chunk in enumerate(chunks):
            client = (on_a, on_b)[index % 2]
            headers = {"Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
            response = client.patch(location, content=chunk, headers=headers)
            assert response.status_code == 202, response.text
            offset += len(chunk)
        assert on_a.put(location, params={"digest": digest(whole)}).status_code == 201
        assert on_b.get(f"/v2/{REPO}/blobs/{digest(whole)}").content == whole


def test_an_existing_blob_is_not_trusted_on_its_name(
    pair: tuple[RunningServer, RunningServer, Path],
) -> None:
    """Bytes already stored under a digest (by an older version, or by hand) are replaced by a
    verified upload of that digest, never linked as they are."""
    a, b, root = pair
    good = os.urandom(SIZE)
    dgst = digest(good)
    hex_ = dgst.split(":")[1]
    planted = root / "blobs" / "sha256" / hex_[:2] / hex_
    planted.parent.mkdir(parents=True)
    planted.write_bytes(os.urandom(SIZE))
    with httpx.Client(base_url=a.url) as on_a, httpx.Client(base_url=b.url) as on_b:
        push_blob(on_a, REPO, good)
        assert on_b.get(f"/v2/{REPO}/blobs/{dgst}").content == good


def test_a_chunked_upload_through_two_workers(tmp_path: Path) -> None:
    """With ``--workers 2`` each request may land on either worker (a fresh connection each)."""
    chunks = [os.urandom(500) for _ in range(8)]
    whole = b"".join(chunks)
    with start_mdl_registry(tmp_path / "root", "--workers", "2", "--no-access-log") as server:
        location = httpx.post(f"{server.url}/v2/{REPO}/blobs/uploads/").headers["location"]
        offset = 0
        for chunk in chunks:
            headers = {"Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
            response = httpx.patch(server.url + location, content=chunk, headers=headers)
            assert response.status_code == 202, response.text
            offset += len(chunk)
        done = httpx.put(server.url + location, params={"digest": digest(whole)})
        assert done.status_code == 201, done.text
        assert httpx.get(f"{server.url}/v2/{REPO}/blobs/{digest(whole)}").content == whole
