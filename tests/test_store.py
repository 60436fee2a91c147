"""The artifact store, on a local folder and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time

import pytest

from songmill.core.errors import ServiceError, SongmillError
from songmill.core.store import LocalStore, S3Store, open_store
from tests.conftest import writable


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    endpoint, key, secret = request.getfixturevalue("s3_server")
    return S3Store(endpoint, "songmill-test", prefix=f"t{time.time_ns()}", access_key=key, secret_key=secret)


def test_put_get_roundtrip_is_content_addressed(store, tmp_path):
    payload = os.urandom(300_000)
    src = tmp_path / "stem.wav"
    src.write_bytes(payload)
    ref = store.put_file(src)
    assert ref.sha256 == hashlib.sha256(payload).hexdigest()
    assert ref.bytes == len(payload) and ref.name == "stem.wav"
    assert store.has(ref.sha256)
    again = store.put_file(src, name="copy.wav")  # same bytes: same blob
    assert again.sha256 == ref.sha256 and again.uri == ref.uri
    out = store.get_file(ref, tmp_path / "back" / "stem.wav")
    assert out.read_bytes() == payload


def _flip_a_byte(blob, at: int) -> None:
    """One byte of the blob changed in place, its mtime moved on (timestamps can be coarser than a test)."""
    data = bytearray(blob.read_bytes())
    data[at] ^= 0xFF
    before = blob.stat().st_mtime_ns
    writable(blob).write_bytes(bytes(data))
    os.utime(blob, ns=(before, before + 1_000_000))


def test_a_blob_changed_after_a_checked_copy_is_caught_on_the_next_copy(tmp_path):
    """A local blob copied once is not hashed again while its size, inode and times hold; a
    change to it (one flipped byte) is still caught, moved to quarantine, and no copy is left."""
    from songmill.core.store import CorruptArtifactError

    store = LocalStore(tmp_path / "store")
    src = tmp_path / "mix.wav"
    src.write_bytes(os.urandom(200_000))
    ref = store.put_file(src)
    assert store.get_file(ref, tmp_path / "one" / "mix.wav").read_bytes() == src.read_bytes()
    assert store.get_file(ref, tmp_path / "two" / "mix.wav").read_bytes() == src.read_bytes()
    blob = tmp_path / "store" / "blobs" / ref.sha256[:2] / ref.sha256
    _flip_a_byte(blob, 1000)
    with pytest.raises(CorruptArtifactError, match="mix.wav .* changed on disk; it was moved to quarantine/"):
        store.get_file(ref, tmp_path / "three" / "mix.wav")
    assert not (tmp_path / "three" / "mix.wav").exists() and not blob.exists()


def test_a_blob_put_by_this_process_is_known_intact_until_it_changes(tmp_path, monkeypatch):
    """put_file hashes the bytes as it copies them in, so the next stage's input check and an
    edit's copies do not read a new blob again, nor does another store opened on the same folder
    in this process (the edit after a render); a blob changed after the put is still caught."""
    import songmill.core.store as store_module
    from songmill.core.store import CorruptArtifactError

    store = LocalStore(tmp_path / "store")
    src = tmp_path / "master.wav"
    src.write_bytes(os.urandom(200_000))
    ref = store.put_file(src)
    hashed = []
    monkeypatch.setattr(store_module, "file_sha256", lambda path: hashed.append(path) or hashlib.sha256(path.read_bytes()).hexdigest())
    assert store.intact(ref.sha256) and store.local_path(ref).read_bytes() == src.read_bytes()
    reopened = LocalStore(tmp_path / "store")
    assert reopened.get_file(ref, tmp_path / "one" / "master.wav").read_bytes() == src.read_bytes()
    assert hashed == []
    blob = store.local_path(ref)
    _flip_a_byte(blob, 5)
    with pytest.raises(CorruptArtifactError, match="master.wav .* changed on disk"):
        reopened.get_file(ref, tmp_path / "two" / "master.wav")
    assert len(hashed) == 1 and not blob.exists()
    assert store.put_file(src) == ref and store.intact(ref.sha256)  # put again: the same blob, whole
    assert not list((tmp_path / "store").rglob(".incoming.*"))


def test_the_same_file_put_again_is_not_read_again_until_it_changes(tmp_path, monkeypatch):
    """A stem kept for later renders, then put as its stage's output: the second put is free;
    the file written anew is copied in anew. A store whose blobs/ folder was removed under it
    makes it again, and an output that is missing is named as itself."""
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "stem-bass.wav"
    src.write_bytes(os.urandom(100_000))
    first = store.put_file(src)
    copies = []
    copy_in = LocalStore._copy_in
    monkeypatch.setattr(LocalStore, "_copy_in", lambda self, handle: copies.append(1) or copy_in(self, handle))
    assert store.put_file(src, name="bass.wav") == dataclasses.replace(first, name="bass.wav") and copies == []
    src.write_bytes(os.urandom(100_000))
    changed = store.put_file(src)
    assert changed.sha256 == hashlib.sha256(src.read_bytes()).hexdigest() != first.sha256 and copies == [1]
    shutil.rmtree(tmp_path / "store" / "blobs")
    other = tmp_path / "stem-pad.wav"
    other.write_bytes(b"pad" * 1000)
    assert store.get_file(store.put_file(other), tmp_path / "back.wav").read_bytes() == other.read_bytes()
    with pytest.raises(FileNotFoundError, match="stem-drums.wav"):
        store.put_file(tmp_path / "stem-drums.wav")


def test_records_roundtrip_and_absent_record(store):
    assert store.get_record("nope") is None
    store.put_record("k1", {"outputs": {"a": 1}})
    assert store.get_record("k1") == {"outputs": {"a": 1}}


def test_missing_blob_is_a_clear_error(store, tmp_path):
    from songmill.core.store import ArtifactRef

    ref = ArtifactRef("score.mid", "0" * 64, 10, "x")
    assert not store.has(ref.sha256)
    with pytest.raises(SongmillError, match="score.mid .* is missing from") as caught:
        store.get_file(ref, tmp_path / "x")
    import pickle

    carried = pickle.loads(pickle.dumps(caught.value))  # as a stage's worker process hands it back
    assert str(carried) == str(caught.value) and str(carried).count("re-render") == 1 and carried.problem == caught.value.problem


def test_local_store_leaves_no_temporary_files(tmp_path):
    store = LocalStore(tmp_path / "a")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    store.put_file(src)
    store.put_file(src)  # a blob already there: the copy made while hashing is dropped
    store.put_record("r", {"x": 1})
    leftovers = [p for p in (tmp_path / "a").rglob(".*") if p.is_file()]
    assert leftovers == []


def test_unwritable_local_store_names_the_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SongmillError, match=f"artifact store folder {blocker}/store cannot be created"):
        LocalStore(blocker / "store")


def test_unreachable_s3_endpoint_fails_fast_with_one_sentence():
    start = time.monotonic()
    with pytest.raises(ServiceError) as err:
        S3Store("127.0.0.1:9", "bucket", access_key="a", secret_key="b", timeout_s=1)
    assert time.monotonic() - start < 15
    assert str(err.value).startswith("S3 store at 127.0.0.1:9 is unreachable")
    assert "\n" not in str(err.value)


@pytest.mark.s3
def test_wrong_s3_credentials_are_named(s3_server):
    endpoint, key, _ = s3_server
    with pytest.raises(ServiceError, match="refused access .*SONGMILL_S3_SECRET_KEY"):
        S3Store(endpoint, "songmill-test", access_key=key, secret_key="wrong")


def test_open_store_requires_an_endpoint_for_s3(monkeypatch):
    monkeypatch.delenv("SONGMILL_S3_ENDPOINT", raising=False)
    with pytest.raises(SongmillError, match="SONGMILL_S3_ENDPOINT is not set"):
        open_store("s3://bucket/prefix")
