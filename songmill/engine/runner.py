"""The embedded runner: `songmill render` in-process, tracks in parallel, no servers.

    report_path = render("config/releases/demo.yaml", out_dir=Path("dist"), jobs=2)

Each track runs the stage graph of `songmill.engine.track_stages` in its own worker process when
`jobs > 1` (a spawned process: safe with torch and native libraries). Only the main process
writes the catalogue and the run report. The report (`<out>/<release-id>/run-report.json`)
lists every artifact of every track, per-stage wall/CPU time and peak memory, and whether each
stage was served from the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import multiprocessing
import os
import queue
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from models.registry import ModelRegistry
from songmill import __version__
from songmill.catalogue import Catalogue, display_url
from songmill.core.errors import ConfigError, InputError, ServiceError, SongmillError, tracks_it_has
from songmill.core.paths import check_output_folder, run_folder, safe_name
from songmill.core.profiles import load_profiles
from songmill.core.score import Score
from songmill.core.seeds import derive_seed
from songmill.core.spec import ReleaseSpec, track_seed
from songmill.core.store import atomic_write_bytes, default_store_spec, file_sha256, open_store
from songmill.engine.configs import load_release_with_profiles, lyrics_problems, release_warnings
from songmill.engine.head_start import head_starts
from songmill.engine.stage import TrackJob, cpu_seconds, denormals_flushed, run_stage, stop_if_asked
from songmill.engine.task_data import ReleasePlan, TrackOutcome, TrackPlan
from songmill.engine.track_stages import TRACK_STAGES
from songmill.release.package import RenderedTrack, package_and_deliver

if TYPE_CHECKING:
    from qc.duplicates import DuplicateMatch

log = logging.getLogger("songmill.engine.runner")
REPORT_VERSION = 1

ProgressCallback = Callable[[int, str, str], None]  # (track number, stage name, "start" | "done" | "cached" | "failed" | "retry")


def render_track(job: TrackJob, store_spec: str, progress: ProgressCallback | None = None, catalogue_url: str | None = None) -> TrackOutcome:
    """Render one track through the gate: a track whose QC fails, or that duplicates a track
    already in the catalogue (`catalogue_url`), is rendered again with a new seed (up to
    `regeneration.max_attempts` renders in all, config/qc.yaml), then quarantined."""
    earlier = earlier_prints(job, catalogue_url)
    first = render_track_once(job, store_spec, progress, earlier)
    return regenerate_until_passed(first, job, store_spec, progress, earlier)


def regenerate_until_passed(
    outcome: TrackOutcome, job: TrackJob, store_spec: str, progress: ProgressCallback | None, earlier: list, *, stages: list | None = None
) -> TrackOutcome:
    """Given a track's first render, re-render it with new seeds while the gate turns it down and
    a new seed can help; returns the last render, with `qc_attempts` listing the ones turned down.
    `stages`: the stages a re-render runs (Airflow runs `export` as its own task afterwards)."""
    from qc.suites import load_qc_settings

    attempts = load_qc_settings().regeneration.max_attempts
    history = []
    for attempt in range(1, attempts + 1):
        if outcome.quarantined is None:
            break
        history.append({"seed": job.seed, "reasons": outcome.quarantined, "duplicate_of": outcome.duplicate})
        log.warning("track %d (%s) failed QC with seed %d: %s", job.number, job.track.title, job.seed, "; ".join(outcome.quarantined))
        if not outcome.regenerable:
            log.warning("track %d (%s): a new seed cannot fix this; quarantined without re-rendering", job.number, job.track.title)
            break
        if attempt == attempts:
            break
        job = dataclasses.replace(job, seed=regeneration_seed(job.seed, attempt))
        if progress:
            progress(job.number, "qc", "retry")
        outcome = render_track_once(job, store_spec, progress, earlier, stages)
    outcome.qc_attempts = history
    return outcome


def regeneration_seed(seed: int, attempt: int) -> int:
    """The seed of a track's `attempt`-th re-render (deterministic: a rerun regenerates the same way)."""
    return derive_seed(seed, "regenerate", attempt)


def earlier_prints(job: TrackJob, catalogue_url: str | None) -> list:
    """Every other track's newest print in the catalogue (read once per track)."""
    from qc.duplicates import TrackPrint

    if catalogue_url is None:
        return []
    catalogue = Catalogue.open(catalogue_url)
    try:
        return [(track, TrackPrint.from_dict(p)) for track, p in catalogue.track_prints(except_track=(job.spec.release.id, job.number))]
    finally:
        catalogue.close()


def _duplicate_check(store, ref, earlier: list) -> tuple[dict, DuplicateMatch | None]:
    from qc.duplicates import TrackPrint, find_duplicate
    from qc.suites import load_qc_settings

    bars = load_qc_settings().duplicates
    with tempfile.TemporaryDirectory(prefix="songmill-print-") as folder:
        data = json.loads(store.get_file(ref, Path(folder) / "fingerprint.json").read_text(encoding="utf-8"))
    match = (
        find_duplicate(TrackPrint.from_dict(data), earlier, max_audio_similarity=bars.max_audio_similarity, max_melody_overlap=bars.max_melody_overlap)
        if earlier
        else None
    )
    return data, match


