from __future__ import annotations

import pytest

from mdl.spec.modelpack import param_size, template_format


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (999, "999"),
        (120_128, "120.1K"),
        (134_515_008, "134.5M"),
        (7_000_000_000, "7B"),
        (6_738_415_616, "6.7B"),
        (1_000_000_000_000, "1T"),
    ],
)
def test_param_size_has_at_most_one_decimal(count: int, text: str) -> None:
    assert param_size(count) == text


@pytest.mark.parametrize(
    ("template", "kind"),
    [
        ("{% for message in messages %}{{ message['content'] }}{% endfor %}", "jinja"),
        ("{{ bos_token }}{{ messages[0]['content'] }}", "jinja"),
        ("{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}", "go"),
        ("{{- range .Messages }}{{ .Content }}{{ end }}", "go"),
    ],
)
def test_template_format_tells_jinja_from_go(template: str, kind: str) -> None:
    assert template_format(template) == kind
