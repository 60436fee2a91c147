"""Melody generation: the trained GRU, sampled under music-theory constraints.

The network proposes the next pitch from the melody so far, the chord, the metric position and
the note length (it learned this from folk tunes); the sampler then applies the rules a
songwriter would: the singer's range, the key's scale (chromatic notes only as short weak
passing notes), chord tones on strong beats and long notes, no leaps beyond a major sixth,
stepwise motion preferred, a tessitura per section (choruses sit higher), and phrase ends that
resolve to the chord root, the tonic at cadences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.composition.melody_features import MAJOR_LIKE, N_PITCH, PITCH_HIGH, PITCH_LOW, START_TOKEN, MelodyEvent, encode_step
from models.composition.melody_model import MelodyGRU
from songmill.core.music import Key

MAX_LEAP = 9  # semitones (a major sixth)
TEMPERATURE = 1.1  # chosen so 20 seeds of the demo share well under half their 4-note interval patterns (make bench)
APPOGGIATURA_CHANCE = 0.08  # a non-chord scale tone on the mid-bar strong beat


@dataclass(frozen=True)
class NoteSlot:
    """A note the melody must fill: its time is fixed, its pitch is sampled."""

    start_beat: float
    duration_beats: float
    strength: int  # metric strength of the onset (songmill.core.music.metric_strength)
    chord_pcs: tuple[int, ...]  # absolute pitch classes of the sounding chord
    phrase_end: bool = False
    cadence: bool = False  # the last note of a section: resolve to the tonic


def voice_range(identity: str | None) -> tuple[int, int]:
    """The identity's comfortable range (MIDI), from the model registry."""
    from models.registry import ModelRegistry

    return ModelRegistry.load().voice_range(identity)


class MelodySampler:
    """Samples pitches note by note, carrying the network's state across the whole song."""

    def __init__(self, model: MelodyGRU, key: Key, rng: np.random.Generator, *, low: int, high: int):
        self.model, self.key, self.rng = model, key, rng
        self.low, self.high = low, high
        self.major = key.mode in MAJOR_LIKE
        # The tonic's MIDI number that token 0 stands for: just above the bottom of the range.
        self.tonic_ref = low - 5 + (key.tonic_pitch_class - (low - 5)) % 12
        self.scale = set((pc - key.tonic_pitch_class) % 12 for pc in key.scale_pitch_classes)
        self.tokens = np.arange(PITCH_LOW, PITCH_HIGH + 1)
        self.state: torch.Tensor | None = None
        self.previous: int | None = None  # previous token

    def to_midi(self, token: int) -> int:
        return self.tonic_ref + token

    def sample_one(self, slot: NoteSlot, *, centre_midi: float, forced_midi: int | None = None) -> int:
        chord_rel = tuple((pc - self.key.tonic_pitch_class) % 12 for pc in slot.chord_pcs)
        event = MelodyEvent(0, slot.strength, slot.duration_beats, chord_rel, slot.phrase_end)
        prev_index = START_TOKEN if self.previous is None else self.previous - PITCH_LOW
        row = torch.from_numpy(encode_step(event, prev_index, self.major))[None, None, :]
        with torch.no_grad():
            logits, self.state = self.model(row, self.state)
        if forced_midi is not None:  # a repeated phrase: keep the network's state in step
            token = int(np.clip(forced_midi - self.tonic_ref, PITCH_LOW, PITCH_HIGH))
        else:
            scores = logits[0, -1].numpy().astype(np.float64) / TEMPERATURE + self._bias(slot, chord_rel, centre_midi)
            if not np.isfinite(scores).any():
                scores = self._fallback(chord_rel)
            probs = np.exp(scores - scores[np.isfinite(scores)].max())
            probs[~np.isfinite(scores)] = 0.0
            token = int(self.tokens[self.rng.choice(N_PITCH, p=probs / probs.sum())])
        self.previous = token
        return self.to_midi(token)

    def _bias(self, slot: NoteSlot, chord_rel: tuple[int, ...], centre_midi: float) -> np.ndarray:
        midi = self.tonic_ref + self.tokens
        rel = self.tokens % 12
        bias = np.zeros(N_PITCH)
        bias[(midi < self.low) | (midi > self.high)] = -np.inf
        in_scale = np.isin(rel, list(self.scale))
        chord_tone = np.isin(rel, list(chord_rel)) & in_scale
        structural = slot.strength == 0 or slot.phrase_end or slot.duration_beats >= 1.5 or (slot.strength == 1 and self.rng.random() >= APPOGGIATURA_CHANCE)
        if structural:
            bias[~chord_tone] = -np.inf
        else:
            bias[~in_scale] += -np.inf if slot.duration_beats > 0.5 else -3.0
        if self.previous is not None:
            leap = np.abs(self.tokens - self.previous)
            bias[leap > MAX_LEAP] = -np.inf
            bias -= 0.12 * np.maximum(leap - 2, 0)
        bias -= 0.5 * ((midi - centre_midi) / 5.0) ** 2
        if slot.phrase_end:
            bias[rel == chord_rel[0]] += 1.0
        if slot.cadence:
            bias[rel == 0] += 2.5
        return bias

    def _fallback(self, chord_rel: tuple[int, ...]) -> np.ndarray:
        """Every constraint at once left nothing (a leap from the range's edge): nearest chord tone."""
        midi = self.tonic_ref + self.tokens
        ok = np.isin(self.tokens % 12, list(chord_rel)) & (midi >= self.low) & (midi <= self.high)
        if self.previous is not None:
            distance = np.abs(self.tokens - self.previous).astype(float)
        else:
            distance = np.zeros(N_PITCH)
        return np.where(ok, -distance, -np.inf)
