"""Suggestions: read a rendered version, propose ranked edit operations, each with its reason and
the measurement behind it.

    metrics = measure_version(master, rate, score, tone_target_db, tempo_bpm, genre, parts)
    for s in suggest(metrics):        # best first
        print(s.reason)               # "the choruses are 0.4 LU over the verses …: lift them by 3 dB"

Every suggestion names the metric it acts on and the way applying it should move that metric
(`direction`), so whether suggestions work is itself measured (benchmarks/bench_editor.py:
apply each one, measure again). The measurements are made here, from the master's audio and
the score, with the core's BS.1770 meter and octave bands — not taken from the stages'
own reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songmill.core import loudness
from songmill.core.score import Score
from songmill.core.sections import section_labels
from songmill.editor import operations as ops

# Tempo ranges people expect of a genre (BPM); outside them a suggestion moves toward the nearer edge.
GENRE_TEMPO_BPM = {"pop": (90, 130), "rock": (100, 150), "synthpop": (100, 130), "folk": (80, 120), "ballad": (60, 90), "hip-hop": (80, 100)}
CHORUS_LIFT_LU = 1.5  # a chorus is expected to sit at least this much above the verses
TOP_BANDS, LOW_BANDS = slice(8, 10), slice(0, 3)  # 8–16 kHz; 31.5–125 Hz (loudness.OCTAVE_CENTRES_HZ)
TONE_TOLERANCE_DB, LOW_TOLERANCE_DB = 1.5, 3.0
MIN_LOUDNESS_RANGE_LU = 3.0  # a master with less than this between its quiet and loud parts is flat


@dataclass(frozen=True)
class Suggestion:
    operation: ops.Operation
    reason: str
    metric: str
    value: float  # the metric as measured now
    direction: int  # +1: applying it should raise the metric; -1: lower it
    priority: float  # larger first (how far the metric is from where it should be)

    def to_dict(self) -> dict:
        return {
            "operation": self.operation.model_dump(mode="json", exclude_none=True),
            "reason": self.reason,
            "metric": self.metric,
            "value": round(self.value, 3),
            "direction": self.direction,
            "priority": round(self.priority, 3),
        }


def section_loudness_lu(master: np.ndarray, rate: int, score: Score) -> dict[str, float]:
    """Each section's loudness on the master (BS.1770, gated), by label."""
    labels = section_labels([s.name for s in score.sections])
    out = {}
    for label, section in zip(labels, score.sections):
        begin = int(score.seconds_at(section.start_bar * score.beats_per_bar) * rate)
        end = int(score.seconds_at((section.start_bar + section.bars) * score.beats_per_bar) * rate)
        if end - begin > rate:  # the meter needs at least its 400 ms blocks
            out[label] = round(loudness.integrated_lufs(master[begin:end], rate), 2)
    return out


def measure_version(master: np.ndarray, rate: int, score: Score, tone_target_db: list[float], *, tempo_bpm: float, genre: str) -> dict[str, float]:
    """The metrics suggestions act on (see the module docstring); NaN where a song has no such part."""
    sections = section_loudness_lu(master, rate, score)
    chorus = [v for k, v in sections.items() if k.startswith("chorus") and np.isfinite(v)]
    verse = [v for k, v in sections.items() if k.startswith("verse") and np.isfinite(v)]
    tone = loudness.octave_balance_db(master, rate) - np.asarray(tone_target_db)
    low, high = GENRE_TEMPO_BPM.get(genre, (60, 180))
    return {
        "chorus_over_verse_lu": float(np.mean(chorus) - np.mean(verse)) if chorus and verse else float("nan"),
        "top_octaves_vs_target_db": float(np.mean(tone[TOP_BANDS])),
        "low_octaves_vs_target_db": float(np.mean(tone[LOW_BANDS])),
        "loudness_range_lu": float(loudness.loudness_range_lu(loudness.short_term_lufs(master, rate))),
        "tempo_outside_genre_bpm": float(tempo_bpm - high if tempo_bpm > high else tempo_bpm - low if tempo_bpm < low else 0.0),
    }


