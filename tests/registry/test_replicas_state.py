"""Upload state shared by replicas: a hash saved in storage, signed with ``--secret-file``, is
carried on by another process holding the same secret, and by nobody else."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from servers import RunningServer, start_mdl_registry, wait_until

from mdl.registry import hashstate, secret

CHUNK = 64 * 1024


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_a_saved_hash_state_goes_on_where_it_stopped(algorithm: str) -> None:
    assert hashstate.AVAILABLE  # OpenSSL's contexts on this machine: the feature is on
    data = os.urandom(3 * CHUNK + 17)
    first = hashstate.new(algorithm)
    first.update(data[:CHUNK])
    second = hashstate.restore(algorithm, first.state())
    assert second is not None
    second.update(bytearray(data[CHUNK:]))
    assert second.hexdigest() == hashlib.new(algorithm, data).hexdigest()
    assert first.hexdigest() == hashlib.new(algorithm, data[:CHUNK]).hexdigest()  # unchanged


def test_a_state_of_the_wrong_length_is_not_restored() -> None:
    assert hashstate.restore("sha256", b"\0" * 10) is None
    assert hashstate.restore("md5", b"\0" * 112) is None


def test_the_secret_is_made_once_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "s" / "secret"
    made = secret.load_or_create(path)
    assert secret.load_or_create(path) == made and path.stat().st_mode & 0o777 == 0o600
    assert secret.verify(made, secret.sign(made, "a", "b"), "a", "b")
    assert not secret.verify(made, secret.sign(made, "a", "b"), "a", "c")
    assert not secret.verify(b"x" * 16, secret.sign(made, "a"), "a")
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(ValueError, match="at least 16"):
        secret.load_or_create(tmp_path / "short")


def rehashes(server: RunningServer) -> int:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("mdl_registry_upload_rehashes_total "):
            return int(line.split()[1])
    raise AssertionError("mdl_registry_upload_rehashes_total is not in /metrics")


def push_across(servers: list[RunningServer], name: str, data: bytes) -> str:
    """A chunked upload whose every request goes to the next server in turn."""
    location = httpx.post(f"{servers[0].url}/v2/{name}/blobs/uploads/").headers["Location"]
    for number, first in enumerate(range(0, len(data), CHUNK)):
        piece = data[first : first + CHUNK]
        server = servers[(number + 1) % len(servers)]
        headers = {"Content-Range": f"{first}-{first + len(piece) - 1}"}
        answer = httpx.patch(server.url + location, content=piece, headers=headers)
        assert answer.status_code == 202, answer.text
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    closing = servers[(len(data) // CHUNK + 2) % len(servers)]
    done = httpx.put(closing.url + location, params={"digest": digest})
    assert done.status_code == 201, done.text
    return digest


@pytest.mark.parametrize("shared", [True, False], ids=["same-secret", "other-secrets"])
def test_replicas_with_one_secret_never_read_an_upload_back(tmp_path: Path, shared: bool) -> None:
    root = tmp_path / "root"
    files = [tmp_path / ("secret" if shared else f"secret-{i}") for i in range(2)]
    data = os.urandom(5 * CHUNK + 100)
    with (
        start_mdl_registry(root, "--secret-file", str(files[0])) as one,
        start_mdl_registry(root, "--secret-file", str(files[1])) as two,
    ):
        digest = push_across([one, two], "t/across", data)
        assert httpx.get(f"{two.url}/v2/t/across/blobs/{digest}").content == data
        assert rehashes(one) + rehashes(two) == (0 if shared else 1)


def test_a_state_changed_in_storage_is_not_trusted(tmp_path: Path) -> None:
    """A hash state swapped in storage for that of other bytes fails its signature: the commit
    re-reads the data and refuses the digest of those other bytes."""
    root, file = tmp_path / "root", tmp_path / "secret"
    with (
        start_mdl_registry(root, "--secret-file", str(file)) as one,
        start_mdl_registry(root, "--secret-file", str(file)) as two,
    ):
        location = httpx.post(f"{one.url}/v2/t/forged/blobs/uploads/").headers["Location"]
        assert httpx.patch(one.url + location, content=b"a" * 100).status_code == 202
        state_file = root / "repositories/t/forged/_uploads" / location.rsplit("/", 1)[1] / "state"
        state = json.loads(state_file.read_text())
        forged = hashstate.new("sha256")
        forged.update(b"b" * 100)
        state["hash"]["state"] = base64.b64encode(forged.state()).decode()
        state_file.write_text(json.dumps(state))
        wrong = f"sha256:{hashlib.sha256(b'b' * 100).hexdigest()}"
        refused = httpx.put(two.url + location, params={"digest": wrong})
        assert refused.status_code == 400
        assert rehashes(two) == 1


def test_sigterm_fails_the_health_check_first_then_stops(tmp_path: Path) -> None:
    server = start_mdl_registry(tmp_path / "root", "--drain", "3", "--workers", "2")
    with server, httpx.Client(base_url=server.url) as http:
        assert http.get("/v2/").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: http.get("/v2/").status_code == 503, 2, "draining")
        for _ in range(4):  # both workers: the health check fails, the rest is served
            drained = http.get("/v2/")
            assert drained.status_code == 503
            assert drained.json()["errors"][0]["code"] == "UNAVAILABLE"
            assert http.get("/healthz").status_code == 503
            assert http.get("/v2/_catalog").status_code == 200
        assert server.process.wait(timeout=15) == 0
