"""The yardsticks for intelligibility: the same voice *speaking* a song's sung phrases.

    speech = spoken_phrases(voice, melody)                       # speech timing, the voice's own pitch
    speech = spoken_phrases(voice, melody, timbre)               # speech timing, the song's register
    speech = spoken_in_song_rhythm(voice, score, melody, timbre) # the song's rhythm and register
    clips = qc.intelligibility.reference_clips(speech, voice.sample_rate_hz, melody)

One recording per sung phrase (the melody's `note_groups` that hold a syllable), in order, at
the voice's rate. They are generated audio, so they live in the voice room; the recogniser that
listens to them is in `qc/` and reads them as plain audio.
"""

from __future__ import annotations

import numpy as np

from models.voice.expression import Expression
from models.voice.piper import HOP_SAMPLES, Phone
from models.voice.singer import FRAME_PERIOD_MS, phrases, pitch_contour, pyworld_module, warp_formants
from songmill.core.phonetics import is_vowel
from songmill.core.score import Note, note_groups


def _sung_groups(melody: list[Note]) -> list[list[Note]]:
    return [[n for n in group if n.syllable and not n.melisma] for group in note_groups(melody) if any(n.syllable and not n.melisma for n in group)]


def spoken_phrases(voice, melody: list[Note], timbre=None) -> list[np.ndarray]:
    """The sung phrases spoken by the Piper voice at speech timing (stressed vowels 128 ms,
    unstressed 70 ms, consonants 58 ms).

    With the identity's `timbre` (models.voice.singer.Timbre) the speech is moved, by the same
    WORLD analysis and synthesis the singer uses, to the register the song sings it in: each
    syllable spoken on its note's pitch, in the identity's formant shift and tilt. A speech-
    trained recogniser hears a voice less well the higher it is, sung or spoken; this yardstick
    takes the song's register and keeps speech's timing."""
    recordings = []
    for notes in _sung_groups(melody):
        phones, pitches = [], []
        for note in notes:
            assert note.syllable is not None  # _sung_groups keeps only notes with a syllable
            for p in note.syllable.phonemes:
                phones.append(Phone(p, (11 if p[-1] in "12" else 6) if is_vowel(p) else 5))
                pitches.append(float(note.pitch))
        speech = voice.speak(phones)
        if timbre is not None:
            speech = _in_register(speech, voice.sample_rate_hz, _syllable_pitch(phones, pitches, voice.sample_rate_hz), timbre)
        recordings.append(speech)
    return recordings


def spoken_in_song_rhythm(voice, score, melody: list[Note], timbre) -> list[np.ndarray]:
    """The phrases spoken by the same voice with the song's own timing (every phone as long as
    the singer makes it, long vowels held by the voice itself) and register (each note's pitch,
    flat, the identity's timbre): singing's timing and pitch without its WORLD re-singing and
    expression."""
    flat = Expression(5.0, 0.0, 1.0, 1.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0)
    recordings = []
    for phrase in phrases(score, melody, voice.sample_rate_hz, flat):
        speech = voice.speak(phrase.phones)
        recordings.append(_in_register(speech, voice.sample_rate_hz, lambda t, notes=phrase.notes: pitch_contour(notes, t, flat), timbre))
    return recordings


def _syllable_pitch(phones, pitches_midi: list[float], rate: int):
    """Pitch (Hz) over time (s) for speech timing: each phone on its syllable's note."""
    ends_s = np.cumsum([p.frames for p in phones]) * HOP_SAMPLES / rate
    midi = np.asarray(pitches_midi)

    def hz(times_s: np.ndarray) -> np.ndarray:
        at = midi[np.minimum(np.searchsorted(ends_s, times_s, side="right"), len(phones) - 1)]
        return 440.0 * 2 ** ((at - 69) / 12)

    return hz


def _in_register(speech: np.ndarray, rate: int, pitch_hz, timbre) -> np.ndarray:
    """Speech re-synthesised by WORLD with every voiced frame on `pitch_hz(times_s)` and the
    identity's formant shift and spectral tilt."""
    pyworld, x = pyworld_module(), speech.astype(np.float64)
    f0, times = pyworld.dio(x, rate, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x, f0, times, rate)
    envelope, aperiodicity = pyworld.cheaptrick(x, f0, times, rate), pyworld.d4c(x, f0, times, rate)
    target = np.where(f0 > 0, pitch_hz(times), 0.0)
    freqs = np.linspace(0, rate / 2, envelope.shape[1])
    tilt_db = timbre.tilt_db_per_octave * np.log2(np.maximum(freqs, 500.0) / 500.0)
    envelope = warp_formants(envelope, timbre.formant_shift) * 10 ** (tilt_db[None, :] / 10)
    return pyworld.synthesize(target, np.ascontiguousarray(envelope), aperiodicity, rate, FRAME_PERIOD_MS)[: len(speech)].astype(np.float32)
