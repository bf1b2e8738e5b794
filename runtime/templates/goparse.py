"""Go template text -> a syntax tree, for the subset of ``text/template`` Ollama's chat
templates use (see ``gotemplate.py``). Pure; errors are TemplateError, in Go's wording where it
has one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mdl.runtime.errors import TemplateError
from mdl.runtime.templates.gofuncs import FUNCTIONS

# -- syntax tree ------------------------------------------------------------------------------


@dataclass
class Field:
    names: list[str]


@dataclass
class Variable:
    name: str
    fields: list[str] = field(default_factory=list)


@dataclass
class Dot:
    pass


@dataclass
class Literal:
    value: Any


@dataclass
class Function:
    name: str


@dataclass
class Chain:
    node: Pipe
    fields: list[str]


Arg = Field | Variable | Dot | Literal | Function | Chain


@dataclass
class Command:
    args: list[Arg]


@dataclass
class Pipe:
    commands: list[Command]
    decl: list[str] = field(default_factory=list)
    assign: bool = False


@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: Pipe


@dataclass
class Branch:
    """``if``, ``range`` or ``with``."""

    kind: str
    pipe: Pipe
    body: list[Node]
    otherwise: list[Node] | None = None


@dataclass
class Jump:
    """``break`` or ``continue``."""

    kind: str


Node = Text | Action | Branch | Jump


# -- lexing -----------------------------------------------------------------------------------

_OPEN, _CLOSE = "{{", "}}"
_SPACE = " \t\r\n"
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<declare>:=)
  | (?P<punct>[|(),=])
  | (?P<raw>`[^`]*`)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:[0-9][0-9_]*)?\.?[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?))
  | (?P<variable>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "0": "\0"}


@dataclass
class _Token:
    kind: str
    text: str
    spaced: bool  # whitespace came right before it


def _segments(source: str) -> Iterator[tuple[str, str]]:
    """Split into ("text", …) and ("action", …) pieces, applying trim markers, dropping comments."""
    pos, trim_next = 0, False
    while True:
        start = source.find(_OPEN, pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(_SPACE)
        if start < 0:
            if text:
                yield "text", text
            return
        inner = start + 2
        if source.startswith("-", inner) and source[inner + 1 : inner + 2] in tuple(_SPACE):
            text = text.rstrip(_SPACE)
            inner += 2
        if text:
            yield "text", text
        end = _action_end(source, inner)
        body = source[inner:end]
        trim_next = body.endswith("-") and body[-2:-1] in tuple(_SPACE)
        if trim_next:
            body = body[:-2]
        pos = end + 2
        stripped = body.strip(_SPACE)
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError(f"template: unclosed comment near {stripped[:20]!r}")
            continue
        yield "action", body


def _action_end(source: str, pos: int) -> int:
    """Where the ``}}`` closing the action starting at ``pos`` is, skipping quoted text."""
    quote = None
    i = pos
    while i < len(source):
        char = source[i]
        if quote:
            if char == "\\" and quote != "`":
                i += 1
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif source.startswith(_CLOSE, i):
            return i
        elif source.startswith("/*", i):
            close = source.find("*/", i + 2)
            if close < 0:
                raise TemplateError("template: unclosed comment")
            i = close + 1
        i += 1
    raise TemplateError(f"template: unclosed action starting {source[pos : pos + 20]!r}")


def _tokens(body: str) -> list[_Token]:
    tokens, pos, spaced = [], 0, True
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if not match or match.lastgroup is None:
            raise TemplateError(f"template: unexpected {body[pos : pos + 10]!r} in action")
        kind, text = match.lastgroup, match.group()
        pos = match.end()
        if kind == "space":
            spaced = True
            continue
        tokens.append(_Token(kind, text, spaced))
        spaced = False
    return tokens


def _unquote(token: _Token) -> str:
    if token.kind == "raw":
        return token.text[1:-1]
    out, body, i = [], token.text[1:-1], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = body[i + 1]
        if code in "uUx":
            width = {"u": 4, "U": 8, "x": 2}[code]
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        elif code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        else:
            raise TemplateError(f"template: unknown escape \\{code} in {token.text}")
    return "".join(out)


# -- parsing ----------------------------------------------------------------------------------

_KEYWORDS = {"if", "range", "with", "else", "end", "break", "continue"}
_UNSUPPORTED = {"define", "template", "block"}


class _Parser:
    def __init__(self, source: str) -> None:
        self.items = list(_segments(source))
        self.pos = 0
        self.loops = 0

    def parse(self) -> list[Node]:
        nodes, stop = self.nodes()
        if stop is not None:
            raise TemplateError(f"template: unexpected {{{{{stop[0].text}}}}}")
        return nodes

    def nodes(self) -> tuple[list[Node], list[_Token] | None]:
        """Nodes up to an ``else`` or ``end``, which is returned (None at the end of input)."""
        nodes: list[Node] = []
        while self.pos < len(self.items):
            kind, body = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                nodes.append(Text(body))
                continue
            tokens = _tokens(body)
            if not tokens:
                raise TemplateError("template: missing value for command")
            head = tokens[0].text if tokens[0].kind == "word" else ""
            if head in ("else", "end"):
                return nodes, tokens
            if head in _UNSUPPORTED:
                raise TemplateError(f"template: {{{{{head}}}}} is not supported")
            if head in ("if", "range", "with"):
                nodes.append(self.branch(head, tokens[1:]))
            elif head in ("break", "continue"):
                if not self.loops:
                    raise TemplateError(f"template: {{{{{head}}}}} outside {{{{range}}}}")
                nodes.append(Jump(head))
            else:
                nodes.append(Action(_PipeParser(tokens).pipe(allow_decl=True)))
        return nodes, None

    def branch(self, kind: str, tokens: list[_Token]) -> Branch:
        pipe = _PipeParser(tokens).pipe(allow_decl=True, two_vars=kind == "range")
        self.loops += kind == "range"
        body, stop = self.nodes()
        self.loops -= kind == "range"
        node = Branch(kind, pipe, body)
        if stop is None:
            raise TemplateError(f"template: unexpected end of input in {{{{{kind}}}}}")
        if stop[0].text == "else":
            if len(stop) > 1 and stop[1].text in ("if", "with") and kind != "range":
                # {{ else if x }} is {{ else }}{{ if x }}…{{ end }} sharing the outer {{ end }}
                node.otherwise = [self.branch(stop[1].text, stop[2:])]
                return node
            if len(stop) > 1:
                raise TemplateError(f"template: unexpected {stop[1].text!r} after else")
            node.otherwise, stop = self.nodes()
            if stop is None or stop[0].text != "end":
                raise TemplateError(f"template: expected {{{{end}}}} for {{{{{kind}}}}}")
        if len(stop) > 1:
            raise TemplateError("template: unexpected words after {{end}}")
        return node


class _PipeParser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> _Token | None:
        at = self.pos + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise TemplateError("template: unexpected end of action")
        self.pos += 1
        return token

    def pipe(self, allow_decl: bool = False, two_vars: bool = False, nested: bool = False) -> Pipe:
        pipe = Pipe([])
        if allow_decl:
            self.declaration(pipe, two_vars)
        while True:
            pipe.commands.append(self.command())
            token = self.peek()
            if token is None or (nested and token.text == ")"):
                break
            if token.text != "|":
                raise TemplateError(f"template: unexpected {token.text!r} in pipeline")
            self.take()
        if not nested and self.peek() is not None:
            raise TemplateError(f"template: unexpected {self.take().text!r} in action")
        return pipe

    def declaration(self, pipe: Pipe, two_vars: bool) -> None:
        first, second = self.peek(), self.peek(1)
        if first is None or first.kind != "variable" or second is None:
            return
        if second.kind == "declare" or second.text == "=":
            pipe.decl, pipe.assign = [first.text], second.text == "="
            self.pos += 2
        elif two_vars and second.text == ",":
            third, fourth = self.peek(2), self.peek(3)
            if third is None or third.kind != "variable" or fourth is None:
                raise TemplateError("template: range can only initialize variables")
            if fourth.kind != "declare":
                raise TemplateError("template: expected := in range declaration")
            pipe.decl = [first.text, third.text]
            self.pos += 4

    def command(self) -> Command:
        args: list[Arg] = []
        while (token := self.peek()) is not None and token.text not in ("|", ")"):
            args.append(self.operand())
        if not args:
            raise TemplateError("template: missing value for command")
        return Command(args)

    def operand(self) -> Arg:
        token = self.take()
        node: Arg
        if token.text == "(":
            inner = self.pipe(nested=True)
            if self.take().text != ")":
                raise TemplateError("template: unclosed left paren")
            node = Chain(inner, [])
            after = self.peek()
            if after is not None and after.kind == "field" and not after.spaced:
                node.fields = self.take().text[1:].split(".")
            return node
        if token.kind == "field":
            return Field(token.text[1:].split("."))
        if token.kind == "variable":
            node = Variable(token.text)
            after = self.peek()
            if after is not None and after.kind == "field" and not after.spaced:
                node.fields = self.take().text[1:].split(".")
            return node
        if token.kind == "dot":
            return Dot()
        if token.kind in ("string", "raw"):
            return Literal(_unquote(token))
        if token.kind == "char":
            return Literal(ord(_unquote(token)))
        if token.kind == "number":
            return Literal(_number(token.text))
        if token.kind == "word":
            if token.text in ("true", "false"):
                return Literal(token.text == "true")
            if token.text == "nil":
                return Literal(None)
            if token.text in FUNCTIONS:
                return Function(token.text)
            if token.text in _KEYWORDS:
                raise TemplateError(f"template: unexpected {token.text!r} in command")
            raise TemplateError(f'template: function "{token.text}" not defined')
        raise TemplateError(f"template: unexpected {token.text!r} in operand")


def _number(text: str) -> int | float:
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        return float(clean)


def parse_nodes(source: str) -> list[Node]:
    return _Parser(source).parse()
