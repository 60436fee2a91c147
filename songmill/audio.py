"""WAV files as numpy arrays: the stems and mixes that pass between stages.

    write_wav(path, samples, sample_rate_hz=48000)      # float32, IEEE-float WAV, byte-identical for equal input
    samples, rate = read_wav(path)                       # (frames, channels) float32 in -1…1

songmill writes 32-bit float WAV (format 3) with no timestamps or other varying chunks, so the
same audio always has the same sha256 (the artifact store and the caches rely on that). It
reads float and 16/24/32-bit PCM WAV.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from songmill.errors import SongmillError

FORMAT_PCM, FORMAT_FLOAT, FORMAT_EXTENSIBLE = 1, 3, 0xFFFE


def write_wav(path: Path, samples: np.ndarray, sample_rate_hz: int = 48000) -> None:
    """Write float32 samples, shape (frames,) or (frames, channels), as an IEEE-float WAV."""
    data = np.asarray(samples, dtype="<f4")
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or not np.isfinite(data).all():
        raise ValueError("samples must be a finite (frames,) or (frames, channels) array")
    frames, channels = data.shape
    payload = data.tobytes()
    fmt = struct.pack("<HHIIHH", FORMAT_FLOAT, channels, sample_rate_hz, sample_rate_hz * channels * 4, channels * 4, 32)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<II", 4, frames)
            + b"data" + struct.pack("<I", len(payload)) + payload)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def write_pcm_wav(path: Path, samples: np.ndarray, sample_rate_hz: int, bits: int) -> None:
    """Write integer samples (frames, channels) as a 16- or 24-bit PCM WAV (int16, or int32 holding
    24-bit values: see `production.dither.to_pcm`)."""
    data = np.asarray(samples)
    if data.ndim == 1:
        data = data[:, None]
    frames, channels = data.shape
    if bits == 16:
        payload = data.astype("<i2").tobytes()
    elif bits == 24:
        payload = data.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # little-endian: drop the top byte
    else:
        raise ValueError(f"bits={bits} is not supported (16 or 24)")
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", FORMAT_PCM, channels, sample_rate_hz, sample_rate_hz * block, block, bits)
    pad = b"\0" if len(payload) % 2 else b""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload + pad
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples (frames, channels) as float32 and the sample rate. Raises SongmillError naming the
    file when it is not a WAV songmill can read."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SongmillError(f"audio file {path} cannot be read ({err.strerror})") from None
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise SongmillError(f"audio file {path} is not a WAV file (no RIFF/WAVE header)")
    fmt, data, offset = None, None, 12
    view = memoryview(raw)  # slices of a view share the file's bytes: no copies of the audio
    while offset + 8 <= len(raw):
        chunk, size = raw[offset:offset + 4], struct.unpack("<I", raw[offset + 4:offset + 8])[0]
        body = view[offset + 8:offset + 8 + size]
        if chunk == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif chunk == b"data":
            data = body
        offset += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise SongmillError(f"audio file {path} is a damaged WAV file (no {'fmt' if fmt is None else 'data'} chunk)")
    kind, channels, rate, _, block, bits = fmt
    if kind == FORMAT_EXTENSIBLE:
        kind = FORMAT_FLOAT if bits == 32 and block == channels * 4 and _is_float_extensible(raw) else FORMAT_PCM
    usable = len(data) - len(data) % block
    if kind == FORMAT_FLOAT and bits == 32:
        samples = np.frombuffer(data[:usable], dtype="<f4")
    elif kind == FORMAT_PCM and bits == 16:
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
    elif kind == FORMAT_PCM and bits == 24:
        triples = np.frombuffer(data[:usable], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16))
        samples = (np.where(ints >= 1 << 23, ints - (1 << 24), ints)).astype(np.float32) / float(1 << 23)
    elif kind == FORMAT_PCM and bits == 32:
        samples = np.frombuffer(data[:usable], dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise SongmillError(f"audio file {path} uses WAV format {kind} with {bits}-bit samples; songmill reads float32 and 16/24/32-bit PCM")
    return samples.reshape(-1, channels).astype(np.float32, copy=False), rate


def _is_float_extensible(raw: bytes) -> bool:
    index = raw.find(b"fmt ")
    sub_format = raw[index + 8 + 24:index + 8 + 26]
    return sub_format == struct.pack("<H", FORMAT_FLOAT)


def rms_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")
