"""Refining the melody model from what listeners kept, and the evaluation that decides if it ships.

    result = refine_melody(kept, preference, corpus_files=40)   # a candidate version, evaluated
    result["evaluation"]["verdict"]                              # "promote" or "refuse", with reasons

The training set: the melodies of the tracks listeners kept (their score.json), each repeated in
proportion to how much it was kept, together with tunes from the original corpus (so the model
does not forget what it learned there). The base model is fine-tuned on CPU: a **full
fine-tune** (every weight, the default) or **LoRA** adapters (PEFT) on its linear layer — the
GRU's recurrent weights are not `nn.Linear`, so PEFT can adapt only the output head, and
`make bench` measures what each moves (see the README).

The evaluation (`evaluate_melody_model`), offline, against the version in use:
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

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.composition.melody_features import PITCH_HIGH, PITCH_LOW, MelodyEvent
from models.composition.melody_model import MelodyGRU, load_melody_model, save_melody_model
from songmill.core.melodic import melodic_features
from songmill.core.music import metric_strength, parse_key, parse_time_signature
from songmill.core.paths import cache_dir
from songmill.core.score import Score
from songmill.core.store import atomic_write_bytes

log = logging.getLogger("songmill.refine")

EVAL_SEEDS = 20
# The corpus part of the training set and the held-out tunes: Ryan's Mammoth Collection (1883,
# public domain, one tune a file, part of the model's original corpus) parses fast enough for a
# refinement in minutes; O'Neill's files hold hundreds of tunes each.
REFINE_COLLECTIONS = ("ryansMammoth",)
KEPT_REPEATS = 4  # a melody kept at twice the catalogue's rate appears 8 times, at its rate 4
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


# ------------------------------------------------------------------------------- training data


def score_events(score: Score) -> tuple[list[MelodyEvent], bool] | None:
    """A rendered song's melody as the model's events (relative to its tonic), like a corpus tune."""
    melody = [p for p in score.parts if p.role == "melody" and not p.is_drum]
    notes = sorted(melody[0].notes, key=lambda n: n.start_beat) if melody else []
    if len(notes) < 16:
        return None
    key = parse_key(score.key)
    meter = parse_time_signature(score.time_signature)
    bar = meter.quarter_notes_per_bar
    relative = np.array([n.pitch - 60 - key.tonic_pitch_class for n in notes])
    relative -= 12 * int(np.floor(np.median(relative) / 12))
    if relative.min() < PITCH_LOW or relative.max() > PITCH_HIGH:
        return None
    events = []
    for i, (note, rel) in enumerate(zip(notes, relative)):
        chord = _chord_at(score, note.start_beat)
        chord_rel = tuple(sorted({(p - key.tonic_pitch_class) % 12 for p in chord})) if chord else (0, 4, 7)
        gap = notes[i + 1].start_beat - (note.start_beat + note.duration_beats) if i + 1 < len(notes) else math.inf
        strength = metric_strength(note.start_beat % bar, meter.numerator, meter.denominator)
        events.append(MelodyEvent(int(rel), strength, min(max(note.duration_beats, 0.25), 4.0), chord_rel, bool(gap >= 0.5)))
    return events, key.mode in ("major", "ionian", "mixolydian", "lydian")


def _chord_at(score: Score, beat: float) -> list[int]:
    for chord in score.chords:
        if chord.start_beat <= beat < chord.start_beat + chord.duration_beats:
            return chord.pitches
    return []


def corpus_tunes(limit_files: int, workers: int = 2) -> list[tuple[list[MelodyEvent], bool]]:
    """The first `limit_files` files of `REFINE_COLLECTIONS`, parsed once and cached as JSON."""
    from models.training.train_melody import load_corpus

    cache = cache_dir() / f"melody-corpus-{'-'.join(REFINE_COLLECTIONS)}-{limit_files}.json"
    if cache.is_file():
        rows = json.loads(cache.read_text())
        return [([MelodyEvent(e[0], e[1], e[2], tuple(e[3]), bool(e[4])) for e in events], major) for events, major in rows]
    tunes = load_corpus(REFINE_COLLECTIONS, workers, limit_files)
    rows = [[[[e.pitch_token, e.strength, e.duration_beats, list(e.chord_pcs), e.phrase_end] for e in events], major] for events, major in tunes]
    atomic_write_bytes(cache, json.dumps(rows).encode())  # two workers may parse at once: each writes whole
    return tunes


def split_corpus(tunes: list, seed: int = 1) -> tuple[list, list]:
    """(training tunes, held-out tunes): a fixed twentieth held out, the same for every version."""
    order = np.random.default_rng(seed).permutation(len(tunes))
    held = max(len(tunes) // 20, 1)
    return [tunes[i] for i in order[held:]], [tunes[i] for i in order[:held]]


def training_set(kept: list[tuple[Score, float]], corpus: list) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Windows of the kept melodies (repeated by weight) and the corpus, and what went in."""
    from models.training.train_melody import to_windows

    tunes, used = list(corpus), 0
    for score, weight in kept:
        found = score_events(score)
        if found is None or weight <= 0:
            continue
        used += 1
        tunes += [found] * max(1, round(weight * KEPT_REPEATS))
    x, y = to_windows(tunes)
    return x, y, {"kept_melodies": used, "corpus_tunes": len(corpus), "windows": int(len(x))}


