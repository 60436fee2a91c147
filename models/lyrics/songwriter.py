"""The `lyrics` stage's work: the lyrics of one song, fitted to its form.

* Provided lyrics (the config's `lyrics`) are matched to the form's sections (`provided`),
  syllabified and checked against what each phrase can carry.
* Otherwise the rule writer (`writer`), or the LM writer (`lm_writer`) when the track names a
  lyrics model, writes them from the theme and mood.
* Instrumental tracks (no voice) get an empty `Lyrics` with source "instrumental".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from models.lyrics.writer import LinePlan, RuleWriter, SectionPlan, make_line, scheme_for
from songmill.core.errors import SongmillError
from songmill.core.lyric_blocks import assign_blocks, parse_blocks
from songmill.core.lyrics import VOCAL_SECTIONS, Lyrics, LyricSection, repeated_lines
from songmill.core.phrasing import bars_per_line, phrase_spans, syllable_capacity, target_syllables
from songmill.core.score import Score

log = logging.getLogger("songmill.lyrics")


def plan_sections(form: Score, genre: str) -> list[SectionPlan]:
    """Lines, syllable targets and rhyme schemes for every vocal section of the form."""
    bar_s = form.beats_per_bar * 60.0 / form.tempo_map[0].bpm
    plans: list[SectionPlan] = []
    first_chorus: tuple[int, int] | None = None  # (bars, lines) of the first chorus
    for index, section in enumerate(form.sections):
        if section.name not in VOCAL_SECTIONS:
            continue
        lines = section.bars // bars_per_line(section.bars, bar_s)
        if section.name == "chorus" and first_chorus is not None and section.bars != first_chorus[0]:
            # a longer or shorter chorus repeats the first one's lines at the same bars per line
            repeat = repeated_lines(range(first_chorus[1]), first_chorus[0], section.bars)
            lines = len(repeat) if repeat else lines
        elif section.name == "chorus" and first_chorus is None:
            first_chorus = (section.bars, lines)
        scheme = scheme_for(section.name, lines, genre)
        spans = phrase_spans(section, lines, form)
        lines_planned = tuple(
            LinePlan(target_syllables(end - start, genre, section.name, form.tempo_map[0].bpm), rhyme, syllable_capacity(end - start))
            for (start, end), rhyme in zip(spans, scheme)
        )
        plans.append(SectionPlan(section.name, index, scheme, lines_planned))
    return plans


def provided_lyrics(form: Score, text: str, *, title: str, where: str) -> Lyrics:
    blocks = parse_blocks(text, where=where)
    assigned = assign_blocks([s.name for s in form.sections], blocks, where=where)
    sections = []
    first_bars: dict[int, int] = {}  # a block's first section's bars (by the block's line number)
    for index, block in sorted(assigned.items()):
        section = form.sections[index]
        first = first_bars.setdefault(block.line_number, section.bars)
        # a block sung again in a longer or shorter section: its lines in order, cut short or begun again
        sung = (repeated_lines(list(enumerate(block.lines)), first, section.bars) if first != section.bars else None) or list(enumerate(block.lines))
        spans = phrase_spans(section, len(sung), form)
        lines = []
        for (offset, line_text), (start, end) in zip(sung, spans):
            try:
                line = make_line(line_text)
            except SongmillError as err:
                raise SongmillError(f"{where} line {block.line_number + offset + 1}: {err}") from None
            capacity = syllable_capacity(end - start)
            if len(line.syllables) > capacity:
                bars = section.bars / len(sung)
                raise SongmillError(
                    f"{where} line {block.line_number + offset + 1}: '{line_text}' has {len(line.syllables)} syllables, "
                    f"but its phrase in the {section.name} ({bars:g} bar{'' if bars == 1 else 's'} at {form.tempo_map[0].bpm:g} BPM) carries at most {capacity}; "
                    f"shorten the line or give the {section.name} more bars in the structure"
                )
            lines.append(line)
        sections.append(LyricSection(name=section.name, form_index=index, lines=lines))
    hook = next((ln.text for s in sections if s.name == "chorus" for ln in s.lines if title.lower() in ln.text.lower()), None)
    return Lyrics(title=title, source="provided", hook=hook, sections=sections)


def write_lyrics(
    form: Score,
    *,
    title: str,
    theme: str,
    mood: str,
    genre: str,
    provided: str | None,
    instrumental: bool,
    rng: np.random.Generator,
    batch_index: int = 0,
    batch_size: int = 1,
    lm_dir: Path | None = None,
    lm_name: str | None = None,
    seed: int = 0,
    where: str = "lyrics",
) -> Lyrics:
    if instrumental:
        return Lyrics(title=title, source="instrumental")
    if provided is not None:
        return provided_lyrics(form, provided, title=title, where=where)
    rules = RuleWriter(title=title, theme=theme, mood=mood, genre=genre, rng=rng, batch_index=batch_index, batch_size=batch_size)
    plans = plan_sections(form, genre)
    if not plans:
        raise SongmillError(
            f"{where}: the song form has no vocal section (verse, chorus, bridge…) to write lyrics for; add one to the structure or leave out the voice"
        )
    if lm_dir is not None:
        from models.lyrics.lm_writer import LMWriter

        return LMWriter(lm_dir, model_name=lm_name or lm_dir.name, rule_writer=rules, theme=theme, mood=mood, seed=seed).write(plans)
    return rules.write(plans)
