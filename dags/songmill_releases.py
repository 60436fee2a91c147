"""One DAG per release config: `config/releases/<name>.yaml` → DAG `songmill_release_<name>`.

Parsing reads each YAML and checks it with the same rules as `songmill validate` (no model, no
audio). A config that does not parse is reported as this file's import error, naming the
config's file and line, and the other configs' DAGs still load.
"""

from __future__ import annotations

import re
from pathlib import Path

from airflow.sdk import DAG

from operators.dag_builder import gpu_stage_names, release_dag, seed_param
from operators.release import PlanReleaseOperator
from songmill.core.errors import SongmillError
from songmill.core.paths import config_dir


class ReleaseConfigError(Exception):
    """A release config in config/releases/ does not parse (shown as a DAG import error)."""


class _BrokenReleaseConfigs(DAG):
    """Carries the broken configs' problems to the DAG processor: Airflow validates every DAG a
    file defines before keeping it, records a failure as the file's import error, and still
    keeps the file's other DAGs."""

    def validate(self):
        raise ReleaseConfigError(self.description)


def dag_id_for(config: Path) -> str:
    return "songmill_release_" + re.sub(r"[^A-Za-z0-9_.-]", "_", config.stem)


def _release_dag(config: Path) -> DAG:
    from songmill.engine.configs import load_release_with_profiles

    spec, _ = load_release_with_profiles(config)
    info = spec.release
    return release_dag(
        dag_id_for(config),
        schedule=info.schedule,
        plan=lambda: PlanReleaseOperator(task_id="plan", config_path=str(config), seed="{{ params.seed }}"),
        params={"seed": seed_param(title="Base seed", description="Re-seed every track from this number; empty: the config's seeds")},
        gpu_stages=gpu_stage_names(spec),
        tags=["songmill", "release", info.type, info.genre],
        description=f"{info.title} — {info.artist} ({info.type}, {len(spec.tracks)} track(s)) from {config.name}",
        doc_md=f"Renders and delivers **{info.title}** by {info.artist} from `{config}`: every stage of every track, "
        f"the QC gate, then the {', '.join(info.profiles)} deliveries. Trigger with `seed` to re-seed every track.",
    )


def build_release_dags(folder: Path | None = None) -> dict[str, DAG]:
    folder = folder or config_dir() / "releases"
    dags, problems = {}, []
    for config in sorted(folder.glob("*.yaml")):
        try:
            dag = _release_dag(config)
        except SongmillError as err:
            problems.append(str(err))
            continue
        dags[dag.dag_id] = dag
    if problems:
        broken = _BrokenReleaseConfigs("songmill_release_configs_broken", schedule=None, description="release config(s) do not parse:\n" + "\n".join(problems))
        dags[broken.dag_id] = broken
    return dags


globals().update(build_release_dags())
