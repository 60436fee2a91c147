"""The fault matrix: each row a fault injected into a real render (tests/fault_driver.py swaps a
stage for one that does the same work and then the fault), and what the line must do about it.
Each test records its row; `make test-all` (SONGMILL_FULL=1) runs every row and writes the table
to benchmarks/results/fault-matrix.md, which the README's Reliability section shows.

The default suite runs a row of each kind; the rest (a kill in every stage, the server restarts)
are marked slow.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from songmill.core.store import file_sha256
from songmill.engine.track_stages import TRACK_STAGES
from tests.conftest import writable

PROJECT = Path(__file__).resolve().parent.parent
DEBUG = PROJECT / "config/releases/debug.yaml"
DRIVER = Path(__file__).with_name("fault_driver.py")
FULL = os.environ.get("SONGMILL_FULL") == "1"
ROWS: list[dict] = []
DEFAULT_KILLS = ("export",)  # the others: make test-all (vocals and delivery also have their own kill tests)


def record(fault: str, expected: str, observed: str) -> None:
    ROWS.append({"fault": fault, "expected": expected, "observed": observed})


@pytest.fixture(scope="module", autouse=True)
def write_matrix():
    yield
    if FULL and ROWS:  # rows of this run replace the same faults' rows of an earlier one (a run of some rows keeps the rest)
        path = PROJECT / "benchmarks/results/fault-matrix.md"
        table = {line.split(" | ")[0][2:]: line for line in (path.read_text().splitlines()[2:] if path.is_file() else [])}
        table.update({r["fault"]: f"| {r['fault']} | {r['expected']} | {r['observed']} |" for r in ROWS})
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join(["| fault injected | the line must | observed |", "|---|---|---|", *(table[k] for k in sorted(table))]) + "\n")


def songmill(*args: str, var: Path, env: dict | None = None, fault: list[str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`songmill ARGS` (or the fault driver around it) in its own process, with its own var folder."""
    command = [sys.executable, str(DRIVER), *fault, "--", *args] if fault else [sys.executable, "-m", "songmill", *args]
    environment = {**os.environ, "SONGMILL_VAR_DIR": str(var), **(env or {})}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout, cwd=PROJECT)


def artifacts(report_path: Path) -> dict[str, str]:
    report = json.loads(report_path.read_text())
    return {name: a["sha256"] for track in report["tracks"] for name, a in track["artifacts"].items()}


def delivered_audio(out: Path) -> dict[str, str]:
    """{file name: sha256 of its decoded samples} of the delivered FLACs (the files' own bytes hold
    their delivery's time in the Content Credentials, so a redelivery of the same audio differs)."""
    import hashlib

    import soundfile

    return {p.name: hashlib.sha256(soundfile.read(p, dtype="int32")[0].tobytes()).hexdigest() for p in (out / "streaming").rglob("*.flac")}


def render_here(var: Path, out: Path, **options) -> Path:
    """The debug release rendered in this process (whose libraries are loaded already), for the
    renders a row needs before or after its fault: only the faulted render needs a process of its
    own, to be killed, filled up or paused. Returns the run report's path."""
    from songmill.engine.runner import render

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SONGMILL_VAR_DIR", str(var))
        return render(DEBUG, out_dir=out, **options)


