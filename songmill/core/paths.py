"""Where things live: the project's config folder, the default store and catalogue, safe names."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def config_dir() -> Path:
    """`SONGMILL_CONFIG_DIR`, else the project's `config/`."""
    return Path(os.environ.get("SONGMILL_CONFIG_DIR") or PROJECT_ROOT / "config")


def var_dir() -> Path:
    """Working state (artifact store, SQLite catalogue): `SONGMILL_VAR_DIR`, else `var/` in the project."""
    return Path(os.environ.get("SONGMILL_VAR_DIR") or PROJECT_ROOT / "var")


def cache_dir() -> Path:
    """Derived data that can be made again (parsed corpora): `SONGMILL_CACHE_DIR`, else var/cache."""
    return Path(os.environ.get("SONGMILL_CACHE_DIR") or var_dir() / "cache")


def run_folder(release_dir: Path, run_id: int) -> Path:
    """Where one run's QC report and run report are kept (`<release>/runs/<run id>/`), beside the
    release's latest ones (`<release>/qc-report.html`, `run-report.json`)."""
    return release_dir / "runs" / str(run_id)


def safe_name(text: str, *, max_length: int = 80, fallback: str = "untitled") -> str:
    """A file-name-safe slug of a title: no separators, no '..', no reserved device names.

    >>> safe_name("../Héllo / World?")
    'hello-world'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_length].strip("-")
    if not slug or slug in _RESERVED:
        slug = f"{fallback}-{slug}" if slug else fallback
    return slug
