"""The release-level steps after every track's `export`: package, deliver, record.

    delivered = package_and_deliver(spec, profiles, tracks, out_dir=Path("dist"), config_path=…,
                                    catalogue=catalogue, run_id=run_id)

For each delivery profile of the release, one folder named by the release's UPC, in the DDEX
batch layout:

    <destination>/<UPC>/
        <UPC>.xml                          the ERN 4.3.2 NewReleaseMessage (validated)
        resources/<UPC>_01_001.flac        disc 01, track 001, one file per profile format
        resources/<UPC>_01_001_preview.mp3 preview clips, where the profile asks for them
        resources/<UPC>_01_001.lrc         synced lyrics (tracks with vocals)
        resources/<UPC>.jpg                the 3000×3000 front cover
        resources/<UPC>_thumbnail.jpg      a 600×600 copy for listings
        checksums.sha256                   every file above, verified before the folder goes live

Identifiers come first (the UPC and each ISRC from the catalogue, allocated once and kept),
then the cover (the config's `cover`, validated, or one generated from the release), then per
profile the files are copied from the track artifacts, tagged, hashed, described in the DDEX
message, validated and delivered (see `deliver.py`). The catalogue records every delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from songmill.catalogue import Catalogue
from songmill.core.errors import SongmillError
from songmill.core.profiles import DeliveryProfile
from songmill.core.seeds import derive_seed
from songmill.core.spec import ReleaseSpec
from songmill.core.store import file_sha256
from songmill.release import artwork, ddex
from songmill.release.deliver import MANIFEST, deliver_local, deliver_s3, delivery_lock, staging_folder, write_manifest
from songmill.release.encode import EXTENSION
from songmill.release.settings import DeliverySettings, load_delivery_settings
from songmill.release.tags import SyncedLyrics, TrackTags, lrc_text, tag_file

log = logging.getLogger("songmill.release")


@dataclass(frozen=True)
class RenderedTrack:
    """What the release steps need of a rendered track: its catalogue id and artifact files."""

    number: int
    track_id: int
    files: dict[str, Path]  # artifact name → local path (export.json, export-*.…)
    rendered: bool = True  # False: a stage failed (the track is left out of a partial release)


def delivery_time() -> dt.datetime:
    """Now, or the reproducible-builds convention's `SOURCE_DATE_EPOCH` (seconds since 1970, UTC)
    when set: the DDEX message's creation time and the ISRC year then repeat, so two runs of one
    config (e.g. `songmill render` and an Airflow run) deliver byte-identical folders."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        return dt.datetime.now(dt.UTC)
    try:
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC)
    except ValueError:
        raise SongmillError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds since 1970; unset it or fix it") from None


def _release_cover(spec: ReleaseSpec, config_path: Path) -> tuple[bytes, bytes]:
    """(cover JPEG, thumbnail JPEG): the config's cover, else one generated from the release."""
    if spec.release.cover:
        image = artwork.load_cover(Path(spec.release.cover))
    else:
        seed = derive_seed(spec.release.id, bits=32)
        image = artwork.generate_cover(spec.release.title, spec.release.artist, spec.tracks[0].mood, seed=seed)
    return artwork.cover_jpeg(image), artwork.cover_jpeg(image, artwork.THUMBNAIL_PX)


def _destination(profile_name: str, profile: DeliveryProfile, out_dir: Path) -> str:
    """Where a profile's releases go: s3://…, or a local folder (relative ones under --out)."""
    target = profile.destination or profile_name
    if target.startswith("s3://"):
        return target.rstrip("/")
    path = Path(target)
    return str(path if path.is_absolute() else (out_dir / path).resolve())


