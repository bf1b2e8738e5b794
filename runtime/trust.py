"""The trust policy at the runtime's door: a model the policy refuses is never loaded (403).

The policy (``mdl.spec.policy``, read by ``cli/serve.py`` when the server starts) is checked
under the name the request uses, before every load and every answer: signing a model or
removing its signature takes effect on the next request, a changed policy file on the next
start. A scope that accepts anything costs nothing; one that wants a signature reads the
model's referrers and verifies them in a worker thread, never on the event loop.
"""

from __future__ import annotations

from mdl.runtime import offloop
from mdl.runtime.errors import Untrusted
from mdl.runtime.models import ResolvedModel, parse_name
from mdl.spec.errors import SignatureError
from mdl.spec.policy import Kind, Policy
from mdl.store.signatures import enforce


async def check_trusted(model: ResolvedModel, policy: Policy) -> None:
    """Untrusted (naming the policy file and the scope) unless ``policy`` accepts ``model``."""
    ref = parse_name(model.name)
    if all(r.kind is Kind.ACCEPT for r in policy.requirements(ref)):
        return
    try:
        await offloop.blocking(enforce, model.stored.store, model.stored, ref, policy)
    except SignatureError as exc:
        raise Untrusted(str(exc)) from exc
