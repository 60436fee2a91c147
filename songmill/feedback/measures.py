"""What listeners did with each track, and what that says about each attribute that made it.

Per track (`track_measures`): plays, streams, the completion rate (plays to the end of the
streams), the skip-before-30-s rate (of all plays), the save rate (of streams), and people's
mean rating. Rates count only rows whose layout reports the outcome (a DistroKid row counts
streams but says nothing about how they ended).

Per attribute value (`snapshot`): a Beta posterior of the completion rate, its prior centred on
the catalogue's mean with the weight of `prior_plays` streams, so a value heard three times stays
near the mean while one heard three thousand times speaks for itself. Completion is the measure
the plan optimises ("what listeners keep"); the others are reported beside it.

`FeedbackSnapshot` is what a nightly plan draws from: plain counts, hashed, so a date and a
snapshot always give the same plan.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import case, func, select

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import ListenerEvent, Release, Track, TrackAttributes, Verdict

# The attributes of a track that feedback is measured by (track_attributes.attributes keys).
ATTRIBUTES = ("genre", "preset", "mood", "tempo_band", "mode", "identity", "style", "melody_model")
TEMPO_BAND_BPM = 8  # tempo bands are 8 BPM wide, aligned to multiples of 8: 96-103, 104-111, …
DEFAULT_PRIOR_PLAYS = 200.0


def tempo_band(bpm: float) -> str:
    low = int(bpm // TEMPO_BAND_BPM) * TEMPO_BAND_BPM
    return f"{low}-{low + TEMPO_BAND_BPM - 1}"


def band_range(band: str) -> tuple[int, int]:
    low, high = band.split("-")
    return int(low), int(high)


@dataclass(frozen=True)
class Beta:
    """A Beta(alpha, beta) posterior of a rate."""

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def sd(self) -> float:
        n = self.alpha + self.beta
        return math.sqrt(self.alpha * self.beta / (n * n * (n + 1)))

    def interval(self, level: float = 0.9) -> tuple[float, float]:
        """Equal-tailed credible interval (scipy's Beta quantiles)."""
        from scipy.stats import beta as beta_dist

        tail = (1 - level) / 2
        return float(beta_dist.ppf(tail, self.alpha, self.beta)), float(beta_dist.ppf(1 - tail, self.alpha, self.beta))

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.beta(self.alpha, self.beta))


def shrunk(successes: float, trials: float, prior_mean: float, prior_plays: float) -> Beta:
    """The posterior of a rate from `successes` of `trials`, its prior the catalogue mean weighted
    as `prior_plays` trials (so few trials stay near the mean)."""
    mean = min(max(prior_mean, 1e-3), 1 - 1e-3)
    return Beta(mean * prior_plays + successes, (1 - mean) * prior_plays + max(trials - successes, 0.0))


@dataclass
class TrackMeasures:
    track_id: int
    release_id: str
    number: int
    title: str
    isrc: str | None
    attributes: dict
    melody: dict
    plays: int = 0  # streams and skips, where the layout reports skips
    streams: int = 0  # all streams, every layout
    completions: int = 0
    completion_trials: int = 0  # streams from rows that report completions
    skips: int = 0
    skip_trials: int = 0
    saves: int = 0
    save_trials: int = 0
    ratings: int = 0
    rating_mean: float | None = None
    verdict: str | None = None  # the latest approve/reject

    @property
    def completion_rate(self) -> float | None:
        return self.completions / self.completion_trials if self.completion_trials else None

    @property
    def skip_rate(self) -> float | None:
        return self.skips / self.skip_trials if self.skip_trials else None

    @property
    def save_rate(self) -> float | None:
        return self.saves / self.save_trials if self.save_trials else None


def _nz(column):
    return func.coalesce(func.sum(column), 0)


def track_measures(catalogue: Catalogue) -> list[TrackMeasures]:
    """Every catalogue track that has attributes or feedback, with its measures. Rows kept aside
    for an ISRC the catalogue did not know are given their track first, where it has one now (a
    track rendered after its plays were imported): else they waited for the next import."""
    from songmill.feedback.ingest import rematch_unknown

    rematch_unknown(catalogue)
    e = ListenerEvent
    with catalogue.session() as s:
        counts = {
            row.track_id: row
            for row in s.execute(
                select(
                    e.track_id,
                    _nz(e.streams).label("streams"),
                    _nz(e.completions).label("completions"),
                    _nz(case((e.completions.is_not(None), e.streams), else_=0)).label("completion_trials"),
                    _nz(e.skips).label("skips"),
                    _nz(case((e.skips.is_not(None), e.streams + e.skips), else_=0)).label("skip_trials"),
                    _nz(e.saves).label("saves"),
                    _nz(case((e.saves.is_not(None), e.streams), else_=0)).label("save_trials"),
                )
                .where(e.track_id.is_not(None))
                .group_by(e.track_id)
            )
        }
        ratings = {
            row.track_id: row
            for row in s.execute(
                select(Verdict.track_id, func.count(Verdict.rating).label("n"), func.avg(Verdict.rating).label("mean"))
                .where(Verdict.rating.is_not(None))
                .group_by(Verdict.track_id)
            )
        }
        verdicts: dict[int, str | None] = {}
        for track_id, verdict in s.execute(select(Verdict.track_id, Verdict.verdict).where(Verdict.verdict.is_not(None)).order_by(Verdict.id)):
            verdicts[track_id] = verdict  # the latest wins
        rows = s.execute(
            select(Track, TrackAttributes).join(TrackAttributes, TrackAttributes.track_id == Track.id, isouter=True).join(Release).order_by(Track.id)
        )
        out = []
        for track, attrs in rows:
            if attrs is None and track.id not in counts and track.id not in ratings:
                continue
            m = TrackMeasures(
                track.id, track.release_id, track.number, track.title, track.isrc, attrs.attributes if attrs else {}, (attrs.melody or {}) if attrs else {}
            )
            if (c := counts.get(track.id)) is not None:
                m.streams, m.completions, m.completion_trials = int(c.streams), int(c.completions), int(c.completion_trials)
                m.skips, m.skip_trials, m.saves, m.save_trials = int(c.skips), int(c.skip_trials), int(c.saves), int(c.save_trials)
                m.plays = m.skip_trials
            if (r := ratings.get(track.id)) is not None:
                m.ratings, m.rating_mean = int(r.n), round(float(r.mean), 3)
            m.verdict = verdicts.get(track.id)
            out.append(m)
        return out


