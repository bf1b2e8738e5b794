"""mdl's one error tree.

Every failure mdl reports is an ``MdlError``; foreign exceptions are translated where they enter::

    MdlError
    ├── InvalidReference        a reference, name, tag or digest that breaks its grammar
    ├── ModelfileError          a Modelfile that does not parse or validate (file:line)
    ├── GGUFError               a file that is not a readable GGUF model
    ├── BuildError              a Modelfile that parses but cannot be built
    ├── RemoteError             a registry answered with an error (OCI error code kept)
    │   └── Unauthorized        credentials missing or refused (401/403)
    ├── TransportError          the network failed: refused, reset, timed out, stalled
    ├── SignatureError          a signature that does not verify, or a policy that refuses
    └── StoreError              the local store
        ├── NotFound            no blob, manifest or tag by that name
        ├── DigestMismatch      content whose digest is not the one expected
        ├── SizeMismatch        content whose size is not the one expected
        └── StoreFull           the disk filled up; nothing was written

``exit_code`` is what the CLI exits with.
"""

from __future__ import annotations


class MdlError(Exception):
    """Base of every error mdl reports; its message is one line meant for a person."""

    exit_code = 1


class InvalidReference(MdlError):
    exit_code = 2


class ModelfileError(MdlError):
    """A Modelfile error, located: ``Modelfile:3: unknown instruction "FORM"``."""

    exit_code = 2

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(f"{path}:{line}: {message}")


class GGUFError(MdlError):
    exit_code = 2


class BuildError(MdlError):
    exit_code = 2


class RemoteError(MdlError):
    """An error answer from a registry: ``code`` is the OCI error code when it sent one,
    ``retry_after`` the seconds its ``Retry-After`` asked for."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(message)


class Unauthorized(RemoteError):
    exit_code = 3


class TransportError(MdlError):
    pass


class SignatureError(MdlError):
    """A signature, key or statement that does not verify, or content a trust policy refuses."""


class StoreError(MdlError):
    pass


class NotFound(StoreError):
    exit_code = 4


class DigestMismatch(StoreError):
    pass


class SizeMismatch(StoreError):
    pass


class StoreFull(StoreError):
    pass
