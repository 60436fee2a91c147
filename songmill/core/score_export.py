"""Export a Score so any DAW or notation program can open it.

* MIDI (`write_midi`, via mido): exact timing (960 ticks per beat), the full tempo map, time and
  key signature, section markers, one track per part, lyric syllables as MIDI lyric events.
  (pretty_midi, which we use to read MIDI back, cannot write a tempo map.)
* MusicXML (`write_musicxml`, via music21): the notation view as a lead sheet (melody with its
  lyrics and chord symbols, and the bass line), onsets and lengths quantised to sixteenths or
  triplet eighths.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import mido

from songmill.core.errors import SongmillError
from songmill.core.music import parse_key
from songmill.core.score import Chord, Note, Part, Score, Syllable
from songmill.core.sections import section_labels

TICKS_PER_BEAT = 960
DRUM_CHANNEL = 9

_MAJOR_NAMES = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
_MINOR_NAMES = ["Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm"]


def midi_key_signature(key_text: str) -> str:
    """The MIDI key-signature name: minor keys as minor, other modes as their relative major."""
    key = parse_key(key_text)
    if key.mode in ("minor", "aeolian"):
        return _MINOR_NAMES[key.tonic_pitch_class]
    return _MAJOR_NAMES[key.relative_major_pitch_class]


def _ticks(beat: float) -> int:
    return int(round(beat * TICKS_PER_BEAT))


def _to_delta(events: list[tuple[int, int, mido.Message]]) -> mido.MidiTrack:
    """(absolute tick, order, message) -> a track with delta times; lower order first at a tick."""
    track, now = mido.MidiTrack(), 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def _conductor_track(score: Score) -> mido.MidiTrack:
    meter = score.meter
    events = [
        (0, 0, mido.MetaMessage("track_name", name=score.title or "songmill")),
        (0, 0, mido.MetaMessage("time_signature", numerator=meter.numerator, denominator=meter.denominator)),
        (0, 0, mido.MetaMessage("key_signature", key=midi_key_signature(score.key))),
    ]
    for tempo_change in score.tempo_map:
        events.append((_ticks(tempo_change.beat), 1, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_change.bpm))))
    for key_change in score.key_changes:
        events.append((_ticks(key_change.beat), 1, mido.MetaMessage("key_signature", key=midi_key_signature(key_change.key))))
    # named as the DAW projects name them ("Verse 2"): one marker list, whichever file a DAW opens
    for label, section in zip(section_labels([s.name for s in score.sections]), score.sections):
        beat = section.start_bar * score.beats_per_bar
        events.append((_ticks(beat), 2, mido.MetaMessage("marker", text=label.title())))
    return _to_delta(events)


def _part_track(part: Part, channel: int) -> mido.MidiTrack:
    events = [(0, 0, mido.MetaMessage("track_name", name=part.name))]
    if not part.is_drum:
        events.append((0, 0, mido.Message("program_change", channel=channel, program=part.program)))
    for note in part.notes:
        on, off = _ticks(note.start_beat), max(_ticks(note.end_beat), _ticks(note.start_beat) + 1)
        if note.syllable is not None and not note.melisma:
            text = note.syllable.text + ("" if note.syllable.word_end else "-")
            events.append((on, 2, mido.MetaMessage("lyrics", text=text)))
        # note-offs (order 1) before note-ons (order 3) at the same tick, so repeated pitches retrigger
        events.append((on, 3, mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)))
        events.append((off, 1, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
    return _to_delta(events)


def write_midi(score: Score, path: Path) -> None:
    """Write a type-1 MIDI file: a conductor track, then one track per part."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(_conductor_track(score))
    melodic_channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
    for part in score.parts:
        channel = DRUM_CHANNEL if part.is_drum else next(melodic_channels, 0)
        midi.tracks.append(_part_track(part, channel))
    midi.save(str(path))


# ------------------------------------------------------------------------------ MusicXML


def quantise_beat(beat: float) -> float:
    """Nearest sixteenth (1/4 beat) or triplet eighth (1/3 beat), whichever is nearer."""
    by_quarter, by_third = round(beat * 4) / 4, round(beat * 3) / 3
    return by_quarter if abs(by_quarter - beat) <= abs(by_third - beat) else by_third


