"""Onset detection on rendered audio, to check that stems (and later vocals) sit on the score.

`detect_onsets(samples, rate)` returns the times (s) where the level jumps: the log energy of
the first difference of the signal (which favours attacks over sustain), in 4 ms frames every
millisecond, rising by at least `rise_db` over 8 ms above a floor; each onset is placed where
that rise begins. `match_onsets` pairs detected onsets with expected ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from songmill.core.audio import channel_mean

FRAME_S, HOP_S = 0.004, 0.001


def _log_energy(samples: np.ndarray, rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    x = channel_mean(x)
    diff = np.diff(x, prepend=x[:1])
    frame, hop = int(frame_s * rate), int(HOP_S * rate)
    power = np.convolve(diff**2, np.ones(frame) / frame, mode="valid")[::hop]
    return 10 * np.log10(power + 1e-14)


def detect_onsets(
    samples: np.ndarray, rate: int, *, rise_db: float = 9.0, floor_db: float = -75.0, min_gap_s: float = 0.03, frame_s: float = FRAME_S
) -> np.ndarray:
    """Onset times in seconds. Low instruments want longer frames (`frame_s` ≥ one period of
    their lowest note, e.g. 0.025 s for a bass) so the waveform's own cycle is not an onset."""
    energy = _log_energy(samples, rate, frame_s)
    lag = max(8, int(frame_s / HOP_S))  # frames (ms) over which a rise counts
    rise = np.zeros_like(energy)
    rise[lag:] = energy[lag:] - energy[:-lag]
    candidates = np.flatnonzero((rise >= rise_db) & (energy >= floor_db))
    onsets: list[float] = []
    last: float | np.integer[Any] = -np.inf
    for index in candidates:
        if index - last < min_gap_s / HOP_S:
            continue
        start = index - lag
        base = energy[start]
        # the onset is the first frame of the rise that is clearly above where it started
        begin = start + int(np.argmax(energy[start : index + 1] > base + 3.0))
        onsets.append(begin * HOP_S + frame_s)  # the frame ends where the new sound has entered
        last = index
    return np.array(onsets)


def match_onsets(detected: np.ndarray, expected: np.ndarray, tolerance_s: float) -> tuple[float, float, np.ndarray]:
    """(share of detected onsets within tolerance of an expected one, share of expected onsets
    found, signed errors in seconds of the matched detected onsets)."""
    expected = np.sort(np.asarray(expected))
    if not len(detected) or not len(expected):
        return 0.0, 0.0, np.array([])
    index = np.clip(np.searchsorted(expected, detected), 1, len(expected) - 1)
    nearest = np.where(np.abs(expected[index - 1] - detected) <= np.abs(expected[index] - detected), expected[index - 1], expected[index])
    errors = detected - nearest
    ok = np.abs(errors) <= tolerance_s
    found = np.unique(nearest[ok])
    return float(ok.mean()), len(found) / len(np.unique(expected)), errors[ok]
