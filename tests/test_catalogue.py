"""The catalogue, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from songmill.catalogue import EDITOR_RUNNER, Catalogue
from songmill.catalogue.schema import Release, StageRun, Track
from songmill.core.errors import ServiceError
from songmill.core.spec import load_release
from songmill.core.store import ArtifactRef
from songmill.engine.stage import StageResult
from tests.conftest import PROJECT

DEMO = PROJECT / "config/releases/demo.yaml"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalogue.db'}"
    return request.getfixturevalue("postgres_url")


def _ref(name: str, byte: str) -> ArtifactRef:
    return ArtifactRef(name, byte * 64, 10, f"file:///{name}")


def test_migrations_create_every_table_and_are_idempotent(database_url):
    Catalogue.open(database_url).close()
    catalogue = Catalogue.open(database_url)  # second open: already at head, nothing to do
    tables = set(inspect(catalogue.engine).get_table_names())
    assert {
        "releases",
        "tracks",
        "runs",
        "stage_runs",
        "artifacts",
        "artifact_inputs",
        "artifact_models",
        "qc_results",
        "identifier_counters",
        "deliveries",
        "alembic_version",
        "feedback_imports",
        "feedback_rejections",
        "listener_events",
        "verdicts",
        "track_attributes",
        "review_queue",
        "plan_choices",
        "experiment_assignments",
    } <= tables


def test_release_tracks_runs_and_lineage(database_url):
    catalogue = Catalogue.open(database_url)
    spec = load_release(DEMO)
    catalogue.upsert_release(spec, config_path=str(DEMO), config_sha256="f" * 64)
    track_id = catalogue.upsert_track(spec.release.id, 1, title="Paper Lanterns", seed=7)
    assert catalogue.upsert_track(spec.release.id, 1, title="Paper Lanterns", seed=7) == track_id
    run_id = catalogue.start_run(spec.release.id, runner="embedded", base_seed=None)

    model = {"name": "melody-gru", "version": "1", "sha256": "c" * 64, "licence": "CC0"}
    form = StageResult("form", "1", "k1", False, {"form.json": _ref("form.json", "a")}, {}, [])
    score = StageResult("compose", "1", "k2", False, {"score.mid": _ref("score.mid", "b")}, {"form.json": _ref("form.json", "a")}, [model])
    catalogue.record_stage(run_id, track_id, form)
    catalogue.record_stage(run_id, track_id, score)
    cached_again = StageResult("compose", "1", "k2", True, {"score.mid": _ref("score.mid", "b")}, {"form.json": _ref("form.json", "a")}, [model])
    catalogue.record_stage(run_id, track_id, cached_again)
    catalogue.set_track_status(track_id, "rendered", duration_s=181.5)
    catalogue.finish_run(run_id, status="succeeded", report_path="/tmp/r.json")

    [lineage] = catalogue.lineage("b" * 64)
    assert lineage["stage"] == "compose"
    assert lineage["inputs"] == [("form.json", "a" * 64)]
    assert lineage["models"] == [("melody-gru", "1", "c" * 64)]
    [row] = catalogue.releases()
    assert row["id"] == "demo-single" and row["tracks"] == 1 and row["runs"] == 1 and row["last_run"] == "succeeded"
    with catalogue.session() as s:
        assert s.scalar(select(Track.duration_s)) == 181.5
        assert [r.cached for r in s.scalars(select(StageRun).order_by(StageRun.id))] == [False, False, True]
        assert s.get(Release, "demo-single").title == "Paper Lanterns"


def test_two_runners_adding_the_same_release_and_track_at_once_both_succeed(database_url):
    """Two renders of one release start together: both read "no such release", both insert it,
    and one collides on its key. That one tries again and finds the other's row (a render died
    of this in CI)."""
    spec = load_release(DEMO)
    ours, theirs = Catalogue.open(database_url), Catalogue.open(database_url)
    collided: list[str] = []

    def the_other_runner_gets_there_first(session, _context, _instances):
        new = [type(row).__name__ for row in session.new if isinstance(row, (Release, Track))]
        if not new or collided or session.bind is theirs.engine:
            return
        collided.extend(new)  # once: between our read and our insert, the other runner commits the same row
        if "Release" in new:
            theirs.upsert_release(spec, config_path=str(DEMO), config_sha256="e" * 64)
        if "Track" in new:
            theirs.upsert_track(spec.release.id, 1, title="Paper Lanterns", seed=7)

    event.listen(Session, "before_flush", the_other_runner_gets_there_first)
    try:
        ours.upsert_release(spec, config_path=str(DEMO), config_sha256="f" * 64)
        assert collided == ["Release"]
        collided.clear()
        track_id = ours.upsert_track(spec.release.id, 1, title="Paper Lanterns", seed=7)
        assert collided == ["Track"]
    finally:
        event.remove(Session, "before_flush", the_other_runner_gets_there_first)
    with ours.session() as s:
        assert s.get(Release, spec.release.id).config_sha256 == "f" * 64  # ours, written on the second try
        assert [t.id for t in s.scalars(select(Track))] == [track_id]
    ours.close(), theirs.close()


def test_an_edited_versions_print_is_found_by_verify_and_not_by_duplicate_detection(database_url):
    catalogue = Catalogue.open(database_url)
    spec = load_release(DEMO)
    catalogue.upsert_release(spec, config_path=str(DEMO), config_sha256="f" * 64)
    track_id = catalogue.upsert_track(spec.release.id, 1, title="Paper Lanterns", seed=7)
    rendered, first, edited, rerun, never_kept = (
        catalogue.start_run(spec.release.id, runner=runner, base_seed=None) for runner in ("embedded", EDITOR_RUNNER, EDITOR_RUNNER, "embedded", EDITOR_RUNNER)
    )
    recorded = ((rendered, "AAAA", "a"), (first, "AAAA", "a"), (edited, "BBBB", "b"), (rerun, "AAAA", "a"), (never_kept, "CCCC", "c"))
    for run_id, prints, master in recorded:  # version 1 is the config's recording, made again by the editor from the cache
        catalogue.record_print(
            run_id, track_id, seed=7, master_sha256=master * 64, track_print={"chromaprint": prints, "duration_s": 180.0, "melody_ngrams": []}
        )
    version = {"config_sha256": "f" * 64, "seed": 7, "track_spec": {}, "artifacts": {}, "recomputed": [], "measures": {}, "folder": "/v"}
    catalogue.add_version(spec.release.id, 1, parent=None, operations=[], added=[], command=None, author="a", reason=None, run_id=first, **version)
    op = [{"op": "tempo", "to_bpm": 92.0}]
    catalogue.add_version(
        spec.release.id, 1, parent=1, operations=op, added=op, command="slow it down to 92", author="b", reason=None, run_id=edited, **version
    )

    assert catalogue.newest_print(track_id)["run_id"] == rerun  # a rerun of the config is compared with the config's recording
    assert [p["chromaprint"] for _, p in catalogue.track_prints()] == ["AAAA"]
    found = [(t["run_id"], t["version"], p["chromaprint"]) for t, p in catalogue.every_print()]
    assert found == [(rendered, None, "AAAA"), (edited, 2, "BBBB")]  # one master, one print (the first); an edit never kept is no version
    catalogue.close()


def test_each_delivery_keeps_its_audio_and_the_delivery_it_replaced(database_url):
    catalogue = Catalogue.open(database_url)
    spec = load_release(DEMO)
    catalogue.upsert_release(spec, config_path=str(DEMO), config_sha256="f" * 64)
    assert catalogue.latest_delivery(spec.release.id, "streaming") is None
    common = {
        "release_id": spec.release.id,
        "run_id": None,
        "profile": "streaming",
        "destination": "/d",
        "upc": "0200000000011",
        "manifest_sha256": "e" * 64,
        "files": [],
    }
    first = catalogue.record_delivery(**common, content={1: "a" * 64})
    second = catalogue.record_delivery(**common, content={1: "b" * 64}, replaces_id=first, replaced_because="track 1 sounds different")
    latest = catalogue.latest_delivery(spec.release.id, "streaming")
    assert latest["id"] == second and latest["content"] == {1: "b" * 64}  # track numbers come back as numbers
    assert [(d["id"], d["replaces"], d["replaced_because"]) for d in catalogue.deliveries(spec.release.id)] == [
        (first, None, None),
        (second, first, "track 1 sounds different"),
    ]
    catalogue.close()


def test_a_table_piped_to_another_program_keeps_every_cell_whole(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    monkeypatch.setenv("SONGMILL_DATABASE_URL", f"sqlite:///{tmp_path / 'catalogue.db'}")
    catalogue = Catalogue.open()
    spec = load_release(DEMO)
    catalogue.upsert_release(spec, config_path=str(DEMO), config_sha256="f" * 64)
    destination = "/srv/deliveries/" + "a-long-folder-name-" * 6 + "streaming"  # rich cut it to "…" at 80 columns
    catalogue.record_delivery(
        release_id=spec.release.id,
        run_id=None,
        profile="streaming",
        destination=destination,
        upc="0200000000011",
        manifest_sha256="e" * 64,
        files=[],
        content={},
    )
    catalogue.close()
    result = CliRunner().invoke(app, ["catalogue", "deliveries", spec.release.id])  # not a terminal, as through a pipe
    assert result.exit_code == 0, result.output
    assert destination in result.stdout and "…" not in result.stdout


def test_dead_postgres_url_is_one_sentence_with_the_password_hidden():
    with pytest.raises(ServiceError) as err:
        Catalogue.open("postgresql+psycopg2://songmill:s3cret@127.0.0.1:9/catalogue")
    message = str(err.value)
    assert message.startswith("catalogue database postgresql+psycopg2://songmill:***@127.0.0.1:9/catalogue is unreachable")
    assert "s3cret" not in message and "SONGMILL_DATABASE_URL" in message and "\n" not in message


def test_nonsense_database_url_is_named():
    with pytest.raises(ServiceError, match="is not a database URL"):
        Catalogue.open("not a url")


def test_a_catalogue_that_cannot_be_opened_is_one_sentence_from_every_command(tmp_path):
    """A damaged SQLite file, a database kind SQLAlchemy does not know, a file where the folder
    should be: each was a Python traceback from `catalogue ls`, `verify`, `render`."""
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "catalogue.db").write_bytes(b"not a database at all, just bytes " * 100)
    a_file = tmp_path / "a-file"
    a_file.write_text("kept")
    cases = [
        (f"sqlite:///{damaged / 'catalogue.db'}", "cannot be read (file is not a database); restore it from a backup"),
        ("bogus://x", "catalogue database URL bogus://x names no database songmill can use"),
        (f"sqlite:///{a_file / 'catalogue.db'}", f"the catalogue's folder {a_file} cannot be made"),
    ]
    for url, says in cases:
        with pytest.raises(ServiceError) as err:
            Catalogue.open(url)
        assert says in str(err.value) and "\n" not in str(err.value), url
        result = CliRunner().invoke(app, ["catalogue", "ls"], env={"SONGMILL_DATABASE_URL": url})
        assert result.exit_code == 1 and result.stderr.startswith("error: ") and says in result.stderr and "Traceback" not in result.output, url
    assert (damaged / "catalogue.db").read_bytes().startswith(b"not a database") and a_file.read_text() == "kept"  # nothing written over


def test_the_web_servers_catalogue_follows_a_sqlite_file_replaced_under_it(tmp_path, monkeypatch):
    """A catalogue restored from a backup (its file replaced) still takes writes from a running
    server: a connection kept to the deleted file would refuse them as a "readonly database"."""
    from songmill.catalogue import shared_catalogue

    database = tmp_path / "catalogue.db"
    monkeypatch.setenv("SONGMILL_DATABASE_URL", f"sqlite:///{database}")
    spec = load_release(DEMO)
    first = shared_catalogue()
    first.upsert_release(spec, config_path=str(DEMO), config_sha256="a" * 64)
    assert shared_catalogue() is first  # the same file: kept open
    backup = tmp_path / "backup.db"
    backup.write_bytes(database.read_bytes())
    database.unlink()
    backup.rename(database)
    after = shared_catalogue()
    after.upsert_release(spec, config_path=str(DEMO), config_sha256="b" * 64)
    with after.session() as s:
        assert s.scalars(select(Release.config_sha256)).one() == "b" * 64
    # another URL (a test, or a server re-pointed): another catalogue
    monkeypatch.setenv("SONGMILL_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    assert shared_catalogue() is not after


def test_catalogue_check_says_what_to_do_about_what_it_cannot_repair(tmp_path):
    """A disagreement `--repair` leaves to a person ends with what to do (it said "needs you")."""
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    catalogue = Catalogue.open(url)
    spec = load_release(DEMO)
    catalogue.upsert_release(spec, config_path="x", config_sha256="0" * 64)
    gone = tmp_path / "dist" / "streaming" / "0200000000011"  # a delivery whose folder was removed
    catalogue.record_delivery(
        release_id=spec.release.id, run_id=None, profile="streaming", destination=str(gone), upc="0200000000011", manifest_sha256="0" * 64, files=[]
    )
    catalogue.close()
    result = CliRunner().invoke(app, ["catalogue", "check"], env={"SONGMILL_DATABASE_URL": url, "SONGMILL_VAR_DIR": str(tmp_path / "var")})
    assert result.exit_code == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("delivery-missing")]
    assert line.endswith("[needs you: render the release again (songmill render CONFIG) to deliver it]"), line