def _notation_groups(notes: list[Note]) -> list[tuple[float, float, list[Note]]]:
    """Quantised (onset, length, notes) with simultaneous notes grouped into chords and
    overlaps trimmed so every part reads as one voice."""
    by_onset: dict[float, list[Note]] = defaultdict(list)
    for note in notes:
        by_onset[quantise_beat(note.start_beat)].append(note)
    onsets = sorted(by_onset)
    groups = []
    for i, onset in enumerate(onsets):
        end = max(quantise_beat(n.end_beat) for n in by_onset[onset])
        if i + 1 < len(onsets):
            end = min(end, onsets[i + 1])
        length = max(end - onset, 0.25)
        groups.append((onset, length, by_onset[onset]))
    return groups


def _m21_key(key_text: str):
    from music21 import key

    parsed = parse_key(key_text)
    return key.Key(parsed.tonic.replace("b", "-"), parsed.mode)


@functools.lru_cache(maxsize=64)
def _scale_names(tonic: str, mode: str) -> dict[int, str]:
    """{pitch class: name} of a key's scale. music21 builds the scale's pitches anew on every
    `Key.pitches` (7 ms), and a lead sheet spells every note against its key."""
    from music21 import key

    return {p.pitchClass: p.name for p in key.Key(tonic, mode).pitches}


def spelled_pitch(midi: int, m21_key):
    """A music21 pitch spelled as the key writes it (G# in A minor, A- in F minor; chromatic notes
    as sharps in sharp keys, flats in flat keys), with no accidental object on a natural note, so
    only the notes the key signature does not cover show one."""
    from music21 import pitch

    names = _scale_names(m21_key.tonic.name, m21_key.mode)
    spelled = pitch.Pitch(midi=midi)
    name = names.get(midi % 12)
    if name is None and spelled.accidental is not None and spelled.accidental.name in ("sharp", "flat"):
        wanted = "flat" if m21_key.sharps < 0 else "sharp"  # chromatic: sharps in sharp keys (and C major), flats in flat keys
        if spelled.accidental.name != wanted:
            name = spelled.getEnharmonic().name
    if name is not None and name != spelled.name:
        spelled = pitch.Pitch(name)
        spelled.octave = 4
        spelled.octave += (midi - spelled.midi) // 12
    if spelled.accidental is not None and spelled.accidental.name == "natural":
        spelled.accidental = None
    return spelled


# Note values a reader expects, longest first: (quarter lengths, positions in a 4/4 bar it may start on).
# In 4/4 nothing hides the middle of the bar (beat 3) but a whole note.
READABLE = ((4.0, (0.0,)), (3.0, (0.0,)), (2.0, (0.0, 2.0)), (1.5, (0.0, 2.0)), (1.0, None), (0.75, "eighth"), (0.5, "eighth"), (0.25, None))


