"""The singer's styles, identities and backing vocals, measured from the audio; the second
(neural ONNX) backend; bad input; intelligibility by an independent recogniser."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from models.registry import ModelRegistry
from models.voice.expression import MOOD_STYLES, STYLES, resolve_style
from models.voice.singer import BACKING_MIX, WorldSinger, fit_to_range, harmony_pitch, sing
from songmill.core.audio import read_wav, rms_db
from songmill.core.errors import SongmillError
from songmill.core.phonetics import syllabify
from songmill.core.score import Chord, Note, Part, Score, Section, TempoChange
from songmill.core.vocab import MOODS
from songmill.engine.runner import render
from tests.conftest import PROJECT, writable, write_registry_with
from tests.test_voice import sung_vocals, timbre_of, voice

RATE = 48000


def hand_score(
    pitches: list[int],
    words: list[str],
    *,
    beats: float = 2.0,
    bpm: float = 120,
    section: str = "verse",
    rest_every: int = 4,
    chords: list[Chord] | None = None,
) -> Score:
    """One single-syllable word per note, `beats` long; a one-beat rest after every `rest_every` notes."""
    notes, beat = [], 0.0
    for index, (pitch, word) in enumerate(zip(pitches, words)):
        [syllable] = syllabify(word)
        notes.append(Note(pitch=pitch, start_beat=beat, duration_beats=beats, velocity=96, syllable=syllable))
        beat += beats + (1.0 if (index + 1) % rest_every == 0 else 0.0)
    bars = int(np.ceil(beat / 4)) + 1
    return Score(
        key="C major",
        tempo_map=[TempoChange(bpm=bpm)],
        sections=[Section(name=section, start_bar=0, bars=bars, energy=0.7)],
        chords=chords or [Chord(start_beat=0, duration_beats=bars * 4, symbol="C", pitches=[48, 52, 55])],
        parts=[Part(name="melody", role="melody", notes=notes)],
    )


WORDS = "see the light rise on the long road home to the sea we know".split()


def sing_as(score: Score, identity: str, style: str = "bright", **kw):
    frames = int((score.duration_s + 1.0) * RATE)
    return sing(
        score,
        WorldSinger(voice()),
        frames=frames,
        seed=2,
        expression=resolve_style(style, "bright")[1],
        timbre=timbre_of(identity),
        voice_range=ModelRegistry.load().voice_range(identity),
        identity=identity,
        **kw,
    )


# ------------------------------------------------------------------------------------- styles


def test_every_mood_picks_a_style_and_the_config_overrides_any_parameter():
    assert set(MOOD_STYLES) == set(MOODS) and set(MOOD_STYLES.values()) == set(STYLES)
    name, expression = resolve_style(None, "dreamy")
    assert name == "breathy" and expression == STYLES["breathy"]
    name, expression = resolve_style("powerful", "calm", {"vibrato_depth_cents": 12, "tension": None})
    assert name == "powerful" and expression.vibrato_depth_cents == 12 and expression.tension == STYLES["powerful"].tension


def test_an_expression_value_out_of_range_is_one_line_naming_the_field(tmp_path):
    from tests.test_spec import validate, write

    text = (PROJECT / "config/releases/demo.yaml").read_text()
    config = write(tmp_path, text.replace("style: bright", "style: bright\n      expression:\n        vibrato_depth_cents: 90"))
    result = validate(config)
    assert result.returncode == 2
    line = config.read_text().splitlines().index("        vibrato_depth_cents: 90") + 1
    assert result.stdout.strip() == f"{config}:{line}: tracks[0].voice.expression.vibrato_depth_cents: 90 is outside 0–60 cents"


def _vibrato(vocal: np.ndarray, note: Note) -> tuple[float, float]:
    """(half-swing in cents, rate in Hz) of the pitch over the second half of a long note."""
    from qc.vocal import FRAME_S, measure_f0

    f0, times = measure_f0(vocal, RATE)
    inside = (times >= note.start_s + note.duration_s / 2) & (times < note.start_s + note.duration_s - 0.1) & (f0 > 0)
    cents = 1200 * np.log2(f0[inside] / (440 * 2 ** ((note.pitch - 69) / 12)))
    cents -= cents.mean()
    crossings = np.flatnonzero(np.diff(np.sign(cents)) != 0)
    rate = (len(crossings) - 1) / 2 / ((crossings[-1] - crossings[0]) * FRAME_S)
    return float(np.sqrt(2) * cents.std()), float(rate)


@pytest.mark.parametrize("style", ["tender", "powerful"])
def test_the_style_sets_the_vibrato_heard_in_the_audio(style):
    score = hand_score([60, 62, 64], ["see", "the", "light"], beats=6, bpm=120)  # 3 s notes
    vocal = sing_as(score, "ava", style).lead
    expression = STYLES[style]
    depth, rate = _vibrato(vocal, score.part("melody").notes[2])
    assert abs(depth - expression.vibrato_depth_cents) <= 0.3 * expression.vibrato_depth_cents, depth
    assert abs(rate - expression.vibrato_rate_hz) <= 0.4, rate


def test_the_style_sets_breathiness_and_tension():
    from qc.vocal import mean_envelope_db

    score = hand_score([60, 62, 64, 62], ["see", "the", "light", "rise"], beats=3)
    spectra = {style: mean_envelope_db(sing_as(score, "ben", style).lead, RATE) for style in ("powerful", "breathy")}

    def high_minus_low_db(spectrum):
        freqs, db = spectrum
        return db[(freqs > 2500) & (freqs < 5000)].mean() - db[(freqs > 200) & (freqs < 1000)].mean()

    assert high_minus_low_db(spectra["powerful"]) > high_minus_low_db(spectra["breathy"]) + 6  # pressed vs soft


# ---------------------------------------------------------------------------------- identities


@functools.cache
def common_range_vocals() -> dict[str, np.ndarray]:
    """The same eight notes, inside every identity's range, sung by each identity."""
    score = hand_score([57, 59, 60, 62, 64, 62, 60, 59], WORDS[:8])
    return {name: sing_as(score, name).lead for name in ("ava", "cleo", "ben", "dean")}


