"""The chat page at ``/ui`` in a real browser: Debian's chromium, headless, driven by playwright's
sync API, against a real ``mdl serve`` (and a real ``mdl registry serve`` for pulling).

Each test opens the page in a fresh browser context (its own localStorage) and fails on any
console error or page error, which is where a Content-Security-Policy violation would show.
"""

from __future__ import annotations

import gzip
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import ollama
import pytest
from browsing import CSP, Opened, launch, screenshot_dir
from playwright.sync_api import Browser, Page, expect
from servers import start_mdl_registry
from serving import Served

DONE = "() => !document.body.classList.contains('busy') && !document.querySelector('[aria-busy]')"
STREAMING = (
    "() => document.body.classList.contains('busy') && "
    "document.querySelector('.message.assistant .content').textContent.length > 20"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as browser:
        yield browser


@pytest.fixture(scope="module")
def ui(served: Served, models_dir: Path) -> Served:
    """The standard models and ``tiny-long``, whose answers run for tens of thousands of tokens."""
    served.build(
        "tiny-long",
        "FROM ./tiny.gguf\nPARAMETER num_ctx 32768\nPARAMETER num_predict 30000\n",
        models_dir,
    )
    return served


@pytest.fixture
def page(browser: Browser, ui: Served) -> Iterator[Page]:
    opened = Opened(browser, ui.url + "/ui")
    yield opened.page
    opened.close()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """(status, headers looked up case-insensitively, body) of one GET."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def assistant_text(page: Page) -> str:
    return page.locator(".message.assistant .content").last.text_content() or ""


def count_updates(page: Page) -> None:
    page.evaluate(
        "() => { window.updates = 0; new MutationObserver(r => { window.updates += r.length; })"
        ".observe(document.getElementById('messages'), {childList: true, subtree: true}); }"
    )


def test_the_page_and_its_assets_have_csp_types_caching_and_gzip(ui: Served) -> None:
    status, headers, body = fetch(ui.url + "/ui")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-cache" and headers["ETag"].startswith('"')
    html = body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
    assert not re.search(r"\son[a-z]+\s*=", html)  # no on*= handlers
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from another host
    assert fetch(ui.url + "/ui", {"If-None-Match": headers["ETag"]})[0] == 304
    assert fetch(ui.url + "/ui/")[2] == body

    assets = re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', html)
    kinds = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
    }
    assert {Path(a).suffix for a in assets} == set(kinds)
    for asset in assets:
        assert re.fullmatch(r"/ui/assets/[a-z]+\.[0-9a-f]{12}\.[a-z]+", asset)
        status, headers, plain = fetch(ui.url + asset)
        assert status == 200 and headers["Content-Type"] == kinds[Path(asset).suffix]
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["Content-Security-Policy"] == CSP and headers["Content-Encoding"] is None
        status, zipped_headers, zipped = fetch(ui.url + asset, {"Accept-Encoding": "gzip, br"})
        assert zipped_headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in zipped_headers["Vary"]
        assert gzip.decompress(zipped) == plain and len(zipped) < len(plain)
        assert zipped_headers["ETag"] != headers["ETag"]
        etag = {"If-None-Match": headers["ETag"]}
        assert fetch(ui.url + asset, etag)[0] == 304
    assert fetch(ui.url + "/ui/assets/app.js")[0] == 404  # only the hashed names
    head = urllib.request.Request(ui.url + "/ui", method="HEAD")
    with urllib.request.urlopen(head, timeout=30) as response:
        assert response.read() == b"" and response.headers["Content-Length"] == str(len(body))
    assert fetch(ui.url + "/")[2] == b"Ollama is running"


def test_chat_streams_the_answer_and_keeps_the_conversation_in_the_browser(
    page: Page, ui: Served
) -> None:
    page.select_option("#model", "tiny:latest")
    count_updates(page)
    page.fill("#prompt", "hello")
    with page.expect_request("**/api/chat") as sent:
        page.press("#prompt", "Enter")
    page.wait_for_function(DONE)
    body = sent.value.post_data_json
    assert body == {
        "model": "tiny:latest",
        "messages": [{"role": "user", "content": "hello"}],
        "options": {},
        "stream": True,
    }
    assert sent.value.headers["content-type"] == "application/json"
    with ollama.Client(host=ui.url) as client:
        expected = client.chat(model="tiny", messages=body["messages"]).message.content
    assert expected and assistant_text(page) == expected
    assert page.evaluate("window.updates") > 3  # the text arrived in many pieces

    page.reload()
    expect(page.locator(".message.user .content")).to_have_text("hello")
    assert assistant_text(page) == expected
    stored = json.loads(page.evaluate("localStorage.getItem('mdl.ui.chats')"))
    assert [m["content"] for m in stored[0]["messages"]] == ["hello", expected]

    page.click("#new-chat")
    expect(page.locator(".message")).to_have_count(0)
    expect(page.locator("#chats li")).to_have_count(2)
    page.get_by_role("button", name="hello", exact=True).click()
    expect(page.locator(".message")).to_have_count(2)


def test_the_system_prompt_and_options_go_with_the_request(page: Page, ui: Served) -> None:
    page.select_option("#model", "tiny:latest")
    page.click("#settings summary")
    page.fill("#system", "be brief")
    page.fill("#temperature", "0")
    page.fill("#num_ctx", "256")
    page.fill("#seed", "42")
    page.fill("#prompt", "cat")
    with page.expect_request("**/api/chat") as sent:
        page.click("#send")
    page.wait_for_function(DONE)
    body = sent.value.post_data_json
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "cat"},
    ]
    assert body["options"] == {"temperature": 0, "num_ctx": 256, "seed": 42}
    with ollama.Client(host=ui.url) as client:
        expected = client.chat(
            model="tiny", messages=body["messages"], options=body["options"]
        ).message.content
    assert assistant_text(page) == expected

    page.reload()  # the settings belong to the chat, kept in the browser
    assert page.input_value("#system") == "be brief"
    assert page.input_value("#num_ctx") == "256"


def test_stop_ends_a_long_generation(page: Page, ui: Served) -> None:
    page.select_option("#model", "tiny-long:latest")
    page.fill("#prompt", "tell me everything")
    page.press("#prompt", "Enter")
    page.wait_for_function(STREAMING)  # text shows while the answer is still being generated
    expect(page.locator("#stop")).to_be_visible()
    page.keyboard.press("Escape")
    page.wait_for_function(DONE)
    expect(page.locator(".message.assistant .note")).to_have_text("stopped")
    expect(page.locator("#send")).to_be_visible()
    stopped = assistant_text(page)
    # the server stopped too: the model answers the next request at once, not after 30000 tokens
    with ollama.Client(host=ui.url, timeout=30) as client:
        quick = client.generate(model="tiny-long", prompt="hi", options={"num_predict": 2})
    assert quick.eval_count == 2
    assert assistant_text(page) == stopped
    stored = json.loads(page.evaluate("localStorage.getItem('mdl.ui.chats')"))
    assert stored[0]["messages"][-1]["stopped"] is True


def test_the_page_works_with_the_keyboard_alone(page: Page, ui: Served) -> None:
    page.click("h1")  # Tab now starts from the top of the page
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
    for control in ("tab-chat", "tab-models", "new-chat", "model", "prompt", "send"):
        assert control in reached
    assert reached.index("model") < reached.index("prompt") < reached.index("send")
    page.focus("#model")
    page.keyboard.type("tiny-go")  # the select's type-ahead: a model with 12-token answers
    assert page.input_value("#model") == "tiny-go:latest"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus ring
    page.focus("#prompt")
    page.keyboard.type("hello")
    page.keyboard.press("Enter")
    page.wait_for_function(DONE)
    assert assistant_text(page)
    page.focus("#tab-models")
    page.keyboard.press("Enter")
    expect(page.locator("#view-models")).to_be_visible()
    expect(page.locator("#view-chat")).to_be_hidden()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start_mdl_registry(tmp_path_factory.mktemp("ui-registry")) as server:
        yield server.host


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("ui-empty-home")).start()
    try:
        yield server
    finally:
        server.stop()


def test_pull_shows_its_progress_and_the_model_appears(
    browser: Browser, ui: Served, empty: Served, registry: str
) -> None:
    name = f"{registry}/demo/tiny:ui"
    with ollama.Client(host=ui.url) as source:
        source.copy("tiny", name)
        assert list(source.push(name, stream=True))[-1].status == "success"
    opened = Opened(browser, empty.url + "/ui#models")
    page = opened.page
    expect(page.locator("#store-empty")).to_be_visible()
    expect(page.locator("#pull-status")).to_be_hidden()
    page.evaluate(
        "() => { window.texts = []; new MutationObserver(rs => rs.forEach(r => r.addedNodes"
        ".forEach(n => window.texts.push(n.textContent))))"
        ".observe(document.getElementById('pull-text'), {childList: true}); }"
    )
    page.fill("#pull-name", name)
    page.click("#pull")
    expect(page.locator("#pull-text")).to_have_text(f"{name} pulled")
    texts = page.evaluate("window.texts")
    assert texts[0] == f"pulling {name}" and texts[-1] == f"{name} pulled"
    assert any(re.fullmatch(r"pulling .+: \d+% \(.+ of .+\)", t) for t in texts), texts
    progress = page.locator("#pull-progress")
    total = float(progress.get_attribute("max") or 0)
    assert total > 1000 and float(progress.get_attribute("value") or 0) == total
    expect(page.locator("#store tbody th")).to_have_text([name])
    expect(page.locator("#model option")).to_have_count(1)
    opened.close()


def test_the_models_panel_shows_what_is_loaded_and_deletes_a_model(page: Page, ui: Served) -> None:
    with ollama.Client(host=ui.url) as client:
        client.copy("tiny", "doomed")
        client.generate(model="tiny", prompt="")  # loads it
        loaded = {m.model: m.size for m in client.ps().models}
    page.click("#tab-models")
    row = page.locator("#loaded tbody tr", has_text="tiny:latest")
    expect(row).to_be_visible()
    assert loaded["tiny:latest"] and re.fullmatch(
        r"\d+(\.\d)? (kB|MB|GB)", row.locator("td").first.text_content() or ""
    )
    expect(page.locator("#store tbody th", has_text="doomed:latest")).to_be_visible()

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete doomed:latest").click()
    expect(page.locator("#store tbody th", has_text="tiny:latest")).to_be_visible()
    with ollama.Client(host=ui.url) as client:
        assert "doomed:latest" in {m.model for m in client.list().models}

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete doomed:latest").click()
    expect(page.locator("#store tbody th", has_text="doomed:latest")).to_have_count(0)
    with ollama.Client(host=ui.url) as client:
        assert "doomed:latest" not in {m.model for m in client.list().models}


CONVERSATION = [
    {"role": "user", "content": "What does mdl do?"},
    {
        "role": "assistant",
        "model": "tiny:latest",
        "content": "It builds, stores, pushes and serves ML models, as Docker does for containers.",
    },
    {"role": "user", "content": "And this page?"},
    {"role": "assistant", "model": "tiny:latest", "content": "It chats.", "stopped": True},
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_each_page(
    browser: Browser, ui: Served, tmp_path: Path, scheme: str
) -> None:
    chat = {"id": "shot", "title": "What does mdl do?", "model": "tiny:latest", "system": "",
            "options": {}, "messages": CONVERSATION, "updated": 0}  # fmt: skip
    background = {"light": "rgb(247, 247, 248)", "dark": "rgb(21, 22, 26)"}[scheme]
    for view, viewport in [
        ("chat", {"width": 1100, "height": 720}),
        ("models", {"width": 1100, "height": 720}),
        ("phone", {"width": 390, "height": 800}),
    ]:
        opened = Opened(browser, ui.url + "/ui", color_scheme=scheme, viewport=viewport)
        page = opened.page
        page.evaluate(
            "chat => { localStorage.setItem('mdl.ui.chats', JSON.stringify([chat]));"
            " localStorage.setItem('mdl.ui.current', chat.id); }",
            chat,
        )
        page.goto(ui.url + ("/ui#models" if view == "models" else "/ui"))
        page.reload()
        if view == "models":
            expect(page.locator("#store tbody tr").first).to_be_visible()
        else:
            expect(page.locator(".message")).to_have_count(4)
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == background
        path = screenshot_dir(tmp_path) / f"ui-{view}-{scheme}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        print(f"screenshot: {path}")
        opened.close()
