"""A release run as steps that a scheduler runs one per task, on any machine (Airflow: operators/).

    plan   = plan_release("config/releases/demo.yaml", out_dir="dist")   # release: validate, record the run
    states = [track_state(plan, t) for t in plan["tracks"]]               # one per track (mapped in Airflow)
    state  = run_stage(state, "form") … run_stage(state, "export")        # one task per stage per track
    report = finish_release_run(states)                                   # release: package, deliver, report

Every value in and out is JSON holding artifact references, never audio; the release spec
itself travels as an artifact in the store. Each step opens the store and the catalogue the
environment names (SONGMILL_STORE, SONGMILL_DATABASE_URL; Airflow's hook sets them from its
Connections). A step rerun with the same inputs returns the stored artifacts (the stage cache),
so a retried task redoes nothing that had finished, and the steps together deliver exactly
what `songmill render` delivers for the same config and seed.

Errors: a SongmillError means bad input or a config (retrying cannot help); a ServiceError (a
SongmillError too) means a dead service (retrying can); anything else is a bug or a crash.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from songmill.errors import SongmillError

log = logging.getLogger("songmill.steps")


def plan_release(config_path: str | Path, *, out_dir: str | Path, seed: int | None = None, runner: str = "airflow") -> dict:
    """Validate the config and the services, record the run in the catalogue; the plan as JSON."""
    from songmill.runner import start_release
    from songmill.store import open_store

    run = start_release(config_path, out_dir=Path(out_dir), seed=seed, runner=runner)
    return run.to_plan(open_store())


def track_state(plan: dict, track: dict) -> dict:
    """A track before its first stage: the plan it belongs to and its (empty) outcome."""
    from songmill.runner import TrackOutcome

    return {"plan": plan, "outcome": TrackOutcome(track["number"], track["title"], track["seed"]).to_dict()}


def track_states(plan: dict) -> list[dict]:
    """One state per track of the plan (what Airflow maps the per-track task group over)."""
    return [track_state(plan, t) for t in plan["tracks"]]


def run_stage(state: dict, stage_name: str) -> dict:
    """Run one stage of one track; returns the track's next state.

    After a stage has stopped the track (the gate quarantined it), later stages pass it on
    unchanged. At `qc`, a render the gate turns down is rendered again with new seeds, from
    `form` through `qc` (config/qc.yaml `regeneration`), in this task: a DAG has no loops.

    Raises the stage's SongmillError (bad input: do not retry) or ServiceError (retry)."""
    from models.registry import ModelRegistry
    from songmill.pipeline import TRACK_STAGES
    from songmill.runner import (ReleaseRun, TrackOutcome, _earlier_prints, advance_track,
                                 regenerate_until_passed)
    from songmill.catalogue import default_url
    from songmill.store import default_store_spec, open_store

    stage = next((s for s in TRACK_STAGES.stages if s.name == stage_name), None)
    if stage is None:
        raise SongmillError(f"stage {stage_name!r} is not registered (stages: {', '.join(TRACK_STAGES.names())})")
    store_spec = default_store_spec()
    store = open_store(store_spec)
    plan, outcome = state["plan"], TrackOutcome.from_dict(state["outcome"])
    if outcome.stopped:
        why = "; ".join(outcome.quarantined) if outcome.quarantined else f"a re-render failed: {outcome.error}"
        log.info("track %d: %s skipped, the track stopped at the gate (%s)", outcome.number, stage_name, why)
        return state
    run = ReleaseRun.from_plan(plan, store)
    job = dataclasses.replace(run.job(outcome.number), seed=outcome.seed)
    earlier = _earlier_prints(job, default_url()) if stage.name == "qc" else []
    advance_track(outcome, stage, job, store=store, registry=ModelRegistry.load(), earlier=earlier, raise_errors=True)
    if stage.name == "qc" and outcome.quarantined:
        through_qc = TRACK_STAGES.stages[:TRACK_STAGES.names().index("qc") + 1]
        outcome = regenerate_until_passed(outcome, job, store_spec, None, earlier, stages=through_qc)
    for result in outcome.results[-1:]:
        log.info("track %d: %s %s in %.1f s (%s)", outcome.number, result.stage, "cached" if result.cached else "ran",
                 result.wall_s, ", ".join(sorted(result.outputs)))
    return {"plan": plan, "outcome": outcome.to_dict()}


def finish_release_run(states: list[dict]) -> dict:
    """Record the tracks, package and deliver, write the QC report and the run report.

    Returns {"report": path, "qc_report": path, "release_id", "delivered": [...], "upc", "status"}."""
    import json

    from rich.console import Console

    from songmill.runner import ReleaseRun, TrackOutcome, finish_release
    from songmill.store import open_store

    if not states:
        raise SongmillError("the release run has no tracks to finish (the plan listed none)")
    plan = states[0]["plan"]
    run = ReleaseRun.from_plan(plan, open_store())
    outcomes = sorted((TrackOutcome.from_dict(s["outcome"]) for s in states), key=lambda o: o.number)
    report_path = finish_release(run, outcomes, console=Console(stderr=True))
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return {"release_id": plan["release_id"], "report": str(report_path), "qc_report": report["qc_report"],
            "status": report["status"], "upc": report["upc"], "delivered": report["delivered"],
            "quarantined": report["quarantined"]}


def fail_release_run(plan: dict, error: str) -> None:
    """Mark the run failed in the catalogue (a task of it failed for good)."""
    from songmill.runner import fail_release

    fail_release(plan["run_id"], error)
