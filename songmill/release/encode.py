"""Encoding: a master → the files a profile delivers (the work of the per-track `export` stage).

    files = export_profile(master, 48000, profile, workdir, seed=7, clip=(52.0, 82.0))

Lossless files come from the master, never re-mastered: resampled with the SoX resampler
(ffmpeg `soxr`, 28-bit precision) where the rate differs, then TPDF-dithered to 16 or 24 bits
(`production.dither`). Lossy files are encoded from the float master at their delivery rate
(MP3 and AAC at 44.1 kHz, Opus at its native 48 kHz) with ffmpeg's LAME, AAC and libopus
encoders. A lossy encoder adds overshoot the master never had (0.1–0.6 dB here); the master's
−1 dBTP ceiling is there to absorb it (AES TD1004), and every lossy file is decoded and its true
peak measured against the profile's `lossy_true_peak_dbtp` (default −0.5 dBTP). A file that
passes it is encoded again, quieter by the excess and a margin that widens each time (at most
four tries). The gain is recorded in `export.json`.

Every output is written with `-fflags +bitexact -flags:a +bitexact` and no metadata, so the same
master always gives the same bytes (Ogg serial numbers and encoder version strings would
otherwise vary).
"""

from __future__ import annotations

import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import ffmpeg
import numpy as np

from songmill.core.audio import decode, resample, write_pcm_wav
from songmill.core.errors import SongmillError
from songmill.core.loudness import true_peak_dbtp
from songmill.core.paths import config_file
from songmill.core.profiles import LOSSY_RATE_HZ, AudioFormat, DeliveryProfile
from songmill.core.store import as_if_created
from songmill.production.dither import to_pcm

log = logging.getLogger("songmill.release.encode")

CODEC = {"mp3": "libmp3lame", "m4a": "aac", "opus": "libopus", "flac": "flac"}
EXTENSION = {"wav": "wav", "flac": "flac", "mp3": "mp3", "m4a": "m4a", "opus": "opus"}
PEAK_MARGIN_DB = 0.1  # aim this far under the ceiling; doubled at each retry (AAC's overshoot is erratic)
MAX_LOSSY_TRIES = 4
CLIP_FADE_IN_S, CLIP_FADE_OUT_S = 1.0, 3.0
# Output options (they must follow the input to apply to the output file): no encoder version
# strings, fixed Ogg serial numbers — the same master always gives the same bytes.
BITEXACT = {"fflags": "+bitexact", "flags:a": "+bitexact"}
ENCODE_THREADS = 2  # one per core
CLIP_LEAD_IN_S = 5.0  # a preview starts this long before the chorus, so the build-up leads into it


@dataclass(frozen=True)
class EncodedFile:
    """One delivered audio file of a track, as `export.json` records it."""

    file: str  # name in the stage's folder, e.g. "export-streaming-44k16.flac"
    profile: str
    container: str
    codec: str
    sample_rate_hz: int
    bit_depth: int | None  # lossless only
    bitrate_kbps: int | None  # lossy only
    channels: int
    duration_s: float
    true_peak_dbtp: float  # measured on the file as decoded by ffmpeg
    gain_db: float  # applied to the master for this file (0 unless a lossy encode peaked over)
    integrated_lufs: float  # of the samples encoded, with the gain (Opus R128 gain tags use it)
    clip: bool  # a preview clip rather than the full track
    clip_start_s: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _ffmpeg(stream, what: str, *, input_bytes: bytes | None = None, capture: bool = False) -> bytes:
    try:
        out, _ = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error").run(input=input_bytes, capture_stdout=capture, capture_stderr=True)
    except ffmpeg.Error as err:
        detail = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        raise SongmillError(f"ffmpeg failed while {what} ({detail[-1] if detail else 'no message'}); check the ffmpeg install (make setup)") from None
    except FileNotFoundError:
        raise SongmillError("ffmpeg is not installed; run `make setup` (it installs Debian's ffmpeg)") from None
    return out


def encode_listening_copy(source: Path, dest: Path, *, bitrate_kbps: int = 160) -> None:
    """An Opus copy (Ogg) of an audio file, for a browser to play: no delivery file (no tags, no
    loudness work). Written beside `dest` under another name, then renamed: a reader never sees
    half of one, and two writers at once each write their own."""
    fd, partial = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    try:
        options = {"acodec": "libopus", "audio_bitrate": f"{bitrate_kbps}k", "format": "ogg", "map_metadata": -1}
        _ffmpeg(ffmpeg.input(str(source)).output(partial, **options).overwrite_output(), f"encoding {dest.name} to listen to")
        as_if_created(partial)  # readable as the masters beside it are, not tempfile's 0600
        os.replace(partial, dest)
    finally:
        Path(partial).unlink(missing_ok=True)


