"""The musical half of the gate, the duplicate check and the QC report, on rendered songs.

One short sung song is rendered once for the module; its master is then altered the ways a
broken pipeline would (tempo changed after mastering, the wrong key claimed) and judged again
by `songmill qc`. Duplicates: the same song rendered into one catalogue under a second release
is caught and re-seeded; another seed, or a rerun of the same release, is not a duplicate."""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT, render_release_text

SONG = """
release:
  id: RELEASE
  title: Harbour Test
  artist: The Songmill Collective
  label: Songmill Records
  type: single
  date: 2027-02-01
  genre: pop
  p_line: 2027 Songmill Records
  c_line: 2027 Songmill Records
  profiles: [streaming]
tracks:
  - title: Same Old Song
    theme: the same old song playing on the harbour radio
    mood: bright
    tempo: 112
    key: D major
    structure: [{name: verse, bars: 4}, {name: chorus, bars: 4}]
    VOICE
    seed: SEED
"""


def song(release_id: str, seed: int, *, sung: bool = False) -> str:
    voice = "voice: {identity: ava, style: bright}" if sung else ""
    return SONG.replace("RELEASE", release_id).replace("SEED", str(seed)).replace("VOICE", voice)


@pytest.fixture(scope="module")
def sung(tmp_path_factory) -> dict:
    return render_release_text(song("musical-test", 4, sung=True), tmp_path_factory.mktemp("sung"))


def qc(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "songmill", "qc", str(path), "--profile", "streaming", *extra],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=os.environ.copy(),
    )


def master_of(report: dict) -> Path:
    return Path(report["tracks"][0]["artifacts"]["master-streaming.wav"]["path"])


def test_the_render_gate_measures_tempo_key_vocal_and_lyrics(sung):
    track = sung["tracks"][0]
    musical = track["qc"]["musical"]
    assert track["status"] == "rendered" and track["qc"]["passed"]
    assert musical["tempo_error_pct"] <= 2.0 and musical["key_detected"] == "D major" and musical["key_score"] == 1.0
    assert musical["vocal_median_cents"] <= 15 and musical["vocal_voiced_share"] >= 0.8
    assert musical["unsung_syllables"] == 0 and musical["chorus_problems"] == 0 and musical["explicit_words"] == 0
    checked = {c["metric"] for c in track["qc"]["profiles"]["streaming"]["checks"]}
    assert {
        "tempo_error_pct",
        "key_score",
        "vocal_median_cents",
        "vocal_p90_cents",
        "note_changes_on_time",
        "unsung_syllables",
        "chorus_problems",
        "rhyme_misses",
        "explicit_words",
    } <= checked


@pytest.mark.long
def test_a_song_whose_tempo_was_altered_after_mastering_fails_the_tempo_check(sung, tmp_path):
    master = master_of(sung)
    faster = tmp_path / "faster.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(master), "-af", "atempo=1.06", "-c:a", "pcm_f32le", str(faster)], check=True)

    done = qc(master, "--tempo", "112", "--key", "D major")
    assert done.returncode == 0, done.stdout + done.stderr
    done = qc(faster, "--tempo", "112", "--key", "D major", "--json")
    verdict = json.loads(done.stdout)
    assert done.returncode == 1
    [reason] = [r for r in verdict["reasons"] if r.startswith("tempo")]
    assert reason.startswith("tempo 118.") and "% off the spec's 112 BPM (bar 2 %, half/double time allowed)" in reason
    assert verdict["musical"]["tempo_error_pct"] == pytest.approx(6.0, abs=1.0)


@pytest.mark.long
def test_half_or_double_time_is_not_a_tempo_error(sung):
    done = qc(master_of(sung), "--tempo", "56")
    assert done.returncode == 0, done.stdout


@pytest.mark.long
def test_the_wrong_key_fails_with_the_detected_one_named(sung):
    done = qc(master_of(sung), "--key", "F# major")
    assert done.returncode == 1
    assert "detected key D major is not the spec's F# major (key score 0, bar 1" in done.stdout


