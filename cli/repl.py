"""The chat of ``mdl run MODEL`` on a terminal, with Ollama's commands.

A line starting with ``/`` is a command, never a prompt; ``\"\"\"`` starts and ends a message of
several lines (``/set system \"\"\"…\"\"\"`` too). Ctrl-C stops the answer being written and
keeps the chat (the part already written stays in it, as the model's turn); Ctrl-C at the
prompt only says how to leave; Ctrl-D, ``/bye`` or ``/exit`` leaves.

``Chat`` holds the session (model, system prompt, parameters, messages) and is pure; ``repl``
is the terminal loop around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mdl.cli import console
from mdl.spec.errors import MdlError, NotFound
from mdl.spec.parameters import PARAMETERS, ParamKind, coerce_parameter

if TYPE_CHECKING:
    from mdl.cli.run import Server

QUOTES = '"""'
HELP = """Available commands:
  /set parameter NAME VALUE   set a parameter for this chat (/set parameter stop A B: stops)
  /set system TEXT            set the system message
  /show info                  the model's details
  /show modelfile             its Modelfile
  /show parameters            its parameters and this chat's
  /show system                the system message
  /show template              the prompt template
  /show license               the license
  /load MODEL                 chat with another model (a new chat)
  /save MODEL                 save this chat as a new model: its messages, system, parameters
  /clear                      forget the messages of this chat
  /bye                        leave (Ctrl-D too)
  /?, /help                   this help

Use \"\"\" to begin and end a message of several lines.
Ctrl-C stops an answer being written; the chat goes on."""
SHOW_WHAT = ("info", "modelfile", "parameters", "system", "template", "license")

Read = Callable[[str], str]


