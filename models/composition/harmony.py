"""Harmony: chord progressions per section from a key and a genre preset, with cadences at
section ends, a contrasting bridge, and voicings that move smoothly.

Progressions are written in Roman numerals relative to the tonic: the numeral names the root
(`I`=0, `II`=2, `III`=4, `IV`=5, `V`=7, `VI`=9, `VII`=11 semitones; a leading `b` lowers it);
the chord's quality comes from the key's own scale (so `IV` is major in dorian, minor in
aeolian), except `V`, which is always major (the harmonic-minor dominant), and roots outside
the scale (`bVII` in major: borrowed, major). A trailing `7` adds the scale's seventh.
One chord per bar; a section loops its progression and ends on its cadence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from songmill.core.errors import SongmillError
from songmill.core.music import MODE_STEPS, Key
from songmill.core.score import Chord, Note, Score

NUMERAL_ROOTS = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}
MAJOR_LIKE = {"major", "ionian", "mixolydian", "lydian"}

# genre → (major-like progressions, minor-like progressions) per section kind.
PROGRESSIONS: dict[str, dict[str, tuple[list[list[str]], list[list[str]]]]] = {
    "pop": {
        "verse": ([["I", "V", "vi", "IV"], ["vi", "IV", "I", "V"]], [["i", "bVI", "bIII", "bVII"], ["i", "bVII", "bVI", "bVII"]]),
        "pre-chorus": ([["ii", "IV", "ii", "IV"], ["IV", "V", "vi", "IV"]], [["iv", "bVI", "iv", "bVII"]]),
        "chorus": ([["I", "V", "vi", "IV"], ["IV", "I", "V", "vi"]], [["bVI", "bVII", "i", "i"], ["i", "bVI", "bIII", "bVII"]]),
        "bridge": ([["vi", "IV", "ii", "V"], ["IV", "V", "iii", "vi"]], [["iv", "bVI", "bIII", "bVII"], ["bVI", "iv", "bVII", "V"]]),
    },
    "rock": {
        "verse": ([["I", "bVII", "IV", "I"], ["I", "IV", "I", "V"]], [["i", "bVII", "bVI", "bVII"], ["i", "i", "bVII", "iv"]]),
        "pre-chorus": ([["IV", "IV", "V", "V"]], [["bVI", "bVI", "bVII", "bVII"]]),
        "chorus": ([["I", "V", "IV", "IV"], ["I", "IV", "V", "IV"]], [["i", "bVI", "bVII", "i"], ["bVI", "bVII", "i", "i"]]),
        "bridge": ([["vi", "IV", "V", "V"], ["IV", "bVII", "IV", "V"]], [["iv", "iv", "bVI", "bVII"]]),
    },
    "synthpop": {
        "verse": ([["vi", "IV", "I", "V"], ["I", "vi", "IV", "V"]], [["i", "bVI", "bIII", "bVII"], ["i", "iv", "bVI", "bVII"]]),
        "pre-chorus": ([["IV", "V", "IV", "V"]], [["bVI", "bVII", "bVI", "bVII"]]),
        "chorus": ([["I", "V", "vi", "IV"], ["IV", "V", "vi", "I"]], [["bVI", "bIII", "bVII", "i"], ["i", "bVII", "bVI", "bVII"]]),
        "bridge": ([["ii", "IV", "vi", "V"]], [["iv", "bVI", "bVII", "bVII"]]),
    },
    "folk": {
        "verse": ([["I", "IV", "I", "V"], ["I", "V", "IV", "I"]], [["i", "bVII", "i", "v"], ["i", "bIII", "bVII", "i"]]),
        "pre-chorus": ([["IV", "I", "IV", "V"]], [["bVI", "bVII", "i", "v"]]),
        "chorus": ([["IV", "I", "V", "I"], ["I", "IV", "V", "I"]], [["bIII", "bVII", "i", "i"], ["bVI", "bVII", "i", "i"]]),
        "bridge": ([["vi", "iii", "IV", "V"]], [["bVI", "bIII", "iv", "V"]]),
    },
    "ballad": {
        "verse": ([["I", "vi", "IV", "V"], ["I", "iii", "IV", "V"]], [["i", "bVI", "iv", "V"], ["i", "bVII", "bVI", "V"]]),
        "pre-chorus": ([["ii", "iii", "IV", "V"]], [["iv", "bVI", "bVII", "V"]]),
        "chorus": ([["IV", "V", "iii", "vi"], ["I", "V", "vi", "IV"]], [["bVI", "bVII", "i", "i"], ["bIII", "bVII", "bVI", "V"]]),
        "bridge": ([["vi", "IV", "I", "V"], ["ii", "vi", "IV", "V"]], [["bVI", "iv", "i", "V"]]),
    },
    "hip-hop": {
        "verse": ([["vi", "vi", "IV", "IV"], ["I", "I", "vi", "vi"]], [["i", "i", "bVI", "bVI"], ["i", "iv", "i", "iv"]]),
        "pre-chorus": ([["IV", "IV", "V", "V"]], [["bVI", "bVI", "bVII", "bVII"]]),
        "chorus": ([["IV", "V", "vi", "vi"], ["I", "V", "vi", "IV"]], [["bVI", "bVII", "i", "i"], ["i", "bVI", "bIII", "bVII"]]),
        "bridge": ([["ii", "ii", "V", "V"]], [["iv", "iv", "bVII", "bVII"]]),
    },
}
# Sections that borrow another's progression.
BORROWS = {"intro": "verse", "outro": "chorus", "post-chorus": "chorus", "solo": "verse", "instrumental": "chorus", "breakdown": "bridge"}
# Cadences: the last one or two bars of a section.
HALF_CADENCE = (["IV", "V"], ["bVI", "V"])
AUTHENTIC = {
    "default": (["V", "I"], ["V", "i"]),
    "rock": (["IV", "I"], ["bVII", "i"]),
    "synthpop": (["V", "I"], ["bVII", "i"]),
    "hip-hop": (["V", "vi"], ["bVII", "i"]),
}
VOICING_LOW, VOICING_HIGH = 52, 72  # E3 … C5: the comping register
SEVENTHS = {"ballad", "synthpop", "hip-hop"}  # genres that colour chords with sevenths


@dataclass(frozen=True)
class ChordSpec:
    numeral: str
    root_pc: int  # absolute pitch class of the root
    pcs: tuple[int, ...]  # absolute pitch classes, root first
    symbol: str


_FLAT_KEYS = {"F", "Bb", "Eb", "Ab", "Db", "Gb", "Cb"}
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def uses_flats(key: Key) -> bool:
    return key.tonic.endswith("b") or _FLAT_NAMES[key.relative_major_pitch_class] in _FLAT_KEYS


def pitch_name(pc: int, key: Key) -> str:
    return (_FLAT_NAMES if uses_flats(key) else _SHARP_NAMES)[pc % 12]


# Modal keys swap a borrowed chord of the minor presets for their own (dorian's IV is major).
MODAL_SUBSTITUTES = {"dorian": {"bVI": "IV", "iv": "IV"}, "phrygian": {"V": "v", "bVII": "bvii"}}


def realise(numeral: str, key: Key, *, seventh: bool = False) -> ChordSpec:
    """A Roman numeral in `key` → root, pitch classes and a chord symbol."""
    numeral = MODAL_SUBSTITUTES.get(key.mode, {}).get(numeral, numeral)
    match = re.fullmatch(r"(b|#)?([ivIV]+)(7)?", numeral)
    if not match or match.group(2).upper() not in NUMERAL_ROOTS:
        raise ValueError(f"'{numeral}' is not a Roman numeral chord")
    offset = NUMERAL_ROOTS[match.group(2).upper()] + {"b": -1, "#": 1, None: 0}[match.group(1)]
    steps = MODE_STEPS[key.mode]
    tonic = key.tonic_pitch_class
    root = (tonic + offset) % 12
    if offset % 12 in steps and match.group(2) != "V":
        degree = steps.index(offset % 12)
        third = (steps[(degree + 2) % 7] - steps[degree]) % 12
        fifth = (steps[(degree + 4) % 7] - steps[degree]) % 12
        seventh_step = (steps[(degree + 6) % 7] - steps[degree]) % 12
    else:  # V, and borrowed roots: major
        third, fifth, seventh_step = 4, 7, 10 if match.group(2) == "V" else 11
    if fifth != 7:  # diminished or augmented in this mode: use the major/minor triad its numeral's case names
        third, fifth = (4 if match.group(2).isupper() else 3), 7
    intervals = [0, third, fifth] + ([seventh_step] if seventh or match.group(3) else [])
    pcs = tuple((root + i) % 12 for i in intervals)
    quality = "" if third == 4 else "m"
    if len(intervals) == 4:
        quality = {(4, 11): "maj7", (4, 10): "7", (3, 10): "m7", (3, 11): "m(maj7)"}[(third, intervals[3])]
    return ChordSpec(numeral, root, pcs, pitch_name(root, key) + quality)


def _progression(genre: str, section: str, major: bool, variant: int) -> list[str]:
    table = PROGRESSIONS.get(genre, PROGRESSIONS["pop"])
    kind = section if section in table else BORROWS.get(section, "verse")
    options = table[kind][0 if major else 1]
    return options[variant % len(options)]


def _cadence(section: str, is_last_vocal_chorus: bool, next_section: str | None, genre: str, major: bool) -> list[str]:
    if next_section is None or section == "outro" or is_last_vocal_chorus and next_section in ("outro", None):
        authentic = AUTHENTIC.get(genre, AUTHENTIC["default"])
        return authentic[0 if major else 1]
    if section in ("verse", "pre-chorus", "bridge", "intro", "breakdown", "solo", "instrumental"):
        return HALF_CADENCE[0 if major else 1]
    authentic = AUTHENTIC.get(genre, AUTHENTIC["default"])
    return authentic[0 if major else 1]


def section_numerals(score: Score, genre: str, variants: dict[str, int]) -> list[list[str]]:
    """One numeral per bar for each section: the looped progression, then its cadence."""
    major = score_key(score).mode in MAJOR_LIKE
    return [
        _numerals(score, index, _progression(genre, section.name, major, variants.get(section.name, 0)), genre) for index, section in enumerate(score.sections)
    ]


def _numerals(score: Score, index: int, loop: list[str], genre: str) -> list[str]:
    """Section `index`'s bars: `loop` over and over, ending on the cadence that leads to what follows."""
    major = score_key(score).mode in MAJOR_LIKE
    names = [s.name for s in score.sections]
    last_chorus = max((i for i, n in enumerate(names) if n == "chorus"), default=None)
    section = score.sections[index]
    bars = [loop[b % len(loop)] for b in range(section.bars)]
    following = names[index + 1] if index + 1 < len(names) else None
    cadence = _cadence(section.name, index == last_chorus, following, genre, major)
    if section.bars >= 4:
        bars[-len(cadence) :] = cadence
    elif section.bars >= 1:
        bars[-1] = cadence[-1]
    return bars