def render_track_once(
    job: TrackJob,
    store_spec: str,
    progress: ProgressCallback | None,
    earlier: Sequence = (),
    stages: list | None = None,
    after_wave: Callable[[TrackOutcome], None] | None = None,
) -> TrackOutcome:
    """The registered stages of one track (or the first ones: `stages`), in order, until one stops it.
    `after_wave(outcome)`: called after each wave of stages that did not stop the track (the
    editor starts its audition there once the mix is made)."""
    store, registry = open_store(store_spec), ModelRegistry.load()
    outcome = TrackOutcome(job.number, job.track.title, job.seed)
    waves = TRACK_STAGES.waves(stages or TRACK_STAGES.stages)
    together = overlapping_stages()
    with head_starts(job, store_spec, store=store, registry=registry) as early:
        for number, wave in enumerate(waves):
            if together:  # stages one at a time: nothing beside them either
                early.begin_due(outcome, [stage for later in waves[number + 1 :] for stage in later])
            early.wait_for(wave)  # what a stage of this wave began early is kept by now
            if len(wave) > 1 and together:
                apply_stages_together(outcome, wave, job, store=store, registry=registry, earlier=earlier, progress=progress)
            else:
                for stage in wave:
                    apply_stage(outcome, stage, job, store=store, registry=registry, earlier=earlier, progress=progress)
                    if outcome.stopped:
                        break
            if outcome.stopped:
                break
            if after_wave is not None:
                after_wave(outcome)
    return outcome


def overlapping_stages() -> bool:
    """Whether a wave's stages run side by side (`SONGMILL_OVERLAP_STAGES=0` runs them one by
    one: each stage's CPU seconds are then its own, not apportioned)."""
    return os.environ.get("SONGMILL_OVERLAP_STAGES", "1") != "0"


def apply_stages_together(
    outcome: TrackOutcome, wave: list, job: TrackJob, *, store, registry, earlier: Sequence = (), progress: ProgressCallback | None = None
) -> TrackOutcome:
    """Run stages that read none of each other's outputs (a `StageGraph.waves` wave) on threads,
    then record them in order as `apply_stage` would have one after another: the first that
    fails stops the track, and a stage after a gate that turned the render down is dropped.

    Threads suffice because the stages' heavy work is native code that leaves the GIL (ONNX,
    WORLD, torch, FluidSynth and ffmpeg processes); on two cores the vocals hide most of the
    instruments, and export most of the gate (`_share_cpu` says how their CPU seconds are told
    apart)."""
    refs = outcome.refs  # the wave reads only what came before it
    cpu_before = cpu_seconds()
    with ThreadPoolExecutor(max_workers=len(wave), thread_name_prefix=f"track{job.number}") as pool:
        futures = [pool.submit(_run_in_thread, stage, job, refs, store, registry, progress) for stage in wave]
    ran = [future.result() for future in futures]
    _share_cpu([(result, own) for result, own in ran if not isinstance(result, BaseException)], cpu_seconds() - cpu_before)
    for stage, (result, _) in zip(wave, ran, strict=True):
        if isinstance(result, SongmillError):
            outcome.failed_stage, outcome.error = stage.name, str(result)
            if progress:
                progress(job.number, stage.name, "failed")
        elif isinstance(result, BaseException):
            raise result  # a bug or a dead service propagates, as from apply_stage
        else:
            _record_result(outcome, stage, result, job, store=store, earlier=earlier, progress=progress)
        if outcome.stopped:
            break
    return outcome


def _run_in_thread(stage, job: TrackJob, refs: dict, store, registry, progress: ProgressCallback | None) -> tuple[Any, float]:  # noqa: ANN001 - a Stage
    """(the stage's StageResult, or the exception that stopped it; this thread's CPU seconds).
    An exception is returned, not raised, so it surfaces only when the stage's turn comes: a
    stage that one at a time would never have run (an export after a gate that said no) cannot
    abort the render."""
    if progress:
        progress(job.number, stage.name, "start")
    started = time.thread_time()
    try:
        result: Any = run_stage(stage, job, refs, store=store, registry=registry)
    except Exception as err:  # noqa: BLE001 - raised again in its turn by apply_stages_together
        result = err
    return result, time.thread_time() - started


@contextlib.contextmanager
def making_ahead(stages: Sequence, job: TrackJob, refs: dict, *, store, registry) -> Iterator[None]:
    """Run `stages` on threads while the caller runs another stage of their wave, and wait for
    them on leaving. What they write lands in the store under their cache keys, so whoever runs
    them next finds them made. A scheduler's gate task uses it: its DAG runs export as the next
    task (a render the gate turns down is rendered again inside the gate's task, and export must
    read that render), so export is made beside the gate and its task finds it cached. A stage
    made ahead that fails is left to its own task, which runs it again and reports the error.
    The caller's stage figures (wall, CPU, peak memory: the process's) include what ran beside
    it, and the stage made ahead then reads as cached at no cost; the caller returns (or raises)
    once they have finished."""
    if not stages:
        yield
        return
    with ThreadPoolExecutor(max_workers=len(stages), thread_name_prefix=f"track{job.number}-ahead") as pool:
        futures = {stage.name: pool.submit(_run_in_thread, stage, job, refs, store, registry, None) for stage in stages}
        try:
            yield
        finally:
            for name, future in futures.items():
                result, _ = future.result()
                if isinstance(result, BaseException):
                    log.warning("track %d: %s made ahead failed (%s); its own task runs it again", job.number, name, result)


