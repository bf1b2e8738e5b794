"""The referrers API: an OCI index of the manifests whose ``subject`` is a digest.

The subject need not exist. ``?artifactType=`` filters, and ``OCI-Filters-Applied`` says so.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mdl.registry import names
from mdl.registry.context import registry
from mdl.spec import mediatypes as mt


async def get(request: Request) -> Response:
    name = names.repository(request.path_params["name"])
    subject = names.digest(request.path_params["digest"])
    entries = await run_in_threadpool(registry(request).repos.referrers, name, subject)
    headers = {}
    artifact_type = request.query_params.get("artifactType")
    if artifact_type:
        entries = [e for e in entries if e.get("artifactType") == artifact_type]
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    return JSONResponse(index, headers=headers, media_type=mt.OCI_INDEX)
