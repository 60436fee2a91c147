"""The analytics export layouts songmill reads, and how one row of each becomes listener counts.

Two layouts, each as the service writes it:

* ``distrokid`` — DistroKid's "bank details" export (tab-separated; one row per track, store,
  country and sale month): ``Reporting Date, Sale Month, Store, Artist, Title, ISRC, UPC,
  Quantity, Team Percentage, Song/Album, Country of Sale, Songwriter Royalties Withheld,
  Earnings (USD)``. It counts streams (``Quantity``) and nothing about how they ended.
* ``play-log`` — one row per play, with the field names of Spotify's extended streaming history
  (``ts``, ``ms_played``, ``conn_country``, ``reason_start``, ``reason_end``, ``skipped``), keyed by
  ``isrc`` and a pseudonymous ``listener`` as a distributor's per-play log is, and ``saved``
  (the listener saved the track during the play). It tells how each play ended: a play of 30 s or
  more is a stream (Spotify's rule), one shorter is a skip before 30 s, ``reason_end=trackdone``
  is a completion.

A layout is recognised from its header; `detect_layout` names the known ones when none fits.
`Layout.parse` turns a row (a dict of the header's columns) into a `CountedRow` or raises
`RowProblem` with the reason the row is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from songmill.core import ids
from songmill.core.errors import SongmillError

STREAM_MIN_MS = 30_000  # a play shorter than this is a skip, not a stream (Spotify's rule)


class RowProblem(ValueError):
    """A row that cannot be counted; the message is the reason the import report shows."""


@dataclass(frozen=True)
class CountedRow:
    """What one export row says about one ISRC on one day (or the first day of a month)."""

    row_key: str  # identifies the row across files: the same row imported twice counts once
    isrc: str
    day: dt.date
    territory: str
    store: str
    streams: int
    listeners: int | None = None
    skips: int | None = None  # plays stopped before 30 s
    completions: int | None = None
    saves: int | None = None


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    delimiter: str
    columns: tuple[str, ...]  # the header's columns, all required
    parse: Callable[[dict[str, str], dt.date], CountedRow]


def _key(layout: str, *parts: str) -> str:
    return hashlib.sha256("\x1f".join((layout, *parts)).encode()).hexdigest()


def _isrc(value: str) -> str:
    try:
        return ids.validate_isrc(value.strip())
    except ValueError:
        raise RowProblem(f"ISRC {value.strip()!r} is not an ISRC (CC-XXX-YY-NNNNN)") from None


def _count(value: str, column: str) -> int:
    text = value.strip().replace(",", "")
    try:
        number = float(text)
    except ValueError:
        raise RowProblem(f"{column} {value.strip()!r} is not a number") from None
    if number < 0:
        raise RowProblem(f"{column} is negative ({text}); counts cannot be below zero")
    if number != int(number):
        raise RowProblem(f"{column} {text} is not a whole number")
    return int(number)


def _not_future(day: dt.date, today: dt.date, column: str, shown: str) -> dt.date:
    if day > today:
        raise RowProblem(f"{column} {shown} is after today ({today.isoformat()}); a report cannot count plays that have not happened")
    return day


def _territory(value: str) -> str:
    code = value.strip().upper()
    if code and not (len(code) == 2 and code.isalpha()):
        raise RowProblem(f"country {value.strip()!r} is not a two-letter ISO 3166 code")
    return code


# ---------------------------------------------------------------------------------- distrokid

DISTROKID_COLUMNS = (
    "Reporting Date",
    "Sale Month",
    "Store",
    "Artist",
    "Title",
    "ISRC",
    "UPC",
    "Quantity",
    "Team Percentage",
    "Song/Album",
    "Country of Sale",
    "Songwriter Royalties Withheld",
    "Earnings (USD)",
)


def _parse_distrokid(row: dict[str, str], today: dt.date) -> CountedRow:
    if row["Song/Album"].strip().lower() != "song":
        raise RowProblem(f"Song/Album is {row['Song/Album'].strip()!r}: only a song's rows count a track's listening")
    month = row["Sale Month"].strip()
    try:
        day = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise RowProblem(f"Sale Month {month!r} is not a month (YYYY-MM)") from None
    _not_future(day, today, "Sale Month", month)
    isrc = _isrc(row["ISRC"])
    store, territory = row["Store"].strip(), _territory(row["Country of Sale"])
    streams = _count(row["Quantity"], "Quantity")
    key = _key("distrokid", row["Reporting Date"].strip(), month, store, isrc, territory)
    return CountedRow(key, isrc, day, territory, store, streams)


# ----------------------------------------------------------------------------------- play-log

PLAY_LOG_COLUMNS = ("ts", "isrc", "listener", "conn_country", "ms_played", "reason_start", "reason_end", "skipped", "saved")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


def _flag(value: str, column: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowProblem(f"{column} {value.strip()!r} is not true or false")


def _parse_play_log(row: dict[str, str], today: dt.date) -> CountedRow:
    stamp = row["ts"].strip()
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise RowProblem(f"ts {stamp!r} is not an ISO 8601 time (e.g. 2026-11-30T21:04:11Z)") from None
    day = _not_future(when.date(), today, "ts", stamp)
    isrc = _isrc(row["isrc"])
    listener = row["listener"].strip()
    if not listener:
        raise RowProblem("listener is empty; every play names its (pseudonymous) listener")
    played_ms = _count(row["ms_played"], "ms_played")
    saved = _flag(row["saved"], "saved")
    _flag(row["skipped"], "skipped")  # checked; the 30-s rule decides what counts as a skip
    is_stream = played_ms >= STREAM_MIN_MS
    done = row["reason_end"].strip().lower() == "trackdone"
    return CountedRow(
        _key("play-log", stamp, listener, isrc),
        isrc,
        day,
        _territory(row["conn_country"]),
        "",
        streams=int(is_stream),
        skips=int(not is_stream),
        completions=int(done and is_stream),
        saves=int(saved),
    )


LAYOUTS: dict[str, Layout] = {
    "distrokid": Layout("distrokid", "DistroKid bank details (TSV)", "\t", DISTROKID_COLUMNS, _parse_distrokid),
    "play-log": Layout("play-log", "per-play log, Spotify streaming-history fields (CSV)", ",", PLAY_LOG_COLUMNS, _parse_play_log),
}


def known_layouts() -> str:
    return ", ".join(f"{name} ({layout.description})" for name, layout in LAYOUTS.items())


def layout_named(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise SongmillError(f"there is no feedback layout {name!r}; the layouts known are {known_layouts()}") from None


def missing_columns(layout: Layout, header_line: str) -> list[str]:
    """The layout's columns a file's header line lacks (order free, extra columns allowed)."""
    columns = {c.strip().lstrip("\ufeff") for c in header_line.rstrip("\r\n").split(layout.delimiter)}
    return [c for c in layout.columns if c not in columns]


def detect_layout(header_line: str, file_name: str) -> Layout:
    """The layout whose columns the header has."""
    for layout in LAYOUTS.values():
        if not missing_columns(layout, header_line):
            return layout
    shown = header_line.strip()[:80] or "(empty)"
    raise SongmillError(f"{file_name} is in no layout songmill knows (its header starts {shown!r}); the layouts known are {known_layouts()}")