@dataclass
class FeedbackSnapshot:
    """Completion counts per attribute value, the catalogue mean, and the prior's weight."""

    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # attribute → value → (completions, streams)
    catalogue_mean: float = 0.5
    prior_plays: float = DEFAULT_PRIOR_PLAYS

    @property
    def sha256(self) -> str:
        canonical = json.dumps({"counts": self.counts, "mean": round(self.catalogue_mean, 9), "prior": self.prior_plays}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def empty(self) -> bool:
        return not any(self.counts.values())

    def posterior(self, attribute: str, value: str) -> Beta:
        successes, trials = self.counts.get(attribute, {}).get(value, (0, 0))
        return shrunk(successes, trials, self.catalogue_mean, self.prior_plays)

    def trials(self, attribute: str, value: str) -> int:
        return self.counts.get(attribute, {}).get(value, (0, 0))[1]

    def predicted_appeal(self, attributes: dict) -> tuple[float, float]:
        """A track's predicted completion rate from its attribute values, and how unsure that is:
        the mean of the values' posterior means, and the root mean of their variances."""
        posts = [self.posterior(a, str(attributes[a])) for a in ATTRIBUTES if attributes.get(a) not in (None, "")]
        if not posts:
            prior = shrunk(0, 0, self.catalogue_mean, self.prior_plays)
            return prior.mean, prior.sd
        return float(np.mean([p.mean for p in posts])), float(math.sqrt(np.mean([p.sd**2 for p in posts])))

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "catalogue_mean": self.catalogue_mean, "prior_plays": self.prior_plays, "counts": self.counts}

    @classmethod
    def from_dict(cls, data: dict) -> "FeedbackSnapshot":
        counts = {a: {v: (int(c[0]), int(c[1])) for v, c in values.items()} for a, values in data["counts"].items()}
        return cls(counts, data["catalogue_mean"], data["prior_plays"])


def snapshot(catalogue: Catalogue, *, prior_plays: float = DEFAULT_PRIOR_PLAYS) -> FeedbackSnapshot:
    """Aggregate every track's completions into counts per attribute value."""
    return snapshot_of(track_measures(catalogue), prior_plays=prior_plays)


def snapshot_of(measures: list[TrackMeasures], *, prior_plays: float = DEFAULT_PRIOR_PLAYS) -> FeedbackSnapshot:
    counts: dict[str, dict[str, list[int]]] = {a: {} for a in ATTRIBUTES}
    total_s = total_n = 0
    for m in measures:
        if not m.completion_trials:
            continue
        total_s, total_n = total_s + m.completions, total_n + m.completion_trials
        for attribute in ATTRIBUTES:
            value = m.attributes.get(attribute)
            if value in (None, ""):
                continue
            pair = counts[attribute].setdefault(str(value), [0, 0])
            pair[0] += m.completions
            pair[1] += m.completion_trials
    mean = total_s / total_n if total_n else 0.5
    return FeedbackSnapshot({a: {v: (c[0], c[1]) for v, c in sorted(values.items())} for a, values in counts.items() if values}, round(mean, 9), prior_plays)


# ------------------------------------------------------------------ preference over melodies

PREFERENCE_FEATURES = ("step_share", "leap_share", "repeat_share", "mean_interval")


@dataclass
class PreferenceModel:
    """Completion rate as a linear function of a melody's features, fitted by ridge regression with
    each track weighted by its streams: the preference score a refined melody model must raise."""

    intercept: float
    weights: dict[str, float]
    tracks: int

    def score(self, features: dict) -> float:
        return self.intercept + sum(w * float(features.get(name, 0.0)) for name, w in self.weights.items())

    def to_dict(self) -> dict:
        return {"intercept": round(self.intercept, 6), "weights": {k: round(v, 6) for k, v in self.weights.items()}, "tracks": self.tracks}


def fit_preference(measures: list[TrackMeasures], *, ridge: float = 1e-2) -> PreferenceModel:
    rows = [m for m in measures if m.completion_trials and m.melody]
    if len(rows) < 3:
        return PreferenceModel(0.0, {name: 0.0 for name in PREFERENCE_FEATURES}, len(rows))
    x = np.array([[float(m.melody.get(f, 0.0)) for f in PREFERENCE_FEATURES] for m in rows])
    y = np.array([m.completions / m.completion_trials for m in rows])
    w = np.sqrt(np.array([m.completion_trials for m in rows], dtype=float))
    mu = x.mean(axis=0)
    xc = (x - mu) * w[:, None]
    yc = (y - np.average(y, weights=w**2)) * w
    coef = np.linalg.solve(xc.T @ xc + ridge * np.sum(w**2) * np.eye(len(PREFERENCE_FEATURES)), xc.T @ yc)
    intercept = float(np.average(y, weights=w**2) - mu @ coef)
    return PreferenceModel(intercept, dict(zip(PREFERENCE_FEATURES, map(float, coef))), len(rows))
