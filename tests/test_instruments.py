"""Instruments: arrangement by genre preset and FluidSynth stems, measured on the audio."""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from models.composition.compose import compose
from models.composition.form import song_form
from models.composition.melody import voice_range
from models.composition.melody_model import load_melody_model
from models.instruments.arrangement import ArrangedPart, Arrangement, arrange, load_presets
from models.instruments.soundfont import SAMPLE_RATE_HZ, render_stems, stem_frames
from models.lyrics.songwriter import write_lyrics
from models.registry import ModelRegistry
from qc.onsets import detect_onsets, match_onsets
from songmill.core.audio import channel_mean, read_wav, rms_db, wav_frames, write_wav
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.score import Note, Part, Score, TempoChange
from songmill.core.vocab import GENRES

STRUCTURE = [("intro", 2), ("verse", 4), ("chorus", 4), ("bridge", 4), ("chorus", 4), ("outro", 2)]


@functools.cache
def soundfont():
    return ModelRegistry.load().resolve("fluidr3-gm", commercial=True)


@functools.cache
def short_song(genre: str = "pop", instrumental: bool = False) -> Score:
    form = song_form(title="Short", genre=genre, key="G major", time_signature="4/4", tempo_bpm=120, target_duration_s=40, structure=STRUCTURE)
    lyrics = write_lyrics(
        form, title="Short", theme="a walk by the river", mood="bright", genre=genre, provided=None, instrumental=instrumental, rng=np.random.default_rng(3)
    )
    model = load_melody_model(ModelRegistry.load().resolve("melody-gru-celtic", commercial=True))
    score, _ = compose(form, lyrics, genre=genre, voice_range=voice_range("ava"), model=model, rng=np.random.default_rng(3))
    return score


@pytest.fixture(scope="module")
def rendered():
    score = short_song()
    arrangement = arrange(score, "pop", instrumental=False)
    return score, arrangement, render_stems(arrangement, score, soundfont=soundfont())


def bar_spans_s(score: Score) -> list[tuple[float, float]]:
    bar = score.beats_per_bar
    return [(score.seconds_at(b * bar), score.seconds_at((b + 1) * bar)) for b in range(score.total_bars)]


# ------------------------------------------------------------------------ arrangement


@pytest.mark.parametrize("genre", GENRES)
def test_every_genre_preset_fills_up_towards_the_chorus(genre):
    score = short_song(genre)
    arrangement = arrange(score, genre, instrumental=False)
    playing = {name: 0 for name in ("intro", "verse", "chorus")}
    for decision in arrangement.decisions["instruments"]:
        for name in playing:
            playing[name] += name in decision["sections"]
    assert playing["intro"] <= playing["verse"] < playing["chorus"], playing


def test_the_bridge_breaks_and_the_song_ends_on_a_held_tonic(rendered):
    score, arrangement, _ = rendered
    start, end = arrangement.decisions["bridge_break_beats"]
    bridge = next(s for s in score.sections if s.name == "bridge")
    assert start == bridge.start_bar * 4 and end == start + 8
    for name in ("drums", "bass"):
        part = next(p for p in arrangement.parts if p.name == name)
        assert not [n for n in part.notes if start <= n.start_beat < end]
    piano = next(p for p in arrangement.parts if p.name == "piano")
    last = max(piano.notes, key=lambda n: n.start_beat)
    assert last.start_beat == score.chords[-1].start_beat and last.end_beat > score.total_bars * 4
    assert {n.pitch % 12 for n in piano.notes if n.start_beat == last.start_beat} == {7, 11, 2}  # G major


def test_instrumental_tracks_get_a_lead_and_vocal_tracks_do_not():
    assert "lead" in [p.name for p in arrange(short_song("folk", True), "folk", instrumental=True).parts]
    assert "lead" not in [p.name for p in arrange(short_song("folk"), "folk", instrumental=False).parts]


