"""Refining a registered lyrics LM (a transformers causal LM folder) from the lyrics listeners kept.

The same cycle as the melody model's (`refine_melody`): a training set of the kept tracks' lyric
lines (each track's lines repeated in proportion to how much it was kept), a full fine-tune on
CPU, and an offline evaluation against the version in use:

* the NLL of held-out kept lines (nats per token; the preference figure: lower means the model
  writes more like what listeners kept);
* the NLL of reference lines written by the rule writer (the gate figure: the model must not
  forget how to write a plain line; tolerance `NLL_TOLERANCE`).

Promote only a candidate that lowers the kept-lines NLL without raising the reference NLL
beyond the tolerance.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

NLL_TOLERANCE = 0.05  # nats per token the reference NLL may rise
KEPT_REPEATS = 3


def _nll(model, tokenizer, lines: list[str]) -> float:
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for line in lines:
            ids = tokenizer(line + (tokenizer.eos_token or ""), return_tensors="pt")["input_ids"]
            if ids.shape[1] < 2:
                continue
            out = model(input_ids=ids, labels=ids)
            total += float(out.loss) * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    return round(total / max(count, 1), 4)


def refine_lyrics_lm(
    base_dir: Path, kept: list[tuple[list[str], float]], reference: list[str], *, out: Path, epochs: int = 3, lr: float = 5e-4, seed: int = 1
) -> dict:
    """Fine-tune the LM in `base_dir` on the kept lines, evaluate both, save the candidate to
    `out` (safetensors); the lineage (without the version name) and the verdict."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, use_safetensors=True)
    candidate = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, use_safetensors=True)
    lines = [(line, weight) for text, weight in kept for line in text if line.strip()]
    order = rng.permutation(len(lines))
    held = [lines[i][0] for i in order[: max(1, len(lines) // 5)]]
    train = [line for i in order[max(1, len(lines) // 5) :] for line in [lines[i][0]] * max(1, round(lines[i][1] * KEPT_REPEATS))]
    optimiser = torch.optim.AdamW(candidate.parameters(), lr=lr)
    started = time.process_time()
    candidate.train()
    for _ in range(epochs):
        for index in rng.permutation(len(train)):
            ids = tokenizer(train[index] + (tokenizer.eos_token or ""), return_tensors="pt")["input_ids"]
            if ids.shape[1] < 2:
                continue
            loss = candidate(input_ids=ids, labels=ids).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    evaluation: dict = {
        "in_use": {"kept_nll": _nll(base, tokenizer, held), "reference_nll": _nll(base, tokenizer, reference)},
        "candidate": {"kept_nll": _nll(candidate, tokenizer, held), "reference_nll": _nll(candidate, tokenizer, reference)},
    }
    reasons = []
    if evaluation["candidate"]["kept_nll"] >= evaluation["in_use"]["kept_nll"]:
        reasons.append(f"kept-lines NLL {evaluation['candidate']['kept_nll']} does not beat the version in use ({evaluation['in_use']['kept_nll']})")
    if evaluation["candidate"]["reference_nll"] - evaluation["in_use"]["reference_nll"] > NLL_TOLERANCE:
        reasons.append(
            f"reference NLL regresses from {evaluation['in_use']['reference_nll']} to {evaluation['candidate']['reference_nll']} (tolerance {NLL_TOLERANCE})"
        )
    evaluation |= {"verdict": "refuse" if reasons else "promote", "reasons": reasons}
    out.mkdir(parents=True, exist_ok=True)
    candidate.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    from models.registry import tree_sha256

    digest = hashlib.sha256(json.dumps([[t, round(w, 6)] for t, w in kept]).encode()).hexdigest()
    return {
        "sha256": tree_sha256(out),
        "training_data": {"kept_tracks": len(kept), "lines": len(train), "held_out_lines": len(held), "snapshot_sha256": digest},
        "hyper_parameters": {"method": "full", "epochs": epochs, "lr": lr, "seed": seed},
        "training": {"cpu_s": round(time.process_time() - started, 2)},
        "evaluation": evaluation,
    }
