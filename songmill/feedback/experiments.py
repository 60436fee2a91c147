"""A/B experiments between model versions, presets (or another track setting) across releases.

    config/experiments.yaml
      experiments:
        pop-vs-synthpop:
          active: true
          releases: "nightly-*"                      # which releases take part (a glob on the id)
          arms: {A: {instrumentation: pop}, B: {instrumentation: synthpop}}
        refined-melody:
          arms: {A: {model_versions: {melody-gru-celtic: "1.0"}}, B: {model_versions: {melody-gru-celtic: "1.0+r1"}}}

A release is assigned an arm by hashing the experiment's name and the release id (so the same
release always gets the same arm, whoever asks), and the assignment is recorded in the
catalogue. The arm's settings override every track of the release's plan.

`experiment_report` compares the arms' completion rates: each arm's Beta posterior (uniform
prior), the difference B − A with a 95 % Wald interval, and the posterior probability that B
beats A (Monte Carlo, 20,000 draws, seeded).
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from pathlib import Path
from typing import Annotated, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import ExperimentAssignment
from songmill.core.config import load_config
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.paths import config_dir
from songmill.feedback.measures import track_measures

ARM_FIELDS = ("instrumentation", "mood", "tempo", "key", "target_duration_s", "model_versions")  # model_versions: the release's


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool = True
    releases: str = "*"
    arms: Annotated[dict[str, dict[str, str | int | float | dict[str, str]]], Field(min_length=2)]


class ExperimentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiments: dict[str, Experiment] = {}


def load_experiments(path: Path | None = None) -> dict[str, Experiment]:
    path = path or config_dir() / "experiments.yaml"
    if not path.is_file():
        return {}
    found = load_config(path, ExperimentsFile).experiments
    problems = [
        f"{path}: experiments.{name}.arms.{arm}: sets {', '.join(unknown)}; an arm may set {', '.join(ARM_FIELDS)}"
        for name, experiment in found.items()
        for arm, settings in experiment.arms.items()
        if (unknown := [k for k in settings if k not in ARM_FIELDS])
    ]
    if problems:
        raise ConfigError(problems)
    return found


def arm_for(name: str, experiment: Experiment, release_id: str) -> str:
    arms = sorted(experiment.arms)
    digest = int(hashlib.sha256(f"{name}\x1f{release_id}".encode()).hexdigest(), 16)
    return arms[digest % len(arms)]


def assign(catalogue: Catalogue, name: str, experiment: Experiment, release_id: str) -> str:
    """The release's arm, recorded once (a recorded arm wins over a recomputed one)."""
    with catalogue.session() as s, s.begin():
        row = s.get(ExperimentAssignment, (name, release_id))
        if row is None:
            row = ExperimentAssignment(experiment=name, release_id=release_id, arm=arm_for(name, experiment, release_id))
            s.add(row)
        return row.arm


def apply_experiments(catalogue: Catalogue, config: dict, experiments: dict[str, Experiment] | None = None) -> list[dict]:
    """Assign the release of a planned config to each active experiment it takes part in and
    apply the arm's settings to its tracks; what was assigned."""
    experiments = load_experiments() if experiments is None else experiments
    release_id = config["release"]["id"]
    applied = []
    for name, experiment in sorted(experiments.items()):
        if not experiment.active or not fnmatch.fnmatch(release_id, experiment.releases):
            continue
        arm = assign(catalogue, name, experiment, release_id)
        settings = dict(experiment.arms[arm])
        if "model_versions" in settings:  # a model version is the release's (every track renders with it)
            config["release"]["model_versions"] = {**config["release"].get("model_versions", {}), **cast(dict, settings.pop("model_versions"))}
        for track in config["tracks"]:
            track.update(settings)
        applied.append({"experiment": name, "arm": arm, "settings": experiment.arms[arm]})
    return applied


def experiment_report(catalogue: Catalogue, name: str, *, draws: int = 20_000) -> dict:
    with catalogue.session() as s:
        arms = {row.release_id: row.arm for row in s.scalars(select(ExperimentAssignment).where(ExperimentAssignment.experiment == name))}
    if not arms:
        raise SongmillError(f"experiment {name!r} has no releases assigned yet; it is assigned when a nightly plan is made")
    totals: dict[str, list[int]] = {arm: [0, 0, 0] for arm in sorted(set(arms.values()))}  # completions, streams, tracks
    for m in track_measures(catalogue):
        arm = arms.get(m.release_id)
        if arm is not None and m.completion_trials:
            totals[arm][0] += m.completions
            totals[arm][1] += m.completion_trials
            totals[arm][2] += 1
    names = sorted(totals)
    rng = np.random.default_rng(0)
    per_arm = {}
    samples = {}
    for arm in names:
        c, n, tracks = totals[arm]
        samples[arm] = rng.beta(1 + c, 1 + n - c, draws)
        per_arm[arm] = {
            "releases": sum(1 for a in arms.values() if a == arm),
            "tracks": tracks,
            "streams": n,
            "completions": c,
            "completion_rate": round(c / n, 4) if n else None,
        }
    result = {"experiment": name, "arms": per_arm}
    if len(names) >= 2 and all(totals[a][1] for a in names[:2]):
        a, b = names[0], names[1]
        pa, pb = totals[a][0] / totals[a][1], totals[b][0] / totals[b][1]
        se = math.sqrt(pa * (1 - pa) / totals[a][1] + pb * (1 - pb) / totals[b][1])
        result["effect"] = {
            "compared": f"{b} − {a}",
            "difference": round(pb - pa, 4),
            "ci95": [round(pb - pa - 1.96 * se, 4), round(pb - pa + 1.96 * se, 4)],
            "p_b_beats_a": round(float(np.mean(samples[b] > samples[a])), 4),
        }
    return result
