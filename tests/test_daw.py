"""The DAW session: a DAWproject valid against Bitwig's published schema and a REAPER project,
each placing every stem and the MIDI at bar 1 with the song's tempo, meter and sections."""

from __future__ import annotations

import re
import zipfile

import mido
import numpy as np
import pytest
from lxml import etree

from songmill.core.audio import read_wav, write_wav
from songmill.core.errors import SongmillError
from songmill.core.score import Note, Part, Score, Section, TempoChange
from songmill.release.daw import SCHEMAS, validate, write_daw_session

RATE = 48000


def _song() -> Score:
    return Score(
        title="Little Lanterns",
        key="A minor",
        time_signature="4/4",
        tempo_map=[TempoChange(bpm=120), TempoChange(beat=16, bpm=100)],
        sections=[Section(name="verse", start_bar=0, bars=4, energy=0.4), Section(name="chorus", start_bar=4, bars=4, energy=0.9)],
        parts=[Part(name="melody", role="melody", notes=[Note(pitch=69 + i % 5, start_beat=2.0 * i, duration_beats=1.5) for i in range(16)])],
    )


@pytest.fixture
def session(tmp_path):
    score = _song()
    seconds = score.duration_s
    stems = {}
    for number, name in enumerate(("drums", "bass", "vocal-lead")):
        path = tmp_path / "in" / f"{name}.wav"
        path.parent.mkdir(exist_ok=True)
        tone = 0.3 * np.sin(2 * np.pi * (110 * (number + 1)) * np.arange(int(seconds * RATE)) / RATE)
        write_wav(path, np.stack([tone, tone], axis=1) if name == "vocal-lead" else tone, RATE)
        stems[name] = path
    return (
        score,
        stems,
        write_daw_session(tmp_path / "session", score, stems, name="little-lanterns", title="Little Lanterns", artist="The Songmill Collective", genre="pop"),
    )


def test_the_dawproject_is_valid_and_places_every_stem_at_bar_1(session):
    score, stems, written = session
    with zipfile.ZipFile(written.dawproject) as archive:
        project = etree.fromstring(archive.read("project.xml"))
        metadata = etree.fromstring(archive.read("metadata.xml"))
        assert sorted(n for n in archive.namelist() if n.startswith("audio/")) == sorted(f"audio/{name}.wav" for name in stems)
    schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "Project.xsd")))  # Bitwig's published schema, unchanged
    assert schema.validate(project), schema.error_log
    assert etree.XMLSchema(etree.parse(str(SCHEMAS / "MetaData.xsd"))).validate(metadata)
    assert project.find("Transport/Tempo").get("value") == "120" and project.find("Transport/TimeSignature").get("numerator") == "4"
    clips = {c.get("name"): c for c in project.iter("Clip")}
    for name in stems:
        assert float(clips[name].get("time")) == 0.0  # bar 1
        assert clips[name].find("Warps/Audio/File").get("path") == f"audio/{name}.wav"
    notes = clips["melody (notes)"].findall("Notes/Note")
    assert [int(n.get("key")) for n in notes] == [n.pitch for n in score.part("melody").notes]
    assert [m.get("name") for m in project.iter("Marker")] == ["Verse", "Chorus"]
    assert [(p.get("time"), p.get("value")) for p in project.iter("RealPoint")] == [("0.000000", "120"), ("16.000000", "100")]
    assert metadata.findtext("Artist") == "The Songmill Collective"


def test_the_reaper_project_places_the_stems_and_the_midi_at_0_s(session):
    score, stems, written = session
    text = written.reaper.read_text()
    assert re.search(r"^  TEMPO 120 4 4$", text, re.MULTILINE)
    assert re.findall(r'MARKER \d+ ([0-9.]+) "([^"]+)"', text) == [("0.000000", "Verse"), (f"{score.seconds_at(16):.6f}", "Chorus")]
    items = re.findall(r'POSITION ([0-9.]+)\n.*?FILE "([^"]+)"', text, re.DOTALL)
    assert {path for _, path in items} == {f"stems/{name}.wav" for name in stems} | {written.midi.name}
    assert {position for position, _ in items} == {"0"}
    for name in stems:  # the copies a DAW opens are the stems, sample for sample (24-bit)
        original, _ = read_wav(stems[name])
        copy, rate = read_wav(written.folder / "stems" / f"{name}.wav")
        assert rate == RATE and copy.shape == original.shape and np.max(np.abs(copy - original)) < 2**-22
    midi = mido.MidiFile(str(written.midi))
    tempos = [round(mido.tempo2bpm(m.tempo)) for m in midi.tracks[0] if m.type == "set_tempo"]
    assert tempos == [120, 100] and [m.text for m in midi.tracks[0] if m.type == "marker"] == ["Verse", "Chorus"]


def test_a_project_that_would_not_match_the_schema_is_refused_before_writing(tmp_path):
    with pytest.raises(SongmillError, match=r"the DAWproject project written would not match its schema \(line 1: .*Application"):
        validate(b'<Project version="1.0"><Transport/></Project>', "Project.xsd")
    with pytest.raises(SongmillError, match="has no stems to put in a DAW session"):
        write_daw_session(tmp_path / "empty", _song(), {}, name="x", title="x", artist="x")
    assert not (tmp_path / "empty").exists()


def test_a_schema_failure_inside_the_session_writes_nothing(tmp_path, monkeypatch):
    from songmill.release import daw

    stem = tmp_path / "drums.wav"
    write_wav(stem, np.zeros(RATE), RATE)
    monkeypatch.setattr(daw, "dawproject_xml", lambda *a, **k: b'<Project version="1.0"/>')  # a writer bug
    with pytest.raises(SongmillError, match="would not match its schema"):
        write_daw_session(tmp_path / "session", _song(), {"drums": stem}, name="x", title="x", artist="x")
    assert not (tmp_path / "session").exists()


