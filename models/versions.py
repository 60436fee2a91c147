"""Model versions beyond the registry's own: refined versions, their lineage, and which is in use.

    store = VersionStore()                              # var/models (SONGMILL_MODEL_VERSIONS to move it)
    version = store.add("melody-gru-celtic", weights_dir, lineage)   # → "1.0+r1"
    store.promote("melody-gru-celtic", "1.0+r1", by="refine DAG", reason="wins on preference")
    store.rollback("melody-gru-celtic", "1.0", by="ops")             # back to the registry's own

Layout: `<root>/<name>/<version>/` holds the model (a file or a folder, as the registry entry's
path names), `lineage.json` (base version, training-data snapshot hash, hyper-parameters,
metrics, the evaluation and its verdict) and `MODEL_CARD.md`. `<root>/promoted.yaml` says
which version of each model is in use, with the history of every promotion and rollback.

`ModelRegistry.load()` applies `promoted.yaml`: a promoted version replaces its registry entry
(version, path, sha256), so every stage, cache key and provenance record names it. The
registry's own version is always there to roll back to.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import yaml

from songmill.core.errors import SongmillError
from songmill.core.paths import var_dir
from songmill.core.store import atomic_write_bytes


def versions_root() -> Path:
    return Path(os.environ.get("SONGMILL_MODEL_VERSIONS") or var_dir() / "models")


class VersionStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else versions_root()

    # -- reading
    def promoted(self) -> dict:
        path = self.root / "promoted.yaml"
        if not path.is_file():
            return {}
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise SongmillError(f"{path} is not a mapping of model name to its promoted version; restore it from its history or delete it")
        return data

    def active_version(self, name: str) -> str | None:
        """The promoted version of `name`, or None for the registry's own."""
        return (self.promoted().get(name) or {}).get("version")

    def folder(self, name: str, version: str) -> Path:
        return self.root / name / version

    def lineage(self, name: str, version: str) -> dict:
        path = self.folder(name, version) / "lineage.json"
        if not path.is_file():
            known = ", ".join(self.versions(name)) or "none"
            raise SongmillError(f"model '{name}' has no version '{version}' in {self.root} (refined versions: {known})")
        return json.loads(path.read_text(encoding="utf-8"))

    def entry(self, base, version: str):
        """The registry entry `base` (models.registry.ModelEntry) at a kept `version`: its path and
        sha256 are the version's; licence, backend and the rest stay the entry's."""
        lineage = self.lineage(name=base.name, version=version)
        return base.model_copy(update={"version": version, "path": str(self.folder(base.name, version) / lineage["file"]), "sha256": lineage["sha256"]})

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if (p / "lineage.json").is_file()]
        return sorted(found, key=lambda v: (len(v), v))

    def next_version(self, name: str, base_version: str) -> str:
        root = base_version.split("+")[0]
        taken = [v for v in self.versions(name) if v.startswith(f"{root}+r")]
        numbers = [int(v.rsplit("+r", 1)[1]) for v in taken if v.rsplit("+r", 1)[1].isdigit()]
        return f"{root}+r{max(numbers, default=0) + 1}"

    # -- writing
    def add(self, name: str, version: str, source: Path, lineage: dict, card: str) -> Path:
        """Keep a new version: copy `source` (the model file or folder) in, with lineage and card."""
        target = self.folder(name, version)
        if target.exists():
            raise SongmillError(f"model '{name}' version '{version}' already exists in {self.root}; versions are never overwritten")
        partial = target.with_name(target.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if source.is_dir():
            shutil.copytree(source, partial / source.name)
        else:
            shutil.copy2(source, partial / source.name)
        (partial / "lineage.json").write_text(json.dumps({**lineage, "version": version, "file": source.name}, indent=1, sort_keys=True) + "\n")
        (partial / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        partial.rename(target)  # the version appears whole or not at all
        return target / source.name

    def promote(self, name: str, version: str, *, by: str, reason: str, base_version: str, force: bool = False) -> None:
        """Put `version` in use. A version whose evaluation refused it is refused here too, unless
        `force` (an operator's decision, recorded)."""
        if version != base_version:
            lineage = self.lineage(name, version)
            verdict = (lineage.get("evaluation") or {}).get("verdict")
            if verdict != "promote" and not force:
                why = "; ".join((lineage.get("evaluation") or {}).get("reasons", [])) or "it has no evaluation"
                raise SongmillError(
                    f"model '{name}' version '{version}' was not accepted by its evaluation ({why}); promote it with --force only if you mean to"
                )
        self._set(name, version, action="promote", by=by, reason=reason, base_version=base_version)

    def rollback(self, name: str, version: str, *, by: str, reason: str, base_version: str) -> None:
        if version != base_version:
            self.lineage(name, version)  # must exist
        self._set(name, version, action="rollback", by=by, reason=reason, base_version=base_version)

    def _set(self, name: str, version: str, *, action: str, by: str, reason: str, base_version: str) -> None:
        data = self.promoted()
        entry = data.get(name) or {"history": []}
        previous = entry.get("version") or base_version
        entry["history"] = [
            *entry.get("history", []),
            {"action": action, "version": version, "from": previous, "by": by, "reason": reason, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        ]
        entry["version"] = None if version == base_version else version
        data[name] = entry
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.root / "promoted.yaml", yaml.safe_dump(data, sort_keys=True, allow_unicode=True).encode())

    def history(self, name: str) -> list[dict]:
        return (self.promoted().get(name) or {}).get("history", [])