def _encode_lossless(samples: np.ndarray, rate: int, fmt: AudioFormat, dest: Path, seed: int) -> np.ndarray:
    """Dither to the format's depth and write it; returns the delivered samples as float."""
    bit_depth = cast(int, fmt.bit_depth)  # AudioFormat requires one for wav and flac
    pcm = to_pcm(samples, bit_depth, seed=seed)
    if fmt.container == "wav":
        write_pcm_wav(dest, pcm, rate, bit_depth)
    else:
        wav = dest.with_suffix(".pcm.wav")
        write_pcm_wav(wav, pcm, rate, bit_depth)
        try:
            options = {"acodec": "flac", "map_metadata": -1, **BITEXACT}
            if bit_depth == 24:
                options["sample_fmt"] = "s32"
            _ffmpeg(ffmpeg.input(str(wav)).output(str(dest), format="flac", **options).overwrite_output(), f"encoding {dest.name}")
        finally:
            wav.unlink(missing_ok=True)
    return pcm.astype(np.float32) / float(1 << (bit_depth - 1))


def _encode_lossy(samples: np.ndarray, rate: int, fmt: AudioFormat, dest: Path, gain_db: float) -> None:
    channels = samples.shape[1]
    source = ffmpeg.input("pipe:", format="f32le", ac=channels, ar=rate)
    if gain_db:
        source = source.filter("volume", f"{gain_db:.3f}dB")
    options = {"acodec": CODEC[fmt.container], "audio_bitrate": f"{fmt.bitrate_kbps}k", "map_metadata": -1, **BITEXACT}
    if fmt.container == "mp3":
        options["id3v2_version"] = 0  # tags come later, from mutagen
    if fmt.container == "m4a":
        options["format"] = "ipod"  # .m4a, not a video MP4
    if fmt.container == "opus":
        options["format"] = "ogg"
    stream = source.output(str(dest), **options).overwrite_output()
    _ffmpeg(stream, f"encoding {dest.name}", input_bytes=np.ascontiguousarray(samples, "<f4").tobytes())


def encode(samples: np.ndarray, rate: int, fmt: AudioFormat, dest: Path, *, lossy_ceiling_dbtp: float, seed: int) -> tuple[float, float]:
    """Encode (frames, channels) float samples at `rate` into `dest`; returns (true peak of the
    delivered file in dBTP, gain in dB applied). A lossy file whose decoded true peak passes
    `lossy_ceiling_dbtp` is encoded again, quieter by the excess and a margin."""
    if fmt.container in ("wav", "flac"):
        delivered = _encode_lossless(samples, rate, fmt, dest, seed)
        return true_peak_dbtp(delivered, rate), 0.0
    ceiling_dbtp, gain_db = lossy_ceiling_dbtp, 0.0
    for attempt in range(MAX_LOSSY_TRIES):
        _encode_lossy(samples, rate, fmt, dest, gain_db)
        peak = true_peak_dbtp(decode(dest, sample_rate_hz=rate)[0], rate)
        if peak <= ceiling_dbtp:
            return peak, gain_db
        gain_db += ceiling_dbtp - peak - PEAK_MARGIN_DB * 2**attempt
        log.info("%s peaked at %.2f dBTP after encoding (ceiling %.1f); re-encoding %.2f dB quieter", dest.name, peak, ceiling_dbtp, -gain_db)
    raise SongmillError(
        f"{dest.name} still peaks at {peak:.2f} dBTP after {MAX_LOSSY_TRIES} encodes (ceiling {ceiling_dbtp} dBTP); lower the profile's true_peak_dbtp"
    )


def preview_window(sections: list[tuple[str, float, float]], duration_s: float, length_s: float) -> tuple[float, float]:
    """Where a preview clip goes: `length_s` seconds starting CLIP_LEAD_IN_S before the first
    chorus (else the most energetic section), kept inside the song.

    `sections` are (name, start_s, energy)."""
    if duration_s <= length_s:
        return 0.0, duration_s
    chorus = next((start for name, start, _ in sections if name == "chorus"), None)
    if chorus is None:
        chorus = max(sections, key=lambda s: s[2])[1] if sections else 0.0
    start = min(max(0.0, chorus - CLIP_LEAD_IN_S), duration_s - length_s)
    return round(start, 3), round(start + length_s, 3)


def cut_clip(samples: np.ndarray, rate: int, start_s: float, end_s: float) -> np.ndarray:
    """The samples between two times with raised-cosine fades in and out."""
    clip = samples[int(round(start_s * rate)) : int(round(end_s * rate))].astype(np.float32, copy=True)
    for length_s, ramp_up in ((CLIP_FADE_IN_S, True), (CLIP_FADE_OUT_S, False)):
        n = min(int(length_s * rate), len(clip) // 2)
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32)))[:, None]
        if ramp_up:
            clip[:n] *= ramp
        else:
            clip[len(clip) - n :] *= ramp[::-1]
    return clip


