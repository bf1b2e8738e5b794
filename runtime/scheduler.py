"""Which models are loaded, and who uses them when.

- At most ``max_loaded`` runners, within ``budget_bytes`` (estimates): to load another, the least
  recently used idle runner is unloaded first (a retired one before any other); if every runner
  is busy, the load waits until one is idle. A model whose estimate alone exceeds the budget
  is refused (OutOfMemory) instead of attempted.
- Up to ``spec.num_parallel`` requests at a time per runner (its sequences): the others queue,
  FIFO, up to ``max_queue`` waiting, beyond which ServerBusy (503). Different runners serve in
  parallel. Requests for a model that is loading share that one load.
- Keep-alive as Ollama's: after its last request a runner stays ``keep_alive`` seconds (None:
  forever; 0: unload now).
- A name that now resolves to another digest (re-tag, newer pull), or the same model asked with
  other load options, retires the old runner: it drains its queue, then unloads.
- A runner that dies (crash, kill) is forgotten at once; requests queued on it load it again.
  A request it never answered (RunnerGone) runs once more on a fresh runner (``serve``): the
  runner may have died before the request reached it.

All bookkeeping runs on the event loop; ``release`` never awaits, so it is safe in the cleanup of
a cancelled request.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from mdl.runtime.errors import OutOfMemory, RunnerGone, ServerBusy
from mdl.runtime.memory import gib
from mdl.runtime.runner import LoadSpec, ModelRunner, RunnerFactory

log = logging.getLogger("mdl.runtime")
T = TypeVar("T")


@dataclass(frozen=True)
class Want:
    """A model as a request needs it."""

    name: str
    identity: str
    """What is served (the manifest digest); with ``spec``, which runner can answer."""
    spec: LoadSpec
    size: int
    """Estimated bytes once loaded."""


class State(enum.Enum):
    LOADED = "loaded"
    CLOSING = "closing"
    GONE = "gone"


class Gate:
    """A FIFO semaphore: ``capacity`` holders at once, the rest wait in arrival order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.busy = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.busy < self.capacity and not self._waiting:
            self.busy += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # handed over just as it was cancelled: pass it on
            else:
                self._waiting.remove(turn)
            raise

    def release(self) -> None:
        """Hand the place to the first waiter, or free it; never awaits."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.busy -= 1


@dataclass(eq=False)
class Slot:
    want: Want
    runner: ModelRunner
    gate: Gate
    users: int = 0
    """Requests running or queued."""
    last_used: float = 0.0
    expires_at: datetime | None = None
    """When an idle runner unloads; None: never (or not yet known)."""
    state: State = State.LOADED
    keep_alive: float | None = None
    retired: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class Lease:
    runner: ModelRunner
    slot: Slot
    load_ns: int
    """Time this request spent waiting for the model to load (0 if it was loaded)."""


class Scheduler:
    def __init__(
        self,
        factory: RunnerFactory,
        *,
        max_loaded: int = 3,
        budget_bytes: int | None = None,
        max_queue: int = 512,
    ) -> None:
        self.factory = factory
        self.max_loaded = max(1, max_loaded)
        self.budget_bytes = budget_bytes
        self.max_queue = max_queue
        self.slots: list[Slot] = []
        self._loading: dict[tuple[str, LoadSpec], asyncio.Task[Slot]] = {}
        self._awaiting_load: dict[tuple[str, LoadSpec], int] = {}
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()
        self._watchers: set[asyncio.Task[None]] = set()

    async def acquire(self, want: Want) -> Lease:
        """Wait for the model's runner (loading it if need be) and for this request's turn."""
        started = time.perf_counter_ns()
        load_ns = 0
        while True:
            self._retire_others(want)
            slot = self._find(want)
            if slot is None:
                slot = await self._load(want)
                load_ns = time.perf_counter_ns() - started
            self._check_queue(want, slot.users - slot.gate.capacity + 1)
            slot.want = want  # the name it was last asked by, for /api/ps
            slot.users += 1
            _cancel(slot)
            try:
                await slot.gate.acquire()
            except BaseException:
                slot.users -= 1
                self._settle(slot, slot.keep_alive)
                raise
            if slot.state is State.LOADED:
                return Lease(slot.runner, slot, load_ns)
            slot.gate.release()  # it died or was unloaded while this request waited: reload
            slot.users -= 1

    async def serve(
        self,
        want: Want,
        keep_alive: float | None,
        work: Callable[[Lease], AsyncGenerator[T, None]],
    ) -> AsyncGenerator[T, None]:
        """What ``work`` yields on a lease of the model's runner, released with ``keep_alive``.
        If the runner is gone before it answered, once more on a fresh one."""
        for last in (False, True):
            lease = await self.acquire(want)
            try:
                async with aclosing(work(lease)) as events:
                    async for event in events:
                        yield event
                return
            except RunnerGone as gone:
                self._forget(lease.slot)
                if last:
                    raise
                log.warning("%s; loading %s again for the request", gone, want.name)
            finally:
                self.release(lease, keep_alive)

    def release(self, lease: Lease, keep_alive: float | None) -> None:
        """End a request; the runner then stays ``keep_alive`` seconds (None: forever)."""
        slot = lease.slot
        slot.gate.release()
        slot.users -= 1
        slot.last_used = time.monotonic()
        self._settle(slot, keep_alive)

    async def unload(self, identity: str) -> None:
        """Unload the runners serving ``identity`` (once the requests they have are answered)."""
        found = [s for s in self.slots if s.want.identity == identity and s.state is State.LOADED]
        for slot in found:
            slot.retired = True
            if slot.users == 0:
                self._unload_soon(slot)
        await self._wait_closed()

    def loaded(self) -> list[Slot]:
        return [s for s in self.slots if s.state is State.LOADED]

    async def close(self) -> None:
        for slot in list(self.slots):
            self._unload_soon(slot)
        for task in list(self._loading.values()):
            task.cancel()
        await self._wait_closed()
        for watcher in list(self._watchers):
            watcher.cancel()

    # -- internals ----------------------------------------------------------------------------

    def _find(self, want: Want) -> Slot | None:
        """The runner for this model and these load options (whatever name it was asked by)."""
        for slot in self.slots:
            if slot.state is State.LOADED and not slot.retired and _same_runner(slot.want, want):
                return slot
        return None

    def _retire_others(self, want: Want) -> None:
        """Runners that this name used to mean, or this model with other load options."""
        for slot in self.slots:
            if slot.state is not State.LOADED or slot.retired or _same_runner(slot.want, want):
                continue
            if slot.want.identity == want.identity or slot.want.name == want.name:
                slot.retired = True
                log.info("retiring %s (%s): replaced", slot.want.name, slot.want.identity[:19])
                if slot.users == 0:
                    self._unload_soon(slot)

    def _check_queue(self, want: Want, waiting: int) -> None:
        if waiting > self.max_queue:
            raise ServerBusy(
                f"server busy: {waiting} requests for {want.name} are queued "
                f"(MDL_MAX_QUEUE={self.max_queue}); try again later"
            )

    async def _load(self, want: Want) -> Slot:
        """Load the model, or join the load already under way; waiting counts as queued."""
        key = (want.identity, want.spec)
        if self.budget_bytes is not None and want.size > self.budget_bytes:
            raise OutOfMemory(
                f"{want.name} would need about {gib(want.size)} of memory with num_ctx "
                f"{want.spec.num_ctx}, more than the {gib(self.budget_bytes)} available; "
                "lower num_ctx or free memory"
            )
        self._check_queue(want, self._awaiting_load.get(key, 0))
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load_now(want))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        self._awaiting_load[key] = self._awaiting_load.get(key, 0) + 1
        try:
            return await asyncio.shield(task)
        finally:
            self._awaiting_load[key] -= 1
            if not self._awaiting_load[key]:
                del self._awaiting_load[key]

    async def _load_now(self, want: Want) -> Slot:
        async with self._load_lock:
            await self._make_room(want.size)
            runner = await self.factory(want.spec)
            slot = Slot(want, runner, Gate(want.spec.num_parallel), last_used=time.monotonic())
            self.slots.append(slot)
            watcher = asyncio.create_task(self._watch(slot))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
            return slot

    async def _make_room(self, size: int) -> None:
        while True:
            live = self.loaded()
            used = sum(s.want.size for s in live)
            fits = self.budget_bytes is None or used + size <= self.budget_bytes
            if not live or (len(live) < self.max_loaded and fits):
                return
            idle = [s for s in live if s.users == 0]
            if idle:
                victim = min(idle, key=lambda s: (not s.retired, s.last_used))
                log.info("evicting %s to make room", victim.want.name)
                self._unload_soon(victim)
                await self._wait_closed()
                continue
            changed = self._changed
            await changed.wait()

    def _settle(self, slot: Slot, keep_alive: float | None) -> None:
        """After a request: unload, arm the keep-alive timer, or keep forever."""
        if slot.state is not State.LOADED:
            return
        now = datetime.now(UTC)
        slot.expires_at = None if keep_alive is None else now + timedelta(seconds=keep_alive)
        slot.keep_alive = keep_alive
        if slot.users == 0:
            if slot.retired or keep_alive == 0:
                self._unload_soon(slot)
            elif keep_alive is not None:
                loop = asyncio.get_running_loop()
                slot.timer = loop.call_later(keep_alive, self._expire, slot)
        self._notify()

    def _expire(self, slot: Slot) -> None:
        if slot.users == 0 and slot.state is State.LOADED:
            log.info("unloading %s: keep-alive expired", slot.want.name)
            self._unload_soon(slot)

    def _unload_soon(self, slot: Slot) -> None:
        """Take the runner out of service now; its process stops in the background."""
        if slot.state is not State.LOADED:
            return
        slot.state = State.CLOSING
        _cancel(slot)
        self.slots.remove(slot)
        task = asyncio.create_task(slot.runner.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self._notify()

    async def _wait_closed(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _watch(self, slot: Slot) -> None:
        await slot.runner.wait_exited()
        if slot.state is State.LOADED:
            log.warning("runner for %s is gone; the next request reloads it", slot.want.name)
        self._forget(slot)

    def _forget(self, slot: Slot) -> None:
        """A runner that died: out of service now (its process is gone, nothing to close)."""
        if slot.state is State.LOADED:
            _cancel(slot)
            self.slots.remove(slot)
            self._notify()
        slot.state = State.GONE

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _same_runner(a: Want, b: Want) -> bool:
    return a.identity == b.identity and a.spec == b.spec


def _cancel(slot: Slot) -> None:
    if slot.timer is not None:
        slot.timer.cancel()
        slot.timer = None
