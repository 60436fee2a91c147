"""The score: JSON round trip, MIDI read back by pretty_midi, MusicXML read back by music21."""

from __future__ import annotations

import mido
import pretty_midi
import pytest
from music21 import converter, harmony, note
from pydantic import ValidationError

from songmill.core.score import Chord, Note, Part, Score, Section, Syllable, TempoChange
from songmill.core.score_export import midi_key_signature, write_midi, write_musicxml

WORDS = [("Pa", False), ("per", True), ("lan", False), ("terns", True), ("drift", True), ("a", False), ("way", True)]


def song() -> Score:
    melody = [
        Note(pitch=p, start_beat=b, duration_beats=d, velocity=96, syllable=Syllable(text=t, stressed=(i % 2 == 0), word_start=True, word_end=e))
        for i, (p, b, d, (t, e)) in enumerate(zip([69, 72, 76, 74, 72, 71, 69], [0, 1, 2, 3, 4, 5.5, 6], [1, 1, 1, 1, 1.5, 0.5, 2], WORDS))
    ]
    melody.append(Note(pitch=67, start_beat=8, duration_beats=1, melisma=True))
    bass = [Note(pitch=45, start_beat=b + 0.0137, duration_beats=1.9, velocity=80) for b in range(0, 12, 2)]
    drums = [Note(pitch=36, start_beat=b, duration_beats=0.25, velocity=110) for b in range(12)]
    pad = [Note(pitch=p, start_beat=0, duration_beats=4, velocity=60) for p in (57, 60, 64)]
    return Score(
        title="Paper Lanterns",
        key="A minor",
        time_signature="4/4",
        tempo_map=[TempoChange(beat=0, bpm=96), TempoChange(beat=8, bpm=120)],
        sections=[Section(name="verse", start_bar=0, bars=2, energy=0.45), Section(name="chorus", start_bar=2, bars=1, energy=0.9)],
        chords=[Chord(start_beat=0, duration_beats=4, symbol="Am", pitches=[57, 60, 64])],
        parts=[
            Part(name="melody", role="melody", program=0, notes=melody),
            Part(name="bass", role="bass", program=33, notes=bass),
            Part(name="drums", role="drums", is_drum=True, notes=drums),
            Part(name="pads", role="pad", program=89, notes=pad),
        ],
    )


def test_seconds_follow_the_tempo_map():
    score = song()
    assert score.seconds_at(8) == pytest.approx(8 * 60 / 96)
    assert score.seconds_at(10) == pytest.approx(5.0 + 2 * 0.5)
    note = score.part("bass").notes[-1]  # starts at beat 10.0137, in the 120 BPM stretch
    assert note.start_s == pytest.approx(5.0 + 2.0137 * 0.5)
    assert score.duration_s == pytest.approx(5.0 + 4 * 0.5)


def test_json_round_trip_is_exact():
    score = song()
    again = Score.from_json(score.to_json())
    assert again == score
    assert again.part("melody").notes[0].syllable.text == "Pa"


def test_midi_round_trip_through_pretty_midi(tmp_path):
    score = song()
    path = tmp_path / "song.mid"
    write_midi(score, path)
    midi = pretty_midi.PrettyMIDI(str(path))
    assert [i.name for i in midi.instruments] == ["melody", "bass", "drums", "pads"]
    for part, instrument in zip(score.parts, midi.instruments):
        assert instrument.is_drum == part.is_drum
        assert instrument.program == (0 if part.is_drum else part.program)
        got = sorted((n.pitch, n.start, n.end, n.velocity) for n in instrument.notes)
        want = sorted((n.pitch, n.start_s, n.start_s + n.duration_s, n.velocity) for n in part.notes)
        assert [(p, v) for p, _, _, v in got] == [(p, v) for p, _, _, v in want]
        one_tick_s = 60 / 96 / 960  # MIDI stores onsets to the nearest tick
        assert [t for _, s, e, _ in got for t in (s, e)] == pytest.approx([t for _, s, e, _ in want for t in (s, e)], abs=one_tick_s)
    times, bpms = midi.get_tempo_changes()
    assert list(bpms) == pytest.approx([96, 120]) and list(times) == pytest.approx([0, 5.0])
    assert [(k.key_number, k.time) for k in midi.key_signature_changes] == [(pretty_midi.key_name_to_key_number("A minor"), 0)]
    assert [(t.numerator, t.denominator) for t in midi.time_signature_changes] == [(4, 4)]
    assert [lyric.text for lyric in midi.lyrics] == [t if e else t + "-" for t, e in WORDS]
    markers = [m.text for m in mido.MidiFile(str(path)).tracks[0] if m.type == "marker"]
    assert markers == ["Verse", "Chorus"]  # as the DAW projects name them


def test_musicxml_reread_by_music21_with_notes_and_lyrics(tmp_path):
    score = song()
    path = tmp_path / "song.musicxml"
    write_musicxml(score, path)
    parsed = converter.parse(str(path))
    melody = parsed.parts[0].flatten().getElementsByClass(note.Note).stream().stripTies()
    assert [n.pitch.midi for n in melody] == [n.pitch for n in score.part("melody").notes]
    assert [float(n.offset) for n in melody] == [n.start_beat for n in score.part("melody").notes]
    assert [n.lyric for n in melody][:7] == [t for t, _ in WORDS]
    bass = parsed.parts[1].flatten().notes.stream()
    assert [n.pitch.midi for n in bass] == [45] * 6
    assert [float(n.offset) for n in bass] == [0, 2, 4, 6, 8, 10]  # the 0.0137-beat push quantised away
    [symbol] = parsed.parts[0].flatten().getElementsByClass(harmony.ChordSymbol)
    assert symbol.figure == "Am" and symbol.offset == 0  # a lead sheet: chord symbols over the melody
    assert len(parsed.parts) == 2  # melody and bass; drums and pads are in the MIDI only
    assert parsed.parts[0].flatten().getElementsByClass("KeySignature")[0].sharps == 0


@pytest.mark.parametrize("key, expected", [("A minor", "Am"), ("D dorian", "C"), ("G mixolydian", "C"), ("F# major", "F#")])
def test_midi_key_signature_of_modes(key, expected):
    assert midi_key_signature(key) == expected


def test_invalid_scores_are_rejected():
    with pytest.raises(ValidationError, match="tempo_map must start at beat 0"):
        Score(key="C major", tempo_map=[TempoChange(beat=1, bpm=100)])
    with pytest.raises(ValidationError, match="part names must be unique"):
        Score(key="C major", tempo_map=[TempoChange(bpm=100)], parts=[Part(name="a", role="bass"), Part(name="a", role="pad")])
    with pytest.raises(ValidationError):
        Note(pitch=128, start_beat=0, duration_beats=1)
