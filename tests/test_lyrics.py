"""Lyrics: phonetics, provided lyrics matched to the form, the rule writer, its bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from models.composition.form import song_form
from models.lyrics.songwriter import plan_sections, write_lyrics
from qc.songwriting import rhyme_ratio
from songmill.core.errors import SongmillError
from songmill.core.lyric_blocks import assign_blocks, form_from_blocks, parse_blocks
from songmill.core.phonetics import espeak_phonemes, rhyming_part, syllabify, words_rhyme
from songmill.core.spec import load_release
from tests.conftest import PROJECT

EP = PROJECT / "config/releases/harbour-lights-ep.yaml"
THEME = "letting go of a summer love, lanterns drifting over the river at night"


def demo_form(genre="pop", structure=None, time_signature="4/4", tempo=104.0, duration=180.0):
    return song_form(
        title="Paper Lanterns", genre=genre, key="A minor", time_signature=time_signature, tempo_bpm=tempo, target_duration_s=duration, structure=structure
    )


def written(seed=7, genre="pop", batch_index=0, batch_size=1, title="Paper Lanterns", form=None):
    return write_lyrics(
        form or demo_form(genre),
        title=title,
        theme=THEME,
        mood="hopeful",
        genre=genre,
        provided=None,
        instrumental=False,
        rng=np.random.default_rng(seed),
        batch_index=batch_index,
        batch_size=batch_size,
    )


# ----------------------------------------------------------------------------- phonetics


def test_dictionary_words_split_into_syllables_with_stress_and_phonemes():
    lantern = syllabify("lantern")
    assert [s.text for s in lantern] == ["lan", "tern"]
    assert [s.phonemes for s in lantern] == [["L", "AE1", "N"], ["T", "ER0", "N"]]
    assert [s.stressed for s in lantern] == [True, False]
    assert lantern[0].word_start and lantern[1].word_end and not lantern[0].word_end
    assert [s.stressed for s in syllabify("the")] == [False]  # function words carry no stress


def test_words_the_dictionary_lacks_are_pronounced_by_espeak():
    phonemes = espeak_phonemes("zorblax")
    assert any(p[-1].isdigit() for p in phonemes) and phonemes[0] == "Z"
    assert len(syllabify("zorblax")) == 2


def test_rhymes_come_from_the_dictionary():
    assert words_rhyme("light", "night") and words_rhyme("chair", "air")
    assert not words_rhyme("home", "go")
    assert rhyming_part("salt") == rhyming_part("fault") == "AO L T"


# ----------------------------------------------------------------------------- provided lyrics


def test_provided_lyrics_map_onto_the_structure_and_a_chorus_written_once_repeats():
    spec = load_release(EP)
    track = spec.tracks[1]
    form = song_form(
        title=track.title,
        genre="ballad",
        key=track.key,
        time_signature=track.time_signature,
        tempo_bpm=track.tempo,
        target_duration_s=track.target_duration_s,
        structure=[(s.name, s.bars) for s in track.structure],
    )
    lyrics = write_lyrics(
        form, title=track.title, theme=track.theme, mood=track.mood, genre="ballad", provided=track.lyrics, instrumental=False, rng=np.random.default_rng(0)
    )
    assert lyrics.source == "provided"
    assert [(s.name, s.form_index) for s in lyrics.sections] == [("verse", 1), ("chorus", 2), ("verse", 3), ("chorus", 4), ("bridge", 5), ("chorus", 6)]
    choruses = [[ln.text for ln in s.lines] for s in lyrics.sections if s.name == "chorus"]
    assert choruses[0] == choruses[1] == choruses[2]
    assert lyrics.sections[0].lines[0].text == "My father sailed at morning light"
    assert all(syl.phonemes for s in lyrics.sections for ln in s.lines for syl in ln.syllables)
    assert lyrics.hook == "Salt and silver, silver and salt"


def test_lyrics_without_a_structure_make_the_form():
    blocks = parse_blocks("[verse]\none line here\n[chorus]\nand the chorus\n")
    assert form_from_blocks(blocks) == ["intro", "verse", "chorus", "outro"]


def test_lines_before_any_tag_are_an_error_naming_the_line():
    with pytest.raises(SongmillError) as err:
        parse_blocks("hello there\n[verse]\nmore", where="track 1 (X) lyrics")
    assert str(err.value) == "track 1 (X) lyrics line 1: 'hello there' comes before any section tag; start the lyrics with a tag such as [verse]"


def test_a_block_without_a_section_in_the_structure_is_an_error():
    blocks = parse_blocks("[verse]\na\n[bridge]\nb\n")
    with pytest.raises(SongmillError) as err:
        assign_blocks(["intro", "verse", "chorus", "outro"], blocks)
    assert "lyrics: the structure's chorus (section 3) has no [chorus] block to sing" in str(err.value)
    with pytest.raises(SongmillError) as err:
        assign_blocks(["verse"], blocks)
    assert str(err.value) == (
        "lyrics line 3: the [bridge] block has no matching section in the structure (verse); add the section to the structure or remove the block"
    )


def test_a_line_longer_than_its_phrase_is_a_clear_error_not_a_truncation():
    form = demo_form(structure=[("verse", 2), ("chorus", 4)], duration=30)
    long_line = "and every single word of this unreasonably long and rambling line goes on forever and ever and ever"
    with pytest.raises(SongmillError) as err:
        write_lyrics(
            form,
            title="T",
            theme="x",
            mood="calm",
            genre="pop",
            instrumental=False,
            provided=f"[verse]\n{long_line}\nshort\n[chorus]\nla la\n",
            rng=np.random.default_rng(0),
        )
    assert str(err.value).startswith(f"lyrics line 2: '{long_line}' has 30 syllables, but its phrase in the verse (1 bar at 104 BPM) carries at most 14;")
    assert str(err.value).endswith("shorten the line or give the verse more bars in the structure")


# ----------------------------------------------------------------------------- the rule writer


def test_written_lines_hit_their_syllable_targets_and_rhyme_where_the_scheme_says():
    lyrics = written()
    assert lyrics.source == "writer"
    for section in lyrics.sections:
        assert len(section.scheme) == len(section.lines)
        for line in section.lines:
            if line.text != lyrics.hook:
                assert len(line.syllables) == line.target_syllables, line.text
    assert rhyme_ratio(lyrics) == 1.0


def test_the_chorus_carries_the_title_and_repeats_identically():
    lyrics = written()
    choruses = [s for s in lyrics.sections if s.name == "chorus"]
    assert len(choruses) == 3
    assert all([ln.text for ln in c.lines] == [ln.text for ln in choruses[0].lines] for c in choruses)
    assert "Paper Lanterns" in lyrics.hook and choruses[0].lines[0].text == lyrics.hook


def test_verses_differ_and_no_verse_line_repeats_within_a_song():
    lyrics = written()
    lines = [ln.text for s in lyrics.sections if s.name != "chorus" for ln in s.lines]
    assert len(lines) == len(set(lines))


def test_no_line_is_reused_across_the_songs_of_one_batch():
    batch = [written(seed=7, batch_index=i, batch_size=3, title=t) for i, t in enumerate(("One", "Two", "Three"))]
    sets = [{ln for ln in lyrics.all_lines if ln != lyrics.hook} for lyrics in batch]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


def test_same_seed_same_lyrics_other_seed_other_lyrics():
    assert written(seed=3).all_lines == written(seed=3).all_lines
    assert written(seed=3).all_lines != written(seed=4).all_lines


def test_line_counts_and_rhyme_schemes_follow_the_form_and_genre():
    plans = plan_sections(demo_form("hip-hop", tempo=92), "hip-hop")
    verse = next(p for p in plans if p.name == "verse")
    assert verse.scheme == "AABBCCDD"[: len(verse.lines)]  # couplets in hip-hop verses
    assert all(line.target_syllables >= 10 for line in verse.lines)  # rap lines are dense
    pop = plan_sections(demo_form("pop"), "pop")
    assert next(p for p in pop if p.name == "verse").scheme == "ABAB"


def test_an_empty_theme_is_a_clear_error():
    with pytest.raises(SongmillError) as err:
        write_lyrics(demo_form(), title="T", theme="  ", mood="calm", genre="pop", provided=None, instrumental=False, rng=np.random.default_rng(0))
    assert str(err.value) == "theme is empty; the lyrics writer needs a theme (a few words on what the song is about)"


def test_an_instrumental_track_has_no_lyrics():
    lyrics = write_lyrics(demo_form(), title="T", theme="x", mood="calm", genre="pop", provided=None, instrumental=True, rng=np.random.default_rng(0))
    assert lyrics.source == "instrumental" and lyrics.sections == []


@pytest.mark.parametrize("genre", ["pop", "ballad"])
def test_short_phrases_at_a_slow_tempo_get_lines_that_fit_instead_of_an_error(genre, caplog):
    """45 s at 72 BPM: one-bar phrases plan four-syllable lines, which few sentence shapes make.
    The writer lets a line grow a syllable at a time (logged), never past what its phrase carries."""
    form = demo_form(genre, tempo=72.0, duration=45.0)
    lyrics = written(seed=7, genre=genre, form=form)
    capacities = {(p.form_index, i): line.capacity for p in plan_sections(form, genre) for i, line in enumerate(p.lines)}
    for section in lyrics.sections:
        for index, line in enumerate(section.lines):
            assert 0 < len(line.syllables) <= capacities[(section.form_index, index)], line.text
    assert rhyme_ratio(lyrics) >= 0.8
    assert any("syllable(s) longer" in r.getMessage() for r in caplog.records)  # it did have to adapt