def check(var: Path, *extra: str) -> tuple[int, dict]:
    done = songmill("catalogue", "check", "--json", *extra, var=var)
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The debug release rendered once with nothing going wrong: what every retry must equal."""
    folder = tmp_path_factory.mktemp("reference")
    report = render_here(folder / "var", folder / "dist")
    return {"artifacts": artifacts(report), "audio": delivered_audio(folder / "dist")}


# ------------------------------------------------------------------ a worker killed in every stage


@pytest.mark.long
@pytest.mark.parametrize("stage", [pytest.param(name, marks=() if name in DEFAULT_KILLS else pytest.mark.slow) for name in TRACK_STAGES.names()])
def test_a_worker_killed_in_any_stage_is_retried_to_identical_artifacts(tmp_path, reference, stage):
    var, out = tmp_path / "var", tmp_path / "dist"
    killed = songmill("render", str(DEBUG), "--out", str(out), var=var, fault=["kill-in", stage])
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not list((var / "artifacts" / "blobs").rglob(".incoming.*")), "a partial blob was left"
    assert not (out / "streaming").exists(), "something was delivered by the killed run"
    code, found = check(var)
    assert code == 1 and [f["kind"] for f in found["findings"]] == ["interrupted-run"]
    assert artifacts(render_here(var, out)) == reference["artifacts"]  # the retry
    assert delivered_audio(out) == reference["audio"]
    assert check(var, "--repair")[0] == 0 and check(var)[0] == 0  # the killed run closed; nothing else disagrees
    record(f"worker SIGKILLed in the {stage} stage", "the retry makes byte-identical artifacts; nothing partial stored or delivered", "as expected")


# ------------------------------------------------------------------ a blob changed on disk


@pytest.mark.long
def test_a_blob_changed_on_disk_is_detected_by_its_hash_recomputed_and_never_delivered(tmp_path, reference):
    var, out = tmp_path / "var", tmp_path / "dist"
    render_here(var, out)
    master = reference["artifacts"]["master-streaming.wav"]
    blob = var / "artifacts" / "blobs" / master[:2] / master
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the master
    writable(blob).write_bytes(bytes(data))
    code, found = check(var)
    assert code == 1 and [(f["kind"], f["subject"].split()[1]) for f in found["findings"]] == [("corrupt-artifact", "master-streaming.wav")]
    again = render_here(var, out)
    stages = {s["stage"]: s["cached"] for s in json.loads(again.read_text())["tracks"][0]["stages"]}
    assert stages["master"] is False and stages["mix"] is True  # made again, from the intact mix
    assert artifacts(again) == reference["artifacts"]
    assert file_sha256(blob) == master and len(list((var / "artifacts" / "quarantine").iterdir())) == 1
    assert delivered_audio(out) == reference["audio"]
    assert check(var)[0] == 0
    record(
        "a stored blob (the master) changed on disk",
        "detected by its hash on read, set aside, recomputed, never delivered",
        "quarantined; master re-run from the cached mix; delivery byte-identical",
    )


# ------------------------------------------------------------------ the disk full


@pytest.fixture()
def small_disk(tmp_path):
    """A 512 MiB tmpfs of our own (root only): a filesystem this test can fill without harm."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root")
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.long
@pytest.mark.parametrize("where", [pytest.param("export", marks=pytest.mark.slow), "deliver"])
def test_the_disk_full_fails_in_one_sentence_keeps_the_previous_delivery_and_leaves_nothing_partial(tmp_path, small_disk, where):
    """The artifact store (export) or the delivery folder (delivery) on a filesystem that fills up
    just before the step: one clear sentence; the previous delivery intact; no partial file left;
    the space given back once the filler goes, and the retry completes."""
    var = small_disk / "var" if where == "export" else tmp_path / "var"
    out = tmp_path / "dist" if where == "export" else small_disk / "dist"
    render_here(var, out, seed=3)
    before = delivered_audio(out)
    [folder] = list((out / "streaming").iterdir())
    manifest = (folder / "checksums.sha256").read_bytes()

    full = songmill("render", str(DEBUG), "--out", str(out), "--seed", "4", "--redeliver", var=var, fault=["fill-before", where, str(small_disk)])
    assert full.returncode == 1, full.stderr[-2000:]
    [error] = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert "free space" in error or "no space" in error.lower(), error
    assert "Traceback" not in full.stderr
    assert delivered_audio(out) == before and (folder / "checksums.sha256").read_bytes() == manifest
    assert not list(small_disk.rglob(".staging-*")) and not list(small_disk.rglob(".incoming.*"))
    (small_disk / "filler").unlink()
    leftover = sum(p.stat().st_size for p in small_disk.rglob("*") if p.is_file())
    render_here(var, out, seed=4, redeliver=True)  # the retry
    assert delivered_audio(out) != before
    check(var, "--repair")
    assert check(var)[0] == 0
    record(
        f"the disk full during {'export (the artifact store)' if where == 'export' else 'delivery (the delivery folder)'}",
        "one clear sentence; the previous delivery intact; nothing partial; space given back; the retry completes",
        f"{error[7:90]}…; {leftover / 2**20:.0f} MiB left on the filesystem after the filler went",
    )


