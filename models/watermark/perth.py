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

import collections
import contextlib
import importlib.util
import math
import sys
import types
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from songmill.core.audio import channel_mean, resample
from songmill.core.collector import collector_paused

PERTH_RATE_HZ = 32000
WINDOW_S = 10.0  # the decoder answers once per window; a song is read window by window
DETECTION_THRESHOLD = 0.65  # a file carries the mark when the median of its windows' answers reaches this
MARK_TARGET = 0.85  # marking repeats until the marked audio reads at least this (margin for codecs)
MAX_PASSES = 3
MARK_HIGH_PASS_HZ = 60.0  # the mark's sub-bass is left out (see _without_sub_bass)
MIN_DETECT_S = 2.0  # shorter clips give the decoder too few frames to answer
SILENT_RMS = 10 ** (-70 / 20)  # windows quieter than −70 dBFS RMS are not asked
SCORE_THREADS = 2  # windows read at a time (one torch thread each)
PASS_THREADS = 2  # stretches of a mark pass worked at a time (one torch thread each)
# PerthNet's encoder: five 7-frame convolutions between two 1-frame ones read 5 × 3 = 15 frames
# either side. A stretch's convolutions are given more than that either side, and every stretch
# (context included) starts on a multiple of it: the convolution's arithmetic works frames in
# blocks counted from the first, and a frame's last bit depends on where in its block it falls
ENCODER_CONTEXT_FRAMES = 64


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
def _perthnet_modules() -> Iterator[None]:
    """Import PerthNet's model modules without the `perth` package's import-time work.

    `perth/__init__.py` and `perth/perth_net/__init__.py` import the package's own watermarker
    (librosa, numba, pkg_resources: 1.5 s a process) and torchaudio, none of which the model
    needs. While we import, those two packages are plain namespace modules over their folders,
    and `torchaudio.transforms` holds our three STFT modules (models/watermark/stft.py) unless a
    real torchaudio is installed. Every stand-in leaves `sys.modules` afterwards, so a later
    `import perth` or `import torchaudio` gets the real package."""
    spec = importlib.util.find_spec("perth")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the resemble-perth package is not installed; pip install resemble-perth==1.0.1 (make setup does)")
    root = Path(list(spec.submodule_search_locations)[0])
    stand_ins: dict[str, types.ModuleType] = {}
    for name, folder in (("perth", root), ("perth.perth_net", root / "perth_net")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            stand_ins[name] = package
    if importlib.util.find_spec("torchaudio") is None:
        from models.watermark import stft

        transforms = types.ModuleType("torchaudio.transforms")
        transforms.Spectrogram = stft.Spectrogram  # type: ignore[attr-defined]
        transforms.InverseSpectrogram = stft.InverseSpectrogram  # type: ignore[attr-defined]
        transforms.TimeStretch = stft.TimeStretch  # type: ignore[attr-defined]
        torchaudio = types.ModuleType("torchaudio")
        torchaudio.transforms = transforms  # type: ignore[attr-defined]
        stand_ins.update({"torchaudio": torchaudio, "torchaudio.transforms": transforms})
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)


