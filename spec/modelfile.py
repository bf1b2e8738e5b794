"""Ollama-compatible Modelfiles: bytes -> text -> ``Modelfile`` -> text, with no I/O.

The syntax is what Ollama's ``parser.ParseFile`` accepts, read and tested against its source:

- One instruction per line, ``NAME value``; names are case-insensitive, ``PARAMETER`` takes a
  name then a value and ``MESSAGE`` a role (``system``, ``user`` or ``assistant``, lower-case)
  then a value. Blank lines are skipped; a line whose first non-blank character is ``#`` is a
  comment. A ``#`` anywhere else is text: ``FROM llama3 # base`` names ``llama3 # base``.
- A value is trimmed of spaces, tabs and line breaks at both ends. If it starts with triple
  quotes or with ``"``, it runs, across lines, until a line that ends (trailing blanks aside)
  with the same quote; the text between the quotes is kept exactly, with no escapes and line
  breaks as written (CRLF stays CRLF). So ``"…"`` may span lines too, and text after a closing
  quote does not end the value: ``SYSTEM "a" b`` keeps reading, and is an unterminated quote
  unless some later line ends with ``"``.
- Characters that are neither printable nor space, tab, CR or LF (control and format
  characters such as U+200B or U+FEFF, other Unicode spaces) are dropped, as Ollama drops them.

Where mdl differs from Ollama, it is stricter, or lenient only with text Ollama rejects:

- stricter: a missing value is an error even when trailing blanks follow the name (Ollama reads
  ``SYSTEM `` as ""); ``FROM ""`` and an empty ADAPTER or DRAFT are errors; PARAMETER values
  are typed when parsed, not when the model is created; undecodable bytes are errors (Ollama
  substitutes U+FFFD).
- lenient: runs of blanks between tokens (Ollama reads ``PARAMETER  top_k 1`` as a parameter
  named ""), and dropped characters inside instruction names.
- line numbers count CRLF once (Ollama counts it twice).
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mdl.spec.errors import ModelfileError
from mdl.spec.parameters import ParamValue, coerce_parameter

COMMANDS = frozenset(
    {
        "from",
        "parameter",
        "template",
        "system",
        "adapter",
        "license",
        "message",
        "requires",
        "draft",
        "renderer",
        "parser",
    }
)
ROLES = ("system", "user", "assistant")
_PATHS = frozenset({"from", "adapter", "draft"})
_KEYED = frozenset({"parameter", "message"})

_SKIP = re.compile(r"(?:[ \t\r\n]+|#[^\r\n]*)*")
_WORD = re.compile(r"[^ \t\r\n]+")
_BLANKS = re.compile(r"[ \t]*")
_LINE_END = re.compile(r"[\r\n]")
_LINE_BREAK = re.compile(r"\r\n?|\n")
_NEEDS_QUOTES = re.compile(r'["\r\n]')
_TRIPLE = '"' * 3
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class Instruction:
    """One instruction. ``key`` is the PARAMETER name or MESSAGE role, else ""; ``value`` is the
    text as written (unquoted), for PARAMETER before typing. ``line`` is where the instruction
    starts; it is provenance, so equality ignores it."""

    command: str
    value: str
    line: int = field(default=0, compare=False)
    key: str = ""

    @property
    def param(self) -> ParamValue | None:
        """The typed PARAMETER value; None for other instructions and deprecated parameters."""
        return coerce_parameter(self.key, self.value) if self.command == "parameter" else None


@dataclass(frozen=True)
class Modelfile:
    """A valid Modelfile: constructing one checks every instruction and that FROM is present.

    Single-valued instructions (TEMPLATE, SYSTEM, …, and FROM and DRAFT) resolve last-wins, as
    Ollama's create request does; ADAPTER, LICENSE and MESSAGE accumulate.
    """

    instructions: tuple[Instruction, ...]
    path: str = field(default="Modelfile", compare=False)

    def __post_init__(self) -> None:
        for instruction in self.instructions:
            _check(instruction, self.path)
        if self.last("from") is None:
            raise ModelfileError(self.path, 1, "no FROM line")

    def last(self, command: str) -> Instruction | None:
        return next((i for i in reversed(self.instructions) if i.command == command), None)

    def every(self, command: str) -> list[Instruction]:
        return [i for i in self.instructions if i.command == command]

    @property
    def from_(self) -> Instruction:
        instruction = self.last("from")
        assert instruction is not None  # __post_init__ guarantees it
        return instruction

    @property
    def parameters(self) -> list[tuple[str, ParamValue]]:
        """Typed parameters in file order, without the deprecated ones Ollama ignores."""
        typed = ((i.key, i.param) for i in self.every("parameter"))
        return [(name, value) for name, value in typed if value is not None]

    @property
    def deprecated_parameters(self) -> list[Instruction]:
        """PARAMETER lines Ollama accepts but ignores; worth a warning."""
        return [i for i in self.every("parameter") if i.param is None]

    @property
    def template(self) -> str | None:
        return self._last_value("template")

    @property
    def system(self) -> str | None:
        return self._last_value("system")

    @property
    def adapters(self) -> list[Instruction]:
        return self.every("adapter")

    @property
    def licenses(self) -> list[str]:
        return [i.value for i in self.every("license")]

    @property
    def messages(self) -> list[tuple[str, str]]:
        return [(i.key, i.value) for i in self.every("message")]

    @property
    def requires(self) -> str | None:
        return self._last_value("requires")

    @property
    def draft(self) -> Instruction | None:
        return self.last("draft")

    @property
    def renderer(self) -> str | None:
        return self._last_value("renderer")

    @property
    def parser(self) -> str | None:
        return self._last_value("parser")

    def _last_value(self, command: str) -> str | None:
        instruction = self.last(command)
        return None if instruction is None else instruction.value


@dataclass(frozen=True)
class ModelParts:
    """A model's parts as Modelfile text, for the writers of "a Modelfile from parts" (the
    builder's normalised Modelfile, ``mdl show``, Ollama's ``/api/show`` and ``/api/create``)."""

    source: str
    adapters: Sequence[str] = ()
    draft: str | None = None
    template: str | None = None
    system: str | None = None
    parameters: Sequence[tuple[str, str]] = ()
    """(name, value as text); a repeated parameter (``stop``) once per value."""
    messages: Sequence[tuple[str, str]] = ()
    """(role, content)."""
    licenses: Sequence[str] = ()
    extras: Sequence[tuple[str, str]] = ()
    """(command, value) of the other single-valued instructions, in this order."""

    def modelfile(self, path: str = "Modelfile") -> Modelfile:
        """The Modelfile, in the order FROM, ADAPTER, DRAFT, TEMPLATE, SYSTEM, PARAMETER,
        MESSAGE, LICENSE, then the rest; ModelfileError if a part is not valid."""
        lines = [Instruction("from", self.source)]
        lines += [Instruction("adapter", a) for a in self.adapters]
        for command, value in (("draft", self.draft), ("template", self.template),
                               ("system", self.system)):  # fmt: skip
            if value is not None:
                lines.append(Instruction(command, value))
        lines += [Instruction("parameter", value, key=name) for name, value in self.parameters]
        lines += [Instruction("message", content, key=role) for role, content in self.messages]
        lines += [Instruction("license", text) for text in self.licenses]
        lines += [Instruction(command, value) for command, value in self.extras]
        return Modelfile(tuple(lines), path)


def decode_modelfile(data: bytes, path: str) -> str:
    """Decode as Ollama does: UTF-8, or UTF-16 LE/BE when a BOM says so; a UTF-8 BOM is dropped.

    Undecodable bytes are a ModelfileError on the line they are on (Ollama would substitute
    U+FFFD instead).
    """
    encoding, body = "utf-8", data
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding, body = name, data[len(bom) :]
            break
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        before = body[: exc.start].decode(encoding)
        line = len(_LINE_BREAK.findall(before)) + 1
        raise ModelfileError(path, line, f"not valid {exc.encoding.upper()}: {exc.reason}") from exc


def parse_modelfile(text: str, path: str = "Modelfile") -> Modelfile:
    """Parse Modelfile text; every error is a ModelfileError naming ``path`` and the line."""
    text = "".join(filter(_kept, text))
    line_of = _line_numbers(text)
    instructions: list[Instruction] = []
    pos = _end(_SKIP, text, 0)
    while pos < len(text):
        line = line_of(pos)
        word, pos = _word(text, pos)
        command = word.lower()
        if not word.isascii() or command not in COMMANDS:
            raise ModelfileError(path, line, f'unknown instruction "{word}"')
        head, key = command.upper(), ""
        if command in _KEYED:
            pos = _value_start(text, pos, path, line, head)
            key, pos = _word(text, pos)
            head = f"{head} {key}"
        start = _value_start(text, pos, path, line, head)
        value, pos = _scan_value(text, start)
        if value is None:
            quote = _TRIPLE if text.startswith(_TRIPLE, start) else '"'
            raise ModelfileError(
                path, line, f"unterminated {quote}: no line ends with the closing {quote}"
            )
        instructions.append(Instruction(command, value, line, key))
        pos = _end(_SKIP, text, pos)
    return Modelfile(tuple(instructions), path)


def format_modelfile(mf: Modelfile) -> str:
    """Modelfile text that parses back to an equal Modelfile.

    Values print bare when they can, else between triple quotes (Ollama has no escapes). A value
    that cannot be written is a ModelfileError at the instruction's line: one holding characters
    Modelfile parsers drop, or one where a line inside the value ends with triple quotes, which
    would close it early.
    """
    lines = []
    for instruction in mf.instructions:
        head = instruction.command.upper()
        if instruction.key:
            head = f"{head} {instruction.key}"
        lines.append(f"{head} {_quote(instruction, mf.path)}\n")
    return "".join(lines)


def _check(instruction: Instruction, path: str) -> None:
    command, key, line = instruction.command, instruction.key, instruction.line
    if command not in COMMANDS:
        raise ModelfileError(path, line, f'unknown instruction "{command}"')
    if key and command not in _KEYED:
        raise ModelfileError(path, line, f'{command.upper()} takes no name, got "{key}"')
    if command == "message" and key not in ROLES:
        roles = '"system", "user" or "assistant"'
        raise ModelfileError(path, line, f'MESSAGE role must be {roles}, not "{key}"')
    if command == "parameter":
        try:
            coerce_parameter(key, instruction.value)
        except ValueError as exc:
            raise ModelfileError(path, line, str(exc)) from exc
    if command in _PATHS and not instruction.value:
        raise ModelfileError(path, line, f"empty {command.upper()}")


def _quote(instruction: Instruction, path: str) -> str:
    value, head = instruction.value, instruction.command.upper()
    dropped = next((c for c in value if not _kept(c)), None)
    if dropped is not None:
        message = f"{head} value holds U+{ord(dropped):04X}, which a Modelfile cannot hold"
        raise ModelfileError(path, instruction.line, message)
    if not value:
        return '""'
    if not _NEEDS_QUOTES.search(value) and value == value.strip(" \t"):
        return value
    quoted = _TRIPLE + value + _TRIPLE
    if _scan_value(quoted, 0) != (value, len(quoted)):
        message = f"{head} value cannot be written: a line in it ends with {_TRIPLE}"
        raise ModelfileError(path, instruction.line, message)
    return quoted


def _kept(char: str) -> bool:
    return char.isprintable() or char in " \t\r\n"


def _line_numbers(text: str) -> Callable[[int], int]:
    starts = [m.end() for m in _LINE_BREAK.finditer(text)]
    return lambda pos: bisect.bisect_right(starts, pos) + 1


def _word(text: str, pos: int) -> tuple[str, int]:
    end = _end(_WORD, text, pos)  # callers stand on a non-blank character
    return text[pos:end], end


def _end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    match = pattern.match(text, pos)
    assert match is not None, pattern
    return match.end()


def _value_start(text: str, pos: int, path: str, line: int, head: str) -> int:
    pos = _end(_BLANKS, text, pos)
    if pos == len(text) or text[pos] in "\r\n":
        raise ModelfileError(path, line, f"missing value for {head}")
    return pos


def _scan_value(text: str, start: int) -> tuple[str | None, int]:
    """Read the value that starts at ``start`` (non-blank) as Ollama does.

    Returns the value and the position after the line break that ended it, or None (and the
    end of the text) when a quote is never closed.
    """
    quote = _TRIPLE if text.startswith(_TRIPLE, start) else '"' if text[start] == '"' else ""
    pos = start
    while True:
        match = _LINE_END.search(text, pos)
        end = match.start() if match else len(text)
        stop = end
        while stop > start and text[stop - 1] in " \t\r\n":
            stop -= 1
        if not quote or (stop - start >= 2 * len(quote) and text.endswith(quote, start, stop)):
            return text[start + len(quote) : stop - len(quote)], end + 1 if match else end
        if match is None:
            return None, end
        pos = end + 1