@dataclass
class Chat:
    model: str
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)

    def conversation(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.messages

    def set_parameter(self, name: str, values: list[str]) -> str:
        """Set a parameter from its text; ValueError with the reason if it is not one."""
        if not values:
            raise ValueError("usage: /set parameter NAME VALUE")
        if PARAMETERS.get(name) is ParamKind.STRINGS:
            self.options[name] = values
            return f"Set parameter '{name}' to '{', '.join(values)}'"
        value = coerce_parameter(name, " ".join(values))
        if value is None:
            raise ValueError(f"parameter {name} is deprecated and has no effect")
        self.options[name] = value
        return f"Set parameter '{name}' to '{value}'"

    def saved(self, name: str) -> dict[str, Any]:
        """The ``/api/create`` request for a model that starts where this chat is."""
        body: dict[str, Any] = {"model": name, "from": self.model, "messages": self.messages}
        if self.options:
            body["parameters"] = self.options
        if self.system:
            body["system"] = self.system
        return body


def read_message(read: Read) -> str:
    """One input: a line, or the lines from an opening ``\"\"\"`` to the closing one (without
    the quotes), after an optional command (``/set system``)."""
    line = read(">>> ")
    head, quotes, text = line.partition(QUOTES)
    if not quotes or (head.strip() and not head.startswith("/")):
        return line
    while not text.endswith(QUOTES):
        text += "\n" + read("... ")
    return head + text.removesuffix(QUOTES)


def show_info(shown: dict[str, Any]) -> list[str]:
    details = shown.get("details") or {}
    info = shown.get("model_info") or {}
    arch = details.get("family") or info.get("general.architecture", "")
    rows = [
        ("architecture", arch),
        ("parameters", details.get("parameter_size", "")),
        ("context length", info.get(f"{arch}.context_length", "")),
        ("embedding length", info.get(f"{arch}.embedding_length", "")),
        ("quantization", details.get("quantization_level", "")),
    ]
    out = ["  Model"] + [f"    {k:<20}{v}" for k, v in rows if v != ""]
    if shown.get("capabilities"):
        out += ["", "  Capabilities"] + [f"    {c}" for c in shown["capabilities"]]
    if shown.get("parameters"):
        out += ["", "  Parameters"] + [f"    {p}" for p in shown["parameters"].splitlines()]
    if shown.get("system"):
        out += ["", "  System"] + [f"    {s}" for s in shown["system"].splitlines()]
    if shown.get("license"):
        out += ["", "  License"] + [f"    {s}" for s in shown["license"].splitlines()[:2]]
    return out


class Repl:
    def __init__(
        self,
        server: Server,
        chat: Chat,
        answer: Callable[[Chat], str],
        extra: dict[str, Any],
    ) -> None:
        self.server = server
        self.chat = chat
        self.answer = answer
        self.extra = extra
        """Request fields every call carries (``keep_alive``)."""

    def run(self, read: Read = input) -> None:
        console.line(f"Chatting with {self.chat.model}. Type /? for help, /bye to leave.")
        while True:
            try:
                text = read_message(read)
            except EOFError:
                console.line("")
                return
            except KeyboardInterrupt:
                console.line("\nUse Ctrl-D or /bye to leave.")
                continue
            if text.startswith("/"):
                if not self.command(text):
                    return
            elif text.strip():
                self.turn(text)

    def turn(self, text: str) -> None:
        self.chat.messages.append({"role": "user", "content": text})
        try:
            reply = self.answer(self.chat)
        except MdlError as exc:
            self.chat.messages.pop()
            console.error(str(exc))
            return
        self.chat.messages.append({"role": "assistant", "content": reply})

    def command(self, text: str) -> bool:
        """Carry out a command; False to leave."""
        words = text.split()
        name, args = words[0], words[1:]
        if name in ("/bye", "/exit"):
            return False
        try:
            if name in ("/?", "/help"):
                console.line(HELP)
            elif name == "/clear":
                self.chat.messages.clear()
                console.line("Cleared session context")
            elif name == "/set":
                self._set(text, args)
            elif name == "/show":
                self._show(args)
            elif name == "/load" and len(args) == 1:
                self._load(args[0])
            elif name == "/save" and len(args) == 1:
                self.server.call("/api/create", self.chat.saved(args[0]))
                console.line(f"Created new model '{args[0]}'")
            elif name in ("/load", "/save"):
                console.line(f"Usage: {name} MODEL")
            else:
                console.line(f"Unknown command '{name}'. Type /? for help")
        except MdlError as exc:
            console.error(str(exc))
        return True

    def _set(self, text: str, args: list[str]) -> None:
        if args[:1] == ["system"] and len(args) > 1:
            self.chat.system = text.split(None, 2)[2]
            console.line("Set system message.")
        elif args[:1] == ["parameter"] and len(args) > 1:
            try:
                console.line(self.chat.set_parameter(args[1], args[2:]))
            except ValueError as exc:
                console.error(str(exc))
        else:
            console.line("Usage: /set parameter NAME VALUE | /set system TEXT")

    def _show(self, args: list[str]) -> None:
        if len(args) != 1 or args[0] not in SHOW_WHAT:
            console.line(f"Usage: /show {'|'.join(SHOW_WHAT)}")
            return
        what = args[0]
        shown = self.server.call("/api/show", {"model": self.chat.model})
        if what == "info":
            console.lines(show_info(shown))
        elif what == "parameters":
            console.lines(self._parameters(shown))
        elif what == "system":
            system = self.chat.system or shown.get("system")
            console.line(system or "No system message was specified for this model.")
        elif what == "license":
            console.line(shown.get("license") or "No license was specified for this model.")
        else:
            console.line(shown.get(what) or f"No {what} was specified for this model.")

    def _parameters(self, shown: dict[str, Any]) -> list[str]:
        out = []
        if self.chat.options:
            out += ["User defined parameters:"]
            out += [f"{k:<30} {v}" for k, v in sorted(self.chat.options.items())]
            out.append("")
        if shown.get("parameters"):
            out += ["Model defined parameters:", shown["parameters"]]
        return out or ["No parameters were specified for this model."]

    def _load(self, model: str) -> None:
        console.line(f"Loading model '{model}'")
        try:
            self.server.call("/api/chat", {"model": model, "messages": [], **self.extra})
        except NotFound:
            console.line(f"Couldn't find model '{model}'")
            return
        self.chat = Chat(model, options=self.chat.options)  # as Ollama: a new chat, same options
