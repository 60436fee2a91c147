"""`songmill render` end to end: the report contract, caching, determinism, failures."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from songmill.core.audio import read_wav
from songmill.core.score import Score
from songmill.core.store import file_sha256
from songmill.engine.runner import render
from tests.conftest import DEBUG, PROJECT, debug_release

DEMO = PROJECT / "config/releases/demo.yaml"
EP = PROJECT / "config/releases/harbour-lights-ep.yaml"


def short(config: Path, folder: Path, seconds: int = 40) -> Path:
    """The config with every track cut to `seconds`: the plumbing tests need songs, not three
    minutes of each (the first test below renders the full demo)."""
    copy = folder / f"short-{config.name}"
    copy.write_text(re.sub(r"target_duration_s: \d+", f"target_duration_s: {seconds}", config.read_text()))
    return copy


def cli(*args: str, env_extra: dict | None = None, var: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "songmill", *args], capture_output=True, text=True, cwd=PROJECT, env=env)


@pytest.mark.parametrize(
    ("config", "release_id", "seconds", "profiles"),
    [
        (DEBUG, "debug-single", 24, {"streaming"}),  # 12 bars at 120 BPM
        pytest.param(DEMO, "demo-single", 180, {"streaming", "preview"}, marks=pytest.mark.slow),  # the three-minute demo
    ],
)
def test_render_prints_the_report_path_last_and_the_report_lists_every_artifact(tmp_path, config, release_id, seconds, profiles):
    result = cli("render", str(config), "--out", str(tmp_path / "dist"))
    assert result.returncode == 0, result.stderr
    report_path = Path(result.stdout.strip().splitlines()[-1])
    assert report_path == tmp_path / "dist" / release_id / "run-report.json"
    report = json.loads(report_path.read_text())
    assert report["status"] == "succeeded" and report["release"]["id"] == release_id
    [track] = report["tracks"]
    assert [s["stage"] for s in track["stages"]] == [s["name"] for s in report["stages"]]
    for artifact in track["artifacts"].values():
        assert file_sha256(Path(artifact["path"])) == artifact["sha256"]
        assert Path(artifact["path"]).stat().st_size == artifact["bytes"]
    assert set(track["artifacts"]) >= {"form.json", "lyrics.json", "score.json", "score.mid", "score.musicxml"}
    folder = Path(track["artifacts"]["score.json"]["path"]).parent
    assert folder.parent == report_path.parent / "tracks"
    for name, artifact in track["artifacts"].items():  # the working audio is named where the store keeps it (copied nowhere); the rest beside the report
        working = artifact["stage"] in ("instruments", "vocals", "mix") and name.endswith(".wav")
        assert (Path(artifact["path"]).parent == folder) != working and artifact.get("in_store", False) == working, name
        assert (Path(artifact["path"]).stat().st_mode & 0o222 == 0) == working, name  # the store's copy is read-only; the copies beside the report are not
    assert {p.name for p in folder.glob("*.wav")} == {n for n in track["artifacts"] if n.startswith("master-")}  # no copy of the rest
    score = Score.load_json(Path(track["artifacts"]["score.json"]["path"]))
    assert track["duration_s"] == pytest.approx(score.duration_s, abs=1e-3)
    assert abs(score.duration_s - seconds) < 15
    assert track["artifacts"]["score.json"]["stage"] == "compose"
    [model] = next(s for s in track["stages"] if s["stage"] == "compose")["models"]
    assert model["name"] == "melody-gru-celtic" and len(model["sha256"]) == 64
    stems = {d["stem"] for d in track["arrangement"]["instruments"] if d["stem"]}
    assert stems and stems <= set(track["artifacts"]) and "stem-drums.wav" in stems
    samples, rate = read_wav(Path(track["artifacts"]["stem-drums.wav"]["path"]))
    assert rate == 48000 and len(samples) == track["arrangement"]["frames"]
    for stage in track["stages"]:
        assert stage["wall_s"] >= 0 and stage["peak_rss_mib"] > 0
    vocals = track["vocals"]  # sung by the demo's identity in its style, with chorus backing
    assert vocals["identity"]["name"] == "ava" and vocals["style"] == "bright" and vocals["backend"] == "piper+world"
    assert {"vocal-lead.wav", "vocal-double.wav", "vocal-harmony.wav", "vocals.json"} <= set(track["artifacts"])
    # mixed and mastered for each profile; ffmpeg's meter agrees with the report
    assert {"mix.wav", "mix.json", "master.json"} | {f"master-{p}.wav" for p in profiles} <= set(track["artifacts"])
    assert track["mix"]["vocal_on_top"]["measured_lu"] == pytest.approx(1.0, abs=0.1)
    from tests.test_production import ebur128

    for profile in profiles:
        measured = ebur128(Path(track["artifacts"][f"master-{profile}.wav"]["path"]))
        assert measured["integrated"] == pytest.approx(-14.0, abs=0.5) and measured["true_peak"] <= -1.0
        assert track["loudness"][profile]["integrated_lufs"] == pytest.approx(measured["integrated"], abs=0.2)
    # passed the gate (every technical check of every profile), then delivered: a DDEX message per
    # profile that the schema accepts, naming files with their hashes
    assert track["qc"]["passed"] and track["status"] == "rendered" and report["quarantined"] == []
    assert {c["metric"] for c in track["qc"]["profiles"]["streaming"]["checks"]} >= {"integrated_lufs", "true_peak_dbtp", "duration_error_s"}
    assert_delivered(report, profiles)


def assert_delivered(report: dict, profiles: set[str]) -> None:
    """Every profile's folder holds a schema-valid DDEX message whose files exist with the hashes it
    states, and every file the report lists as delivered is there with its sha256."""
    from lxml import etree

    from tests.test_release import validate_with_lxml

    assert {d["profile"] for d in report["deliveries"]} == profiles
    for delivery in report["deliveries"]:
        folder = Path(delivery["destination"])
        xml = (folder / f"{report['upc']}.xml").read_bytes()
        assert validate_with_lxml(xml) == []
        for element in etree.fromstring(xml).findall(".//File"):
            assert file_sha256(folder / element.findtext("URI")) == element.findtext("HashSum/HashSumValue")
    for row in report["delivered"]:
        assert file_sha256(Path(row["path"])) == row["sha256"] and row["profile"] in profiles


@pytest.mark.long
def test_another_base_seed_is_another_song_not_a_cached_one(tmp_path):
    demo = DEBUG
    first = json.loads(render(demo, out_dir=tmp_path / "a", seed=1).read_text())["tracks"][0]
    second = json.loads(render(demo, out_dir=tmp_path / "b", seed=2, redeliver=True).read_text())["tracks"][0]
    assert first["seed"] != second["seed"]
    assert not any(s["cached"] for s in second["stages"])  # the seed is part of every cache key
    assert first["artifacts"]["lyrics.json"]["sha256"] != second["artifacts"]["lyrics.json"]["sha256"]


@pytest.mark.long
def test_rerender_with_same_config_and_seed_recomputes_nothing(tmp_path):
    demo = DEBUG
    first = json.loads(render(demo, out_dir=tmp_path / "a").read_text())
    second = json.loads(render(demo, out_dir=tmp_path / "b").read_text())
    assert all(not s["cached"] for s in first["tracks"][0]["stages"])
    assert all(s["cached"] for s in second["tracks"][0]["stages"])
    assert {n: a["sha256"] for n, a in first["tracks"][0]["artifacts"].items()} == {n: a["sha256"] for n, a in second["tracks"][0]["artifacts"].items()}
    folder = Path(first["tracks"][0]["artifacts"]["score.json"]["path"]).parent
    (folder / "stem-drums.wav").write_bytes(b"a copy an earlier songmill left beside the report")
    third = json.loads(render(demo, out_dir=tmp_path / "a").read_text())  # into the same folder again
    assert not (folder / "stem-drums.wav").exists() and third["tracks"][0]["artifacts"]["stem-drums.wav"]["in_store"]


@pytest.mark.long
@pytest.mark.parametrize(
    ("tracks", "profiles"),
    [(2, {"streaming"}), pytest.param(3, {"streaming", "hires", "preview"}, marks=pytest.mark.slow)],  # 3: the EP, 40 s a track
)
def test_parallel_tracks_give_the_same_artifacts_as_serial(tmp_path, monkeypatch, capfd, tracks, profiles, unsigned_delivery):
    """--jobs 1 runs a track's independent stages side by side (instruments beside vocals, export
    beside the gate); --jobs 2 runs tracks side by side and each track's stages one at a time.
    Delivered unsigned (no signing identity here), the render says so on stderr, once a profile."""
    ep = debug_release(tmp_path, tracks=2) if tracks == 2 else short(EP, tmp_path)
    serial = json.loads(render(ep, out_dir=tmp_path / "serial", jobs=1).read_text())
    said = [line for line in capfd.readouterr().err.splitlines() if "delivered without Content Credentials" in line]
    assert len(said) == len(profiles) and all(line.startswith("warning: ") for line in said), said
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "fresh-var"))  # nothing cached
    parallel = json.loads(render(ep, out_dir=tmp_path / "parallel", jobs=2).read_text())
    assert all(not s["cached"] for t in parallel["tracks"] for s in t["stages"])
    shas = lambda r: [{n: a["sha256"] for n, a in t["artifacts"].items()} for t in r["tracks"]]  # noqa: E731
    assert shas(serial) == shas(parallel) and len(shas(serial)) == tracks
    assert_delivered(serial, profiles)
    assert_delivered(parallel, profiles)
    audio = lambda r: sorted(d["sha256"] for d in r["delivered"] if d["format"] in ("flac", "wav", "mp3", "opus"))  # noqa: E731
    assert audio(serial) == audio(parallel)  # tagged files are byte-identical between runs


def test_a_process_that_imports_songmill_before_torch_does_its_math_on_one_thread():
    """Renders are byte-identical whichever runner makes them only at one thread per process
    (the watermark's sums come out in another order with two), so songmill sets it when the
    environment does not."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    script = "import songmill, torch; print(torch.get_num_threads())"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=PROJECT)
    assert result.returncode == 0 and result.stdout.split() == ["1"], result.stderr[-1000:]


def test_a_tracks_stages_run_in_waves_of_stages_that_read_none_of_each_others_outputs():
    from songmill.engine.track_stages import TRACK_STAGES

    waves = [[stage.name for stage in wave] for wave in TRACK_STAGES.waves()]
    assert waves == [["form"], ["lyrics"], ["compose"], ["instruments", "vocals"], ["mix"], ["master"], ["qc", "export"]]
    assert [[stage.name for stage in wave] for wave in TRACK_STAGES.waves(TRACK_STAGES.stages[:-1])][-1] == ["qc"]  # Airflow's export is its own task


def test_a_scheduler_gate_task_makes_export_ahead_unless_stages_run_one_at_a_time(monkeypatch):
    from songmill.engine.tasks import stages_to_make_ahead
    from songmill.engine.track_stages import TRACK_STAGES

    stage = {s.name: s for s in TRACK_STAGES.stages}
    assert [s.name for s in stages_to_make_ahead(stage["qc"])] == ["export"]
    assert stages_to_make_ahead(stage["instruments"]) == [] and stages_to_make_ahead(stage["export"]) == []  # Airflow runs vocals as its own task beside
    monkeypatch.setenv("SONGMILL_OVERLAP_STAGES", "0")
    assert stages_to_make_ahead(stage["qc"]) == []


def _debug_job(seed: int = 5):
    from songmill.engine.configs import load_release_with_profiles
    from songmill.engine.stage import TrackJob

    spec, _ = load_release_with_profiles(DEBUG)
    return TrackJob(spec, 0, seed, True)


def _vocal_readings(monkeypatch) -> list[str]:
    """The names of this process's threads that measure a dry vocal (`qc.musical.vocal_figures`), in turn."""
    import threading

    import qc.musical

    threads: list[str] = []
    measure = qc.musical.vocal_figures

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return measure(*args, **kwargs)

    monkeypatch.setattr(qc.musical, "vocal_figures", recorded)
    return threads


@pytest.mark.long
def test_the_gate_reads_the_dry_vocal_beside_the_mix_and_keeps_the_figures_it_would_have_measured(tmp_path, monkeypatch):
    """The gate's head start measures the dry vocal in a process of its own once the vocals
    exist (this process measures nothing); the gate reports the figures that a measurement of
    the vocal gives. A render the cache serves whole begins no head start; stages run one at a
    time begin none either (the gate measures the vocal itself)."""
    from qc.musical import vocal_figures
    from songmill.core.store import LocalStore
    from songmill.engine.runner import render_track_once

    threads = _vocal_readings(monkeypatch)
    outcome = render_track_once(_debug_job(), str(tmp_path / "store"), None)
    assert not outcome.stopped and threads == []
    store = LocalStore(tmp_path / "store")
    reported = json.loads(store.local_path(outcome.refs["qc.json"]).read_text())["musical"]
    vocal, rate = read_wav(store.local_path(outcome.refs["vocal-lead.wav"]))
    measured = vocal_figures(vocal, rate, Score.load_json(store.local_path(outcome.refs["score.json"])))
    assert measured["vocal_median_cents"] is not None and {k: reported[k] for k in measured} == measured

    from models.registry import ModelRegistry
    from songmill.core.audio import write_wav
    from songmill.engine.stage import head_start_needed
    from songmill.engine.track_stages import QC

    # kept: an edit of the mix starts no process for it; another voice is measured again
    assert not head_start_needed(QC, _debug_job(), outcome.refs, store=store, registry=ModelRegistry.load())
    write_wav(tmp_path / "vocal-lead.wav", vocal * 0.5, rate)
    other = {**outcome.refs, "vocal-lead.wav": store.put_file(tmp_path / "vocal-lead.wav")}
    assert head_start_needed(QC, _debug_job(), other, store=store, registry=ModelRegistry.load())

    import songmill.engine.head_start as head_start

    begun: list[str] = []
    monkeypatch.setattr(head_start, "_started", lambda: begun.append("a process"))
    again = render_track_once(_debug_job(), str(tmp_path / "store"), None)
    assert all(result.cached for result in again.results) and begun == []

    monkeypatch.setenv("SONGMILL_OVERLAP_STAGES", "0")
    one_at_a_time = render_track_once(_debug_job(seed=7), str(tmp_path / "store"), None)
    assert not one_at_a_time.stopped and begun == [] and threads == ["MainThread"]


@pytest.mark.long
def test_a_head_start_that_fails_costs_only_time(tmp_path, monkeypatch, caplog):
    """Its process killed (the kernel's out-of-memory killer, say): the render warns once and the
    gate measures the vocal itself."""

    import psutil

    import songmill.engine.head_start as head_start
    from songmill.engine.runner import render_track_once

    begin = head_start.HeadStarts.begin_due

    def begun_and_killed(self, outcome, upcoming):
        names = begin(self, outcome, upcoming)
        for _ in range(200 if names else 0):  # its process, once started
            found = [p for p in psutil.Process().children(recursive=True) if "songmill.engine.head_start" in " ".join(p.cmdline())]
            if found:
                found[0].kill()
                break
            time.sleep(0.05)
        return names

    monkeypatch.setattr(head_start.HeadStarts, "begin_due", begun_and_killed)
    threads = _vocal_readings(monkeypatch)
    with caplog.at_level("WARNING", logger="songmill.engine.head_start"):
        outcome = render_track_once(_debug_job(seed=6), str(tmp_path / "store"), None)
    assert not outcome.stopped and outcome.results[-1].stage == "export"
    assert threads == ["track1_0"]  # the gate measured the vocal itself, on its wave's thread
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == "track 1: the head start of qc failed (its process was killed by SIGKILL); the stage does that work itself"


def test_a_head_start_process_that_fails_says_its_last_word():
    from songmill.engine.head_start import _finished, _started

    with pytest.raises(RuntimeError, match=r"^its process exited with status 1: json\.decoder\.JSONDecodeError: Expecting value"):
        _finished(_started(), b"not what a render sends")


def test_a_head_start_still_running_when_its_stage_comes_is_stopped_and_none_outlives_its_render(monkeypatch, caplog):
    """A busy machine starves a niced process: the stage waits HEAD_START_GRACE_S for it, then
    stops it and does the work itself. A render that ends before the stage stops the rest."""
    import songmill.engine.head_start as head_start
    from songmill.engine.track_stages import QC

    monkeypatch.setattr(head_start, "HEAD_START_GRACE_S", 0.3)
    with head_start.head_starts(_debug_job(), "unused", store=None, registry=None) as early:
        for name in ("qc", "left behind"):
            early._processes[name] = process = head_start._started()  # waits for work on its stdin, forever
            early.begun[name] = early._watchers.submit(process.wait)
        with caplog.at_level("WARNING", logger="songmill.engine.head_start"):
            early.wait_for([QC])
    assert early._processes["qc"].returncode == early._processes["left behind"].returncode == -9
    [warning] = [r.getMessage() for r in caplog.records]
    assert (
        warning
        == "track 1: the head start of qc failed (it was still running 0.3 s after its stage's turn came, and was stopped); the stage does that work itself"
    )


@pytest.mark.long
def test_track_and_seed_options(tmp_path):
    ep = debug_release(tmp_path, tracks=2)
    only_two = json.loads(render(ep, out_dir=tmp_path / "x", track=2).read_text())
    assert [t["number"] for t in only_two["tracks"]] == [2]
    reseeded = json.loads(render(ep, out_dir=tmp_path / "y", track=2, seed=99).read_text())
    assert reseeded["tracks"][0]["seed"] != only_two["tracks"][0]["seed"] == 12
    result = cli("render", str(EP), "--track", "7", "--out", str(tmp_path / "z"))
    assert result.returncode == 2  # unusable input, as an invalid config (1 is a render that failed)
    assert "--track 7 is not in" in result.stderr and "it has tracks 1–3" in result.stderr
    result = cli("render", str(DEBUG), "--track", "2", "--out", str(tmp_path / "z"))
    assert result.returncode == 2 and result.stderr.strip().endswith("(it has one track)")


@pytest.mark.long
def test_changing_a_parameter_reruns_only_what_depends_on_it(tmp_path):
    config = tmp_path / "debug.yaml"
    text = DEBUG.read_text()
    config.write_text(text)
    render(config, out_dir=tmp_path / "a")
    config.write_text(text.replace("tempo: 120", "tempo: 126"))
    report = json.loads(render(config, out_dir=tmp_path / "b", redeliver=True).read_text())
    assert not report["tracks"][0]["stages"][0]["cached"]


@pytest.mark.long
def test_dead_database_fails_in_one_sentence_and_leaves_earlier_output_untouched(tmp_path):
    out = tmp_path / "dist"
    report = render(DEBUG, out_dir=out)  # the earlier output (in this process: the command is tested below)
    before = report.read_bytes()
    bad = cli("render", str(DEBUG), "--out", str(out), env_extra={"SONGMILL_DATABASE_URL": "postgresql+psycopg2://u:pw@127.0.0.1:9/x"})
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: catalogue database postgresql+psycopg2://u:***@127.0.0.1:9/x is unreachable")
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert report.read_bytes() == before


def test_dead_s3_store_fails_in_one_sentence(tmp_path):
    bad = cli(
        "render", str(DEMO), "--out", str(tmp_path / "dist"), env_extra={"SONGMILL_STORE": "s3://songmill/artifacts", "SONGMILL_S3_ENDPOINT": "127.0.0.1:9"}
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: S3 store at 127.0.0.1:9 is unreachable")
    assert not (tmp_path / "dist").exists()


def test_invalid_config_exits_2_and_writes_nothing(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(DEMO.read_text().replace("tempo: 104", "tempo: 400"))
    result = cli("render", str(config), "--out", str(tmp_path / "dist"))
    assert result.returncode == 2
    line = 1 + config.read_text().splitlines().index("    tempo: 400")
    assert result.stderr.strip() == f"{config}:{line}: tracks[0].tempo: 400 is outside 40–240 BPM"
    assert not (tmp_path / "dist").exists()


def test_render_whose_out_is_a_file_says_so_before_rendering(tmp_path):
    a_file = tmp_path / "render.out"
    a_file.write_text("kept")
    result = cli("render", str(DEBUG), "--out", str(a_file))
    assert result.returncode == 2 and result.stderr.strip() == f"error: the output folder {a_file} is a file; give --out a folder (it is made when missing)"
    assert a_file.read_text() == "kept" and not (Path(os.environ["SONGMILL_VAR_DIR"]) / "artifacts").exists()  # nothing rendered
    dangling = tmp_path / "dist-link"
    dangling.symlink_to(tmp_path / "gone")
    result = cli("render", str(DEBUG), "--out", str(dangling / "sub"))
    assert result.returncode != 0 and result.stderr.strip().startswith(
        f"error: the output folder {dangling / 'sub'} cannot be made: {dangling} is a link to nothing"
    )


def test_ctrl_c_says_what_became_of_the_run_and_marks_it_failed(tmp_path):
    import signal
    import sqlite3

    var = tmp_path / "var"
    env = {**os.environ, "SONGMILL_VAR_DIR": str(var)}
    render = subprocess.Popen(
        [sys.executable, "-m", "songmill", "render", str(DEBUG), "--out", str(tmp_path / "out")],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def runs() -> list[str]:
        try:
            with contextlib.closing(sqlite3.connect(var / "catalogue.db")) as db:
                return [status for (status,) in db.execute("select status from runs")]
        except sqlite3.Error:  # not made yet
            return []

    deadline = time.monotonic() + 120
    while runs() != ["running"] and render.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runs() == ["running"], "the render never started its run"
    render.send_signal(signal.SIGINT)  # once: a second would stop it at once, with no cleanup
    try:
        _, stderr = render.communicate(timeout=120)  # the stage under way finishes; none starts after it
    except subprocess.TimeoutExpired:
        render.kill()
        pytest.fail("Ctrl-C did not stop the render")
    assert render.returncode == 130, stderr
    assert "interrupted (Ctrl-C): a render or edit under way is marked failed" in stderr and "Traceback" not in stderr, stderr
    assert runs() == ["failed"]


def test_the_command_line_leaves_its_objects_out_of_pythons_collections_at_exit():
    """`songmill` freezes the garbage collector's objects as it exits, after the exit handlers
    registered once it started, so Python's shutdown does not walk them (1.6–1.9 s of an edit's
    exit; README, *Benchmarks*). A handler registered before `main()` runs after its own and sees them frozen."""
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from songmill.engine import cli\n"
        "sys.argv = ['songmill', '--help']\n"
        "cli.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("frozen at exit: True")


def test_a_ctrl_c_that_lands_in_a_finaliser_prints_no_traceback_and_still_stops_the_render(capsys, monkeypatch, tmp_path):
    """Python reports an exception raised in a weakref callback or `__del__` as "Exception ignored"
    with its traceback, and carries on: seen once when Ctrl-C landed in one during a render. The
    stop flag still stops the render before its release steps."""
    from songmill.engine import cli as cli_module
    from songmill.engine.stage import STOP

    class Finalised:
        def __init__(self, raises: BaseException):
            self.raises = raises

        def __del__(self):
            raise self.raises

    monkeypatch.setattr(sys, "unraisablehook", cli_module._interrupt_lost_in_a_finaliser)  # as `songmill`'s main() sets it
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    STOP.set()  # as `_say_interrupted` leaves it
    try:
        Finalised(KeyboardInterrupt())  # dropped at once: the interrupt lands in its finaliser
        assert "Traceback" not in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt, match="interrupted"):
            render(DEBUG, out_dir=tmp_path / "out")
    finally:
        STOP.clear()
    from songmill.catalogue import Catalogue

    catalogue = Catalogue.open()
    assert [run["status"] for run in catalogue.runs_of("debug-single")] == ["failed"]  # ended, not left running
    catalogue.close()
    assert not list((tmp_path / "out").rglob("*.flac"))  # nothing delivered
    Finalised(ValueError("a real bug"))  # anything else is reported as Python reports it
    assert "ValueError: a real bug" in capsys.readouterr().err


@pytest.mark.long
def test_catalogue_ls_shows_rendered_releases(tmp_path):
    render(DEBUG, out_dir=tmp_path / "dist")
    result = cli("catalogue", "ls", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["id"] == "debug-single" and row["last_run"] == "succeeded" and row["tracks"] == 1
    unknown = cli("catalogue", "deliveries", "debug-singel")
    assert (
        unknown.returncode == 2
        and unknown.stderr.strip() == "error: the catalogue has no release 'debug-singel' (songmill catalogue ls lists the releases it has)"
    )


@pytest.mark.long
@pytest.mark.s3
def test_render_against_s3_store(tmp_path, s3_server, monkeypatch):
    endpoint, key, secret = s3_server
    for name, value in {
        "SONGMILL_STORE": "s3://songmill-render/run",
        "SONGMILL_S3_ENDPOINT": endpoint,
        "SONGMILL_S3_ACCESS_KEY": key,
        "SONGMILL_S3_SECRET_KEY": secret,
    }.items():
        monkeypatch.setenv(name, value)
    first = json.loads(render(DEBUG, out_dir=tmp_path / "a").read_text())
    second = json.loads(render(DEBUG, out_dir=tmp_path / "b").read_text())
    assert first["store"].startswith("S3 http://") and all(s["cached"] for s in second["tracks"][0]["stages"])
    assert first["tracks"][0]["artifacts"]["form.json"]["uri"].startswith("s3://songmill-render/run/blobs/")
    stems = {name: a for name, a in first["tracks"][0]["artifacts"].items() if name.startswith("stem-")}
    assert stems and all(
        Path(a["path"]).parent.parent == tmp_path / "a" / "debug-single" / "tracks" and "in_store" not in a for a in stems.values()
    )  # fetched beside the report


def test_lyrics_too_long_for_their_section_are_refused_with_the_config_naming_the_line(tmp_path):
    """A line with more syllables than its phrase carries is a config problem: `validate` and
    `render` name the config's line and the lyric line, exit 2, before anything runs."""
    config = tmp_path / "long.yaml"
    long_line = "and every single word of this unreasonably long and rambling line goes on forever and ever and ever"
    config.write_text(
        DEMO.read_text().replace(
            "    seed: 7",
            f"    seed: 7\n    structure: [intro, {{name: verse, bars: 2}}, chorus, outro]\n"
            f"    lyrics: |\n      [verse]\n      {long_line}\n      short line\n      [chorus]\n      la la la\n",
        )
    )
    lyrics_at = config.read_text().splitlines().index("    lyrics: |") + 1
    for command in (("validate", str(config)), ("render", str(config), "--out", str(tmp_path / "dist"))):
        result = cli(*command)
        assert result.returncode == 2, result.stderr
        [line] = (result.stdout if command[0] == "validate" else result.stderr).strip().splitlines()
        assert line.startswith(
            f"{config}:{lyrics_at}: tracks[0].lyrics: lyrics line 2: "
            f"'{long_line}' has 30 syllables, but its phrase in the verse (1 bar at 104 BPM) carries at most 14;"
        ), line
    assert not (tmp_path / "dist").exists()


def test_lyrics_that_do_not_match_the_structure_fail_naming_the_block(tmp_path):
    config = tmp_path / "mismatch.yaml"
    config.write_text(
        DEMO.read_text().replace(
            "    seed: 7",
            "    seed: 7\n    structure: [intro, verse, chorus, outro]\n"
            "    lyrics: |\n      [verse]\n      one two three\n      [bridge]\n      four five six\n",
        )
    )
    result = cli("render", str(config), "--out", str(tmp_path / "dist"))
    assert result.returncode == 2  # caught when the config is validated, before anything runs
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{config}:")
    assert line.endswith(
        "tracks[0]: lyrics: the structure's chorus (section 3) has no [chorus] block to sing "
        "(the next block is [bridge] at line 3); add the block or change the structure"
    )
    assert not (tmp_path / "dist").exists()


@pytest.mark.long
def test_a_track_that_fails_a_stage_follows_allow_partial_like_a_quarantined_one(tmp_path):
    """Two tracks, the second's DAW score override not a MIDI file (its compose stage fails):
    with allow_partial the first is delivered alone and the run succeeds with a warning naming
    the failed track; without it nothing is delivered and the run fails in one sentence."""
    import yaml

    config = yaml.safe_load(debug_release(tmp_path / "two", tracks=2).read_text())
    (tmp_path / "not-midi.mid").write_bytes(b"RIFF, not a standard MIDI file")
    config["tracks"][1]["score_override"] = "not-midi.mid"
    for allow in (True, False):
        config["release"]["allow_partial"] = allow
        path = tmp_path / f"partial-{allow}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        result = cli("render", str(path), "--out", str(tmp_path / f"dist-{allow}"), env_extra={"SONGMILL_VAR_DIR": str(tmp_path / "var")})
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith(("error:", "warning:"))]
        if allow:
            assert result.returncode == 0, result.stderr
            report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
            assert report["status"] == "succeeded" and {d["path"].rsplit("_", 2)[-2] for d in report["delivered"] if d["format"] == "flac"} == {"01"}
            [warning] = errors  # one line, whole: the failed track, its stage and why
            assert warning.startswith("warning: track 2 (River Lights) failed at stage ") and warning.endswith("; delivered without it (allow_partial)")
        else:
            assert result.returncode == 1 and len(errors) == 1 and errors[0].startswith("error: track 2 (River Lights) failed at stage ")
            assert not (tmp_path / f"dist-{allow}" / "streaming").exists()


def test_memory_freed_between_live_allocations_goes_back_to_the_system_after_a_stage():
    """glibc keeps freed pages that sit between live allocations in its heap (a batch worker grew
    track after track); `return_freed_memory`, called after every stage, hands them back: the
    process's resident memory drops by what was freed. Measured in a fresh process, whose heap
    holds nothing else."""
    import platform
    import subprocess
    import sys

    from songmill.engine.stage import return_freed_memory

    glibc = platform.libc_ver()[0] == "glibc"
    assert return_freed_memory() is glibc
    if not glibc:
        return  # nothing to hand back through: the C library is not glibc
    measure = (
        "import psutil\n"
        "from songmill.engine.stage import return_freed_memory\n"
        "process = psutil.Process()\n"
        "pairs = [(bytearray(60_000), bytearray(600)) for _ in range(4000)]  # 240 MB, a small live block after each\n"
        "kept = [small for _, small in pairs]\n"
        "del pairs  # the 60-kB blocks are free now, each with a live one after it\n"
        "before = process.memory_info().rss\n"
        "assert return_freed_memory()\n"
        "print(before - process.memory_info().rss, len(kept))\n"
    )
    done = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True, cwd=PROJECT, check=True)
    handed_back, kept = (int(v) for v in done.stdout.split())
    assert handed_back > 200 * 2**20 and kept == 4000


def test_denormal_numbers_are_flushed_to_zero_in_the_stage_threads_without_changing_a_measurement():
    """An IIR filter running into digital silence decays into denormal floats, which the CPU
    works on 10–100 times slower; `flush_denormals` (called by every stage and the CLI) makes
    the thread, and the threads it starts, treat them as zero. In a fresh process: a denormal
    times one is itself before and zero after, in the thread and in one it starts; the loudness
    of a signal with silent gaps is the same figure either way."""
    import platform
    import subprocess
    import sys

    if platform.machine() != "x86_64" or platform.libc_ver()[0] != "glibc":
        from songmill.engine.stage import flush_denormals

        assert flush_denormals() is False  # elsewhere the flags are left alone, and it says so
        return
    probe = (
        "import threading, numpy as np\n"
        "from songmill.core import loudness\n"
        "from songmill.engine.stage import flush_denormals\n"
        "tiny = np.array([1e-39], np.float32)\n"
        "rate = 48000\n"
        "t = np.arange(6 * rate) / rate\n"
        "gaps = (np.sin(2 * np.pi * 440 * t) * ((t % 2) < 1)).astype(np.float32)  # one second on, one off\n"
        "before = (float((tiny * np.float32(1))[0]), loudness.integrated_lufs(gaps, rate), loudness.k_weighted_power(gaps, rate))\n"
        "assert flush_denormals()\n"
        "seen = []\n"
        "thread = threading.Thread(target=lambda: seen.append(float((tiny * np.float32(1))[0])))\n"
        "thread.start(); thread.join()\n"
        "after = (float((tiny * np.float32(1))[0]), loudness.integrated_lufs(gaps, rate), loudness.k_weighted_power(gaps, rate))\n"
        "print(before[0], after[0], seen[0], before[1], after[1], float(np.max(np.abs(before[2] - after[2]))))\n"
    )
    scoped = (  # what run_stage and render use: flushed inside, this thread as it was after
        "import numpy as np\n"
        "from songmill.engine.stage import denormals_flushed\n"
        "tiny = np.array([1e-39], np.float32)\n"
        "with denormals_flushed() as flushed:\n"
        "    inside = float((tiny * np.float32(1))[0])\n"
        "print(flushed, inside, float((tiny * np.float32(1))[0]) > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", scoped], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["True", "0.0", "True"], done.stdout + done.stderr[-2000:]
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    denormal, flushed, in_thread, lufs_before, lufs_after, largest_change = (float(v) for v in done.stdout.split())
    assert denormal > 0 and flushed == 0 and in_thread == 0
    assert lufs_before == lufs_after and largest_change < 1e-30


def test_the_release_steps_warnings_reach_a_scheduler_tasks_log_as_warnings(caplog):
    """Under a scheduler the release step prints to a console whose lines become log records at
    WARNING (Airflow logs a task's stderr as errors: "ERROR - warning: … without Content Credentials")."""
    import logging

    from rich.console import Console

    from songmill.engine.tasks import _LinesToLog

    console = Console(file=_LinesToLog(logging.WARNING), width=10_000, no_color=True)
    with caplog.at_level(logging.WARNING, logger="songmill.engine.tasks"):
        console.print("[yellow]warning:[/yellow] streaming: delivered without Content Credentials: no key", highlight=False, soft_wrap=True)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("WARNING", "warning: streaming: delivered without Content Credentials: no key")]
