"""Audio I/O, the one home of sample rates: WAV files, decoding, probing and resampling.

    write_wav(path, samples, sample_rate_hz=SAMPLE_RATE_HZ)  # float32, IEEE-float WAV, byte-identical for equal input
    samples, rate = read_wav(path)                            # (frames, channels) float32 in -1…1
    stream = probe(path)                                      # ffprobe's first audio stream (dict)
    samples, rate = decode(path, sample_rate_hz=44100)        # any file ffmpeg reads → (frames, channels) float32
    samples = resample(samples, from_hz=22050, to_hz=SAMPLE_RATE_HZ)             # polyphase (scipy)
    samples = resample(samples, from_hz=48000, to_hz=44100, method="soxr")       # SoX, 28-bit (deliveries)

Every stage works at `SAMPLE_RATE_HZ` (48 kHz); only delivery formats and analysers that need
another rate resample, and they do it here.

songmill writes 32-bit float WAV (format 3) with no timestamps or other varying chunks, so the
same audio always has the same sha256 (the artifact store and the caches rely on that). It
reads float and 16/24/32-bit PCM WAV.
"""

from __future__ import annotations

import json
import struct
import subprocess
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from songmill.core.errors import AudioInputError, SongmillError

SAMPLE_RATE_HZ = 48000  # the rate every stem, mix and master is made at
# What songmill accepts from outside (a file for `songmill qc`, a reference, an upload to verify):
# no meter or pitch tracker means anything below telephone rate, and a song is at most 15 minutes
# (the longest target_duration_s), so 20 minutes bounds the memory a decode takes (about 0.4 GB).
MIN_INPUT_RATE_HZ = 8000
MAX_INPUT_S = 20 * 60

FORMAT_PCM, FORMAT_FLOAT, FORMAT_EXTENSIBLE = 1, 3, 0xFFFE


