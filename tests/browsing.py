"""Headless chromium for the web pages' tests (the chat page, the registry browser): Debian's
binary driven by playwright's sync API, never a downloaded browser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
WAIT_MS = 120_000
"""How long a wait may take (answers of a few hundred tokens on a busy 2-core machine); waits
end when their condition holds. It is playwright's process-wide default, so it is set once."""
expect.set_options(timeout=WAIT_MS)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The Content-Security-Policy both pages are served with, written out here on purpose."""


SCREENSHOTS_ENV = "MDL_UI_SCREENSHOTS"


def screenshot_dir(fallback: Path) -> Path:
    """Where screenshots go: ``$MDL_UI_SCREENSHOTS`` when set (kept after the run), else
    ``fallback`` (pytest's tmp, which keeps only the last three runs)."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    path = Path(chosen) if chosen else fallback
    path.mkdir(parents=True, exist_ok=True)
    return path


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

    @property
    def urls(self) -> list[str]:
        return [url for url, _ in self.requests]

    def close(self, allowed: tuple[str, ...] = ()) -> None:
        self.context.close()
        assert [p for p in self.problems if not any(a in p for a in allowed)] == []
