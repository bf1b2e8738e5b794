"""Chat values shared by the templates, the service and both APIs: messages, tool calls, tools."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mdl.runtime.errors import BadRequest

ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True)
class ToolCall:
    """A function the model asks to call; ``arguments`` is the decoded JSON object."""

    name: str
    arguments: Mapping[str, Any]
    id: str = ""


@dataclass(frozen=True)
class Message:
    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str = ""
    """For a ``tool`` message: the function whose result this is."""
    tool_call_id: str = ""


@dataclass(frozen=True)
class Tool:
    """A function the model may call, as both APIs describe it (``type`` ``function``)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The OpenAI/Ollama JSON form, which templates print and Jinja templates receive."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


def message_from_json(raw: Any) -> Message:
    """A message in Ollama's or OpenAI's JSON (content as text or as a list of text parts;
    tool-call arguments as an object or as JSON text)."""
    if not isinstance(raw, dict):
        raise BadRequest("each message must be an object with role and content")
    role = raw.get("role")
    content = raw.get("content") or ""
    if isinstance(content, list):
        content = "".join(_text_part(part) for part in content)
    if not isinstance(role, str) or not isinstance(content, str):
        raise BadRequest("a message needs a string role and string content")
    calls = tuple(_tool_call(call) for call in raw.get("tool_calls") or [])
    tool_name = raw.get("tool_name") or raw.get("name") or ""
    return Message(role, content, calls, str(tool_name), str(raw.get("tool_call_id") or ""))


def tool_from_json(raw: Any) -> Tool:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest("each tool needs function.name")
    parameters = function.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("a tool's function.parameters must be a JSON schema object")
    return Tool(function["name"], str(function.get("description") or ""), parameters)


def _tool_call(raw: Any) -> ToolCall:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest("tool_calls entries need function.name")
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError as exc:
            raise BadRequest(f"tool call arguments are not JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise BadRequest("tool call arguments must be a JSON object")
    return ToolCall(function["name"], arguments, str(raw.get("id") or ""))


def _text_part(part: Any) -> str:
    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
        return str(part["text"])
    raise BadRequest("only text content parts are supported (this model has no vision)")
