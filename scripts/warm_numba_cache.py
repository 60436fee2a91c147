"""Compile, once and in one process, the numba functions the QC gate reaches through librosa.

numba caches compiled functions beside their source (`cache=True`). Two processes compiling the
same function for the first time write the same cache files at once, and a cache so written can
crash every later process that loads it (a segmentation fault in librosa's `_parabolic_interpolation`,
seen on a fresh clone whose two test workers reached the QC stage together). `make setup` runs
this after installing, so renders and test workers only ever read the cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main() -> None:
    from qc.musical import ANALYSIS_RATE_HZ, detect_key, detect_tempo

    t = np.arange(ANALYSIS_RATE_HZ * 4) / ANALYSIS_RATE_HZ
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    for samples in (tone, tone.astype(np.float64)):  # both the float32 and float64 signatures
        detect_key(samples)
        detect_tempo(samples)


if __name__ == "__main__":
    main()
