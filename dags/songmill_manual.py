"""A release from the Airflow UI: DAG `songmill_manual_release`, triggered with a form.

"Trigger DAG" shows the Params below as a form (enums as drop-downs with display names, the
lyrics as a multi-line box); Airflow checks the values against each Param's JSON schema before
the run starts, and the planner checks the release they describe like any config file.
"""

from __future__ import annotations

from airflow.sdk import Param

from operators.dag_builder import gpu_stage_names, release_dag
from operators.release import PlanFromFormOperator
from songmill.core.vocab import GENRES, MOODS, VOICE_STYLES

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
        "seed": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            maximum=2**31 - 1,
            title="Seed",
            section="Delivery",
            description="The same seed and form render the same song; empty: derived from the title",
        ),
    }


songmill_manual_release = release_dag(
    "songmill_manual_release",
    schedule=None,
    plan=lambda: PlanFromFormOperator(task_id="plan"),
    params=form_params(),
    gpu_stages=gpu_stage_names(),
    tags=["songmill", "manual"],
    description="a one-track release from the trigger form",
    doc_md=__doc__,
)
