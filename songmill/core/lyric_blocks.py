"""Lyrics a config provides: `[section]` tags and lines → blocks, matched to the song form.

Matching rule (documented in the README): the form's sections take the blocks in order; a
chorus, pre-chorus or post-chorus with no block of its own at that point sings the last block
of its name again (write a chorus once, it is sung at every chorus; a chorus before the first
[chorus] block sings that block). Blocks left over, or a vocal section with no block to sing,
are errors naming the lyric line. Instrumental sections (intro, solo, …) take no block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from songmill.core.errors import SongmillError
from songmill.core.lyrics import VOCAL_SECTIONS

REPEATING = ("chorus", "pre-chorus", "post-chorus")


@dataclass(frozen=True)
class LyricBlock:
    name: str  # section name from the tag, without a number ("[verse 2]" → "verse")
    lines: tuple[str, ...]
    line_number: int  # 1-based line of the tag inside the lyrics text


def parse_blocks(text: str, *, where: str = "lyrics") -> list[LyricBlock]:
    """Split tagged lyrics into blocks. Raises SongmillError for lines before the first tag or
    an empty block."""
    blocks: list[LyricBlock] = []
    name: str | None = None
    lines: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        tag = re.fullmatch(r"\[([^\]]*)\]", line)
        if tag:
            if name is not None:
                blocks.append(_block(name, lines, start, where))
            name, lines, start = re.sub(r"\s*\d+$", "", tag.group(1).strip().lower()), [], number
        elif line:
            if name is None:
                raise SongmillError(f"{where} line {number}: '{line}' comes before any section tag; start the lyrics with a tag such as [verse]")
            lines.append(line)
    if name is not None:
        blocks.append(_block(name, lines, start, where))
    return blocks


def _block(name: str, lines: list[str], start: int, where: str) -> LyricBlock:
    if not lines:
        raise SongmillError(f"{where} line {start}: the [{name}] block has no lines; write its lines or remove the tag")
    return LyricBlock(name, tuple(lines), start)


def form_from_blocks(blocks: list[LyricBlock]) -> list[str]:
    """A song form for lyrics given without a structure: the blocks in order, framed by an intro
    and an outro unless the lyrics tag their own."""
    names = [b.name for b in blocks]
    if names[0] != "intro":
        names.insert(0, "intro")
    if names[-1] != "outro":
        names.append("outro")
    return names


def assign_blocks(form_names: list[str], blocks: list[LyricBlock], *, where: str = "lyrics") -> dict[int, LyricBlock]:
    """Which block each form section sings (form index → block), by the matching rule above."""
    assigned: dict[int, LyricBlock] = {}
    last_of: dict[str, LyricBlock] = {}
    position = 0
    for index, name in enumerate(form_names):
        if position < len(blocks) and blocks[position].name == name:
            assigned[index] = last_of[name] = blocks[position]
            position += 1
        elif name in REPEATING and (name in last_of or any(b.name == name for b in blocks[position:])):
            assigned[index] = last_of.get(name) or next(b for b in blocks[position:] if b.name == name)
        elif name in VOCAL_SECTIONS:
            upcoming = f"the next block is [{blocks[position].name}] at line {blocks[position].line_number}" if position < len(blocks) else "no blocks are left"
            raise SongmillError(
                f"{where}: the structure's {name} (section {index + 1}) has no [{name}] block to sing ({upcoming}); add the block or change the structure"
            )
    if position < len(blocks):
        left = blocks[position]
        raise SongmillError(
            f"{where} line {left.line_number}: the [{left.name}] block has no matching section in the structure ({', '.join(form_names)}); add the section to the structure or remove the block"
        )
    return assigned
