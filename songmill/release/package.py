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
        resources/<UPC>_01_001.opus.c2pa   the C2PA manifest of a file that cannot embed one (Opus)
        provenance.json                    what made each file: models, licences, AI disclosure, checks
        checksums.sha256                   every file above, verified before the folder goes live

Identifiers come first (the UPC and each ISRC from the catalogue, allocated once and kept),
then the cover (the config's `cover`, validated, or one generated from the release), then per
profile the files are copied from the track artifacts, tagged, signed (C2PA, after tagging: the
manifest's hash binds the tagged bytes), hashed, described in the DDEX message, validated, read
back (manifest, AI_DISCLOSURE tag, watermark) and only then delivered (see `deliver.py`); a file
that fails a check stops the delivery before the previous one is touched. The catalogue records
every delivery.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from songmill.catalogue import Catalogue
from songmill.core.disclosure import track_statement
from songmill.core.errors import SongmillError
from songmill.core.paths import config_file
from songmill.core.profiles import DeliveryProfile
from songmill.core.seeds import derive_seed
from songmill.core.spec import ReleaseSpec
from songmill.core.store import file_sha256
from songmill.release import artwork, ddex
from songmill.release.credentials import Credentials, embed_manifest, sidecar_path, usable_credentials
from songmill.release.deliver import MANIFEST, deliver_local, deliver_s3, delivery_lock, staging_folder, write_manifest
from songmill.release.encode import EXTENSION
from songmill.release.provenance import (
    PROVENANCE_FILE,
    FileCheck,
    Ingredient,
    TrackProvenance,
    WatermarkDetector,
    audio_manifest,
    check_delivered_file,
    cover_manifest,
    licence_audit,
    provenance_document,
)
from songmill.release.settings import DeliverySettings, load_delivery_settings
from songmill.release.tags import SyncedLyrics, TrackTags, lrc_text, tag_file

log = logging.getLogger("songmill.release")
CHECK_THREADS = 2  # delivered files read back at once (two cores; each reader is mostly ffmpeg and torch, outside the GIL)


@dataclass(frozen=True)
class RenderedTrack:
    """What the release steps need of a rendered track: its catalogue id and artifact files."""

    number: int
    track_id: int
    files: dict[str, Path]  # artifact name → local path (export.json, export-*.…)
    rendered: bool = True  # False: a stage failed (the track is left out of a partial release)
    models: tuple[dict, ...] = ()  # every registry model its stages used (ModelEntry.provenance())
    # a song editor's version (songmill.engine.editing.deliver_current): its own ISRC when it is
    # a new recording, and the ISRC of the recording it is an edited version of (said in DDEX)
    isrc: str | None = None
    edited_from_isrc: str | None = None


UNSIGNED = "none: "  # how a delivery's `content_credentials` begins when it was made without them, before why


def unsigned_reasons(deliveries: list[dict], profiles: dict[str, DeliveryProfile]) -> list[tuple[str, str]]:
    """(profile, why) for each delivery made without Content Credentials that its profile did not
    turn off (`content_credentials: off` is unsigned on purpose): what a command says on the
    terminal, since such a delivery may replace a signed one."""
    return [
        (d.get("profile", ""), str(d["content_credentials"]).removeprefix(UNSIGNED))
        for d in deliveries
        if str(d.get("content_credentials") or "").startswith(UNSIGNED)
        and not (d.get("profile") in profiles and profiles[d["profile"]].content_credentials == "off")
    ]


def delivery_time() -> dt.datetime:
    """Now, or the reproducible-builds convention's `SOURCE_DATE_EPOCH` (seconds since 1970, UTC)
    when set: the DDEX message's creation time and the ISRC year then repeat, so two runs of one
    config (e.g. `songmill render` and an Airflow run) deliver byte-identical folders (unsigned
    ones: a C2PA signature differs every time)."""
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
        return artwork.cover_jpeg(image), artwork.cover_jpeg(image, artwork.THUMBNAIL_PX)
    return _generated_cover(spec.release.title, spec.release.artist, spec.tracks[0].mood, derive_seed(spec.release.id, bits=32))


@functools.lru_cache(maxsize=8)
def _generated_cover(title: str, artist: str, mood: str, seed: int) -> tuple[bytes, bytes]:
    """(cover JPEG, thumbnail JPEG) drawn for a release: a second of CPU (a 3000-px blur), kept
    for a process that packages the release again (an edit, a rerun); the same inputs draw the
    same bytes."""
    image = artwork.generate_cover(title, artist, mood, seed=seed)
    return artwork.cover_jpeg(image), artwork.cover_jpeg(image, artwork.THUMBNAIL_PX)


def _destination(profile_name: str, profile: DeliveryProfile, out_dir: Path) -> str:
    """Where a profile's releases go: s3://…, or a local folder (relative ones under --out)."""
    target = profile.destination or profile_name
    if target.startswith("s3://"):
        return target.rstrip("/")
    path = Path(target)
    return str(path if path.is_absolute() else (out_dir / path).resolve())


def _without_rejected(spec: ReleaseSpec, tracks: list[RenderedTrack], catalogue: Catalogue) -> tuple[list[RenderedTrack], dict[int, str]]:
    """The tracks people did not reject in review (the catalogue's verdicts), and why the others
    are withheld: a rejected track stays out of the delivery like one that failed the gate."""
    rejected = {n: why for n, why in catalogue.rejected_in_review(spec.release.id).items() if any(t.number == n for t in tracks)}
    if not rejected:
        return tracks, {}
    kept = [t for t in tracks if t.number not in rejected]
    named = "; ".join(f"track {n}: {why}" for n, why in sorted(rejected.items()))
    if not kept:
        raise SongmillError(f"every track of {spec.release.id} was rejected in review ({named}); nothing to deliver")
    if not spec.release.allow_partial:
        raise SongmillError(f"{named}; release.allow_partial is false, so {spec.release.id} is not delivered without it")
    return kept, rejected


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
    detect_watermark: WatermarkDetector | None = None,
    redeliver: bool = False,
) -> dict:
    """Package and deliver a rendered release to each of its profiles.

    A profile the release was delivered to before is delivered again only when the audio is the
    same (a rerun, a retry) or `redeliver` is set; the catalogue records which delivery replaced
    which, and why when the audio changed.

    Returns {"upc", "isrcs", "deliveries": [...], "delivered": [{profile, format, path, sha256, bytes}]}.

    Raises
    ------
    SongmillError : a bad cover, a message the schema rejects, a dead S3 endpoint, other audio
        than was delivered before without `redeliver` — before anything already delivered is
        touched. (A release whose sender, recipient or ISRCs are not configured is delivered
        without a DDEX message; `ddex_skipped` says why.)
    """
    # a second render of the release waits on the lock, then replaces this delivery
    with catalogue.release_lock(spec.release.id), _write_errors_in_one_sentence(spec.release.id):
        tracks, withheld = _without_rejected(spec, tracks, catalogue)
        settings = settings or load_delivery_settings(release_id=spec.release.id)
        now = now or delivery_time()
        credentials, unsigned_reason = usable_credentials(settings.signing)
        content = {name: _content(tracks, name) for name in spec.release.profiles}
        earlier = {name: catalogue.latest_delivery(spec.release.id, name) for name in spec.release.profiles}
        replacing: dict[str, tuple[int | None, str | None]] = {}
        for name in spec.release.profiles:  # refuse before any identifier is allocated or file written
            _check_credentials_policy(name, profiles[name], credentials, unsigned_reason)
            _check_licences(name, profiles[name], tracks)
            replacing[name] = _check_redelivery(spec.release.id, name, content[name], earlier[name], redeliver=redeliver)
        ids = settings.identifiers
        upc = catalogue.release_upc(spec.release.id, given=spec.release.upc, company_prefix=ids.gs1_company_prefix)
        delivered_under = {t.number: catalogue.recorded_isrc(t.track_id) for t in tracks if t.isrc is None}  # an edited version has its own
        isrcs = {
            t.number: t.isrc
            or catalogue.track_isrc(t.track_id, given=spec.tracks[t.number - 1].isrc, country=ids.isrc_country, registrant=ids.isrc_registrant, year=now.year)
            for t in tracks
        }
        for name in spec.release.profiles:  # every profile's folder, before any profile is delivered
            destination = _destination(name, profiles[name], Path(out_dir))
            if not destination.startswith("s3://"):
                _check_folder_is_this_releases(Path(destination) / upc, spec.release.id, upc)
        cover, thumbnail = _release_cover(spec, config_path)
        exports = {t.number: json.loads(t.files["export.json"].read_text(encoding="utf-8")) for t in tracks}
        result: dict[str, Any] = {
            "upc": upc,
            "isrcs": isrcs,
            "deliveries": [],
            "delivered": [],
            "withheld": withheld,
            "changed_under_same_isrc": _changed_under_same_isrc(content, earlier, isrcs, delivered_under),
        }
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
                credentials=credentials if profile.content_credentials != "off" else None,
                unsigned_reason=unsigned_reason if profile.content_credentials != "off" else f"profile '{name}' has content_credentials: off",
                detect_watermark=detect_watermark if profile.watermark else None,
            )
            catalogue.record_delivery(
                release_id=spec.release.id,
                run_id=run_id,
                profile=name,
                destination=delivery["destination"],
                upc=upc,
                manifest_sha256=delivery["manifest_sha256"],
                files=delivery["files"],
                content=content[name],
                replaces_id=replacing[name][0],
                replaced_because=replacing[name][1],
            )
            result["deliveries"].append({k: v for k, v in delivery.items() if k != "files"})
            result["delivered"] += [
                {"profile": name, "format": f["format"], "path": f["path"], "sha256": f["sha256"], "bytes": f["bytes"]} for f in delivery["files"]
            ]
        for track in tracks:
            catalogue.set_track_status(track.track_id, "delivered")
        return result