def test_the_reports_spectrogram_reads_a_tone_at_its_frequency_and_level():
    import numpy as np

    from qc.report import spectrogram_db

    rate = 48000
    tone = (0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(5 * rate) / rate)).astype(np.float32)  # −6.02 dBFS
    db, top_hz = spectrogram_db(np.stack([tone, tone], axis=1), rate)
    assert 19000 < top_hz <= 20000 and db.shape == (99, 426)  # 50 ms frames, 47 Hz rows
    row_hz = top_hz / db.shape[1]
    loudest_row = int(np.argmax(db.max(axis=0)))
    assert loudest_row * row_hz <= 1000.0 < (loudest_row + 1) * row_hz
    assert -6.02 - 1.5 < db.max() <= -6.02 + 0.1  # a Hann window reads a tone between bins up to 1.4 dB low
    assert np.median(db[:, 100:]) < -100  # far from the tone: nothing


def test_a_key_that_is_not_a_key_exits_2_naming_the_option(sung):
    done = qc(master_of(sung), "--key", "H major")
    assert done.returncode == 2 and done.stderr.startswith("error: --key: 'H major' is not a key")


def test_the_qc_report_is_one_self_contained_html_file_with_its_plots(sung):
    from lxml import html
    from PIL import Image

    path = Path(sung["qc_report"])
    assert path.parent == master_of(sung).parents[2]  # beside the run report
    page = html.fromstring(path.read_bytes())
    assert page.findtext(".//h1").startswith("QC report: Harbour Test")
    assert "1 of 1 track(s) passed the gate" in page.text_content()
    assert not page.xpath("//link | //script[@src] | //img[not(starts-with(@src, 'data:'))]")  # nothing to fetch
    plots = {img.get("data-plot"): Image.open(io.BytesIO(base64.b64decode(img.get("src").split(",", 1)[1]))) for img in page.xpath("//img[@class='plot']")}
    assert set(plots) == {"waveform", "spectrogram", "loudness", "pitch"}
    assert all(p.format == "PNG" and p.width > 400 and p.height > 100 for p in plots.values())
    rows = page.xpath("//table//tr[td]")
    assert {r.xpath("td")[1].text for r in rows} >= {"integrated_lufs", "true_peak_dbtp", "tempo_error_pct", "key_score"}
    verdicts = json.loads(page.xpath("//script[@id='qc-data']")[0].text)
    assert verdicts == [sung["tracks"][0]["qc"]]


def test_the_pitch_plot_draws_the_kept_reading_of_the_vocal_without_reading_it_again(sung, tmp_path, monkeypatch):
    """The render keeps its DIO reading of the dry vocal in the store (the gate's: see the Harvest
    memo test); the QC report draws it (no DIO runs), the plot a second reading of the vocal draws."""
    import pyworld
    from lxml import html

    from qc.report import write_qc_report
    from songmill.core.store import default_store_spec, open_store
    from songmill.engine.track_stages import StoredF0

    def pitch_plot(memo) -> str:
        page = html.fromstring(write_qc_report(sung, tmp_path / "qc.html", f0_memo=memo).read_bytes())
        return page.xpath("//img[@data-plot='pitch']")[0].get("src")

    read_again = pitch_plot(None)
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(Path(sung["qc_report"]).parents[2] / "var"))
    readings, dio = [], pyworld.dio
    monkeypatch.setattr(pyworld, "dio", lambda *args, **kwargs: readings.append(args) or dio(*args, **kwargs))
    assert pitch_plot(StoredF0(open_store(default_store_spec()))) == read_again and readings == []


