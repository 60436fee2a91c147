"""YAML loading that remembers where every value came from.

pydantic reports errors by field path (`tracks[1].tempo`); users need the file and line.
`load_yaml` returns the plain data and a `Locator` that maps a pydantic error location to
the line of the offending value (or of its parent mapping when the value is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from songmill.errors import ConfigError


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


def format_loc(loc: tuple[Any, ...]) -> str:
    """('tracks', 1, 'tempo') -> 'tracks[1].tempo'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_yaml(path: Path) -> tuple[Any, Locator]:
    """Read a YAML file; a missing or unparsable file is a ConfigError naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}:1: (file): does not exist (give the path of a YAML file)"]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise ConfigError([f"{path}:1: (file): cannot be read ({err.__class__.__name__})"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError([f"{path}:{line}: (yaml): {what} (the file must be valid YAML)"]) from None
    return data, Locator(path, root)