# ------------------------------------------------------------------ two renders at once


@pytest.mark.long
def test_two_renders_of_one_release_at_once_deliver_one_after_the_other(tmp_path, reference):
    var, out = tmp_path / "var", tmp_path / "dist"
    command = [sys.executable, "-m", "songmill", "render", str(DEBUG), "--out", str(out)]
    environment = {**os.environ, "SONGMILL_VAR_DIR": str(var)}
    both = [subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT) for _ in range(2)]
    results = [process.communicate(timeout=600) for process in both]
    assert [p.returncode for p in both] == [0, 0], "\n".join(r[1][-3000:] for p, r in zip(both, results) if p.returncode)
    assert delivered_audio(out) == reference["audio"]
    deliveries = json.loads(songmill("catalogue", "deliveries", "debug-single", "--json", var=var).stdout)
    assert [d["replaces"] for d in deliveries] == [None, deliveries[0]["id"]]  # one chain: the second replaced the first
    assert check(var)[0] == 0
    record(
        "two renders of one release at once (two processes)",
        "one delivery at a time: the other waits, then replaces it with the same files",
        "the second waited on the release lock and replaced the first; audio identical; check clean",
    )


# ------------------------------------------------------------------ the night's date


@pytest.mark.parametrize(
    "zone, moment, night",
    [
        ("UTC", "2026-12-01T23:59:30+00:00", "2026-12-01"),
        ("UTC", "2026-12-02T00:00:30+00:00", "2026-12-02"),
        ("Asia/Tokyo", "2026-12-01T14:59:30+00:00", "2026-12-01"),  # 23:59:30 in Tokyo
        ("Asia/Tokyo", "2026-12-01T15:00:30+00:00", "2026-12-02"),  # 00:00:30 in Tokyo, still the 1st in UTC
        ("America/Los_Angeles", "2026-12-02T07:59:30+00:00", "2026-12-01"),  # 23:59:30 the day before, in LA
        ("America/Los_Angeles", "2026-03-08T10:00:00+00:00", "2026-03-08"),  # the morning clocks go forward
        ("Pacific/Kiritimati", "2026-12-01T10:00:30+00:00", "2026-12-02"),  # UTC+14
    ],
)
def test_the_nightly_date_around_midnight_in_another_time_zone_is_the_labels(zone, moment, night, monkeypatch, tmp_path):
    from types import SimpleNamespace

    from operators.release import PlanNightlyOperator

    config = tmp_path / "config"
    shutil.copytree(PROJECT / "config", config)
    plan = (config / "catalogue.yaml").read_text().replace("timezone: UTC", f"timezone: {zone}")
    (config / "catalogue.yaml").write_text(plan)
    monkeypatch.setenv("SONGMILL_CONFIG_DIR", str(config))
    at = dt.datetime.fromisoformat(moment)
    scheduled = SimpleNamespace(logical_date=at, run_after=at)
    assert PlanNightlyOperator(task_id="plan").night({"dag_run": scheduled}) == dt.date.fromisoformat(night)
    record(f"the nightly run at {moment[:16]} UTC, label in {zone}", f"plans the night of the label's date ({night})", "as expected")


