"""Access control through real servers: basic auth, bearer tokens, the policy file, anonymous
pull, read-only mode; and the TLS and listen-address rules of ``mdl registry serve``."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from oci import errors, image, push_blob
from servers import RunningServer, self_signed, start_mdl_registry

USERS = {"alice": "alice-secret", "bob": "bob-secret", "eve": "eve-secret"}
"""eve is signed in but the policy grants her nothing."""
POLICY = """
[[allow]]
repositories = ["team/*"]
users = ["alice"]
actions = ["pull", "push", "delete"]

[[allow]]
repositories = ["team/*", "public/*"]
users = ["bob"]
actions = ["pull"]

[[allow]]
repositories = ["public/*"]
users = ["alice"]
actions = ["pull", "push"]
"""


def write_htpasswd(path: Path) -> Path:
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}" for u, p in USERS.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def auth_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("auth")
    (base / "policy.toml").write_text(POLICY)
    return write_htpasswd(base / "htpasswd"), base / "policy.toml"


@pytest.fixture(scope="module")
def basic(
    tmp_path_factory: pytest.TempPathFactory, auth_files: tuple[Path, Path]
) -> Iterator[RunningServer]:
    htpasswd, policy = auth_files
    root = tmp_path_factory.mktemp("basic")
    args = ("--htpasswd", str(htpasswd), "--policy", str(policy), "--anonymous-pull", "public")
    with start_mdl_registry(root, *args) as server:
        yield server


@pytest.fixture(scope="module")
def token(
    tmp_path_factory: pytest.TempPathFactory, auth_files: tuple[Path, Path]
) -> Iterator[RunningServer]:
    htpasswd, policy = auth_files
    root = tmp_path_factory.mktemp("token")
    args = ("--auth", "token", "--htpasswd", str(htpasswd), "--policy", str(policy))
    with start_mdl_registry(root, *args, "--anonymous-pull", "public") as server:
        yield server


def client(
    server: RunningServer, user: str | None = None, password: str | None = None
) -> httpx.Client:
    """A client signed in as ``user`` (trusting any certificate: tests use a self-signed one)."""
    auth = (user, password or USERS[user]) if user else None
    return httpx.Client(base_url=server.url, auth=auth, timeout=30, verify=False)


def test_basic_auth_challenges_without_credentials(basic: RunningServer) -> None:
    with client(basic) as http:
        response = http.get("/v2/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="mdl-registry"'
    assert errors(response) == ["UNAUTHORIZED"]


def test_basic_auth_refuses_a_wrong_password(basic: RunningServer) -> None:
    with client(basic, "alice", "wrong") as http:
        response = http.get("/v2/team/x/tags/list")
    assert response.status_code == 401
    assert errors(response) == ["UNAUTHORIZED"]


def test_basic_auth_lets_a_granted_user_push_and_pull(basic: RunningServer) -> None:
    with client(basic, "alice") as http:
        assert http.get("/v2/").status_code == 200
        dgst, body = image(http, "team/model", "v1")
        assert http.get("/v2/team/model/manifests/v1").content == body
    with client(basic, "bob") as http:
        assert http.get(f"/v2/team/model/manifests/{dgst}").status_code == 200


def test_policy_denies_with_403(basic: RunningServer) -> None:
    with client(basic, "bob") as http:
        response = http.post("/v2/team/model/blobs/uploads/")
        assert response.status_code == 403
        assert errors(response) == ["DENIED"]
        assert http.delete("/v2/team/model/manifests/v1").status_code == 403
        assert http.get("/v2/other/x/tags/list").status_code == 403


def test_anonymous_pull_of_a_chosen_namespace(basic: RunningServer) -> None:
    with client(basic, "alice") as http:
        image(http, "public/model", "v1")
    with client(basic) as http:
        assert http.get("/v2/public/model/manifests/v1").status_code == 200
        assert http.get("/v2/public/model/tags/list").json()["tags"] == ["v1"]
        push = http.post("/v2/public/model/blobs/uploads/")
        assert push.status_code == 401
        assert push.headers["www-authenticate"].startswith("Basic ")
        assert http.get("/v2/team/model/tags/list").status_code == 401


def test_catalog_needs_a_user_and_shows_what_they_may_pull(basic: RunningServer) -> None:
    with client(basic, "alice") as http:
        image(http, "team/catalogued", "v1", layers=0)
    with client(basic) as http:
        assert http.get("/v2/_catalog").status_code == 401
    with client(basic, "bob") as http:
        repositories = http.get("/v2/_catalog").json()["repositories"]
    assert "team/catalogued" in repositories
    assert all(name.startswith(("team/", "public/")) for name in repositories)


def test_oras_with_basic_credentials(
    basic: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oras.client

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "f.txt").write_text("x")
    oras_client = oras.client.OrasClient(hostname=basic.host, insecure=True, auth_backend="basic")
    oras_client.auth.set_basic_auth("alice", USERS["alice"])
    response = oras_client.push(files=["f.txt"], target=f"{basic.host}/team/oras:v1", quiet=True)
    assert response.status_code == 201
    assert oras_client.get_tags(f"{basic.host}/team/oras") == ["v1"]


def challenge(response: httpx.Response) -> dict[str, str]:
    scheme, _, params = response.headers["www-authenticate"].partition(" ")
    assert scheme == "Bearer"
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def get_token(server: RunningServer, scope: str, user: str | None = None) -> str:
    with client(server, user) as http:
        response = http.get("/token", params={"service": "mdl-registry", "scope": scope})
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 300
    assert body["access_token"] == body["token"]
    return str(body["token"])


def test_token_mode_challenges_with_realm_service_and_scope(token: RunningServer) -> None:
    with client(token) as http:
        base = http.get("/v2/")
        assert base.status_code == 401
        assert challenge(base) == {"realm": f"{token.url}/token", "service": "mdl-registry"}
        response = http.post("/v2/team/m/blobs/uploads/")
    assert response.status_code == 401
    assert errors(response) == ["UNAUTHORIZED"]
    assert challenge(response)["scope"] == "repository:team/m:pull,push"


def test_token_flow_push_and_pull(token: RunningServer) -> None:
    bearer = get_token(token, "repository:team/m:pull,push", "alice")
    with httpx.Client(base_url=token.url, headers={"Authorization": f"Bearer {bearer}"}) as http:
        assert http.get("/v2/").status_code == 200
        dgst, body = image(http, "team/m", "v1")
        assert http.get("/v2/team/m/manifests/v1").content == body
        denied_elsewhere = http.get("/v2/team/other/tags/list")
        assert denied_elsewhere.status_code == 401
        assert challenge(denied_elsewhere)["error"] == "insufficient_scope"
        assert dgst


def test_token_grants_only_what_the_policy_allows(token: RunningServer) -> None:
    bearer = get_token(token, "repository:team/m:pull,push,delete", "bob")
    with httpx.Client(base_url=token.url, headers={"Authorization": f"Bearer {bearer}"}) as http:
        response = http.post("/v2/team/m/blobs/uploads/")
        assert response.status_code == 403
        assert errors(response) == ["DENIED"]
        assert http.get("/v2/team/m/tags/list").status_code in (200, 404)


def test_token_scope_not_requested_gets_insufficient_scope(token: RunningServer) -> None:
    bearer = get_token(token, "repository:team/m:pull", "alice")
    with httpx.Client(base_url=token.url, headers={"Authorization": f"Bearer {bearer}"}) as http:
        response = http.post("/v2/team/m/blobs/uploads/")
    assert response.status_code == 401
    assert challenge(response)["error"] == "insufficient_scope"


def test_token_endpoint_refuses_a_wrong_password(token: RunningServer) -> None:
    with client(token, "alice", "wrong") as http:
        response = http.get("/token", params={"scope": "repository:team/m:pull"})
    assert response.status_code == 401
    assert errors(response) == ["UNAUTHORIZED"]


def test_anonymous_token_pulls_public_only(token: RunningServer) -> None:
    alice = get_token(token, "repository:public/m:pull,push", "alice")
    with httpx.Client(base_url=token.url, headers={"Authorization": f"Bearer {alice}"}) as http:
        push_blob(http, "public/m", b"public bytes")
    bearer = get_token(token, "repository:public/m:pull,push repository:team/m:pull")
    with httpx.Client(base_url=token.url, headers={"Authorization": f"Bearer {bearer}"}) as http:
        from oci import digest

        assert http.get(f"/v2/public/m/blobs/{digest(b'public bytes')}").status_code == 200
        assert http.post("/v2/public/m/blobs/uploads/").status_code == 401
        assert http.get("/v2/team/m/tags/list").status_code == 401


def test_forged_or_tampered_tokens_are_refused(token: RunningServer) -> None:
    bearer = get_token(token, "repository:team/m:pull", "alice")
    header, claims, signature = bearer.split(".")
    tampered = f"{header}.{claims}.{signature[:-4]}AAAA"
    for value in (tampered, "not-a-token"):
        with httpx.Client(base_url=token.url, headers={"Authorization": f"Bearer {value}"}) as h:
            response = h.get("/v2/team/m/tags/list")
        assert response.status_code == 401
        assert challenge(response)["error"] == "invalid_token"


def test_skopeo_through_the_token_flow(token: RunningServer, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    from test_registry_clients import write_layout

    write_layout(layout, artifact_type=True)
    ref = f"docker://{token.host}/team/skopeo:v1"
    base = ["skopeo", "--insecure-policy", "copy"]
    ok = subprocess.run(
        [
            *base,
            "--dest-tls-verify=false",
            "--dest-creds",
            f"alice:{USERS['alice']}",
            f"oci:{layout}:v1",
            ref,
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    denied = subprocess.run(
        [
            *base,
            "--dest-tls-verify=false",
            "--dest-creds",
            f"bob:{USERS['bob']}",
            f"oci:{layout}:v1",
            ref.replace("v1", "v2"),
        ],
        capture_output=True,
        text=True,
    )
    assert denied.returncode != 0
    assert "denied" in denied.stderr.lower()


def test_read_only_refuses_pushes_and_deletes(tmp_path: Path) -> None:
    with start_mdl_registry(tmp_path / "rw") as server, httpx.Client(base_url=server.url) as http:
        dgst, _ = image(http, "ro/m", "v1")
    read_only = start_mdl_registry(tmp_path / "rw", "--read-only")
    with read_only as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/v2/ro/m/manifests/v1").status_code == 200
        for method, path in (
            ("POST", "/v2/ro/m/blobs/uploads/"),
            ("PUT", "/v2/ro/m/manifests/v2"),
            ("DELETE", f"/v2/ro/m/manifests/{dgst}"),
        ):
            response = http.request(method, path)
            assert response.status_code == 405
            assert errors(response) == ["UNSUPPORTED"]
            assert "read-only" in response.json()["errors"][0]["message"]


def test_tls_with_token_auth(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    htpasswd = write_htpasswd(tmp_path / "htpasswd")
    args = ("--tls-cert", str(cert), "--tls-key", str(key), "--auth", "token")
    with start_mdl_registry(tmp_path / "root", *args, "--htpasswd", str(htpasswd)) as server:
        assert server.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=server.url, verify=trusted) as http:
            assert challenge(http.get("/v2/"))["realm"] == f"{server.url}/token"
        bearer = get_token(server, "repository:team/tls:pull,push", "alice")
        headers = {"Authorization": f"Bearer {bearer}"}
        with httpx.Client(base_url=server.url, verify=trusted, headers=headers) as http:
            push_blob(http, "team/tls", b"secure")
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url.replace("https", "http") + "/v2/", timeout=5)


def serve_fails(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mdl.cli", "registry", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )


def test_refuses_plain_http_on_a_non_loopback_address(tmp_path: Path) -> None:
    result = serve_fails("--host", "0.0.0.0", "--port", "1", "--root", str(tmp_path))
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr
    assert "--insecure" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--auth", "basic"), "--htpasswd"),
        (("--auth", "magic"), "--auth must be"),
        (("--tls-cert", "x.pem"), "go together"),
        (("--anonymous-pull", "public"), "need --htpasswd"),
        (("--htpasswd", "/nonexistent/htpasswd"), "cannot read"),
    ],
)
def test_bad_serve_options_are_clear_errors(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = serve_fails("--port", "1", "--root", str(tmp_path), *args)
    assert result.returncode == 2
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr


def test_a_bad_policy_names_the_problem(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd")
    policy = tmp_path / "policy.toml"
    policy.write_text('[[allow]]\nrepositories = ["a"]\nusers = ["x"]\nactions = ["fly"]\n')
    result = serve_fails(
        "--port", "1", "--root", str(tmp_path), "--htpasswd", str(htpasswd), "--policy", str(policy)
    )
    assert result.returncode == 2
    assert "unknown actions ['fly']" in result.stderr


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%00", "%09", "%7F"])
def test_a_control_character_after_a_path_is_no_way_into_a_private_repository(
    basic: RunningServer, suffix: str
) -> None:
    with client(basic, "alice") as http:
        image(http, "team/private", "secret-tag", layers=0)
    for user in ("eve", None):
        with client(basic, user) as http:
            assert http.get("/v2/team/private/tags/list").status_code in (401, 403)
            response = http.get(f"/v2/team/private/tags/list{suffix}")
        assert response.status_code == 400, response.text
        assert errors(response) == ["UNSUPPORTED"]
        assert "secret-tag" not in response.text


def test_a_path_the_router_does_not_parse_is_denied(basic: RunningServer) -> None:
    """Not 'any signed-in caller' (the old fallback): a path no route parses needs a right
    nobody has."""
    with client(basic, "alice") as http:
        for path in ("/v2/team/private/nothing-here", "/v2/team/private/tags/list/x", "/other"):
            response = http.get(path)
            assert response.status_code == 403, (path, response.text)
            assert errors(response) == ["DENIED"]
    with client(basic) as http:
        assert http.get("/v2/team/private/nothing-here").status_code == 401


def test_a_name_with_quotes_adds_nothing_to_the_challenge(token: RunningServer) -> None:
    injected = "/v2/team%2Fm%22,service%3D%22evil/tags/list"
    headers = {"Authorization": "Bearer not-a-token"}
    with httpx.Client(base_url=token.url, headers=headers) as http:
        response = http.get(injected)
        assert response.status_code == 400, response.headers
        assert errors(response) == ["NAME_INVALID"]
        assert "evil" not in response.headers.get("www-authenticate", "")
        forged_host = http.get("/v2/team/m/tags/list", headers={"Host": 'h",error="evil'})
        assert forged_host.status_code == 400
        assert errors(forged_host) == ["UNSUPPORTED"]
        assert "evil" not in forged_host.headers.get("www-authenticate", "")


def test_metrics_need_a_signed_in_user_when_auth_is_on(basic: RunningServer) -> None:
    with client(basic) as http:
        anonymous = http.get("/metrics")
    assert anonymous.status_code == 401
    assert errors(anonymous) == ["UNAUTHORIZED"]
    with client(basic, "bob") as http:
        signed_in = http.get("/metrics")
    assert signed_in.status_code == 200
    assert "mdl_registry_requests_total" in signed_in.text


def test_a_user_named_anonymous_is_refused(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"anonymous:{hashed}\n")
    result = serve_fails(
        "--port", "1", "--root", str(tmp_path), "--htpasswd", f"{tmp_path}/htpasswd"
    )
    assert result.returncode == 2
    assert "'anonymous' is reserved" in result.stderr


def test_a_password_over_72_bytes_logs_in_as_htpasswd_hashed_it(tmp_path: Path) -> None:
    """bcrypt uses the first 72 bytes; ``htpasswd -B`` hashes those, python's bcrypt 5 raises on
    longer input, so such users could never log in."""
    password = "p" * 72 + "-and-more-that-bcrypt-never-reads"
    line = subprocess.run(
        ["htpasswd", "-Bbn", "-C", "4", "carol", password],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (tmp_path / "htpasswd").write_text(line + "\n")
    with start_mdl_registry(tmp_path / "root", "--htpasswd", str(tmp_path / "htpasswd")) as server:
        for attempt in (password, password[:72], password[:72] + "other tail"):
            with httpx.Client(base_url=server.url, auth=("carol", attempt)) as http:
                assert http.get("/v2/").status_code == 200, attempt
        with httpx.Client(base_url=server.url, auth=("carol", password[:71])) as http:
            assert http.get("/v2/").status_code == 401


def login_seconds(http: httpx.Client, user: str) -> float:
    started = time.perf_counter()
    assert http.get("/v2/", auth=(user, "wrong password")).status_code == 401
    return time.perf_counter() - started


def test_an_unknown_user_takes_as_long_as_a_wrong_password(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(10)).decode()  # ~50 ms a check
    (tmp_path / "htpasswd").write_text(f"dora:{hashed}\n")
    server = start_mdl_registry(tmp_path / "root", "--htpasswd", str(tmp_path / "htpasswd"))
    known, unknown = [], []
    with server, httpx.Client(base_url=server.url) as http:
        for _ in range(4):  # interleaved, so both see the same load; 8 failures stay unthrottled
            known.append(login_seconds(http, "dora"))
            unknown.append(login_seconds(http, "nobody"))
    assert sorted(unknown)[2] > 0.6 * sorted(known)[1], (unknown, known)


def test_failed_logins_are_rate_limited_per_client(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd")
    args = ("--auth", "token", "--htpasswd", str(htpasswd))
    with start_mdl_registry(tmp_path / "root", *args) as server:
        with client(server, "alice", "wrong") as http:
            for _ in range(10):
                assert http.get("/v2/").status_code == 401
            limited = http.get("/v2/")
        assert limited.status_code == 429
        assert errors(limited) == ["TOOMANYREQUESTS"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        with client(server, "alice") as http:
            assert http.get("/token", params={"scope": "repository:a:pull"}).status_code == 429
            assert http.get("/v2/").status_code == 429
