"""A model's worker process seen from the server, for every backend's runner.

The worker runs as ``python -m ENTRY FD NAME`` with its end of a socketpair on FD. The last lines
it writes to stderr are kept for the server's log, never for a client (they may hold tracebacks
and paths); when it ends, the reason names the signal or the exit code.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

from mdl.runtime.channel import ServerChannel
from mdl.runtime.errors import LoadFailed, RunnerCrashed
from mdl.runtime.runner import Failed, ModelFacts

log = logging.getLogger("mdl.runtime")
EXIT_TIMEOUT = 5.0
STDERR_LINES = 8


async def spawn(entry: str, name: str) -> tuple[asyncio.subprocess.Process, ServerChannel]:
    parent, child = socket.socketpair()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            entry,
            str(child.fileno()),
            name,
            pass_fds=(child.fileno(),),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        child.close()
    return proc, await ServerChannel.open(parent)


async def loaded(
    answer: Awaitable[object],
    name: str,
    proc: asyncio.subprocess.Process,
    timeout: float,
    exit_reason: Callable[[], Awaitable[str]],
    close: Callable[[], Awaitable[None]],
) -> ModelFacts:
    """The facts of model ``name`` once its worker has loaded it (``answer`` is the worker's
    reply to the load, None if it went away); else ``close`` and LoadFailed with the reason."""
    try:
        reply = await asyncio.wait_for(answer, timeout)
    except TimeoutError:
        reply = Failed(f"no answer in {timeout:.0f} s")
    except BaseException:  # cancelled (the server is stopping): leave no worker behind
        proc.kill()
        raise
    if isinstance(reply, ModelFacts):
        return reply
    reason = reply.message if isinstance(reply, Failed) else await exit_reason()
    await close()
    raise LoadFailed(f"model {name} failed to load: {reason}")


async def read_stderr(proc: asyncio.subprocess.Process, lines: collections.deque[str]) -> None:
    assert proc.stderr is not None
    async for line in proc.stderr:
        text = line.decode(errors="replace").rstrip()
        if text:
            lines.append(text)
            log.debug("worker %d: %s", proc.pid, text)


async def exit_reason(
    proc: asyncio.subprocess.Process, stderr_task: asyncio.Task[None] | None, name: str
) -> str:
    """Why the worker for model ``name`` ended, once it has (and its last stderr lines are in)."""
    code = await proc.wait()
    if stderr_task is not None:
        await asyncio.shield(stderr_task)
    return describe_exit(name, code)


def protocol_error(name: str, reply: object) -> RunnerCrashed:
    """A worker answered out of protocol: the reply goes to the log (it may hold model text or
    paths), the client gets only that it happened."""
    log.error("%s: unexpected reply from the worker: %.500r", name, reply)
    return RunnerCrashed(f"{name}: the worker broke the protocol (the server log has the details)")


def describe_exit(name: str, code: int) -> str:
    if code < 0:
        try:
            what = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            what = f"was killed by signal {-code}"
    else:
        what = f"exited with status {code}"
    return f"the model runner for {name} {what}"


async def stop(proc: asyncio.subprocess.Process, channel: ServerChannel) -> None:
    """Ask the worker to exit, kill it if it does not within EXIT_TIMEOUT, and reap it."""
    if proc.returncode is None:
        channel.send({"op": "exit"})
        try:
            await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT)
        except TimeoutError:
            proc.kill()
    await proc.wait()
