"""Importing an analytics export: streamed, idempotent, every refused row reported.

    result = import_file(Path("exports/2026-11.tsv"), catalogue)          # layout from the header
    print(result.summary())                                                 # imported, duplicates, rejected

* **The same file twice counts once**: a file is known by its sha256; importing it again counts
  nothing. A row seen in two different files (an export that overlaps the last one) counts once
  too: each row has a key from its identifying columns (`layouts.CountedRow.row_key`).
* **Bounded memory**: rows are read one at a time and written in batches of `BATCH_ROWS`; a 1 GB
  file takes the memory of one batch (`make bench` measures it).
* **Nothing lost**: a refused row is stored with its line number and reason; a row for an ISRC
  the catalogue does not know is kept (track unset) and reported, and is matched when the track
  appears (`rematch_unknown`, at the next import and before any measures are read); the raw
  file is copied under `var/feedback/raw/` before any row
  is read.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sqlalchemy import Table, func, insert, select, update

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import FeedbackImport, FeedbackRejection, ListenerEvent, Track
from songmill.core.errors import SongmillError
from songmill.core.paths import var_dir
from songmill.feedback.layouts import CountedRow, Layout, RowProblem, detect_layout, layout_named, missing_columns

BATCH_ROWS = 2000
LISTENER_EVENTS = cast(Table, ListenerEvent.__table__)  # rows go in with Core executemany, not as ORM objects
REJECTIONS = cast(Table, FeedbackRejection.__table__)
SHOWN_REJECTIONS = 50  # how many refused rows the summary lists (all are stored)
csv.field_size_limit(1 << 20)  # one field of a megabyte at most: a broken quote cannot swallow the file


@dataclass
class ImportResult:
    file: str
    layout: str
    import_id: int
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    unknown_isrc: int = 0  # imported, but for an ISRC the catalogue does not know (kept aside)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), the first SHOWN_REJECTIONS
    rejected_count: int = 0
    already_imported: bool = False  # the same file (by sha256) was imported before: nothing counted

    def summary(self) -> str:
        if self.already_imported:
            return f"{self.file}: already imported (import {self.import_id}, the same sha256); nothing counted twice"
        lines = [
            f"{self.file} ({self.layout}): {self.rows} rows — {self.imported} imported"
            + (f" ({self.unknown_isrc} for ISRCs the catalogue does not know, kept aside)" if self.unknown_isrc else "")
            + f", {self.duplicates} duplicates skipped, {self.rejected_count} rejected"
        ]
        lines += [f"  line {line}: {reason}" for line, reason in self.rejected]
        if self.rejected_count > len(self.rejected):
            lines.append(f"  … and {self.rejected_count - len(self.rejected)} more (songmill feedback rejections {self.import_id})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "rejected"}, "rejected": [{"line": ln, "reason": r} for ln, r in self.rejected]}


def raw_folder() -> Path:
    return var_dir() / "feedback" / "raw"


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def import_file(path: Path, catalogue: Catalogue, *, layout: str | None = None, today: dt.date | None = None) -> ImportResult:
    """Import one export file (see the module's notes).

    Raises
    ------
    SongmillError : the file is missing, unreadable, or in no known layout (the error names them).
    """
    path = Path(path)
    if not path.is_file():
        raise SongmillError(f"feedback file {path} does not exist or is not a file")
    today = today or dt.datetime.now(dt.UTC).date()
    try:
        with _open_text(path) as handle:
            header = handle.readline()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise SongmillError(f"feedback file {path} cannot be read as UTF-8 text ({err}); export it again as CSV or TSV") from None
    chosen = layout_named(layout) if layout else detect_layout(header, path.name)
    if layout and (missing := missing_columns(chosen, header)):
        raise SongmillError(f"{path.name} is not in the {chosen.name} layout: its header lacks {', '.join(missing)}")
    sha, raw = _keep_raw(path)  # the raw file is kept before any row is counted
    with catalogue.session() as s:
        earlier = s.scalar(select(FeedbackImport).where(FeedbackImport.sha256 == sha))
    if earlier is not None and earlier.status == "done":
        return ImportResult(path.name, earlier.layout, earlier.id, already_imported=True)
    import_id = earlier.id if earlier is not None else _start_import(catalogue, sha, path.name, chosen.name, raw)
    result = ImportResult(path.name, chosen.name, import_id)
    _read_rows(path, chosen, catalogue, result, today)
    with catalogue.session() as s, s.begin():
        row = s.get(FeedbackImport, import_id)
        assert row is not None
        row.rows, row.imported, row.duplicates = result.rows, result.imported, result.duplicates
        row.rejected, row.unknown_isrc, row.status = result.rejected_count, result.unknown_isrc, "done"
    return result


def _keep_raw(path: Path) -> tuple[str, Path]:
    """Copy the file under `raw_folder()` and hash it in the same read (a 1 GB export is read
    once for both); (sha256, the kept copy). A file kept before is left as it was."""
    folder = raw_folder()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "rb") as source, tempfile.NamedTemporaryFile(dir=folder, prefix=".incoming-", delete=False) as copy:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
            copy.write(chunk)
    sha = digest.hexdigest()
    kept = folder / f"{sha}{''.join(path.suffixes)[-12:]}"
    if kept.exists():
        Path(copy.name).unlink()
    else:
        Path(copy.name).replace(kept)
    return sha, kept


def _start_import(catalogue: Catalogue, sha: str, name: str, layout: str, raw: Path) -> int:
    with catalogue.session() as s, s.begin():
        row = FeedbackImport(sha256=sha, file_name=name, layout=layout, raw_path=str(raw), status="running")
        s.add(row)
        s.flush()
        return row.id


def _rows(path: Path, layout: Layout) -> Iterator[tuple[int, dict[str, str] | None, str]]:
    """(line number, row or None, problem or raw text) for each data row, read one at a time."""
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=layout.delimiter)
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        except StopIteration:
            return
        line = reader.line_num
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield line + 1, None, f"the file cannot be read past this line ({err}); is it truncated?"
                return
            start, line = line + 1, reader.line_num
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if len(fields) != len(header):
                yield start, None, f"has {len(fields)} fields where the header names {len(header)} (is the file truncated?)"
                continue
            yield start, dict(zip(header, fields)), layout.delimiter.join(fields)


def _read_rows(path: Path, layout: Layout, catalogue: Catalogue, result: ImportResult, today: dt.date) -> None:
    tracks = track_ids_by_isrc(catalogue)
    batch: list[tuple[int, CountedRow]] = []
    problems: list[tuple[int, str, str]] = []
    for line, row, text in _rows(path, layout):
        result.rows += 1
        if row is None:
            problems.append((line, text, ""))
            continue
        try:
            batch.append((line, layout.parse(row, today)))
        except RowProblem as problem:
            problems.append((line, str(problem), text))
        if len(batch) >= BATCH_ROWS or len(problems) >= BATCH_ROWS:
            _write(catalogue, layout, result, batch, problems, tracks)
            batch, problems = [], []
    _write(catalogue, layout, result, batch, problems, tracks)


def _write(catalogue, layout: Layout, result: ImportResult, batch, problems, tracks: dict[str, int]) -> None:
    with catalogue.session() as s, s.begin():
        keys = [counted.row_key for _, counted in batch]
        seen = set(s.scalars(select(ListenerEvent.row_key).where(ListenerEvent.row_key.in_(keys)))) if keys else set()
        rows = []
        for line, counted in batch:
            if counted.row_key in seen:
                result.duplicates += 1
                continue
            seen.add(counted.row_key)
            track_id = tracks.get(counted.isrc)
            result.unknown_isrc += track_id is None
            rows.append({"import_id": result.import_id, "line": line, "layout": layout.name, "track_id": track_id, **counted.__dict__})
        if rows:  # one executemany per batch (Core, not ORM objects: a 1 GB file is millions of rows)
            s.connection().execute(insert(LISTENER_EVENTS), rows)
            result.imported += len(rows)
        if problems:
            s.connection().execute(
                insert(REJECTIONS),
                [{"import_id": result.import_id, "line": line, "reason": reason, "raw": raw[:2000]} for line, reason, raw in problems],
            )
        for line, reason, _ in problems:
            result.rejected_count += 1
            if len(result.rejected) < SHOWN_REJECTIONS:
                result.rejected.append((line, reason))


def track_ids_by_isrc(catalogue: Catalogue) -> dict[str, int]:
    with catalogue.session() as s:
        return {isrc: track_id for track_id, isrc in s.execute(select(Track.id, Track.isrc).where(Track.isrc.is_not(None))) if isrc}


def rematch_unknown(catalogue: Catalogue) -> int:
    """Give events kept aside for an unknown ISRC their track, now the catalogue has it; how many."""
    tracks = track_ids_by_isrc(catalogue)
    matched = 0
    with catalogue.session() as s, s.begin():
        waiting = set(s.scalars(select(ListenerEvent.isrc).where(ListenerEvent.track_id.is_(None)).distinct()))
        for isrc in waiting & tracks.keys():
            matched += s.execute(  # type: ignore[attr-defined]  # an UPDATE's result has rowcount
                update(ListenerEvent).where(ListenerEvent.isrc == isrc, ListenerEvent.track_id.is_(None)).values(track_id=tracks[isrc])
            ).rowcount
    return matched


def unknown_isrcs(catalogue: Catalogue) -> dict[str, int]:
    """ISRCs with events kept aside, and how many rows each."""
    with catalogue.session() as s:
        rows = s.execute(select(ListenerEvent.isrc, func.count()).where(ListenerEvent.track_id.is_(None)).group_by(ListenerEvent.isrc))
        return {isrc: count for isrc, count in rows}


def rejections(catalogue: Catalogue, import_id: int) -> list[dict]:
    with catalogue.session() as s:
        rows = s.scalars(select(FeedbackRejection).where(FeedbackRejection.import_id == import_id).order_by(FeedbackRejection.line))
        return [{"line": r.line, "reason": r.reason, "raw": r.raw} for r in rows]
