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

`experiment_report` compares the arms' completion rates: the difference B − A with a 95 %
interval and the probability that B beats A, from a two-stage bootstrap over tracks (seeded),
and the plays-independent Wald interval beside it.
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
from songmill.core.config import load_yaml, validate_config
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
    data, locator = load_yaml(path)
    found = validate_config(data, locator, ExperimentsFile).experiments
    problems = [
        locator.problem(("experiments", name, "arms", arm, unknown[0]), f"sets {', '.join(map(repr, unknown))}; an arm may set {', '.join(ARM_FIELDS)}")
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


def experiment_report(catalogue: Catalogue, name: str, *, resamples: int = 4000) -> dict:
    """Each arm's completion rate, and the effect of B over A: the difference, its 95 % interval
    and the probability that B beats A, from a two-stage bootstrap (tracks resampled, then each
    resampled track's completions redrawn from its own rate), because plays of one track are
    not independent of each other. The plays-independent Wald interval is given beside it."""
    with catalogue.session() as s:
        arms = {row.release_id: row.arm for row in s.scalars(select(ExperimentAssignment).where(ExperimentAssignment.experiment == name))}
    if not arms:
        known = load_experiments()
        if name not in known:  # a typo, not an experiment waiting for its first night
            raise SongmillError(f"there is no experiment {name!r} in {config_dir() / 'experiments.yaml'} (experiments: {', '.join(sorted(known)) or 'none'})")
        raise SongmillError(f"experiment {name!r} has no releases assigned yet; it is assigned when a nightly plan is made")
    tracks: dict[str, list[tuple[int, int]]] = {arm: [] for arm in sorted(set(arms.values()))}  # (completions, streams) per track
    for m in track_measures(catalogue):
        if arms.get(m.release_id) is not None and m.completion_trials:
            tracks[arms[m.release_id]].append((m.completions, m.completion_trials))
    per_arm: dict[str, dict] = {}
    for arm, rows in tracks.items():
        c, n = sum(r[0] for r in rows), sum(r[1] for r in rows)
        per_arm[arm] = {
            "releases": sum(1 for a in arms.values() if a == arm),
            "tracks": len(rows),
            "streams": n,
            "completions": c,
            "completion_rate": round(c / n, 4) if n else None,
        }
    result: dict = {"experiment": name, "arms": per_arm}
    names = sorted(tracks)
    if len(names) >= 2 and all(tracks[a] for a in names[:2]):
        a, b = names[0], names[1]
        rng = np.random.default_rng(0)
        boot = {arm: _bootstrap_rates(tracks[arm], rng, resamples) for arm in (a, b)}
        diffs = boot[b] - boot[a]
        pa, pb = per_arm[a]["completions"] / per_arm[a]["streams"], per_arm[b]["completions"] / per_arm[b]["streams"]
        se = math.sqrt(pa * (1 - pa) / per_arm[a]["streams"] + pb * (1 - pb) / per_arm[b]["streams"])
        result["effect"] = {
            "compared": f"{b} − {a}",
            "difference": round(pb - pa, 4),
            "ci95": [round(float(np.percentile(diffs, 2.5)), 4), round(float(np.percentile(diffs, 97.5)), 4)],
            "p_b_beats_a": round(float(np.mean(diffs > 0)), 4),
            "ci95_plays_independent": [round(pb - pa - 1.96 * se, 4), round(pb - pa + 1.96 * se, 4)],
            "resamples": resamples,
        }
    return result


def _bootstrap_rates(rows: list[tuple[int, int]], rng: np.random.Generator, resamples: int) -> np.ndarray:
    completions = np.array([r[0] for r in rows], dtype=float)
    streams = np.array([r[1] for r in rows], dtype=float)
    picks = rng.integers(0, len(rows), size=(resamples, len(rows)))
    drawn = rng.binomial(streams[picks].astype(int), (completions / streams)[picks])
    return drawn.sum(axis=1) / streams[picks].sum(axis=1)
