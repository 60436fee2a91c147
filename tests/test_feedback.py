"""Listener feedback: imports in real layouts, measures with shrinkage, plans drawn from them,
the review queue, experiments — on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import Release, Track
from songmill.core.errors import SongmillError
from songmill.engine.planning import load_catalogue_plan, plan_night
from songmill.feedback.ingest import import_file, rejections, rematch_unknown, unknown_isrcs
from songmill.feedback.layouts import DISTROKID_COLUMNS, PLAY_LOG_COLUMNS
from songmill.feedback.measures import FeedbackSnapshot, shrunk, snapshot, track_measures
from songmill.feedback.review import enqueue_least_certain, record_verdict, review_queue, withheld

TODAY = dt.date(2026, 12, 1)
ISRC_1, ISRC_2, ISRC_UNKNOWN = "QZSGM2600001", "QZSGM2600002", "QZSGM2699999"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalogue.db'}"
    return request.getfixturevalue("postgres_url")


def _catalogue_with_tracks(url: str, attributes: dict[str, dict] | None = None) -> Catalogue:
    catalogue = Catalogue.open(url)
    with catalogue.session() as s, s.begin():
        s.add(
            Release(
                id="nightly-2026-11-30",
                title="N",
                artist="A",
                label="L",
                type="single",
                release_date=dt.date(2026, 11, 30),
                genre="pop",
                config_path="",
                config_sha256="",
            )
        )
        s.add(Track(release_id="nightly-2026-11-30", number=1, title="Night Bus", isrc=ISRC_1, seed=1, status="delivered"))
        s.add(Track(release_id="nightly-2026-11-30", number=2, title="Copper Sky", isrc=ISRC_2, seed=2, status="delivered"))
    for number, attrs in (attributes or {}).items():
        catalogue.set_track_attributes(int(number), attrs, None)
    return catalogue


def distrokid_row(**values) -> dict:
    row = {
        "Reporting Date": "2026-11-05",
        "Sale Month": "2026-10",
        "Store": "Spotify",
        "Artist": "The Songmill Collective",
        "Title": "Night Bus",
        "ISRC": "QZ-SGM-26-00001",
        "UPC": "0200000000017",
        "Quantity": "120",
        "Team Percentage": "100",
        "Song/Album": "Song",
        "Country of Sale": "GB",
        "Songwriter Royalties Withheld": "0",
        "Earnings (USD)": "0.41",
    }
    return {**row, **values}


def write_distrokid(path: Path, rows: list[dict], *, cut_last_row: bool = False) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=DISTROKID_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    if cut_last_row:  # a download that stopped part-way through a row
        text = path.read_text()
        path.write_text(text[: text.rstrip("\n").rfind("\t", 0, len(text) - 30)])
    return path


def write_play_log(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PLAY_LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def play(isrc: str, n: int, *, ms: int, done: bool, saved: bool = False, listener: str | None = None) -> dict:
    return {
        "ts": f"2026-11-30T20:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "isrc": isrc,
        "listener": listener or f"l{n}",
        "conn_country": "GB",
        "ms_played": ms,
        "reason_start": "clickrow",
        "reason_end": "trackdone" if done else "fwdbtn",
        "skipped": str(ms < 30_000).lower(),
        "saved": str(saved).lower(),
    }


# ------------------------------------------------------------------------------------ imports


def test_distrokid_export_with_bad_rows_imports_the_good_ones_once(database_url, tmp_path):
    """Must show: a sample export in a real layout with bad rows: the counts, each rejected row with
    its line and reason, the unknown ISRC kept aside, and a re-import that counts nothing twice."""
    catalogue = _catalogue_with_tracks(database_url)
    rows = [
        distrokid_row(),  # line 2
        distrokid_row(**{"Country of Sale": "US", "Quantity": "80"}),  # line 3
        distrokid_row(Quantity="-4", Store="Deezer"),  # line 4: negative
        distrokid_row(**{"Sale Month": "2027-01", "Store": "Tidal"}),  # line 5: in the future
        distrokid_row(ISRC=ISRC_UNKNOWN, Title="Not ours yet"),  # line 6: unknown ISRC, kept aside
        distrokid_row(),  # line 7: the same row as line 2
        distrokid_row(ISRC="NOT-AN-ISRC", Store="Amazon"),  # line 8
        distrokid_row(**{"Song/Album": "Album", "Store": "iTunes"}),  # line 9
    ]
    export = write_distrokid(tmp_path / "distrokid-2026-10.tsv", rows)
    result = import_file(export, catalogue, today=TODAY)
    assert (result.layout, result.rows, result.imported, result.duplicates, result.unknown_isrc) == ("distrokid", 8, 3, 1, 1)
    assert result.rejected == [
        (4, "Quantity is negative (-4); counts cannot be below zero"),
        (5, "Sale Month 2027-01 is after today (2026-12-01); a report cannot count plays that have not happened"),
        (8, "ISRC 'NOT-AN-ISRC' is not an ISRC (CC-XXX-YY-NNNNN)"),
        (9, "Song/Album is 'Album': only a song's rows count a track's listening"),
    ]
    assert [r["line"] for r in rejections(catalogue, result.import_id)] == [4, 5, 8, 9]  # stored, with the raw row
    assert "Deezer" in rejections(catalogue, result.import_id)[0]["raw"]
    assert unknown_isrcs(catalogue) == {ISRC_UNKNOWN: 1}
    measures = {m.isrc: m for m in track_measures(catalogue)}
    assert measures[ISRC_1].streams == 200 and measures[ISRC_1].completion_rate is None  # DistroKid says nothing of how plays ended
    raw = Path(tmp_path / "var" / "feedback" / "raw")
    assert [p.read_bytes() for p in raw.iterdir()] == [export.read_bytes()]  # the raw file kept

    again = import_file(export, catalogue, today=TODAY)  # the same file: nothing counted twice
    assert again.already_imported and "already imported" in again.summary()
    overlapping = write_distrokid(tmp_path / "distrokid-2026-10-and-11.tsv", [distrokid_row(), distrokid_row(**{"Sale Month": "2026-11", "Quantity": "7"})])
    more = import_file(overlapping, catalogue, today=TODAY)  # a later export repeating a row
    assert (more.imported, more.duplicates) == (1, 1)
    assert {m.isrc: m.streams for m in track_measures(catalogue)}[ISRC_1] == 207

    with catalogue.session() as s, s.begin():  # the unknown ISRC's track appears: its events find it
        s.add(Track(release_id="nightly-2026-11-30", number=3, title="Not ours yet", isrc=ISRC_UNKNOWN, seed=3))
    assert ISRC_UNKNOWN in {m.isrc for m in track_measures(catalogue)} and unknown_isrcs(catalogue) == {}  # before any next import
    assert rematch_unknown(catalogue) == 0  # nothing left waiting


def test_play_log_measures_completion_skips_and_saves_and_shrinkage(tmp_path):
    catalogue = _catalogue_with_tracks(
        f"sqlite:///{tmp_path / 'c.db'}",
        {"1": {"mood": "hopeful", "identity": "cleo"}, "2": {"mood": "tender", "identity": "cleo"}},
    )
    plays = [play(ISRC_1, i, ms=180_000, done=True, saved=i < 2) for i in range(6)]
    plays += [play(ISRC_1, 6 + i, ms=12_000, done=False) for i in range(2)]  # skips before 30 s
    plays += [play(ISRC_1, 8 + i, ms=95_000, done=False) for i in range(2)]  # streams not finished
    plays += [play(ISRC_2, 20 + i, ms=180_000, done=i < 1) for i in range(3)]
    result = import_file(write_play_log(tmp_path / "plays.csv", plays), catalogue, today=TODAY)
    assert (result.layout, result.imported, result.rejected_count) == ("play-log", 13, 0)
    m = {x.isrc: x for x in track_measures(catalogue)}[ISRC_1]
    assert (m.plays, m.streams, m.completions, m.skips, m.saves) == (10, 8, 6, 2, 2)
    assert (m.completion_rate, m.skip_rate, m.save_rate) == (6 / 8, 2 / 10, 2 / 8)
    # shrinkage: a value heard 3 times stays near the mean; 3,000 plays speak for themselves
    few, many = shrunk(3, 3, 0.5, 200), shrunk(2100, 3000, 0.5, 200)
    assert few.mean < 0.51 < 0.68 < many.mean and few.sd > many.sd
    snap = snapshot(catalogue)
    assert snap.counts["mood"] == {"hopeful": (6, 8), "tender": (1, 3)} and snap.counts["identity"] == {"cleo": (7, 11)}


@pytest.mark.parametrize(
    "content, message",
    [
        ("song,plays\nx,1\n", "is in no layout songmill knows (its header starts 'song,plays'); the layouts known are distrokid"),
        ("", "is in no layout songmill knows (its header starts '(empty)')"),
    ],
)
def test_a_file_in_no_known_layout_names_the_layouts(tmp_path, content, message):
    catalogue = Catalogue.open(f"sqlite:///{tmp_path / 'c.db'}")
    path = tmp_path / "export.csv"
    path.write_text(content)
    with pytest.raises(SongmillError) as err:
        import_file(path, catalogue, today=TODAY)
    assert message in str(err.value) and "play-log" in str(err.value)


def test_truncated_files_report_the_cut_row_and_keep_the_rest(tmp_path):
    catalogue = _catalogue_with_tracks(f"sqlite:///{tmp_path / 'c.db'}")
    cut = write_distrokid(tmp_path / "cut.tsv", [distrokid_row(), distrokid_row(**{"Country of Sale": "FR"})], cut_last_row=True)
    result = import_file(cut, catalogue, today=TODAY)
    assert result.imported == 1 and result.rejected == [(3, "has 6 fields where the header names 13 (is the file truncated?)")]
    quoted = tmp_path / "quoted.csv"  # a play log that ends inside a quoted field
    write_play_log(quoted, [play(ISRC_1, 1, ms=180_000, done=True)])
    quoted.write_text(quoted.read_text() + '2026-11-30T21:00:00Z,QZSGM2600001,"l9,GB,180000')
    result = import_file(quoted, catalogue, today=TODAY)
    assert result.imported == 1 and result.rejected_count == 1 and result.rejected[0][0] == 3 and "truncated" in result.rejected[0][1]


def test_gzipped_export_and_duplicate_rows_inside_one_file(tmp_path):
    catalogue = _catalogue_with_tracks(f"sqlite:///{tmp_path / 'c.db'}")
    plain = write_play_log(tmp_path / "plays.csv", [play(ISRC_1, 1, ms=180_000, done=True)] * 3)
    packed = tmp_path / "plays.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    result = import_file(packed, catalogue, today=TODAY)
    assert (result.imported, result.duplicates) == (1, 2)


def test_feedback_import_cli_exit_codes(tmp_path):
    """exit 0 when every row was counted, 1 when any was rejected, 2 for a file it cannot use."""
    env_var = {"SONGMILL_VAR_DIR": str(tmp_path / "var")}
    good = write_play_log(tmp_path / "good.csv", [play(ISRC_1, 1, ms=180_000, done=True)])
    bad = write_play_log(tmp_path / "bad.csv", [play(ISRC_1, 2, ms=-5, done=True)])

    def run(*args):
        import os

        return subprocess.run(
            [sys.executable, "-m", "songmill", "feedback", "import", *map(str, args)], capture_output=True, text=True, env={**os.environ, **env_var}
        )

    ok = run(good)
    assert ok.returncode == 0 and "1 imported (1 for ISRCs the catalogue does not know, kept aside), 0 duplicates skipped, 0 rejected" in ok.stdout
    rejected = run(bad)
    assert rejected.returncode == 1 and "line 2: ms_played is negative (-5); counts cannot be below zero" in rejected.stdout
    missing = run(tmp_path / "nope.csv")
    assert missing.returncode == 2 and "nope.csv does not exist" in missing.stderr and "Traceback" not in missing.stderr
    assert run(good).stdout.strip().endswith("nothing counted twice")


def test_a_refine_method_or_a_report_path_that_cannot_be_used_is_one_sentence(tmp_path, monkeypatch):
    """`models refine --method bogus` was a ValueError traceback once feedback existed (and a
    misleading "no listener feedback" before); `feedback report --html FOLDER` an IsADirectoryError."""
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    refine = CliRunner().invoke(app, ["models", "refine", "melody-gru-celtic", "--method", "bogus"])
    assert refine.exit_code == 2 and refine.stderr.strip() == "error: --method 'bogus' is not a fine-tune method (full or lora)"
    folder = tmp_path / "reports"
    folder.mkdir()
    report = CliRunner().invoke(app, ["feedback", "report", "--html", str(folder)])
    assert report.exit_code == 2 and f"--html {folder} is a folder; give the path of the HTML file to write" in report.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("kept")
    report = CliRunner().invoke(app, ["feedback", "report", "--html", str(a_file / "r.html")])
    assert report.exit_code == 2 and f"--html {a_file / 'r.html'} cannot be written" in report.stderr and a_file.read_text() == "kept"
    written = CliRunner().invoke(app, ["feedback", "report", "--html", str(folder / "r.html")])
    assert written.exit_code == 0 and (folder / "r.html").read_text().lower().startswith("<!doctype html>")
    queue = CliRunner().invoke(app, ["feedback", "queue"])  # nothing queued yet: said, with where it comes from
    assert queue.exit_code == 0 and queue.stdout.startswith("the review queue is empty: after each nightly batch")


# ------------------------------------------------------------------------------- the plan


def test_plan_draws_what_listeners_keep_deterministically_and_within_limits():
    plan = load_catalogue_plan()
    plan = plan.model_copy(update={"tracks_per_night": 6, "feedback": plan.feedback.model_copy(update={"exploration_share": 0.0, "min_variety": {}})})
    loved = FeedbackSnapshot({"mood": {"energetic": (2700, 3000), "hopeful": (300, 3000)}, "identity": {"cleo": (2600, 3000), "ben": (200, 3000)}}, 0.4, 200)
    config, choices = plan_night(plan, dt.date(2026, 12, 2), loved)
    assert [t["mood"] for t in config["tracks"]] == ["energetic"] * 6
    assert [t["voice"]["identity"] for t in config["tracks"]] == ["cleo"] * 6
    assert plan_night(plan, dt.date(2026, 12, 2), loved) == (config, choices)  # same date, same feedback: same plan
    why = next(c for c in choices if c["attribute"] == "mood")["why"]
    assert why.startswith("Thompson draw 0.") and "over 3000 streams" in why

    limited = plan.model_copy(update={"feedback": plan.feedback.model_copy(update={"min_variety": {"mood": 3}, "never_change": ["identity"]})})
    config, choices = plan_night(limited, dt.date(2026, 12, 2), loved)
    assert len({t["mood"] for t in config["tracks"]}) >= 3
    assert all("never_change" in c["why"] for c in choices if c["attribute"] == "identity")
    assert any("variety" in c["why"] for c in choices if c["attribute"] == "mood")
    off = plan.model_copy(update={"feedback": plan.feedback.model_copy(update={"enabled": False})})
    from songmill.engine.planning import nightly_release

    assert plan_night(off, dt.date(2026, 12, 2), loved)[0] == nightly_release(off, dt.date(2026, 12, 2))


def test_a_rerun_of_a_night_plans_the_same_release_after_new_feedback(tmp_path):
    from songmill.feedback.nightly import plan_choices, plan_with_feedback

    catalogue = _catalogue_with_tracks(f"sqlite:///{tmp_path / 'c.db'}", {"1": {"mood": "energetic"}, "2": {"mood": "tender"}})
    import_file(write_play_log(tmp_path / "a.csv", [play(ISRC_1, i, ms=180_000, done=True) for i in range(40)]), catalogue, today=TODAY)
    plan = load_catalogue_plan()
    first, _ = plan_with_feedback(plan, dt.date(2026, 12, 1), catalogue)
    recorded = plan_choices(catalogue, "nightly-2026-12-01")
    assert recorded and all(len(c["snapshot_sha256"]) == 64 for c in recorded)
    import_file(write_play_log(tmp_path / "b.csv", [play(ISRC_2, 100 + i, ms=180_000, done=True) for i in range(400)]), catalogue, today=TODAY)
    again, _ = plan_with_feedback(plan, dt.date(2026, 12, 1), catalogue)
    assert again == first  # the night's snapshot is kept: a rerun or backfill plans the same
    assert plan_with_feedback(plan, dt.date(2026, 12, 2), catalogue)[0] != first


def test_catalogue_yaml_feedback_limits_are_checked(tmp_path):
    text = (Path(__file__).parents[1] / "config" / "catalogue.yaml").read_text()
    bad = tmp_path / "catalogue.yaml"
    bad.write_text(text.replace("never_change: []", "never_change: [colour]"))
    from songmill.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_catalogue_plan(bad)
    assert "'colour' is not a planned attribute (genre, preset, mood, tempo_band, mode, identity, style)" in str(err.value)


# ------------------------------------------------------------------------- people and queue


def test_review_queue_takes_the_least_certain_and_a_rejection_withholds_delivery(database_url, tmp_path):
    from songmill.release.package import _without_rejected

    catalogue = _catalogue_with_tracks(database_url, {"1": {"mood": "energetic", "identity": "cleo"}, "2": {"mood": "dreamy", "identity": "dean"}})
    import_file(write_play_log(tmp_path / "a.csv", [play(ISRC_1, i, ms=180_000, done=i % 2 == 0) for i in range(600)]), catalogue, today=TODAY)
    feedback = FeedbackSnapshot({"mood": {"energetic": (300, 600)}, "identity": {"cleo": (300, 600)}}, 0.5, 200)
    queued = enqueue_least_certain(catalogue, "nightly-2026-11-30", 1, feedback)
    assert [q["number"] for q in queued] == [2]  # dreamy and dean were never heard: least certain
    assert enqueue_least_certain(catalogue, "nightly-2026-11-30", 1, feedback) == []  # queued once

    for bad, message in [
        ({"rating": 6}, "rating 6 is out of range; give a whole number from 1 to 5"),
        ({"rating": 0}, "rating 0 is out of range"),
        ({"verdict": "maybe"}, "verdict 'maybe' is not one of approve, reject"),
        ({}, "a review needs a rating (1–5), a verdict (approve or reject), or both"),
    ]:
        with pytest.raises(SongmillError) as err:
            record_verdict(catalogue, ISRC_2, user="ana", **bad)
        assert message in str(err.value)
    with pytest.raises(SongmillError, match="no track QZSGM2699999 in the catalogue"):
        record_verdict(catalogue, ISRC_UNKNOWN, user="ana", rating=3)

    record_verdict(catalogue, "QZ-SGM-26-00002", user="ana", rating=2, verdict="reject", comment="the bridge drags")
    assert review_queue(catalogue)[0]["status"] == "rejected"
    assert withheld(catalogue, "nightly-2026-11-30") == {2: "rejected in review by ana: the bridge drags"}
    assert {m.isrc: m.rating_mean for m in track_measures(catalogue)}[ISRC_2] == 2.0  # verdicts feed the same store

    from songmill.core.spec import load_release
    from songmill.release.package import RenderedTrack

    spec = load_release(Path(__file__).parents[1] / "config/releases/demo.yaml").model_copy()
    spec = spec.model_copy(update={"release": spec.release.model_copy(update={"id": "nightly-2026-11-30", "allow_partial": True})})
    kept, why = _without_rejected(spec, [RenderedTrack(1, 1, {}), RenderedTrack(2, 2, {})], catalogue)
    assert [t.number for t in kept] == [1] and why == {2: "rejected in review by ana: the bridge drags"}
    with pytest.raises(SongmillError, match="every track of nightly-2026-11-30 was rejected in review"):
        _without_rejected(spec, [RenderedTrack(2, 2, {})], catalogue)
    whole = spec.model_copy(update={"release": spec.release.model_copy(update={"allow_partial": False})})
    with pytest.raises(SongmillError, match="release.allow_partial is false"):
        _without_rejected(whole, [RenderedTrack(1, 1, {}), RenderedTrack(2, 2, {})], catalogue)
    record_verdict(catalogue, ISRC_2, user="ben", verdict="approve")  # the latest verdict counts
    assert withheld(catalogue, "nightly-2026-11-30") == {}


def test_experiment_assignment_is_by_hash_recorded_and_reported(tmp_path):
    from songmill.feedback.experiments import Experiment, apply_experiments, arm_for, experiment_report

    catalogue = Catalogue.open(f"sqlite:///{tmp_path / 'c.db'}")
    experiment = Experiment(releases="nightly-*", arms={"A": {"instrumentation": "pop"}, "B": {"instrumentation": "synthpop"}})
    arms = {}
    from songmill.feedback.simulate import SimCatalogue

    sim = SimCatalogue(catalogue)
    rows = []
    for day in range(12):
        release_id = f"nightly-2026-11-{day + 1:02d}"
        config = {"release": {"id": release_id}, "tracks": [{"instrumentation": "folk"}, {"instrumentation": "rock"}]}
        applied = apply_experiments(catalogue, config, {"presets": experiment})
        arm = applied[0]["arm"]
        arms[release_id] = arm
        assert arm == arm_for("presets", experiment, release_id) and {t["instrumentation"] for t in config["tracks"]} == {
            experiment.arms[arm]["instrumentation"]
        }
        for number in (1, 2):
            _, isrc = sim.add_track(release_id, number, f"t{number}", {"genre": "pop", "preset": experiment.arms[arm]["instrumentation"]}, None, 2026)
            done = 70 if arm == "B" else 50
            rows += [play(isrc, i, ms=180_000, done=i < done, listener=f"{release_id}-{i}") for i in range(100)]
    assert set(arms.values()) == {"A", "B"}
    import_file(write_play_log(tmp_path / "plays.csv", rows), catalogue, today=TODAY)
    other = Experiment(releases="nightly-*", arms={"A": {"instrumentation": "ballad"}, "B": {"instrumentation": "rock"}})
    again = {"release": {"id": "nightly-2026-11-01"}, "tracks": [{}]}
    assert apply_experiments(catalogue, again, {"presets": other})[0]["arm"] == arms["nightly-2026-11-01"]  # recorded once
    report = experiment_report(catalogue, "presets")
    effect = report["effect"]
    assert effect["compared"] == "B − A" and effect["difference"] == pytest.approx(0.2, abs=1e-9)
    assert effect["ci95"][0] > 0.1 and effect["ci95"][1] < 0.3 and effect["p_b_beats_a"] > 0.99
    wald = effect["ci95_plays_independent"]
    assert wald[0] < 0.2 < wald[1]
    with pytest.raises(SongmillError, match="experiment 'pop-vs-synthpop' has no releases assigned yet"):  # configured, never run
        experiment_report(catalogue, "pop-vs-synthpop")
    with pytest.raises(SongmillError, match=r"there is no experiment 'none' in \S*config/experiments.yaml \(experiments: pop-vs-synthpop\)"):
        experiment_report(catalogue, "none")


def test_feedback_report_html_has_tables_and_a_plot_per_attribute(tmp_path):
    from songmill.feedback.report import feedback_report, report_html

    catalogue = _catalogue_with_tracks(f"sqlite:///{tmp_path / 'c.db'}", {"1": {"mood": "hopeful"}, "2": {"mood": "tender"}})
    import_file(write_play_log(tmp_path / "a.csv", [play(ISRC_1, i, ms=180_000, done=i < 30) for i in range(40)]), catalogue, today=TODAY)
    report = feedback_report(catalogue)
    assert report["tracks"][0]["completion_rate"] == 0.75 and report["tracks"][0]["completion_streams"] == 40  # the rate says what it is of
    assert report["attributes"]["mood"][0]["value"] == "hopeful" and report["attributes"]["mood"][0]["interval_90"][0] < 0.75
    page = report_html(report)
    assert page.count("<svg") == len(report["attributes"]) and "Night Bus" in page and "75.0 % of 40" in page
    json.dumps(report)  # plain data


# --------------------------------------------------------------------------- end to end


@pytest.mark.long
def test_a_rendered_track_is_measured_refined_from_and_withheld_when_rejected(tmp_path, monkeypatch):
    """The whole loop on a real render: its attributes and melody recorded, a play log for its
    ISRC measured, a refinement trained on its kept melody (from the artifact store) and
    registered with lineage, and a rejection in review that keeps it out of the next delivery."""
    from sqlalchemy import select

    from models.versions import VersionStore
    from songmill.engine.runner import render
    from songmill.feedback.refinement import MELODY_MODEL, refine_from_feedback
    from tests.conftest import DEBUG

    out = tmp_path / "dist"
    render(DEBUG, out_dir=out, seed=11)
    catalogue = Catalogue.open()
    with catalogue.session() as s:
        isrc = s.scalar(select(Track.isrc).where(Track.release_id == "debug-single"))
    plays = [play(isrc, i, ms=30_000 + 1000 * i, done=i % 3 != 0) for i in range(30)]
    import_file(write_play_log(tmp_path / "plays.csv", plays), catalogue)
    [measured] = track_measures(catalogue)
    assert measured.attributes["mood"] == "hopeful" and measured.attributes["mode"] == "minor" and measured.attributes["tempo_band"] == "120-127"
    assert measured.attributes["melody_model"] == "1.0" and measured.attributes["identity"] != "instrumental"
    assert 0.0 < measured.melody["step_share"] < 1.0 and measured.completion_rate == pytest.approx(20 / 30)

    result = refine_from_feedback(catalogue, corpus_files=30, by="test")
    assert result["version"] == "1.0+r1" and result["verdict"] in ("promote", "refuse")
    lineage = VersionStore().lineage(MELODY_MODEL, "1.0+r1")
    assert lineage["base_version"] == "1.0" and lineage["training_data"]["kept_melodies"] == 1 and len(lineage["training_data"]["snapshot_sha256"]) == 64
    assert set(lineage["evaluation"]["candidate"]) >= {"heldout_nll", "in_scale", "chord_tone", "diversity", "duplicate_rate", "preference"}
    assert "Verdict: **" in (VersionStore().folder(MELODY_MODEL, "1.0+r1") / "MODEL_CARD.md").read_text()

    # the same path refines a registered lyrics LM (a tiny one built here) on the kept lyrics
    from songmill.feedback.refinement import refine_lyrics_from_feedback
    from tests.conftest import build_tiny_lm, write_registry_with

    lm = build_tiny_lm(tmp_path / "tiny-lm")
    monkeypatch.setenv(
        "SONGMILL_MODEL_REGISTRY", str(write_registry_with({"tiny-lyrics-lm": {"backend": "transformers", "path": str(lm)}}, tmp_path / "registry.yaml"))
    )
    refined = refine_lyrics_from_feedback(catalogue, "tiny-lyrics-lm", by="test")
    ev = refined["evaluation"]
    assert refined["version"] == "test+r1" and ev["candidate"]["kept_nll"] < ev["in_use"]["kept_nll"]
    assert refined["verdict"] == "refuse" and not refined["promoted"]  # one kept track: too little to change what every render sings
    assert any("learned from 1 track's feedback; promoting needs at least 10" in reason for reason in refined["reasons"]), refined["reasons"]
    assert (VersionStore().folder("tiny-lyrics-lm", "test+r1") / "tiny-lm" / "model.safetensors").is_file()
    if refined["promoted"]:  # the registry now resolves the refined folder, hash-checked
        from models.registry import ModelRegistry

        assert ModelRegistry.load().resolve("tiny-lyrics-lm", commercial=False).parent.name == "test+r1"
    with pytest.raises(SongmillError, match="is a torch-safetensors model, not a lyrics LM"):
        refine_lyrics_from_feedback(catalogue, MELODY_MODEL)

    record_verdict(catalogue, isrc, user="ana", verdict="reject", comment="too sleepy")
    catalogue.close()
    with pytest.raises(SongmillError, match="every track of debug-single was rejected in review"):
        render(DEBUG, out_dir=out, seed=11)


def test_the_experiment_interval_widens_when_an_arms_tracks_disagree():
    """Plays of one track are not independent: an arm whose tracks split 90 % / 50 % is less sure
    than its 1,200 plays alone suggest, and the track bootstrap says so where Wald would not."""
    import numpy as np

    from songmill.feedback.experiments import _bootstrap_rates

    rng = np.random.default_rng(0)
    steady, split = [(50, 100)] * 12, [(90, 100), (50, 100)] * 6
    diffs = _bootstrap_rates(split, rng, 4000) - _bootstrap_rates(steady, rng, 4000)
    low, high = np.percentile(diffs, [2.5, 97.5])
    wald = 1.96 * np.sqrt(0.7 * 0.3 / 1200 + 0.5 * 0.5 / 1200)
    assert high - low > 3 * (2 * wald) and low < 0.2 < high
