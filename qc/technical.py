"""Technical metrics of an audio file: what a distributor's ingest checks, measured.

    metrics = measure_file(Path("master.flac"))      # TechnicalMetrics; raises QCInputError if unreadable
    metrics.to_dict()                                 # one row of the metrics table the suites judge

Every figure is measured from the decoded audio (ffmpeg decodes anything that is not a WAV
songmill can read itself), with the meters of `songmill.core.loudness` (BS.1770-4
loudness, 4× oversampled true peak) and a few more here:

- clipping: runs of three or more consecutive samples at full scale (|x| ≥ 0.999) in a channel;
- phase: the mean correlation of left and right (+1 mono, 0 unrelated, −1 one channel
  inverted), and the mono-fold loss: how much quieter (L+R)/2 is than the stereo (LU);
- silence: leading and trailing silence, and gaps inside the song, below −60 dBFS in 50 ms
  windows;
- spectral balance: energy below 120 Hz and above 8 kHz relative to the whole (dB);
- format: sample rate, bit depth (None for lossy), channels, duration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from songmill.core import loudness
from songmill.core.audio import channel_mean, decode, probe
from songmill.core.errors import AudioInputError

SILENCE_DBFS = -60.0
SILENCE_WINDOW_S = 0.05
GAP_MIN_S = 1.0  # a silence inside the song counts as a gap from this long
CLIP_LEVEL = 0.999
CLIP_RUN = 3
LOW_HZ, HIGH_HZ = 120.0, 8000.0
MIN_DURATION_S = 3.0  # one short-term loudness window


QCInputError = AudioInputError  # the audio cannot be judged at all (unreadable, truncated, empty) — not a failed track


@dataclass(frozen=True)
class TechnicalMetrics:
    file: str
    sample_rate_hz: int
    bit_depth: int | None
    channels: int
    codec: str
    duration_s: float
    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    clipped_runs: int
    dc_offset: float
    phase_correlation: float
    mono_fold_loss_lu: float
    leading_silence_s: float
    trailing_silence_s: float
    silence_gaps: int
    longest_gap_s: float
    low_energy_db: float
    high_energy_db: float
    duration_error_s: float | None = None  # against the score, where there is one (the pipeline's gate)
    watermark_score: float | None = None  # median 10-s window score of the provenance mark, 0..1 (profiles that mark)

    def to_dict(self) -> dict:
        return asdict(self)


def _bit_depth(stream: dict) -> int | None:
    if stream.get("codec_name", "").startswith(("mp3", "aac", "opus", "vorbis")):
        return None
    for key in ("bits_per_raw_sample", "bits_per_sample"):
        value = int(stream.get(key) or 0)
        if value:
            return value
    return {"s16": 16, "s16p": 16, "s32": 32, "s32p": 32, "flt": 32, "fltp": 32, "dbl": 64}.get(stream.get("sample_fmt", ""))


def clipped_runs(samples: np.ndarray) -> int:
    """Runs of CLIP_RUN or more consecutive samples at or above CLIP_LEVEL, counted per channel."""
    runs = 0
    for channel in samples.T:
        hot = np.abs(channel) >= CLIP_LEVEL
        if not hot.any():
            continue
        edges = np.diff(np.concatenate(([0], hot.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        runs += int(np.sum(ends - starts >= CLIP_RUN))
    return runs


def _window_levels_db(samples: np.ndarray, rate: int) -> np.ndarray:
    window = max(1, int(SILENCE_WINDOW_S * rate))
    count = len(samples) // window
    if count == 0:
        return np.array([20 * np.log10(max(float(np.abs(samples).max(initial=0.0)), 1e-12))])
    per_chunk = max(1, loudness.CHUNK_FRAMES // window)  # whole windows, a chunk at a time (no |samples| copy of a long file)
    peaks = np.concatenate(
        [
            np.abs(samples[first * window : min(first + per_chunk, count) * window]).max(axis=1).reshape(-1, window).max(axis=1)
            for first in range(0, count, per_chunk)
        ]
    )
    return 20 * np.log10(np.maximum(peaks, 1e-12))


def silences(samples: np.ndarray, rate: int) -> tuple[float, float, int, float]:
    """(leading s, trailing s, gaps inside, longest gap s) below SILENCE_DBFS."""
    quiet = _window_levels_db(samples, rate) < SILENCE_DBFS
    if quiet.all():
        total = len(samples) / rate
        return total, total, 0, 0.0
    loud = np.flatnonzero(~quiet)
    leading, trailing = loud[0] * SILENCE_WINDOW_S, (len(quiet) - 1 - loud[-1]) * SILENCE_WINDOW_S
    inner = quiet[loud[0] : loud[-1] + 1]
    edges = np.diff(np.concatenate(([0], inner.astype(np.int8), [0])))
    lengths = (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) * SILENCE_WINDOW_S
    gaps = lengths[lengths >= GAP_MIN_S]
    return round(float(leading), 3), round(float(trailing), 3), int(len(gaps)), round(float(gaps.max(initial=0.0)), 3)


def spectral_balance(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """Energy below LOW_HZ and above HIGH_HZ relative to the whole, in dB (Welch PSD of the mono sum)."""
    power, freqs = _welch_psd(samples, rate)
    total = float(power.sum()) or 1e-30
    low, high = float(power[freqs < LOW_HZ].sum()), float(power[freqs > HIGH_HZ].sum())
    return round(float(10 * np.log10(max(low, 1e-30) / total)), 2), round(float(10 * np.log10(max(high, 1e-30) / total)), 2)


WELCH_SEGMENT, WELCH_SEGMENTS_PER_CHUNK = 8192, 256


def _welch_psd(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """scipy's Welch PSD of the mono sum (8192-frame Hann segments, half overlapping), taken 256
    segments at a time: each chunk holds exactly the segments Welch would take there, so the
    mean of the chunks' means (by segment count) is the same figure in bounded memory."""
    from scipy.signal import welch

    hop = WELCH_SEGMENT // 2
    step = WELCH_SEGMENTS_PER_CHUNK * hop
    if len(samples) <= step + hop:
        freqs, power = welch(channel_mean(samples), fs=rate, nperseg=WELCH_SEGMENT)
        return power, freqs
    freqs, total, count = np.zeros(0), np.zeros(0), 0
    for start in range(0, len(samples) - hop, step):
        part = channel_mean(samples[start : start + step + hop])
        segments = (len(part) - hop) // hop
        if segments < 1:
            break
        freqs, power = welch(part[: (segments + 1) * hop], fs=rate, nperseg=WELCH_SEGMENT)
        total = power * segments if count == 0 else total + power * segments
        count += segments
    return total / count, freqs