def _share_cpu(ran: list[tuple[Any, float]], wave_cpu_s: float) -> None:
    """Each (result, its thread's CPU seconds) that ran gets `cpu_s` = its thread's CPU seconds
    plus an equal share of the rest of the wave's: the programs the stages ran (FluidSynth,
    ffmpeg, fpcalc) and their helper threads (the watermark's reading, the encoders), which the
    process cannot tell apart. So the split is rough and the wave's sum is exact (a stage that
    failed or was dropped after the gate is counted in its neighbour's share);
    `SONGMILL_OVERLAP_STAGES=0` gives each stage its own figure."""
    computed = [(result, own) for result, own in ran if not result.cached]
    if not computed:
        return
    rest = max(wave_cpu_s - sum(own for _, own in computed), 0.0) / len(computed)
    for result, own in computed:
        result.cpu_s = own + rest


def apply_stage(
    outcome: TrackOutcome,
    stage,
    job: TrackJob,
    *,
    store,
    registry,
    earlier: Sequence = (),
    progress: ProgressCallback | None = None,
    raise_errors: bool = False,
) -> TrackOutcome:
    """Run one stage of a track on what its earlier stages wrote, recording the result in `outcome`.

    A SongmillError stops the track (`outcome.error`); after `qc`, a failed verdict or a
    duplicate of an `earlier` track stops it (`outcome.quarantined`). Any other exception is a
    bug or a dead service and propagates. `raise_errors`: a SongmillError propagates too (a
    scheduler's task fails with it, and its type says whether a retry can help)."""
    if progress:
        progress(job.number, stage.name, "start")
    try:
        result = run_stage(stage, job, outcome.refs, store=store, registry=registry)
    except SongmillError as err:
        if raise_errors:
            raise
        outcome.failed_stage, outcome.error = stage.name, str(err)
        if progress:
            progress(job.number, stage.name, "failed")
        return outcome
    return _record_result(outcome, stage, result, job, store=store, earlier=earlier, progress=progress)


def _record_result(outcome: TrackOutcome, stage, result, job: TrackJob, *, store, earlier: Sequence, progress: ProgressCallback | None) -> TrackOutcome:  # noqa: ANN001 - a Stage and its StageResult
    """A stage's result joins the track's; after the gate, a failed verdict or a duplicate stops it."""
    outcome.results.append(result)
    if stage.name == "qc":
        verdict = _qc_verdict(store, result.outputs["qc.json"])
        if not verdict["passed"]:
            outcome.quarantined = [f"{name}: {reason}" for name, profile in verdict["profiles"].items() for reason in profile["reasons"]]
            outcome.regenerable = verdict.get("regenerable", True)
        else:
            outcome.track_print, match = _duplicate_check(store, result.outputs["fingerprint.json"], list(earlier))
            if match is not None:
                outcome.quarantined, outcome.duplicate = [match.reason], match.to_dict()
    if progress:
        progress(job.number, stage.name, "failed" if outcome.stopped else "cached" if result.cached else "done")
    return outcome


def _qc_verdict(store, ref) -> dict:
    with tempfile.TemporaryDirectory(prefix="songmill-qc-") as folder:
        return json.loads(store.get_file(ref, Path(folder) / "qc.json").read_text(encoding="utf-8"))


def _put_event(events, number: int, stage: str, state: str) -> None:
    events.put((number, stage, state))


def _queue_progress(events) -> ProgressCallback:
    return functools.partial(_put_event, events)  # picklable, unlike a lambda


def _render_tracks(jobs: list[TrackJob], store_spec: str, workers: int, on_event: ProgressCallback, catalogue_url: str | None = None) -> list[TrackOutcome]:
    if workers <= 1 or len(jobs) <= 1:
        return [render_track(job, store_spec, on_event, catalogue_url) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_one_stage_at_a_time) as pool:
        events = manager.Queue()
        futures: list[Future] = [pool.submit(render_track, job, store_spec, _queue_progress(events), catalogue_url) for job in jobs]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            _drain(events, on_event)
        _drain(events, on_event)
        return [future.result() for future in futures]


def _one_stage_at_a_time() -> None:
    """A worker of a render with `--jobs` > 1: the cores already each render a track, so stages
    side by side would only add memory. Ctrl-C at a terminal reaches the whole process group:
    the worker leaves it to the parent, which stops the pool (a worker of its own would print a
    traceback per track)."""
    os.environ["SONGMILL_OVERLAP_STAGES"] = "0"
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _drain(events, on_event: ProgressCallback) -> None:
    while True:
        try:
            on_event(*events.get_nowait())
        except queue.Empty:
            return


def _progress_display(jobs: list[TrackJob], console: Console):
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"), TimeElapsedColumn(), console=console, transient=False
    )
    tasks = {job.number: progress.add_task(f"track {job.number:02d} {job.track.title[:40]}", total=len(TRACK_STAGES.stages), stage="queued") for job in jobs}

    def on_event(number: int, stage: str, state: str) -> None:
        if state == "retry":  # the gate turned the track down: it renders again with a new seed
            progress.reset(tasks[number])
        advance = 1 if state in ("done", "cached") else 0
        label = {"start": f"{stage}…", "done": f"{stage} ✓", "cached": f"{stage} (cached)", "failed": f"{stage} FAILED", "retry": "regenerating (new seed)"}[
            state
        ]
        progress.update(tasks[number], advance=advance, stage=label)

    return progress, on_event


