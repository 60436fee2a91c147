"""Train the melody GRU on the public-domain folk tunes that ship with music21's corpus.

    python -m models.training.train_melody --out models/composition/weights/melody-gru-celtic.safetensors

Data (commercial use allowed): O'Neill's *Music of Ireland* (1903; music21 `oneills1850`),
Ryan's *Mammoth Collection* (1883; `ryansMammoth`) and Aird's *Selection of Scotch, English,
Irish and Foreign Airs* (1782–1797; `airdsAirs`). The Essen collection is non-commercial only
and is never used here.

The tunes carry no chord symbols, so each half bar (whole bar in 2/4, 3/4, 9/8) gets the
diatonic triad that best covers its notes (duration-weighted, downbeats counted twice): the
model learns how melodies sit on the harmony the generator will give it.

Writes the weights (safetensors, hyper-parameters and training figures in the metadata) and a
JSON summary beside them for the model card. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import multiprocessing
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from models.composition.melody_features import (
    MAJOR_LIKE,
    PITCH_HIGH,
    PITCH_LOW,
    MelodyEvent,
    encode_inputs,
)
from models.composition.melody_model import MelodyGRU, save_melody_model
from songmill.core.music import metric_strength

log = logging.getLogger("songmill.train_melody")
COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs")
SEQUENCE_LENGTH = 64

# Diatonic triads (pitch classes above the tonic) a folk tune's bar may imply.
TRIADS_MAJOR = ((0, 4, 7), (5, 9, 0), (7, 11, 2), (9, 0, 4), (2, 5, 9), (4, 7, 11), (10, 2, 5))
TRIADS_MINOR = ((0, 3, 7), (5, 8, 0), (7, 10, 2), (7, 11, 2), (3, 7, 10), (8, 0, 3), (10, 2, 5))


def estimate_chord(notes: list[tuple[int, float, float]], major: bool) -> tuple[int, ...]:
    """The triad that best explains (pitch class rel. tonic, duration, weight) notes; ties go to
    the earlier, more common chord."""
    best, best_score = None, -1.0
    for triad in TRIADS_MAJOR if major else TRIADS_MINOR:
        score = sum(d * w * (1.5 if pc == triad[0] else 1.0) for pc, d, w in notes if pc in triad)
        if score > best_score + 1e-9:
            best, best_score = triad, score
    return cast(tuple[int, ...], best)  # scores are never negative, so the first triad is taken


def _window(position: float, bar_len: float, numerator: int, denominator: int) -> int:
    """Which chord window of its bar a note starts in: half bars when the bar splits evenly."""
    halves = 2 if bar_len >= 3 and (numerator % 2 == 0 or (denominator == 8 and numerator == 6)) else 1
    return min(int(position // (bar_len / halves)), halves - 1)


def tune_events(score) -> tuple[list[MelodyEvent], bool] | None:
    """A music21 tune -> melody events relative to its tonic, or None if unusable."""
    from music21 import key as m21key
    from music21 import meter
    from music21 import note as m21note

    found_key = score.recurse().getElementsByClass(m21key.KeySignature).first()
    if found_key is None:
        return None
    found_key = found_key if isinstance(found_key, m21key.Key) else found_key.asKey("major")
    major = found_key.mode in MAJOR_LIKE
    tonic_ref = 60 + found_key.tonic.pitchClass
    part = score.parts[0] if score.parts else score
    time_signature = score.recurse().getElementsByClass(meter.TimeSignature).first() or meter.TimeSignature("4/4")

    raw: list[list[Any]] = []  # (midi, start_in_bar, duration, bar_number, bar_length, numerator, denominator, rest_after)
    for measure in part.getElementsByClass("Measure"):
        if measure.timeSignature is not None:
            time_signature = measure.timeSignature
        num, den = time_signature.numerator, time_signature.denominator
        for element in measure.notesAndRests:
            if element.duration.quarterLength <= 0 or element.duration.isGrace:
                continue
            if isinstance(element, m21note.Rest):
                if raw:
                    raw[-1][7] = True
                continue
            if not isinstance(element, m21note.Note):
                continue  # chords in a melody line: skip
            tied = element.tie is not None and element.tie.type in ("continue", "stop")
            if tied and raw and raw[-1][0] == element.pitch.midi:  # (the ABC reader marks some slurs as ties)
                raw[-1][2] += float(element.duration.quarterLength)
                continue
            position = float(element.offset + measure.paddingLeft)
            raw.append([element.pitch.midi, position, float(element.duration.quarterLength), measure.number, num * 4.0 / den, num, den, False])
    if len(raw) < 16:
        return None
    relative = np.array([r[0] - tonic_ref for r in raw])
    relative -= 12 * int(np.floor(np.median(relative) / 12))
    if relative.min() < PITCH_LOW or relative.max() > PITCH_HIGH:
        return None

    # chords per window (half bar when the bar is 3+ quarter notes long and splits evenly)
    windows: dict[tuple[int, int], list] = {}
    for (_midi, pos, dur, bar, bar_len, num, den, _), rel in zip(raw, relative):
        index = _window(pos, bar_len, num, den)
        weight = 2.0 if metric_strength(pos, num, den) <= 1 else 1.0
        windows.setdefault((bar, index), []).append((int(rel) % 12, dur, weight))
    chords = {w: estimate_chord(notes, major) for w, notes in windows.items()}

    events = []
    for i, ((_midi, pos, dur, bar, bar_len, num, den, rest_after), rel) in enumerate(zip(raw, relative)):
        next_bar = raw[i + 1][3] if i + 1 < len(raw) else None
        phrase_end = rest_after or next_bar is None or (bar != next_bar and bar > 0 and bar % 4 == 0)
        events.append(
            MelodyEvent(int(rel), metric_strength(pos, num, den), min(max(dur, 0.25), 4.0), chords[(bar, _window(pos, bar_len, num, den))], bool(phrase_end))
        )
    return events, major


def _parse_file(path: str) -> list[tuple[list[MelodyEvent], bool]]:
    from music21 import converter, stream

    try:
        parsed = converter.parse(path)
    except Exception as err:  # a malformed tune in the corpus: skip it, say so
        log.warning("skipping %s: %s", path, err)
        return []
    scores = parsed.scores if isinstance(parsed, stream.Opus) else [parsed]
    tunes = []
    for score in scores:
        try:
            found = tune_events(score)
        except Exception as err:
            log.warning("skipping a tune in %s: %s", path, err)
            continue
        if found:
            tunes.append(found)
    return tunes


def load_corpus(collections: tuple[str, ...], workers: int, limit_files: int | None = None) -> list[tuple[list[MelodyEvent], bool]]:
    from music21 import corpus

    paths = [str(p) for name in collections for p in corpus.getComposer(name)][:limit_files]
    log.info("parsing %d files from %s", len(paths), ", ".join(collections))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        tunes = [tune for found in pool.imap(_parse_file, paths, chunksize=4) for tune in found]
    return tunes


def to_windows(tunes, length: int = SEQUENCE_LENGTH) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping windows (stride length/2) of encoded inputs and target pitch indices (-1 = pad)."""
    xs, ys = [], []
    for events, major in tunes:
        inputs = encode_inputs(events, major)
        targets = np.array([e.pitch_token - PITCH_LOW for e in events])
        for start in range(0, max(len(events) - length // 2, 1), length // 2):
            x, y = inputs[start : start + length], targets[start : start + length]
            pad = length - len(y)
            xs.append(np.pad(x, ((0, pad), (0, 0))))
            ys.append(np.pad(y, (0, pad), constant_values=-1))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).long()


def train_step(model: nn.Module, optimiser: torch.optim.Optimizer, params: list, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One optimiser step on a batch: cross-entropy over the pitch tokens (-1: padding), gradients
    clipped to norm 1. The loss, for the log."""
    logits, _ = model(x)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)
    optimiser.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(params, 1.0)
    optimiser.step()
    return loss


def evaluate(model: MelodyGRU, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits, _ = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)
        mask = y >= 0
        accuracy = (logits.argmax(-1)[mask] == y[mask]).float().mean()
    model.train()
    return float(loss), float(accuracy)


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    tunes = load_corpus(tuple(args.collections), args.workers, args.limit_files)
    notes = sum(len(e) for e, _ in tunes)
    log.info("%d tunes, %d notes (parsed in %.0f s)", len(tunes), notes, time.time() - started)
    order = rng.permutation(len(tunes))
    n_val = max(len(tunes) // 20, 1)
    val_tunes = [tunes[i] for i in order[:n_val]]
    train_tunes = [tunes[i] for i in order[n_val:]]
    x_train, y_train = to_windows(train_tunes)
    x_val, y_val = to_windows(val_tunes)

    model = MelodyGRU(hidden_size=args.hidden, num_layers=args.layers, dropout=0.1)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * math.ceil(len(x_train) / args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=steps)
    history = []
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x_train))
        total, batches = 0.0, 0
        for start in range(0, len(x_train), args.batch):
            loss = train_step(model, optimiser, list(model.parameters()), x_train[perm[start : start + args.batch]], y_train[perm[start : start + args.batch]])
            schedule.step()
            total, batches = total + loss.item(), batches + 1
        val_loss, val_acc = evaluate(model, x_val, y_val)
        history.append({"epoch": epoch + 1, "train_loss": round(total / batches, 4), "val_loss": round(val_loss, 4), "val_accuracy": round(val_acc, 4)})
        log.info("epoch %d: train loss %.3f, validation loss %.3f, accuracy %.3f", *history[-1].values())

    summary = {
        "model": "melody-gru-celtic",
        "trained_on": dt.date.today().isoformat(),
        "collections": list(args.collections),
        "tunes": len(tunes),
        "notes": notes,
        "validation_tunes": n_val,
        "parameters": sum(p.numel() for p in model.parameters()),
        "hyper_parameters": {
            **model.hyper_parameters(),
            "epochs": args.epochs,
            "batch": args.batch,
            "lr": args.lr,
            "sequence_length": SEQUENCE_LENGTH,
            "seed": args.seed,
        },
        "final": history[-1],
        "history": history,
        "train_seconds": round(time.time() - started, 1),
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_melody_model(model, out, {"collections": ",".join(args.collections), "final": json.dumps(history[-1]), "trained_on": summary["trained_on"]})
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    log.info("wrote %s (%d parameters)", out, summary["parameters"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "composition" / "weights" / "melody-gru-celtic.safetensors"))
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit-files", type=int, default=None, help="parse only the first N corpus files (smoke tests)")
    args = parser.parse_args(argv)
    if "essenFolksong" in args.collections:
        parser.error("the Essen collection is licensed for non-commercial use only; train a separate, non-commercial model")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(max(1, args.workers))
    train(args)


if __name__ == "__main__":
    main()
