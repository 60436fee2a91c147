"""The rule writer: lyrics from a theme and a mood, with metre and rhyme from the CMU dictionary.

For each vocal section of the form it plans lines (count, target syllables, rhyme scheme),
then fills grammatical templates (`wordbank`) with words weighted by the theme and mood, and
keeps the candidate that hits the syllable target exactly, ends on the scheme's rhyme and
alternates stress best. The chorus carries the title as its hook and is written once, then
sung identically at every chorus.

Batch rule: in a release of N tracks, a line belongs to track `sha1(line) mod N`; each track
only writes lines it owns, so no line repeats across the songs of one batch by accident (the
hook, made from each song's own title, is exempt).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

import numpy as np

from models.lyrics import wordbank
from songmill.core.errors import SongmillError
from songmill.core.lyrics import LyricLine, Lyrics, LyricSection, Word
from songmill.core.phonetics import in_dictionary, normalise_word, pronounce, rhyming_part, syllabify, syllable_count, tokenize_line, words_rhyme

log = logging.getLogger("songmill.lyrics")

SCHEMES = {  # per section kind and line count
    "verse": {2: "AA", 4: "ABAB", 6: "ABABCC", 8: "ABABCDCD"},
    "pre-chorus": {2: "AA", 4: "AABB", 6: "AABBCC", 8: "AABBCCDD"},
    "chorus": {2: "AA", 4: "ABAB", 6: "ABABCC", 8: "ABABCDCD"},
    "post-chorus": {2: "AA", 4: "AABB", 6: "AABBCC", 8: "AABBCCDD"},
    "bridge": {2: "AA", 4: "AABB", 6: "AABBCC", 8: "AABBCCDD"},
}
GENRE_SCHEMES = {"hip-hop": {"verse": {n: "".join(chr(65 + i // 2) for i in range(n)) for n in (2, 4, 6, 8)}}}  # couplets
ATTEMPTS_PER_LINE = 400
MAX_EXTRA_SYLLABLES = 3  # how much longer than planned a line may grow when nothing of its length fits
SECTION_ATTEMPTS = 6
MAX_TEMPLATE_USES = 2  # per song
LONG_LINE = 10  # syllables: longer lines are written as two half-lines


@dataclass(frozen=True)
class LinePlan:
    target_syllables: int
    rhyme: str  # scheme letter
    capacity: int = 16  # the most syllables the line's phrase can carry (songmill.core.phrasing.syllable_capacity)


@dataclass(frozen=True)
class SectionPlan:
    name: str
    form_index: int
    scheme: str
    lines: tuple[LinePlan, ...]


def scheme_for(section: str, lines: int, genre: str) -> str:
    table = GENRE_SCHEMES.get(genre, {}).get(section) or SCHEMES.get(section, SCHEMES["verse"])
    return table.get(lines) or "".join(chr(65 + i // 2) for i in range(lines))


def theme_words(theme: str) -> list[str]:
    """Nouns-to-be from the theme: dictionary words that are not function words, -ing or -ly
    forms; plurals singularised when the singular is known ("lanterns" → "lantern")."""
    words = []
    tokens = [normalise_word(w) for w in tokenize_line(theme)]
    for index, key in enumerate(tokens):
        after_to = index > 0 and tokens[index - 1] == "to"  # "to come": a verb
        if (
            key in wordbank.STOP_WORDS
            or key in wordbank.COMMON_VERBS
            or after_to
            or len(key) < 3
            or key.endswith(("ing", "ly", "ed"))
            or not in_dictionary(key)
        ):
            continue
        if key.endswith("s") and not key.endswith("ss") and in_dictionary(key[:-1]):
            key = key[:-1]
        if key in wordbank.VERBS or key in wordbank.ADJECTIVES:
            continue
        if key not in words:
            words.append(key)
    return words


class RuleWriter:
    """Writes a song's lyrics; one instance per song (it remembers the lines already used)."""

    def __init__(self, *, title: str, theme: str, mood: str, genre: str, rng: np.random.Generator, batch_index: int = 0, batch_size: int = 1):
        if not theme.strip():
            raise SongmillError("theme is empty; the lyrics writer needs a theme (a few words on what the song is about)")
        self.title, self.mood, self.genre, self.rng = title, mood, genre, rng
        self.batch_index, self.batch_size = batch_index, max(batch_size, 1)
        self.used: set[str] = set()
        self.section_words: set[str] = set()  # content words already in the section being written
        self.song_words: set[str] = set()
        self.template_uses: dict[str, int] = {}  # so a song does not lean on one sentence shape
        themed = theme_words(theme)
        self.theme = set(themed)
        mood_words = set(wordbank.MOOD_WORDS.get(mood, ()))
        self.slots = {
            "N": self._weighted(list(dict.fromkeys(wordbank.NOUNS + themed)), set(themed), mood_words),
            "A": self._weighted(wordbank.ADJECTIVES, set(), mood_words),
            "V": self._weighted(list(dict.fromkeys(wordbank.VERBS)), set(), mood_words),
            "X": self._weighted(list(dict.fromkeys(wordbank.TRANSITIVE_VERBS)), set(), mood_words),
            "P": self._weighted(wordbank.PREPOSITIONS, set(), set()),
        }
        self.rhyme_classes = self._rhyme_classes()
        self.templates_by_slot: dict[str, list[str]] = {}
        for template in wordbank.TEMPLATES:
            self.templates_by_slot.setdefault(_end_slot(template), []).append(template)

    @staticmethod
    def _weighted(words: list[str], themed: set[str], mood: set[str]) -> tuple[list[str], np.ndarray]:
        weights = np.array([4.0 if w in themed else 2.5 if w in mood else 1.0 for w in words])
        return words, weights / weights.sum()

    def _rhyme_classes(self) -> dict[str, dict[str, list[str]]]:
        """rhyming part → slot type → words, for every rhyme with at least two words."""
        classes: dict[str, dict[str, list[str]]] = {}
        for slot in ("N", "A", "V", "X"):
            for word in self.slots[slot][0]:
                classes.setdefault(rhyming_part(word), {}).setdefault(slot, []).append(word)
        return {part: slots for part, slots in classes.items() if sum(len(w) for w in slots.values()) >= 2}

    # -- one line
    def _owned(self, line: str) -> bool:
        if self.batch_size == 1:
            return True
        digest = hashlib.sha1(line.lower().encode()).digest()
        return int.from_bytes(digest[:4], "big") % self.batch_size == self.batch_index

    def _pick(self, slot: str) -> str:
        words, weights = self.slots[slot]
        return words[self.rng.choice(len(words), p=weights)]

    def _fill(self, template: str, end_word: str) -> str:
        used: set[str] = {end_word} | self.section_words

        def slot(match: re.Match) -> str:
            kind, final = match.group(1), match.group(2) == "$"
            if final:
                return end_word
            for _ in range(8):
                word = self._pick(kind)
                fresh = word not in self.song_words or self.rng.random() < 0.3  # vary the imagery across the song
                if word not in used and fresh:
                    break
            used.add(word)
            return word

        return _articles(re.sub(r"\{([NAVXP])(\$?)\}", slot, template))

    def write_line(self, target: int, *, rhyme_with: str | None, avoid_end: set[str]) -> LyricLine:
        """A line of exactly `target` syllables whose last word rhymes with `rhyme_with` (if given)."""
        best, best_score, best_template = None, None, ""
        partners = (
            [(w, slot) for slot, words in self.rhyme_classes.get(rhyming_part(rhyme_with), {}).items() for w in words if w not in avoid_end]
            if rhyme_with
            else []
        )
        if rhyme_with is not None and not partners:
            raise SongmillError(f"the lyrics writer has no unused word rhyming with '{rhyme_with}'")
        taken_sounds = {rhyming_part(w) for w in avoid_end}  # a new rhyme letter needs a new sound
        for attempt in range(ATTEMPTS_PER_LINE * self.batch_size):
            if rhyme_with is None:
                template = wordbank.TEMPLATES[self.rng.integers(len(wordbank.TEMPLATES))]
                end_word = self._pick(_end_slot(template))
                if rhyming_part(end_word) in taken_sounds:
                    continue
                if sum(len(w) for w in self.rhyme_classes.get(rhyming_part(end_word), {}).values()) < 3:
                    continue  # a first line must leave a choice of rhymes for its partner
            else:
                end_word, slot = partners[self.rng.integers(len(partners))]
                options = self.templates_by_slot[slot]
                template = options[self.rng.integers(len(options))]
            if self.template_uses.get(template, 0) >= MAX_TEMPLATE_USES:
                continue
            text = self._fill(template, end_word)
            if target > LONG_LINE:  # long (rap) lines: a free half-line, then the rhyming one
                opening = wordbank.TEMPLATES[self.rng.integers(len(wordbank.TEMPLATES))]
                text = self._fill(opening, self._pick(_end_slot(opening))) + ", " + text
            if text in self.used or not self._owned(text):
                continue
            words = tokenize_line(text)
            if sum(syllable_count(w) for w in words) != target:
                continue
            themed = any(normalise_word(w) in self.theme for w in words)  # keep the song on its subject
            reused = self.template_uses.get(template, 0)  # a sentence shape heard before scores lower
            score = _metre_score(words) + (1.0 if themed else 0.0) - reused + self.rng.random() * 0.5
            if best_score is None or score > best_score:
                best, best_score, best_template = text, score, template
            if attempt > 60 and best is not None:
                break
        if best is None:
            rhyme = f" rhyming with '{rhyme_with}'" if rhyme_with else ""
            raise SongmillError(f"the lyrics writer found no {target}-syllable line{rhyme}; change the tempo or the section lengths")
        self.used.add(best)
        self.template_uses[best_template] = self.template_uses.get(best_template, 0) + 1
        self.section_words |= {normalise_word(w) for w in tokenize_line(best)} - wordbank.STOP_WORDS
        self.song_words |= self.section_words
        return make_line(best, target_syllables=target)

    def write_hook(self, target: int) -> LyricLine:
        """The title line of the chorus: the hook template nearest the syllable target."""
        options = [t.replace("{T}", self.title) for t in wordbank.HOOK_TEMPLATES]
        counts = [sum(syllable_count(w) for w in tokenize_line(o)) for o in options]
        best = min(range(len(options)), key=lambda i: (abs(counts[i] - target), counts[i] > target, i))
        return make_line(options[best], target_syllables=target)

    # -- sections
    def write_section(self, plan: SectionPlan) -> LyricSection:
        """Write a section; a rhyme that cannot be completed restarts it with fresh choices.

        Where no choice fits (short phrases at slow tempi ask for lines of four syllables, which
        few sentence shapes make), the lines are allowed one syllable more at a time, up to
        MAX_EXTRA_SYLLABLES and never past what a phrase can carry: the song adapts (logged)
        instead of failing."""
        failure: SongmillError | None = None
        for extra in range(MAX_EXTRA_SYLLABLES + 1):
            lines = tuple(LinePlan(min(ln.target_syllables + extra, ln.capacity), ln.rhyme, ln.capacity) for ln in plan.lines)
            if extra and lines == plan.lines:
                break  # every phrase is full: nothing longer fits
            attempt_plan = SectionPlan(plan.name, plan.form_index, plan.scheme, lines)
            for _ in range(SECTION_ATTEMPTS):
                try:
                    section = self._write_section_once(attempt_plan)
                except SongmillError as err:
                    failure = err
                    continue
                if extra:
                    log.warning("%s %d: no lines of the planned length fit; wrote them %d syllable(s) longer", plan.name, plan.form_index + 1, extra)
                return section
            plan = attempt_plan
        assert failure is not None
        raise failure

    def _write_section_once(self, plan: SectionPlan) -> LyricSection:
        self.section_words = set()
        lines: list[LyricLine] = []
        ends: dict[str, str] = {}
        for index, line_plan in enumerate(plan.lines):
            if plan.name == "chorus" and plan.scheme[index] == plan.scheme[0]:
                line = self.write_hook(line_plan.target_syllables)  # the hook returns on every A line
            else:
                partner = ends.get(line_plan.rhyme)
                used_ends = {ln.last_word.lower() for ln in lines}
                line = self.write_line(line_plan.target_syllables, rhyme_with=partner, avoid_end=used_ends)
            ends.setdefault(line_plan.rhyme, line.last_word)
            lines.append(line.model_copy(update={"rhyme": line_plan.rhyme}))
        return LyricSection(name=plan.name, form_index=plan.form_index, scheme=plan.scheme, lines=lines)

    def write(self, plans: list[SectionPlan]) -> Lyrics:
        written: dict[str, LyricSection] = {}
        sections = []
        for plan in plans:
            if plan.name == "chorus" and "chorus" in written:  # the chorus repeats identically
                sections.append(repeat_section(written["chorus"], plan))
                continue
            section = self.write_section(plan)
            written.setdefault(plan.name, section)
            sections.append(section)
        hook = next((s.lines[0].text for s in sections if s.name == "chorus"), None)
        return Lyrics(title=self.title, source="writer", hook=hook, sections=sections)


