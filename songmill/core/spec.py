"""The release spec: what a label writes in `config/releases/*.yaml`.

`load_release(path)` returns a validated `ReleaseSpec` or raises `ConfigError` with one line
per problem: `file:line: field.path: what is wrong (what is allowed)`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator, model_validator

from songmill.core import ids
from songmill.core.config import Locator, load_yaml, nearest_name, shown, validate_config
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.lyric_blocks import assign_blocks, parse_blocks
from songmill.core.music import parse_key, parse_time_signature
from songmill.core.seeds import derive_seed
from songmill.core.vocab import AI_CONTRIBUTIONS, GENRES, MOODS, RELEASE_TYPES, SECTION_NAMES, VOICE_EXPRESSION_LIMITS, VOICE_STYLES


def _ranged(low: float, high: float, unit: str) -> WrapValidator:
    def check(given: Any, as_number: ValidatorFunctionWrapHandler) -> float:
        if isinstance(given, bool):  # YAML's true/false, which pydantic would take as 1 and 0
            raise ValueError(f"{str(given).lower()} is not a number ({unit}, {low:g}–{high:g})")
        value = as_number(given)
        if not low <= value <= high:
            raise ValueError(f"{value:g} is outside {low:g}–{high:g} {unit}")
        return value

    return WrapValidator(check)


def _one_of(allowed: tuple[str, ...], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{shown(value)} is not a known {what}{_did_you_mean(value, allowed)} (allowed: {', '.join(allowed)})")
        return value

    return AfterValidator(check)


def _did_you_mean(value: str, allowed: tuple[str, ...]) -> str:
    nearest = nearest_name(value, list(allowed))
    return f" (did you mean {nearest!r}?)" if nearest else ""


def _release_id(value: str) -> str:
    if ".." in value or "/" in value or "\\" in value:
        raise ValueError(f"{shown(value)} would escape the output folder (use lowercase letters, digits and '-')")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", value):
        raise ValueError(f"{shown(value)} is not a release id (1–64 lowercase letters, digits and '-', starting with a letter or digit)")
    return value


COVER_PX = 3000  # a delivered cover is square, at least this many pixels a side (stores ask for 3000)

SCHEDULE_PRESETS = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


def _schedule(value: str) -> str:
    """An Airflow schedule: a preset or a five-field cron expression (checked with croniter)."""
    from croniter import croniter

    value = value.strip()
    if value in SCHEDULE_PRESETS or (len(value.split()) == 5 and croniter.is_valid(value)):
        return value
    raise ValueError(f"{shown(value)} is not a schedule (a cron expression such as '0 2 * * 1', or one of {', '.join(SCHEDULE_PRESETS)})")


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty (write some text)")
    return value.strip()


def _key(value: str) -> str:
    return str(parse_key(value))


def _time_signature(value: str) -> str:
    return str(parse_time_signature(value))


def _auto_or(check: Callable[[str], str]) -> AfterValidator:
    def validate(value: str) -> str:
        return value if value == "auto" else check(value)

    return AfterValidator(validate)


# A section is at most 64 bars and a sung line takes at least one bar, so a block of more lines
# can never be sung; a line of more characters has more syllables than four bars of sixteenths
# carry at any tempo (the lyrics stage checks each line exactly against its phrase).
MAX_BLOCK_LINES, MAX_LYRIC_LINE_CHARS = 64, 300


def _lyrics(value: str) -> str:
    if re.fullmatch(r"\s*[\w./~-]+\.(txt|lrc|md|text)\s*", value):  # "lyrics: words/song.txt": a path, not words to sing
        raise ValueError(
            f"{shown(value.strip())} looks like a file's path; write the lyrics here under [section] tags, or read them from the file with lyrics_file"
        )
    block_lines, block_start = 0, 0
    for number, line in enumerate(value.splitlines(), start=1):
        if len(line.strip()) > MAX_LYRIC_LINE_CHARS:
            raise ValueError(f"lyrics line {number} is {len(line.strip())} characters long; a sung line has at most {MAX_LYRIC_LINE_CHARS} (split it)")
        if re.fullmatch(r"\s*\[([^\]]*)\]\s*", line):
            block_lines, block_start = 0, number
        elif line.strip():
            block_lines += 1
            if block_lines > MAX_BLOCK_LINES:
                raise ValueError(
                    f"lyrics line {number}: the block that starts at line {block_start or 1} has more than {MAX_BLOCK_LINES} lines, "
                    "more than any section can sing (64 bars, a line a bar); split it into sections"
                )
        tag = re.fullmatch(r"\s*\[([^\]]*)\]\s*", line)
        if tag:
            name = re.sub(r"\s*\d+$", "", tag.group(1).strip().lower())
            if name not in SECTION_NAMES:
                raise ValueError(
                    f"lyrics line {number}: '[{tag.group(1)}]' is not a section tag{_did_you_mean(name, SECTION_NAMES)} (allowed: {', '.join(SECTION_NAMES)})"
                )
    if not any(line.strip() and not line.strip().startswith("[") for line in value.splitlines()):
        raise ValueError("has no lyric lines (write lines under [verse]/[chorus] tags, or leave lyrics out)")
    return value


Text = Annotated[str, AfterValidator(_non_blank), Field(max_length=500)]
ReleaseId = Annotated[str, AfterValidator(_release_id)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AIDisclosure(Strict):
    """How the release declares its use of AI (maps to DDEX `ContainsAI` and contributors)."""

    contains_ai: bool = True
    generated: list[Annotated[str, _one_of(AI_CONTRIBUTIONS, "AI contribution")]] = list(AI_CONTRIBUTIONS)


def _expression_range(name: str) -> WrapValidator:
    low, high, unit = VOICE_EXPRESSION_LIMITS[name]
    return _ranged(low, high, unit)


class VoiceExpression(Strict):
    """Overrides of the style's expression parameters (models/voice/expression.py says what each does)."""

    vibrato_rate_hz: Annotated[float, _expression_range("vibrato_rate_hz")] | None = None
    vibrato_depth_cents: Annotated[float, _expression_range("vibrato_depth_cents")] | None = None
    vibrato_delay_s: Annotated[float, _expression_range("vibrato_delay_s")] | None = None
    vibrato_fade_s: Annotated[float, _expression_range("vibrato_fade_s")] | None = None
    portamento_s: Annotated[float, _expression_range("portamento_s")] | None = None
    overshoot_cents: Annotated[float, _expression_range("overshoot_cents")] | None = None
    dynamics_range_db: Annotated[float, _expression_range("dynamics_range_db")] | None = None
    breathiness: Annotated[float, _expression_range("breathiness")] | None = None
    tension: Annotated[float, _expression_range("tension")] | None = None
    timing_feel_s: Annotated[float, _expression_range("timing_feel_s")] | None = None


