"""``pull``, ``push`` and ``login`` as library calls: references in, reports out."""

from __future__ import annotations

from mdl.client.connection import Connection
from mdl.client.copy import CopyReport, Progress, copy
from mdl.client.credentials import Credentials, canonical_host
from mdl.client.endpoints import LocalEnd, RemoteEnd
from mdl.client.formats import adopt, render
from mdl.client.mirrors import Source, first_answer, sources
from mdl.client.remote import RemoteRepository
from mdl.client.trust import admit
from mdl.spec import routes
from mdl.spec.errors import Unauthorized
from mdl.spec.policy import Policy
from mdl.spec.reference import Reference
from mdl.store.signatures import load_policy
from mdl.store.store import Store


def pull(
    store: Store,
    ref: Reference,
    *,
    insecure: bool = False,
    progress: Progress | None = None,
    policy: Policy | None = None,
) -> CopyReport:
    """Copy the model ``ref`` names, with its referrers, into the store and tag it there under
    the full reference. The trust policy (``policy``, else ``load_policy()``'s) is checked
    first, from the manifest and the signatures on the registry: a refused model brings
    nothing into the store. The registry's mirrors (``mirrors``) are tried first, each
    falling through to the next, then the registry, on any failure."""
    remote_ref = ref.with_registry()
    assert remote_ref.registry
    policy = policy or load_policy()

    def pull_from(source: Source) -> CopyReport:
        with Connection(
            source.host, insecure=source.insecure, retries=source.retries
        ) as connection:
            repo = RemoteRepository(connection, remote_ref.repository)
            root = repo.resolve_reference(remote_ref)
            admit(repo, root, remote_ref, policy)
            with store.writing():
                report = copy(RemoteEnd(repo), LocalEnd(store), root, None, progress)
                store.tag(adopt(store, root.with_annotations({})), remote_ref)
        return report

    return first_answer(sources(remote_ref.registry, insecure), pull_from)


def push(
    store: Store,
    source: Reference,
    destination: Reference | None = None,
    *,
    insecure: bool = False,
    fmt: str = "mdl",
    progress: Progress | None = None,
) -> CopyReport:
    """Copy a local model to a registry, in mdl's format or as Ollama or Docker Model Runner
    would publish it; the manifest goes last, under the tag."""
    target = (destination or source).with_registry()
    assert target.registry
    with store.writing(), Connection(target.registry, insecure=insecure) as connection:
        root = render(store, store.resolve(source), fmt)
        repo = RemoteRepository(connection, target.repository)
        return copy(LocalEnd(store), RemoteEnd(repo), root, target.tag, progress)


def check_login(host: str, credentials: Credentials, *, insecure: bool = False) -> None:
    """Prove the credentials against ``/v2/`` before they are stored; they are offered only to
    ``host`` itself."""
    host = canonical_host(host)
    with Connection(
        host, insecure=insecure, lookup=lambda asking: credentials if asking == host else None
    ) as connection:
        try:
            connection.request("GET", routes.BASE.path(), what=f"login to {connection.host}")
        except Unauthorized as refused:
            raise Unauthorized(
                f"login to {connection.host} as {credentials.username}: credentials refused",
                status=refused.status,
            ) from refused
