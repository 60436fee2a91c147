"""A release run as tasks that a scheduler runs one at a time, on any machine (Airflow: operators/).

    plan   = plan_release("config/releases/demo.yaml", out_dir="dist")   # ReleasePlan: validated, run recorded
    states = track_states(plan)                                          # a TrackState per track (mapped in Airflow)
    state  = run_track_stage(state, "form") … run_track_stage(state, "export")   # a task per stage per track
    state  = joined_states([run_track_stage(state, "instruments"), run_track_stage(state, "vocals")])   # a wave: side by side
    result = finish_release_run(states)                                  # ReleaseResult: packaged, delivered, reported

Every value in and out is a typed model (songmill.engine.task_data) holding artifact
references, never audio; `model_dump(mode="json")` is what Airflow keeps as XCom. The release
spec itself travels as an artifact in the store. Each task opens the store and the catalogue
the environment names (SONGMILL_STORE, SONGMILL_DATABASE_URL; Airflow's hook sets them from its
Connections). A task rerun with the same inputs returns the stored artifacts (the stage cache),
so a retried task redoes nothing that had finished, and the tasks together deliver exactly what
`songmill render` delivers for the same config and seed.

Errors: a SongmillError means bad input or a config (retrying cannot help); a ServiceError (a
SongmillError too) means a dead service (retrying can); anything else is a bug or a crash.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Literal

from songmill.core.errors import SongmillError
from songmill.engine.task_data import ReleasePlan, ReleaseResult, TrackOutcome, TrackState

log = logging.getLogger("songmill.engine.tasks")


def plan_release(
    config_path: str | Path, *, out_dir: str | Path, seed: int | None = None, runner: Literal["embedded", "airflow"] = "airflow", redeliver: bool = False
) -> ReleasePlan:
    """Validate the config and the services, record the run in the catalogue; the run's plan.
    `redeliver`: the run may replace an earlier delivery of the release whose audio differs."""
    from songmill.core.store import open_store
    from songmill.engine.runner import start_release

    run = start_release(config_path, out_dir=Path(out_dir), seed=seed, runner=runner, redeliver=redeliver)
    return run.to_plan(open_store())


def track_states(plan: ReleasePlan) -> list[TrackState]:
    """One state per track of the plan, before its first stage (what Airflow maps the per-track task group over)."""
    return [TrackState(plan=plan, outcome=TrackOutcome(t.number, t.title, t.seed)) for t in plan.tracks]


def run_track_stage(state: TrackState, stage_name: str) -> TrackState:
    """Run one stage of one track; returns the track's next state.

    After a stage has stopped the track (the gate quarantined it), later stages pass it on
    unchanged. At `qc`, a render the gate turns down is rendered again with new seeds, from
    `form` through `qc` (config/qc.yaml `regeneration`), in this task: a DAG has no loops.

    Raises the stage's SongmillError (bad input: do not retry) or ServiceError (retry)."""
    from models.registry import ModelRegistry
    from songmill.catalogue import default_url
    from songmill.core.store import default_store_spec, open_store
    from songmill.engine.runner import ReleaseRun, apply_stage, earlier_prints, making_ahead, regenerate_until_passed
    from songmill.engine.track_stages import TRACK_STAGES

    stage = next((s for s in TRACK_STAGES.stages if s.name == stage_name), None)
    if stage is None:
        raise SongmillError(f"stage {stage_name!r} is not registered (stages: {', '.join(TRACK_STAGES.names())})")
    outcome = dataclasses.replace(state.outcome, results=list(state.outcome.results))  # never change the caller's state
    if outcome.stopped:
        why = "; ".join(outcome.quarantined) if outcome.quarantined else f"a re-render failed: {outcome.error}"
        log.info("track %d: %s skipped, the track stopped at the gate (%s)", outcome.number, stage_name, why)
        return state
    store_spec = default_store_spec()
    store = open_store(store_spec)
    run = ReleaseRun.from_plan(state.plan, store)
    job = dataclasses.replace(run.job(outcome.number), seed=outcome.seed)
    earlier = earlier_prints(job, default_url()) if stage.name == "qc" else []
    registry = ModelRegistry.load()
    with making_ahead(stages_to_make_ahead(stage), job, outcome.refs, store=store, registry=registry):
        apply_stage(outcome, stage, job, store=store, registry=registry, earlier=earlier, raise_errors=True)
    if stage.name == "qc" and outcome.quarantined:
        through_qc = TRACK_STAGES.through("qc")
        outcome = regenerate_until_passed(outcome, job, store_spec, None, earlier, stages=through_qc)
    for result in outcome.results[-1:]:
        log.info(
            "track %d: %s %s in %.1f s (%s)",
            outcome.number,
            result.stage,
            "cached" if result.cached else "ran",
            result.wall_s,
            ", ".join(sorted(result.outputs)),
        )
    return TrackState(plan=state.plan, outcome=outcome)


