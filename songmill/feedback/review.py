"""People's verdicts, and the review queue of tracks whose appeal the line is least sure of.

    record_verdict(catalogue, "QZSGM2600001", user="ana", rating=4, verdict="approve")
    enqueue_least_certain(catalogue, "nightly-2026-12-01", k=2)        # after a night's render
    withheld(catalogue, "nightly-2026-12-01")                           # {2: "rejected by ana: …"}

Active learning: of a batch's tracks, the K whose predicted completion rate (from the posteriors
of their attribute values, `FeedbackSnapshot.predicted_appeal`) has the widest posterior go to the
queue, where a person listens and rates, approves or rejects. A rejected track is withheld from
delivery like a track that failed the gate; every verdict joins the same feedback store.
"""

from __future__ import annotations

from sqlalchemy import select

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import ReviewItem, Track, TrackAttributes, Verdict
from songmill.core import ids
from songmill.core.errors import SongmillError
from songmill.feedback.measures import FeedbackSnapshot, snapshot

VERDICTS = ("approve", "reject")


def find_track(catalogue: Catalogue, isrc_or_id: str | int) -> Track:
    """A catalogue track by ISRC (any hyphenation) or numeric id."""
    with catalogue.session() as s:
        if isinstance(isrc_or_id, int) or str(isrc_or_id).isdigit():
            track = s.get(Track, int(isrc_or_id))
        else:
            try:
                isrc = ids.validate_isrc(str(isrc_or_id).strip())
            except ValueError:
                raise SongmillError(f"'{isrc_or_id}' is not an ISRC (CC-XXX-YY-NNNNN: country, registrant, year, designation)") from None
            track = s.scalar(select(Track).where(Track.isrc == isrc))
        if track is None:
            raise SongmillError(f"no track {isrc_or_id} in the catalogue; `songmill feedback report` lists the tracks it knows")
        return track


def record_verdict(
    catalogue: Catalogue, isrc_or_id: str | int, *, user: str, rating: int | None = None, verdict: str | None = None, comment: str | None = None
) -> dict:
    """Store a person's rating (1–5) and/or verdict; a queued track's review is settled by it.

    Raises
    ------
    SongmillError : no rating and no verdict, a rating outside 1–5, an unknown verdict, an
        unknown track, or no user.
    """
    if rating is None and verdict is None:
        raise SongmillError("a review needs a rating (1–5), a verdict (approve or reject), or both")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
        raise SongmillError(f"rating {rating!r} is out of range; give a whole number from 1 to 5")
    if verdict is not None and verdict not in VERDICTS:
        raise SongmillError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    if not (user or "").strip():
        raise SongmillError("a review must name who gave it")
    track = find_track(catalogue, isrc_or_id)
    with catalogue.session() as s, s.begin():
        row = Verdict(track_id=track.id, user=user.strip(), rating=rating, verdict=verdict, comment=(comment or None))
        s.add(row)
        item = s.scalar(select(ReviewItem).where(ReviewItem.track_id == track.id))
        if item is not None and verdict is not None:
            item.status = "approved" if verdict == "approve" else "rejected"
        s.flush()
        return {"id": row.id, "track_id": track.id, "isrc": track.isrc, "title": track.title, "user": row.user, "rating": rating, "verdict": verdict}


def enqueue_least_certain(catalogue: Catalogue, release_id: str, k: int, feedback: FeedbackSnapshot | None = None) -> list[dict]:
    """Queue the `k` tracks of a release whose predicted appeal is least certain; what was queued."""
    if k <= 0:
        return []
    feedback = feedback or snapshot(catalogue)
    with catalogue.session() as s:
        rows = s.execute(select(Track, TrackAttributes).join(TrackAttributes, TrackAttributes.track_id == Track.id).where(Track.release_id == release_id)).all()
    scored = []
    for track, attrs in rows:
        if track.status in ("failed", "quarantined"):
            continue  # the gate already withheld it
        appeal, sd = feedback.predicted_appeal(attrs.attributes)
        scored.append((sd, appeal, track))
    scored.sort(key=lambda row: (-row[0], row[2].number))
    queued = []
    with catalogue.session() as s, s.begin():
        for sd, appeal, track in scored[:k]:
            if s.scalar(select(ReviewItem).where(ReviewItem.track_id == track.id)) is not None:
                continue
            reason = f"predicted completion {appeal:.3f} ± {sd:.3f}: the least certain of the batch"
            s.add(ReviewItem(track_id=track.id, release_id=release_id, predicted_appeal=round(appeal, 5), uncertainty=round(sd, 5), reason=reason))
            queued.append(
                {
                    "track_id": track.id,
                    "number": track.number,
                    "title": track.title,
                    "predicted_appeal": round(appeal, 4),
                    "uncertainty": round(sd, 4),
                    "reason": reason,
                }
            )
    return queued


def review_queue(catalogue: Catalogue, *, status: str | None = None) -> list[dict]:
    with catalogue.session() as s:
        query = select(ReviewItem, Track).join(Track, Track.id == ReviewItem.track_id).order_by(ReviewItem.created_at.desc(), Track.number)
        if status:
            query = query.where(ReviewItem.status == status)
        return [
            {
                "id": item.id,
                "track_id": track.id,
                "release_id": item.release_id,
                "number": track.number,
                "title": track.title,
                "isrc": track.isrc,
                "predicted_appeal": item.predicted_appeal,
                "uncertainty": item.uncertainty,
                "reason": item.reason,
                "status": item.status,
            }
            for item, track in s.execute(query)
        ]


def withheld(catalogue: Catalogue, release_id: str) -> dict[int, str]:
    """{track number: why} for a release's tracks whose latest verdict is reject."""
    return catalogue.rejected_in_review(release_id)