def test_a_quarantined_track_shows_its_reasons_in_the_qc_report(tmp_path):
    from lxml import html

    from qc.report import write_qc_report

    report = {
        "release": {"id": "r", "title": "T", "artist": "A"},
        "run_id": 1,
        "tracks": [
            {
                "number": 1,
                "title": "Loud",
                "status": "quarantined",
                "qc_reasons": ["streaming: true_peak_dbtp 0.2 dBTP is above the ceiling of -1"],
                "qc_attempts": [{"seed": 5, "reasons": ["streaming: true_peak_dbtp 0.2 dBTP is above the ceiling of -1"]}],
                "qc": {
                    "profiles": {
                        "streaming": {
                            "passed": False,
                            "checks": [
                                {
                                    "metric": "true_peak_dbtp",
                                    "passed": False,
                                    "value": 0.2,
                                    "bar": {"max": -1.0},
                                    "reason": "true_peak_dbtp 0.2 dBTP is above the ceiling of -1",
                                }
                            ],
                        }
                    }
                },
                "artifacts": {},
            }
        ],
    }
    page = html.fromstring(write_qc_report(report, tmp_path / "qc.html").read_bytes())
    assert "0 of 1 track(s) passed" in page.text_content()
    assert [p.text for p in page.xpath("//p[@class='reason']")] == ["streaming: true_peak_dbtp 0.2 dBTP is above the ceiling of -1"]
    assert page.xpath("//tr[@class='fail']/td")[1].text == "true_peak_dbtp"


# ---------------------------------------------------------------- lyrics: explicit language


def test_explicit_words_are_found_and_everyday_ones_are_not():
    from qc.musical import explicit_words
    from qc.suites import load_qc_settings

    allowed = set(load_qc_settings().musical.not_explicit)
    assert explicit_words("Hell, what a damn fine day to kill some time", allowed) == []
    assert explicit_words("You're a shitty liar, fuck your golden shower", allowed) == ["shitty", "fuck", "golden shower"]


def test_explicit_words_fail_a_release_not_flagged_explicit_with_the_words_named():
    from qc.musical import MusicalMetrics
    from qc.suites import judge
    from qc.technical import TechnicalMetrics
    from songmill.core.profiles import load_profiles

    technical = TechnicalMetrics("song.wav", 48000, 24, 2, "pcm_s24le", 60.0, -14.0, 5.0, -1.2, -1.3, 0, 0.0, 0.8, 1.0, 0.2, 1.0, 0, 0.0, -8.0, -20.0)
    profile = load_profiles()["streaming"]
    lyrics = MusicalMetrics(unsung_syllables=2, chorus_problems=0, rhyme_misses=0, explicit_words=2, explicit_found=("shit", "fuck"))
    [verdict] = judge([technical], "streaming", profile, musical=lyrics)
    assert verdict.reasons == [
        "unsung_syllables 2 syllables without a note is above the bar of 0",
        "explicit words in a release not flagged explicit: shit, fuck (set release.explicit: true, or change the lyrics)",
    ]
    checked = {c.metric for c in verdict.checks}
    assert "tempo_error_pct" not in checked and "vocal_median_cents" not in checked  # not measured: not judged


# ---------------------------------------------------------------- duplicates in the catalogue


def render_into(catalogue_dir: Path, text: str, out: Path) -> dict:
    from songmill.engine.runner import render

    config = out / "release.yaml"
    out.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SONGMILL_VAR_DIR", str(catalogue_dir))
        return json.loads(render(config, out_dir=out / "dist").read_text())


@pytest.mark.long
def test_the_same_song_under_another_release_is_a_duplicate_and_is_re_seeded(tmp_path):
    from songmill.engine.runner import regeneration_seed

    var = tmp_path / "var"
    first = render_into(var, song("dup-first", 3), tmp_path / "a")
    assert first["tracks"][0]["qc_attempts"] == []

    again = render_into(var, song("dup-first", 3), tmp_path / "a2")  # a rerun of the same release: not a duplicate
    assert again["tracks"][0]["qc_attempts"] == [] and again["tracks"][0]["seed"] == 3
    assert again["tracks"][0]["rerender_of"] == {"run_id": first["run_id"], "seed": 3, "audio_similarity": 1.0}  # flagged as the same

    other_seed = render_into(var, song("dup-other-seed", 4), tmp_path / "c")
    assert other_seed["tracks"][0]["qc_attempts"] == [] and other_seed["status"] == "succeeded"

    copy = render_into(var, song("dup-copy", 3), tmp_path / "b")  # the same config and seed as a new release
    track = copy["tracks"][0]
    [turned_down] = track["qc_attempts"]
    assert turned_down["seed"] == 3 and turned_down["duplicate_of"]["track"]["release_id"] == "dup-first"
    assert turned_down["duplicate_of"]["audio_similarity"] == 1.0 and turned_down["duplicate_of"]["melody_overlap"] == 1.0
    assert turned_down["reasons"] == ["duplicate: its audio matches track 1 ('Same Old Song') of release 'dup-first' (fingerprint similarity 1.00, bar 0.85)"]
    assert track["status"] == "rendered" and track["seed"] == regeneration_seed(3, 1) and copy["status"] == "succeeded"
    assert first["tracks"][0]["rerender_of"] is None and other_seed["tracks"][0]["rerender_of"] is None

    from sqlalchemy import select

    from songmill.catalogue import Catalogue
    from songmill.catalogue.schema import QCResult

    with Catalogue.open(copy["catalogue"]).session() as s:
        [row] = s.scalars(select(QCResult).where(QCResult.profile == "catalogue")).all()
    assert row.metric == "duplicate_audio_similarity" and row.value == 1.0 and not row.passed and "dup-first" in row.detail


