"""Instrument stems kept for the next render of the same song (the song editor's section edits).

FluidSynth gives equal bytes for an equal MIDI file (`models.instruments.soundfont`), so a part
whose notes, program and tempo map did not change sounds exactly as before: a new melody for
verse 2 renders again only the parts whose notes it changed. After the instruments stage writes
its stems, this module keeps, for each part it rendered, a store record under the part's key
pointing at the stem's blob. The key hashes the part's MIDI file and stem length with the
namespace the stage gives (`stem_namespace`: its version, the soundfont's registry hash, the
renderer's identity and the rate). The next render looks each part's key up and reads the stem
back instead of rendering it: the same float32 samples, so the stems are byte-identical to
rendering them all again (tested). A record that is damaged, or whose blob is gone, damaged or
of another shape, counts as not found and the part is rendered.

Records are a few hundred bytes a part; the audio is the stems the store keeps anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import numpy as np

from songmill.core.audio import read_wav
from songmill.core.errors import SongmillError
from songmill.core.store import ArtifactRef, ArtifactStore
from songmill.engine.stage import local_copy

log = logging.getLogger(__name__)

RECORD_PREFIX = "stem-"


def stem_namespace(stage_version: str, soundfont_sha256: str, renderer: str, rate_hz: int) -> str:
    """What a part's stem depends on besides its MIDI file and length."""
    return json.dumps({"stage": stage_version, "soundfont": soundfont_sha256, "renderer": renderer, "rate": rate_hz}, sort_keys=True)


class StoredStems:
    """`models.instruments.soundfont.StemMemo` over an artifact store, used as a context manager.
    Parts render on two threads, so what it counts and notes is guarded by a lock."""

    def __init__(self, store: ArtifactStore, namespace: str):
        self.store = store
        self.namespace = namespace
        self.found = 0  # parts read back rather than rendered (the stage reports it)
        self._rendered: dict[str, str] = {}  # part name → its key, for the parts rendered now
        self._lock = threading.Lock()
        self._scratch = tempfile.TemporaryDirectory(prefix="songmill-stems-")

    def __enter__(self) -> StoredStems:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._scratch.cleanup()

    def key(self, midi: bytes, frames: int) -> str:
        return hashlib.sha256(b"\0".join([self.namespace.encode(), str(frames).encode(), midi])).hexdigest()

    def stem(self, key: str, frames: int) -> np.ndarray | None:
        try:
            audio = self._read(key)
        except (SongmillError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            # a damaged record, a blob gone or damaged, a store out of reach: only a speed-up is lost
            log.warning("instrument stem %s… not read back (%s); the part is rendered again", key[:12], err)
            return None
        if audio is None:
            return None
        if audio.shape != (frames, 1):
            log.warning("instrument stem %s… is %s where the part needs (%d, 1); the part is rendered again", key[:12], audio.shape, frames)
            return None
        with self._lock:
            self.found += 1
        return audio[:, 0].copy()  # writable, as a rendered stem is

    def _read(self, key: str) -> np.ndarray | None:
        record = self.store.get_record(RECORD_PREFIX + key)
        if record is None:
            return None
        ref = ArtifactRef.from_dict(record["stem"])
        if not self.store.intact(ref.sha256):
            return None
        return read_wav(local_copy(self.store, ref, Path(self._scratch.name) / key))[0]  # a folder per key: parts read on two threads

    def rendered(self, part: str, key: str) -> None:
        with self._lock:
            self._rendered[part] = key

    def keep(self, stems: dict[str, Path]) -> int:
        """Keep the stems of the parts rendered now (`stems`: part name → the WAV written from
        `render_stems`' answer, unchanged); returns how many were kept. Best effort: a store that
        refuses costs only the speed-up, never the render."""
        kept = 0
        for part, key in sorted(self._rendered.items()):
            if part not in stems:
                continue
            try:
                ref = self.store.put_file(stems[part])
                self.store.put_record(RECORD_PREFIX + key, {"stem": ref.to_dict()})
            except Exception as err:  # noqa: BLE001 - any store error (an S3 refusal included) costs only the speed-up
                log.warning("the stem of part %s was not kept for later renders (%s)", part, err)
                continue
            kept += 1
        return kept
