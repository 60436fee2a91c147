"""PerthNet: mark a master inaudibly, and detect the mark in any copy of it.

    marker = load_watermarker(weights_path)          # the registry's `perth-implicit` entry
    marked = marker.mark(master, 48000)               # (frames, channels) float32 → same shape
    marker.detect(decoded, 44100)                     # WatermarkReading: detected, median window score

PerthNet (Resemble AI, MIT; the weights ship in the `resemble-perth` wheel) works on a 32 kHz
magnitude spectrogram: the encoder adds a learned, masked pattern below 2 kHz, the decoder
answers, per clip, how sure it is that the clip carries the mark. We mark each channel and
read the channels' mid (what an MP3 joint-stereo copy keeps best) in 10-second windows: on the
debug song, marked windows read 0.72–0.96 (0.69–0.94 after Opus 96 k), unmarked 0.11–0.36. Loaded from the registry's path, never from
the package's own loader (which writes beside its weights and prints).
"""

from __future__ import annotations

import contextlib
import sys
import types
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from songmill.core.audio import resample

PERTH_RATE_HZ = 32000
WINDOW_S = 10.0  # the decoder answers once per window; a song is read window by window
DETECTION_THRESHOLD = 0.65  # a file carries the mark when the median of its windows' answers reaches this
MARK_TARGET = 0.85  # marking repeats until the marked audio reads at least this (margin for codecs)
MAX_PASSES = 3
MIN_DETECT_S = 2.0  # shorter clips give the decoder too few frames to answer
SILENT_RMS = 10 ** (-70 / 20)  # windows quieter than −70 dBFS RMS are not asked


@dataclass(frozen=True)
class WatermarkReading:
    """What detection found: the verdict (median window score ≥ DETECTION_THRESHOLD), the share
    of windows at or above it, the median score, and how many (non-silent) windows were read."""

    detected: bool
    marked_share: float
    median_score: float
    windows: int

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _torchaudio_transforms() -> Iterator[None]:
    """Give perth's `from torchaudio.transforms import …` our three modules while it imports.

    Only when torchaudio itself is absent; the stand-in leaves `sys.modules` afterwards so
    nothing else mistakes it for torchaudio."""
    try:
        import torchaudio  # noqa: F401

        yield
        return
    except ImportError:
        pass
    from models.watermark import stft

    package = types.ModuleType("torchaudio")
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.Spectrogram = stft.Spectrogram  # type: ignore[attr-defined]
    transforms.InverseSpectrogram = stft.InverseSpectrogram  # type: ignore[attr-defined]
    transforms.TimeStretch = stft.TimeStretch  # type: ignore[attr-defined]
    package.transforms = transforms  # type: ignore[attr-defined]
    sys.modules["torchaudio"], sys.modules["torchaudio.transforms"] = package, transforms
    try:
        yield
    finally:
        sys.modules.pop("torchaudio", None)
        sys.modules.pop("torchaudio.transforms", None)


