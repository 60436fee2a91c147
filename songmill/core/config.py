"""The one config loader: every YAML file songmill reads goes through `load_config`.

    settings = load_config(path, DeliverySettings)   # a validated pydantic model, or ConfigError

pydantic reports errors by field path (`tracks[1].tempo`); users need the file and line. Every
problem is one line `file:line: field.path: what is wrong (what is allowed)`, the same for a
release, a profile, the model registry, presets, the catalogue plan and every other config.
`load_yaml` returns the plain data and a `Locator` that maps a pydantic error location to the
line of the offending value (or of its parent mapping when the value is missing), for loaders
that check more than the model can (references to other files, names in other configs).
"""

from __future__ import annotations

import collections.abc
import copy
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from songmill.core.errors import ConfigError


@dataclass(frozen=True)
class Locator:
    path: Path
    root: yaml.Node | None

    def line(self, loc: tuple[Any, ...]) -> int:
        """1-based line of the value at `loc`, falling back to the nearest ancestor found."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for key in loc:
            child = _child(node, key)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line

    def problem(self, loc: tuple[Any, ...], message: str) -> str:
        return f"{self.path}:{self.line(loc)}: {format_loc(loc)}: {message}"


def _child(node: yaml.Node | None, key: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(key):
                return value_node
    elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
        if 0 <= key < len(node.value):
            return node.value[key]
    return None


SHOWN_CHARS = 60  # a problem quotes at most this much of the value it is about


def shown(value: Any) -> str:
    """The value as a problem line quotes it: its repr, cut to SHOWN_CHARS (a 5,000-character
    line of lyrics or a mistyped paste does not make a 5,000-character message)."""
    if isinstance(value, dt.date):  # YAML reads 2026-12-04 as a date: quoted as it was written
        value = value.isoformat()
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}…"


def format_loc(loc: tuple[Any, ...]) -> str:
    """('tracks', 1, 'tempo') -> 'tracks[1].tempo'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = str(part)
            plain = name.isprintable() and name.strip() == name and name and len(name) <= SHOWN_CHARS
            out += ("." if out else "") + (name if plain else shown(name))  # a blank or control-character key, quoted
    return out or "(top level)"


def load_yaml(path: Path) -> tuple[Any, Locator]:
    """Read a YAML file; a missing or unparsable file is a ConfigError naming it.

    The file is read every time (an edited file is read as it is now); its parse is kept by its
    text, so a render that reads the model registry and the profiles in every stage parses each
    once. The data is the caller's own copy."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}:1: (file): does not exist (give the path of a YAML file)"]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise ConfigError([f"{path}:1: (file): cannot be read ({err.__class__.__name__})"]) from None
    try:
        data, root = _parsed(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        if "simple key" in str(getattr(err, "context", "")) and getattr(err, "context_mark", None) is not None:
            mark = err.context_mark  # "mood nostalgic": the key's own line, not the next one, where the scanner gave up
        line = mark.line + 1 if mark is not None else 1
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError([f"{path}:{line}: (yaml): {what} (the file must be valid YAML)"]) from None
    return copy.deepcopy(data), Locator(path, root)


class _ConfigLoader(yaml.SafeLoader):
    """`yaml.SafeLoader`, except that a timestamp which is no real date (`2026-13-45`, `2026-02-30`)
    stays the text it was written as, for the model to refuse on its line ("… is not a date"),
    where PyYAML's own constructor raises a bare ValueError from inside the parse."""


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> tuple[Any, yaml.Node | None]:
    """(data, node tree) of a YAML text, from one parse: the data built from the nodes the
    Locator keeps, as `yaml.safe_load` builds it. PyYAML's pure-Python parser takes ~20 ms for the
    model registry, and a render loads it in each of its stages (0.5 CPU s a render in all). The
    nodes are only read (Locator) and the data is copied out, so a kept parse is never changed."""
    loader = _ConfigLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    finally:
        loader.dispose()


ConfigModel = TypeVar("ConfigModel", bound=BaseModel)


def load_config(path: str | Path, model: type[ConfigModel], *, what: str | None = None) -> ConfigModel:
    """Read a YAML file and validate it as `model`.

    Parameters
    ----------
    path : the YAML file.
    model : the pydantic model the whole file must match (unknown fields are refused where the
        model forbids extras, which every songmill config model does).
    what : a phrase for a top level that is not a mapping ("a release with 'release' and 'tracks'").

    Raises
    ------
    ConfigError : one line per problem, `file:line: field.path: what is wrong (what is allowed)`.
    """
    return validate_config(*load_yaml(Path(path)), model, what=what)