class Voice(Strict):
    identity: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]  # a voice identity in the model registry
    style: Annotated[str, _one_of(VOICE_STYLES, "voice style")] | None = None  # None: chosen by mood
    expression: VoiceExpression | None = None  # overrides of the style's parameters
    backing: bool = True  # chorus double and harmony stems
    model: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] | None = (
        None  # a singing model (backend onnx-singing) in the registry; None: the identity's voice
    )


class SectionSpec(Strict):
    name: Annotated[str, _one_of(SECTION_NAMES, "section")]
    bars: Annotated[int, _ranged(1, 64, "bars")] | None = None  # None: chosen by the song form


# ---------------------------------------------------------------- edits (the song editor's overrides)
#
# A rendered song is changed by operations (songmill/editor) that write these fields; a label may
# also write them by hand. Every field defaults to "no change", and a stage's cache key includes
# a field only when it is set, so a track without edits renders exactly as before.

SECTION_LABEL = re.compile(r"^(?P<name>[a-z-]+)(?: (?P<ordinal>[1-9][0-9]?))?$")  # "chorus" (every chorus) or "chorus 2"


def _section_label(value: str) -> str:
    match = SECTION_LABEL.match(value)
    if not match or match["name"] not in SECTION_NAMES:
        raise ValueError(
            f"{shown(value)} is not a section label (a section name and its number, such as 'verse 2' or 'chorus'; names: {', '.join(SECTION_NAMES)})"
        )
    return value


