"""Edit operations: typed changes to one rendered track, each naming its target and the change.

    ops = [Tempo(to_bpm=92), PartLevel(part="bass", by_db=3), NewMelody(section="verse 2", seed=5)]
    edited = apply_operations(spec, index=0, operations=ops, song=SongFacts(...))

An operation maps onto the release spec: a track field (tempo, key, mood, voice…), the track's
`mix` / `master` overrides, its `structure`, or a per-section seed (`sections`). Applying checks
every target against the song as rendered (`SongFacts`: its sections, parts and voice) and the
result against the spec's own rules, so an edit fails with the same one-line errors as a config:
`operation 2 (tempo): tempo: 400 is outside 40–240 BPM`.

Relative amounts (`by_db`, `by_percent`) are resolved here against the track's current values;
the command parser (songmill/editor/commands.py) turns "a bit" / "much" into the steps of STEPS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from songmill.core.config import nearest_name
from songmill.core.errors import SongmillError
from songmill.core.lyric_blocks import assign_blocks, parse_blocks
from songmill.core.music import parse_key
from songmill.core.sections import section_labels, sections_named
from songmill.core.spec import ReleaseSpec, TrackSpec
from songmill.core.vocab import GENRES, MOODS, VOICE_EXPRESSION_LIMITS, VOICE_STYLES

# What "a bit", (nothing) and "much" mean for each kind of change: (small, medium, large).
STEPS = {
    "level_db": (1.5, 3.0, 6.0),  # a part, the voice, a section
    "send_db": (3.0, 6.0, 10.0),  # reverb and delay sends
    "tempo_percent": (3.0, 6.0, 12.0),
    "tilt_db": (1.0, 2.0, 4.0),  # the master's tone, 16 kHz against 1 kHz
    "bars": (2, 4, 8),  # a section made longer or shorter
    "expression": (0.15, 0.3, 0.6),  # a share of the parameter's whole range
}


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def describe(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.model_dump(exclude={"op"}, exclude_none=True).items())
        return f"{self.op}({fields})"  # type: ignore[attr-defined]


class Tempo(_Op):
    op: Literal["tempo"] = "tempo"
    to_bpm: float | None = None
    by_bpm: float | None = None
    by_percent: float | None = None


class Key(_Op):
    op: Literal["key"] = "key"
    to: str


class Transpose(_Op):
    op: Literal["transpose"] = "transpose"
    semitones: Annotated[int, Field(ge=-12, le=12)]


class KeyChange(_Op):
    """Lift the last chorus (and what follows) by this much; 0 takes the key change away."""

    op: Literal["key_change"] = "key_change"
    semitones: Annotated[int, Field(ge=0, le=4)]


class Mood(_Op):
    op: Literal["mood"] = "mood"
    to: str


class VoiceIdentity(_Op):
    op: Literal["voice"] = "voice"
    identity: str


class VocalStyle(_Op):
    op: Literal["vocal_style"] = "vocal_style"
    style: str


class Expression(_Op):
    op: Literal["expression"] = "expression"
    parameter: str
    to: float | None = None
    by: float | None = None


class Instrumentation(_Op):
    op: Literal["instrumentation"] = "instrumentation"
    preset: str


class PartLevel(_Op):
    op: Literal["part_level"] = "part_level"
    part: str
    by_db: float


class PartMute(_Op):
    op: Literal["part_mute"] = "part_mute"
    part: str
    muted: bool = True


class PartPan(_Op):
    op: Literal["part_pan"] = "part_pan"
    part: str
    pan: Annotated[float, Field(ge=-1, le=1)]


class PartInstrument(_Op):
    """Play a part's notes on another General MIDI instrument ("swap the piano for strings")."""

    op: Literal["part_instrument"] = "part_instrument"
    part: str
    instrument: str


