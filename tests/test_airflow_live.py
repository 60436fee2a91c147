"""Airflow live: every component its own process against PostgreSQL, driven through the REST API.

- the manual DAG triggered with a Params payload (and refused with one outside the schema);
- a task process killed with SIGKILL mid-stage: Airflow retries it, nothing lost or duplicated;
- the song editor's page in headless Chromium: log in, type a command, the new version appears
  and plays, A/B against the first, undo, redo, a version made current from the history, A/B of two chosen versions (screenshots: SONGMILL_SCREENSHOTS_DIR, else the test's folder);
- CeleryExecutor with Redis as broker and PostgreSQL as result backend, two workers on this
  machine (queues `default` and `gpu`): the gpu stages run on the gpu worker, the others not.

Slow (minutes): `make test-live` runs them, and CI (`.ci/run`) after `make test`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests import servers
from tests.browser import Browser

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
PROJECT = Path(__file__).resolve().parents[1]

FORM = {
    "title": "Night Bus",
    "artist": "The Songmill Collective",
    "label": "Songmill Records",
    "genre": "synthpop",
    "mood": "dreamy",
    "theme": "riding the last bus home through a sleeping city",
    "tempo": 100,
    "key": "C major",
    "target_duration_s": 30,
    "voice_identity": "cleo",
    "voice_style": "auto",
    "lyrics": "",
    "profiles": ["streaming"],
    "explicit": False,
    "seed": 11,
}


def _launcher():
    spec = importlib.util.spec_from_file_location("airflow_local", PROJECT / "scripts" / "airflow_local.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class Rest:
    """The Airflow REST API (v2) with a token from the simple auth manager."""

    def __init__(self, url: str, password: str, airflow=None):
        self.url, self.airflow = url, airflow
        token = self._call("POST", "/auth/token", {"username": "admin", "password": password}, auth=False)
        self.token = token["access_token"]

    def _call(self, method: str, path: str, body=None, *, auth: bool = True):
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {self.token}"} if auth else {})},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def get(self, path: str):
        return self._call("GET", path)

    def page(self, path: str, *, auth: bool = True) -> str:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"} if auth else {})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    def where_sent(self, path: str) -> tuple[int, str]:
        """(status, Location) of a GET without a login, as a browser gets it (redirects not followed)."""

        class Stay(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        try:
            with urllib.request.build_opener(Stay).open(self.url + path, timeout=30) as response:
                return response.status, ""
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Location", "")

    def post(self, path: str, body):
        return self._call("POST", path, body)

    def upload(self, path: str, data: bytes, *, auth: bool = True):
        headers = {"Content-Type": "application/octet-stream", **({"Authorization": f"Bearer {self.token}"} if auth else {})}
        request = urllib.request.Request(self.url + path, method="POST", data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def unpause(self, dag_id: str) -> None:
        self.dag(dag_id)
        self._call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def dag(self, dag_id: str) -> dict:
        """The DAG's record, once the dag-processor has parsed it."""
        deadline = time.monotonic() + 120
        while True:
            try:
                return self.get(f"/api/v2/dags/{dag_id}")
            except urllib.error.HTTPError as err:
                if err.code != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        return self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})["dag_run_id"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 900) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            dead = [name for name, p in (self.airflow.processes.items() if self.airflow else []) if p.poll() is not None]
            if dead:
                log = (self.airflow.home / "process-logs" / f"{dead[0]}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"airflow {dead[0]} exited while {dag_id} ran:\n{log}")
            time.sleep(3)
        raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout_s:.0f} s")


def _databases(server_url: str, *names: str) -> list[str]:
    import sqlalchemy
    from sqlalchemy.engine import make_url

    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return [make_url(server_url).set(database=name).render_as_string(hide_password=False) for name in names]


def _live_config(folder: Path, test_config_dir: Path) -> Path:
    """The test config with fast retries and a 30-second demo."""
    config = folder / "config"
    shutil.copytree(test_config_dir, config)
    settings = (config / "airflow.yaml").read_text()
    (config / "airflow.yaml").write_text(settings.replace("retry_delay_s: 30", "retry_delay_s: 2").replace("retries: 3", "retries: 2"))
    for path in (config / "releases").glob("*.yaml"):
        if path.name != "demo.yaml":
            path.unlink()
    demo = config / "releases" / "demo.yaml"
    demo.write_text(re.sub(r"target_duration_s: \d+", "target_duration_s: 30", demo.read_text()))
    return config


