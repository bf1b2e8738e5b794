"""Model management behind the APIs: list, copy, delete, blobs, create, pull and push.

The runtime depends on the store only. Building (``/api/create``) and transfers (``/api/pull``,
``/api/push``) are done by callables the composition root (``mdl.cli.serve``) injects; without
one, the endpoint answers NotAvailable (501). Their contracts:

- ``Create(modelfile, name) -> Digest``: build ``modelfile`` into the store, tag it ``name``.
  The runtime only passes Modelfiles whose FROM/ADAPTER/DRAFT name store content (digests or
  models), never paths on the server's disk.
- ``Transfer(name, insecure, progress) -> None``: pull ``name`` into the store (or push it).
  It calls ``progress`` as it goes; ``progress`` raises ``ClientGone`` when the client has
  disconnected, and the transfer should let that propagate (it ends the transfer).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio

from mdl.runtime.errors import BadRequest, ModelMissing, NotAvailable
from mdl.runtime.models import parse_name
from mdl.runtime.payload import field, string_list
from mdl.runtime.streaming import ClientGone
from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference, MdlError, ModelfileError, NotFound
from mdl.spec.modelfile import Instruction, Modelfile, parse_modelfile
from mdl.spec.modelpack import ModelConfig
from mdl.spec.parameters import PARAMETERS
from mdl.spec.reference import Reference
from mdl.store.models import load_model
from mdl.store.store import Store


@dataclass(frozen=True)
class TransferProgress:
    """One step of a pull or push, as Ollama reports it (``status`` and byte counts)."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


T = TypeVar("T")
ProgressFn = Callable[[TransferProgress], None]
Transfer = Callable[[Reference, bool, ProgressFn], None]
Create = Callable[[Modelfile, Reference], Digest]


@dataclass(frozen=True)
class Listed:
    name: str
    digest: Digest
    size: int
    modified_at: datetime
    config: ModelConfig


@dataclass
class Library:
    store: Store
    create: Create | None = None
    pull: Transfer | None = None
    push: Transfer | None = None

    def list(self) -> list[Listed]:
        """Every tag naming a model manifest (other artifacts in the store are skipped)."""
        listed = []
        for tagged in self.store.tags():
            try:
                model = load_model(self.store, Reference.parse(tagged.reference))
            except MdlError:
                continue
            listed.append(
                Listed(
                    tagged.reference,
                    model.descriptor.digest,
                    model.size,
                    self.store.modified_at(model.descriptor.digest),
                    model.config,
                )
            )
        return listed

    def copy(self, source: str, destination: str) -> None:
        src, dst = parse_name(source), parse_name(destination)
        try:
            desc = self.store.resolve(src)
        except NotFound as exc:
            raise ModelMissing(f"model '{source}' not found") from exc
        self.store.tag(desc, dst)

    def delete(self, name: str) -> Digest:
        """Remove the name (and blobs nothing else uses); the digest it named."""
        ref = parse_name(name)
        try:
            removed, _ = self.store.remove([ref])
        except NotFound as exc:
            raise ModelMissing(f"model '{name}' not found") from exc
        return removed[0].descriptor.digest

    def has_blob(self, digest: str) -> bool:
        return self.store.has_blob(_digest(digest))

    async def put_blob(self, digest: str, chunks: AsyncIterator[bytes]) -> None:
        """Store an upload if its content has ``digest``; BadRequest (and nothing kept) if not."""
        expected = _digest(digest)
        async with _in_thread(self.store.writing()), _in_thread(self.store.ingest()) as ingest:
            batch = bytearray()
            async for chunk in chunks:
                batch += chunk
                if len(batch) >= 1 << 22:
                    await anyio.to_thread.run_sync(ingest.write, bytes(batch))
                    batch.clear()
            await anyio.to_thread.run_sync(ingest.write, bytes(batch))
            actual = await anyio.to_thread.run_sync(ingest.seal)
            if actual != expected:
                await anyio.to_thread.run_sync(ingest.abort)
                raise BadRequest(f"digest mismatch: the upload is {actual}, not {expected}")
            await anyio.to_thread.run_sync(ingest.publish)

    async def create_model(self, body: dict[str, Any]) -> Digest:
        if self.create is None:
            raise NotAvailable("create is not available in this server")
        name = parse_name(body.get("model") or body.get("name") or "")
        modelfile = create_modelfile(body)
        create = self.create
        return await anyio.to_thread.run_sync(lambda: create(modelfile, name))

    def transfer(
        self, kind: str, name: str, insecure: bool
    ) -> AsyncGenerator[TransferProgress, None]:
        """The pull or push's progress, ending with ``success``; NotAvailable or BadRequest at
        once (before any progress) when it cannot start."""
        function = self.pull if kind == "pull" else self.push
        if function is None:
            raise NotAvailable(f"{kind} is not available in this mdl server")
        return _relay(function, parse_name(name), insecure, kind)


