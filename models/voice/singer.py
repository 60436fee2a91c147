"""Singing: the melody's syllables spoken by the neural voice with our timing, then given the
score's pitch with the WORLD vocoder, up-sampled to 48 kHz with air above 11 kHz.

Per phrase (notes closer than `PHRASE_GAP_S`):
1. Timing. Each syllable's onset consonants sit *before* its note (so the vowel lands on the
   beat), its vowel fills the note (and any melisma notes after it), its coda consonants close
   the note. Durations are frames of 256 samples at 22.05 kHz (11.6 ms).
2. Voice. `PiperVoice.speak` renders exactly those durations.
3. Pitch. WORLD analysis (dio + stonemask, cheaptrick, d4c); the F0 is replaced by the notes'
   pitches with a short glide into each note and a gentle vibrato on long notes; vowels are
   forced voiced; WORLD synthesis.
4. 48 kHz. Polyphase up-sampling, then a harmonic exciter: the 5.5–11 kHz band, saturated, its
   new harmonics above 11 kHz mixed back in quietly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from models.lyrics.phonetics import is_vowel
from models.voice.piper import HOP_SAMPLES, Phone, PiperVoice
from songmill.score import Note, Score

OUT_RATE_HZ = 48000
FRAME_PERIOD_MS = 10.0  # WORLD analysis hop: 100 frames a second keep glides and vibrato smooth
PHRASE_GAP_S = 0.25
CONSONANT_S = 0.06  # one onset or coda consonant
GLIDE_S = 0.05  # portamento into a new pitch
VIBRATO = {"rate_hz": 5.5, "depth_cents": 15.0, "delay_s": 0.3, "fade_s": 0.25}
EXCITER_LEVEL = 1.0


@dataclass
class SungNote:
    start_s: float
    end_s: float
    midi: float


@dataclass
class Phrase:
    start_s: float  # where the phrase's audio begins (before the first note, for consonants)
    phones: list[Phone]
    notes: list[SungNote]
    vowel_spans_s: list[tuple[float, float]]  # relative to start_s


def _frames(seconds: float, rate: int) -> int:
    return int(round(seconds * rate / HOP_SAMPLES))


def phrases(score: Score, melody: list[Note], rate: int) -> list[Phrase]:
    """Group the sung notes into phrases and lay out their phones on the frame grid."""
    groups: list[list[Note]] = []
    for note in melody:
        if groups and note.start_s - (groups[-1][-1].start_s + groups[-1][-1].duration_s) < PHRASE_GAP_S:
            groups[-1].append(note)
        else:
            groups.append([note])
    return [_phrase(group, rate) for group in groups if any(n.syllable for n in group)]


def _phrase(notes: list[Note], rate: int) -> Phrase:
    # each syllable: (onset consonants, vowel, coda consonants, its notes)
    syllables: list[tuple[list[str], str, list[str], list[Note]]] = []
    for note in notes:
        if note.syllable is None or note.melisma:
            if syllables:
                syllables[-1][3].append(note)
            continue
        phonemes = note.syllable.phonemes or ["AH0"]
        vowel_at = next((i for i, p in enumerate(phonemes) if is_vowel(p)), None)
        if vowel_at is None:
            onset, vowel, coda = phonemes, "AH0", []
        else:
            onset, vowel, coda = phonemes[:vowel_at], phonemes[vowel_at], phonemes[vowel_at + 1:]
        syllables.append((onset, vowel, coda, [note]))
    first_onset = len(syllables[0][0]) * CONSONANT_S if syllables else 0.0
    start_s = max(notes[0].start_s - first_onset, 0.0)
    cursor = 0  # frames from start_s
    phones, vowels, sung = [], [], []
    for index, (onset, vowel, coda, its_notes) in enumerate(syllables):
        note_start = its_notes[0].start_s - start_s
        note_end = its_notes[-1].start_s + its_notes[-1].duration_s - start_s
        next_onset = len(syllables[index + 1][0]) * CONSONANT_S if index + 1 < len(syllables) else 0.0
        vowel_start = _frames(note_start, rate)
        for consonant in onset:  # squeeze the onset into the time before the note
            room = max(vowel_start - cursor, 0)
            length = max(1, min(_frames(CONSONANT_S, rate), room // max(len(onset), 1)))
            phones.append(Phone(consonant, length))
            cursor += length
        vowel_end = _frames(note_end - len(coda) * CONSONANT_S - next_onset, rate)
        vowel_frames = max(vowel_end - cursor, 2)
        vowels.append((cursor * HOP_SAMPLES / rate, (cursor + vowel_frames) * HOP_SAMPLES / rate))
        phones.append(Phone(vowel, vowel_frames))
        cursor += vowel_frames
        for consonant in coda:
            length = max(1, _frames(CONSONANT_S, rate))
            phones.append(Phone(consonant, length))
            cursor += length
        sung += [SungNote(n.start_s - start_s, n.start_s + n.duration_s - start_s, float(n.pitch)) for n in its_notes]
    return Phrase(start_s, phones, sung, vowels)


def pitch_contour(phrase: Phrase, frame_times_s: np.ndarray, vibrato: dict = VIBRATO) -> np.ndarray:
    """Target F0 (Hz) per WORLD frame: the note's pitch, gliding in from the previous note,
    with vibrato on long notes; between notes, the previous note's pitch."""
    midi = np.zeros_like(frame_times_s)
    previous = None
    for note in phrase.notes:
        inside = (frame_times_s >= note.start_s) & (frame_times_s < note.end_s)
        t = frame_times_s[inside] - note.start_s
        curve = np.full_like(t, note.midi)
        if previous is not None:
            glide = np.clip(t / GLIDE_S, 0, 1)
            curve = previous + (note.midi - previous) * (3 * glide ** 2 - 2 * glide ** 3)
        length = note.end_s - note.start_s
        if length > vibrato["delay_s"] + 0.2:
            ramp = np.clip((t - vibrato["delay_s"]) / vibrato["fade_s"], 0, 1)
            curve = curve + ramp * vibrato["depth_cents"] / 100 * np.sin(2 * np.pi * vibrato["rate_hz"] * (t - vibrato["delay_s"]))
        midi[inside] = curve
        previous = note.midi
    filled = np.flatnonzero(midi > 0)
    if len(filled):  # consonants hold the pitch of the note before them (the next note's pitch
        # arrives with its vowel, on the beat); before the first note, the first note's pitch
        before = np.searchsorted(filled, np.arange(len(midi)), side="right") - 1
        source = filled[np.clip(before, 0, len(filled) - 1)]
        midi = np.where(midi > 0, midi, midi[source])
    return 440.0 * 2 ** ((midi - 69) / 12)