def test_a_time_zone_that_is_not_one_is_refused_naming_the_line(tmp_path):
    from songmill.core.errors import ConfigError
    from songmill.engine.planning import load_catalogue_plan

    path = tmp_path / "catalogue.yaml"
    path.write_text((PROJECT / "config/catalogue.yaml").read_text().replace("timezone: UTC", "timezone: Mars/Olympus"))
    with pytest.raises(ConfigError) as err:
        load_catalogue_plan(path)
    assert err.value.problems == [f"{path}:6: timezone: 'Mars/Olympus' is not an IANA time zone (e.g. UTC, Europe/London, Asia/Tokyo)"]


# ------------------------------------------------------------------ a catalogue upgraded with data in it


def _catalogue_at(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from songmill.catalogue import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_catalogue_upgraded_from_the_previous_schema_with_data_in_it_loses_nothing(tmp_path, backend, request):
    """A catalogue at revision 0006 (before runs recorded their process), filled by a real render
    and listener feedback, is opened by this version: every row of every table is still there,
    unchanged, and the new columns are empty."""
    import sqlalchemy

    from songmill.catalogue import Catalogue

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'old.db'}"
    _catalogue_at(url, "0006")
    engine = sqlalchemy.create_engine(url)
    rows = {
        "releases": "INSERT INTO releases (id, title, artist, label, type, release_date, genre, upc, config_path, config_sha256, created_at, updated_at) "
        "VALUES ('old-single', 'Old', 'A', 'L', 'single', '2026-11-01', 'pop', '0200000000011', 'x.yaml', 'ab', '2026-11-01', '2026-11-01')",
        "tracks": "INSERT INTO tracks (release_id, number, title, isrc, seed, status) VALUES ('old-single', 1, 'Old', 'QZSGM2600001', 7, 'delivered')",
        "runs": "INSERT INTO runs (release_id, runner, base_seed, status, started_at) VALUES ('old-single', 'embedded', 7, 'succeeded', '2026-11-01')",
        "identifier_counters": "INSERT INTO identifier_counters (series, next_value) VALUES ('isrc:QZSGM:26', 2)",
        "deliveries": "INSERT INTO deliveries (release_id, run_id, profile, destination, upc, manifest_sha256, files, delivered_at) "
        "VALUES ('old-single', 1, 'streaming', '/d', '0200000000011', 'cd', '[]', '2026-11-01')",
    }
    with engine.begin() as connection:
        for statement in rows.values():
            connection.exec_driver_sql(statement)
    with engine.connect() as connection:  # closed before the upgrade: an open read would hold its tables
        before = {table: [tuple(r) for r in connection.exec_driver_sql(f"SELECT * FROM {table}")] for table in rows}
    engine.dispose()

    catalogue = Catalogue.open(url)  # migrates to head
    with catalogue.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0009"
        after = {table: [tuple(r) for r in connection.exec_driver_sql(f"SELECT * FROM {table}")] for table in rows}
        assert connection.exec_driver_sql("SELECT host, pid FROM runs").fetchall() == [(None, None)]
        assert connection.exec_driver_sql("SELECT count(*) FROM track_versions").scalar() == 0  # 0008: the editor's versions, none yet
    for table in rows:
        assert [r[: len(before[table][0])] for r in after[table]] == before[table], table
    assert catalogue.track_isrc(1, given="auto", country="QZ", registrant="SGM", year=2026) == "QZSGM2600001"  # kept, not allocated again
    catalogue.close()
    record(f"the catalogue upgraded 0006 → 0009 with data in it ({backend})", "nothing lost; new columns empty", "every row unchanged")