async def _relay(
    function: Transfer, ref: Reference, insecure: bool, kind: str
) -> AsyncGenerator[TransferProgress, None]:
    """Run the transfer in a thread; its progress calls come out here, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[TransferProgress | BaseException | None] = asyncio.Queue()
    gone = threading.Event()

    def progress(step: TransferProgress) -> None:
        if gone.is_set():
            raise ClientGone()
        loop.call_soon_threadsafe(queue.put_nowait, step)

    def work() -> None:
        try:
            function(ref, insecure, progress)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except BaseException as exc:  # relayed to the request, raised there
            loop.call_soon_threadsafe(queue.put_nowait, exc)

    thread = threading.Thread(target=work, name=f"mdl-{kind}", daemon=True)
    thread.start()
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        yield TransferProgress("success")
    finally:
        gone.set()


@asynccontextmanager
async def _in_thread(manager: AbstractContextManager[T]) -> AsyncIterator[T]:
    """Enter and leave a blocking context manager (a file lock, a file) off the event loop."""
    value = await anyio.to_thread.run_sync(manager.__enter__)
    try:
        yield value
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(manager.__exit__, type(exc), exc, exc.__traceback__)
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(manager.__exit__, None, None, None)


def create_modelfile(body: dict[str, Any]) -> Modelfile:
    """Ollama's /api/create request as a Modelfile: ``from`` or ``files`` (blob digests),
    ``adapters``, ``template``, ``system``, ``parameters``, ``messages``, ``license``; or an old
    client's ``modelfile`` text. Only store content may be named, never server paths."""
    try:
        if isinstance(body.get("modelfile"), str):
            modelfile = parse_modelfile(body["modelfile"], "modelfile")
        else:
            modelfile = Modelfile(tuple(_instructions(body)), "request")
    except ModelfileError as exc:
        raise BadRequest(str(exc)) from exc
    for instruction in modelfile.instructions:
        if instruction.command in ("from", "adapter", "draft"):
            _check_source(instruction)
    return modelfile


def _instructions(body: dict[str, Any]) -> list[Instruction]:
    out = []
    files = _string_map(body, "files")
    source = field(body, "from", str, "")
    if source:
        out.append(Instruction("from", source))
    elif files:
        weights = [d for f, d in files.items() if f.endswith(".gguf")] or list(files.values())
        out.append(Instruction("from", weights[0]))
    else:
        raise BadRequest('create needs "from" (a model) or "files" (uploaded blob digests)')
    for digest in _string_map(body, "adapters").values():
        out.append(Instruction("adapter", digest))
    for command in ("template", "system"):
        if isinstance(body.get(command), str):
            out.append(Instruction(command, body[command]))
    for name, value in field(body, "parameters", dict, {}).items():
        if name not in PARAMETERS:
            raise BadRequest(f'parameters: unknown parameter "{name}"')
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str | int | float | bool):
                raise BadRequest(f"parameters: {name} must be a string, number or boolean")
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            out.append(Instruction("parameter", text, key=name))
    for message in field(body, "messages", list, []):
        if not isinstance(message, dict) or not all(
            isinstance(message.get(k, ""), str) for k in ("role", "content")
        ):
            raise BadRequest("messages must be objects with role and content")
        out.append(Instruction("message", message.get("content", ""), key=message.get("role", "")))
    for text in string_list(body, "license"):
        out.append(Instruction("license", text))
    return out


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


def _digest(text: str) -> Digest:
    try:
        return Digest.parse(text.replace("sha256-", "sha256:", 1))
    except InvalidReference as exc:
        raise BadRequest(str(exc)) from exc
