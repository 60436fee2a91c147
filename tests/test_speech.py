"""Spoken edit commands: PocketSphinx under the song's grammar, espeak-ng voices, clean and noisy."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from songmill.core.errors import SongmillError
from songmill.editor.commands import parse_command
from songmill.editor.operations import VoiceIdentity
from songmill.editor.speech import (
    NoCommandHeard,
    Recogniser,
    command_grammar,
    number_words,
    sample_sentences,
    spoken_command,
    words_to_numbers,
)
from tests.test_editor import CORPUS_SONG

VOICES = ("en-us", "en-gb+m3")  # two espeak-ng voices: American, and British with another timbre
SNR_DB = 20.0


def speak(text: str, voice: str) -> tuple[np.ndarray, int]:
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav))
    return samples, rate


def with_noise(samples: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """White noise at `snr_db` below the speech's power (measured where it speaks)."""
    speech_power = float(np.mean(np.square(samples[np.abs(samples) > 0.01])))
    noise = np.random.default_rng(seed).normal(0.0, 1.0, samples.size) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return samples + noise


def spoken_accuracy(sentences: list[str], recogniser: Recogniser) -> dict[str, float]:
    """Share of commands whose operations, heard, equal the operations of the words said."""
    right = {"clean": 0, "noisy": 0}
    for voice in VOICES:
        for number, sentence in enumerate(sentences):
            said, rate = speak(sentence, voice)
            want = parse_command(words_to_numbers(sentence), CORPUS_SONG)
            for condition, audio in (("clean", said), ("noisy", with_noise(said, SNR_DB, number))):
                try:
                    _, heard = spoken_command(audio, rate, CORPUS_SONG, recogniser)
                except NoCommandHeard:
                    heard = None
                right[condition] += heard == want
    total = len(sentences) * len(VOICES)
    return {condition: count / total for condition, count in right.items()}


@pytest.fixture(scope="module")
def recogniser():
    return Recogniser(CORPUS_SONG)


pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng speaks the test commands (make setup installs it)")


def test_every_sentence_of_the_grammar_reads_as_operations():
    grammar = command_grammar(CORPUS_SONG)
    for sentence in sample_sentences(grammar, 1500, np.random.default_rng(0), rule="clause"):
        assert parse_command(words_to_numbers(sentence), CORPUS_SONG), sentence
    assert "the second verse" in grammar and "cleo" in grammar and "bells" in grammar  # the song's own names


def test_numbers_are_read_back_as_tempos():
    assert number_words(92) == "ninety two" and number_words(120) == "one hundred twenty"
    assert words_to_numbers("slow it down to ninety two") == "slow it down to 92"
    assert words_to_numbers("set the tempo to one hundred twenty") == "set the tempo to 120"


@pytest.mark.slow  # about 90 s: `make test-all` (make bench reports the figures on 120)
def test_sixty_spoken_commands_in_two_voices_clean_and_at_20_db_snr(recogniser):
    sentences = sample_sentences(command_grammar(CORPUS_SONG), 30, np.random.default_rng(7), rule="clause")
    accuracy = spoken_accuracy(sentences, recogniser)  # 30 commands × 2 voices = 60 spoken each way
    assert accuracy["clean"] >= 0.9, accuracy
    assert accuracy["noisy"] >= 0.8, accuracy


def test_spoken_commands_are_heard_in_both_voices(recogniser):
    """The default suite's share: five commands, each said by both voices, clean and noisy."""
    sentences = ["slow it down to ninety two", "sing it with cleo", "another melody for the second verse", "mute the bass", "less reverb on the voice"]
    accuracy = spoken_accuracy(sentences, recogniser)
    assert accuracy["clean"] >= 0.8 and accuracy["noisy"] >= 0.8, accuracy


def test_a_voice_whose_name_has_an_accent_is_in_the_grammar_and_heard():
    """A voice called zoë: the grammar (and so the recogniser's dictionary, in English letters)
    has it as "zoe", which the reading takes back to zoë. An accented name in the grammar stopped
    PocketSphinx from starting at all."""
    from tests.test_editor import ACCENTED_SONG

    recogniser = Recogniser(ACCENTED_SONG)
    assert "zoe" in recogniser.grammar and "zoë" not in recogniser.grammar
    said, rate = speak("sing it with zoe", VOICES[0])
    assert spoken_command(said, rate, ACCENTED_SONG, recogniser)[1] == [VoiceIdentity(identity="zoë")]


@pytest.mark.parametrize(
    "recording",
    [
        np.zeros(48000),  # silence
        np.random.default_rng(1).normal(0, 0.1, 48000),  # white noise
        np.cumsum(np.random.default_rng(2).normal(0, 0.01, 48000)),  # brown noise
        np.random.default_rng(3).normal(0, 1e-5, 48000),  # a quiet room
        np.zeros(0),  # nothing at all
    ],
    ids=["silence", "white-noise", "brown-noise", "quiet-room", "empty"],
)
def test_silence_or_noise_alone_is_no_command_never_a_guess(recogniser, recording):
    with pytest.raises(NoCommandHeard, match="no command heard in the recording"):
        spoken_command(recording, 24000, CORPUS_SONG, recogniser)


def test_a_spoken_command_drives_an_edit_dry_run(tmp_path, monkeypatch):
    """The CLI's --spoken: a recording in, the operations out (the same rules as typed words)."""
    from songmill.engine import editing

    said, rate = speak("sing it with cleo", "en-us")
    path = tmp_path / "command.wav"
    sf.write(path, said, rate)
    monkeypatch.setattr(editing, "facts_for_track", lambda *a, **k: CORPUS_SONG)
    assert editing.heard_command("unused.yaml", 1, path) == "sing it with cleo"
    (tmp_path / "not-audio.wav").write_text("hello")
    with pytest.raises(SongmillError, match="not-audio.wav is not a recording soundfile can read"):
        editing.heard_command("unused.yaml", 1, tmp_path / "not-audio.wav")
    with pytest.raises(SongmillError, match=r"the recording .*nowhere\.wav does not exist; give the path of a WAV or FLAC file"):
        editing.heard_command("unused.yaml", 1, tmp_path / "nowhere.wav")
