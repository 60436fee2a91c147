"""Export a Score so any DAW or notation program can open it.

* MIDI (`write_midi`, via mido): exact timing (960 ticks per beat), the full tempo map, time and
  key signature, section markers, one track per part, lyric syllables as MIDI lyric events.
  (pretty_midi, which we use to read MIDI back, cannot write a tempo map.)
* MusicXML (`write_musicxml`, via music21): the notation view as a lead sheet (melody with its
  lyrics and chord symbols, and the bass line), onsets and lengths quantised to sixteenths or
  triplet eighths.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import mido

from songmill.core.music import parse_key
from songmill.core.score import Note, Part, Score

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
    for section in score.sections:
        beat = section.start_bar * score.beats_per_bar
        events.append((_ticks(beat), 2, mido.MetaMessage("marker", text=section.name)))
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


def _music21_part(part: Part, score: Score, *, with_tempo: bool):
    from music21 import chord, instrument, key, meter, note, percussion, stream, tempo

    m21_part = stream.Part(id=part.name)
    m21_part.partName = part.name
    m21_instrument = instrument.Percussion() if part.is_drum else instrument.instrumentFromMidiProgram(part.program)
    m21_instrument.partId, m21_instrument.instrumentId = f"P-{part.name}", f"I-{part.name}"  # stable ids, stable files
    m21_part.insert(0, m21_instrument)
    m21_part.insert(0, meter.TimeSignature(score.time_signature))
    parsed = parse_key(score.key)
    if not part.is_drum:
        m21_part.insert(0, key.Key(parsed.tonic.replace("b", "-"), parsed.mode))
        for key_change in score.key_changes:
            changed = parse_key(key_change.key)
            m21_part.insert(quantise_beat(key_change.beat), key.Key(changed.tonic.replace("b", "-"), changed.mode))
    if with_tempo:
        for tempo_change in score.tempo_map:
            m21_part.insert(quantise_beat(tempo_change.beat), tempo.MetronomeMark(number=round(tempo_change.bpm, 2)))
    for onset, length, notes in _notation_groups(part.notes):
        if part.is_drum:
            hits = [note.Unpitched(displayName="C5") for _ in notes]
            element: note.NotRest = hits[0] if len(hits) == 1 else percussion.PercussionChord(hits)
        elif len(notes) == 1:
            element = note.Note(notes[0].pitch)
        else:
            element = chord.Chord(sorted({n.pitch for n in notes}))
        element.quarterLength = length
        element.volume.velocity = max(n.velocity for n in notes)
        sung = next((n for n in notes if n.syllable is not None and not n.melisma), None)
        if sung is not None and sung.syllable is not None and not part.is_drum:
            element.lyric = sung.syllable.text
        m21_part.insert(onset, element)
    return m21_part


LEAD_SHEET_ROLES = ("melody", "lead", "bass")  # the staves a musician reads; drums and comping live in the MIDI


def _chord_symbol(symbol: str):
    """music21 ChordSymbol for our symbols ('Bbmaj7' → 'B-maj7')."""
    from music21 import harmony

    root = symbol[:2] if len(symbol) > 1 and symbol[1] in "#b" else symbol[:1]
    quality = {"m(maj7)": "mM7"}.get(symbol[len(root) :], symbol[len(root) :])
    return harmony.ChordSymbol(root.replace("b", "-") + quality)


def write_musicxml(score: Score, path: Path) -> None:
    """Write a lead sheet as MusicXML: the melody with its lyrics under the notes and the chord
    symbols above, then the bass. (The MIDI file carries every part, drums and comping too.)"""
    from music21 import metadata, stream
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    m21_score = stream.Score()
    m21_score.metadata = metadata.Metadata(title=score.title or "songmill")
    staves = [p for p in score.parts if p.role in LEAD_SHEET_ROLES and not p.is_drum] or score.parts[:1]
    for i, part in enumerate(staves):
        m21_part = _music21_part(part, score, with_tempo=(i == 0))
        if i == 0:
            previous = None
            for chord in score.chords:
                if chord.symbol != previous:
                    m21_part.insert(quantise_beat(chord.start_beat), _chord_symbol(chord.symbol))
                previous = chord.symbol
        m21_score.insert(0, m21_part)
    xml = GeneralObjectExporter(m21_score).parse().decode("utf-8")
    xml = re.sub(r"\s*<encoding-date>[^<]*</encoding-date>", "", xml)  # same song, same bytes, any day
    Path(path).write_text(xml, encoding="utf-8")
