"""The `compose` stage's work: form + lyrics → a complete score.

    harmony (chords per bar) → melody (lyric rhythm, then pitches from the GRU under rules)
    → bass → drums → comping chords → optional key change for the last chorus

Repetition is what makes a song memorable, so it is built in: every chorus sings the first
chorus's melody; in the chorus, a repeated hook line repeats its melody with a varied ending;
a later verse line with the same syllable count as the first verse's line sings its tune.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from models.composition.bass import bass_part
from models.composition.drums import drum_part
from models.composition.harmony import harmonise, pitch_name, reharmonise
from models.composition.melody import MelodySampler, NoteSlot
from models.composition.melody_model import MelodyGRU
from models.composition.rhythm import place_syllables
from models.lyrics.songwriter import plan_sections
from songmill.core.lyrics import LyricLine, Lyrics
from songmill.core.music import metric_strength, parse_key
from songmill.core.phrasing import phrase_spans, slots_per_beat
from songmill.core.score import Chord, KeyChange, Note, Part, Score, Syllable

log = logging.getLogger("songmill.compose")

# How high in the singer's range each section sits (0 = bottom, 1 = top).
TESSITURA = {"verse": 0.38, "pre-chorus": 0.5, "chorus": 0.62, "post-chorus": 0.6, "bridge": 0.55}
MELODY_PROGRAM_SUNG = 53  # GM "Voice Oohs": a DAW plays the vocal line as a voice
LEAD_PROGRAMS = {"pop": 80, "rock": 29, "synthpop": 81, "folk": 73, "ballad": 0, "hip-hop": 80}
COMP_PROGRAMS = {"pop": 0, "rock": 27, "synthpop": 89, "folk": 25, "ballad": 0, "hip-hop": 4}
MELISMA_CHANCE = 0.35


@dataclass
class _Memory:
    """Melodies already sung, for repetition."""

    chorus: list[Note] | None = None
    chorus_start: float = 0.0
    chorus_text: list[str] = field(default_factory=list)
    chorus_line_beats: float = 0.0  # how long each of its lines is
    lines: dict[tuple[str, int], tuple[float, list[tuple[float, float, int, bool]]]] = field(default_factory=dict)


def compose(
    form: Score,
    lyrics: Lyrics,
    *,
    genre: str,
    voice_range: tuple[int, int],
    model: MelodyGRU,
    rng: np.random.Generator,
    key_change_semitones: int = 0,
    melody_seeds: dict[int, int] | None = None,
    chord_seeds: dict[int, int] | None = None,
    rhythm_seeds: dict[int, int] | None = None,
) -> tuple[Score, list[str]]:
    """The full score, and the adaptations made (also logged).

    `voice_range` is the singer's comfortable (low, high) MIDI range — the caller's, so what the
    stage's cache key records is what the melody was written for (`melody.voice_range(identity)`
    reads an identity's from the model registry). `melody_seeds`: section index → a seed that
    writes that section's melody again (the song editor's "another melody for verse 2"); every
    other note of the score stays as it was. `chord_seeds`: section index → a seed that plays
    that section on other chords that fit its melody (`harmony.reharmonise`), the bass following;
    the melody and the rest of the score stay as they were. `rhythm_seeds`: section index → a
    seed that plays that section's drums on another figure of its groove (`drums.another_figure`)."""
    adaptations: list[str] = []
    # the bass and the drums draw from streams of their own, split off before anything is drawn:
    # how much the melody draws depends on the whole form, so a section dropped or added would
    # otherwise move every later draw of theirs (models.composition.streams)
    bass_rng, drum_rng = rng.spawn(2)
    variants = {name: int(rng.integers(0, 2)) for name in dict.fromkeys(s.name for s in form.sections)}
    score = form.model_copy(update={"chords": harmonise(form, genre, variants=variants)})
    melody = _melody(
        score, lyrics, genre=genre, voice_range=voice_range, model=model, rng=rng, chorus_headroom=key_change_semitones, melody_seeds=melody_seeds or {}
    )
    rechorded = score  # the chords as heard: the composed ones, or with some sections played on others
    for index, seed in sorted((chord_seeds or {}).items()):
        chords = reharmonise(form, genre, rechorded.chords, index, melody, np.random.default_rng(seed), variants=variants)
        rechorded = rechorded.model_copy(update={"chords": chords})
    program = MELODY_PROGRAM_SUNG if lyrics.source != "instrumental" else LEAD_PROGRAMS.get(genre, 80)
    parts = [Part(name="melody", role="melody", program=program, notes=melody)]
    rechorded_sections, rhythm_seeds = set(chord_seeds or {}), rhythm_seeds or {}
    parts.append(_section_local(score, rechorded_sections, lambda r: bass_part(score, genre, r), lambda r: bass_part(rechorded, genre, r), bass_rng))
    parts.append(
        _section_local(
            score, set(rhythm_seeds), lambda r: drum_part(score, genre, r), lambda r: drum_part(score, genre, r, rhythm_seeds=rhythm_seeds), drum_rng
        )
    )
    parts.append(_comping(rechorded, genre))
    score = rechorded.model_copy(update={"parts": parts})
    if key_change_semitones:
        score, note = _key_change(score, key_change_semitones, voice_range[1])
        if note:
            adaptations.append(note)
            log.warning(note)
    return Score.model_validate(score.model_dump()), adaptations  # re-derive seconds


