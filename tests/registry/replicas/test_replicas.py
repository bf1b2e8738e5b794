"""Replicas on one RGW bucket behind HAProxy: requests spread over them, eight clients pushing at
once lose nothing, a replica killed mid-chunk is taken out and the upload finishes on another,
a draining replica leaves without a failed request, and gc during pushes keeps what they use."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from haproxy import Balanced, replicas
from rgw import Rgw
from servers import wait_until

from mdl.client.connection import Connection
from mdl.client.remote import RemoteRepository
from mdl.client.upload import upload
from mdl.registry import paths
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest

MIB = 1024 * 1024


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True)
class Model:
    """A config, layers and the manifest naming them, as bytes."""

    blobs: tuple[bytes, ...]
    manifest: bytes

    @classmethod
    def make(cls, seed: int, *layer_sizes: int) -> Model:
        config = json.dumps({"seed": seed}).encode()
        layers = tuple(
            hashlib.sha256(f"{seed}/{i}".encode()).digest() * (size // 32)
            for i, size in enumerate(layer_sizes)
        )
        doc = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", b) for b in layers],
        }
        return cls((config, *layers), json.dumps(doc).encode())

    def push(self, balanced: Balanced, name: str, tag: str, scratch: Path) -> None:
        """With mdl's own client (chunked above ``MDL_CHUNK_SIZE``), the manifest last."""
        with Connection(balanced.host) as connection:
            repo = RemoteRepository(connection, name)
            for number, blob in enumerate(self.blobs):
                path = scratch / f"{name.replace('/', '_')}-{tag}-{number}"
                path.write_bytes(blob)
                desc = Descriptor("application/octet-stream", Digest.of(blob), len(blob))
                upload(repo, desc, path)
            repo.push_manifest(tag, self.manifest, mt.OCI_MANIFEST)

    def push_from_own_process(
        self, balanced: Balanced, name: str, tag: str, home: Path
    ) -> subprocess.Popen[bytes]:
        """``push`` as another client: its own process and ``MDL_HOME`` (mdl's client keeps
        its unfinished uploads there, per repository and digest)."""
        home.mkdir(parents=True)
        for number, blob in enumerate(self.blobs):
            (home / f"blob-{number}").write_bytes(blob)
        (home / "manifest.json").write_bytes(self.manifest)
        argv = [sys.executable, "-c", PUSH, balanced.host, name, tag, str(home)]
        env = {**os.environ, "MDL_HOME": str(home / "mdl-home")}
        return subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)

    def verify(self, http: httpx.Client, name: str, tag: str) -> None:
        """The tag names this manifest, and every blob it names has the right bytes."""
        got = http.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": mt.OCI_MANIFEST})
        assert got.status_code == 200 and got.content == self.manifest, (name, tag)
        for blob in self.blobs:
            answer = http.get(f"/v2/{name}/blobs/{sha256(blob)}")
            assert answer.status_code == 200 and sha256(answer.content) == sha256(blob)


PUSH = """
import sys
from pathlib import Path
from mdl.client.connection import Connection
from mdl.client.remote import RemoteRepository
from mdl.client.upload import upload
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
host, name, tag, home = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
with Connection(host) as connection:
    repo = RemoteRepository(connection, name)
    for path in sorted(home.glob("blob-*")):
        data = path.read_bytes()
        upload(repo, Descriptor("application/octet-stream", Digest.of(data), len(data)), path)
    repo.push_manifest(tag, (home / "manifest.json").read_bytes(), mt.OCI_MANIFEST)
"""


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


@pytest.fixture
def client_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mdl's client state in a fresh home; blobs over 4 MiB go in 4 MiB PATCHes."""
    monkeypatch.setenv("MDL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MDL_CHUNK_SIZE", str(4 * MIB))
    return tmp_path


