"""Chat templates: Ollama's Go form and Jinja, behind one small interface."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from mdl.runtime.messages import Message, Tool
from mdl.runtime.templates.jinja import JinjaChatTemplate
from mdl.runtime.templates.ollama import GoChatTemplate

DEFAULT_TEMPLATE = "{{ .Prompt }}"
"""What Ollama uses for a model with no template: the prompt as written."""


class ChatTemplate(Protocol):
    supports_tools: bool
    supports_insert: bool

    def render(self, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> str:
        """The prompt for this conversation, open for the assistant's answer."""
        ...

    def render_insert(self, prompt: str, suffix: str) -> str:
        """The fill-in-the-middle prompt (only where ``supports_insert``)."""
        ...


@lru_cache(maxsize=64)
def chat_template(source: str, kind: str, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
    """Parse once per distinct template; ``kind`` is ``go`` or ``jinja`` (the layer's
    ``dev.mdl.template.format``). Raises TemplateError if it does not parse."""
    if kind == "jinja":
        return JinjaChatTemplate(source, bos_token, eos_token)
    return GoChatTemplate(source)