def _environment(tmp: Path, config: Path, meta_url: str, catalogue_url: str) -> dict[str, str]:
    from sqlalchemy.engine import make_url

    catalogue = make_url(catalogue_url)
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
        "SONGMILL_CONFIG_DIR": str(config),
        "SONGMILL_OUT_DIR": str(tmp / "dist"),
        "SONGMILL_VAR_DIR": str(tmp / "var"),
        # the catalogue through an Airflow Connection, as a deployment has it
        "SONGMILL_CATALOGUE_CONN_ID": "songmill_catalogue",
        "AIRFLOW_CONN_SONGMILL_CATALOGUE": json.dumps(
            {"conn_type": "postgres", "host": catalogue.host, "port": catalogue.port, "login": catalogue.username, "schema": catalogue.database}
        ),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "operators.hostname.worker_hostname",
    }


@pytest.fixture(scope="module")
def live_local(postgres_server_url, tmp_path_factory, test_config_dir):
    tmp = tmp_path_factory.mktemp("airflow-live")
    meta, catalogue = _databases(postgres_server_url, "songmill_live_meta", "songmill_live_catalogue")
    env = _environment(tmp, _live_config(tmp, test_config_dir), meta, catalogue)
    airflow = _launcher().start(tmp / "home", port=servers.free_port(), extra_env=env)
    try:
        yield airflow, Rest(airflow.url, airflow.password(), airflow), tmp, catalogue
    finally:
        airflow.stop()


def _verify_delivery(folder: Path) -> list[str]:
    """Every file the manifest lists exists with its hash, and nothing else is there."""
    lines = (folder / "checksums.sha256").read_text().splitlines()
    listed = {}
    for line in lines:
        digest, name = line.split(maxsplit=1)
        listed[name.lstrip("*")] = digest
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "checksums.sha256"}
    assert present == set(listed), present ^ set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    return sorted(listed)


