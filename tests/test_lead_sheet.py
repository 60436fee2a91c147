"""The lead sheet a musician prints: read by MuseScore 3 and by its own MusicXML export.

Checked as a reader would: accidentals only where the key and the bar need them, hyphens between
a word's syllables, extenders under a melisma, the release's credits, readable note values tied
at beats and bar lines, a rehearsal mark at each section.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from songmill.core.score import Note, Part, Score, Section, Syllable, TempoChange
from songmill.core.score_export import LeadSheetCredits, readable_lengths, write_musicxml
from songmill.core.sections import section_labels
from tests.test_compose import make_song

CREDITS = LeadSheetCredits(
    composer="The Songmill Collective",
    lyricist="The Songmill Collective",
    rights="℗ 2026 Songmill Records",
    disclosure="Lyrics and composition generated with AI (songmill)",
)
KEY_ALTER = {"A minor": {}, "D major": {"F": 1, "C": 1}}


@pytest.fixture(scope="module")
def demo_sheet(tmp_path_factory):
    score, _, _ = make_song(7)
    path = tmp_path_factory.mktemp("sheet") / "score.musicxml"
    write_musicxml(score, path, credits=CREDITS)
    return score, path


def needless_accidentals(root: ET.Element, key_alters: dict[str, int]) -> list[str]:
    """Notes that show an accidental the key signature and the bar already give (a courtesy
    accidental, for a step the bar before altered, is not needless)."""
    needless = []
    for part in root.iter("part"):
        bar_before: set[str] = set()
        for measure in part.iter("measure"):
            in_bar: dict[tuple[str, str], int] = {}
            for note in measure.iter("note"):
                pitch = note.find("pitch")
                if pitch is None:
                    continue
                step, octave = pitch.findtext("step", ""), pitch.findtext("octave", "")
                alter = int(float(pitch.findtext("alter") or 0))
                expected = in_bar.get((step, octave), key_alters.get(step, 0))
                tied_in = any(t.get("type") == "stop" for t in note.iter("tie"))
                courtesy = (step, octave) not in in_bar and step in bar_before
                if note.find("accidental") is not None and alter == expected and not tied_in and not courtesy:
                    needless.append(f"measure {measure.get('number')}: {step}{octave}")
                in_bar[(step, octave)] = alter
            bar_before = {step for (step, _), alter in in_bar.items() if alter != key_alters.get(step, 0)}
    return needless


def lyric_words(root: ET.Element) -> list[str]:
    """The melody's words, joined from their syllables by the syllabic marks."""
    words, current = [], ""
    part = next(root.iter("part"))
    for lyric in part.iter("lyric"):
        syllabic, text = lyric.findtext("syllabic", "single"), lyric.findtext("text", "")
        current += text
        if syllabic in ("single", "end"):
            words.append(current)
            current = ""
    return words


def test_the_lead_sheet_reads_like_one(demo_sheet):
    score, path = demo_sheet
    root = ET.parse(path).getroot()
    assert needless_accidentals(root, KEY_ALTER["A minor"]) == []
    words, current = [], ""
    for n in score.part("melody").notes:  # the song's words, each joined from its syllables
        if n.syllable is not None and not n.melisma:
            current += n.syllable.text
            if n.syllable.word_end:
                words.append(current)
                current = ""
    assert any(len(w) > 4 for w in words)  # the song has words of more than one syllable
    assert lyric_words(root) == words  # on the page each is one word: begin … end, joined by hyphens
    creators = {c.get("type"): c.text for c in root.iter("creator")}
    assert creators == {"composer": "The Songmill Collective", "lyricist": "The Songmill Collective"}
    assert "generated with AI" in root.findtext(".//rights", "")
    marks = [m.text for m in root.iter("rehearsal")]
    assert marks == [label.title() for label in section_labels([s.name for s in score.sections])]
    for note in root.iter("note"):
        if note.get("print-object") != "no":
            assert len(note.findall("dot")) <= 1, ET.tostring(note, encoding="unicode")  # no double-dotted values