class AddInstrument(_Op):
    """Add an instrument playing the song's chords (held, broken, comped, strummed, or a counter-line)."""

    op: Literal["add_instrument"] = "add_instrument"
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]  # its stem's name
    instrument: str
    pattern: Literal["sustain", "arpeggio", "comp", "strum", "counter"] = "sustain"


class VocalLevel(_Op):
    op: Literal["vocal_level"] = "vocal_level"
    by_db: float


class Send(_Op):
    """A reverb or delay amount, on every send or on the voices' only."""

    op: Literal["send"] = "send"
    effect: Literal["reverb", "delay"]
    on: Literal["all", "vocal"] = "all"
    by_db: float


class PartSend(_Op):
    """One part's own reverb or delay send ("more reverb on the guitar"), for a part the genre's
    mix sends to that effect."""

    op: Literal["part_send"] = "part_send"
    part: str
    effect: Literal["reverb", "delay"]
    by_db: float


class SectionLevel(_Op):
    op: Literal["section_level"] = "section_level"
    section: str
    by_db: float


class SectionRepeat(_Op):
    op: Literal["section_repeat"] = "section_repeat"
    section: str


class SectionDrop(_Op):
    op: Literal["section_drop"] = "section_drop"
    section: str


class SectionLength(_Op):
    op: Literal["section_length"] = "section_length"
    section: str
    to_bars: int | None = None
    by_bars: int | None = None


class NewMelody(_Op):
    """Write one section's melody again; `seed` is filled in when the edit is recorded."""

    op: Literal["new_melody"] = "new_melody"
    section: str
    seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None


class NewChords(_Op):
    """Play one section on other chords of the genre that fit its melody (the tune stays; the
    bass and the comping follow); `seed` is filled in when the edit is recorded."""

    op: Literal["new_chords"] = "new_chords"
    section: str
    seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None


class NewRhythm(_Op):
    """Play one section's drums on another figure of the groove (the kick and the cymbal move,
    the backbeat stays); `seed` is filled in when the edit is recorded."""

    op: Literal["new_rhythm"] = "new_rhythm"
    section: str
    seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None


# a section written, played or drummed again from a seed of its own: op → its SectionEdit field
SECTION_SEEDED: dict[type, str] = {NewMelody: "melody_seed", NewChords: "chords_seed", NewRhythm: "rhythm_seed"}
SectionSeeded = NewMelody | NewChords | NewRhythm


class ReplaceLine(_Op):
    """Sing given words on one line of one section ("verse 1", line 2): that section's melody is
    sung again from where it was, so the rest of the song stays as it was."""

    op: Literal["lyric_line"] = "lyric_line"
    section: str
    line: Annotated[int, Field(ge=1, le=64)]
    words: Annotated[str, Field(min_length=1, max_length=200)]


class RewriteLine(_Op):
    """Have the lyrics writer write one line of one section again (same syllables, same rhyme);
    `seed` is filled in when the edit is recorded. Only that section changes, as for ReplaceLine."""

    op: Literal["lyric_rewrite"] = "lyric_rewrite"
    section: str
    line: Annotated[int, Field(ge=1, le=64)]
    seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None


class ScoreOverride(_Op):
    """A MIDI file edited in a DAW (melody with its lyric events, bass) in place of the
    composed parts; `midi` is songmill's own copy, named by its sha256."""

    op: Literal["score_override"] = "score_override"
    midi: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class MasterTone(_Op):
    """The master's tone: + brighter, - warmer (dB at 16 kHz against 1 kHz)."""

    op: Literal["master_tone"] = "master_tone"
    by_db: float


class MasterReference(_Op):
    """Match the master's tone to a reference recording (its octave balance, 80 % of the way);
    `path` is songmill's own copy, named by its sha256. Loudness stays the delivery profile's."""

    op: Literal["master_reference"] = "master_reference"
    path: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