@dataclass
class ReleaseRun:
    """A release run between its start (catalogue row, track jobs) and its finish (report, delivery).

    The embedded runner holds it in memory; Airflow passes `to_plan()` between tasks and rebuilds
    it with `from_plan()` in each, on whatever machine runs the task."""

    config_path: Path
    spec: ReleaseSpec
    profiles: dict
    out_dir: Path
    run_id: int
    seed: int | None
    jobs: list[TrackJob]
    runner: Literal["embedded", "airflow"]
    started: dt.datetime
    config_sha256: str
    partial_render: bool = False  # only one track (--track): nothing is delivered
    workers: int = 1
    redeliver: bool = False  # may replace an earlier delivery whose audio differs (--redeliver)

    @property
    def release_dir(self) -> Path:
        return (self.out_dir / self.spec.release.id).resolve()

    def to_plan(self, store) -> ReleasePlan:
        """The run for other tasks: the release spec is stored as an artifact and travels as its reference."""
        with tempfile.TemporaryDirectory(prefix="songmill-plan-") as folder:
            path = Path(folder) / "release-spec.json"
            path.write_text(self.spec.model_dump_json(), encoding="utf-8")
            spec_ref = store.put_file(path, path.name)
        return ReleasePlan(
            release_id=self.spec.release.id,
            title=self.spec.release.title,
            config_path=str(self.config_path),
            config_sha256=self.config_sha256,
            spec=spec_ref,
            out_dir=str(self.out_dir),
            run_id=self.run_id,
            seed=self.seed,
            runner=self.runner,
            started_at=self.started,
            partial_render=self.partial_render,
            redeliver=self.redeliver,
            tracks=[TrackPlan(number=j.number, seed=j.seed, title=j.track.title, commercial=j.commercial) for j in self.jobs],
        )

    @classmethod
    def from_plan(cls, plan: ReleasePlan, store) -> "ReleaseRun":
        with tempfile.TemporaryDirectory(prefix="songmill-plan-") as folder:
            path = store.get_file(plan.spec, Path(folder) / "release-spec.json")
            spec = ReleaseSpec.model_validate_json(path.read_text(encoding="utf-8"))
        jobs = [TrackJob(spec, t.number - 1, t.seed, t.commercial) for t in plan.tracks]
        return cls(
            Path(plan.config_path),
            spec,
            load_profiles(),
            Path(plan.out_dir),
            plan.run_id,
            plan.seed,
            jobs,
            plan.runner,
            plan.started_at,
            plan.config_sha256,
            plan.partial_render,
            redeliver=plan.redeliver,
        )

    def job(self, number: int) -> TrackJob:
        return next(j for j in self.jobs if j.number == number)


def start_release(
    config_path: str | Path,
    *,
    out_dir: Path = Path("dist"),
    jobs: int = 1,
    track: int | None = None,
    seed: int | None = None,
    store_spec: str | None = None,
    database_url: str | None = None,
    runner: Literal["embedded", "airflow"] = "embedded",
    redeliver: bool = False,
) -> ReleaseRun:
    """Validate the config and the services, record the run in the catalogue, plan the tracks.

    Raises SongmillError (a ConfigError for the config) before anything is written."""
    config_path = Path(config_path)
    spec, profiles = load_release_with_profiles(config_path)
    check_output_folder(out_dir)
    if jobs < 1:
        raise SongmillError(f"--jobs {jobs} is not allowed (use 1 or more)")
    if track is not None and not 1 <= track <= len(spec.tracks):
        raise InputError(f"--track {track} is not in {config_path} ({tracks_it_has(len(spec.tracks))})")
    unfit = lyrics_problems(
        config_path, spec, tracks=[track - 1] if track else None
    )  # the lyrics stage would stop the track on them, after minutes of work elsewhere
    if unfit:
        raise ConfigError(unfit)
    for warning in release_warnings(config_path, spec):
        log.warning("%s", warning)
    release_dir = (Path(out_dir) / spec.release.id).resolve()
    if Path(out_dir).resolve() not in release_dir.parents:
        raise SongmillError(f"release id {spec.release.id!r} would write outside {out_dir}")
    open_store(store_spec or default_store_spec())  # fail fast on a dead store, before any work
    catalogue = Catalogue.open(database_url)
    try:
        taken = catalogue.identifiers_taken(
            spec.release.id,
            upc=spec.release.upc if spec.release.upc != "auto" else None,
            isrcs={n: t.isrc for n, t in enumerate(spec.tracks, start=1) if t.isrc != "auto"},
        )
        if taken:  # the delivery would refuse them, after every track's work
            from songmill.core.config import load_yaml

            _, locator = load_yaml(config_path)
            raise ConfigError([locator.problem(where, problem) for where, problem in taken])
        commercial = any(profiles[name].commercial for name in spec.release.profiles)
        numbers = [track] if track else range(1, len(spec.tracks) + 1)
        track_jobs = [TrackJob(spec, n - 1, track_seed(spec, n - 1, seed), commercial) for n in numbers]
        config_sha = file_sha256(config_path)
        catalogue.upsert_release(spec, config_path=str(config_path), config_sha256=config_sha)
        run_id = catalogue.start_run(spec.release.id, runner=runner, base_seed=seed)
    finally:
        catalogue.close()
    return ReleaseRun(
        config_path,
        spec,
        profiles,
        Path(out_dir),
        run_id,
        seed,
        track_jobs,
        runner,
        dt.datetime.now(dt.UTC),
        config_sha,
        partial_render=track is not None,
        workers=jobs,
        redeliver=redeliver,
    )