def snapshot_hash(kept: list[tuple[Score, float]], corpus: list) -> str:
    """sha256 over the training data: each kept melody's pitches and weight, and the corpus tunes."""
    digest = hashlib.sha256()
    for score, weight in kept:
        found = score_events(score)
        digest.update(json.dumps([[e.pitch_token for e in found[0]] if found else None, round(weight, 6)]).encode())
    for events, major in corpus:
        digest.update(json.dumps([[e.pitch_token, e.duration_beats] for e in events], separators=(",", ":")).encode())
    return digest.hexdigest()


# ------------------------------------------------------------------------------- fine-tuning


@dataclass(frozen=True)
class FineTune:
    method: str = "full"  # full | lora
    epochs: int = 3
    lr: float = 5e-4
    batch: int = 64
    lora_rank: int = 8
    seed: int = 1

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def fine_tune(base: MelodyGRU, x: torch.Tensor, y: torch.Tensor, settings: FineTune) -> tuple[MelodyGRU, dict]:
    """A copy of `base` trained further on (x, y); the figures of the run."""
    torch.manual_seed(settings.seed)
    model = MelodyGRU(hidden_size=base.hidden_size, num_layers=base.num_layers, dropout=0.1)
    model.load_state_dict(base.state_dict())
    trained: nn.Module = model
    if settings.method == "lora":
        from peft import LoraConfig, get_peft_model

        trained = get_peft_model(model, LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank, target_modules=["head"], lora_dropout=0.0))
    elif settings.method != "full":
        raise ValueError(f"fine-tune method {settings.method!r} is not full or lora")
    params = [p for p in trained.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings.lr, weight_decay=1e-4)
    started, losses = time.process_time(), []
    trained.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), settings.batch):
            idx = order[start : start + settings.batch]
            logits, _ = trained(x[idx])
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1), ignore_index=-1)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            losses.append(loss.item())
    if settings.method == "lora":
        model = trained.merge_and_unload()  # type: ignore[operator]  # plain MelodyGRU weights again
    model.eval()
    figures = {"trainable_parameters": sum(p.numel() for p in params), "cpu_s": round(time.process_time() - started, 2), "final_loss": round(float(np.mean(losses[-10:])), 4)}
    return model, figures


# ------------------------------------------------------------------------------- evaluation


@dataclass
class EvalSong:
    """The fixed song every version sings for evaluation: its form and lyrics."""

    form: Score
    lyrics: object
    voice_range: tuple[int, int] = (53, 72)
    genre: str = "pop"


def eval_song() -> EvalSong:
    from models.composition.form import song_form
    from models.lyrics.songwriter import write_lyrics

    form = song_form(title="Evaluation", genre="pop", key="C major", time_signature="4/4", tempo_bpm=104, target_duration_s=90, structure=None)
    lyrics = write_lyrics(
        form,
        title="Evaluation",
        theme="a long drive home at night",
        mood="hopeful",
        genre="pop",
        provided=None,
        instrumental=False,
        rng=np.random.default_rng(7),
        batch_index=0,
        batch_size=1,
        lm_dir=None,
        lm_name=None,
        seed=7,
        where="evaluation song",
    )
    return EvalSong(form, lyrics)


def heldout_nll(model: MelodyGRU, heldout: list) -> float:
    from models.training.train_melody import to_windows

    x, y = to_windows(heldout)
    with torch.no_grad():
        logits, _ = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)
    return round(float(loss), 4)


def sung_melodies(model: MelodyGRU, song: EvalSong, seeds: int = EVAL_SEEDS, *, first_seed: int = 1000) -> list[Score]:
    """The fixed song composed with `seeds` seeds from `first_seed` (the evaluation's: 1000 on)."""
    from models.composition.compose import compose

    rngs = (np.random.default_rng(first_seed + s) for s in range(seeds))
    return [compose(song.form, song.lyrics, genre=song.genre, voice_range=song.voice_range, model=model, rng=rng)[0] for rng in rngs]


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
    figures = {}
    if candidate is None:
        candidate, figures = fine_tune(base, x, y, settings)
    song = eval_song()
    current_eval = evaluate_melody_model(base, song, heldout, preference)
    candidate_eval = evaluate_melody_model(candidate, song, heldout, preference)
    verdict, reasons = gate(candidate_eval, current_eval)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_melody_model(candidate, out, {"refined_from": str(base_path.name), "settings": json.dumps(settings.to_dict())})
    from songmill.core.store import file_sha256

    return {
        "sha256": file_sha256(out),
        "training_data": {**data, "snapshot_sha256": snapshot_hash(kept, train_tunes), "corpus_files": corpus_files},
        "hyper_parameters": {**settings.to_dict(), **candidate.hyper_parameters()},
        "training": figures,
        "preference_model": preference.to_dict(),
        "evaluation": {"candidate": candidate_eval, "in_use": current_eval, "verdict": verdict, "reasons": reasons, "tolerances": GATE_TOLERANCES},
    }
