"""A true-peak limiter that holds its ceiling, and loudness normalisation through it.

    out, report = normalise(samples, 48000, target_lufs=-14.0, ceiling_dbtp=-1.0)

`pedalboard.Limiter` adds make-up gain and `pedalboard.BrickwallLimiter` does not promise the
reconstructed waveform stays under its ceiling, so neither can be the last word on a master.
This one works on the whole file at once (a mastering pass is offline, so its look-ahead is
unlimited):

1. the gain each sample needs is ceiling / its 4× oversampled peak (`loudness.peak_envelope`);
2. in dB, the gain curve is lowered so it never falls faster than `attack_db_per_ms` going into
   a peak and never recovers faster than `release_db_per_s` after one — two running minima, so
   the curve only ever drops below what every sample needs, never above;
3. the result is measured with the true-peak meter; an overshoot (the gain's own modulation can
   lift inter-sample peaks a few hundredths of a dB) lowers the working ceiling and repeats.

The gain before the limiter is found so the *limited* signal meets the loudness target: the
K-weighted power of the limited signal is predicted from the gain curve (the curve is slow next
to the K filter) and the exact meter checks the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songmill.core import loudness
from songmill.core.errors import SongmillError

ATTACK_DB_PER_MS = 1.0  # gain falls at most 1 dB a millisecond into a peak
RELEASE_DB_PER_S = 40.0  # and recovers at most 40 dB a second (3 dB in 75 ms)
CEILING_MARGIN_DB = 0.15  # aim under the ceiling: other meters' interpolators differ by a tenth of a dB
LOUDNESS_TOLERANCE_LU = 0.05


@dataclass(frozen=True)
class LimitReport:
    input_gain_db: float  # gain before the limiter
    max_reduction_db: float  # the deepest gain reduction
    limited_share: float  # share of samples reduced by more than 0.1 dB
    working_ceiling_dbtp: float
    passes: int
    true_peak_dbtp: float  # measured on the result
    integrated_lufs: float  # measured on the result

    def to_dict(self) -> dict:
        return {
            "input_gain_db": round(self.input_gain_db, 2),
            "max_reduction_db": round(self.max_reduction_db, 2),
            "limited_share": round(self.limited_share, 4),
            "working_ceiling_dbtp": round(self.working_ceiling_dbtp, 2),
            "passes": self.passes,
        }


def gain_curve_db(peak: np.ndarray, ceiling: float, rate: int) -> np.ndarray:
    """The limiter's gain (dB, ≤ 0) for a true-peak envelope `peak` (linear) and a linear ceiling.

    Worked out on blocks of CURVE_BLOCK samples (each block needing its deepest sample's gain),
    then drawn per sample through the block boundaries, each boundary at the lower of its two
    blocks — so no sample's gain is ever above what it needs."""
    blocks = -(-len(peak) // CURVE_BLOCK)
    padded = np.zeros(blocks * CURVE_BLOCK, dtype=np.float32)
    padded[: len(peak)] = peak
    block_peak = padded.reshape(blocks, CURVE_BLOCK).max(axis=1).astype(np.float64)
    needed = np.minimum(0.0, 20 * np.log10(ceiling / np.maximum(block_peak, 1e-12)))
    if not np.any(needed < 0):
        return np.zeros(len(peak), dtype=np.float32)
    n = np.arange(blocks, dtype=np.float64)
    attack = ATTACK_DB_PER_MS * 1000.0 / rate * CURVE_BLOCK  # dB per block
    release = RELEASE_DB_PER_S / rate * CURVE_BLOCK
    # going into a peak: g[b] = min over k ≥ b of needed[k] + attack·(k − b)
    ahead = np.minimum.accumulate((needed + attack * n)[::-1])[::-1] - attack * n
    # after it: g[b] = min over k ≤ b of ahead[k] + release·(b − k)
    curve = np.minimum.accumulate(ahead - release * n) + release * n
    nodes = np.minimum(np.concatenate(([curve[0]], curve)), np.concatenate((curve, [curve[-1]])))  # block edges
    step = np.arange(CURVE_BLOCK, dtype=np.float32) / CURVE_BLOCK
    per_sample = nodes[:-1, None].astype(np.float32) + np.diff(nodes)[:, None].astype(np.float32) * step
    return per_sample.reshape(-1)[: len(peak)]


CURVE_BLOCK = 32  # 0.67 ms at 48 kHz: the attack ramp moves 0.67 dB a block


def _predicted_lufs(k_power: np.ndarray, gain_db: np.ndarray, rate: int) -> float:
    """Integrated loudness of the gained signal, from the unweighted signal's K-weighted power."""
    power = k_power * 10 ** (gain_db / 10)
    return loudness.gated_lufs(power, rate)


def _true_peak_after(out: np.ndarray, predicted: np.ndarray, working_dbtp: float) -> float:
    """True peak (dBTP) of the limited signal. The envelope before the limiter times the gain
    predicts it everywhere (the gain moves at most 1 dB a millisecond, so across the
    interpolator's 12 samples it is all but constant); every sample the prediction puts within
    0.5 dB of the working ceiling is measured again exactly."""
    near = np.nonzero(predicted >= 10 ** ((working_dbtp - 0.5) / 20))[0]
    envelope = predicted.copy()
    envelope[near] = loudness.peak_envelope(out, candidates=near)[near]
    return 20 * np.log10(max(float(envelope.max()), 1e-12))


def normalise(samples: np.ndarray, rate: int, *, target_lufs: float, ceiling_dbtp: float) -> tuple[np.ndarray, LimitReport]:
    """Gain to `target_lufs` integrated and limit to `ceiling_dbtp` true peak; returns float32
    (frames, channels) and what the limiter did.

    Raises
    ------
    SongmillError : silent input, or a target the ceiling cannot allow (e.g. −5 LUFS under −6 dBTP).
    """
    data = loudness.as_frames(samples)
    k_power = loudness.k_weighted_power(data, rate)
    start = loudness.gated_lufs(k_power, rate)
    if not np.isfinite(start):
        raise SongmillError("cannot master silence: the mix has no loudness above −70 LUFS")
    working = ceiling_dbtp - CEILING_MARGIN_DB
    input_gain = target_lufs - start
    peak: np.ndarray | None = None
    peak_bound_db = -np.inf  # no bound until the first envelope (read only once peak is set)
    for passes in range(1, 7):
        if peak is None or input_gain > peak_bound_db:
            # oversample only where a sample could reach the ceiling with 1 dB more gain than now
            peak_bound_db = input_gain + 1.0
            peak = loudness.peak_envelope(data, above=10 ** ((working - peak_bound_db) / 20))
        # find the input gain whose limited result is on target (predicted, then measured)
        for _ in range(8):
            curve = gain_curve_db(peak * 10 ** (input_gain / 20), 10 ** (working / 20), rate)
            error = target_lufs - _predicted_lufs(k_power, curve + input_gain, rate)
            if abs(error) < LOUDNESS_TOLERANCE_LU / 2:
                break
            input_gain += error
            if input_gain > peak_bound_db:
                break
        if input_gain > peak_bound_db:
            peak = None
            continue
        gain = (10 ** ((curve + input_gain) / 20)).astype(np.float32)
        out = data.astype(np.float32) * gain[:, None]
        measured_lufs = loudness.integrated_lufs(out, rate)
        measured_peak = _true_peak_after(out, peak * gain, working)
        if measured_peak > ceiling_dbtp - CEILING_MARGIN_DB / 2:
            working -= measured_peak - (ceiling_dbtp - CEILING_MARGIN_DB)
            continue
        if abs(measured_lufs - target_lufs) > LOUDNESS_TOLERANCE_LU:
            input_gain += target_lufs - measured_lufs
            continue
        reduction = -curve
        return out, LimitReport(input_gain, float(reduction.max()), float(np.mean(reduction > 0.1)), working, passes, measured_peak, measured_lufs)
    raise SongmillError(
        f"cannot reach {target_lufs:g} LUFS under a {ceiling_dbtp:g} dBTP ceiling "
        f"(reached {measured_lufs:.1f} LUFS at {measured_peak:.1f} dBTP); lower the profile's loudness_lufs"
    )
