"""Soundfont rendering: each arranged part through FluidSynth into its own stem.

    stems = render_stems(arrangement, score, soundfont=Path(".../FluidR3_GM.sf2"))
    # {"drums": float32 array, "bass": …}, all the same length, sample-exact on the score's timeline

The FluidSynth command line renders a one-part MIDI file (the score's tempo map, the part's
notes with their velocities and humanised timing) offline, faster than real time, with its
reverb and chorus off (space is the mix's job) and writes raw float samples: no headers, no
timestamps, so equal input gives equal bytes. Two parts render at once (2 cores).
Stems are mono (the mix pans them), 48 kHz float, and all start at the song's beat 0 and run
to the end of the song plus a release tail.

Because equal input gives equal bytes, a part whose MIDI file is the same as in an earlier
render (a new melody for verse 2 leaves the drums, bass and chords as they were) need not be
rendered again: `render_stems(..., memo=...)` asks a `StemMemo` for the stem kept under the
part's key (the memo makes it from the part's MIDI file and the stem's length, with what else
shapes the sound: the soundfont, `renderer_identity()`) and renders only the parts it lacks. The
stems a memo keeps are the ones the caller writes from `render_stems`' answer unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from models.instruments.arrangement import ArrangedPart, Arrangement
from songmill.core.audio import SAMPLE_RATE_HZ, channel_mean
from songmill.core.errors import SongmillError
from songmill.core.score import Part, Score
from songmill.core.score_export import write_midi

TAIL_S = 2.0  # release and decay after the last bar
GAIN = 0.5  # FluidSynth master gain: stems peak well below full scale
PARALLEL_RENDERS = 2


class StemMemo(Protocol):
    """Stems of earlier renders by part key (the engine keeps them in its artifact store)."""

    def key(self, midi: bytes, frames: int) -> str:
        """A part's key: its MIDI file and stem length, with everything else the memo's sound depends on."""
        ...

    def stem(self, key: str, frames: int) -> np.ndarray | None:
        """The mono stem kept under `key`, exactly `frames` long; None when there is none (or it
        cannot be read: the part is then rendered)."""
        ...

    def rendered(self, part: str, key: str) -> None:
        """`part` was rendered now under `key` (its caller keeps the stem once it is written)."""
        ...


def fluidsynth_binary() -> str:
    binary = shutil.which("fluidsynth")
    if binary is None:
        raise SongmillError("the fluidsynth program is not installed; install the Debian package fluidsynth (make setup does)")
    return binary


def stem_frames(score: Score, sample_rate_hz: int = SAMPLE_RATE_HZ) -> int:
    """Every stem's length in samples: the song plus the tail."""
    return int(round((score.duration_s + TAIL_S) * sample_rate_hz))


def _part_score(score: Score, part: ArrangedPart) -> Score:
    """A score with only this part (and the full tempo map), for its MIDI file."""
    return score.model_copy(
        update={"parts": [Part(name=part.name, role="drums" if part.is_drum else "harmony", program=part.program, is_drum=part.is_drum, notes=part.notes)]}
    )


_CODE_SHA256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # the code this process runs, not the file as edited since


@functools.cache
def renderer_identity() -> str:
    """What a stem depends on in the renderer itself: FluidSynth's full `--version` answer (its
    version and build: a double-precision build sounds different), this module's code (the
    command line, gain and tail) and `channel_mean`'s (the down-mix to mono)."""
    import inspect

    try:
        result = subprocess.run([fluidsynth_binary(), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SongmillError(f"the fluidsynth program did not answer --version ({err}); reinstall the Debian package fluidsynth (make setup does)") from None
    version = hashlib.sha256(f"{result.returncode}\0{result.stdout}\0{result.stderr}".encode()).hexdigest()
    down_mix = hashlib.sha256(inspect.getsource(channel_mean).encode()).hexdigest()
    return f"fluidsynth {version}, soundfont.py {_CODE_SHA256}, channel_mean {down_mix}"


def render_part(
    part: ArrangedPart,
    score: Score,
    soundfont: Path,
    *,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    workdir: Path,
    memo: StemMemo | None = None,
) -> np.ndarray:
    """One part → a mono float32 stem of exactly `stem_frames(score)` samples (from `memo` when it
    has this part's stem already)."""
    midi_path = workdir / f"{part.name}.mid"
    raw_path = workdir / f"{part.name}.raw"
    write_midi(_part_score(score, part), midi_path)
    frames = stem_frames(score, sample_rate_hz)
    key = memo.key(midi_path.read_bytes(), frames) if memo is not None else ""
    if memo is not None and (kept := memo.stem(key, frames)) is not None:
        return kept
    command = [
        fluidsynth_binary(),
        "-ni",
        "-q",
        "-R",
        "0",
        "-C",
        "0",
        "-g",
        str(GAIN),
        "-r",
        str(sample_rate_hz),
        "-O",
        "float",
        "-T",
        "raw",
        "-E",
        "little",
        "-F",
        str(raw_path),
        str(soundfont),
        str(midi_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not raw_path.exists():
        raise SongmillError(f"FluidSynth failed to render part '{part.name}' with {soundfont}: {(result.stderr or result.stdout).strip()[:300]}")
    stereo = np.fromfile(raw_path, dtype="<f4").reshape(-1, 2)
    mono = channel_mean(stereo)
    stem = np.zeros(frames, dtype=np.float32)
    stem[: min(frames, len(mono))] = mono[:frames]
    if memo is not None:
        memo.rendered(part.name, key)
    return stem


def render_stems(
    arrangement: Arrangement,
    score: Score,
    *,
    soundfont: Path,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    memo: StemMemo | None = None,
) -> dict[str, np.ndarray]:
    """All parts of an arrangement, rendered two at a time; with a `memo`, a part it holds a stem
    for is read back instead."""
    if not Path(soundfont).is_file():
        raise SongmillError(f"soundfont {soundfont} is missing; install the Debian package fluid-soundfont-gm (make setup does)")
    with tempfile.TemporaryDirectory(prefix="songmill-fluidsynth-") as tmp:
        with ThreadPoolExecutor(max_workers=PARALLEL_RENDERS) as pool:
            futures = {
                part.name: pool.submit(render_part, part, score, soundfont, sample_rate_hz=sample_rate_hz, workdir=Path(tmp), memo=memo)
                for part in arrangement.parts
            }
            return {name: future.result() for name, future in futures.items()}