SectionLabel = Annotated[str, AfterValidator(_section_label)]
Decibels = Annotated[float, _ranged(-24, 12, "dB")]


class PartMix(Strict):
    """One part's place in the mix, on top of what the genre's preset decides."""

    gain_db: Decibels = 0.0
    pan: Annotated[float, _ranged(-1, 1, "(-1 left … 1 right)")] | None = None  # None: the preset's
    muted: bool = False
    reverb_db: Decibels = 0.0  # its own reverb send, on top of the preset's and the song's (a part the preset sends)
    delay_db: Decibels = 0.0


class MixEdit(Strict):
    """Changes to the automatic mix. Parts are named as the song's stems are: `drums`, `bass`,
    the arrangement's instrument parts, `vocal-lead`, `vocal-double`, `vocal-harmony`."""

    parts: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")], PartMix] = {}
    vocal_db: Annotated[float, _ranged(-6, 6, "LU")] = 0.0  # the lead over the instrumental, on top of the preset's
    reverb_db: Decibels = 0.0  # every reverb send
    vocal_reverb_db: Decibels = 0.0  # the voices' reverb sends, on top of reverb_db
    delay_db: Decibels = 0.0  # every delay send
    vocal_delay_db: Decibels = 0.0
    sections_db: dict[SectionLabel, Annotated[float, _ranged(-9, 9, "dB")]] = {}  # the instrumental's level in a section

    def is_empty(self) -> bool:
        return self == MixEdit()


class MasterEdit(Strict):
    """Changes to the mastering target's tone (every delivery profile; loudness stays the profile's)."""

    tilt_db: Annotated[float, _ranged(-6, 6, "dB")] = 0.0  # + brighter, - warmer: the 16 kHz band against 1 kHz, mirrored below

    def is_empty(self) -> bool:
        return self == MasterEdit()


