"""Release configs written for the user: the night's catalogue batch, and a release from a form.

    config = nightly_release(load_catalogue_plan(), dt.date(2026, 11, 24))  # same date, same plan
    config = release_from_form({"title": "Night Bus", "genre": "synthpop", ...})
    path = write_release_config(config, Path("dist/_configs/night-bus.yaml"))

Both return the plain mapping a `config/releases/*.yaml` file holds; `write_release_config`
writes it as YAML and loads it back with `load_release`, so a planned or typed-in release is
checked by exactly the rules (and with the same `file:line` messages) as a hand-written one.
Nothing here imports Airflow; the DAGs in `dags/` call it.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from songmill.core.config import load_yaml, shown, validate_config
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.music import parse_key
from songmill.core.paths import config_dir
from songmill.core.seeds import derive_seed
from songmill.core.store import atomic_write_bytes
from songmill.core.vocab import GENRES, MOODS, VOICE_STYLES

if TYPE_CHECKING:
    from songmill.feedback.measures import FeedbackSnapshot


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThemeIdea(_Strict):
    title: str
    theme: str


class CatalogueRelease(_Strict):
    id_prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")] = "nightly"  # the release id is <prefix>-<YYYY-MM-DD>
    title: str = "Nightly Catalogue {date}"  # {date}: the night's date (ISO)
    artist: str
    label: str
    profiles: Annotated[list[str], Field(min_length=1)] = ["streaming"]
    allow_partial: bool = True  # deliver the tracks that pass QC; the others are quarantined
    explicit: bool = False


class CatalogueMix(_Strict):
    genres: dict[str, Annotated[float, Field(gt=0)]]  # genre → weight
    moods: dict[str, Annotated[float, Field(gt=0)]]
    tempo_bpm: Annotated[list[Annotated[int, Field(ge=40, le=240)]], Field(min_length=2, max_length=2)]  # [low, high]
    keys: Annotated[list[str], Field(min_length=1)]
    identities: dict[str, Annotated[float, Field(gt=0)]]  # voice identity → weight; "instrumental" for none
    styles: dict[str, Annotated[float, Field(gt=0)]] | None = None  # voice style → weight; None: each track's mood chooses
    target_duration_s: Annotated[float, Field(ge=30, le=900)] = 120.0


PLANNED_ATTRIBUTES = ("genre", "preset", "mood", "tempo_band", "mode", "identity", "style")


class CatalogueFeedback(_Strict):
    """How listener feedback steers the plan (songmill.feedback.planner)."""

    enabled: bool = False  # False: every choice by the weights above, as before feedback existed
    exploration_share: Annotated[float, Field(ge=0, le=1)] = 0.2  # choices drawn by the weights regardless of feedback
    min_variety: dict[str, Annotated[int, Field(ge=1, le=40)]] = {}  # attribute → distinct values a night, at least
    never_change: list[str] = []  # attributes always drawn by the weights
    prior_plays: Annotated[float, Field(gt=0)] = 200.0  # the catalogue mean's weight in each posterior, in streams
    review_per_night: Annotated[int, Field(ge=0, le=40)] = 0  # tracks a night put before people (least certain appeal)


class CataloguePlan(_Strict):
    tracks_per_night: Annotated[int, Field(ge=1, le=40)]
    schedule: str | None = "0 2 * * *"  # cron, in `timezone`; null: only when triggered (the UI, the REST API, another system)
    timezone: str = "UTC"  # the label's IANA time zone: the schedule's clock, and whose calendar names the night
    release: CatalogueRelease
    mix: CatalogueMix
    themes: Annotated[list[ThemeIdea], Field(min_length=1)]
    feedback: CatalogueFeedback = CatalogueFeedback()


def night_of(moment: dt.datetime, timezone: str = "UTC") -> dt.date:
    """The night a run at `moment` (timezone-aware; naive is UTC) renders: its date on the label's
    calendar. A 02:00 run in Tokyo is 17:00 UTC the day before, and is the night of the Tokyo date."""
    from zoneinfo import ZoneInfo

    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(ZoneInfo(timezone)).date()


def load_catalogue_plan(path: Path | None = None) -> CataloguePlan:
    """`config/catalogue.yaml`: how many tracks a night, the mix, the delivery profiles."""
    path = path or config_dir() / "catalogue.yaml"
    data, locator = load_yaml(path)
    plan = validate_config(data, locator, CataloguePlan)
    problems = [locator.problem(("mix", "genres", g), f"'{g}' is not a genre ({', '.join(GENRES)})") for g in plan.mix.genres if g not in GENRES]
    problems += [locator.problem(("mix", "moods", m), f"'{m}' is not a mood ({', '.join(MOODS)})") for m in plan.mix.moods if m not in MOODS]
    if plan.mix.tempo_bpm[0] > plan.mix.tempo_bpm[1]:
        problems.append(locator.problem(("mix", "tempo_bpm"), "the low tempo is above the high one"))
    if plan.mix.styles:
        problems += [
            locator.problem(("mix", "styles", v), f"'{v}' is not a voice style ({', '.join(VOICE_STYLES)})") for v in plan.mix.styles if v not in VOICE_STYLES
        ]
    for where, names in (("min_variety", list(plan.feedback.min_variety)), ("never_change", plan.feedback.never_change)):
        problems += [
            locator.problem(("feedback", where), f"'{a}' is not a planned attribute ({', '.join(PLANNED_ATTRIBUTES)})")
            for a in names
            if a not in PLANNED_ATTRIBUTES
        ]
    if not _is_time_zone(plan.timezone):
        problems.append(locator.problem(("timezone",), f"{shown(plan.timezone)} is not an IANA time zone (e.g. UTC, Europe/London, Asia/Tokyo)"))
    for index, key in enumerate(plan.mix.keys):
        try:
            parse_key(key)
        except ValueError as err:
            problems.append(locator.problem(("mix", "keys", index), str(err)))
    if problems:
        raise ConfigError(problems)
    return plan


def _is_time_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def night_seed(date: dt.date, salt: str = "") -> int:
    """The seed of a night's plan: the date alone decides it, so a rerun or backfill plans the same."""
    return derive_seed("songmill-nightly", date.isoformat(), salt)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = sorted(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def nightly_release(plan: CataloguePlan, date: dt.date) -> dict:
    """The night's release config: tracks drawn from the mix with a generator seeded by the date."""
    rng = np.random.default_rng(night_seed(date))
    count = min(plan.tracks_per_night, len(plan.themes))
    ideas = [plan.themes[i] for i in rng.permutation(len(plan.themes))[:count]]
    genre = _pick(rng, plan.mix.genres)
    tracks = []
    for idea in ideas:
        identity = _pick(rng, plan.mix.identities)
        track = {
            "title": idea.title,
            "theme": idea.theme,
            "mood": _pick(rng, plan.mix.moods),
            "tempo": int(rng.integers(plan.mix.tempo_bpm[0], plan.mix.tempo_bpm[1] + 1)),
            "key": plan.mix.keys[int(rng.integers(len(plan.mix.keys)))],
            "target_duration_s": plan.mix.target_duration_s,
            "instrumentation": _pick(rng, plan.mix.genres),
            "seed": int(rng.integers(0, 2**31 - 1)),
        }
        if identity != "instrumental":
            track["voice"] = {"identity": identity}
        tracks.append(track)
    info = plan.release
    return {
        "release": {
            "id": f"{info.id_prefix}-{date.isoformat()}",
            "title": info.title.format(date=date.isoformat()),
            "artist": info.artist,
            "label": info.label,
            "type": _release_type(len(tracks)),
            "date": date.isoformat(),
            "genre": genre,
            "p_line": f"{date.year} {info.label}",
            "c_line": f"{date.year} {info.label}",
            "explicit": info.explicit,
            "ai_disclosure": {"contains_ai": True},
            "profiles": list(info.profiles),
            "allow_partial": info.allow_partial,
        },
        "tracks": tracks,
    }


def plan_night(plan: CataloguePlan, date: dt.date, feedback: "FeedbackSnapshot | None" = None) -> tuple[dict, list[dict]]:
    """The night's release config and every choice with why.

    Without feedback (or with `feedback.enabled: false`) this is `nightly_release`. With it, the
    genre, arrangement preset, mood, tempo band, mode, voice identity and style of each track are
    Thompson draws from what listeners kept (songmill.feedback.planner), seeded by the date and
    the snapshot's hash so the same date and feedback plan the same night."""
    from songmill.feedback.measures import band_range
    from songmill.feedback.planner import Choice, ThompsonPlanner, with_variety

    if feedback is None or not plan.feedback.enabled:
        return nightly_release(plan, date), [Choice(0, "all", "", "feedback off: drawn by catalogue.yaml's weights").to_dict()]
    config = nightly_release(plan, date)  # themes, titles, seeds and release fields as without feedback
    rng = np.random.default_rng(derive_seed("songmill-nightly", date.isoformat(), feedback.sha256))
    planner = ThompsonPlanner(feedback, rng, exploration_share=plan.feedback.exploration_share, never_change=set(plan.feedback.never_change))
    mix, count = plan.mix, len(config["tracks"])
    candidates = _candidates(mix)
    genre = planner.choose(0, "genre", candidates["genre"])
    config["release"]["genre"] = genre.value
    choices: list[Choice] = [genre]
    drawn: dict[str, list[Choice]] = {}
    for attribute in ("preset", "mood", "tempo_band", "mode", "identity"):
        first = [planner.choose(t + 1, attribute, candidates[attribute]) for t in range(count)]
        drawn[attribute] = with_variety(
            first, plan.feedback.min_variety.get(attribute, 1), lambda track, used, a=attribute: planner.choose(track, a, candidates[a], exclude=used)
        )
    voiced = [t for t in range(count) if drawn["identity"][t].value != "instrumental"]
    if mix.styles:
        styles = [planner.choose(t + 1, "style", candidates["style"]) for t in voiced]
        drawn["style"] = with_variety(
            styles, plan.feedback.min_variety.get("style", 1), lambda track, used: planner.choose(track, "style", candidates["style"], exclude=used)
        )
    for t, track in enumerate(config["tracks"]):
        pick = {a: drawn[a][t].value for a in ("preset", "mood", "tempo_band", "mode", "identity")}
        band_low, band_high = band_range(pick["tempo_band"])
        low, high = max(band_low, mix.tempo_bpm[0]), min(band_high, mix.tempo_bpm[1])
        track["instrumentation"], track["mood"] = pick["preset"], pick["mood"]
        track["tempo"] = int(rng.integers(low, high + 1))
        keys = candidates["keys"][pick["mode"]]
        track["key"] = keys[int(rng.integers(len(keys)))]
        track.pop("voice", None)
        if pick["identity"] != "instrumental":
            track["voice"] = {"identity": pick["identity"]}
        choices += [drawn[a][t] for a in ("preset", "mood", "tempo_band", "mode", "identity")]
    for t, style in zip(voiced, drawn.get("style", [])):
        config["tracks"][t]["voice"]["style"] = style.value
        choices.append(style)
    return config, [c.to_dict() for c in choices]


def _candidates(mix: CatalogueMix) -> dict:
    """The values each attribute may take, with catalogue.yaml's weights."""
    from songmill.feedback.measures import TEMPO_BAND_BPM, tempo_band

    low, high = mix.tempo_bpm
    bands = {tempo_band(b): 1.0 for b in range(low - low % TEMPO_BAND_BPM, high + 1, TEMPO_BAND_BPM)}
    keys: dict[str, list[str]] = {}
    for key in mix.keys:
        keys.setdefault(parse_key(key).mode, []).append(key)
    return {
        "genre": mix.genres,
        "preset": mix.genres,
        "mood": mix.moods,
        "tempo_band": bands,
        "mode": {mode: float(len(found)) for mode, found in keys.items()},
        "identity": mix.identities,
        "style": mix.styles or {},
        "keys": keys,
    }


def _release_type(tracks: int) -> str:
    return "single" if tracks <= 3 else "ep" if tracks <= 6 else "album"


def release_id_for(title: str) -> str:
    """A release id from a title: lower-case words joined by hyphens ("Night Bus!" → "night-bus")."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = "-".join(words)[:48].strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"release-{slug}".strip("-")
    return slug


# The manual DAG's trigger form (dags/songmill_manual.py declares a Param for each; a test holds
# the two to each other). A key outside it — a REST API call's typo — is refused, not ignored.
FORM_FIELDS = (
    "title",
    "artist",
    "label",
    "genre",
    "mood",
    "theme",
    "tempo",
    "key",
    "target_duration_s",
    "voice_identity",
    "voice_style",
    "lyrics",
    "profiles",
    "explicit",
    "seed",
)


def release_from_form(form: dict[str, Any], *, today: dt.date | None = None) -> dict:
    """A one-track release config from the manual DAG's trigger form (its Params).

    Raises
    ------
    SongmillError : keys the form does not have, all of them named in one sentence with the field
        each most likely meant ('bpm' → 'tempo').
    """
    from songmill.core.config import nearest_name

    unknown = [key for key in form if key not in FORM_FIELDS and key != "release_id"]
    if unknown:
        named = [f"'{key}'" + (f" (did you mean '{near}'?)" if (near := nearest_name(key, list(FORM_FIELDS))) else "") for key in unknown]
        raise SongmillError(f"the release form has no field {', '.join(named)}; its fields are {', '.join(FORM_FIELDS)}")
    today = today or dt.date.today()
    track = {
        "title": form["title"],
        "theme": form.get("theme") or form["title"],
        "mood": form["mood"],
        "tempo": form["tempo"],
        "key": form["key"],
        "target_duration_s": form.get("target_duration_s", 180),
    }
    if form.get("voice_identity") not in (None, "", "instrumental"):
        style = form.get("voice_style")
        track["voice"] = {"identity": form["voice_identity"], **({"style": style} if style not in (None, "", "auto") else {})}
    if (form.get("lyrics") or "").strip():
        track["lyrics"] = form["lyrics"]
    if form.get("seed") is not None:
        track["seed"] = int(form["seed"])
    return {
        "release": {
            "id": form.get("release_id") or release_id_for(form["title"]),
            "title": form["title"],
            "artist": form["artist"],
            "label": form.get("label") or form["artist"],
            "type": "single",
            "date": form.get("release_date") or today.isoformat(),
            "genre": form["genre"],
            "p_line": f"{today.year} {form.get('label') or form['artist']}",
            "c_line": f"{today.year} {form.get('label') or form['artist']}",
            "explicit": bool(form.get("explicit", False)),
            "ai_disclosure": {"contains_ai": True},
            "profiles": list(form["profiles"]),
        },
        "tracks": [track],
    }


def write_release_config(config: dict, path: Path) -> Path:
    """Write a planned release as YAML and check it like any config (ConfigError with file:line)."""
    from songmill.engine.configs import load_release_with_profiles

    if not isinstance(config, dict):
        raise SongmillError(f"a release config must be a mapping, got {type(config).__name__}")
    header = "# Written by songmill for this run; `songmill render` of this file renders the same release.\n"
    atomic_write_bytes(path, (header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)).encode())
    load_release_with_profiles(path)
    return path