@pytest.mark.long
def test_two_tracks_of_one_batch_alike_quarantine_the_later_one(tmp_path):
    from songmill.core.errors import SongmillError

    text = song("twins", 3)
    twin = text[text.index("  - title") :]  # the same track twice, seed and all
    with pytest.raises(SongmillError, match=r"track 2 \(Same Old Song\) was quarantined by QC"):
        render_into(tmp_path / "var", text + twin, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "dist" / "twins" / "run-report.json").read_text())
    assert report["quarantined"] == [2] and report["status"] == "failed" and report["delivered"] == []
    assert report["tracks"][1]["qc_reasons"] == [
        "duplicate: its audio matches track 1 ('Same Old Song') of release 'this release' (fingerprint similarity 1.00, bar 0.85)"
    ]


@pytest.mark.long
def test_explicit_words_in_the_users_own_lyrics_are_quarantined_without_re_rendering(tmp_path):
    from songmill.core.errors import SongmillError

    text = song("rough-words", 3, sung=True).replace(
        "    seed: 3",
        "    seed: 3\n    lyrics: |\n      [verse]\n      this shit town is all I know\n"
        "      I walk the harbour wall alone\n      [chorus]\n"
        "      sing it loud and let it go\n      the radio will take me home\n",
    )
    with pytest.raises(SongmillError, match=r"explicit words in a release not flagged explicit: shit \(set release\.explicit: true"):
        render_into(tmp_path / "var", text, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "dist" / "rough-words" / "run-report.json").read_text())
    [track] = report["tracks"]
    assert track["status"] == "quarantined" and len(track["qc_attempts"]) == 1  # a new seed cannot change the user's words
    assert track["qc"]["regenerable"] is False

    flagged = text.replace("  profiles: [streaming]", "  explicit: true\n  profiles: [streaming]")
    report = render_into(tmp_path / "var", flagged, tmp_path / "flagged")
    assert report["status"] == "succeeded" and report["tracks"][0]["qc"]["musical"]["explicit_words"] == 0


# ------------------------------------------------------------------- octave errors of the tracker


@functools.cache
def _sung_debug_song(seed: int):
    """The debug song's score and dry lead vocal, through the real stages (no mix or master)."""
    from models.registry import ModelRegistry
    from songmill.core.audio import read_wav
    from songmill.core.score import Score
    from songmill.core.store import default_store_spec, open_store
    from songmill.engine.configs import load_release_with_profiles
    from songmill.engine.stage import TrackJob, run_stage
    from songmill.engine.track_stages import TRACK_STAGES

    spec, _ = load_release_with_profiles(PROJECT / "config/releases/debug.yaml")
    job, store, registry, refs = TrackJob(spec, 0, seed, True), open_store(default_store_spec()), ModelRegistry.load(), {}
    for stage in TRACK_STAGES.stages:
        if stage.name in ("form", "lyrics", "compose", "vocals"):
            refs.update(run_stage(stage, job, refs, store=store, registry=registry).outputs)
    vocal, rate = read_wav(store.local_path(refs["vocal-lead.wav"]))
    return Score.load_json(store.local_path(refs["score.json"])), vocal[:, 0], rate


