"""The song editor's engine: apply operations to a rendered track, render only what changes,
keep every version.

    result = edit("config/releases/demo.yaml", track=1, command="slow it down to 92", out_dir=Path("dist"))
    result.report_path      # dist/demo-single/edits/track-01/v0002/edit-report.json
    undo("config/releases/demo.yaml", track=1, out_dir=Path("dist"))

A version is the config's track with an ordered list of operations applied (songmill.editor);
version 1 is the track as its config renders it, made on the first edit. Each version is
rendered through the same stage graph as `songmill render`, up to the gate (its delivery files
are encoded when it is delivered: `delivery_artifacts`): a stage whose inputs and parameters
did not change is served from the cache, and the edit report lists the stages that ran. A
version that fails the gate is not recorded (exit 1), and a new seed is never tried: the user
asked for this song, changed.

Files: `<out>/<release-id>/edits/track-NN/vNNNN/` holds each version's edit-report.json, its
decisions and the audio it made (audio its parent had already, or for version 1 the audio the
render put in the release's track folder, is listed in the report by hash, not copied again);
`current/` holds every file of the current version, from the store by hash (so undo and
switching give byte-identical files, even after `dist/` was deleted; a file `current/` held
with the same bytes already is linked on, not copied again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import getpass
import glob
import json
import logging
import math
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from models.registry import ModelRegistry
from songmill.catalogue import EDITOR_RUNNER, Catalogue
from songmill.core.errors import InputError, SongmillError, tracks_it_has
from songmill.core.paths import check_output_folder, safe_name
from songmill.core.score import Score
from songmill.core.sections import section_labels
from songmill.core.spec import ReleaseSpec, TrackSpec
from songmill.core.store import ArtifactRef, StoredArtifactError, as_if_created, atomic_write_bytes, default_store_spec, file_sha256, open_store
from songmill.editor.commands import parse_command
from songmill.editor.lm_commands import parse_with_lm
from songmill.editor.operations import (
    RewriteLine,
    SectionSeeded,
    SongFacts,
    apply_operations,
    contradictions,
    operations_from_json,
    operations_to_json,
    recording_identity,
)
from songmill.engine.audition import Audition
from songmill.engine.configs import load_release_with_profiles
from songmill.engine.runner import record_track, render_track_once, stored_artifacts
from songmill.engine.stage import Stage, StageResult, TrackJob, is_kept, run_stage
from songmill.engine.task_data import TrackOutcome
from songmill.engine.track_stages import EXPORT, MASTER, QC, TRACK_STAGES

# The measurements a version keeps, from the gate's report (for history and diff).
MEASURES = ("integrated_lufs", "true_peak_dbtp", "tempo_bpm", "key_detected", "key_score", "vocal_median_cents", "duration_s")

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EditResult:
    version: int
    operations: list  # this edit's operations
    recomputed: list[str]  # the stages that ran
    cached: list[str]  # the stages served from the cache
    report_path: Path
    wall_s: float
    audition: Path | None = None  # the new mix mastered before the gate (songmill.engine.audition)
    audition_s: float | None = None  # seconds from the edit's start until the audition was written


@dataclasses.dataclass
class EditedTrack:
    """A track of a release config, as the editor works on it."""

    config: Path
    spec: ReleaseSpec
    number: int
    commercial: bool

    @property
    def release_id(self) -> str:
        return self.spec.release.id

    @property
    def index(self) -> int:
        return self.number - 1

    def folder(self, out_dir: Path) -> Path:
        return Path(out_dir) / self.release_id / "edits" / f"track-{self.number:02d}"


def track_count(config: str | Path) -> int:
    """How many tracks the release config has."""
    spec, _ = load_release_with_profiles(Path(config))
    return len(spec.tracks)


def open_track(config: str | Path, track: int) -> EditedTrack:
    spec, profiles = load_release_with_profiles(Path(config))
    if not 1 <= track <= len(spec.tracks):
        raise InputError(f"--track {track} is not in {config} ({tracks_it_has(len(spec.tracks))})")
    return EditedTrack(Path(config), spec, track, any(profiles[name].commercial for name in spec.release.profiles))


# ---------------------------------------------------------------- edit


def facts_for_track(config: str | Path, track: int, *, database_url: str | None = None, store_spec: str | None = None) -> SongFacts:
    """The song as its current version (or, before the first edit, its last render) has it."""
    return _parent(open_track(config, track), database_url=database_url, store=open_store(store_spec or default_store_spec())).facts


def parse_for_track(
    config: str | Path, track: int, command: str, *, lm: str | None = None, database_url: str | None = None, store_spec: str | None = None
) -> list:
    """The operations a command means for the track as it stands, checked against it exactly as
    an edit would check them (no rendering, nothing recorded): `--dry-run` and the DAG's parse task.
    `lm`: a registry model reads the words instead of the rule parser (songmill.editor.lm_commands)."""
    return check_edit(config, track, command=command, lm=lm, database_url=database_url, store_spec=store_spec)


def check_edit(
    config: str | Path,
    track: int,
    *,
    command: str | None = None,
    operations: list | None = None,
    lm: str | None = None,
    database_url: str | None = None,
    store_spec: str | None = None,
) -> list:
    """Parse (or take) the operations and apply them to the track as it stands; raises the
    sentence an edit would raise. Returns the operations as parsed: a new melody's (or a
    rewritten line's) seed is given when the edit is recorded (`_with_seeds`), so it is checked
    here with a seed like the one it will get."""
    target = open_track(config, track)
    parent = _parent(target, database_url=database_url, store=open_store(store_spec or default_store_spec()))
    added = _operations(command, operations, parent.facts, lm)
    apply_operations(parent.spec, target.index, _with_seeds(added, parent.seed, target, salt=0), parent.facts)
    return added


@dataclasses.dataclass
class _Parent:
    """What a new version is made from: the current version (None before the first edit), its
    spec, the song as it renders, and the seed."""

    version: dict | None
    spec: ReleaseSpec
    facts: SongFacts
    seed: int
    artifacts: dict


def _parent(target: EditedTrack, *, database_url: str | None, store) -> _Parent:
    catalogue = Catalogue.open(database_url)
    try:
        current = _current_version(catalogue, target)
        seed = current["seed"] if current else rendered_seed(catalogue, target)
        report_paths = _succeeded_report_paths(catalogue, target)
        first = catalogue.versions(target.release_id, target.number)[0] if current is not None else None
    finally:
        catalogue.close()
    # as the file reads now against what version 1 was made from, both through today's TrackSpec
    # (a field added since, with its default, is no change)
    if current is not None and first is not None and TrackSpec.model_validate(first["track_spec"]) != target.spec.tracks[target.index]:
        log.warning(
            "%s: track %d has changed since its versions were made from it; edits apply to its versions (now version %d), "
            "without the file's changes, and songmill render renders the file as it is now",
            target.config,
            target.number,
            current["number"],
        )
    if current is not None:
        return _Parent(current, _spec_with_track(target, current["track_spec"]), song_facts(current, store), seed, current["artifacts"])
    artifacts = _base_artifacts(target, report_paths)
    base = {"artifacts": artifacts, "track_spec": target.spec.tracks[target.index].model_dump(mode="json")}
    return _Parent(None, target.spec, song_facts(base, store), seed, artifacts)


def _succeeded_report_paths(catalogue: Catalogue, target: EditedTrack) -> list[str]:
    """The run reports of the release's succeeded runs, oldest first."""
    return [r["report_path"] for r in catalogue.runs_of(target.release_id) if r.get("report_path") and r.get("status") == "succeeded"]


def _spec_with_track(target: EditedTrack, track_spec: dict) -> ReleaseSpec:
    """The release as the config has it now, with the track as a version made it (each edit
    applies to what was heard, not to the config again)."""
    from songmill.core.spec import TrackSpec

    tracks = list(target.spec.tracks)
    tracks[target.index] = TrackSpec.model_validate(track_spec)
    return target.spec.model_copy(update={"tracks": tracks})


def _base_artifacts(target: EditedTrack, report_paths: list[str]) -> dict:
    """The track's artifacts as its latest successful render's report lists them."""
    track = base_report_track(target, report_paths)
    return stored_artifacts(track["artifacts"])


