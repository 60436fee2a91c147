"""The shape every songmill DAG shares, from the stage registry:

    plan ─▶ track (task group, mapped over the tracks): form ▶ lyrics ▶ … ▶ qc ▶ export ─▶ package_and_deliver
       └──────────────────────────────────────────────────────────────────────────────▶ close_run (teardown)

A track the gate stops fails its `qc` task (red in the grid) and skips its export; the delivery
task still runs once every track has ended, reports each track's verdict in the run's note, and
delivers the rest when the release allows partial delivery.

Building it reads the registry and the settings only: no model, no audio, nothing slow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from airflow.sdk import DAG, BaseOperator, Param, task_group

from operators.release import REDELIVER_PARAM, CloseRunOperator, PackageAndDeliverOperator
from operators.settings import AirflowSettings, load_airflow_settings
from operators.stages import STAGE_OPERATORS

START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def release_dag(
    dag_id: str,
    *,
    plan: Callable[[], BaseOperator],
    gpu_stages: set[str],
    schedule=None,
    tags: list[str],
    description: str,
    doc_md: str | None = None,
    params: dict | None = None,
    settings: AirflowSettings | None = None,
    catchup: bool = False,
) -> DAG:
    """A DAG that plans a release with `plan()` (an operator, created inside the DAG), renders its
    tracks stage by stage, and delivers it. `gpu_stages` go to the gpu queue and pool."""
    from songmill.engine.track_stages import TRACK_STAGES

    settings = settings or load_airflow_settings()
    gpu_routing = settings.gpu_routing()  # read once: the pod template is parsed here, not per task
    missing = [s.name for s in TRACK_STAGES.stages if s.name not in STAGE_OPERATORS]
    if missing:
        raise RuntimeError(f"stages {missing} have no operator in operators/stages.py")
    with DAG(
        dag_id,
        schedule=schedule,
        start_date=START_DATE,
        catchup=catchup,
        tags=tags,
        description=description,
        doc_md=doc_md,
        params={**(params or {}), **run_params()},
        default_args=settings.default_args(),
        max_active_runs=4,
        render_template_as_native_obj=False,
    ) as dag:
        planned = plan()

        @task_group(group_id="track", tooltip="every stage of one track (mapped: one copy per track)")
        def track(state):
            for wave in task_waves():
                outputs = []
                for stage in wave:
                    routing = gpu_routing if stage.name in gpu_stages else {}
                    outputs.append(STAGE_OPERATORS[stage.name](task_id=stage.name, state=state, doc=stage.description, **routing).output)
                state = outputs[0] if len(outputs) == 1 else outputs  # the next task joins a wave's states
            return state

        finals = track.expand(state=planned.output)
        deliver = PackageAndDeliverOperator(task_id="package_and_deliver", plan_task_id=planned.task_id, track_group="track")
        finals >> deliver
        close = CloseRunOperator(task_id="close_run", states=planned.output, deliver_task_id=deliver.task_id)
        deliver >> close.as_teardown(setups=planned)
    return dag


def task_waves() -> list[list]:
    """The track's stages as the DAG runs them: stages that read none of each other's outputs
    side by side (the instruments beside the vocals, `StageGraph.waves`), up to the gate; the
    stages after the gate one by one, because a render the gate turns down is rendered again
    with a new seed inside the gate's task, and what follows must read that render."""
    from songmill.engine.track_stages import TRACK_STAGES

    through_gate = TRACK_STAGES.through("qc")
    return TRACK_STAGES.waves(through_gate) + [[stage] for stage in TRACK_STAGES.stages[len(through_gate) :]]


def run_params() -> dict[str, Param]:
    """The Params every songmill DAG has besides its own: how the run may deliver."""
    return {
        REDELIVER_PARAM: Param(
            False,
            type="boolean",
            title="Replace an earlier delivery",
            section="Delivery",
            description="Deliver even if this release was delivered before with other audio (the catalogue records what replaced what); "
            "off: such a run renders and reports but does not deliver",
        )
    }


def seed_param(*, title: str, description: str, **extra) -> Param:
    """A seed Param: a 31-bit number, or empty."""
    return Param(None, type=["null", "integer"], minimum=0, maximum=2**31 - 1, title=title, description=description, **extra)


def gpu_stage_names(spec=None) -> set[str]:
    """Stages that run neural backends: the registry's gpu stages, and the ones a config's
    tracks route to the GPU (a diffusion model for the instruments, an LM for the lyrics)."""
    from songmill.engine.stage import TrackJob
    from songmill.engine.track_stages import TRACK_STAGES

    names = {s.name for s in TRACK_STAGES.stages if s.queue == "gpu"}
    if spec is not None:
        jobs = [TrackJob(spec, i, 0, False) for i in range(len(spec.tracks))]
        names |= {s.name for s in TRACK_STAGES.stages for job in jobs if s.queue_for(job) == "gpu"}
    return names