Operation = Annotated[
    Tempo
    | Key
    | Transpose
    | KeyChange
    | Mood
    | VoiceIdentity
    | VocalStyle
    | Expression
    | Instrumentation
    | PartLevel
    | PartMute
    | PartPan
    | PartInstrument
    | AddInstrument
    | VocalLevel
    | Send
    | PartSend
    | SectionLevel
    | SectionRepeat
    | SectionDrop
    | SectionLength
    | NewMelody
    | NewChords
    | NewRhythm
    | ReplaceLine
    | RewriteLine
    | ScoreOverride
    | MasterTone
    | MasterReference,
    Field(discriminator="op"),
]
OPERATIONS = TypeAdapter(list[Operation])
OPERATION_NAMES = tuple(sorted(m.model_fields["op"].default for m in _Op.__subclasses__()))


def operations_from_json(data: Any, *, where: str = "operations") -> list:
    """Operations from JSON-like data (a DAG's Params, a version's history); one sentence per
    problem, naming the operation by its place and what it may hold."""
    try:
        return OPERATIONS.validate_python(data)
    except ValidationError as err:
        raise SongmillError("; ".join(_operation_problem(e, where) for e in err.errors(include_url=False))) from None


OPERATION_MODELS = {m.model_fields["op"].default: m for m in _Op.__subclasses__()}


def _operation_problem(error: Any, where: str) -> str:
    """One validation error as the user reads it: `operations[0] (tempo): unknown field 'to_bmp'
    (did you mean 'to_bpm'?; its fields: …)`."""
    loc, kind = tuple(error["loc"]), error["type"]
    if not loc:
        return f"{where}: a list of operations is expected, each an object with its 'op' (operations: {', '.join(OPERATION_NAMES)})"
    place = f"{where}[{loc[0]}]"
    if kind == "union_tag_invalid":
        given = str((error.get("ctx") or {}).get("tag", ""))
        nearest = nearest_name(given, list(OPERATION_NAMES))
        return f"{place}: {given!r} is not an operation{f' (did you mean {nearest!r}?)' if nearest else ''} (operations: {', '.join(OPERATION_NAMES)})"
    if kind == "union_tag_not_found":
        return f"{place}: names no 'op' (operations: {', '.join(OPERATION_NAMES)})"
    if len(loc) < 3:
        return f"{place}: {error['msg']}"
    op, field = str(loc[1]), ".".join(str(p) for p in loc[2:])
    fields = [name for name in OPERATION_MODELS[op].model_fields if name != "op"] if op in OPERATION_MODELS else []
    its = f"its fields: {', '.join(fields)}" if fields else "it has no fields but 'op'"
    if kind == "extra_forbidden":
        nearest = nearest_name(field, fields)
        return f"{place} ({op}): unknown field {field!r} ({f'did you mean {nearest!r}?; ' if nearest else ''}{its})"
    if kind == "missing":
        return f"{place} ({op}): {field} is required ({its})"
    return f"{place} ({op}): {field}: {error['msg'].removeprefix('Value error, ')}"


def operations_to_json(operations: list) -> list[dict]:
    return [op.model_dump(mode="json", exclude_none=True) for op in operations]


class SongFacts(BaseModel):
    """The song as rendered, which operations are checked against."""

    model_config = ConfigDict(frozen=True)

    sections: list[tuple[str, int]]  # (name, bars) in order
    parts: list[str]  # the mix's stems: drums, bass, the arrangement's parts, vocal-lead, …
    identities: list[str] = []  # the registry's voice identities
    tempo_bpm: float = 120.0
    key: str = "C major"
    expression: dict[str, float] = {}  # the voice's expression as sung (vocals.json)
    lyric_lines: dict[str, list[str]] = {}  # section label → its lines as sung (lyrics.json); {}: not known
    sends: dict[str, list[str]] = {}  # part → the effects (reverb, delay) the mix sends it to (mix.json); {}: not known

    @property
    def labels(self) -> list[str]:
        return section_labels([name for name, _ in self.sections])


# ---------------------------------------------------------------- applying


