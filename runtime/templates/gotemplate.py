"""A Go ``text/template`` interpreter for the subset Ollama's chat templates use. Pure.

Supported: text with ``{{ }}`` actions and the ``{{-``/``-}}`` trim markers, comments, fields
(``.System``, ``.Function.Name``), variables (``$``, ``$i``, ``$msg := …``, ``$x = …``),
``if``/``else if``/``else``, ``range`` (lists, maps in key order, ints; one or two variables;
``else``; ``break``/``continue``), ``with``/``else with``, pipelines (``a | f``), parenthesised
pipelines with fields (``(index .Messages 0).Role``), string/number/bool/nil literals, and the
functions ``and or not eq ne lt le gt ge len index slice print printf println`` plus Ollama's
``json``, ``currentDate`` and ``yesterdayDate``. ``define``/``template``/``block`` are refused.

The pieces: ``goparse`` (text -> syntax tree), ``govalues`` (what values are, print as, and
whether they are true), ``gofuncs`` (the functions); here, the template and its execution.

    >>> parse("{{- range .Messages }}<{{ .Role }}>{{ .Content }}{{ end }}").execute(
    ...     {"Messages": [{"Role": "user", "Content": "hi"}]})
    '<user>hi'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from mdl.runtime.errors import TemplateError
from mdl.runtime.templates.budget import Budget
from mdl.runtime.templates.gofuncs import call
from mdl.runtime.templates.goparse import (
    Action,
    Arg,
    Branch,
    Chain,
    Command,
    Dot,
    Field,
    Function,
    Literal,
    Node,
    Pipe,
    Text,
    Variable,
    parse_nodes,
)
from mdl.runtime.templates.govalues import GoJSON, go_json, go_print, truth

__all__ = ["GoJSON", "Template", "go_json", "go_print", "parse"]


# -- the template -----------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Template:
    """A parsed template: ``execute(data)`` renders it; ``identifiers`` is what Ollama's
    ``Template.Vars`` lists (field and variable names, lower-cased)."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes

    @property
    def identifiers(self) -> set[str]:
        found: set[str] = set()
        for node in _walk_nodes(self.nodes):
            for arg in _walk_args(node):
                if isinstance(arg, Field):
                    found.update(name.lower() for name in arg.names)
                elif isinstance(arg, Variable):
                    found.add(arg.name.lower())
                    found.update(name.lower() for name in arg.fields)
        return found

    def execute(self, data: Any, budget: Budget | None = None) -> str:
        """Render with ``data`` as dot, within ``budget`` (a fresh one if None)."""
        out: list[str] = []
        try:
            _Executor(data, out, budget or Budget()).run(self.nodes, data)
        except RecursionError:
            raise TemplateError("template: nested too deeply") from None
        return "".join(out)

    def with_response(self) -> Template:
        """This template with ``{{ .Response }}`` appended, as Ollama's Parse does for templates
        that name neither ``.Messages`` nor ``.Response``."""
        return Template([*self.nodes, Action(Pipe([Command([Field(["Response"])])]))])

    def cut_after_response(self) -> Template:
        """A copy that stops right after the first ``.Response`` field (Ollama's ``deleteNode``):
        rendering it leaves the prompt open where the model's answer begins."""
        cut = [False]
        return Template(_cut_list(self.nodes, cut))


def parse(source: str) -> Template:
    """Parse Go template text; TemplateError (with Go's wording where it has one) if invalid."""
    try:
        return Template(parse_nodes(source))
    except RecursionError:
        raise TemplateError("template: nested too deeply") from None