@denormals_flushed()  # the release steps here (read-backs, the QC report) as well as the stages
def render(
    config_path: str | Path,
    *,
    out_dir: Path = Path("dist"),
    jobs: int = 1,
    track: int | None = None,
    seed: int | None = None,
    store_spec: str | None = None,
    database_url: str | None = None,
    console: Console | None = None,
    redeliver: bool = False,
) -> Path:
    """Render a release; returns the path of its run report.

    Parameters
    ----------
    config_path : the release YAML.
    out_dir : the report and each track's artifacts go to `<out_dir>/<release-id>/`.
    jobs : tracks rendered at once (worker processes).
    track : render only this track (1-based).
    seed : re-seed every track from this base seed (see `spec.track_seed`).
    redeliver : replace an earlier delivery of the release even when its audio differs (without
        it, such a render is rendered and reported but not delivered).

    Raises
    ------
    SongmillError : a bad config, an unreachable store or catalogue, or a track that failed
        (the report is still written, with the failure).
    """
    store_spec = store_spec or default_store_spec()
    run = start_release(config_path, out_dir=out_dir, jobs=jobs, track=track, seed=seed, store_spec=store_spec, database_url=database_url, redeliver=redeliver)
    try:  # from the run's first moment: a failure (or Ctrl-C) anywhere ends it failed
        console = console or Console(stderr=True)
        catalogue = Catalogue.open(database_url)
        catalogue_url = catalogue.engine.url.render_as_string(hide_password=False)  # for the worker processes
        catalogue.close()
        progress, on_event = _progress_display(run.jobs, console)
        with progress:
            outcomes = _render_tracks(run.jobs, store_spec, jobs, on_event, catalogue_url)
        stop_if_asked("the release steps")  # a Ctrl-C Python dropped in a finaliser: nothing is delivered
    except BaseException as err:
        fail_release(run.run_id, str(err) or type(err).__name__, database_url=database_url)
        raise
    try:
        return finish_release(run, outcomes, store_spec=store_spec, database_url=database_url, console=console)
    except ServiceError as err:  # the catalogue went away (or its disk filled): say what failed first, too
        failed = next((o for o in outcomes if o.error), None)
        if failed is None:
            raise
        raise ServiceError(f"track {failed.number} ({failed.title}) failed: {failed.error}; and {err}") from None
    except OSError as err:  # the output folder's disk full, or not writable: the reports cannot be written
        message = f"writing the run's reports to {out_dir} failed ({err.strerror or err}); free space there (or fix its permissions) and run again"
        with contextlib.suppress(SongmillError):
            fail_release(run.run_id, message, database_url=database_url)
        raise SongmillError(message) from None
    except KeyboardInterrupt:  # Ctrl-C while packaging or delivering: the delivery is all or nothing, the run is over
        with contextlib.suppress(SongmillError):
            fail_release(run.run_id, "interrupted (Ctrl-C) while the release was packaged and delivered", database_url=database_url)
        raise


def fail_release(run_id: int, error: str, *, database_url: str | None = None) -> None:
    """Mark a run failed in the catalogue (a scheduler's failed run, or the embedded runner's crash)."""
    catalogue = Catalogue.open(database_url)
    try:
        catalogue.finish_run(run_id, status="failed", error=error)
    finally:
        catalogue.close()