# ------------------------------------------------------------------------------- melody


def _instrumental_lines(score: Score, genre: str) -> dict[int, list[list[bool]]]:
    """Stress patterns for a lead instrument's phrases on a track without vocals."""
    return {plan.form_index: [[i % 2 == 1 for i in range(line.target_syllables)] for line in plan.lines] for plan in plan_sections(score, genre)}


def _section_local(
    score: Score,
    sections: set[int],
    as_composed: Callable[[np.random.Generator], Part],
    as_edited: Callable[[np.random.Generator], Part],
    rng: np.random.Generator,
) -> Part:
    """A part as composed, with the notes of `sections` taken from the part as edited. The part as
    composed draws from `rng` first, so the random stream goes on to the next part as it would
    without the edit; the edited one draws from a copy of the same state."""
    state = copy.deepcopy(rng) if sections else None
    part = as_composed(rng)
    if state is None:
        return part
    edited = as_edited(state)
    spans = [(s.start_bar * score.beats_per_bar, (s.start_bar + s.bars) * score.beats_per_bar) for i, s in enumerate(score.sections) if i in sections]

    def inside(note: Note) -> bool:
        return any(begin <= note.start_beat < end for begin, end in spans)

    notes = sorted([n for n in part.notes if not inside(n)] + [n for n in edited.notes if inside(n)], key=lambda n: (n.start_beat, n.pitch))
    return part.model_copy(update={"notes": notes})


def _chord_at(chords: list[Chord], beat: float) -> Chord:
    for chord in chords:
        if chord.start_beat <= beat + 1e-9 < chord.start_beat + chord.duration_beats:
            return chord
    return chords[-1]