def base_report_track(target: EditedTrack, report_paths: list[str]) -> dict:
    """The track as its latest successful render's run report has it (artifacts, stages, models)."""
    for report_path in reversed(report_paths):
        path = Path(report_path)
        if path.is_file():
            report = json.loads(path.read_text(encoding="utf-8"))
            for track in report.get("tracks", []):
                if track.get("number") == target.number and "score.json" in track.get("artifacts", {}):
                    return track
    raise SongmillError(
        f"track {target.number} of release {target.release_id} has no run report to read the song from; run `songmill render {target.config}` again"
    )


def _operations(command: str | None, operations: list | None, facts: SongFacts, lm: str | None = None) -> list:
    if command is not None:
        added = parse_with_lm(command, facts, command_model(lm)) if lm else parse_command(command, facts)
    else:
        added = list(operations or [])
    if not added:
        raise SongmillError("the edit has no operations (give --command, or operations)")
    contradictions(added)
    return added


def command_model(name: str) -> Path:
    """The local folder of a transformers model the registry names, for free-text commands
    (`--lm`); commands never reach a delivered file, so any licence may read them."""
    registry = ModelRegistry.load()
    entry = registry.get(name)
    if entry.backend != "transformers":
        raise SongmillError(f"model '{name}' is a {entry.backend} model; --lm takes a transformers causal language model from the registry")
    return registry.resolve(name, commercial=False)


def heard_command(config: str | Path, track: int, recording: Path) -> str:
    """The words of a spoken command in a recording (WAV, FLAC…), under this song's grammar."""
    import soundfile

    from songmill.editor.speech import spoken_command

    if not Path(recording).is_file():
        raise SongmillError(f"the recording {recording} does not exist; give the path of a WAV or FLAC file")
    try:
        samples, rate = soundfile.read(str(recording), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, OSError) as err:
        raise SongmillError(f"{recording} is not a recording soundfile can read ({err}); give a WAV or FLAC") from None
    from songmill.editor.speech import words_to_numbers

    words, _ = spoken_command(samples, rate, facts_for_track(config, track))
    return words_to_numbers(words)  # "to ninety two" → "to 92": what the typed rules read


def edit(
    config: str | Path,
    *,
    track: int,
    command: str | None = None,
    operations: list | None = None,
    out_dir: Path = Path("dist"),
    author: str | None = None,
    reason: str | None = None,
    store_spec: str | None = None,
    database_url: str | None = None,
    lm: str | None = None,
    audition: bool = False,
    on_audition: Callable[[Path], None] | None = None,
) -> EditResult:
    """Apply a command (or typed operations) to the track's current version and render the new version.
    Given both, the operations apply and `command` is kept as the words they were parsed from (the
    edit DAG parses in one task and renders in the next). `lm`: a registry model reads the words
    instead of the rule parser (songmill.editor.lm_commands). `audition`: master the new mix for
    the first profile as soon as it exists, unwatermarked and ungated, into
    `edits/track-NN/auditions/vNNNN.wav` while the gated version is made, calling
    `on_audition(path)` when it is written (`songmill.engine.audition`).

    Raises SongmillError (exit 2) for a command or operation that cannot apply or a release never
    rendered, and GateFailed (exit 1) when the new version fails the gate; either way nothing is
    recorded (the request is checked before version 1 is made). Edits of one track wait for each
    other (a lock in the catalogue)."""
    started = dt.datetime.now(dt.UTC)
    target = open_track(config, track)
    check_output_folder(out_dir)
    store_spec = store_spec or default_store_spec()
    store = open_store(store_spec)
    catalogue = Catalogue.open(database_url)
    try:
        with catalogue.edit_lock(target.release_id, target.number):
            parent = _parent(target, database_url=database_url, store=store)
            added = _operations(command if operations is None else None, operations, parent.facts, lm)
            added = _with_seeds(added, parent.seed, target, salt=len(catalogue.versions(target.release_id, target.number)))
            edited = apply_operations(parent.spec, target.index, added, parent.facts)  # checked before anything is recorded
            current = parent.version or _make_first_version(catalogue, target, store, store_spec, out_dir)
            history = operations_from_json(current["operations"]) + added
            version = _render_version(
                catalogue,
                target,
                edited,
                current["seed"],
                store,
                store_spec,
                out_dir,
                history=history,
                added=added,
                command=command,
                parent=current["number"],
                parent_audio=frozenset(ref["sha256"] for ref in current["artifacts"].values()),
                audition=audition,
                on_audition=on_audition,
            )
            with _recording(catalogue, version["run_id"], report=Path(version["folder"]) / "edit-report.json"):
                version_row = version | {"author": author or _user(), "reason": reason}
                upcoming = len(catalogue.versions(target.release_id, target.number)) + 1  # under the lock: the number add_version gives
                materialise_files(target, version_row["artifacts"], version_row["operations"], store, out_dir, number=upcoming)  # before it becomes current
                number = catalogue.add_version(target.release_id, target.number, **_version_fields(version_row))
                report = _write_edit_report(target, number, version_row, out_dir, started)
    finally:
        catalogue.close()
    heard, heard_at = version.get("audition_file"), version.get("audition_ready_at")
    return EditResult(
        number,
        added,
        version["recomputed"],
        version["cached"],
        report,
        round((dt.datetime.now(dt.UTC) - started).total_seconds(), 3),
        Path(heard) if heard else None,
        round((heard_at - started).total_seconds(), 3) if heard_at else None,
    )


class GateFailed(SongmillError):
    """The edited version failed the quality gate (the CLI exits 1)."""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _current_version(catalogue: Catalogue, target: EditedTrack) -> dict | None:
    head = catalogue.version_head(target.release_id, target.number)
    if head is None:
        return None
    return next(v for v in catalogue.versions(target.release_id, target.number) if v["number"] == head["current"])


def rendered_seed(catalogue: Catalogue, target: EditedTrack) -> int:
    record = catalogue.track_record(target.release_id, target.number)
    if record is None or record["status"] not in ("rendered", "delivered"):
        state = "was never rendered" if record is None else f"is {record['status']}, not rendered"
        raise SongmillError(f"track {target.number} of release {target.release_id} {state}; run `songmill render {target.config}` first, then edit it")
    return int(record["seed"])


def _make_first_version(catalogue: Catalogue, target: EditedTrack, store, store_spec: str, out_dir: Path) -> dict:
    """Version 1: the track as the config renders it (from the cache when it was rendered here).
    Its folder keeps only masters the track's latest render did not make: the render's are in the
    release's track folder and the store already, its working audio in the store alone (copying a
    three-minute song's ~0.6 GB of stems and masters again cost a first edit 1.8 s)."""
    seed = rendered_seed(catalogue, target)
    version = _render_version(
        catalogue,
        target,
        target.spec,
        seed,
        store,
        store_spec,
        out_dir,
        history=[],
        added=[],
        command=None,
        parent=None,
        parent_audio=_rendered_audio(catalogue, target),
    )
    fields = _version_fields(version | {"author": _user(), "reason": "the track as its config renders it"})
    with _recording(catalogue, version["run_id"], report=Path(version["folder"]) / "edit-report.json"):
        number = catalogue.add_version(target.release_id, target.number, **fields)
        _write_edit_report(target, number, version | fields, out_dir, dt.datetime.now(dt.UTC))
    return next(v for v in catalogue.versions(target.release_id, target.number) if v["number"] == number)


def _rendered_audio(catalogue: Catalogue, target: EditedTrack) -> frozenset[str]:
    """The sha256 of the audio the track's latest successful render listed in its run report
    (none when the report is gone: then version 1's folder gets its own copies of the masters)."""
    report_paths = _succeeded_report_paths(catalogue, target)
    try:
        artifacts = _base_artifacts(target, report_paths)
    except SongmillError:
        return frozenset()
    return frozenset(ref["sha256"] for name, ref in artifacts.items() if name.endswith(".wav"))


def _with_seeds(added: list, seed: int, target: EditedTrack, *, salt: int) -> list:
    """A new melody (or a line the writer writes again) gets a seed of its own: the same request
    twice — or again after an undo — gives another melody (`salt`: the versions the track has), and the seed is kept in the history so
    the version renders the same again."""
    from songmill.core.seeds import derive_seed

    out = []
    for offset, op in enumerate(added):
        if isinstance(op, SectionSeeded | RewriteLine) and op.seed is None:  # a rewritten line too
            op = op.model_copy(update={"seed": derive_seed(seed, target.release_id, target.number, op.section, salt, offset)})
        out.append(op)
    return out


