"""`songmill qc`: the technical gate on any audio file, judged by the profile's GX suite.

Each faulty file is made from one properly mastered file (music-like noise and tones through our
limiter to the streaming profile's −14 LUFS / −1 dBTP, delivered as 16-bit FLAC by our encoder)
with exactly one fault added; the gate must pass the good one and fail each bad one for its
own reason. Broken inputs exit 2, never 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qc.technical import measure_file
from songmill.core.audio import resample, write_wav
from songmill.core.profiles import AudioFormat
from songmill.production.limiter import normalise
from songmill.release.encode import encode
from tests.conftest import PROJECT

RATE = 48000


def music(seconds: float = 20.0, seed: int = 1) -> np.ndarray:
    """A stereo test programme: a bass line, chords, and noise bursts on the beat, panned."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    beat = (t * 2) % 1.0  # 120 BPM
    bass = 0.5 * np.sin(2 * np.pi * 55 * t * (1 + (t // 2 % 2) * 0.25))
    chords = sum(0.12 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (220, 277.2, 329.6, 440))
    hits = rng.standard_normal(len(t)) * np.exp(-beat * 18) * 0.6
    left = bass + chords * 1.1 + hits * 0.8
    right = bass + chords * 0.9 + np.roll(hits, 240) * 0.8
    return np.stack([left, right], axis=1).astype(np.float32) * 0.3


def deliver_flac(samples: np.ndarray, path: Path, rate: int = RATE) -> Path:
    fmt = AudioFormat(container="flac", sample_rate_hz=44100, bit_depth=16)
    encode(resample(samples.astype(np.float32), from_hz=rate, to_hz=44100, method="soxr"), 44100, fmt, path, lossy_ceiling_dbtp=-0.5, seed=1)
    return path


@pytest.fixture(scope="module")
def mastered() -> np.ndarray:
    out, _ = normalise(music(), RATE, target_lufs=-14.0, ceiling_dbtp=-1.2)
    return out


def qc_in_process(path: Path, profile: str = "streaming", *extra: str) -> subprocess.CompletedProcess:
    """`songmill qc` through typer's runner in this process (Great Expectations imported once)."""
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    args = ["qc", str(path), "--profile", profile, *extra]
    result = CliRunner().invoke(app, args)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def qc(path: Path, profile: str = "streaming", *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`songmill qc` as the user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "songmill", "qc", str(path), "--profile", profile, *extra],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, **(env or {})},
    )


def test_a_properly_mastered_file_passes(mastered, tmp_path):
    result = qc(deliver_flac(mastered, tmp_path / "good.flac"), "streaming", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["passed"] and verdict["reasons"] == []
    assert verdict["metrics"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.2)
    assert len(verdict["checks"]) >= 12 and all(c["passed"] for c in verdict["checks"])


def _faults(mastered: np.ndarray) -> dict:
    loud_peaks, _ = normalise(music(), RATE, target_lufs=-14.0, ceiling_dbtp=0.0)
    silence = np.zeros((5 * RATE, 2), np.float32)
    inverted = mastered.copy()
    inverted[:, 1] = -inverted[:, 0]
    return {
        "clipping": (np.clip(mastered * 2.5, -1.0, 1.0), ["clipped_runs"]),
        "true-peak": (loud_peaks, ["true_peak_dbtp"]),
        "quiet": (mastered * 10 ** (-3 / 20), ["integrated_lufs"]),
        "leading-silence": (np.concatenate([silence, mastered]), ["leading_silence_s"]),
        "dc-offset": (mastered * 0.9 + 0.01, ["dc_offset"]),
        "inverted-polarity": (inverted, ["phase_correlation", "mono_fold_loss_lu"]),
    }


@pytest.mark.parametrize("fault", ["clipping", "true-peak", "quiet", "leading-silence", "dc-offset", "inverted-polarity"])
def test_a_faulty_file_fails_for_its_own_reason(mastered, tmp_path, fault):
    samples, metrics = _faults(mastered)[fault]
    path = tmp_path / f"{fault}.wav"
    write_wav(path, samples, RATE)  # float WAV: the fault exactly as made
    result = qc_in_process(path, "streaming", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    verdict = json.loads(result.stdout)
    failed = {c["metric"] for c in verdict["checks"] if not c["passed"]}
    assert set(metrics) <= failed, verdict["reasons"]
    plain = qc(path, "streaming") if fault == "clipping" else qc_in_process(path, "streaming")  # once as the user runs it
    assert plain.returncode == 1 and plain.stdout.startswith(f"FAIL {path}") and any(m in plain.stdout for m in metrics)


@pytest.mark.long
def test_mono_at_22_khz_fails_rate_and_channels(mastered, tmp_path):
    mono = resample(mastered.mean(axis=1, keepdims=True), from_hz=RATE, to_hz=22050, method="soxr")
    path = tmp_path / "mono.wav"
    write_wav(path, mono, 22050)
    result = qc(path, "streaming")
    assert result.returncode == 1
    assert "sample_rate_hz 22050 is not one of 44100, 48000" in result.stdout and "channels 1 is not one of 2" in result.stdout


def test_the_measured_metrics_match_what_was_made(mastered, tmp_path):
    write_wav(tmp_path / "late.wav", np.concatenate([np.zeros((5 * RATE, 2), np.float32), mastered]), RATE)
    late = measure_file(tmp_path / "late.wav")
    assert late.leading_silence_s == pytest.approx(5.0, abs=0.06) and late.sample_rate_hz == 48000 and late.channels == 2
    write_wav(tmp_path / "dc.wav", mastered * 0.9 + 0.01, RATE)
    assert measure_file(tmp_path / "dc.wav").dc_offset == pytest.approx(0.01, abs=0.001)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "is empty (0 bytes)"),
        (b"RIFF\x10\x00\x00\x00WAVEjunkjunk", "cannot be read"),
        (os.urandom(5000), "cannot be read"),
    ],
)
def test_unreadable_input_exits_2_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    result = qc(path)
    assert result.returncode == 2 and str(path) in result.stderr and message in result.stderr