def _gm_instrument(value: str) -> str:
    from songmill.core.gm import GM_PROGRAMS, gm_program

    try:
        gm_program(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a General MIDI instrument (e.g. {', '.join(GM_PROGRAMS[:3])}, …; see songmill/core/gm.py)") from None
    return value


PartName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
GMInstrument = Annotated[str, AfterValidator(_gm_instrument)]


class AddedPart(Strict):
    """An instrument added to the arrangement: it plays the song's chords in a pattern."""

    name: PartName  # its stem's name
    instrument: GMInstrument
    pattern: Literal["sustain", "arpeggio", "comp", "strum", "counter"] = "sustain"


class InstrumentEdit(Strict):
    """Changes to the arrangement's instruments: a part played on another instrument (same notes),
    and instruments added."""

    swap: dict[PartName, GMInstrument] = {}  # part → the General MIDI instrument it is played on
    add: list[AddedPart] = []

    def is_empty(self) -> bool:
        return self == InstrumentEdit()


class SectionEdit(Strict):
    """A section written again with its own seed, played on other chords or another drum figure,
    or lines of its lyrics replaced by given words: only its notes (and words) change."""

    melody_seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None
    chords_seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None  # other chords under the same melody
    rhythm_seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None  # another figure of the drums' groove
    lines: dict[Annotated[int, Field(ge=1, le=64)], Annotated[str, AfterValidator(_non_blank), Field(max_length=200)]] = {}  # line → its new words
    rewrite: dict[Annotated[int, Field(ge=1, le=64)], Annotated[int, Field(ge=0, lt=2**31)]] = {}  # line → the seed the lyrics writer writes it with


def _section_entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class TrackSpec(Strict):
    title: Text
    theme: Text
    mood: Annotated[str, _one_of(MOODS, "mood")]
    tempo: Annotated[float, _ranged(40, 240, "BPM")]
    key: Annotated[str, AfterValidator(_key)]
    time_signature: Annotated[str, AfterValidator(_time_signature)] = "4/4"
    structure: list[SectionSpec] | None = None  # "verse" or {name: verse, bars: 8}; None: the genre's default form
    target_duration_s: Annotated[float, _ranged(30, 900, "seconds")] = 180.0
    voice: Voice | None = None  # None: an instrumental track
    instrumentation: Annotated[str, _one_of(GENRES, "instrumentation preset")] | None = None  # None: the release genre
    lyrics: Annotated[str, AfterValidator(_lyrics)] | None = None  # None: written by the lyrics stage
    # the lyrics in a UTF-8 text file beside the config (relative to it), read into `lyrics` when the
    # config loads; kept as written, to say where the words came from
    lyrics_file: Annotated[str, AfterValidator(_non_blank)] | None = None
    lyrics_model: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] | None = None  # a transformers LM in the model registry; None: the rule writer
    instruments_model: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] | None = None  # a diffusers model in the registry; None: the soundfont
    key_change: Annotated[int, _ranged(0, 4, "semitones")] = 0  # lift the last chorus (and what follows) by this much
    reference: Annotated[str, AfterValidator(_non_blank)] | None = (
        None  # a recording whose tone (and loudness, where the profile says) the master matches; relative to this file
    )
    seed: Annotated[int, Field(ge=0, lt=2**31)] | None = None
    isrc: Annotated[str, _auto_or(ids.validate_isrc)] = "auto"
    mix: MixEdit = MixEdit()  # the editor's mix changes; default: the preset's mix
    master: MasterEdit = MasterEdit()
    instruments: InstrumentEdit = InstrumentEdit()  # the editor's instrument swaps and additions
    sections: dict[SectionLabel, SectionEdit] = {}  # "verse 2": {melody_seed: 5}
    score_override: Annotated[str, AfterValidator(_non_blank)] | None = None  # a MIDI file edited in a DAW (melody, bass, chords); relative to this file

    @property
    def lyrics_written(self) -> bool:
        """Whether the lyrics stage writes this track's words (a sung track with none of its own):
        the only case its `lyrics_model` is loaded."""
        return self.lyrics is None and self.voice is not None

    @model_validator(mode="after")
    def _lyrics_need_a_singer(self) -> "TrackSpec":
        """Lyrics on an instrumental would be dropped without a word: refused (a diffusion model that
        sings the whole mix, `instruments_model`, may take them)."""
        if self.lyrics and self.voice is None and self.instruments_model is None:
            raise ValueError("lyrics are given but the track has no voice (an instrumental sings nothing); add a voice or remove the lyrics")
        return self

    @model_validator(mode="after")
    def _lyrics_fit_the_structure(self) -> "TrackSpec":
        """Provided lyrics must have a section to go to, and a structure a block to sing
        (checked here so `songmill validate` catches it; the matching rule is in models/lyrics)."""
        if self.lyrics and self.structure:
            try:
                assign_blocks([s.name for s in self.structure], parse_blocks(self.lyrics))
            except SongmillError as err:
                raise ValueError(str(err)) from None
        return self

    @model_validator(mode="before")
    @classmethod
    def _sections_as_mappings(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("structure"), list):
            data = {**data, "structure": [_section_entry(item) for item in data["structure"]]}
        return data


class ReleaseInfo(Strict):
    id: ReleaseId
    title: Text
    artist: Text
    label: Text
    type: Literal[RELEASE_TYPES]  # type: ignore[valid-type]
    date: dt.date
    genre: Annotated[str, _one_of(GENRES, "genre")]
    upc: Annotated[str, _auto_or(ids.validate_upc)] = "auto"
    p_line: Text
    c_line: Text
    explicit: bool = False
    ai_disclosure: AIDisclosure = AIDisclosure()
    profiles: Annotated[list[str], Field(min_length=1)] = ["streaming"]
    allow_partial: bool = False  # deliver the tracks that pass QC even if others fail
    mastering: Literal["album", "track"] = "album"  # album: every track toward the release genre's tone; track: each its own
    cover: Annotated[str, AfterValidator(_non_blank)] | None = None  # a square JPEG/PNG of at least 3000 px, relative to this file; None: generated
    schedule: Annotated[str, AfterValidator(_schedule)] | None = None  # the release DAG's Airflow schedule (cron or @daily…); None: triggered by hand
    # model name → version to render with instead of the one in use (an A/B experiment's arm; a
    # version a refinement registered, or the registry's own); {}: the versions in use
    model_versions: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")], Annotated[str, Field(min_length=1, max_length=64)]] = {}


