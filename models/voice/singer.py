"""Singing: the melody's syllables voiced with our timing, given the score's pitch and the
style's expression, in the identity's timbre, up-sampled to 48 kHz with air above 11 kHz.

    vocals = sing(score, WorldSinger(voice), frames=n, seed=s, expression=..., timbre=..., low=57, high=76)
    vocals.lead            # mono float32, 48 kHz, on the score's timeline
    vocals.backing         # {"double": stereo, "harmony": stereo}: chorus only, panned, quieter
    vocals.decisions       # what was adapted (notes out of range, squeezed consonants), also logged

Per phrase (notes closer than `songmill.core.score.PHRASE_GAP_S`):
1. Timing. Each syllable's onset consonants sit *before* its note (so the vowel lands on the
   beat, give or take the style's `timing_feel_s`), its vowel fills the note (and any melisma
   notes after it), its coda consonants close the note. Durations are frames of 256 samples at
   22.05 kHz (11.6 ms).
2. Voice. A phrase renderer turns the phones and a target pitch contour into audio: by default
   `WorldSinger` — the Piper voice speaks exactly those durations, WORLD (dio + stonemask,
   cheaptrick, d4c) analyses it once, and each *take* (the lead, the chorus double, the
   harmony) is a WORLD synthesis with its own pitch contour, formant shift, spectral tilt,
   dynamics and breathiness. `models/voice/onnx_singer.py` is the other renderer: a neural
   singing model from a local directory.
3. Pitch. The notes' pitches with a glide (`portamento_s`) into each note, an overshoot that
   settles, and vibrato (rate, depth, delay, fade) on long notes.
4. 48 kHz. Polyphase up-sampling, then a harmonic exciter: the 5.5–11 kHz band, saturated, its
   new harmonics above 11 kHz mixed back in quietly.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np

from models.voice.expression import Expression
from models.voice.piper import HOP_SAMPLES, Phone, PiperVoice
from songmill.core.audio import SAMPLE_RATE_HZ, resample
from songmill.core.music import parse_key
from songmill.core.parallel import worked_ahead
from songmill.core.phonetics import is_vowel
from songmill.core.quiet import warnings_silenced
from songmill.core.score import Chord, Note, Score, note_groups
from songmill.core.seeds import derive_seed

log = logging.getLogger(__name__)

OUT_RATE_HZ = SAMPLE_RATE_HZ
FRAME_PERIOD_MS = 10.0  # WORLD analysis hop: 100 frames a second keep glides and vibrato smooth
CONSONANT_S = 0.06  # one onset or coda consonant
SPOKEN_VOWEL_MAX_S = 0.2  # longer vowels are spoken this long and stretched by WORLD
# Which part of a spoken vowel a long note holds (fractions of the spoken vowel): a pure vowel
# its steady middle; a diphthong its first vowel, gliding to the second only in the note's last
# 90 ms, as singers do ("night" sung "naa—it", not a slow slide through "ae").
HELD_PART = {None: (1 / 3, 2 / 3), "AY": (0.3, 0.55), "AW": (0.3, 0.55), "OY": (0.3, 0.55), "EY": (0.3, 0.55), "OW": (0.3, 0.55)}
SYNTHESIS_FFT_SIZE = 512  # WORLD synthesis at 22.05 kHz: a 23 ms impulse response, ample for sung pitches
MIN_VOWEL_FRAMES = 2  # 23 ms: below this a syllable is only consonants
STRETCH_SEMITONES = 2  # notes this far outside the identity's range are sung (a stretch); further, moved by octaves
EXCITER_LEVEL = 1.0
OVERSHOOT_SETTLE_S = 0.04
BACKING_SECTIONS = ("chorus", "post-chorus")
# Backing takes: level relative to the lead, pan (-1 left … +1 right)
BACKING_MIX = {"double": {"gain_db": -5.0, "pan": -0.5}, "harmony": {"gain_db": -8.0, "pan": 0.5}}
SING_THREADS = 2  # phrases sung at a time (one ONNX thread each; see _sung_in_turn)
SING_AHEAD = 2 * SING_THREADS  # phrases sung or waiting to be placed at once (bounds the takes held)
DOUBLE_TIMING_SD_S = 0.012  # a second take is never exactly on the first
DOUBLE_PITCH_SD_CENTS = 6.0
DOUBLE_FORMANT_SCALE = 1.03  # another take, another mouth shape


@dataclass(frozen=True)
class Timbre:
    """The identity's sound: formant shift (spectral-envelope frequency scale), tilt and air."""

    formant_shift: float = 1.0
    tilt_db_per_octave: float = 0.0
    breathiness: float = 0.0


