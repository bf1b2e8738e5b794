"""Blocking work off the event loop: the one way the runtime's async code reaches the store, a
file lock, the disk or a thread that reports progress.

The rule reviewers can grep for: no other runtime module calls ``anyio.to_thread`` (a test in
``tests/runtime/test_freeze.py`` checks it), and the API modules never import ``mdl.store``
(an import-linter contract); handlers reach the store through ``library.Library``.

Two thread pools, so that waiting cannot starve reading: work that may wait on the store's lock
(``locking=True``: delete, copy, create, blob uploads) runs in its own few threads, and a dozen
deletes queued behind a pull leave the threads that resolve names and render prompts free.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from typing import TypeVar, TypeVarTuple

import anyio

from mdl.runtime.streaming import ClientGone

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_READS = anyio.CapacityLimiter(16)
_LOCKING = anyio.CapacityLimiter(4)


async def blocking(work: Callable[[*Ts], T], *args: *Ts, locking: bool = False) -> T:
    """``work(*args)`` in a worker thread; cancelling the caller waits for it to finish."""
    return await anyio.to_thread.run_sync(work, *args, limiter=_LOCKING if locking else _READS)


async def abandonable(work: Callable[[*Ts], T], *args: *Ts) -> T:
    """``work(*args)`` in a worker thread that a cancelled caller does not wait for (work that
    stops itself, as a prompt render within its budget)."""
    return await anyio.to_thread.run_sync(work, *args, abandon_on_cancel=True, limiter=_READS)


@asynccontextmanager
async def entered(manager: AbstractContextManager[T]) -> AsyncIterator[T]:
    """Enter and leave a blocking context manager (a file lock, a file) in worker threads."""
    value = await blocking(manager.__enter__, locking=True)
    try:
        yield value
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await blocking(manager.__exit__, type(exc), exc, exc.__traceback__, locking=True)
        raise
    with anyio.CancelScope(shield=True):
        await blocking(manager.__exit__, None, None, None, locking=True)


Report = Callable[[T], None]


async def reports(work: Callable[[Report[T]], None], name: str) -> AsyncGenerator[T, None]:
    """Run ``work(report)`` in its own thread; what it reports comes out here, in order, and
    what it raises is raised here. Closing the generator makes the next ``report`` raise
    ``ClientGone`` in the thread, which should let it propagate (it ends the work)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[T] | BaseException | None] = asyncio.Queue()
    gone = threading.Event()

    def report(item: T) -> None:
        if gone.is_set():
            raise ClientGone()
        loop.call_soon_threadsafe(queue.put_nowait, (item,))

    def run() -> None:
        try:
            work(report)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except BaseException as exc:  # relayed to the listener, raised there
            loop.call_soon_threadsafe(queue.put_nowait, exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item[0]
    finally:
        gone.set()
