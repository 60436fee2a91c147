"""The songmill Airflow plugin.

- a **listener** that records every task try (state, worker host, queue, error) in the songmill
  catalogue, beside the run it belongs to (`orchestrator_tasks`);
- a **listener** in the scheduler that puts the run's verdicts on the DAG run as its note when
  the run ends: delivered or not (and why), each track's verdict with the gate's reasons, and a
  link to the run's QC report (the delivery task writes the note to XCom `run_note`);
- the **"QC report" extra link** on the `qc` and `package_and_deliver` tasks, and a small web app
  that serves the reports behind Airflow's login (a browser without one is sent to the login
  page and back): `/songmill/releases/<release-id>/runs/<run-id>/qc-report.html` (one run's,
  which stays put; the links point here) and `/songmill/releases/<release-id>/qc-report.html`
  (the release's latest), with `run-report.json` beside each;
- a **trigger guard** in front of Airflow's REST API: a run of the manual DAG — from the UI's
  form or a REST call — is refused with 400 before it starts when its values break the form's
  rules (operators/form.py `form_problems`), every problem named at once, one sentence each;
- **`POST /songmill/verify?name=<file name>`** (behind the same login): the body is an audio file,
  the answer `songmill verify --json`'s — ours, not ours (both 200) or unreadable (422);
- **listener feedback** (plugins/songmill_feedback_routes.py): the review queue page
  `/songmill/review`, the feedback report `/songmill/feedback/report.html`, and
  `POST /songmill/api/feedback/verdicts` (ratings, approve/reject, by the logged-in user);
- **macros** for release paths: `{{ macros.songmill.release_dir("demo-single") }}`,
  `run_report(...)`, `qc_report_url(...)`, `out_dir()`.

The Asset a published release updates is declared by the delivery operator
(operators/release.py): `songmill://releases` and `songmill://releases/<release-id>`.
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations at runtime,
# and they name classes imported inside `_reports_app` (kept out of task processes).
import json
import logging
import re
from pathlib import Path

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from operators.form import MANUAL_DAG_ID
from operators.release import RUN_NOTE_KEY
from operators.stages import QCReportLink, qc_report_url

log = logging.getLogger("songmill.plugin")


def out_dir() -> str:
    """Where the Airflow runs write reports and local deliveries (config/airflow.yaml `out_dir`)."""
    from operators.settings import load_airflow_settings

    return str(load_airflow_settings().out_path)


def release_dir(release_id: str) -> str:
    return str(Path(out_dir()) / release_id)


def run_report(release_id: str) -> str:
    return str(Path(release_dir(release_id)) / "run-report.json")


class TaskRecorder:
    """Records each task try in the catalogue. Runs in the task's process, after the task; a
    catalogue it cannot reach costs a warning in the log, never the task."""

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        self._record(task_instance, "success", None)

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error):
        state = str(getattr(task_instance, "state", None) or "failed").rsplit(".", 1)[-1].lower()
        self._record(task_instance, state if state in ("failed", "up_for_retry") else "failed", error)

    @hookimpl
    def on_task_instance_skipped(self, previous_state, task_instance):
        self._record(task_instance, "skipped", None)

    def _record(self, ti, state: str, error) -> None:
        if not str(getattr(ti, "dag_id", "")).startswith("songmill_"):
            return
        try:
            from operators.hooks import hook_from_settings
            from operators.settings import load_airflow_settings
            from songmill.catalogue import Catalogue

            hook_from_settings(load_airflow_settings()).configure_engine()
            task = getattr(ti, "task", None)
            catalogue = Catalogue.open()
            try:
                catalogue.record_task(
                    dag_id=ti.dag_id,
                    dag_run_id=ti.run_id,
                    task_id=ti.task_id,
                    map_index=-1 if getattr(ti, "map_index", None) is None else ti.map_index,  # 0 is a mapped track
                    try_number=getattr(ti, "try_number", 0) or 0,
                    state=state,
                    hostname=getattr(ti, "hostname", None),
                    queue=getattr(task, "queue", None),
                    run_id=getattr(task, "songmill_run_id", None),
                    release_id=getattr(task, "release_id", None),
                    error=str(error)[:2000] if error else None,
                )
            finally:
                catalogue.close()
        except Exception as err:  # noqa: BLE001 - the record must never fail the task
            log.warning("songmill: could not record task %s in the catalogue: %s", getattr(ti, "task_id", "?"), err)


class RunNotes:
    """Puts the delivery task's note on the DAG run when the run ends. Runs in the scheduler,
    inside its session (a second connection could wait on the scheduler's own row lock); a note
    a person wrote stays below ours. A failure costs a warning, never the run."""

    @hookimpl
    def on_dag_run_success(self, dag_run, msg):
        self._note(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg):
        self._note(dag_run)

    def _note(self, dag_run) -> None:
        if not str(getattr(dag_run, "dag_id", "")).startswith("songmill_"):
            return
        try:
            from sqlalchemy.orm import object_session

            session = object_session(dag_run)
            if session is not None:  # the scheduler's
                self._set_note(session, dag_run)
                return
            from airflow.models.dagrun import DagRun
            from airflow.utils.session import create_session

            with create_session() as own:  # `airflow dags test` hands over a detached run
                attached = own.query(DagRun).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).one()
                self._set_note(own, attached)
        except Exception as err:  # noqa: BLE001 - a note must never fail the run
            log.warning("songmill: could not set the note of run %s: %s", getattr(dag_run, "run_id", "?"), err)

    @staticmethod
    def _set_note(session, dag_run) -> None:
        from airflow.models.xcom import XComModel

        query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids="package_and_deliver", key=RUN_NOTE_KEY)
        row = session.scalars(query).first()
        if row is None:
            return
        ours = str(XComModel.deserialize_value(row))
        theirs = dag_run.note or ""
        dag_run.note = ours if not theirs or ours in theirs else f"{ours}\n\n---\n{theirs}"


async def _require_login(request, *, changes: str | None = None, reads: str | None = None):
    """Airflow's own check (its JWT, from the Authorization header or the UI's cookie), then the
    auth manager's permission: reading a report, the review queue or the feedback report needs
    read access to DAG runs; `reads` names the one DAG whose run a request reads (the run page's
    QC tab), which needs read access to that DAG's runs; `changes` names the DAG whose runs a
    request changes (a verdict withholds a track from its release's next delivery), which needs
    edit access to it. Imported
    when a page is asked for, so task processes, which load this plugin too, do not pay for it.
    A browser asking for a page without a login is sent to the login page, and back after it.
    Returns the user."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import COOKIE_NAME_JWT_TOKEN, resolve_user_from_token
    from fastapi import HTTPException

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    try:
        user = await resolve_user_from_token(token)
    except HTTPException:
        if request.method != "GET" or header:
            raise  # an API client gets 401/403
        raise HTTPException(status_code=307, detail="log in first", headers={"Location": get_auth_manager().get_url_login(next_url=str(request.url))}) from None
    dag = changes or reads
    allowed = get_auth_manager().is_authorized_dag(
        method="PUT" if changes else "GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag) if dag else None, user=user
    )
    if not allowed:
        what = f"change runs of {changes}" if changes else f"read runs of {reads}" if reads else "read DAG runs"
        raise HTTPException(status_code=403, detail=f"{user.get_name()} may not {what}; ask an Airflow admin for a role that may")
    return user


class TriggerGuard:
    """ASGI middleware before Airflow's API: checks a new run of the manual DAG (its `conf`)
    against the form's rules and answers 400 with every problem, or passes the request on
    untouched. Airflow alone would name only the first bad field, after a dump of the schema,
    and would start a run for misspelled or contradictory values."""

    TRIGGER = re.compile(r"/api/v2/dags/(?P<dag>[^/]+)/dagRuns/?$")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        match = self.TRIGGER.search(scope.get("path", "")) if scope["type"] == "http" and scope.get("method") == "POST" else None
        if match is None or match["dag"] != MANUAL_DAG_ID:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        problems = trigger_problems(body)
        if problems:
            from starlette.responses import JSONResponse

            detail = f"{MANUAL_DAG_ID} was not triggered: " + "; ".join(problems)
            return await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def trigger_problems(body: bytes) -> list[str]:
    """What is wrong with a trigger request's `conf` for the manual DAG (the form's rules)."""
    from operators.form import form_problems

    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return []  # not JSON: Airflow answers that itself
    conf = request.get("conf") if isinstance(request, dict) else None
    return form_problems(conf or {})


MAX_VERIFY_BYTES = 512 * 1024 * 1024  # a long WAV master; larger uploads are refused (413)


def verify_upload(data: bytes, name: str) -> dict:
    """What `songmill verify` says of an uploaded file (written to a temporary file of that name's
    suffix, so ffmpeg and c2pa know its container)."""
    import tempfile

    from operators.hooks import hook_from_settings
    from operators.settings import load_airflow_settings
    from songmill.engine.verify import verify_path

    hook_from_settings(load_airflow_settings()).configure_engine()  # the catalogue the tasks write to
    suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in (".wav", ".flac", ".mp3", ".m4a", ".opus", ".ogg") else ".bin"
    with tempfile.TemporaryDirectory(prefix="songmill-verify-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        result = verify_path(path)
    return {**result.to_dict(), "file": name}


def _songmill_run_of(dag_id: str, dag_run_id: str) -> tuple[str, int] | None:
    """(release id, songmill run id) an Airflow run made, from the task tries the listener
    recorded (TaskRecorder), or None before any."""
    from songmill.catalogue import Catalogue

    catalogue = Catalogue.open()
    try:
        tries = [t for t in catalogue.task_tries(dag_run_id) if t["dag_id"] == dag_id and t["run_id"] is not None and t["release_id"]]
    finally:
        catalogue.close()
    return (tries[-1]["release_id"], tries[-1]["run_id"]) if tries else None


def _reports_app():
    """Serves the run and QC reports under Airflow's login (the plugin's FastAPI app)."""
    from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse

    from songmill.core.paths import safe_name

    async def require_login(request: Request) -> None:
        await _require_login(request)

    # every page behind read access to DAG runs, but the run page's QC tab, which checks read
    # access to its own DAG's runs (a user of per-DAG roles may read no other DAG's)
    app = FastAPI(title="songmill reports")
    pages = APIRouter(dependencies=[Depends(require_login)])
    run_tab = APIRouter()

    def _file(release_id: str, name: str, run_id: int | None = None) -> FileResponse:
        from songmill.core.paths import run_folder

        if safe_name(release_id) != release_id:
            raise HTTPException(status_code=404, detail=f"no release {release_id!r}")
        folder = Path(release_dir(release_id))
        path = (run_folder(folder, run_id) if run_id is not None else folder) / name
        if path.is_file() and not path.resolve().is_relative_to(Path(out_dir()).resolve()):
            raise HTTPException(status_code=404, detail=f"no {name} of {release_id}")  # a link out of the output folder is never followed
        if not path.is_file():
            of = f"run {run_id} of {release_id}" if run_id is not None else release_id
            raise HTTPException(
                status_code=404, detail=f"{name} of {of} is not there yet (the package_and_deliver task writes it when the run's tracks are done)"
            )
        return FileResponse(path)

    @pages.get("/releases/{release_id}/qc-report.html")
    def qc_report(release_id: str):
        return _file(release_id, "qc-report.html")

    @pages.get("/releases/{release_id}/run-report.json")
    def report(release_id: str):
        return _file(release_id, "run-report.json")

    @pages.get("/releases/{release_id}/runs/{run_id}/qc-report.html")
    def run_qc_report(release_id: str, run_id: int):
        return _file(release_id, "qc-report.html", run_id)

    @run_tab.get("/airflow-runs/{dag_id}/{dag_run_id:path}/qc-report")  # a run id may hold a slash (allowed_run_id_pattern)
    async def airflow_run_qc_report(request: Request, dag_id: str, dag_run_id: str):
        """The QC report of the songmill run an Airflow run made (the run page's "QC report" tab),
        for a user who may read that DAG's runs."""
        from fastapi.responses import RedirectResponse
        from starlette.concurrency import run_in_threadpool

        await _require_login(request, reads=dag_id)
        made = await run_in_threadpool(_songmill_run_of, dag_id, dag_run_id)
        if made is None:
            raise HTTPException(
                status_code=404,
                detail=f"the Airflow run {dag_run_id} of {dag_id} has made no songmill run (yet): its QC report comes once its first task has started it",
            )
        release_id, run_id = made
        return RedirectResponse(qc_report_url(release_id, run_id), status_code=307)

    @pages.get("/releases/{release_id}/runs/{run_id}/run-report.json")
    def run_report_file(release_id: str, run_id: int):
        return _file(release_id, "run-report.json", run_id)

    @pages.post("/verify")
    async def verify(request: Request, name: str = "upload.bin"):
        from fastapi.responses import JSONResponse

        data = await request.body()
        if len(data) > MAX_VERIFY_BYTES:
            raise HTTPException(
                status_code=413, detail=f"{name} is larger than {MAX_VERIFY_BYTES // 2**20} MiB; verify it with `songmill verify` on the machine"
            )
        found = verify_upload(data, name)
        return JSONResponse(found, status_code=422 if found["verdict"] == "unreadable" else 200)

    async def current_user(request: Request, changes: str | None = None) -> str:
        return (await _require_login(request, changes=changes)).get_name()

    try:
        from plugins.songmill_editor_routes import add_editor_routes
        from plugins.songmill_feedback_routes import add_feedback_routes
    except ImportError:  # Airflow imports plugins with the plugins folder itself on sys.path
        from songmill_editor_routes import add_editor_routes
        from songmill_feedback_routes import add_feedback_routes
    add_feedback_routes(pages, current_user)
    add_editor_routes(pages, current_user)
    app.include_router(pages)
    app.include_router(run_tab)
    return app


class SongmillPlugin(AirflowPlugin):
    name = "songmill"
    listeners = [TaskRecorder(), RunNotes()]
    operator_extra_links = [QCReportLink()]
    # a "QC report" tab on every run's page: Airflow 3.3's task pages do not draw operator links
    # (its task details answer no extra links), so the tab is where a run's report is found
    external_views = [
        {"name": "QC report", "href": "songmill/airflow-runs/{DAG_ID}/{RUN_ID}/qc-report", "destination": "dag_run", "url_route": "songmill-qc-report"}
    ]
    macros = [out_dir, release_dir, run_report, qc_report_url]

    @classmethod
    def on_load(cls, *args, **kwargs):
        try:
            cls.fastapi_apps = [{"app": _reports_app(), "url_prefix": "/songmill", "name": "songmill reports"}]
            cls.fastapi_root_middlewares = [{"middleware": TriggerGuard, "name": "songmill trigger guard"}]
        except ImportError:  # a worker without the api-server's packages: listener and macros only
            cls.fastapi_apps = []