@pytest.fixture
def pair(rgw: Rgw, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    """Two replicas of their own, for the tests that stop one."""
    with replicas(rgw, tmp_path_factory.mktemp("pair"), 2) as balanced:
        yield balanced


def gets_served(replica_url: str) -> int:
    text = httpx.get(f"{replica_url}/metrics").text
    prefix = 'mdl_registry_requests_total{method="GET",status="200"} '
    return sum(int(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_requests_are_spread_over_every_replica(replica_set: Balanced) -> None:
    before = [gets_served(replica.url) for replica in replica_set.replicas]
    with httpx.Client(base_url=replica_set.url) as http:
        for _ in range(12):
            assert http.get("/v2/").status_code == 200
    after = [gets_served(replica.url) for replica in replica_set.replicas]
    assert all(a - b >= 2 for a, b in zip(after, before, strict=True)), (before, after)


def test_eight_clients_pushing_at_once_lose_nothing(
    replica_set: Balanced, client_home: Path
) -> None:
    """Four push distinct models, four the same model under the same tag, all at once (each a
    process of its own), each blob of 10 MiB in three PATCHes that HAProxy spreads over the
    replicas."""
    distinct = [Model.make(seed, 10 * MIB, 4096) for seed in range(4)]
    same = Model.make(99, 10 * MIB, 4096)
    jobs = [(model, f"t/eight-{n}", "v1") for n, model in enumerate(distinct)]
    jobs += [(same, "t/eight-same", "v1")] * 4
    pushes = [
        model.push_from_own_process(replica_set, name, tag, client_home / f"client-{n}")
        for n, (model, name, tag) in enumerate(jobs)
    ]
    for push in pushes:
        _, stderr = push.communicate(timeout=300)
        assert push.returncode == 0, stderr.decode()
    with httpx.Client(base_url=replica_set.url, timeout=60) as http:
        for model, name, tag in jobs:
            model.verify(http, name, tag)
    for replica in replica_set.replicas:  # every replica sees the same registry
        with httpx.Client(base_url=replica.url, timeout=60) as http:
            same.verify(http, "t/eight-same", "v1")


def test_a_replica_killed_mid_chunk_is_taken_out_and_the_upload_finishes_on_another(
    pair: Balanced, rgw: Rgw
) -> None:
    chunk, data = 8 * MIB, os.urandom(32 * MIB)
    name = "t/killed"
    storage = rgw.driver(pair.bucket)
    pair.only("r1")
    with httpx.Client(base_url=pair.url, timeout=60) as http:
        location = http.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
        upload_id = location.rsplit("/", 1)[1]
        for first in (0, chunk):
            piece = data[first : first + chunk]
            headers = {"Content-Range": f"{first}-{first + chunk - 1}"}
            assert http.patch(location, content=piece, headers=headers).status_code == 202

        half_sent, go_on = threading.Event(), threading.Event()

        def body() -> Iterator[bytes]:
            yield data[2 * chunk : 2 * chunk + chunk // 2]
            half_sent.set()
            go_on.wait(30)
            yield data[2 * chunk + chunk // 2 : 3 * chunk]

        outcome: list[object] = []

        def third_chunk() -> None:
            headers = {
                "Content-Range": f"{2 * chunk}-{3 * chunk - 1}",
                "Content-Length": str(chunk),
            }
            try:
                outcome.append(httpx.patch(pair.url + location, content=body(), headers=headers))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        sender = threading.Thread(target=third_chunk)
        sender.start()
        assert half_sent.wait(30)
        lock = paths.upload_lock(name, upload_id)
        wait_until(lambda: storage.exists(lock), 10, "r1 holds the upload")
        pair.all_ready()
        pair.replicas[0].kill()  # SIGKILL, in the middle of the chunk
        go_on.set()
        sender.join(60)
        failed = outcome[0]
        assert isinstance(failed, httpx.HTTPError) or failed.status_code >= 500  # type: ignore[attr-defined]
        pair.wait_for("r1", "DOWN")

        status = http.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{2 * chunk - 1}"  # the cut chunk is dropped whole
        offset, waited = 2 * chunk, 0
        deadline = time.monotonic() + 60
        while offset < len(data):
            # An empty PATCH asks for the upload without a body the answer could cut short:
            # 409 while the dead replica's lock lives (its lease), with when to come back.
            probe = http.patch(location, content=b"")
            if probe.status_code == 409:
                wait = int(probe.headers["Retry-After"])
                assert 1 <= wait <= 15 and time.monotonic() < deadline
                time.sleep(wait)
                waited += wait
                continue
            assert probe.status_code == 202, probe.text
            piece = data[offset : offset + chunk]
            headers = {"Content-Range": f"{offset}-{offset + len(piece) - 1}"}
            answer = http.patch(location, content=piece, headers=headers)
            assert answer.status_code == 202, answer.text
            offset += len(piece)
        assert waited <= 16
        done = http.put(location, params={"digest": sha256(data)})
        assert done.status_code == 201, done.text
        fetched = http.get(f"/v2/{name}/blobs/{sha256(data)}")
        assert sha256(fetched.content) == sha256(data)
    assert pair.status()["r2"] == "UP"


def test_a_draining_replica_leaves_without_a_failed_request(pair: Balanced) -> None:
    blob = os.urandom(MIB)
    failures: list[str] = []
    served = 0
    stop = threading.Event()
    with httpx.Client(base_url=pair.url, timeout=30) as http:
        pushed = http.post(
            "/v2/t/drain/blobs/uploads/", params={"digest": sha256(blob)}, content=blob
        )
        assert pushed.status_code == 201

        def keep_pulling() -> None:
            nonlocal served
            with httpx.Client(base_url=pair.url, timeout=30) as puller:
                while not stop.is_set():
                    answer = puller.get(f"/v2/t/drain/blobs/{sha256(blob)}")
                    if answer.status_code != 200 or answer.content != blob:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                    served += 1

        puller = threading.Thread(target=keep_pulling)
        puller.start()
        try:
            leaving = pair.replicas[0]
            leaving.process.send_signal(signal.SIGTERM)
            pair.wait_for("r1", "DOWN", seconds=3)  # within the drain period
            assert leaving.process.wait(timeout=20) == 0
            before = served
            wait_until(lambda: served > before + 10, 20, "pulls after the replica left")
        finally:
            stop.set()
            puller.join(30)
    assert failures == []


def test_gc_during_pushes_removes_nothing_a_push_references(
    replica_set: Balanced, rgw: Rgw, client_home: Path
) -> None:
    grace = 6
    orphan = os.urandom(64 * 1024)
    with httpx.Client(base_url=replica_set.url, timeout=60) as http:
        answer = http.post(
            "/v2/t/gc-orphan/blobs/uploads/", params={"digest": sha256(orphan)}, content=orphan
        )
        assert answer.status_code == 201
    orphan_made = time.monotonic()
    pushed: list[tuple[Model, str, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def pusher(number: int) -> None:
        place = client_home / f"pusher-{number}"
        place.mkdir()
        round_ = 0
        while not stop.is_set():
            model = Model.make(1000 * number + round_, 256 * 1024, 5 * MIB)
            name, tag = f"t/gc-{number}", f"r{round_}"
            try:
                model.push(replica_set, name, tag, place)
            except BaseException as exc:
                errors.append(exc)
                return
            pushed.append((model, name, tag))
            round_ += 1

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(
            max(0.0, grace + 0.5 - (time.monotonic() - orphan_made))
        )  # the orphan's age is under test
        swept = subprocess.run(
            [
                sys.executable,
                "-m",
                "mdl.cli",
                "registry",
                "gc",
                "--json",
                "--root",
                str(client_home / "gc-root"),
                "--storage",
                f"s3://{replica_set.bucket}",
                "--s3-endpoint",
                rgw.endpoint,
                "--grace-period",
                str(grace),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        during = len(pushed)
        wait_until(lambda: len(pushed) > during, 60, "pushes after gc")
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    assert swept.returncode == 0, swept.stderr
    report = json.loads(swept.stdout)
    assert errors == []
    assert sha256(orphan) in report["blobs"] and during >= 1
    referenced = {sha256(blob) for model, _, _ in pushed for blob in model.blobs}
    assert referenced.isdisjoint(report["blobs"])
    with httpx.Client(base_url=replica_set.url, timeout=60) as http:
        for model, name, tag in pushed:
            model.verify(http, name, tag)
        assert http.head(f"/v2/t/gc-orphan/blobs/{sha256(orphan)}").status_code == 404