def test_a_truncated_file_exits_2(mastered, tmp_path):
    good = deliver_flac(mastered, tmp_path / "good.flac")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(good.read_bytes()[:2000])  # the header and a sliver: under three seconds decode
    result = qc(cut)
    assert result.returncode == 2 and str(cut) in result.stderr


@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_a_file_cut_short_but_long_enough_to_measure_exits_2_by_its_header(mastered, tmp_path, suffix):
    """ffmpeg decodes a file cut short to its end without an error, and reads a WAV's length from
    its size: a copy cut at 60 % used to be measured and passed. Its header (the WAV's data
    chunk, the FLAC's sample count) says how long it should be."""
    good = deliver_flac(mastered, tmp_path / "good.flac") if suffix == "flac" else tmp_path / "good.wav"
    if suffix == "wav":
        write_wav(good, mastered, RATE)
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.6)])
    result = qc(cut)
    assert result.returncode == 2 and f"audio file {cut} is truncated: its header says {len(mastered) / RATE:.2f} s of audio" in result.stderr
    assert qc(good).returncode in (0, 1)  # the whole file is judged, not refused


@pytest.mark.parametrize("placeholder", [0, 0x7FFFF000, 0x7FFFFFFF, 0xFFFFFFFF])
def test_a_wav_written_to_a_pipe_is_read_whole_not_called_truncated(mastered, tmp_path, placeholder):
    """A writer that streamed a WAV (ffmpeg, SoX, arecord) leaves a placeholder for the data size
    it could not go back to write: such a file is whole, whatever its header says."""
    import struct

    path = tmp_path / "piped.wav"
    write_wav(path, mastered, RATE)
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = struct.pack("<I", placeholder)
    path.write_bytes(bytes(data))
    assert measure_file(path).duration_s == pytest.approx(len(mastered) / RATE, abs=0.01)


def test_an_unknown_profile_or_a_broken_suite_exits_2(mastered, tmp_path):
    good = deliver_flac(mastered, tmp_path / "good.flac")
    result = qc(good, "vinyl")
    assert result.returncode == 2 and "'vinyl' is not a delivery profile (profiles: apple, hires, preview, streaming)" in result.stderr
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "streaming.json").write_text('{"name": "x", "expectations": [')
    result = qc(good, "streaming", env={"SONGMILL_QC_SUITES": str(suites)})
    assert result.returncode == 2 and "streaming.json does not parse" in result.stderr


