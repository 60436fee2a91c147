"""A session a DAW opens: the stems, the MIDI with its tempo map, a DAWproject and a REAPER project.

    files = write_daw_session(folder, score, stems, title="Paper Lanterns", artist="…")

`folder/` gets
- `stems/<name>.wav`: every stem of the track (instruments and voices), 48 kHz 24-bit, on the
  song's timeline from its first sample, so each one starts at bar 1;
- `<name>.mid`: the score (every part, the tempo map, key and time signatures, section markers,
  the lyrics as lyric events; songmill.core.score_export);
- `<name>.dawproject`: the open interchange format (a ZIP of project.xml and metadata.xml with
  the stems inside; Bitwig Studio, Studio One and Cubase read it): one audio track per stem
  and a notes track for the melody, each clip at beat 0, the tempo (and its changes), the time
  signature and a marker per section. Both XML files are checked against the published schemas
  (songmill/release/schemas/dawproject) before anything is written;
- `<name>.rpp`: a REAPER project (plain text) placing the same stems and the MIDI file at 0 s,
  with the tempo map and the section markers.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lxml import etree

from songmill import __version__
from songmill.core.audio import read_wav, write_pcm_wav, write_wav
from songmill.core.errors import SongmillError
from songmill.core.score import Score
from songmill.core.score_export import write_midi
from songmill.core.sections import section_labels

SCHEMAS = Path(__file__).resolve().parent / "schemas" / "dawproject"
DAWPROJECT_VERSION = "1.0"


@dataclass(frozen=True)
class DawSession:
    folder: Path
    dawproject: Path
    reaper: Path
    midi: Path
    stems: dict[str, Path]  # stem name → its file under stems/


def write_daw_session(folder: Path, score: Score, stems: dict[str, Path], *, name: str, title: str, artist: str, genre: str = "") -> DawSession:
    """Write the session (see the module docstring); `stems`: name → a WAV on the song's timeline."""
    if not stems:
        raise SongmillError("the track has no stems to put in a DAW session (an ACE-Step full mix has none; render with the soundfont)")
    audio, loaded = {}, {}
    for stem_name, source in sorted(stems.items()):
        samples, rate = read_wav(source)
        loaded[stem_name] = (samples, rate)
        audio[stem_name] = (samples.shape[1] if samples.ndim == 2 else 1, rate, len(samples) / rate)
    project, metadata = dawproject_xml(score, audio, title=title, artist=artist, genre=genre), metadata_xml(title=title, artist=artist, genre=genre)
    validate(project, "Project.xsd")  # before anything is written
    validate(metadata, "MetaData.xsd")
    stem_dir = folder / "stems"
    stem_dir.mkdir(parents=True, exist_ok=True)
    placed = {}
    for stem_name, (samples, rate) in loaded.items():
        placed[stem_name] = stem_dir / f"{stem_name}.wav"
        _write_stem(placed[stem_name], samples, rate)
    midi = folder / f"{name}.mid"
    write_midi(score, midi)
    dawproject = folder / f"{name}.dawproject"
    with zipfile.ZipFile(dawproject, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.xml", project)
        archive.writestr("metadata.xml", metadata)
        for stem_name, path in placed.items():
            archive.write(path, f"audio/{stem_name}.wav", compress_type=zipfile.ZIP_STORED)  # audio is stored, as DAWs expect
    reaper = folder / f"{name}.rpp"
    reaper.write_text(reaper_project(score, audio, midi_name=midi.name), encoding="utf-8")
    return DawSession(folder, dawproject, reaper, midi, placed)


def _write_stem(path: Path, samples: np.ndarray, rate: int) -> None:
    """24-bit PCM, what every DAW imports (half the size of our float stems, about −144 dBFS of
    rounding, far under any stem's noise); a stem with peaks over full scale stays float."""
    if float(np.max(np.abs(samples), initial=0.0)) <= 1.0:
        write_pcm_wav(path, np.round(np.clip(samples, -1.0, 1.0 - 2**-23) * 2**23).astype(np.int32), rate, 24)
    else:
        write_wav(path, samples, rate)


def validate(document: bytes, schema_name: str) -> None:
    """Check a DAWproject XML file against its published schema (ddex.py's hardened parser)."""
    from songmill.release.ddex import validate_against

    validate_against(document, SCHEMAS / schema_name, what=f"the DAWproject {schema_name.removesuffix('.xsd').lower()} written")


def _element(parent, tag: str, **attributes) -> etree._Element:
    return etree.SubElement(parent, tag, {k: str(v) for k, v in attributes.items() if v is not None})


def _section_markers(score: Score) -> list[tuple[float, str]]:
    labels = section_labels([s.name for s in score.sections])
    return [(float(s.start_bar * score.beats_per_bar), label.title()) for label, s in zip(labels, score.sections)]


def dawproject_xml(score: Score, audio: dict[str, tuple[int, int, float]], *, title: str, artist: str, genre: str) -> bytes:
    """project.xml: tracks and channels, then one arrangement lane per track with its clip at beat 0."""
    meter = score.meter
    project = etree.Element("Project", version=DAWPROJECT_VERSION)
    _element(project, "Application", name="songmill", version=__version__)
    transport = _element(project, "Transport")
    _element(transport, "Tempo", id="tempo", name="Tempo", unit="bpm", value=f"{score.tempo_map[0].bpm:g}", min="20", max="666")
    _element(transport, "TimeSignature", id="signature", numerator=meter.numerator, denominator=meter.denominator)
    structure = _element(project, "Structure")
    tracks = [(name, "audio", channels) for name, (channels, _, _) in audio.items()]
    melody = next((p for p in score.parts if p.role in ("melody", "lead") and p.notes), None)
    if melody is not None:
        tracks.append((f"{melody.name} (notes)", "notes", 2))
    for number, (name, content, channels) in enumerate(tracks):
        track = _element(structure, "Track", id=f"track-{number}", name=name, contentType=content, loaded="true")
        channel = _element(track, "Channel", id=f"channel-{number}", name=name, role="regular", audioChannels=channels, destination="master")
        _element(channel, "Pan", id=f"pan-{number}", name="Pan", unit="normalized", value="0.5", min="0.0", max="1.0")
        _element(channel, "Volume", id=f"volume-{number}", name="Volume", unit="linear", value="1.0", min="0.0", max="2.0")
    master = _element(structure, "Channel", id="master", name="Master", role="master", audioChannels=2)
    _element(master, "Volume", id="volume-master", name="Volume", unit="linear", value="1.0", min="0.0", max="2.0")
    arrangement = _element(project, "Arrangement", id="arrangement")
    lanes = _element(arrangement, "Lanes", id="lanes", timeUnit="beats")
    song_beats = score.beats_at(max(seconds for _, _, seconds in audio.values())) if audio else score.end_beat
    for number, (name, content, _) in enumerate(tracks):
        lane = _element(lanes, "Lanes", id=f"lane-{number}", track=f"track-{number}")
        clips = _element(lane, "Clips", id=f"clips-{number}")
        if content == "audio":
            channels, rate, seconds = audio[name]
            clip = _element(clips, "Clip", time="0.0", duration=f"{score.beats_at(seconds):.6f}", playStart="0.0", name=name)
            warps = _element(clip, "Warps", id=f"warps-{number}", timeUnit="beats", contentTimeUnit="seconds")
            media = _element(warps, "Audio", id=f"audio-{number}", channels=channels, sampleRate=rate, duration=f"{seconds:.6f}")
            _element(media, "File", path=f"audio/{name}.wav")
            for change in score.tempo_map:  # beat ↔ second, so the stems follow the tempo map
                _element(warps, "Warp", time=f"{change.beat:.6f}", contentTime=f"{score.seconds_at(change.beat):.6f}")
            _element(warps, "Warp", time=f"{score.beats_at(seconds):.6f}", contentTime=f"{seconds:.6f}")
        else:
            assert melody is not None
            clip = _element(clips, "Clip", time="0.0", duration=f"{song_beats:.6f}", playStart="0.0", name=name)
            notes = _element(clip, "Notes", id=f"notes-{number}")
            for note in melody.notes:
                _element(
                    notes,
                    "Note",
                    time=f"{note.start_beat:.6f}",
                    duration=f"{note.duration_beats:.6f}",
                    channel=0,
                    key=note.pitch,
                    vel=f"{note.velocity / 127:.4f}",
                )
    markers = _element(arrangement, "Markers", id="markers")
    for beat, label in _section_markers(score):
        _element(markers, "Marker", time=f"{beat:.6f}", name=label)
    tempo = _element(arrangement, "TempoAutomation", id="tempo-automation", unit="bpm")
    _element(tempo, "Target", parameter="tempo")
    for change in score.tempo_map:
        _element(tempo, "RealPoint", time=f"{change.beat:.6f}", value=f"{change.bpm:g}", interpolation="hold")
    return etree.tostring(project, xml_declaration=True, encoding="UTF-8", standalone=True, pretty_print=True)


def metadata_xml(*, title: str, artist: str, genre: str) -> bytes:
    metadata = etree.Element("MetaData")
    for tag, text in (("Title", title), ("Artist", artist), ("Genre", genre), ("Comment", "Made with songmill; stems at bar 1")):
        if text:
            etree.SubElement(metadata, tag).text = text
    return etree.tostring(metadata, xml_declaration=True, encoding="UTF-8", standalone=True, pretty_print=True)


def reaper_project(score: Score, audio: dict[str, tuple[int, int, float]], *, midi_name: str) -> str:
    """A REAPER project: the tempo (and its changes), the markers, a track per stem and one for the MIDI file, all at 0 s."""
    meter = score.meter
    lines = ['<REAPER_PROJECT 0.1 "6.0/songmill" 0', f"  TEMPO {score.tempo_map[0].bpm:g} {meter.numerator} {meter.denominator}"]
    if len(score.tempo_map) > 1:
        lines.append("  <TEMPOENVEX")
        lines += [f"    PT {score.seconds_at(change.beat):.6f} {change.bpm:g} 1" for change in score.tempo_map]
        lines.append("  >")
    for number, (beat, label) in enumerate(_section_markers(score), start=1):
        lines.append(f'  MARKER {number} {score.seconds_at(beat):.6f} "{label}" 0')
    length = max(seconds for _, _, seconds in audio.values())
    for name, (_, _, seconds) in audio.items():
        lines += _reaper_track(name, seconds, "WAVE", f"stems/{name}.wav")
    lines += _reaper_track("score (MIDI)", length, "MIDI", midi_name)
    lines.append(">")
    return "\n".join(lines) + "\n"


def _reaper_track(name: str, seconds: float, kind: str, path: str) -> list[str]:
    return [
        "  <TRACK",
        f'    NAME "{name}"',
        "    <ITEM",
        "      POSITION 0",
        f"      LENGTH {seconds:.6f}",
        f'      NAME "{name}"',
        f"      <SOURCE {kind}",
        f'        FILE "{path}"',
        "      >",
        "    >",
        "  >",
    ]