def finish_release(
    run: ReleaseRun, outcomes: list[TrackOutcome], *, store_spec: str | None = None, database_url: str | None = None, console: Console | None = None
) -> Path:
    """After the tracks: batch duplicates, catalogue records, package and deliver, the QC report
    and the run report. Returns the report's path; raises SongmillError when a track failed, the
    delivery failed, or QC quarantined a track of a release that must be delivered whole."""
    spec, profiles, release_dir, config_path = run.spec, run.profiles, run.release_dir, run.config_path
    store = open_store(store_spec or default_store_spec())
    catalogue = Catalogue.open(database_url)
    console = console or Console(stderr=True)
    _batch_duplicates(outcomes)
    recorded = [record_track(outcome, spec, catalogue, run.run_id, store, release_dir) for outcome in outcomes]
    track_reports = [report for report, _ in recorded]
    failed = [o for o in outcomes if o.error]
    quarantined = [o for o in outcomes if o.quarantined]
    steps_wall0, steps_cpu0 = time.perf_counter(), cpu_seconds()
    release_steps, delivery_error = _release_steps(
        spec,
        profiles,
        [t for _, t in recorded],
        failed + quarantined,
        config_path=config_path,
        out_dir=run.out_dir,
        catalogue=catalogue,
        run_id=run.run_id,
        partial_render=run.partial_render,
        redeliver=run.redeliver,
    )
    release_steps_time = {"wall_s": round(time.perf_counter() - steps_wall0, 3), "cpu_s": round(cpu_seconds() - steps_cpu0, 3)}
    review = _queue_for_review(spec.release.id, catalogue)
    report = {
        "report_version": REPORT_VERSION,
        "songmill_version": __version__,
        "runner": run.runner,
        # a track that failed or was quarantined fails the run unless the rest was delivered without it (allow_partial)
        "status": "failed" if delivery_error or ((failed or quarantined) and not release_steps.get("delivered")) else "succeeded",
        "quarantined": [o.number for o in quarantined],
        "release": {
            "id": spec.release.id,
            "title": spec.release.title,
            "artist": spec.release.artist,
            "label": spec.release.label,
            "type": spec.release.type,
            "date": spec.release.date.isoformat(),
            "genre": spec.release.genre,
            "profiles": spec.release.profiles,
        },
        "config": {"path": str(config_path), "sha256": run.config_sha256},
        "base_seed": run.seed,
        "jobs": run.workers,
        "run_id": run.run_id,
        "store": store.description,
        "catalogue": display_url(str(catalogue.engine.url)),
        "started_at": run.started.isoformat(timespec="seconds"),
        "wall_s": round((dt.datetime.now(dt.UTC) - run.started).total_seconds(), 3),
        "stages": [{"name": s.name, "version": s.version, "description": s.description} for s in TRACK_STAGES.stages],
        "tracks": track_reports,
        "stage_totals": _stage_totals(outcomes),
        "review_queue": review,  # the night's least certain tracks, put before people (songmill.feedback.review)
        "release_steps": release_steps_time,  # package + deliver, all profiles
        "album": _album_consistency(track_reports),
        "upc": release_steps.get("upc"),
        "isrcs": release_steps.get("isrcs", {}),
        "changed_under_same_isrc": release_steps.get("changed_under_same_isrc", []),
        "deliveries": release_steps.get("deliveries", []),
        "delivery_skipped": release_steps.get("skipped"),
        "delivery_error": delivery_error,
        "delivered": release_steps.get("delivered", []),
    }
    report_cpu0 = cpu_seconds()
    run_dir = run_folder(release_dir, run.run_id)  # this run's own copies: a later run never replaces them
    report["qc_report"] = str(release_dir / "qc-report.html")
    report["run_qc_report"] = str(_qc_report(report, profiles, run_dir, store))
    report["qc_report_cpu_s"] = round(cpu_seconds() - report_cpu0, 3)
    report_path = release_dir / "run-report.json"
    encoded = json.dumps(report, indent=1).encode()
    atomic_write_bytes(run_dir / "run-report.json", encoded)
    atomic_write_bytes(report_path, encoded)  # the release's latest run
    atomic_write_bytes(release_dir / "qc-report.html", Path(report["run_qc_report"]).read_bytes())
    catalogue.finish_run(
        run.run_id,
        status=report["status"],
        report_path=str(report_path),
        error="; ".join([f"track {o.number}: {o.error}" for o in failed] + ([delivery_error] if delivery_error else [])) or None,
    )
    catalogue.close()
    from songmill.release.package import unsigned_reasons

    for profile, why in unsigned_reasons(report["deliveries"], profiles):
        console.print(f"[yellow]warning:[/yellow] {profile}: delivered without Content Credentials: {escape(why)}", highlight=False, soft_wrap=True)
    for kept in report["changed_under_same_isrc"]:
        console.print(f"[yellow]warning:[/yellow] {escape(same_isrc_warning(kept))}", highlight=False, soft_wrap=True)
    for o in failed:
        message = f"track {o.number} ({o.title}) failed at stage {o.failed_stage}: {o.error}"
        if not release_steps.get("delivered"):
            raise SongmillError(f"{message} (report: {report_path})")
        console.print(f"[yellow]warning:[/yellow] {message}; delivered without it (allow_partial)", highlight=False, soft_wrap=True)
    if delivery_error:
        raise SongmillError(f"{delivery_error} (report: {report_path})")
    for o in quarantined:
        message = f"track {o.number} ({o.title}) was quarantined by QC after {len(o.qc_attempts)} render(s): {'; '.join(o.quarantined or [])}"
        if not release_steps.get("delivered"):
            raise SongmillError(f"{message}; the release was not delivered (release.allow_partial: true delivers the tracks that pass) (report: {report_path})")
        console.print(f"[yellow]warning:[/yellow] {message}; delivered without it (allow_partial)", highlight=False, soft_wrap=True)
    return report_path


def _queue_for_review(release_id: str, catalogue: Catalogue) -> list[dict]:
    """A nightly batch's least certain tracks go to the review queue (active learning)."""
    from songmill.feedback.nightly import queue_nightly_review

    try:
        return queue_nightly_review(release_id, catalogue)
    except SongmillError as err:  # a broken catalogue.yaml must not undo a delivered release
        log.warning("review queue not filled for %s: %s", release_id, err)
        return []


def _qc_report(report: dict, profiles: dict, folder: Path, store) -> Path:  # noqa: ANN001 - an ArtifactStore
    from qc.report import write_qc_report
    from songmill.engine.track_stages import StoredF0

    targets = {name: p.loudness_lufs if p.loudness_lufs != "reference" else None for name, p in profiles.items()}
    return write_qc_report(report, folder / "qc-report.html", targets=targets, f0_memo=StoredF0(store))


def _batch_duplicates(outcomes: list[TrackOutcome]) -> None:
    """Tracks of one batch were rendered side by side and could not see each other in the
    catalogue: compare them now; a later track like an earlier one is quarantined (not re-seeded:
    the batch is already rendered)."""
    from qc.duplicates import TrackPrint, find_duplicate
    from qc.suites import load_qc_settings

    bars = load_qc_settings().duplicates
    passed = [o for o in outcomes if o.track_print is not None and not o.quarantined and not o.error]
    for index, outcome in enumerate(passed):
        earlier = [
            ({"release_id": "this release", "number": o.number, "title": o.title, "run_id": None}, TrackPrint.from_dict(o.track_print or {}))
            for o in passed[:index]
            if not o.quarantined
        ]
        match = (
            find_duplicate(
                TrackPrint.from_dict(outcome.track_print or {}),
                earlier,
                max_audio_similarity=bars.max_audio_similarity,
                max_melody_overlap=bars.max_melody_overlap,
            )
            if earlier
            else None
        )
        if match is not None:
            outcome.quarantined, outcome.duplicate = [match.reason], match.to_dict()
            outcome.qc_attempts.append({"seed": outcome.seed, "reasons": outcome.quarantined, "duplicate_of": outcome.duplicate})