def _melody(
    score: Score,
    lyrics: Lyrics,
    *,
    genre: str,
    voice_range: tuple[int, int],
    model: MelodyGRU,
    rng: np.random.Generator,
    chorus_headroom: int = 0,
    melody_seeds: dict[int, int],
) -> list[Note]:
    """The melody; with `chorus_headroom` semitones kept free at the top of the chorus so a
    key change can lift the last chorus without leaving the singer's range.

    A section in `melody_seeds` is written twice: first as it always is (so the network's state,
    the random stream and the memory of sung lines that later sections repeat are exactly as
    without the edit), then again from the same starting state with its own seed and no
    repetition of earlier lines; the second one is kept. A section with lines the editor replaced
    (`LyricSection.replaced`) is likewise written first with the lines as they were, then sung
    again with the new words from the same state (random stream and memory included)."""
    low, high = voice_range
    sampler = MelodySampler(model, parse_key(score.key), rng, low=low, high=high)
    instrumental = _instrumental_lines(score, genre) if lyrics.source == "instrumental" else {}
    memory, notes = _Memory(), []
    for index, section in enumerate(score.sections):
        lyric_section = lyrics.section_at(index)
        if lyric_section is None and index not in instrumental:
            continue
        as_written = lyric_section.as_written() if lyric_section is not None else None
        if as_written is not lyric_section:  # lines the editor replaced: the state before, to sing them from
            rng_before, memory_before = copy.deepcopy(rng), copy.deepcopy(memory)
        before = copy.copy(sampler)  # its state tensor is replaced, never changed in place
        section_notes = _section_melody(score, section, index, as_written, instrumental, sampler, rng, memory, voice_range, chorus_headroom, genre)
        if index in melody_seeds:
            fresh_rng = np.random.default_rng(melody_seeds[index])
            before.rng = fresh_rng
            section_notes = _section_melody(
                score, section, index, lyric_section, instrumental, before, fresh_rng, _Memory(), voice_range, chorus_headroom, genre
            )
        elif as_written is not lyric_section:  # the new words sung from the same state: the rest of the song is as before
            before.rng = rng_before
            section_notes = _section_melody(
                score, section, index, lyric_section, instrumental, before, rng_before, memory_before, voice_range, chorus_headroom, genre
            )
        notes += section_notes
    return notes


def _section_melody(
    score: Score,
    section,
    index: int,
    lyric_section,
    instrumental: dict,
    sampler: MelodySampler,
    rng: np.random.Generator,
    memory: _Memory,
    voice_range: tuple[int, int],
    chorus_headroom: int,
    genre: str,
) -> list[Note]:
    """One section's melody: a repeated chorus, or its lines sung (varied, replayed or new)."""
    low, high = voice_range
    start = section.start_bar * score.beats_per_bar
    repeated = _repeat_chorus(memory, section, lyric_section, start, score.beats_per_bar) if section.name == "chorus" else None
    if repeated:
        sampler.previous = repeated[-1].pitch - sampler.tonic_ref  # the next phrase follows on
        return repeated
    sampler.high = high - chorus_headroom if section.name == "chorus" else high
    lines = lyric_section.lines if lyric_section else [None] * len(instrumental[index])
    stresses = [[s.stressed for s in line.syllables] for line in lyric_section.lines] if lyric_section else instrumental[index]
    spans = phrase_spans(section, len(lines), score)
    centre = low + (high - low) * TESSITURA.get(section.name, 0.5)
    velocity = int(68 + 36 * section.energy)
    section_notes: list[Note] = []
    sung_lines: dict[str, list[tuple[float, float, int, bool]]] = {}
    for number, (line, stress, (begin, end)) in enumerate(zip(lines, stresses, spans)):
        where = f"{section.name} (section {index + 1}) line {number + 1}"
        is_last = number == len(lines) - 1
        remembered = memory.lines.get((section.name, number))
        repeat_of = sung_lines.get(line.text) if line is not None else None
        if repeat_of is not None and not is_last:
            events = _vary(repeat_of, sampler, score, begin, centre, vary_last=2)
        elif remembered and remembered[0] == len(stress) and section.name != "chorus":
            events = _replay(remembered[1], sampler, begin, centre)
        else:
            events = _sing_line(stress, sampler, score, begin, end, centre, rng, where=where, genre=genre, cadence=is_last)
        relative = [(b - begin, d, p, m) for b, d, p, m in events]
        if line is not None:
            sung_lines.setdefault(line.text, relative)
        memory.lines.setdefault((section.name, number), (len(stress), relative))
        section_notes += _to_notes(events, line, velocity)
    if section.name == "chorus" and lyric_section is not None and memory.chorus is None:
        memory.chorus, memory.chorus_start = section_notes, start
        memory.chorus_text = [ln.text for ln in lyric_section.lines]
        memory.chorus_line_beats = section.bars * score.beats_per_bar / len(lyric_section.lines)
    return section_notes


