"""Refining the melody model from what listeners kept: the training data and the fine-tune.

The training set (`training_set`): the melodies of the tracks listeners kept (their score.json),
each repeated in proportion to how much it was kept, together with tunes from the original
corpus (so the model does not forget what it learned there). `fine_tune` trains a copy of the
base model on CPU: a **full fine-tune** (every weight, the default) or **LoRA** adapters (PEFT) on
its linear layer — the GRU's recurrent weights are not `nn.Linear`, so PEFT can adapt only the
output head; `make bench` measures what each moves (see the README).

The evaluation song and seeds (`eval_song`, `sung_melodies`) and the held-out NLL live here too;
the judgement — the gate figures and the verdict — is `songmill.feedback.evaluation`'s, since a
generator never reads judgements.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.composition.melody_features import PITCH_HIGH, PITCH_LOW, MelodyEvent
from models.composition.melody_model import MelodyGRU
from songmill.core.lyrics import Lyrics
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
    for events, _major in corpus:
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
    from models.training.train_melody import train_step

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
            losses.append(train_step(trained, optimiser, params, x[idx], y[idx]).item())
    if settings.method == "lora":
        model = trained.merge_and_unload()  # plain MelodyGRU weights again
    model.eval()
    figures = {
        "trainable_parameters": sum(p.numel() for p in params),
        "cpu_s": round(time.process_time() - started, 2),
        "final_loss": round(float(np.mean(losses[-10:])), 4),
    }
    return model, figures


# ------------------------------------------------------------------------------- evaluation


@dataclass
class EvalSong:
    """The fixed song every version sings for evaluation: its form and lyrics."""

    form: Score
    lyrics: Lyrics
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
