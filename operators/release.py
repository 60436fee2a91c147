"""The release-level operators: plan a run, package and deliver it, close it if it failed.

The three planners differ only in where the release config comes from: a file in
config/releases/, the nightly catalogue plan for the run's date, or the manual DAG's trigger
form. The last two write the config they planned under `<out_dir>/_configs/`, so each run can be
rendered again with `songmill render`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, AssetAlias, TriggerRule
from airflow.sdk.exceptions import AirflowFailException

from operators.hooks import SongmillOperator, engine_errors
from operators.settings import load_airflow_settings
from operators.stages import STOPPED_STATE_KEY, QCReportLink, qc_report_url

RUN_NOTE_KEY = "run_note"  # XCom of the delivery task: the run's note (the plugin puts it on the DAG run)
REDELIVER_PARAM = "redeliver"  # every songmill DAG's Param: may replace a delivery whose audio differs

RELEASES_ASSET = Asset(name="songmill_releases", uri="songmill://releases")  # every published release
RELEASE_ALIAS = AssetAlias(name="songmill_release")  # resolves to songmill://releases/<release-id>


def release_asset(release_id: str) -> Asset:
    """The Asset a published release updates (downstream DAGs, e.g. a distributor upload, schedule on it)."""
    return Asset(name=f"songmill_release_{release_id}", uri=f"songmill://releases/{release_id}")


class _PlanOperator(SongmillOperator):
    """Plans a release run; returns one state per track (the per-track task group maps over them)."""

    ui_color = "#e6f4ea"

    def execute(self, context) -> list[dict]:
        from songmill.engine.tasks import plan_release, track_states

        settings = load_airflow_settings()
        self.hook.configure_engine()
        with engine_errors():
            config_path = self.release_config(context, settings.out_path)
            redeliver = bool(context["params"].get(REDELIVER_PARAM, False))
            plan = plan_release(config_path, out_dir=settings.out_path, seed=self.base_seed(context), redeliver=redeliver)
        self.release_id, self.songmill_run_id = plan.release_id, plan.run_id
        self.log.info("planned %s: %d track(s), run %s, config %s", plan.release_id, len(plan.tracks), plan.run_id, config_path)
        return [state.model_dump(mode="json") for state in track_states(plan)]

    def release_config(self, context, out_dir: Path) -> Path:
        """The config this run renders: each planner says where it comes from."""
        raise TypeError(f"{type(self).__name__} must define release_config(context, out_dir)")

    def base_seed(self, context) -> int | None:
        return None


class PlanReleaseOperator(_PlanOperator):
    """Plans the release of a config file.

    :param config_path: the release YAML (templated).
    :param seed: a base seed that re-seeds every track, or None for the config's seeds (templated).
    """

    template_fields = (*SongmillOperator.template_fields, "config_path", "seed")

    def __init__(self, *, config_path: str, seed: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.config_path, self.seed = config_path, seed

    def release_config(self, context, out_dir: Path) -> Path:
        return Path(self.config_path)

    def base_seed(self, context) -> int | None:
        return None if self.seed in (None, "", "None") else int(self.seed)


class PlanNightlyOperator(_PlanOperator):
    """Plans the night's catalogue release from config/catalogue.yaml and the run's date.

    :param date: the night (ISO date, templated); None: the run's logical date, or, for a run
        triggered without one (Airflow 3 allows that: the UI's cleared field, the REST API's
        `"logical_date": null`), the moment it was triggered (`run_after`).
    """

    template_fields = (*SongmillOperator.template_fields, "date")

    def __init__(self, *, date: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.date = date

    def night(self, context, timezone: str | None = None) -> dt.date:
        """The night to plan; `timezone` is the plan's (read from config/catalogue.yaml when not given)."""
        if self.date not in (None, "", "None"):
            return dt.date.fromisoformat(str(self.date))
        from songmill.engine.planning import load_catalogue_plan, night_of

        run = context["dag_run"]
        return night_of(run.logical_date or run.run_after, timezone or load_catalogue_plan().timezone)

    def release_config(self, context, out_dir: Path) -> Path:
        from songmill.catalogue import Catalogue
        from songmill.core.store import atomic_write_bytes
        from songmill.engine.planning import load_catalogue_plan, write_release_config
        from songmill.feedback.nightly import plan_with_feedback

        catalogue = Catalogue.open()  # configure_engine has pointed it at the catalogue connection
        try:
            plan = load_catalogue_plan()
            config, choices = plan_with_feedback(plan, self.night(context, plan.timezone), catalogue)
        finally:
            catalogue.close()
        path = write_release_config(config, out_dir / "_configs" / f"{config['release']['id']}.yaml")
        atomic_write_bytes(path.with_suffix(".choices.json"), json.dumps(choices, indent=1).encode())  # why each choice
        return path