def test_a_note_the_fast_tracker_reads_an_octave_up_is_measured_again_not_failed():
    """Seed 7 of the debug song with the fundamental of its low notes weakened (an 8th-order
    high-pass at 300 Hz, as a thin voice or a small speaker leaves it): WORLD's DIO locks onto the
    second harmonic on the notes below D4 (p90 about 1200 cents, a false reject); the gate measures
    those notes again with Harvest and reads the song as sung, in tune. (The singer used to make
    such notes by itself on this seed; since each phrase is seeded by where it starts it no longer
    does, so the test makes them.)"""
    from scipy.signal import butter, sosfiltfilt

    from qc.musical import vocal_figures
    from qc.vocal import measure_f0_fast, pitch_report

    score, sung, rate = _sung_debug_song(7)
    lead = sosfiltfilt(butter(8, 300, btype="high", fs=rate, output="sos"), sung).astype("float32")
    notes = score.part("melody").notes
    assert pitch_report(lead, rate, notes, measure_f0_fast(lead, rate)).p90_abs_cents > 1000  # DIO alone
    figures = vocal_figures(lead, rate, score)
    assert figures["vocal_p90_cents"] < 50 and figures["vocal_median_cents"] < 15


def test_notes_really_sung_an_octave_off_still_fail():
    """Harmonic tones on the score's notes: in tune they pass; with the longest notes (a fifth of
    the singing) an octave up they fail, since Harvest hears the octave too and the recheck does
    not hide it."""
    import numpy as np

    from qc.musical import vocal_figures

    score, _, rate = _sung_debug_song(7)  # the song of the test above: rendered once
    notes = score.part("melody").notes
    by_length = sorted(range(len(notes)), key=lambda i: -notes[i].duration_s)
    total, shifted = sum(n.duration_s for n in notes), set()
    for index in by_length:
        if sum(notes[i].duration_s for i in shifted) >= 0.2 * total:
            break
        shifted.add(index)

    def sung(octave_up: set[int]) -> np.ndarray:
        audio = np.zeros(int((score.duration_s + 1) * rate), dtype=np.float32)
        for index, note in enumerate(notes):
            hz = 440 * 2 ** ((note.pitch + (12 if index in octave_up else 0) - 69) / 12)
            t = np.arange(int(note.duration_s * rate)) / rate
            start = int(note.start_s * rate)
            audio[start : start + len(t)] = (0.1 * sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 6)))[: len(audio) - start]
        return audio

    assert vocal_figures(sung(set()), rate, score)["vocal_p90_cents"] < 50
    assert vocal_figures(sung(shifted), rate, score)["vocal_p90_cents"] > 1000


@pytest.mark.long
def test_harvest_confirms_the_voicing_of_notes_but_a_voice_that_does_not_sing_still_reads_unvoiced():
    """DIO drops the voicing of short notes, so the notes it hears mostly unvoiced are read again
    by Harvest, whose frames count only near the note's pitch. Confirmation only ever adds frames
    DIO missed; noise in place of the voice (Harvest calls some noise voiced, at any pitch) still
    reads far below the bar of 80 %."""
    import numpy as np

    from qc.musical import vocal_figures
    from qc.vocal import confirm_voicing, measure_f0_fast

    score, lead, rate = _sung_debug_song(7)
    notes = score.part("melody").notes
    measured = measure_f0_fast(lead, rate)
    confirmed = confirm_voicing(measured, lead, rate, notes)
    assert (confirmed >= (measured[0] > 0)).all()
    assert vocal_figures(lead, rate, score)["vocal_voiced_share"] >= 0.8

    noise = (np.random.default_rng(0).standard_normal(len(lead)) * np.std(lead)).astype(np.float32)
    assert vocal_figures(noise, rate, score)["vocal_voiced_share"] < 0.5


# ------------------------------------------------------------------- the vocal's figures, kept


class _CountingMemo:
    """An F0Memo in a dict, counting the stretches Harvest had to read (its answers put)."""

    def __init__(self):
        self.kept, self.read = {}, 0

    def get(self, key):
        return self.kept.get(key)

    def put(self, key, f0):
        self.read += key.startswith("harvest-")
        self.kept[key] = f0


