"""Jinja chat templates as GGUF files carry them (``tokenizer.chat_template``, Hugging Face form).

Rendered in a sandbox the way ``transformers`` renders them: ``trim_blocks`` and
``lstrip_blocks``, ``raise_exception``, ``strftime_now``, a ``tojson`` that keeps non-ASCII text,
messages and tools in OpenAI's shape, and ``add_generation_prompt``. A leading BOS the template
writes is dropped, because tokenizing the prompt adds it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mdl.runtime.errors import TemplateError
from mdl.runtime.messages import Message, Tool


def _raise(message: str) -> NoReturn:
    raise TemplateError(f"chat template: {message}")


def _tojson(
    value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    return json.dumps(
        value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


class JinjaChatTemplate:
    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = _strftime_now
        try:
            self.template = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"chat template does not parse: {exc}") from exc
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.supports_tools = "tools" in source
        self.supports_insert = False

    def render(self, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> str:
        try:
            text = self.template.render(
                messages=[_message(m) for m in messages],
                tools=[t.to_json() for t in tools] or None,
                add_generation_prompt=True,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except TemplateError:
            raise
        except Exception as exc:  # any error a template's own code raises
            raise TemplateError(f"chat template failed: {exc}") from exc
        if self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token) :]
        return text

    def render_insert(self, prompt: str, suffix: str) -> str:
        raise TemplateError("a Jinja chat template has no fill-in-the-middle form")


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": dict(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_name:
        out["name"] = message.tool_name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out