def write_wav(path: Path, samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Write float32 samples, shape (frames,) or (frames, channels), as an IEEE-float WAV."""
    data = np.asarray(samples, dtype="<f4")
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or not np.isfinite(data).all():
        raise ValueError("samples must be a finite (frames,) or (frames, channels) array")
    frames, channels = data.shape
    payload = data.tobytes()
    fmt = struct.pack("<HHIIHH", FORMAT_FLOAT, channels, sample_rate_hz, sample_rate_hz * channels * 4, channels * 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, frames) + b"data" + struct.pack("<I", len(payload)) + payload
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
    fmt, data_at, data_bytes = _wav_layout(path, lambda at, size: raw[at : at + size], len(raw))
    data = memoryview(raw)[data_at : data_at + data_bytes]  # a view shares the file's bytes: no copy of the audio
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
        ints = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        samples = (np.where(ints >= 1 << 23, ints - (1 << 24), ints)).astype(np.float32) / float(1 << 23)
    elif kind == FORMAT_PCM and bits == 32:
        samples = np.frombuffer(data[:usable], dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise SongmillError(f"audio file {path} uses WAV format {kind} with {bits}-bit samples; songmill reads float32 and 16/24/32-bit PCM")
    return samples.reshape(-1, channels).astype(np.float32, copy=False), rate


def wav_frames(path: Path) -> tuple[int, int]:
    """(frames, sample rate) of a WAV file as `read_wav` reads it, from the chunks' headers alone:
    the samples are not read. Raises SongmillError naming the file, as read_wav does, when it is
    not a WAV file with a format and a data chunk."""
    path = Path(path)
    try:
        with path.open("rb") as file:

            def read(at: int, size: int) -> bytes:
                file.seek(at)
                return file.read(size)

            fmt, _, data_bytes = _wav_layout(path, read, path.stat().st_size)
    except (OSError, struct.error) as err:
        raise SongmillError(f"audio file {path} cannot be read ({getattr(err, 'strerror', None) or err})") from None
    if fmt[4] == 0:
        raise SongmillError(f"audio file {path} is a damaged WAV file (its format says 0 bytes a frame)")
    return data_bytes // fmt[4], fmt[2]


def _wav_layout(path: Path, read: Callable[[int, int], bytes], total: int) -> tuple[tuple, int, int]:
    """A WAV file's format fields (format, channels, rate, bytes a second, bytes a frame, bits),
    where its samples start and how many bytes of them it holds (a cut-short file holds less than
    its header says); `read(at, size)` gives bytes of the file. Raises SongmillError naming it."""
    if total < 12 or read(0, 4) != b"RIFF" or read(8, 4) != b"WAVE":
        raise SongmillError(f"audio file {path} is not a WAV file (no RIFF/WAVE header)")
    fmt, data, offset = None, None, 12
    while offset + 8 <= total:
        chunk, size = struct.unpack("<4sI", read(offset, 8))
        if chunk == b"fmt ":
            fmt = struct.unpack("<HHIIHH", read(offset + 8, min(size, 16)))
        elif chunk == b"data":
            data = (offset + 8, max(0, min(size, total - offset - 8)))
        offset += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise SongmillError(f"audio file {path} is a damaged WAV file (no {'fmt' if fmt is None else 'data'} chunk)")
    return fmt, *data


def _is_float_extensible(raw: bytes) -> bool:
    index = raw.find(b"fmt ")
    sub_format = raw[index + 8 + 24 : index + 8 + 26]
    return sub_format == struct.pack("<H", FORMAT_FLOAT)


def channel_mean(samples: np.ndarray) -> np.ndarray:
    """The mean of the channels, frame by frame: (frames, channels) → (frames,); mono (frames,)
    comes back as it is.

    The same numbers to the bit as `samples.mean(axis=1)` (float32 stays float32), about eight
    times faster: numpy reduces a short last axis one frame at a time, 0.18 s for a three-minute
    stereo song here against 0.02 s for adding whole columns, and a demo render takes the mid
    34 times (every FluidSynth part, every watermark reading, the gate's measurements). numpy's
    reduction starts at +0.0 and adds the channels left to right below eight of them, as this
    does; eight or more, or other dtypes, are left to numpy."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2 or samples.dtype not in (np.float32, np.float64) or samples.shape[1] >= 8:
        return samples.mean(axis=1)
    total = np.zeros(len(samples), dtype=samples.dtype)
    for channel in range(samples.shape[1]):
        total += samples[:, channel]
    total /= samples.shape[1]
    return total


def rms_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


# ------------------------------------------------------------------ any file ffmpeg reads


def probe(path: Path, *, what: str = "audio file") -> dict:
    """ffprobe's view of the first audio stream of `path`.

    Raises
    ------
    AudioInputError : the path is missing, empty, not a regular file or holds no audio stream
        (`what` names the file's role in the message: "reference audio", "audio file").
    """
    path = Path(path)
    if not path.exists():
        raise AudioInputError(f"{what} {path} does not exist")
    if not path.is_file():
        raise AudioInputError(f"{what} {path} is not a regular file (a folder or a device); give a WAV, FLAC, MP3, M4A or Opus file")
    if path.stat().st_size == 0:
        raise AudioInputError(f"{what} {path} is empty (0 bytes)")
    done = _run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)], text=True)
    info = json.loads(done.stdout or "{}") if done.returncode == 0 else {}
    stream = next((s for s in info.get("streams", []) if s.get("codec_type") == "audio"), None)
    if stream is not None and not (int(stream.get("sample_rate") or 0) and int(stream.get("channels") or 0)):
        stream = None  # ffprobe trusts a .flac/.mp3 name and reports an empty stream for any bytes
    if stream is None:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no audio stream"
        raise AudioInputError(f"{what} {path} cannot be read ({reason}); give a WAV, FLAC, MP3, M4A or Opus file")
    if int(stream["sample_rate"]) < MIN_INPUT_RATE_HZ:
        raise AudioInputError(f"{what} {path} has a sample rate of {int(stream['sample_rate'])} Hz; give audio at {MIN_INPUT_RATE_HZ} Hz or more")
    duration_s = _duration_s(stream, info.get("format", {}))
    if duration_s > MAX_INPUT_S:
        raise AudioInputError(
            f"{what} {path} is {duration_s / 60:.0f} minutes long; songmill reads at most {MAX_INPUT_S // 60} minutes (cut the song out first)"
        )
    return stream


def _duration_s(stream: dict, container: dict) -> float:
    """The stream's length as ffprobe reports it (the container's when the stream has none)."""
    for value in (stream.get("duration"), container.get("duration")):
        try:
            return float(str(value))
        except (TypeError, ValueError):
            continue
    return 0.0  # unknown (a raw stream): decode's own size stops nothing, but such files are small


