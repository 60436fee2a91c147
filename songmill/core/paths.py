"""Where things live: the project's config folder, the default store and catalogue, safe names."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from songmill.core.errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def config_dir() -> Path:
    """`SONGMILL_CONFIG_DIR`, else the project's `config/`."""
    return Path(os.environ.get("SONGMILL_CONFIG_DIR") or PROJECT_ROOT / "config")


def config_file(name: str) -> str:
    """How a message names one of the config files (`delivery.yaml`): "config/delivery.yaml" in
    the project's own config folder, else its path in `SONGMILL_CONFIG_DIR` (the file to edit)."""
    folder = config_dir()
    default = PROJECT_ROOT / "config"
    if folder.resolve() == default.resolve():
        return f"config/{name}"
    return str(folder / name)


def var_dir() -> Path:
    """Working state (artifact store, SQLite catalogue): `SONGMILL_VAR_DIR`, else `var/` in the project."""
    return Path(os.environ.get("SONGMILL_VAR_DIR") or PROJECT_ROOT / "var")


def cache_dir() -> Path:
    """Derived data that can be made again (parsed corpora): `SONGMILL_CACHE_DIR`, else var/cache."""
    return Path(os.environ.get("SONGMILL_CACHE_DIR") or var_dir() / "cache")


def check_output_folder(path: str | Path) -> Path:
    """`path` (a command's `--out`), checked before any work so that a render or an edit is not
    made only to fail at its last step with nowhere to go. It need not exist (its writer makes
    it, so a command refused for another reason leaves nothing behind); the nearest part of it
    that exists must be a folder this process may write in.

    Raises InputError (a SongmillError): a file where the folder or one of its parents should be, or a folder
    that cannot be written in."""
    path = Path(path)
    try:
        existing = next(p for p in (path, *path.absolute().parents) if os.path.lexists(p))
    except OSError as err:  # a parent that may not be looked into
        raise InputError(f"the output folder {path} cannot be written ({err.strerror or err}); give --out another folder or fix its permissions") from None
    if existing.is_symlink() and not existing.exists():
        raise InputError(f"the output folder {path} cannot be made: {existing} is a link to nothing; give --out a folder (it is made when missing)")
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be made: {existing} is a file"
        raise InputError(f"the output folder {path} {where}; give --out a folder (it is made when missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"the output folder {path} cannot be written: {existing} is not writable; give --out another folder or fix its permissions")
    return path


def run_folder(release_dir: Path, run_id: int) -> Path:
    """Where one run's QC report and run report are kept (`<release>/runs/<run id>/`), beside the
    release's latest ones (`<release>/qc-report.html`, `run-report.json`)."""
    return release_dir / "runs" / str(run_id)


# letters that Unicode does not decompose into a Latin letter and a mark, spelled as their
# languages spell them in ASCII (NFKD alone would drop them: "Ørsted" became "rsted")
_SPELLED = str.maketrans(
    {"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "ß": "ss", "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "Th", "þ": "th", "ı": "i"}
)


def safe_name(text: str, *, max_length: int = 80, fallback: str = "untitled") -> str:
    """A file-name-safe slug of a title: no separators, no '..', no reserved device names.

    >>> safe_name("../Héllo / World?")
    'hello-world'
    >>> safe_name("Café Nuit / Ørsted")
    'cafe-nuit-orsted'
    """
    ascii_text = unicodedata.normalize("NFKD", text.translate(_SPELLED)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:max_length].strip("-")
    if not slug or slug in _RESERVED:
        slug = f"{fallback}-{slug}" if slug else fallback
    return slug
