"""Advisory locks on S3, for every process on the bucket: objects with a lease.

Exclusive: the lock object itself, created with ``If-None-Match: *`` (one creator wins), and
then no live shared marker may remain. Shared: a marker object ``<key>/s-<token>``, kept only
while no live exclusive lock exists. With S3's read-after-write consistency one of two racing
holders always sees the other. A holder's thread renews its lease every ``LEASE / 4``
seconds; a lock whose lease ran out (its process died) is removed by the next one who wants it.
Leases use the holders' clocks: processes on several machines need their clocks in step.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mdl.registry.storage.driver import LockBusy, PathNotFound, check_key
from mdl.registry.storage.s3_client import PreconditionFailed
from mdl.spec.errors import StoreError

if TYPE_CHECKING:
    from mdl.registry.storage.s3 import S3Driver

LEASE = 15.0
"""Seconds a lock outlives its holder's last renewal (a crashed replica's uploads wait this)."""
POLL = 0.05


@contextmanager
def s3_lock(driver: S3Driver, key: str, *, exclusive: bool, wait: bool) -> Iterator[None]:
    check_key(key)
    parent = key.rpartition("/")[0]
    if parent and not _has_objects(driver, parent):
        raise PathNotFound(key)
    held = _take_exclusive(driver, key, wait) if exclusive else _take_shared(driver, key, wait)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(driver, held, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        _delete(driver, held)


def _take_exclusive(driver: S3Driver, key: str, wait: bool) -> str:
    while True:
        try:
            driver.client.call(
                "put_object",
                Bucket=driver.bucket,
                Key=driver.prefix + key,
                Body=_lease(),
                IfNoneMatch="*",
            )
            break
        except PreconditionFailed:
            if _expired(driver, key):
                _delete(driver, key)
                continue
            if not wait:
                raise LockBusy(key, _remaining(driver, key)) from None
            time.sleep(POLL)
    while any(not _expired(driver, marker) for marker in driver._keys(key)):
        if not wait:
            _delete(driver, key)
            raise LockBusy(key)
        time.sleep(POLL)
    return key


def _take_shared(driver: S3Driver, key: str, wait: bool) -> str:
    marker = f"{key}/s-{secrets.token_hex(8)}"
    while True:
        _put(driver, marker)
        try:
            driver.read(key)
        except PathNotFound:
            return marker
        if _expired(driver, key):
            _delete(driver, key)
            continue
        _delete(driver, marker)
        if not wait:
            raise LockBusy(key)
        time.sleep(POLL)


def _has_objects(driver: S3Driver, prefix: str) -> bool:
    page = driver.client.call(
        "list_objects_v2", Bucket=driver.bucket, Prefix=f"{driver.prefix}{prefix}/", MaxKeys=1
    )
    return int(page.get("KeyCount", 0)) > 0


def _lease() -> bytes:
    return json.dumps({"expires": time.time() + LEASE}).encode()


def _put(driver: S3Driver, key: str) -> None:
    driver.client.call("put_object", Bucket=driver.bucket, Key=driver.prefix + key, Body=_lease())


def _expired(driver: S3Driver, key: str) -> bool:
    try:
        return float(json.loads(driver.read(key))["expires"]) < time.time()
    except PathNotFound:
        return True
    except (ValueError, KeyError, TypeError):
        return False


def _remaining(driver: S3Driver, key: str) -> float:
    """Seconds until the lease on ``key`` runs out, at most ``LEASE``."""
    try:
        expires = float(json.loads(driver.read(key))["expires"])
    except (PathNotFound, ValueError, KeyError, TypeError):
        return POLL
    return min(max(expires - time.time(), POLL), LEASE)


def _delete(driver: S3Driver, key: str) -> None:
    driver.client.call("delete_object", Bucket=driver.bucket, Key=driver.prefix + key)


def _renew(driver: S3Driver, key: str, stop: threading.Event) -> None:
    while not stop.wait(LEASE / 4):
        try:
            _put(driver, key)
        except StoreError:
            continue  # the next round tries again; the lease outlasts a few misses