def decode(
    path: Path, *, sample_rate_hz: int | None = None, channels: int | None = None, stream: dict | None = None, what: str = "audio file"
) -> tuple[np.ndarray, int]:
    """Decode any file ffmpeg reads to (frames, channels) float32 (encoder delay removed).

    Parameters
    ----------
    sample_rate_hz : the rate to decode at; None keeps the file's own.
    channels : the channel count to decode to; None keeps the file's own.
    stream : `probe(path)`'s result when the caller has it already.

    Raises
    ------
    AudioInputError : unreadable, or ffmpeg stopped before the end (a truncated or damaged file).
    """
    stream = stream or probe(path, what=what)
    rate = sample_rate_hz or int(stream["sample_rate"])
    channels = channels or int(stream["channels"])
    command = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(path), "-f", "f32le", "-ac", str(channels)]
    # Decoded to a temporary file and read once: a pipe's bytes would be held twice (as read, then joined).
    with tempfile.TemporaryDirectory(prefix="songmill-decode-") as scratch:
        raw = Path(scratch) / "decoded.f32"
        done = _run(command + (["-ar", str(rate)] if sample_rate_hz else []) + [str(raw)])
        samples = np.fromfile(raw, dtype="<f4") if raw.exists() else np.zeros(0, dtype="<f4")
    if done.returncode != 0 or samples.size < channels:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise AudioInputError(f"{what} {path} is damaged or truncated ({reason[-1] if reason else 'no audio decoded'})")
    if not np.isfinite(samples).all():
        first = int(np.flatnonzero(~np.isfinite(samples))[0]) // channels
        raise AudioInputError(f"{what} {path} holds NaN or infinite samples (the first at {first / rate:.3f} s); it is not playable audio, re-export it")
    declared_s = _declared_s(Path(path), stream)
    decoded_s = samples.size // channels / rate
    if declared_s is not None and decoded_s < declared_s - TRUNCATION_TOLERANCE_S:
        raise AudioInputError(
            f"{what} {path} is truncated: its header says {declared_s:.2f} s of audio, the file holds {decoded_s:.2f} s; copy or export it again"
        )
    return samples[: samples.size - samples.size % channels].reshape(-1, channels), rate


TRUNCATION_TOLERANCE_S = 0.01  # a file whose audio ends this much before its header's length is cut short
UNSET_WAV_SIZE = 0x7FFFF000  # a data chunk size this large was left by a writer streaming to a pipe, which never learns the length: not a length


def _declared_s(path: Path, stream: dict) -> float | None:
    """How long the file's own header says its audio is, where the format records it exactly: a
    WAV's data chunk size, a FLAC's STREAMINFO sample count. ffmpeg decodes a file cut short to
    its end without an error (a WAV's length it even reads from the file's size), so the header
    is what tells a truncated copy from a short song. None where the header does not say (a WAV
    written to a pipe, a FLAC with an unknown count, formats whose length is an estimate)."""
    if stream.get("codec_name") == "flac":
        total = int(stream.get("duration_ts") or 0)  # STREAMINFO's total samples, in the stream's time base (1/rate in FLAC, Ogg and ffmpeg's MP4)
        return float(total * Fraction(stream.get("time_base") or f"1/{stream['sample_rate']}")) if total > 0 else None
    if str(stream.get("codec_name", "")).startswith("pcm_"):
        return _wav_declared_s(path, int(stream["sample_rate"]), int(stream["channels"]), int(stream.get("bits_per_sample") or 0))
    return None


def _wav_declared_s(path: Path, rate: int, channels: int, bits: int) -> float | None:
    """The length a RIFF/WAVE file's data chunk declares; None for another container or an unset size."""
    if bits <= 0:
        return None
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while chunk := handle.read(8):
            if len(chunk) < 8:
                return None
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                # 0, or near 4 GiB: a writer that streamed to a pipe and could not go back (ffmpeg, SoX, arecord)
                return None if size == 0 or size >= UNSET_WAV_SIZE else size / (rate * channels * bits // 8)
            handle.seek(size + (size & 1), 1)  # chunks are padded to an even size
    return None


def resample(samples: np.ndarray, *, from_hz: float, to_hz: int = SAMPLE_RATE_HZ, method: Literal["polyphase", "soxr"] = "polyphase") -> np.ndarray:
    """Resample along axis 0 to float32.

    `polyphase` (scipy, exact rational ratio) is what stages and analysers use; `soxr` (the SoX
    resampler in ffmpeg, 28-bit precision) is what delivery formats use: it needs
    (frames, channels) input.
    """
    if from_hz == to_hz:
        return np.asarray(samples, dtype=np.float32)
    if method == "soxr":
        return _soxr(samples, int(from_hz), to_hz)
    from scipy.signal import resample_poly

    ratio = Fraction(to_hz) / Fraction(from_hz).limit_denominator(10000)
    return resample_poly(samples, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def _soxr(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    channels = samples.shape[1]
    command = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "f32le",
        "-ac",
        str(channels),
        "-ar",
        str(from_hz),
        "-i",
        "pipe:",
        "-af",
        f"aresample={to_hz}:resampler=soxr:precision=28",
        "-ar",
        str(to_hz),
        "-f",
        "f32le",
        "pipe:",
    ]
    done = _run(command, input=np.ascontiguousarray(samples, "<f4").tobytes())
    if done.returncode != 0:
        raise SongmillError(f"ffmpeg failed while resampling {from_hz} Hz → {to_hz} Hz ({done.stderr.decode(errors='replace').strip()[-200:]})")
    return np.frombuffer(done.stdout, dtype="<f4").reshape(-1, channels)


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, **options)
    except FileNotFoundError:
        raise SongmillError(f"{command[0]} is not installed; run `make setup` (it installs Debian's ffmpeg)") from None
