"""Soundfont rendering: each arranged part through FluidSynth into its own stem.

    stems = render_stems(arrangement, score, soundfont=Path(".../FluidR3_GM.sf2"))
    # {"drums": float32 array, "bass": …}, all the same length, sample-exact on the score's timeline

The FluidSynth command line renders a one-part MIDI file (the score's tempo map, the part's
notes with their velocities and humanised timing) offline, faster than real time, with its
reverb and chorus off (space is the mix's job) and writes raw float samples: no headers, no
timestamps, so equal input gives equal bytes. Two parts render at once (2 cores).
Stems are mono (the mix pans them), 48 kHz float, and all start at the song's beat 0 and run
to the end of the song plus a release tail.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from models.instruments.arrangement import ArrangedPart, Arrangement
from songmill.core.audio import SAMPLE_RATE_HZ, channel_mean
from songmill.core.errors import SongmillError
from songmill.core.score import Part, Score
from songmill.core.score_export import write_midi

TAIL_S = 2.0  # release and decay after the last bar
GAIN = 0.5  # FluidSynth master gain: stems peak well below full scale
PARALLEL_RENDERS = 2


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


def render_part(part: ArrangedPart, score: Score, soundfont: Path, *, sample_rate_hz: int = SAMPLE_RATE_HZ, workdir: Path) -> np.ndarray:
    """One part → a mono float32 stem of exactly `stem_frames(score)` samples."""
    midi_path = workdir / f"{part.name}.mid"
    raw_path = workdir / f"{part.name}.raw"
    write_midi(_part_score(score, part), midi_path)
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
    frames = stem_frames(score, sample_rate_hz)
    stem = np.zeros(frames, dtype=np.float32)
    stem[: min(frames, len(mono))] = mono[:frames]
    return stem


def render_stems(arrangement: Arrangement, score: Score, *, soundfont: Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> dict[str, np.ndarray]:
    """All parts of an arrangement, rendered two at a time."""
    if not Path(soundfont).is_file():
        raise SongmillError(f"soundfont {soundfont} is missing; install the Debian package fluid-soundfont-gm (make setup does)")
    with tempfile.TemporaryDirectory(prefix="songmill-fluidsynth-") as tmp:
        with ThreadPoolExecutor(max_workers=PARALLEL_RENDERS) as pool:
            futures = {
                part.name: pool.submit(render_part, part, score, soundfont, sample_rate_hz=sample_rate_hz, workdir=Path(tmp)) for part in arrangement.parts
            }
            return {name: future.result() for name, future in futures.items()}