def package_and_deliver(
    spec: ReleaseSpec,
    profiles: dict[str, DeliveryProfile],
    tracks: list[RenderedTrack],
    *,
    out_dir: Path,
    config_path: Path,
    catalogue: Catalogue,
    run_id: int | None,
    settings: DeliverySettings | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Package and deliver a rendered release to each of its profiles.

    Returns {"upc", "isrcs", "deliveries": [...], "delivered": [{profile, format, path, sha256, bytes}]}.

    Raises
    ------
    SongmillError : a bad cover, a message the schema rejects, a dead S3 endpoint — before
        anything already delivered is touched. (A release whose sender, recipient or ISRCs are
        not configured is delivered without a DDEX message; `ddex_skipped` says why.)
    """
    settings = settings or load_delivery_settings(release_id=spec.release.id)
    now = now or delivery_time()
    ids = settings.identifiers
    upc = catalogue.release_upc(spec.release.id, given=spec.release.upc, company_prefix=ids.gs1_company_prefix)
    isrcs = {
        t.number: catalogue.track_isrc(
            t.track_id, given=spec.tracks[t.number - 1].isrc, country=ids.isrc_country, registrant=ids.isrc_registrant, year=now.year
        )
        for t in tracks
    }
    cover, thumbnail = _release_cover(spec, config_path)
    exports = {t.number: json.loads(t.files["export.json"].read_text(encoding="utf-8")) for t in tracks}
    result: dict[str, Any] = {"upc": upc, "isrcs": isrcs, "deliveries": [], "delivered": []}
    for name in spec.release.profiles:
        profile = profiles[name]
        destination = _destination(name, profile, Path(out_dir))
        delivery = _deliver_profile(
            spec,
            name,
            profile,
            tracks,
            exports,
            upc=upc,
            isrcs=isrcs,
            cover=cover,
            thumbnail=thumbnail,
            destination=destination,
            settings=settings,
            now=now,
            staging_root=Path(out_dir) / name,
        )
        catalogue.record_delivery(
            release_id=spec.release.id,
            run_id=run_id,
            profile=name,
            destination=delivery["destination"],
            upc=upc,
            manifest_sha256=delivery["manifest_sha256"],
            files=delivery["files"],
        )
        result["deliveries"].append({k: v for k, v in delivery.items() if k != "files"})
        result["delivered"] += [
            {"profile": name, "format": f["format"], "path": f["path"], "sha256": f["sha256"], "bytes": f["bytes"]} for f in delivery["files"]
        ]
    for track in tracks:
        catalogue.set_track_status(track.track_id, "delivered")
    return result


def _deliver_profile(
    spec: ReleaseSpec,
    name: str,
    profile: DeliveryProfile,
    tracks: list[RenderedTrack],
    exports: dict,
    *,
    upc: str,
    isrcs: dict,
    cover: bytes,
    thumbnail: bytes,
    destination: str,
    settings: DeliverySettings,
    now: dt.datetime,
    staging_root: Path,
) -> dict:
    remote = destination.startswith("s3://")
    dest = (staging_root if remote else Path(destination)) / upc
    with delivery_lock(dest), staging_folder(dest) as staged:
        resources = staged / "resources"
        resources.mkdir()
        (resources / f"{upc}.jpg").write_bytes(cover)
        (resources / f"{upc}_thumbnail.jpg").write_bytes(thumbnail)
        packaged_tracks = [
            _package_track(spec, name, t, exports[t.number], upc=upc, isrc=isrcs[t.number], cover=cover, resources=resources, total=len(spec.tracks))
            for t in tracks
        ]
        cover_file = _packaged(staged, resources / f"{upc}.jpg")
        release = ddex.PackagedRelease(
            upc=upc,
            title=spec.release.title,
            artist=spec.release.artist,
            label=spec.release.label,
            type=spec.release.type,
            date=spec.release.date,
            genre=spec.release.genre,
            p_line=spec.release.p_line,
            c_line=spec.release.c_line,
            explicit=spec.release.explicit,
            contains_ai=spec.release.ai_disclosure.contains_ai,
            ai_parts=tuple(spec.release.ai_disclosure.generated),
            tracks=packaged_tracks,
            cover=cover_file,
        )
        addressed = settings.addressing(profile)  # a test identity's messages go to its own recipient
        skipped = ddex.missing_identity(release, name, addressed, settings.sender)
        if skipped:
            log.warning("delivering %s to profile %s without a DDEX message: %s", spec.release.id, name, skipped)
        else:
            message = ddex.new_release_message(release, name, addressed, settings.sender, created=now, test_message=settings.test_identity)
            ddex.validate(message, what=f"the DDEX message for profile '{name}'")
            (staged / f"{upc}.xml").write_bytes(message)
        manifest_sha = write_manifest(staged)
        files = _file_list(staged)
        if remote:
            where = deliver_s3(staged, destination, upc)
        else:
            deliver_local(staged, dest)
            where = str(dest)
    log.info("delivered %s to %s", spec.release.id, where)
    for f in files:
        f["path"] = f"{where}/{f['relative_path']}"
    return {"profile": name, "destination": where, "upc": upc, "manifest_sha256": manifest_sha, "ddex_skipped": skipped, "files": files}


def _file_list(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        kind = "manifest" if path.name == MANIFEST else "ddex" if path.suffix == ".xml" else path.suffix.lstrip(".")
        if path.name.endswith("_preview" + path.suffix):
            kind = f"{kind}-preview"
        rows.append({"relative_path": relative, "format": kind, "sha256": file_sha256(path), "bytes": path.stat().st_size})
    return rows


def _packaged(folder: Path, path: Path, encoded: dict | None = None) -> ddex.PackagedFile:
    extra = {}
    if encoded:
        extra = {k: encoded[k] for k in ("container", "codec", "sample_rate_hz", "bit_depth", "bitrate_kbps", "channels", "duration_s", "clip_start_s")}
    return ddex.PackagedFile(path=path.relative_to(folder).as_posix(), sha256=file_sha256(path), bytes=path.stat().st_size, **extra)


def _package_track(
    spec: ReleaseSpec, profile_name: str, track: RenderedTrack, export: dict, *, upc: str, isrc: str, cover: bytes, resources: Path, total: int
) -> ddex.PackagedTrack:
    """Copy a track's files for one profile into `resources/` under DDEX names, tagged; and its .lrc."""
    config = spec.tracks[track.number - 1]
    base = f"{upc}_01_{track.number:03d}"
    mine = [f for f in export["files"] if f["profile"] == profile_name]
    tags = TrackTags(
        title=config.title,
        artist=spec.release.artist,
        album=spec.release.title,
        track_number=track.number,
        track_total=total,
        date=spec.release.date.isoformat(),
        genre=spec.release.genre.title(),
        isrc=isrc,
        bpm=export["bpm"],
        key=export["key"],
        copyright=f"© {spec.release.c_line}",
        publisher=spec.release.label,
        explicit=spec.release.explicit,
        lyrics=export["lyrics"],
        synced=SyncedLyrics.from_dict(export["synced_lyrics"]),
        cover_jpeg=cover,
    )
    audio: list[ddex.PackagedFile] = []
    clips: list[ddex.PackagedFile] = []
    used: set[str] = set()
    for encoded in mine:
        extension = EXTENSION[encoded["container"]]
        stem = f"{base}_preview" if encoded["clip"] else base
        name = f"{stem}.{extension}"
        if name in used:  # two formats of one container: tell them apart by rate/bits or bitrate
            name = f"{stem}_{Path(encoded['file']).stem.rsplit('-', 1)[-1]}.{extension}"
        used.add(name)
        target = resources / name
        shutil.copyfile(track.files[encoded["file"]], target)
        tag_file(target, TrackTags(**{**tags.__dict__, "loudness_lufs": encoded["integrated_lufs"]}))
        (clips if encoded["clip"] else audio).append(_packaged(resources.parent, target, encoded))
    if export["synced_lyrics"]["lines"]:
        (resources / f"{base}.lrc").write_text(lrc_text(tags, export["duration_s"]), encoding="utf-8")
    duration_s = cast(float, audio[0].duration_s) if audio else export["duration_s"]  # an audio file has a duration
    return ddex.PackagedTrack(
        number=track.number, title=config.title, isrc=isrc, duration_s=duration_s, has_vocals=export["has_vocals"], audio=audio, clips=clips
    )
