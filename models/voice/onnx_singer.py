"""The second voice backend: a neural singing-voice model (ONNX) from a local directory.

A model folder registered with `backend: onnx-singing` holds two files:

    singer.onnx   inputs  phonemes  int64   [1, T]   one phoneme id per frame
                          f0        float32 [1, T]   target pitch per frame, Hz (0 = silence)
                  output  audio     float32 [1, T × hop_length] (or [1, 1, T × hop_length])
    singer.json   {"sample_rate": 44100, "hop_length": 512,
                   "phonemes": {"SIL": 0, "AA": 1, "AE": 2, …}}   ARPAbet without stress digits

songmill decides everything the score decides — which phoneme sounds in each frame (consonants
before the beat, vowels filling the note) and the pitch contour with the style's glides,
overshoot and vibrato — and the model only voices it, the way a singing model's acoustic stage
plus vocoder would. The identity's range and the style apply; its formant shift and tilt are
WORLD settings (models/voice/singer.py) and do not: a neural singer has its own timbre.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.voice.piper import HOP_SAMPLES
from models.voice.singer import Phrase, Take, gain_contour_db, pitch_contour
from songmill.core.errors import SongmillError

SILENCE = "SIL"
MODEL_FILE, CONFIG_FILE = "singer.onnx", "singer.json"


class OnnxSinger:
    backend = "onnx-singing"

    def __init__(self, session, sample_rate_hz: int, hop_length: int, phoneme_ids: dict[str, int], source: Path):
        self.session, self.sample_rate_hz, self.hop_length = session, sample_rate_hz, hop_length
        self.phoneme_ids, self.source = phoneme_ids, source

    @classmethod
    def load(cls, folder: Path, *, threads: int = 1) -> "OnnxSinger":
        import onnxruntime

        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            rate, hop, ids = int(config["sample_rate"]), int(config["hop_length"]), dict(config["phonemes"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SongmillError(f"singing model {folder}: {CONFIG_FILE} must give sample_rate, hop_length and phonemes ({type(err).__name__}: {err})") from None
        if SILENCE not in ids:
            raise SongmillError(f"singing model {folder}: {CONFIG_FILE} phonemes has no '{SILENCE}' (silence) id")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            session = onnxruntime.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise SongmillError(f"singing model {folder / MODEL_FILE} cannot be loaded: {err}") from None
        names = {i.name for i in session.get_inputs()}
        if not {"phonemes", "f0"} <= names:
            raise SongmillError(f"singing model {folder / MODEL_FILE} has inputs {sorted(names)}; it needs 'phonemes' and 'f0' (models/voice/onnx_singer.py)")
        return cls(session, rate, hop, ids, folder)

    def frame_phonemes(self, phrase: Phrase, frames: int) -> np.ndarray:
        """The phoneme id sounding in each model frame (silence after the last phone)."""
        ids = np.full(frames, self.phoneme_ids[SILENCE], dtype=np.int64)
        start_s = 0.0
        for phone in phrase.phones:
            end_s = start_s + phone.frames * HOP_SAMPLES / self.sample_rate_hz
            base = phone.arpabet.rstrip("012")
            if base not in self.phoneme_ids:
                raise SongmillError(f"singing model {self.source} has no phoneme '{base}' in {CONFIG_FILE}")
            first, last = (int(round(t * self.sample_rate_hz / self.hop_length)) for t in (start_s, end_s))
            ids[first : min(last, frames)] = self.phoneme_ids[base]
            start_s = end_s
        return ids

    def render(self, phrase: Phrase, takes: list[Take], seed: int) -> list[np.ndarray]:
        samples = sum(p.frames for p in phrase.phones) * HOP_SAMPLES
        frames = -(-samples // self.hop_length)
        times = np.arange(frames) * self.hop_length / self.sample_rate_hz
        phonemes = self.frame_phonemes(phrase, frames)
        out = []
        for take in takes:
            f0 = pitch_contour(take.notes, times, take.expression, take.vibrato_phase)
            f0 = np.where(phonemes == self.phoneme_ids[SILENCE], 0.0, f0).astype(np.float32)
            audio = self.session.run(None, {"phonemes": phonemes[None, :], "f0": f0[None, :]})[0].reshape(-1)
            if len(audio) != frames * self.hop_length:
                raise SongmillError(
                    f"singing model {self.source} returned {len(audio)} samples for {frames} frames; "
                    f"the contract is frames × hop_length = {frames * self.hop_length}"
                )
            gain = np.repeat(10 ** (gain_contour_db(take.notes, times, self.hop_length / self.sample_rate_hz) / 20), self.hop_length)
            out.append((audio * gain)[:samples].astype(np.float32))
        return out
