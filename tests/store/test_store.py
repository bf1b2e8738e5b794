from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import DigestMismatch, NotFound, SizeMismatch, StoreError
from mdl.spec.manifest import Index, Manifest
from mdl.spec.reference import Reference
from mdl.store import layout
from mdl.store.store import Store


def _model(store: Store, payload: bytes) -> Descriptor:
    layer = store.put_bytes(mt.MODEL_WEIGHT, payload, {mt.ANNOTATION_FILEPATH: "model.gguf"})
    config = store.put_bytes(mt.MODEL_CONFIG, b'{"descriptor":{},"config":{},"modelfs":{}}')
    doc = Manifest(config=config, layers=(layer,), artifact_type=mt.MODEL_ARTIFACT)
    return store.put_bytes(mt.OCI_MANIFEST, manifests.encode(doc))


def test_new_store_is_an_oci_layout_with_a_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store.root / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert json.loads((store.root / "mdl-store.json").read_text()) == {"version": 1}


def test_newer_store_format_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "store")
    (tmp_path / "store" / "mdl-store.json").write_text('{"version": 99}')
    with pytest.raises(StoreError, match="newer than this mdl"):
        Store(tmp_path / "store")


def test_blob_is_read_only_and_content_addressed(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    desc = store.put_bytes(mt.MODEL_DOC, b"hello")
    path = store.blob_path(desc.digest)
    assert path == tmp_path / "store" / "blobs" / "sha256" / Digest.of(b"hello").hex
    assert path.read_bytes() == b"hello"
    assert path.stat().st_mode & 0o777 == 0o444
    assert list((store.root / "ingest").iterdir()) == []


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"hellO", DigestMismatch), (b"hello!", SizeMismatch)],
)
def test_ingest_refuses_content_that_does_not_match(
    tmp_path: Path, content: bytes, error: type[Exception]
) -> None:
    store = Store(tmp_path / "store")
    expected = Descriptor.for_bytes(mt.MODEL_DOC, b"hello")
    with pytest.raises(error), store.ingest(expected) as ingest:
        ingest.write(content)
        ingest.commit()
    assert not store.has_blob(expected.digest)
    assert list((store.root / "ingest").iterdir()) == []


