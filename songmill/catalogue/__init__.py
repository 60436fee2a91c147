"""The catalogue: releases, tracks, runs, stage runs, artifacts with lineage, QC results.

    catalogue = Catalogue.open()          # SONGMILL_DATABASE_URL, else SQLite at var/catalogue.db

Opening a catalogue brings its schema up to date (Alembic `upgrade head`). A database that
cannot be reached is a `ServiceError` naming it (with the password masked).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import inspect
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from songmill.catalogue.schema import (
    EDITOR_RUNNER,
    Artifact,
    ArtifactInput,
    ArtifactModel,
    Delivery,
    IdentifierCounter,
    OrchestratorTask,
    QCResult,
    Release,
    Run,
    StageRun,
    Track,
    TrackAttributes,
    TrackPrintRow,
    TrackVersion,
    TrackVersionHead,
    Verdict,
    utcnow,
)
from songmill.core.errors import ServiceError, SongmillError
from songmill.core.paths import var_dir

MIGRATIONS = Path(__file__).with_name("migrations")

T = TypeVar("T")


def default_url() -> str:
    return os.environ.get("SONGMILL_DATABASE_URL") or f"sqlite:///{var_dir() / 'catalogue.db'}"


# where an ISRC may already be held: a track's own, or an edited version's (both from the registrant's series)
ISRC_COLUMNS = (Track.isrc, TrackVersion.isrc)


def display_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _service_errors(method: Callable) -> Callable:
    """A database that stops answering mid-run, or whose disk is full, is a ServiceError in one
    sentence naming it (not a SQLAlchemy traceback)."""

    @functools.wraps(method)
    def translated(self: "Catalogue", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OperationalError as err:
            reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
            raise ServiceError(
                f"catalogue database {display_url(str(self.engine.url))} failed ({reason}); check that it is running and its disk has room, then run again"
            ) from None

    return translated


def _translate_service_errors(cls: type) -> type:
    """Every public method of the class, wrapped by `_service_errors` (not the context managers)."""
    for name, member in list(vars(cls).items()):
        if inspect.isfunction(member) and not name.startswith("_") and name not in ("session", "close", "release_lock", "edit_lock", "migrate"):
            setattr(cls, name, _service_errors(member))
    return cls


@_translate_service_errors
class Catalogue:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None) -> "Catalogue":
        url = url or default_url()
        try:
            parsed = make_url(url)
        except Exception:
            raise ServiceError(
                f"catalogue database URL {url!r} is not a database URL (e.g. sqlite:///var/catalogue.db or postgresql://user@host/db); fix SONGMILL_DATABASE_URL"
            ) from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:  # a file where the folder should be, no permission
                raise ServiceError(
                    f"the catalogue's folder {folder} cannot be made ({err.strerror or err}); set SONGMILL_VAR_DIR (or SONGMILL_DATABASE_URL) to a folder you can write"
                ) from None
        # PostgreSQL: give up on an unreachable server soon. SQLite: wait up to 60 s for another
        # process's write to finish (Python's default of 5 s is too short on a loaded machine).
        options = {"connect_args": {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {"timeout": 60}}
        try:
            engine = create_engine(url, pool_pre_ping=True, **options)
        except (ArgumentError, ImportError) as err:  # a dialect SQLAlchemy does not know (bogus://…), or its driver is not installed (mysql://…)
            raise ServiceError(
                f"catalogue database URL {display_url(url)} names no database songmill can use ({err}); use sqlite:///… or postgresql://…"
            ) from None
        catalogue = cls(engine)
        catalogue.migrate()
        return catalogue

    def migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self._lock("songmill-migrations"), self.engine.begin() as connection:  # two processes opening a new catalogue at once
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as err:
            reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
            raise ServiceError(
                f"catalogue database {display_url(str(self.engine.url))} is unreachable ({reason}); check SONGMILL_DATABASE_URL or start the server"
            ) from None
        except DatabaseError as err:  # reached, but not a database (a damaged or foreign SQLite file)
            reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
            raise ServiceError(
                f"catalogue database {display_url(str(self.engine.url))} cannot be read ({reason}); restore it from a backup or point SONGMILL_DATABASE_URL at another"
            ) from None

    def session(self) -> Session:
        return self._sessions()

    def close(self) -> None:
        self.engine.dispose()

    # -- writes
    def upsert_release(self, spec, *, config_path: str, config_sha256: str) -> None:
        info = spec.release

        def upsert(s: Session) -> None:
            release = s.get(Release, info.id) or Release(id=info.id)
            release.title, release.artist, release.label, release.type = info.title, info.artist, info.label, info.type
            release.release_date, release.genre = info.date, info.genre
            # the UPC is not taken from the config here: `release_upc` records it at delivery, once
            # checked against every other release's (a UPC recorded unchecked stayed with a release
            # whose delivery it failed, and a later `upc: auto` delivered under another release's)
            release.config_path, release.config_sha256 = config_path, config_sha256
            s.add(release)

        self._retrying_collisions(upsert)

    def upsert_track(self, release_id: str, number: int, *, title: str, seed: int, isrc: str | None = None) -> int:
        def upsert(s: Session) -> int:
            track = s.scalar(select(Track).where(Track.release_id == release_id, Track.number == number))
            if track is None:
                track = Track(release_id=release_id, number=number)
            track.title, track.seed = title, seed
            if isrc:
                track.isrc = isrc
            s.add(track)
            s.flush()
            return track.id

        return self._retrying_collisions(upsert)

    def set_track_status(self, track_id: int, status: str, *, duration_s: float | None = None) -> None:
        with self.session() as s, s.begin():
            track = cast(Track, s.get(Track, track_id))  # an id upsert_track handed out
            track.status = status
            if duration_s is not None:
                track.duration_s = duration_s

    def set_track_attributes(self, track_id: int, attributes: dict, melody: dict | None) -> None:
        """What made the track (songmill.feedback.attributes), for listener feedback to be measured by."""

        def upsert(s: Session) -> None:
            row = s.get(TrackAttributes, track_id) or TrackAttributes(track_id=track_id)
            row.attributes, row.melody = attributes, melody
            s.add(row)

        self._retrying_collisions(upsert)

    def rejected_in_review(self, release_id: str) -> dict[int, str]:
        """{track number: why} for a release's tracks whose latest verdict in review is reject
        (songmill.feedback.review): the delivery withholds them like tracks that failed the gate."""
        with self.session() as s:
            rows = s.execute(
                select(Track.number, Verdict.verdict, Verdict.user, Verdict.comment)
                .join(Verdict, Verdict.track_id == Track.id)
                .where(Track.release_id == release_id, Verdict.verdict.is_not(None))
                .order_by(Verdict.id)
            )
            latest = {number: (verdict, user, comment) for number, verdict, user, comment in rows}  # the latest wins
        return {
            n: f"rejected in review by {user}" + (f": {comment}" if comment else "") for n, (verdict, user, comment) in latest.items() if verdict == "reject"
        }

    def release_lock(self, release_id: str) -> contextlib.AbstractContextManager[None]:
        """Held while a release is packaged and delivered, so two renders of it (two processes,
        two Airflow runs, on one machine or several) deliver one after the other: the second sees
        the first's delivery and replaces it, never beside it."""
        return self._lock(f"songmill-release:{release_id}")

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """An exclusive lock named `name` among everyone using this catalogue. PostgreSQL: a
        session advisory lock (every host shares it); SQLite: an flock on a file beside the
        database (one machine, which is all SQLite serves)."""
        key = hashlib.sha256(name.encode()).digest()
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                number = int.from_bytes(key[:8], "big", signed=True)
                connection.exec_driver_sql("SELECT pg_advisory_lock(%s)", (number,))
                try:
                    yield
                finally:
                    connection.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (number,))
            return
        database = self.engine.url.database
        folder = Path(database).parent if database and database != ":memory:" else var_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f".lock-{key.hex()[:16]}", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start_run(self, release_id: str, *, runner: str, base_seed: int | None) -> int:
        with self.session() as s, s.begin():
            run = Run(release_id=release_id, runner=runner, base_seed=base_seed, status="running", host=socket.gethostname(), pid=os.getpid())
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, *, status: str, report_path: str | None = None, error: str | None = None) -> None:
        with self.session() as s, s.begin():
            run = cast(Run, s.get(Run, run_id))  # an id start_run handed out
            run.status, run.report_path, run.error, run.finished_at = status, report_path, error, utcnow()

    def runs_of(self, release_id: str) -> list[dict]:
        """A release's runs, oldest first: {id, runner, status, error, report_path}."""
        with self.session() as s:
            rows = s.scalars(select(Run).where(Run.release_id == release_id).order_by(Run.id))
            return [{"id": r.id, "runner": r.runner, "status": r.status, "error": r.error, "report_path": r.report_path} for r in rows]

    def record_stage(self, run_id: int, track_id: int, result, *, status: str = "succeeded", error: str | None = None) -> int:
        """Record a stage run and its outputs, with lineage to its inputs and models."""

        def record(s: Session) -> int:
            stage_run = StageRun(
                run_id=run_id,
                track_id=track_id,
                stage=result.stage,
                version=result.version,
                cache_key=result.cache_key,
                cached=result.cached,
                status=status,
                error=error,
                wall_s=result.wall_s,
                cpu_s=result.cpu_s,
                peak_rss_mib=result.peak_rss_mib,
            )
            s.add(stage_run)
            s.flush()
            input_ids = [self._artifact_id(s, track_id, ref.name, ref.sha256) for ref in result.inputs.values()]
            for ref in result.outputs.values():
                artifact_id = self._artifact_id(s, track_id, ref.name, ref.sha256)
                if artifact_id is not None:
                    continue  # made before (a cached run): lineage already recorded
                artifact = Artifact(track_id=track_id, stage_run_id=stage_run.id, name=ref.name, sha256=ref.sha256, bytes=ref.bytes, uri=ref.uri)
                s.add(artifact)
                s.flush()
                s.add_all(ArtifactInput(artifact_id=artifact.id, input_artifact_id=i) for i in input_ids if i is not None)
                s.add_all(
                    ArtifactModel(artifact_id=artifact.id, model_name=m["name"], model_version=m["version"], model_sha256=m["sha256"], licence=m["licence"])
                    for m in result.models
                )
            return stage_run.id

        return self._retrying_collisions(record)

    @staticmethod
    def _artifact_id(s: Session, track_id: int, name: str, sha256: str) -> int | None:
        return s.scalar(select(Artifact.id).where(Artifact.track_id == track_id, Artifact.name == name, Artifact.sha256 == sha256))

    def record_qc(self, run_id: int, track_id: int, profile: str, rows: list[dict]) -> None:
        with self.session() as s, s.begin():
            s.add_all(QCResult(run_id=run_id, track_id=track_id, profile=profile, **row) for row in rows)

    # -- the orchestrator's task tries (Airflow's listener)
    def record_task(
        self,
        *,
        dag_id: str,
        dag_run_id: str,
        task_id: str,
        map_index: int,
        try_number: int,
        state: str,
        hostname: str | None = None,
        queue: str | None = None,
        run_id: int | None = None,
        release_id: str | None = None,
        error: str | None = None,
    ) -> None:
        with self.session() as s, s.begin():
            if run_id is not None and s.get(Run, run_id) is None:
                run_id = None  # a run from another catalogue (e.g. the plan ran against another database)
            s.add(
                OrchestratorTask(
                    dag_id=dag_id,
                    dag_run_id=dag_run_id,
                    task_id=task_id,
                    map_index=map_index,
                    try_number=try_number,
                    state=state,
                    hostname=hostname,
                    queue=queue,
                    run_id=run_id,
                    release_id=release_id,
                    error=error,
                )
            )

    def task_tries(self, dag_run_id: str) -> list[dict]:
        """Every recorded try of a scheduler run's tasks, oldest first."""
        with self.session() as s:
            rows = s.scalars(select(OrchestratorTask).where(OrchestratorTask.dag_run_id == dag_run_id).order_by(OrchestratorTask.id))
            return [
                {
                    "dag_id": r.dag_id,
                    "task_id": r.task_id,
                    "map_index": r.map_index,
                    "try_number": r.try_number,
                    "state": r.state,
                    "hostname": r.hostname,
                    "queue": r.queue,
                    "run_id": r.run_id,
                    "release_id": r.release_id,
                    "error": r.error,
                }
                for r in rows
            ]

    # -- duplicate detection: the prints of every track that passed the gate
    def record_print(self, run_id: int, track_id: int, *, seed: int, master_sha256: str, track_print: dict) -> None:
        with self.session() as s, s.begin():
            s.add(
                TrackPrintRow(
                    run_id=run_id,
                    track_id=track_id,
                    seed=seed,
                    master_sha256=master_sha256,
                    chromaprint=track_print["chromaprint"],
                    duration_s=track_print["duration_s"],
                    melody_ngrams=track_print["melody_ngrams"],
                )
            )

    def newest_print(self, track_id: int) -> dict | None:
        """The track's own newest print as its config renders it (an editor's version is not one):
        {run_id, seed, chromaprint, duration_s, melody_ngrams}."""
        with self.session() as s:
            p = s.scalar(
                select(TrackPrintRow)
                .outerjoin(Run, Run.id == TrackPrintRow.run_id)
                .where(TrackPrintRow.track_id == track_id, Run.runner.is_distinct_from(EDITOR_RUNNER))
                .order_by(TrackPrintRow.id.desc())
                .limit(1)
            )
            return (
                None
                if p is None
                else {"run_id": p.run_id, "seed": p.seed, "chromaprint": p.chromaprint, "duration_s": p.duration_s, "melody_ngrams": p.melody_ngrams}
            )

    def track_prints(self, *, except_track: tuple[str, int] | None = None) -> list[tuple[dict, dict]]:
        """The newest print of every track in the catalogue as its config renders it (but
        `except_track`: (release id, number)), as (track description, print). Duplicate detection
        compares a new song with these; an editor's versions are `every_print`'s."""
        with self.session() as s:
            newest = (
                select(TrackPrintRow.track_id, func.max(TrackPrintRow.id).label("id"))
                .outerjoin(Run, Run.id == TrackPrintRow.run_id)
                .where(Run.runner.is_distinct_from(EDITOR_RUNNER))
                .group_by(TrackPrintRow.track_id)
                .subquery()
            )
            rows = s.execute(
                select(TrackPrintRow, Track)
                .join(newest, TrackPrintRow.id == newest.c.id)
                .join(Track, Track.id == TrackPrintRow.track_id)
                .order_by(TrackPrintRow.id)
            ).all()
            return [
                (
                    {"release_id": t.release_id, "number": t.number, "title": t.title, "run_id": p.run_id},
                    {"chromaprint": p.chromaprint, "duration_s": p.duration_s, "melody_ngrams": p.melody_ngrams},
                )
                for p, t in rows
                if (t.release_id, t.number) != except_track
            ]

    def every_print(self) -> list[tuple[dict, dict]]:
        """Every distinct master's print, each render's and each kept editor version's, as (track
        description with `run_id` and `version` (None for a render), print): what `songmill verify`
        looks an unknown file up in, so an edited version that was delivered is recognised too.
        A master printed again (a rerun, version 1 from the cache) counts once, as first printed."""
        with self.session() as s:
            rows = s.execute(
                select(TrackPrintRow, Track, TrackVersion.number)
                .join(Track, Track.id == TrackPrintRow.track_id)
                .outerjoin(Run, Run.id == TrackPrintRow.run_id)
                .outerjoin(
                    TrackVersion,
                    (TrackVersion.run_id == TrackPrintRow.run_id) & (TrackVersion.release_id == Track.release_id) & (TrackVersion.track_number == Track.number),
                )
                .where(Run.runner.is_distinct_from(EDITOR_RUNNER) | TrackVersion.number.is_not(None))  # an edit never kept is no version
                .order_by(TrackPrintRow.id)
            ).all()
            first: dict[tuple[int, str], tuple[dict, dict]] = {}
            for p, t, version in rows:
                first.setdefault(
                    (t.id, p.master_sha256),
                    (
                        {"release_id": t.release_id, "number": t.number, "title": t.title, "run_id": p.run_id, "version": version},
                        {"chromaprint": p.chromaprint, "duration_s": p.duration_s, "melody_ngrams": p.melody_ngrams},
                    ),
                )
            return list(first.values())

    # -- identifiers: allocated once, kept for good, never issued twice
    def _next_in_series(self, s: Session, series: str) -> int:
        counter = s.scalar(select(IdentifierCounter).where(IdentifierCounter.series == series).with_for_update())
        if counter is None:
            counter = IdentifierCounter(series=series, next_value=1)
            s.add(counter)
        value = counter.next_value
        counter.next_value = value + 1
        s.flush()
        return value

    def _retrying_collisions(self, write: Callable[[Session], T]) -> T:
        """Run `write(session)` in a transaction. Two runners inserting the same new row at once
        (a counter, a release, a track, an artifact both rendered) collide on its unique key;
        the loser simply tries again, and then finds the winner's row."""
        for attempt in range(3):
            try:
                with self.session() as s, s.begin():
                    return write(s)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def release_upc(self, release_id: str, *, given: str, company_prefix: str) -> str:
        """The release's UPC/EAN: the config's, else the one allocated before, else a new one
        from the GS1 company prefix's series."""
        from songmill.core.ids import make_gtin13

        def allocate(s: Session) -> str:
            release = cast(Release, s.get(Release, release_id))  # upsert_release ran first
            if given != "auto":
                self._check_unused(s, Release, Release.upc, given, release_id, "UPC")
                release.upc = given
            elif release.upc is None or self._recorded_unchecked(s, release):
                release.upc = self._unused_next(s, (Release.upc,), lambda: make_gtin13(company_prefix, self._next_in_series(s, f"upc:{company_prefix}")))
            return release.upc

        return self._retrying_collisions(allocate)

    def identifiers_taken(self, release_id: str, *, upc: str | None, isrcs: dict[int, str]) -> list[tuple[tuple, str]]:
        """What a release config gives by hand that the catalogue already gave elsewhere, as
        (field path, problem) pairs: its `upc` held by another release, a track's `isrc` held by
        another track or an edited version. Asked before a render's work (`songmill render`
        refuses, exit 2) as the delivery itself asks (and would refuse, after the work)."""
        found: list[tuple[tuple, str]] = []
        never = "an identifier is never reused (give this one its own, or 'auto')"
        with self.session() as s:
            if upc is not None:
                other = s.scalar(select(Release).where(Release.upc == upc, Release.id != release_id))
                if other is not None:
                    found.append((("release", "upc"), f"UPC {upc} already belongs to release {other.id} in the catalogue; {never}"))
            for number, isrc in sorted(isrcs.items()):
                track = s.scalar(select(Track).where(Track.isrc == isrc, (Track.release_id != release_id) | (Track.number != number)))
                version = s.scalar(select(TrackVersion).where(TrackVersion.isrc == isrc))
                if track is not None:
                    found.append(
                        (
                            ("tracks", number - 1, "isrc"),
                            f"ISRC {isrc} already belongs to track {track.number} of release {track.release_id} in the catalogue; {never}",
                        )
                    )
                elif version is not None:
                    owner = f"version {version.number} of track {version.track_number} of release {version.release_id}"
                    found.append((("tracks", number - 1, "isrc"), f"ISRC {isrc} already belongs to {owner} in the catalogue; {never}"))
        return found

    def recorded_isrc(self, track_id: int) -> str | None:
        """The ISRC the catalogue holds for a track now (the one its last delivery went out under), or None."""
        with self.session() as s:
            track = s.get(Track, track_id)
            return track.isrc if track is not None else None

    @staticmethod
    def _recorded_unchecked(s: Session, release: Release) -> bool:
        """Whether the release's UPC is one that songmill before 2026-12-05 recorded from its config
        unchecked, although another release holds it and this one never delivered under it (its
        delivery was refused): such a UPC is not the release's, and `auto` gives it its own."""
        shared = s.scalar(select(Release.id).where(Release.upc == release.upc, Release.id != release.id))
        delivered = s.scalar(select(Delivery.id).where(Delivery.release_id == release.id, Delivery.upc == release.upc))
        return shared is not None and delivered is None

    def track_isrc(self, track_id: int, *, given: str, country: str | None, registrant: str | None, year: int) -> str | None:
        """The track's ISRC: the config's, else the one allocated before, else the next designation
        of the registrant's year; None when it has none and no registrant is configured."""

        def allocate(s: Session) -> str | None:
            track = cast(Track, s.get(Track, track_id))  # an id upsert_track handed out
            if given != "auto":
                self._check_unused(s, Track, Track.isrc, given, track_id, "ISRC")
                edited = s.scalar(select(TrackVersion).where(TrackVersion.isrc == given))
                if edited is not None:  # an edited version's own ISRC
                    raise SongmillError(
                        f"ISRC {given} already belongs to version {edited.number} of track {edited.track_number} of release {edited.release_id} "
                        "in the catalogue; an identifier is never reused (give this one its own, or 'auto')"
                    )
                track.isrc = given
            elif track.isrc is None and registrant is not None:
                track.isrc = self._next_isrc(s, country, registrant, year)
            return track.isrc

        return self._retrying_collisions(allocate)

    def _next_isrc(self, s: Session, country: str | None, registrant: str, year: int) -> str:
        """The registrant's next designation of `year` that no track or edited version holds."""
        from songmill.core.ids import make_isrc

        if country is None:
            raise ValueError("isrc_country and isrc_registrant go together (give both, or neither)")
        series = f"isrc:{country}{registrant}:{year % 100:02d}"
        return self._unused_next(s, ISRC_COLUMNS, lambda: make_isrc(country, registrant, year, self._next_in_series(s, series)))

    @staticmethod
    def _unused_next(s: Session, columns: tuple, make: Callable[[], str]) -> str:
        """The next identifier of a series that no row holds yet: a config may have given one of
        the series' numbers to another release or track by hand (`upc:` / `isrc:`), and an
        identifier is never given twice. Each skipped number stays used up."""
        for _ in range(10_000):
            value = make()
            if all(s.scalar(select(column).where(column == value)) is None for column in columns):
                return value
        raise SongmillError(
            f"10,000 identifiers in a row of the series, up to {value}, are already in the catalogue; check the catalogue (songmill catalogue check)"
        )

    @staticmethod
    def _check_unused(s: Session, table, column, value: str, own_id, what: str) -> None:
        other = s.scalar(select(table).where(column == value, table.id != own_id))
        if other is not None:
            owner = f"release {other.id}" if table is Release else f"track {other.number} of release {other.release_id}"
            raise SongmillError(f"{what} {value} already belongs to {owner} in the catalogue; an identifier is never reused (give this one its own, or 'auto')")

    def record_delivery(
        self,
        *,
        release_id: str,
        run_id: int | None,
        profile: str,
        destination: str,
        upc: str,
        manifest_sha256: str,
        files: list[dict],
        content: dict[int, str] | None = None,
        replaces_id: int | None = None,
        replaced_because: str | None = None,
    ) -> int:
        """Record a delivery: its files, the master each track was encoded from (`content`) and,
        when it replaced an earlier delivery of the release and profile, which one and why."""
        with self.session() as s, s.begin():
            delivery = Delivery(
                release_id=release_id,
                run_id=run_id,
                profile=profile,
                destination=destination,
                upc=upc,
                manifest_sha256=manifest_sha256,
                files=files,
                content={str(number): sha for number, sha in (content or {}).items()} or None,
                replaces_id=replaces_id,
                replaced_because=replaced_because,
            )
            s.add(delivery)
            s.flush()
            return delivery.id

    # -- reads
    def latest_delivery(self, release_id: str, profile: str) -> dict | None:
        """The newest delivery of a release to a profile: its id, run, time and content
        ({track number: master sha256}, None when delivered before the catalogue kept it)."""
        with self.session() as s:
            row = s.scalars(
                select(Delivery).where(Delivery.release_id == release_id, Delivery.profile == profile).order_by(Delivery.id.desc()).limit(1)
            ).first()
            if row is None:
                return None
            content = {int(number): sha for number, sha in row.content.items()} if row.content else None
            return {"id": row.id, "run_id": row.run_id, "upc": row.upc, "delivered_at": row.delivered_at.isoformat(timespec="seconds"), "content": content}

    def deliveries(self, release_id: str) -> list[dict]:
        """Every delivery of a release, oldest first, with the delivery each one replaced."""
        with self.session() as s:
            return [
                {
                    "id": d.id,
                    "profile": d.profile,
                    "destination": d.destination,
                    "upc": d.upc,
                    "run_id": d.run_id,
                    "manifest_sha256": d.manifest_sha256,
                    "files": len(d.files),
                    "delivered_at": d.delivered_at.isoformat(timespec="seconds"),
                    "replaces": d.replaces_id,
                    "replaced_because": d.replaced_because,
                }
                for d in s.scalars(select(Delivery).where(Delivery.release_id == release_id).order_by(Delivery.id))
            ]

    def releases(self) -> list[dict]:
        """One summary per release: tracks, runs and the latest run's status."""
        with self.session() as s:
            rows = []
            for release in s.scalars(select(Release).order_by(Release.release_date, Release.id)):
                last = s.scalar(select(Run).where(Run.release_id == release.id).order_by(Run.id.desc()).limit(1))
                runs = s.scalar(select(func.count(Run.id)).where(Run.release_id == release.id))
                rows.append(
                    {
                        "id": release.id,
                        "title": release.title,
                        "artist": release.artist,
                        "type": release.type,
                        "date": release.release_date.isoformat(),
                        "tracks": len(release.tracks),
                        "runs": runs,
                        "last_run": last.status if last else None,
                        "last_run_at": last.started_at.isoformat(timespec="seconds") if last else None,
                    }
                )
            return rows

    def release_config(self, release_id: str) -> str | None:
        """The config file a release was last rendered from, or None for a release never rendered."""
        with self.session() as s:
            release = s.get(Release, release_id)
            return release.config_path if release else None

    def track_record(self, release_id: str, number: int, *, run_id: int | None = None) -> dict | None:
        """What `songmill verify` tells about a catalogue track: its ISRC and status, the run that
        made the matched version, the models its artifacts were made with, and the release's deliveries."""
        with self.session() as s:
            track = s.scalar(select(Track).where(Track.release_id == release_id, Track.number == number))
            if track is None:
                return None
            models = s.execute(
                select(ArtifactModel.model_name, ArtifactModel.model_version, ArtifactModel.model_sha256, ArtifactModel.licence)
                .join(Artifact, Artifact.id == ArtifactModel.artifact_id)
                .where(Artifact.track_id == track.id)
                .distinct()
            ).all()
            run = s.get(Run, run_id) if run_id is not None else None
            return {
                "release_id": release_id,
                "release_title": track.release.title,
                "number": number,
                "title": track.title,
                "isrc": track.isrc,
                "status": track.status,
                "seed": track.seed,
                "run_id": run_id,
                "rendered_at": run.started_at.isoformat(timespec="seconds") if run else None,
                "models": [{"name": n, "version": v, "sha256": h, "licence": lic} for n, v, h, lic in sorted(set(models))],
                "deliveries": [{k: d[k] for k in ("profile", "upc", "delivered_at", "destination")} for d in self.deliveries(release_id)],
            }

    # -- the song editor's versions
    def edit_lock(self, release_id: str, track_number: int) -> contextlib.AbstractContextManager[None]:
        """Held while a track is edited: a second edit of it waits (its version number and folder are the first's otherwise)."""
        return self._lock(f"songmill-edit-{release_id}-{track_number}")

    def add_version(self, release_id: str, track_number: int, **fields) -> int:
        """Record a new version of a track (the next number) and make it current; a new version
        clears what undo had set aside for redo. Returns its number."""
        with self._lock(f"songmill-versions-{release_id}"), self.session() as s, s.begin():
            number = (
                s.scalar(select(func.max(TrackVersion.number)).where(TrackVersion.release_id == release_id, TrackVersion.track_number == track_number)) or 0
            ) + 1
            s.add(TrackVersion(release_id=release_id, track_number=track_number, number=number, **fields))
            head = s.get(TrackVersionHead, (release_id, track_number))
            if head is None:
                s.add(TrackVersionHead(release_id=release_id, track_number=track_number, current=number, undone=[]))
            else:
                head.current, head.undone = number, []
            return number

    def version_isrc(self, release_id: str, track_number: int, number: int, *, country: str | None, registrant: str | None, year: int) -> str | None:
        """A version's own ISRC: the one allocated before, else the registrant's next designation
        of `year` (the same series as the tracks'); None when no registrant is configured."""

        def allocate(s: Session) -> str | None:
            version = s.scalar(
                select(TrackVersion).where(TrackVersion.release_id == release_id, TrackVersion.track_number == track_number, TrackVersion.number == number)
            )
            if version is None:
                raise SongmillError(f"track {track_number} of release {release_id} has no version {number}")
            if version.isrc is None and registrant is not None:
                version.isrc = self._next_isrc(s, country, registrant, year)
            return version.isrc

        return self._retrying_collisions(allocate)

    def versions(self, release_id: str, track_number: int) -> list[dict]:
        """Every version of a track, oldest first."""
        with self.session() as s:
            rows = s.scalars(
                select(TrackVersion).where(TrackVersion.release_id == release_id, TrackVersion.track_number == track_number).order_by(TrackVersion.number)
            )
            return [_version_dict(row) for row in rows]

    def version_head(self, release_id: str, track_number: int) -> dict | None:
        """{"current": n, "undone": [...]} or None before the first version."""
        with self.session() as s:
            head = s.get(TrackVersionHead, (release_id, track_number))
            return {"current": head.current, "undone": list(head.undone)} if head else None

    def set_version_head(self, release_id: str, track_number: int, *, current: int, undone: list[int]) -> None:
        with self.session() as s, s.begin():
            head = s.get(TrackVersionHead, (release_id, track_number))
            if head is None:
                raise SongmillError(f"track {track_number} of {release_id} has no versions yet (make one with songmill edit)")
            head.current, head.undone = current, list(undone)

    def lineage(self, sha256: str) -> list[dict]:
        """Where an artifact came from: its stage run, input artifacts and model versions."""
        with self.session() as s:
            out = []
            for artifact in s.scalars(select(Artifact).where(Artifact.sha256 == sha256)):
                stage_run = cast(StageRun, s.get(StageRun, artifact.stage_run_id))  # a foreign key, so the row exists
                inputs = s.scalars(
                    select(Artifact).join(ArtifactInput, ArtifactInput.input_artifact_id == Artifact.id).where(ArtifactInput.artifact_id == artifact.id)
                )
                models = s.scalars(select(ArtifactModel).where(ArtifactModel.artifact_id == artifact.id))
                out.append(
                    {
                        "name": artifact.name,
                        "stage": stage_run.stage,
                        "stage_version": stage_run.version,
                        "inputs": [(i.name, i.sha256) for i in inputs],
                        "models": [(m.model_name, m.model_version, m.model_sha256) for m in models],
                    }
                )
            return out


