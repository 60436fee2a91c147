"""The melody network: a small GRU over `melody_features` rows that predicts pitch tokens.

Weights live in safetensors with their hyper-parameters in the file's metadata, so loading
needs no pickle and no code beyond this file. `train_melody.py` writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from models.composition.melody_features import INPUT_SIZE, N_PITCH


class MelodyGRU(nn.Module):
    def __init__(self, hidden_size: int = 192, num_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.gru = nn.GRU(INPUT_SIZE, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, N_PITCH)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (batch, time, INPUT_SIZE) -> pitch logits (batch, time, N_PITCH), new state."""
        hidden, state = self.gru(inputs, state)
        return self.head(hidden), state

    def hyper_parameters(self) -> dict:
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers}


def save_melody_model(model: MelodyGRU, path: Path, metadata: dict) -> None:
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    meta = {"hyper_parameters": json.dumps(model.hyper_parameters()), **{k: str(v) for k, v in metadata.items()}}
    save_file(tensors, str(path), metadata=meta)


def load_melody_model(path: Path) -> MelodyGRU:
    with safe_open(str(path), framework="pt") as handle:
        hyper = json.loads(handle.metadata()["hyper_parameters"])
    model = MelodyGRU(dropout=0.0, **hyper)
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model
