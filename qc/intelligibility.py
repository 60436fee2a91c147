"""Are the sung words recognisable? An independent recogniser listens to the dry vocal.

The recogniser is CMU PocketSphinx (BSD) with the US-English acoustic model that ships in its
wheel — trained on speech, not on our voice, and told nothing about the lyrics. Each sung
phrase is cut from the vocal and decoded two ways:

- phones: free phone recognition (the phone bigram model, no words); phone error rate against
  the phrase's ARPAbet, repeated phones merged (a held vowel is one phone, not many);
- words: the general English language model; word error rate against the lyric.

The yardsticks are the same phrases said by the same voice: at speech timing in its own voice
(`spoken_reference`); at speech timing in the song's register, each syllable on its note's
pitch in the identity's timbre (`spoken_reference(..., timbre)`); and in the song's own rhythm
and register (`spoken_in_song_rhythm`). A recogniser trained on speech hears any voice less well
the higher it is and the longer its vowels, sung or spoken; the last yardstick keeps what the
song asks for (its notes and their lengths) and leaves out only what singing adds (WORLD re-
singing, held vowels, glides, vibrato, dynamics), so sung ≤ that yardstick means singing costs
the words nothing more than the melody does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from models.voice.singer import note_groups  # phrases as the singer grouped them
from songmill.score import Note

RATE_HZ = 16000
PAD_S = 0.2
NON_SPEECH = {"SIL", "+SPN+", "+NSN+", "<s>", "</s>", "<sil>", "[NOISE]"}


@dataclass
class SungPhrase:
    start_s: float
    end_s: float
    words: list[str]
    phones: list[str]  # ARPAbet without stress


@dataclass
class Intelligibility:
    phone_error_rate: float
    word_error_rate: float
    phrases: int


def sung_phrases(melody: list[Note]) -> list[SungPhrase]:
    result = []
    for group in note_groups(melody):
        words, phones = [], []
        for note in group:
            if note.syllable is None or note.melisma:
                continue
            text = note.syllable.text.lower()
            if note.syllable.word_start or not words:
                words.append(text)
            else:
                words[-1] += text
            phones += [p.rstrip("012") for p in note.syllable.phonemes]
        if words:
            words = ["".join(c for c in w if c.isalpha() or c == "'") for w in words]
            result.append(SungPhrase(group[0].start_s, group[-1].start_s + group[-1].duration_s, words, phones))
    return result


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[:], i
        for j, hyp in enumerate(hypothesis, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ref != hyp))
    return row[-1]


class Recogniser:
    """PocketSphinx with its bundled US-English models: a phone decoder and a word decoder."""

    def __init__(self):
        from pocketsphinx import Decoder, get_model_path

        models = os.path.join(get_model_path(), "en-us")
        hmm = os.path.join(models, "en-us")
        self.phones = Decoder(hmm=hmm, allphone=os.path.join(models, "en-us-phone.lm.bin"), lw=2.0,
                              beam=1e-20, pbeam=1e-20, loglevel="FATAL")
        self.words = Decoder(hmm=hmm, lm=os.path.join(models, "en-us.lm.bin"),
                             dict=os.path.join(models, "cmudict-en-us.dict"), loglevel="FATAL")

    @staticmethod
    def _decode(decoder, audio_16k: np.ndarray) -> list[str]:
        peak = float(np.max(np.abs(audio_16k))) or 1.0
        pcm = (audio_16k / peak * 0.9 * 32767).astype(np.int16).tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        return [seg.word for seg in decoder.seg() if seg.word not in NON_SPEECH]

    def phones_of(self, audio_16k: np.ndarray) -> list[str]:
        heard = self._decode(self.phones, audio_16k)
        return [p for i, p in enumerate(heard) if i == 0 or p != heard[i - 1]]

    def words_of(self, audio_16k: np.ndarray) -> list[str]:
        return [w.split("(")[0].lower() for w in self._decode(self.words, audio_16k)]


def intelligibility(clips: list[tuple[np.ndarray, SungPhrase]], recogniser: Recogniser | None = None) -> Intelligibility:
    """Error rates over (16 kHz clip, what it should say) pairs."""
    recogniser = recogniser or Recogniser()
    phone_errors = phone_total = word_errors = word_total = 0
    for clip, phrase in clips:
        phone_errors += edit_distance(phrase.phones, recogniser.phones_of(clip))
        word_errors += edit_distance(phrase.words, recogniser.words_of(clip))
        phone_total, word_total = phone_total + len(phrase.phones), word_total + len(phrase.words)
    return Intelligibility(phone_errors / max(phone_total, 1), word_errors / max(word_total, 1), len(clips))


def sung_clips(vocal: np.ndarray, rate: int, melody: list[Note]) -> list[tuple[np.ndarray, SungPhrase]]:
    """Each sung phrase cut from the vocal (with PAD_S either side), at 16 kHz."""
    from models.instruments.diffusion import resample

    audio = resample(np.asarray(vocal, dtype=np.float32), rate, RATE_HZ)
    clips = []
    for phrase in sung_phrases(melody):
        begin, end = int((phrase.start_s - PAD_S) * RATE_HZ), int((phrase.end_s + PAD_S) * RATE_HZ)
        clips.append((audio[max(begin, 0):end], phrase))
    return clips


def spoken_reference(voice, melody: list[Note], timbre=None) -> list[tuple[np.ndarray, SungPhrase]]:
    """The same phrases spoken by the Piper voice at speech timing (stressed vowels 128 ms,
    unstressed 70 ms, consonants 58 ms), at 16 kHz.

    With the identity's `timbre` (models.voice.singer.Timbre) the speech is moved, by the same
    WORLD analysis and synthesis the singer uses, to the register the song sings it in: each
    syllable spoken on its note's pitch, in the identity's formant shift and tilt. A speech-
    trained recogniser hears a voice less well the higher it is, sung or spoken; this yardstick
    takes the song's register and keeps speech's timing."""
    from models.instruments.diffusion import resample
    from models.lyrics.phonetics import is_vowel
    from models.voice.piper import Phone

    clips = []
    for phrase in sung_phrases(melody):
        phones, pitches = [], []
        for note in melody:
            if phrase.start_s <= note.start_s < phrase.end_s and note.syllable and not note.melisma:
                for p in note.syllable.phonemes:
                    phones.append(Phone(p, (11 if p[-1] in "12" else 6) if is_vowel(p) else 5))
                    pitches.append(float(note.pitch))
        speech = voice.speak(phones)
        if timbre is not None:
            speech = _in_register(speech, voice.sample_rate_hz, _syllable_pitch(phones, pitches, voice.sample_rate_hz), timbre)
        speech = resample(speech, voice.sample_rate_hz, RATE_HZ)
        pad = np.zeros(int(PAD_S * RATE_HZ), dtype=np.float32)
        clips.append((np.concatenate([pad, speech, pad]), phrase))
    return clips


def spoken_in_song_rhythm(voice, score, melody: list[Note], timbre) -> list[tuple[np.ndarray, SungPhrase]]:
    """The phrases spoken by the same voice with the song's own timing (every phone as long as
    the singer makes it, long vowels held by the voice itself) and register (each note's pitch,
    flat, the identity's timbre): singing's timing and pitch without its WORLD re-singing and
    expression. At 16 kHz."""
    from models.instruments.diffusion import resample
    from models.voice.expression import Expression
    from models.voice.singer import phrases, pitch_contour

    flat = Expression(5.0, 0.0, 1.0, 1.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0)
    clips = []
    for phrase, words in zip(phrases(score, melody, voice.sample_rate_hz, flat), sung_phrases(melody)):
        speech = voice.speak(phrase.phones)
        speech = _in_register(speech, voice.sample_rate_hz, lambda t: pitch_contour(phrase.notes, t, flat), timbre)
        speech = resample(speech, voice.sample_rate_hz, RATE_HZ)
        pad = np.zeros(int(PAD_S * RATE_HZ), dtype=np.float32)
        clips.append((np.concatenate([pad, speech, pad]), words))
    return clips


def _syllable_pitch(phones, pitches_midi: list[float], rate: int):
    """Pitch (Hz) over time (s) for speech timing: each phone on its syllable's note."""
    from models.voice.piper import HOP_SAMPLES

    ends_s = np.cumsum([p.frames for p in phones]) * HOP_SAMPLES / rate
    midi = np.asarray(pitches_midi)

    def hz(times_s: np.ndarray) -> np.ndarray:
        at = midi[np.minimum(np.searchsorted(ends_s, times_s, side="right"), len(phones) - 1)]
        return 440.0 * 2 ** ((at - 69) / 12)
    return hz


def _in_register(speech: np.ndarray, rate: int, pitch_hz, timbre) -> np.ndarray:
    """Speech re-synthesised by WORLD with every voiced frame on `pitch_hz(times_s)` and the
    identity's formant shift and spectral tilt."""
    from models.voice.singer import FRAME_PERIOD_MS, _pyworld, warp_formants

    pyworld, x = _pyworld(), speech.astype(np.float64)
    f0, times = pyworld.dio(x, rate, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x, f0, times, rate)
    envelope, aperiodicity = pyworld.cheaptrick(x, f0, times, rate), pyworld.d4c(x, f0, times, rate)
    target = np.where(f0 > 0, pitch_hz(times), 0.0)
    freqs = np.linspace(0, rate / 2, envelope.shape[1])
    tilt_db = timbre.tilt_db_per_octave * np.log2(np.maximum(freqs, 500.0) / 500.0)
    envelope = warp_formants(envelope, timbre.formant_shift) * 10 ** (tilt_db[None, :] / 10)
    return pyworld.synthesize(target, np.ascontiguousarray(envelope), aperiodicity, rate, FRAME_PERIOD_MS)[:len(speech)].astype(np.float32)
