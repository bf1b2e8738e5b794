"""Ollama's ``/api/create`` request as a Modelfile: the Ollama adapter's half of creating a model.

``from`` (a model or a blob digest) or ``files`` (``{name: digest}`` of uploaded blobs),
``adapters``, ``template``, ``system``, ``parameters``, ``messages``, ``license``; or an older
client's ``modelfile`` text. Only store content may be named, never paths on the server's disk:
the server would otherwise read any file its user can. Pure.
"""

from __future__ import annotations

from typing import Any

from mdl.runtime.errors import BadRequest
from mdl.runtime.payload import field, string_list
from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference, ModelfileError
from mdl.spec.modelfile import Instruction, Modelfile, ModelParts, parse_modelfile
from mdl.spec.parameters import PARAMETERS
from mdl.spec.reference import Reference


def create_modelfile(body: dict[str, Any]) -> Modelfile:
    """The request's Modelfile; BadRequest naming what is wrong with it."""
    try:
        if isinstance(body.get("modelfile"), str):
            modelfile = parse_modelfile(body["modelfile"], "modelfile")
        else:
            modelfile = _parts(body).modelfile("request")
    except ModelfileError as exc:
        raise BadRequest(str(exc)) from exc
    for instruction in modelfile.instructions:
        if instruction.command in ("from", "adapter", "draft"):
            _check_source(instruction)
    return modelfile


def _parts(body: dict[str, Any]) -> ModelParts:
    files = _string_map(body, "files")
    source = field(body, "from", str, "")
    if not source and files:
        weights = [d for f, d in files.items() if f.endswith(".gguf")] or list(files.values())
        source = weights[0]
    if not source:
        raise BadRequest('create needs "from" (a model) or "files" (uploaded blob digests)')
    parameters = []
    for name, value in field(body, "parameters", dict, {}).items():
        if name not in PARAMETERS:
            raise BadRequest(f'parameters: unknown parameter "{name}"')
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str | int | float | bool):
                raise BadRequest(f"parameters: {name} must be a string, number or boolean")
            parameters.append((name, _text(item)))
    messages = []
    for message in field(body, "messages", list, []):
        if not isinstance(message, dict) or not all(
            isinstance(message.get(k, ""), str) for k in ("role", "content")
        ):
            raise BadRequest("messages must be objects with role and content")
        messages.append((message.get("role", ""), message.get("content", "")))
    return ModelParts(
        source,
        adapters=list(_string_map(body, "adapters").values()),
        template=body["template"] if isinstance(body.get("template"), str) else None,
        system=body["system"] if isinstance(body.get("system"), str) else None,
        parameters=parameters,
        messages=messages,
        licenses=string_list(body, "license"),
    )


def _text(value: str | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _string_map(body: dict[str, Any], name: str) -> dict[str, str]:
    value = field(body, name, dict, {})
    if not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f'"{name}" must map file names to blob digests')
    return value


def _check_source(instruction: Instruction) -> None:
    value = instruction.value
    try:
        Digest.parse(value)
        return
    except InvalidReference:
        pass
    if instruction.command == "from" and not value.startswith((".", "/", "~")):
        try:
            Reference.parse(value)
            return
        except InvalidReference:
            pass
    raise BadRequest(
        f"{instruction.command.upper()} {value!r}: name a model or an uploaded blob "
        "(sha256:…); the server does not read files by path"
    )