def apply_operations(spec: ReleaseSpec, index: int, operations: list, song: SongFacts) -> ReleaseSpec:
    """The release with `operations` applied in order to track `index` (0-based).

    Raises SongmillError naming the operation (1-based), its target and what is allowed. (A
    version's operations are its history, so one thing set twice is allowed here: the later
    wins. `contradictions` checks the operations of one edit.)"""
    track = spec.tracks[index].model_dump(mode="json")
    structure = [list(s) for s in song.sections]  # the song as rendered; only written back when changed
    structure_changed = False
    for number, operation in enumerate(operations, start=1):
        where = f"operation {number} ({operation.op})"
        try:
            structure_changed |= _apply(operation, track, structure, song)
        except SongmillError as err:
            raise SongmillError(f"{where}: {err}") from None
        try:
            TrackSpec.model_validate(_with_form(track, structure, song) if structure_changed else track)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "track"
            raise SongmillError(f"{where}: {field}: {first['msg'].removeprefix('Value error, ')}") from None
    tracks = list(spec.tracks)
    tracks[index] = TrackSpec.model_validate(_with_form(track, structure, song) if structure_changed else track)
    return spec.model_copy(update={"tracks": tracks})


def _structure_field(structure: list[list]) -> list[dict]:
    return [{"name": row[0], "bars": row[1]} for row in structure]


def _with_form(track: dict, structure: list[list], song: SongFacts) -> dict:
    """The track with its changed form: its own lyrics (if it has them) fitted to that form, and
    what earlier edits set per section (a melody's seed, a line's words, a section's level) kept
    with its section under the section's new label ("verse 3" is "verse 2" once verse 2 is
    dropped); a dropped section's go with it."""
    lyrics = {"lyrics": _lyrics_for_form(track["lyrics"], structure, song)} if track.get("lyrics") else {}
    tagged = [(row[2], label) for row, label in zip(structure, section_labels([row[0] for row in structure])) if len(row) > 2]
    relabelled = {tag: label for tag, label in tagged if not tag.endswith(" (repeat)")}

    def new_label(key: str) -> str | None:  # None: its section was dropped; a bare name ("chorus": every chorus) stays
        return relabelled.get(key) if key in song.labels else key

    sections = {new_label(key): edit for key, edit in track["sections"].items() if new_label(key) is not None}
    levels: dict[str, float] = {}  # "chorus 2" and "chorus" (every chorus) both name the one chorus left: their dB add up
    for key, db in track["mix"]["sections_db"].items():
        label = new_label(key)
        if label is not None:
            levels[label] = round(min(9.0, max(-9.0, levels.get(label, 0.0) + db)), 2)
    for tag, label in tagged:  # a repeat is its section again: its words, melody and level too
        original = tag.removesuffix(" (repeat)")
        if tag != original and original in track["sections"]:
            sections[label] = track["sections"][original]
        if tag != original and original in track["mix"]["sections_db"]:
            levels[label] = track["mix"]["sections_db"][original]
    return track | {"structure": _structure_field(structure), "sections": sections, "mix": track["mix"] | {"sections_db": levels}} | lyrics


def _lyrics_for_form(text: str, structure: list[list], song: SongFacts) -> str:
    """A track's own lyrics for its changed form: each vocal section of the new form with the
    block it sang before, written out in order, so the matching rule (songmill.core.lyric_blocks)
    gives every section its old words. A dropped section's block goes with it ("drop the bridge"
    on lyrics with a [bridge] block); a repeated section sings its block again. Lyrics that did
    not fit the song as rendered are left as written."""
    names = [name for name, _ in song.sections]
    try:
        sung = assign_blocks(names, parse_blocks(text))
    except SongmillError:
        return text
    block_of = {song.labels[index]: block for index, block in sung.items()}
    written = []
    for row in structure:  # every row is tagged with the label it had (`_structure`); a repeat's adds " (repeat)"
        block = block_of.get(row[2].removesuffix(" (repeat)")) if len(row) > 2 else None
        if block is not None:
            written.append("\n".join([f"[{block.name}]", *block.lines]))
    return "\n\n".join(written) + "\n"


