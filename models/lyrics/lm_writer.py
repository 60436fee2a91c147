"""The LM writer: lyrics from a transformers causal language model, under the same constraints
as the rule writer (syllables per line, rhyme scheme, the title hook, the repeated chorus).

The model loads from a local directory named in the model registry (backend `transformers`),
never from a hub. Constraints are enforced while decoding, not hoped for:

* only whole dictionary words may be generated (tokens that start a word and spell a word the
  CMU dictionary or espeak-ng can pronounce), so syllables can be counted as the line grows;
* a word that would overrun the line's syllable target is masked out;
* a word that would complete the line must rhyme with the line's rhyme partner, and a word that
  would leave too few syllables for any rhyming word is masked out;
* once the target is reached, only the end-of-line token is allowed.

Several candidates are sampled per line and re-ranked by the model's own score; lines already
used in the song are skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from models.lyrics.writer import RuleWriter, SectionPlan, make_line, repeat_section
from songmill.core.errors import SongmillError
from songmill.core.lyrics import LyricLine, Lyrics, LyricSection
from songmill.core.phonetics import normalise_word, rhyming_part, syllable_count

if TYPE_CHECKING:
    from transformers.generation.utils import GenerateDecoderOnlyOutput

log = logging.getLogger("songmill.lyrics.lm")

CANDIDATES_PER_LINE = 4


class WordTable:
    """Per-token facts the constraint needs: syllables (0 = not an allowed word) and rhyme."""

    def __init__(self, tokenizer):
        import re

        size = len(tokenizer)
        self.syllables = np.zeros(size, dtype=np.int64)
        self.rhyme = [""] * size
        self.word = [""] * size
        subword = _is_subword(tokenizer)  # BPE/SentencePiece: a word starts with Ġ or ▁
        for token_id in range(size):
            piece = tokenizer.convert_ids_to_tokens(token_id)
            if piece is None:
                continue
            starts_word = not subword or piece.startswith(("Ġ", "▁"))
            text = piece.lstrip("Ġ▁")
            if not starts_word or not re.fullmatch(r"[A-Za-z]+('[a-z]+)?", text) or text in tokenizer.all_special_tokens:
                continue
            try:
                self.syllables[token_id] = syllable_count(text)
                self.rhyme[token_id] = rhyming_part(text)
                self.word[token_id] = normalise_word(text)
            except SongmillError:
                continue  # unpronounceable: never generated
        if not self.syllables.any():
            raise SongmillError("the lyrics model's vocabulary has no whole English words to sing")
        counts: dict[str, int] = {}
        for token_id in np.flatnonzero(self.syllables):
            counts[self.rhyme[token_id]] = counts.get(self.rhyme[token_id], 0) + 1
        # words that leave a partner line something to rhyme with
        self.rhymable = np.array([bool(r) and counts.get(r, 0) >= 2 for r in self.rhyme])


def _is_subword(tokenizer) -> bool:
    sample = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), 2000))))
    return any(p and p.startswith(("Ġ", "▁")) for p in sample)


class LineConstraint:
    """A transformers LogitsProcessor: the syllable budget and the end rhyme of one line."""

    def __init__(
        self, table: WordTable, *, prompt_length: int, target: int, rhyme: str | None, avoid_word: str | None, end_ids: list[int], needs_partner: bool = False
    ):
        import torch

        self.table, self.prompt_length, self.target, self.end_ids = table, prompt_length, target, end_ids
        syllables = torch.from_numpy(table.syllables)
        self.syllables = syllables
        self.word_ok = syllables > 0
        if rhyme is None:  # free, but a line whose partner comes later must end on a rhymable word
            self.rhymes = self.word_ok & torch.from_numpy(table.rhymable) if needs_partner else self.word_ok.clone()
        else:
            self.rhymes = torch.tensor([r == rhyme and w != avoid_word for r, w in zip(table.rhyme, table.word)]) & self.word_ok
        self.feasible = bool(self.rhymes.any())
        if not self.feasible:
            return
        self.min_rhyme = int(syllables[self.rhymes].min())

    def __call__(self, input_ids, scores):
        import torch

        used = self.syllables[input_ids[:, self.prompt_length :]].sum(dim=1)
        allowed = torch.zeros_like(scores, dtype=torch.bool)
        for row, spent in enumerate(used.tolist()):
            remaining = self.target - spent
            if remaining <= 0:
                allowed[row, self.end_ids] = True
                continue
            fits = self.word_ok & (self.syllables <= remaining)
            completes = self.syllables == remaining
            leaves_room = (remaining - self.syllables) >= self.min_rhyme
            allowed[row] = fits & ((completes & self.rhymes) | (~completes & leaves_room))
        return scores.masked_fill(~allowed, float("-inf"))


class LMWriter:
    """Loads a causal LM from a verified local directory and writes constrained lines."""

    def __init__(self, model_dir: Path, *, model_name: str, rule_writer: RuleWriter, theme: str, mood: str, seed: int):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=True)
        except (OSError, ValueError) as err:
            raise SongmillError(f"lyrics model '{model_name}' at {model_dir} cannot be loaded: {err}") from None
        self.model.eval()
        self.name, self.rules, self.theme, self.mood = model_name, rule_writer, theme, mood
        self.table = WordTable(self.tokenizer)
        self.end_ids = self._end_ids()
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)

    def _end_ids(self) -> list[int]:
        ids = self.tokenizer.encode("\n", add_special_tokens=False)
        ends = [ids[0]] if len(ids) == 1 and ids[0] != self.tokenizer.unk_token_id else []
        if self.tokenizer.eos_token_id is not None:
            ends.append(self.tokenizer.eos_token_id)
        if not ends:
            raise SongmillError(f"lyrics model '{self.name}' has neither a newline token nor an end-of-text token")
        return ends

    def _prompt(self, lines: list[str]) -> str:
        head = f"A {self.mood} song called {self.rules.title}, about {self.theme}.\n"
        return head + "".join(line + "\n" for line in lines[-8:])

    def write_line(self, target: int, *, rhyme_with: str | None, context: list[str], needs_partner: bool = False):
        """A constrained line, or None when the vocabulary cannot meet the constraints."""
        import torch
        from transformers import LogitsProcessorList

        prompt = self.tokenizer(self._prompt(context), return_tensors="pt")
        length = prompt["input_ids"].shape[1]
        constraint = LineConstraint(
            self.table,
            prompt_length=length,
            target=target,
            rhyme=rhyming_part(rhyme_with) if rhyme_with else None,
            avoid_word=normalise_word(rhyme_with) if rhyme_with else None,
            end_ids=self.end_ids,
            needs_partner=needs_partner,
        )
        if not constraint.feasible:
            return None
        with torch.no_grad():
            # sampling a causal LM with return_dict_in_generate and output_scores: a decoder-only output with scores
            out = cast(
                "GenerateDecoderOnlyOutput",
                self.model.generate(
                    **prompt,
                    do_sample=True,
                    top_k=40,
                    temperature=0.9,
                    max_new_tokens=target + 1,
                    num_return_sequences=CANDIDATES_PER_LINE,
                    logits_processor=LogitsProcessorList([constraint]),
                    pad_token_id=self.end_ids[-1],
                    eos_token_id=self.end_ids,
                    output_scores=True,
                    return_dict_in_generate=True,
                ),
            )
        step_scores = cast("tuple[torch.Tensor]", out.scores)
        scores = self.model.compute_transition_scores(out.sequences, step_scores, normalize_logits=True)
        ranked = []
        for row in range(out.sequences.shape[0]):
            tokens = out.sequences[row, length:]
            keep = [t for t in tokens.tolist() if t not in self.end_ids]
            text = " ".join(self.table.word[t] for t in keep)
            finite = scores[row][torch.isfinite(scores[row])]
            spent = int(self.table.syllables[keep].sum()) if keep else 0
            if text and spent == target and text not in self.rules.used:
                ranked.append((float(finite.mean()) if len(finite) else -1e9, text))
        if not ranked:
            return None
        text = max(ranked)[1]
        self.rules.used.add(text)
        return make_line(text, target_syllables=target)

    def write(self, plans: list[SectionPlan]) -> Lyrics:
        adaptations: list[str] = []
        written: dict[str, LyricSection] = {}
        sections: list[LyricSection] = []
        context: list[str] = []
        for plan in plans:
            if plan.name == "chorus" and "chorus" in written:
                sections.append(repeat_section(written["chorus"], plan))
                continue
            lines: list[LyricLine] = []
            ends: dict[str, str] = {}
            for index, line_plan in enumerate(plan.lines):
                partner = ends.get(line_plan.rhyme)
                if plan.name == "chorus" and plan.scheme[index] == plan.scheme[0]:
                    line = self.rules.write_hook(line_plan.target_syllables)
                else:
                    later = plan.scheme[index + 1 :].count(line_plan.rhyme) > 0
                    line = self.write_line(line_plan.target_syllables, rhyme_with=partner, context=context, needs_partner=later and partner is None)
                    if line is None:
                        message = (
                            f"{plan.name} line {index + 1}: the LM gave no {line_plan.target_syllables}-syllable line"
                            + (f" rhyming with '{partner}'" if partner else "")
                            + "; the rule writer wrote it"
                        )
                        log.warning(message)
                        adaptations.append(message)
                        try:
                            line = self.rules.write_line(line_plan.target_syllables, rhyme_with=partner, avoid_end=set())
                        except SongmillError:  # the rule writer's words hold no rhyme for the LM's word either
                            dropped = f"{plan.name} line {index + 1}: no rhyme for '{partner}' in either vocabulary; the line is unrhymed"
                            log.warning(dropped)
                            adaptations.append(dropped)
                            line = self.rules.write_line(line_plan.target_syllables, rhyme_with=None, avoid_end=set())
                ends.setdefault(line_plan.rhyme, line.last_word)
                lines.append(line.model_copy(update={"rhyme": line_plan.rhyme}))
                context.append(line.text)
            section = LyricSection(name=plan.name, form_index=plan.form_index, scheme=plan.scheme, lines=lines)
            written.setdefault(plan.name, section)
            sections.append(section)
        hook = next((s.lines[0].text for s in sections if s.name == "chorus"), None)
        return Lyrics(title=self.rules.title, source="lm", model=self.name, hook=hook, sections=sections, adaptations=adaptations)