class Watermarker:
    """PerthNet with its checkpoint, on the CPU."""

    def __init__(self, weights: Path):
        with collector_paused():  # torch's import: hundreds of thousands of objects, nothing to collect
            import torch
        import yaml

        with _perthnet_modules(), collector_paused():
            from perth.perth_net.perth_net_implicit import utils
            from perth.perth_net.perth_net_implicit.config import PerthConfig
            from perth.perth_net.perth_net_implicit.model import magmask
            from perth.perth_net.perth_net_implicit.model.perth_net import PerthNet

        hparams = yaml.safe_load((weights.parent / "hparams.yaml").read_text(encoding="utf-8"))
        self.net = PerthNet(PerthConfig(**hparams))
        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
        self.net.load_state_dict(checkpoint["model"])
        if self.net.hp.sample_rate != PERTH_RATE_HZ:
            raise ValueError(f"{weights}: PerthNet expects {PERTH_RATE_HZ} Hz, its hparams say {self.net.hp.sample_rate}")
        self._normalise, self._denormalise = utils.normalize, utils.denormalize_spectrogram
        self._magmask = magmask  # which frames the encoder marks (loud enough against the song's loudest)

    # PerthNet's own AudioProcessor makes the magnitude and the resynthesis; ours compute the same
    # tensors, bit for bit (tests/test_provenance.py compares them), for less: the decoder reads
    # the magnitude alone, so its reads skip the phase (an atan2 per bin), and the mark's
    # resynthesis (`_marked_stretch`) builds magnitude·e^(i·phase) with one torch.polar where
    # AudioProcessor makes a complex exponential and multiplies (a window read 0.112 → 0.106 s).
    def _log_magnitude(self, spectrum):  # noqa: ANN001, ANN202 - torch tensors (torch is imported lazily)
        """PerthNet's normalised dB magnitude of a complex spectrum (`cx_to_magphase`'s first half)."""
        import torch

        hp = self.net.hp
        return self._normalise(hp, 20 * torch.log10(spectrum.abs().clip(hp.stft_magnitude_min)))

    def _mark_pass(self, low: np.ndarray) -> np.ndarray:
        """One PerthNet pass over mono audio at PERTH_RATE_HZ; the same length back.

        The master stage is alone in its wave of a render (in an edit, beside the audition's niced
        thread), so the pass is worked in PASS_THREADS stretches of frames at once (torch leaves
        the GIL; one torch thread each). The STFT and its inverse run whole; between them every
        step is per frame except the encoder's convolutions, which read ENCODER_CONTEXT_FRAMES
        either side, and its mask, which compares each frame with the loudest of the song: so the
        mask is made once from the whole song, each stretch's convolutions are given that context,
        and the result is the same bytes as PerthNet's own forward over the whole song on this project's machines
        (tests/test_provenance.py compares them at two lengths; it rests on how the convolution's
        kernels block their frames, which the alignment respects). A pass over the demo's
        three-minute mix 2.5–2.7 → 2.0–2.2 s."""
        import torch

        # every tensor made in inference mode (each thread enters its own), the magnitude kept in
        # the STFT's frame-major layout and the marked spectrum bin-major, as PerthNet's own pass
        # lays them out (`_joined`): convolutions and inverse STFTs of other layouts differ in the last bit
        with torch.inference_mode(), ThreadPoolExecutor(max_workers=max(1, PASS_THREADS - 1), thread_name_prefix="perth-pass") as beside:
            spectrum = self.net.ap.spectrogram(torch.from_numpy(np.ascontiguousarray(low, dtype=np.float32)))
            stretches = _stretches(spectrum.shape[-1], PASS_THREADS)
            magnitude = _joined(_on_stretches(beside, stretches, self._log_magnitude_of, spectrum))
            mask = self._magmask(magnitude[None])[:, None]  # (1, 1, frames): each frame against the song's loudest
            marked = _joined(_on_stretches(beside, stretches, self._marked_stretch, spectrum, magnitude, mask), frame_major=False)
            # the analysis is done with: let it go before the inverse transform, whose frames are
            # this pass's largest allocation (with the in-place steps of `_marked_stretch`, the
            # master stage's peak of allocations 1.07 → 0.85 GB for the demo)
            del spectrum, magnitude
            signal = self.net.ap.inv_spectrogram(marked).numpy()
        out = np.zeros_like(low, dtype=np.float32)
        n = min(len(out), len(signal))
        out[:n] = signal[:n]
        return out

    def _log_magnitude_of(self, spectrum, lo: int, hi: int):  # noqa: ANN001, ANN202 - torch tensors
        import torch

        with torch.inference_mode():  # per thread: inference mode is thread-local
            return self._log_magnitude(spectrum[:, lo:hi])

    def _marked_stretch(self, spectrum, magnitude, mask, lo: int, hi: int):  # noqa: ANN001, ANN202 - torch tensors
        """Frames lo..hi of the marked complex spectrum: PerthNet's `Encoder.forward` (the residual
        of its layers, masked, added below its sub-band's top) with the convolutions given their
        context from the neighbouring frames, then the magnitude back with the original phase."""
        import torch

        encoder = self.net.encoder
        first, last = max(0, lo - ENCODER_CONTEXT_FRAMES), min(magnitude.shape[-1], hi + ENCODER_CONTEXT_FRAMES)
        with torch.inference_mode():
            residual = encoder.layers(magnitude[None, : encoder.subband, first:last])[..., lo - first : hi - first] * mask[..., lo:hi]
            marked = magnitude[:, lo:hi].clone()
            marked[: encoder.subband] += residual[0]
            # PerthNet's `10 ** ((denormalised / 20).clip(max=10))` with the division and the clip
            # in place: two stretch-sized tensors alive instead of four. The power stays out of
            # place: written into its frame-major input, it differs in the last bit
            exponent = self._denormalise(self.net.hp, marked).div_(20).clamp_(max=10)
            del marked
            linear = 10.0**exponent
            del exponent
            return torch.polar(linear, torch.angle(spectrum[:, lo:hi]))

    def mark(self, samples: np.ndarray, rate_hz: int) -> np.ndarray:
        """The same audio carrying the mark, strong enough to read: (frames,) or (frames,
        channels), float32, same rate.

        The mark is made from the channels' mid at 32 kHz and added to every channel alike (what
        detection reads is the mid); only the mark itself is resampled back, so nothing it leaves
        alone — the side, everything above 16 kHz — is touched. One PerthNet pass reads back at a
        median window score of 0.32–1.0 on our benchmark songs (the music decides), too close to
        what unmarked music reads (up to 0.82); so the pass repeats, at most MAX_PASSES times,
        until the mark reads MARK_TARGET. benchmarks/results/watermark.json measures what that
        costs in audibility."""
        audio = np.asarray(samples, dtype=np.float32)
        frames = audio.reshape(len(audio), -1)
        low = self._at_perth_rate(frames, rate_hz)
        marked = self._mark_pass(low)
        for _ in range(MAX_PASSES - 1):
            if self._median_reaches(marked, MARK_TARGET):
                break
            marked = self._mark_pass(marked)
        difference = marked - low
        if rate_hz != PERTH_RATE_HZ:
            difference = resample(difference, from_hz=PERTH_RATE_HZ, to_hz=rate_hz)
        difference = _without_sub_bass(difference, rate_hz)
        out = frames.copy()
        n = min(len(out), len(difference))
        out[:n] += difference[:n, None]
        return out.reshape(audio.shape)

    @staticmethod
    def _at_perth_rate(frames: np.ndarray, rate_hz: int) -> np.ndarray:
        mid = channel_mean(frames)
        return resample(mid, from_hz=rate_hz, to_hz=PERTH_RATE_HZ) if rate_hz != PERTH_RATE_HZ else mid.astype(np.float32)

    def window_scores(self, samples: np.ndarray, rate_hz: int, *, bfloat16: bool = False) -> list[float]:
        """The decoder's answer (0..1) for each 10-second window of the audio's mid.
        `bfloat16`: the decoder's arithmetic in bfloat16 (see `native_bfloat16`)."""
        audio = np.asarray(samples, dtype=np.float32)
        if len(audio) < MIN_DETECT_S * rate_hz:
            raise ValueError(f"{len(audio) / rate_hz:.1f} s of audio is too short to look for the watermark (at least {MIN_DETECT_S:g} s)")
        return self._scores(self._at_perth_rate(audio.reshape(len(audio), -1), rate_hz), bfloat16=bfloat16)

    def _scores(self, low: np.ndarray, *, bfloat16: bool = False) -> list[float]:
        """The decoder's answer for each non-silent window of `low` (mono at PERTH_RATE_HZ), in
        order. The windows are independent, so SCORE_THREADS of them are read at a time (torch
        leaves the GIL): each answer is what reading it alone gives."""
        return list(self._answers(_windows(low), bfloat16=bfloat16))

    def _answers(self, pieces: list[np.ndarray], *, bfloat16: bool = False) -> Generator[float, None, None]:
        """The decoder's answer for each piece, in order, SCORE_THREADS pieces read at a time
        (torch leaves the GIL). The next piece is asked for only when its answer is wanted: a
        caller that stops early (`_median_reaches`) leaves the rest unread."""
        if len(pieces) < 2:
            yield from (self._score(piece, bfloat16=bfloat16) for piece in pieces)
            return
        with ThreadPoolExecutor(max_workers=SCORE_THREADS, thread_name_prefix="perth") as pool:
            reading = collections.deque(pool.submit(self._score, piece, bfloat16=bfloat16) for piece in pieces[:SCORE_THREADS])
            waiting = iter(pieces[SCORE_THREADS:])
            try:
                while reading:
                    yield reading.popleft().result()
                    following = next(waiting, None)
                    if following is not None:
                        reading.append(pool.submit(self._score, following, bfloat16=bfloat16))
            finally:  # stopped early: what has not begun is not read
                for future in reading:
                    future.cancel()

    def _median_reaches(self, low: np.ndarray, target: float) -> bool:
        """Whether the median of `_scores(low)` reaches `target`, reading only as many windows as
        that takes: once more than half of them are known to be at or above it (or below it), the
        rest cannot move the median across it. The answer is the whole median's, always (an even
        count split exactly in two reads every window); the mark's check after a pass reads about
        half the song instead of all of it when the pass clearly did or did not reach the target."""
        pieces = _windows(low)
        decisive = len(pieces) // 2 + 1
        scores: list[float] = []
        answers = self._answers(pieces)
        for score in answers:  # in order: which windows are read does not depend on timing
            scores.append(score)
            reached = sum(s >= target for s in scores)
            undecidable = math.isnan(score)  # the median of scores with a NaN is NaN, which reaches nothing
            if undecidable or reached >= decisive or len(scores) - reached >= decisive:
                answers.close()
                return not undecidable and reached >= decisive
        return bool(scores) and float(np.median(scores)) >= target

    def _score(self, piece: np.ndarray, *, bfloat16: bool = False) -> float:
        import torch

        with torch.inference_mode():  # per thread: inference mode and autocast are thread-local
            magnitude = self._log_magnitude(self.net.ap.spectrogram(torch.from_numpy(piece).float()))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                answer = self.net.decoder(magnitude[None])[0].float()
            return float(answer.clip(0.0, 1.0))

    def detect(self, samples: np.ndarray, rate_hz: int, *, bfloat16: bool = False) -> WatermarkReading:
        """Whether the audio carries the mark: the share of its windows the decoder calls marked.
        `bfloat16`: the decoder's arithmetic in bfloat16, for the delivery's read-backs on a CPU
        that has it natively (`native_bfloat16`); the gate's reading stays in float32."""
        scores = self.window_scores(samples, rate_hz, bfloat16=bfloat16)
        if not scores:
            return WatermarkReading(detected=False, marked_share=0.0, median_score=0.0, windows=0)
        median = float(np.median(scores))
        marked_share = sum(score >= DETECTION_THRESHOLD for score in scores) / len(scores)
        return WatermarkReading(detected=median >= DETECTION_THRESHOLD, marked_share=round(marked_share, 3), median_score=round(median, 3), windows=len(scores))