def contradictions(operations: list) -> None:
    """Two operations that set one thing to two values (a tempo twice, a part muted and made
    louder) are refused: the result would depend on their order, which a user did not mean."""
    seen: dict[tuple, int] = {}
    for number, op in enumerate(operations, start=1):
        for target in _targets(op):
            if target in seen:
                raise SongmillError(f"operations {seen[target]} and {number} both change {' '.join(str(t) for t in target if t)}; give one of them")
            seen[target] = number
    # a repeat or a drop renumbers the sections of its name ("chorus 3" becomes "chorus 2"): an
    # operation naming a section of that name in the same edit could land on another one
    renumbered = {_section_name(op.section): n for n, op in enumerate(operations, start=1) if isinstance(op, SectionRepeat | SectionDrop)}
    for number, op in enumerate(operations, start=1):
        if isinstance(op, SectionLevel | ReplaceLine | RewriteLine | SectionSeeded) and _section_name(op.section) in renumbered:
            first, second = sorted((renumbered[_section_name(op.section)], number))
            raise SongmillError(
                f"operations {first} and {second} both name a {_section_name(op.section)}, and the repeat or drop renumbers them; "
                "change the form in an edit of its own, then the sections of the new form"
            )
    muted = {op.part: n for n, op in enumerate(operations, start=1) if isinstance(op, PartMute) and op.muted}
    for number, op in enumerate(operations, start=1):
        if isinstance(op, PartLevel | PartPan | PartSend) and op.part in muted:
            first, second = sorted((muted[op.part], number))
            raise SongmillError(f"operations {first} and {second} both change {op.part}: one mutes it, the other changes how it sounds; give one of them")


def _section_name(label: str) -> str:
    return label.strip().lower().rstrip("0123456789").strip()


def _targets(op) -> list[tuple]:
    """What an operation sets, for `contradictions` (relative changes of one thing add up, so
    only a part that is muted and changed at once counts)."""
    match op:
        case Tempo() | Key() | Transpose() | Mood() | VoiceIdentity() | VocalStyle() | Instrumentation() | KeyChange() | ScoreOverride() | MasterReference():
            return [(op.op if op.op not in ("key", "transpose") else "key",)]
        case PartMute():
            return [("whether it plays:", op.part)]
        case PartInstrument():
            return [("the instrument of", op.part)]
        case ReplaceLine() | RewriteLine():
            return [("the words of", op.section.strip().lower(), op.line)]
        case AddInstrument():
            return [("the added part", op.name)]
        case PartPan():
            return [("the pan of", op.part)]
        case _:
            return []


# what a DAW's MIDI no longer fits (mood and instrumentation reach the form and the lyrics)
COMPOSING = (
    Tempo,
    Key,
    Transpose,
    KeyChange,
    *SECTION_SEEDED,
    ReplaceLine,
    RewriteLine,
    SectionRepeat,
    SectionDrop,
    SectionLength,
    Mood,
    Instrumentation,
)


