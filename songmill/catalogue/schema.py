"""Catalogue tables (SQLAlchemy 2). Changes go through an Alembic migration in `migrations/`."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Release(Base):
    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    artist: Mapped[str] = mapped_column(String(500))
    label: Mapped[str] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(16))
    release_date: Mapped[dt.date] = mapped_column(Date)
    genre: Mapped[str] = mapped_column(String(32))
    upc: Mapped[str | None] = mapped_column(String(13))
    config_path: Mapped[str] = mapped_column(Text)
    config_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    tracks: Mapped[list["Track"]] = relationship(back_populates="release", order_by="Track.number")


class Track(Base):
    __tablename__ = "tracks"
    __table_args__ = (UniqueConstraint("release_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1-based position in the release
    title: Mapped[str] = mapped_column(String(500))
    isrc: Mapped[str | None] = mapped_column(String(12))
    seed: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="planned")  # planned, rendered, failed, quarantined, delivered
    release: Mapped[Release] = relationship(back_populates="tracks")


EDITOR_RUNNER = "editor"  # a run of the song editor: it records one version of one track


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    runner: Mapped[str] = mapped_column(String(16))  # embedded, airflow, or EDITOR_RUNNER
    base_seed: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, succeeded, failed
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    report_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))  # where the run's process is (catalogue check finds runs whose process died)
    pid: Mapped[int | None] = mapped_column(Integer)


class StageRun(Base):
    __tablename__ = "stage_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    cache_key: Mapped[str] = mapped_column(String(64), index=True)
    cached: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # succeeded, failed
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    peak_rss_mib: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("track_id", "name", "sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    stage_run_id: Mapped[int] = mapped_column(ForeignKey("stage_runs.id", ondelete="CASCADE"))  # the run that first made it
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    bytes: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ArtifactInput(Base):
    """Lineage: `artifact_id` was made from `input_artifact_id`."""

    __tablename__ = "artifact_inputs"
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True)
    input_artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True)


class ArtifactModel(Base):
    """Lineage: the model versions that made an artifact."""

    __tablename__ = "artifact_models"
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(64))
    licence: Mapped[str] = mapped_column(String(100))


class QCResult(Base):
    __tablename__ = "qc_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    profile: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Float)
    bar: Mapped[dict | None] = mapped_column(JSON)  # e.g. {"min": -14.5, "max": -13.5}
    passed: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class IdentifierCounter(Base):
    """The next free number of an identifier series, so no ISRC or UPC is ever issued twice.

    `series` names the series: `isrc:QZSGM:26` (country, registrant, year) or `upc:0200000`
    (GS1 company prefix)."""

    __tablename__ = "identifier_counters"
    series: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_value: Mapped[int] = mapped_column(Integer, default=1)


class Delivery(Base):
    """One delivered release folder: which profile, where it went, and the manifest that proves it."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    profile: Mapped[str] = mapped_column(String(64))
    destination: Mapped[str] = mapped_column(Text)  # the folder or s3://bucket/prefix/folder
    upc: Mapped[str] = mapped_column(String(13))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    files: Mapped[list] = mapped_column(JSON)  # [{path, sha256, bytes}] relative to the folder
    # {track number: sha256 of the master it was encoded from}: what a later render is compared
    # with before it may replace this delivery (None: delivered before the catalogue kept it)
    content: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True)
    replaced_because: Mapped[str | None] = mapped_column(Text, nullable=True)  # set when the audio changed (--redeliver)
    delivered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class TrackPrintRow(Base):
    """A rendered track's audio fingerprint and melody n-grams (qc/duplicates.py), one per run that
    passed the gate, so later tracks are checked against the whole catalogue."""

    __tablename__ = "track_prints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    seed: Mapped[int] = mapped_column(Integer)
    master_sha256: Mapped[str] = mapped_column(String(64))
    chromaprint: Mapped[str] = mapped_column(Text)  # base64 of little-endian uint32 sub-fingerprints
    duration_s: Mapped[float] = mapped_column(Float)
    melody_ngrams: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class OrchestratorTask(Base):
    """One try of one scheduler task (Airflow's listener writes it): which stage of which track
    ran where, and how it ended, so the catalogue shows retries and the worker that did the work."""

    __tablename__ = "orchestrator_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250), index=True)
    dag_run_id: Mapped[str] = mapped_column(String(250), index=True)
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)  # the track's position when mapped, else -1
    try_number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))  # success | failed | up_for_retry | skipped
    hostname: Mapped[str | None] = mapped_column(String(250))
    queue: Mapped[str | None] = mapped_column(String(100))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))  # songmill's run, when known
    release_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


# ------------------------------------------------------------------ listener feedback (songmill.feedback)


