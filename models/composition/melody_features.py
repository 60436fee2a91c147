"""The melody model's vocabulary: how a note and its context become numbers.

Shared by the training script (folk tunes from music21's corpus) and the generator (our songs),
so both see exactly the same encoding.

A melody is a sequence of `MelodyEvent`s. The model predicts the **pitch token** of each note
from the previous pitch and the note's known context (the generator decides rhythm and chords
first, from the lyrics and the harmony):

* pitch token: semitones above the tonic, -12 … +24 (`PITCH_LOW` … `PITCH_HIGH`), 37 values;
  the song's tonic in octave 4 (MIDI 60–71) is 0.
* metric strength of the note's onset: 0 downbeat, 1 other strong beat, 2 weak beat, 3 off-beat.
* duration class (`DURATION_CLASSES`, quarter-note beats).
* the sounding chord as 12 pitch classes relative to the tonic (multi-hot).
* whether the note ends a phrase, and whether the key is major-like (major, mixolydian, lydian).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PITCH_LOW, PITCH_HIGH = -12, 24
N_PITCH = PITCH_HIGH - PITCH_LOW + 1  # 37 pitch tokens
START_TOKEN = N_PITCH  # "no previous note"
DURATION_CLASSES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)  # quarter-note beats
N_STRENGTH = 4
INPUT_SIZE = (N_PITCH + 1) + N_STRENGTH + len(DURATION_CLASSES) + 12 + 1 + 1  # 64

MAJOR_LIKE = {"major", "ionian", "mixolydian", "lydian"}


@dataclass(frozen=True)
class MelodyEvent:
    pitch_token: int  # semitones above the tonic (PITCH_LOW … PITCH_HIGH)
    strength: int  # 0 downbeat, 1 strong beat, 2 weak beat, 3 off-beat
    duration_beats: float
    chord_pcs: tuple[int, ...]  # pitch classes relative to the tonic
    phrase_end: bool


def duration_class(beats: float) -> int:
    return int(np.argmin([abs(np.log2(beats / c)) for c in DURATION_CLASSES]))


def encode_inputs(events: list[MelodyEvent], major: bool, previous_token: int = START_TOKEN) -> np.ndarray:
    """Model inputs, one row per event: row t describes note t and the pitch of note t-1."""
    rows = np.zeros((len(events), INPUT_SIZE), dtype=np.float32)
    prev = previous_token
    for t, event in enumerate(events):
        rows[t] = encode_step(event, prev, major)
        prev = event.pitch_token - PITCH_LOW
    return rows


def encode_step(event: MelodyEvent, previous_index: int, major: bool) -> np.ndarray:
    """One input row. `previous_index` is the previous note's pitch index (0 … 36) or START_TOKEN."""
    row = np.zeros(INPUT_SIZE, dtype=np.float32)
    row[previous_index] = 1.0
    offset = N_PITCH + 1
    row[offset + event.strength] = 1.0
    offset += N_STRENGTH
    row[offset + duration_class(event.duration_beats)] = 1.0
    offset += len(DURATION_CLASSES)
    for pc in event.chord_pcs:
        row[offset + pc % 12] = 1.0
    offset += 12
    row[offset] = float(event.phrase_end)
    row[offset + 1] = float(major)
    return row
