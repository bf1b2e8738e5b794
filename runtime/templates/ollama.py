"""Ollama's Go chat templates executed as Ollama executes them (``template.Template.Execute``).

A template that names ``.Messages`` is rendered once with the whole conversation (``System``,
``Messages``, ``Tools``). An older one (``.System``/``.Prompt``/``.Response`` only) is rendered
once per user turn, and the last turn is cut right after ``{{ .Response }}`` so the prompt ends
where the model's answer starts. Consecutive messages of one role are merged first (tool results
excepted), and every system message also joins ``.System``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mdl.runtime.messages import Message, Tool, ToolCall
from mdl.runtime.templates.budget import Budget
from mdl.runtime.templates.gotemplate import GoJSON, parse


class GoChatTemplate:
    def __init__(self, source: str) -> None:
        parsed = parse(source)
        names = parsed.identifiers
        self.messages_mode = "messages" in names or "document" in names
        self.template = (
            parsed if self.messages_mode or "response" in names else parsed.with_response()
        )
        self.supports_tools = "tools" in names
        self.supports_insert = "suffix" in names

    def render(
        self, messages: Sequence[Message], tools: Sequence[Tool] = (), budget: Budget | None = None
    ) -> str:
        budget = budget or Budget()
        system, collated = collate(messages)
        if self.messages_mode:
            return self.template.execute(
                {
                    "System": system,
                    "Messages": [_go_message(m) for m in collated],
                    "Tools": _go_tools(tools),
                    "Response": "",
                    "Think": False,
                    "IsThinkSet": False,
                },
                budget,
            )
        return self._render_turns(collated, budget)

    def render_insert(self, prompt: str, suffix: str, budget: Budget | None = None) -> str:
        """Fill-in-the-middle: the template sees ``.Prompt`` and ``.Suffix``."""
        return self.template.execute(
            {"Prompt": prompt, "Suffix": suffix, "Response": "", "Think": False}, budget
        )

    def _render_turns(self, messages: Sequence[Message], budget: Budget) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def flush() -> None:
            data = {**turn, "Think": False, "IsThinkSet": False}
            out.append(self.template.execute(data, budget))
            turn.update(System="", Prompt="", Response="")

        for message in messages:
            if message.role == "system":
                if turn["Prompt"] or turn["Response"]:
                    flush()
                turn["System"] = message.content
            elif message.role == "user":
                if turn["Response"]:
                    flush()
                turn["Prompt"] = message.content
            elif message.role == "assistant":
                turn["Response"] = message.content
        last = self.template.cut_after_response()
        out.append(last.execute({**turn, "Think": False, "IsThinkSet": False}, budget))
        return "".join(out)


def collate(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    """All system texts joined, and the messages with consecutive same-role ones merged."""
    system = [m.content for m in messages if m.role == "system"]
    merged: list[Message] = []
    for message in messages:
        previous = merged[-1] if merged else None
        if previous and previous.role == message.role and message.role != "tool":
            merged[-1] = Message(
                previous.role,
                previous.content + "\n\n" + message.content,
                previous.tool_calls + message.tool_calls,
                previous.tool_name,
                previous.tool_call_id,
            )
        else:
            merged.append(message)
    return "\n\n".join(system), merged


def _go_message(message: Message) -> dict[str, Any]:
    """``api.Message`` as the template sees it: Go field names."""
    return {
        "Role": message.role,
        "Content": message.content,
        "Thinking": "",
        "Images": [],
        "ToolCalls": [_go_tool_call(call, i) for i, call in enumerate(message.tool_calls)],
        "ToolName": message.tool_name,
        "ToolCallID": message.tool_call_id,
    }


def _go_tool_call(call: ToolCall, index: int) -> dict[str, Any]:
    arguments = {key: call.arguments[key] for key in sorted(call.arguments)}
    return {
        "ID": call.id,
        "Function": {
            "Index": index,
            "Name": call.name,
            "Arguments": GoJSON(arguments, arguments),
        },
    }


def _go_tools(tools: Sequence[Tool]) -> GoJSON:
    """``api.Tools``: each tool, its function and the list print as JSON."""
    return GoJSON([_go_tool(tool) for tool in tools], [tool.to_json() for tool in tools])


def _go_tool(tool: Tool) -> GoJSON:
    data = tool.to_json()
    parameters = dict(tool.parameters)
    properties = parameters.get("properties") or {}
    function = {
        "Name": tool.name,
        "Description": tool.description,
        "Parameters": {
            "Type": parameters.get("type", "object"),
            "Required": list(parameters.get("required") or []),
            "Properties": {
                name: _go_property(prop)
                for name, prop in properties.items()
                if isinstance(prop, dict)
            },
            "Defs": parameters.get("$defs"),
            "Items": parameters.get("items"),
        },
    }
    return GoJSON({"Type": "function", "Function": GoJSON(function, data["function"])}, data)


def _go_property(prop: dict[str, Any]) -> dict[str, Any]:
    kind = prop.get("type")
    return {
        "Type": GoJSON(kind, kind) if isinstance(kind, list) else kind,
        "Description": prop.get("description", ""),
        "Enum": prop.get("enum"),
        "Items": prop.get("items"),
    }
