"""The nightly batch's side of feedback: the plan drawn from it, and the night's review queue.

    config, choices = plan_with_feedback(plan, date, catalogue)   # PlanNightlyOperator
    queued = queue_nightly_review(release_id, catalogue)          # when the night's tracks are recorded

A night's plan depends on the feedback at the time it was first made. So that a rerun or a
backfill of a date plans the same release (the line's promise), the snapshot it drew from is
kept (`var/feedback/snapshots/<sha256>.json`) and the choices are recorded in the catalogue
(`plan_choices`); planning the same release again reuses that snapshot.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import delete, select

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import PlanChoice
from songmill.core.paths import var_dir
from songmill.core.store import atomic_write_bytes
from songmill.feedback.experiments import apply_experiments
from songmill.feedback.measures import FeedbackSnapshot, snapshot
from songmill.feedback.review import enqueue_least_certain


def _snapshot_path(sha256: str):
    return var_dir() / "feedback" / "snapshots" / f"{sha256}.json"


def _recorded_snapshot(catalogue: Catalogue, release_id: str) -> FeedbackSnapshot | None:
    with catalogue.session() as s:
        sha = s.scalar(select(PlanChoice.snapshot_sha256).where(PlanChoice.release_id == release_id).limit(1))
    if sha is None or not _snapshot_path(sha).is_file():
        return None
    found = FeedbackSnapshot.from_dict(json.loads(_snapshot_path(sha).read_text()))
    return found if found.sha256 == sha else None  # a snapshot file changed since: plan from today's feedback


def plan_with_feedback(plan, date: dt.date, catalogue: Catalogue) -> tuple[dict, list[dict]]:
    """The night's release config and its choices (with why), experiments applied and recorded."""
    from songmill.engine.planning import plan_night

    release_id = f"{plan.release.id_prefix}-{date.isoformat()}"
    feedback = None
    if plan.feedback.enabled:
        feedback = _recorded_snapshot(catalogue, release_id) or snapshot(catalogue, prior_plays=plan.feedback.prior_plays)
        atomic_write_bytes(_snapshot_path(feedback.sha256), json.dumps(feedback.to_dict(), sort_keys=True).encode())
    config, choices = plan_night(plan, date, feedback)
    for applied in apply_experiments(catalogue, config):
        choices.append(
            {"track": 0, "attribute": f"experiment:{applied['experiment']}", "value": applied["arm"], "why": f"assigned by hash; sets {applied['settings']}"}
        )
    sha = feedback.sha256 if feedback else ""
    with catalogue.session() as s, s.begin():
        s.execute(delete(PlanChoice).where(PlanChoice.release_id == release_id))
        s.add_all(
            PlanChoice(release_id=release_id, track_number=c["track"], attribute=c["attribute"], value=str(c["value"]), why=c["why"], snapshot_sha256=sha)
            for c in choices
        )
    return config, choices


def plan_choices(catalogue: Catalogue, release_id: str) -> list[dict]:
    with catalogue.session() as s:
        rows = s.scalars(select(PlanChoice).where(PlanChoice.release_id == release_id).order_by(PlanChoice.id))
        return [{"track": r.track_number, "attribute": r.attribute, "value": r.value, "why": r.why, "snapshot_sha256": r.snapshot_sha256} for r in rows]


def queue_nightly_review(release_id: str, catalogue: Catalogue, plan=None) -> list[dict]:
    """Put the night's `review_per_night` least certain tracks in the review queue (nightly
    releases only: a release someone typed in was reviewed by them)."""
    from songmill.engine.planning import load_catalogue_plan

    plan = plan or load_catalogue_plan()
    if not release_id.startswith(f"{plan.release.id_prefix}-") or plan.feedback.review_per_night == 0:
        return []
    return enqueue_least_certain(catalogue, release_id, plan.feedback.review_per_night, snapshot(catalogue, prior_plays=plan.feedback.prior_plays))