class PlanFromFormOperator(_PlanOperator):
    """Plans a one-track release from the manual DAG's trigger form (the run's Params)."""

    def release_config(self, context, out_dir: Path) -> Path:
        from songmill.engine.planning import release_from_form, write_release_config

        form = {key: value for key, value in context["params"].items() if key != REDELIVER_PARAM}
        config = release_from_form(form)
        run_id = "".join(c if c.isalnum() else "-" for c in str(context["run_id"]))[:60]
        return write_release_config(config, out_dir / "_configs" / f"{config['release']['id']}-{run_id}.yaml")

    def base_seed(self, context) -> int | None:
        return None  # a seed in the form goes into the track's config (release_from_form)


class PackageAndDeliverOperator(SongmillOperator):
    """Records the tracks, packages and delivers the release, writes the QC and run reports, and
    updates the release's Asset. It runs when every track's tasks have ended, however they ended
    (trigger rule all_done): a track the gate stopped, or whose stage failed, is
    reported with its verdict and left out when the release allows partial delivery, as the
    embedded runner does. The run's note (each track's verdict and the run's QC report) goes to
    XCom `run_note`, which the plugin sets on the DAG run when it ends.

    :param plan_task_id: the planning task; its output is one state per track (each track's task
        group is mapped over them). Pulled, not passed, so the plan, a setup task, is not this
        task's direct upstream (Airflow requires all_success there).
    :param track_group: the id of the per-track task group (its tasks are `<group>.<stage>`).
    """

    ui_color = "#e6f4ea"
    operator_extra_links = (QCReportLink(),)

    def __init__(self, *, plan_task_id: str = "plan", track_group: str = "track", **kwargs):
        super().__init__(outlets=[RELEASE_ALIAS], trigger_rule=TriggerRule.ALL_DONE, **kwargs)
        self.plan_task_id, self.track_group = plan_task_id, track_group
        self.release_id: str | None = None

    def execute(self, context) -> dict:
        from songmill.engine.tasks import finish_release_run

        planned = _as_states(context["ti"].xcom_pull(task_ids=self.plan_task_id))
        if not planned:
            raise AirflowFailException(f"the {self.plan_task_id} task failed or listed no tracks, so nothing was rendered or delivered (see its log)")
        self.hook.configure_engine()
        self.release_id, self.songmill_run_id = planned[0].plan.release_id, planned[0].plan.run_id
        with engine_errors():
            states = [self._final_state(context, index, state) for index, state in enumerate(planned)]
        try:
            with engine_errors():
                result = finish_release_run(states)
        except AirflowFailException:
            self._push_note(context, planned[0].plan)
            raise
        self._push_note(context, planned[0].plan)
        self.log.info("%s %s: %d file(s) delivered; run report %s", result.release_id, result.status, len(result.delivered), result.report)
        if result.delivered:  # published: downstream DAGs scheduled on the Asset start
            extra = {"release_id": result.release_id, "upc": result.upc, "report": result.report, "files": len(result.delivered)}
            events = context["outlet_events"][RELEASE_ALIAS]
            events.add(release_asset(result.release_id), extra=extra)
            events.add(RELEASES_ASSET, extra=extra)
        return result.model_dump(mode="json")

    def _final_state(self, context, index: int, planned):
        """A track's last state: its last stage's output, the state its gate task stopped with,
        or (a stage failed for good) the state before that stage, marked failed at it."""
        import dataclasses

        from songmill.engine.task_data import TrackState
        from songmill.engine.tasks import joined_states
        from songmill.engine.track_stages import TRACK_STAGES

        ti = context["ti"]
        stages = TRACK_STAGES.names()
        final = ti.xcom_pull(task_ids=f"{self.track_group}.{stages[-1]}", map_indexes=index)
        if final is not None:  # the usual case: one state read, not one per stage
            return TrackState.model_validate(final)
        stopped = ti.xcom_pull(task_ids=f"{self.track_group}.qc", map_indexes=index, key=STOPPED_STATE_KEY)
        if stopped is not None:
            return TrackState.model_validate(stopped)
        outputs = ti.xcom_pull(task_ids=[f"{self.track_group}.{name}" for name in stages[:-1]], map_indexes=[index])
        # the first stage with no output failed (a stage beside it, in the same wave, may have finished)
        failed = next((i for i, out in enumerate(outputs) if out is None), len(outputs))
        # a wave's tasks each hold only their own branch (vocals lacks the instruments): join them
        done = [TrackState.model_validate(out) for out in outputs[:failed] if out is not None]
        last = joined_states(done) if done else planned
        stage = stages[failed]
        error = self._task_error(context, f"{self.track_group}.{stage}", index) or "its task failed (see the task's log)"
        outcome = dataclasses.replace(last.outcome, failed_stage=stage, error=error)
        return TrackState(plan=last.plan, outcome=outcome)

    @staticmethod
    def _task_error(context, task_id: str, map_index: int) -> str | None:
        """The error the plugin's listener recorded for a task's last try, if any."""
        from songmill.catalogue import Catalogue

        catalogue = Catalogue.open()
        try:
            tries = [t for t in catalogue.task_tries(context["run_id"]) if t["task_id"] == task_id and t["map_index"] == map_index and t["error"]]
        finally:
            catalogue.close()
        return tries[-1]["error"].strip().splitlines()[0] if tries else None

    def _push_note(self, context, plan) -> None:
        from songmill.engine.tasks import run_note

        note = run_note(plan, qc_report_url(plan.release_id, plan.run_id))
        if note:
            context["ti"].xcom_push(key=RUN_NOTE_KEY, value=note)


