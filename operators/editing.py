"""Operators of the song editor's DAG (`songmill_edit`): read the request, render the new version.

The request names a release by id (the catalogue knows the config it was rendered from), a
track, and either English words (`command`) or typed operations (`operations`, the JSON that
`songmill edit --dry-run` prints). `ParseEditOperator` turns it into typed operations against the
track as it stands, so a request that cannot apply fails at once with its one sentence;
`RenderEditOperator` renders the version: only the stages whose inputs changed run (the stage
cache), and its return value names the version, the stages recomputed and the edit report.
`DeliverEditOperator`, when the run asks for it, delivers the release again with the new
version (its own ISRC when it is a new recording; the DDEX message says what it edits),
encoding its delivery files then: a version is rendered up to the gate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from operators.hooks import SongmillOperator, engine_errors

log = logging.getLogger(__name__)

FAILURE_XCOM = "error"  # the XCom key under which a failed edit task leaves its one sentence


@contextmanager
def failure_said(context) -> Iterator[None]:  # noqa: ANN001 - Airflow's Context
    """`engine_errors`, and a failure's one sentence also left as the task's XCom `error`: the
    editor page shows it beside the run (a task's log is Airflow's page, under a traceback)."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        with engine_errors():
            yield
    except AirflowFailException as err:
        try:
            context["ti"].xcom_push(key=FAILURE_XCOM, value=str(err))
        except Exception as unsaid:  # only what the page shows: the task still fails as it should, not retried as a crash
            log.warning("the failure's sentence was not left for the editor page (%s: %s)", type(unsaid).__name__, unsaid)
        raise


class ParseEditOperator(SongmillOperator):
    """The request as typed operations (a list of JSON objects, passed to the render task)."""

    template_fields = (*SongmillOperator.template_fields, "release", "track", "command", "operations")
    ui_color = "#eef6e8"

    def __init__(self, *, release: str, track: Any, command: str | None = None, operations: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.release, self.track, self.command, self.operations = release, track, command, operations

    def execute(self, context) -> dict:
        from songmill.core.errors import SongmillError
        from songmill.editor.operations import operations_from_json, operations_to_json
        from songmill.engine import editing

        self.hook.configure_engine()
        with failure_said(context):
            config = editing.config_of_release(self.release)
            command = (self.command or "").strip() or None
            given = self.operations
            if isinstance(given, str):  # templated: the Params' list as JSON
                given = json.loads(given) if given.strip() not in ("", "None") else None
            given = given or None
            if command is not None and given is not None:
                raise SongmillError("give only one of command (English words) or operations (typed JSON) for the edit")
            if given is None:
                command = command or ""  # none given: the parser's own sentence for an empty command, with commands that work
            # checked against the track exactly as the edit will be: a request that cannot apply fails here
            parsed = editing.check_edit(config, int(self.track), command=command, operations=operations_from_json(given) if given is not None else None)
            self.log.info("operations: %s", "; ".join(op.describe() for op in parsed))
            return {"config": config, "track": int(self.track), "command": command, "operations": operations_to_json(parsed)}


class RenderEditOperator(SongmillOperator):
    """Render the version the parsed request makes; returns its number, the stages recomputed and its report."""

    template_fields = (*SongmillOperator.template_fields, "author", "reason")
    ui_color = "#e8eef6"

    def __init__(self, *, request_task: str = "parse", author: str | None = None, reason: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.request_task, self.author, self.reason = request_task, author, reason

    def execute(self, context) -> dict:
        from operators.settings import load_airflow_settings
        from songmill.editor.operations import operations_from_json
        from songmill.engine import editing

        request = context["ti"].xcom_pull(task_ids=self.request_task)
        self.hook.configure_engine()
        with failure_said(context):
            result = editing.edit(
                request["config"],
                track=request["track"],
                operations=operations_from_json(request["operations"]),
                command=request["command"],  # the words, kept in the history beside their operations
                out_dir=load_airflow_settings().out_path,
                author=self.author or getattr(context.get("dag_run"), "triggering_user_name", None) or "airflow",  # who pressed apply
                reason=self.reason or None,
                audition=True,  # the editor page plays it while the master and gate finish
            )
        self.log.info("version %d: recomputed %s; cached %s", result.version, ", ".join(result.recomputed) or "nothing", ", ".join(result.cached))
        return {
            "version": result.version,
            "recomputed": result.recomputed,
            "cached": result.cached,
            "report": str(result.report_path),
            "audition": str(result.audition) if result.audition else None,
        }


class DeliverEditOperator(SongmillOperator):
    """Deliver the release again with each track's current version, when `deliver` is true
    (skipped otherwise); returns each track's version and ISRC and the delivery report."""

    template_fields = (*SongmillOperator.template_fields, "deliver")
    ui_color = "#f6eee8"

    def __init__(self, *, deliver: Any = False, request_task: str = "parse", **kwargs):
        super().__init__(**kwargs)
        self.deliver, self.request_task = deliver, request_task

    def execute(self, context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from operators.settings import load_airflow_settings
        from songmill.engine.edit_delivery import deliver_current

        if str(self.deliver).strip().lower() not in ("true", "1", "yes"):  # templated from the Params: "True" / "False"
            raise AirflowSkipException("the run did not ask to deliver (Param deliver is false); the version is rendered and kept")
        request = context["ti"].xcom_pull(task_ids=self.request_task)
        self.hook.configure_engine()
        with failure_said(context):
            result = deliver_current(request["config"], out_dir=load_airflow_settings().out_path)
        for row in result["tracks"]:
            self.log.info(
                "track %d: version %s, ISRC %s (edited from %s)", row["number"], row["version"], row["isrc"] or "the track's", row["edited_from_isrc"]
            )
        return {"tracks": result["tracks"], "deliveries": result["deliveries"], "report": result["report_path"]}
