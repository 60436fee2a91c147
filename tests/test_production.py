"""Mixing and mastering, measured: ffmpeg's ebur128 (loudness, true peak), astats (DC, sample
peak) and aphasemeter (phase) are the independent meters; pyloudnorm checks our own meter."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from songmill.core import loudness
from songmill.core.audio import read_wav, write_wav
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.score import Score, TempoChange
from songmill.core.spec import load_release
from songmill.production.dither import to_pcm16
from songmill.production.limiter import normalise
from songmill.production.master import MasterTarget, master, reference_profile
from songmill.production.mix import StemFile, _return, load_stem, mix_stems, stem_roles
from songmill.production.presets import load_production_presets
from tests.conftest import render_release_text

PROJECT = Path(__file__).resolve().parents[1]
RATE = 48000

# Two short tracks: a pop song with vocals and a folk instrumental, mastered for two profiles.
RELEASE = """
release:
  id: production-test
  title: Production Test
  artist: The Songmill Collective
  label: Songmill Records
  type: ep
  date: 2026-12-04
  genre: pop
  p_line: 2026 Songmill Records
  c_line: 2026 Songmill Records
  profiles: [streaming, apple]
tracks:
  - title: Lanterns
    theme: lanterns drifting over the river at night
    mood: hopeful
    tempo: 104
    key: A minor
    target_duration_s: 40
    voice: {identity: ava, style: bright}
    seed: 7
  - title: Low Tide
    theme: a quiet harbour before dawn
    mood: calm
    tempo: 92
    key: D major
    target_duration_s: 30
    instrumentation: folk
    seed: 3
"""


def ebur128(path: Path) -> dict:
    """ffmpeg's EBU R128 meter: integrated (LUFS), LRA (LU), true peak (dBTP)."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True, check=True
    ).stderr
    summary = out[out.rindex("Summary:") :]
    return {
        "integrated": float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1)),
        "lra": float(re.search(r"LRA:\s+(-?[\d.]+) LU", summary).group(1)),
        "true_peak": float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1)),
    }