class Watermarker:
    """PerthNet with its checkpoint, on the CPU."""

    def __init__(self, weights: Path):
        import torch
        import yaml

        with _torchaudio_transforms(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # perth's package imports the deprecated pkg_resources
            from perth.perth_net.perth_net_implicit.config import PerthConfig
            from perth.perth_net.perth_net_implicit.model.perth_net import PerthNet

        hparams = yaml.safe_load((weights.parent / "hparams.yaml").read_text(encoding="utf-8"))
        self.net = PerthNet(PerthConfig(**hparams))
        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
        self.net.load_state_dict(checkpoint["model"])
        if self.net.hp.sample_rate != PERTH_RATE_HZ:
            raise ValueError(f"{weights}: PerthNet expects {PERTH_RATE_HZ} Hz, its hparams say {self.net.hp.sample_rate}")

    def _mark_channel(self, channel: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            signal = torch.from_numpy(np.ascontiguousarray(channel, dtype=np.float32))
            magnitude, phase = self.net.ap.signal_to_magphase(signal)
            marked_magnitude, _mask = self.net.encoder(magnitude[None])
            spectrum_marked = self.net.ap.magphase_to_signal(marked_magnitude[0], phase)
        marked = spectrum_marked.numpy()
        out = np.zeros_like(channel, dtype=np.float32)
        n = min(len(out), len(marked))
        out[:n] = marked[:n]
        return out

    def mark(self, samples: np.ndarray, rate_hz: int) -> np.ndarray:
        """The same audio carrying the mark, strong enough to read: (frames,) or (frames,
        channels), float32, same rate.

        One PerthNet pass reads back at a median window score of 0.32–1.0 on our benchmark songs
        (content decides), too close to what unmarked music reads (up to 0.82). So the mark is
        applied again, up to MAX_PASSES, until it reads at MARK_TARGET: a second pass brought
        every benchmark song to ≥ 0.84, at an SNR of 8–12 dB instead of 13–18 (the audibility
        table in benchmarks/results/watermark.json measures what that costs)."""
        marked = self.mark_once(samples, rate_hz)
        for _ in range(MAX_PASSES - 1):
            if self.detect(marked, rate_hz).median_score >= MARK_TARGET:
                break
            marked = self.mark_once(marked, rate_hz)
        return marked

    def mark_once(self, samples: np.ndarray, rate_hz: int) -> np.ndarray:
        """One PerthNet pass. Only the mark's difference is resampled back to `rate_hz`, so nothing the mark leaves
        alone (above PerthNet's 16 kHz Nyquist) is touched."""
        audio = np.asarray(samples, dtype=np.float32)
        stereo = audio.reshape(len(audio), -1)
        out = np.empty_like(stereo)
        for c in range(stereo.shape[1]):
            original = stereo[:, c]
            low = resample(original, from_hz=rate_hz, to_hz=PERTH_RATE_HZ) if rate_hz != PERTH_RATE_HZ else original
            difference = self._mark_channel(low) - low
            if rate_hz != PERTH_RATE_HZ:
                difference = resample(difference, from_hz=PERTH_RATE_HZ, to_hz=rate_hz)
            n = min(len(original), len(difference))
            out[:, c] = original
            out[:n, c] += difference[:n]
        return out.reshape(audio.shape)

    def window_scores(self, samples: np.ndarray, rate_hz: int) -> list[float]:
        """The decoder's answer (0..1) for each 10-second window of the audio's mid, half-overlapping."""
        import torch

        audio = np.asarray(samples, dtype=np.float32)
        mid = audio.reshape(len(audio), -1).mean(axis=1)
        if len(mid) < MIN_DETECT_S * rate_hz:
            raise ValueError(f"{len(mid) / rate_hz:.1f} s of audio is too short to look for the watermark (at least {MIN_DETECT_S:g} s)")
        low = resample(mid, from_hz=rate_hz, to_hz=PERTH_RATE_HZ) if rate_hz != PERTH_RATE_HZ else mid
        window, hop, shortest = int(WINDOW_S * PERTH_RATE_HZ), int(WINDOW_S * PERTH_RATE_HZ / 2), int(MIN_DETECT_S * PERTH_RATE_HZ)
        scores: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(low), hop):
                piece = low[start : start + window]
                if len(piece) < shortest and start > 0:  # a short tail adds nothing the last window did not
                    break
                if np.sqrt(np.mean(np.square(piece, dtype=np.float64))) < SILENT_RMS:
                    continue  # silence carries no mark, and the decoder answers NaN for it
                magnitude, _phase = self.net.ap.signal_to_magphase(torch.from_numpy(np.ascontiguousarray(piece)))
                scores.append(float(self.net.decoder(magnitude[None])[0].clip(0.0, 1.0)))
                if start + window >= len(low):
                    break
        return scores

    def detect(self, samples: np.ndarray, rate_hz: int) -> WatermarkReading:
        """Whether the audio carries the mark: the share of its windows the decoder calls marked."""
        scores = self.window_scores(samples, rate_hz)
        if not scores:
            return WatermarkReading(detected=False, marked_share=0.0, median_score=0.0, windows=0)
        median = float(np.median(scores))
        marked_share = sum(score >= DETECTION_THRESHOLD for score in scores) / len(scores)
        return WatermarkReading(detected=median >= DETECTION_THRESHOLD, marked_share=round(marked_share, 3), median_score=round(median, 3), windows=len(scores))


_loaded: dict[Path, Watermarker] = {}


def load_watermarker(weights: Path) -> Watermarker:
    """One PerthNet per process and checkpoint (loading it takes about a second)."""
    if weights not in _loaded:
        _loaded[weights] = Watermarker(weights)
    return _loaded[weights]