def repeat_section(first: LyricSection, plan: SectionPlan) -> LyricSection:
    """A later chorus: the first one's lines, cut short or begun again when the plan gives it
    fewer or more lines (a chorus longer or shorter than the first; see plan_sections)."""
    count = len(plan.lines)
    lines = [first.lines[i % len(first.lines)] for i in range(count)]
    scheme = "".join(first.scheme[i % len(first.scheme)] for i in range(count)) if first.scheme else None
    return first.model_copy(update={"form_index": plan.form_index, "lines": lines, "scheme": scheme})


def _end_slot(template: str) -> str:
    match = re.search(r"\{([NAVX])\$\}", template)
    assert match is not None, f"template {template!r} has no end slot"  # every wordbank template has one
    return match.group(1)


def _articles(text: str) -> str:
    """'a open door' → 'an open door' (by the next word's first phoneme)."""

    def fix(match: re.Match) -> str:
        vowel_sound = pronounce(match.group(2))[0][-1].isdigit()
        return f"{match.group(1)}{'an' if vowel_sound else 'a'} {match.group(2)}"

    return re.sub(r"(^|\s)a\s+([A-Za-z']+)", fix, text)


def _metre_score(words: list[str]) -> float:
    """Higher when stressed and unstressed syllables alternate: no clashes, no long lapses."""
    stresses = [s.stressed for w in words for s in syllabify(w)]
    clashes = sum(1 for a, b in zip(stresses, stresses[1:]) if a and b)
    lapses = sum(1 for i in range(len(stresses) - 2) if not any(stresses[i : i + 3]))
    ends_strong = 1.0 if stresses and stresses[-1] else 0.0
    return -clashes - lapses + ends_strong


