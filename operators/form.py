"""The manual DAG's trigger form: its Params, and the one check of what is submitted through it.

The Params give Airflow's form its fields, drop-downs and help. `form_problems` holds a submission
(the UI's form or a REST API call's `conf`) to the same rules as `songmill validate`: every field
against its Param's JSON schema, every unknown key (with the field it most likely meant), and the
release the form describes checked like any config file (an instrumental with lyrics, say). It
names every problem at once, one sentence each; the plugin's trigger guard answers 400 with them
before Airflow creates a run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from airflow.sdk import Param

from operators.dag_builder import run_params, seed_param
from songmill.core.vocab import GENRES, MOODS, VOICE_STYLES

MANUAL_DAG_ID = "songmill_manual_release"
TONICS = ("C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B")
KEYS = [f"{tonic} {mode}" for mode in ("major", "minor") for tonic in TONICS]
GENRE_NAMES = {"pop": "Pop", "rock": "Rock", "synthpop": "Synth-pop", "folk": "Folk", "ballad": "Ballad", "hip-hop": "Hip-hop"}
NO_VOICE = "instrumental"


def _identities() -> dict[str, str]:
    from models.registry import ModelRegistry

    return {name: f"{name.title()} — {ident.description}" for name, ident in sorted(ModelRegistry.load().identities.items())}


def _profiles() -> list[str]:
    from songmill.core.profiles import load_profiles

    return sorted(load_profiles())


def form_params() -> dict[str, Param]:
    """The form's fields (songmill.engine.planning.FORM_FIELDS names the same ones)."""
    identities = _identities()
    return {
        "title": Param("Night Bus", type="string", minLength=1, maxLength=200, title="Title", section="Song"),
        "artist": Param("The Songmill Collective", type="string", minLength=1, maxLength=200, title="Artist", section="Song"),
        "label": Param("Songmill Records", type="string", minLength=1, maxLength=200, title="Label", section="Song"),
        "genre": Param("pop", type="string", enum=list(GENRES), values_display=GENRE_NAMES, title="Genre", section="Song"),
        "mood": Param("hopeful", type="string", enum=list(MOODS), values_display={m: m.title() for m in MOODS}, title="Mood", section="Song"),
        # May be left empty: ["null", "string"], or Airflow's form marks the field required.
        "theme": Param(
            None,
            type=["null", "string"],
            maxLength=400,
            title="Theme",
            section="Song",
            description="What the song is about (the lyric writer's brief); empty: the title",
        ),
        "tempo": Param(100, type="integer", minimum=40, maximum=240, title="Tempo (BPM)", section="Music"),
        "key": Param("A minor", type="string", enum=KEYS, title="Key", section="Music"),
        "target_duration_s": Param(180, type="integer", minimum=30, maximum=900, title="Length (seconds)", section="Music"),
        "voice_identity": Param(
            "ava",
            type="string",
            enum=[*identities, NO_VOICE],
            values_display={**identities, NO_VOICE: "None — an instrumental"},
            title="Voice",
            section="Voice",
        ),
        "voice_style": Param(
            "auto",
            type="string",
            enum=["auto", *VOICE_STYLES],
            values_display={"auto": "Chosen by the mood", **{s: s.title() for s in VOICE_STYLES}},
            title="Singing style",
            section="Voice",
        ),
        "lyrics": Param(
            None,
            type=["null", "string"],
            format="multiline",
            maxLength=20000,
            title="Lyrics",
            section="Voice",
            description="Your lyrics, blocks separated by a blank line, optional [verse]/[chorus] headings; empty: written by songmill",
        ),
        "profiles": Param(
            ["streaming"],
            type="array",
            items={"type": "string", "enum": _profiles()},
            minItems=1,
            uniqueItems=True,
            title="Delivery profiles",
            section="Delivery",
            examples=_profiles(),
        ),
        "explicit": Param(False, type="boolean", title="Explicit lyrics", section="Delivery"),
        "seed": seed_param(title="Seed", section="Delivery", description="The same seed and form render the same song; empty: derived from the title"),
    }


def manual_dag_params() -> dict[str, Param]:
    """Every Param of the manual DAG: the form's fields and the run's own (release_dag adds them)."""
    return {**form_params(), **run_params()}


def form_problems(conf: dict[str, Any], params: dict[str, Param] | None = None) -> list[str]:
    """Every problem with a submitted form (its `conf`), one sentence each; [] when it renders.

    `params`: the DAG's Params; default the manual DAG's (the form's and the run's own, e.g. `redeliver`)."""
    import jsonschema

    from songmill.core.config import nearest_name
    from songmill.engine.planning import release_from_form

    params = params if params is not None else manual_dag_params()
    if not isinstance(conf, dict):
        return [f"the form's values must be a JSON object of fields, got {type(conf).__name__}"]
    problems = []
    for key in conf:
        if key not in params:
            near = nearest_name(key, list(params))
            problems.append(f"'{key}' is not a field of the form" + (f" (did you mean '{near}'?)" if near else ""))
    for key, param in params.items():
        if key not in conf:
            continue
        for error in sorted(jsonschema.Draft7Validator(param.schema).iter_errors(conf[key]), key=lambda e: list(e.path)):
            problems.append(f"{key}: {_schema_sentence(error)}")
    if problems:
        return problems
    form = {key: conf.get(key, param.value) for key, param in params.items() if key in _form_fields()}
    return _release_problems(release_from_form(form))


def _form_fields() -> tuple[str, ...]:
    from songmill.engine.planning import FORM_FIELDS

    return FORM_FIELDS


def _schema_sentence(error) -> str:
    """jsonschema's message without the schema dump: the value and what is allowed."""
    if error.validator == "enum":
        return f"{error.instance!r} is not one of the choices ({', '.join(map(str, error.validator_value))})"
    return error.message


def _release_problems(config: dict) -> list[str]:
    """The release the form describes, checked like a config file (as `songmill validate` would)."""
    from songmill.core.errors import ConfigError, SongmillError
    from songmill.engine.planning import write_release_config

    with tempfile.TemporaryDirectory(prefix="songmill-form-") as folder:
        try:
            write_release_config(config, Path(folder) / "form.yaml")
        except ConfigError as err:
            return [_without_location(problem) for problem in err.problems]
        except SongmillError as err:
            return [str(err)]
    return []


def _without_location(problem: str) -> str:
    """'/tmp/…/form.yaml:12: tracks[0]: lyrics are given …' → 'lyrics are given …' (the form has no file or lines)."""
    parts = problem.split(": ", 2)
    return parts[-1] if len(parts) == 3 else problem