def suggest(metrics: dict[str, float], *, sections: list[str], genre: str) -> list[Suggestion]:
    """Ranked suggestions (best first) for a version's metrics."""
    found: list[Suggestion] = []
    lift = metrics["chorus_over_verse_lu"]
    if np.isfinite(lift) and lift < CHORUS_LIFT_LU:
        found.append(
            Suggestion(
                ops.SectionLevel(section="chorus", by_db=3.0),
                f"the choruses are {lift:+.1f} LU against the verses (a chorus should lift at least {CHORUS_LIFT_LU} LU): lift the choruses by 3 dB",
                "chorus_over_verse_lu",
                lift,
                +1,
                CHORUS_LIFT_LU - lift,
            )
        )
    top = metrics["top_octaves_vs_target_db"]
    if abs(top) > TONE_TOLERANCE_DB:
        brighter = top < 0
        found.append(
            Suggestion(
                ops.MasterTone(by_db=2.0 if brighter else -2.0),
                f"8–16 kHz is {top:+.1f} dB against the {genre} tone curve: make the master {'brighter' if brighter else 'warmer'} by 2 dB",
                "top_octaves_vs_target_db",
                top,
                +1 if brighter else -1,
                abs(top) - TONE_TOLERANCE_DB,
            )
        )
    # Thin lows are met by a warmer master, not a louder bass part: on the demo (bass part +3 dB:
    # 31–125 Hz against the curve −3.30 → −3.49 dB; +6 dB: −3.85) the bass part sounds mostly
    # above 125 Hz and the master's tone EQ takes back half of any change to the mix, while the
    # master's warmer target moves it (−3.30 → −2.78). A warmer tilt lowers the top too (the
    # demo's by 0.89 dB), so it is offered for the lows only where the top is not already below
    # the curve: from there it stays inside TONE_TOLERANCE_DB, and "brighter" is not offered next.
    low = metrics["low_octaves_vs_target_db"]
    warmer = ops.MasterTone(by_db=-2.0)
    if low < -LOW_TOLERANCE_DB and top >= 0 and all(s.operation != warmer for s in found):
        found.append(
            Suggestion(
                warmer,
                f"31–125 Hz is {low:+.1f} dB against the {genre} tone curve (the top is not dull): make the master warmer by 2 dB",
                "low_octaves_vs_target_db",
                low,
                +1,
                -low - LOW_TOLERANCE_DB,
            )
        )
    spread = metrics["loudness_range_lu"]
    if spread < MIN_LOUDNESS_RANGE_LU and "verse" in sections:
        found.append(
            Suggestion(
                ops.SectionLevel(section="verse", by_db=-3.0),
                f"the master's loudness range is {spread:.1f} LU (flat; {MIN_LOUDNESS_RANGE_LU} LU or more gives the song a shape): bring the verses down 3 dB",
                "loudness_range_lu",
                spread,
                +1,
                MIN_LOUDNESS_RANGE_LU - spread,
            )
        )
    outside = metrics["tempo_outside_genre_bpm"]
    if outside:
        found.append(
            Suggestion(
                ops.Tempo(by_bpm=-round(outside)),
                f"the tempo is {abs(outside):.0f} BPM {'above' if outside > 0 else 'below'} what {genre} usually takes "
                f"({GENRE_TEMPO_BPM[genre][0]}–{GENRE_TEMPO_BPM[genre][1]}): {'slow it down' if outside > 0 else 'speed it up'} by {abs(round(outside))} BPM",
                "tempo_outside_genre_bpm",
                outside,
                -1 if outside > 0 else +1,
                abs(outside) / 10,
            )
        )
    return sorted(found, key=lambda s: -s.priority)
