"""Putting models in the registry: `songmill models add` (a folder or file you have) and
`songmill models pull` (a known model from the Hugging Face Hub, at a pinned revision).

    entry = add_model("my-stable-audio", Path("/data/stable-audio-open-1.0"), licence="Stability AI Community", commercial=False)
    entry = pull_model("stable-audio-open-1.0")      # downloads, then adds

Adding hashes the folder's tree (`models.registry.tree_sha256`), copies it under the models
folder (`$SONGMILL_VAR_DIR/model-store/NAME`, or keeps it where it is with `reference=True`), checks
the copy against the source's hash, and writes the entry into the registry file that
`ModelRegistry.load()` reads, comments kept. Nothing is written when any check fails. Only
safetensors weights are accepted for torch backends: songmill never unpickles a model.

Renders never download: `pull` is the one place that may, and only when asked. Offline, it says
how to download elsewhere and `add` the folder.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from models.registry import DEFAULT_REGISTRY, LYRICS_BACKENDS, STEM_BACKENDS, ModelEntry, ModelRegistry, tree_sha256
from songmill.core.config import load_config
from songmill.core.errors import SongmillError
from songmill.core.paths import var_dir
from songmill.core.store import file_sha256

KNOWN_MODELS = Path(__file__).with_name("known-models.yaml")
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# The diffusers pipeline classes songmill can run, by the backend that runs them (models/instruments/diffusion.py)
DIFFUSERS_BACKENDS = {"StableAudioPipeline": "diffusers-stable-audio", "AceStepPipeline": "diffusers-ace-step"}
BACKENDS = (*STEM_BACKENDS, *LYRICS_BACKENDS)  # what `models add` registers
PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class KnownModel(BaseModel):
    """A model `songmill models pull` knows: where it lives on the Hub and on what terms."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repo_id: str
    revision: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]  # a commit: the same bytes for everyone, always
    backend: str
    licence: str
    commercial_use: bool
    gated: bool = False  # the Hub asks you to accept the licence first, and a token (HF_TOKEN)
    size_gb: float
    allow_patterns: list[str] | None = None  # the files a pipeline needs (None: the whole repository)
    description: str = ""


class _KnownFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: dict[str, KnownModel]


def known_models(path: Path | None = None) -> dict[str, KnownModel]:
    """The models `pull` knows (models/known-models.yaml, or $SONGMILL_KNOWN_MODELS)."""
    return load_config(path or Path(os.environ.get("SONGMILL_KNOWN_MODELS") or KNOWN_MODELS), _KnownFile).models


def registry_file() -> Path:
    """The registry file `ModelRegistry.load()` reads, which `add` writes."""
    return Path(os.environ.get("SONGMILL_MODEL_REGISTRY") or DEFAULT_REGISTRY)


def models_folder() -> Path:
    """Where added models are copied: $SONGMILL_MODELS_DIR, else var/model-store (var/models holds refined versions)."""
    return Path(os.environ.get("SONGMILL_MODELS_DIR") or var_dir() / "model-store")


def detect_backend(source: Path) -> str:
    """The registry backend that can run `source`, from what it holds.

    Raises
    ------
    SongmillError : nothing songmill can run, or a pipeline class it has no backend for.
    """
    if source.is_file():
        if source.suffix.lower() in (".sf2", ".sf3"):
            return "soundfont"
        raise SongmillError(f"{source} is not a model songmill can tell the backend of (a .sf2 soundfont or a folder); pass --backend ({', '.join(BACKENDS)})")
    index = source / "model_index.json"
    if index.is_file():
        pipeline = _json(index).get("_class_name")
        if pipeline not in DIFFUSERS_BACKENDS:
            raise SongmillError(
                f"{index} describes a diffusers {pipeline or 'pipeline with no _class_name'}; songmill runs {' and '.join(DIFFUSERS_BACKENDS)} only"
            )
        return DIFFUSERS_BACKENDS[pipeline]
    if (source / "config.json").is_file() and any(source.glob("tokenizer*")):
        return "transformers"
    raise SongmillError(
        f"{source} holds no model_index.json (a diffusers pipeline) nor config.json with a tokenizer (a transformers model); pass --backend ({', '.join(BACKENDS)})"
    )


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SongmillError(f"{path} is not readable JSON ({err}); the model folder is damaged: download it again") from None
    if not isinstance(data, dict):
        raise SongmillError(f"{path} is not a JSON object; the model folder is damaged: download it again")
    return data


