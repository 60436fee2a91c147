"""Small music-theory helpers shared by the spec and the score: keys, time signatures."""

from __future__ import annotations

import re
from dataclasses import dataclass

from songmill.core.vocab import MODES

_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#b♯♭]?)\s*(m|min|maj|[a-z]+)?\s*$")

# Semitone steps of each mode's scale from its tonic.
MODE_STEPS = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
}


# Semitones from the relative major's tonic up to each mode's tonic (A minor → C major: 9).
MODE_OFFSET_FROM_MAJOR = {"major": 0, "ionian": 0, "dorian": 2, "phrygian": 4, "lydian": 5, "mixolydian": 7, "minor": 9, "aeolian": 9}


@dataclass(frozen=True)
class Key:
    tonic: str  # e.g. "F#", "Bb"
    mode: str  # one of vocab.MODES

    @property
    def tonic_pitch_class(self) -> int:
        """0 = C … 11 = B."""
        pc = _PITCH_CLASS[self.tonic[0]]
        if self.tonic.endswith("#"):
            pc += 1
        elif self.tonic.endswith("b"):
            pc -= 1
        return pc % 12

    @property
    def relative_major_pitch_class(self) -> int:
        """The tonic of the major key with the same notes (its key signature)."""
        return (self.tonic_pitch_class - MODE_OFFSET_FROM_MAJOR[self.mode]) % 12

    @property
    def scale_pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.tonic_pitch_class + s) % 12 for s in MODE_STEPS[self.mode])

    def __str__(self) -> str:
        return f"{self.tonic} {self.mode}"


def parse_key(text: str) -> Key:
    """'A minor', 'Am', 'F# major', 'Bb dorian' -> Key. Raises ValueError with the allowed forms."""
    match = _KEY_RE.match(str(text))
    mode_word = (match.group(3) or "major") if match else ""
    mode = {"m": "minor", "min": "minor", "maj": "major"}.get(mode_word, mode_word)
    if not match or mode not in MODES:
        raise ValueError(f"'{text}' is not a key (a tonic A–G with optional # or b, then a mode: {', '.join(MODES)})")
    accidental = {"♯": "#", "♭": "b"}.get(match.group(2), match.group(2))
    return Key(match.group(1).upper() + accidental, mode)


@dataclass(frozen=True)
class TimeSignature:
    numerator: int
    denominator: int

    @property
    def quarter_notes_per_bar(self) -> float:
        return self.numerator * 4.0 / self.denominator

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def parse_time_signature(text: str) -> TimeSignature:
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*", str(text))
    if not match or not (1 <= int(match.group(1)) <= 15) or int(match.group(2)) not in (2, 4, 8, 16):
        raise ValueError(f"'{text}' is not a time signature (N/D with N 1–15 and D 2, 4, 8 or 16, e.g. 4/4, 6/8)")
    return TimeSignature(int(match.group(1)), int(match.group(2)))


def metric_strength(position_beats: float, numerator: int, denominator: int) -> int:
    """Strength of an onset `position_beats` (quarter notes) after the bar line.

    Compound meters (6/8, 9/8, 12/8) beat in dotted quarters; 4/4 (and 12/8) have a second
    strong beat half-way through the bar.
    """
    eps = 1e-6
    if position_beats < eps:
        return 0
    compound = denominator == 8 and numerator % 3 == 0 and numerator > 3
    beat = 1.5 if compound else 4.0 / denominator
    bar = numerator * 4.0 / denominator
    beats_in_bar = round(bar / beat)
    on_beat = abs(position_beats / beat - round(position_beats / beat)) < eps
    if on_beat and beats_in_bar % 2 == 0 and beats_in_bar >= 4 and abs(position_beats - bar / 2) < eps:
        return 1
    return 2 if on_beat else 3