def make_line(text: str, *, target_syllables: int | None = None, rhyme: str | None = None) -> LyricLine:
    words = [Word(text=w, syllables=syllabify(w)) for w in tokenize_line(text)]
    if not words:
        raise SongmillError(f"lyric line '{text}' has no words to sing")
    return LyricLine(text=text, words=words, rhyme=rhyme, target_syllables=target_syllables)


def replace_lines(lyrics: Lyrics, edits: dict[int, dict[int, str]], *, where: str) -> Lyrics:
    """Lines replaced by given words (the song editor's): {form index: {1-based line: words}}.
    A new line keeps its syllable target, and its rhyme letter when it still rhymes (else it is
    out of the scheme, and the adaptations say so); the section keeps the line it replaced
    (`LyricSection.replaced`), from which compose sings the rest of the song as before.

    Raises SongmillError naming the section when it has no lyrics or no such line."""
    by_index = {section.form_index: section for section in lyrics.sections}
    notes: list[str] = []
    for index in edits:
        if index not in by_index:
            raise SongmillError(f"{where}: section {index + 1} has no lyrics to replace (an instrumental section)")
    sections = []
    for section in lyrics.sections:
        changes = edits.get(section.form_index, {})
        lines, replaced = list(section.lines), dict(section.replaced)
        for number, words in sorted(changes.items()):
            if not 1 <= number <= len(lines):
                raise SongmillError(f"{where}: the {section.name} (section {section.form_index + 1}) has {len(lines)} lines; there is no line {number}")
            old = lines[number - 1]
            replaced.setdefault(number - 1, old)
            new = make_line(words, target_syllables=old.target_syllables)
            partners = [ln.last_word for i, ln in enumerate(lines) if i != number - 1 and old.rhyme is not None and ln.rhyme == old.rhyme]
            if all(words_rhyme(new.last_word, partner) for partner in partners):
                new = new.model_copy(update={"rhyme": old.rhyme})
            else:  # a person's words: kept as given, out of the rhyme scheme (not a rhyme the writer missed)
                notes.append(f"line {number} of section {section.form_index + 1} ('{words}') does not rhyme with its partner; kept as given, out of the scheme")
            lines[number - 1] = new
        sections.append(section.model_copy(update={"lines": lines, "replaced": replaced}) if changes else section)
    notes += [f"{len(lines)} line(s) of section {index + 1} replaced by the editor" for index, lines in sorted(edits.items())]
    return lyrics.model_copy(update={"sections": sections, "adaptations": [*lyrics.adaptations, *notes]})