def test_a_catalogue_with_edited_versions_upgrades_to_version_isrcs_keeping_them(tmp_path):
    """0009 adds each version's own ISRC and models (SQLite rebuilds the table to add them): the
    versions made before are all kept, with neither set."""
    import sqlalchemy

    from songmill.catalogue import Catalogue

    url = f"sqlite:///{tmp_path / 'versions.db'}"
    _catalogue_at(url, "0008")
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO track_versions (release_id, track_number, number, parent, operations, added, command, author, reason, created_at, "
            "config_sha256, seed, track_spec, artifacts, recomputed, measures, folder, run_id) VALUES ('old-single', 1, 2, 1, "
            """'[{"op": "vocal_level", "by_db": 3.0}]', '[{"op": "vocal_level", "by_db": 3.0}]', 'louder vocals', 'ana', NULL, '2026-12-01', """
            "'ab', 7, '{}', '{}', '[\"mix\"]', '{}', '/v2', NULL)"
        )
    engine.dispose()
    catalogue = Catalogue.open(url)
    [version] = catalogue.versions("old-single", 1)
    assert (version["number"], version["command"], version["author"], version["isrc"], version["models"]) == (2, "louder vocals", "ana", None, None)
    assert version["operations"] == [{"op": "vocal_level", "by_db": 3.0}]
    catalogue.close()
    record("the catalogue upgraded 0008 → 0009 with edited versions in it", "every version kept; no ISRC yet", "kept, isrc empty")


# ------------------------------------------------------------------ the database and the object store restarted


def _wait_for(flag: Path, process: subprocess.Popen, timeout_s: float = 300) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not flag.exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the render never reached the pause"
        time.sleep(0.1)


