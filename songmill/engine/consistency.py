"""`songmill catalogue check`: the catalogue, the artifact store and the delivery folders
compared, every disagreement reported, and with `repair` what can be fixed safely fixed.

    findings = check(catalogue, store, repair=False)   # [Finding], worst first

What is compared, and what `repair` does (nothing it does can lose a delivered file or a blob
that still matches its hash):

| kind                 | the disagreement                                              | repair                                   |
|----------------------|---------------------------------------------------------------|------------------------------------------|
| interrupted-run      | a run still "running" whose process on this host is gone      | closed as failed ("interrupted")         |
| missing-artifact     | an artifact the catalogue records is not in the store         | — (re-render the release to recreate it) |
| corrupt-artifact     | a stored blob no longer hashes to its name                    | moved to quarantine/ (a render remakes it) |
| delivery-missing     | a recorded delivery folder is not there                       | — (render the release again)             |
| delivery-altered     | a delivered file, or its manifest, differs from the record    | — (`songmill render … --redeliver`)      |
| delivered-twice      | two deliveries to one folder that each replaced the same one  | —                                        |
| duplicate-identifier | one ISRC on two tracks, one UPC on two releases               | —                                        |
| leftover-staging     | a killed delivery's hidden staging folder                     | removed, under the delivery lock         |
| leftover-upload      | a killed store write's temporary file (over an hour old)     | removed                                  |
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from sqlalchemy import func, select

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import Artifact, Delivery, Release, Run, Track
from songmill.core.store import ArtifactStore, LocalStore, file_sha256
from songmill.release.deliver import MANIFEST, delivery_lock, verify_folder

LEFTOVER_UPLOAD_AGE_S = 3600  # a temporary blob file older than this belongs to no live write


@dataclass
class Finding:
    kind: str
    subject: str  # what it is about: "run 12", "artifact master-streaming.wav (3f2a…) of track 4", a folder
    detail: str
    repair: str | None = None  # what `--repair` does about it; None: nothing safe to do
    repaired: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# what a person does about a disagreement `--repair` leaves to them (the table above)
REMEDIES = {
    "missing-artifact": "render the release again to recreate it",
    "corrupt-artifact": "render the release again to recreate it",
    "delivery-missing": "render the release again (songmill render CONFIG) to deliver it",
    "delivery-altered": "deliver it again as recorded: songmill render CONFIG --redeliver",
    "delivered-twice": "compare the two deliveries (songmill catalogue deliveries RELEASE) and deliver the right one again",
    "duplicate-identifier": "give one of the two its own identifier in its release config (isrc: or upc:)",
}


def check(catalogue: Catalogue, store: ArtifactStore, *, repair: bool = False) -> list[Finding]:
    """Every disagreement between the catalogue, the store and the delivery folders."""
    findings = _interrupted_runs(catalogue, repair)
    findings += _artifacts(catalogue, store, repair)
    findings += _deliveries(catalogue, repair)
    findings += _identifiers(catalogue)
    if isinstance(store, LocalStore):
        findings += _leftover_uploads(store, repair)
    return findings


def _interrupted_runs(catalogue: Catalogue, repair: bool) -> list[Finding]:
    host, found = socket.gethostname(), []
    with catalogue.session() as s:
        running = s.scalars(select(Run).where(Run.status == "running", Run.host == host)).all()
    for run in running:
        if run.pid is not None and _alive_since(run.pid, run.started_at.replace(tzinfo=dt.UTC).timestamp()):
            continue
        finding = Finding(
            "interrupted-run", f"run {run.id} of {run.release_id}", f"still 'running', but its process (pid {run.pid} on {host}) is gone", "closed as failed"
        )
        if repair:
            catalogue.finish_run(
                run.id, status="failed", error=f"interrupted: its process (pid {run.pid} on {host}) was gone; closed by `songmill catalogue check --repair`"
            )
            finding.repaired = True
        found.append(finding)
    return found


def _alive_since(pid: int, started_at_s: float) -> bool:
    """The process `pid` exists and is the one that started the run (not a later one given the same pid)."""
    try:
        return psutil.Process(pid).create_time() <= started_at_s + 5  # seconds since the epoch, both
    except psutil.Error:
        return False


def _artifacts(catalogue: Catalogue, store: ArtifactStore, repair: bool) -> list[Finding]:
    found = []
    with catalogue.session() as s:
        rows = s.execute(select(Artifact.sha256, func.min(Artifact.name), func.min(Artifact.track_id)).group_by(Artifact.sha256)).all()
    for sha256, name, track_id in rows:
        subject = f"artifact {name} ({sha256[:12]}) of track {track_id}"
        if not store.has(sha256):
            found.append(Finding("missing-artifact", subject, f"recorded in the catalogue but not in the store ({store.description}); re-render its release"))
        # one read of the blob either way: intact() quarantines what does not match, matches() only looks
        elif isinstance(store, LocalStore) and not (store.intact(sha256) if repair else store.matches(sha256)):
            found.append(
                Finding(
                    "corrupt-artifact", subject, "its bytes no longer match its sha256", "moved to quarantine/; the next render makes it again", repaired=repair
                )
            )
    return found


def _deliveries(catalogue: Catalogue, repair: bool) -> list[Finding]:
    """The newest delivery of each folder against the folder; older ones were swapped out by it."""
    found: list[Finding] = []
    with catalogue.session() as s:
        deliveries = s.scalars(select(Delivery).order_by(Delivery.id)).all()
    newest: dict[str, Delivery] = {}
    replacing: Counter = Counter()  # a rerun's delivery replaces the one before it: one chain per folder
    for d in deliveries:
        newest[d.destination] = d
        replacing[(d.destination, d.replaces_id)] += 1
    for (destination, replaces), count in replacing.items():
        if count > 1:
            what = f"delivery {replaces}" if replaces else "no earlier delivery"
            found.append(Finding("delivered-twice", destination, f"{count} deliveries each replaced {what}: two deliveries ran side by side"))
    for destination, d in newest.items():
        if destination.startswith("s3://"):
            continue  # an S3 delivery is checked where it is read: its CURRENT pointer names a complete batch
        found += _delivery_folder(Path(destination), d, repair)
    return found


def _delivery_folder(folder: Path, delivery: Delivery, repair: bool) -> list[Finding]:
    found = []
    staging = sorted(folder.parent.glob(f".staging-{folder.name}-*")) if folder.parent.is_dir() else []
    if staging:
        finding = Finding(
            "leftover-staging",
            str(folder.parent),
            f"{len(staging)} hidden staging folder(s) of a killed delivery of {folder.name}",
            "removed under the delivery lock",
        )
        if repair:
            with delivery_lock(folder):  # clears them, waiting for a delivery in progress to finish first
                pass
            finding.repaired = not any(folder.parent.glob(f".staging-{folder.name}-*"))
        found.append(finding)
    if not folder.is_dir():
        return found + [
            Finding(
                "delivery-missing",
                str(folder),
                f"delivery {delivery.id} of {delivery.release_id} ({delivery.profile}) is recorded here, but the folder is gone",
            )
        ]
    problems = verify_folder(folder)  # every file against the folder's manifest
    if not problems and file_sha256(folder / MANIFEST) != delivery.manifest_sha256:
        problems = [f"{MANIFEST} is not the one recorded ({delivery.manifest_sha256[:12]})"]
    if problems:
        found.append(Finding("delivery-altered", str(folder), f"delivery {delivery.id} of {delivery.release_id}: " + "; ".join(problems[:5])))
    return found


def _identifiers(catalogue: Catalogue) -> list[Finding]:
    found = []
    with catalogue.session() as s:
        for isrc, count in s.execute(select(Track.isrc, func.count()).where(Track.isrc.is_not(None)).group_by(Track.isrc).having(func.count() > 1)):
            found.append(Finding("duplicate-identifier", f"ISRC {isrc}", f"allocated to {count} tracks"))
        for upc, count in s.execute(select(Release.upc, func.count()).where(Release.upc.is_not(None)).group_by(Release.upc).having(func.count() > 1)):
            found.append(Finding("duplicate-identifier", f"UPC {upc}", f"allocated to {count} releases"))
    return found


def _older_than(path: Path, when: float) -> bool:
    try:
        return path.stat().st_mtime < when
    except FileNotFoundError:  # a write that finished while we looked
        return False


def _leftover_uploads(store: LocalStore, repair: bool) -> list[Finding]:
    old = time.time() - LEFTOVER_UPLOAD_AGE_S
    blobs = store.root / "blobs"  # a write in progress is beside the blobs' folders (older stores: inside them)
    leftovers = [p for p in [*blobs.glob(".incoming.*"), *blobs.glob("*/.incoming.*")] if _older_than(p, old)]
    if not leftovers:
        return []
    finding = Finding("leftover-upload", str(store.root / "blobs"), f"{len(leftovers)} temporary file(s) of killed store writes", "removed")
    if repair:
        for path in leftovers:
            path.unlink(missing_ok=True)
        finding.repaired = True
    return [finding]


def quarantined(store: ArtifactStore) -> int:
    """How many blobs the store has set aside for not matching their hash (reported, kept for a look)."""
    folder = store.root / "quarantine" if isinstance(store, LocalStore) else None
    return sum(1 for _ in folder.iterdir()) if folder is not None and folder.is_dir() else 0