def test_a_melisma_gets_an_extender_and_a_word_its_hyphens(tmp_path):
    syllables = [Syllable(text="sum", word_start=True, word_end=False), Syllable(text="mer", word_start=False, word_end=True), Syllable(text="night")]
    notes = [
        Note(pitch=69, start_beat=0, duration_beats=1, syllable=syllables[0]),
        Note(pitch=71, start_beat=1, duration_beats=1, syllable=syllables[1]),
        Note(pitch=72, start_beat=2, duration_beats=1, syllable=syllables[2]),
        Note(pitch=74, start_beat=3, duration_beats=1, melisma=True),
    ]
    score = Score(
        key="A minor",
        tempo_map=[TempoChange(bpm=100)],
        sections=[Section(name="verse", start_bar=0, bars=1, energy=0.5)],
        parts=[Part(name="melody", role="melody", notes=notes)],
    )
    path = tmp_path / "s.musicxml"
    write_musicxml(score, path, credits=CREDITS)
    lyrics = list(ET.parse(path).getroot().iter("lyric"))
    assert [(lyric.findtext("syllabic"), lyric.findtext("text")) for lyric in lyrics] == [("begin", "sum"), ("end", "mer"), ("single", "night")]
    assert lyrics[2].find("extend") is not None and lyrics[0].find("extend") is None


@pytest.mark.parametrize(
    ("onset", "length", "pieces"),
    [
        (0.0, 3.75, [3.0, 0.75]),  # not a triple-dotted half: a dotted half tied to a dotted eighth
        (0.5, 1.0, [0.5, 0.5]),  # an off-beat quarter: tied at the beat
        (3.0, 2.0, [1.0, 1.0]),  # across the bar line
        (1.0, 2.0, [1.0, 1.0]),  # from beat 2: tied at the middle of the bar
        (0.25, 1.0, [0.25, 0.5, 0.25]),  # a syncopation: tied at the beat
        (0.0, 1.0 / 3, [1.0 / 3]),  # a triplet eighth is left to music21
    ],
)
def test_note_values_are_readable(onset, length, pieces):
    assert readable_lengths(onset, length, 4.0) == pytest.approx(pieces)


MSCORE = shutil.which("mscore3") or shutil.which("musescore3")


@pytest.mark.skipif(MSCORE is None, reason="MuseScore 3 (Debian musescore3; make setup installs it) converts the lead sheet")
def test_musescore_prints_it_and_its_own_export_reads_the_same(demo_sheet, tmp_path):
    score, path = demo_sheet
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    pdf, again = tmp_path / "score.pdf", tmp_path / "again.musicxml"
    for target in (pdf, again):
        done = subprocess.run([MSCORE, "-o", str(target), str(path)], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and target.stat().st_size > 1000, done.stderr
    assert pdf.read_bytes().startswith(b"%PDF")
    root = ET.parse(again).getroot()  # MuseScore's own reading of the sheet, written back
    assert needless_accidentals(root, KEY_ALTER["A minor"]) == []
    assert lyric_words(root) == lyric_words(ET.parse(path).getroot())  # the same words, syllables joined by the hyphens MuseScore read
    assert any(lyric.findtext("syllabic") == "begin" for lyric in root.iter("lyric"))
    credits = " ".join(" ".join(c.itertext()) for c in root.iter("credit"))
    assert "Paper Lanterns" in credits and "The Songmill Collective" in credits
    assert [m.text for m in root.iter("rehearsal")] == [label.title() for label in section_labels([s.name for s in score.sections])]


@pytest.mark.parametrize(
    ("key", "midi", "name"), [("D major", 63, "D#"), ("E major", 70, "A#"), ("F major", 66, "G-"), ("A minor", 68, "G#"), ("Bb major", 61, "D-")]
)
def test_chromatic_notes_are_spelled_for_the_key(key, midi, name):
    from songmill.core.score_export import _m21_key, spelled_pitch

    assert spelled_pitch(midi, _m21_key(key)).name == name
    assert spelled_pitch(62, _m21_key(key)).name == "D"  # a natural note stays itself (never C## or E--)
