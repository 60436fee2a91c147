"""The songmill Airflow plugin.

- a **listener** that records every task try (state, worker host, queue, error) in the songmill
  catalogue, beside the run it belongs to (`orchestrator_tasks`);
- the **"QC report" extra link** on the `qc` and `package_and_deliver` tasks, and a small web app
  (`/songmill/releases/<release-id>/qc-report.html`, behind Airflow's login) that serves it;
- **`POST /songmill/verify?name=<file name>`** (behind the same login): the body is an audio file,
  the answer `songmill verify --json`'s — ours, not ours (both 200) or unreadable (422);
- **macros** for release paths: `{{ macros.songmill.release_dir("demo-single") }}`,
  `run_report(...)`, `qc_report_url(...)`, `out_dir()`.

The Asset a published release updates is declared by the delivery operator
(operators/release.py): `songmill://releases` and `songmill://releases/<release-id>`.
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations at runtime,
# and they name classes imported inside `_reports_app` (kept out of task processes).
import logging
from pathlib import Path

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

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
                    map_index=getattr(ti, "map_index", -1) or -1,
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


async def _require_login(request) -> None:
    """Airflow's own check (its JWT, from the Authorization header or the UI's cookie); imported
    when a report is asked for, so task processes, which load this plugin too, do not pay for it."""
    from airflow.api_fastapi.core_api.security import COOKIE_NAME_JWT_TOKEN, resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    await resolve_user_from_token(token)


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


def _reports_app():
    """Serves the run and QC reports under Airflow's login (the plugin's FastAPI app)."""
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse

    from songmill.core.paths import safe_name

    async def require_login(request: Request) -> None:
        await _require_login(request)

    app = FastAPI(title="songmill reports", dependencies=[Depends(require_login)])

    def _file(release_id: str, name: str) -> FileResponse:
        if safe_name(release_id) != release_id:
            raise HTTPException(status_code=404, detail=f"no release {release_id!r}")
        path = Path(release_dir(release_id)) / name
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"{name} of {release_id} is not there yet (the release is written by its package_and_deliver task)")
        return FileResponse(path)

    @app.get("/releases/{release_id}/qc-report.html")
    def qc_report(release_id: str):
        return _file(release_id, "qc-report.html")

    @app.get("/releases/{release_id}/run-report.json")
    def report(release_id: str):
        return _file(release_id, "run-report.json")

    @app.post("/verify")
    async def verify(request: Request, name: str = "upload.bin"):
        from fastapi.responses import JSONResponse

        data = await request.body()
        if len(data) > MAX_VERIFY_BYTES:
            raise HTTPException(
                status_code=413, detail=f"{name} is larger than {MAX_VERIFY_BYTES // 2**20} MiB; verify it with `songmill verify` on the machine"
            )
        found = verify_upload(data, name)
        return JSONResponse(found, status_code=422 if found["verdict"] == "unreadable" else 200)

    return app


class SongmillPlugin(AirflowPlugin):
    name = "songmill"
    listeners = [TaskRecorder()]
    operator_extra_links = [QCReportLink()]
    macros = [out_dir, release_dir, run_report, qc_report_url]

    @classmethod
    def on_load(cls, *args, **kwargs):
        try:
            cls.fastapi_apps = [{"app": _reports_app(), "url_prefix": "/songmill", "name": "songmill reports"}]
        except ImportError:  # a worker without the api-server's packages: listener and macros only
            cls.fastapi_apps = []
