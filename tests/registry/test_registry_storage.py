"""The storage driver conformance suite: every backend must pass every test here.

Add a backend by adding a factory to ``BACKENDS``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from rgw import Rgw

from mdl.registry.storage.driver import LockBusy, PathNotFound, StorageDriver
from mdl.registry.storage.filesystem import FilesystemDriver

BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], StorageDriver]] = {
    "filesystem": lambda request, tmp: FilesystemDriver(tmp / "storage"),
    "s3": lambda request, tmp: _s3(request),
}


@pytest.fixture(scope="module")
def s3_bucket(rgw: Rgw) -> str:
    return rgw.bucket()


def _s3(request: pytest.FixtureRequest) -> StorageDriver:
    """A fresh prefix of one bucket for each test, as a registry under ``s3://BUCKET/PREFIX``."""
    rgw: Rgw = request.getfixturevalue("rgw")
    return rgw.driver(request.getfixturevalue("s3_bucket"), f"t/{uuid.uuid4().hex}")


@pytest.fixture(params=sorted(BACKENDS))
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    return BACKENDS[request.param](request, tmp_path)


def test_write_then_read_round_trips(driver: StorageDriver) -> None:
    driver.write("a/b/c", b"hello")
    assert driver.read("a/b/c") == b"hello"
    driver.write("a/b/c", b"replaced")
    assert driver.read("a/b/c") == b"replaced"


def test_missing_objects_raise_path_not_found(driver: StorageDriver) -> None:
    for call in (driver.read, driver.stat, driver.open):
        with pytest.raises(PathNotFound):
            call("no/such/key")
    with pytest.raises(PathNotFound):
        driver.move("no/such/key", "elsewhere")
    assert not driver.exists("no/such/key")


def test_stat_reports_size_and_a_recent_time(driver: StorageDriver) -> None:
    driver.write("k", b"12345")
    stat = driver.stat("k")
    assert stat.size == 5
    assert abs(stat.modified - time.time()) < 60


def test_touch_creates_and_refreshes(driver: StorageDriver) -> None:
    driver.touch("links/x")
    assert driver.read("links/x") == b""
    before = driver.stat("links/x").modified
    time.sleep(0.02)
    driver.touch("links/x")
    assert driver.stat("links/x").modified > before


def test_list_gives_sorted_direct_children(driver: StorageDriver) -> None:
    for key in ("d/b", "d/a/x", "d/c/y/z"):
        driver.write(key, b"")
    assert driver.list("d") == ["a", "b", "c"]
    assert driver.list("d/c") == ["y"]
    assert driver.list("nothing/here") == []


def test_walk_yields_every_object_under_a_prefix(driver: StorageDriver) -> None:
    for key in ("w/1", "w/a/2", "w/a/b/3", "other/4"):
        driver.write(key, b"x")
    assert sorted(driver.walk("w")) == ["w/1", "w/a/2", "w/a/b/3"]
    assert list(driver.walk("missing")) == []


def test_delete_removes_objects_and_prefixes_and_ignores_missing(driver: StorageDriver) -> None:
    driver.write("t/one", b"1")
    driver.write("t/sub/two", b"2")
    driver.delete("t/one")
    assert not driver.exists("t/one")
    driver.delete("t/sub")
    assert not driver.exists("t/sub/two")
    driver.delete("t/never")


def test_move_replaces_the_destination(driver: StorageDriver) -> None:
    driver.write("src", b"new")
    driver.write("deep/dst", b"old")
    driver.move("src", "deep/dst")
    assert driver.read("deep/dst") == b"new"
    assert not driver.exists("src")


def test_appender_extends_aborts_resumes_and_seals(driver: StorageDriver) -> None:
    appender = driver.appender("up/data")
    assert appender.size == 0
    appender.write(b"abc")
    appender.write(bytearray(b"def"))
    appender.close()
    appender.close()
    assert driver.stat("up/data").size == 6
    dropped = driver.appender("up/data")
    assert dropped.size == 6
    dropped.write(b"lost")
    dropped.abort()
    resumed = driver.appender("up/data")
    assert resumed.size == 6
    resumed.write(memoryview(b"XY"))
    resumed.close()
    driver.seal("up/data")
    assert driver.read("up/data") == b"abcdefXY"
    driver.seal("empty/data")
    assert driver.read("empty/data") == b""


def test_appends_larger_than_a_part_across_appenders(driver: StorageDriver) -> None:
    """Several parts' worth, in odd-sized pieces through several appenders, one aborted."""
    piece = bytes(range(256)) * 12289  # 3 MiB and a bit: never a part boundary
    expected = bytearray()
    for round_ in range(4):
        appender = driver.appender("big/data")
        assert appender.size == len(expected)
        for _ in range(2):
            appender.write(piece)
        if round_ == 2:
            appender.abort()
            continue
        appender.close()
        expected += piece * 2
    assert driver.stat("big/data").size == len(expected)
    driver.seal("big/data")
    assert driver.stat("big/data").size == len(expected)
    with driver.open("big/data") as reader:
        assert reader.read() == expected
        reader.seek(len(expected) - 10)
        assert reader.read() == expected[-10:]


def test_delete_drops_an_unsealed_append(driver: StorageDriver) -> None:
    appender = driver.appender("gone/up/data")
    appender.write(b"x" * (9 * 1024 * 1024))
    appender.close()
    driver.delete("gone/up")
    assert not driver.exists("gone/up/data")
    assert list(driver.walk("gone")) == []


def test_open_reads_and_seeks(driver: StorageDriver) -> None:
    driver.write("r", bytes(range(256)))
    with driver.open("r") as reader:
        reader.seek(250)
        assert reader.read() == bytes(range(250, 256))


def test_keys_that_escape_are_refused(driver: StorageDriver) -> None:
    for key in ("../x", "a/../../x", "/etc/passwd", "a//b", "a/./b"):
        with pytest.raises(ValueError):
            driver.read(key)


def test_lock_is_shared_or_exclusive(driver: StorageDriver) -> None:
    with driver.lock(".lock", exclusive=False), driver.lock(".lock", exclusive=False):
        pass
    with driver.lock(".lock", exclusive=True):
        pass


def test_a_held_lock_is_busy_for_another_holder_that_will_not_wait(driver: StorageDriver) -> None:
    driver.write("u/info", b"{}")
    held = driver.lock("u/.lock", exclusive=True)
    with held, pytest.raises(LockBusy), driver.lock("u/.lock", exclusive=True, wait=False):
        pass
    with driver.lock("u/.lock", exclusive=True, wait=False):
        pass
    with pytest.raises(PathNotFound), driver.lock("gone/.lock", exclusive=True, wait=False):
        pass


def test_temporary_and_lock_files_are_never_listed(driver: StorageDriver) -> None:
    driver.write("l/visible", b"1")
    with driver.lock("l/.lock", exclusive=True):
        assert driver.list("l") == ["visible"]
        assert list(driver.walk("l")) == ["l/visible"]


def test_local_path_or_url_serves_the_bytes(driver: StorageDriver) -> None:
    driver.write("f", b"content")
    path, url = driver.local_path("f"), driver.url("f")
    assert (path is None) != (url is None)
    if path is not None:
        assert path.read_bytes() == b"content"
    if url is not None:
        assert httpx.get(url).content == b"content"
        assert httpx.get(url, headers={"Range": "bytes=1-3"}).content == b"ont"
