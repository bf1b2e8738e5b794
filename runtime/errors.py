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

The API modules translate store and spec errors (``NotFound``, ``InvalidReference``) into these
at one place (``service.py``); handlers never build error JSON themselves.
"""

from __future__ import annotations

from mdl.spec.errors import MdlError


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
