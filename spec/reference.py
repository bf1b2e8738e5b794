"""Model references: ``[host[:port]/][namespace/]name[:tag][@sha256:…]``.

The grammar is the OCI distribution spec's (repository names) with docker's rule for telling a
registry host apart from a first path component: it holds a ``.`` or a ``:``, or is ``localhost``.
A reference without a host is local; ``with_registry`` anchors it to a default registry for push
and pull.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from mdl.spec.digest import Digest, is_digest
from mdl.spec.errors import InvalidReference

DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_HOST_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = re.compile(rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")


def is_repository(name: str) -> bool:
    """The distribution spec's repository name: components of ``[a-z0-9]`` runs joined by
    ``.``, ``_``, ``__`` or ``-``, split by ``/``; at most 255 characters (a reference counts
    its registry host and ``/`` too). The registry checks names with this one function."""
    return len(name) <= MAX_NAME_LENGTH and bool(_REPOSITORY.fullmatch(name))


def is_tag(text: str) -> bool:
    """Letters, digits, ``_``, ``.``, ``-``; at most 128; not starting with ``.`` or ``-``."""
    return bool(_TAG.fullmatch(text))


def is_host(text: str) -> bool:
    """A registry host with an optional port: DNS labels, or an IP literal in brackets."""
    return bool(_HOST.fullmatch(text))


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``tag`` is None only when a digest names the content; a bare digest
    (``sha256:…``, as ``mdl build -q`` prints) has no repository either and names local content."""

    registry: str | None
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        if not text or text != text.strip():
            raise InvalidReference(f"invalid reference {text!r}: empty or surrounded by spaces")
        if is_digest(text):
            return cls(None, "", None, Digest.parse(text))
        rest, digest = text, None
        if "@" in rest:
            rest, _, digest_text = rest.partition("@")
            digest = Digest.parse(digest_text)
        registry = None
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            if not is_host(first):
                raise InvalidReference(f"invalid reference {text!r}: bad registry host {first!r}")
            registry, rest = first, remainder
        repository, tag = rest, None
        colon = rest.rfind(":")
        if colon != -1:
            repository, tag = rest[:colon], rest[colon + 1 :]
            if not is_tag(tag):
                raise InvalidReference(
                    f"invalid reference {text!r}: bad tag {tag!r} "
                    "(letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
                )
        if not _REPOSITORY.fullmatch(repository):
            raise InvalidReference(
                f"invalid reference {text!r}: bad repository name {repository!r} (lower-case "
                "letters and digits, separated by '.', '_', '__', '-' or '/')"
            )
        if len(f"{registry}/{repository}" if registry else repository) > MAX_NAME_LENGTH:
            raise InvalidReference(f"invalid reference {text!r}: name longer than 255 characters")
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry, repository, tag, digest)

    @property
    def name(self) -> str:
        """The repository with its registry host: what a tag is relative to."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def without_digest(self) -> Reference:
        return replace(self, digest=None, tag=self.tag or DEFAULT_TAG)

    def with_registry(self, default: str | None = None) -> Reference:
        """Anchor a local reference to ``default`` or ``$MDL_DEFAULT_REGISTRY``, else refuse."""
        if self.registry:
            return self
        if not self.repository:
            raise InvalidReference(f"{self}: a bare digest names no repository to push or pull")
        registry = default or os.environ.get("MDL_DEFAULT_REGISTRY")
        if not registry:
            raise InvalidReference(
                f"{self} names no registry: write host[:port]/{self.repository} "
                "or set MDL_DEFAULT_REGISTRY"
            )
        if not is_host(registry):
            raise InvalidReference(f"invalid MDL_DEFAULT_REGISTRY {registry!r}")
        return replace(self, registry=registry)

    def __str__(self) -> str:
        if not self.repository and self.digest:
            return str(self.digest)
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
