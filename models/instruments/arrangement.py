"""Arrangement: which instruments play which parts of the score, where, and how.

A preset (`config/arrangements.yaml`, one per genre) lists instruments; each plays from a part
of the score (drums, bass, chords, melody) with a pattern, in a register, in the sections
whose energy it answers to. The result is a list of `ArrangedPart`s — each becomes one stem —
and the decisions as JSON for the run report.

The preset is a pure function of the track's instrumentation, so every track of a release
that shares it sounds like the same band.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from songmill.core.config import load_config
from songmill.core.errors import SongmillError
from songmill.core.gm import GM_PROGRAMS, gm_program
from songmill.core.paths import config_dir, config_file
from songmill.core.score import Note, Score, Section

log = logging.getLogger("songmill.arrangement")

PATTERNS = ("as-written", "comp", "strum", "power", "arpeggio", "sustain", "counter", "double", "lead")


class InstrumentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]  # the stem's name
    instrument: str | None = None  # GM name; None for drums
    source: Literal["drums", "bass", "chords", "melody"]
    pattern: Literal[PATTERNS]  # type: ignore[valid-type]
    note_range: tuple[int, int] = Field((0, 127), alias="register")  # [lowest, highest] MIDI note
    from_energy: Annotated[float, Field(ge=0, le=1)] = 0.0
    until_energy: Annotated[float, Field(ge=0, le=1)] = 1.0
    only: list[str] | None = None  # section names, or "last-chorus"

    @model_validator(mode="after")
    def _known_instrument(self) -> "InstrumentSpec":
        if self.source != "drums":
            if self.instrument is None:
                raise ValueError(f"instrument '{self.name}' needs an instrument (a General MIDI name such as 'acoustic grand piano')")
            try:
                gm_program(self.instrument)
            except ValueError:
                raise ValueError(f"'{self.instrument}' is not a General MIDI instrument (e.g. {', '.join(GM_PROGRAMS[:3])}, …; see songmill/gm.py)") from None
        if self.note_range[0] >= self.note_range[1]:
            raise ValueError(f"register {list(self.note_range)} must be [lowest, highest]")
        return self

    @property
    def program(self) -> int:
        return gm_program(self.instrument) if self.instrument else 0


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    instruments: Annotated[list[InstrumentSpec], Field(min_length=1)]
    break_: bool = Field(False, alias="break")


class _PresetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    presets: dict[str, Preset]
    lead: dict[str, str]


def load_presets(path: Path | None = None) -> _PresetFile:
    path = path or config_dir() / "arrangements.yaml"
    return load_config(path, _PresetFile)


class ArrangedPart(BaseModel):
    """One stem-to-be: an instrument and the notes it plays."""

    name: str
    program: int
    instrument: str
    is_drum: bool
    notes: list[Note]


class Arrangement(BaseModel):
    preset: str
    parts: list[ArrangedPart]
    decisions: dict  # what the run report shows: instruments, sections they play, moves made


# ------------------------------------------------------------------------------- patterns


def _chord_notes(score: Score, pattern: str, section: Section, chord) -> list[Note]:
    """One chord's worth of notes for a chord-playing pattern."""
    start, length, pitches = chord.start_beat, chord.duration_beats, sorted(chord.pitches)
    velocity = int(52 + 40 * section.energy)
    notes: list[Note] = []

    def add(pitch: int, beat: float, dur: float, vel: int = velocity) -> None:
        notes.append(Note(pitch=pitch, start_beat=start + beat, duration_beats=dur, velocity=max(1, min(vel, 127))))

    if pattern == "sustain":
        for p in pitches:
            add(p, 0.0, length * 0.98, velocity - 10)
    elif pattern == "strum":  # down-strums on the beats, up-strums between, 12 ms between strings
        beat, i = 0.0, 0
        while beat < length - 1e-9:
            up = i % 2 == 1
            order = pitches[::-1] if up else pitches
            for k, p in enumerate(order):
                add(p, beat + k * 0.02, 0.45, velocity - (12 if up else 0))
            beat, i = beat + 0.5, i + 1
    elif pattern == "power":
        root = pitches[0] if chord.root_pc is None else min(p for p in range(36, 60) if p % 12 == chord.root_pc)
        beat = 0.0
        while beat < length - 1e-9:
            for p in (root, root + 7, root + 12):
                add(p, beat, 0.45, velocity)
            beat += 0.5
    elif pattern == "arpeggio":
        cycle = pitches + [pitches[0] + 12]
        step = 0.5 if section.energy < 0.75 else 0.25
        beat, i = 0.0, 0
        while beat < length - 1e-9:
            add(cycle[i % len(cycle)], beat, step * 1.8, velocity - 6)
            beat, i = beat + step, i + 1
    elif pattern == "counter":  # half notes walking through chord tones an octave up
        tones = sorted({p + 12 for p in pitches})
        beat, i = 0.0, 0
        while beat < length - 1e-9:
            add(tones[(i * 2) % len(tones)], beat, min(2.0, length - beat) * 0.95, velocity - 4)
            beat, i = beat + 2.0, i + 1
    return notes