def _render_version(
    catalogue: Catalogue,
    target: EditedTrack,
    spec: ReleaseSpec,
    seed: int,
    store,
    store_spec: str,
    out_dir: Path,
    *,
    history,
    added,
    command,
    parent,
    parent_audio: frozenset[str] = frozenset(),
    audition: bool = False,
    on_audition: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Render the track of `spec` through the stage graph; the recorded fields of its version.
    Its folder gets the audio it made: none of `parent_audio` (audio by sha256 that its parent
    has, or for version 1 the audio the render put in the release's track folder). `audition`:
    make the version's audition once its mix exists, then call `on_audition` with its path."""
    job = TrackJob(spec, target.index, seed, target.commercial)
    number_hint = len(catalogue.versions(target.release_id, target.number)) + 1  # under the edit lock: the number add_version will give
    heard: Audition | None = None
    if audition:
        heard = Audition(job, store, to=_set_aside(target.folder(out_dir) / "auditions" / f"v{number_hint:04d}.wav"), on_ready=on_audition)
    outcome = _render_track(job, store_spec, heard)
    if outcome.error:
        raise SongmillError(f"the edited track {target.number} failed at stage {outcome.failed_stage}: {outcome.error}")
    if outcome.quarantined:
        heard_note = f"; hear it in {heard.to}" if heard is not None and heard.ready_at is not None else ""
        raise GateFailed(
            f"the edited track {target.number} fails the gate ({'; '.join(outcome.quarantined)}); nothing was recorded (undo is not needed){heard_note}"
        )
    folder = target.folder(out_dir) / f"v{number_hint:04d}"
    if folder.exists():  # left by an edit that failed after rendering: set aside, never mixed
        folder.rename(folder.with_name(f"{folder.name}.failed-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S%f}"))
    run_id = catalogue.start_run(target.release_id, runner=EDITOR_RUNNER, base_seed=None)  # ended by the caller's `_recording`
    with _recording(catalogue, run_id):
        report, _ = record_track(outcome, spec, catalogue, run_id, store, folder, version_only=True, audio_kept_elsewhere=parent_audio)
    return {
        "parent": parent,
        "operations": operations_to_json(history),
        "added": operations_to_json(added),
        "command": command,
        "config_sha256": file_sha256(target.config),
        "seed": seed,
        "track_spec": spec.tracks[target.index].model_dump(mode="json"),
        "artifacts": stored_artifacts(report["artifacts"]),
        "recomputed": [r.stage for r in outcome.results if not r.cached],
        "cached": [r.stage for r in outcome.results if r.cached],
        "stage_times": {r.stage: {"wall_s": round(r.wall_s, 3), "cpu_s": round(r.cpu_s, 3), "cached": r.cached} for r in outcome.results},
        "measures": _measures(report),
        "models": sorted({m["name"]: m for r in outcome.results for m in r.models}.values(), key=lambda m: m["name"]),  # for delivery's licence check
        "recording": recording_identity(history),
        "folder": str(folder),
        "run_id": run_id,
        "audition_file": str(heard.to) if heard is not None and heard.ready_at is not None else None,
        "audition_ready_at": heard.ready_at if heard is not None else None,
        "audition_cpu_s": heard.cpu_s if heard is not None else None,
    }


@contextlib.contextmanager
def _recording(catalogue: Catalogue, run_id: int, *, report: Path | None = None) -> Iterator[None]:
    """Where an edit's run records its version: a failure ends the run 'failed' with the reason
    (not left 'running' for `catalogue check` to find), and, given the version's `report`, a
    clean exit ends it 'succeeded' — once the version is recorded, not before."""
    try:
        yield
    except BaseException as err:
        catalogue.finish_run(run_id, status="failed", error=f"recording the edited version failed: {err}")
        raise
    if report is not None:
        catalogue.finish_run(run_id, status="succeeded", report_path=str(report))


def _set_aside(path: Path) -> Path:
    """`path`, free: an audition already there is an earlier edit's that did not become this
    version (turned down by the gate), renamed so that nobody plays it as this one's."""
    if path.exists():
        path.rename(path.with_name(f"{path.stem}.failed-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S%f}{path.suffix}"))
        _remove_listening_copies(path)  # the page's Opus copies of the one set aside
    return path


def version_stages() -> list[Stage]:
    """The stages that make a version: those up to and including the gate. The delivery files
    (the export stage's) are encoded when a version is delivered (`delivery_artifacts`):
    encoding every profile's formats for every version tried cost a mix-only edit a quarter of
    its time, for files nobody may ask for."""
    return TRACK_STAGES.through(QC.name)


def delivery_artifacts(target: EditedTrack, version: dict, store) -> tuple[dict[str, dict], StageResult | None]:
    """The version's artifacts with its delivery files, and the export stage's result (encoded
    now, or read from the cache when the version was delivered before; None when the version
    holds its files already: one made before versions stopped at the gate). The export runs on
    the version's own masters, score and lyrics with its own seed: while the release's profiles
    and the export code are as they were when the version was made, these are the bytes an export
    beside its gate would have made, and the cache key keeps them for the next delivery.

    Raises
    ------
    SongmillError : the release now delivers a profile the version has no master for, or a
        file cannot be encoded within its profile's limits — naming the track and the version.
    """
    artifacts = version["artifacts"]
    missing = [name for name in target.spec.release.profiles if f"master-{name}.wav" not in artifacts]  # the release as the config has it now
    if missing:
        raise SongmillError(
            f"track {target.number} version {version['number']} has no master for profile '{missing[0]}', which the release delivers now; "
            f"edit the track again (`songmill edit {target.config} --track {target.number} --command …`: a new version is mastered for every profile), then deliver"
        )
    if "export.json" in artifacts:  # a version made before versions stopped at the gate
        return artifacts, None
    job = TrackJob(_spec_with_track(target, version["track_spec"]), target.index, int(version["seed"]), target.commercial)
    refs = {name: ArtifactRef.from_dict(ref) for name, ref in artifacts.items()}
    try:
        result = run_stage(EXPORT, job, refs, store=store, registry=ModelRegistry.load())
    except SongmillError as err:
        raise SongmillError(f"track {target.number} version {version['number']}: its delivery files could not be made: {err}") from err
    return artifacts | {name: {**ref.to_dict(), "stage": EXPORT.name} for name, ref in result.outputs.items()}, result


def _render_track(job: TrackJob, store_spec: str, heard: Audition | None) -> TrackOutcome:
    """The version's stages, as `render_track_once` runs them; with an audition, started on its
    thread after the wave that made the mix, beside the waves that follow, unless the store
    already keeps this mix's masters (a version made before: the gated master is moments away,
    and an audition would only delay it)."""
    if heard is None:
        return render_track_once(job, store_spec, None, stages=version_stages())
    decided = False  # whether to audition was decided (once, after the wave that made the mix)

    def once_mixed(outcome: TrackOutcome) -> None:
        nonlocal decided
        if decided or "mix.wav" not in outcome.refs:
            return
        decided = True
        try:
            kept = is_kept(MASTER, job, outcome.refs, store=heard.store, registry=ModelRegistry.load())
        except Exception:  # noqa: BLE001 - the master stage says what is wrong in its own turn (a missing reference, say), as before
            kept = False
        if not kept:
            heard.start(outcome.refs["mix.wav"])

    try:
        return render_track_once(job, store_spec, None, stages=version_stages(), after_wave=once_mixed)
    finally:
        heard.finish()


def _measures(report: dict) -> dict:
    """What the gate measured on the version's first master: its duration is the file's, release
    tail included (the score's, in the report, ends 2 s sooner on the demo), as a player shows it."""
    qc = report.get("qc") or {}
    profile: dict = next(iter(qc.get("profiles", {}).values()), {})
    metrics = {"duration_s": report.get("duration_s"), **profile.get("metrics", {}), **qc.get("musical", {})}
    return {name: metrics.get(name) for name in MEASURES}


def _version_fields(version: dict) -> dict:
    keep = (
        "parent",
        "operations",
        "added",
        "command",
        "author",
        "reason",
        "config_sha256",
        "seed",
        "track_spec",
        "artifacts",
        "recomputed",
        "measures",
        "folder",
        "run_id",
        "models",
    )
    return {k: version[k] for k in keep}


def _audition_entry(version: dict, started: dt.datetime) -> dict | None:
    """The edit's audition as its report says it: the file and how soon it was there."""
    if not version.get("audition_file"):
        return None
    return {
        "file": version["audition_file"],
        "ready_after_s": round((version["audition_ready_at"] - started).total_seconds(), 3),
        "cpu_s": version["audition_cpu_s"],  # counted in the stage_times beside it too (they are the process's)
        "gated": False,
        "watermarked": False,
    }


def _write_edit_report(target: EditedTrack, number: int, version: dict, out_dir: Path, started: dt.datetime) -> Path:
    folder = Path(version["folder"])
    report = {
        "release": target.release_id,
        "track": target.number,
        "version": number,
        "parent": version["parent"],
        "command": version["command"],
        "operations": version["added"],
        "history": version["operations"],
        "author": version["author"],
        "reason": version["reason"],
        "recomputed": version["recomputed"],
        "cached": version.get("cached", []),
        "stage_times": version.get("stage_times", {}),
        "measures": version["measures"],
        "recording": version.get("recording") or recording_identity(operations_from_json(version["operations"])),  # the ISRC decision
        "artifacts": version["artifacts"],
        "files": str(folder / "tracks" / f"{target.number:02d}-{safe_name(target.spec.tracks[target.index].title)}"),
        "wall_s": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 3),
        "audition": _audition_entry(version, started),
    }
    path = folder / "edit-report.json"
    atomic_write_bytes(path, json.dumps(report, indent=1).encode())
    return path


# ---------------------------------------------------------------- what the song is


def song_facts(version: dict, store) -> SongFacts:
    """The song as a version rendered it: its sections, parts, voice and tempo."""
    artifacts = version["artifacts"]
    with tempfile.TemporaryDirectory(prefix="songmill-facts-") as folder:
        score = Score.load_json(store.get_file(ArtifactRef.from_dict(artifacts["score.json"]), Path(folder) / "score.json"))
        expression, lyric_lines = {}, {}
        if "lyrics.json" in artifacts:
            from songmill.core.lyrics import Lyrics

            lyrics = Lyrics.load_json(store.get_file(ArtifactRef.from_dict(artifacts["lyrics.json"]), Path(folder) / "lyrics.json"))
            labels = section_labels([s.name for s in score.sections])
            lyric_lines = {labels[s.form_index]: [line.text for line in s.lines] for s in lyrics.sections if s.form_index < len(labels)}
        if "vocals.json" in artifacts:
            vocals = json.loads(store.get_file(ArtifactRef.from_dict(artifacts["vocals.json"]), Path(folder) / "vocals.json").read_text(encoding="utf-8"))
            expression = vocals.get("expression", {})
        sends: dict[str, list[str]] = {}
        if "mix.json" in artifacts:  # which parts the mix sends to the reverb and the delay
            mixed = json.loads(store.get_file(ArtifactRef.from_dict(artifacts["mix.json"]), Path(folder) / "mix.json").read_text(encoding="utf-8"))
            sends = {stem["stem"]: [kind for kind in ("reverb", "delay") if f"{kind}_send_db" in stem] for stem in mixed.get("stems", [])}
    parts = sorted(name.removeprefix("stem-").removesuffix(".wav") for name in artifacts if name.startswith("stem-") and name.endswith(".wav"))
    parts += sorted(name.removesuffix(".wav") for name in artifacts if name.startswith("vocal-") and name.endswith(".wav"))
    track = version["track_spec"]
    return SongFacts(
        sections=[(s.name, s.bars) for s in score.sections],
        parts=parts,
        identities=sorted(ModelRegistry.load().identities),
        tempo_bpm=float(track["tempo"]),
        key=track["key"],
        expression=expression,
        lyric_lines=lyric_lines,
        sends=sends,
    )


# ---------------------------------------------------------------- history, undo, redo, switch


def history(config: str | Path, *, track: int, database_url: str | None = None) -> dict:
    """Every version of the track, oldest first, and which is current."""
    target = open_track(config, track)
    catalogue = Catalogue.open(database_url)
    try:
        versions = catalogue.versions(target.release_id, target.number)
        head = catalogue.version_head(target.release_id, target.number)
    finally:
        catalogue.close()
    return {
        "release": target.release_id,
        "track": target.number,
        "current": head["current"] if head else None,
        "undone": head["undone"] if head else [],
        "versions": versions,
    }


def undo(config: str | Path, *, track: int, out_dir: Path = Path("dist"), store_spec: str | None = None, database_url: str | None = None) -> dict:
    """Make the current version's parent current again (its files back from the store, see `materialise_files`)."""
    return _move(config, track, out_dir, store_spec, database_url, redo=False)


def redo(config: str | Path, *, track: int, out_dir: Path = Path("dist"), store_spec: str | None = None, database_url: str | None = None) -> dict:
    """Make the version the last undo left current again."""
    return _move(config, track, out_dir, store_spec, database_url, redo=True)


def switch(
    config: str | Path, *, track: int, version: int, out_dir: Path = Path("dist"), store_spec: str | None = None, database_url: str | None = None
) -> dict:
    """Make any version current (no rendering: its files come from the store)."""
    target = open_track(config, track)
    check_output_folder(out_dir)
    versions_of(target, (version,), database_url=database_url)
    catalogue = Catalogue.open(database_url)
    try:
        store = open_store(store_spec or default_store_spec())
        folder = materialise(catalogue, target, version, store, out_dir)
        catalogue.set_version_head(target.release_id, target.number, current=version, undone=[])
    finally:
        catalogue.close()
    return {"current": version, "folder": str(folder)}


def _move(config, track: int, out_dir: Path, store_spec: str | None, database_url: str | None, *, redo: bool) -> dict:
    target = open_track(config, track)
    check_output_folder(out_dir)
    catalogue = Catalogue.open(database_url)
    try:
        head = catalogue.version_head(target.release_id, target.number)
        if head is None:
            raise SongmillError(
                f"track {track} of {target.release_id} has no edits to {'redo' if redo else 'undo'} (songmill edit makes them, once songmill render has made the track)"
            )
        versions = {v["number"]: v for v in catalogue.versions(target.release_id, target.number)}
        undone = list(head["undone"])
        if redo:
            if not undone:
                raise SongmillError(
                    f"track {track} of {target.release_id} has nothing to redo (no version was undone since the last edit; version {head['current']} is current)"
                )
            current = undone.pop()
        else:
            parent = versions[head["current"]]["parent"]
            if parent is None:
                raise SongmillError(
                    f"track {track} of {target.release_id} is at version {head['current']}, the track as its config renders it; there is nothing to undo"
                )
            undone.append(head["current"])
            current = parent
        store = open_store(store_spec or default_store_spec())
        folder = materialise(catalogue, target, current, store, out_dir)  # first: a failed copy leaves the head where it was
        catalogue.set_version_head(target.release_id, target.number, current=current, undone=undone)
    finally:
        catalogue.close()
    return {"current": current, "undone": undone, "folder": str(folder), "operations": versions[current]["operations"]}


def materialise(catalogue: Catalogue, target: EditedTrack, number: int, store, out_dir: Path) -> Path:
    """Put a version's artifacts in `current/` (see `materialise_files`)."""
    version = next(v for v in catalogue.versions(target.release_id, target.number) if v["number"] == number)
    try:
        return materialise_files(target, version["artifacts"], version["operations"], store, out_dir, number=number)
    except StoredArtifactError as err:
        raise SongmillError(f"version {number} of track {target.number} cannot be restored: {err.problem}; {_remake_hint(target, version)}") from None


def _remake_hint(target: EditedTrack, version: dict) -> str:
    """How a version whose files left the store is made again: a render remakes the config's
    version 1; a later one is its parent edited again with the operations it recorded, seeds and
    all (its words would draw new seeds: another melody, not the same one)."""
    if version["parent"] is None:
        return f"songmill render {target.config} makes it again"
    return (
        f"switch to version {version['parent']}, write this version's `added` from `songmill history {target.config} --track {target.number} --json`"
        f" to a file and run songmill edit {target.config} --track {target.number} --operations FILE: its recorded operations and seeds make it again"
    )


def materialise_files(target: EditedTrack, artifacts: dict, operations: list, store, out_dir: Path, *, number: int | None = None) -> Path:
    """Put a version's artifacts in `current/`, byte-identical, replacing what was there only once
    all are in place. Each comes from the store by hash (which checks it), except a file the old
    `current/` holds with the artifact's exact bytes (a mix edit leaves ~0.4 GB of stems and
    vocals as they were): that one is linked into the new `current/` instead of copied again.
    `current/version.json` records each file's hash, so only files meant to be unchanged are read."""
    import uuid

    folder = target.folder(out_dir)
    folder.mkdir(parents=True, exist_ok=True)  # dist/ may have been deleted: the store has everything
    current = folder / "current"
    staging = Path(tempfile.mkdtemp(prefix=".current-", dir=folder))
    old = folder / f".current-old-{uuid.uuid4().hex}"
    recorded, can_link = _hashes_recorded(current), True
    try:
        for name, ref in sorted(artifacts.items()):
            if can_link and recorded.get(name) == ref["sha256"] and _holds_exactly(current / name, ref):
                try:
                    os.link(current / name, staging / name, follow_symlinks=False)
                    continue
                except OSError:  # a file system without hard links (or not for this user): copies from here on
                    can_link = False
            store.get_file(ArtifactRef.from_dict(ref), staging / name)
        version_file = {"version": number, "operations": operations, "sha256": {name: ref["sha256"] for name, ref in sorted(artifacts.items())}}
        (staging / "version.json").write_text(json.dumps(version_file, indent=1), encoding="utf-8")
        as_if_created(staging, folder=True)  # mkdtemp's 0700 would hide current/ from everyone else
        if current.exists():
            current.rename(old)
        staging.rename(current)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return current


def _hashes_recorded(current: Path) -> dict[str, str]:
    """File name → sha256 as `current/version.json` recorded them ({} when it is absent or unreadable)."""
    try:
        recorded = json.loads((current / "version.json").read_text(encoding="utf-8")).get("sha256", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _holds_exactly(existing: Path, ref: dict) -> bool:
    """`existing` is a plain file with one name (not a link to or from anything a user keeps
    elsewhere, which a link would tie to the store's copy) and the artifact's bytes: its size,
    then its sha256 (a file changed by hand in `current/` is copied from the store instead)."""
    try:
        found = existing.lstat()
        if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1 or found.st_size != int(ref["bytes"]):
            return False
        return file_sha256(existing) == ref["sha256"]
    except OSError:
        return False


class UnknownVersion(InputError):
    """A version number the track does not have (the editor page answers 404)."""


def versions_of(target: EditedTrack, wanted: tuple[int, ...] = (), *, database_url: str | None = None) -> dict[int, dict]:
    """The track's versions by number; UnknownVersion naming the first of `wanted` it lacks."""
    catalogue = Catalogue.open(database_url)
    try:
        versions = {v["number"]: v for v in catalogue.versions(target.release_id, target.number)}
    finally:
        catalogue.close()
    missing = [n for n in wanted if n not in versions]
    if missing:
        raise UnknownVersion(
            f"track {target.number} of {target.release_id} has no version {missing[0]} (it has: {', '.join(map(str, sorted(versions))) or 'none; edit it first'})"
        )
    return versions


def config_of_release(release_id: str, *, database_url: str | None = None) -> str:
    """The config file a release was last rendered from (the DAG's and the editor page's requests name the release)."""
    catalogue = Catalogue.open(database_url)
    try:
        config = catalogue.release_config(release_id)
    finally:
        catalogue.close()
    if config is None:
        raise SongmillError(f"release {release_id!r} was never rendered; render it first (its release DAG, or songmill render)")
    return config


def diff(config: str | Path, *, track: int, a: int, b: int, database_url: str | None = None, store_spec: str | None = None) -> dict:
    """What changed between two versions: the track spec, the score by section, the mix
    decisions and the measured loudness, tempo and key."""
    target = open_track(config, track)
    versions = versions_of(target, (a, b), database_url=database_url)
    return _differences(versions[a], versions[b], _score_sections_changed(versions[a], versions[b], open_store(store_spec or default_store_spec())))


def _differences(va: dict, vb: dict, sections_changed: list[str]) -> dict:
    """`diff`'s answer for two versions, given the sections whose notes differ between them."""
    return {
        "versions": [va["number"], vb["number"]],
        "spec": _dict_diff(va["track_spec"], vb["track_spec"]),
        "score_sections_changed": sections_changed,
        "measures": {k: [va["measures"].get(k), vb["measures"].get(k)] for k in MEASURES if va["measures"].get(k) != vb["measures"].get(k)},
        # and what the gate measured the same on both: a mix edit leaves loudness, tempo and key where the profile and the score hold them
        "measures_unchanged": {k: va["measures"][k] for k in MEASURES if va["measures"].get(k) is not None and va["measures"].get(k) == vb["measures"].get(k)},
        "artifacts_changed": sorted(  # delivery files aside: versions made before export moved to delivery held them, later ones do not
            n
            for n in set(va["artifacts"]) | set(vb["artifacts"])
            if not EXPORT.declares(n) and va["artifacts"].get(n, {}).get("sha256") != vb["artifacts"].get(n, {}).get("sha256")
        ),
    }


def _dict_diff(a: Any, b: Any, path: str = "") -> dict:
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict = {}
        for key in sorted(set(a) | set(b)):
            out |= _dict_diff(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return out
    return {} if a == b else {path: [a, b]}


def _score_sections_changed(va: dict, vb: dict, store) -> list[str]:
    """The labels of the sections whose notes differ (any part), when both have the same form."""
    with tempfile.TemporaryDirectory(prefix="songmill-diff-") as folder:
        scores = [
            Score.load_json(store.get_file(ArtifactRef.from_dict(v["artifacts"]["score.json"]), Path(folder) / f"{i}.json")) for i, v in enumerate((va, vb))
        ]
    return sections_changed(*scores)


def _notes_within(score: Score, span: tuple[float, float]) -> list[tuple]:
    begin, end = span
    return [
        (p.name, n.pitch, round(n.start_beat, 4), round(n.duration_beats, 4), n.velocity) for p in score.parts for n in p.notes if begin <= n.start_beat < end
    ]


def sections_changed(a: Score, b: Score) -> list[str]:
    """Labels of the sections whose notes (pitch, time, length or velocity) differ between two
    scores of one form (else every label)."""
    labels = section_labels([s.name for s in b.sections])
    if [(s.name, s.bars) for s in a.sections] != [(s.name, s.bars) for s in b.sections]:
        return labels
    changed = []
    for label, section in zip(labels, b.sections):
        span = (section.start_bar * b.beats_per_bar, (section.start_bar + section.bars) * b.beats_per_bar)
        if _notes_within(a, span) != _notes_within(b, span):
            changed.append(label)
    return changed


# ---------------------------------------------------------------- A/B previews

PREVIEW_LUFS = -16.0  # both previews are set to this loudness: a louder one would simply sound "better"
PREVIEW_CEILING_DBFS = -1.0
PREVIEW_MIN_S, PREVIEW_MAX_S, PREVIEW_LEAD_IN_S = 20.0, 30.0, 2.0


def ab_preview(
    config: str | Path,
    *,
    track: int,
    a: int,
    b: int,
    section: str | None = None,
    out_dir: Path = Path("dist"),
    database_url: str | None = None,
    store_spec: str | None = None,
) -> dict:
    """Loudness-matched excerpts of two versions around one section (20–30 s, from 2 s before it):
    the section named, else the first whose notes changed between them, else the first chorus.
    Returns {"section", "files": [a, b], "seconds": [[start, end] per version], "lufs", "differs":
    what `diff` returns for the two}."""
    from songmill.core import loudness
    from songmill.core.audio import read_wav, write_wav
    from songmill.core.sections import sections_named

    target = open_track(config, track)
    check_output_folder(out_dir)
    versions = versions_of(target, (a, b), database_url=database_url)
    store = open_store(store_spec or default_store_spec())
    changed = _score_sections_changed(versions[a], versions[b], store)
    label: str | None = section or (changed[0] if changed else None)
    folder = target.folder(out_dir) / "previews"
    excerpts, spans = [], []
    with tempfile.TemporaryDirectory(prefix="songmill-ab-") as scratch:
        for number in (a, b):
            artifacts = versions[number]["artifacts"]
            master = next(name for name in sorted(artifacts) if name.startswith("master-") and name.endswith(".wav"))
            audio, rate = read_wav(store.get_file(ArtifactRef.from_dict(artifacts[master]), Path(scratch) / f"{number}.wav"))
            score = Score.load_json(store.get_file(ArtifactRef.from_dict(artifacts["score.json"]), Path(scratch) / f"{number}.json"))
            names = [s.name for s in score.sections]
            label = label or next((lab for lab, name in zip(section_labels(names), names) if name == "chorus"), section_labels(names)[0])
            chosen = score.sections[sections_named(label, names, where=f"version {number}")[0]]
            begin = max(score.seconds_at(chosen.start_bar * score.beats_per_bar) - PREVIEW_LEAD_IN_S, 0.0)
            end = score.seconds_at((chosen.start_bar + chosen.bars) * score.beats_per_bar)
            end = min(max(end, begin + PREVIEW_MIN_S), begin + PREVIEW_MAX_S, len(audio) / rate)
            excerpts.append(audio[int(begin * rate) : int(end * rate)])
            spans.append([round(begin, 2), round(end, 2)])
    measured = [loudness.integrated_lufs(x, rate) for x in excerpts]
    for number, lufs in zip((a, b), measured):
        if not math.isfinite(lufs):
            raise SongmillError(f"version {number} of track {track} is silent in its {label} excerpt: there is no loudness to match; compare another section")
    gains = [PREVIEW_LUFS - lufs for lufs in measured]
    headroom = min(PREVIEW_CEILING_DBFS - loudness.sample_peak_dbfs(x) - g for x, g in zip(excerpts, gains))
    shift = min(headroom, 0.0)  # both down together if either would clip: still matched
    files: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    for number, excerpt, gain in zip((a, b), excerpts, gains):
        path = folder / f"v{a:04d}-v{b:04d}-{(label or 'song').replace(' ', '-')}-{'ab'[len(files)]}-v{number:04d}.wav"
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:  # whole or not at all: the page may be playing the last comparison's
            write_wav(partial, (excerpt * 10 ** ((gain + shift) / 20)).astype("float32"), rate)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        files.append(str(path))
    _prune_previews(folder, keep={Path(f).name for f in files})
    # what `diff` says of the two, from what was read here already (the editor page shows it)
    differs = _differences(versions[a], versions[b], changed)
    return {"section": label, "files": files, "seconds": spans, "lufs": round(PREVIEW_LUFS + shift, 2), "differs": differs}


PREVIEWS_KEPT = 20  # excerpt files (and their Opus copies) a track's previews/ keeps: the newest comparisons


def _prune_previews(folder: Path, *, keep: set[str]) -> None:
    """All but the newest PREVIEWS_KEPT excerpts (and those just written) leave `folder`, with
    their Opus copies: every comparison writes two files, which would otherwise pile up."""

    def written(path: Path) -> int:  # another comparison may have pruned it meanwhile
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_mtime_ns
        return 0

    excerpts = sorted((f for f in folder.glob("v*.wav") if PREVIEW_FILE.fullmatch(f.name)), key=written, reverse=True)
    for old in excerpts[PREVIEWS_KEPT:]:
        if old.name not in keep:
            _remove_listening_copies(old)
            old.unlink(missing_ok=True)


def _remove_listening_copies(path: Path) -> None:
    """The Opus copies `listening_copy_by_contents` made of `path`, whatever contents they had."""
    for copy in path.parent.glob(f"{glob.escape(path.stem)}-*-{LISTENING_BITRATE_KBPS}k.opus"):
        copy.unlink(missing_ok=True)


# ---------------------------------------------------------------- suggestions


def suggestions(config: str | Path, *, track: int, out_dir: Path = Path("dist"), database_url: str | None = None, store_spec: str | None = None) -> dict:
    """Ranked suggestions for the track's current version (version 1 is made first if needed,
    from the cache): {"version", "metrics", "suggestions": [{operation, reason, metric, value, direction}],
    "tried_in_vain": [a sentence for each suggestion left out because applying it before did not work]}."""
    from songmill.editor.suggestions import suggest

    target = open_track(config, track)
    check_output_folder(out_dir)
    store_spec = store_spec or default_store_spec()
    store = open_store(store_spec)
    catalogue = Catalogue.open(database_url)
    try:
        current = _current_version(catalogue, target) or _make_first_version(catalogue, target, store, store_spec, out_dir)
        versions = catalogue.versions(target.release_id, target.number)
    finally:
        catalogue.close()
    facts = song_facts(current, store)
    genre = target.spec.instrumentation_of(target.spec.tracks[target.index])
    measured: dict[int, dict] = {current["number"]: version_metrics(current, store, genre)}

    def metrics_of(version: dict) -> dict | None:
        """A version's metrics, or None when its files have left the store (it cannot be judged)."""
        if version["number"] not in measured:
            try:
                measured[version["number"]] = version_metrics(version, store, genre)
            except StoredArtifactError:
                return None
        return measured[version["number"]]

    metrics = dict(measured[current["number"]])  # the current version's own files must be there
    found = suggest(metrics, sections=[name for name, _ in facts.sections], genre=metrics.pop("genre"))
    kept, tried = _not_tried_in_vain(found, _ancestry(versions, current), metrics_of)
    return {
        "version": current["number"],
        "metrics": {k: round(v, 3) for k, v in metrics.items()},
        "suggestions": [s.to_dict() for s in kept],
        "tried_in_vain": tried,
    }


def _ancestry(versions: list[dict], current: dict) -> list[dict]:
    """`current` and the versions it was made from, newest first."""
    by_number = {v["number"]: v for v in versions}
    chain: list[dict] = []
    version: dict | None = current
    while version is not None and version not in chain:
        chain.append(version)
        version = by_number.get(version["parent"]) if version["parent"] is not None else None
    return chain


def _not_tried_in_vain(found: list, ancestry: list[dict], metrics_of: Callable[[dict], dict | None]) -> tuple[list, list[str]]:
    """The suggestions (songmill.editor.suggestions.Suggestion) whose last application on the way
    to this version, if any, moved their metric the way they said, and a sentence for each one
    whose last application did not: offering it again would offer what was heard not to work.
    One whose versions cannot be measured any more (their files left the store) is kept."""
    by_number = {v["number"]: v for v in ancestry}
    kept, tried = [], []
    for suggestion in found:
        operation = suggestion.operation.model_dump(mode="json", exclude_none=True)
        applied = next((v for v in ancestry if v["parent"] in by_number and v["added"] == [operation]), None)  # the newest application
        was = metrics_of(by_number[applied["parent"]]) if applied else None
        now = metrics_of(applied) if applied and was else None
        if applied is None or was is None or now is None:  # never applied, or cannot be judged any more
            kept.append(suggestion)
            continue
        before, after = was[suggestion.metric], now[suggestion.metric]
        if not (after - before) * suggestion.direction <= 0:  # it moved the stated way (NaN: cannot tell, kept)
            kept.append(suggestion)
            continue
        tried.append(
            f"not suggested again: version {applied['number']} applied it ({suggestion.reason.rsplit(': ', 1)[-1]}) and {suggestion.metric}"
            f" went from {before:+.2f} to {after:+.2f}, not the way it should"
        )
    return kept, tried


def version_metrics(version: dict, store, genre: str) -> dict:
    """What suggestions act on, measured on a version's first master (songmill.editor.suggestions)."""
    from songmill.core.audio import read_wav
    from songmill.editor.suggestions import measure_version

    artifacts = version["artifacts"]
    master_name = next(name for name in sorted(artifacts) if name.startswith("master-") and name.endswith(".wav"))
    with tempfile.TemporaryDirectory(prefix="songmill-suggest-") as folder:
        master, rate = read_wav(store.get_file(ArtifactRef.from_dict(artifacts[master_name]), Path(folder) / master_name))
        score = Score.load_json(store.get_file(ArtifactRef.from_dict(artifacts["score.json"]), Path(folder) / "score.json"))
        report = json.loads(store.get_file(ArtifactRef.from_dict(artifacts["master.json"]), Path(folder) / "master.json").read_text(encoding="utf-8"))
    from songmill.production.master import tilted

    profile = report["profiles"][master_name.removeprefix("master-").removesuffix(".wav")]
    # against the genre's own curve: the target in master.json already carries the editor's tilt
    genre_curve = tilted(profile["tone"]["target_db"], -float(version["track_spec"].get("master", {}).get("tilt_db", 0.0)))
    metrics: dict[str, Any] = measure_version(master, rate, score, genre_curve, tempo_bpm=float(version["track_spec"]["tempo"]), genre=genre)
    metrics["genre"] = genre
    return metrics


# ---------------------------------------------------------------- DAW round trip


def daw_export(
    config: str | Path,
    *,
    track: int,
    version: int | None = None,
    out_dir: Path = Path("dist"),
    database_url: str | None = None,
    store_spec: str | None = None,
) -> dict:
    """A DAW session of a version (default: the current one; version 1 is made first if needed):
    stems, MIDI, a DAWproject and a REAPER project under `<out>/<release>/daw/track-NN-vNNNN/`."""
    from songmill.release.daw import write_daw_session

    target = open_track(config, track)
    check_output_folder(out_dir)
    store_spec = store_spec or default_store_spec()
    store = open_store(store_spec)
    catalogue = Catalogue.open(database_url)
    try:
        current = _current_version(catalogue, target) or _make_first_version(catalogue, target, store, store_spec, out_dir)
        versions = {v["number"]: v for v in catalogue.versions(target.release_id, target.number)}
    finally:
        catalogue.close()
    chosen = versions.get(version or current["number"])
    if chosen is None:
        raise SongmillError(f"track {track} of {target.release_id} has no version {version} (it has: {', '.join(map(str, sorted(versions)))})")
    artifacts = chosen["artifacts"]
    folder = Path(out_dir) / target.release_id / "daw" / f"track-{target.number:02d}-v{chosen['number']:04d}"
    spec_track = target.spec.tracks[target.index]
    with tempfile.TemporaryDirectory(prefix="songmill-daw-") as scratch:
        score = Score.load_json(store.get_file(ArtifactRef.from_dict(artifacts["score.json"]), Path(scratch) / "score.json"))
        stems = {
            name.removeprefix("stem-").removesuffix(".wav"): store.get_file(ArtifactRef.from_dict(ref), Path(scratch) / name)
            for name, ref in sorted(artifacts.items())
            if name.endswith(".wav") and name.startswith(("stem-", "vocal-"))
        }
        session = write_daw_session(
            folder,
            score,
            stems,
            name=safe_name(spec_track.title),
            title=spec_track.title,
            artist=target.spec.release.artist,
            genre=target.spec.instrumentation_of(spec_track),
        )
    return {
        "version": chosen["number"],
        "folder": str(session.folder),
        "dawproject": str(session.dawproject),
        "reaper": str(session.reaper),
        "midi": str(session.midi),
        "stems": sorted(session.stems),
    }


def daw_import(
    config: str | Path,
    *,
    track: int,
    midi: Path,
    out_dir: Path = Path("dist"),
    author: str | None = None,
    reason: str | None = None,
    database_url: str | None = None,
    store_spec: str | None = None,
) -> EditResult:
    """A MIDI file edited in a DAW (melody with its lyric events, bass, chords) as a new version:
    checked against the current version's score first (tempo map, lyric events: one sentence
    when they do not fit, nothing recorded), kept as songmill's own copy, then rendered."""
    from songmill.core.score_export import edited_parts_not_imported, read_midi_override
    from songmill.editor.operations import ScoreOverride

    midi = Path(midi)
    if not midi.is_file():
        raise SongmillError(f"{midi} does not exist (give the MIDI file exported from the DAW)")
    target = open_track(config, track)
    check_output_folder(out_dir)
    store_spec = store_spec or default_store_spec()
    store = open_store(store_spec)
    parent = _parent(target, database_url=database_url, store=store)  # the track as it stands; nothing is made yet
    with tempfile.TemporaryDirectory(prefix="songmill-import-") as scratch:
        score = Score.load_json(store.get_file(ArtifactRef.from_dict(parent.artifacts["score.json"]), Path(scratch) / "score.json"))
    imported = read_midi_override(midi, score)  # raises the one sentence before anything is kept
    left = edited_parts_not_imported(midi, score)  # the drums: a DAW edit of them is not taken
    tracks = f"{' and '.join(left)} track{'s' if len(left) > 1 else ''}"
    another_beat = f'songmill edit {target.config} --track {target.number} --command "a different beat for chorus 2"'
    takes = "an import takes the melody, bass and chords" + (f"; for another beat: {another_beat}" if "drums" in left else "")
    if _notes_and_chords(imported) == _notes_and_chords(score):
        if left:
            raise SongmillError(f"{midi.name} changes only its {tracks}, which stay the song's ({takes}); nothing was imported")
        raise SongmillError(
            f"{midi.name} holds the song as it already is (no note of the melody, bass or chords track moved; the drums are the song's); edit it in the DAW, then import it"
        )
    if left:
        log.warning("%s: the edits to its %s are not imported, they stay the song's (%s)", midi.name, tracks, takes)
    kept, digest = _keep_by_hash(midi, "overrides", ".mid")
    return edit(
        config,
        track=track,
        operations=[ScoreOverride(midi=str(kept), sha256=digest)],
        out_dir=out_dir,
        author=author,
        reason=reason or f"a DAW edit ({midi.name})",
        store_spec=store_spec,
        database_url=database_url,
    )


def _notes_and_chords(score: Score) -> tuple:
    """What a DAW edit can change: the parts a MIDI override replaces, and the harmony."""
    from songmill.core.score_export import OVERRIDE_PARTS

    parts = tuple(
        (p.name, tuple(sorted((n.start_beat, n.pitch, n.duration_beats, n.velocity) for n in p.notes))) for p in score.parts if p.name in OVERRIDE_PARTS
    )
    return parts, tuple(c.model_dump_json() for c in score.chords)


def _keep_by_hash(source: Path, folder: str, suffix: str) -> tuple[Path, str]:
    """songmill's own copy of a file a user gave (var/<folder>/<sha256><suffix>), and its hash:
    the version names the copy, so moving or changing the original changes nothing."""
    from songmill.core.paths import var_dir

    digest = file_sha256(source)
    kept = var_dir() / folder / f"{digest}{suffix}"
    if not kept.is_file():
        kept.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(kept, source.read_bytes())
    return kept, digest


def match_reference(
    config: str | Path,
    *,
    track: int,
    reference: Path,
    out_dir: Path = Path("dist"),
    author: str | None = None,
    reason: str | None = None,
    database_url: str | None = None,
    store_spec: str | None = None,
) -> EditResult:
    """A new version whose master's tone matches a reference recording (a remaster: the ISRC is
    kept). The recording is decoded first (one sentence when it cannot be: missing, not audio,
    shorter than a second, silent; nothing recorded), then kept as songmill's own copy."""
    from songmill.editor.operations import MasterReference
    from songmill.production.master import read_reference

    reference = Path(reference)
    if not reference.is_file():
        raise SongmillError(f"{reference} does not exist (give the reference recording to match the master to)")
    read_reference(reference)  # raises the one sentence before anything is kept
    kept, digest = _keep_by_hash(reference, "references", reference.suffix.lower())
    return edit(
        config,
        track=track,
        operations=[MasterReference(path=str(kept), sha256=digest)],
        out_dir=out_dir,
        author=author,
        reason=reason or f"the master matched to {reference.name}",
        store_spec=store_spec,
        database_url=database_url,
    )


# ---------------------------------------------------------------- the editor page's data


def version_master(config: str | Path, *, track: int, version: int, database_url: str | None = None, store_spec: str | None = None) -> Path:
    """A version's first master as a WAV file to play (a copy from the store, kept in the cache by hash)."""
    from songmill.core.paths import cache_dir

    target = open_track(config, track)
    versions = versions_of(target, (version,), database_url=database_url)
    artifacts = versions[version]["artifacts"]
    name = next(n for n in sorted(artifacts) if n.startswith("master-") and n.endswith(".wav"))
    ref = ArtifactRef.from_dict(artifacts[name])
    cached = cache_dir() / "editor" / f"{ref.sha256}.wav"
    if not cached.is_file():
        open_store(store_spec or default_store_spec()).get_file(ref, cached)
    return cached


LISTENING_BITRATE_KBPS = 160  # the editor page's players: 3.9 MB for the demo's three minutes, its float WAV master 68 MB


def listening_copy(master: Path) -> Path:
    """A version's master (`version_master`, in the cache by its hash) as Opus for the editor
    page's players, encoded once per master and kept beside it."""
    from songmill.release.encode import encode_listening_copy

    listening = master.with_name(f"{master.stem}-{LISTENING_BITRATE_KBPS}k.opus")
    if not listening.is_file():
        encode_listening_copy(master, listening, bitrate_kbps=LISTENING_BITRATE_KBPS)
    return listening


def listening_copy_by_contents(source: Path) -> Path:
    """A file the editor writes again under the same name (an audition, `audition_file`; an A/B
    excerpt, `ab_preview`) as Opus for the page's players: a seventeenth of its float WAV, which a
    browser away from the server would otherwise fetch whole. Named by the file's contents, not
    its name: after an edit the gate turned down, the same number is the next edit's audition,
    and its copy must not be the old one's."""
    from songmill.release.encode import encode_listening_copy

    # a private link to the file as it is now: its writers replace it by renaming (never in
    # place), so what is hashed is what is encoded, whatever replaces the name meanwhile
    snapshot = source.with_name(f".{source.name}.{os.getpid()}.{threading.get_ident()}.reading")
    try:
        os.link(source, snapshot)
    except FileNotFoundError:
        raise SongmillError(f"{source.name} was replaced while it was being read; ask for it again") from None
    except OSError:  # a file system without hard links: a copy is as whole (the name is replaced, never rewritten)
        shutil.copyfile(source, snapshot)
    try:
        listening = source.with_name(f"{source.stem}-{_contents_key(snapshot)}-{LISTENING_BITRATE_KBPS}k.opus")
        if not listening.is_file():
            encode_listening_copy(snapshot, listening, bitrate_kbps=LISTENING_BITRATE_KBPS)
    finally:
        snapshot.unlink(missing_ok=True)
    return listening


_CONTENTS_KEYS: dict[tuple[int, int, int, int], str] = {}  # (device, inode, size, mtime) → sha256 prefix: a player's every range request would hash 68 MB again


def _contents_key(path: Path) -> str:
    facts = path.stat()
    identity = (facts.st_dev, facts.st_ino, facts.st_size, facts.st_mtime_ns)
    if identity not in _CONTENTS_KEYS:
        if len(_CONTENTS_KEYS) >= 10_000:  # a server that runs for months: forget, and hash again when asked
            _CONTENTS_KEYS.clear()
        _CONTENTS_KEYS[identity] = file_sha256(path)[:16]
    return _CONTENTS_KEYS[identity]


PREVIEW_FILE = re.compile(r"v\d{4}-v\d{4}-[\w-]+-[ab]-v\d{4}\.wav")  # the names `ab_preview` writes


def preview_file(config: str | Path, *, track: int, name: str, out_dir: Path = Path("dist")) -> Path:
    """An excerpt `ab_preview` wrote for the track, by its file name (nothing else is served)."""
    folder = open_track(config, track).folder(out_dir) / "previews"
    path = folder / name
    if not PREVIEW_FILE.fullmatch(name) or path.is_symlink() or not path.is_file():  # a link could lead anywhere
        raise SongmillError(f"track {track} has no A/B excerpt named {name!r}; ask for the comparison of two versions first")
    return path


def audition_file(config: str | Path, *, track: int, version: int, out_dir: Path = Path("dist")) -> Path | None:
    """The audition an edit wrote for `version` (`songmill.engine.audition`), or None while there
    is none: the edit has not mixed yet, or made none."""
    path = open_track(config, track).folder(out_dir) / "auditions" / f"v{int(version):04d}.wav"
    return path if path.is_file() else None


def editor_state(config: str | Path, *, track: int, waveform_points: int = 800, out_dir: Path | None = None) -> dict:
    """What the editor page shows: the versions, the current one's sections, lyrics and waveform
    (peak per point, 0–1), the previous version, the version redo would bring back, and the
    suggestions (version 1 is made first when the track has none, from the cache)."""
    import numpy as np

    from songmill.core.audio import read_wav
    from songmill.core.lyrics import Lyrics

    target = open_track(config, track)  # the config is read once for the page
    found = suggestions(config, track=track, out_dir=out_dir or Path("dist"))
    log = history(config, track=track)
    current = next(v for v in log["versions"] if v["number"] == log["current"])
    store = open_store(default_store_spec())
    with tempfile.TemporaryDirectory(prefix="songmill-page-") as folder:
        score = Score.load_json(store.get_file(ArtifactRef.from_dict(current["artifacts"]["score.json"]), Path(folder) / "score.json"))
        lyrics = Lyrics.load_json(store.get_file(ArtifactRef.from_dict(current["artifacts"]["lyrics.json"]), Path(folder) / "lyrics.json"))
    master, rate = read_wav(version_master(config, track=track, version=current["number"]))
    mono = np.abs(master).max(axis=1) if master.ndim == 2 else np.abs(master)
    blocks = np.array_split(mono, waveform_points)
    peak = float(mono.max()) or 1.0
    labels = section_labels([s.name for s in score.sections])
    sections = [
        {
            "label": label,
            "start_s": round(score.seconds_at(s.start_bar * score.beats_per_bar), 3),
            "end_s": round(score.seconds_at((s.start_bar + s.bars) * score.beats_per_bar), 3),
        }
        for label, s in zip(labels, score.sections)
    ]
    return {
        "release": target.release_id,
        "track": track,
        "title": target.spec.tracks[target.index].title,
        "current": current["number"],
        "previous": current["parent"],
        "redo": log["undone"][-1] if log["undone"] else None,  # the version redo makes current again
        "versions": [
            {
                "number": v["number"],
                "what": v["command"] or described(v["added"]) or "as the config renders it",
                "read_as": described(v["added"]) if v["command"] else "",  # how the words were read: "sparkle" is a brighter master
                "why": (v.get("reason") or "") if v["parent"] else "",  # the first version's is always the same words
                "author": v["author"],
                "recomputed": v["recomputed"],
            }
            for v in log["versions"]
        ],
        "sections": sections,
        "lyrics": [
            {"label": labels[s.form_index] if s.form_index < len(labels) else s.name, "lines": [line.text for line in s.lines]} for s in lyrics.sections
        ],
        "duration_s": round(len(mono) / rate, 3),
        "waveform": [round(float(b.max()) / peak, 3) if b.size else 0.0 for b in blocks],
        "suggestions": found["suggestions"],
        "tried_in_vain": found["tried_in_vain"],
    }


def described(added: list[dict]) -> str:
    """A version's operations in the history's words; their names alone where an old version's
    no longer read as today's operations (the page shows the history whatever it holds)."""
    try:
        return "; ".join(op.describe() for op in operations_from_json(added))
    except SongmillError:
        return ", ".join(str(op.get("op")) for op in added)


def hear_bytes(config: str | Path, track: int, data: bytes) -> tuple[str, list[dict]]:
    """A recording sent by a browser (any format ffmpeg reads) → (the words heard, their operations)."""
    from songmill.core.audio import decode
    from songmill.editor.speech import spoken_command, words_to_numbers

    facts = facts_for_track(config, track)
    with tempfile.TemporaryDirectory(prefix="songmill-hear-") as folder:
        path = Path(folder) / "recording"
        path.write_bytes(data)
        try:
            samples, rate = decode(path, sample_rate_hz=16000, channels=1, what="the recording")
        except SongmillError:
            raise SongmillError(
                "the recording is not audio songmill can read; record again (a browser's recording, or a WAV, FLAC, MP3, M4A or Opus file)"
            ) from None
    words, operations = spoken_command(samples[:, 0], rate, facts)
    return words_to_numbers(words), operations_to_json(operations)