def check_layout(source: Path, backend: str) -> None:
    """What `backend` loads is there, in safetensors.

    Raises
    ------
    SongmillError : a component folder missing, weights only in a pickle format, no weights.
    """
    if backend not in BACKENDS:
        raise SongmillError(f"backend '{backend}' is not one songmill runs ({', '.join(BACKENDS)})")
    if backend == "soundfont":
        if not source.is_file():
            raise SongmillError(f"{source} is not a soundfont file (.sf2)")
        return
    if not source.is_dir():
        raise SongmillError(f"{source} is not a folder; a {backend} model is a folder (as save_pretrained writes it)")
    files = [p for p in source.rglob("*") if p.is_file()]
    if not any(p.suffix == ".safetensors" for p in files):
        pickled = sorted(p.name for p in files if p.suffix in PICKLED_WEIGHTS)
        found = f" (it has {', '.join(pickled[:3])}: pickle formats, which songmill does not load)" if pickled else ""
        raise SongmillError(f"{source} holds no .safetensors weights{found}; save the model with safe_serialization=True or download its safetensors files")
    if backend.startswith("diffusers-"):
        components = [k for k, v in _json(source / "model_index.json").items() if not k.startswith("_") and isinstance(v, list) and v and v[0] is not None]
        missing = [c for c in components if not (source / c).is_dir()]
        if missing:
            raise SongmillError(
                f"{source} lacks the pipeline's component folder{'s' if len(missing) > 1 else ''} {', '.join(missing)}; the download is incomplete"
            )


def content_hash(source: Path) -> str:
    """The registry's hash of a file or folder (models.registry.content_sha256, uncached)."""
    return tree_sha256(source) if source.is_dir() else file_sha256(source)


# A licence whose name says it forbids commercial use (CC-BY-NC-4.0, "research only"): such a
# model never feeds a commercial release, whatever `--commercial` says
_NON_COMMERCIAL = r"(?i)(?<![a-z])(nc|non[- ]?commercial|research[- ]only|academic[- ]only)(?![a-z])"
# licences that allow commercial use without conditions songmill would have to check
PERMISSIVE_LICENCES = ("MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "CC0-1.0", "CC-BY-4.0", "Unlicense")


def licence_problem(licence: str, commercial: bool) -> str | None:
    """Why `licence` cannot be registered as `commercial` says (one sentence), or None."""
    import re

    if not licence.strip():
        return "--licence is empty; name the licence the model is published under (e.g. Apache-2.0)"
    if commercial and re.search(_NON_COMMERCIAL, licence):
        return f"the licence '{licence.strip()}' forbids commercial use; leave out --commercial (the model then feeds non-commercial profiles only)"
    return None


def licence_note(licence: str, commercial: bool) -> str | None:
    """What to know about a licence registered as `commercial` says, or None: a permissive
    licence registered without --commercial feeds no commercial profile."""
    if not commercial and licence.strip().lower() in {known.lower() for known in PERMISSIVE_LICENCES}:
        return f"{licence.strip()} allows commercial use, but the model is registered for non-commercial releases only; add it again with --commercial --replace if that is wrong"
    return None


def add_model(
    name: str,
    source: Path,
    *,
    licence: str,
    commercial: bool,
    backend: str | None = None,
    version: str = "1",
    expected_sha256: str | None = None,
    reference: bool = False,
    description: str = "",
    registry_path: Path | None = None,
    destination_root: Path | None = None,
    replace: bool = False,
) -> ModelEntry:
    """Register the model at `source` as `name`; returns the registry entry written. `replace`:
    put it in the place of a model already registered under `name` (its file gone or changed,
    a new release of it); the old copy goes only once the new entry is written.

    Raises
    ------
    SongmillError : a bad name, a name already registered, a source that is missing, not a
        model songmill runs, fails `expected_sha256`, or changed while it was copied; a registry
        file that cannot be written. The registry and the models folder are left as they were.
    """
    import re

    if not re.match(NAME_PATTERN, name):
        raise SongmillError(f"model name '{name}' must be lower-case letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit")
    problem = licence_problem(licence, commercial)
    if problem:
        raise SongmillError(problem)
    if expected_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expected_sha256):
        raise SongmillError(f"--sha256 {expected_sha256!r} is not a sha256 (64 hexadecimal digits, as `songmill models list --json` prints a tree hash)")
    source = source.expanduser().resolve()
    if not source.exists():
        raise SongmillError(f"model source {source} does not exist")
    registry_path = registry_path or registry_file()
    registry = ModelRegistry.load(registry_path if registry_path.exists() else DEFAULT_REGISTRY)
    if name in registry.base_entries and not replace:
        raise SongmillError(
            f"model '{name}' is already in the model registry {registry_path}; choose another name, or add --replace to put this one in its place"
        )
    backend = backend or detect_backend(source)
    check_layout(source, backend)
    digest = content_hash(source)
    if expected_sha256 and digest != expected_sha256.lower():
        raise SongmillError(f"model source {source} fails its hash check (sha256 {digest[:12]}…, expected {expected_sha256[:12]}…); download it again")
    destination = (destination_root or models_folder()) / name
    earlier = _set_aside(destination) if replace and not reference else None  # the copy it replaces, back in place if this fails
    try:
        path = source if reference else _copy_verified(source, destination, digest)
    except BaseException:
        _put_back(earlier, destination)
        raise
    entry = ModelEntry(
        name=name,
        version=version,
        backend=backend,
        path=str(path),
        sha256=digest,
        licence=licence.strip(),
        commercial_use=commercial,
        install_hint=description
        or f"songmill models add {name} --from <folder> --licence '{licence.strip()}'{' --commercial' if commercial else ''} --replace",
    )
    try:
        if not registry_path.exists():
            seed_registry(registry_path)
        write_registry_entry(registry_path, entry)
    except SongmillError:
        if not reference:
            shutil.rmtree(path if path.is_dir() else path.parent, ignore_errors=True)  # a file lands in a folder of its own
        _put_back(earlier, destination)
        raise
    if earlier is not None:
        shutil.rmtree(earlier, ignore_errors=True)
    return entry