@contextlib.contextmanager
def _write_errors_in_one_sentence(release_id: str) -> Iterator[None]:
    """A full disk or a folder without write permission, met while a delivery is built, as one
    sentence naming the file (the staging folder is removed on the way out, so nothing partial
    is left and the previous delivery is untouched)."""
    try:
        yield
    except OSError as err:
        raise SongmillError(
            f"delivering {release_id} failed writing {err.filename or 'its files'} ({err.strerror or err}); "
            "free space there (or fix its permissions) and run again — the previous delivery is untouched"
        ) from None


def _content(tracks: list[RenderedTrack], profile_name: str) -> dict[int, str]:
    """What a delivery to the profile holds: each track's master (sha256), the audio its files are encoded from."""
    return {t.number: file_sha256(t.files[f"master-{profile_name}.wav"]) for t in tracks if f"master-{profile_name}.wav" in t.files}


def _check_folder_is_this_releases(dest: Path, release_id: str, upc: str) -> None:
    """A delivery folder is named by its UPC, which belongs to one release: a folder that holds
    another release's delivery is never replaced. (Its UPC was issued twice: a catalogue started
    again, with its counters, beside an output folder that kept the old one's deliveries.)"""
    try:
        holder = json.loads((dest / PROVENANCE_FILE).read_text(encoding="utf-8"))["release"]["id"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no delivery there yet (or not one songmill can read: the manifest check below it decides)
    if holder != release_id:
        raise SongmillError(
            f"{dest} holds release '{holder}', delivered under UPC {upc}, which the catalogue now gives '{release_id}'; "
            "a UPC belongs to one release: point SONGMILL_VAR_DIR at the catalogue that delivered it (its counters know the UPC is taken), "
            "or give this release its own upc, or another --out"
        )


def _check_redelivery(release_id: str, profile_name: str, content: dict[int, str], earlier: dict | None, *, redeliver: bool) -> tuple[int | None, str | None]:
    """(the delivery this one replaces, how its audio changed): refuses other audio than the
    release's last delivery to the profile (`earlier`, from the catalogue) unless `redeliver`. A
    rerun or a retry renders the same audio and passes; a delivery recorded before the catalogue
    kept its content cannot be compared."""
    if earlier is None:
        return None, None
    change = _audio_change(earlier["content"], content)
    if change and not redeliver:
        raise SongmillError(
            f"release '{release_id}' was delivered to profile '{profile_name}' on {earlier['delivered_at']} (UPC {earlier['upc']}) "
            f"and this render's audio differs ({change}); it was not delivered over it. Render with --redeliver "
            f"(Airflow: the redeliver param) to replace that delivery, or give the new version a release id of its own"
        )
    return earlier["id"], change


def _changed_under_same_isrc(
    content: dict[str, dict[int, str]], earlier: dict[str, dict | None], isrcs: dict, delivered_under: dict[int, str | None]
) -> list[dict]:
    """The tracks redelivered with other audio than each profile's last delivery (`earlier`), under the ISRC that
    delivery had (`delivered_under`: the catalogue's before this one; an edited version, with
    its own ISRC, is not in it): [{"track", "isrc", "delivered_at"}]. The ISRC handbook gives a
    materially changed recording (new words, a new mix) a new ISRC and lets a correction of the
    same one keep it: which it is, only the label knows, so the run says it (`songmill render`
    warns) and the config decides."""
    found: dict[int, dict] = {}
    for profile, after in content.items():
        last = earlier[profile]
        before = (last or {}).get("content") or {}
        for number in sorted(after):
            same_isrc = isrcs.get(number) is not None and delivered_under.get(number) == isrcs[number]
            if number in before and before[number] != after[number] and same_isrc and number not in found:
                found[number] = {"track": number, "isrc": isrcs[number], "delivered_at": cast(dict, last)["delivered_at"]}
    return list(found.values())


def _audio_change(before: dict[int, str] | None, after: dict[int, str]) -> str | None:
    """How a release's audio changed between two deliveries, in words; None when it did not (or is unknown)."""
    if before is None:
        return None
    changed = [n for n in sorted(after) if n in before and before[n] != after[n]]
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    words = [f"{_tracks(changed)} {'sounds' if len(changed) == 1 else 'sound'} different"] if changed else []
    words += [f"{_tracks(added)} {'is' if len(added) == 1 else 'are'} new"] if added else []
    words += [f"{_tracks(removed)} {'is' if len(removed) == 1 else 'are'} left out"] if removed else []
    return "; ".join(words) or None


def _tracks(numbers: list[int]) -> str:
    return ("track " if len(numbers) == 1 else "tracks ") + ", ".join(str(n) for n in numbers)


def _check_credentials_policy(name: str, profile: DeliveryProfile, credentials: Credentials | None, unsigned_reason: str | None) -> None:
    if profile.content_credentials == "required" and credentials is None:
        raise SongmillError(
            f"profile '{name}' requires Content Credentials (content_credentials: required), but {unsigned_reason}; "
            f"give the label's signing key and certificate in {config_file('delivery.yaml')}, or set the profile's content_credentials: optional"
        )


def _check_licences(name: str, profile: DeliveryProfile, tracks: list[RenderedTrack]) -> None:
    """A commercial profile takes nothing (model, soundfont, voice, watermark) not licensed for commercial use."""
    if not profile.commercial:
        return
    for track in tracks:
        refused = [m for m in licence_audit(list(track.models), commercial=True) if not m["allowed"]]
        if refused:
            first = refused[0]
            raise SongmillError(
                f"track {track.number} used the {first['kind']} '{first['name']}' ({first['licence']}), which is not licensed for commercial use, "
                f"so it cannot be delivered to the commercial profile '{name}'; render it with another {first['kind']} or deliver to a non-commercial profile"
            )


def _track_provenance(spec: ReleaseSpec, profile: DeliveryProfile, track: RenderedTrack, export: dict, *, upc: str, isrc: str | None) -> TrackProvenance:
    config = spec.tracks[track.number - 1]
    disclosure = spec.release.ai_disclosure
    ingredients = []
    if config.lyrics:
        ingredients.append(Ingredient("lyrics", hashlib.sha256(config.lyrics.encode()).hexdigest(), "the track's lyrics, as the release config gives them"))
    reference = config.reference or profile.reference
    if reference:
        ingredients.append(Ingredient("reference recording", file_sha256(Path(reference)), Path(reference).name))
    return TrackProvenance(
        release_id=spec.release.id,
        number=track.number,
        title=config.title,
        isrc=isrc,
        upc=upc,
        disclosure=track_statement(
            contains_ai=disclosure.contains_ai, generated=disclosure.generated, has_vocals=export["has_vocals"], lyrics_provided=bool(config.lyrics)
        ),
        models=track.models,
        voice_identity={"name": config.voice.identity} if config.voice and config.voice.identity else None,
        ingredients=tuple(ingredients),
    )


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
    credentials: Credentials | None = None,
    unsigned_reason: str | None = None,
    detect_watermark: WatermarkDetector | None = None,
) -> dict:
    remote = destination.startswith("s3://")
    records = {t.number: _track_provenance(spec, profile, t, exports[t.number], upc=upc, isrc=isrcs[t.number]) for t in tracks}
    dest = (staging_root if remote else Path(destination)) / upc
    with delivery_lock(dest), staging_folder(dest) as staged:
        if not remote:  # again under the lock: another render may have delivered there since the check before any profile
            _check_folder_is_this_releases(dest, spec.release.id, upc)
        resources = staged / "resources"
        resources.mkdir()
        for image, data in ((f"{upc}.jpg", cover), (f"{upc}_thumbnail.jpg", thumbnail)):
            (resources / image).write_bytes(data)
            if credentials is not None:
                embed_manifest(resources / image, cover_manifest(spec.release.id, upc, image, generated=not spec.release.cover), credentials)
        packaged_tracks = [
            _package_track(
                spec,
                name,
                t,
                exports[t.number],
                upc=upc,
                isrc=isrcs[t.number],
                cover=cover,
                resources=resources,
                total=len(spec.tracks),
                record=records[t.number],
                credentials=credentials,
            )  # fmt: skip
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
        checks = _check_provenance(staged, packaged_tracks, records, credentials=credentials, detect=detect_watermark)
        provenance_tracks = [_provenance_entry(records[t.number], t, checks, profile) for t in packaged_tracks]
        (staged / PROVENANCE_FILE).write_bytes(
            provenance_document(
                release={"id": spec.release.id, "upc": upc, "title": spec.release.title, "artist": spec.release.artist, "label": spec.release.label},
                profile={"name": name, "commercial": profile.commercial, "watermark": profile.watermark, "content_credentials": profile.content_credentials},
                tracks=provenance_tracks,
                cover={"files": [f"resources/{upc}.jpg", f"resources/{upc}_thumbnail.jpg"], "generated": not spec.release.cover},
                signed_by=credentials.subject if credentials else None,
                unsigned_reason=None if credentials else unsigned_reason,
            )
        )
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
    return {
        "profile": name,
        "destination": where,
        "upc": upc,
        "manifest_sha256": manifest_sha,
        "ddex_skipped": skipped,
        "content_credentials": credentials.subject if credentials else f"{UNSIGNED}{unsigned_reason}",
        "watermark_checked": detect_watermark is not None,
        "provenance": provenance_tracks,  # the licence audit and each file's checks (the QC report shows them)
        "files": files,
    }


def _check_provenance(
    staged: Path, tracks: list[ddex.PackagedTrack], records: dict[int, TrackProvenance], *, credentials: Credentials | None, detect: WatermarkDetector | None
) -> dict[str, dict]:
    """Read every staged audio file back (manifest, AI_DISCLOSURE tag, watermark) and the covers'
    manifests; SongmillError with the first problem, before anything is delivered."""
    checks, problems = {}, []
    audio = [(track, packaged) for track in tracks for packaged in [*track.audio, *track.clips]]

    def read_back(item: tuple[ddex.PackagedTrack, ddex.PackagedFile]) -> FileCheck:
        track, packaged = item
        return check_delivered_file(
            staged / packaged.path, disclosure=records[track.number].disclosure, credentials=credentials, detect=detect, relative=packaged.path
        )

    # two files at a time: the decoder (ffmpeg) and the watermark reader (torch) leave the GIL
    with ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:
        for (_, packaged), check in zip(audio, pool.map(read_back, audio)):
            checks[packaged.path] = asdict(check)
            problems += check.problems
    for cover in sorted((staged / "resources").glob("*.jpg")):
        relative = cover.relative_to(staged).as_posix()
        check = check_delivered_file(cover, disclosure=None, credentials=credentials, detect=None, relative=relative)
        checks[relative] = asdict(check)
        problems += check.problems
    if problems:
        raise SongmillError(
            f"the delivery stopped before it replaced anything: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    return checks


def _provenance_entry(record: TrackProvenance, track: ddex.PackagedTrack, checks: dict[str, dict], profile: DeliveryProfile) -> dict:
    files = [f.path for f in [*track.audio, *track.clips]]
    return {
        "number": record.number,
        "title": record.title,
        "isrc": record.isrc,
        "ai_disclosure": record.disclosure.to_dict(),
        "digital_source_type": record.source_type,
        "ingredients": [asdict(i) for i in record.ingredients],
        "voice_identity": record.voice_identity,
        "licences": licence_audit(list(record.models), commercial=profile.commercial),
        "files": [
            {**checks[path], "sidecar": sidecar_path(Path(path)).as_posix() if checks[path]["credentials"] and checks[path]["credentials"]["sidecar"] else None}
            for path in files
        ],
    }


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
    spec: ReleaseSpec,
    profile_name: str,
    track: RenderedTrack,
    export: dict,
    *,
    upc: str,
    isrc: str,
    cover: bytes,
    resources: Path,
    total: int,
    record: TrackProvenance,
    credentials: Credentials | None,
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
        ai_disclosure=record.disclosure.tag_text(),
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
        synced = tags.synced
        if encoded["clip"]:  # a clip's synced lyrics: what it sings, timed from its own start
            synced = synced.within(encoded["clip_start_s"], encoded["clip_start_s"] + encoded["duration_s"])
        tag_file(target, TrackTags(**{**tags.__dict__, "loudness_lufs": encoded["integrated_lufs"], "synced": synced}))
        if credentials is not None:  # after tagging: the manifest's hash covers the tagged file
            keeps_sylt = target.suffix == ".mp3" and bool(synced.syllables)  # c2pa would drop the synced lyrics
            embed_manifest(target, audio_manifest(record, name), credentials, sidecar=keeps_sylt)
        (clips if encoded["clip"] else audio).append(_packaged(resources.parent, target, encoded))
    duration_s = cast(float, audio[0].duration_s) if audio else export["duration_s"]  # an audio file has a duration
    if export["synced_lyrics"]["lines"]:  # its [length:] the delivered file's, as the DDEX message gives it
        (resources / f"{base}.lrc").write_text(lrc_text(tags, duration_s), encoding="utf-8")
    return ddex.PackagedTrack(
        number=track.number,
        title=config.title,
        isrc=isrc,
        duration_s=duration_s,
        has_vocals=export["has_vocals"],
        edited_from_isrc=track.edited_from_isrc,
        audio=audio,
        clips=clips,
        ai=record.disclosure,
    )
