"""Measurements a mastering engineer reads off a meter.

    report = measure(samples, 48000)   # LoudnessReport: integrated, short-term max, LRA, true peak, PLR
    true_peak_dbtp(samples, 48000)     # 4× oversampled peak (ITU-R BS.1770-4 annex 2)

Loudness is BS.1770-4 with pyloudnorm's K-weighting filters, gated here without a Python loop
(the tests hold it to pyloudnorm's own meter within 0.01 LU). Short-term loudness (3 s windows every 0.1 s) and loudness range (EBU Tech 3342:
gated at −70 LUFS and −20 LU, 10th to 95th percentile) come from the same K-weighted signal. `samples` is (frames,) or
(frames, channels) float in −1…1.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import overload

import numpy as np
import pyloudnorm
from scipy.ndimage import maximum_filter1d
from scipy.signal import firwin, sosfilt

from songmill.core.audio import channel_mean
from songmill.core.errors import SongmillError

OVERSAMPLING = 4  # BS.1770-4 true peak: at least 4× at 48 kHz
SHORT_TERM_S, HOP_S = 3.0, 0.1
CHUNK_FRAMES = 1 << 20  # long files are filtered a chunk at a time, which bounds the memory a meter takes
SILENCE_LUFS = -70.0  # the absolute gate


@dataclass(frozen=True)
class LoudnessReport:
    integrated_lufs: float
    short_term_max_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    plr_db: float  # peak-to-loudness ratio: true peak − integrated

    def to_dict(self) -> dict:
        return {k: round(v, 2) for k, v in asdict(self).items()}


def as_frames(samples: np.ndarray) -> np.ndarray:
    """(frames, channels) view of mono or multichannel audio (float32 stays float32)."""
    data = np.asarray(samples)
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float64)
    return data[:, None] if data.ndim == 1 else data


@functools.cache
def _k_filter(rate: int) -> np.ndarray:
    """pyloudnorm's BS.1770 K-weighting at `rate` (high shelf, then the RLB high-pass) as one sos cascade."""
    stages = pyloudnorm.Meter(rate)._filters
    return np.array([np.concatenate([stages[name].b, stages[name].a]) for name in ("high_shelf", "high_pass")])


def k_weighted_power(samples: np.ndarray, rate: int, *, mono_fold: bool = False) -> np.ndarray:
    """Per-frame K-weighted power summed over channels (BS.1770 weights 1.0 for left and right).

    float32 filtering, a channel at a time, is 4× faster than float64 and agrees with the
    float64 meter to a thousandth of a LU. The filter runs over a million frames at a time,
    carrying its state across, so a long file costs one float32 array beside its samples.
    `mono_fold`: the power of the fold-down (L+R)/2 played on both channels (a mono check)."""
    data = as_frames(samples)
    sos = _k_filter(int(rate)).astype(np.float32)
    power = np.zeros(data.shape[0], dtype=np.float32)
    for c in range(1 if mono_fold else data.shape[1]):
        state = np.zeros((sos.shape[0], 2), dtype=np.float32)
        for start in range(0, data.shape[0], CHUNK_FRAMES):
            chunk = data[start : start + CHUNK_FRAMES]
            part = channel_mean(chunk[:, :2].astype(np.float32, copy=False)) if mono_fold else np.ascontiguousarray(chunk[:, c], dtype=np.float32)
            weighted, state = sosfilt(sos, part, zi=state)
            power[start : start + len(part)] += np.square(weighted)
    if mono_fold:
        power *= 2  # the same signal on two channels
    return power


def _block_power(power: np.ndarray, rate: int, window_s: float, hop_s: float) -> np.ndarray:
    """Mean of per-frame power over windows `window_s` long every `hop_s` (the window is taken as
    a whole number of hops): sums of hop-long chunks, so no running sum over millions of frames."""
    hop = int(round(hop_s * rate))
    chunks = len(power) // hop
    per_window = max(int(round(window_s / hop_s)), 1)
    if chunks < per_window:
        return np.zeros(0)
    chunk_sums = power[: chunks * hop].reshape(chunks, hop).sum(axis=1, dtype=np.float64)
    cumulative = np.concatenate(([0.0], np.cumsum(chunk_sums)))
    return (cumulative[per_window:] - cumulative[:-per_window]) / (per_window * hop)