@pytest.mark.slow
def test_postgresql_stopped_mid_run_the_run_resumes_or_retries_and_no_identifier_is_given_twice(tmp_path, reference):
    """Twice, against a PostgreSQL catalogue of the test's own: stopped and started again while
    the render is in its mix stage (the render resumes: the catalogue reconnects), and stopped
    until the render has finished its stages (the render fails in one sentence; the retry after
    the restart completes). One ISRC, one UPC, one chain of deliveries; the check is clean."""
    from tests import servers

    with servers.embedded_postgres(restartable=True) as database:
        var, out, flag = tmp_path / "var", tmp_path / "dist", tmp_path / "paused"
        environment = {**os.environ, "SONGMILL_VAR_DIR": str(var), "SONGMILL_DATABASE_URL": database.url}
        render = [sys.executable, str(DRIVER), "pause-in", "mix", str(flag), "--", "render", str(DEBUG), "--out", str(out)]

        resumed = subprocess.Popen(render, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT)
        _wait_for(flag, resumed)
        database.stop()
        database.start()
        flag.unlink()
        stdout, stderr = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, stderr[-2000:]
        resumed_report = stdout.strip().splitlines()[-1]

        failed = subprocess.Popen(
            [*render[:-2], "--seed", "5", "--redeliver", "--out", str(out)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT,
        )
        _wait_for(flag, failed)
        database.stop()
        flag.unlink()
        stdout, stderr = failed.communicate(timeout=600)
        assert failed.returncode == 1 and "Traceback" not in stderr, stderr[-2000:]
        [error] = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert "catalogue database" in error
        database.start()
        retry = songmill("render", str(DEBUG), "--out", str(out), "--seed", "5", "--redeliver", var=var, env={"SONGMILL_DATABASE_URL": database.url})
        assert retry.returncode == 0, retry.stderr[-2000:]
        report = json.loads(Path(retry.stdout.strip().splitlines()[-1]).read_text())
        deliveries = json.loads(songmill("catalogue", "deliveries", "debug-single", "--json", var=var, env={"SONGMILL_DATABASE_URL": database.url}).stdout)
        repaired = songmill("catalogue", "check", "--repair", "--json", var=var, env={"SONGMILL_DATABASE_URL": database.url})
        clean = songmill("catalogue", "check", "--json", var=var, env={"SONGMILL_DATABASE_URL": database.url})
    isrc = report["isrcs"]["1"]
    assert isrc and isrc == json.loads(Path(resumed_report).read_text())["isrcs"]["1"]  # the track kept its ISRC through both
    assert [d["upc"] for d in deliveries] == [deliveries[0]["upc"]] * len(deliveries)
    assert [d["replaces"] for d in deliveries] == [None] + [d["id"] for d in deliveries[:-1]]
    assert {f["kind"] for f in json.loads(repaired.stdout)["findings"]} <= {"interrupted-run"}
    assert clean.returncode == 0, clean.stdout
    record(
        "PostgreSQL stopped and started again mid-run",
        "the run resumes or fails in one sentence and its retry completes; no identifier given twice",
        f"resumed across a restart; down until the end: `{error[7:110]}…`, the retry completed; one ISRC, one UPC",
    )


@pytest.mark.long
@pytest.mark.s3
def test_seaweedfs_stopped_mid_upload_leaves_the_batch_incomplete_and_current_unchanged_until_a_retry(tmp_path, monkeypatch):
    """An S3 delivery whose object store stops after the first file: one sentence, the CURRENT
    pointer still names the previous complete batch, and a retry once it is back completes."""
    from minio import Minio

    from songmill.core.errors import SongmillError
    from songmill.core.store import S3Store
    from songmill.release.deliver import deliver_s3, write_manifest
    from tests import servers

    with servers.seaweedfs(restartable=True) as (weed, key, secret):
        for name, value in {"SONGMILL_S3_ENDPOINT": weed.url, "SONGMILL_S3_ACCESS_KEY": key, "SONGMILL_S3_SECRET_KEY": secret}.items():
            monkeypatch.setenv(name, value)
        client = Minio(weed.url, access_key=key, secret_key=secret, secure=False)

        def staged(tag: str) -> Path:
            folder = tmp_path / tag
            folder.mkdir()
            for n in range(3):
                (folder / f"part{n}.bin").write_bytes(f"{tag} {n} ".encode() * 50_000)
            write_manifest(folder)
            return folder

        first = deliver_s3(staged("old"), "s3://songmill-dist/streaming", "0200000000011")
        current = lambda: client.get_object("songmill-dist", "streaming/0200000000011/CURRENT").read().decode()  # noqa: E731
        before = current()
        upload, calls = S3Store.upload, []

        def stop_after_the_first(self, path, *parts):
            calls.append(path.name)
            if len(calls) == 2:
                weed.stop()
            return upload(self, path, *parts)

        monkeypatch.setattr(S3Store, "upload", stop_after_the_first)
        with pytest.raises(SongmillError) as err:
            deliver_s3(staged("new"), "s3://songmill-dist/streaming", "0200000000011")
        monkeypatch.setattr(S3Store, "upload", upload)
        weed.start()
        assert current() == before and first.endswith(before)
        new_batches = {o.object_name.split("/")[2] for o in client.list_objects("songmill-dist", prefix="streaming/0200000000011/", recursive=True)} - {
            before,
            "CURRENT",
        }
        assert all(
            not any(
                o.object_name.endswith("checksums.sha256") for o in client.list_objects("songmill-dist", prefix=f"streaming/0200000000011/{b}/", recursive=True)
            )
            for b in new_batches
        )  # what was uploaded of the new batch has no manifest: incomplete by definition
        retried = deliver_s3(tmp_path / "new", "s3://songmill-dist/streaming", "0200000000011")
        assert retried.endswith(current()) and current() != before
    record(
        "SeaweedFS stopped in the middle of an S3 delivery's upload",
        "the batch stays incomplete, CURRENT unchanged; a retry completes it",
        f"`{str(err.value)[:90]}…`; CURRENT still named the old batch; the retry moved it",
    )


@pytest.mark.long
def test_catalogue_check_reports_each_disagreement_and_repairs_only_what_is_safe(tmp_path):
    """One render, then a disagreement of each other kind made by hand: a delivered file edited,
    a killed delivery's staging folder, a killed store write's temporary file, a blob deleted,
    an ISRC given to a second track. `check` names each (exit 1); `--repair` removes the two
    leftovers and leaves the rest for a person, unchanged."""
    import sqlite3
    import time

    var, out = tmp_path / "var", tmp_path / "dist"
    first = render_here(var, out)
    [folder] = list((out / "streaming").iterdir())
    provenance = folder / "provenance.json"
    provenance.write_bytes(provenance.read_bytes() + b" ")
    (folder.parent / f".staging-{folder.name}-0123456789ab").mkdir()
    blobs = var / "artifacts" / "blobs"
    lyrics = artifacts(first)["lyrics.json"]
    (blobs / lyrics[:2] / lyrics).unlink()
    leftovers = [blobs / ".incoming.x1", blobs / "ab" / ".incoming.x2"]  # a write's, and an older store's
    for leftover in leftovers:
        leftover.parent.mkdir(exist_ok=True)
        leftover.write_bytes(b"half a blob")
        os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    with sqlite3.connect(var / "catalogue.db") as db:
        isrc = db.execute("SELECT isrc FROM tracks").fetchone()[0]
        db.execute("INSERT INTO tracks (release_id, number, title, isrc, seed, status) VALUES ('debug-single', 2, 'Copy', ?, 1, 'rendered')", (isrc,))
    code, found = check(var)
    kinds = sorted(f["kind"] for f in found["findings"])
    assert code == 1 and kinds == ["delivery-altered", "duplicate-identifier", "leftover-staging", "leftover-upload", "missing-artifact"], kinds
    code, repaired = check(var, "--repair")
    assert code == 1 and sorted(f["kind"] for f in repaired["findings"] if f["repaired"]) == ["leftover-staging", "leftover-upload"]
    assert not any(leftover.exists() for leftover in leftovers) and not list(folder.parent.glob(".staging-*"))
    assert sorted(f["kind"] for f in check(var)[1]["findings"]) == ["delivery-altered", "duplicate-identifier", "missing-artifact"]
    assert provenance.read_bytes().endswith(b" ")  # a delivered file is never rewritten by a repair


TWO_AIRFLOW_RUNS = """
import subprocess, sys
from pathlib import Path
subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
sys.path.insert(0, sys.argv[1])
import songmill_releases
run = songmill_releases.build_release_dags(Path(sys.argv[2]))["songmill_release_debug"].test()
print("STATE", run.state)
"""


@pytest.mark.slow
def test_two_airflow_runs_of_one_release_at_once_deliver_one_after_the_other(tmp_path, reference):
    """The debug release's DAG run twice at once (`dag.test()` in two processes, each with an
    Airflow of its own, as a rerun and a backfill would be), against one catalogue, store and
    output folder: both runs succeed; the second delivery waits on the release lock and replaces
    the first, never beside it."""
    config = tmp_path / "config"
    shutil.copytree(os.environ["SONGMILL_CONFIG_DIR"], config)
    (config / "releases").mkdir(exist_ok=True)
    (config / "releases" / "debug.yaml").write_text(DEBUG.read_text())
    shared = {"SONGMILL_CONFIG_DIR": str(config), "SONGMILL_VAR_DIR": str(tmp_path / "var"), "SONGMILL_OUT_DIR": str(tmp_path / "dist")}
    runs = []
    for n in range(2):
        home = tmp_path / f"airflow-{n}"
        home.mkdir()
        environment = {**os.environ, **shared, "AIRFLOW_HOME": str(home)}
        command = [sys.executable, "-c", TWO_AIRFLOW_RUNS, str(PROJECT / "dags"), str(config / "releases")]
        runs.append(subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT))
    outputs = [run.communicate(timeout=900) for run in runs]
    assert all("STATE success" in out for out, _ in outputs), [err[-1500:] for _, err in outputs]
    assert delivered_audio(tmp_path / "dist") == reference["audio"]
    deliveries = json.loads(songmill("catalogue", "deliveries", "debug-single", "--json", var=tmp_path / "var").stdout)
    assert [d["replaces"] for d in deliveries] == [None, deliveries[0]["id"]]
    assert check(tmp_path / "var")[0] == 0
    record(
        "two Airflow runs of one release at once (dag.test in two processes)",
        "one delivery at a time: the other waits, then replaces it with the same files",
        "both runs succeeded; the second delivery replaced the first; audio identical; check clean",
    )
