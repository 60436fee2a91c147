"""The score: the one musical data model every stage reads (DESIGN.md §5).

Units
-----
* Time is in **beats** = quarter notes, from the start of the song (beat 0). `*_s` fields are
  seconds, always derived from beats through the tempo map when a score is built or loaded,
  so the two can never disagree.
* Tempo is in quarter notes per minute (`bpm`).
* Pitch is a MIDI note number (60 = middle C = C4); velocity is MIDI 1–127.
* Bars are 0-based; `Section.start_bar` + `Section.bars` is the bar after the section.

Scores are values: functions that change a score return a new one (`score.model_copy(...)`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from songmill.core.music import TimeSignature, parse_key, parse_time_signature

SCORE_FORMAT_VERSION = 1

Beats = Annotated[float, Field(ge=0, description="quarter-note beats")]
PositiveBeats = Annotated[float, Field(gt=0, description="quarter-note beats")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class TempoChange(_Model):
    beat: Beats = 0.0
    bpm: Annotated[float, Field(gt=0, le=400)]


class KeyChange(_Model):
    beat: Beats  # where the new key starts (a section start)
    key: str  # e.g. "B minor"


class Section(_Model):
    name: str  # one of vocab.SECTION_NAMES
    start_bar: Annotated[int, Field(ge=0)]
    bars: Annotated[int, Field(ge=1)]
    energy: Annotated[float, Field(ge=0, le=1)]  # 0 = sparse and quiet … 1 = the peak of the song


class Chord(_Model):
    start_beat: Beats
    duration_beats: PositiveBeats
    symbol: str  # e.g. "Am7", "F/C"
    pitches: list[Annotated[int, Field(ge=0, le=127)]]  # the voicing, MIDI numbers
    root_pc: Annotated[int, Field(ge=0, le=11)] | None = None  # root pitch class (0 = C); None: read the symbol


class Syllable(_Model):
    text: str  # as sung, e.g. "lan" of "lantern"
    phonemes: list[str] = []  # ARPAbet from the CMU dictionary (or espeak-ng), stress digits kept
    stressed: bool = False
    word_start: bool = True
    word_end: bool = True


class Note(_Model):
    pitch: Annotated[int, Field(ge=0, le=127)]
    start_beat: Beats
    duration_beats: PositiveBeats
    velocity: Annotated[int, Field(ge=1, le=127)] = 90
    start_s: float = 0.0  # derived from the tempo map
    duration_s: float = 0.0  # derived from the tempo map
    syllable: Syllable | None = None  # the lyric sung from this note (melody parts)
    melisma: bool = False  # True: continues the previous note's syllable

    @property
    def end_beat(self) -> float:
        return self.start_beat + self.duration_beats


class Part(_Model):
    name: str  # unique in the score, e.g. "melody", "bass", "drums"
    role: Literal["melody", "bass", "drums", "harmony", "pad", "lead", "backing", "texture"]
    program: Annotated[int, Field(ge=0, le=127)] = 0  # General MIDI program (0-based)
    is_drum: bool = False  # True: General MIDI percussion channel, pitch = drum sound
    notes: list[Note] = []


class Score(_Model):
    format_version: int = SCORE_FORMAT_VERSION
    title: str = ""
    key: str  # e.g. "A minor" (see music.parse_key)
    time_signature: str = "4/4"
    tempo_map: Annotated[list[TempoChange], Field(min_length=1)]
    key_changes: list[KeyChange] = []  # modulations after the start (the last chorus up a step…)
    sections: list[Section] = []
    chords: list[Chord] = []
    parts: list[Part] = []

    @model_validator(mode="after")
    def _derive_seconds(self) -> "Score":
        parse_key(self.key)
        for change in self.key_changes:
            parse_key(change.key)
        parse_time_signature(self.time_signature)
        if self.tempo_map[0].beat != 0:
            raise ValueError("tempo_map must start at beat 0")
        if [t.beat for t in self.tempo_map] != sorted(t.beat for t in self.tempo_map):
            raise ValueError("tempo_map must be in beat order")
        names = [p.name for p in self.parts]
        if len(names) != len(set(names)):
            raise ValueError(f"part names must be unique, got {names}")
        for part in self.parts:
            for note in part.notes:
                note.start_s = self.seconds_at(note.start_beat)
                note.duration_s = self.seconds_at(note.end_beat) - note.start_s
        return self

    # -- time
    @property
    def meter(self) -> TimeSignature:
        return parse_time_signature(self.time_signature)

    @property
    def beats_per_bar(self) -> float:
        return self.meter.quarter_notes_per_bar

    @property
    def total_bars(self) -> int:
        return max((s.start_bar + s.bars for s in self.sections), default=0)

    @property
    def end_beat(self) -> float:
        by_sections = self.total_bars * self.beats_per_bar
        by_notes = max((n.end_beat for p in self.parts for n in p.notes), default=0.0)
        return max(by_sections, by_notes)

    @property
    def duration_s(self) -> float:
        return self.seconds_at(self.end_beat)

    def seconds_at(self, beat: float) -> float:
        """Seconds from the start of the song to `beat`, through the tempo map."""
        seconds, previous = 0.0, self.tempo_map[0]
        for change in self.tempo_map[1:]:
            if change.beat >= beat:
                break
            seconds += (change.beat - previous.beat) * 60.0 / previous.bpm
            previous = change
        return seconds + (beat - previous.beat) * 60.0 / previous.bpm

    def beats_at(self, seconds: float) -> float:
        """The beat `seconds` into the song, through the tempo map (the inverse of `seconds_at`)."""
        elapsed, previous = 0.0, self.tempo_map[0]
        for change in self.tempo_map[1:]:
            span = (change.beat - previous.beat) * 60.0 / previous.bpm
            if elapsed + span >= seconds:
                break
            elapsed += span
            previous = change
        return previous.beat + (seconds - elapsed) * previous.bpm / 60.0

    def key_at(self, beat: float) -> str:
        """The key sounding at `beat` (the home key until the first key change)."""
        current = self.key
        for change in sorted(self.key_changes, key=lambda c: c.beat):
            if change.beat <= beat:
                current = change.key
        return current

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"the score has no part '{name}' (parts: {', '.join(p.name for p in self.parts) or 'none'})")

    # -- serialisation
    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Score":
        return cls.model_validate(json.loads(text))

    def save_json(self, path: Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load_json(cls, path: Path) -> "Score":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


PHRASE_GAP_S = 0.25  # a rest at least this long (seconds) between sung notes ends a phrase (a breath)


def note_groups(melody: list[Note]) -> list[list[Note]]:
    """The melody's notes in phrases: a rest of PHRASE_GAP_S or more starts a new one."""
    groups: list[list[Note]] = []
    for note in melody:
        if groups and note.start_s - (groups[-1][-1].start_s + groups[-1][-1].duration_s) < PHRASE_GAP_S:
            groups[-1].append(note)
        else:
            groups.append([note])
    return groups