def _apply(op, track: dict, structure: list[list], song: SongFacts) -> bool:
    """Apply one operation to the track's data in place; True when it changed the structure."""
    if isinstance(op, COMPOSING) and track.get("score_override"):
        raise SongmillError("the track's melody comes from a DAW edit (songmill daw import), which this change would not fit; undo the import first")
    match op:
        case Tempo():
            track["tempo"] = round(_tempo(op, float(track["tempo"])), 2)
        case Key():
            track["key"] = str(parse_key(op.to))
        case Transpose():
            track["key"] = _transposed(track["key"], op.semitones)
        case KeyChange():
            track["key_change"] = op.semitones
        case Mood():
            _allowed(op.to, MOODS, "mood")
            track["mood"] = op.to
        case VoiceIdentity():
            _needs_voice(track)
            _allowed(op.identity, tuple(song.identities), "voice identity")
            track["voice"]["identity"] = op.identity
        case VocalStyle():
            _needs_voice(track)
            _allowed(op.style, VOICE_STYLES, "vocal style")
            track["voice"]["style"] = op.style
        case Expression():
            _needs_voice(track)
            _expression(op, track, song)
        case Instrumentation():
            _allowed(op.preset, GENRES, "instrumentation preset")
            edited = sorted({name for name in track["mix"]["parts"] if not name.startswith("vocal-")} | set(track["instruments"]["swap"]))
            edited += [added["name"] for added in track["instruments"]["add"]]
            if edited:
                raise SongmillError(
                    f"the track has edits of its parts ({', '.join(edited)}), which another preset may not have; undo them before changing the instrumentation"
                )
            track["instrumentation"] = op.preset
        case PartLevel() | PartMute() | PartPan():
            _part(op, track, song)
        case PartInstrument():
            if op.part not in song.parts or op.part == "drums" or op.part.startswith("vocal-"):
                playable = [p for p in song.parts if p != "drums" and not p.startswith("vocal-")]
                raise SongmillError(f"the song has no instrument part '{op.part}' to play on another instrument (it has: {', '.join(playable)})")
            track["instruments"]["swap"][op.part] = _gm(op.instrument)
        case AddInstrument():
            if op.name in song.parts or any(a["name"] == op.name for a in track["instruments"]["add"]):
                raise SongmillError(f"the song already has a part called {op.name}; swap its instrument instead, or give the new one another name")
            track["instruments"]["add"].append({"name": op.name, "instrument": _gm(op.instrument), "pattern": op.pattern})
        case VocalLevel():
            _needs_voice(track)
            track["mix"]["vocal_db"] = round(track["mix"]["vocal_db"] + op.by_db, 2)
        case Send():
            field = {
                ("reverb", "all"): "reverb_db",
                ("reverb", "vocal"): "vocal_reverb_db",
                ("delay", "all"): "delay_db",
                ("delay", "vocal"): "vocal_delay_db",
            }[(op.effect, op.on)]
            track["mix"][field] = round(track["mix"][field] + op.by_db, 2)
        case PartSend():
            _allowed(op.part, tuple(song.parts), "part of this song")
            if track["mix"]["parts"].get(op.part, {}).get("muted"):
                raise SongmillError(f"the {op.part} is muted in this version; unmute it first (or earlier in the same edit)")
            sent = [part for part, effects in song.sends.items() if op.effect in effects]
            if op.part in song.sends and op.part not in sent:  # a part muted when this version was mixed is in no send list
                raise SongmillError(
                    f"the {op.part} is not sent to the {op.effect} in this song's mix (parts sent to it: {', '.join(sent) or 'none'}); "
                    f"change the whole song's {op.effect} instead ('more {op.effect}')"
                )
            part = _part_mix(track, op.part)
            part[f"{op.effect}_db"] = round(part.get(f"{op.effect}_db", 0.0) + op.by_db, 2)
        case SectionLevel():
            label = _one_label(op.section, song, allow_all=True)
            levels = track["mix"]["sections_db"]
            levels[label] = round(levels.get(label, 0.0) + op.by_db, 2)
        case SectionRepeat() | SectionDrop() | SectionLength():
            _structure(op, structure, song)
            return True
        case NewMelody() | NewChords() | NewRhythm():
            label = _one_label(op.section, song)
            if isinstance(op, NewChords) and dict(zip(song.labels, (bars for _, bars in song.sections)))[label] < 2:
                raise SongmillError(f"{label} is one bar long, its cadence, so there are no other chords to play in it; lengthen it first")
            if op.seed is None:
                raise SongmillError("has no seed (the editor gives one when it records the edit)")
            track["sections"].setdefault(label, {})[SECTION_SEEDED[type(op)]] = op.seed
        case ReplaceLine() | RewriteLine():
            label = _lyric_line(op, song)
            edit = track["sections"].setdefault(label, {})
            lines, rewrites = edit.setdefault("lines", {}), edit.setdefault("rewrite", {})
            lines.pop(str(op.line), None), lines.pop(op.line, None), rewrites.pop(str(op.line), None), rewrites.pop(op.line, None)  # the later edit wins
            if isinstance(op, ReplaceLine):
                if not op.words.strip():
                    raise SongmillError("the new words are empty; give the words to sing")
                lines[str(op.line)] = op.words.strip()
            else:
                if op.seed is None:
                    raise SongmillError("has no seed (the editor gives one when it records the edit)")
                rewrites[str(op.line)] = op.seed
        case MasterTone():
            track["master"]["tilt_db"] = round(track["master"]["tilt_db"] + op.by_db, 2)
        case MasterReference():
            if not Path(op.path).is_file():
                raise SongmillError(f"the reference recording {op.path} is missing; give it again")
            track["reference"] = op.path
        case ScoreOverride():
            if not Path(op.midi).is_file():
                raise SongmillError(f"the imported MIDI {op.midi} is missing; import it again")
            track["score_override"] = op.midi
    return False