def test_a_part_with_no_notes_gets_no_stem():
    form = song_form(title="x", genre="pop", key="C major", time_signature="4/4", tempo_bpm=120, target_duration_s=30, structure=[("verse", 4), ("outro", 2)])
    lyrics = write_lyrics(form, title="x", theme="a quiet walk", mood="calm", genre="pop", provided=None, instrumental=False, rng=np.random.default_rng(0))
    model = load_melody_model(ModelRegistry.load().resolve("melody-gru-celtic", commercial=True))
    score, _ = compose(form, lyrics, genre="pop", voice_range=voice_range("ava"), model=model, rng=np.random.default_rng(0))
    arrangement = arrange(score, "pop", instrumental=False)
    bells = next(d for d in arrangement.decisions["instruments"] if d["name"] == "bells")
    assert bells["notes"] == 0 and bells["stem"] is None  # no chorus: the last-chorus doubling never plays
    assert "bells" not in [p.name for p in arrangement.parts]


def test_notes_outside_an_instruments_register_move_by_octaves_and_are_logged(caplog):
    score = short_song()
    presets = load_presets()
    low_bells = presets.model_copy(deep=True)
    preset = low_bells.presets["pop"]
    preset.instruments[-1] = preset.instruments[-1].model_copy(update={"note_range": (84, 108)})
    with caplog.at_level(logging.INFO, logger="songmill.arrangement"):
        arrangement = arrange(score, "pop", instrumental=False, presets=low_bells)
    bells = next(p for p in arrangement.parts if p.name == "bells")
    assert all(84 <= n.pitch <= 108 for n in bells.notes)
    moved = next(d for d in arrangement.decisions["instruments"] if d["name"] == "bells")["moved_into_register"]
    assert moved > 0 and f"bells: {moved} notes moved by octaves into its register [84, 108]" in caplog.text


def test_an_unknown_preset_is_a_clear_error(monkeypatch):
    with pytest.raises(SongmillError) as err:
        arrange(short_song(), "polka", instrumental=False)
    # the file to edit: the session's SONGMILL_CONFIG_DIR (tests/conftest.py) holds it
    where = Path(os.environ["SONGMILL_CONFIG_DIR"]) / "arrangements.yaml"
    assert str(err.value) == (f"arrangement preset 'polka' is not in {where} (presets: pop, rock, synthpop, folk, ballad, hip-hop)")
    monkeypatch.delenv("SONGMILL_CONFIG_DIR")
    with pytest.raises(SongmillError, match=r"^arrangement preset 'polka' is not in config/arrangements\.yaml \(presets"):
        arrange(short_song(), "polka", instrumental=False)  # the project's own config/: named as the README names it


def test_an_unknown_instrument_in_the_presets_names_file_line_and_instrument(tmp_path):
    from songmill.core.paths import config_dir

    text = (config_dir() / "arrangements.yaml").read_text().replace("instrument: acoustic grand piano", "instrument: kazoo", 1)
    path = tmp_path / "arrangements.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_presets(path)
    [line] = err.value.problems
    number = 1 + next(i for i, ln in enumerate(text.splitlines()) if "kazoo" in ln)
    assert line.startswith(f"{path}:{number}: presets.pop.instruments[2]: 'kazoo' is not a General MIDI instrument")


# ------------------------------------------------------------------------ stems


def test_every_stem_has_the_songs_length_at_48_khz(rendered):
    score, arrangement, stems = rendered
    assert set(stems) == {p.name for p in arrangement.parts}
    assert {len(s) for s in stems.values()} == {stem_frames(score)}
    assert stem_frames(score) == round((score.duration_s + 2.0) * SAMPLE_RATE_HZ)


def test_each_stem_sounds_where_its_part_plays_and_is_silent_where_it_rests(rendered):
    score, arrangement, stems = rendered
    for part in arrangement.parts:
        stem = stems[part.name]
        sounding = [(score.seconds_at(n.start_beat), score.seconds_at(n.end_beat)) for n in part.notes]
        for start, end in bar_spans_s(score):
            segment = stem[int(start * SAMPLE_RATE_HZ) : int(end * SAMPLE_RATE_HZ)]
            plays = any(a < end and b > start for a, b in sounding)
            recently = any(b > start - 1.5 and a < end for a, b in sounding)  # a release may ring on
            if plays:
                assert rms_db(segment) > -60, (part.name, start)
            elif not recently:
                assert rms_db(segment) < -80, (part.name, start)


def test_drum_onsets_line_up_with_the_score_within_10_ms(rendered):
    score, arrangement, stems = rendered
    drums = next(p for p in arrangement.parts if p.name == "drums")
    expected = np.array(sorted({score.seconds_at(n.start_beat) for n in drums.notes}))
    precision, recall, errors = match_onsets(detect_onsets(stems["drums"], SAMPLE_RATE_HZ), expected, 0.010)
    assert precision >= 0.95 and recall >= 0.5, (precision, recall)
    assert np.median(np.abs(errors)) <= 0.005


