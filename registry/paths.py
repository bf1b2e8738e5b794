"""Where the registry keeps everything, as storage keys; the only module that builds keys.

::

    <root>/
    ├── blobs/<alg>/<2 hex>/<hex>                      content, verified, shared by all repositories
    ├── repositories/<name>/                           <name> may hold '/'
    │   ├── _layers/<alg>/<hex>                        link: the blob is reachable from <name>
    │   ├── _manifests/revisions/<alg>/<hex>           link: {"mediaType", "size", "subject"?, ...}
    │   ├── _manifests/tags/<tag>                      the digest the tag names (text)
    │   ├── _referrers/<alg>/<hex>/<alg>-<hex>         subject -> referrer descriptor (JSON)
    │   └── _uploads/<uuid>/{data,info,state,.lock}    an upload session: bytes so far, metadata,
    │                                                  size+stamp of its last change, its lock
    └── .gc.lock                                       pushes hold it shared, gc exclusive

Names, tags and digests reach this module only after ``names`` validated them.
"""

from __future__ import annotations

from mdl.spec.digest import Digest

BLOBS = "blobs"
REPOSITORIES = "repositories"
GC_LOCK = ".gc.lock"
REPOSITORY_MARKERS = ("_layers", "_manifests", "_uploads")


def blob(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def layer_link(name: str, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_layers/{digest.algorithm}/{digest.hex}"


def layers(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_layers"


def revision(name: str, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/revisions/{digest.algorithm}/{digest.hex}"


def revisions(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/revisions"


def tag(name: str, tag: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/tags/{tag}"


def tags(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/tags"


def referrers(name: str, subject: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_referrers/{subject.algorithm}/{subject.hex}"


def referrer(name: str, subject: Digest, digest: Digest) -> str:
    return f"{referrers(name, subject)}/{digest.algorithm}-{digest.hex}"


def uploads(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads"


def upload_data(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}/data"


def upload_info(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}/info"


def upload_dir(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}"


def upload_state(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}/state"


def upload_lock(name: str, upload_id: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads/{upload_id}/.lock"
