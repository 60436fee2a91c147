"""Mastering: the mix → one master per delivery profile.

    target = MasterTarget("streaming", loudness_lufs=-14.0, ceiling_dbtp=-1.0, tone_db=preset.tone_db, ...)
    result = master(mix, 48000, target)     # MasterResult: audio (frames, 2) float32, decisions, loudness

The chain, each step recorded in `decisions`:

1. **Clean-up.** A 20 Hz high-pass takes out DC and sub-sonic rumble.
2. **Tonal balance.** The mix's long-term octave-band balance (31.5 Hz … 16 kHz, relative to
   1 kHz) is moved toward the target curve — the genre's, or a reference recording's — by a
   linear-phase EQ: half the difference for a genre curve (at most ±4 dB), 80 % for a reference
   (at most ±6 dB), since matching a named record is the point. The same EQ low-passes at
   20 kHz: nothing audible is lost, and without content near the Nyquist frequency every
   true-peak meter (ours, ffmpeg's, a store's) reads the same inter-sample peaks.
3. **Glue.** A slow compressor (30 ms attack, 200 ms release) with the genre's ratio.
4. **Width.** Mid/side: the side is scaled by the genre's width, and below 120 Hz removed (bass
   in mono); if that drops the left/right correlation under 0.5, the width is pulled back.
5. **Provenance mark** (profiles with `watermark`): PerthNet's inaudible mark, added before the
   limiter so the ceiling and the loudness target still hold for the marked audio.
6. **Loudness and ceiling.** `limiter.normalise`: gain to the target integrated loudness
   through a true-peak limiter that holds the ceiling (measured 4× oversampled).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pedalboard
from scipy.signal import butter, firwin2, oaconvolve, sosfilt

from songmill.core import loudness
from songmill.core.audio import channel_mean, decode
from songmill.core.errors import SongmillError
from songmill.production.limiter import normalise

GENRE_TONE_STRENGTH, GENRE_TONE_LIMIT_DB = 0.5, 4.0
REFERENCE_TONE_STRENGTH, REFERENCE_TONE_LIMIT_DB = 0.8, 6.0
EQ_TAPS = 2047  # 23 Hz resolution at 48 kHz: the 31.5 Hz band's gain within 0.5 dB
LOW_PASS_HZ, LOW_PASS_STOP_DB = (20000.0, 21000.0), -60.0
GLUE = {"attack_ms": 30.0, "release_ms": 200.0}
GLUE_THRESHOLD_OVER_RMS_DB = 6.0  # the glue acts on the loudest moments only
MONO_BASS_HZ = 120.0
MIN_CORRELATION = 0.6  # the delivery bar is 0.5 on a phase meter; keep a margin


@dataclass(frozen=True)
class MasterTarget:
    profile: str
    loudness_lufs: float
    ceiling_dbtp: float
    tone_db: tuple[float, ...]  # target octave balance (loudness.OCTAVE_CENTRES_HZ), dB relative to 1 kHz
    tone_source: str  # "genre pop", "reference mastered.wav"
    width: float
    glue_ratio: float
    reference: bool = False  # the tone comes from a reference recording (matched more closely)


@dataclass
class MasterResult:
    audio: np.ndarray  # (frames, 2) float32
    decisions: dict
    loudness: loudness.LoudnessReport


def read_reference(path: Path) -> tuple[np.ndarray, int]:
    """A reference recording as (frames, 2) float32 at its own rate, through `core.audio`'s
    probe and decode (any file ffmpeg reads, within its limits of rate and length).

    Raises
    ------
    SongmillError : the file is missing, not a regular file, unreadable, too long, under a
        second, silent or corrupt.
    """
    audio, rate = decode(Path(path), channels=2, what="reference audio")
    if audio.shape[0] < rate:  # under a second: no loudness or balance to match
        raise SongmillError(f"reference audio {path} is shorter than a second; give a whole recording")
    if not np.any(audio):
        raise SongmillError(f"reference audio {path} is silent; give a whole recording")
    return audio, rate


def reference_profile(path: Path) -> dict:
    """What a reference sets: its integrated loudness (LUFS) and octave balance (dB re 1 kHz)."""
    audio, rate = read_reference(path)
    return {"loudness_lufs": round(loudness.integrated_lufs(audio, rate), 2), "tone_db": [round(float(v), 2) for v in loudness.octave_balance_db(audio, rate)]}


def tilted(tone_db, tilt_db: float) -> list[float]:
    """A tonal target tilted about 1 kHz: `tilt_db` more at 16 kHz (4 octaves up), the same slope
    down to 31.5 Hz the other way (a positive tilt is brighter, a negative one warmer)."""
    if not tilt_db:
        return list(tone_db)
    octaves = np.log2(np.array(loudness.OCTAVE_CENTRES_HZ) / 1000.0)
    return [round(float(v), 3) for v in np.asarray(tone_db, dtype=float) + tilt_db * octaves / 4.0]


def tone_correction_db(measured: np.ndarray, target: np.ndarray, *, reference: bool) -> np.ndarray:
    """The EQ gain at each octave centre: a share of the difference, capped."""
    strength, limit = (REFERENCE_TONE_STRENGTH, REFERENCE_TONE_LIMIT_DB) if reference else (GENRE_TONE_STRENGTH, GENRE_TONE_LIMIT_DB)
    return np.clip(strength * (np.asarray(target) - measured), -limit, limit)


def tone_eq(x: np.ndarray, rate: int, gains_db: np.ndarray) -> np.ndarray:
    """A linear-phase FIR whose response passes through `gains_db` at the octave centres
    (interpolated on a log-frequency axis, flat beyond the outer bands) and falls away between
    20 and 21 kHz; no delay added."""
    centres = np.array(loudness.OCTAVE_CENTRES_HZ)
    grid = np.concatenate(([0.0], np.geomspace(20.0, rate / 2, 512)))
    response_db = np.interp(np.log(np.maximum(grid, 1.0)), np.log(centres), gains_db)
    # and a low-pass: nothing audible lies above 20 kHz, and content near the Nyquist frequency
    # is what makes inter-sample peaks read differently on different true-peak meters
    stop = np.clip((grid - LOW_PASS_HZ[0]) / (LOW_PASS_HZ[1] - LOW_PASS_HZ[0]), 0.0, 1.0)
    response_db = response_db * (1 - stop) + LOW_PASS_STOP_DB * stop
    taps = firwin2(EQ_TAPS, grid / (rate / 2), 10 ** (response_db / 20))
    delay = (EQ_TAPS - 1) // 2
    return oaconvolve(x, taps[:, None].astype(np.float32), mode="full", axes=0)[delay : delay + x.shape[0]].astype(np.float32)


def widen(x: np.ndarray, rate: int, width: float) -> tuple[np.ndarray, dict]:
    """Mid/side width with the side's low end removed; backs off while the phase-meter reading is
    under MIN_CORRELATION (at width 0 the master is mono)."""
    mid, side = (x[:, 0] + x[:, 1]) * np.float32(0.5), (x[:, 0] - x[:, 1]) * np.float32(0.5)
    side = sosfilt(butter(2, MONO_BASS_HZ, "highpass", fs=rate, output="sos").astype(np.float32), side)  # a mono maker
    for applied in (width, 0.9 * width, 0.75 * width, 0.6 * width, 0.4 * width, 0.2 * width, 0.0):
        out = np.stack([mid + applied * side, mid - applied * side], axis=1).astype(np.float32)
        correlation = loudness.phase_correlation(out)
        if correlation >= MIN_CORRELATION:
            break
    return out, {"width": round(applied, 3), "asked": width, "mono_below_hz": MONO_BASS_HZ, "correlation": round(correlation, 3)}


Marker = Callable[[np.ndarray, int], np.ndarray]  # (audio, rate Hz) → the same audio carrying a mark


def master(mix: np.ndarray, rate: int, target: MasterTarget, *, mark: Marker | None = None) -> MasterResult:
    """Master a stereo mix for one delivery profile (see the module docstring); `mark` adds the
    provenance watermark before the limiter."""
    x = loudness.as_frames(mix).astype(np.float32)
    if x.shape[1] == 1:
        x = np.hstack([x, x])
    x = sosfilt(butter(2, 20.0, "highpass", fs=rate, output="sos").astype(np.float32), x, axis=0)
    before = loudness.octave_balance_db(x, rate)
    gains = tone_correction_db(before, np.array(target.tone_db), reference=target.reference)
    x = tone_eq(x, rate, gains)
    threshold = _rms_db(x) + GLUE_THRESHOLD_OVER_RMS_DB
    x = pedalboard.Compressor(threshold_db=threshold, ratio=target.glue_ratio, **GLUE)(np.ascontiguousarray(x.T), rate).T
    x, width = widen(x, rate, target.width)
    if mark is not None:
        x = mark(x, rate)
    out, limit = normalise(x, rate, target_lufs=target.loudness_lufs, ceiling_dbtp=target.ceiling_dbtp)
    report = loudness.measure(out, rate, true_peak=limit.true_peak_dbtp, integrated=limit.integrated_lufs)
    after = loudness.octave_balance_db(out, rate)
    target_tone = np.array(target.tone_db)
    decisions = {
        "profile": target.profile,
        "target_lufs": target.loudness_lufs,
        "ceiling_dbtp": target.ceiling_dbtp,
        "tone": {
            "source": target.tone_source,
            "target_db": list(target.tone_db),
            "mix_db": _rounded(before),
            "eq_db": _rounded(gains),
            "master_db": _rounded(after),
            "distance_before_db": round(_distance(before, target_tone), 2),
            "distance_after_db": round(_distance(after, target_tone), 2),
        },
        "glue": {"threshold_dbfs": round(threshold, 1), "ratio": target.glue_ratio, **GLUE},
        "stereo": width,
        "watermarked": mark is not None,
        "limiter": limit.to_dict(),
        "loudness": report.to_dict(),
        "phase_correlation": width["correlation"],  # a gain on both channels leaves the phase reading as it was
        "dc_offset": float(f"{loudness.dc_offset(out):.2e}"),
    }
    return MasterResult(out, decisions, report)


def _rms_db(x: np.ndarray) -> float:
    """RMS level (dBFS) over the frames louder than −60 dBFS (the music, not the silence around it)."""
    power = channel_mean(np.square(x, dtype=np.float32))
    playing = power[power > 1e-6]
    return float(10 * np.log10(np.mean(playing, dtype=np.float64))) if playing.size else -60.0


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in values]


def _distance(balance: np.ndarray, target: np.ndarray) -> float:
    """RMS difference of two octave balances (dB)."""
    return float(np.sqrt(np.mean(np.square(balance - target))))