def astats(path: Path) -> dict:
    """ffmpeg's astats: the largest per-channel DC offset and sample peak (dBFS)."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "astats", "-f", "null", "-"], capture_output=True, text=True, check=True
    ).stderr
    return {
        "dc": max(abs(float(v)) for v in re.findall(r"DC offset: (-?[\d.e-]+)", out)),
        "peak_dbfs": max(float(v) for v in re.findall(r"Peak level dB: (-?[\d.]+)", out)),
    }


def phase_meter(path: Path) -> float:
    """ffmpeg's aphasemeter, averaged over the file."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            "-i",
            str(path),
            "-af",
            "aphasemeter=video=0,ametadata=print:key=lavfi.aphasemeter.phase:file=-",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(np.mean([float(v) for v in re.findall(r"phase=(-?[\d.]+)", out)]))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The two-track release rendered once for the module (its own var/)."""
    return render_release_text(RELEASE, tmp_path_factory.mktemp("production"))


def _artifact(track: dict, name: str) -> Path:
    return Path(track["artifacts"][name]["path"])


# ---------------------------------------------------------------- the meters


def test_our_loudness_meter_agrees_with_pyloudnorm_and_true_peak_with_a_4x_oversampler():
    rng = np.random.default_rng(1)
    music = np.cumsum(rng.standard_normal((RATE * 12, 2)), axis=0)
    music = (music - music.mean(axis=0)) / np.abs(music).max() * 0.5
    music[: RATE * 3] *= 0.05  # a quiet intro the gates must handle
    assert loudness.integrated_lufs(music, RATE) == pytest.approx(pyloudnorm.Meter(RATE).integrated_loudness(music), abs=0.01)
    # a quarter-rate tone sampled 45° off its crests: samples at 0.707, the waveform peaks at 1.0
    tone = np.sin(2 * np.pi * RATE / 4 * np.arange(RATE) / RATE + np.pi / 4)[:, None] * 0.5
    assert loudness.sample_peak_dbfs(tone) == pytest.approx(20 * np.log10(0.5 * np.sqrt(0.5)), abs=0.01)
    assert loudness.true_peak_dbtp(tone, RATE) == pytest.approx(20 * np.log10(0.5), abs=0.2)
    oversampled = np.abs(resample_poly(music, 4, 1, axis=0)).max()  # scipy's long Kaiser interpolator
    assert loudness.true_peak_dbtp(music, RATE) == pytest.approx(20 * np.log10(oversampled), abs=0.05)


def test_limiter_meets_a_loud_target_under_the_ceiling_by_ffmpeg(rendered, tmp_path):
    mix, rate = read_wav(_artifact(rendered["tracks"][0], "mix.wav"))
    out, report = normalise(mix, rate, target_lufs=-9.0, ceiling_dbtp=-1.0)  # far louder than any profile
    write_wav(tmp_path / "loud.wav", out, rate)
    measured = ebur128(tmp_path / "loud.wav")
    assert measured["integrated"] == pytest.approx(-9.0, abs=0.5)
    assert measured["true_peak"] <= -1.0
    assert report.max_reduction_db > 3.0  # it really had to limit


def test_tpdf_dither_decorrelates_the_16_bit_error_from_the_signal():
    quiet = (10 ** (-80 / 20)) * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)  # a fade's last whisper
    truncated = np.round(quiet * 32768) / 32768
    dithered = to_pcm16(quiet, seed=1).astype(np.float64) / 32768

    def third_harmonic_over_floor(signal):
        spectrum = np.abs(np.fft.rfft((signal - quiet) * np.hanning(len(signal))))
        return 20 * np.log10(spectrum[3000] / np.median(spectrum))

    assert third_harmonic_over_floor(truncated) > 20  # truncation: distortion locked to the tone
    assert third_harmonic_over_floor(dithered) < 10  # dither: only flat noise
    assert np.array_equal(to_pcm16(quiet, seed=1), to_pcm16(quiet, seed=1))


# ---------------------------------------------------------------- the masters


def test_every_master_meets_its_profile_by_ffmpegs_meters(rendered):
    targets = {"streaming": -14.0, "apple": -16.0}
    for track in rendered["tracks"]:
        for profile, target in targets.items():
            path = _artifact(track, f"master-{profile}.wav")
            measured, stats = ebur128(path), astats(path)
            assert measured["integrated"] == pytest.approx(target, abs=0.5), (track["title"], profile)
            assert measured["true_peak"] <= -1.0
            assert stats["peak_dbfs"] < 0.0 and stats["dc"] < 1e-3
            assert phase_meter(path) > 0.5
            reported = track["loudness"][profile]  # the run report's loudness block agrees with ffmpeg
            assert reported["integrated_lufs"] == pytest.approx(measured["integrated"], abs=0.2)
            assert reported["plr_db"] == pytest.approx(reported["true_peak_dbtp"] - reported["integrated_lufs"], abs=0.02)
            samples, rate = read_wav(path)
            assert rate == 48000 and samples.shape[1] == 2


def test_album_mode_keeps_the_release_consistent(rendered):
    for figures in rendered["album"].values():
        assert figures["tracks"] == 2
        assert figures["loudness_spread_lu"] <= 0.5
    # both tracks head for the release genre's tone, the folk instrumental included
    sources = {t["master"]["profiles"]["streaming"]["tone"]["source"] for t in rendered["tracks"]}
    assert sources == {"genre pop"}


def test_the_mastering_eq_moves_the_tone_toward_the_target(rendered):
    for track in rendered["tracks"]:
        tone = track["master"]["profiles"]["streaming"]["tone"]
        assert tone["distance_after_db"] < tone["distance_before_db"]


# ---------------------------------------------------------------- the mix


@pytest.fixture(scope="module")
def song(rendered):
    """The sung track's stems and score, for mixing again with other settings."""
    track = rendered["tracks"][0]
    roles = stem_roles(json.loads(_artifact(track, "arrangement.json").read_text()))
    stems = [load_stem(_artifact(track, name), role, name=name) for name, role in roles.items()]
    stems.append(load_stem(_artifact(track, "vocal-lead.wav"), "vocal"))
    stems += [load_stem(_artifact(track, f"vocal-{n}.wav"), "backing") for n in ("double", "harmony") if f"vocal-{n}.wav" in track["artifacts"]]
    return stems, Score.load_json(_artifact(track, "score.json"))


