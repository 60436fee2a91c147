"""Phrases: how a section's bars divide into sung lines, and how many syllables a line holds.

Shared by the lyrics writer (how many lines, how many syllables each) and the composer (where
each line's phrase starts and ends). A phrase lasts a whole number of bars when the lines
divide the section evenly, else it starts on the nearest beat.
"""

from __future__ import annotations

from songmill.core.score import Score, Section

PHRASE_TARGET_S = 4.8  # a comfortable sung line: one breath
BREATH_BEATS = 1.0  # rest left at the end of each phrase
# Share of the eighth-note slots (sixteenth slots for hip-hop) a line fills with syllables.
FILL = {"pop": 0.6, "rock": 0.6, "synthpop": 0.6, "folk": 0.65, "ballad": 0.65, "hip-hop": 0.55}
SUBDIVISION = {"hip-hop": 4}  # slots per beat; others sing in eighths (2)
# The shortest slot a sung syllable is planned on (s): 8 syllables a second. Hip-hop's sixteenths
# above 125 BPM fell under it (69 ms at 216 BPM), notes no voice sings in tune: the config grid's
# fast hip-hop songs read 43–71 % voiced and up to 175 cents off. Above it the grid is halved.
MIN_SLOT_S = 0.12


def bars_per_line(section_bars: int, bar_s: float) -> int:
    """1, 2 or 4 bars per line: dividing the section into 2–8 lines, nearest one breath long."""
    options = [b for b in (1, 2, 4) if section_bars % b == 0 and 2 <= section_bars // b <= 8]
    if not options:
        options = [b for b in (1, 2, 4, 8) if section_bars % b == 0] or [section_bars]
    return min(options, key=lambda b: (abs(b * bar_s - PHRASE_TARGET_S), b))


def section_start_beat(section: Section, score: Score) -> float:
    return section.start_bar * score.beats_per_bar


def phrase_spans(section: Section, lines: int, score: Score) -> list[tuple[float, float]]:
    """(start beat, end beat) of each line's phrase in the section."""
    start = section_start_beat(section, score)
    total = section.bars * score.beats_per_bar
    beat = 1.0 if score.beats_per_bar.is_integer() else 0.5
    edges = [start + round(i * total / lines / beat) * beat for i in range(lines)] + [start + total]
    return list(zip(edges, edges[1:]))


def slots_per_beat(genre: str, bpm: float | None = None) -> int:
    """Syllable slots per beat: the genre's subdivision, halved until a slot lasts MIN_SLOT_S at `bpm`."""
    slots = SUBDIVISION.get(genre, 2)
    while bpm and slots > 1 and 60.0 / (bpm * slots) < MIN_SLOT_S:
        slots //= 2
    return slots


def target_syllables(phrase_beats: float, genre: str, section_name: str, bpm: float | None = None) -> int:
    slots = (phrase_beats - BREATH_BEATS) * slots_per_beat(genre, bpm)
    target = round(slots * FILL.get(genre, 0.6)) - (1 if section_name == "chorus" else 0)
    return max(4, min(target, 16))


def syllable_capacity(phrase_beats: float) -> int:
    """The most syllables a phrase can carry: one per sixteenth note, leaving half a beat to breathe."""
    return max(1, int((phrase_beats - 0.5) * 4))
