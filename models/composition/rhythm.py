"""Lyric rhythm: where each syllable of a line starts and how long it lasts.

Syllables go on a grid (eighths, sixteenths for hip-hop) inside the line's phrase, leaving a
breath at the end. A dynamic programme picks the onsets that put stressed syllables on strong
beats and unstressed ones between them, with even spacing; each syllable then lasts until the
next begins, the last one until the breath.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songmill.core.errors import SongmillError
from songmill.core.music import TimeSignature, metric_strength
from songmill.core.phrasing import BREATH_BEATS

# Reward for a syllable on a slot of each metric strength (downbeat, strong, weak beat, off-beat).
STRESSED_ON = np.array([3.0, 2.5, 1.0, -2.0])
UNSTRESSED_ON = np.array([-1.5, -1.0, 0.3, 0.5])
SPACING_WEIGHT = 0.12


@dataclass(frozen=True)
class Onset:
    start_beat: float
    duration_beats: float
    strength: int


def place_syllables(
    stresses: list[bool], *, start_beat: float, end_beat: float, bar_start_beat: float, meter: TimeSignature, slots_per_beat: int, where: str = ""
) -> list[Onset]:
    """Onsets for a line's syllables inside [start_beat, end_beat).

    `bar_start_beat` is the beat of any bar line (to find each slot's metric strength)."""
    n = len(stresses)
    singable = max(end_beat - start_beat - BREATH_BEATS, 1.0)
    step = 1.0 / slots_per_beat
    slots = int(round(singable / step))
    if n > slots:  # too dense on this grid: sing in sixteenths
        step, slots = 0.25, int(round(singable / 0.25))
    if n > slots:
        raise SongmillError(f"{where}: {n} syllables do not fit in {singable:g} beats; shorten the line or lengthen the section")
    bar = meter.quarter_notes_per_bar
    positions = start_beat + np.arange(slots) * step
    strength = np.array([metric_strength((p - bar_start_beat) % bar, meter.numerator, meter.denominator) for p in positions])
    reward = np.where(np.array(stresses)[:, None], STRESSED_ON[strength][None, :], UNSTRESSED_ON[strength][None, :])
    ideal = slots / n
    gaps = np.arange(slots)[None, :] - np.arange(slots)[:, None]  # gap[k, j] = j - k
    target_gap = min(ideal, 1.0 / step)  # at most a beat between syllables
    spacing = np.where(gaps > 0, -SPACING_WEIGHT * (gaps - target_gap) ** 2, -np.inf)

    score = np.full((n, slots), -np.inf)
    back = np.zeros((n, slots), dtype=int)
    score[0] = reward[0] - 0.4 * np.arange(slots)  # start near the phrase start
    for i in range(1, n):
        total = score[i - 1][:, None] + spacing
        back[i] = np.argmax(total, axis=0)
        score[i] = total[back[i], np.arange(slots)] + reward[i]
    score[n - 1] += 0.08 * np.arange(slots)  # let the line breathe to its end
    chosen = [int(np.argmax(score[n - 1]))]
    for i in range(n - 1, 0, -1):
        chosen.append(int(back[i][chosen[-1]]))
    chosen.reverse()
    onsets = []
    for i, slot in enumerate(chosen):
        begin = float(positions[slot])
        finish = float(positions[chosen[i + 1]]) if i + 1 < n else start_beat + singable
        onsets.append(Onset(begin, max(finish - begin, step), int(strength[slot])))
    return onsets
