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

from mdl.runtime.channel import ServerChannel

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
