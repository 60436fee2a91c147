"""Free-text commands through a language model, with output that is always valid operations.

    operations = parse_with_lm("could the low end come up a touch", song, model_dir)

The optional backend for words the rule parser (commands.py) does not read. A transformers
causal LM, loaded from a local folder the model registry names (never a hub), continues the
prompt `Command: <words>\\nOperations:` — but only along the token sequences of operations
that exist for this song. Those are enumerated first (`candidate_operations`: every part, section,
identity, style and mood the song has, each amount of STEPS either way, and any BPM the words
name), each written as its compact JSON, and put in a token trie; at every decoding step the
logits of tokens the trie does not allow are masked, so the model can only choose among valid
operations (greedy, so the same words give the same operations). After an operation the model
may end, or write `SEPARATOR` and choose another (up to MAX_OPERATIONS).

A model learns the mapping from examples written by `training_ids` — the exact token sequence
decoding follows — so a fine-tune and the decoder never disagree about tokenisation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from songmill.core.errors import SongmillError
from songmill.core.sections import section_labels
from songmill.core.vocab import MOODS, VOICE_STYLES
from songmill.editor.commands import INSTRUMENT_WORDS
from songmill.editor.operations import (
    OPERATIONS,
    STEPS,
    AddInstrument,
    MasterTone,
    Mood,
    NewChords,
    NewMelody,
    NewRhythm,
    PartInstrument,
    PartLevel,
    PartMute,
    PartSend,
    SectionDrop,
    SectionLevel,
    SectionRepeat,
    Send,
    SongFacts,
    Tempo,
    Transpose,
    VocalLevel,
    VocalStyle,
    VoiceIdentity,
    operations_to_json,
)

PROMPT = "Command: {words}\nOperations:"
SEPARATOR = " ;"
MAX_OPERATIONS = 3
_END = -1  # the trie's mark: an operation ends here


def operation_text(operation) -> str:
    """An operation as the model writes it: a space, then its compact JSON."""
    return " " + json.dumps(operations_to_json([operation])[0], separators=(",", ":"), ensure_ascii=False)


def candidate_operations(song: SongFacts, words: str = "") -> list:
    """Every operation the model may choose for this song (and these words' numbers)."""
    signed = [sign * step for step in STEPS["level_db"] for sign in (1, -1)]
    labels = section_labels([name for name, _ in song.sections])
    candidates: list = [VocalLevel(by_db=d) for d in signed]
    for part in song.parts:
        candidates += [PartLevel(part=part, by_db=d) for d in signed] + [PartMute(part=part, muted=True), PartMute(part=part, muted=False)]
    for effect in ("reverb", "delay"):
        for on in ("all", "vocal"):
            candidates += [Send(effect=effect, on=on, by_db=sign * step) for step in STEPS["send_db"] for sign in (1, -1)]
        for part in song.parts:  # a part's own send, where the mix sends it (or where that is not known)
            if not song.sends or effect in song.sends.get(part, []):
                candidates += [PartSend(part=part, effect=effect, by_db=sign * step) for step in STEPS["send_db"] for sign in (1, -1)]
    for label in dict.fromkeys(labels + [name for name, _ in song.sections]):  # "chorus 2", and "chorus" for every chorus
        candidates += [SectionLevel(section=label, by_db=d) for d in signed]
        candidates += [SectionRepeat(section=label), SectionDrop(section=label), NewMelody(section=label), NewChords(section=label), NewRhythm(section=label)]
    candidates += [Tempo(by_percent=sign * step) for step in STEPS["tempo_percent"] for sign in (1, -1)]
    candidates += [Tempo(to_bpm=float(n)) for n in sorted({int(n) for n in re.findall(r"\b\d{2,3}\b", words)}) if 40 <= int(n) <= 240]
    instruments = sorted(set(INSTRUMENT_WORDS.values()))
    for part in song.parts:
        if part != "drums" and not part.startswith("vocal-"):
            candidates += [PartInstrument(part=part, instrument=name) for name in instruments]
    candidates += [
        AddInstrument(name=word.replace(" ", "-"), instrument=name) for word, name in INSTRUMENT_WORDS.items() if word.replace(" ", "-") not in song.parts
    ]
    candidates += [MasterTone(by_db=sign * step) for step in STEPS["tilt_db"] for sign in (1, -1)]
    candidates += [Transpose(semitones=n) for n in (-2, -1, 1, 2)]
    candidates += [VoiceIdentity(identity=name) for name in song.identities]
    candidates += [VocalStyle(style=style) for style in sorted(VOICE_STYLES)] + [Mood(to=mood) for mood in sorted(MOODS)]
    return candidates


def _trie(sequences: list[list[int]], excluded: set[int] | frozenset[int] = frozenset()) -> dict:
    """Nested {token: node}; a node where sequence i ends holds {_END: i}."""
    root: dict = {}
    for index, sequence in enumerate(sequences):
        if index in excluded:
            continue
        node = root
        for token in sequence:
            node = node.setdefault(token, {})
        node[_END] = index
    return root


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def training_ids(tokenizer, words: str, operations: list) -> list[int]:
    """The token ids of one example (prompt, operations, end) exactly as decoding walks them."""
    ids = _encode(tokenizer, PROMPT.format(words=words.strip()))
    for index, operation in enumerate(operations):
        if index:
            ids += _encode(tokenizer, SEPARATOR)
        ids += _encode(tokenizer, operation_text(operation))
    return ids + [tokenizer.eos_token_id]


def load_command_model(folder: Path):
    """(tokenizer, model) from a local transformers folder; one sentence naming it when it cannot load."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True)  # never a pickle
    except (OSError, ValueError) as err:
        raise SongmillError(
            f"the command model in {folder} cannot be loaded ({str(err).splitlines()[0]}); it needs a transformers causal LM and its tokenizer"
        ) from None
    if tokenizer.eos_token_id is None:
        raise SongmillError(f"the command model's tokenizer in {folder} has no end-of-sequence token; the decoder needs one to end the operations")
    model.eval()
    return tokenizer, model


def parse_with_lm(words: str, song: SongFacts, folder: Path, *, loaded=None) -> list:
    """The operations the model chooses for `words`, among those valid for `song` (see module doc).
    `loaded`: (tokenizer, model) from `load_command_model`, to load once for many commands."""
    import torch

    if not words.strip():
        raise SongmillError('the command is empty; say what to change, e.g. "less reverb on the voice"')
    tokenizer, model = loaded or load_command_model(folder)
    candidates = candidate_operations(song, words)
    sequences = [_encode(tokenizer, operation_text(op)) for op in candidates]
    trie = _trie(sequences)
    separator = _encode(tokenizer, SEPARATOR)
    ids = _encode(tokenizer, PROMPT.format(words=words.strip()))
    chosen: list[int] = []  # indices into candidates
    node, pending, past = trie, list(ids), None  # `pending`: tokens not yet fed to the model
    with torch.no_grad():
        while True:
            allowed = _allowed(node, tokenizer.eos_token_id, separator, len(chosen))
            out = model(input_ids=torch.tensor([pending]), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
            token = max(allowed, key=lambda t: float(logits[t]))  # greedy among the allowed: deterministic
            if token == tokenizer.eos_token_id and _END in node:
                chosen.append(node[_END])
                break
            if _END in node and token == separator[0]:  # another operation follows, not one chosen already
                chosen.append(node[_END])
                pending, node = list(separator), _trie(sequences, excluded=set(chosen))
                continue
            node, pending = node[token], [token]
    return OPERATIONS.validate_python(operations_to_json([candidates[i] for i in chosen]))  # the schema's own check, again


def _allowed(node: dict, eos: int, separator: list[int], done: int) -> list[int]:
    allowed = [t for t in node if t != _END]
    if _END in node:
        allowed.append(eos)
        if done + 1 < MAX_OPERATIONS:
            allowed.append(separator[0])
    return allowed