def _version_dict(row: TrackVersion) -> dict:
    return {
        "number": row.number,
        "parent": row.parent,
        "operations": row.operations,
        "added": row.added,
        "command": row.command,
        "author": row.author,
        "reason": row.reason,
        "created_at": row.created_at.isoformat(timespec="seconds"),
        "config_sha256": row.config_sha256,
        "seed": row.seed,
        "track_spec": row.track_spec,
        "artifacts": row.artifacts,
        "recomputed": row.recomputed,
        "measures": row.measures,
        "folder": row.folder,
        "run_id": row.run_id,
        "isrc": row.isrc,
        "models": row.models,
    }


def _sqlite_file_identity(url: str) -> tuple[int, int] | None:
    """(device, inode) of a SQLite catalogue's file; None for a server database or no file yet."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    try:
        status = os.stat(parsed.database)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


_shared: dict[str, object] = {}


def shared_catalogue() -> Catalogue:
    """One open catalogue for a long-lived process (the web server's routes), opened on first use.

    It is opened again when SONGMILL_DATABASE_URL names another database or when a SQLite file
    was replaced under it: a connection kept to a deleted file refuses every write ("attempt to
    write a readonly database"), so a catalogue restored from a backup would otherwise stop
    taking verdicts until the server restarts."""
    url = default_url()
    identity = (url, _sqlite_file_identity(url))
    held = cast("Catalogue | None", _shared.get("catalogue"))
    if held is None or _shared.get("identity") != identity:
        if held is not None:
            held.close()
        held = Catalogue.open(url)
        _shared.update(catalogue=held, identity=(url, _sqlite_file_identity(url)))
    return held


__all__ = ["Catalogue", "SQLAlchemyError", "default_url", "display_url", "shared_catalogue"]
