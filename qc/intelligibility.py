"""Are the sung words recognisable? An independent recogniser listens to the dry vocal.

The recogniser is CMU PocketSphinx (BSD) with the US-English acoustic model that ships in its
wheel — trained on speech, not on our voice, and told nothing about the lyrics. Each sung
phrase is cut from the vocal and decoded two ways:

- phones: free phone recognition (the phone bigram model, no words); phone error rate against
  the phrase's ARPAbet, repeated phones merged (a held vowel is one phone, not many);
- words: the general English language model; word error rate against the lyric.

The yardsticks are the same phrases said by the same voice, made by the voice room
(`models.voice.spoken_reference`, never imported here: a judgement shares no code with what it
judges) and handed in as audio (`reference_clips`): at speech timing in its own voice; at speech
timing in the song's register, each syllable on its note's pitch in the identity's timbre; and
in the song's own rhythm and register. A recogniser trained on speech hears any voice less well
the higher it is and the longer its vowels, sung or spoken; the last yardstick keeps what the
song asks for (its notes and their lengths) and leaves out only what singing adds (WORLD re-
singing, held vowels, glides, vibrato, dynamics), so sung ≤ that yardstick means singing costs
the words nothing more than the melody does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from songmill.core.audio import resample
from songmill.core.score import Note, note_groups  # phrases: notes between breaths

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
        words: list[str] = []
        phones: list[str] = []
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
        self.phones = Decoder(hmm=hmm, allphone=os.path.join(models, "en-us-phone.lm.bin"), lw=2.0, beam=1e-20, pbeam=1e-20, loglevel="FATAL")
        self.words = Decoder(hmm=hmm, lm=os.path.join(models, "en-us.lm.bin"), dict=os.path.join(models, "cmudict-en-us.dict"), loglevel="FATAL")

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
    audio = resample(np.asarray(vocal, dtype=np.float32), from_hz=rate, to_hz=RATE_HZ)
    clips = []
    for phrase in sung_phrases(melody):
        begin, end = int((phrase.start_s - PAD_S) * RATE_HZ), int((phrase.end_s + PAD_S) * RATE_HZ)
        clips.append((audio[max(begin, 0) : end], phrase))
    return clips


def reference_clips(speech: list[np.ndarray], rate: int, melody: list[Note]) -> list[tuple[np.ndarray, SungPhrase]]:
    """Yardstick recordings (one per sung phrase, in order, at `rate`; e.g. the same voice
    speaking the phrases, `models.voice.spoken_reference`) as 16 kHz clips with PAD_S of silence
    either side, each paired with what it should say."""
    pad = np.zeros(int(PAD_S * RATE_HZ), dtype=np.float32)
    return [(np.concatenate([pad, resample(audio, from_hz=rate, to_hz=RATE_HZ), pad]), phrase) for audio, phrase in zip(speech, sung_phrases(melody))]
