"""Mix and master presets (`config/production.yaml`): the genre's balance, sends and tone.

preset = load_production_presets().for_genre("pop")   # ProductionPreset (defaults + the genre's overrides)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from songmill.core.config import load_yaml, validate_config
from songmill.core.errors import ConfigError
from songmill.core.paths import config_dir, config_file
from songmill.core.vocab import GENRES

ROLES = ("vocal", "backing", "drums", "bass", "chords", "pad", "counter", "line", "full-mix")
Role = Literal[ROLES]  # type: ignore[valid-type]
Db = Annotated[float, Field(ge=-60, le=24)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duck(_Strict):
    under: Literal["vocal", "kick"]
    depth_db: Annotated[float, Field(ge=0, le=12)]


class Reverb(_Strict):
    room_size: Annotated[float, Field(ge=0, le=1)]
    send_db: dict[Role, Db] = {}


class Delay(_Strict):
    beats: Annotated[float, Field(gt=0, le=4)]  # the echo time in beats (0.75: a dotted eighth)
    feedback: Annotated[float, Field(ge=0, le=0.8)]
    send_db: dict[Role, Db] = {}


class MixPreset(_Strict):
    balance_lu: dict[Role, Db]
    vocal_over_instrumental_lu: Annotated[float, Field(ge=-6, le=8)]
    pan: dict[Role, Annotated[float, Field(ge=-1, le=1)]]
    high_pass_hz: dict[Role, Annotated[float, Field(ge=10, le=1000)]]
    vocal_carve_db: Annotated[float, Field(ge=0, le=12)]
    duck: dict[Role, Duck]
    reverb: Reverb
    delay: Delay
    automation_db: Annotated[float, Field(ge=0, le=12)]
    bus_ratio: Annotated[float, Field(ge=1, le=10)]


class MasterPreset(_Strict):
    tone_db: Annotated[list[Annotated[float, Field(ge=-40, le=20)]], Field(min_length=10, max_length=10)]
    width: Annotated[float, Field(ge=0, le=2)]
    glue_ratio: Annotated[float, Field(ge=1, le=10)]


class ProductionPreset(_Strict):
    mix: MixPreset
    master: MasterPreset


class _File(_Strict):
    defaults: dict
    genres: dict[str, dict]


def _merged(base: dict, override: dict) -> dict:
    """`override` laid over `base`, mapping by mapping (a mapping given as {} replaces: no ducking)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(base[key], value) if isinstance(value, dict) and value and isinstance(base.get(key), dict) else value
    return out


class ProductionPresets:
    def __init__(self, presets: dict[str, ProductionPreset]):
        self.presets = presets

    def for_genre(self, genre: str) -> ProductionPreset:
        if genre not in self.presets:
            raise ConfigError([f"{config_file('production.yaml')}: genres: '{genre}' has no mix preset (have: {', '.join(sorted(self.presets))})"])
        return self.presets[genre]


def load_production_presets(path: Path | None = None) -> ProductionPresets:
    """Read and validate the presets; problems are `file:line: field.path: what is wrong`."""
    path = path or config_dir() / "production.yaml"
    data, locator = load_yaml(path)
    raw = validate_config(data, locator, _File)
    missing = [g for g in GENRES if g not in raw.genres]
    if missing:
        raise ConfigError([locator.problem(("genres",), f"no preset for {', '.join(missing)} (add them, {{}} takes the defaults)")])
    presets, problems = {}, []
    for genre, overrides in raw.genres.items():
        try:
            presets[genre] = ProductionPreset.model_validate(_merged(raw.defaults, overrides or {}))
        except ValidationError as err:  # named where the genre's overrides are (or the defaults, for what it inherits)
            problems += [locator.problem(("genres", genre) + tuple(e["loc"]), e["msg"]) for e in err.errors(include_url=False)]
    if problems:
        raise ConfigError(problems)
    return ProductionPresets(presets)
