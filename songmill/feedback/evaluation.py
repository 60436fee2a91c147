"""The offline evaluation that decides whether a refined melody model ships.

    evaluation = evaluate_melody_model(model, eval_song(), heldout, preference)
    verdict, reasons = gate(candidate_evaluation, in_use_evaluation)

Figures, against the version in use:
* held-out corpus NLL (nats per note, lower is better);
* in-scale rate and strong-beat chord-tone rate of the sung melody, over 20 seeds of one fixed
  song (the same song and seeds for both versions);
* diversity: 1 − the mean overlap of 5-note interval patterns between seeds; the duplicate rate:
  the share of seed pairs above the gate's `max_melody_overlap`;
* the preference score: the feedback-fitted `PreferenceModel` over the 20 melodies' features.

A candidate is promoted only if it wins on preference without regressing any gate figure beyond
its tolerance (`GATE_TOLERANCES`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from models.composition.melody_model import MelodyGRU, load_melody_model, save_melody_model
from models.training.refine_melody import (
    EVAL_SEEDS,
    EvalSong,
    FineTune,
    corpus_tunes,
    eval_song,
    fine_tune,
    heldout_nll,
    snapshot_hash,
    split_corpus,
    sung_melodies,
    training_set,
)
from songmill.core.melodic import melodic_features
from songmill.core.score import Score
from songmill.core.store import file_sha256

# Tolerances: how much worse than the version in use a candidate may be on each gate figure.
GATE_TOLERANCES = {
    "heldout_nll": 0.05,  # nats per note, higher is worse
    "in_scale": 0.01,  # rate, lower is worse
    "chord_tone": 0.02,
    "diversity": 0.05,
    "duplicate_rate": 0.05,  # higher is worse
}
HIGHER_IS_WORSE = {"heldout_nll", "duplicate_rate"}
MIN_PREFERENCE_GAIN = 1e-4
# A model in use changes every later render: it is promoted on what listeners did with at least
# this many tracks (the preference model weighs four melody features; three tracks fit any line)
MIN_FEEDBACK_TRACKS = 10


def enough_evidence(tracks: int, verdict: str, reasons: list[str]) -> tuple[str, list[str]]:
    """The verdict, refused when it rests on fewer than MIN_FEEDBACK_TRACKS tracks' feedback."""
    if tracks >= MIN_FEEDBACK_TRACKS:
        return verdict, reasons
    whose = "1 track's" if tracks == 1 else f"{tracks} tracks'"
    return "refuse", [
        *reasons,
        f"learned from {whose} feedback; promoting needs at least {MIN_FEEDBACK_TRACKS} "
        "(the candidate is kept as a version: `songmill models promote NAME VERSION --force` puts it in use by hand)",
    ]


def evaluate_melody_model(model: MelodyGRU, song: EvalSong, heldout: list, preference, seeds: int = EVAL_SEEDS) -> dict:
    from qc.songwriting import in_scale_ratio, interval_ngram_overlap, strong_beat_chord_tone_ratio
    from qc.suites import load_qc_settings

    scores = sung_melodies(model, song, seeds)
    limit = load_qc_settings().duplicates.max_melody_overlap
    overlaps = [interval_ngram_overlap(a, b, n=5) for i, a in enumerate(scores) for b in scores[i + 1 :]]
    features = [melodic_features(s) for s in scores]
    return {
        "heldout_nll": heldout_nll(model, heldout),
        "in_scale": round(float(np.mean([in_scale_ratio(s) for s in scores])), 4),
        "chord_tone": round(float(np.mean([strong_beat_chord_tone_ratio(s) for s in scores])), 4),
        "diversity": round(1.0 - float(np.mean(overlaps)), 4),
        "duplicate_rate": round(float(np.mean([o > limit for o in overlaps])), 4),
        "preference": round(float(np.mean([preference.score(f) for f in features])), 5),
        "step_share": round(float(np.mean([f["step_share"] for f in features])), 4),
        "leap_share": round(float(np.mean([f["leap_share"] for f in features])), 4),
        "seeds": seeds,
    }


def gate(candidate: dict, current: dict) -> tuple[str, list[str]]:
    """("promote" | "refuse", reasons): wins on preference, regresses no gate figure."""
    reasons = []
    if candidate["preference"] <= current["preference"] + MIN_PREFERENCE_GAIN:
        reasons.append(f"preference {candidate['preference']:.5f} does not beat the version in use ({current['preference']:.5f})")
    for name, tolerance in GATE_TOLERANCES.items():
        worse = candidate[name] - current[name] if name in HIGHER_IS_WORSE else current[name] - candidate[name]
        if worse > tolerance:
            reasons.append(f"{name} regresses from {current[name]} to {candidate[name]} (tolerance {tolerance})")
    return ("refuse" if reasons else "promote"), reasons


def refine_melody(
    base_path: Path,
    kept: list[tuple[Score, float]],
    preference,
    *,
    corpus_files: int = 40,
    settings: FineTune = FineTune(),
    out: Path,
    candidate: MelodyGRU | None = None,
) -> dict:
    """Fine-tune the model at `base_path` on `kept` and the corpus, evaluate both, write the
    candidate's weights to `out`; the lineage (without the version name) and the verdict.
    `candidate` skips training and evaluates the given model (tests of a damaged model)."""
    torch.set_num_threads(1)
    base = load_melody_model(base_path)
    train_tunes, heldout = split_corpus(corpus_tunes(corpus_files))
    x, y, data = training_set(kept, train_tunes)
    figures: dict = {}
    if candidate is None:
        candidate, figures = fine_tune(base, x, y, settings)
    song = eval_song()
    current_eval = evaluate_melody_model(base, song, heldout, preference)
    candidate_eval = evaluate_melody_model(candidate, song, heldout, preference)
    verdict, reasons = enough_evidence(preference.tracks, *gate(candidate_eval, current_eval))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_melody_model(candidate, out, {"refined_from": str(base_path.name), "settings": json.dumps(settings.to_dict())})
    return {
        "sha256": file_sha256(out),
        "training_data": {**data, "snapshot_sha256": snapshot_hash(kept, train_tunes), "corpus_files": corpus_files},
        "hyper_parameters": {**settings.to_dict(), **candidate.hyper_parameters()},
        "training": figures,
        "preference_model": preference.to_dict(),
        "evaluation": {"candidate": candidate_eval, "in_use": current_eval, "verdict": verdict, "reasons": reasons, "tolerances": GATE_TOLERANCES},
    }
