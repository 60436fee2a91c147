"""Sung phrases kept for the next render of the same song (the song editor's section edits).

The vocals stage sings phrase by phrase, each from its own seed (`models.voice.singer.sing`). A
new melody for verse 2 changes verse 2's phrases and no other, so the other phrases need not be
sung again: their audio already lies in the stems of the render before. After each render this
module records, for every phrase whose takes lie alone in their stems (no other phrase overlaps
them), where they lie: a store record per phrase key pointing at the stem blob, the first frame
and the length. The key names everything the audio depends on outside the score
(`sung_namespace`: the voice model and its files, the singer's code, the libraries that shape the
sound), so a new voice, a changed singer or an upgraded WORLD sings every phrase again. The next render looks each phrase key up and reads those frames back instead of
singing — the same float32 samples, so the vocal stems are byte-identical to singing everything
again (tested). A record that is damaged, or whose stem blob is gone or damaged, counts as not found.

Records are small (a few hundred bytes a phrase); the audio itself is only the stems the store
keeps anyway.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from songmill.core.audio import read_wav
from songmill.core.errors import SongmillError
from songmill.core.store import ArtifactRef, ArtifactStore

log = logging.getLogger(__name__)

RECORD_PREFIX = "phrase-"


class StoredPhrases:
    """`models.voice.singer.PhraseReuse` over an artifact store: takes read from earlier stems."""

    def __init__(self, store: ArtifactStore):
        self.store = store
        self.found = 0  # phrases read back rather than sung (the stage reports it)
        self._stems: dict[str, np.ndarray | None] = {}  # blob sha256 → its samples (frames, channels)
        self._scratch = tempfile.TemporaryDirectory(prefix="songmill-phrases-")

    def takes(self, key: str):  # noqa: ANN201 - list[models.voice.singer.Placed] | None (models is above the engine's core)
        from models.voice.singer import Placed

        try:
            record = self.store.get_record(RECORD_PREFIX + key)
            if record is None:
                return None
            placed = []
            for take in record["takes"]:
                stem = self._stem(take["stem"])
                audio = stem[take["begin"] : take["begin"] + take["frames"]] if stem is not None else None
                if audio is None or len(audio) != take["frames"]:
                    return None
                placed.append(Placed(take["take"], take["begin"], (audio[:, 0] if audio.shape[1] == 1 else audio).copy()))
        except (SongmillError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            # a damaged record, a blob gone or damaged, a store out of reach: only a speed-up is lost
            log.warning("phrase %s… not read back (%s); it is sung again", key[:12], err)
            return None
        self.found += 1
        return placed

    def _stem(self, ref: dict) -> np.ndarray | None:
        sha = ref["sha256"]
        if sha not in self._stems:
            self._stems[sha] = None  # tried once: a stem that cannot be read is not asked for again
            if self.store.intact(sha):
                path = self.store.get_file(ArtifactRef.from_dict(ref), Path(self._scratch.name) / sha)  # checks the bytes against sha
                self._stems[sha] = read_wav(path)[0]
                path.unlink()
        return self._stems[sha]

    def close(self) -> None:
        self._stems.clear()
        self._scratch.cleanup()


def remember_phrases(store: ArtifactStore, records: list, stems: dict[str, Path]) -> int:
    """Record where each phrase's takes lie in the stems just written (`stems`: take name → the
    WAV file). Only phrases whose every take lies alone are recorded. Returns how many were."""
    refs: dict[str, dict] = {}
    recorded = 0
    for record in records:
        if not record.placed or not all(record.alone.get(take.take, False) for take in record.placed):
            continue
        if any(take.take not in stems for take in record.placed):
            continue
        for take in record.placed:
            if take.take not in refs:
                refs[take.take] = store.put_file(stems[take.take]).to_dict()
        takes = [{"take": t.take, "begin": t.begin, "frames": len(t.audio), "stem": refs[t.take]} for t in record.placed]
        store.put_record(RECORD_PREFIX + record.key, {"takes": takes})
        recorded += 1
    return recorded


def sung_namespace(stage_version: str, model: dict, model_path: Path, rate_hz: int) -> str:
    """What a phrase's audio depends on besides the score: the vocals stage's version, the voice
    model (its registry provenance, and every file beside it, e.g. Piper's .onnx.json with its
    noise and length scales), the singer's own code and the libraries that make the sound."""
    import hashlib
    import json
    from importlib.metadata import PackageNotFoundError, version

    import models.voice.singer as singer_module

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    folder = model_path if model_path.is_dir() else model_path.parent
    files = {p.name: digest(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in (".json", ".yaml", ".txt")}
    libraries: dict[str, str | None] = {}
    for package in ("pyworld", "scipy", "numpy", "onnxruntime", "soxr"):
        try:
            libraries[package] = version(package)
        except PackageNotFoundError:
            libraries[package] = None
    material = {
        "stage": stage_version,
        "model": model,
        "model_files": files,
        "singer": digest(Path(singer_module.__file__)),
        "libraries": libraries,
        "rate": rate_hz,
    }
    return json.dumps(material, sort_keys=True)