def _windows(low: np.ndarray) -> list[np.ndarray]:
    """The WINDOW_S windows of `low` (mono at PERTH_RATE_HZ) the decoder is asked about, in order:
    silent ones left out (silence carries no mark, and the decoder answers NaN for it), and a
    tail shorter than MIN_DETECT_S too (it adds nothing the last window did not)."""
    window, shortest = int(WINDOW_S * PERTH_RATE_HZ), int(MIN_DETECT_S * PERTH_RATE_HZ)
    pieces: list[np.ndarray] = []
    for start in range(0, len(low), window):
        piece = low[start : start + window]
        if len(piece) < shortest and start > 0:
            break
        if np.sqrt(np.mean(np.square(piece, dtype=np.float64))) < SILENT_RMS:
            continue
        pieces.append(np.ascontiguousarray(piece))
    return pieces


def _on_stretches(beside: ThreadPoolExecutor, stretches: list[tuple[int, int]], work: Callable, *args: object) -> list:
    """`work(*args, start, end)` for each stretch, in order: the first on this thread, the others
    on `beside` meanwhile."""
    later = [beside.submit(work, *args, lo, hi) for lo, hi in stretches[1:]]
    return [work(*args, *stretches[0])] + [future.result() for future in later]


def _joined(stretches: list, *, frame_major: bool = True):  # noqa: ANN202 - torch tensors (torch is imported lazily)
    """(bins, frames) stretches side by side in time, laid out as a whole-song pass has them: the
    magnitude frame-major, as `torch.stft` lays its spectra out (each frame's bins together); the
    marked spectrum (`frame_major=False`) bin-major, as PerthNet's `magphase_to_cx` makes it. The
    layout is part of the result: on some CPUs (2026-12-04's machine) the inverse STFT of a
    frame-major spectrum differs in the last bit from that of the same spectrum bin-major."""
    import torch

    if not frame_major:
        return torch.cat(stretches, dim=-1)
    return torch.cat([stretch.T for stretch in stretches]).T