def rewritten_lines(
    lyrics: Lyrics, edits: dict[int, dict[int, int]], *, title: str, theme: str, mood: str, genre: str, where: str
) -> dict[int, dict[int, str]]:
    """Lines the rule writer writes again (the song editor's "rewrite line 2 of verse 1"):
    {form index: {1-based line: seed}} → {form index: {line: new words}}, each new line of the
    old one's syllables, rhyming with its partner where it has one, and not a line the song
    already sings. Apply them with `replace_lines`."""
    by_index = {section.form_index: section for section in lyrics.sections}
    sung = {line.text for section in lyrics.sections for line in section.lines}
    out: dict[int, dict[int, str]] = {}
    for index, lines in sorted(edits.items()):
        section = by_index.get(index)
        if section is None:
            raise SongmillError(f"{where}: section {index + 1} has no lyrics to rewrite (an instrumental section)")
        for number, seed in sorted(lines.items()):
            if not 1 <= number <= len(section.lines):
                raise SongmillError(f"{where}: the {section.name} (section {index + 1}) has {len(section.lines)} lines; there is no line {number}")
            old = section.lines[number - 1]
            writer = RuleWriter(title=title, theme=theme, mood=mood, genre=genre, rng=np.random.default_rng(seed))
            writer.used = set(sung)
            partners = [ln for i, ln in enumerate(section.lines) if i != number - 1 and old.rhyme is not None and ln.rhyme == old.rhyme]
            line = writer.write_line(
                old.target_syllables or len(old.syllables),
                rhyme_with=partners[0].last_word if partners else None,
                avoid_end={ln.last_word for ln in section.lines},
            )
            out.setdefault(index, {})[number] = line.text
            sung.add(line.text)
    return out
