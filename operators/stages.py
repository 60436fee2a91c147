"""One operator per stage of the track graph (`songmill.engine.track_stages.TRACK_STAGES`).

Each is a thin shell over `songmill.engine.tasks.run_track_stage`: it takes the track's state (the plan and
the artifact references its earlier stages wrote), runs its stage, and returns the next state,
which Airflow keeps as the task's XCom. Queue and pool come from the stage registry (the DAG
builder sets them); a retry with the same inputs returns the stored artifacts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk import BaseOperatorLink
from airflow.sdk.exceptions import AirflowFailException

from operators.hooks import SongmillOperator, engine_errors

# Where a gate task that stopped its track leaves the track's state (it fails, so it has no
# return value); the delivery task reads it to report the track's verdict.
STOPPED_STATE_KEY = "stopped_track_state"


class QCReportLink(BaseOperatorLink):
    """This run's QC report, served by the songmill plugin (plugins/songmill_plugin.py)."""

    name = "QC report"

    def get_link(self, operator, *, ti_key) -> str:
        # Called in the task process right after execute (whether it succeeded or failed); the
        # operator remembers its release and the songmill run it belongs to.
        release_id = getattr(operator, "release_id", None)
        return qc_report_url(release_id, getattr(operator, "songmill_run_id", None)) if release_id else ""


def qc_report_url(release_id: str, run_id: int | None = None) -> str:
    """Where the plugin serves a QC report (a path on the Airflow web server): one run's, which
    stays put, or (no run) the release's latest; behind Airflow's base path (`web_path`)."""
    from operators.settings import web_path

    if run_id is None:
        return web_path(f"/songmill/releases/{release_id}/qc-report.html")
    return web_path(f"/songmill/releases/{release_id}/runs/{run_id}/qc-report.html")


class StageOperator(SongmillOperator):
    """Run one songmill stage for one track.

    :param state: the track's state from the previous stage (or the plan), templated/mapped: a
        `songmill.engine.task_data.TrackState` as JSON; or a list of them, one from each stage
        of a wave that ran side by side (joined by `songmill.engine.tasks.joined_states`).
    """

    stage_name: ClassVar[str]
    template_fields = (*SongmillOperator.template_fields, "state")
    ui_color = "#e8f0fe"

    def __init__(self, *, state: Any, **kwargs):
        super().__init__(**kwargs)
        self.state = state
        self.release_id: str | None = None
        self.songmill_run_id: int | None = None  # the listener records the task try against it

    def execute(self, context) -> dict:
        from songmill.engine.task_data import TrackState
        from songmill.engine.tasks import joined_states, run_track_stage

        if isinstance(self.state, list):
            state = joined_states([TrackState.model_validate(s) for s in self.state])
        else:
            state = TrackState.model_validate(self.state)
        self.release_id, self.songmill_run_id = state.plan.release_id, state.plan.run_id
        self.hook.configure_engine()
        with engine_errors():
            return run_track_stage(state, self.stage_name).model_dump(mode="json")


class FormOperator(StageOperator):
    stage_name = "form"


class LyricsOperator(StageOperator):
    stage_name = "lyrics"


class ComposeOperator(StageOperator):
    stage_name = "compose"


class InstrumentsOperator(StageOperator):
    stage_name = "instruments"


class VocalsOperator(StageOperator):
    stage_name = "vocals"
    ui_color = "#fde8f0"


class MixOperator(StageOperator):
    stage_name = "mix"


class MasterOperator(StageOperator):
    stage_name = "master"


class QCOperator(StageOperator):
    """The gate: measures the track against every delivery profile; re-renders on a failure.

    A track the gate stops (quarantined after its re-renders) fails this task, so the grid shows
    it red, with the verdict as the error; the track's state goes to XCom `stopped_track_state`
    for the delivery task, which delivers without it when the release allows partial delivery."""

    stage_name = "qc"
    ui_color = "#fff4d6"
    operator_extra_links = (QCReportLink(),)

    def execute(self, context) -> dict:
        state = super().execute(context)
        outcome = state["outcome"]
        if outcome.get("quarantined") or outcome.get("error"):
            context["ti"].xcom_push(key=STOPPED_STATE_KEY, value=state)
            raise AirflowFailException(stopped_message(outcome))
        return state


def stopped_message(outcome: dict) -> str:
    """The gate's verdict on a stopped track, a reason per line (read in the log without scrolling)."""
    head = f"track {outcome['number']} ({outcome['title']})"
    if outcome.get("error"):
        return f"{head} was not re-rendered: {outcome['error']}"
    renders = len(outcome.get("qc_attempts") or []) or 1
    reasons = "\n".join(f"  - {reason}" for reason in outcome["quarantined"])
    return f"{head} was quarantined by the gate after {renders} render(s); the release is delivered without it only if allow_partial is true:\n{reasons}"


class ExportOperator(StageOperator):
    stage_name = "export"


STAGE_OPERATORS: dict[str, type[StageOperator]] = {
    cls.stage_name: cls
    for cls in (FormOperator, LyricsOperator, ComposeOperator, InstrumentsOperator, VocalsOperator, MixOperator, MasterOperator, QCOperator, ExportOperator)
}