def test_resumable_ingest_continues_from_its_offset(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    data = os.urandom(100_000)
    expected = Descriptor.for_bytes(mt.MODEL_WEIGHT, data)
    with store.ingest(expected, resumable=True) as first:
        first.write(data[:40_000])
    assert not store.has_blob(expected.digest)
    with store.ingest(expected, resumable=True) as second:
        assert second.offset == 40_000
        second.write(data[40_000:])
        second.commit()
    assert store.blob_path(expected.digest).read_bytes() == data


def test_copy_from_hashes_and_copies_in_one_pass(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    data = os.urandom(9 * 1024 * 1024 + 7)
    seen: list[int] = []
    with store.ingest() as ingest:
        ingest.copy_from(io.BytesIO(data), seen.append)
        digest = ingest.commit()
    assert digest == Digest.of(data)
    assert sum(seen) == len(data)


def test_tag_resolve_and_untag(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    desc = _model(store, b"weights")
    store.tag(desc, Reference.parse("tiny"))
    store.tag(desc, Reference.parse("localhost:5000/demo/tiny:1.0"))
    assert store.resolve(Reference.parse("tiny:latest")).digest == desc.digest
    assert store.resolve(Reference.parse(f"other@{desc.digest}")).digest == desc.digest
    names = [t.reference for t in store.tags()]
    assert names == ["localhost:5000/demo/tiny:1.0", "tiny:latest"]
    index = json.loads((store.root / "index.json").read_text())
    assert {m["annotations"][mt.ANNOTATION_REF_NAME] for m in index["manifests"]} == set(names)
    store.untag(Reference.parse("tiny"))
    with pytest.raises(NotFound, match="tiny:latest"):
        store.resolve(Reference.parse("tiny"))


def test_remove_frees_only_blobs_no_other_model_uses(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first, second = _model(store, b"weights-a"), _model(store, b"weights-b")
    store.tag(first, Reference.parse("a"))
    store.tag(second, Reference.parse("b"))
    _, report = store.remove([Reference.parse("a")])
    assert first.digest in report.blobs
    assert Digest.of(b"weights-a") in report.blobs
    shared_config = store.read_manifest(second)
    assert isinstance(shared_config, Manifest)
    assert store.has_blob(shared_config.config.digest)
    assert store.has_blob(Digest.of(b"weights-b"))


def test_remove_by_digest_drops_every_tag_of_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    desc = _model(store, b"w")
    store.tag(desc, Reference.parse("a"))
    store.tag(desc, Reference.parse("b:2"))
    removed, _ = store.remove([Reference.parse(f"x@{desc.digest}")])
    assert sorted(t.reference for t in removed) == ["a:latest", "b:2"]
    assert store.tags() == []


def test_index_keeps_its_children(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    child = _model(store, b"q4")
    index = Index(manifests=(child,))
    desc = store.put_bytes(mt.OCI_INDEX, manifests.encode(index))
    store.tag(desc, Reference.parse("multi"))
    assert store.prune().blobs == ()
    assert store.has_blob(Digest.of(b"q4"))
    _, report = store.remove([Reference.parse("multi")])
    assert Digest.of(b"q4") in report.blobs


def test_prune_frees_unreferenced_blobs_and_leftover_temp_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    kept = _model(store, b"kept")
    store.tag(kept, Reference.parse("kept"))
    orphan = store.put_bytes(mt.MODEL_DOC, b"orphan")
    (store.root / "ingest" / "dead.tmp").write_bytes(b"partial")
    dry = store.prune(dry_run=True)
    assert dry.blobs == (orphan.digest,) and dry.ingest_files == 1
    assert store.has_blob(orphan.digest)
    report = store.prune()
    assert report.blobs == (orphan.digest,) and report.bytes_freed == 6
    assert not store.has_blob(orphan.digest) and store.has_blob(kept.digest)
    assert list((store.root / "ingest").iterdir()) == []


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mdl.store.store import Store
    store = Store(Path(sys.argv[1]))
    with store.writing(), store.ingest() as ingest:
        for _ in range(10_000):
            ingest.write(b"x" * 65536)
            print("wrote", flush=True)
            time.sleep(0.01)
        ingest.commit()
    """
)


def test_killed_writer_leaves_no_partial_blob(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store(root)
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    for _ in range(5):
        writer.stdout.readline()
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    assert list((root / "blobs" / "sha256").glob("*")) == []
    assert len(list((root / "ingest").iterdir())) == 1
    assert Store(root).prune().ingest_files == 1


def test_prune_waits_for_a_writer_that_holds_the_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store(root)
    writer = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    writer.stdout.readline()
    pruner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from mdl.store.store import Store; "
            f"from pathlib import Path; print(Store(Path({str(root)!r})).prune().ingest_files)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    assert pruner.poll() is None, "prune must wait while a writer holds the store"
    writer.kill()
    writer.wait()
    writer.stdout.close()
    out, _ = pruner.communicate(timeout=30)
    assert out.strip() == "1"


_TAGGER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mdl.spec import mediatypes as mt
    from mdl.spec.reference import Reference
    from mdl.store.store import Store
    store = Store(Path(sys.argv[1]))
    desc = store.put_bytes(mt.OCI_MANIFEST, b'{"schemaVersion":2}')
    for i in range(40):
        store.tag(desc, Reference.parse(f"m{sys.argv[2]}-{i}"))
    """
)


def test_concurrent_taggers_never_lose_or_corrupt_tags(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store(root)
    procs = [subprocess.Popen([sys.executable, "-c", _TAGGER, str(root), str(n)]) for n in range(4)]
    assert [p.wait() for p in procs] == [0, 0, 0, 0]
    assert len(Store(root).tags()) == 160


def test_full_disk_is_a_clear_error_and_stores_nothing(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        store = Store(mount / "store")
        before = json.loads(layout.index_file(store.root).read_text())
        from mdl.spec.errors import StoreFull

        with pytest.raises(StoreFull, match="no space left"), store.ingest() as ingest:
            ingest.copy_from(io.BytesIO(os.urandom(4 * 1024 * 1024)))
            ingest.commit()
        assert list((store.root / "blobs" / "sha256").iterdir()) == []
        assert list((store.root / "ingest").iterdir()) == []
        assert json.loads(layout.index_file(store.root).read_text()) == before
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_copy_file_copies_in_the_kernel_and_hashes_the_copy(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    source = tmp_path / "source.bin"
    data = os.urandom(130 * 1024 * 1024 + 5)  # three copy_file_range steps
    source.write_bytes(data)
    seen: list[int] = []
    with store.ingest() as ingest, open(source, "rb") as file:
        ingest.copy_file(file, seen.append)
        digest = ingest.commit()
    assert digest == Digest.of(data) and sum(seen) == len(data) and len(seen) == 3
    assert store.blob_path(digest).read_bytes() == data