def _repeat_chorus(memory: _Memory, section, lyric_section, start: float, beats_per_bar: float) -> list[Note] | None:
    """A later chorus sings the first chorus's melody, line by line: all of it, or (a shorter or
    longer chorus, whose lyrics are the first's lines cut short or begun again) the melody of each
    line it repeats. None when it is not such a repeat (other words, or other line lengths)."""
    if memory.chorus is None or lyric_section is None:
        return None
    texts = [ln.text for ln in lyric_section.lines]
    first = memory.chorus_text
    line_beats = section.bars * beats_per_bar / len(texts)
    if texts != [first[i % len(first)] for i in range(len(texts))] or abs(line_beats - memory.chorus_line_beats) > 1e-6:
        return None
    notes = []
    for i in range(len(texts)):
        source = memory.chorus_start + (i % len(first)) * line_beats
        shift = start + i * line_beats - source
        notes += [n.model_copy(update={"start_beat": n.start_beat + shift}) for n in memory.chorus if source <= n.start_beat < source + line_beats]
    return notes or None


def _sing_line(
    stresses: list[bool],
    sampler: MelodySampler,
    score: Score,
    begin: float,
    end: float,
    centre: float,
    rng: np.random.Generator,
    *,
    where: str,
    genre: str,
    cadence: bool,
):
    """(start beat, length, pitch, melisma) for each note of a freshly written phrase."""
    onsets = place_syllables(
        stresses,
        start_beat=begin,
        end_beat=end,
        bar_start_beat=0.0,
        meter=score.meter,
        slots_per_beat=slots_per_beat(genre, score.tempo_map[0].bpm),
        where=where,
    )
    plan = [(o.start_beat, o.duration_beats, o.strength, False) for o in onsets]
    last_start, last_length, _, _ = plan[-1]
    if last_length >= 2.0 and rng.random() < MELISMA_CHANCE:  # a two-note melisma on the held last vowel
        first = max(0.5, round(last_length / 2 * 2) / 2)
        plan[-1] = (last_start, first, plan[-1][2], False)
        second_start = last_start + first
        strength = metric_strength(second_start % score.beats_per_bar, score.meter.numerator, score.meter.denominator)
        plan.append((second_start, last_length - first, strength, True))
    events = []
    for i, (start, length, strength, melisma) in enumerate(plan):
        final = i == len(plan) - 1
        slot = NoteSlot(start, length, strength, tuple(p % 12 for p in _chord_at(score.chords, start).pitches), phrase_end=final, cadence=final and cadence)
        events.append((start, length, sampler.sample_one(slot, centre_midi=centre), melisma))
    return events


def _replay(relative, sampler: MelodySampler, begin: float, centre: float):
    """Sing a remembered phrase again at `begin` (the network follows along)."""
    events = []
    for offset, length, pitch, melisma in relative:
        slot = NoteSlot(begin + offset, length, 2, (), phrase_end=False)
        sampler.sample_one(slot, centre_midi=centre, forced_midi=pitch)
        events.append((begin + offset, length, pitch, melisma))
    return events


def _vary(relative, sampler: MelodySampler, score: Score, begin: float, centre: float, *, vary_last: int):
    """A repeated line: same rhythm and opening, a new ending (the hook returns, varied)."""
    events = _replay(relative[:-vary_last], sampler, begin, centre) if len(relative) > vary_last else []
    for i, (offset, length, _, melisma) in enumerate(relative[-vary_last:]):
        start = begin + offset
        strength = metric_strength(start % score.beats_per_bar, score.meter.numerator, score.meter.denominator)
        final = i == min(vary_last, len(relative)) - 1
        slot = NoteSlot(start, length, strength, tuple(p % 12 for p in _chord_at(score.chords, start).pitches), phrase_end=final)
        events.append((start, length, sampler.sample_one(slot, centre_midi=centre), melisma))
    return events