def validate_config(data: Any, locator: Locator, model: type[ConfigModel], *, what: str | None = None) -> ConfigModel:
    """`load_config` for data already read with `load_yaml` (a loader that also needs the locator)."""
    data = {} if data is None else data  # an empty file: every field takes its default
    if not isinstance(data, dict):
        expected = what or f"a mapping of {', '.join(model.model_fields)}"
        raise ConfigError([f"{locator.path}:1: (top level): must be {expected}"])
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, locator, model)) from None


def describe_errors(err: ValidationError, locator: Locator, model: type[BaseModel]) -> list[str]:
    lines = []
    for error in err.errors(include_url=False):
        loc = tuple(error["loc"])
        lines.append(locator.problem(loc, _message(error, model, loc)))
    return lines


def _message(error: ErrorDetails, model: type[BaseModel], loc: tuple) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        if not allowed:
            return "unknown field"
        nearest = nearest_name(str(loc[-1]), allowed)
        return f"unknown field{f' (did you mean {nearest!r}?)' if nearest else ''} (allowed: {', '.join(allowed)})"
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"{shown(value)} is not allowed (allowed: {ctx.get('expected')})"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{shown(value)} is not a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{shown(value)} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{shown(value)} is not true or false"
    if kind.startswith("date"):
        return f"{shown(value)} is not a date (write YYYY-MM-DD)"
    if kind in ("too_short", "too_long"):
        return error["msg"].replace("List", "list").replace("String", "text")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of fields, not {type(value).__name__}"
    if kind == "string_type":
        return f"{shown(value)} must be text (put it in quotes)"
    if kind == "list_type":
        return f"must be a list, not {type(value).__name__}"
    if kind == "string_pattern_mismatch":
        return f"{shown(value)} does not match {ctx.get('pattern')}"
    return error["msg"]


# Words people write for a field that is named otherwise: the nearest-name suggestion knows them.
SYNONYMS = {
    "bpm": "tempo",
    "speed": "tempo",
    "length": "target_duration_s",
    "duration": "target_duration_s",
    "duration_s": "target_duration_s",
    "singer": "voice",
    "vocalist": "voice",
    "style": "voice",
    "scale": "key",
    "meter": "time_signature",
    "sections": "structure",
    "form": "structure",
    "words": "lyrics",
    "text": "lyrics",
    "name": "title",
    "topic": "theme",
    "subject": "theme",
    "feeling": "mood",
    "key": "private_key",  # delivery.yaml's signing (unknown only where a private_key is meant)
    "key_file": "private_key",
    "private_key_file": "private_key",
    "chain": "certificate_chain",
    "certificate": "certificate_chain",
    "cert": "certificate_chain",
    "loudness": "loudness_lufs",  # profiles.yaml
    "lufs": "loudness_lufs",
    "true_peak": "true_peak_dbtp",
    "ceiling": "true_peak_dbtp",
}


def nearest_name(given: str, allowed: list[str]) -> str | None:
    """The allowed name a misspelled or synonymous one most likely meant ('bpm' → 'tempo',
    'genere' → 'genre'), or None when nothing is close."""
    import difflib

    word = given.strip().lower().replace("-", "_").replace(" ", "_")
    if SYNONYMS.get(word) in allowed:
        return SYNONYMS[word]
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.75)
    return close[0] if close else None


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """The field names of the model that sits at `loc` (for 'unknown field' messages). A list's
    index and a mapping's key (`profiles.streaming`) lead to the model they hold."""
    keyed = False  # the field before was a mapping: this part is one of its keys
    for part in loc:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model, keyed = _model_in(field.annotation), _is_mapping(field.annotation)
    return list(getattr(model, "model_fields", {}))


def _is_mapping(annotation: Any) -> bool:
    """Whether a field's type is a dict (under an Optional; a list of dicts is not)."""
    origin = get_origin(annotation)
    if origin in (dict, collections.abc.Mapping):
        return True
    return origin is not list and any(_is_mapping(arg) for arg in get_args(annotation))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # Optional[...], list[...]
        found = _model_in(arg)
        if found is not None:
            return found
    return None