def test_the_manual_dag_runs_from_a_rest_trigger_with_params_and_delivers(live_local):
    airflow, rest, tmp, _ = live_local
    api_log = (airflow.home / "process-logs" / "api-server.log").read_text(errors="replace")
    assert "path=/execution/health" in api_log  # warmed at start: the first task does not build the execution API's routes
    with pytest.raises(urllib.error.HTTPError) as refused:  # outside the form's schema: no run starts
        rest.trigger("songmill_manual_release", {**FORM, "tempo": 500})
    assert refused.value.code == 400 and "tempo" in refused.value.read().decode()

    rest.unpause("songmill_manual_release")
    run_id = rest.trigger("songmill_manual_release", FORM)
    assert rest.wait("songmill_manual_release", run_id) == "success"
    report = json.loads((tmp / "dist" / "night-bus" / "run-report.json").read_text())
    note = rest.get(f"/api/v2/dags/songmill_manual_release/dagRuns/{run_id}")["note"]
    assert note.startswith("**Delivered** to streaming") and "track 1 *Night Bus*: passed the gate" in note
    assert report["runner"] == "airflow" and report["status"] == "succeeded"
    assert report["tracks"][0]["seed"] == 11 and report["tracks"][0]["qc"]["passed"]
    delivery = Path(report["deliveries"][0]["destination"])
    files = _verify_delivery(delivery)
    assert any(f.endswith(".flac") for f in files) and any(f.endswith(".xml") for f in files)
    # the QC task's extra link, and the plugin serving the report behind Airflow's login
    links = rest.get(f"/api/v2/dags/songmill_manual_release/dagRuns/{run_id}/taskInstances/track.qc/links?map_index=0")["extra_links"]
    assert links.get("QC report") == f"/songmill/releases/night-bus/runs/{report['run_id']}/qc-report.html", links
    assert f"[QC report of this run]({links['QC report']})" in note
    status, location = rest.where_sent(links["QC report"])  # a browser without a login goes to the login page, and back
    assert status == 307 and location.startswith("/auth/login") and "next=" in location and "qc-report.html" in location
    with pytest.raises(urllib.error.HTTPError) as bad_token:  # an API client with a bad token is refused, not redirected
        urllib.request.urlopen(urllib.request.Request(airflow.url + links["QC report"], headers={"Authorization": "Bearer nonsense"}), timeout=30)
    assert bad_token.value.code in (401, 403)
    assert "qc-data" in rest.page(links["QC report"])
    # the plugin's verify endpoint, behind the same login, knows the delivered file as ours
    flac = next((delivery / "resources").glob("*.flac"))
    found = rest.upload(f"/songmill/verify?name={flac.name}", flac.read_bytes())
    assert found["verdict"] == "ours" and found["track"]["release_id"] == "night-bus", found
    with pytest.raises(urllib.error.HTTPError) as anonymous_verify:
        rest.upload(f"/songmill/verify?name={flac.name}", b"no song", auth=False)  # small: refused before the body is read
    assert anonymous_verify.value.code == 401
    config = next((tmp / "dist" / "_configs").glob("night-bus-*.yaml"))
    assert "tempo: 100" in config.read_text()  # the run's config, ready for `songmill render`

    # the same song with another seed is rendered but not delivered over the first (no redeliver);
    # the run fails and its note says why; the first run's report link still shows the first run
    other = rest.trigger("songmill_manual_release", {**FORM, "seed": 12})
    assert rest.wait("songmill_manual_release", other) == "failed"
    refused_note = rest.get(f"/api/v2/dags/songmill_manual_release/dagRuns/{other}")["note"]
    assert refused_note.startswith("**Not delivered**: delivery failed: release 'night-bus' was delivered to profile 'streaming'"), refused_note
    assert "track 1 sounds different" in refused_note and "redeliver" in refused_note
    assert _verify_delivery(delivery) == files and flac.read_bytes() == (next((delivery / "resources").glob("*.flac"))).read_bytes()
    other_links = rest.get(f"/api/v2/dags/songmill_manual_release/dagRuns/{other}/taskInstances/track.qc/links?map_index=0")["extra_links"]
    assert other_links["QC report"] != links["QC report"]
    other_run = json.loads((tmp / "dist" / "night-bus" / "run-report.json").read_text())["run_id"]
    assert f", run {report['run_id']}," in rest.page(links["QC report"])  # the older run's link: that run's report
    assert f", run {other_run}," in rest.page(other_links["QC report"]) and other_run != report["run_id"]


def test_a_killed_task_process_is_retried_and_the_release_is_whole(live_local):
    from songmill.catalogue import Catalogue

    airflow, rest, tmp, catalogue_url = live_local
    dag_id = "songmill_release_demo"
    rest.unpause(dag_id)
    run_id = rest.trigger(dag_id)
    victim, deadline = None, time.monotonic() + 600
    while victim is None and time.monotonic() < deadline:
        for ti in rest.task_instances(dag_id, run_id):
            if ti["task_id"] == "track.vocals" and ti["state"] == "running" and ti.get("pid"):
                victim = ti
        time.sleep(0.3)
    assert victim is not None, "the vocals task never ran"
    time.sleep(1.0)  # inside the stage
    os.kill(victim["pid"], signal.SIGKILL)
    assert rest.wait(dag_id, run_id) == "success"
    vocals = next(ti for ti in rest.task_instances(dag_id, run_id) if ti["task_id"] == "track.vocals")
    assert vocals["try_number"] == 2 and vocals["state"] == "success"

    report = json.loads((tmp / "dist" / "demo-single" / "run-report.json").read_text())
    assert report["status"] == "succeeded"
    for delivery in report["deliveries"]:
        _verify_delivery(Path(delivery["destination"]))
    catalogue = Catalogue.open(catalogue_url)
    deliveries = [d for d in catalogue.deliveries("demo-single") if d["run_id"] == report["run_id"]]
    tries = catalogue.task_tries(run_id)
    catalogue.close()
    assert sorted(d["profile"] for d in deliveries) == sorted(report["release"]["profiles"])  # once each
    assert [t["try_number"] for t in tries if t["task_id"] == "track.vocals" and t["state"] == "success"] == [2]
    stage_runs = [s["stage"] for t in report["tracks"] for s in t["stages"]]
    assert len(stage_runs) == len(set(stage_runs))  # one result per stage: the retry replaced, not added