def test_a_kept_dio_reading_reads_back_exactly_as_dio_measures():
    """measure_f0_fast with a memo: the first call measures and keeps, the second reads back the
    same F0 and the same frame times as DIO gives, without measuring."""
    import numpy as np
    import pyworld

    from qc.vocal import measure_f0_fast

    rate = 48000
    t = np.arange(3 * rate) / rate
    phase = 2 * np.pi * np.cumsum(220 + 10 * np.sin(2 * np.pi * 5 * t)) / rate  # A3 with vibrato
    vocal = sum(0.2 / k * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)
    memo, measured = _CountingMemo(), measure_f0_fast(vocal, rate)
    first = measure_f0_fast(vocal, rate, memo)
    calls, dio = [], pyworld.dio
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pyworld, "dio", lambda *args, **kwargs: calls.append(args) or dio(*args, **kwargs))
        kept = measure_f0_fast(vocal, rate, memo)
    assert calls == [] and len(memo.kept) == 1
    for f0, times in (first, kept):
        assert np.array_equal(f0, measured[0]) and np.array_equal(times, measured[1]) and (f0 > 0).mean() > 0.9


def test_a_store_that_cannot_keep_or_give_a_reading_costs_a_second_reading_not_the_run(caplog):
    """StoredF0 is best effort: a store that refuses the write is logged, a damaged record reads
    as none (the reading is then made again)."""
    from songmill.core.errors import SongmillError
    from songmill.engine.track_stages import StoredF0

    class RefusingStore:
        def put_record(self, key, record):
            raise SongmillError("the artifact store at s3://bucket refused the write (503)")

        def get_record(self, key):
            return {"f0_hz": "not a list of numbers"}

    memo = StoredF0(RefusingStore())
    memo.put("dio-1-48000-3-abc", [0.0, 220.0, 0.0])
    assert "was not kept in the store (the artifact store at s3://bucket refused the write (503))" in caplog.text
    assert memo.get("dio-1-48000-3-abc") is None


def test_harvest_reads_again_only_the_stretches_whose_samples_changed(monkeypatch):
    """The figures are the same with the memo as without; a vocal changed inside its last stretch
    read by Harvest has only that stretch read again. (The change is a breath of noise, 80 dB
    down, so the notes Harvest is asked about stay the same: a louder change would move them,
    and the test would be about which notes DIO suspects.)"""
    import numpy as np
    from scipy.signal import butter, sosfiltfilt

    import qc.vocal
    from qc.musical import vocal_figures

    score, sung, rate = _sung_debug_song(7)
    lead = sosfiltfilt(butter(8, 300, btype="high", fs=rate, output="sos"), sung).astype("float32")  # octave suspects too
    read_where, stretches = [], qc.vocal._stretches
    monkeypatch.setattr(qc.vocal, "_stretches", lambda notes, frames: read_where.extend(found := stretches(notes, frames)) or found)
    memo = _CountingMemo()
    assert vocal_figures(lead, rate, score, memo) == vocal_figures(lead, rate, score)
    first_read = memo.read
    assert first_read >= 2 and any(key.startswith("dio-") for key in memo.kept)  # DIO's reading kept too (the QC report draws it)
    assert vocal_figures(lead, rate, score, memo) == vocal_figures(lead, rate, score) and memo.read == first_read  # all read back

    first, last = max(read_where)  # the last stretch (frames): the ones before it end before it begins
    assert len(set(read_where)) >= 2 and all(end < first for _, end in set(read_where) - {(first, last)})
    changed = lead.copy()
    inside = slice(int((first + 2) * qc.vocal.FRAME_S * rate), int((last - 2) * qc.vocal.FRAME_S * rate))
    changed[inside] += np.random.default_rng(0).normal(0.0, 1e-4, inside.stop - inside.start).astype(np.float32)
    assert vocal_figures(changed, rate, score, memo) == vocal_figures(changed, rate, score)
    assert 0 < memo.read - first_read < first_read  # that stretch read again, the others read back


