"""The lyrics data model (`lyrics.json`): sections → lines → words → syllables with phonemes.

Every vocal section of the song form (verse, pre-chorus, chorus, post-chorus, bridge) gets one
`LyricSection`, in form order; `form_index` points at its `Section` in the score. Instrumental
sections (intro, solo, instrumental, breakdown, outro) have none.

`LyricLine.rhyme` is the line's letter in its section's scheme (e.g. "ABAB"); lines with the
same letter end in words that rhyme. `target_syllables` is what the writer aimed for (None for
provided lyrics).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, model_serializer

from songmill.core.score import Syllable

T = TypeVar("T")

VOCAL_SECTIONS = ("verse", "pre-chorus", "chorus", "post-chorus", "bridge")
LYRICS_FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Word(_Model):
    text: str
    syllables: list[Syllable]


class LyricLine(_Model):
    text: str
    words: list[Word]
    rhyme: str | None = None  # the line's letter in the section's rhyme scheme
    target_syllables: int | None = None

    @property
    def syllables(self) -> list[Syllable]:
        return [s for w in self.words for s in w.syllables]

    @property
    def last_word(self) -> str:
        return self.words[-1].text


class LyricSection(_Model):
    name: str  # a vocal section name (VOCAL_SECTIONS)
    form_index: int  # index of this section in the score's sections
    scheme: str | None = None  # e.g. "ABAB"; None when not planned (provided lyrics)
    lines: list[LyricLine]
    # lines the song editor replaced: 0-based line → the line as written before (compose sings the
    # rest of the song from these, so only this section's melody can change); left out when empty
    replaced: dict[int, LyricLine] = {}

    @model_serializer(mode="wrap")
    def _without_empty_replaced(self, handler):
        data = handler(self)
        if not self.replaced:
            data.pop("replaced", None)  # lyrics.json as before the editor existed
        return data

    def as_written(self) -> "LyricSection":
        """The section with the lines as written before the editor replaced any (itself when none were)."""
        if not self.replaced:
            return self
        lines = [self.replaced.get(index, line) for index, line in enumerate(self.lines)]
        return self.model_copy(update={"lines": lines, "replaced": {}})


class Lyrics(_Model):
    format_version: int = LYRICS_FORMAT_VERSION
    title: str
    source: Literal["provided", "writer", "lm", "instrumental"]
    model: str | None = None  # registry name of the LM for source "lm"
    hook: str | None = None  # the chorus line that carries the title
    sections: list[LyricSection] = []
    adaptations: list[str] = []  # every change made to fit the song, also logged

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    def save_json(self, path: Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load_json(cls, path: Path) -> "Lyrics":
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))

    def section_at(self, form_index: int) -> LyricSection | None:
        return next((s for s in self.sections if s.form_index == form_index), None)

    @property
    def all_lines(self) -> list[str]:
        return [line.text for section in self.sections for line in section.lines]


def repeated_lines(first: Sequence[T], first_bars: int, bars: int) -> list[T] | None:
    """What a repeat of a section (a later chorus) sings when it is longer or shorter than the
    first: the first's lines in order, cut short or begun again, each line as many bars as in the
    first. None when the repeat's bars do not hold a whole number of those lines."""
    count = len(first) * bars / first_bars if first_bars else 0
    if not first or count < 1 or not float(count).is_integer():
        return None
    return [first[i % len(first)] for i in range(int(count))]
