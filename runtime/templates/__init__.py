"""Chat templates: Ollama's Go form and Jinja, behind one small interface.

Rendering is pure but bounded (``budget.Budget``); callers on an event loop run it in a thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from mdl.runtime.messages import Message, Tool
from mdl.runtime.templates.budget import Budget
from mdl.runtime.templates.jinja import JinjaChatTemplate
from mdl.runtime.templates.ollama import GoChatTemplate

DEFAULT_TEMPLATE = "{{ .Prompt }}"
"""What Ollama uses for a model with no template: the prompt as written."""


class ChatTemplate(Protocol):
    supports_tools: bool
    supports_insert: bool

    def render(
        self, messages: Sequence[Message], tools: Sequence[Tool] = (), budget: Budget | None = None
    ) -> str:
        """The prompt for this conversation, open for the assistant's answer."""
        ...

    def render_insert(self, prompt: str, suffix: str, budget: Budget | None = None) -> str:
        """The fill-in-the-middle prompt (only where ``supports_insert``)."""
        ...


def make_template(source: str, kind: str, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
    """Parse a template; ``kind`` is ``go`` or ``jinja`` (the layer's
    ``dev.mdl.template.format``). Raises TemplateError if it does not parse."""
    if kind == "jinja":
        return JinjaChatTemplate(source, bos_token, eos_token)
    return GoChatTemplate(source)


chat_template = lru_cache(maxsize=64)(make_template)
"""``make_template`` parsed once per distinct template: for the models' own templates (a
request's template is parsed with ``make_template``, so no request fills the cache)."""