def test_stems_read_in_turn_from_their_files_mix_to_the_same_samples(song, rendered, monkeypatch):
    """The mix stage passes files (StemFile), each read when its turn comes and let go of after:
    the mix and every decision are those of the stems held in memory, to the bit; and the same
    again when the stems are cleaned one at a time instead of two ahead on threads (the buses
    add them in one order either way)."""
    stems, score = song
    track = rendered["tracks"][0]
    roles = stem_roles(json.loads(_artifact(track, "arrangement.json").read_text()))
    files = [StemFile(_artifact(track, name), role, name=name) for name, role in roles.items()]
    files.append(StemFile(_artifact(track, "vocal-lead.wav"), "vocal"))
    files += [StemFile(_artifact(track, f"vocal-{n}.wav"), "backing") for n in ("double", "harmony") if f"vocal-{n}.wav" in track["artifacts"]]
    assert [f.name for f in files] == [s.name for s in stems]
    preset = load_production_presets().for_genre("pop").mix
    held, read_in_turn = mix_stems(stems, score, preset), mix_stems(files, score, preset)
    monkeypatch.setattr("songmill.production.mix.PREPARE_THREADS", 1)
    one_at_a_time = mix_stems(files, score, preset)
    for other in (read_in_turn, one_at_a_time):
        assert np.array_equal(held.audio, other.audio) and json.dumps(held.decisions) == json.dumps(other.decisions)  # key order too
        for bus in ("vocals", "instrumental"):
            assert np.array_equal(held.buses[bus], other.buses[bus])


def _singing(stems) -> np.ndarray:
    lead = next(s for s in stems if s.role == "vocal").audio[:, 0]
    rms = np.sqrt(np.convolve(lead.astype(np.float64) ** 2, np.ones(960) / 960, mode="same"))
    return rms > rms.max() * 10 ** (-35 / 20)


def test_the_vocal_sits_on_top_by_the_genres_window(song, rendered):
    stems, score = song
    preset = load_production_presets().for_genre("pop").mix
    result = mix_stems(stems, score, preset)
    singing = _singing(stems)[: result.audio.shape[0]]
    meter = pyloudnorm.Meter(RATE)  # the reference meter, not the mix's own
    vocal = meter.integrated_loudness(result.buses["vocals"][singing].astype(np.float64))
    instrumental = meter.integrated_loudness(result.buses["instrumental"][singing].astype(np.float64))
    assert vocal - instrumental == pytest.approx(preset.vocal_over_instrumental_lu, abs=1.0)
    assert rendered["tracks"][0]["mix"]["vocal_on_top"]["measured_lu"] == pytest.approx(preset.vocal_over_instrumental_lu, abs=0.1)
    assert loudness.integrated_lufs(result.audio, RATE) == pytest.approx(-20.0, abs=0.1)  # headroom for mastering


@pytest.mark.long
def test_instruments_make_room_for_the_voice_and_follow_the_sections(song):
    stems, score = song
    preset = load_production_presets().for_genre("pop").mix
    harmony = [s for s in stems if s.role in ("vocal", "chords", "pad", "counter", "line")]  # the roles the cut applies to
    carved = mix_stems(harmony, score, preset).buses["instrumental"]
    flat = mix_stems(harmony, score, preset.model_copy(update={"vocal_carve_db": 0.0})).buses["instrumental"]
    singing = _singing(stems)[: carved.shape[0]]

    def band_db(x, low, high):
        spectrum = np.abs(np.fft.rfft(x[singing, 0].astype(np.float64))) ** 2
        freqs = np.fft.rfftfreq(int(singing.sum()), 1 / RATE)
        return 10 * np.log10(spectrum[(freqs > low) & (freqs < high)].sum())

    # (the mix is levelled after the cut, so compare each band with the untouched low band)
    cut = {band: band_db(flat, *band) - band_db(carved, *band) for band in ((1800, 2200), (150, 300), (10000, 12000))}
    assert cut[(1800, 2200)] - cut[(150, 300)] == pytest.approx(3.0, abs=0.5)  # the cut, where the voice is
    assert abs(cut[(10000, 12000)] - cut[(150, 300)]) < 0.3  # and nowhere else
    # automation: the instrumental is louder in the chorus than in the verse, as planned
    plan = {a["section"]: a for a in mix_stems(stems, score, preset).decisions["automation"]}
    assert plan["chorus"]["gain_db"] > plan["verse"]["gain_db"]


