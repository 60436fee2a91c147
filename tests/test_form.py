"""Song form: bar counts fitted to the target duration, repeating choruses, an energy arc."""

from __future__ import annotations

import pytest

from models.composition.form import DEFAULT_FORMS, song_form
from songmill.core.vocab import GENRES


@pytest.mark.parametrize("genre", GENRES)
@pytest.mark.parametrize("tempo, target", [(72, 150), (104, 180), (128, 200), (170, 240)])
def test_duration_lands_near_the_target(genre, tempo, target):
    score = song_form(title="t", genre=genre, key="C major", time_signature="4/4", tempo_bpm=tempo, target_duration_s=target, structure=None)
    bar_s = 4 * 60 / tempo
    # Musical sizes (multiples of 2 or 4 bars, choruses moving together) limit how close we get.
    assert abs(score.duration_s - target) <= max(0.08 * target, 4 * bar_s), (score.duration_s, target)
    assert [s.name for s in score.sections] == list(DEFAULT_FORMS[genre])


def test_choruses_repeat_at_one_length_and_sections_tile_the_song():
    score = song_form(title="t", genre="pop", key="A minor", time_signature="4/4", tempo_bpm=104, target_duration_s=180, structure=None)
    assert len({s.bars for s in score.sections if s.name == "chorus"}) == 1
    for before, after in zip(score.sections, score.sections[1:]):
        assert after.start_bar == before.start_bar + before.bars


def test_fixed_bars_are_kept_and_energy_peaks_on_the_last_chorus():
    structure = [("intro", None), ("verse", None), ("chorus", None), ("bridge", 6), ("chorus", None), ("outro", 2)]
    score = song_form(title="t", genre="rock", key="E minor", time_signature="3/4", tempo_bpm=90, target_duration_s=120, structure=structure)
    assert score.sections[3].bars == 6 and score.sections[5].bars == 2
    energies = [s.energy for s in score.sections]
    assert energies[4] == 1.0 == max(energies)
    assert energies[2] < energies[4] and energies[0] < energies[1]
    assert score.beats_per_bar == 3.0


def test_a_target_the_form_cannot_reach_is_reported(caplog):
    """Nine sections of at least 2 or 4 bars last about 70 s at 104 BPM: a 30-second target is
    rendered at that length, and a warning names the song, both lengths and what would help."""
    with caplog.at_level("WARNING", logger="songmill.form"):
        score = song_form(title="Paper Lanterns", genre="pop", key="A minor", time_signature="4/4", tempo_bpm=104, target_duration_s=30, structure=None)
    assert score.duration_s == pytest.approx(30 * 4 * 60 / 104)  # 30 bars: every section at its smallest size
    assert [r.getMessage() for r in caplog.records] == [
        "Paper Lanterns: its 9 sections last 69 s at 104 BPM at their shortest musical sizes, against a target_duration_s of 30 s; "
        "give a structure with fewer sections (or a faster tempo) for a shorter song"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="songmill.form"):
        song_form(title="t", genre="pop", key="A minor", time_signature="4/4", tempo_bpm=104, target_duration_s=180, structure=None)
    assert not caplog.records  # a reachable target says nothing
