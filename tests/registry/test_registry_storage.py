"""The storage driver conformance suite: every backend must pass every test here.

Add a backend by adding a factory to ``BACKENDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mdl.registry.storage.driver import LockBusy, PathNotFound, StorageDriver
from mdl.registry.storage.filesystem import FilesystemDriver

BACKENDS: dict[str, Callable[[Path], StorageDriver]] = {
    "filesystem": lambda tmp: FilesystemDriver(tmp / "storage"),
}


@pytest.fixture(params=sorted(BACKENDS))
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    return BACKENDS[request.param](tmp_path)


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


def test_appender_extends_truncates_and_resumes(driver: StorageDriver) -> None:
    appender = driver.appender("up/data")
    assert appender.size == 0
    appender.write(b"abc")
    appender.write(bytearray(b"def"))
    appender.truncate(4)
    appender.close()
    appender.close()
    resumed = driver.appender("up/data")
    assert resumed.size == 4
    resumed.write(memoryview(b"XY"))
    resumed.close()
    assert driver.read("up/data") == b"abcdXY"


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


def test_local_path_when_present_serves_the_bytes(driver: StorageDriver) -> None:
    driver.write("f", b"content")
    path = driver.local_path("f")
    if path is not None:
        assert path.read_bytes() == b"content"
