"""``mdl serve``: the inference runtime (Ollama's and OpenAI's APIs) over the local store.

This is where the runtime's collaborators are wired: the store, the worker-process runner
factory, the memory budget, and the callables the runtime must not import itself (the builder
for ``/api/create``; the transfer client for ``/api/pull`` and ``/api/push``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mdl.cli import console
from mdl.spec.browser import is_loopback
from mdl.spec.digest import Digest
from mdl.spec.modelfile import Modelfile
from mdl.spec.policy import Policy
from mdl.spec.reference import Reference
from mdl.store.store import Store

if TYPE_CHECKING:
    from mdl.runtime.library import Create, ProgressFn, Transfer


def register(app: typer.Typer) -> None:
    app.command(help="Serve the local models over Ollama's and OpenAI's HTTP APIs.")(serve)


def serve(
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (default from MDL_HOST, else 127.0.0.1)."
    ),
    port: int | None = typer.Option(
        None, "--port", help="Port to listen on (default from MDL_HOST, else 11434)."
    ),
) -> None:
    import uvicorn

    from mdl.runtime.app import create_app
    from mdl.runtime.backends import by_backend
    from mdl.runtime.config import ServeConfig
    from mdl.runtime.library import Library
    from mdl.runtime.models import ModelResolver
    from mdl.runtime.process import WorkerRunner
    from mdl.runtime.scheduler import Scheduler
    from mdl.runtime.service import Service
    from mdl.runtime.whisper_process import WhisperRunner

    policy = _policy()
    config = ServeConfig.from_env(os.environ)
    config = dataclasses.replace(config, host=host or config.host, port=port or config.port)
    from mdl.store.variants import memory_budget

    store = Store.open()
    budget = memory_budget()
    scheduler = Scheduler(
        by_backend({"llama.cpp": WorkerRunner.start, "whisper.cpp": WhisperRunner.start}),
        max_loaded=config.max_loaded,
        budget_bytes=budget.bytes if budget else None,
        max_queue=config.max_queue,
    )
    service = Service(
        ModelResolver(  # what mdl has loaded, it would free to load another variant
            store, lambda: memory_budget(held=sum(s.want.size for s in scheduler.loaded()))
        ),
        scheduler,
        default_keep_alive=config.keep_alive,
        max_context=config.max_context,
        policy=policy,
        num_parallel=config.num_parallel,
    )
    library = Library(
        store, create=_create(store), pull=_transfer(store, "pull"), push=_transfer(store, "push")
    )
    app = create_app(service, library, config)
    logging.basicConfig(level=logging.INFO, format="mdl serve: %(message)s")
    bind_host, bind_port = config.host, config.port
    console.line(f"mdl serve: listening on http://{bind_host}:{bind_port} (store {store.root})")
    if not is_loopback(bind_host):
        console.warning(
            f"{bind_host} is reachable from other machines and the API has no authentication; "
            "put a reverse proxy with TLS and authentication in front (docs/runtime.md, Security)"
        )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=bind_host,
            port=bind_port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    server.run()


def _policy() -> Policy:
    """The trust policy, read once at start; errors name it ``$MDL_HOME/policy.json`` (not the
    home's absolute path) unless ``MDL_POLICY`` chose the file."""
    from mdl.store.signatures import load_policy

    policy = load_policy()
    if os.environ.get("MDL_POLICY"):
        return policy
    return dataclasses.replace(policy, where="$MDL_HOME/policy.json")


def _create(store: Store) -> Create:
    """``/api/create``: build a Modelfile that names only store content, and tag it."""
    from mdl.builder.build import build_model

    def create(modelfile: Modelfile, name: Reference) -> Digest:
        with tempfile.TemporaryDirectory(prefix="mdl-create-") as empty:
            return build_model(store, modelfile, Path(empty), [name]).descriptor.digest

    return create


def _transfer(store: Store, kind: str) -> Transfer:
    """``/api/pull`` and ``/api/push`` over ``mdl.client``, reporting as Ollama does."""
    from mdl.runtime.library import TransferProgress

    verb = "pulling" if kind == "pull" else "pushing"

    def transfer(name: Reference, insecure: bool, progress: ProgressFn) -> None:
        from mdl.client import transfer as client

        moved: dict[str, int] = {}

        def step(label: str, done: int, total: int) -> None:
            moved[label] = moved.get(label, 0) + done
            progress(TransferProgress(f"{verb} {label}", None, total, moved[label]))

        progress(TransferProgress(f"{verb} manifest"))
        if kind == "pull":
            client.pull(store, name, insecure=insecure, progress=step)
            progress(TransferProgress("writing manifest"))
        else:
            client.push(store, name, insecure=insecure, progress=step)

    return transfer
