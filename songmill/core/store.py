"""The artifact store: content-addressed blobs plus small JSON records.

Blobs are addressed by their sha256, so the same bytes are stored once and a reference
(`ArtifactRef`) fully identifies an artifact. Records (`put_record`/`get_record`) hold what
a stage run produced under its cache key; they are how a stage is found already done.

Backends
--------
* `LocalStore(root)`: a folder (default `var/artifacts`). A blob is written to a temporary name
  in `blobs/`, hashed as it is written, fsynced, then renamed into its folder, so a crash never
  leaves a partial blob.
* `S3Store(...)`: any S3 API (SeaweedFS, MinIO, AWS) through the `minio` SDK. A PUT is atomic.

`open_store()` picks one from `SONGMILL_STORE` (`s3://bucket/prefix` or a folder path).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, Protocol

from songmill.core.errors import ServiceError, SongmillError
from songmill.core.paths import var_dir

CHUNK = 1 << 20
# urllib3 logs each retry as a warning; our error says it once, in one sentence.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
log = logging.getLogger("songmill.store")


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact: what XCom, the catalogue and the run report carry (never the bytes)."""

    name: str  # file name it was produced as, e.g. "score.mid"
    sha256: str
    bytes: int
    uri: str  # where the store keeps it

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes, "uri": self.uri}

    @classmethod
    def from_dict(cls, data: dict) -> "ArtifactRef":
        return cls(data["name"], data["sha256"], int(data["bytes"]), data["uri"])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(stat: os.stat_result) -> tuple[int, ...]:
    """What must hold for a blob found intact to be taken as still intact without reading it:
    its size, its inode, and its modification and change times (a write moves both; `touch -d`
    or `cp -p` can set the first back, nothing but the kernel sets the second)."""
    return (stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)