def test_the_delay_is_tempo_synced(song):
    _, score = song
    preset = load_production_presets().for_genre("pop").mix
    impulse = np.zeros((2, RATE * 2), dtype=np.float32)
    impulse[:, 1000] = 1.0
    import pedalboard

    delay_s = preset.delay.beats * 60 / score.tempo_map[0].bpm
    echo = _return(impulse, RATE, pedalboard.Delay(delay_seconds=delay_s, feedback=0.0, mix=1.0), "delay")
    lag = int(np.argmax(np.abs(echo[0]))) - 1000
    assert lag / RATE == pytest.approx(delay_s, abs=0.002)


def test_ducking_under_the_kick_dips_the_bass_on_every_kick(song):
    stems, score = song
    preset = load_production_presets().for_genre("synthpop").mix  # bass ducks 3 dB under the kick
    bass = [s for s in stems if s.role == "bass"]
    ducked = mix_stems(bass, score, preset).buses["instrumental"][:, 0]
    straight = mix_stems(bass, score, preset.model_copy(update={"duck": {}})).buses["instrumental"][:, 0]
    kicks = [int(n.start_s * RATE) for p in score.parts if p.is_drum for n in p.notes if n.pitch in (35, 36)]
    ratios = [
        np.sqrt(np.mean(ducked[k + 240 : k + 720] ** 2) / np.mean(straight[k + 240 : k + 720] ** 2))
        for k in kicks
        if np.mean(straight[k + 240 : k + 720] ** 2) > 1e-10
    ]
    assert ratios and 20 * np.log10(np.median(ratios)) < -1.5


# ---------------------------------------------------------------- references


def test_a_reference_sets_the_masters_loudness_and_tone(rendered, tmp_path):
    track = rendered["tracks"][0]
    mix, rate = read_wav(_artifact(track, "mix.wav"))
    import pedalboard

    bright = pedalboard.Pedalboard(
        [pedalboard.HighShelfFilter(cutoff_frequency_hz=3000, gain_db=6.0), pedalboard.LowShelfFilter(cutoff_frequency_hz=150, gain_db=-4.0)]
    )(mix.T.copy(), rate).T
    reference, _ = normalise(bright, rate, target_lufs=-11.0, ceiling_dbtp=-1.0)
    write_wav(tmp_path / "reference.wav", reference, rate)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "reference.wav"), "-c:a", "flac", str(tmp_path / "reference.flac")], check=True)
    wanted = reference_profile(tmp_path / "reference.flac")  # read through ffmpeg
    result = master(
        mix, rate, MasterTarget("club", wanted["loudness_lufs"], -1.0, tuple(wanted["tone_db"]), "reference reference.flac", 1.0, 1.5, reference=True)
    )
    write_wav(tmp_path / "matched.wav", result.audio, rate)
    assert ebur128(tmp_path / "matched.wav")["integrated"] == pytest.approx(-11.0, abs=0.5)
    tone = result.decisions["tone"]
    assert tone["distance_after_db"] < 0.5 * tone["distance_before_db"]


def test_unreadable_reference_is_a_clear_error(tmp_path):
    broken = tmp_path / "reference.mp3"
    broken.write_bytes(b"ID3 this is not audio at all" * 10)
    with pytest.raises(SongmillError, match=r"reference audio .*reference\.mp3 cannot be read"):
        reference_profile(broken)
    with pytest.raises(SongmillError, match=r"reference audio .*missing\.wav does not exist"):
        reference_profile(tmp_path / "missing.wav")


def test_a_missing_reference_in_a_config_is_named_at_its_line(tmp_path):
    config = tmp_path / "release.yaml"
    config.write_text(RELEASE.replace("    seed: 3\n", "    seed: 3\n    reference: refs/nowhere.wav\n"))
    with pytest.raises(ConfigError) as caught:
        load_release(config)
    assert re.search(r"release\.yaml:\d+: tracks\[1\]\.reference: 'refs/nowhere\.wav' does not exist", str(caught.value))