@overload
def _lufs(power: np.ndarray) -> np.ndarray: ...
@overload
def _lufs(power: np.ndarray | float) -> np.ndarray | float: ...
def _lufs(power: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore"):
        return -0.691 + 10 * np.log10(power)


def integrated_lufs(samples: np.ndarray, rate: int) -> float:
    """Integrated loudness (LUFS, BS.1770-4 gating: 400 ms blocks every 100 ms, −70 LUFS absolute
    and −10 LU relative gates); −inf for silence or audio shorter than 0.4 s. The same figure as
    pyloudnorm's meter, computed with one filter pass and no Python loop."""
    return gated_lufs(k_weighted_power(samples, rate), rate)


def gated_lufs(power: np.ndarray, rate: int) -> float:
    """BS.1770-4 gated loudness of per-frame K-weighted power (see `integrated_lufs`)."""
    blocks = _block_power(power, rate, 0.4, 0.1)
    blocks = blocks[_lufs(blocks) > SILENCE_LUFS] if blocks.size else blocks
    if blocks.size == 0:
        return float("-inf")
    relative_gate = _lufs(np.mean(blocks)) - 10
    gated = blocks[_lufs(blocks) > relative_gate]
    return float(_lufs(np.mean(gated)))


def short_term_lufs(samples: np.ndarray, rate: int) -> np.ndarray:
    """Short-term loudness (3 s windows, a value every 0.1 s), LUFS."""
    data = as_frames(samples)
    window_s = min(SHORT_TERM_S, data.shape[0] / rate)
    return _lufs(_block_power(k_weighted_power(data, rate), rate, window_s, HOP_S))


def loudness_range_lu(short_term: np.ndarray) -> float:
    """EBU Tech 3342 loudness range from short-term values: 10th to 95th percentile after gating."""
    values = short_term[short_term > SILENCE_LUFS]
    if values.size == 0:
        return 0.0
    relative_gate = 10 * np.log10(np.mean(10 ** (values / 10))) - 20
    gated = values[values > relative_gate]
    return float(np.percentile(gated, 95) - np.percentile(gated, 10)) if gated.size else 0.0


@functools.cache
def _interpolator() -> tuple[np.ndarray, np.ndarray, float]:
    """The interpolation filter of a BS.1770-4 true-peak meter: a 49-tap windowed sinc at 4×,
    whose phase 0 is the sample itself and whose phases q = 1, 2, 3 estimate x(n + q/4) from
    x[n-5] … x[n+6]. Returns the (12 offsets × 3 phases) weights, the offsets, and the largest
    sum of |weights| of a phase, which bounds how far an interpolated value can rise above its
    neighbours."""
    taps = firwin(OVERSAMPLING * 12 + 1, 1.0 / OVERSAMPLING) * OVERSAMPLING
    offsets = np.arange(-5, 7)
    phases = np.array([[taps[q + OVERSAMPLING * (6 - o)] for q in range(1, OVERSAMPLING)] for o in offsets])
    return phases, offsets, float(np.max(np.sum(np.abs(phases), axis=0)))


def peak_envelope(samples: np.ndarray, above: float = 0.0, *, candidates: np.ndarray | None = None) -> np.ndarray:
    """Per sample, the largest absolute value over channels of the sample and of the three 4×
    oversampled points after it (the true-peak envelope). Points that cannot exceed `above`
    (linear) are left at their sample value, which keeps this fast on a whole song; or give the
    `candidates` (sample indices) to interpolate, when the caller knows where peaks can be."""
    data = as_frames(samples)
    envelope = np.abs(data[:, 0]).astype(np.float32)
    for channel in range(1, data.shape[1]):
        np.maximum(envelope, np.abs(data[:, channel]), out=envelope)
    phases, offsets, gain_bound = _interpolator()
    if candidates is None:
        near = maximum_filter1d(envelope, size=len(offsets), origin=-1)  # max over n-5 … n+6
        candidates = np.nonzero(near * gain_bound >= above)[0] if above > 0 else np.arange(len(envelope))
    if len(candidates) > len(envelope) // 8:  # dense: shifted views of the whole signal, no gathering
        padded = np.pad(data.astype(np.float32), ((5, 6), (0, 0)))
        for phase in range(OVERSAMPLING - 1):
            for channel in range(data.shape[1]):
                # correlate: value[n] = Σ_k w[k] · padded[n + k], i.e. x[n + offsets[k]]
                value = np.correlate(padded[:, channel], phases[:, phase].astype(np.float32), mode="valid")
                np.maximum(envelope, np.abs(value[: len(envelope)]), out=envelope)
        return envelope
    for start in range(0, len(candidates), 2**18):
        index = candidates[start : start + 2**18]
        values = np.zeros((OVERSAMPLING - 1, len(index), data.shape[1]), dtype=np.float32)
        for k, offset in enumerate(offsets):
            position = index + offset
            inside = (position >= 0) & (position < len(envelope))  # beyond the ends: silence
            neighbour = data[np.clip(position, 0, len(envelope) - 1)].astype(np.float32) * inside[:, None]
            for phase in range(OVERSAMPLING - 1):
                values[phase] += np.float32(phases[k, phase]) * neighbour
        envelope[index] = np.maximum(envelope[index], np.abs(values).max(axis=(0, 2)))
    return envelope


def true_peak_dbtp(samples: np.ndarray, rate: int) -> float:
    """The highest 4× oversampled absolute value, dBTP (−inf for silence). `rate` is kept for the
    meter's signature: at 48 kHz 4× is what BS.1770-4 asks; higher rates are already dense."""
    data = as_frames(samples)
    if data.size == 0 or not np.any(data):
        return float("-inf")
    sample_peak = max(float(data.max()), -float(data.min()))  # no |data| copy of a long file
    peak = 0.0
    for start in range(0, data.shape[0], CHUNK_FRAMES):  # a chunk and its filter's 5 + 6 neighbours at a time
        lo, stop = max(start - 5, 0), min(start + CHUNK_FRAMES, data.shape[0])
        envelope = peak_envelope(data[lo : stop + 6], above=sample_peak)
        peak = max(peak, float(np.max(envelope[start - lo : stop - lo])))
    return 20 * np.log10(peak)


def sample_peak_dbfs(samples: np.ndarray) -> float:
    peak = max(float(np.max(samples)), -float(np.min(samples))) if np.size(samples) else 0.0
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def measure(samples: np.ndarray, rate: int, *, true_peak: float | None = None, integrated: float | None = None) -> LoudnessReport:
    """The loudness report of a mix or master (see the module docstring); `true_peak` and
    `integrated`, when the caller has just measured them, save measuring them again."""
    data = as_frames(samples)
    if data.shape[0] == 0:
        raise SongmillError("cannot measure the loudness of empty audio")
    integrated = integrated_lufs(data, rate) if integrated is None else integrated
    short_term = short_term_lufs(data, rate)
    peak = true_peak_dbtp(data, rate) if true_peak is None else true_peak
    return LoudnessReport(
        integrated_lufs=integrated,
        short_term_max_lufs=float(np.max(short_term)),
        loudness_range_lu=loudness_range_lu(short_term),
        true_peak_dbtp=peak,
        sample_peak_dbfs=sample_peak_dbfs(data),
        plr_db=peak - integrated,
    )


def phase_correlation(samples: np.ndarray) -> float:
    """What a phase-correlation meter shows over the file (as ffmpeg's `aphasemeter`): the mean
    over samples of 2·L·R / (L² + R²) — +1 mono, 0 unrelated, −1 out of phase; digital silence
    is skipped. Mono audio reads +1."""
    data = as_frames(samples)
    if data.shape[1] < 2:
        return 1.0
    total, sounding_frames = 0.0, 0
    for start in range(0, data.shape[0], CHUNK_FRAMES):  # a chunk at a time: bounded memory on a long file
        left = data[start : start + CHUNK_FRAMES, 0].astype(np.float32)
        right = data[start : start + CHUNK_FRAMES, 1].astype(np.float32)
        energy = left * left + right * right
        sounding = energy > 1e-12
        total += float(np.sum(2 * left[sounding] * right[sounding] / energy[sounding], dtype=np.float64))
        sounding_frames += int(np.count_nonzero(sounding))
    return total / sounding_frames if sounding_frames else 1.0


def dc_offset(samples: np.ndarray) -> float:
    """The largest per-channel mean, in full-scale units."""
    return float(np.max(np.abs(np.mean(as_frames(samples), axis=0, dtype=np.float64))))


OCTAVE_CENTRES_HZ = (31.5, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000)


def octave_balance_db(samples: np.ndarray, rate: int) -> np.ndarray:
    """Long-term spectrum in octave bands (dB, relative to the 1 kHz band): the tonal balance a
    master is matched on. Power spectra of every other 8192-point Hann frame of the mid signal
    (half the song, evenly spread, is a stable long-term average at half the cost)."""
    data = as_frames(samples)
    mid = data[:, 0].astype(np.float32) if data.shape[1] == 1 else (data[:, 0] + data[:, 1]).astype(np.float32) * np.float32(0.5)
    size = BALANCE_FRAME
    frames = mid[: len(mid) // size * size].reshape(-1, size)[::2]
    if len(frames) == 0:
        frames = np.pad(mid, (0, size - len(mid)))[None, :]
    spectrum = np.mean(np.abs(np.fft.rfft(frames * np.hanning(size).astype(np.float32), axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    bands = []
    for centre in OCTAVE_CENTRES_HZ:
        inside = (freqs >= centre / np.sqrt(2)) & (freqs < min(centre * np.sqrt(2), rate / 2))
        bands.append(10 * np.log10(np.sum(spectrum[inside]) + 1e-20))
    levels = np.array(bands)
    return levels - levels[OCTAVE_CENTRES_HZ.index(1000)]


BALANCE_FRAME = 8192
