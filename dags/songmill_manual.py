"""A release from the Airflow UI: DAG `songmill_manual_release`, triggered with a form.

"Trigger DAG" shows the Params (operators/form.py) as a form: enums as drop-downs with display
names, the lyrics as a multi-line box. What is submitted — through the form or the REST API — is
checked before a run starts (the plugin's trigger guard): every field against its schema, unknown
keys named with the field meant, and the release the form describes checked like any config
file; every problem at once, one sentence each, answered with 400.
"""

from __future__ import annotations

from operators.dag_builder import gpu_stage_names, release_dag
from operators.form import MANUAL_DAG_ID, form_params
from operators.release import PlanFromFormOperator

songmill_manual_release = release_dag(
    MANUAL_DAG_ID,
    schedule=None,
    plan=lambda: PlanFromFormOperator(task_id="plan"),
    params=form_params(),
    gpu_stages=gpu_stage_names(),
    tags=["songmill", "manual"],
    description="a one-track release from the trigger form",
    doc_md=__doc__,
)