class CloseRunOperator(SongmillOperator):
    """Teardown: when the run ended before the delivery task could finish it (the plan failed, or
    the delivery task crashed), the catalogue marks it failed. Nothing was delivered: delivery is
    atomic.

    :param states: the planner's output (the run's plan travels in every state).
    """

    template_fields = (*SongmillOperator.template_fields, "states")
    ui_color = "#fce8e6"

    def __init__(self, *, states: Any, deliver_task_id: str, **kwargs):
        super().__init__(**kwargs)
        self.states, self.deliver_task_id = states, deliver_task_id

    def execute(self, context) -> None:
        from songmill.engine.tasks import fail_release_run

        ti = context["ti"]
        if ti.xcom_pull(task_ids=self.deliver_task_id) or ti.xcom_pull(task_ids=self.deliver_task_id, key=RUN_NOTE_KEY):
            return  # the delivery task finished the run and recorded it (delivered or not)
        states = _as_states(self.states)
        if not states:
            return
        self.hook.configure_engine()
        with engine_errors():
            fail_release_run(states[0].plan, f"Airflow run {context['run_id']} stopped before delivery; see its failed task's log")
        self.log.info("run %s recorded as failed in the catalogue", states[0].plan.run_id)


def _as_states(states) -> list:
    """XCom of mapped tasks (a sequence of states, or the state itself when one track was
    mapped) as typed `TrackState`s."""
    from songmill.engine.task_data import TrackState

    if states is None:
        return []
    return [TrackState.model_validate(s) for s in ([states] if isinstance(states, dict) else states)]