def _set_aside(destination: Path) -> Path | None:
    """An earlier copy at `destination` renamed beside it (None when there is none)."""
    if not os.path.lexists(destination):
        return None
    aside = destination.with_name(f".{destination.name}.replaced-{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)
    destination.rename(aside)
    return aside


def _put_back(earlier: Path | None, destination: Path) -> None:
    if earlier is not None and not os.path.lexists(destination):
        earlier.rename(destination)


def _copy_verified(source: Path, destination: Path, digest: str) -> Path:
    """`source` copied to `destination` through a temporary name, its hash checked, then renamed."""
    if destination.exists():
        raise SongmillError(f"{destination} already exists; remove it or register the model under another name")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
    target = partial / source.name
    try:
        shutil.copytree(source, target, symlinks=False) if source.is_dir() else shutil.copy2(source, target)
        if content_hash(target) != digest:
            raise SongmillError(f"model source {source} changed while it was copied; copy it again when nothing writes to it")
        final = destination if source.is_dir() else destination / source.name
        if source.is_file():
            destination.mkdir()
        try:
            target.rename(final)
        except OSError:
            if source.is_file():
                shutil.rmtree(destination, ignore_errors=True)
            raise
        return final
    except OSError as err:
        raise SongmillError(f"could not copy {source} to {destination} ({err.strerror or err}); free some space or choose SONGMILL_MODELS_DIR") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def seed_registry(path: Path) -> None:
    """A new registry file at `path`: the shipped one, comments kept, its relative paths made
    absolute so that they still point into the installed project (a registry on a shared volume)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width = 4096
    document = yaml.load(DEFAULT_REGISTRY.read_text(encoding="utf-8"))
    for entry in document["models"].values():
        if not entry["path"].startswith("python:") and not Path(entry["path"]).is_absolute():
            entry["path"] = str(DEFAULT_REGISTRY.parent / entry["path"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as out:
            yaml.dump(document, out)
    except OSError as err:
        raise SongmillError(
            f"cannot create the model registry {path} ({err.strerror or err}); make its folder writable or set SONGMILL_MODEL_REGISTRY"
        ) from None


def write_registry_entry(registry_path: Path, entry: ModelEntry) -> None:
    """Add `entry` under `models:` in the registry file, comments and order kept; the new file
    is validated before it replaces the old one."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML()  # round trip: the file's comments and layout stay
    yaml.width = 4096
    try:
        document = yaml.load(registry_path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SongmillError(f"cannot read the model registry {registry_path} ({err.strerror or err})") from None
    fields = CommentedMap(entry.model_dump(mode="json", exclude={"name", "inference_steps"}, exclude_defaults=False))
    document["models"][entry.name] = fields
    handle, temporary = tempfile.mkstemp(prefix=".registry-", suffix=".yaml", dir=registry_path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yaml.dump(document, out)
        ModelRegistry.load(temporary).get(entry.name)  # the file as written parses and holds it
        os.chmod(temporary, stat.S_IMODE(registry_path.stat().st_mode))  # mkstemp's 0600 would hide it from the workers' user
        os.replace(temporary, registry_path)
    except OSError as err:
        raise SongmillError(
            f"cannot write the model registry {registry_path} ({err.strerror or err}); make it writable or set SONGMILL_MODEL_REGISTRY"
        ) from None
    finally:
        Path(temporary).unlink(missing_ok=True)


def _meant(name: str, known: dict[str, KnownModel]) -> str | None:
    """The known name meant by `name`: one it begins (no version said), the one whose Hub repository
    it names, or the closest spelling."""
    said = name.strip().lower()
    begun = [known_name for known_name in known if len(said) >= 3 and known_name.startswith(said)]
    if len(begun) == 1:
        return begun[0]
    by_repo = [known_name for known_name, model in known.items() if said in (model.repo_id.lower(), model.repo_id.lower().split("/")[-1])]
    if by_repo:
        return by_repo[0]
    close = difflib.get_close_matches(said, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def pull_model(
    name: str,
    *,
    known_path: Path | None = None,
    registry_path: Path | None = None,
    destination_root: Path | None = None,
    token: str | None = None,
    replace: bool = False,
) -> ModelEntry:
    """Download a known model at its pinned revision (through huggingface_hub and its cache) and
    `add_model` it under its own name.

    Raises
    ------
    SongmillError : a name `pull` does not know (the known names listed); the Hub out of reach
        (how to download elsewhere and add); a gated model without access; then add_model's.
    """
    known = known_models(known_path)
    if name not in known:
        meant = _meant(name, known)
        hint = f"did you mean '{meant}'? " if meant else ""
        raise SongmillError(
            f"'{name}' is not a model songmill models pull knows ({hint}it knows {', '.join(sorted(known))});"
            " for any other, download it and run songmill models add"
        )
    model = known[name]
    folder = _download(name, model, token)
    return add_model(
        name,
        folder,
        licence=model.licence,
        commercial=model.commercial_use,
        backend=model.backend,
        version=model.revision[:12],
        description=f"songmill models pull {name} --replace ({model.repo_id} at {model.revision[:12]})",
        registry_path=registry_path,
        destination_root=destination_root,
        replace=replace,
    )


HUB_PROBE_TIMEOUT_S = 10.0


def _hub_out_of_reach(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hub (HF_ENDPOINT) is out of reach: offline by HF_HUB_OFFLINE, or one request to
    its address, through the same client and proxies the download uses, cannot connect (refused,
    no route, no such name, no connection within `timeout_s`). Anything else — any HTTP answer, a
    slow answer, a proxy or TLS error — is left to the download and its own retries and messages.
    huggingface_hub retries a connection that fails with back-off, 23 s before it gives up: a user
    who is offline is told at once instead.

    Raises SongmillError: HF_ENDPOINT is not a URL."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        return True
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout_s)
    except (httpx2.ConnectError, httpx2.ConnectTimeout):
        return True
    except (httpx2.InvalidURL, httpx2.UnsupportedProtocol):
        raise SongmillError(f"HF_ENDPOINT={constants.ENDPOINT!r} is not the address of a Hub; set it to one (https://huggingface.co) or unset it") from None
    except httpx2.HTTPError:
        return False  # reached, or reachable: the download says what went wrong
    return False


def _download(name: str, model: KnownModel, token: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HTTPError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    elsewhere = (
        f"download it where the Hub can be reached (hf download {model.repo_id} --revision {model.revision} --local-dir DIR), "
        f"bring DIR here and run songmill models add {name} --from DIR --licence '{model.licence}'{' --commercial' if model.commercial_use else ''}"
    )
    hub_log = logging.getLogger("huggingface_hub")
    level, hub_log.level = hub_log.level, logging.ERROR  # its retry warnings would bury the one sentence below
    try:
        cached_only = _hub_out_of_reach()  # then the cache alone answers, at once, or LocalEntryNotFoundError below
        return Path(snapshot_download(model.repo_id, revision=model.revision, allow_patterns=model.allow_patterns, token=token, local_files_only=cached_only))
    except GatedRepoError:
        raise SongmillError(
            f"{model.repo_id} is gated: accept its licence on huggingface.co and set HF_TOKEN to a token of that account, then pull again"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise SongmillError(f"the Hub has no {model.repo_id} at revision {model.revision[:12]}; models/known-models.yaml is out of date: {elsewhere}") from None
    except IncompleteSnapshotError:
        raise SongmillError(
            f"the Hugging Face cache holds only part of {model.repo_id} and the Hub is out of reach; pull again online, or {elsewhere}"
        ) from None
    except LocalEntryNotFoundError:
        raise SongmillError(
            f"cannot download {model.repo_id}: the Hub is out of reach (offline, or HF_HUB_OFFLINE is set) and it is not in the Hugging Face cache; {elsewhere}"
        ) from None
    except (HTTPError, OSError) as err:  # a proxy, the Hub down, the disk full
        raise SongmillError(f"cannot download {model.repo_id} ({type(err).__name__}: {' '.join(str(err).split())}); {elsewhere}") from None
    finally:
        hub_log.setLevel(level)
