"""The storage ``mdl registry serve`` and ``gc`` run on: a directory, or ``s3://BUCKET[/PREFIX]``."""

from __future__ import annotations

from pathlib import Path

from mdl.registry.storage.driver import StorageDriver
from mdl.registry.storage.filesystem import FilesystemDriver


def open_storage(
    root: Path,
    storage: str | None,
    endpoint: str | None = None,
    region: str | None = None,
    *,
    check: bool = False,
) -> StorageDriver:
    """The filesystem under ``root`` unless ``storage`` names an S3 bucket (boto3 is imported
    only then). ValueError for a malformed ``storage``; with ``check``, StoreError when the
    bucket cannot be reached."""
    if storage is None:
        return FilesystemDriver(root)
    from mdl.registry.storage.s3 import S3Driver, parse_storage
    from mdl.registry.storage.s3_client import S3Client

    bucket, prefix = parse_storage(storage)
    driver = S3Driver(S3Client(endpoint, region), bucket, prefix)
    if check:
        driver.check()
    return driver