@dataclass
class SungNote:
    start_s: float  # relative to the phrase's audio start
    end_s: float
    midi: float
    gain_db: float = 0.0
    beat: float = 0.0  # the score's start beat (for the chord under it)


@dataclass
class Phrase:
    start_s: float  # where the phrase's audio begins (before the first note, for consonants)
    phones: list[Phone]
    notes: list[SungNote]
    vowel_spans_s: list[tuple[float, float]]  # relative to start_s
    section: str = ""


@dataclass
class Take:
    """One rendering of a phrase: its pitch and expression."""

    notes: list[SungNote]
    expression: Expression
    timbre: Timbre
    vibrato_phase: float = 0.0


@dataclass
class Vocals:
    lead: np.ndarray
    backing: dict[str, np.ndarray]
    decisions: list[str]
    phrases: list[PhraseRecord] = field(default_factory=list)  # what each phrase placed where (PhraseReuse)


# ------------------------------------------------------------------------------------ timing


def _frames(seconds: float, rate: int) -> int:
    return int(round(seconds * rate / HOP_SAMPLES))


def _section_at(score: Score, beat: float) -> str:
    bar = beat / score.beats_per_bar
    for section in score.sections:
        if section.start_bar <= bar < section.start_bar + section.bars:
            return section.name
    return ""