def test_a_profile_matching_reference_loudness_needs_a_reference(tmp_path):
    from songmill.core.profiles import load_profiles

    path = tmp_path / "profiles.yaml"
    path.write_text(
        "profiles:\n  club:\n    description: club\n    loudness_lufs: reference\n    true_peak_dbtp: -1.0\n"
        "    formats: [{container: wav, sample_rate_hz: 48000, bit_depth: 24}]\n"
    )
    with pytest.raises(ConfigError, match=r"profiles\.yaml:3: .*loudness_lufs: reference needs a reference recording"):
        load_profiles(path)


# ---------------------------------------------------------------- bad stems


def test_stems_of_another_rate_or_width_are_converted_and_logged(tmp_path, caplog):
    rng = np.random.default_rng(0)
    write_wav(tmp_path / "stem-pad.wav", rng.standard_normal((44100, 6)).astype(np.float32) * 0.1, 44100)
    with caplog.at_level(logging.WARNING):
        stem = load_stem(tmp_path / "stem-pad.wav", "pad")
    assert stem.audio.shape == (48000, 2)
    assert stem.conversions == ["down-mixed 6 channels to stereo", "resampled from 44100 Hz to 48000 Hz"]
    assert "stem-pad.wav: resampled from 44100 Hz to 48000 Hz" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda p: write_wav(p, np.zeros((0, 1), np.float32)), r"stem-bass\.wav is empty"),
        (lambda p: write_wav(p, np.zeros((48000, 1), np.float32)), r"stem-bass\.wav is silent"),
        (lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk"), r"stem-bass\.wav is a damaged WAV file"),
        (lambda p: p.write_bytes(b"not a wav"), r"stem-bass\.wav is not a WAV file"),
    ],
)
def test_a_corrupt_or_empty_stem_is_a_clear_error_naming_it(tmp_path, content, message):
    """Read on its own, and read in its turn by the mix (as the mix stage reads its stems)."""
    path = tmp_path / "stem-bass.wav"
    content(path)
    with pytest.raises(SongmillError, match=message):
        load_stem(path, "bass")
    write_wav(tmp_path / "stem-pad.wav", np.random.default_rng(0).standard_normal((48000 * 2, 2)).astype(np.float32) * 0.1)
    score = Score(key="A minor", tempo_map=[TempoChange(beat=0, bpm=100)])
    files = [StemFile(tmp_path / "stem-pad.wav", "pad"), StemFile(path, "bass")]
    with pytest.raises(SongmillError, match=message):
        mix_stems(files, score, load_production_presets().for_genre("pop").mix)


def test_a_bad_production_preset_is_named_at_its_line(tmp_path):
    text = (PROJECT / "config/production.yaml").read_text().replace("    glue_ratio: 1.5\n", "    glue_ratio: 40\n", 1)
    path = tmp_path / "production.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_production_presets(path)
    assert re.search(r"production\.yaml:\d+: genres\.pop\.master\.glue_ratio: .*less than or equal to 10", str(caught.value))


def test_a_parts_own_reverb_send_wets_that_part_by_its_decibels(song):
    """The editor's "more reverb on the guitar" (a part's own send, +6 dB): mixed alone, that part's
    reverb return — the mix less its dry bus — is 6 dB louder against the dry part, within a dB."""
    from songmill.core.spec import MixEdit

    stems, score = song
    preset = load_production_presets().for_genre("pop").mix
    import dataclasses

    chords = next(s for s in stems if s.role in preset.reverb.send_db and s.role not in ("vocal", "backing"))
    chords = dataclasses.replace(chords, name="chords")  # named as the mix stage names a stem

    def wet_over_dry_db(edit: MixEdit | None) -> float:
        result = mix_stems([chords], score, preset, edit=edit)
        dry = result.buses["instrumental"]
        wet = result.audio - dry  # the returns (this part sends to the reverb only), and the bus compressor's small change
        return 10 * np.log10(np.mean(np.square(wet, dtype=np.float64)) / np.mean(np.square(dry, dtype=np.float64)))

    plain = wet_over_dry_db(None)
    wetter = wet_over_dry_db(MixEdit.model_validate({"parts": {chords.name: {"reverb_db": 6.0}}}))
    assert wetter - plain == pytest.approx(6.0, abs=1.0), (plain, wetter)
