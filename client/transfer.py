"""``pull``, ``push`` and ``login`` as library calls: references in, reports out."""

from __future__ import annotations

from mdl.client.connection import Connection
from mdl.client.copy import CopyReport, Pick, Progress, copy, variant_pick
from mdl.client.credentials import Credentials, canonical_host
from mdl.client.endpoints import LocalEnd, RemoteEnd
from mdl.client.formats import adopt, render
from mdl.client.mirrors import Source, first_answer, sources
from mdl.client.remote import RemoteRepository
from mdl.client.trust import admit
from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec import routes
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import MdlError, Unauthorized
from mdl.spec.manifest import Index
from mdl.spec.policy import Policy
from mdl.spec.reference import Reference
from mdl.spec.variants import VariantError
from mdl.store.signatures import load_policy
from mdl.store.store import Store
from mdl.store.variants import memory_budget, missing_children


def pull(
    store: Store,
    ref: Reference,
    *,
    insecure: bool = False,
    progress: Progress | None = None,
    policy: Policy | None = None,
    variant: str | None = None,
    all_variants: bool = False,
) -> CopyReport:
    """Copy the model ``ref`` names, with its referrers, into the store and tag it there under
    the full reference. The trust policy (``policy``, else ``load_policy()``'s) is checked
    first, from the manifest and the signatures on the registry: a refused model brings
    nothing into the store. Of an index of variants only one is fetched: ``variant``, else
    the best that fits the memory budget; ``all_variants`` fetches all. The policy judges
    each variant fetched (each is signed on its own), not the index. The registry's mirrors
    (``mirrors``) are tried first, each falling through to the next, then the registry, on
    any failure."""
    remote_ref = ref.with_registry()
    assert remote_ref.registry
    policy = policy or load_policy()
    budget = memory_budget()

    def pull_from(source: Source) -> CopyReport:
        with Connection(
            source.host, insecure=source.insecure, retries=source.retries
        ) as connection:
            repo = RemoteRepository(connection, remote_ref.repository)
            root = repo.resolve_reference(remote_ref)
            if variant is not None and root.media_type not in mt.INDEX_TYPES:
                raise VariantError(f"{remote_ref}: --variant {variant}: not an index of variants")
            pick = variant_pick(variant, all_variants, budget, str(remote_ref))
            for subject in _judged(repo, root, pick):
                admit(repo, subject, remote_ref, policy)
            with store.writing():
                report = copy(RemoteEnd(repo), LocalEnd(store), root, None, progress, pick)
                store.tag(adopt(store, root.with_annotations({})), remote_ref)
        return report

    return first_answer(sources(remote_ref.registry, insecure), pull_from)


def _judged(repo: RemoteRepository, root: Descriptor, pick: Pick) -> list[Descriptor]:
    """What the trust policy judges: the variants a pull of an index of them fetches, else
    the root."""
    if root.media_type not in mt.INDEX_TYPES:
        return [root]
    data, media_type = repo.fetch_manifest(str(root.digest), root)
    doc = manifests.parse(data, media_type)
    picked = pick(doc) if isinstance(doc, Index) else None
    return [v.descriptor for v in picked] if picked is not None else [root]


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
        _check_whole(store, root, source)
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


def _check_whole(store: Store, root: Descriptor, source: Reference) -> None:
    """An index goes out only with all its variants: a registry refuses one naming absent
    manifests."""
    if root.media_type not in mt.INDEX_TYPES:
        return
    index = store.read_manifest(root)
    assert isinstance(index, Index)
    missing = missing_children(store, index)
    if missing:
        raise MdlError(
            f"{source}: {len(missing)} of the index's {len(index.manifests)} variants are not in "
            f"the store; pull it with --all-variants first, or push one variant by digest"
        )