@pytest.mark.long
def test_a_new_master_over_the_same_voice_reads_the_vocal_figures_back_not_measured_again(tmp_path, monkeypatch):
    """The gate's reading of the dry vocal (the slowest measurement) depends on the voice and the
    tune only: a QC run whose master changed (a mix or master edit) reads it back from the store;
    another voice is measured."""
    import qc.musical
    from models.registry import ModelRegistry
    from songmill.core.audio import read_wav, write_wav
    from songmill.core.store import LocalStore
    from songmill.engine.configs import load_release_with_profiles
    from songmill.engine.stage import TrackJob, run_stage
    from songmill.engine.track_stages import QC, TRACK_STAGES

    spec, _ = load_release_with_profiles(PROJECT / "config/releases/debug.yaml")
    job, store, registry, refs = TrackJob(spec, 0, 5, True), LocalStore(tmp_path / "store"), ModelRegistry.load(), {}
    for stage in TRACK_STAGES.stages[: TRACK_STAGES.names().index("qc") + 1]:
        refs.update(run_stage(stage, job, refs, store=store, registry=registry).outputs)
    first = json.loads(store.local_path(refs["qc.json"]).read_text())["musical"]

    def measured_again(*_args, **_kwargs):
        raise AssertionError("the vocal was measured again")

    monkeypatch.setattr(qc.musical, "vocal_figures", measured_again)
    master, rate = read_wav(store.local_path(refs["master-streaming.wav"]))
    write_wav(tmp_path / "master-streaming.wav", master * 0.9, rate)  # another master over the same voice
    quieter = {**refs, "master-streaming.wav": store.put_file(tmp_path / "master-streaming.wav")}
    again = run_stage(QC, job, quieter, store=store, registry=registry)
    assert not again.cached  # the stage ran ...
    second = json.loads(store.local_path(again.outputs["qc.json"]).read_text())["musical"]
    keys = ("vocal_median_cents", "vocal_p90_cents", "vocal_voiced_share", "note_changes_on_time")
    assert first["vocal_median_cents"] is not None and {k: second[k] for k in keys} == {k: first[k] for k in keys}  # ... and read the vocal's figures back

    vocal, vocal_rate = read_wav(store.local_path(refs["vocal-lead.wav"]))
    write_wav(tmp_path / "vocal-lead.wav", vocal * 0.5, vocal_rate)  # another voice: measured
    other = {**quieter, "vocal-lead.wav": store.put_file(tmp_path / "vocal-lead.wav")}
    with pytest.raises(AssertionError, match="measured again"):
        run_stage(QC, job, other, store=store, registry=registry)


def test_librosas_beat_tracker_is_imported_with_its_numba_code_cached_and_numba_left_as_it_was():
    """librosa 0.11 compiles `__beat_local_score` with cache=False (1.8 CPU s in every process
    that tracks beats); qc.musical.import_librosa imports it asking numba to cache, restores
    numba's decorator, and the tracker still finds the beat of a click track. In a fresh process:
    this one may have imported librosa.beat already."""
    probe = (
        "import numba, numpy as np\n"
        "before = numba.guvectorize\n"
        "from qc.musical import ANALYSIS_RATE_HZ, detect_tempo, import_librosa\n"
        "librosa = import_librosa()\n"
        "local_score = vars(librosa.beat)['__beat_local_score']\n"
        "clicks = np.zeros(ANALYSIS_RATE_HZ * 20, np.float32)\n"
        "for beat in range(int(20 * 100 / 60)):\n"
        "    start = int(beat * 0.6 * ANALYSIS_RATE_HZ)\n"
        "    clicks[start : start + 400] = np.sin(np.arange(400) * 0.3) * np.exp(-np.arange(400) / 80)\n"
        "print(local_score.gufunc_builder.cache, numba.guvectorize is before, round(detect_tempo(clicks, 100.0), 1))\n"
    )
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, cwd=PROJECT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    cached, restored, tempo = result.stdout.split()
    assert cached == "True" and restored == "True" and abs(float(tempo) - 100.0) < 1.0, result.stdout
