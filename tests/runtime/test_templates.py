"""Chat templates rendered as Ollama renders them: Go (messages and legacy forms) and Jinja."""

from __future__ import annotations

import pytest

from mdl.runtime.errors import TemplateError
from mdl.runtime.messages import Message, Tool, ToolCall
from mdl.runtime.templates import chat_template
from mdl.runtime.templates.ollama import collate

CONVERSATION = [
    Message("system", "You are a helpful assistant!"),
    Message("user", "Hello friend!"),
    Message("assistant", "Hello human!"),
    Message("user", "What is your name?"),
]
CHATML = (
    "<|im_start|>system\nYou are a helpful assistant!<|im_end|>\n<|im_start|>user\nHello friend!"
    "<|im_end|>\n<|im_start|>assistant\nHello human!<|im_end|>\n<|im_start|>user\n"
    "What is your name?<|im_end|>\n<|im_start|>assistant\n"
)
LEGACY_CHATML = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}"
    "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    "{{ .Response }}<|im_end|>\n"
)
MESSAGES_CHATML = (
    "{{- range $index, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
JINJA_CHATML = (
    "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.mark.parametrize("source", [LEGACY_CHATML, MESSAGES_CHATML])
def test_go_templates_in_both_forms_render_chatml(source: str) -> None:
    assert chat_template(source, "go").render(CONVERSATION) == CHATML


def test_jinja_template_renders_chatml_without_a_second_bos() -> None:
    template = chat_template(JINJA_CHATML, "jinja", "<s>", "</s>")
    assert template.render(CONVERSATION) == CHATML


def test_a_template_without_response_gets_one_appended() -> None:
    """Ollama appends {{ .Response }}: a prefilled answer continues where it stopped."""
    template = chat_template("[INST] {{ .Prompt }}[/INST] ", "go")
    turns = [*CONVERSATION[1:], Message("assistant", "My name is")]
    assert template.render(turns) == (
        "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My name is"
    )


def test_default_template_is_the_prompt() -> None:
    assert (
        chat_template("{{ .Prompt }}", "go").render([Message("user", "just this")]) == "just this"
    )


def test_insert_renders_prompt_and_suffix() -> None:
    source = (
        "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"
        "{{- else }}{{ .Prompt }}{{- end }}"
    )
    template = chat_template(source, "go")
    assert template.supports_insert
    assert template.render_insert("def add(", "return x") == "<PRE> def add( <SUF>return x <MID>"
    assert template.render([Message("user", "hello")]) == "hello"


def test_collate_merges_consecutive_roles_but_not_tool_results() -> None:
    system, merged = collate(
        [Message("system", "a"), Message("user", "1"), Message("user", "2"),
         Message("tool", "x"), Message("tool", "y"), Message("system", "b")]
    )  # fmt: skip
    assert system == "a\n\nb"
    assert [(m.role, m.content) for m in merged] == [
        ("system", "a"), ("user", "1\n\n2"), ("tool", "x"), ("tool", "y"), ("system", "b")
    ]  # fmt: skip


def test_go_template_sees_tools_and_tool_calls_as_ollama_types() -> None:
    source = (
        "{{- if .Tools }}[TOOLS]{{ .Tools }}[/TOOLS]{{ end }}"
        "{{- range .Messages }}{{ if .ToolCalls }}{{ range .ToolCalls }}"
        '{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}'
        "{{ end }}{{ else }}{{ .Role }}:{{ .Content }};{{ end }}{{ end }}"
    )
    tool = Tool(
        "get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}
    )
    messages = [
        Message("user", "weather?"),
        Message("assistant", "", (ToolCall("get_weather", {"city": "Paris"}),)),
    ]
    template = chat_template(source, "go")
    assert template.supports_tools
    text = template.render(messages, [tool])
    assert text.startswith('[TOOLS][{"type":"function","function":{"name":"get_weather"')
    assert text.endswith('user:weather?;{"name": "get_weather", "arguments": {"city":"Paris"}}')


def test_jinja_template_receives_openai_shaped_tools() -> None:
    source = "{% for t in tools %}{{ t.function.name }}{% endfor %}|{{ messages[0].content }}"
    template = chat_template(source, "jinja")
    assert template.render([Message("user", "q")], [Tool("lookup")]) == "lookup|q"


def test_jinja_raise_exception_is_a_template_error() -> None:
    template = chat_template("{{ raise_exception('roles must alternate') }}", "jinja")
    with pytest.raises(TemplateError, match="roles must alternate"):
        template.render([Message("user", "x")])


def test_broken_templates_are_template_errors() -> None:
    with pytest.raises(TemplateError):
        chat_template("{% for %}", "jinja")
    with pytest.raises(TemplateError):
        chat_template("{{ if .X }}", "go")


@pytest.mark.parametrize(
    ("source", "expected"),
    [("{{ messages|map(attribute='content')|join('; ') }}", "Hello friend!; What is your name?"),
     ("{{ messages[0].content|replace('friend', 'pal')|truncate(9) }}", "Hello pal!"),
     ("{{ 'ab cd'|wordwrap(2) }}|{{ 'x'|center(3) }}|{{ '%s=%d'|format('a', 1) }}",
      "ab\ncd| x |a=1"),
     ("{{ '-'.join(['a', 'b']) }}{{ 'a.b'.replace('.', ':') }}{{ '{}!'.format(1) }}",
      "a-ba:b1!")],
)  # fmt: skip
def test_jinja_filters_and_string_methods_work_within_the_bounds(
    source: str, expected: str
) -> None:
    """The bounded environment wraps these; they must still do what Jinja's do."""
    messages = [Message("user", "Hello friend!"), Message("user", "What is your name?")]
    assert chat_template(source, "jinja").render(messages[:1] if "[0]" in source else messages) in (
        expected,
        expected.replace(
            "Hello friend!; What is your name?", "Hello friend!\n\nWhat is your name?"
        ),
    )


@pytest.mark.parametrize(
    "source",
    ["{{ 'x' * 2000000000 }}", "{{ '%2000000000d' % 1 }}", "{{ '{:2000000000}'.format(1) }}",
     "{{ 'x'|center(2000000000) }}", "{{ ','.join(['x' * 1000000] * 40) }}",
     "{{ ('x' * 1000000)|replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy') }}",
     "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ d('a', 40) }}",
     "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
     "{% for i in range(99999) %}{{ 'x' * 999999 }}{% endfor %}",
     "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"],
)  # fmt: skip
def test_jinja_bombs_stop_with_a_template_error(source: str) -> None:
    with pytest.raises(TemplateError):
        chat_template(source, "jinja").render(CONVERSATION)


@pytest.mark.parametrize(
    "source",
    ["{{range 4000}}{{range 4000}}{{end}}{{end}}", "{{range 200000000}}{{end}}",
     '{{range 100000}}{{printf "%999999d" 1}}{{end}}', "{{if 1}}" * 3000 + "{{end}}" * 3000],
)  # fmt: skip
def test_go_bombs_stop_with_a_template_error(source: str) -> None:
    with pytest.raises(TemplateError):
        chat_template(source, "go").render(CONVERSATION)


def test_go_printf_refuses_widths_as_go_does() -> None:
    source = '{{ printf "%2000000000d|%.9999999f|%5d" 1 2.5 3 }}'
    rendered = chat_template(source, "go").render([Message("user", "hi")])
    assert rendered == "%!(BADWIDTH)1|%!(BADPREC)2.500000|    3"
