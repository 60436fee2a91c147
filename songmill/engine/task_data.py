"""The typed data a release run passes between its tasks (Airflow XCom, the runner's workers).

Everything here is JSON-safe through pydantic (`model_dump(mode="json")` for XCom,
`model_validate` on the way back in) and holds artifact references, never audio:

    ReleasePlan   the run as `plan_release` started it: ids, the stored release spec, the tracks
    TrackState    one track between two of its stages: its plan and its `TrackOutcome` so far
    ReleaseResult what `finish_release_run` delivered

A `TrackOutcome` (songmill.engine.runner) is a pydantic dataclass, so it travels inside a
TrackState as it is.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass

from songmill.core.store import ArtifactRef
from songmill.engine.stage import StageResult


class _TaskData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackPlan(_TaskData):
    """One track of a planned run."""

    number: int  # 1-based position in the release
    seed: int  # the seed its first render uses
    title: str
    commercial: bool  # any delivery profile of the release is commercial (licence checks)


class ReleasePlan(_TaskData):
    """A started release run: what every later task needs to rebuild it on any machine."""

    release_id: str
    title: str
    config_path: str
    config_sha256: str
    spec: ArtifactRef  # the validated release spec as JSON, in the artifact store
    out_dir: str
    run_id: int  # the catalogue's run row
    seed: int | None  # the base seed given to the run (None: the config's seeds)
    runner: Literal["embedded", "airflow"]
    started_at: dt.datetime
    partial_render: bool = False  # only one track (--track): nothing is delivered
    redeliver: bool = False  # may replace an earlier delivery whose audio differs
    tracks: list[TrackPlan]


@dataclass
class TrackOutcome:
    """A track's progress through its stages: every stage result so far, and why it stopped."""

    number: int
    title: str
    seed: int
    results: list[StageResult] = Field(default_factory=list)
    failed_stage: str | None = None
    error: str | None = None
    quarantined: list[str] | None = None  # the QC reasons, when the gate stopped the track
    qc_attempts: list[dict] = Field(default_factory=list)  # every render the gate turned down: seed, reasons
    regenerable: bool = True  # False when the gate's reasons are ones a new seed cannot fix
    track_print: dict | None = None  # fingerprint.json of the render that passed (qc/duplicates.py)
    duplicate: dict | None = None  # the earlier track it matched, when the duplicate check stopped it

    @property
    def refs(self) -> dict[str, ArtifactRef]:
        """Every artifact its stages have written so far, by name (what the next stage reads)."""
        return {name: ref for result in self.results for name, ref in result.outputs.items()}

    @property
    def stopped(self) -> bool:
        """A stage failed, or the gate turned the render down: no later stage runs."""
        return self.error is not None or self.quarantined is not None


class TrackState(_TaskData):
    """One track between two of its tasks: the run it belongs to and how far it got."""

    plan: ReleasePlan
    outcome: TrackOutcome


class ReleaseResult(_TaskData):
    """What a finished run delivered (the package-and-deliver task's XCom)."""

    release_id: str
    report: str  # path of run-report.json
    qc_report: str  # path of qc-report.html
    status: str
    upc: str | None
    delivered: list[dict]
    quarantined: list[int]  # track numbers the gate stopped
