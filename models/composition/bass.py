"""Bass lines: the chord roots in a genre's rhythm, with approach notes into chord changes.

A pattern is a list of (beat in the bar, length in beats, chord degree) where degree 0 is the
root, 1 the fifth and 2 the octave. Quiet sections (energy < 0.4) play the root once a bar;
busy sections (energy ≥ 0.5) may step into the next chord's root on the last eighth.
"""

from __future__ import annotations

import numpy as np

from models.composition.streams import section_streams
from songmill.core.score import Chord, Note, Part, Score

BASS_LOW, BASS_HIGH = 28, 52  # E1 … E3
PATTERNS_4: dict[str, list[tuple[float, float, int]]] = {
    "pop": [(0, 1.5, 0), (1.5, 0.5, 0), (2, 1.5, 0), (3.5, 0.5, 1)],
    "rock": [(b * 0.5, 0.5, 0) for b in range(8)],
    "synthpop": [(b * 0.5, 0.5, 2 if b % 2 else 0) for b in range(8)],
    "folk": [(0, 2, 0), (2, 2, 1)],
    "ballad": [(0, 2.5, 0), (2.5, 1.5, 1)],
    "hip-hop": [(0, 1.5, 0), (1.5, 1.0, 0), (3, 0.75, 1)],
}
PATTERNS_3: dict[str, list[tuple[float, float, int]]] = {"default": [(0, 2, 0), (2, 1, 1)], "rock": [(0, 1, 0), (1, 1, 0), (2, 1, 1)]}
PROGRAMS = {"pop": 33, "rock": 34, "synthpop": 38, "folk": 32, "ballad": 32, "hip-hop": 38}  # GM (0-based)


def _pattern(genre: str, beats_per_bar: float, energy: float) -> list[tuple[float, float, int]]:
    if energy < 0.4:
        return [(0, beats_per_bar, 0)]
    if beats_per_bar == 4:
        return PATTERNS_4.get(genre, PATTERNS_4["pop"])
    if beats_per_bar == 3:
        return PATTERNS_3.get(genre, PATTERNS_3["default"])
    return [(0, beats_per_bar / 2, 0), (beats_per_bar / 2, beats_per_bar / 2, 1)]


def _nearest(pc: int, around: int) -> int:
    candidates = [p for p in range(BASS_LOW, BASS_HIGH + 1) if p % 12 == pc]
    return min(candidates, key=lambda p: abs(p - around))


def bass_part(score: Score, genre: str, rng: np.random.Generator) -> Part:
    notes: list[Note] = []
    chords = score.chords
    previous_root = 40  # around E2
    streams = section_streams(score, rng)  # a section's approach notes are its own (an edit elsewhere leaves them)
    for index, chord in enumerate(chords):
        number = next(
            i for i, s in enumerate(score.sections) if s.start_bar * score.beats_per_bar <= chord.start_beat < (s.start_bar + s.bars) * score.beats_per_bar
        )
        section, draws = score.sections[number], streams[number]
        root = _nearest(_root_pc(chord), previous_root)
        fifth = root + 7 if root + 7 <= BASS_HIGH else root - 5
        pitches = {0: root, 1: fifth, 2: root + 12 if root + 12 <= BASS_HIGH + 7 else root}
        velocity = int(72 + 40 * section.energy)
        pattern = _pattern(genre, score.beats_per_bar, section.energy)
        following = chords[index + 1] if index + 1 < len(chords) else None
        for beat, length, degree in pattern:
            notes.append(
                Note(
                    pitch=pitches[degree],
                    start_beat=chord.start_beat + beat,
                    duration_beats=length * 0.95,
                    velocity=min(velocity - (0 if beat == 0 else 8), 127),
                )
            )
        if following and section.energy >= 0.5 and _root_pc(following) != _root_pc(chord) and draws.random() < 0.5:
            target = _nearest(_root_pc(following), root)
            step = 1 if target > root else -1
            approach = target - step * (2 if draws.random() < 0.5 else 1)  # a whole or half step below/above
            last = notes[-1]
            cut = chord.start_beat + chord.duration_beats - 0.5
            if last.start_beat < cut:
                notes[-1] = last.model_copy(update={"duration_beats": cut - last.start_beat})
                notes.append(Note(pitch=int(np.clip(approach, BASS_LOW, BASS_HIGH)), start_beat=cut, duration_beats=0.45, velocity=max(velocity - 12, 1)))
        previous_root = root
    return Part(name="bass", role="bass", program=PROGRAMS.get(genre, 33), notes=notes)


def _root_pc(chord: Chord) -> int:
    """The chord's root (voicings are inverted, so the lowest note may not be it)."""
    if chord.root_pc is not None:
        return chord.root_pc
    name = chord.symbol[:2] if len(chord.symbol) > 1 and chord.symbol[1] in "#b" else chord.symbol[:1]
    base = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[name[0]]
    return (base + (1 if name.endswith("#") else -1 if name.endswith("b") and len(name) == 2 else 0)) % 12