def _log_in(browser: Browser, password: str) -> None:
    """Airflow's own login form (the simple auth manager's page), typed into as a person would."""
    browser.wait_for("!!document.querySelector('input[name=password]')", what="the login form")
    for field, text in (("username", "admin"), ("password", password)):
        browser.evaluate(f"document.querySelector('input[name={field}]').focus()")
        browser.call("Input.insertText", text=text)
    browser.wait_for("!document.querySelector('button[type=submit]').disabled", what="the sign-in button")
    browser.evaluate("document.querySelector('button[type=submit]').click()")


def test_the_editor_page_in_chromium_types_a_command_plays_the_new_version_undoes_and_redoes(live_local):
    """A person at the editor page (after the demo release was rendered by its DAG): sent to the
    login page and back, types a command, watches the edit run, hears the new version, compares it
    with version 1 (A/B), undoes, redoes, makes version 1 current again from the history, and compares
    it with version 2 chosen above the history."""
    airflow, rest, tmp, catalogue_url = live_local
    assert (tmp / "dist" / "demo-single" / "run-report.json").is_file(), "the demo release is rendered by the test before this one"
    assert not rest.dag("songmill_edit")["is_paused"]  # it runs only when asked: never left paused for the page to wait on
    shots = Path(os.environ.get("SONGMILL_SCREENSHOTS_DIR") or tmp / "screenshots")
    page = f"{airflow.url}/songmill/editor/demo-single/1"
    with Browser.start(tmp / "browser") as browser:
        browser.goto(page)
        assert "/auth/login" in browser.evaluate("location.href")  # no login: Airflow's login page
        _log_in(browser, airflow.password())
        browser.wait_for(f"location.href === {json.dumps(page)}", what="the editor page after the login")
        browser.wait_for("document.querySelectorAll('#history li').length >= 1", timeout_s=180, what="the track's versions")
        assert browser.evaluate("document.getElementById('wave').toDataURL().length") > 5000  # the waveform drawn with its sections
        assert browser.evaluate("document.getElementById('current-label').textContent") == "version 1"
        browser.screenshot(shots / "editor-before.png")

        browser.evaluate("document.getElementById('command').value = 'louder drums in the bridge 7'; document.getElementById('send').click()")
        browser.wait_for("document.getElementById('status').className === 'error'", what="the refusal of a command that cannot apply")
        assert "not in one section such as bridge 7" in browser.evaluate("document.getElementById('status').textContent")
        assert not browser.evaluate("document.getElementById('send').disabled")  # refused: nothing started, the page ready again
        # no microphone on this machine: the record button says so, with the remedy for what the browser answered
        browser.evaluate("document.getElementById('record').click()")
        browser.wait_for("document.getElementById('status').textContent.startsWith('no microphone could be opened')", what="the record button's answer")
        said = browser.evaluate("document.getElementById('status').textContent")
        assert re.fullmatch(
            r"no microphone could be opened \((NotFoundError|NotAllowedError|\w+)\): (connect one|allow this page the microphone|check its connection and settings), or type the command",
            said,
        ), said
        assert ("connect one" in said) == ("NotFoundError" in said)
        # a double click starts one edit: the page is busy from the first
        browser.evaluate(
            "document.getElementById('command').value = 'less reverb on the voice'; document.getElementById('send').click(); document.getElementById('send').click()"
        )
        browser.wait_for("document.getElementById('status').textContent.startsWith('edit run')", what="the edit run started")
        browser.wait_for("!document.getElementById('audition-box').hidden", timeout_s=600, what="the edit's audition, while the run goes on")
        assert "/auditions/2/listen?run=" in browser.evaluate("document.getElementById('audition').src")  # Opus, as the versions
        assert browser.evaluate("document.getElementById('status').textContent") == "edit run running"  # heard before the version is done
        browser.screenshot(shots / "editor-audition.png")
        browser.evaluate("document.getElementById('audition').play()", await_promise=True)  # the browser decodes it and it plays
        browser.wait_for("document.getElementById('audition').currentTime > 0.5", what="the audition playing")
        browser.evaluate("document.getElementById('audition').pause()")
        browser.wait_for("document.getElementById('status').textContent === 'version 2 is ready'", timeout_s=600, what="the edit run's new version")
        assert browser.evaluate("document.getElementById('audition-box').hidden")  # the version itself plays now
        entry = browser.evaluate("document.querySelector('#history li.current').textContent")
        assert entry.startswith("v2 · less reverb on the voice (read as send(effect=reverb, on=vocal, by_db=-6.0)) · admin"), (
            entry
        )  # the words and how they were read
        assert browser.evaluate("document.getElementById('current').src").endswith("/versions/2/listen")  # Opus, a seventeenth of the WAV
        assert browser.evaluate("document.getElementById('previous-label').textContent") == "version 1"
        browser.evaluate("document.getElementById('current').play()", await_promise=True)
        browser.wait_for("document.getElementById('current').currentTime > 0.5", what="the new version playing")
        duration = browser.evaluate("document.getElementById('current').duration")
        from songmill.catalogue import Catalogue

        catalogue = Catalogue.open(catalogue_url)
        measured = catalogue.versions("demo-single", 1)[-1]["measures"]["duration_s"]
        catalogue.close()
        assert duration == pytest.approx(measured, abs=0.05)  # the whole song, decoded by the browser, as the gate measured the master
        browser.evaluate("document.getElementById('current').pause()")
        browser.screenshot(shots / "editor-after.png")

        browser.evaluate("document.querySelector('.compare[data-v=\"1\"]').click()")  # A/B: version 1 against now, matched in loudness
        browser.wait_for("!document.getElementById('ab-box').hidden", what="the A/B players")
        assert browser.evaluate("document.getElementById('status').textContent").startswith("version 1 against version 2: ")
        assert "/previews/v0001-v0002-" in browser.evaluate("document.getElementById('ab-b').src")
        differs = browser.evaluate("document.getElementById('ab-differs').textContent")
        assert differs.startswith("asked: mix vocal reverb db 0 → -6; notes changed in: no section; measured: "), differs  # what the edit asked, and no notes
        for player in ("ab-a", "ab-b"):
            browser.evaluate(f"document.getElementById('{player}').play()", await_promise=True)
            browser.wait_for(f"document.getElementById('{player}').currentTime > 0.5", what=f"the A/B player {player}")
            assert 20 <= browser.evaluate(f"document.getElementById('{player}').duration") <= 30.1  # an excerpt, decoded by the browser
            browser.evaluate(f"document.getElementById('{player}').pause()")
        browser.screenshot(shots / "editor-ab.png")

        browser.evaluate("document.getElementById('undo').click()")
        browser.wait_for("document.getElementById('status').textContent === 'version 1 is current again'", what="undo")
        assert browser.evaluate("document.getElementById('undo').disabled")  # version 1 is the config's: nothing before it
        browser.wait_for("document.querySelector('#history li.current') && document.querySelector('#history li.current').textContent.startsWith('v1')")
        browser.screenshot(shots / "editor-undone.png")
        browser.wait_for("!document.getElementById('redo').disabled", what="redo offered once a version was undone")
        browser.evaluate("document.getElementById('redo').click()")
        browser.wait_for("document.getElementById('status').textContent === 'version 2 is current again'", what="redo")
        assert browser.evaluate("document.getElementById('redo').disabled")  # nothing more to redo
        assert browser.evaluate("document.getElementById('current').src").endswith("/versions/2/listen")
        browser.evaluate("document.querySelector('.make-current[data-v=\"1\"]').click()")  # any version, from the history
        browser.wait_for("document.getElementById('status').textContent === 'version 1 is current'", what="version 1 made current from the history")
        assert browser.evaluate("document.querySelector('#history li.current').textContent").startswith("v1")
        # A/B of any two versions: the history's buttons compare with the version chosen above it
        browser.evaluate("const chosen = document.getElementById('ab-against'); chosen.value = '2'; chosen.dispatchEvent(new Event('change'))")
        assert browser.evaluate("document.querySelector('.compare[data-v=\"1\"]').textContent") == "A/B with version 2"
        assert browser.evaluate("document.querySelector('.compare[data-v=\"2\"]') === null")  # a version is not compared with itself
        browser.evaluate("document.querySelector('.compare[data-v=\"1\"]').click()")
        browser.wait_for("document.getElementById('status').textContent.startsWith('version 1 against version 2: ')", what="the A/B of two chosen versions")
        assert not browser.evaluate("document.getElementById('ab-box').hidden")
        assert not [line for line in browser.console if line.startswith("exception")], browser.console
        # the demo's run page: the plugin's "QC report" tab (Airflow's task pages draw no operator links)
        demo_run = rest.get("/api/v2/dags/songmill_release_demo/dagRuns")["dag_runs"][-1]["dag_run_id"]
        browser.goto(f"{airflow.url}/dags/songmill_release_demo/runs/{urllib.parse.quote(demo_run)}")
        tab = "[...document.querySelectorAll('a, button')].find(e => e.textContent.trim() === 'QC report')"
        browser.wait_for(f"!!{tab}", timeout_s=60, what="the run page's QC report tab")
        browser.evaluate(f"{tab}.click()")
        browser.wait_for(
            "[...document.querySelectorAll('iframe')].some(f => (f.src || '').includes('/songmill/airflow-runs/songmill_release_demo/'))",
            what="the QC report tab's page",
        )
        browser.screenshot(shots / "run-qc-report-tab.png")
    runs = rest.get("/api/v2/dags/songmill_edit/dagRuns")["dag_runs"]
    assert [r["state"] for r in runs] == ["success"] and runs[0]["conf"]["command"] == "less reverb on the voice"