def sing_phrase(voice: PiperVoice, phrase: Phrase, *, seed: int = 0) -> np.ndarray:
    """The phrase sung, at the voice's sample rate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyworld imports the deprecated pkg_resources
        import pyworld
    rate = voice.sample_rate_hz
    speech = voice.speak(phrase.phones, seed=seed).astype(np.float64)
    f0, times = pyworld.dio(speech, rate, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(speech, f0, times, rate)
    envelope = pyworld.cheaptrick(speech, f0, times, rate)
    aperiodicity = pyworld.d4c(speech, f0, times, rate)
    target = pitch_contour(phrase, times)
    in_vowel = np.zeros(len(times), dtype=bool)
    for begin, end in phrase.vowel_spans_s:
        in_vowel |= (times >= begin) & (times < end)
    voiced = in_vowel | (f0 > 0)
    aperiodicity[in_vowel] = np.minimum(aperiodicity[in_vowel], 0.05)  # vowels sung, not whispered
    sung = pyworld.synthesize(np.where(voiced, target, 0.0), envelope, aperiodicity, rate, FRAME_PERIOD_MS)
    return sung[:len(speech)].astype(np.float32)


def bandwidth_extend(audio_48k: np.ndarray, source_rate: int) -> np.ndarray:
    """Add harmonics above the source's Nyquist frequency (the voice stops at 11 kHz)."""
    from scipy.signal import butter, sosfiltfilt

    nyquist_in = source_rate / 2
    band = sosfiltfilt(butter(4, [nyquist_in / 2, nyquist_in * 0.95], btype="band", fs=OUT_RATE_HZ, output="sos"), audio_48k)
    peak = np.max(np.abs(band)) or 1.0
    excited = np.tanh(4.0 * band / peak) * peak
    air = sosfiltfilt(butter(4, nyquist_in, btype="high", fs=OUT_RATE_HZ, output="sos"), excited)
    return (audio_48k + EXCITER_LEVEL * air).astype(np.float32)


def sing(score: Score, voice: PiperVoice, *, frames: int, seed: int = 0) -> np.ndarray:
    """The dry lead vocal of the score's melody: mono, 48 kHz, `frames` long, on the timeline."""
    from models.instruments.diffusion import resample

    melody = [n for n in score.part("melody").notes]
    out = np.zeros(frames, dtype=np.float32)
    for number, phrase in enumerate(phrases(score, melody, voice.sample_rate_hz)):
        audio = resample(sing_phrase(voice, phrase, seed=seed * 1000 + number), voice.sample_rate_hz, OUT_RATE_HZ)
        audio = bandwidth_extend(audio, voice.sample_rate_hz)
        begin = int(round(phrase.start_s * OUT_RATE_HZ))
        count = max(min(len(audio), frames - begin), 0)
        out[begin:begin + count] += audio[:count]
    return out
