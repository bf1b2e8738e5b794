"""Registry mirrors: the hosts a pull tries, in order, before the registry a reference names.

``MDL_REGISTRY_MIRRORS`` is a comma-separated list of ``REGISTRY=MIRROR`` pairs; a registry
may appear several times, and its mirrors are tried in that order, then the registry itself.
Without the variable, ``$MDL_HOME/mirrors.toml`` gives the same mapping::

    [[mirror]]
    registry = "docker.io"
    mirror = "mirror.example:5000"

``docker.io`` (or ``index.docker.io``) names Docker Hub. A mirror is ``host[:port]``, or an
``https://`` or ``http://`` URL of one (``http://`` allows plain HTTP to it). Whatever answers,
manifests and blobs are checked against their digests; a tag is taken from the first source
that has it, as docker does with its mirrors.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mdl.client.connection import RETRIES
from mdl.client.credentials import canonical_host
from mdl.spec.errors import MdlError
from mdl.spec.reference import is_host
from mdl.store import layout

ENV = "MDL_REGISTRY_MIRRORS"
T = TypeVar("T")


MIRROR_RETRIES = 2
"""Attempts per request to a mirror: one that is down or failing is left for the next soon."""


class MirrorConfigError(MdlError):
    exit_code = 2


@dataclass(frozen=True)
class Source:
    host: str
    insecure: bool = False
    """Plain HTTP allowed (an ``http://`` mirror, or ``--insecure`` for the registry)."""
    retries: int = RETRIES


def parse_pairs(text: str, where: str = ENV) -> list[tuple[str, Source]]:
    """``REGISTRY=MIRROR,...`` -> [(registry, mirror)], in order; MirrorConfigError names
    the bad entry."""
    pairs = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        registry, equals, mirror = entry.partition("=")
        if not equals:
            raise MirrorConfigError(f"{where}: {entry!r} is not REGISTRY=MIRROR")
        pairs.append(_pair(registry, mirror, where))
    return pairs


def parse_file(path: Path) -> list[tuple[str, Source]]:
    """The ``[[mirror]]`` tables of a TOML file, in order; none when the file is missing."""
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MirrorConfigError(f"{path}: {exc}") from exc
    tables = doc.get("mirror", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise MirrorConfigError(f"{path}: 'mirror' must be an array of tables ([[mirror]])")
    pairs = []
    for number, table in enumerate(tables, start=1):
        registry, mirror = table.get("registry"), table.get("mirror")
        if not isinstance(registry, str) or not isinstance(mirror, str):
            raise MirrorConfigError(f"{path}: mirror {number}: needs registry and mirror strings")
        pairs.append(_pair(registry, mirror, f"{path}: mirror {number}"))
    return pairs


def _pair(registry: str, mirror: str, where: str) -> tuple[str, Source]:
    registry, mirror = registry.strip(), mirror.strip()
    insecure = mirror.startswith("http://")
    host = mirror.removeprefix("http://").removeprefix("https://").rstrip("/")
    if not is_host(registry) or not is_host(host):
        raise MirrorConfigError(f"{where}: {registry!r}={mirror!r}: want host[:port]=host[:port]")
    return canonical_host(registry), Source(canonical_host(host), insecure, MIRROR_RETRIES)


def configured() -> list[tuple[str, Source]]:
    """The mapping in force: ``MDL_REGISTRY_MIRRORS`` when set, else ``$MDL_HOME/mirrors.toml``."""
    text = os.environ.get(ENV)
    if text is not None:
        return parse_pairs(text)
    return parse_file(layout.mirrors_file(layout.home()))


def sources(registry: str, insecure: bool = False) -> list[Source]:
    """Where to pull ``registry``'s content from: its mirrors in order, then itself."""
    host = canonical_host(registry)
    listed = [source for name, source in configured() if name == host]
    return [*listed, Source(host, insecure)]


def first_answer(chain: list[Source], attempt: Callable[[Source], T]) -> T:
    """``attempt`` on each source in turn until one succeeds; a failing source (down, lacking
    the content, answering wrong bytes) falls through to the next. The last one's error is
    raised, its message followed by what each mirror said."""
    failures: list[str] = []
    for source in chain[:-1]:
        try:
            return attempt(source)
        except MdlError as exc:
            failures.append(f"mirror {source.host}: {exc}")
    try:
        return attempt(chain[-1])
    except MdlError as exc:
        if failures and exc.args and isinstance(exc.args[0], str):
            exc.args = (f"{exc.args[0]} (after {'; '.join(failures)})", *exc.args[1:])
        raise
