"""The runtime's errors, each with the HTTP status the APIs answer it with.

They extend mdl's one tree (``mdl.spec.errors``)::

    MdlError
    └── RuntimeFailure          status 500: something went wrong serving a valid request
        ├── BadRequest          400: invalid JSON, a missing field, an unknown or mistyped option,
        │                            an option out of range, a request template that fails
        ├── Untrusted           403: the trust policy refuses the model (``trust.py``)
        ├── TooLarge            413: a request body past its limit (MDL_MAX_REQUEST_BYTES, …)
        ├── WrongContentType    415: a JSON endpoint sent a body that is not JSON
        ├── ModelMissing        404: no model by that name in the store
        ├── ServerBusy          503: the model's request queue is full
        ├── NotAvailable        501: an endpoint whose collaborator this server was started without
        ├── TemplateError       500: a model's chat template does not parse or render
        │   └── TemplateRefused 400: the template refused the conversation (raise_exception)
        ├── LoadFailed          500: the model could not be loaded (bad file, worker crashed)
        ├── OutOfMemory         507: the model's estimated size exceeds the memory available
        └── RunnerCrashed       500: the worker process died while answering
            └── RunnerGone      500: it died before it answered this request at all, so it may
                                     have died before it got it: the service retries once

Handlers raise; they never build error JSON. ``Disclose`` is the one place an error becomes a
status and the text a client may read, for an answer and for a stream that fails midway alike:
an ``MdlError`` keeps its message (the store's absolute path replaced by ``$MDL_HOME/store``),
anything else is an internal error whose text goes to the log only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mdl.spec.errors import InvalidReference, MdlError, ModelfileError, NotFound

log = logging.getLogger("mdl.runtime")
INTERNAL = "internal error (the server log has the details)"


class RuntimeFailure(MdlError):
    status = 500


class BadRequest(RuntimeFailure):
    status = 400
    exit_code = 2


class ModelMissing(RuntimeFailure):
    status = 404
    exit_code = 4


class ServerBusy(RuntimeFailure):
    status = 503


class NotAvailable(RuntimeFailure):
    status = 501


class Untrusted(RuntimeFailure):
    status = 403


class TooLarge(RuntimeFailure):
    status = 413


class WrongContentType(RuntimeFailure):
    status = 415


class TemplateError(RuntimeFailure):
    pass


class TemplateRefused(TemplateError):
    status = 400


class OutOfMemory(RuntimeFailure):
    status = 507


class LoadFailed(RuntimeFailure):
    pass


class RunnerCrashed(RuntimeFailure):
    pass


class RunnerGone(RunnerCrashed):
    """The worker ended before its first reply to this request: killed while idle (the OOM
    killer, an operator) as often as by the request, which a fresh worker can tell apart."""


def status_of(exc: MdlError) -> int:
    if isinstance(exc, RuntimeFailure):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidReference | ModelfileError):
        return 400
    return 500


@dataclass(frozen=True)
class Disclose:
    """``(status, message)`` a client is told of ``exc``; 5xx errors are logged with ``where``."""

    store_roots: tuple[str, ...] = ()

    def __call__(self, exc: Exception, where: str) -> tuple[int, str]:
        if not isinstance(exc, MdlError):
            log.error("%s failed", where, exc_info=exc)
            return 500, INTERNAL
        status = status_of(exc)
        if status >= 500:
            log.warning("%s: %s", where, exc)
        message = str(exc)
        for root in self.store_roots:
            message = message.replace(root, "$MDL_HOME/store")
        return status, message