def _to_notes(events, line: LyricLine | None, velocity: int) -> list[Note]:
    syllables: list[Syllable | None] = list(line.syllables) if line is not None else []
    notes, index = [], 0
    for start, length, pitch, melisma in events:
        syllable = None
        if not melisma and index < len(syllables):
            syllable = syllables[index]
            index += 1
        accent = 6 if syllable is not None and syllable.stressed else 0
        notes.append(
            Note(
                pitch=pitch,
                start_beat=round(start, 6),
                duration_beats=round(length * 0.98, 6),
                velocity=min(velocity + accent, 127),
                syllable=syllable,
                melisma=melisma,
            )
        )
    return notes


# ------------------------------------------------------------------------------- comping and key change


def _comping(score: Score, genre: str) -> Part:
    """The chords as a keyboard/guitar part: held in quiet sections, pulsing as energy rises."""
    notes = []
    bar = score.beats_per_bar
    for chord in score.chords:
        section = next(s for s in score.sections if s.start_bar * bar <= chord.start_beat < (s.start_bar + s.bars) * bar)
        step = bar if section.energy < 0.4 else (bar / 2 if section.energy < 0.75 or bar % 2 else 1.0)
        if bar == 3 and section.energy >= 0.4:
            step = 1.0
        velocity = int(56 + 34 * section.energy)
        beat = 0.0
        while beat < chord.duration_beats - 1e-9:
            for pitch in chord.pitches:
                notes.append(Note(pitch=pitch, start_beat=chord.start_beat + beat, duration_beats=step * 0.95, velocity=velocity - (0 if beat == 0 else 8)))
            beat += step
    return Part(name="chords", role="harmony", program=COMP_PROGRAMS.get(genre, 0), notes=notes)


def _key_change(score: Score, semitones: int, voice_top: int) -> tuple[Score, str | None]:
    """Move the last chorus (and what follows) up by `semitones`, if the singer can reach it."""
    choruses = [s for s in score.sections if s.name == "chorus"]
    if not choruses:
        return score, "key change skipped: the song has no chorus to lift"
    beat = choruses[-1].start_bar * score.beats_per_bar
    melody = score.part("melody")
    top = max((n.pitch for n in melody.notes if n.start_beat >= beat), default=0)
    if top + semitones > voice_top + 1:
        return (
            score,
            f"key change of {semitones} semitones skipped: the last chorus would reach MIDI {top + semitones}, above the voice's range (top MIDI {voice_top})",
        )
    key = parse_key(score.key)
    new_key = parse_key(f"{pitch_name(key.tonic_pitch_class + semitones, key)} {key.mode}")

    def lift(note: Note) -> Note:
        return note.model_copy(update={"pitch": note.pitch + semitones}) if note.start_beat >= beat - 1e-9 else note

    parts = [part if part.is_drum else part.model_copy(update={"notes": [lift(n) for n in part.notes]}) for part in score.parts]
    chords = [
        c.model_copy(
            update={
                "pitches": [p + semitones for p in c.pitches],
                "root_pc": ((c.root_pc or 0) + semitones) % 12,
                "symbol": _transpose_symbol(c, semitones, new_key),
            }
        )
        if c.start_beat >= beat - 1e-9
        else c
        for c in score.chords
    ]
    return score.model_copy(update={"parts": parts, "chords": chords, "key_changes": [KeyChange(beat=beat, key=str(new_key))]}), None


def _transpose_symbol(chord: Chord, semitones: int, key) -> str:
    """The chord's symbol moved up, its root spelled as the new key spells it."""
    root = chord.symbol[:2] if len(chord.symbol) > 1 and chord.symbol[1] in "#b" else chord.symbol[:1]
    root_pc = chord.root_pc if chord.root_pc is not None else chord.pitches[0] % 12
    return pitch_name(root_pc + semitones, key) + chord.symbol[len(root) :]
