"""The scheduler's policy, with runners from an injected factory (STYLE: collaborators are
passed in): LRU eviction, the memory budget, keep-alive, the queue bound, retiring, crashes.
Real llama.cpp runners go through the same scheduler in test_hot_swap.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

import pytest

from mdl.runtime.errors import LoadFailed, OutOfMemory, RunnerCrashed, RunnerGone, ServerBusy
from mdl.runtime.runner import (
    CompletionRequest,
    Done,
    Embeddings,
    Failed,
    LoadSpec,
    ModelFacts,
    RunnerEvent,
    Token,
)
from mdl.runtime.scheduler import Lease, Scheduler, Want

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Runner:
    def __init__(self, spec: LoadSpec, dies: str = "") -> None:
        self.spec = spec
        self.facts = ModelFacts(512, "<s>", "</s>")
        self.closed = False
        self.exited = asyncio.Event()
        self.dies = dies
        """"before": dead before a request reaches it (not noticed yet); "during": after a token."""

    async def complete(self, request: CompletionRequest) -> AsyncGenerator[RunnerEvent, None]:
        if self.dies == "before":
            raise RunnerGone(f"{self.spec.name} was killed")
        if self.dies == "during":
            yield Token("half")
            raise RunnerCrashed(f"{self.spec.name} was killed while generating")
        yield Done("stop")

    async def embed(self, texts: Sequence[str], truncate: bool) -> Embeddings | Failed:
        return Embeddings((), 0)

    async def wait_exited(self) -> None:
        await self.exited.wait()

    async def close(self) -> None:
        self.closed = True
        self.exited.set()


class Factory:
    def __init__(
        self, fail: set[str] | None = None, delay: float = 0.0, dies: Sequence[str] = ()
    ) -> None:
        self.made: list[Runner] = []
        self.fail = fail or set()
        self.delay = delay
        self.dies = list(dies)
        """How the runners made first die (``Runner.dies``), in order."""

    async def __call__(self, spec: LoadSpec) -> Runner:
        await asyncio.sleep(self.delay)
        if spec.name in self.fail:
            raise LoadFailed(f"{spec.name}: broken")
        runner = Runner(spec, self.dies.pop(0) if self.dies else "")
        self.made.append(runner)
        return runner


def want(name: str, identity: str | None = None, size: int = 10, num_ctx: int = 512) -> Want:
    spec = LoadSpec(name=name, weights=f"/{identity or name}", num_ctx=num_ctx)
    return Want(name, identity or name, spec, size)


def names(scheduler: Scheduler) -> list[str]:
    return sorted(slot.want.name for slot in scheduler.loaded())


async def use(scheduler: Scheduler, wanted: Want, keep_alive: float | None = 60) -> None:
    lease = await scheduler.acquire(wanted)
    scheduler.release(lease, keep_alive)


async def test_least_recently_used_idle_model_is_evicted() -> None:
    scheduler = Scheduler(Factory(), max_loaded=2)
    for name in ("a", "b", "a", "c"):
        await use(scheduler, want(name))
    assert names(scheduler) == ["a", "c"]
    await use(scheduler, want("d"))
    assert names(scheduler) == ["c", "d"]
    await scheduler.close()


async def test_memory_budget_evicts_before_the_count_does() -> None:
    factory = Factory()
    scheduler = Scheduler(factory, max_loaded=3, budget_bytes=100)
    await use(scheduler, want("a", size=60))
    await use(scheduler, want("b", size=60))
    assert names(scheduler) == ["b"] and factory.made[0].closed
    with pytest.raises(OutOfMemory, match="num_ctx"):  # past the whole budget: refused
        await use(scheduler, want("huge", size=500))
    assert names(scheduler) == ["b"] and len(factory.made) == 2
    await scheduler.close()


async def test_a_busy_model_is_not_evicted_the_load_waits() -> None:
    scheduler = Scheduler(Factory(), max_loaded=1)
    held = await scheduler.acquire(want("a"))
    other = asyncio.create_task(use(scheduler, want("b")))
    await asyncio.sleep(0.05)
    assert not other.done() and names(scheduler) == ["a"]
    scheduler.release(held, 60)
    await asyncio.wait_for(other, 5)
    assert names(scheduler) == ["b"]
    await scheduler.close()


async def test_keep_alive() -> None:
    factory = Factory()
    scheduler = Scheduler(factory)
    await use(scheduler, want("now"), keep_alive=0)
    await use(scheduler, want("soon"), keep_alive=0.05)
    await use(scheduler, want("forever"), keep_alive=None)
    assert names(scheduler) == ["forever", "soon"]
    await asyncio.sleep(0.2)
    assert names(scheduler) == ["forever"]
    assert [r.closed for r in factory.made] == [True, True, False]
    await scheduler.close()


async def test_the_queue_is_bounded() -> None:
    scheduler = Scheduler(Factory(), max_queue=1)
    held = await scheduler.acquire(want("a"))
    queued = asyncio.create_task(scheduler.acquire(want("a")))
    await asyncio.sleep(0.01)
    with pytest.raises(ServerBusy, match="MDL_MAX_QUEUE=1"):
        await scheduler.acquire(want("a"))
    scheduler.release(held, 60)
    scheduler.release(await queued, 60)
    await scheduler.close()


async def test_requests_for_a_loading_model_share_the_load() -> None:
    factory = Factory(delay=0.05)
    scheduler = Scheduler(factory)
    await asyncio.gather(*(use(scheduler, want("a")) for _ in range(4)))
    assert len(factory.made) == 1
    await scheduler.close()


async def test_a_renamed_model_drains_then_unloads() -> None:
    factory = Factory()
    scheduler = Scheduler(factory)
    held = await scheduler.acquire(want("x", "d1"))
    await use(scheduler, want("x", "d2"))
    assert names(scheduler) == ["x", "x"] and not factory.made[0].closed  # still answering
    scheduler.release(held, 60)
    await asyncio.sleep(0)
    assert [s.want.identity for s in scheduler.loaded()] == ["d2"] and factory.made[0].closed
    await use(scheduler, want("x", "d2", num_ctx=1024))  # other load options: replaced too
    assert [s.want.spec.num_ctx for s in scheduler.loaded()] == [1024]
    await scheduler.close()


async def test_a_runner_that_dies_is_forgotten_and_reloaded() -> None:
    factory = Factory()
    scheduler = Scheduler(factory)
    await use(scheduler, want("a"))
    factory.made[0].exited.set()
    await asyncio.sleep(0.01)
    assert names(scheduler) == []
    await use(scheduler, want("a"))
    assert len(factory.made) == 2 and names(scheduler) == ["a"]
    await scheduler.close()


async def events(scheduler: Scheduler, wanted: Want) -> list[RunnerEvent]:
    async def work(lease: Lease) -> AsyncGenerator[RunnerEvent, None]:
        async for event in lease.runner.complete(CompletionRequest("hi")):
            yield event

    return [event async for event in scheduler.serve(wanted, 60, work)]


async def test_a_request_its_runner_never_answered_runs_once_more_on_a_fresh_one() -> None:
    factory = Factory(dies=["before"])
    scheduler = Scheduler(factory)
    await use(scheduler, want("a"))
    assert await events(scheduler, want("a")) == [Done("stop")]
    assert len(factory.made) == 2 and names(scheduler) == ["a"]
    assert scheduler.loaded()[0].runner is factory.made[1] and not factory.made[1].closed
    await scheduler.close()


async def test_only_once_and_only_if_nothing_was_answered() -> None:
    factory = Factory(dies=["before", "before", "during"])
    scheduler = Scheduler(factory)
    with pytest.raises(RunnerGone, match="a was killed"):  # a request that kills every runner
        await events(scheduler, want("a"))
    assert len(factory.made) == 2 and names(scheduler) == []
    with pytest.raises(RunnerCrashed, match="while generating"):  # it had a token: no retry
        await events(scheduler, want("a"))
    assert len(factory.made) == 3
    await scheduler.close()


async def test_a_failed_load_leaves_the_others() -> None:
    scheduler = Scheduler(Factory(fail={"bad"}))
    await use(scheduler, want("good"))
    with pytest.raises(LoadFailed, match="bad: broken"):
        await scheduler.acquire(want("bad"))
    assert names(scheduler) == ["good"]
    await scheduler.close()
