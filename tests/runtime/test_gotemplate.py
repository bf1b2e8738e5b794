"""The Go text/template subset: each construct Ollama's library templates use."""

from __future__ import annotations

from typing import Any

import pytest

from mdl.runtime.errors import TemplateError
from mdl.runtime.templates.gotemplate import GoJSON, parse

MESSAGES = [
    {"Role": "system", "Content": "sys"},
    {"Role": "user", "Content": "hi"},
    {"Role": "assistant", "Content": "yo"},
]


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("{{ .Prompt }}", {"Prompt": "hi"}, "hi"),
        ("a {{- .X -}} b", {"X": 1}, "a1b"),
        ("a\n  {{- .X }}\n  b", {"X": "!"}, "a!\n  b"),
        ("{{/* a comment */}}x{{- /* trimmed */ -}} y", {}, "xy"),
        ("{{ .Missing }}|{{ .A.B.C }}", {"A": {}}, "|"),
        ("{{ if .S }}yes{{ else }}no{{ end }}", {"S": ""}, "no"),
        ("{{ if .S }}yes{{ else if .T }}t{{ else }}no{{ end }}", {"T": [1]}, "t"),
        ("{{ with .F }}{{ .Name }}{{ else }}none{{ end }}", {"F": {"Name": "f"}}, "f"),
        ("{{ range .M }}{{ .Role }},{{ end }}", {"M": MESSAGES}, "system,user,assistant,"),
        (
            "{{ range $i, $m := .M }}{{ $i }}{{ $m.Content }}{{ end }}",
            {"M": MESSAGES},
            "0sys1hi2yo",
        ),
        (
            '{{ range .M }}{{ if eq .Role "user" }}{{ continue }}{{ end }}{{ .Role }}{{ end }}',
            {"M": MESSAGES},
            "systemassistant",
        ),
        (
            '{{ range .M }}{{ if eq .Role "user" }}{{ break }}{{ end }}{{ .Role }}{{ end }}',
            {"M": MESSAGES},
            "system",
        ),
        ("{{ range .M }}x{{ else }}empty{{ end }}", {"M": []}, "empty"),
        (
            "{{ range $k, $v := .P }}{{ $k }}={{ $v }};{{ end }}",
            {"P": {"b": 2, "a": 1}},
            "a=1;b=2;",
        ),
        (
            "{{ range $i, $_ := .M }}{{ $last := eq (len (slice $.M $i)) 1 }}{{ $last }} {{ end }}",
            {"M": MESSAGES},
            "false false true ",
        ),
        ("{{ (index .M 1).Content }}", {"M": MESSAGES}, "hi"),
        ('{{ index .P "k" }}', {"P": {"k": "v"}}, "v"),
        ('{{ $x := "a" }}{{ $x = printf "%s-%d" $x 3 }}{{ $x }}', {}, "a-3"),
        ("{{ if and .A (not .B) }}ok{{ end }}", {"A": 1, "B": 0}, "ok"),
        ('{{ or .A .B "c" }}', {"A": "", "B": ""}, "c"),
        ('{{ if ne .R "tool" }}n{{ end }}{{ if eq .R "a" "tool" }}e{{ end }}', {"R": "tool"}, "e"),
        ("{{ if lt (len .M) 5 }}short{{ end }}", {"M": MESSAGES}, "short"),
        ('{{ .Prompt | printf "<%s>" }}', {"Prompt": "p"}, "<p>"),
        ("{{ json .Args }}", {"Args": {"a": "<b>", "n": 1}}, '{"a":"\\u003cb\\u003e","n":1}'),
        ("{{ .T }}", {"T": GoJSON([{"Name": "f"}], [{"name": "f"}])}, '[{"name":"f"}]'),
        ("{{ range .T }}{{ .Name }}{{ end }}", {"T": GoJSON([{"Name": "f"}], [])}, "f"),
        ('{{ print 1 2 }} {{ print "a" "b" }}', {}, "1 2 ab"),
        ('{{ `raw\\n` }}{{ "esc\\n" }}', {}, "raw\\nesc\n"),
        ("{{ true }} {{ 3 }} {{ nil }}.", {}, "true 3 ."),
    ],
)
def test_renders(source: str, data: dict[str, Any], expected: str) -> None:
    assert parse(source).execute(data) == expected


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ .A ", "unclosed action"),
        ("{{ if .A }}x", "unexpected end"),
        ("{{ end }}", "unexpected"),
        ("{{ frobnicate .A }}", 'function "frobnicate" not defined'),
        ('{{ template "x" }}', "not supported"),
        ("{{ break }}", "outside"),
        ("{{/* open ", "unclosed"),
    ],
)
def test_parse_errors_are_template_errors(source: str, words: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse(source)
    assert words in str(caught.value)


def test_execution_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="undefined variable"):
        parse("{{ $nope }}").execute({})
    with pytest.raises(TemplateError, match="index out of range"):
        parse("{{ index .M 5 }}").execute({"M": []})


def test_identifiers_are_what_ollama_calls_vars() -> None:
    template = parse(
        "{{ if .System }}{{ range $i, $m := $.Messages }}{{ .Content }}{{ end }}{{ end }}"
    )
    assert template.identifiers == {"system", "messages", "content", "$"}


def test_cut_after_response_ends_the_prompt_where_the_answer_starts() -> None:
    template = parse("U:{{ .Prompt }} A:{{ .Response }}<end>{{ if .X }}x{{ end }}")
    assert template.cut_after_response().execute({"Prompt": "p", "Response": ""}) == "U:p A:"