class ReleaseSpec(Strict):
    release: ReleaseInfo
    tracks: Annotated[list[TrackSpec], Field(min_length=1, max_length=40)]

    @model_validator(mode="after")
    def _single_is_short(self) -> "ReleaseSpec":
        if self.release.type == "single" and len(self.tracks) > 3:
            raise ValueError(f"a single has at most 3 tracks, this one has {len(self.tracks)} (use type: ep or album)")
        return self

    def instrumentation_of(self, track: TrackSpec) -> str:
        return track.instrumentation or self.release.genre


def track_seed(spec: ReleaseSpec, index: int, base_seed: int | None = None) -> int:
    """The seed a track renders with (index is 0-based).

    A `--seed` on the command line (`base_seed`) re-seeds every track; otherwise the track's own
    `seed`, otherwise one derived from the release id and position, so it never changes by itself.
    """
    track = spec.tracks[index]
    if base_seed is None and track.seed is not None:
        return track.seed
    return derive_seed(spec.release.id, index, "" if base_seed is None else base_seed)


# ---------------------------------------------------------------- loading and error messages


def load_release(
    path: str | Path,
    *,
    profile_names: set[str] | None = None,
    voice_identities: set[str] | None = None,
    checks: Callable[[ReleaseSpec], list[tuple[tuple, str]]] | None = None,
) -> ReleaseSpec:
    """Load and validate a release config.

    Parameters
    ----------
    path : the YAML file.
    profile_names : the delivery profiles that exist; when given, `release.profiles` is checked.
    voice_identities : the voice identities in the model registry; when given, every track's
        `voice.identity` is checked (the engine passes the registry's, so `songmill validate`
        catches a typo without the core reading the registry).
    checks : more of what the engine knows (the models a track names): the spec → (field path,
        problem) pairs, reported at their lines like the rest.

    Raises
    ------
    ConfigError : one line per problem, `file:line: field.path: what is wrong (what is allowed)`.
    """
    data, locator = load_yaml(Path(path))
    data, twice = _lyrics_given_twice(data, locator)
    try:
        spec = validate_config(data, locator, ReleaseSpec, what="a mapping with 'release' and 'tracks'")
    except ConfigError as err:
        raise ConfigError(twice + err.problems) from None
    if twice:
        raise ConfigError(twice)
    spec = _resolve_references(spec, Path(path), locator)
    problems = []
    if profile_names is not None:
        problems += [
            locator.problem(("release", "profiles", i), f"'{name}' is not a delivery profile (allowed: {', '.join(sorted(profile_names))})")
            for i, name in enumerate(spec.release.profiles)
            if name not in profile_names
        ]
    if voice_identities is not None:
        problems += [
            locator.problem(
                ("tracks", i, "voice", "identity"),
                f"'{track.voice.identity}' is not a registered voice identity (registered: {', '.join(sorted(voice_identities))})",
            )
            for i, track in enumerate(spec.tracks)
            if track.voice is not None and track.voice.identity not in voice_identities
        ]
    if checks is not None:
        problems += [locator.problem(loc, message) for loc, message in checks(spec)]
    if problems:
        raise ConfigError(problems)
    return spec


LYRICS_GIVEN_TWICE = "the track gives its lyrics inline too; keep one of lyrics and lyrics_file"


def _lyrics_given_twice(data: Any, locator: Locator) -> tuple[Any, list[str]]:
    """(the config's data, one problem per track that gives both `lyrics` and `lyrics_file`). Such
    a track's inline lyrics are left out of the data validated with the rest, so they are not
    also checked against the structure: that complaint would hide that the file was never read."""
    tracks = data.get("tracks") if isinstance(data, dict) else None
    if not isinstance(tracks, list):
        return data, []
    both = lambda track: isinstance(track, dict) and track.get("lyrics") is not None and track.get("lyrics_file") is not None  # noqa: E731
    twice = [i for i, track in enumerate(tracks) if both(track)]
    if not twice:
        return data, []
    kept = [{k: v for k, v in track.items() if k != "lyrics"} if both(track) else track for track in tracks]
    return {**data, "tracks": kept}, [locator.problem(("tracks", i, "lyrics_file"), LYRICS_GIVEN_TWICE) for i in twice]