def _gm(instrument: str) -> str:
    from songmill.core.gm import GM_PROGRAMS, gm_program

    try:
        gm_program(instrument)
    except ValueError:
        raise SongmillError(
            f"'{instrument}' is not a General MIDI instrument (e.g. string ensemble 1, cello, drawbar organ; see songmill/core/gm.py)"
        ) from None
    return instrument.strip().lower() if instrument.strip().lower() in GM_PROGRAMS else instrument


def _tempo(op: Tempo, current: float) -> float:
    given = [v for v in (op.to_bpm, op.by_bpm, op.by_percent) if v is not None]
    if len(given) != 1:
        raise SongmillError("give exactly one of to_bpm, by_bpm or by_percent")
    if op.to_bpm is not None:
        return op.to_bpm
    if op.by_bpm is not None:
        return current + op.by_bpm
    return current * (1 + (op.by_percent or 0.0) / 100)


def _expression(op: Expression, track: dict, song: SongFacts) -> None:
    """Set an expression parameter, or move it by a share of its range from where the song's
    voice has it (the style's value, or the config's)."""
    if op.parameter not in VOICE_EXPRESSION_LIMITS:
        raise SongmillError(f"{op.parameter!r} is not an expression parameter (allowed: {', '.join(VOICE_EXPRESSION_LIMITS)})")
    low, high, unit = VOICE_EXPRESSION_LIMITS[op.parameter]
    if (op.to is None) == (op.by is None):
        raise SongmillError("give one of to or by")
    expression = track["voice"].get("expression") or {}
    current = expression.get(op.parameter)
    if current is None:
        current = song.expression.get(op.parameter, (low + high) / 2)
    value = op.to if op.to is not None else current + (op.by or 0.0) * (high - low)
    if op.to is not None and not low <= value <= high:
        raise SongmillError(f"{op.parameter} {value:g} is outside {low:g}–{high:g} {unit}")
    expression[op.parameter] = round(min(max(value, low), high), 4)  # "more" at the top stays at the top
    track["voice"]["expression"] = expression


TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _transposed(key_text: str, semitones: int) -> str:
    key = parse_key(key_text)
    return f"{TONICS[(key.tonic_pitch_class + semitones) % 12]} {key.mode}"