def score_key(score: Score) -> Key:
    from songmill.core.music import parse_key

    return parse_key(score.key)


def voice(pcs: tuple[int, ...], previous: list[int] | None) -> list[int]:
    """Close-position voicing of `pcs` in the comping register, nearest the previous voicing."""
    candidates = []
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for base in range(VOICING_LOW, VOICING_LOW + 12):
            if base % 12 != order[0]:
                continue
            notes = [base]
            for pc in order[1:]:
                nxt = notes[-1] + 1
                while nxt % 12 != pc:
                    nxt += 1
                notes.append(nxt)
            if notes[-1] <= VOICING_HIGH:
                candidates.append(notes)
    if not candidates:
        raise ValueError(f"no voicing for pitch classes {pcs}")
    if previous is None:
        centre = (VOICING_LOW + VOICING_HIGH) / 2
        return min(candidates, key=lambda c: abs(sum(c) / len(c) - centre))
    return min(candidates, key=lambda c: _movement(previous, c))


def _movement(a: list[int], b: list[int]) -> float:
    """Semitones the voices move (each voice of the smaller chord to its nearest in the other)."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return sum(min(abs(x - y) for y in large) for x in small) + abs(len(a) - len(b)) * 2


def harmonise(score: Score, genre: str, *, variants: dict[str, int] | None = None) -> list[Chord]:
    """Chords for every bar of the song, voiced with smooth voice leading."""
    chords: list[Chord] = []
    for section, numerals in zip(score.sections, section_numerals(score, genre, variants or {})):
        chords += _section_chords(score, section, numerals, genre, chords[-1].pitches if chords else None)
    return chords


def _section_chords(score: Score, section, numerals: list[str], genre: str, previous: list[int] | None) -> list[Chord]:
    """One chord a bar for `numerals`, each voiced nearest the one before (`previous`: the voicing the section follows)."""
    key = score_key(score)
    chords = []
    for bar_offset, numeral in enumerate(numerals):
        spec = realise(numeral, key, seventh=genre in SEVENTHS and numeral not in ("V",))
        previous = voice(spec.pcs, previous)
        chords.append(
            Chord(
                start_beat=(section.start_bar + bar_offset) * score.beats_per_bar,
                duration_beats=score.beats_per_bar,
                symbol=spec.symbol,
                pitches=previous,
                root_pc=spec.root_pc,
            )
        )
    return chords


def other_progressions(genre: str, major: bool, current: list[str]) -> list[list[str]]:
    """Every loop the genre plays in this mode (any section's) but `current`: what a section can be reharmonised with."""
    table = PROGRESSIONS.get(genre, PROGRESSIONS["pop"])
    loops = dict.fromkeys(tuple(loop) for kind in table.values() for loop in kind[0 if major else 1])
    return [list(loop) for loop in loops if list(loop) != current]


FIT_MARGIN = 0.1  # loops whose fit to the melody is within this of the best one are all good choices


def reharmonise(
    score: Score, genre: str, chords: list[Chord], section_index: int, melody: list[Note], rng: np.random.Generator, *, variants: dict[str, int]
) -> list[Chord]:
    """`chords` (from `harmonise(score, genre, variants=variants)`) with one section played on
    another of the genre's loops under the same `melody` (the song editor's "new chords for
    verse 2"): of the loops that fit the melody best (`melody_fit`, within `FIT_MARGIN`), `rng`
    draws one. The cadence stays, so the section still leads where it led; its first chord is
    voiced from the one before; every chord outside it stays as it was."""
    section = score.sections[section_index]
    begin, end = section.start_bar * score.beats_per_bar, (section.start_bar + section.bars) * score.beats_per_bar
    inside = [i for i, chord in enumerate(chords) if begin <= chord.start_beat < end]
    if not inside:
        return chords
    major = score_key(score).mode in MAJOR_LIKE
    previous = chords[inside[0] - 1].pitches if inside[0] > 0 else None
    sung = [note for note in melody if begin <= note.start_beat < end]
    current = _progression(genre, section.name, major, variants.get(section.name, 0))
    bars_now = _numerals(score, section_index, current, genre)
    others = [bars for bars in (_numerals(score, section_index, loop, genre) for loop in other_progressions(genre, major, current)) if bars != bars_now]
    if not others:
        raise SongmillError(
            f"{section.name} (section {section_index + 1}) is too short to play on other chords: its {section.bars} bars are its cadence; lengthen it first"
        )
    played = [_section_chords(score, section, list(bars), genre, previous) for bars in dict.fromkeys(tuple(b) for b in others)]
    fits = [melody_fit(sung, option) for option in played]
    good = [option for option, fit in zip(played, fits) if fit >= max(fits) - FIT_MARGIN]
    return chords[: inside[0]] + good[int(rng.integers(0, len(good)))] + chords[inside[-1] + 1 :]


def melody_fit(notes: list[Note], chords: list[Chord]) -> float:
    """The share of the melody's sung time, on the beat, that is a tone of the chord under it
    (1.0 for no notes): how well chords carry a tune."""
    total = fitting = 0.0
    for note in notes:
        if abs(note.start_beat - round(note.start_beat)) > 1e-6:
            continue  # passing notes between beats need not be chord tones
        chord = next((c for c in chords if c.start_beat <= note.start_beat < c.start_beat + c.duration_beats), None)
        if chord is None:
            continue
        total += note.duration_beats
        fitting += note.duration_beats if note.pitch % 12 in {p % 12 for p in chord.pitches} else 0.0
    return fitting / total if total else 1.0