def _section_at(score: Score, beat: float) -> Section:
    bar = score.beats_per_bar
    for section in score.sections:
        if section.start_bar * bar - 1e-6 <= beat < (section.start_bar + section.bars) * bar - 1e-6:
            return section
    return score.sections[-1]


def _plays_in(spec: InstrumentSpec, section: Section, index: int, last_chorus: int | None) -> bool:
    if spec.only is not None:
        return section.name in spec.only or ("last-chorus" in spec.only and index == last_chorus)
    return spec.from_energy <= section.energy <= spec.until_energy


def _fit_register(notes: list[Note], low: int, high: int) -> tuple[list[Note], int]:
    """Move notes outside [low, high] by octaves; returns the notes and how many moved."""
    moved, out = 0, []
    for note in notes:
        pitch = note.pitch
        while pitch < low and pitch + 12 <= 127:
            pitch += 12
        while pitch > high and pitch - 12 >= 0:
            pitch -= 12
        if pitch != note.pitch:
            moved += 1
            note = note.model_copy(update={"pitch": pitch})
        out.append(note)
    return out, moved


ADDED_REGISTER = (48, 84)  # an added chord instrument plays in the middle of the keyboard


def _edited(specs: list[InstrumentSpec], edit: dict, preset_name: str) -> list[InstrumentSpec]:
    """The preset's instruments with the editor's swaps and additions."""
    names = [s.name for s in specs]
    for part in edit.get("swap", {}):
        if part not in names or part == "drums":
            raise SongmillError(
                f"the {preset_name} arrangement has no part '{part}' to play on another instrument (it has: {', '.join(n for n in names if n != 'drums')})"
            )
    specs = [s.model_copy(update={"instrument": edit["swap"][s.name]}) if s.name in edit.get("swap", {}) else s for s in specs]
    for added in edit.get("add", []):
        if added["name"] in names:
            raise SongmillError(f"the {preset_name} arrangement already has a part '{added['name']}'; swap its instrument instead")
        specs.append(InstrumentSpec(name=added["name"], instrument=added["instrument"], source="chords", pattern=added["pattern"], register=ADDED_REGISTER))
        names.append(added["name"])
    return specs