def test_bass_notes_start_within_10_ms_of_the_score():
    """Detached bass notes, so each start is the first sound after silence."""
    notes = [Note(pitch=36 + (i % 5) * 2, start_beat=1 + i * 1.5 + 0.013 * (i % 3), duration_beats=0.4, velocity=100) for i in range(12)]
    score = Score(key="C major", tempo_map=[TempoChange(bpm=100)], parts=[Part(name="bass", role="bass", notes=notes)])
    arrangement = Arrangement(
        preset="test", parts=[ArrangedPart(name="bass", program=33, instrument="electric bass (finger)", is_drum=False, notes=notes)], decisions={}
    )
    stem = render_stems(arrangement, score, soundfont=soundfont())["bass"]
    for note in notes:
        t = score.seconds_at(note.start_beat)
        window = np.abs(stem[int((t - 0.05) * SAMPLE_RATE_HZ) : int((t + 0.05) * SAMPLE_RATE_HZ)])
        first = np.argmax(window > window.max() * 0.01) / SAMPLE_RATE_HZ - 0.05
        assert abs(first) <= 0.010, (t, first)


def test_stems_are_reproducible_to_the_byte(rendered, tmp_path):
    score, arrangement, stems = rendered
    again = render_stems(arrangement, score, soundfont=soundfont())
    for name in ("drums", "bass"):
        write_wav(tmp_path / "a.wav", stems[name])
        write_wav(tmp_path / "b.wav", again[name])
        assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
        samples, rate = read_wav(tmp_path / "a.wav")
        assert rate == 48000 and samples.shape == (len(stems[name]), 1) and np.array_equal(samples[:, 0], stems[name])


def test_parts_rendered_before_are_read_back_from_the_store_byte_for_byte(rendered, tmp_path, caplog):
    """The song editor's section edits: a part whose MIDI did not change is read back from the
    stems an earlier render kept, the same samples as rendering it; a changed part, a damaged
    record, a blob gone from the store or another soundfont renders again."""
    from models.instruments.soundfont import _part_score, renderer_identity
    from songmill.core.score_export import write_midi
    from songmill.core.store import LocalStore
    from songmill.engine.stem_store import RECORD_PREFIX, StoredStems, stem_namespace

    score, arrangement, stems = rendered
    store = LocalStore(tmp_path / "store")
    made_by = stem_namespace("1", "a" * 64, renderer_identity(), SAMPLE_RATE_HZ)

    def render(arranged: Arrangement, namespace: str = made_by) -> tuple[dict, int]:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        with StoredStems(store, namespace) as memo:
            made = render_stems(arranged, score, soundfont=soundfont(), memo=memo)
            for name, samples in made.items():
                write_wav(folder / f"{name}.wav", samples)
            memo.keep({name: folder / f"{name}.wav" for name in made})
        return made, memo.found

    def kept_blob(part: ArrangedPart) -> tuple[Path, Path]:
        """The store record and blob that keep `part`'s stem."""
        write_midi(_part_score(score, part), tmp_path / "part.mid")
        with StoredStems(store, made_by) as memo:
            key = memo.key((tmp_path / "part.mid").read_bytes(), stem_frames(score))
        record = tmp_path / "store" / "records" / f"{RECORD_PREFIX}{key}.json"
        sha = json.loads(record.read_text())["stem"]["sha256"]
        return record, tmp_path / "store" / "blobs" / sha[:2] / sha

    first, found = render(arrangement)
    assert found == 0 and all(np.array_equal(first[name], stems[name]) for name in stems)
    parts = {part.name: part for part in arrangement.parts}
    bass = parts["bass"]
    changed = arrangement.model_copy(
        update={"parts": [part if part is not bass else bass.model_copy(update={"notes": bass.notes[:-1]}) for part in arrangement.parts]}
    )
    second, found = render(changed)
    assert found == len(stems) - 1  # every part but the bass read back
    for name in stems:
        assert np.array_equal(second[name], stems[name]) == (name != "bass"), name  # read back: the samples FluidSynth gives
    assert np.array_equal(second["bass"], render_stems(changed, score, soundfont=soundfont())["bass"])

    record, _ = kept_blob(parts["drums"])
    record.write_text("{not json")
    _, blob = kept_blob(parts["piano"])
    blob.unlink()
    with caplog.at_level(logging.WARNING, logger="songmill.engine.stem_store"):
        third, found = render(changed)
    assert found == len(stems) - 2  # the drums and the piano rendered again, and kept again
    assert np.array_equal(third["drums"], stems["drums"]) and np.array_equal(third["piano"], stems["piano"])
    assert any("not read back" in r.getMessage() and "rendered again" in r.getMessage() for r in caplog.records)
    assert render(changed)[1] == len(stems)
    assert render(arrangement, stem_namespace("1", "b" * 64, renderer_identity(), SAMPLE_RATE_HZ))[1] == 0  # another soundfont: every part rendered


