"""The nightly catalogue batch: `config/catalogue.yaml` → DAG `songmill_nightly_catalogue`.

Every night (the plan's cron, in its `timezone`) it plans a release of `tracks_per_night` tracks whose genres,
moods, tempos, keys, voices and seeds all derive from the run's date, renders the tracks in
parallel through the gate, and delivers the ones that pass as the release `nightly-<date>`.
A rerun or backfill of a date (`airflow backfill create`) plans and delivers the same.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable

from operators.dag_builder import gpu_stage_names, release_dag
from operators.release import PlanNightlyOperator
from songmill.engine.planning import load_catalogue_plan

_plan = load_catalogue_plan()

songmill_nightly_catalogue = release_dag(
    "songmill_nightly_catalogue",
    # the label's clock (config/catalogue.yaml timezone); no schedule: only when triggered
    schedule=CronTriggerTimetable(_plan.schedule, timezone=_plan.timezone) if _plan.schedule else None,
    plan=lambda: PlanNightlyOperator(task_id="plan"),  # the run's logical date, else its trigger time
    gpu_stages=gpu_stage_names(),
    tags=["songmill", "catalogue", "nightly"],
    description=f"{_plan.tracks_per_night} catalogue tracks a night, seeded by the date, delivered to {', '.join(_plan.release.profiles)}",
    doc_md=__doc__,
)