class TrackAttributes(Base):
    """What made a track, in the terms feedback is measured by: genre, mood, tempo band, mode,
    voice identity and style, arrangement preset, model versions, and its melody's features.
    Written when a track renders; one row per track (the latest render's)."""

    __tablename__ = "track_attributes"
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    attributes: Mapped[dict] = mapped_column(JSON)  # {"genre": "pop", "mood": "hopeful", "tempo_band": "96-107", ...}
    melody: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {"step_share": 0.61, "range_semitones": 12, ...}
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class FeedbackImport(Base):
    """One imported analytics file: its hash (so the same file counts once), its layout, where the
    raw copy is kept, and what became of its rows."""

    __tablename__ = "feedback_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    file_name: Mapped[str] = mapped_column(Text)
    layout: Mapped[str] = mapped_column(String(64))
    raw_path: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    unknown_isrc: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, done
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class FeedbackRejection(Base):
    """A row an import refused, with its line number and why (nothing is dropped silently)."""

    __tablename__ = "feedback_rejections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("feedback_imports.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)


class ListenerEvent(Base):
    """One counted row of listener activity: a day's (or a month's) counts for one ISRC in one
    territory and store, or one play. `row_key` identifies the row across files, so a row seen
    twice counts once. `track_id` is None for an ISRC the catalogue does not know (kept aside)."""

    __tablename__ = "listener_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    row_key: Mapped[str] = mapped_column(String(64), unique=True)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("feedback_imports.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    layout: Mapped[str] = mapped_column(String(64))
    isrc: Mapped[str] = mapped_column(String(12), index=True)
    track_id: Mapped[int | None] = mapped_column(ForeignKey("tracks.id", ondelete="SET NULL"), index=True, nullable=True)
    day: Mapped[dt.date] = mapped_column(Date)
    territory: Mapped[str] = mapped_column(String(8), default="")
    store: Mapped[str] = mapped_column(String(64), default="")
    streams: Mapped[int] = mapped_column(Integer, default=0)  # plays of 30 s or more
    listeners: Mapped[int | None] = mapped_column(Integer, nullable=True)
    skips: Mapped[int | None] = mapped_column(Integer, nullable=True)  # plays stopped before 30 s
    completions: Mapped[int | None] = mapped_column(Integer, nullable=True)  # plays to the end
    saves: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Verdict(Base):
    """A person's rating (1–5) and/or approve/reject of a track, from the plugin or the CLI."""

    __tablename__ = "verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    user: Mapped[str] = mapped_column(String(250))
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)  # approve, reject
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ReviewItem(Base):
    """A track a nightly batch put before people because its predicted appeal is least certain."""

    __tablename__ = "review_queue"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), unique=True)
    release_id: Mapped[str] = mapped_column(String(64), index=True)
    predicted_appeal: Mapped[float] = mapped_column(Float)
    uncertainty: Mapped[float] = mapped_column(Float)  # the posterior standard deviation of the appeal
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, approved, rejected
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PlanChoice(Base):
    """One attribute a nightly plan drew for one track, and why (Thompson draw, exploration, variety)."""

    __tablename__ = "plan_choices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(String(64), index=True)
    track_number: Mapped[int] = mapped_column(Integer)
    attribute: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(64))
    why: Mapped[str] = mapped_column(Text)
    snapshot_sha256: Mapped[str] = mapped_column(String(64))


class ExperimentAssignment(Base):
    """Which arm of an A/B experiment a release was given (by hash), recorded once."""

    __tablename__ = "experiment_assignments"
    experiment: Mapped[str] = mapped_column(String(64), primary_key=True)
    release_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    arm: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class TrackVersion(Base):
    """One version of a track made by the song editor: the base config's track with `operations`
    applied in order, who made it and why, and its artifacts by hash (switching back to it copies
    them from the store). Version 1 is the track as its config renders it."""

    __tablename__ = "track_versions"
    __table_args__ = (UniqueConstraint("release_id", "track_number", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(String(64), index=True)
    track_number: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, … per track
    parent: Mapped[int | None] = mapped_column(Integer)  # the version it was made from
    operations: Mapped[list] = mapped_column(JSON)  # every operation since the config, in order
    added: Mapped[list] = mapped_column(JSON)  # this version's own operations
    command: Mapped[str | None] = mapped_column(Text)  # the words they came from, if any
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    config_sha256: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    track_spec: Mapped[dict] = mapped_column(JSON)  # the track as rendered (TrackSpec)
    artifacts: Mapped[dict] = mapped_column(JSON)  # name → {sha256, size, …} (ArtifactRef)
    recomputed: Mapped[list] = mapped_column(JSON)  # the stages that ran (the rest came from the cache)
    measures: Mapped[dict] = mapped_column(JSON)  # loudness, tempo, key… as the gate measured them
    folder: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(Integer)
    # a new recording's own ISRC, allocated when the version is first delivered (None: not yet, or
    # it keeps the track's: see songmill.editor.operations.recording_identity)
    isrc: Mapped[str | None] = mapped_column(String(12), nullable=True)
    models: Mapped[list | None] = mapped_column(JSON, nullable=True)  # every registry model its stages used


class TrackVersionHead(Base):
    """Which version of a track is current, and the versions undone since (for redo)."""

    __tablename__ = "track_version_heads"
    release_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    track_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    current: Mapped[int] = mapped_column(Integer)
    undone: Mapped[list] = mapped_column(JSON, default=list)  # a stack: redo takes the last
