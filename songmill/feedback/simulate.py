"""A synthetic listener population with hidden tastes, to show the loop learns them.

    curve = simulate_nights(nights=30)            # the planning half: no audio, seconds
    figures = simulate_refinement()              # one refinement cycle of the melody model

The population prefers (and the line is never told): tempos of 96–112 BPM, hopeful or energetic
moods, the voice identity `cleo`, and stepwise melodies. Each simulated night:

1. the nightly plan is drawn from the feedback so far (`engine.planning.plan_night`, the same
   code the nightly DAG runs), for `tracks` tracks;
2. its tracks are entered in a catalogue (a temporary SQLite one) with their attributes and an
   ISRC, as delivery would leave them;
3. the population plays each track: every play completes with a probability that rises with
   each preferred attribute; one that does not complete is a skip before 30 s or a partial play;
   some plays save the track. The plays are written as a `play-log` export and imported by
   `ingest.import_file` — the same path a real export takes.

The figure of the planning half is the share of the night's planned choices (tempo, mood,
identity) that the population prefers, night by night, against the share the catalogue's
weights give without feedback. The refinement half composes melodies with the model in use,
lets the population play them (completion rising with the melody's step share), fits the
preference model, refines the melody model and reports what moved and the gate's verdict.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from songmill.catalogue import Catalogue
from songmill.core import ids
from songmill.core.seeds import derive_seed
from songmill.core.spec import ReleaseSpec
from songmill.feedback.attributes import track_attributes
from songmill.feedback.ingest import import_file
from songmill.feedback.layouts import PLAY_LOG_COLUMNS, STREAM_MIN_MS
from songmill.feedback.measures import snapshot, tempo_band

PREFERRED_MOODS = ("hopeful", "energetic")
PREFERRED_TEMPO = (96, 112)
PREFERRED_IDENTITY = "cleo"
NEUTRAL_STEP_SHARE = 0.45  # a melody's step share the population neither likes nor minds


@dataclass(frozen=True)
class Population:
    """Hidden tastes, as effects on the log-odds that a play completes."""

    base_logit: float = -0.4
    tempo_effect: float = 0.9
    mood_effect: float = 0.7
    identity_effect: float = 0.6
    step_effect: float = 6.0  # per unit of step share above NEUTRAL_STEP_SHARE
    track_noise: float = 0.15  # each track's own appeal, unrelated to its attributes
    plays_per_track: int = 300

    def completion_probability(self, attributes: dict, melody: dict | None, rng: np.random.Generator) -> float:
        logit = self.base_logit + rng.normal(0.0, self.track_noise)
        logit += self.tempo_effect * (PREFERRED_TEMPO[0] <= attributes["tempo_bpm"] <= PREFERRED_TEMPO[1])
        logit += self.mood_effect * (attributes["mood"] in PREFERRED_MOODS)
        logit += self.identity_effect * (attributes["identity"] == PREFERRED_IDENTITY)
        logit += self.step_effect * ((melody or {}).get("step_share", NEUTRAL_STEP_SHARE) - NEUTRAL_STEP_SHARE)
        return 1.0 / (1.0 + math.exp(-logit))

    def preferred_share(self, tracks: list[dict]) -> float:
        """Share of (tempo, mood, identity) choices in a night's tracks that the population prefers."""
        hits = [
            [PREFERRED_TEMPO[0] <= t["tempo"] <= PREFERRED_TEMPO[1], t["mood"] in PREFERRED_MOODS, (t.get("voice") or {}).get("identity") == PREFERRED_IDENTITY]
            for t in tracks
        ]
        return float(np.mean(hits)) if hits else 0.0


