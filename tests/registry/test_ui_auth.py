"""The registry browser on registries with auth, and how it is served: an anonymous browser sees
exactly what anonymous pull allows (checked in chromium and through the JSON endpoints, against
``/v2/``); a signed-in user sees what the policy lets them pull; a pasted bearer token sees its
grants; deleting a tag needs the delete right and the page's own header (CSRF); no cookies, no
credentials in URLs; content types, caching, gzip and CSP; ``--no-ui`` turns it all off."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from browsing import CSP, Opened, launch, screenshot_dir
from oci import descriptor, encode, errors, image, push_blob, push_manifest
from playwright.sync_api import Browser, Page, expect
from servers import RunningServer, start_mdl_registry

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
POLICY = """
[[allow]]
repositories = ["team/*", "public/*", "secret/*"]
users = ["alice"]
actions = ["pull", "push", "delete"]

[[allow]]
repositories = ["team/*"]
users = ["bob"]
actions = ["pull"]
"""
EVERYTHING = ["public/open", "secret/hidden", "team/one", "team/two"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as browser:
        yield browser


def auth_args(base: Path) -> list[str]:
    htpasswd = base / "htpasswd"
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}" for u, p in USERS.items()
    ]
    htpasswd.write_text("\n".join(lines) + "\n")
    (base / "policy.toml").write_text(POLICY)
    return ["--htpasswd", str(htpasswd), "--policy", str(base / "policy.toml")]


def fill(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, auth=("alice", USERS["alice"]), timeout=30) as http:
        for name in EVERYTHING:
            image(http, name, "latest", layers=1)
        image(http, "team/one", "old", layers=1)


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("ui-basic")
    args = [*auth_args(base), "--anonymous-pull", "public"]
    with start_mdl_registry(base / "root", *args) as server:
        fill(server)
        yield server


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("ui-token")
    args = ["--auth", "token", *auth_args(base), "--anonymous-pull", "public"]
    with start_mdl_registry(base / "root", *args) as server:
        fill(server)
        yield server


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = screenshot_dir(tmp_path_factory.mktemp("ui-auth-screenshots"))
    print(f"\nscreenshots: {path}")
    return path


def open_ui(browser: Browser, url: str) -> Opened:
    opened = Opened(browser, url + "/ui")
    expect(opened.page.locator("body[data-ready=true]")).to_have_count(1)
    return opened


def names(server: RunningServer, auth: tuple[str, str] | None = None, **headers: str) -> list[str]:
    answer = httpx.get(f"{server.url}/ui/api/catalog", auth=auth, headers=headers)
    assert answer.status_code == 200, answer.text
    return [row["name"] for row in answer.json()["repositories"]]


def listed(page: Page) -> list[str]:
    return page.locator("#catalog tbody tr").evaluate_all("rows => rows.map(r => r.dataset.name)")


def sign_in(page: Page, user: str, password: str) -> None:
    page.locator("#sign-in").click()
    page.locator("#login-user").fill(user)
    page.locator("#login-password").fill(password)
    page.locator("#login-submit").click()


def test_an_anonymous_browser_sees_only_what_anonymous_pull_gets(
    browser: Browser, basic: RunningServer, shots: Path
) -> None:
    for name in EVERYTHING:  # the ground truth: what an anonymous pull may fetch
        pulled = httpx.get(f"{basic.url}/v2/{name}/manifests/latest")
        assert pulled.status_code == (200 if name == "public/open" else 401), name
    assert names(basic) == ["public/open"]
    for path in ("repository?name=team/one", "manifest?name=secret/hidden&ref=latest"):
        answer = httpx.get(f"{basic.url}/ui/api/{path}")
        assert answer.status_code == 404 and errors(answer) == ["NAME_UNKNOWN"], path
    assert httpx.get(f"{basic.url}/ui/api/manifest?name=public/open&ref=latest").status_code == 200

    opened = open_ui(browser, basic.url)
    page = opened.page
    expect(page.locator("#count")).to_have_text("1 repository")
    assert listed(page) == ["public/open"]
    expect(page.locator("#user")).to_have_text("Anonymous")
    expect(page.locator("#sign-in")).to_be_visible()
    page.goto(basic.url + "/ui#/repo?name=team/one")
    expect(page.locator("#error")).to_contain_text("repository name not known")
    page.goto(basic.url + "/ui#/")
    page.locator("#sign-in").click()
    page.screenshot(path=shots / "sign-in.png", full_page=True)
    opened.close(allowed=("404",))


def test_a_signed_in_user_sees_what_the_policy_lets_them_pull(
    browser: Browser, basic: RunningServer, shots: Path
) -> None:
    assert names(basic, ("bob", USERS["bob"])) == ["public/open", "team/one", "team/two"]
    assert names(basic, ("alice", USERS["alice"])) == EVERYTHING
    opened = open_ui(browser, basic.url)
    page = opened.page
    sign_in(page, "bob", "wrong")
    expect(page.locator("#login-error")).to_contain_text("invalid username or password")
    assert listed(page) == ["public/open"]
    page.locator("#login-password").fill(USERS["bob"])
    page.locator("#login-submit").click()
    expect(page.locator("#user")).to_have_text("Signed in as bob")
    expect(page.locator("#count")).to_have_text("3 repositories")
    assert listed(page) == ["public/open", "team/one", "team/two"]
    page.screenshot(path=shots / "signed-in.png", full_page=True)

    page.reload()  # the tab keeps the login (sessionStorage), and nothing else does
    expect(page.locator("#count")).to_have_text("3 repositories")
    page.goto(basic.url + "/ui#/repo?name=team/one")
    expect(page.locator("#tags tbody tr")).to_have_count(2)
    assert page.locator("#tags button").count() == 0  # bob may not delete
    page.locator("#sign-out").click()
    expect(page.locator("#user")).to_have_text("Anonymous")

    assert opened.set_cookies == []
    for url, headers in opened.requests:
        assert USERS["bob"] not in url and "@" not in url.split("//", 1)[1], url
        if "/ui/api/" in url and "authorization" in headers:
            assert headers["authorization"].startswith("Basic ")
    assert any("authorization" in h for u, h in opened.requests if "/ui/api/catalog" in u)
    opened.close(allowed=("401", "404"))


def test_a_failed_login_brings_no_browser_dialog(basic: RunningServer) -> None:
    answer = httpx.get(f"{basic.url}/ui/api/session", auth=("bob", "wrong"))
    assert answer.status_code == 401 and errors(answer) == ["UNAUTHORIZED"]
    assert "www-authenticate" not in answer.headers
    assert httpx.get(f"{basic.url}/v2/", auth=("bob", "wrong")).headers["www-authenticate"]


def test_deleting_a_tag_needs_the_delete_right_and_the_pages_header(
    browser: Browser, basic: RunningServer
) -> None:
    alice, bob = ("alice", USERS["alice"]), ("bob", USERS["bob"])
    with httpx.Client(base_url=basic.url, auth=alice) as http:
        image(http, "team/two", "doomed", layers=1)
        image(http, "team/two", "clicked", layers=1)
    url = f"{basic.url}/ui/api/tag"
    doomed = {"name": "team/two", "tag": "doomed"}
    # a cross-site form or fetch cannot add the header without a preflight this server refuses
    forged = httpx.delete(
        url, params=doomed, auth=alice, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403 and errors(forged) == ["DENIED"]
    preflight = httpx.options(
        url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    as_bob = httpx.delete(url, params=doomed, auth=bob, headers={"X-Mdl-UI": "1"})
    assert as_bob.status_code == 403 and errors(as_bob) == ["DENIED"]
    anonymous = httpx.delete(url, params=doomed, headers={"X-Mdl-UI": "1"})
    assert anonymous.status_code == 404  # anonymous cannot even see team/two
    assert httpx.get(f"{basic.url}/v2/team/two/manifests/doomed", auth=alice).status_code == 200
    done = httpx.delete(url, params=doomed, auth=alice, headers={"X-Mdl-UI": "1"})
    assert done.status_code == 204
    assert httpx.get(f"{basic.url}/v2/team/two/manifests/doomed", auth=alice).status_code == 404

    opened = open_ui(browser, basic.url)
    page = opened.page
    sign_in(page, *alice)
    expect(page.locator("#count")).to_have_text("4 repositories")
    page.goto(basic.url + "/ui#/repo?name=team/two")
    row = page.locator('#tags tr[data-tag="clicked"]')
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete tag clicked").click()
    expect(row).to_have_count(0)
    assert httpx.get(f"{basic.url}/v2/team/two/manifests/clicked", auth=alice).status_code == 404
    opened.close()


def test_a_pasted_token_sees_its_grants(browser: Browser, token: RunningServer) -> None:
    issued = httpx.get(
        f"{token.url}/token",
        params={"service": "mdl-registry", "scope": "repository:team/one:pull"},
        auth=("bob", USERS["bob"]),
    )
    assert issued.status_code == 200, issued.text
    bearer = issued.json()["token"]
    assert names(token, Authorization=f"Bearer {bearer}") == ["team/one"]
    assert names(token) == ["public/open"]
    opened = open_ui(browser, token.url)
    page = opened.page
    page.locator("#sign-in").click()
    page.locator("#login-token").fill(bearer)
    page.locator("#login-submit").click()
    expect(page.locator("#user")).to_have_text("Signed in as bob")  # the token's user
    expect(page.locator('#catalog tr[data-name="team/one"]')).to_be_visible()
    expect(page.locator("#count")).to_have_text("1 repository")
    assert listed(page) == ["team/one"]
    assert all(bearer not in url for url in opened.urls)
    opened.close()


def test_pages_and_json_are_typed_cached_compressed_and_under_csp(basic: RunningServer) -> None:
    page = httpx.get(f"{basic.url}/ui")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["cache-control"] == "no-cache"
    html = page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # no CDN
    again = httpx.get(f"{basic.url}/ui/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    kinds = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for asset in re.findall(r'(?:src|href)="(/ui/assets/[^"]+\.(?:js|css))"', html):
        answer = httpx.get(basic.url + asset, headers={"Accept-Encoding": "gzip"})
        assert answer.headers["content-type"] == kinds[Path(asset).suffix]
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert answer.headers["content-encoding"] == "gzip"
    assert httpx.get(f"{basic.url}/ui/assets/app.js").status_code == 404  # unhashed name

    raw = httpx.Client(base_url=basic.url, auth=("alice", USERS["alice"]))
    with raw.stream("GET", "/ui/api/catalog", headers={"Accept-Encoding": "gzip"}) as answer:
        body = b"".join(answer.iter_raw())
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
        assert "Authorization" in answer.headers["vary"]
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["content-encoding"] == "gzip"
        assert b"team/one" in gzip.decompress(body)
    raw.close()
    bad = httpx.get(f"{basic.url}/ui/api/manifest?name=UPPER&ref=latest")
    assert bad.status_code == 400 and errors(bad) == ["NAME_INVALID"]


def test_open_access_refuses_a_cross_site_delete(tmp_path: Path) -> None:
    with start_mdl_registry(tmp_path / "open") as server:
        with httpx.Client(base_url=server.url) as http:
            image(http, "team/x", "latest", layers=1)
        headers = {"X-Mdl-UI": "1", "Origin": "https://evil.example"}
        answer = httpx.delete(
            f"{server.url}/ui/api/tag", params={"name": "team/x", "tag": "latest"}, headers=headers
        )
        assert answer.status_code == 403
        assert httpx.get(f"{server.url}/v2/team/x/manifests/latest").status_code == 200


def test_a_read_only_registry_deletes_no_tag(tmp_path: Path) -> None:
    with start_mdl_registry(tmp_path / "root") as server:
        with httpx.Client(base_url=server.url) as http:
            image(http, "team/kept", "latest", layers=1)
        server.argv.append("--read-only")
        server.restart()
        url = f"{server.url}/ui/api"
        assert httpx.get(f"{url}/repository?name=team/kept").json()["mayDelete"] is False
        answer = httpx.delete(
            f"{url}/tag", params={"name": "team/kept", "tag": "latest"}, headers={"X-Mdl-UI": "1"}
        )
        assert answer.status_code == 405 and errors(answer) == ["UNSUPPORTED"], answer.text
        assert httpx.get(f"{server.url}/v2/team/kept/manifests/latest").status_code == 200


def test_no_ui_turns_it_all_off(tmp_path: Path) -> None:
    with start_mdl_registry(tmp_path / "root", "--no-ui") as server:
        for path in ("/ui", "/ui/", "/ui/api/catalog", "/ui/api/session", "/ui/assets/x.js"):
            assert httpx.get(server.url + path).status_code == 404, path
        assert httpx.get(server.url + "/v2/").status_code == 200


def test_a_card_shows_only_blobs_the_repository_still_links(basic: RunningServer) -> None:
    """A pull of an unlinked blob fails, so the card does not show its text either."""
    alice = ("alice", USERS["alice"])
    system = b"Only for those who may pull."
    config = encode({"config": {"format": "gguf", "architecture": "llama"}})
    with httpx.Client(base_url=basic.url, auth=alice) as http:
        push_blob(http, "team/card", config)
        system_digest = push_blob(http, "team/card", system)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": descriptor("application/vnd.cncf.model.config.v1+json", config),
            "layers": [
                descriptor(
                    "application/vnd.cncf.model.weight.config.v1.raw",
                    system,
                    annotations={"org.cncf.model.filepath": "system.txt"},
                )
            ],
        }
        assert push_manifest(http, "team/card", "1", manifest).status_code == 201
        params = {"name": "team/card", "ref": "1"}
        assert (
            http.get("/ui/api/manifest", params=params).json()["card"]["system"] == system.decode()
        )
        assert http.delete(f"/v2/team/card/blobs/{system_digest}").status_code == 202
        assert http.get(f"/v2/team/card/blobs/{system_digest}").status_code == 404
        card = http.get("/ui/api/manifest", params=params).json()["card"]
        assert card["system"] is None
        assert card["facts"]["architecture"] == "llama"


def test_a_push_and_a_delete_show_in_the_catalog_at_once(basic: RunningServer) -> None:
    alice = ("alice", USERS["alice"])
    assert "team/fresh" not in names(basic, alice)  # the index is built by now
    with httpx.Client(base_url=basic.url, auth=alice) as http:
        digest, _ = image(http, "team/fresh", "v1", layers=1)
        assert "team/fresh" in names(basic, alice)
        row = http.get("/ui/api/catalog", params={"q": "team/fresh"}).json()["repositories"][0]
        assert (row["tag"], row["digest"]) == ("v1", digest)
        assert http.delete(f"/v2/team/fresh/manifests/{digest}").status_code == 202
        assert "team/fresh" not in names(basic, alice)
