"""The feedback loop's DAGs: listener exports in, refined models out.

* `songmill_feedback_inbox` (every 30 minutes, `config/airflow.yaml` `feedback_schedule`): imports
  every analytics export dropped in the inbox folder (`feedback_inbox`), then moves it to `done/`,
  or to `rejected/` beside a note of each refused row. What it imported steers the next nightly
  plan (`config/catalogue.yaml` `feedback:`).
* `songmill_refine_weekly` (Sundays 04:00 UTC, `refine_schedule`): fine-tunes the melody model on
  the melodies listeners kept, evaluates the candidate against the version in use, registers it
  with its lineage and model card, and promotes it only if it wins on preference without
  regressing any gate figure. `songmill models rollback` undoes a promotion.
"""

from __future__ import annotations

from airflow.sdk import DAG

from operators.dag_builder import START_DATE
from operators.feedback import ImportFeedbackInboxOperator, RefineModelOperator
from operators.settings import load_airflow_settings

_settings = load_airflow_settings()

with DAG(
    "songmill_feedback_inbox",
    schedule=_settings.feedback_schedule,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # two runs would read the same files (harmless: imports are by hash, but wasteful)
    tags=["songmill", "feedback"],
    description=f"import listener exports dropped in {_settings.inbox_path}",
    doc_md=__doc__,
    default_args=_settings.default_args(),
) as songmill_feedback_inbox:
    ImportFeedbackInboxOperator(task_id="import_inbox")

with DAG(
    "songmill_refine_weekly",
    schedule=_settings.refine_schedule,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["songmill", "feedback", "models"],
    description="refine the melody model from what listeners kept; promote only a better one",
    doc_md=__doc__,
    default_args=_settings.default_args(),
) as songmill_refine_weekly:
    RefineModelOperator(task_id="refine_melody_model", model="melody-gru-celtic")