def _walk_nodes(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        if isinstance(node, Branch):
            yield from _walk_nodes(node.body)
            if node.otherwise:
                yield from _walk_nodes(node.otherwise)


def _walk_args(node: Node) -> Iterator[Arg]:
    if isinstance(node, Action | Branch):
        yield from _pipe_args(node.pipe)


def _pipe_args(pipe: Pipe) -> Iterator[Arg]:
    for command in pipe.commands:
        for arg in command.args:
            yield arg
            if isinstance(arg, Chain):
                yield from _pipe_args(arg.node)


def _cut_list(nodes: list[Node], cut: list[bool]) -> list[Node]:
    kept: list[Node] = []
    for node in nodes:
        if cut[0]:
            continue
        if isinstance(node, Branch):
            body = _cut_list(node.body, cut)
            otherwise = _cut_list(node.otherwise, cut) if node.otherwise is not None else None
            kept.append(Branch(node.kind, node.pipe, body, otherwise))
        elif isinstance(node, Action):
            commands = []
            for command in node.pipe.commands:
                args = []
                for arg in command.args:
                    if cut[0]:
                        break
                    args.append(arg)
                    if isinstance(arg, Field) and "Response" in arg.names:
                        cut[0] = True
                if args:
                    commands.append(Command(args))
            if commands:
                kept.append(Action(Pipe(commands, node.pipe.decl, node.pipe.assign)))
        else:
            kept.append(node)
    return kept


# -- execution --------------------------------------------------------------------------------


class _Executor:
    def __init__(self, root: Any, out: list[str], budget: Budget) -> None:
        self.out = out
        self.budget = budget
        self.vars: list[tuple[str, Any]] = [("$", root)]

    def write(self, text: str) -> None:
        self.budget.emit(len(text))
        self.out.append(text)

    def run(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            self.budget.step()
            if isinstance(node, Text):
                self.write(node.text)
            elif isinstance(node, Action):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.write(go_print(value))
            elif isinstance(node, Branch):
                mark = len(self.vars)
                try:
                    self.branch(node, dot)
                finally:
                    del self.vars[mark:]
            else:
                raise _Break() if node.kind == "break" else _Continue()

    def branch(self, node: Branch, dot: Any) -> None:
        if node.kind == "range":
            self.range(node, dot)
            return
        value = self.pipe(node.pipe, dot)
        if truth(value):
            self.run(node.body, value if node.kind == "with" else dot)
        elif node.otherwise is not None:
            self.run(node.otherwise, dot)

    def range(self, node: Branch, dot: Any) -> None:
        decl = node.pipe.decl
        value = self.pipe(Pipe(node.pipe.commands), dot)
        if isinstance(value, GoJSON):
            value = value.value
        items: Iterator[tuple[Any, Any]]
        if value is None:
            count, items = 0, iter(())
        elif isinstance(value, Mapping):
            count, items = len(value), ((key, value[key]) for key in sorted(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            count, items = value, ((i, i) for i in range(value))  # lazily: range 10**9 is fine
        elif isinstance(value, Sequence) and not isinstance(value, str):
            count, items = len(value), enumerate(value)
        else:
            raise TemplateError(f"template: range can't iterate over {go_print(value)}")
        if count <= 0:
            if node.otherwise is not None:
                self.run(node.otherwise, dot)
            return
        mark = len(self.vars)
        for key, item in items:
            self.budget.step()
            del self.vars[mark:]
            if len(decl) == 2:
                self.vars += [(decl[0], key), (decl[1], item)]
            elif decl:
                self.vars.append((decl[0], item))
            try:
                self.run(node.body, item)
            except _Continue:
                continue
            except _Break:
                break

    def pipe(self, pipe: Pipe, dot: Any) -> Any:
        value: Any = None
        for i, command in enumerate(pipe.commands):
            value = self.command(command, dot, value, piped=i > 0)
        if pipe.decl:
            if pipe.assign:
                self.assign(pipe.decl[0], value)
            else:
                self.vars.append((pipe.decl[-1], value))
        return value

    def assign(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise TemplateError(f"template: undefined variable: {name}")

    def command(self, command: Command, dot: Any, last: Any, piped: bool) -> Any:
        first = command.args[0]
        if isinstance(first, Function):
            args: list[Callable[[], Any]] = [partial(self.arg, a, dot) for a in command.args[1:]]
            if piped:
                args.append(lambda: last)
            return call(first.name, args)
        if len(command.args) > 1 or piped:
            raise TemplateError(f"template: can't give argument to non-function {first}")
        return self.arg(first, dot)

    def arg(self, arg: Arg, dot: Any) -> Any:
        if isinstance(arg, Dot):
            return dot
        if isinstance(arg, Literal):
            return arg.value
        if isinstance(arg, Field):
            return _fields(dot, arg.names)
        if isinstance(arg, Variable):
            return _fields(self.variable(arg.name), arg.fields)
        if isinstance(arg, Chain):
            return _fields(self.pipe(arg.node, dot), arg.fields)
        return call(arg.name, [])

    def variable(self, name: str) -> Any:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        raise TemplateError(f"template: undefined variable: {name}")


def _fields(value: Any, names: list[str]) -> Any:
    for name in names:
        if isinstance(value, GoJSON):
            value = value.value
        if isinstance(value, Mapping):
            value = value.get(name)
        elif value is None:
            return None
        else:
            raise TemplateError(f"template: can't evaluate field {name} in {go_print(value)!r}")
    return value