def stages_to_make_ahead(stage) -> list:  # noqa: ANN001 - a Stage
    """The stages a task makes ahead while it runs `stage`: beside the gate, the stages of its wave
    that the DAG runs after it (export; `operators.dag_builder.task_waves` says why they follow
    the gate), so their tasks find them in the store. None when `SONGMILL_OVERLAP_STAGES=0`."""
    from songmill.engine.runner import overlapping_stages
    from songmill.engine.track_stages import TRACK_STAGES

    if stage.name != "qc" or not overlapping_stages():
        return []
    wave = next(w for w in TRACK_STAGES.waves() if stage in w)
    return wave[wave.index(stage) + 1 :]


def joined_states(states: list[TrackState]) -> TrackState:
    """One track's states after stages that ran side by side (a wave, each its own task, each
    from the same state before it) as one state: every stage result once, in the graph's order;
    the first stop (an error) among them stops the track."""
    from songmill.engine.track_stages import TRACK_STAGES

    tracks = {(s.plan.run_id, s.outcome.number) for s in states}
    if len(tracks) != 1:
        raise SongmillError(f"cannot join the states of different tracks or runs: {sorted(tracks)}")
    order = TRACK_STAGES.names()
    results = {result.stage: result for state in states for result in state.outcome.results}
    stopped = next((s.outcome for s in states if s.outcome.stopped), None)
    outcome = dataclasses.replace(stopped or states[0].outcome, results=sorted(results.values(), key=lambda r: order.index(r.stage)))
    return TrackState(plan=states[0].plan, outcome=outcome)


class _LinesToLog(io.StringIO):
    """A text stream whose every whole line is a log record at `level` (a rich Console's file)."""

    def __init__(self, level: int):
        super().__init__()
        self.level, self.pending = level, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.strip():
                log.log(self.level, "%s", line)
        return len(text)


def finish_release_run(states: list[TrackState]) -> ReleaseResult:
    """Record the tracks, package and deliver, write the QC report and the run report."""
    from rich.console import Console

    from songmill.core.store import open_store
    from songmill.engine.runner import ReleaseRun, finish_release

    if not states:
        raise SongmillError("the release run has no tracks to finish (the plan listed none)")
    plan = states[0].plan
    run = ReleaseRun.from_plan(plan, open_store())
    outcomes = sorted((s.outcome for s in states), key=lambda o: o.number)
    # what the release step says ("warning: … delivered without Content Credentials") goes to the
    # task's log as warnings: a scheduler logs a task's stderr as errors
    report_path = finish_release(run, outcomes, console=Console(file=_LinesToLog(logging.WARNING), width=10_000, no_color=True))
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return ReleaseResult(
        release_id=plan.release_id,
        report=str(report_path),
        qc_report=report["qc_report"],
        status=report["status"],
        upc=report["upc"],
        delivered=report["delivered"],
        quarantined=report["quarantined"],
    )


def fail_release_run(plan: ReleasePlan, error: str) -> None:
    """Mark the run failed in the catalogue (a task of it failed for good)."""
    from songmill.engine.runner import fail_release

    fail_release(plan.run_id, error)


def run_note(plan: ReleasePlan, qc_report_url: str) -> str | None:
    """The note a scheduler puts on the run (Markdown): whether the release was delivered, each
    track's verdict with the gate's reasons, and a link to this run's QC report. None when the
    run wrote no report (it stopped before delivery)."""
    from songmill.core.paths import run_folder

    path = run_folder(Path(plan.out_dir).resolve() / plan.release_id, plan.run_id) / "run-report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    lines = [_delivery_line(report), ""]
    lines += [_track_line(track) for track in report["tracks"]]
    lines += ["", f"[QC report of this run]({qc_report_url}) (songmill run {plan.run_id})"]  # Airflow's notes open links in a new tab
    return "\n".join(lines)


def _delivery_line(report: dict) -> str:
    stopped = [t for t in report["tracks"] if t["status"] in ("quarantined", "failed")]
    names = ", ".join(f"track {t['number']}" for t in stopped)
    profiles = ", ".join(d["profile"] for d in report["deliveries"])
    if report["delivered"]:
        without = f" without {names} (allow_partial)" if stopped else ""
        return f"**Delivered**{without} to {profiles}, UPC {report['upc']}."
    if report.get("delivery_error"):
        return f"**Not delivered**: {report['delivery_error']}"
    if stopped:
        return f"**Not delivered: the release waits for {names}** — release.allow_partial is false, so it is delivered only when every track passes."
    return f"**Not delivered**: {report.get('delivery_skipped') or 'nothing was delivered'}."


def _track_line(track: dict) -> str:
    head = f"- track {track['number']} *{track['title']}*"
    if track["status"] == "quarantined":
        renders = len(track.get("qc_attempts") or []) or 1
        return f"{head}: **quarantined** after {renders} render(s): " + "; ".join(track.get("qc_reasons") or [])
    if track["status"] == "failed":
        return f"{head}: **failed** at stage {track.get('failed_stage')}: {track.get('error')}"
    return f"{head}: passed the gate" + (f" (after {len(track['qc_attempts'])} turned-down render(s))" if track.get("qc_attempts") else "")
