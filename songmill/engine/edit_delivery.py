"""Deliver a release again with each track's current version from the song editor.

    result = deliver_current("config/releases/demo.yaml", out_dir=Path("dist"))
    result["tracks"]   # [{number, version, isrc, edited_from_isrc, why}, …]

A track that was never edited is delivered as its last render made it. An edited version is a
new recording when its operations change the recording materially (IFPI's ISRC Handbook: another
mix or edit gets its own ISRC; a remaster may keep it — `recording_identity`): it gets an ISRC
of its own the first time it is delivered, from the same registrant series as the tracks', and
keeps it after. Its DDEX SoundRecording then says which recording it is an edited version of
(`RelatedResource` / `IsEditedVersionOf` with that recording's ISRC). Every delivery replaces
the release's last one (the catalogue records which, and that the audio changed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from songmill.catalogue import EDITOR_RUNNER, Catalogue
from songmill.core.errors import SongmillError
from songmill.core.paths import config_file
from songmill.core.spec import TrackSpec
from songmill.core.store import ArtifactRef, default_store_spec, open_store
from songmill.editor.operations import REMASTERING, operations_from_json, recording_identity
from songmill.engine.configs import load_release_with_profiles
from songmill.engine.editing import EditedTrack, base_report_track, delivery_artifacts, rendered_seed
from songmill.engine.runner import stored_artifacts
from songmill.engine.stage import StageResult
from songmill.release.package import RenderedTrack, delivery_time, package_and_deliver
from songmill.release.settings import load_delivery_settings

log = logging.getLogger("songmill.editor")


def set_registrant() -> str:
    return f"set identifiers.isrc_country and identifiers.isrc_registrant in {config_file('delivery.yaml')}"


def _is_new_recording(version: dict) -> bool:
    return bool(recording_identity(operations_from_json(version["operations"]))["new_isrc"])


def recording_version(versions: dict[int, dict], number: int) -> int | None:
    """The version whose recording `number` is: itself, or — for a remaster of an edited version
    (only the master's tone changed since) — the version it remasters; None for the config's own
    recording (no material change at all)."""
    version = versions[number]
    if not _is_new_recording(version):
        return None
    while version["parent"] is not None and all(isinstance(op, REMASTERING) for op in operations_from_json(version["added"])):
        parent = versions[version["parent"]]
        if not _is_new_recording(parent):
            break
        version = parent
    return int(version["number"])


def edited_from(versions: dict[int, dict], recording: int, track_isrc: str | None) -> str | None:
    """The ISRC of the recording `recording` was edited from: the nearest version before it that
    has an ISRC of its own (one delivered before), else the track's."""
    parent = versions[recording]["parent"]
    while parent is not None:
        version = versions[parent]
        if not _is_new_recording(version):
            break
        if version.get("isrc"):
            return version["isrc"]
        parent = version["parent"]
    return track_isrc


def deliver_current(config: str | Path, *, out_dir: Path = Path("dist"), database_url: str | None = None, store_spec: str | None = None) -> dict[str, Any]:
    """Package and deliver the release with every track's current version (see the module's doc).

    Raises
    ------
    SongmillError : a track that was never rendered, a release not configured with an ISRC
        registrant while an edited version needs its own ISRC, or anything `package_and_deliver`
        refuses — before a delivered file is touched.
    """
    spec, profiles = load_release_with_profiles(Path(config))
    store = open_store(store_spec or default_store_spec())
    settings = load_delivery_settings(release_id=spec.release.id)
    ids, year = settings.identifiers, delivery_time().year
    catalogue = Catalogue.open(database_url)
    staging = Path(tempfile.mkdtemp(prefix=".delivery-", dir=_staging_parent(out_dir, spec.release.id)))
    try:
        report_paths = [r["report_path"] for r in catalogue.runs_of(spec.release.id) if r.get("report_path") and r.get("status") == "succeeded"]
        tracks, rows, track_specs, exports = [], [], {}, []
        commercial = any(profiles[name].commercial for name in spec.release.profiles)
        targets = [EditedTrack(Path(config), spec, number, commercial) for number in range(1, len(spec.tracks) + 1)]  # the config read once, above
        # every current version's delivery files first: no version is given an ISRC for a delivery that cannot be made
        edited = {target.number: _edited_versions(catalogue, target, store) for target in targets}
        for target in targets:
            number = target.number
            track_id = catalogue.upsert_track(spec.release.id, number, title=spec.tracks[number - 1].title, seed=rendered_seed(catalogue, target))
            version = edited[number]
            rendered, row = _current_recording(catalogue, target, track_id, report_paths, ids, year, store, staging / f"track-{number:02d}", version)
            tracks.append(rendered)
            if version is not None and version.exported is not None:
                exports.append((track_id, version.exported))
            rows.append(row)
            track_specs[number] = row.pop("track_spec")
        edited_spec = spec.model_copy(  # each track as its current version renders it (title, tempo, key…)
            update={"tracks": [TrackSpec.model_validate(track_specs[n]) if track_specs[n] else t for n, t in enumerate(spec.tracks, start=1)]}
        )
        run_id = catalogue.start_run(spec.release.id, runner=EDITOR_RUNNER, base_seed=None)
        try:
            for track_id, exported in exports:  # the versions' delivery files: their lineage, with this delivery
                catalogue.record_stage(run_id, track_id, exported)
            delivered = _deliver(edited_spec, profiles, tracks, out_dir=out_dir, config=Path(config), catalogue=catalogue, run_id=run_id)
            report_path = Path(out_dir) / spec.release.id / "edits" / "delivery-report.json"
            result = {"release": spec.release.id, "run_id": run_id, "tracks": rows, **delivered, "report_path": str(report_path)}
            report_path.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        except BaseException as err:  # never left "running" (`catalogue check` would find it)
            why = "interrupted (Ctrl-C) while the release was delivered" if isinstance(err, KeyboardInterrupt) else str(err) or type(err).__name__
            with contextlib.suppress(SongmillError):  # a catalogue that is gone: the error that stopped the delivery is the one to tell
                catalogue.finish_run(run_id, status="failed", error=why)
            raise
        catalogue.finish_run(run_id, status="succeeded", report_path=str(report_path))
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        catalogue.close()


def _staging_parent(out_dir: Path, release_id: str) -> Path:
    folder = Path(out_dir) / release_id / "edits"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclasses.dataclass
class _EditedVersions:
    """An edited track's versions by number and its current one, whose artifacts include its
    delivery files, and the export stage's result when they came from it (encoded now, or from
    its cache: an edit makes a version up to the gate, see `delivery_artifacts`)."""

    versions: dict[int, dict]
    current: dict
    exported: StageResult | None


def _edited_versions(catalogue: Catalogue, target: EditedTrack, store) -> _EditedVersions | None:
    """The track's versions, its current one with its delivery files made (None: never edited)."""
    head = catalogue.version_head(target.release_id, target.number)
    if head is None:
        return None
    versions = {v["number"]: v for v in catalogue.versions(target.release_id, target.number)}
    current = versions[head["current"]]
    artifacts, exported = delivery_artifacts(target, current, store)
    versions[current["number"]] = current = {**current, "artifacts": artifacts}
    return _EditedVersions(versions, current, exported)


def _current_recording(
    catalogue: Catalogue, target: EditedTrack, track_id: int, report_paths: list[str], ids, year: int, store, folder: Path, edited: _EditedVersions | None
) -> tuple[RenderedTrack, dict]:
    """The track's current version (`edited`, from `_edited_versions`; None: never edited, its
    last render) as the release steps take it, and a row saying which recording it is."""
    if edited is None:
        base = base_report_track(target, report_paths)
        artifacts = stored_artifacts(base["artifacts"])
        row = {"number": target.number, "version": None, "isrc": None, "edited_from_isrc": None, "why": "never edited: its last render", "track_spec": None}
        return RenderedTrack(target.number, track_id, _fetch(store, artifacts, folder), models=_report_models(base)), row
    versions, current = edited.versions, edited.current
    isrc, source = None, None
    recording = recording_version(versions, current["number"])
    if recording is not None:
        isrc = catalogue.version_isrc(target.release_id, target.number, recording, country=ids.isrc_country, registrant=ids.isrc_registrant, year=year)
        given = target.spec.tracks[target.index].isrc
        track_isrc = catalogue.track_isrc(track_id, given=given, country=ids.isrc_country, registrant=ids.isrc_registrant, year=year)
        if isrc is None and track_isrc is not None:  # the recording it edits has an ISRC: the edit must not go out under it, nor without its own
            raise SongmillError(
                f"track {target.number} version {current['number']} is a new recording and needs an ISRC of its own (the recording it edits is {track_isrc}), "
                f"but no ISRC registrant is configured; {set_registrant()}"
            )
        if isrc is None:  # no ISRCs at all: delivered as its render delivers the recording it edits
            log.warning(
                "track %d version %d is a new recording and would get an ISRC of its own, but no ISRC registrant is configured: delivered without one (%s)",
                target.number,
                current["number"],
                set_registrant(),
            )
        else:
            versions[recording]["isrc"] = isrc
            source = edited_from(versions, recording, track_isrc)
    why = recording_identity(operations_from_json(current["operations"]))["why"]
    row = {"number": target.number, "version": current["number"], "isrc": isrc, "edited_from_isrc": source, "why": why, "track_spec": current["track_spec"]}
    row["without_isrc"] = recording is not None and isrc is None  # a new recording, and no registrant to give it its ISRC
    files = _fetch(store, current["artifacts"], folder)
    return (
        RenderedTrack(
            target.number,
            track_id,
            files,
            models=tuple(current["models"])
            if current.get("models") is not None
            else _report_models(base_report_track(target, report_paths)),  # made before 0009
            isrc=isrc,
            edited_from_isrc=source,
        ),
        row,
    )


def _report_models(track: dict) -> tuple[dict, ...]:
    """Every registry model a run report's track used, once each, by name."""
    return tuple(sorted({m["name"]: m for stage in track.get("stages", []) for m in stage.get("models", [])}.values(), key=lambda m: m["name"]))


def _fetch(store, artifacts: dict, folder: Path) -> dict[str, Path]:
    """Every artifact from the store by its hash (the store checks each copy)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: store.get_file(ArtifactRef.from_dict(ref), folder / name) for name, ref in sorted(artifacts.items())}


def _deliver(spec, profiles: dict, tracks: list[RenderedTrack], *, out_dir: Path, config: Path, catalogue: Catalogue, run_id: int) -> dict:
    from songmill.engine.runner import watermark_detector

    detect = None
    if any(profiles[name].watermark for name in spec.release.profiles):
        detect = watermark_detector(commercial=any(profiles[name].commercial for name in spec.release.profiles))
    return package_and_deliver(
        spec, profiles, tracks, out_dir=Path(out_dir), config_path=config, catalogue=catalogue, run_id=run_id, detect_watermark=detect, redeliver=True
    )