def watermark_detector(*, commercial: bool) -> Callable[[Path], dict]:
    """Read the provenance watermark from any audio file ffmpeg decodes (the delivery's check, `verify`).
    These read-backs ask one question, whether the mark is there, of a file made from a master the
    gate already read in float32: on a CPU with native bfloat16 they read in it (2.6× faster, the
    answers within 0.01; models.watermark.perth.native_bfloat16)."""
    from models.watermark.perth import load_watermarker, native_bfloat16
    from songmill.core.audio import decode
    from songmill.engine.track_stages import WATERMARK_MODEL

    marker = load_watermarker(ModelRegistry.load().resolve(WATERMARK_MODEL, commercial=commercial))
    bfloat16 = native_bfloat16()

    def detect(path: Path) -> dict:
        samples, rate = decode(path)
        return marker.detect(samples, rate, bfloat16=bfloat16).to_dict()

    return detect


def _release_steps(
    spec: ReleaseSpec,
    profiles: dict,
    tracks: list[RenderedTrack],
    failed: list[TrackOutcome],
    *,
    config_path: Path,
    out_dir: Path,
    catalogue: Catalogue,
    run_id: int,
    partial_render: bool,
    redeliver: bool = False,
) -> tuple[dict, str | None]:
    """Package and deliver when the release is whole: every track rendered (or, with
    `allow_partial`, the ones that did). Returns (what was delivered, the error that stopped it)."""
    if partial_render:
        return {"skipped": "only one track was rendered (--track); a release is delivered whole"}, None
    if failed and not spec.release.allow_partial:
        return {"skipped": f"{len(failed)} track(s) failed or were quarantined by QC, and release.allow_partial is false"}, None
    ready = [t for t in tracks if t.rendered]
    if not ready:
        return {"skipped": "no track was rendered"}, None
    try:
        commercial = any(profiles[name].commercial for name in spec.release.profiles)
        detect = watermark_detector(commercial=commercial) if any(profiles[name].watermark for name in spec.release.profiles) else None
        delivered = package_and_deliver(
            spec,
            profiles,
            ready,
            out_dir=out_dir,
            config_path=config_path,
            catalogue=catalogue,
            run_id=run_id,
            detect_watermark=detect,
            redeliver=redeliver,
        )
        return delivered, None
    except SongmillError as err:
        return {}, f"delivery failed: {err}"


WORKING_AUDIO_STAGES = ("instruments", "vocals", "mix")


def same_isrc_warning(kept: dict) -> str:
    """What a run says of a track redelivered with other audio under its old ISRC."""
    return (
        f"track {kept['track']} sounds different from its delivery of {kept['delivered_at']} and went out under the same ISRC {kept['isrc']}: "
        "a materially changed recording (new words, a new mix) needs a new ISRC (IFPI ISRC handbook), which the track's isrc in the config gives; "
        "a correction of the same recording keeps it"
    )


def _working_audio(stage: str, name: str) -> bool:
    """Audio a track is made from and nobody is delivered: the stems, the vocals, the mix (0.44 GB
    of the demo's 0.6 GB track folder). The masters (what the gate judged) and the delivery files
    are copied beside the report."""
    return stage in WORKING_AUDIO_STAGES and name.endswith(".wav")


def stored_artifacts(artifacts: dict[str, dict]) -> dict[str, dict]:
    """A run report's artifacts as the store knows them (name, sha256, bytes, uri and the stage
    that made each), without where that run put them (`path`, `in_store`)."""
    return {name: {k: v for k, v in a.items() if k not in ("path", "in_store")} for name, a in artifacts.items()}