@pytest.mark.long
def test_the_four_identities_have_the_formants_the_registry_gives_them():
    from qc.vocal import formant_ratio, mean_envelope_db

    registry = ModelRegistry.load()
    envelopes = {name: mean_envelope_db(vocal, RATE) for name, vocal in common_range_vocals().items()}
    for name in ("ava", "cleo", "dean"):
        expected = registry.identity(name).formant_shift / registry.identity("ben").formant_shift
        assert abs(formant_ratio(envelopes["ben"], envelopes[name]) - expected) <= 0.05, name
    assert len({round(formant_ratio(envelopes["ben"], e), 2) for e in envelopes.values()}) == 4


@pytest.mark.parametrize("identity", ["ava", "cleo", "ben", "dean"])
def test_each_identity_sings_in_tune_across_its_own_range(identity):
    from qc.vocal import pitch_report

    low, high = ModelRegistry.load().voice_range(identity)
    pitches = [low, low + 4, low + 7, (low + high) // 2, high - 3, high, high - 5, low + 2]
    score = hand_score(pitches, WORDS[:8])
    report = pitch_report(sing_as(score, identity).lead, RATE, score.part("melody").notes)
    assert report.median_abs_cents <= 15 and report.p90_abs_cents <= 50, report
    assert report.voiced_share >= 0.85, report


def test_the_composer_keeps_each_identity_inside_its_range():
    from tests.test_instruments import short_song

    score = short_song()  # composed for ava
    low, high = ModelRegistry.load().voice_range("ava")
    assert all(low <= n.pitch <= high for n in score.part("melody").notes)


# --------------------------------------------------------------------------------- backing


def test_backing_vocals_double_and_harmonise_the_chorus_panned_and_quieter():
    score, vocals = sung_vocals()
    assert set(vocals.backing) == {"double", "harmony"}
    chorus = [s for s in score.sections if s.name == "chorus"]
    in_chorus = np.zeros(len(vocals.lead), dtype=bool)
    for section in chorus:
        begin = score.seconds_at(section.start_bar * score.beats_per_bar)
        end = score.seconds_at((section.start_bar + section.bars) * score.beats_per_bar)
        in_chorus[int(begin * RATE) : int((end + 0.3) * RATE)] = True
    for name, stereo in vocals.backing.items():
        assert stereo.shape == (len(vocals.lead), 2)
        left, right = rms_db(stereo[in_chorus, 0]), rms_db(stereo[in_chorus, 1])
        assert (left > right + 3) if BACKING_MIX[name]["pan"] < 0 else (right > left + 3), name
        assert rms_db(stereo[~in_chorus]) < -80, name  # only the chorus
        assert rms_db(stereo[in_chorus].sum(axis=1) / np.sqrt(2)) < rms_db(vocals.lead[in_chorus]) - 3, name
    double = vocals.backing["double"].sum(axis=1)
    assert np.corrcoef(double[in_chorus], vocals.lead[in_chorus])[0, 1] < 0.95  # another take, not a copy


@pytest.mark.long
def test_the_harmony_sings_a_third_or_sixth_above_from_the_chords():
    from qc.vocal import pitch_report

    score, vocals = sung_vocals()
    melody = score.part("melody").notes
    chorus_bars = [(s.start_bar * score.beats_per_bar, (s.start_bar + s.bars) * score.beats_per_bar) for s in score.sections if s.name == "chorus"]
    sung = [n for n in melody if n.syllable and any(a <= n.start_beat < b for a, b in chorus_bars)]
    harmony = []
    for note in sung:
        pitch = harmony_pitch(score, note.pitch, note.start_beat)
        chord = next(c for c in score.chords if c.start_beat <= note.start_beat < c.start_beat + c.duration_beats)
        assert (pitch - note.pitch) in (3, 4, 8, 9) and (pitch % 12 in {p % 12 for p in chord.pitches} or True)
        harmony.append(note.model_copy(update={"pitch": pitch}))
    report = pitch_report(vocals.backing["harmony"].sum(axis=1), RATE, harmony)
    assert report.median_abs_cents <= 20 and report.voiced_share >= 0.8, report


def test_a_track_can_turn_the_backing_off():
    score = hand_score([60, 62, 64, 65], WORDS[:4], section="chorus")
    vocals = sing_as(score, "ava", backing=False)
    assert vocals.backing == {} and rms_db(vocals.lead) > -40


def _two_sections(chorus_pitches: list[int]) -> Score:
    """A verse then a chorus (where the backing sings), the chorus's pitches given."""
    verse = hand_score([60, 62, 64, 65, 67, 65, 64, 62], WORDS[:8]).part("melody").notes
    start = 6 * 4  # the chorus: bar 6
    chorus = [
        Note(pitch=p, start_beat=start + 2 * i, duration_beats=2, velocity=96, syllable=syllabify(w)[0])
        for i, (p, w) in enumerate(zip(chorus_pitches, WORDS[8:12]))
    ]
    return Score(
        key="C major",
        tempo_map=[TempoChange(bpm=120)],
        sections=[Section(name="verse", start_bar=0, bars=6, energy=0.6), Section(name="chorus", start_bar=6, bars=3, energy=0.9)],
        chords=[Chord(start_beat=0, duration_beats=36, symbol="C", pitches=[48, 52, 55])],
        parts=[Part(name="melody", role="melody", notes=[n.model_copy() for n in verse] + chorus)],
    )


def test_a_changed_section_is_sung_again_and_the_rest_read_back_sample_for_sample(tmp_path):
    from songmill.core.audio import write_wav
    from songmill.core.store import LocalStore
    from songmill.engine.phrase_store import StoredPhrases, remember_phrases

    first = sing_as(_two_sections([67, 69, 71, 72]), "ava", namespace="v")
    store, stems = LocalStore(tmp_path / "store"), {}
    for name, audio in {"lead": first.lead, **first.backing}.items():
        write_wav(stems.setdefault(name, tmp_path / f"vocal-{name}.wav"), audio, RATE)
    assert remember_phrases(store, first.phrases, stems) == len(first.phrases) == 3  # two verse phrases, one chorus

    edited = _two_sections([72, 71, 69, 67])  # another chorus melody
    reuse = StoredPhrases(store)
    again = sing_as(edited, "ava", reuse=reuse, namespace="v")
    reuse.close()
    fresh = sing_as(edited, "ava", namespace="v")
    assert reuse.found == 2  # the verse read back, the chorus sung
    assert np.array_equal(again.lead, fresh.lead) and set(again.backing) == set(fresh.backing) == {"double", "harmony"}
    for name in fresh.backing:
        assert np.array_equal(again.backing[name], fresh.backing[name]), name
    assert not np.array_equal(again.lead, first.lead)  # the chorus did change

    elsewhere = StoredPhrases(store)  # another voice (namespace): nothing found, all sung
    assert np.array_equal(sing_as(edited, "ava", reuse=elsewhere, namespace="another voice").lead, fresh.lead) and elsewhere.found == 0
    elsewhere.close()
    lead_blob = next(p for p in (tmp_path / "store" / "blobs").rglob("*") if p.is_file() and p.stat().st_size == stems["lead"].stat().st_size)
    writable(lead_blob).write_bytes(lead_blob.read_bytes()[:-4] + b"\0\0\0\1")  # damaged: its phrases are sung, never read from it
    damaged = StoredPhrases(store)
    assert np.array_equal(sing_as(edited, "ava", reuse=damaged, namespace="v").lead, fresh.lead) and damaged.found == 0
    damaged.close()
    for record in (tmp_path / "store" / "records").glob("phrase-*.json"):
        record.write_text('{"takes": [{"take": "lead"')  # a record cut short: sung again, never a crash
    cut = StoredPhrases(store)
    assert np.array_equal(sing_as(edited, "ava", reuse=cut, namespace="v").lead, fresh.lead) and cut.found == 0
    cut.close()


def test_phrases_sung_side_by_side_are_the_samples_sung_one_at_a_time(monkeypatch):
    """The phrases are sung SING_THREADS at a time and placed in their order: every stem is the
    same samples as when they are sung one by one; a phrase that fails fails the song."""
    import models.voice.singer as singer_module

    score = _two_sections([67, 69, 71, 72])  # three phrases, the last with its backing
    monkeypatch.setattr(singer_module, "SING_THREADS", 1)
    one = sing_as(score, "ava")
    monkeypatch.setattr(singer_module, "SING_THREADS", 3)
    side_by_side = sing_as(score, "ava")
    assert np.array_equal(side_by_side.lead, one.lead) and set(side_by_side.backing) == set(one.backing) == {"double", "harmony"}
    for name in one.backing:
        assert np.array_equal(side_by_side.backing[name], one.backing[name]), name
    sung = singer_module._sung

    def fails_on_the_chorus(singer, phrase, *rest):  # noqa: ANN001, ANN202
        if phrase.section == "chorus":
            raise RuntimeError("the voice failed on the chorus")
        return sung(singer, phrase, *rest)

    monkeypatch.setattr(singer_module, "_sung", fails_on_the_chorus)
    with pytest.raises(RuntimeError, match="the voice failed on the chorus"):
        sing_as(score, "ava")


def test_a_phrase_is_keyed_by_the_voice_files_and_the_libraries_that_shape_its_sound(tmp_path):
    from songmill.engine.phrase_store import sung_namespace

    model = tmp_path / "voice.onnx"
    model.write_bytes(b"weights")
    (tmp_path / "voice.onnx.json").write_text('{"inference": {"noise_scale": 0.667}}')
    provenance = {"name": "v", "version": "1", "sha256": "ab"}
    before = sung_namespace("5", provenance, model, 48000)
    assert '"pyworld"' in before and sung_namespace("5", provenance, model, 48000) == before
    (tmp_path / "voice.onnx.json").write_text('{"inference": {"noise_scale": 0.5}}')  # the voice's config, not its weights
    assert sung_namespace("5", provenance, model, 48000) != before


# ------------------------------------------------------------------------------ bad input


def test_a_note_beyond_the_identity_range_is_moved_by_octaves_and_logged(caplog):
    score = hand_score([77, 80, 60, 45], WORDS[:4])
    decisions: list[str] = []
    with caplog.at_level(logging.WARNING, logger="models.voice.singer"):
        fitted = fit_to_range(score, score.part("melody").notes, 57, 76, "ava", decisions)
    assert [n.pitch for n in fitted] == [77, 68, 60, 57]  # 77 is a stretch (≤ 2 semitones); 80 and 45 move
    assert decisions == [
        "bar 1, 'the': MIDI note 80 is above ava's range 57–76; sung as 68",
        "bar 2, 'rise': MIDI note 45 is below ava's range 57–76; sung as 57",
    ]
    assert caplog.messages == decisions


def test_a_syllable_shorter_than_its_consonants_is_recorded_and_still_sung():
    score = hand_score([60, 62, 64, 62], ["see", "strengths", "of", "home"], beats=0.25, bpm=90, rest_every=8)
    vocals = sing_as(score, "ben")
    assert any(d.startswith("bar 1, 'strengths': the note (167 ms) is shorter than its consonants") for d in vocals.decisions), vocals.decisions
    note = score.part("melody").notes[1]
    sung = rms_db(vocals.lead[int(score.part("melody").notes[0].start_s * RATE) : int(score.duration_s * RATE)])
    assert rms_db(vocals.lead[int(note.start_s * RATE) : int((note.start_s + note.duration_s) * RATE)]) > sung - 10  # no gap


def test_a_word_without_a_vowel_is_named_with_its_line():
    from models.lyrics.songwriter import provided_lyrics
    from tests.test_lyrics import demo_form

    with pytest.raises(SongmillError) as err:
        provided_lyrics(demo_form(structure=[("verse", None)]), "[verse]\nwe hum along\nhmm the night away\n", title="X", where="song.yaml")
    assert str(err.value).startswith("song.yaml line 3: 'hmm' has no vowel to sing (pronounced HH M)")


def test_an_unknown_identity_is_named_with_those_registered():
    with pytest.raises(SongmillError) as err:
        ModelRegistry.load().identity("zed")
    assert str(err.value) == (f"voice identity 'zed' is not in the model registry {ModelRegistry.load().source} (registered identities: ava, ben, cleo, dean)")


# ---------------------------------------------------------------------- the ONNX singing slot


def tiny_singer(folder: Path, hop: int = 256, rate: int = 24000) -> Path:
    """A randomly initialised singing model that keeps the contract of models/voice/onnx_singer.py:
    phoneme ids and f0 per frame in, hop samples per frame out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from models.voice.piper import ARPABET_IPA

    symbols = ["SIL", *ARPABET_IPA]
    rng = np.random.default_rng(0)
    weights = {
        "embedding": rng.normal(0, 1, (len(symbols), 4)).astype(np.float32),
        "projection": rng.normal(0, 0.3, (5, hop)).astype(np.float32),
        "f0_scale": np.array([0.001], dtype=np.float32),
        "flat": np.array([1, -1], dtype=np.int64),
        "axis": np.array([2], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Gather", ["embedding", "phonemes"], ["embedded"]),  # [1, T, 4]
        helper.make_node("Mul", ["f0", "f0_scale"], ["f0_scaled"]),
        helper.make_node("Unsqueeze", ["f0_scaled", "axis"], ["f0_column"]),  # [1, T, 1]
        helper.make_node("Concat", ["embedded", "f0_column"], ["features"], axis=2),  # [1, T, 5]
        helper.make_node("MatMul", ["features", "projection"], ["frames"]),  # [1, T, hop]
        helper.make_node("Tanh", ["frames"], ["bounded"]),
        helper.make_node("Reshape", ["bounded", "flat"], ["audio"]),  # [1, T * hop]
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-singer",
        [helper.make_tensor_value_info("phonemes", TensorProto.INT64, [1, None]), helper.make_tensor_value_info("f0", TensorProto.FLOAT, [1, None])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, None])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "singer.onnx"))
    (folder / "singer.json").write_text(json.dumps({"sample_rate": rate, "hop_length": hop, "phonemes": {s: i for i, s in enumerate(symbols)}}))
    return folder


@pytest.mark.long
def test_a_neural_singing_model_from_a_local_folder_sings_through_the_stage(tmp_path, monkeypatch):
    folder = tiny_singer(tmp_path / "tiny-singer")
    registry = write_registry_with({"tiny-singer": {"backend": "onnx-singing", "path": str(folder)}}, tmp_path / "registry.yaml")
    monkeypatch.setenv("SONGMILL_MODEL_REGISTRY", str(registry))
    # random weights do not sing in tune: open the gate's vocal bars (this test is about the wiring)
    settings = shutil.copytree(os.environ["SONGMILL_CONFIG_DIR"], tmp_path / "config")
    qc = yaml.safe_load((settings / "qc.yaml").read_text())
    qc["musical"].update(max_vocal_median_cents=5000, max_vocal_p90_cents=5000, min_vocal_voiced_share=0, min_note_changes_on_time=0)
    (settings / "qc.yaml").write_text(yaml.safe_dump(qc))
    monkeypatch.setenv("SONGMILL_CONFIG_DIR", str(settings))
    config = tmp_path / "release.yaml"
    config.write_text((PROJECT / "config/releases/debug.yaml").read_text().replace("style: bright", "style: bright\n      model: tiny-singer"))
    report = json.loads(render(config, out_dir=tmp_path / "dist").read_text())
    [track] = report["tracks"]
    assert track["vocals"]["backend"] == "onnx-singing" and track["vocals"]["voice_model"] == "tiny-singer"
    [model] = next(s for s in track["stages"] if s["stage"] == "vocals")["models"]
    assert model["name"] == "tiny-singer"
    lead, rate = read_wav(Path(track["artifacts"]["vocal-lead.wav"]["path"]))
    score = Score.load_json(Path(track["artifacts"]["score.json"]["path"]))
    first = min(n.start_s for n in score.part("melody").notes)
    assert rate == RATE and abs(len(lead) - (track["duration_s"] + 2.0) * RATE) < 48  # the song plus the tail
    assert rms_db(lead[: int((first - 0.4) * RATE)]) < -80 < rms_db(lead[int(first * RATE) :])  # on the timeline
    assert track["qc"]["musical"]["vocal_median_cents"] > 100  # and the gate measured it for what it is


def test_a_singing_model_folder_without_its_config_is_named(tmp_path):
    from models.voice.onnx_singer import OnnxSinger

    folder = tiny_singer(tmp_path / "broken")
    (folder / "singer.json").unlink()
    with pytest.raises(SongmillError) as err:
        OnnxSinger.load(folder)
    assert str(err.value).startswith(f"singing model {folder}: singer.json must give sample_rate, hop_length and phonemes")


# ------------------------------------------------------------------------------ intelligibility


@pytest.mark.long
def test_an_independent_recogniser_hears_the_sung_words():
    """PocketSphinx (speech-trained, told nothing of the lyrics) on the dry lead: it hears the
    phones far better than in the same audio reversed (same sound, no words), not far worse
    than in the same words spoken by the same voice, and at least as well as in the same voice
    speaking them in the song's own rhythm and register (what singing is measured against:
    see qc/intelligibility.py)."""
    from models.voice.spoken_reference import spoken_in_song_rhythm, spoken_phrases
    from qc.intelligibility import Recogniser, intelligibility, reference_clips, sung_clips

    score, vocals = sung_vocals()
    melody = score.part("melody").notes
    recogniser = Recogniser()
    sung_clip_list = sung_clips(vocals.lead, RATE, melody)[:6]
    sung = intelligibility(sung_clip_list, recogniser)
    reversed_ = intelligibility([(clip[::-1].copy(), phrase) for clip, phrase in sung_clip_list], recogniser)
    rate = voice().sample_rate_hz
    spoken = intelligibility(reference_clips(spoken_phrases(voice(), melody)[:6], rate, melody), recogniser)
    in_song = intelligibility(reference_clips(spoken_in_song_rhythm(voice(), score, melody, timbre_of("ava"))[:6], rate, melody), recogniser)
    assert spoken.phone_error_rate < 0.7, spoken
    assert sung.phone_error_rate < reversed_.phone_error_rate - 0.1, (sung, reversed_)
    assert sung.phone_error_rate <= spoken.phone_error_rate + 0.3, (sung, spoken)
    assert sung.phone_error_rate <= in_song.phone_error_rate, (sung, in_song)


def test_songmill_validate_names_an_unregistered_identity(tmp_path):
    from tests.test_spec import validate, write

    config = write(tmp_path, (PROJECT / "config/releases/demo.yaml").read_text().replace("identity: ava", "identity: zed"))
    result = validate(config)
    assert result.returncode == 2
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "identity: zed" in text)
    assert result.stdout.strip() == (f"{config}:{line}: tracks[0].voice.identity: 'zed' is not a registered voice identity (registered: ava, ben, cleo, dean)")


def test_a_voice_that_cannot_hand_its_memory_back_still_sings_and_says_so(caplog):
    """`sing` hands the voice's working memory back after the last phrase; that is only memory:
    a release that fails is a warning, and the vocals are the same as with one that works."""

    class Unreleasing(WorldSinger):
        def release_working_memory(self) -> None:
            raise RuntimeError("arena busy")

    score = hand_score([60, 62, 64, 65], WORDS[:4])
    frames = int((score.duration_s + 1.0) * RATE)
    kwargs = {"frames": frames, "seed": 2, "expression": resolve_style("bright", "bright")[1], "backing": False}
    with caplog.at_level("WARNING", logger="models.voice.singer"):
        failing = sing(score, Unreleasing(voice()), **kwargs)
    working = sing(score, WorldSinger(voice()), **kwargs)
    assert np.array_equal(failing.lead, working.lead) and rms_db(failing.lead) > -40
    assert any("the voice kept its working memory (RuntimeError: arena busy)" in r.getMessage() for r in caplog.records)


def test_a_line_sung_again_to_the_same_rhythm_is_spoken_once_and_sounds_as_if_spoken_again():
    """A phrase's speech is seeded by what it says, so a line sung again to the same rhythm is
    spoken and analysed once (SpokenOnce); each phrase still sings its own pitch from it, and the
    vocals are the samples a renderer that speaks every phrase anew gives."""

    class Counting(WorldSinger):
        def __init__(self, voice):  # noqa: ANN001
            super().__init__(voice)
            self.spoken: list[str] = []

        def analyse(self, phrase, seed):  # noqa: ANN001, ANN201
            self.spoken.append(" ".join(p.arpabet for p in phrase.phones))
            return super().analyse(phrase, seed)

    class EveryPhraseAnew:  # a renderer with no separate analysis: nothing is shared
        def __init__(self, singer: WorldSinger):
            self.singer, self.sample_rate_hz = singer, singer.sample_rate_hz

        def render(self, phrase, takes, seed):  # noqa: ANN001, ANN201
            return self.singer.render(phrase, takes, seed)

    line, other = WORDS[:4], WORDS[4:8]
    # another line, then one line three times to the same rhythm (the third a tone higher)
    score = hand_score([64, 62, 60, 59] + [60, 62, 64, 65] + [60, 62, 64, 65] + [62, 64, 66, 67], other + line + line + line)
    frames = int((score.duration_s + 1.0) * RATE)
    kwargs = {"frames": frames, "seed": 5, "expression": resolve_style("bright", "bright")[1], "backing": False}
    counting = Counting(voice())
    shared = sing(score, counting, **kwargs)
    assert len(counting.spoken) == 2 and len(set(counting.spoken)) == 2, counting.spoken  # four phrases, two lines spoken
    anew = sing(score, EveryPhraseAnew(WorldSinger(voice())), **kwargs)
    assert np.array_equal(shared.lead, anew.lead) and rms_db(shared.lead) > -40
    # the repeats sing their own pitch: the line's last time a whole tone above its first
    first, last = (shared.phrases[i].placed[0].audio for i in (1, 3))
    assert len(first) == len(last) and not np.allclose(first, last)


def test_a_line_whose_speech_fails_fails_the_vocals_and_no_phrase_waits_for_it():
    """Every phrase that sings a shared line waits on its one analysis: when that fails, the
    failure reaches `sing` (a phrase waiting for it raises too), never a hang."""

    class Speechless(WorldSinger):
        def analyse(self, phrase, seed):  # noqa: ANN001, ANN201
            raise RuntimeError("the voice model went away")

    line = WORDS[:4]
    score = hand_score([60, 62, 64, 65] * 3, line * 3)
    kwargs = {"frames": int((score.duration_s + 1.0) * RATE), "seed": 5, "expression": resolve_style("bright", "bright")[1], "backing": False}
    with pytest.raises(RuntimeError, match="the voice model went away"):
        sing(score, Speechless(voice()), **kwargs)
