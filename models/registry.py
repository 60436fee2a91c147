"""The model registry (`models/registry.yaml`): name, version, backend, local path, sha256, licence.

    registry = ModelRegistry.load()
    path = registry.resolve("fluidr3-gm", commercial=True)   # checked: exists, hash, licence

Weights are never downloaded: a missing file is an error naming what to install. Hashes are
verified once per process per file (keyed by size and modification time).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from songmill.core.config import load_config
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.store import file_sha256
from songmill.core.vocab import folded

DEFAULT_REGISTRY = Path(__file__).with_name("registry.yaml")

DEFAULT_VOICE_RANGE = (55, 74)  # G3–D5

_verified: dict[tuple, str] = {}


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = ""
    version: str
    backend: str  # e.g. soundfont, torch-safetensors, onnx, diffusers, transformers
    path: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    licence: str
    commercial_use: bool
    install_hint: str = ""
    inference_steps: Annotated[int, Field(ge=1, le=1000)] | None = None  # diffusion models: sampling steps (None: the backend's default)

    def provenance(self) -> dict:
        """What an artifact records about the model that made it."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "licence": self.licence,
            "commercial_use": self.commercial_use,
            "backend": self.backend,
            "source": self.path,
        }


class VoiceIdentity(BaseModel):
    """A named singer made from a voice model: its comfortable range and timbre. The composer
    keeps melodies inside `range`; the singer applies the timbre (models/voice/singer.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = ""
    version: str
    voice: str  # the voice model (a registry entry) it sings with
    range: tuple[Annotated[int, Field(ge=24, le=96)], Annotated[int, Field(ge=24, le=96)]]  # lowest, highest MIDI note
    formant_shift: Annotated[float, Field(ge=0.7, le=1.4)] = 1.0  # spectral-envelope frequency scale (>1: smaller vocal tract)
    tilt_db_per_octave: Annotated[float, Field(ge=-6, le=6)] = 0.0  # timbre: brightness above 500 Hz
    breathiness: Annotated[float, Field(ge=0, le=1)] = 0.0  # added to the style's
    description: str = ""

    @model_validator(mode="after")
    def _low_below_high(self) -> "VoiceIdentity":
        if self.range[0] >= self.range[1]:
            raise ValueError(f"range {list(self.range)} must be [lowest, highest] MIDI note")
        return self

    def provenance(self) -> dict:
        return self.model_dump(mode="json")


# The backends each kind of model runs on: the instruments stage's (models/instruments/builders.py)
# and the lyrics stage's language models; here, light, so a config can be checked against them
STEM_BACKENDS = ("soundfont", "diffusers-stable-audio", "diffusers-ace-step")
LYRICS_BACKENDS = ("transformers",)


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: dict[str, ModelEntry]
    identities: dict[str, VoiceIdentity] = {}

    @field_validator("identities")
    @classmethod
    def _identities_told_apart(cls, identities: dict[str, VoiceIdentity]) -> dict[str, VoiceIdentity]:
        # the editor reads names folded ("sing it with zoe" for zoë): two that fold alike could
        # never be told apart by a typed or spoken command
        by_folded: dict[str, list[str]] = {}
        for name in identities:
            by_folded.setdefault(folded(name), []).append(name)
        alike = next((names for names in by_folded.values() if len(names) > 1), None)
        if alike:
            raise ValueError(
                f"the voice identities {' and '.join(alike)} read alike once accents and case are dropped, so a command could not tell them apart; rename one of them"
            )
        return identities


def tree_sha256(folder: Path) -> str:
    """Hash of a folder: sha256 over 'relative/path\\0<file sha256>\\n' lines in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """sha256 of a file, or `tree_sha256` of a folder; cached per path and the size and
    modification time of every file (a folder's own mtime misses changes deeper down)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [(str(f), f.stat()) for f in files]  # one stat per file
    key = (str(path), *((name, st.st_size, st.st_mtime_ns) for name, st in stats))
    if key not in _verified:
        _verified[key] = tree_sha256(path) if path.is_dir() else file_sha256(path)
    return _verified[key]


class ModelRegistry:
    def __init__(self, entries: dict[str, ModelEntry], source: Path, identities: dict[str, VoiceIdentity] | None = None):
        self.entries = {name: entry.model_copy(update={"name": name}) for name, entry in entries.items()}
        self.identities = {name: ident.model_copy(update={"name": name}) for name, ident in (identities or {}).items()}
        self.source = source
        self.base_entries = dict(self.entries)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ModelRegistry":
        """The registry at `path`, else $SONGMILL_MODEL_REGISTRY, else models/registry.yaml."""
        named = os.environ.get("SONGMILL_MODEL_REGISTRY")
        path = Path(path or named or DEFAULT_REGISTRY)
        if not path.exists() and named and path == Path(named):
            raise ConfigError(
                [
                    f"{path}:1: (file): the model registry SONGMILL_MODEL_REGISTRY names does not exist yet; "
                    "`songmill models add` or `models pull` creates it from the shipped one, or point SONGMILL_MODEL_REGISTRY at a registry file"
                ]
            )
        parsed = load_config(path, _RegistryFile)
        registry = cls(parsed.models, path, parsed.identities)
        registry._apply_promoted()
        return registry

    def _apply_promoted(self) -> None:
        """A refined version promoted in the version store (models/versions.py) stands in for its
        registry entry: its version, path and sha256; licence and backend stay the entry's."""
        from models.versions import VersionStore

        store = VersionStore()
        for name, entry in self.base_entries.items():
            version = store.active_version(name)
            if version:
                self.entries[name] = store.entry(entry, version)

    def pinned(self, versions: dict[str, str]) -> "ModelRegistry":
        """This registry with some models at given versions (a release's `model_versions`): the
        registry's own version, or one kept in the version store.

        Raises
        ------
        SongmillError : a model the registry does not have, or a version nobody registered.
        """
        if not versions:
            return self
        import copy

        from models.versions import VersionStore

        pinned = copy.copy(self)
        pinned.entries = dict(self.entries)
        store = VersionStore()
        for name, version in versions.items():
            self.get(name)  # a model the registry has
            base = self.base_entries[name]
            try:
                pinned.entries[name] = base if version == base.version else store.entry(base, version)
            except SongmillError:
                known = ", ".join([base.version, *store.versions(name)])
                raise SongmillError(f"release.model_versions asks for {name} version '{version}', which is not registered (versions: {known})") from None
        return pinned

    def base_version(self, name: str) -> str:
        """The registry file's own version of a model (what a rollback to it restores)."""
        self.get(name)  # a model the registry has
        return self.base_entries[name].version

    def get(self, name: str) -> ModelEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise SongmillError(f"model '{name}' is not in the model registry {self.source} (registered: {', '.join(sorted(self.entries))})") from None

    def identity(self, name: str) -> VoiceIdentity:
        try:
            return self.identities[name]
        except KeyError:
            raise SongmillError(
                f"voice identity '{name}' is not in the model registry {self.source} (registered identities: {', '.join(sorted(self.identities)) or 'none'})"
            ) from None

    def voice_range(self, identity: str | None) -> tuple[int, int]:
        """Lowest and highest MIDI note the identity sings; DEFAULT_VOICE_RANGE for none (a
        lead instrument on an instrumental)."""
        if not identity:
            return DEFAULT_VOICE_RANGE
        low, high = self.identity(identity).range
        return (low, high)

    def local_path(self, entry: ModelEntry) -> Path:
        if entry.path.startswith("python:"):
            package, _, inner = entry.path[len("python:") :].partition("/")
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise SongmillError(
                    f"model '{entry.name}' lives in the Python package '{package}', which is not installed; {entry.install_hint or 'pip install it'}"
                )
            return Path(list(spec.submodule_search_locations)[0]) / inner
        path = Path(entry.path)
        return path if path.is_absolute() else self.source.parent / path

    def resolve(self, name: str, *, commercial: bool) -> Path:
        """The verified local path of a model.

        Raises
        ------
        SongmillError : unknown name; licence forbids commercial use and `commercial` is True;
            the file is missing; its sha256 differs from the registry's.
        """
        entry = self.get(name)
        if commercial and not entry.commercial_use:
            raise SongmillError(
                f"model '{name}' ({entry.licence}) is not licensed for commercial use and cannot feed a commercial delivery profile; choose another model or a non-commercial profile"
            )
        path = self.local_path(entry)
        if not path.exists():
            hint = f"; {entry.install_hint}" if entry.install_hint else ""
            raise SongmillError(f"model '{name}' file {path} is missing{hint}")
        actual = content_sha256(path)
        if actual != entry.sha256:
            raise SongmillError(
                f"model '{name}' file {path} fails its hash check (sha256 {actual[:12]}…, registry says {entry.sha256[:12]}…); restore the original file or update {self.source}"
            )
        return path