def _stretches(frames: int, count: int) -> list[tuple[int, int]]:
    """`frames` cut into at most `count` consecutive (start, end) stretches of nearly equal
    length, each starting on a multiple of ENCODER_CONTEXT_FRAMES (see there)."""
    step = ENCODER_CONTEXT_FRAMES
    bounds = sorted({min(frames, int(round(frames * i / count / step)) * step) for i in range(count)} | {frames})
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def _without_sub_bass(difference: np.ndarray, rate_hz: int) -> np.ndarray:
    """The mark above MARK_HIGH_PASS_HZ only. PerthNet's mark raised the 31.5 Hz octave of our
    benchmark songs by 1.9–5.5 dB (energy nobody asked for, which a limiter then pays for); high-
    passed, that change is −0.2–1.5 dB and the median window score moves by 0.01 at most."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, MARK_HIGH_PASS_HZ, "highpass", fs=rate_hz, output="sos")
    return sosfiltfilt(sos, difference).astype(np.float32)


def native_bfloat16() -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (AMX tiles or AVX-512 BF16). There the
    decoder reads a window 2.6× faster (0.040 s against 0.106 s on this project's machines) and
    its answers stay within 0.01 of float32's (tests/test_provenance.py measures it); elsewhere
    torch would emulate bfloat16, slower than float32, so the reads stay in float32."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]  # private to torch: looked up, not assumed
    return any(check() for check in checks if callable(check))


_loaded: dict[Path, Watermarker] = {}


def load_watermarker(weights: Path) -> Watermarker:
    """One PerthNet per process and checkpoint (loading it takes about a second)."""
    if weights not in _loaded:
        _loaded[weights] = Watermarker(weights)
    return _loaded[weights]