def test_a_missing_soundfont_names_the_package(rendered, tmp_path):
    score, arrangement, _ = rendered
    with pytest.raises(SongmillError) as err:
        render_stems(arrangement, score, soundfont=tmp_path / "FluidR3_GM.sf2")
    assert str(err.value) == f"soundfont {tmp_path / 'FluidR3_GM.sf2'} is missing; install the Debian package fluid-soundfont-gm (make setup does)"


def test_the_registry_names_the_package_when_the_soundfont_file_is_gone(tmp_path, monkeypatch):
    import yaml

    from models.registry import DEFAULT_REGISTRY

    registry = yaml.safe_load(DEFAULT_REGISTRY.read_text())
    registry["models"]["fluidr3-gm"]["path"] = str(tmp_path / "gone.sf2")
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry))
    with pytest.raises(SongmillError) as err:
        ModelRegistry.load(path).resolve("fluidr3-gm", commercial=True)
    assert str(err.value) == f"model 'fluidr3-gm' file {tmp_path / 'gone.sf2'} is missing; install the Debian package fluid-soundfont-gm (make setup does)"


def test_a_damaged_wav_is_named(tmp_path):
    path = tmp_path / "stem.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(SongmillError) as err:
        read_wav(path)
    assert str(err.value) == f"audio file {path} is a damaged WAV file (no fmt chunk)"
    with pytest.raises(SongmillError) as err:
        wav_frames(path)
    assert str(err.value) == f"audio file {path} is a damaged WAV file (no fmt chunk)"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 2, 3, 6, 8])
def test_the_mid_of_the_channels_is_numpys_mean_to_the_bit(dtype, channels):
    """channel_mean (the mid every FluidSynth part, watermark reading and gate measurement takes)
    gives the bytes samples.mean(axis=1) gives: signed zeros, infinities, NaN and values from
    1e-40 (float32's denormals) to 100 included, in the dtype it was given."""
    rng = np.random.default_rng(channels)
    frames = (rng.standard_normal((20_000, channels)) * 10.0 ** rng.integers(-40, 3, (20_000, channels))).astype(dtype)
    frames[:10], frames[10:20, 0], frames[20:30], frames[30, -1] = -0.0, 0.0, np.inf, np.nan
    frames[40:50, 0] = -np.inf
    mid = channel_mean(frames)
    assert mid.dtype == frames.mean(axis=1).dtype == dtype and mid.tobytes() == frames.mean(axis=1).tobytes()
    mono = frames[:, 0]
    assert channel_mean(mono) is mono


def test_the_length_a_wav_header_gives_is_the_length_read_wav_reads(tmp_path):
    """wav_frames (the mix's length of a stem before reading it) against read_wav, for float32,
    16-bit PCM written by another tool (ffmpeg, with its LIST chunk), and a file cut short in
    the middle of its samples."""
    import subprocess

    rng = np.random.default_rng(1)
    floats = tmp_path / "float.wav"
    write_wav(floats, rng.standard_normal((48_001, 2)).astype(np.float32) * 0.1, 48000)
    pcm = tmp_path / "pcm16.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(floats), "-ar", "44100", "-c:a", "pcm_s16le", str(pcm)], check=True)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(floats.read_bytes()[:-1001])  # 125 frames and a byte short of what its header says
    for path in (floats, pcm, cut):
        samples, rate = read_wav(path)
        assert wav_frames(path) == (samples.shape[0], rate)
    assert wav_frames(cut)[0] == 48_001 - 126