def _resolve_references(spec: ReleaseSpec, path: Path, locator: Locator) -> ReleaseSpec:
    """Track references are relative to the config file; each must exist. A lyrics file is read
    into the track's `lyrics` (and checked as lyrics written inline are)."""
    tracks, problems = [], []
    for i, track in enumerate(spec.tracks):
        if track.lyrics_file is not None:
            track, problem = _with_lyrics_file(track, path)
            problems += [locator.problem(("tracks", i, "lyrics_file"), problem)] if problem else []
        if track.reference is not None:
            resolved = (path.parent / track.reference).resolve()
            if not resolved.is_file():
                problems.append(locator.problem(("tracks", i, "reference"), _missing_file(resolved, track.reference, path, "an audio file")))
            track = track.model_copy(update={"reference": str(resolved)})
        if track.score_override is not None:
            resolved = (path.parent / track.score_override).resolve()
            if not resolved.is_file():
                problems.append(locator.problem(("tracks", i, "score_override"), _missing_file(resolved, track.score_override, path, "a MIDI file")))
            track = track.model_copy(update={"score_override": str(resolved)})
        tracks.append(track)
    release = spec.release
    if release.cover is not None:
        resolved = (path.parent / release.cover).resolve()
        problem = _cover_problem(resolved, release.cover, path)
        if problem:
            problems.append(locator.problem(("release", "cover"), problem))
        release = release.model_copy(update={"cover": str(resolved)})
    if problems:
        raise ConfigError(problems)
    return spec.model_copy(update={"tracks": tracks, "release": release})


MAX_LYRICS_FILE_BYTES = 1_000_000  # far more than any song's words: a file this large is another file


def _with_lyrics_file(track: TrackSpec, config: Path) -> tuple[TrackSpec, str | None]:
    """The track with its `lyrics_file` read into `lyrics`, or why it cannot be (one sentence)."""
    given = cast(str, track.lyrics_file)
    if track.lyrics is not None:  # which would it sing?
        return track, LYRICS_GIVEN_TWICE
    resolved = (config.parent / given).resolve()
    if not resolved.is_file():
        return track, _missing_file(resolved, given, config, "a text file of lyrics with [section] tags")
    if resolved.stat().st_size > MAX_LYRICS_FILE_BYTES:
        return track, f"'{given}' is {resolved.stat().st_size:,} bytes, more than any song's lyrics (at most {MAX_LYRICS_FILE_BYTES:,}); is it the right file?"
    try:
        text = resolved.read_text(encoding="utf-8-sig")  # a byte-order mark (Notepad's) is no part of the first tag
    except UnicodeDecodeError:
        return track, f"'{given}' is not UTF-8 text; save it as UTF-8"
    try:
        read = TrackSpec.model_validate(
            track.model_dump(mode="json") | {"lyrics": text}
        )  # lyrics_file kept as written: the same config read from elsewhere is the same track
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        return track, f"'{given}': {first['msg'].removeprefix('Value error, ')}"
    return read, None


def _missing_file(resolved: Path, given: str, config: Path, wanted: str) -> str:
    """Why a path a config names is not a file to read: absent, or a folder or device."""
    if resolved.exists():
        return f"'{given}' is not a regular file (a folder or a device); give {wanted}"
    return f"'{given}' does not exist (a path relative to {config.name})"


def _cover_problem(resolved: Path, given: str, config: Path) -> str | None:
    """Why a cover image cannot be delivered (read from its header only), or None."""
    from PIL import Image, UnidentifiedImageError

    if not resolved.is_file():
        return _missing_file(resolved, given, config, "a JPEG or PNG")
    try:
        with Image.open(resolved) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError):
        return f"'{given}' is not an image (give a JPEG or PNG)"
    except Image.DecompressionBombError:  # a header claiming billions of pixels
        return f"'{given}' claims more pixels than any cover needs (over {2 * (Image.MAX_IMAGE_PIXELS or 0):,}); give a 3000×3000 JPEG or PNG"
    if width != height or width < COVER_PX:
        return f"'{given}' is {width}×{height} pixels (a cover must be square and at least {COVER_PX}×{COVER_PX})"
    return None
