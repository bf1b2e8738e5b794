"""The browser guard's decisions (pure) and the guard on a live ASGI app."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mdl.spec.browser import BrowserGuard, BrowserPolicy, refusal, split_host

LOCAL = BrowserPolicy.create("127.0.0.1", ["https://chat.example.com", "http://*.corp"])
EXPOSED = BrowserPolicy.create("0.0.0.0")


def scope(path: str = "/api/tags", method: str = "GET", **headers: str) -> dict[str, object]:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "headers": raw}  # fmt: skip


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:11434", "localhost", "LOCALHOST:1", "app.localhost:8080", "[::1]:11434",
     "127.5.6.7", "chat.example.com"],
)  # fmt: skip
def test_loopback_server_answers_local_hosts(host: str) -> None:
    assert LOCAL.host_allowed(host)


@pytest.mark.parametrize(
    "host",
    ["attacker.example", "attacker.example:11434", "localhost.attacker.example", "10.0.0.1",
     "127.0.0.1.nip.io", "", "a b", "x.corp"],
)  # fmt: skip
def test_loopback_server_refuses_other_hosts(host: str) -> None:
    assert not LOCAL.host_allowed(host)
    assert refusal(LOCAL, scope(host=host)) == (
        403, f"host {host!r} is not allowed; set MDL_ORIGINS to serve it"
    )  # fmt: skip


def test_exposed_server_answers_any_host() -> None:
    assert EXPOSED.host_allowed("models.example.org")
    assert refusal(EXPOSED, scope(host="models.example.org")) is None


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:3000", "https://127.0.0.1", "app://obsidian.md", "https://chat.example.com",
     "http://wiki.corp", "http://127.0.0.1:11434"],
)  # fmt: skip
def test_allowed_origins_pass(origin: str) -> None:
    assert refusal(LOCAL, scope(method="POST", host="127.0.0.1:11434", origin=origin)) is None


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost.evil.example"]
)
def test_other_origins_are_refused_before_routing(origin: str) -> None:
    refused = refusal(LOCAL, scope(method="POST", host="127.0.0.1", origin=origin))
    assert refused is not None
    assert refused[0] == 403
    assert repr(origin) in refused[1]


def test_same_origin_page_of_an_exposed_server_passes() -> None:
    request = scope(method="DELETE", host="models.example.org", origin="https://models.example.org")
    assert refusal(EXPOSED, request) is None
    request = scope(method="DELETE", host="models.example.org", origin="https://other.example.org")
    assert refusal(EXPOSED, request) is not None


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", "multipart/form-data; b=x",
                                          "application/x-www-form-urlencoded"])  # fmt: skip
def test_cross_site_simple_body_without_origin_is_refused(content_type: str) -> None:
    request = scope(method="POST", host="127.0.0.1", sec_fetch_site="cross-site",
                    content_type=content_type)  # fmt: skip
    assert refusal(LOCAL, request) == (403, "a cross-site request from a browser is not allowed")


def test_non_browser_clients_without_origin_pass() -> None:
    curl = scope(method="POST", host="127.0.0.1:11434",
                 content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert refusal(LOCAL, curl) is None
    assert refusal(LOCAL, {"type": "http", "method": "GET", "path": "/", "headers": []}) is None


@pytest.mark.parametrize("path", ["/v2/a/tags/list%0A", "/v2/a/tags/list\n", "/api/x%00", "/%7f"])
def test_control_characters_in_paths_are_refused(path: str) -> None:
    assert refusal(EXPOSED, scope(path=path)) == (400, "the path holds a control character")


@pytest.mark.parametrize(
    ("header", "host"),
    [("a.example:80", "a.example"), ("[::1]:1", "::1"), ("Local.Host.", "local.host"),
     ("a:b:c", None), ("", None)],
)  # fmt: skip
def test_split_host(header: str, host: str | None) -> None:
    assert split_host(header) == host


def test_guard_answers_refusals_itself_and_passes_the_rest() -> None:
    seen: list[str] = []

    async def handler(request: Request) -> PlainTextResponse:
        seen.append(request.method)
        return PlainTextResponse("ran")

    app = Starlette(routes=[Route("/x", handler, methods=["GET", "POST"])])
    guarded = BrowserGuard(app, LOCAL, lambda status, message: {"errors": [message]})
    with TestClient(guarded, base_url="http://127.0.0.1") as client:
        headers = {"origin": "https://evil.example", "content-type": "text/plain"}
        attack = client.post("/x", content="{}", headers=headers)
        rebinding = client.get("/x", headers={"host": "attacker.example"})
        ok = client.get("/x")
    assert (attack.status_code, rebinding.status_code, ok.text) == (403, 403, "ran")
    assert attack.json() == {"errors": ["origin 'https://evil.example' is not allowed; "
                                        "set MDL_ORIGINS to allow it"]}  # fmt: skip
    assert seen == ["GET"]