def no_louder_than(clip: np.ndarray, rate: int, target_lufs: float) -> np.ndarray:
    """A preview clip turned down to the profile's loudness where it is louder. A clip is the
    song's loudest stretch (its first chorus) and measured alone it read up to 1.7 LU above the
    profile's target, failing the profile's own gate; quieter clips are left as they are (raising
    one could pass the ceiling its master was limited to)."""
    from songmill.core.loudness import integrated_lufs

    measured = integrated_lufs(clip, rate)
    if not np.isfinite(measured) or measured <= target_lufs:
        return clip
    return clip * np.float32(10 ** ((target_lufs - measured) / 20))


def format_tag(fmt: AudioFormat, rate: int) -> str:
    """A short name for a format: "44k16" (rate, bits) for lossless, "320k" (bitrate) for lossy."""
    if fmt.bit_depth:
        return f"{rate // 1000}k{fmt.bit_depth}"
    return f"{fmt.bitrate_kbps}k"


def export_profile(
    master: np.ndarray,
    rate: int,
    name: str,
    profile: DeliveryProfile,
    workdir: Path,
    *,
    seed: int,
    clip: tuple[float, float] | None,
    resampled: dict[int, np.ndarray] | None = None,
) -> list[EncodedFile]:
    """Every file `profile` delivers for one track: each of its formats, and a preview clip in
    each format when the profile asks for one (`clip` is its window in seconds). `resampled`:
    the master at other rates already (rate → samples), filled in with the rates this profile
    makes; profiles whose masters are the same file share one (one resampling each rate)."""
    from songmill.core.loudness import integrated_lufs

    resampled = resampled if resampled is not None else {}
    resampled.setdefault(rate, master)
    pieces: list[tuple[bool, tuple[float, float] | None]] = [(False, None)] + ([(True, clip)] if profile.preview_clip_s and clip else [])
    jobs = []
    for is_clip, window in pieces:
        for fmt in profile.formats:
            out_rate = fmt.sample_rate_hz or LOSSY_RATE_HZ[fmt.container]
            if out_rate not in resampled:
                resampled[out_rate] = resample(master, from_hz=rate, to_hz=out_rate, method="soxr")
            jobs.append((is_clip, window, fmt, out_rate))

    names = [f"{'-clip' if is_clip else ''}-{format_tag(fmt, out_rate)}.{EXTENSION[fmt.container]}" for is_clip, _, fmt, out_rate in jobs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # two formats that would write one file (e.g. MP3 320k at two rates): neither may overwrite the other
        raise SongmillError(
            f"profile '{name}' lists two formats that both make export-{name}{twice[0]}; remove one of them from {config_file('profiles.yaml')}"
        )

    # a clip is no louder than the profile's loudness; a profile matched to a reference's: the master's
    clip_ceiling_lufs = None
    if len(pieces) > 1:  # the master is measured only when a clip needs it
        clip_ceiling_lufs = profile.loudness_lufs if isinstance(profile.loudness_lufs, float) else integrated_lufs(master, rate)

    def one_file(job: tuple[bool, tuple[float, float] | None, AudioFormat, int]) -> EncodedFile:
        is_clip, window, fmt, out_rate = job
        samples = resampled[out_rate]
        if window is not None and clip_ceiling_lufs is not None:  # is_clip
            samples = no_louder_than(cut_clip(samples, out_rate, *window), out_rate, clip_ceiling_lufs)
        dest = workdir / f"export-{name}{'-clip' if is_clip else ''}-{format_tag(fmt, out_rate)}.{EXTENSION[fmt.container]}"
        peak, gain = encode(samples, out_rate, fmt, dest, lossy_ceiling_dbtp=profile.lossy_true_peak_dbtp, seed=seed)
        return EncodedFile(
            file=dest.name,
            profile=name,
            container=fmt.container,
            codec="pcm" if fmt.container == "wav" else CODEC[fmt.container].removeprefix("lib").replace("mp3lame", "mp3"),
            sample_rate_hz=out_rate,
            bit_depth=fmt.bit_depth,
            bitrate_kbps=fmt.bitrate_kbps,
            channels=samples.shape[1],
            duration_s=round(len(samples) / out_rate, 3),
            true_peak_dbtp=round(float(peak), 2),
            gain_db=round(float(gain), 2),
            clip=is_clip,
            integrated_lufs=round(integrated_lufs(samples, out_rate) + gain, 2),
            clip_start_s=window[0] if window is not None else None,
        )

    # the files are independent: ENCODE_THREADS at a time (the encoders are ffmpeg processes, the
    # meters numpy), in the order listed, each file's bytes the same as one at a time
    with ThreadPoolExecutor(max_workers=ENCODE_THREADS) as pool:
        return list(pool.map(one_file, jobs))
