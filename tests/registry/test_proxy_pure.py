"""The pull-through cache's pure parts: the upstream flags, the ``Link`` of a tag list page,
and Go durations (``--proxy-ttl``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdl.registry.proxy_upstream import _next_page, proxy_settings
from mdl.spec.duration import seconds


@pytest.mark.parametrize(
    ("link", "path"),
    [
        ('</v2/a/tags/list?n=2&last=b>; rel="next"', "/v2/a/tags/list?n=2&last=b"),
        ("<https://up.example:5000/v2/a/tags/list?last=b>; rel=next", "/v2/a/tags/list?last=b"),
        ('</v2/a/tags/list?last=b>; rel="prev"', None),
        ('<https://elsewhere.example/other>; rel="next"', None),
        ("", None),
    ],
)
def test_next_page_is_a_path_on_the_upstream(link: str, path: str | None) -> None:
    assert _next_page(link) == path


def test_proxy_settings_keep_the_origin_and_read_the_password(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("secret\n")
    settings = proxy_settings("HTTPS://Up.Example:5000/", "ci", str(tmp_path / "pw"), 60.0)
    assert (settings.url, settings.username, settings.password) == (
        "https://up.example:5000",
        "ci",
        "secret",
    )
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "value"),
    [("168h", 604800.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("250ms", 0.25), ("90", 90.0)],
)
def test_go_durations(text: str, value: float) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("text", ["", "h", "5x", "1h 2m", "."])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        seconds(text)
