"""Delivery: a release folder that is either complete and verified, or not there at all.

    with staging_folder(dest) as staged:          # a hidden folder beside dest (same filesystem)
        ...write files into staged...
        write_manifest(staged)                     # checksums.sha256, `sha256sum -c` compatible
        deliver_local(staged, dest)                # verify, then swap in atomically

Local delivery builds the new folder under a hidden name in the destination's parent, verifies
every file against the manifest, fsyncs, and then moves it into place with one atomic
`renameat2(RENAME_EXCHANGE)` where a previous delivery exists (so a reader, or a process killed
at any instant, sees the old complete folder or the new complete folder, never a mix) or one
`rename` where none does. Leftovers of a killed delivery (hidden `.staging-…` folders) are
removed by the next delivery of the same release, under a lock that serialises deliveries.

S3 delivery (`s3://bucket/prefix`) has no rename, so it follows a batch protocol: the files go
to `<prefix>/<folder>/<batch>/`, the manifest last, each upload checked; then the one-object
pointer `<prefix>/<folder>/CURRENT` is written with the batch name. Readers follow the pointer;
a batch without a manifest is incomplete by definition. Older batches are removed afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from songmill.core.errors import SongmillError
from songmill.core.store import file_sha256

MANIFEST = "checksums.sha256"
RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100

StepCallback = Callable[[str], None]  # told each step ("staged", "verified", "swapped", …) as it happens


def write_manifest(folder: Path) -> str:
    """Write `checksums.sha256` (`<sha256>  <relative path>` per file, sorted, `sha256sum -c`
    compatible) for every file in `folder`; returns the manifest's own sha256."""
    lines = [
        f"{file_sha256(path)}  {path.relative_to(folder).as_posix()}\n" for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    ]
    data = "".join(lines).encode()
    _write_synced(folder / MANIFEST, data)
    return hashlib.sha256(data).hexdigest()


def read_manifest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} from a folder's manifest."""
    entries = {}
    for line in (folder / MANIFEST).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        entries[name] = digest
    return entries


def verify_folder(folder: Path) -> list[str]:
    """What is wrong with a delivery folder: missing manifest, missing, altered or unlisted files."""
    if not (folder / MANIFEST).is_file():
        return [f"{folder} has no {MANIFEST}"]
    listed = read_manifest(folder)
    problems = []
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is listed but missing")
        elif file_sha256(path) != digest:
            problems.append(f"{name} does not match its sha256")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
    problems += [f"{name} is not in the manifest" for name in sorted(present - set(listed))]
    return problems


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def delivery_lock(dest: Path) -> Iterator[None]:
    """Serialise deliveries of one folder (another process waits), and clear what a killed one left.

    The lock file is removed when the delivery ends, while it is still held: a process that was
    waiting on it then finds the name gone (or a newer file under it) and locks that instead, so
    no two deliveries ever hold the lock at once and no `.lock` file stays in the folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    path = dest.parent / f".{dest.name}.lock"
    while True:
        lock = open(path, "a")  # closed below, after the unlink
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.fstat(lock.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        lock.close()  # the holder before us removed this file: lock the one under the name now
    try:
        for stale in dest.parent.glob(f".staging-{dest.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield
    finally:
        path.unlink(missing_ok=True)
        lock.close()


@contextlib.contextmanager
def staging_folder(dest: Path) -> Iterator[Path]:
    """A fresh hidden folder beside `dest` to build a delivery in; removed if anything fails."""
    staged = dest.parent / f".staging-{dest.name}-{uuid.uuid4().hex[:12]}"
    staged.mkdir(parents=True)
    try:
        yield staged
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def deliver_local(staged: Path, dest: Path, *, on_step: StepCallback | None = None) -> None:
    """Verify `staged` against its manifest and put it at `dest`, replacing a previous delivery
    atomically. Call it inside `delivery_lock(dest)`; `staged` must be beside `dest`."""
    step = on_step or (lambda name: None)
    problems = verify_folder(staged)
    if problems:
        raise SongmillError(f"delivery to {dest} stopped before it replaced anything: {problems[0]}")
    _fsync_tree(staged)
    step("verified")
    if dest.exists():
        if not _exchange(staged, dest):
            # No atomic exchange here: move the old folder aside first. Killed in between, the
            # destination is absent (never partial) and the old copy is still at `staged`'s twin.
            aside = dest.parent / f".staging-{dest.name}-replaced-{uuid.uuid4().hex[:12]}"
            os.rename(dest, aside)
            step("old moved aside")
            os.rename(staged, dest)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            step("swapped")
            shutil.rmtree(staged, ignore_errors=True)  # now the old delivery
    else:
        os.rename(staged, dest)
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    step("delivered")


# ------------------------------------------------------------------------------------- S3


def deliver_s3(staged: Path, url: str, folder: str, *, on_step: StepCallback | None = None) -> str:
    """Upload a verified staged folder to `s3://bucket/prefix/<folder>/<batch>/` and point
    `<folder>/CURRENT` at it; returns the batch's URL. Endpoint and keys: SONGMILL_S3_*."""
    from songmill.core.store import S3Store, open_store

    step = on_step or (lambda name: None)
    problems = verify_folder(staged)
    if problems:
        raise SongmillError(f"delivery to {url}/{folder} stopped before it uploaded anything: {problems[0]}")
    store = open_store(url)  # the same S3 settings as the artifact store (SONGMILL_S3_*)
    assert isinstance(store, S3Store)
    batch = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    files = sorted((p for p in staged.rglob("*") if p.is_file() and p.name != MANIFEST), key=lambda p: p.as_posix())
    for path in [*files, staged / MANIFEST]:  # the manifest last: a batch without one is incomplete
        store.upload(path, folder, batch, path.relative_to(staged).as_posix())
        step(f"uploaded {path.name}")
    store.write_bytes(batch.encode(), folder, "CURRENT")
    step("pointed")
    for name in store.keys(folder):
        if "/" in name and not name.startswith(batch + "/"):
            store.remove(folder, name)
    return store.url(folder, batch)