def record_track(
    outcome: TrackOutcome,
    spec: ReleaseSpec,
    catalogue: Catalogue,
    run_id: int,
    store,
    release_dir: Path,
    *,
    version_only: bool = False,
    audio_kept_elsewhere: frozenset[str] = frozenset(),
) -> tuple[dict, RenderedTrack]:
    """Record a track's stage runs in the catalogue and copy its artifacts beside the report,
    except its working audio (`_working_audio`) when the store is a folder on this machine: the
    report names the store's own file for it instead.
    `version_only`: a song editor's version — its stage runs and artifacts (lineage) only; the
    track's status and attributes stay those of the recording the config makes, and its print is
    kept as the version's (duplicate detection reads the config's; `songmill verify` reads both).
    `audio_kept_elsewhere`: the sha256 of audio not to copy (an edited version's folder gets the
    masters it made, not its parent's, which are in the store by hash and in `current/`)."""
    track_id = catalogue.upsert_track(spec.release.id, outcome.number, title=outcome.title, seed=outcome.seed)
    folder = release_dir / "tracks" / f"{outcome.number:02d}-{safe_name(outcome.title)}"
    artifacts, duration_s, files, score = {}, None, {}, None
    decisions: dict[str, Any] = {"arrangement.json": None, "vocals.json": None, "mix.json": None, "master.json": None, "qc.json": None, "export.json": None}
    for result in outcome.results:
        catalogue.record_stage(run_id, track_id, result)
        for name, ref in result.outputs.items():
            if name.endswith(".wav") and ref.sha256 in audio_kept_elsewhere:
                artifacts[name] = {**ref.to_dict(), "stage": result.stage}
                continue
            if _working_audio(result.stage, name) and (kept := store.stored_path(ref)) is not None:
                artifacts[name] = {**ref.to_dict(), "stage": result.stage, "path": str(kept), "in_store": True}
                (folder / name).unlink(missing_ok=True)  # an earlier run's copy, which this report no longer lists
                continue
            path = store.get_file(ref, folder / name)
            files[name] = path
            artifacts[name] = {**ref.to_dict(), "stage": result.stage, "path": str(path)}
            if name in ("form.json", "score.json"):  # the full score, once composed, has the last word
                score = Score.load_json(path)
                duration_s = round(score.duration_s, 3)
            if name in decisions:  # the stages' decisions travel with the report
                decisions[name] = json.loads(path.read_text(encoding="utf-8"))
    for profile, verdict in (decisions["qc.json"] or {}).get("profiles", {}).items():
        catalogue.record_qc(
            run_id,
            track_id,
            profile,
            [{"metric": c["metric"], "value": c["value"], "bar": c["bar"], "passed": c["passed"], "detail": c["reason"]} for c in verdict["checks"]],
        )
    status = "failed" if outcome.error else "quarantined" if outcome.quarantined else "rendered"
    if not version_only:
        catalogue.set_track_status(track_id, status, duration_s=duration_s if status == "rendered" else None)
    rerender_of = _rerender_of(catalogue, track_id, outcome) if status == "rendered" and not version_only else None
    duplicates = [a for a in outcome.qc_attempts if a.get("duplicate_of")]
    if duplicates:  # the catalogue keeps why each render was turned down, beside the suite's checks
        catalogue.record_qc(
            run_id,
            track_id,
            "catalogue",
            [
                {
                    "metric": "duplicate_audio_similarity",
                    "value": a["duplicate_of"]["audio_similarity"],
                    "bar": None,
                    "passed": False,
                    "detail": f"seed {a['seed']}: {a['reasons'][0]}",
                }
                for a in duplicates
            ],
        )
    if status == "rendered" and outcome.track_print:  # later tracks are checked against it; verify knows an edited version by it
        catalogue.record_print(run_id, track_id, seed=outcome.seed, master_sha256=outcome.track_print["master_sha256"], track_print=outcome.track_print)
    models = {m["name"]: m for result in outcome.results for m in result.models}  # every model its stages used, once
    if (status != "failed" or files.get("score.json")) and not version_only:  # what listener feedback is measured against (songmill.feedback)
        from songmill.core.melodic import melodic_features
        from songmill.feedback.attributes import track_attributes

        attributes = track_attributes(spec, outcome.number, vocals=decisions["vocals.json"], models={n: m["version"] for n, m in models.items()})
        melody = melodic_features(score) if files.get("score.json") and score is not None else None  # the score loaded above
        catalogue.set_track_attributes(track_id, attributes, melody)
    rendered = RenderedTrack(outcome.number, track_id, files, rendered=status == "rendered", models=tuple(models[name] for name in sorted(models)))
    return {
        "number": outcome.number,
        "title": outcome.title,
        "seed": outcome.seed,
        "status": status,
        "duration_s": duration_s,
        "failed_stage": outcome.failed_stage,
        "error": outcome.error,
        "qc": decisions["qc.json"],
        "qc_reasons": outcome.quarantined,
        "qc_attempts": outcome.qc_attempts,
        "duplicate_of": outcome.duplicate,
        "rerender_of": rerender_of,
        "artifacts": artifacts,
        "arrangement": decisions["arrangement.json"],
        "vocals": decisions["vocals.json"],
        "mix": decisions["mix.json"],
        "master": decisions["master.json"],
        "loudness": {name: profile["loudness"] for name, profile in (decisions["master.json"] or {}).get("profiles", {}).items()},
        "export": decisions["export.json"],
        "stages": [r.to_dict() for r in outcome.results],
    }, rendered


def _rerender_of(catalogue: Catalogue, track_id: int, outcome: TrackOutcome) -> dict | None:
    """When this track was rendered before and sounds the same, say so: a rerun of the same
    release is the same track (delivered again), not a duplicate of another."""
    from qc.duplicates import TrackPrint, audio_similarity
    from qc.suites import load_qc_settings

    before = catalogue.newest_print(track_id)
    if before is None or not outcome.track_print:
        return None
    similarity = audio_similarity(TrackPrint.from_dict(before).subprints(), TrackPrint.from_dict(outcome.track_print).subprints())
    if similarity <= load_qc_settings().duplicates.max_audio_similarity:
        return None
    return {"run_id": before["run_id"], "seed": before["seed"], "audio_similarity": round(similarity, 4)}


def _album_consistency(tracks: list[dict]) -> dict:
    """How alike the release's masters are, per profile: the spread of integrated loudness (LU)
    and the largest octave-band difference between any two tracks' tonal balance (dB)."""
    figures = {}
    profiles = {name for t in tracks for name in (t.get("master") or {}).get("profiles", {})}
    for name in sorted(profiles):
        masters = [t["master"]["profiles"][name] for t in tracks if t.get("master") and name in t["master"]["profiles"]]
        lufs = [m["loudness"]["integrated_lufs"] for m in masters]
        tones = [m["tone"]["master_db"] for m in masters]
        band_spread = [max(band) - min(band) for band in zip(*tones)] if tones else []
        figures[name] = {
            "tracks": len(masters),
            "loudness_spread_lu": round(max(lufs) - min(lufs), 2) if lufs else None,
            "tone_spread_db": round(max(band_spread), 2) if band_spread else None,
        }
    return figures


def _stage_totals(outcomes: list[TrackOutcome]) -> dict:
    totals: dict[str, dict] = {}
    for outcome in outcomes:
        for r in outcome.results:
            t = totals.setdefault(r.stage, {"runs": 0, "cached": 0, "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mib": 0.0})
            t["runs"] += 1
            t["cached"] += int(r.cached)
            t["wall_s"] = round(t["wall_s"] + r.wall_s, 4)
            t["cpu_s"] = round(t["cpu_s"] + r.cpu_s, 4)
            t["peak_rss_mib"] = max(t["peak_rss_mib"], round(r.peak_rss_mib, 1))
    return totals
