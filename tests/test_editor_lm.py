"""The LM backend for free-text commands, with tiny character-level GPT-2s built here (no
download): whatever the model prefers, it can only write operations that exist for the song
(a random model), and a model taught a few phrasings reads them — words the rule parser cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from songmill.core.errors import SongmillError
from songmill.editor.commands import parse_command
from songmill.editor.lm_commands import MAX_OPERATIONS, candidate_operations, load_command_model, parse_with_lm, training_ids
from songmill.editor.operations import OPERATIONS, contradictions
from tests.conftest import build_tiny_command_lm
from tests.test_editor import CORPUS_SONG

TAUGHT = [
    ("bring the low end up", [{"op": "part_level", "part": "bass", "by_db": 3.0}]),
    ("lose the drums", [{"op": "part_mute", "part": "drums", "muted": True}]),
    ("take it down to 92", [{"op": "tempo", "to_bpm": 92.0}]),
    ("kill the bridge", [{"op": "section_drop", "section": "bridge"}]),
    ("warmer overall and voice up a hair", [{"op": "master_tone", "by_db": -2.0}, {"op": "vocal_level", "by_db": 1.5}]),
    ("have cleo sing it", [{"op": "voice", "identity": "cleo"}]),
    ("the second chorus needs more punch", [{"op": "section_level", "section": "chorus 2", "by_db": 3.0}]),
    ("dry up the vocal", [{"op": "send", "effect": "reverb", "on": "vocal", "by_db": -6.0}]),
]


@pytest.fixture(scope="module")
def random_lm(tmp_path_factory) -> Path:
    return build_tiny_command_lm(tmp_path_factory.mktemp("command-lm"))


def teach(folder: Path, examples: list, steps: int = 200):
    """(tokenizer, model) after `steps` of AdamW on the examples, as `training_ids` writes them."""
    import torch

    tokenizer, model = load_command_model(folder)
    sequences = [training_ids(tokenizer, words, OPERATIONS.validate_python(ops)) for words, ops in examples]
    length = max(map(len, sequences))
    ids = torch.full((len(sequences), length), tokenizer.eos_token_id)
    mask = torch.zeros_like(ids)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)], mask[row, : len(sequence)] = torch.tensor(sequence), 1
    labels = ids.masked_fill(mask == 0, -100)
    torch.manual_seed(0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return tokenizer, model


def test_a_random_model_can_only_write_operations_the_song_has(random_lm):
    loaded = load_command_model(random_lm)
    for words in ["make the bass louder", "slow it down to 92", "what a lovely day", "chorus 2 harder and less reverb"]:
        operations = parse_with_lm(words, CORPUS_SONG, random_lm, loaded=loaded)
        valid = {repr(op) for op in candidate_operations(CORPUS_SONG, words)}
        assert 1 <= len(operations) <= MAX_OPERATIONS and all(repr(op) in valid for op in operations), operations
        assert len({repr(op) for op in operations}) == len(operations)  # none chosen twice
        assert parse_with_lm(words, CORPUS_SONG, random_lm, loaded=loaded) == operations  # greedy: deterministic
    # a BPM only where the words name one, and only within the spec's range
    assert any(getattr(op, "to_bpm", None) == 92.0 for op in candidate_operations(CORPUS_SONG, "to 92"))
    assert not any(getattr(op, "to_bpm", None) for op in candidate_operations(CORPUS_SONG, "to 400 or 12"))


@pytest.mark.long
def test_a_model_taught_a_few_phrasings_reads_them_where_the_rules_cannot(random_lm, tmp_path):
    import shutil

    folder = tmp_path / "taught"
    shutil.copytree(random_lm, folder)
    loaded = teach(folder, TAUGHT)
    unread = []
    for words, expected in TAUGHT:
        got = parse_with_lm(words, CORPUS_SONG, folder, loaded=loaded)
        assert got == OPERATIONS.validate_python(expected), words
        contradictions(got)
        try:
            parse_command(words, CORPUS_SONG)
        except SongmillError:
            unread.append(words)
    assert unread  # phrasings only the model reads


def test_bad_command_models_and_words_are_one_sentence(random_lm, tmp_path):
    from songmill.engine.editing import command_model

    with pytest.raises(SongmillError, match=r"the command is empty"):
        parse_with_lm("  ", CORPUS_SONG, random_lm)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SongmillError, match=r"the command model in .*empty cannot be loaded \(.*\); it needs a transformers causal LM"):
        parse_with_lm("louder", CORPUS_SONG, tmp_path / "empty")
    with pytest.raises(SongmillError, match=r"model 'fluidr3-gm' is a soundfont model; --lm takes a transformers causal language model"):
        command_model("fluidr3-gm")
    with pytest.raises(SongmillError, match=r"model 'no-such-lm' is not in the model registry .* \(registered: "):
        command_model("no-such-lm")