def _umask() -> int | None:
    """This process's umask, read without setting it (setting it to read it would race with other
    threads' files): Linux's /proc/self/status; None where it cannot be read so."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def as_if_created(path: str | Path, *, folder: bool = False, read_only: bool = False) -> None:
    """Give a file (or folder) made under a temporary name by `tempfile` (always 0600, or 0700)
    the permissions `open` or `mkdir` would have given it (0666 or 0777 less the umask), before
    it is renamed into place: a render's files are readable by whoever the user's umask lets
    read them, as its delivered files are (a DAW or a web server running as another user).
    Best effort: where the umask cannot be read, or the file system keeps no modes (vfat, some
    network mounts), the file keeps tempfile's private mode. `read_only`: without the write
    bits (a store's blob, which run reports name and people open)."""
    umask = _umask()
    if umask is None:
        return
    try:
        os.chmod(path, (0o777 if folder else 0o666) & ~umask & ~(0o222 if read_only else 0))
    except OSError:
        pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name beside `path`, fsync, rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        as_if_created(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StoredArtifactError(SongmillError):
    """A blob cannot be had from the store: `problem` says why, the message adds what to do (by
    default a render, which a caller that knows better — the song editor — replaces)."""

    def __init__(self, problem: str, remedy: str = "re-render to recreate it") -> None:
        super().__init__(f"{problem}; {remedy}")
        self.problem, self.remedy = problem, remedy

    def __reduce__(self) -> tuple:  # across processes (a stage's worker) it stays one sentence, not the remedy twice
        return (type(self), (self.problem, self.remedy))


class CorruptArtifactError(StoredArtifactError):
    """A stored blob's bytes no longer hash to its name (it is quarantined, never used)."""


class MissingArtifactError(StoredArtifactError):
    """A blob the catalogue names is not in the store (deleted, or the store was replaced)."""


class ArtifactStore(Protocol):
    description: str

    def put_file(self, path: Path, name: str | None = None) -> ArtifactRef: ...
    def get_file(self, ref: ArtifactRef, dest: Path) -> Path: ...
    def stored_path(self, ref: ArtifactRef) -> Path | None: ...
    def has(self, sha256: str) -> bool: ...
    def intact(self, sha256: str) -> bool: ...
    def put_record(self, key: str, record: dict) -> None: ...
    def get_record(self, key: str) -> dict | None: ...


class LocalStore:
    """Artifacts in a folder: `blobs/ab/<sha256>` and `records/<key>.json`."""

    _verified_by_root: ClassVar[dict[str, dict[str, tuple[int, ...]]]] = {}

    def __init__(self, root: Path):
        self.root = Path(root)
        self.description = f"folder {self.root}"
        # sha256 → the blob's `_fingerprint` when last found intact: one memo per folder for the
        # whole process, since a render and the edit or delivery after it each open the store anew
        self._verified = LocalStore._verified_by_root.setdefault(os.path.realpath(self.root), {})
        self._put_sources: dict[tuple[int, ...], str] = {}  # a file put (device, inode, size, times) → its sha256
        try:
            (self.root / "blobs").mkdir(parents=True, exist_ok=True)
            (self.root / "records").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SongmillError(f"artifact store folder {self.root} cannot be created ({err.strerror}); set SONGMILL_STORE to a writable folder") from None

    def _blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def put_file(self, path: Path, name: str | None = None) -> ArtifactRef:
        """Copy `path` in under its sha256, hashed as it is copied: the blob holds the bytes that
        were hashed, so this process knows it intact without reading it again (each stage's
        outputs are read back by the next stage's input check, an edit's by `current/`). The
        same file put again unchanged (a stem kept for later renders, then as its stage's output)
        is not read again."""
        path = Path(path)
        source = path.stat()  # a missing output is named as itself, not as a store failure
        same_file = (source.st_dev, source.st_ino, source.st_size, source.st_mtime_ns, source.st_ctime_ns)
        known = self._put_sources.get(same_file)
        if known is not None and self.intact(known):
            return ArtifactRef(name or path.name, known, source.st_size, self._blob(known).as_uri())
        with open(path, "rb") as src:
            sha, size = self._copy_in(src)
        self._put_sources[same_file] = sha
        return ArtifactRef(name or path.name, sha, size, self._blob(sha).as_uri())

    def _copy_in(self, src: BinaryIO) -> tuple[str, int]:
        """Hash `src` while copying it to a temporary file beside the blobs' folders (its name is
        known only at the end; `catalogue check` sweeps leftovers), then fsync and rename it to
        its blob, or drop it when that blob is already there. Out of space with the blob already
        there is no failure: the rest is hashed without being copied."""
        digest, size, blobs = hashlib.sha256(), 0, self.root / "blobs"
        try:
            blobs.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".incoming.", dir=blobs)
        except OSError as err:
            raise self._write_error(err) from None
        try:
            with os.fdopen(fd, "wb") as out:
                full: OSError | None = None
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    if full is None:
                        try:
                            out.write(chunk)
                        except OSError as err:
                            if err.errno != errno.ENOSPC:
                                raise
                            full = err
                blob = self._blob(digest.hexdigest())
                fresh = not blob.exists()  # decided once: a blob already there is never replaced
                if fresh and full is not None:
                    raise full
                if fresh:
                    out.flush()
                    os.fsync(out.fileno())
            if fresh:
                blob.parent.mkdir(parents=True, exist_ok=True)
                # read-only: a run report names the working audio where it lies here, and a DAW or
                # editor that opens it must not save over the store's copy (its owner can still
                # chmod it back; root ignores the mode; a change is found by the hash either way)
                as_if_created(tmp, read_only=True)
                try:
                    os.replace(tmp, blob)
                    self._verified[blob.name] = _fingerprint(blob.stat())
                except PermissionError:  # another writer's blob came first, read-only, on a file system that will not replace it (SMB)
                    if not blob.exists():
                        raise
        except OSError as err:
            raise self._write_error(err) from None
        finally:
            Path(tmp).unlink(missing_ok=True)  # gone once renamed; else a copy of a blob already there, or a failed write
        return blob.name, size

    def _write_error(self, err: OSError) -> SongmillError:
        return SongmillError(f"cannot write to the artifact store {self.root} ({err.strerror}); free space or choose another SONGMILL_STORE")

    def get_file(self, ref: ArtifactRef, dest: Path) -> Path:
        """A copy of the blob at `dest`, whose bytes are checked against the sha256 — unless this
        process already found the blob intact and its `_fingerprint` has not changed since (an
        edit copies each artifact beside its report and into `current/`: one hash each, not two)."""
        blob = self._blob(ref.sha256)
        try:
            stat = blob.stat()
        except FileNotFoundError:
            raise MissingArtifactError(f"artifact {ref.name} ({ref.sha256[:12]}) is missing from the store {self.root}") from None
        seen = _fingerprint(stat)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # copied under a temporary name and renamed once checked: two renders of one release copy
        # the same artifacts to the same report folder, and neither may read the other's half-copy
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(blob, tmp)
            if self._verified.get(ref.sha256) != seen:
                if file_sha256(Path(tmp)) != ref.sha256:
                    self._quarantine(blob)
                    raise CorruptArtifactError(f"artifact {ref.name} ({ref.sha256[:12]}) in the store {self.root} changed on disk; it was moved to quarantine/")
                self._verified[ref.sha256] = seen
            as_if_created(tmp)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest

    def local_path(self, ref: ArtifactRef) -> Path:
        """The blob, read in place, once its bytes are known to still hash to its name."""
        blob = self._blob(ref.sha256)
        if not blob.exists():
            raise MissingArtifactError(f"artifact {ref.name} ({ref.sha256[:12]}) is missing from the store {self.root}")
        if not self.intact(ref.sha256):
            raise CorruptArtifactError(
                f"artifact {ref.name} ({ref.sha256[:12]}) in the store {self.root} changed on disk (its bytes no longer match its sha256); "
                "it was moved to quarantine/"
            )
        return blob

    def stored_path(self, ref: ArtifactRef) -> Path | None:
        """Where the blob lies, for a report to name. Not read here, so not hashed: a stage that
        reads it checks it first (its input check); a reader of the report (the QC report's
        pitch plot, a person) reads it as it is."""
        blob = self._blob(ref.sha256)
        if not blob.is_file():
            raise MissingArtifactError(f"artifact {ref.name} ({ref.sha256[:12]}) is missing from the store {self.root}")
        return Path(os.path.abspath(blob))  # a report read from another folder finds it too

    def has(self, sha256: str) -> bool:
        return self._blob(sha256).exists()

    def intact(self, sha256: str) -> bool:
        """The blob is there and its bytes hash to its name. A blob changed on disk (a bad disk,
        a stray edit) is moved to quarantine/ and reported absent, so the stage that made it runs
        again and it is never delivered. A blob is hashed again only when its `_fingerprint`
        (size, inode, times) changed since this process last found it intact."""
        blob = self._blob(sha256)
        try:
            stat = blob.stat()
        except FileNotFoundError:
            return False
        seen = _fingerprint(stat)
        if self._verified.get(sha256) == seen:
            return True
        if self.matches(sha256):
            self._verified[sha256] = seen
            return True
        self._quarantine(blob)
        return False

    def matches(self, sha256: str) -> bool:
        """The blob's bytes hash to its name (read whole; nothing is moved: `songmill catalogue check`)."""
        return file_sha256(self._blob(sha256)) == sha256

    def _quarantine(self, blob: Path) -> None:
        self._verified.pop(blob.name, None)
        target = self.root / "quarantine" / f"{blob.name}.{time.time_ns()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(blob, target)
        except FileNotFoundError:
            return  # another process moved it first
        log.warning("artifact %s in %s did not match its sha256; moved to %s", blob.name[:12], self.root, target)

    def put_record(self, key: str, record: dict) -> None:
        atomic_write_bytes(self.root / "records" / f"{key}.json", json.dumps(record, sort_keys=True).encode())

    def get_record(self, key: str) -> dict | None:
        try:
            return json.loads((self.root / "records" / f"{key}.json").read_text())
        except FileNotFoundError:
            return None


class S3Store:
    """Artifacts in an S3 bucket under a prefix: `<prefix>/blobs/<sha256>`, `<prefix>/records/<key>.json`."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        prefix: str = "",
        access_key: str | None = None,
        secret_key: str | None = None,
        secure: bool = False,
        region: str | None = None,
        timeout_s: float = 10.0,
    ):
        import urllib3
        from minio import Minio
        from minio.error import S3Error

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint = endpoint
        self.description = f"S3 {'https' if secure else 'http'}://{endpoint}/{bucket}/{self.prefix}"
        # Few, short retries: a dead endpoint must fail in seconds with a clear message.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s * 6),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region, http_client=http)
        self._s3_error = S3Error
        try:
            if not self._client.bucket_exists(bucket):
                self._client.make_bucket(bucket)
        except S3Error as err:
            raise ServiceError(f"S3 store {self.description} refused access ({err.code}); check SONGMILL_S3_ACCESS_KEY and SONGMILL_S3_SECRET_KEY") from None
        except Exception as err:  # urllib3 connection errors, DNS, TLS
            raise ServiceError(
                f"S3 store at {endpoint} is unreachable ({_reason(err)}); check SONGMILL_STORE/SONGMILL_S3_ENDPOINT or start the server"
            ) from None

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._s3_error:
            raise
        except Exception as err:
            raise ServiceError(f"S3 store at {self.endpoint} failed while {what} ({_reason(err)}); check that the server is running") from None

    def put_file(self, path: Path, name: str | None = None) -> ArtifactRef:
        path = Path(path)
        sha, size = file_sha256(path), path.stat().st_size
        key = self._key("blobs", sha)
        if not self.has(sha):
            self._call(f"storing {path.name}", self._client.fput_object, self.bucket, key, str(path), metadata={"x-amz-meta-sha256": sha})
        return ArtifactRef(name or path.name, sha, size, f"s3://{self.bucket}/{key}")

    def get_file(self, ref: ArtifactRef, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.fetching")  # renamed once checked (see LocalStore.get_file)
        try:
            try:
                self._call(f"fetching {ref.name}", self._client.fget_object, self.bucket, self._key("blobs", ref.sha256), str(tmp))
            except self._s3_error:
                raise MissingArtifactError(f"artifact {ref.name} ({ref.sha256[:12]}) is missing from {self.description}") from None
            if file_sha256(tmp) != ref.sha256:
                raise CorruptArtifactError(f"artifact {ref.name} fetched from {self.description} does not match its sha256; the stored object is corrupt")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def stored_path(self, ref: ArtifactRef) -> Path | None:
        """None: the bucket's objects are no file on this machine (a report gets a fetched copy)."""
        return None

    def has(self, sha256: str) -> bool:
        try:
            self._call("checking an object", self._client.stat_object, self.bucket, self._key("blobs", sha256))
            return True
        except self._s3_error:
            return False

    def intact(self, sha256: str) -> bool:
        """S3 checks an object's bytes on upload and songmill checks them on every fetch
        (`get_file`), so here an object's presence is its integrity."""
        return self.has(sha256)

    # -- named objects under the prefix (deliveries), beside the content-addressed blobs
    def upload(self, path: Path, *parts: str) -> None:
        """Put a file at `<prefix>/<parts…>` and check that the stored size is the file's."""
        key, size = self._key(*parts), Path(path).stat().st_size
        self._call(
            f"uploading {Path(path).name}", self._client.fput_object, self.bucket, key, str(path), metadata={"x-amz-meta-sha256": file_sha256(Path(path))}
        )
        stored = self._call(f"checking {Path(path).name}", self._client.stat_object, self.bucket, key).size
        if stored != size:
            raise ServiceError(f"{self.description} stored {key} with {stored} bytes instead of {size}")

    def write_bytes(self, data: bytes, *parts: str) -> None:
        self._call(f"writing {parts[-1]}", self._client.put_object, self.bucket, self._key(*parts), io.BytesIO(data), len(data))

    def keys(self, *parts: str) -> list[str]:
        """Every object key under `<prefix>/<parts…>/`, relative to it."""
        base = self._key(*parts) + "/"
        listed = self._call("listing objects", lambda: list(self._client.list_objects(self.bucket, prefix=base, recursive=True)))
        return [o.object_name[len(base) :] for o in listed]

    def url(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self._key(*parts)}"

    def remove(self, *parts: str) -> None:
        self._call(f"removing {parts[-1]}", self._client.remove_object, self.bucket, self._key(*parts))

    def put_record(self, key: str, record: dict) -> None:
        data = json.dumps(record, sort_keys=True).encode()
        self._call(
            "writing a record",
            self._client.put_object,
            self.bucket,
            self._key("records", f"{key}.json"),
            io.BytesIO(data),
            len(data),
            content_type="application/json",
        )

    def get_record(self, key: str) -> dict | None:
        try:
            response = self._call("reading a record", self._client.get_object, self.bucket, self._key("records", f"{key}.json"))
        except self._s3_error:
            return None
        try:
            return json.loads(response.read())
        finally:
            response.close()
            response.release_conn()


def _reason(err: Exception) -> str:
    """A few words for a network failure: urllib3 wraps the cause in MaxRetryError.reason."""
    text = f"{err} {getattr(err, 'reason', '')}".lower()
    for needle, words in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("name or service", "unknown host"),
        ("certificate", "TLS certificate rejected"),
    ):
        if needle in text:
            return words
    return type(getattr(err, "reason", None) or err).__name__


def default_store_spec() -> str:
    """`SONGMILL_STORE`, else the folder `var/artifacts`."""
    return os.environ.get("SONGMILL_STORE") or str(var_dir() / "artifacts")


def open_store(spec: str | None = None) -> ArtifactStore:
    """`s3://bucket/prefix` (endpoint and keys from SONGMILL_S3_*) or a folder; default `var/artifacts`."""
    spec = spec or default_store_spec()
    if spec.startswith("s3://"):
        bucket, _, prefix = spec[5:].partition("/")
        endpoint = os.environ.get("SONGMILL_S3_ENDPOINT")
        if not endpoint:
            raise SongmillError(f"{spec} is an S3 location but SONGMILL_S3_ENDPOINT is not set; set it to host:port of the S3 server")
        secure = os.environ.get("SONGMILL_S3_SECURE", "false").lower() in ("1", "true", "yes")
        return S3Store(
            endpoint,
            bucket,
            prefix=prefix,
            access_key=os.environ.get("SONGMILL_S3_ACCESS_KEY"),
            secret_key=os.environ.get("SONGMILL_S3_SECRET_KEY"),
            secure=secure,
            region=os.environ.get("SONGMILL_S3_REGION"),
        )
    return LocalStore(Path(spec))
