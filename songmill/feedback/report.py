"""`songmill feedback report`: per-track measures, per-attribute posteriors, imports, the queue.

`feedback_report(catalogue)` gathers the figures as plain data; `report_html` lays them out as one
self-contained page (tables, and an SVG plot per attribute of each value's completion posterior
with its 90 % interval), which the Airflow plugin serves behind the login.
"""

from __future__ import annotations

import html

from sqlalchemy import select

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import FeedbackImport
from songmill.feedback.ingest import unknown_isrcs
from songmill.feedback.measures import ATTRIBUTES, DEFAULT_PRIOR_PLAYS, snapshot_of, track_measures
from songmill.feedback.review import review_queue


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def feedback_report(catalogue: Catalogue, *, prior_plays: float = DEFAULT_PRIOR_PLAYS) -> dict:
    measures = track_measures(catalogue)
    snap = snapshot_of(measures, prior_plays=prior_plays)
    tracks = [
        {
            "track_id": m.track_id,
            "release_id": m.release_id,
            "number": m.number,
            "title": m.title,
            "isrc": m.isrc,
            "streams": m.streams,
            "plays": m.plays,
            "completion_rate": _rate(m.completion_rate),
            "completion_streams": m.completion_trials,  # the streams whose rows say whether they finished (play logs; not every source does)
            "skip_rate": _rate(m.skip_rate),
            "save_rate": _rate(m.save_rate),
            "rating": m.rating_mean,
            "ratings": m.ratings,
            "verdict": m.verdict,
            "attributes": {a: m.attributes.get(a) for a in ATTRIBUTES if m.attributes.get(a) not in (None, "")},
        }
        for m in measures
    ]
    attributes = {}
    for attribute, values in snap.counts.items():
        rows: list[dict] = []
        for value, (completions, streams) in values.items():
            post = snap.posterior(attribute, value)
            low, high = post.interval(0.9)
            rows.append(
                {
                    "value": value,
                    "streams": streams,
                    "raw_rate": round(completions / streams, 4) if streams else None,
                    "posterior_mean": round(post.mean, 4),
                    "interval_90": [round(low, 4), round(high, 4)],
                }
            )
        attributes[attribute] = sorted(rows, key=lambda r: -r["posterior_mean"])
    with catalogue.session() as s:
        imports = [
            {
                "id": i.id,
                "file": i.file_name,
                "layout": i.layout,
                "rows": i.rows,
                "imported": i.imported,
                "duplicates": i.duplicates,
                "rejected": i.rejected,
                "unknown_isrc": i.unknown_isrc,
                "at": i.imported_at.isoformat(timespec="seconds"),
            }
            for i in s.scalars(select(FeedbackImport).order_by(FeedbackImport.id))
        ]
    return {
        "catalogue_completion_rate": round(snap.catalogue_mean, 4),
        "prior_plays": prior_plays,
        "snapshot_sha256": snap.sha256,
        "tracks": tracks,
        "attributes": attributes,
        "imports": imports,
        "unknown_isrcs": unknown_isrcs(catalogue),
        "review_queue": review_queue(catalogue),
    }


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plot(rows: list[dict], mean: float) -> str:
    """Horizontal bars: each value's posterior mean with its 90 % interval; the line is the mean."""
    width, row_h, left = 560, 22, 130
    height = row_h * len(rows) + 24

    def x(rate: float) -> float:
        return left + (width - left - 24) * rate

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, r in enumerate(rows):
        y = 6 + i * row_h
        low, high = r["interval_90"]
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="12">{html.escape(r["value"])}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{x(r["posterior_mean"]) - left:.1f}" height="12" fill="#7aa6d6"/>')
        parts.append(f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{y + 9}" y2="{y + 9}" stroke="#222" stroke-width="2"/>')
    parts.append(f'<line x1="{x(mean):.1f}" x2="{x(mean):.1f}" y1="0" y2="{height - 18}" stroke="#c33" stroke-dasharray="4 3"/>')
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{x(tick):.1f}" y="{height - 4}" text-anchor="middle" font-size="10">{int(tick * 100)} %</text>')
    parts.append("</svg>")
    return "".join(parts)


def report_html(report: dict) -> str:
    mean = report["catalogue_completion_rate"]
    sections = [
        "<h1>Listener feedback</h1>",
        f"<p>Catalogue completion rate {_pct(mean)}; each estimate below is shrunk toward it with the weight of "
        f"{report['prior_plays']:.0f} streams, so a value heard a few times stays near it. Snapshot {report['snapshot_sha256'][:12]}.</p>",
        "<h2>What made the tracks: completion by attribute</h2>",
        "<p>Bars: the posterior mean of each value's completion rate; black: its 90 % credible interval; red: the catalogue's rate.</p>",
    ]
    for attribute, rows in report["attributes"].items():
        sections.append(f"<h3>{html.escape(attribute)}</h3>")
        sections.append(_plot(rows, mean))
        sections.append(
            _table(
                ["value", "streams that report completion", "raw rate", "posterior mean", "90 % interval"],
                [
                    [r["value"], r["streams"], _pct(r["raw_rate"]), _pct(r["posterior_mean"]), f"{_pct(r['interval_90'][0])} – {_pct(r['interval_90'][1])}"]
                    for r in rows
                ],
            )
        )
    sections += [
        "<h2>Tracks</h2>",
        _table(
            ["release", "#", "title", "ISRC", "streams", "completion (of streams that report it)", "skip < 30 s", "save", "rating", "verdict"],
            [
                [
                    t["release_id"],
                    t["number"],
                    t["title"],
                    t["isrc"] or "",
                    t["streams"],
                    f"{_pct(t['completion_rate'])} of {t['completion_streams']}" if t["completion_streams"] else "—",
                    _pct(t["skip_rate"]),
                    _pct(t["save_rate"]),
                    t["rating"] or "—",
                    t["verdict"] or "",
                ]
                for t in report["tracks"]
            ],
        ),
    ]
    sections.append("<h2>Review queue</h2>")
    sections.append(
        _table(
            ["release", "#", "title", "predicted completion", "±", "status"],
            [[q["release_id"], q["number"], q["title"], _pct(q["predicted_appeal"]), _pct(q["uncertainty"]), q["status"]] for q in report["review_queue"]],
        )
    )
    sections.append("<h2>Imports</h2>")
    sections.append(
        _table(
            ["#", "file", "layout", "rows", "imported", "duplicates", "rejected", "unknown ISRC", "at"],
            [
                [i["id"], i["file"], i["layout"], i["rows"], i["imported"], i["duplicates"], i["rejected"], i["unknown_isrc"], i["at"]]
                for i in report["imports"]
            ],
        )
    )
    if report["unknown_isrcs"]:
        sections.append("<h2>Kept aside: ISRCs the catalogue does not know</h2>")
        sections.append(_table(["ISRC", "rows"], [[k, v] for k, v in sorted(report["unknown_isrcs"].items())]))
    style = "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#eee}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>songmill — listener feedback</title><style>{style}</style></head><body>{''.join(sections)}</body></html>"
