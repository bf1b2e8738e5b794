"""The store as the API handlers see it: one async facade, every call off the event loop.

List, copy, delete, blobs, show, create, pull and push. Each method does its store work (the
tag index, manifests, hashing, the store's lock) in a worker thread (``offloop``), so a pull
holding the lock in another process makes ``/api/delete`` wait without making the server wait.

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

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mdl.runtime import offloop
from mdl.runtime.errors import BadRequest, ModelMissing, NotAvailable
from mdl.runtime.models import ResolvedModel, parse_name
from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference, MdlError, NotFound
from mdl.spec.modelfile import Modelfile
from mdl.spec.modelpack import ModelConfig
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

    async def list(self) -> list[Listed]:
        """Every tag naming a model manifest (other artifacts in the store are skipped)."""
        return await offloop.blocking(_listed, self.store)

    async def copy(self, source: str, destination: str) -> None:
        src, dst = parse_name(source), parse_name(destination)
        await offloop.blocking(_copy, self.store, src, dst, locking=True)

    async def delete(self, name: str) -> Digest | None:
        """Remove the name, then the blobs nothing else uses (once no pull or build holds the
        store's lock); the digest it named if no other name names it now, else None."""
        return await offloop.blocking(_delete, self.store, parse_name(name), locking=True)

    async def has_blob(self, digest: str) -> bool:
        return await offloop.blocking(self.store.has_blob, _digest(digest))

    async def put_blob(self, digest: str, chunks: AsyncIterator[bytes]) -> None:
        """Store an upload if its content has ``digest``; BadRequest (and nothing kept) if not."""
        expected = _digest(digest)
        async with (
            offloop.entered(self.store.writing()),
            offloop.entered(self.store.ingest()) as ingest,
        ):
            batch = bytearray()
            async for chunk in chunks:
                batch += chunk
                if len(batch) >= 1 << 22:
                    await offloop.blocking(ingest.write, bytes(batch))
                    batch.clear()
            await offloop.blocking(ingest.write, bytes(batch))
            actual = await offloop.blocking(ingest.seal)
            if actual != expected:
                await offloop.blocking(ingest.abort)
                raise BadRequest(f"digest mismatch: the upload is {actual}, not {expected}")
            await offloop.blocking(ingest.publish)

    async def show(self, model: ResolvedModel, describe: Callable[[ResolvedModel], Any]) -> Any:
        """``describe(model)``, which reads the model's blobs (licenses, the GGUF header)."""
        return await offloop.blocking(describe, model)

    async def build(self, modelfile: Modelfile, name: str) -> Digest:
        if self.create is None:
            raise NotAvailable("create is not available in this server")
        ref = parse_name(name)
        return await offloop.blocking(self.create, modelfile, ref, locking=True)

    def transfer(
        self, kind: str, name: str, insecure: bool
    ) -> AsyncGenerator[TransferProgress, None]:
        """The pull or push's progress, ending with ``success``; NotAvailable or BadRequest at
        once (before any progress) when it cannot start."""
        function = self.pull if kind == "pull" else self.push
        if function is None:
            raise NotAvailable(f"{kind} is not available in this mdl server")
        ref = parse_name(name)
        return _with_success(
            offloop.reports(lambda progress: function(ref, insecure, progress), f"mdl-{kind}")
        )


async def _with_success(
    steps: AsyncGenerator[TransferProgress, None],
) -> AsyncGenerator[TransferProgress, None]:
    async with aclosing(steps):
        async for step in steps:
            yield step
    yield TransferProgress("success")


def _listed(store: Store) -> list[Listed]:
    listed = []
    for tagged in store.tags():
        try:
            # An index lists by its best variant present, whatever fits the memory now.
            model = load_model(store, Reference.parse(tagged.reference), budget=lambda: None)
        except MdlError:
            continue
        digest = model.descriptor.digest
        listed.append(
            Listed(tagged.reference, digest, model.size, store.modified_at(digest), model.config)
        )
    return listed


def _copy(store: Store, source: Reference, destination: Reference) -> None:
    try:
        desc = store.resolve(source)
    except NotFound as exc:
        raise ModelMissing(f"model '{source}' not found") from exc
    store.tag(desc, destination)


def _delete(store: Store, ref: Reference) -> Digest | None:
    try:
        removed, _ = store.remove([ref])
    except NotFound as exc:
        raise ModelMissing(f"model '{ref}' not found") from exc
    digest = removed[0].descriptor.digest
    return None if any(t.descriptor.digest == digest for t in store.tags()) else digest


def _digest(text: str) -> Digest:
    try:
        return Digest.parse(text.replace("sha256-", "sha256:", 1))
    except InvalidReference as exc:
        raise BadRequest(str(exc)) from exc