def _allowed(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise SongmillError(f"{value!r} is not a {what} (allowed: {', '.join(allowed)})")


def _needs_voice(track: dict) -> None:
    if track.get("voice") is None:
        raise SongmillError("the track is an instrumental (it has no voice to change)")


def _part_mix(track: dict, part: str) -> dict:
    """The track's mix changes for one part (`PartMix`), made when it has none yet."""
    return track["mix"]["parts"].setdefault(part, {"gain_db": 0.0, "pan": None, "muted": False})


def _part(op, track: dict, song: SongFacts) -> None:
    _allowed(op.part, tuple(song.parts), "part of this song")
    current = _part_mix(track, op.part)
    if isinstance(op, PartLevel):
        current["gain_db"] = round(current["gain_db"] + op.by_db, 2)
    elif isinstance(op, PartMute):
        current["muted"] = op.muted
    else:
        current["pan"] = op.pan


def _lyric_line(op, song: SongFacts) -> str:
    """The label of the section whose line an operation names, checked against the lyrics as sung."""
    label = _one_label(op.section, song)
    sung = song.lyric_lines.get(label)
    if song.lyric_lines and sung is None:
        raise SongmillError(f"{label} has no lyrics (it is instrumental); sections with lyrics: {', '.join(song.lyric_lines)}")
    if sung is not None and op.line > len(sung):
        raise SongmillError(f"{label} has {len(sung)} lines; there is no line {op.line}")
    return label


def _one_label(given: str, song: SongFacts, *, allow_all: bool = False) -> str:
    """The label of the section `given` names ("verse 2"); a bare name with more than one section
    of that name is all of them where `allow_all`, else ambiguous."""
    names = [name for name, _ in song.sections]
    indices = sections_named(given, names)
    if len(indices) > 1 and not allow_all:
        raise SongmillError(f"the song has {len(indices)} sections called {given!r} ({', '.join(song.labels[i] for i in indices)}); say which")
    return song.labels[indices[0]] if len(indices) == 1 else given.strip().lower()


def _structure(op, structure: list[list], song: SongFacts) -> None:
    """Change the form: the section list as rendered, by label (labels are the song's, before
    this edit's changes, so "drop verse 2, repeat chorus 1" reads as the user sees the song)."""
    names = [name for name, _ in song.sections]
    index = sections_named(op.section, names)
    if len(index) > 1:
        raise SongmillError(f"the song has {len(index)} sections called {op.section!r} ({', '.join(song.labels[i] for i in index)}); say which")
    label = song.labels[index[0]]
    row = next((r for r in structure if len(r) > 2 and r[2] == label), None)
    if row is None:  # first change: tag each row with the label it had in the rendered song
        for r, lab in zip(structure, song.labels):
            if len(r) == 2:
                r.append(lab)
        row = next((r for r in structure if len(r) > 2 and r[2] == label), None)
    if row is None:
        raise SongmillError(f"section {label!r} was dropped by an earlier operation")
    position = structure.index(row)
    if isinstance(op, SectionDrop):
        if len(structure) == 1:
            raise SongmillError("would leave the song with no sections")
        structure.pop(position)
    elif isinstance(op, SectionRepeat):
        structure.insert(position + 1, [row[0], row[1], f"{label} (repeat)"])
    else:
        bars = op.to_bars if op.to_bars is not None else row[1] + (op.by_bars or 0)
        if not 1 <= bars <= 64:
            raise SongmillError(f"{label} would be {bars} bars long (a section is 1–64 bars)")
        row[1] = bars


# operations that change only the master: a remaster, which may keep the recording's ISRC
REMASTERING = (MasterTone, MasterReference)


def recording_identity(operations: list) -> dict:
    """Whether a version is a new recording for the ISRC (IFPI's rule: a material change — another
    mix or edit, other playing time, new artistic input — gets a new ISRC; a remaster may keep it,
    at the registrant's choice, ISRC Handbook Annex A). Against the config's recording: a version
    whose operations only change the master's tone is a remaster and keeps the ISRC."""
    changes = sorted({op.op for op in operations if not isinstance(op, REMASTERING)})
    if not operations:
        return {"new_isrc": False, "why": "the recording as its config renders it"}
    if not changes:
        return {
            "new_isrc": False,
            "why": "a remaster (only the master's tone changed, or its reference): the ISRC Handbook (Annex A) lets the registrant keep the ISRC; songmill keeps it",
        }
    return {"new_isrc": True, "why": f"a materially changed recording ({', '.join(changes)}): a new mix, edit or version gets its own ISRC"}