def plays(population: Population, probability: float, rng: np.random.Generator, *, isrc: str, day: dt.date, duration_s: float = 180.0) -> list[dict]:
    """One track's plays on one day, as play-log rows."""
    rows = []
    for listener in range(population.plays_per_track):
        done = rng.random() < probability
        # a play that neither completes nor stops before 30 s: only a track longer than ~33 s has room for one
        skipped = not done and (rng.random() < 0.6 or duration_s * 900 <= STREAM_MIN_MS)
        played_ms = int(duration_s * 1000) if done else int(rng.uniform(3_000, 29_000)) if skipped else int(rng.uniform(30_000, duration_s * 1000 * 0.9))
        stamp = dt.datetime.combine(day, dt.time(18, 0), dt.UTC) + dt.timedelta(seconds=int(rng.integers(0, 6 * 3600)))
        rows.append(
            {
                "ts": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "isrc": isrc,
                "listener": f"sim-{listener:05d}",
                "conn_country": "GB",
                "ms_played": played_ms,
                "reason_start": "clickrow",
                "reason_end": "trackdone" if done else "fwdbtn",
                "skipped": str(skipped).lower(),
                "saved": str(bool(done and rng.random() < 0.2)).lower(),
            }
        )
    return rows


def write_play_log(rows: list[dict], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PLAY_LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass
class SimCatalogue:
    """A catalogue of simulated deliveries: releases and tracks with ISRCs and attributes."""

    catalogue: Catalogue
    next_designation: int = 1

    def add_track(self, release_id: str, number: int, title: str, attributes: dict, melody: dict | None, year: int) -> tuple[int, str]:
        from songmill.catalogue.schema import Release

        with self.catalogue.session() as s, s.begin():
            if s.get(Release, release_id) is None:  # a release row as delivery leaves one (no config file behind it)
                fields = {"title": release_id, "artist": "Simulated", "label": "Simulated", "type": "single", "config_path": "", "config_sha256": ""}
                s.add(Release(id=release_id, release_date=dt.date(year, 1, 1), genre=attributes["genre"], **fields))
        isrc = ids.make_isrc("QZ", "SIM", year % 100, self.next_designation)
        self.next_designation += 1
        track_id = self.catalogue.upsert_track(release_id, number, title=title, seed=0, isrc=isrc)
        self.catalogue.set_track_status(track_id, "delivered")
        self.catalogue.set_track_attributes(track_id, attributes, melody)
        return track_id, isrc


@dataclass
class NightFigures:
    night: int
    date: str
    preferred_share: float
    completion_rate: float
    snapshot_sha256: str
    choices: list[dict] = field(default_factory=list)


def simulate_nights(
    nights: int = 30,
    *,
    tracks: int = 12,
    start: dt.date = dt.date(2026, 1, 1),
    population: Population = Population(),
    catalogue: Catalogue | None = None,
    plan=None,
) -> dict:
    """Run the planning half for `nights` nights; the curve of the preferred share."""
    from songmill.engine.planning import load_catalogue_plan, nightly_release, plan_night

    plan = plan or load_catalogue_plan()
    plan = plan.model_copy(update={"tracks_per_night": tracks, "feedback": plan.feedback.model_copy(update={"enabled": True})})
    if len(plan.themes) < tracks:  # a night draws its themes without repeats
        plan = plan.model_copy(
            update={"themes": [t.model_copy(update={"title": f"{t.title} {i}"}) for i in range(math.ceil(tracks / len(plan.themes))) for t in plan.themes]}
        )
    rng = np.random.default_rng(derive_seed("songmill-simulation", start.isoformat()))
    with tempfile.TemporaryDirectory(prefix="songmill-sim-") as folder:
        catalogue = catalogue or Catalogue.open(f"sqlite:///{Path(folder) / 'simulation.db'}")
        sim = SimCatalogue(catalogue)
        prior = float(np.mean([population.preferred_share(nightly_release(plan, start + dt.timedelta(days=400 + n))["tracks"]) for n in range(40)]))
        curve: list[NightFigures] = []
        for night in range(nights):
            date = start + dt.timedelta(days=night)
            feedback = snapshot(catalogue, prior_plays=plan.feedback.prior_plays)
            config, choices = plan_night(plan, date, feedback)
            rows, completed = [], []
            spec = ReleaseSpec.model_validate(config)  # the planned release, read as a render would
            for number, track in enumerate(config["tracks"], start=1):
                attributes = track_attributes(spec, number, vocals=None, models={})
                _, isrc = sim.add_track(config["release"]["id"], number, track["title"], attributes, None, date.year)
                probability = population.completion_probability(attributes, None, rng)
                rows += plays(population, probability, rng, isrc=isrc, day=date)
                completed.append(probability)
            import_file(write_play_log(rows, Path(folder) / f"plays-{date.isoformat()}.csv"), catalogue, today=date)
            curve.append(
                NightFigures(
                    night + 1,
                    date.isoformat(),
                    round(population.preferred_share(config["tracks"]), 4),
                    round(float(np.mean(completed)), 4),
                    feedback.sha256,
                    choices,
                )
            )
    shares = [n.preferred_share for n in curve]
    window = max(1, min(5, nights // 3))
    return {
        "nights": nights,
        "tracks_per_night": tracks,
        "prior_share": round(prior, 4),
        "first_nights_share": round(float(np.mean(shares[:window])), 4),
        "last_nights_share": round(float(np.mean(shares[-window:])), 4),
        "window": window,
        "curve": [{"night": n.night, "date": n.date, "preferred_share": n.preferred_share, "expected_completion": n.completion_rate} for n in curve],
        "choices_last_night": curve[-1].choices if curve else [],
        "population": population.__dict__ | {"preferred_moods": PREFERRED_MOODS, "preferred_tempo": PREFERRED_TEMPO, "preferred_identity": PREFERRED_IDENTITY},
    }


def simulate_refinement(
    *, melodies: int = 24, corpus_files: int = 120, population: Population = Population(), method: str = "full", out_dir: Path | None = None
) -> dict:
    """One refinement cycle from simulated listening: does the preferred melodic feature move?"""
    from models.composition.melody_model import load_melody_model
    from models.registry import ModelRegistry
    from models.training.refine_melody import FineTune, eval_song, sung_melodies
    from songmill.core.melodic import melodic_features
    from songmill.feedback.evaluation import refine_melody
    from songmill.feedback.measures import fit_preference, track_measures
    from songmill.feedback.refinement import MELODY_MODEL

    rng = np.random.default_rng(derive_seed("songmill-simulation", "refinement"))
    registry = ModelRegistry.load()
    base_path = registry.resolve(MELODY_MODEL, commercial=True)
    model = load_melody_model(base_path)
    song = eval_song()
    with tempfile.TemporaryDirectory(prefix="songmill-sim-") as folder:
        catalogue = Catalogue.open(f"sqlite:///{Path(folder) / 'simulation.db'}")
        sim = SimCatalogue(catalogue)
        scores, rows = {}, []
        day = dt.date(2026, 1, 1)
        for index, score in enumerate(sung_melodies(model, song, melodies, first_seed=0)):  # not the evaluation's seeds
            melody = melodic_features(score)
            attributes = {
                "genre": "pop",
                "preset": "pop",
                "mood": "nostalgic",
                "tempo_band": tempo_band(104),
                "tempo_bpm": 104,
                "mode": "major",
                "identity": "ben",
                "style": "",
            }
            track_id, isrc = sim.add_track("sim-refinement", index + 1, f"Melody {index + 1}", attributes, melody, day.year)
            scores[track_id] = score
            rows += plays(population, population.completion_probability(attributes, melody, rng), rng, isrc=isrc, day=day)
        import_file(write_play_log(rows, Path(folder) / "plays.csv"), catalogue, today=day)
        measures = track_measures(catalogue)
        preference = fit_preference(measures)
        mean = sum(m.completions for m in measures) / max(sum(m.completion_trials for m in measures), 1)
        kept = [(scores[m.track_id], (m.completion_rate or 0.0) / mean) for m in measures if (m.completion_rate or 0.0) >= mean]
        out = Path(out_dir or folder) / "candidate.safetensors"
        result = refine_melody(base_path, kept, preference, corpus_files=corpus_files, settings=FineTune(method=method), out=out)
        catalogue.close()
    evaluation = result["evaluation"]
    return {
        "melodies_played": melodies,
        "kept": len(kept),
        "preference_model": preference.to_dict(),
        "step_share": {"in_use": evaluation["in_use"]["step_share"], "refined": evaluation["candidate"]["step_share"]},
        "evaluation": evaluation,
        "training": result["training"],
        "training_data": result["training_data"],
    }
