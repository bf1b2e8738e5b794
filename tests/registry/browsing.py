"""Headless chromium for the registry browser's tests: Debian's binary driven by playwright."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Browser, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


@contextmanager
def launch() -> Iterator[Browser]:
    """Headless chromium, closed on exit (a module fixture wraps it)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Opened:
    """A page of a fresh browser context (its own sessionStorage), what it requested, and the
    console errors it logged; ``close`` fails on any of those but the ``allowed`` ones."""

    def __init__(self, browser: Browser, url: str, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.set_cookies: list[str] = []
        self.page.on(
            "console", lambda m: self.problems.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("request", lambda r: self.requests.append((r.url, r.headers)))
        self.page.on(
            "response",
            lambda r: self.set_cookies.extend(
                h["value"] for h in r.headers_array() if h["name"].lower() == "set-cookie"
            ),
        )
        self.page.goto(url)
        expect(self.page.locator("body[data-ready=true]")).to_have_count(1)

    @property
    def urls(self) -> list[str]:
        return [url for url, _ in self.requests]

    def close(self, allowed: tuple[str, ...] = ()) -> None:
        self.context.close()
        assert [p for p in self.problems if not any(a in p for a in allowed)] == []
