"""Melodic features of a score's melody: what listeners' taste for a tune is measured against.

    features = melodic_features(score)   # {"step_share": 0.64, "leap_share": 0.08, ...}

Intervals are between consecutive melody notes that start a syllable or a new pitch (a melisma's
repeated pitch counts as one note). All shares are of intervals; 0.0 for a melody of one note.
"""

from __future__ import annotations

import numpy as np

from songmill.core.score import Score

STEP_SEMITONES = 2  # a whole tone or less is a step
LEAP_SEMITONES = 5  # above a fourth is a leap

FEATURES = ("step_share", "leap_share", "repeat_share", "mean_interval", "range_semitones", "notes")


def melodic_features(score: Score) -> dict[str, float]:
    """Step, leap and repeated-pitch shares, the mean absolute interval (semitones), the range."""
    melody = [p for p in score.parts if p.role == "melody" and not p.is_drum]
    pitches = [n.pitch for n in sorted(melody[0].notes, key=lambda n: n.start_beat)] if melody else []
    return features_of_pitches(pitches)


def features_of_pitches(pitches: list[int]) -> dict[str, float]:
    if len(pitches) < 2:
        return {name: 0.0 for name in FEATURES} | {"notes": float(len(pitches))}
    intervals = np.abs(np.diff(np.asarray(pitches, dtype=float)))
    return {
        "step_share": round(float(np.mean((intervals > 0) & (intervals <= STEP_SEMITONES))), 4),
        "leap_share": round(float(np.mean(intervals > LEAP_SEMITONES)), 4),
        "repeat_share": round(float(np.mean(intervals == 0)), 4),
        "mean_interval": round(float(np.mean(intervals)), 4),
        "range_semitones": float(max(pitches) - min(pitches)),
        "notes": float(len(pitches)),
    }