def test_the_shipped_suites_are_what_the_suite_shape_writes():
    from qc.suites import SUITES_DIR, suite_document
    from songmill.core.profiles import load_profiles

    for name in load_profiles():
        assert json.loads((SUITES_DIR / f"{name}.json").read_text()) == suite_document(name)


# ---------------------------------------------------------------- the gate in a render

GATED = """
release:
  id: gate-test
  title: Gate Test
  artist: The Songmill Collective
  label: Songmill Records
  type: ep
  date: 2027-01-08
  genre: pop
  p_line: 2027 Songmill Records
  c_line: 2027 Songmill Records
  profiles: [streaming]
  allow_partial: ALLOW
tracks:
  - title: Too Long
    theme: a night that will not end
    mood: calm
    tempo: 100
    key: C major
    structure: [{name: verse, bars: 8}, {name: chorus, bars: 8}]
    seed: 5
  - title: Just Right
    theme: a short walk home
    mood: bright
    tempo: 100
    key: G major
    structure: [{name: verse, bars: 4}, {name: chorus, bars: 4}]
    seed: 6
"""


@pytest.mark.long
def test_a_track_failing_the_gate_is_regenerated_then_quarantined_and_the_release_waits(tmp_path, monkeypatch):
    from qc.suites import suite_document
    from songmill.catalogue import Catalogue
    from songmill.core.errors import SongmillError
    from songmill.engine.runner import regeneration_seed, render

    suites = tmp_path / "suites"
    suites.mkdir()
    strict = suite_document("streaming")  # the shipped suite plus one bar the first track cannot meet
    strict["expectations"].append({"type": "expect_column_values_to_be_between", "kwargs": {"column": "duration_s", "max_value": 30}})
    (suites / "streaming.json").write_text(json.dumps(strict))
    monkeypatch.setenv("SONGMILL_QC_SUITES", str(suites))
    config = tmp_path / "gate.yaml"
    config.write_text(GATED.replace("ALLOW", "false"))

    with pytest.raises(
        SongmillError,
        match=r"track 1 \(Too Long\) was quarantined by QC after 2 render\(s\): streaming: "
        r"duration_s 4\d\.\d+ is above the bar of 30; the release was not delivered",
    ):
        render(config, out_dir=tmp_path / "dist")
    report = json.loads((tmp_path / "dist" / "gate-test" / "run-report.json").read_text())
    too_long, just_right = report["tracks"]
    assert report["status"] == "failed" and report["quarantined"] == [1] and report["delivered"] == []
    assert too_long["status"] == "quarantined" and just_right["status"] == "rendered" and just_right["qc"]["passed"]
    assert [a["seed"] for a in too_long["qc_attempts"]] == [5, regeneration_seed(5, 1)]  # re-seeded once, then quarantined
    assert not (tmp_path / "dist" / "streaming").exists() or not any((tmp_path / "dist" / "streaming").iterdir())
    assert "export.json" not in too_long["artifacts"]  # the gate stopped it: the export made beside it is dropped
    assert [s["stage"] for s in too_long["stages"]][-2:] == ["master", "qc"]
    check = next(c for c in too_long["qc"]["profiles"]["streaming"]["checks"] if c["metric"] == "duration_s")
    assert check == {"metric": "duration_s", "passed": False, "value": check["value"], "bar": {"max": 30}, "reason": check["reason"]} and check["value"] > 30

    catalogue = Catalogue.open(report["catalogue"])
    from sqlalchemy import select

    from songmill.catalogue.schema import QCResult, Track

    with catalogue.session() as s:
        statuses = dict(s.execute(select(Track.number, Track.status).where(Track.release_id == "gate-test")).all())
        failed_rows = s.scalars(select(QCResult).where(QCResult.passed.is_(False))).all()
    assert statuses == {1: "quarantined", 2: "rendered"}
    assert [(r.metric, r.profile) for r in failed_rows] == [("duration_s", "streaming")]

    config.write_text(GATED.replace("ALLOW", "true"))  # allow_partial: the passing track goes out alone
    partial = json.loads(render(config, out_dir=tmp_path / "dist").read_text())
    assert partial["status"] == "succeeded" and partial["quarantined"] == [1]
    from lxml import etree

    [delivery] = partial["deliveries"]
    xml = etree.parse(str(Path(delivery["destination"]) / f"{partial['upc']}.xml"))
    assert [e.text for e in xml.findall(".//SoundRecording//DisplayTitleText")] == ["Just Right"]