def readable_lengths(onset: float, length: float, beats_per_bar: float) -> list[float]:
    """A note's length as tied readable values: never across a bar line, nor across a beat when it
    starts off one; a quarter or longer only from a beat, a half or dotted quarter from beat 1 or 3
    (in 4/4 the middle of the bar shows); no double dots. Triplet values are left whole (music21
    writes them)."""
    if abs(onset * 4 - round(onset * 4)) > 1e-6 or abs(length * 4 - round(length * 4)) > 1e-6:
        return [length]
    pieces, t, end = [], onset, onset + length
    while end - t > 1e-6:
        bar_start = (t // beats_per_bar) * beats_per_bar
        limit, position = min(end, bar_start + beats_per_bar), t - bar_start
        if abs(position - round(position)) > 1e-6:  # off the beat: tie at the next beat
            limit = min(limit, bar_start + float(int(position) + 1))
        for value, starts in READABLE:
            if t + value > limit + 1e-6:
                continue
            if starts == "eighth" and abs(position * 2 - round(position * 2)) > 1e-6:
                continue
            if starts is None and value >= 1.0 and abs(position - round(position)) > 1e-6:
                continue
            if isinstance(starts, tuple) and (beats_per_bar != 4.0 or position not in starts):
                if not (beats_per_bar != 4.0 and abs(position - round(position)) < 1e-6 and value <= beats_per_bar):
                    continue
            pieces.append(value)
            t += value
            break
        else:  # nothing fits (cannot happen on a sixteenth grid): keep the rest whole
            pieces.append(limit - t)
            t = limit
    return pieces


def _syllabic(syllable) -> str:
    if syllable.word_start and syllable.word_end:
        return "single"
    return "begin" if syllable.word_start else "end" if syllable.word_end else "middle"


def _music21_part(part: Part, score: Score, *, with_tempo: bool, rehearsal_marks: bool = False):
    from music21 import chord, expressions, instrument, meter, note, percussion, stream, tempo, tie

    m21_part = stream.Part(id=part.name)
    m21_part.partName = part.name
    m21_instrument = instrument.Percussion() if part.is_drum else instrument.instrumentFromMidiProgram(part.program)
    m21_instrument.partId, m21_instrument.instrumentId = f"P-{part.name}", f"I-{part.name}"  # stable ids, stable files
    m21_part.insert(0, m21_instrument)
    m21_part.insert(0, meter.TimeSignature(score.time_signature))
    m21_key = _m21_key(score.key)
    key_at = [(0.0, m21_key)] + [(quantise_beat(k.beat), _m21_key(k.key)) for k in score.key_changes]
    if not part.is_drum:
        for beat, m21_k in key_at:
            m21_part.insert(beat, m21_k)
    if with_tempo:
        for tempo_change in score.tempo_map:
            m21_part.insert(quantise_beat(tempo_change.beat), tempo.MetronomeMark(number=round(tempo_change.bpm, 2)))
    if rehearsal_marks:
        from songmill.core.sections import section_labels

        for label, section in zip(section_labels([s.name for s in score.sections]), score.sections):
            mark = expressions.RehearsalMark(label.title())
            mark.placement = "above"
            m21_part.insert(section.start_bar * score.beats_per_bar, mark)
    groups = _notation_groups(part.notes)
    for index, (onset, length, notes) in enumerate(groups):
        sung = next((n for n in notes if n.syllable is not None and not n.melisma), None)
        held = index + 1 < len(groups) and any(n.melisma for n in groups[index + 1][2])  # a melisma follows: extend the syllable
        current_key = next(k for beat, k in reversed(key_at) if beat <= onset + 1e-9)
        lengths = readable_lengths(onset, length, score.beats_per_bar)
        position = onset
        for piece, value in enumerate(lengths):
            if part.is_drum:
                hits = [note.Unpitched(displayName="C5") for _ in notes]
                element: note.NotRest = hits[0] if len(hits) == 1 else percussion.PercussionChord(hits)
            elif len(notes) == 1:
                element = note.Note(spelled_pitch(notes[0].pitch, current_key))
            else:
                element = chord.Chord([spelled_pitch(p, current_key) for p in sorted({n.pitch for n in notes})])
            element.quarterLength = value
            element.volume.velocity = max(n.velocity for n in notes)
            if len(lengths) > 1 and not part.is_drum:
                element.tie = tie.Tie("start" if piece == 0 else "stop" if piece == len(lengths) - 1 else "continue")
            if piece == 0 and sung is not None and sung.syllable is not None and not part.is_drum:
                element.lyrics.append(note.Lyric(sung.syllable.text, applyRaw=True, syllabic=_syllabic(sung.syllable), identifier="extend" if held else None))
            m21_part.insert(position, element)
            position += value
    song_end = max((s.start_bar + s.bars for s in score.sections), default=0) * score.beats_per_bar
    if m21_part.highestTime < song_end:  # every staff runs to the song's last bar (the outro's chords need bars)
        m21_part.insert(m21_part.highestTime, note.Rest(quarterLength=song_end - m21_part.highestTime))
    m21_part.makeRests(fillGaps=True, timeRangeFromBarDuration=True, hideRests=False, inPlace=True)  # a reader counts the rests
    return m21_part


LEAD_SHEET_ROLES = ("melody", "lead", "bass")  # the staves a musician reads; drums and comping live in the MIDI


def _chord_symbol(symbol: str):
    """music21 ChordSymbol for our symbols ('Bbmaj7' → 'B-maj7')."""
    from music21 import harmony

    root = symbol[:2] if len(symbol) > 1 and symbol[1] in "#b" else symbol[:1]
    quality = {"m(maj7)": "mM7"}.get(symbol[len(root) :], symbol[len(root) :])
    return harmony.ChordSymbol(root.replace("b", "-") + quality)


def _settle_accidentals(m21_part) -> None:
    """Fix every note's accidental display as decided now (by the key and the bar): a natural
    that needs no sign gets one marked hidden, so the exporter's own pass, which also counts
    the chord symbols' pitches, cannot add one."""
    from music21 import pitch

    for element in m21_part.recurse().notes:
        for p in getattr(element, "pitches", ()):
            if p.accidental is None:
                p.accidental = pitch.Accidental("natural")
                p.accidental.displayStatus = False


@dataclass(frozen=True)
class LeadSheetCredits:
    """What a printed lead sheet credits (from the release): the rights line and the AI disclosure."""

    composer: str
    lyricist: str
    rights: str = ""
    disclosure: str = ""  # e.g. "Lyrics, composition … generated with AI (songmill)"


def write_musicxml(score: Score, path: Path, *, credits: LeadSheetCredits | None = None) -> None:
    """Write a lead sheet as MusicXML: the melody with its lyrics under the notes (hyphens between
    a word's syllables, extenders under a melisma) and the chord symbols above, a rehearsal mark
    at each section, then the bass; readable note values tied across beats and bar lines,
    accidentals only where the key needs them, the credits from the release. (The MIDI file
    carries every part, drums and comping too.)"""
    from music21 import metadata, stream
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    m21_score = stream.Score()
    m21_score.metadata = metadata.Metadata(title=score.title or "songmill")
    m21_score.metadata.composer = credits.composer if credits else "songmill"  # else music21 writes "Music21"
    if credits:  # title, composer and lyricist print at the top; the rights line and the disclosure at the foot
        m21_score.metadata.lyricist = credits.lyricist
        footer = " · ".join(line for line in (credits.rights, credits.disclosure) if line)
        if footer:
            m21_score.metadata.copyright = footer
    staves = [p for p in score.parts if p.role in LEAD_SHEET_ROLES and not p.is_drum] or score.parts[:1]
    for i, part in enumerate(staves):
        m21_part = _music21_part(part, score, with_tempo=(i == 0), rehearsal_marks=(i == 0))
        # bars, ties and accidentals before the chord symbols: music21 counts a symbol's pitches
        # as sounding in the bar (an E7's G# would put a natural on the melody's G)
        m21_part.makeMeasures(inPlace=True)
        m21_part.makeTies(inPlace=True)
        m21_part.makeAccidentals(inPlace=True)
        _settle_accidentals(m21_part)
        if i == 0:
            previous = None
            for chord in score.chords:
                if chord.symbol != previous:
                    beat = quantise_beat(chord.start_beat)
                    bars = m21_part.getElementsByClass("Measure")
                    bar = bars[min(int(beat // score.beats_per_bar), len(bars) - 1)]
                    bar.insert(beat - bar.offset, _chord_symbol(chord.symbol))
                previous = chord.symbol
        m21_score.insert(0, m21_part)
    xml = GeneralObjectExporter(m21_score).parse().decode("utf-8")
    xml = re.sub(r"\s*<encoding-date>[^<]*</encoding-date>", "", xml)  # same song, same bytes, any day
    # music21 has no lyric extenders: the syllables marked "extend" get MusicXML's <extend/>
    xml = re.sub(r'<lyric name="extend" number="1">(.*?</text>)', r'<lyric name="1" number="1">\1<extend/>', xml, flags=re.DOTALL)
    Path(path).write_text(xml, encoding="utf-8")


# ------------------------------------------------------------------------------ MIDI back in

OVERRIDE_PARTS = ("melody", "bass", "chords")  # read back from a DAW edit: the melody and bass may change; chords must be as exported; drums stay the song's
TEMPO_TOLERANCE_BPM = 0.01


def read_midi_override(path: Path, score: Score) -> Score:
    """`score` with its melody, bass and chords parts replaced by the same-named tracks of a MIDI
    file edited in a DAW (one `write_midi` wrote); a changed chords track changes the harmony
    (`score.chords`, see `chords_from_comping`), which the band and the backing voices follow. The melody's lyric events must be the song's
    syllables in order (a DAW edit moves notes, not words): each one goes back on the note it
    sits on, with its phonemes; a note without one continues the syllable before (a melisma).

    Raises SongmillError naming what does not fit: a type-0 file, the tempo map or the time
    signature, a lyric event, a missing track, two melody notes at once, a note past the song's end."""
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError) as err:
        raise SongmillError(f"{path.name} is not a MIDI file mido can read ({err}); export it from the DAW as a standard MIDI file") from None
    if midi.type == 0:
        raise SongmillError(
            f"{path.name} is a type-0 MIDI file (every part merged into one track); export it from the DAW as type 1, one track per part with the exported track names"
        )
    per_beat = midi.ticks_per_beat
    tempos = [(0.0, 120.0)] if not any(m.type == "set_tempo" for t in midi.tracks for m in t) else []
    meters: list[tuple[float, str]] = []
    tracks: dict[str, list[tuple[int, mido.Message]]] = {}
    for track in midi.tracks:
        now, events, name = 0, [], None
        for message in track:
            now += message.time
            if message.type == "track_name":
                name = name or message.name
            elif message.type == "set_tempo":
                tempos.append((now / per_beat, mido.tempo2bpm(message.tempo)))
            elif message.type == "time_signature":
                meters.append((now / per_beat, f"{message.numerator}/{message.denominator}"))
            events.append((now, message))
        if name:
            tracks[name] = events
    # the conductor track is named after the song (`_conductor_track`): a file of another song says so
    titled = next((message.name for message in midi.tracks[0] if message.type == "track_name"), None) if midi.tracks else None
    # said beside a misfit only, and as what the file says: a DAW may rename its first track
    named_otherwise = titled and score.title and titled not in (score.title, *OVERRIDE_PARTS)
    other_song = f" ({path.name}'s first track is named {titled!r}; this song is {score.title!r})" if named_otherwise else ""
    wanted = [(c.beat, c.bpm) for c in score.tempo_map]
    if len(tempos) != len(wanted) or any(abs(b1 - b2) > 1 / per_beat or abs(t1 - t2) > TEMPO_TOLERANCE_BPM for (b1, t1), (b2, t2) in zip(tempos, wanted)):
        shown = ", ".join(f"{bpm:g} BPM at beat {beat:g}" for beat, bpm in tempos) or "none"
        raise SongmillError(
            f"{path.name}'s tempo map ({shown}) is not the song's ({', '.join(f'{bpm:g} BPM at beat {beat:g}' for beat, bpm in wanted)}){other_song}; "
            "keep the song's tempo when editing in the DAW (change the tempo with songmill edit)"
        )
    metre = f"{score.meter.numerator}/{score.meter.denominator}"
    changed_metre = [(beat, said) for beat, said in sorted(set(meters)) if said != metre]
    if changed_metre:
        beat, said = changed_metre[0]
        raise SongmillError(
            f"{path.name} sets the time signature {said} at beat {beat:g} (bar {int(beat // score.beats_per_bar) + 1}); the song is in {metre}{other_song}: "
            "keep the song's time signature when editing in the DAW"
        )
    parts, chords = [], score.chords
    for part in score.parts:
        if part.name in OVERRIDE_PARTS and part.name in tracks:
            notes = _as_written(_notes_of(tracks[part.name], per_beat, part.name, path), part.notes, per_beat)
            if part.name == "chords" and [(n.pitch, round(n.start_beat, 3)) for n in notes] != [(n.pitch, round(n.start_beat, 3)) for n in part.notes]:
                chords = chords_from_comping(notes, score, path)  # the harmony the band and the backing voices follow
            if part.name == "melody":
                notes = _with_syllables(notes, tracks["melody"], per_beat, part.notes, path, other_song)
            part = part.model_copy(update={"notes": notes})
        parts.append(part)
    if "melody" not in tracks:
        raise SongmillError(
            f"{path.name} has no track named 'melody' (its tracks: {', '.join(sorted(tracks)) or 'none'}); keep the track names of the exported MIDI"
        )
    _check_fits_the_song(parts, score, path, other_song)
    return Score.model_validate(score.model_copy(update={"parts": parts, "chords": chords}).model_dump())  # seconds from the tempo map again


def edited_parts_not_imported(path: Path, score: Score) -> list[str]:
    """The tracks of a DAW-edited MIDI (one `write_midi` wrote, readable: `read_midi_override`
    first) whose hits differ from the song's (a note struck, moved, removed, or struck harder or
    softer), or that were deleted, but which an import leaves as they are: the drums, and any
    part besides OVERRIDE_PARTS.
    Hits, not lengths: a drum's length is how long its sample rings, whatever the MIDI says."""
    midi = mido.MidiFile(str(path))
    per_beat = midi.ticks_per_beat
    named = {next((m.name for m in track if m.type == "track_name"), None) for track in midi.tracks}
    differ = [p.name for p in score.parts if p.name not in OVERRIDE_PARTS and p.notes and p.name not in named]  # deleted in the DAW
    for track in midi.tracks:
        name = next((m.name for m in track if m.type == "track_name"), None)
        part = next((p for p in score.parts if p.name == name), None)
        if part is None or part.name in OVERRIDE_PARTS:
            continue
        now, struck = 0, []
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                struck.append((round(now * TICKS_PER_BEAT / per_beat), message.note, message.velocity))
        if sorted(struck) != sorted((_ticks(n.start_beat), n.pitch, n.velocity) for n in part.notes):
            differ.append(part.name)
    return differ


def _check_fits_the_song(parts: list[Part], score: Score, path: Path, other_song: str) -> None:
    """What the render would only find out at the gate, said before it: a melody note sounding
    while another does (one voice sings one note at a time), a note that ends after the song."""
    end = score.total_bars * score.beats_per_bar
    tolerance = 1e-3  # a tick's rounding

    def where(beat: float) -> str:
        return f"beat {beat:g} (bar {int(beat // score.beats_per_bar) + 1})"

    for part in parts:
        if part.name not in OVERRIDE_PARTS:
            continue
        late = next((n for n in part.notes if n.end_beat > end + tolerance), None)
        if late is not None:
            raise SongmillError(
                f"{path.name}'s {part.name} track has a note at {where(late.start_beat)} that ends at beat {late.end_beat:g}, "
                f"after the song's end (beat {end:g}, bar {score.total_bars}){other_song}; keep the notes within the song"
            )
    melody = sorted((n for p in parts if p.name == "melody" for n in p.notes), key=lambda n: (n.start_beat, n.pitch))
    for before, after in zip(melody, melody[1:]):
        if after.start_beat < before.end_beat - tolerance:
            raise SongmillError(
                f"{path.name}'s melody has a note at {where(after.start_beat)} while the one from {where(before.start_beat)} still sounds; "
                "the voice sings one note at a time: shorten or move one of them"
            )


def chords_from_comping(notes: list[Note], score: Score, path: Path) -> list[Chord]:
    """The harmony a chords track plays, read against the song's chords: a chord whose span the
    track still strikes with its own notes is kept as it was; in a span struck with other notes,
    notes struck together are a chord and the same chord struck again (the comping's pulses)
    continues it, each named from its notes (music21's chord-symbol reading, root kept).

    Raises SongmillError at the first beat where fewer than two notes are struck together."""
    struck: dict[float, set[int]] = defaultdict(set)
    for note in notes:
        struck[round(note.start_beat, 3)].add(note.pitch)
    for beat, together in sorted(struck.items()):
        if len(together) < 2:
            bar = int(beat // score.beats_per_bar) + 1
            raise SongmillError(f"{path.name}'s chords track strikes one note at beat {beat:g} (bar {bar}); a chord needs two notes or more struck together")
    chords: list[Chord] = []
    for chord in score.chords:
        end = chord.start_beat + chord.duration_beats
        inside = [(beat, tuple(sorted(together))) for beat, together in sorted(struck.items()) if chord.start_beat - 1e-3 <= beat < end - 1e-3]
        as_exported = tuple(sorted(set(chord.pitches)))
        if all(played == as_exported for _, played in inside):
            chords.append(chord)
            continue
        runs: list[tuple[float, tuple[int, ...]]] = []
        for beat, played in inside:
            if not runs or runs[-1][1] != played:
                runs.append((chord.start_beat if not runs else beat, played))
        for index, (start, played) in enumerate(runs):
            stop = runs[index + 1][0] if index + 1 < len(runs) else end
            chords.append(_named_chord(start, stop - start, played))
    return chords


def _named_chord(start: float, duration: float, pitches: tuple[int, ...]) -> Chord:
    from music21 import chord as m21chord
    from music21 import harmony

    reading = m21chord.Chord(list(pitches))
    symbol = harmony.chordSymbolFigureFromChord(reading)
    if not symbol or "Cannot" in symbol:
        symbol = reading.root().name.replace("-", "b")  # no chord symbol fits: its root, the notes as played
    return Chord(start_beat=start, duration_beats=duration, symbol=symbol, pitches=list(pitches), root_pc=reading.root().pitchClass)


def _notes_of(events: list[tuple[int, mido.Message]], per_beat: int, name: str, path: Path) -> list[Note]:
    open_notes: dict[int, tuple[int, int]] = {}
    notes = []
    for tick, message in events:
        if message.type == "note_on" and message.velocity > 0:
            open_notes[message.note] = (tick, message.velocity)
        elif message.type in ("note_off", "note_on") and message.note in open_notes:
            start, velocity = open_notes.pop(message.note)
            if tick > start:
                notes.append(Note(pitch=message.note, start_beat=start / per_beat, duration_beats=(tick - start) / per_beat, velocity=max(velocity, 1)))
    return sorted(notes, key=lambda n: (n.start_beat, n.pitch))


def _as_written(notes: list[Note], original: list[Note], per_beat: int) -> list[Note]:
    """The notes read from the MIDI, each one that starts and ends on the ticks of one of the
    song's notes (left where it was, or only moved in pitch) given that note's own beats back: a
    MIDI file holds whole ticks (0.98 beats comes back as 0.98020833), so without this a file
    imported unchanged would change every section's score, and a one-note edit would seem to
    change the whole song."""
    written = {(round(n.start_beat * per_beat), round(n.end_beat * per_beat)): (n.start_beat, n.duration_beats) for n in original}
    out = []
    for note in notes:
        was = written.get((round(note.start_beat * per_beat), round(note.end_beat * per_beat)))
        out.append(note if was is None else note.model_copy(update={"start_beat": was[0], "duration_beats": was[1]}))
    return out


def _with_syllables(
    notes: list[Note], events: list[tuple[int, mido.Message]], per_beat: int, original: list[Note], path: Path, other_song: str = ""
) -> list[Note]:
    syllables = [n.syllable for n in original if n.syllable is not None and not n.melisma]
    lyrics = [(tick, message.text) for tick, message in events if message.type == "lyrics"]
    if len(lyrics) != len(syllables):
        raise SongmillError(
            f"{path.name}'s melody has {len(lyrics)} lyric events but the song sings {len(syllables)} syllables{other_song}; "
            "keep every lyric event (move it with its note) when editing in the DAW"
        )
    for number, ((_, text), syllable) in enumerate(zip(lyrics, syllables), start=1):
        if syllable is not None and text.rstrip("-").strip() != syllable.text:
            raise SongmillError(
                f"{path.name}'s lyric event {number} is {text!r}, where the song sings {syllable.text!r}; change words with songmill edit, not in the DAW"
            )
    at_tick: dict[int, Syllable | None] = {tick: syllable for (tick, _), syllable in zip(lyrics, syllables)}
    out: list[Note] = []
    for note in notes:
        tick = round(note.start_beat * per_beat)
        sung = at_tick.pop(tick, None)
        out.append(note.model_copy(update={"syllable": sung, "melisma": sung is None and bool(out)}))
    if at_tick:
        beat = min(at_tick) / per_beat
        raise SongmillError(f"{path.name} has a lyric event at beat {beat:g} with no melody note starting there; move the lyric with its note")
    return out