@pytest.fixture(scope="module")
def live_celery(postgres_server_url, tmp_path_factory, test_config_dir):
    launcher = _launcher()
    tmp = tmp_path_factory.mktemp("airflow-celery")
    meta, catalogue = _databases(postgres_server_url, "songmill_celery_meta", "songmill_celery_catalogue")
    env = {
        **_environment(tmp, _live_config(tmp, test_config_dir), meta, catalogue),
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta,  # db+postgresql+psycopg2://…
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
    }
    with servers.redis_server() as redis_url:
        env["AIRFLOW__CELERY__BROKER_URL"] = redis_url
        airflow = launcher.start(tmp / "home", port=servers.free_port(), executor="CeleryExecutor", extra_env=env)
        try:
            for queue, name in (("default", "cpu-worker"), ("gpu", "gpu-worker")):
                worker_env = {**airflow.env, "SONGMILL_WORKER_NAME": name, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(servers.free_port())}
                airflow.processes[name] = launcher.start_process(
                    name,
                    launcher.airflow_command("celery", "worker", "--queues", queue, "--celery-hostname", f"{name}@%h", "--concurrency", "1"),
                    worker_env,
                    airflow.home / "process-logs",
                )
            yield airflow, Rest(airflow.url, airflow.password(), airflow), tmp
        finally:
            airflow.stop()


def test_celery_workers_split_the_gpu_stages_from_the_others(live_celery):
    airflow, rest, tmp = live_celery
    dag_id = "songmill_release_demo"
    rest.unpause(dag_id)
    run_id = rest.trigger(dag_id)
    state = rest.wait(dag_id, run_id)
    tis = rest.task_instances(dag_id, run_id)
    assert state == "success", [(t["task_id"], t["state"]) for t in tis]
    ran_on = {t["task_id"]: (t["hostname"], t["queue"]) for t in tis if t["state"] == "success"}
    assert ran_on["track.vocals"] == ("gpu-worker", "gpu")
    others = {task: where for task, where in ran_on.items() if task != "track.vocals"}
    assert others and all(where == ("cpu-worker", "default") for where in others.values()), others
    report = json.loads((tmp / "dist" / "demo-single" / "run-report.json").read_text())
    assert report["status"] == "succeeded" and report["delivered"]