def mono_fold_loss_lu(samples: np.ndarray, rate: int, stereo_lufs: float) -> float:
    """How much quieter the mono fold-down (L+R)/2 on both channels is than the stereo, in LU."""
    if samples.shape[1] < 2:
        return 0.0
    folded = loudness.gated_lufs(loudness.k_weighted_power(samples, rate, mono_fold=True), rate)
    if not np.isfinite(folded):
        return 99.0  # the channels cancel: nothing is left in mono
    return round(float(stereo_lufs - folded), 2)


def measure_file(path: Path) -> TechnicalMetrics:
    """Every technical metric of one audio file. Raises QCInputError when it cannot be read."""
    path = Path(path)
    stream = probe(path)
    samples, rate = decode(path, stream=stream)
    return measure(samples, rate, file=str(path), codec=stream.get("codec_name", "unknown"), bit_depth=_bit_depth(stream))


def measure(samples: np.ndarray, rate: int, *, file: str = "", codec: str = "pcm_f32le", bit_depth: int | None = 32) -> TechnicalMetrics:
    """The metrics of decoded samples (frames, channels)."""
    samples = loudness.as_frames(samples).astype(np.float32, copy=False)
    if len(samples) < int(MIN_DURATION_S * rate):
        raise QCInputError(
            f"audio file {file or '(samples)'} is {len(samples) / rate:.2f} s long; at least {MIN_DURATION_S:g} s is needed to measure short-term loudness"
        )
    report = loudness.measure(samples, rate)
    stereo = report.integrated_lufs
    leading, trailing, gaps, longest = silences(samples, rate)
    low, high = spectral_balance(samples, rate)
    phase = loudness.phase_correlation(samples) if samples.shape[1] >= 2 else 1.0
    return TechnicalMetrics(
        file=file,
        sample_rate_hz=rate,
        bit_depth=bit_depth,
        channels=samples.shape[1],
        codec=codec,
        duration_s=round(len(samples) / rate, 3),
        integrated_lufs=round(float(stereo), 2),
        loudness_range_lu=round(float(report.loudness_range_lu), 2),
        true_peak_dbtp=round(float(report.true_peak_dbtp), 2),
        sample_peak_dbfs=round(float(report.sample_peak_dbfs), 2),
        clipped_runs=clipped_runs(samples),
        dc_offset=round(float(np.abs(samples.mean(axis=0)).max()), 6),
        phase_correlation=round(float(phase), 3),
        mono_fold_loss_lu=mono_fold_loss_lu(samples, rate, stereo),
        leading_silence_s=leading,
        trailing_silence_s=trailing,
        silence_gaps=gaps,
        longest_gap_s=longest,
        low_energy_db=low,
        high_energy_db=high,
    )
