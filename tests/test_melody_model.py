"""The trained melody model: registered, hash-checked, documented, and reproducible by its script."""

from __future__ import annotations

import json

import pytest
import torch

from models.composition.melody_features import INPUT_SIZE, N_PITCH, MelodyEvent, encode_inputs
from models.composition.melody_model import load_melody_model
from models.registry import ModelRegistry
from models.training import train_melody
from songmill.core.music import metric_strength
from tests.conftest import PROJECT

WEIGHTS = PROJECT / "models/composition/weights"


def test_the_registered_weights_load_and_predict_pitches():
    path = ModelRegistry.load().resolve("melody-gru-celtic", commercial=True)
    model = load_melody_model(path)
    events = [MelodyEvent(p, 0, 1.0, (0, 4, 7), False) for p in (0, 2, 4, 5, 7)]
    logits, _ = model(torch.from_numpy(encode_inputs(events, major=True))[None])
    assert logits.shape == (1, 5, N_PITCH) and torch.isfinite(logits).all()


def test_the_model_learned_tonal_melody():
    """After a rising C-major scale on a C chord, the likeliest next notes are in the scale."""
    model = load_melody_model(WEIGHTS / "melody-gru-celtic.safetensors")
    events = [MelodyEvent(p, 2, 0.5, (0, 4, 7), False) for p in (0, 2, 4, 5, 7, 9)]
    logits, _ = model(torch.from_numpy(encode_inputs(events, major=True))[None])
    top = torch.topk(logits[0, -1], 5).indices.tolist()
    assert all((t - 12) % 12 in (0, 2, 4, 5, 7, 9, 11) for t in top)


def test_the_model_card_states_the_training_figures():
    summary = json.loads((WEIGHTS / "melody-gru-celtic.json").read_text())
    card = (PROJECT / "models/composition/MELODY_MODEL_CARD.md").read_text()
    assert summary["collections"] == ["oneills1850", "ryansMammoth", "airdsAirs"]
    assert f"{summary['parameters']:,}" in card and f"{summary['notes']:,}" in card
    assert f"{summary['final']['val_loss']:.3f}" in card
    assert "Essen" in card and "public domain" in card


def test_metric_strength_knows_simple_and_compound_meters():
    assert [metric_strength(b, 4, 4) for b in (0, 1, 2, 3, 0.5)] == [0, 2, 1, 2, 3]
    assert [metric_strength(b, 6, 8) for b in (0, 1.5, 0.5)] == [0, 2, 3]
    assert [metric_strength(b, 3, 4) for b in (0, 1, 2)] == [0, 2, 2]


def test_the_training_script_runs_end_to_end_on_a_small_slice(tmp_path):
    out = tmp_path / "tiny.safetensors"
    train_melody.main(
        ["--out", str(out), "--collections", "ryansMammoth", "--limit-files", "6", "--epochs", "1", "--hidden", "16", "--layers", "1", "--workers", "1"]
    )
    model = load_melody_model(out)
    assert model.gru.input_size == INPUT_SIZE and model.hidden_size == 16
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["tunes"] >= 3 and summary["final"]["val_loss"] > 0


def test_the_training_script_refuses_the_non_commercial_essen_collection(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_melody.main(["--out", str(tmp_path / "x.safetensors"), "--collections", "essenFolksong"])
    assert exit_info.value.code == 2
    assert "the Essen collection is licensed for non-commercial use only" in capsys.readouterr().err
