"""The three torchaudio transforms PerthNet is built from, as thin modules over `torch.stft`.

torchaudio has no CPU wheel matching our torch, and PerthNet uses only these three, with
torchaudio's defaults (centred frames, reflect padding, one-sided, unnormalised). Each keeps the
buffers torchaudio's module keeps, under the same names, so PerthNet's checkpoint loads strictly:
`window` for both spectrogram directions and `phase_advance` for TimeStretch (which PerthNet
constructs but never calls: it only contributes that buffer to the checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

WindowFunction = Callable[..., torch.Tensor]


class _ShortTimeFourier(nn.Module):
    """What both directions share: frame sizes and the analysis window (a `window` buffer)."""

    def __init__(self, n_fft: int, win_length: int, hop_length: int, window_fn: WindowFunction, normalized: bool):
        super().__init__()
        if normalized:
            raise ValueError("only the unnormalised transforms PerthNet uses are provided")
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.register_buffer("window", window_fn(win_length))

    def _frames(self) -> dict:
        # torchaudio's defaults: centred frames, one-sided spectra, no normalisation
        return {
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "win_length": self.win_length,
            "window": self.window,
            "center": True,
            "normalized": False,
            "onesided": True,
        }


class Spectrogram(_ShortTimeFourier):
    """Complex STFT (torchaudio's `Spectrogram(power=None)`): (..., samples) → (..., bins, frames)."""

    def __init__(self, n_fft: int, win_length: int, hop_length: int, window_fn: WindowFunction, power: None = None, normalized: bool = False):
        if power is not None:
            raise ValueError("only the complex spectrogram PerthNet uses is provided")
        super().__init__(n_fft, win_length, hop_length, window_fn, normalized)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return torch.stft(signal, pad_mode="reflect", return_complex=True, **self._frames())


class InverseSpectrogram(_ShortTimeFourier):
    """Inverse of `Spectrogram` by overlap-add (torchaudio's `InverseSpectrogram`)."""

    def __init__(self, n_fft: int, win_length: int, hop_length: int, window_fn: WindowFunction, normalized: bool = False):
        super().__init__(n_fft, win_length, hop_length, window_fn, normalized)

    def forward(self, spectrum: torch.Tensor, length: int | None = None) -> torch.Tensor:
        return torch.istft(spectrum, length=length, **self._frames())


class TimeStretch(nn.Module):
    """Holds torchaudio's `TimeStretch` buffer (the expected phase advance per bin and hop).

    PerthNet builds one but its inference never stretches, so there is no forward: nn.Module
    refuses a call to a module without one."""

    def __init__(self, n_freq: int, hop_length: int):
        super().__init__()
        self.register_buffer("phase_advance", torch.linspace(0, math.pi * hop_length, n_freq)[..., None])