def _where(note: Note, score: Score) -> str:
    bar = int(note.start_beat // score.beats_per_bar) + 1
    word = f", '{note.syllable.text}'" if note.syllable else ""
    return f"bar {bar}{word}"


def note_gain_db(velocity: int, expression: Expression) -> float:
    """Velocity (which carries the section's energy) → level: 0 dB at velocity 110 and above,
    −dynamics_range_db at 60 and below."""
    return expression.dynamics_range_db * (float(np.clip((velocity - 60) / 50, 0, 1)) - 1)


def phrases(score: Score, melody: list[Note], rate: int, expression: Expression, decisions: list[str] | None = None) -> list[Phrase]:
    """Group the sung notes into phrases and lay out their phones on the frame grid."""
    groups = note_groups(melody)
    decisions = decisions if decisions is not None else []
    return [_phrase(score, group, rate, expression, decisions) for group in groups if any(n.syllable for n in group)]


def _phrase(score: Score, notes: list[Note], rate: int, expression: Expression, decisions: list[str]) -> Phrase:
    feel = expression.timing_feel_s
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
            onset, vowel, coda = phonemes[:vowel_at], phonemes[vowel_at], phonemes[vowel_at + 1 :]
        syllables.append((onset, vowel, coda, [note]))
    first_onset = len(syllables[0][0]) * CONSONANT_S if syllables else 0.0
    start_s = max(notes[0].start_s + feel - first_onset, 0.0)
    cursor = 0  # frames from start_s
    phones, vowels, sung = [], [], []
    for index, (onset, vowel, coda, its_notes) in enumerate(syllables):
        note_start = its_notes[0].start_s + feel - start_s
        note_end = its_notes[-1].start_s + its_notes[-1].duration_s - start_s
        next_onset = len(syllables[index + 1][0]) * CONSONANT_S if index + 1 < len(syllables) else 0.0
        vowel_start = max(_frames(note_start, rate), cursor)
        room = vowel_start - cursor
        if onset and room < len(onset) * _frames(CONSONANT_S, rate) and index > 0:
            _squeezed(decisions, score, its_notes[0], onset, room, rate)
        for consonant in onset:  # squeeze the onset into the time before the note
            length = max(1, min(_frames(CONSONANT_S, rate), (vowel_start - cursor) // max(len(onset), 1)))
            phones.append(Phone(consonant, length))
            cursor += length
        vowel_end = _frames(note_end - len(coda) * CONSONANT_S - next_onset, rate)
        if vowel_end - cursor < MIN_VOWEL_FRAMES:
            decisions.append(
                f"{_where(its_notes[0], score)}: the note ({1000 * its_notes[0].duration_s:.0f} ms) is "
                f"shorter than its consonants; the vowel keeps {MIN_VOWEL_FRAMES * HOP_SAMPLES / rate * 1000:.0f} ms "
                "and the syllable runs late"
            )
            log.info(decisions[-1])
        vowel_frames = max(vowel_end - cursor, MIN_VOWEL_FRAMES)
        vowels.append((cursor * HOP_SAMPLES / rate, (cursor + vowel_frames) * HOP_SAMPLES / rate))
        phones.append(Phone(vowel, vowel_frames))
        cursor += vowel_frames
        for consonant in coda:
            length = max(1, _frames(CONSONANT_S, rate))
            phones.append(Phone(consonant, length))
            cursor += length
        for position, n in enumerate(its_notes):
            begin = n.start_s + (feel if position == 0 else 0.0) - start_s
            sung.append(SungNote(begin, n.start_s + n.duration_s - start_s, float(n.pitch), note_gain_db(n.velocity, expression), n.start_beat))
    return Phrase(start_s, phones, sung, vowels, _section_at(score, notes[0].start_beat))


def _squeezed(decisions: list[str], score: Score, note: Note, onset: list[str], room: int, rate: int) -> None:
    decisions.append(
        f"{_where(note, score)}: {len(onset)} onset consonant(s) {' '.join(onset)} have "
        f"{room * HOP_SAMPLES / rate * 1000:.0f} ms before the note; shortened to fit"
    )
    log.debug(decisions[-1])


# ------------------------------------------------------------------------------------- pitch


def pitch_contour(notes: list[SungNote], frame_times_s: np.ndarray, expression: Expression, vibrato_phase: float = 0.0) -> np.ndarray:
    """Target F0 (Hz) per frame: each note's pitch; a glide of `portamento_s` centred on the
    onset of a note that follows another without a rest (so the pitch is half-way there on
    the beat), then an overshoot that settles; vibrato on long notes; between notes, the
    previous note's pitch."""
    e = expression
    midi = np.zeros_like(frame_times_s)
    for note in notes:
        midi[(frame_times_s >= note.start_s) & (frame_times_s < note.end_s)] = note.midi
    midi = _hold_between_notes(midi)
    for before, note in zip(notes, notes[1:]):
        step = note.midi - before.midi
        if step == 0 or note.start_s - before.end_s > e.portamento_s:
            continue
        t = frame_times_s - (note.start_s - e.portamento_s / 2)
        glide = (t >= 0) & (t < e.portamento_s)
        g = t[glide] / e.portamento_s
        midi[glide] = before.midi + step * (3 * g**2 - 2 * g**3)
        # overshoot: a bump past the target that peaks OVERSHOOT_SETTLE_S after the glide and settles
        after = (t >= e.portamento_s) & (frame_times_s < note.end_s)
        u = (t[after] - e.portamento_s) / OVERSHOOT_SETTLE_S
        midi[after] += np.sign(step) * e.overshoot_cents / 100 * u * np.exp(1 - u)
    for note in notes:
        if note.end_s - note.start_s <= e.vibrato_delay_s + 0.2 or e.vibrato_depth_cents <= 0:
            continue
        inside = (frame_times_s >= note.start_s) & (frame_times_s < note.end_s)
        t = frame_times_s[inside] - note.start_s
        ramp = np.clip((t - e.vibrato_delay_s) / max(e.vibrato_fade_s, 1e-3), 0, 1)
        midi[inside] += ramp * e.vibrato_depth_cents / 100 * np.sin(2 * np.pi * e.vibrato_rate_hz * (t - e.vibrato_delay_s) + vibrato_phase)
    return 440.0 * 2 ** ((midi - 69) / 12)


def _hold_between_notes(values: np.ndarray) -> np.ndarray:
    """Consonants hold the value of the note before them (the next note's arrives with its
    vowel, on the beat); before the first note, the first note's."""
    filled = np.flatnonzero(values != 0)
    if not len(filled):
        return values
    before = np.searchsorted(filled, np.arange(len(values)), side="right") - 1
    source = filled[np.clip(before, 0, len(filled) - 1)]
    return np.where(values != 0, values, values[source])


def gain_contour_db(notes: list[SungNote], frame_times_s: np.ndarray, frame_s: float) -> np.ndarray:
    gains = np.zeros_like(frame_times_s)
    for note in notes:
        gains[(frame_times_s >= note.start_s) & (frame_times_s < note.end_s)] = note.gain_db - 1e-6
    gains = _hold_between_notes(gains)
    width = max(int(round(0.05 / frame_s)), 1)  # 50 ms: a swell, not a step
    return np.convolve(np.pad(gains, width, mode="edge"), np.ones(width) / width, mode="same")[width:-width]


# ----------------------------------------------------------------------- the WORLD renderer


@dataclass
class WorldAnalysis:
    f0: np.ndarray
    times_s: np.ndarray
    envelope: np.ndarray  # (frames, bins) power spectral envelope
    aperiodicity: np.ndarray  # (frames, bins)
    in_vowel: np.ndarray  # (frames,) bool
    samples: int


@functools.cache
def pyworld_module():  # noqa: ANN201 - the pyworld module
    with warnings_silenced():  # pyworld imports the deprecated pkg_resources
        import pyworld
    return pyworld


def warp_formants(envelope: np.ndarray, shift: float) -> np.ndarray:
    """Scale the spectral envelope's frequency axis by `shift` (>1 moves formants up, as from a
    shorter vocal tract): new(f) = old(f / shift), linearly interpolated between bins."""
    if shift == 1.0:
        return envelope
    bins = envelope.shape[1]
    source = np.clip(np.arange(bins) / shift, 0, bins - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, bins - 1)
    weight = source - low
    return envelope[:, low] * (1 - weight) + envelope[:, high] * weight


def _spoken_phones(phones: list[Phone], rate: int) -> tuple[list[Phone], list[float], list[float]]:
    """The phones as the voice speaks them (long vowels cut) and the time map between the
    planned and the spoken timeline as knots (seconds): a long vowel keeps its first and last
    third of SPOKEN_VOWEL_MAX_S as spoken; its middle stretches over the rest of the note."""
    cap = _frames(SPOKEN_VOWEL_MAX_S, rate)
    spoken, planned_knots, spoken_knots = [], [0.0], [0.0]
    planned_s = spoken_s = 0.0
    frame_s = HOP_SAMPLES / rate
    for phone in phones:
        frames = min(phone.frames, cap) if is_vowel(phone.arpabet) else phone.frames
        spoken.append(Phone(phone.arpabet, frames))
        if frames < phone.frames:
            hold_from, hold_to = HELD_PART.get(phone.arpabet.rstrip("012"), HELD_PART[None])
            spoken_s_total = frames * frame_s
            planned_knots += [planned_s + hold_from * spoken_s_total, planned_s + phone.frames * frame_s - (1 - hold_to) * spoken_s_total]
            spoken_knots += [spoken_s + hold_from * spoken_s_total, spoken_s + hold_to * spoken_s_total]
        planned_s += phone.frames * frame_s
        spoken_s += frames * frame_s
        planned_knots.append(planned_s)
        spoken_knots.append(spoken_s)
    return spoken, planned_knots, spoken_knots


class WorldSinger:
    """The Piper voice speaks the phrase once; WORLD re-sings it for every take."""

    backend = "piper+world"

    def __init__(self, voice: PiperVoice):
        self.voice = voice
        self.sample_rate_hz = voice.sample_rate_hz

    def analyse(self, phrase: Phrase, seed: int) -> WorldAnalysis:
        """WORLD analysis of the phrase spoken with long vowels cut to SPOKEN_VOWEL_MAX_S, then
        stretched back to the planned timing by repeating the analysis frames of each long
        vowel's middle (a neural voice holding a vowel itself turns breathy, and speaking less
        audio is most of the stage's time)."""
        pyworld, rate = pyworld_module(), self.sample_rate_hz
        spoken, planned_knots, spoken_knots = _spoken_phones(phrase.phones, rate)
        speech = self.voice.speak(spoken, seed=seed).astype(np.float64)
        f0, times = pyworld.dio(speech, rate, frame_period=FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(speech, f0, times, rate)
        envelope = pyworld.cheaptrick(speech, f0, times, rate)
        aperiodicity = pyworld.d4c(speech, f0, times, rate)
        # analysed with the FFT size the speaking voice's low F0 needs; synthesised with a
        # smaller one (the envelope is smooth, the sung pitch high): half the synthesis time
        step = max((envelope.shape[1] - 1) // (SYNTHESIS_FFT_SIZE // 2), 1)
        envelope, aperiodicity = envelope[:, ::step], aperiodicity[:, ::step]
        samples = sum(p.frames for p in phrase.phones) * HOP_SAMPLES
        planned_times = np.arange(int(np.ceil(samples / rate * 1000 / FRAME_PERIOD_MS)) + 1) * FRAME_PERIOD_MS / 1000
        source = np.interp(planned_times, planned_knots, spoken_knots)
        index = np.clip(np.round(source * 1000 / FRAME_PERIOD_MS).astype(int), 0, len(times) - 1)
        in_vowel = np.zeros(len(planned_times), dtype=bool)
        for begin, end in phrase.vowel_spans_s:
            in_vowel |= (planned_times >= begin) & (planned_times < end)
        return WorldAnalysis(f0[index], planned_times, envelope[index], aperiodicity[index], in_vowel, samples)

    def release_working_memory(self) -> None:
        """After the last phrase: the speaking voice's working memory back to the system."""
        self.voice.release_working_memory()

    def render(self, phrase: Phrase, takes: list[Take], seed: int) -> list[np.ndarray]:
        analysis = self.analyse(phrase, seed)
        return [self.synthesize(analysis, take) for take in takes]

    def synthesize(self, a: WorldAnalysis, take: Take) -> np.ndarray:
        pyworld, rate = pyworld_module(), self.sample_rate_hz
        e, timbre = take.expression, take.timbre
        freqs = np.linspace(0, rate / 2, a.envelope.shape[1])
        target = pitch_contour(take.notes, a.times_s, e, take.vibrato_phase)
        voiced = a.in_vowel | (a.f0 > 0)
        # timbre: formants, then tilt (identity + style tension, dB per octave above 500 Hz), then dynamics
        envelope = warp_formants(a.envelope, timbre.formant_shift)
        tilt_db = (timbre.tilt_db_per_octave + 3.0 * e.tension) * np.log2(np.maximum(freqs, 500.0) / 500.0)
        gain_db = gain_contour_db(take.notes, a.times_s, FRAME_PERIOD_MS / 1000)
        envelope = envelope * 10 ** ((tilt_db[None, :] + gain_db[:, None]) / 10)
        # vowels sung, not whispered; breath as an aperiodicity floor rising from 1 to 4 kHz
        aperiodicity = a.aperiodicity.copy()
        vowel_ap = np.minimum(aperiodicity[a.in_vowel], 0.05)
        breath = min(e.breathiness + timbre.breathiness, 1.0) * 0.6 * np.clip((freqs - 1000) / 3000, 0, 1)
        aperiodicity[a.in_vowel] = np.maximum(vowel_ap, breath[None, :])
        sung = pyworld.synthesize(np.where(voiced, target, 0.0), np.ascontiguousarray(envelope), aperiodicity, rate, FRAME_PERIOD_MS)
        return sung[: a.samples].astype(np.float32)


# --------------------------------------------------------------------- range, harmony, mix


def fit_to_range(score: Score, melody: list[Note], low: int, high: int, identity: str, decisions: list[str]) -> list[Note]:
    """Notes the identity cannot reach: within STRETCH_SEMITONES sung as written, further moved
    by octaves into the range; each one logged and recorded."""
    fitted = []
    for note in melody:
        pitch = note.pitch
        if low - STRETCH_SEMITONES <= pitch <= high + STRETCH_SEMITONES:
            fitted.append(note)
            continue
        while pitch > high:
            pitch -= 12
        while pitch < low:
            pitch += 12
        side = "above" if note.pitch > high else "below"
        decisions.append(f"{_where(note, score)}: MIDI note {note.pitch} is {side} {identity}'s range {low}–{high}; sung as {pitch}")
        log.warning(decisions[-1])
        fitted.append(note.model_copy(update={"pitch": pitch}))
    return fitted


def _chord_at(chords: list[Chord], beat: float) -> Chord | None:
    for chord in chords:
        if chord.start_beat <= beat + 1e-9 < chord.start_beat + chord.duration_beats:
            return chord
    return None


def harmony_pitch(score: Score, pitch: int, beat: float) -> int:
    """The harmony a third above the melody (a sixth where the chord has no third above it),
    from the chord sounding under the note; a diatonic third when the chord has neither."""
    chord = _chord_at(score.chords, beat)
    chord_pcs = {p % 12 for p in chord.pitches} if chord else set()
    for interval in (3, 4, 8, 9):
        if (pitch + interval) % 12 in chord_pcs:
            return pitch + interval
    scale = parse_key(score.key_at(beat)).scale_pitch_classes
    for interval in (3, 4):
        if (pitch + interval) % 12 in scale:
            return pitch + interval
    return pitch + 3


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    angle = (pan + 1) * np.pi / 4  # constant power
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1).astype(np.float32)


def _double_take(phrase: Phrase, expression: Expression, timbre: Timbre, rng: np.random.Generator) -> Take:
    notes = [replace(n, midi=n.midi + float(np.clip(rng.normal(0, DOUBLE_PITCH_SD_CENTS), -15, 15)) / 100) for n in phrase.notes]
    rate = expression.vibrato_rate_hz * float(rng.uniform(0.93, 1.07))
    return Take(
        notes,
        replace(expression, vibrato_rate_hz=rate),
        replace(timbre, formant_shift=timbre.formant_shift * DOUBLE_FORMANT_SCALE),
        vibrato_phase=float(rng.uniform(0, 2 * np.pi)),
    )


def _harmony_take(score: Score, phrase: Phrase, expression: Expression, timbre: Timbre, high: int) -> Take:
    """The harmony line; a note above the singer's reach drops an octave (a sixth or third below)."""
    notes = []
    for note in phrase.notes:
        pitch = harmony_pitch(score, int(note.midi), note.beat)
        notes.append(replace(note, midi=float(pitch - 12 if pitch > high + STRETCH_SEMITONES else pitch)))
    return Take(notes, replace(expression, vibrato_depth_cents=expression.vibrato_depth_cents * 0.6), timbre)


# --------------------------------------------------------------------------------- the song


@dataclass
class Placed:
    """One take of one phrase as it lies in its stem: `audio` (mono for the lead, panned stereo
    for a backing take, its level applied) added at frame `begin`."""

    take: str  # "lead", "double" or "harmony"
    begin: int
    audio: np.ndarray


@dataclass
class PhraseRecord:
    """What `sing` rendered for one phrase: its key (everything its audio depends on, hashed)
    and its takes. `alone` says whether each take's frames in its stem hold that take only (no
    other phrase overlaps it, nothing cut at the stem's ends): only such frames can be read back
    as the take's audio later."""

    key: str
    placed: list[Placed]
    alone: dict[str, bool]


class PhraseReuse(Protocol):
    """Takes sung before, by phrase key (see `phrase_key`): a song whose one section changed
    re-sings that section only. `None` when the phrase was not sung before (or not kept)."""

    def takes(self, key: str) -> list[Placed] | None: ...


def phrase_key(namespace: str, phrase: Phrase, takes: dict[str, Take], seed: int, offsets_s: dict[str, float], speech_seed: int) -> str:
    """A phrase's audio depends on the phrase (phones, notes, timing), its takes (pitch,
    expression, timbre), its seeds (the takes', the speech's), where each take lands and what
    `namespace` names (the voice model and its version, the sample rates: the caller's part)."""
    material = {
        "namespace": namespace,
        "phrase": asdict(phrase),
        "takes": {name: asdict(take) for name, take in takes.items()},
        "seed": seed,
        "speech_seed": speech_seed,
        "offsets_s": offsets_s,
        "rates": [OUT_RATE_HZ],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=repr).encode()).hexdigest()


def sing(
    score: Score,
    singer,
    *,
    frames: int,
    seed: int = 0,
    expression: Expression,
    timbre: Timbre = Timbre(),
    voice_range: tuple[int, int] = (0, 127),
    identity: str = "the voice",
    backing: bool = True,
    reuse: PhraseReuse | None = None,
    namespace: str = "",
) -> Vocals:
    """The vocals of the score's melody, mono lead and stereo backing, 48 kHz, `frames` long,
    on the timeline. `singer` is a phrase renderer (WorldSinger or OnnxSinger).

    `reuse`: takes sung before, looked up by `phrase_key(namespace, ...)` — `namespace` must name
    everything outside the score the audio depends on (the voice model, its version). A phrase
    found there is placed as it was, sample for sample, instead of sung again."""

    decisions: list[str] = []
    melody = fit_to_range(score, [n for n in score.part("melody").notes], *voice_range, identity, decisions)
    stems = {"lead": np.zeros(frames, dtype=np.float32)}
    if backing:
        stems |= {name: np.zeros((frames, 2), dtype=np.float32) for name in BACKING_MIX}
    planned = []  # (key, the takes sung before or None, what singing it needs)
    for phrase in phrases(score, melody, singer.sample_rate_hz, expression, decisions):
        # each phrase draws from its own seed, named by where it starts: a section sung again
        # (the song editor's new melody) leaves every other phrase's audio as it was
        phrase_seed = derive_seed(seed, round(phrase.start_s * 1000))
        speech_seed = derive_seed(seed, "spoken", spoken_content(phrase))  # what it says, not where (SpokenOnce)
        rng = np.random.default_rng(phrase_seed)
        takes = {"lead": Take(phrase.notes, expression, timbre)}
        offsets_s = {"lead": 0.0}
        if backing and phrase.section in BACKING_SECTIONS:
            takes["double"] = _double_take(phrase, expression, timbre, rng)
            takes["harmony"] = _harmony_take(score, phrase, expression, timbre, voice_range[1])
            offsets_s |= {"double": float(np.clip(rng.normal(0, DOUBLE_TIMING_SD_S), -0.025, 0.025)), "harmony": 0.0}
        key = phrase_key(namespace, phrase, takes, phrase_seed, offsets_s, speech_seed)
        planned.append((key, reuse.takes(key) if reuse is not None else None, (phrase, takes, speech_seed, offsets_s)))
    records: list[PhraseRecord] = []
    try:
        for key, placed in _sung_in_turn(planned, singer):
            for take in placed:  # placed in the phrases' order, so overlapping tails add up as they always did
                _place_at(stems[take.take], take.audio, take.begin)
            records.append(PhraseRecord(key, placed, {}))
    finally:
        if any(sung_before is None for _, sung_before, _ in planned):  # something was sung
            _release_working_memory(singer)
    _mark_alone(records, frames)
    lead = stems.pop("lead")
    return Vocals(lead, {name: audio for name, audio in stems.items() if np.any(audio)}, decisions, records)


def _release_working_memory(singer) -> None:  # noqa: ANN001 - a phrase renderer
    """The renderer's working memory back to the system, where it keeps some between phrases (the
    Piper voice's onnxruntime arena: `WorldSinger.release_working_memory`; an `OnnxSinger` has
    none to give: the vocals stage loads its session anew each time). Only memory: a failure is
    logged, never raised over the vocals or over the error that ended the singing."""
    release = getattr(singer, "release_working_memory", None)
    if release is None:
        return
    try:
        release()
    except Exception as err:  # onnxruntime raises its own types
        log.warning("the voice kept its working memory (%s: %s); the vocals are unaffected", type(err).__name__, err)


def _sung_in_turn(planned: list[tuple[str, list[Placed] | None, tuple]], singer) -> Iterator[tuple[str, list[Placed]]]:  # noqa: ANN001 - a phrase renderer
    """(key, placed takes) for each planned phrase in order: the ones sung before as found, the
    others sung SING_THREADS at a time, at most SING_AHEAD phrases ahead of the one placed. A
    phrase's audio depends on its own seeds and takes only, so the order they are sung in changes
    no sample; the neural voice and WORLD's synthesis leave the GIL (WORLD's analysis does not)."""
    to_sing = [work for _, placed, work in planned if placed is None]
    spoken = SpokenOnce(singer, [(spoken_content(phrase), speech_seed) for phrase, _, speech_seed, _ in to_sing])
    with worked_ahead(lambda work: _sung(spoken, *work), to_sing, threads=SING_THREADS, ahead=SING_AHEAD, name="sing") as sung:
        for key, placed, _ in planned:
            yield key, placed if placed is not None else next(sung)


def spoken_content(phrase: Phrase) -> str:
    """What a phrase's speech depends on besides the voice and the seed: its phones with their
    frames and where its vowels lie (WorldSinger.analyse reads nothing else of it), as a digest."""
    material = [[asdict(phone) for phone in phrase.phones], phrase.vowel_spans_s]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


class SpokenOnce:
    """A phrase renderer that speaks each distinct line once per song.

    WorldSinger's analysis — the neural voice speaking the phones, then WORLD reading that
    speech — is two thirds of singing, and it depends on the phones, their frames, the vowels'
    spans and the seed only (`spoken_content`), never on the pitch. A song sings most of its
    lines again to the same rhythm (its choruses: 13 of the demo's 34 phrases, 52 of 136 in the
    benchmark's batch), and each phrase's speech is seeded from what it says, not from where
    (`sing`); so such a line is spoken and analysed once, and every phrase that sings it
    synthesises its own takes (pitch, vibrato, timbre) from that one analysis: the same samples
    as analysing it again. An analysis is kept until the last phrase that needs it has taken it.
    Renderers without a separate analysis (OnnxSinger) render each phrase whole."""

    def __init__(self, singer, speeches: list[tuple[str, int]]):  # noqa: ANN001 - a phrase renderer
        self.singer = singer
        self.sample_rate_hz = singer.sample_rate_hz
        self.shares = callable(getattr(singer, "analyse", None)) and callable(getattr(singer, "synthesize", None))
        self.uses = collections.Counter(speeches)  # (content, seed) → phrases still to take it
        self.repeated = {speech for speech, count in self.uses.items() if count > 1}
        self.analyses: dict[tuple[str, int], Future] = {}
        self.lock = threading.Lock()

    def render(self, phrase: Phrase, takes: list[Take], seed: int) -> list[np.ndarray]:
        speech = (spoken_content(phrase), seed)
        if not self.shares or speech not in self.repeated:
            return self.singer.render(phrase, takes, seed)
        with self.lock:  # the first phrase to ask analyses; a phrase sung meanwhile waits for it
            first = speech not in self.analyses
            if first:
                self.analyses[speech] = Future()
            analysis = self.analyses[speech]
        if first:
            try:
                analysis.set_result(self.singer.analyse(phrase, seed))
            except BaseException as err:
                analysis.set_exception(err)
                raise
        spoken = analysis.result()
        with self.lock:
            self.uses[speech] -= 1
            if self.uses[speech] == 0:
                del self.analyses[speech]
        return [self.singer.synthesize(spoken, take) for take in takes]


def _sung(singer, phrase: Phrase, takes: dict[str, Take], seed: int, offsets_s: dict[str, float]) -> list[Placed]:  # noqa: ANN001 - a phrase renderer
    """The phrase's takes rendered, at 48 kHz with air, at their level (and pan, for backing);
    `seed` draws its speech."""
    rendered = singer.render(phrase, list(takes.values()), seed)
    placed = []
    for name, audio in zip(takes, rendered):
        audio = bandwidth_extend(resample(audio, from_hz=singer.sample_rate_hz, to_hz=OUT_RATE_HZ), singer.sample_rate_hz)
        if name != "lead":
            audio = _pan(audio * 10 ** (BACKING_MIX[name]["gain_db"] / 20), BACKING_MIX[name]["pan"])
        placed.append(Placed(name, int(round((phrase.start_s + offsets_s[name]) * OUT_RATE_HZ)), audio))
    return placed


def _mark_alone(records: list[PhraseRecord], frames: int) -> None:
    """Which takes' frames hold that take only (see PhraseRecord.alone)."""
    spans: dict[str, list[tuple[int, int, PhraseRecord]]] = {}
    for record in records:
        for take in record.placed:
            spans.setdefault(take.take, []).append((take.begin, take.begin + len(take.audio), record))
    for take_name, taken in spans.items():
        taken.sort(key=lambda span: span[0])
        reached = 0  # the furthest frame any earlier take of this stem reaches
        for index, (begin, end, record) in enumerate(taken):
            after_begin = taken[index + 1][0] if index + 1 < len(taken) else frames
            record.alone[take_name] = begin >= 0 and end <= frames and reached <= begin and end <= after_begin
            reached = max(reached, end)


def _place_at(out: np.ndarray, audio: np.ndarray, begin: int) -> None:
    skip = max(-begin, 0)
    begin = max(begin, 0)
    count = max(min(len(audio) - skip, len(out) - begin), 0)
    out[begin : begin + count] += audio[skip : skip + count]


def bandwidth_extend(audio_48k: np.ndarray, source_rate: int) -> np.ndarray:
    """Add harmonics above the source's Nyquist frequency (the voice stops at 11 kHz)."""
    from scipy.signal import butter, sosfiltfilt

    nyquist_in = source_rate / 2
    if nyquist_in * 0.95 >= OUT_RATE_HZ / 2:
        return audio_48k.astype(np.float32)  # the source already has its air
    band = sosfiltfilt(butter(4, [nyquist_in / 2, nyquist_in * 0.95], btype="band", fs=OUT_RATE_HZ, output="sos"), audio_48k)
    peak = np.max(np.abs(band)) or 1.0
    excited = np.tanh(4.0 * band / peak) * peak
    air = sosfiltfilt(butter(4, nyquist_in, btype="high", fs=OUT_RATE_HZ, output="sos"), excited)
    return (audio_48k + EXCITER_LEVEL * air).astype(np.float32)