def arrange(score: Score, preset_name: str, *, instrumental: bool, presets: _PresetFile | None = None, edit: dict | None = None) -> Arrangement:
    """The arrangement of `score` by the named preset; `edit` (a track's `instruments` block, as
    JSON): parts played on other instruments, and instruments added."""
    presets = presets or load_presets()
    if preset_name not in presets.presets:
        raise SongmillError(f"arrangement preset '{preset_name}' is not in {config_file('arrangements.yaml')} (presets: {', '.join(presets.presets)})")
    preset = presets.presets[preset_name]
    specs = _edited(list(preset.instruments), edit or {}, preset_name)
    if instrumental:
        specs.append(
            InstrumentSpec(name="lead", instrument=presets.lead.get(preset_name, "lead 1 (square)"), source="melody", pattern="lead", register=(55, 96))
        )
    names = [s.name for s in score.sections]
    last_chorus = max((i for i, n in enumerate(names) if n == "chorus"), default=None)
    bar = score.beats_per_bar
    bridge = next((s for s in score.sections if s.name == "bridge"), None)
    break_span = (bridge.start_bar * bar, (bridge.start_bar + max(bridge.bars // 2, 1)) * bar) if preset.break_ and bridge else None
    end_beat = score.total_bars * bar
    parts: list[ArrangedPart] = []
    decisions: dict[str, Any] = {"preset": preset_name, "bridge_break_beats": list(break_span) if break_span else None, "instruments": []}

    for spec in specs:
        playing = [i for i, s in enumerate(score.sections) if _plays_in(spec, s, i, last_chorus)]
        notes = _source_notes(score, spec, playing)
        if break_span and spec.source in ("drums", "bass"):
            notes = [n for n in notes if not break_span[0] - 1e-6 <= n.start_beat < break_span[1] - 1e-6]
        if spec.source in ("chords", "bass") and score.chords and playing and playing[-1] == len(score.sections) - 1:
            notes = _resolve_ending(notes, score, spec, end_beat)
        moved = 0
        if spec.source != "drums":
            notes, moved = _fit_register(notes, *spec.note_range)
            if moved:
                log.info("%s: %d notes moved by octaves into its register %s", spec.name, moved, list(spec.note_range))
        decision = {
            "name": spec.name,
            "instrument": spec.instrument or "drum kit",
            "program": spec.program,
            "source": spec.source,
            "pattern": spec.pattern,
            "register": list(spec.note_range),
            "sections": [score.sections[i].name for i in playing],
            "notes": len(notes),
            "moved_into_register": moved,
        }
        decisions["instruments"].append(decision)
        if not notes:  # a part with no notes gets no stem (never a silent file)
            decision["stem"] = None
            log.info("%s plays no notes in this song: no stem", spec.name)
            continue
        decision["stem"] = f"stem-{spec.name}.wav"
        parts.append(
            ArrangedPart(
                name=spec.name,
                program=spec.program,
                instrument=spec.instrument or "drum kit",
                is_drum=spec.source == "drums",
                notes=sorted(notes, key=lambda n: (n.start_beat, n.pitch)),
            )
        )
    return Arrangement(preset=preset_name, parts=parts, decisions=decisions)


def _source_notes(score: Score, spec: InstrumentSpec, playing: list[int]) -> list[Note]:
    bar = score.beats_per_bar
    spans = [(score.sections[i].start_bar * bar, (score.sections[i].start_bar + score.sections[i].bars) * bar) for i in playing]

    def inside(beat: float) -> bool:
        return any(a - 1e-6 <= beat < b - 1e-6 for a, b in spans)

    if spec.source in ("drums", "bass", "melody") or spec.pattern == "comp":
        part_name = "chords" if spec.pattern == "comp" else spec.source  # comp: the score's own comping part
        try:
            source = score.part(part_name).notes
        except KeyError:
            return []
        notes = [n for n in source if inside(n.start_beat)]
        if spec.pattern == "double":
            notes = [n.model_copy(update={"pitch": n.pitch + 12, "velocity": max(n.velocity - 20, 1)}) for n in notes]
        return [n.model_copy(update={"syllable": None, "melisma": False}) for n in notes]
    notes = []
    for chord in score.chords:
        if inside(chord.start_beat):
            notes += _chord_notes(score, spec.pattern, _section_at(score, chord.start_beat), chord)
    return notes


def _resolve_ending(notes: list[Note], score: Score, spec: InstrumentSpec, end_beat: float) -> list[Note]:
    """The last chord rings on: one held voicing (the root for the bass) from the last bar line."""
    last = score.chords[-1]
    cut = last.start_beat
    kept = [n.model_copy(update={"duration_beats": min(n.duration_beats, cut - n.start_beat)}) for n in notes if n.start_beat < cut - 1e-6]
    pitches = (
        [min(p for p in range(28, 56) if p % 12 == (last.root_pc if last.root_pc is not None else last.pitches[0] % 12))]
        if spec.source == "bass"
        else sorted(last.pitches)
    )
    velocity = int(60 + 30 * _section_at(score, cut).energy)
    ring = end_beat - cut + score.beats_per_bar  # through the final bar and one more
    return kept + [Note(pitch=p, start_beat=cut, duration_beats=ring, velocity=velocity) for p in pitches]
