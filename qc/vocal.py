"""Measurements of a dry vocal against its score (DESIGN.md §6: vocal pitch and timing).

The pitch is measured from the audio by WORLD's Harvest at 16 kHz (5 ms frames), a different
estimator from the DIO the singer analyses speech with. Frames count from 80 ms after each
note starts (past the glide into it) to 50 ms before it ends.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from songmill.score import Note

MEASURE_RATE_HZ = 16000


@dataclass
class PitchReport:
    median_abs_cents: float
    p90_abs_cents: float
    voiced_share: float  # of the frames inside sung notes
    frames: int


def measure_f0(vocal: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(F0 in Hz per 5 ms frame, 0 = unvoiced; frame times in s)."""
    from models.instruments.diffusion import resample

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld
    x = resample(np.asarray(vocal, dtype=np.float32), rate, MEASURE_RATE_HZ).astype(np.float64)
    return pyworld.harvest(x, MEASURE_RATE_HZ, frame_period=5.0, f0_floor=60.0, f0_ceil=1000.0)


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def pitch_report(vocal: np.ndarray, rate: int, notes: list[Note]) -> PitchReport:
    f0, times = measure_f0(vocal, rate)
    deviations, inside, voiced = [], 0, 0
    for note in notes:
        begin, end = note.start_s + 0.08, note.start_s + note.duration_s - 0.05
        frames = (times >= begin) & (times < end)
        sounding = frames & (f0 > 0)
        inside, voiced = inside + int(frames.sum()), voiced + int(sounding.sum())
        deviations.append(np.abs(1200 * np.log2(f0[sounding] / _hz(note.pitch))))
    cents = np.concatenate(deviations) if deviations else np.array([np.inf])
    return PitchReport(float(np.median(cents)), float(np.percentile(cents, 90)), voiced / max(inside, 1), inside)


def transition_errors_s(vocal: np.ndarray, rate: int, notes: list[Note], *, min_interval: int = 2) -> np.ndarray:
    """For each legato step of at least `min_interval` semitones, when the sung pitch crosses
    half-way to the new note (and stays there for 40 ms), minus when the note starts (seconds)."""
    f0, times = measure_f0(vocal, rate)
    errors = []
    for before, after in zip(notes, notes[1:]):
        if abs(after.pitch - before.pitch) < min_interval or after.start_s - (before.start_s + before.duration_s) > 0.1:
            continue
        window = (times >= after.start_s - 0.15) & (times < after.start_s + 0.15)
        if (window & (f0 > 0)).sum() < 5:
            continue
        hz = f0[window]
        halfway = 100 * (after.pitch - before.pitch) / 2
        with np.errstate(divide="ignore"):
            cents_from_old = np.where(hz > 0, 1200 * np.log2(np.where(hz > 0, hz, 1.0) / _hz(before.pitch)), np.nan)
        past = (hz > 0) & (np.sign(cents_from_old - halfway) == np.sign(halfway))
        # the crossing that lasts 40 ms of voiced frames: a consonant's tracking glitch is no note change
        lasting = [i for i in range(len(past) - 7) if past[i:i + 8].all()]
        if lasting:
            errors.append(times[window][lasting[0]] - after.start_s)
    return np.array(errors)


def air_db(vocal: np.ndarray, rate: int, above_hz: float = 11000.0) -> float:
    """Energy above `above_hz` relative to the whole signal, dB (-inf when there is none)."""
    spectrum = np.abs(np.fft.rfft(np.asarray(vocal, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(vocal), 1 / rate)
    high = spectrum[freqs > above_hz].sum()
    return float(10 * np.log10(high / spectrum.sum())) if high > 0 else float("-inf")
