"""``mdl push`` (the CLI) through HAProxy while the replica receiving its PATCH is killed with
SIGKILL: HAProxy takes the replica out, the push waits out the dead replica's lock (409
``UPLOAD_BUSY`` with ``Retry-After``) on the other one, continues from the offset the registry
confirms, and completes; every blob verifies by digest and the model pulls back the same."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_runner import MdlRunner
from ggufs import write_padded_llama
from haproxy import Balanced, replicas
from rgw import Rgw

from mdl.registry import paths
from mdl.spec import mediatypes as mt

MIB = 1024 * 1024
CHUNK = 8 * MIB
WEIGHTS_MIB = 48
NAME = "t/push-kill"
LAST_OFFSET = WEIGHTS_MIB * MIB - CHUNK


@pytest.fixture
def two_replicas(rgw: Rgw, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    """Two replicas of their own, one of them to be killed."""
    with replicas(rgw, tmp_path_factory.mktemp("push-kill"), 2) as balanced:
        yield balanced


@pytest.fixture
def model(mdl: MdlRunner, tmp_path: Path) -> str:
    """A local model 'big' whose weights (48 MiB and a little) go in seven 8 MiB PATCHes."""
    write_padded_llama(tmp_path / "big.gguf", WEIGHTS_MIB)
    (tmp_path / "Modelfile").write_text("FROM ./big.gguf\n")
    return mdl("build", "-q", "-t", "big", cwd=tmp_path).out.strip()


def _caught_mid_patch(balanced: Balanced, rgw: Rgw) -> bool:
    """Whether r1, frozen (SIGSTOP) while it holds an upload of ``NAME`` (its lock object
    exists: a request is writing to it), is in a PATCH after the first and before the last;
    r1 is left frozen if so, else let go on. Where the upload stands is asked of r2."""
    storage = rgw.driver(balanced.bucket)
    r1, watcher = balanced.replicas[0].process.pid, balanced.replicas[1].url
    for upload_id in storage.list(paths.uploads(NAME)):
        lock = paths.upload_lock(NAME, upload_id)
        if not storage.exists(lock):
            continue
        os.killpg(r1, signal.SIGSTOP)
        if storage.exists(lock) and CHUNK <= _received(watcher, upload_id) <= LAST_OFFSET:
            return True
        os.killpg(r1, signal.SIGCONT)
    return False


def _received(replica: str, upload_id: str) -> int:
    answer = httpx.get(f"{replica}/v2/{NAME}/blobs/uploads/{upload_id}")
    if answer.status_code != 204:
        return 0
    return int(answer.headers["Range"].rpartition("-")[2]) + 1


def _requests(replica: str, method: str, status: int) -> int:
    text = httpx.get(f"{replica}/metrics").text
    prefix = f'mdl_registry_requests_total{{method="{method}",status="{status}"}} '
    return sum(int(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_mdl_push_survives_the_replica_receiving_its_patch_killed(
    two_replicas: Balanced, rgw: Rgw, mdl: MdlRunner, model: str, tmp_path: Path
) -> None:
    balanced, ref = two_replicas, f"{two_replicas.host}/{NAME}:1"
    balanced.only("r1")  # the push starts on r1: the replica to kill is known
    out, err = tmp_path / "push.out", tmp_path / "push.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        pushing = subprocess.Popen(
            [sys.executable, "-m", "mdl.cli", "push", "big", ref, "--json"],
            env={**os.environ, "MDL_CHUNK_SIZE": str(CHUNK)},
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while not _caught_mid_patch(balanced, rgw):
            assert pushing.poll() is None, "the push ended before a PATCH could be cut"
            assert time.monotonic() < deadline, "no PATCH after the first was seen under way"
        balanced.all_ready()
        balanced.replicas[0].kill()  # SIGKILL, frozen in the middle of the PATCH
        assert pushing.wait(timeout=120) == 0, err.read_text()
    finally:
        if pushing.poll() is None:
            pushing.kill()
            pushing.wait()
    balanced.wait_for("r1", "DOWN")
    pushed = json.loads(out.read_text())
    assert pushed["digest"] == model
    survivor = balanced.replicas[1].url
    assert _requests(survivor, "PATCH", 409) >= 1  # it met the dead replica's lock, and waited

    with httpx.Client(base_url=balanced.url, timeout=60) as http:
        accept = ", ".join((mt.OCI_MANIFEST, mt.OCI_INDEX))
        got = http.get(f"/v2/{NAME}/manifests/1", headers={"Accept": accept})
        assert got.status_code == 200
        assert f"sha256:{hashlib.sha256(got.content).hexdigest()}" == model
        doc = json.loads(got.content)
        blobs = [doc["config"], *doc["layers"]]
        for blob in blobs:
            answer = http.get(f"/v2/{NAME}/blobs/{blob['digest']}")
            assert answer.status_code == 200 and len(answer.content) == blob["size"]
            assert f"sha256:{hashlib.sha256(answer.content).hexdigest()}" == blob["digest"]
    # Only what the registry confirmed counts as sent: a restart from zero would count twice.
    assert pushed["bytes_transferred"] <= sum(blob["size"] for blob in blobs) + len(got.content)

    home = {"MDL_HOME": str(tmp_path / "puller")}
    assert mdl("pull", ref, "-q", env=home).out.strip() == model
    pulled = mdl("show", ref, "--json", env=home).json()["files"]
    assert pulled == mdl("show", "big", "--json").json()["files"]
