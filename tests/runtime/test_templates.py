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
