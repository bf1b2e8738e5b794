"""``mdl registry gc``: mark and sweep unreferenced blobs and expired upload sessions.

Mark: every manifest revision of every repository, and the config, layers and children it
names. Sweep: a blob nothing marks goes, unless its bytes or a link to it are younger than the
grace period (an upload whose manifest is still on its way); links to swept blobs go with them;
upload sessions idle longer than the expiry go, unless a request holds one right now. The whole
run holds the storage's gc lock exclusively, and pushes hold it shared while they link content,
so a push in flight is never half swept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mdl.registry import paths
from mdl.registry.repos import Repositories
from mdl.registry.sessions import Uploads
from mdl.registry.storage.driver import PathNotFound, StorageDriver
from mdl.spec.digest import Digest
from mdl.spec.errors import MdlError
from mdl.spec.manifest import Manifest, parse


@dataclass
class Report:
    dry_run: bool
    blobs: list[str] = field(default_factory=list)
    """Digests of the blobs removed (or that would be)."""
    bytes_freed: int = 0
    links: int = 0
    uploads: int = 0
    kept: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "blobs": self.blobs,
            "bytes_freed": self.bytes_freed,
            "links_removed": self.links,
            "uploads_removed": self.uploads,
            "blobs_kept": self.kept,
        }


def collect(
    driver: StorageDriver,
    *,
    grace_period: float,
    upload_expiry: float,
    dry_run: bool = False,
) -> Report:
    """One mark-and-sweep over ``driver``; nothing is removed when ``dry_run``."""
    repos = Repositories(driver)
    uploads = Uploads(repos)
    report = Report(dry_run)
    now = time.time()
    with repos.gc_lock(exclusive=True):
        names = list(repos.names())
        marked = _mark(repos, names)
        fresh: set[Digest] = set()
        stale_links: dict[Digest, list[str]] = {}
        for name in names:
            for digest in repos.layer_links(name):
                key = paths.layer_link(name, digest)
                if digest in marked:
                    continue
                if _age(driver, key, now) < grace_period:
                    fresh.add(digest)
                else:
                    stale_links.setdefault(digest, []).append(key)
            for upload_id in driver.list(paths.uploads(name)):
                idle = now - uploads.last_active(name, upload_id) > upload_expiry
                if idle and (dry_run or uploads.expire(name, upload_id, upload_expiry)):
                    report.uploads += 1
        for digest, key in _blobs(driver):
            if digest in marked or digest in fresh or _age(driver, key, now) < grace_period:
                report.kept += 1
                continue
            report.blobs.append(str(digest))
            report.bytes_freed += driver.stat(key).size
            if not dry_run:
                driver.delete(key)
        swept = set(report.blobs)
        for digest, keys in stale_links.items():
            if str(digest) in swept or not driver.exists(paths.blob(digest)):
                report.links += len(keys)
                if not dry_run:
                    for key in keys:
                        driver.delete(key)
    return report


def _mark(repos: Repositories, names: list[str]) -> set[Digest]:
    marked: set[Digest] = set()
    for name in names:
        for digest in repos.revisions(name):
            marked.add(digest)
            try:
                document = parse(repos.driver.read(paths.blob(digest)))
            except (PathNotFound, MdlError):
                continue
            if isinstance(document, Manifest):
                marked.update(d.digest for d in document.blobs)
            else:
                marked.update(d.digest for d in document.manifests)
    return marked


def _blobs(driver: StorageDriver) -> list[tuple[Digest, str]]:
    found = []
    for key in driver.walk(paths.BLOBS):
        parts = key.split("/")
        if len(parts) == 4:
            found.append((Digest(parts[1], parts[3]), key))
    return found


def _age(driver: StorageDriver, key: str, now: float) -> float:
    try:
        return now - driver.stat(key).modified
    except PathNotFound:
        return float("inf")