def test_a_daw_midi_that_the_render_would_fail_on_is_refused_with_its_beat(tmp_path):
    """What a musician can do in a DAW that songmill cannot render, each one sentence before any
    work: a type-0 file, another time signature, a melody note over another, a note past the
    song's end; a file of another song is named as such; an edit of the drums, which an import
    leaves as they are, is found (the import says so)."""
    from songmill.core.score_export import edited_parts_not_imported, read_midi_override, write_midi
    from tests.test_instruments import short_song

    score = short_song()
    exported = tmp_path / "short.mid"
    write_midi(score, exported)
    assert read_midi_override(exported, score).part("melody").notes == score.part("melody").notes  # as exported: the same song

    def edited(name: str, change) -> object:
        midi = mido.MidiFile(str(exported))
        change(midi)
        path = tmp_path / name
        midi.save(str(path))
        return path

    def drum_track(midi: mido.MidiFile) -> mido.MidiTrack:
        return next(t for t in midi.tracks if any(m.type == "track_name" and m.name == "drums" for m in t))

    def louder_first_hit(track: mido.MidiTrack) -> tuple[int, mido.Message]:
        index = next(i for i, m in enumerate(track) if m.type == "note_on" and m.velocity)
        return index, track[index].copy(velocity=max(1, track[index].velocity - 20))  # softer: a hit at 127 could not be harder

    def melody(midi: mido.MidiFile) -> mido.MidiTrack:
        return next(t for t in midi.tracks if any(m.type == "track_name" and m.name == "melody" for m in t))

    def retimed(track: mido.MidiTrack, change) -> mido.MidiTrack:
        """The track with each event's absolute tick changed by `change(index, tick, message)`."""
        now, timed = 0, []
        for index, message in enumerate(track):
            now += message.time
            timed.append((change(index, now, message), index, message))
        out, last = mido.MidiTrack(), 0
        for tick, _, message in sorted(timed, key=lambda t: (t[0], t[1])):
            out.append(message.copy(time=tick - last))
            last = tick
        return out

    type0 = edited("type0.mid", lambda midi: setattr(midi, "tracks", [mido.merge_tracks(midi.tracks)]) or setattr(midi, "type", 0))
    with pytest.raises(SongmillError, match=r"^type0\.mid is a type-0 MIDI file \(every part merged into one track\); export it from the DAW as type 1"):
        read_midi_override(type0, score)

    waltz = edited("waltz.mid", lambda midi: midi.tracks[0].__setitem__(1, midi.tracks[0][1].copy(numerator=3)))
    with pytest.raises(SongmillError, match=r"^waltz\.mid sets the time signature 3/4 at beat 0 \(bar 1\); the song is in 4/4: keep the song's time signature"):
        read_midi_override(waltz, score)

    notes = sorted(score.part("melody").notes, key=lambda n: n.start_beat)
    first, second = notes[0], notes[1]
    onto = lambda index, tick, message: (  # noqa: E731 - the second note's start (with its lyric) dragged back under the first
        round(first.start_beat * 960) + 240
        if tick == round(second.start_beat * 960) and (message.type == "lyrics" or (message.type == "note_on" and message.velocity))
        else tick
    )
    overlap = edited("overlap.mid", lambda midi: midi.tracks.__setitem__(midi.tracks.index(melody(midi)), retimed(melody(midi), onto)))
    beat = first.start_beat + 0.25
    with pytest.raises(
        SongmillError,
        match=rf"^overlap\.mid's melody has a note at beat {beat:g} \(bar \d+\) while the one from beat {first.start_beat:g} \(bar \d+\) still sounds; the voice sings one note at a time",
    ):
        read_midi_override(overlap, score)

    end = score.total_bars * score.beats_per_bar
    last_off = max(round(n.end_beat * 960) for n in notes)
    past = lambda index, tick, message: round((end + 2) * 960) if tick == last_off and message.type == "note_off" else tick  # noqa: E731 - the last note dragged out
    late = edited("late.mid", lambda midi: midi.tracks.__setitem__(midi.tracks.index(melody(midi)), retimed(melody(midi), past)))
    with pytest.raises(
        SongmillError,
        match=rf"^late\.mid's melody track has a note at beat [\d.]+ \(bar \d+\) that ends at beat [\d.]+, after the song's end \(beat {end:g}, bar {score.total_bars}\); keep the notes within",
    ):
        read_midi_override(late, score)

    assert edited_parts_not_imported(exported, score) == []
    drums = edited("drums.mid", lambda midi: drum_track(midi).__setitem__(*louder_first_hit(drum_track(midi))))
    assert read_midi_override(drums, score).parts == score.parts and edited_parts_not_imported(drums, score) == ["drums"]  # read, and said to be left
    deleted = edited("nodrums.mid", lambda midi: midi.tracks.remove(drum_track(midi)))
    assert edited_parts_not_imported(deleted, score) == ["drums"]  # a track deleted in the DAW is an edit the import leaves too

    other = score.model_copy(update={"title": "Paper Lanterns", "tempo_map": [TempoChange(bpm=104)]})
    with pytest.raises(
        SongmillError,
        match=r"is not the song's \(104 BPM at beat 0\) \(short\.mid's first track is named 'Short'; this song is 'Paper Lanterns'\); keep the song's tempo",
    ):
        read_midi_override(exported, other)
