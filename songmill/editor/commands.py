"""English edit commands → typed operations, by rules: the same text always gives the same operations.

    parse_command("slow it down to 92 and less reverb on the voice", song)
    # [Tempo(to_bpm=92.0), Send(effect="reverb", on="vocal", by_db=-6.0)]

A command is one or more clauses ("…, and …"); each clause becomes one operation (two for a
target that is two parts, such as "the backing vocals"). Words are read after spelling
correction against what the rules know and the song's own names (its sections, parts and the
registry's voices), so "revreb" and "chrous 2" work; word order is free ("to 92, slow it").

Relative amounts: "a bit" / "slightly" / "a little" are the small step of `STEPS`, no amount
the medium one, "much" / "a lot" / "way" / "really" the large one (operations.STEPS: 1.5 / 3 /
6 dB for a level, 3 / 6 / 10 dB for reverb and delay, 3 / 6 / 12 % for tempo, 1 / 2 / 4 dB
for brighter or warmer, 2 / 4 / 8 bars).

A clause no rule reads, or one that names a section the song has several of where one is
needed, raises `CommandError` with the nearest commands that would work.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any, Literal

from songmill.core.errors import SongmillError
from songmill.core.vocab import GENRES, MOODS, SECTION_NAMES, VOICE_EXPRESSION_LIMITS, VOICE_STYLES, folded
from songmill.editor import operations as ops
from songmill.editor.operations import STEPS, SongFacts


class CommandError(SongmillError):
    """A command the rules cannot read; `suggestions` are the nearest commands that would work."""

    def __init__(self, message: str, suggestions: list[str]):
        shown = "; ".join(f'"{s}"' for s in suggestions)
        super().__init__(f"{message}; nearest commands that work: {shown}" if suggestions else message)
        self.suggestions = suggestions


# ---------------------------------------------------------------- vocabulary

SMALL = ("a bit", "a little", "slightly", "a touch", "a tad", "little bit", "somewhat", "just a bit", "little", "lil", "bit")
LARGE = ("much", "a lot", "way", "far", "really", "lots", "very", "massively", "loads", "heaps", "hugely", "drown")
# a level's direction; complaints read as their remedy ("too quiet", "buried": up)
UP: tuple[str, ...] = ("louder", "up", "more", "raise", "boost", "increase", "higher", "forward", "bigger", "harder", "punchier", "stronger", "lift", "on top")
UP += ("too quiet", "buried", "lost", "drown", "push", "widen", "wider", "more loud", "so quiet", "is quiet", "are quiet", "bit quiet")
UP += ("punchy", "upfront", "up front", "prominent", "presence", "present", "powerful")  # a producer's "more …" of a part or section
DOWN: tuple[str, ...] = (
    "quieter",
    "down",
    "less",
    "lower",
    "reduce",
    "cut",
    "decrease",
    "softer",
    "back",
    "gentler",
    "calmer",
    "smaller",
    "too loud",
    "weaker",
)
DOWN += ("tame", "loud", "fewer", "relax", "ease", "pull back", "back off", "drowning", "too much", "more quiet", "narrower", "pull")
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5, "5th": 5}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "sixteen": 16}
VOICE_WORDS = ("vocal", "vocals", "voice", "singer", "singing", "lead", "lead vocal", "vox")
BACKING_WORDS = ("backing vocals", "backing", "harmonies", "harmony", "backings", "doubles", "double")
PART_SYNONYMS = {
    "drum": "drums",
    "kit": "drums",
    "beat": "drums",
    "bassline": "bass",
    "bass line": "bass",
    "keys": "piano",
    "guitars": "guitar",
    "pads": "pad",
    "strings": "pad",
}
MOOD_SYNONYMS = {
    "darker": "dark",
    "brighter": "bright",
    "sadder": "melancholic",
    "sad": "melancholic",
    "happier": "bright",
    "happy": "bright",
    "moodier": "dark",
    "gloomier": "dark",
    "dreamier": "dreamy",
    "calmer": "calm",
    "more energy": "energetic",
    "more energetic": "energetic",
    "more playful": "playful",
}
KEY_RE = re.compile(r"\b([a-g])\s?(#|b|sharp|flat)?\s(major|minor|dorian|mixolydian|lydian|phrygian|aeolian|ionian)\b")

FILLER = (
    "the it a an to of in on for please make can you could we should would and with by this that song track its it's is be more less "
    "turn bring give let put set sing sung use want need some way bit little lot much just too very so now all at from into than "
    "new another different other again twice also then overall whole mix master version sound feel "
    "move knock take get keep drown center centre sound long short tone side go them they"
)


def _vocabulary(song: SongFacts) -> set[str]:
    words = set(FILLER.split())
    for phrase in (*SMALL, *LARGE, *UP, *DOWN, *ORDINALS, *NUMBER_WORDS, *VOICE_WORDS, *BACKING_WORDS, *PART_SYNONYMS, *MOOD_SYNONYMS, *RULE_WORDS):
        words.update(phrase.split())
    words.update(MOODS + GENRES + VOICE_STYLES + SECTION_NAMES)
    words.update(
        ("pre", "post", "hip", "hop", "bpm", "semitone", "semitones", "bars", "bar", "percent", "db", "left", "right", "centre", "center", "last", "final")
    )
    words.update(folded(name) for name in song.identities)
    for part in song.parts:
        words.update(part.split("-"))
    return words


RULE_WORDS = (
    "melody tune notes rewrite redo fresh change key modulate modulation lift transpose semitone step steps tone half octave major minor "
    "tempo speed faster slower slow quicker pace speed up slow down bpm vibrato breathiness breathier breathy airier portamento glide "
    "slides scoops dynamics dynamic tension strained overshoot reverb verb room wet wetter drier dry echo delay space ambience mute unmute "
    "silence remove drop cut delete skip lose without no back repeat double longer lengthen extend stretch shorter shorten trim pan hard "
    "brighter sparkle air crisper warmer darker duller warmth mellower harsh arrangement instrumentation style as play mood feel "
    "voice sing sings sung hit harder punchier energy quieter softer louder swap switch replace instead add layer rewrite write new line words "
    "chords harmony harmonies progression reharmonise reharmonize rhythm beat groove drum pattern"
).split()  # not "chord": the spelling corrector would read "choir" as it; "chord" itself reads as "chords"

# words that make a clause a request (a clause with none of them after a request is a remark: "it's cheesy")
KEYWORDS = (*UP, *DOWN, *RULE_WORDS, *MOODS, *GENRES, *VOICE_STYLES, *SECTION_NAMES)


# ---------------------------------------------------------------- parsing


def parse_command(text: str, song: SongFacts) -> list:
    """The operations a command asks for (see the module docstring). Raises CommandError."""
    replaced = _replaced_line(text, song)  # quoted words are read before anything else touches them
    if replaced is not None:
        return replaced
    foreign_command = _in_another_language(_without_names(text, song))  # as typed: the reading strips its accents
    # read with its accents dropped: "zoë" as "zoe", not cut to "zo" (a clause with accents
    # outside the song's names is refused as another language before it is read)
    clean = _normalise(folded(text))
    if not clean:
        raise CommandError("the command is empty (say what to change, such as 'slow it down to 92')", example_commands(song)[:3])
    vocabulary = _vocabulary(song)
    readings: list[tuple[str, list]] = []  # (clause, its operations)
    clauses = [_correct_spelling(c, vocabulary) for c in _clauses(clean)]
    said = _clauses_as_typed(text, len(clauses)) if len(clauses) > 1 else [text.strip()]  # each clause quoted with its accents ("más reverberación")
    while clauses:
        clause, words = clauses.pop(0), said.pop(0)
        if _in_another_language(_without_names(words, song)):  # even where some of its words would read: "moins de réverbération" is not "more reverb"
            raise CommandError(f'"{words}" is not a command songmill understands (it reads English commands only)', nearest_commands(clause, song))
        foreign = foreign_command  # the clause itself reads as English (above); the command around it may not
        unknown = _more_of_something_unknown(clause, vocabulary)
        if unknown and not foreign:  # "make the voice more emotional" is not "louder vocals", whatever else it names
            raise CommandError(f'"{words}": songmill does not know how to make a song "{unknown}"', nearest_commands(clause, song))
        named, refused = _parts_named_before(clause, readings, song), None
        try:
            read, clause = _read_in_context(clause, readings, song)
        except CommandError as err:
            if named is None:
                raise
            # "pan it left" names no part by itself: the clause before did ("turn the guitar down, then pan it left")
            read, refused = _read_clause(re.sub(r"\b(?:it|them)\b", named, clause, count=1), song), err
        if read is None and readings and not foreign:  # "…in reverb, pull it back a lot": the clause finishes the one before
            joined = f"{readings[-1][0]} {clause}"
            read = _read_clause(joined, song)
            if read == readings[-1][1] and _unread_request(clause, vocabulary):
                read = None  # "more bass and less treble": not the end of the clause before, but a request of its own that cannot be read
            if read is not None and _opposite(read, readings[-1][1]):
                ops.contradictions([*readings[-1][1], *read])  # "mute the guitar, then unmute it": two asks that undo each other
            if read is not None:
                readings.pop()
                clause = joined
        if read is None and clauses:  # "to 92, slow it": one clause said in two pieces
            joined = f"{clause} {clauses[0]}"
            read = _read_clause(joined, song)
            if read is not None:
                clause = joined
                clauses.pop(0), said.pop(0)
        if read is None and refused is not None:
            raise refused
        if read is None and readings and not foreign and not _has(clause, *KEYWORDS) and not _parts(clause, song):  # "…, it's cheesy": a remark, no request
            continue
        if read is None:
            english_only = " (it reads English commands only)" if foreign else ""
            raise CommandError(f'"{words}" is not a command songmill understands{english_only}', nearest_commands(clause, song))
        if readings and _said_again(clause, read, *readings[-1]):
            # one request said twice ("chorus 2 should hit harder, make it louder"; "more slow, 96 bpm"): the more precise wins, else the first
            if _precise(clause) and not _precise(readings[-1][0]):
                readings[-1] = (clause, read)
            continue
        readings.append((clause, read))
    operations = [op for _, read in readings for op in read]
    ops.contradictions(operations)
    return operations


_QUOTED = r"[\"“'‘](?P<words>[^\"”’]+?)[\"”'’]"
_LINE_NUMBER = r"(?:(?:the\s+)?(?P<ordinal>first|second|third|fourth|fifth|sixth|seventh|eighth|last|\d+(?:st|nd|rd|th))\s+line|line\s+(?P<number>\d+))"
LINE_RES = (
    # "replace the second line of verse 1 with 'lanterns on the water'", "line 2 in chorus 1 should say '…'"
    re.compile(
        rf"^\s*(?:(?:replace|change|rewrite|make|set)\s+)?{_LINE_NUMBER}\s+(?:of|in)\s+(?:the\s+)?(?P<section>[a-z0-9 -]+?)\s+"
        rf"(?:with|to|into|say|says|read|reads|should\s+say|should\s+be|to\s+be|as)\s+{_QUOTED}\s*[.!]?\s*$",
        re.IGNORECASE,
    ),
    # "sing 'new words' instead of 'old words'", "change 'old words' to 'new words'"
    re.compile(rf"^\s*sing\s+{_QUOTED.replace('words', 'new')}\s+instead\s+of\s+{_QUOTED.replace('words', 'old')}\s*[.!]?\s*$", re.IGNORECASE),
    re.compile(
        rf"^\s*(?:change|replace)\s+{_QUOTED.replace('words', 'old')}\s+(?:to|with|into)\s+{_QUOTED.replace('words', 'new')}\s*[.!]?\s*$", re.IGNORECASE
    ),
)
LINE_ORDINALS = {**ORDINALS, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8}


def _replaced_line(text: str, song: SongFacts) -> list | None:
    """A lyric line replaced by quoted words, by its number in a section or by its old words."""
    for pattern in LINE_RES:
        match = pattern.match(text)
        if match is None:
            continue
        fields = match.groupdict()
        if fields.get("old"):
            return [_line_by_words(fields["old"], fields["new"], song)]
        section = _section(fields["section"].lower(), song)
        if section is None:
            raise CommandError(
                f'"{fields["section"]}" is not a section of this song', [f"replace the first line of {label} with '…'" for label in song.labels[:3]]
            )
        label = _single(section, song, text, lambda lab: f"replace the first line of {lab} with '…'")
        if fields["number"]:
            number = int(fields["number"])
        elif fields["ordinal"].lower() == "last":
            lines = song.lyric_lines.get(label)
            if lines is None:
                raise CommandError(f"{label} has no lyrics to replace", [f"replace the last line of {lab} with '…'" for lab in song.lyric_lines][:3])
            number = len(lines)
        else:
            number = LINE_ORDINALS[fields["ordinal"].lower()]
        return [ops.ReplaceLine(section=label, line=number, words=fields["words"].strip())]
    return None


REWRITE_RE = re.compile(
    rf"^(?:please\s+)?(?:rewrite|redo|re-write|write\s+(?:a\s+new|another)|new\s+words\s+for|another|a\s+new)\s+{_LINE_NUMBER}\s+(?:of|in|for)\s+(?:the\s+)?(?P<section>[a-z0-9 -]+?)$"
)


def _rewrite_line(clause: str, song: SongFacts):
    """A line the lyrics writer writes again: "rewrite the second line of verse 1"."""
    match = REWRITE_RE.match(clause)
    if match is None:
        return None
    section = _section(match["section"], song)
    if section is None:
        return None
    label = _single(section, song, clause, lambda lab: f"rewrite the first line of {lab}")
    if match["number"]:
        number = int(match["number"])
    elif match["ordinal"] == "last":
        if label not in song.lyric_lines:
            raise CommandError(f"{label} has no lyrics to rewrite", [f"rewrite the last line of {lab}" for lab in list(song.lyric_lines)[:3]])
        number = len(song.lyric_lines[label])
    else:
        number = LINE_ORDINALS[match["ordinal"]]
    return [ops.RewriteLine(section=label, line=number)]


def _line_by_words(old: str, new: str, song: SongFacts):
    wanted = _normalise(old)
    found = [(label, n) for label, lines in song.lyric_lines.items() for n, line in enumerate(lines, start=1) if _normalise(line) == wanted]
    if not found:
        raise CommandError(f'the song has no line "{old}"', [f"replace line 1 of {label} with '{new}'" for label in list(song.lyric_lines)[:3]])
    if len(found) > 1:
        raise CommandError(
            f'"{old}" is sung {len(found)} times ({", ".join(f"{label} line {n}" for label, n in found)}); say which',
            [f"replace line {n} of {label} with '{new}'" for label, n in found],
        )
    label, number = found[0]
    return ops.ReplaceLine(section=label, line=number, words=new.strip())


def _said_again(clause: str, read: list, previous_clause: str, previous: list) -> bool:
    """The same request again: the same targets, and a pronoun, a number, or the same direction."""
    if not _same_request(read, previous):
        return False
    if _has(clause, "it", "them", "that") or _number(clause) is not None:
        return True
    return [_sign(op) for op in read] == [_sign(op) for op in previous] and 0 not in [_sign(op) for op in read]


def _opposite(read: list, before: list) -> bool:
    """A mute and an unmute of the same parts: two asks that undo each other. (Any other second
    reading of the same target only refines the first: "pan the guitar, left", "…, hard".)"""
    return _same_request(read, before) and [getattr(op, "muted", None) for op in read] != [getattr(op, "muted", None) for op in before]


def _sign(op) -> int:
    for field in ("by_db", "by_percent", "by_bpm", "by", "by_bars", "semitones"):
        value = getattr(op, field, None)
        if value:
            return 1 if value > 0 else -1
    return 0


def _precise(clause: str) -> bool:
    """An amount said: a number with its unit, or words for a size."""
    return bool(re.search(r"[0-9]+\s?(?:db|decibels?|bars?|bpm|%|percent|semitones?)\b", clause)) or _has(clause, *SMALL, *LARGE)


def _same_request(a: list, b: list) -> bool:
    """The same kinds of change to the same targets (amounts aside)."""

    def target(op) -> tuple:
        return (op.op, getattr(op, "section", None), getattr(op, "part", None), getattr(op, "effect", None), getattr(op, "parameter", None))

    return [target(op) for op in a] == [target(op) for op in b]


def _read_in_context(clause: str, readings: list[tuple[str, list]], song: SongFacts) -> tuple[list | None, str]:
    """A clause read alone, or with what the one before it named: its section ("new melody for the
    bridge and make it longer"), its verb ("pan the guitar left and the piano right"), the key
    change it sizes ("key change into the last chorus, up three semitones"). Returns the
    operations (None when it cannot be read) and the clause as read: with a borrowed verb, the
    verb and the clause, so a list goes on lending it ("mute the drums, the bass and the piano")."""
    last = readings[-1][1][-1] if readings else None
    section = getattr(last, "section", None)
    if section and _section(clause, song) is None and _has(clause, "it", "that", "this", "there"):
        read = _read_clause(f"{clause} {section}", song)
        if read is not None:
            return read, clause
    if isinstance(last, ops.KeyChange) and not _has(clause, "transpose", "key") and _semitones(clause) is not None:
        readings.pop()
        return [ops.KeyChange(semitones=abs(_semitones(clause) or 2))], clause
    read = _read_clause(clause, song)
    if isinstance(last, ops.PartSend) and _parts(clause, song) and not _has(clause, *KEYWORDS):
        # "more reverb on the guitar and the piano": the list lends its send, not only its first word
        return [ops.PartSend(part=p, effect=last.effect, by_db=last.by_db) for p in _parts(clause, song)], f"{last.effect} on {clause}"
    if read is None and readings:
        with_verb = f"{readings[-1][0].split(' ')[0]} {clause}"
        try:
            read = _read_clause(with_verb, song)
        except CommandError:
            read = None  # the verb did not fit after all
        if read is not None:
            return read, with_verb
    if read is None and section and _section(clause, song) is None:
        read = _read_clause(f"{clause} {section}", song)
    return read, clause


def _parts_named_before(clause: str, readings: list[tuple[str, list]], song: SongFacts) -> str | None:
    """ "the guitar" when this clause says "it" or "them", names no part itself, and the clause
    before changed the guitar ("turn the guitar down a bit, then pan it left"); else None."""
    if not readings or _parts(clause, song) or not _has(clause, "it", "them"):
        return None
    parts = dict.fromkeys(op.part for op in readings[-1][1] if getattr(op, "part", None))
    named = ["the backing vocals" if part.startswith("vocal-") else f"the {part}" for part in parts]  # how `_parts` reads them back
    return " and ".join(dict.fromkeys(named)) or None


def _normalise(text: str, *, letters: str = "a-z") -> str:
    """The command as the rules read it: lower case, English letters (`letters`), clauses apart."""
    # "waaay" → "way"
    text = re.sub(r"([a-z])\1{2,}", r"\1", text.lower()).replace("’", "'").replace("pre chorus", "pre-chorus").replace("prechorus", "pre-chorus")
    text = text.replace("post chorus", "post-chorus").replace("hip hop", "hip-hop").replace("hiphop", "hip-hop").replace("synth pop", "synthpop")
    text = re.sub(rf"[^{letters}0-9#.%+\-', ]", " ", text.replace(",", " , ").replace(";", " , "))
    text = re.sub(r"\b(it|that|he|she|there|what)'s\b", r"\1 is", text)
    text = re.sub(r"([a-z])'s\b", r"\1 is", text).replace("'", " ")  # "piano's a little loud"
    text = re.sub(r"(?<![0-9])\.|\.(?![0-9])", " , ", text)  # a full stop ends a clause (not one in "2.5")
    return re.sub(r"\s+", " ", text).strip(" ,")


def _is_amount(word: str) -> bool:
    """A number as typed ("92", "+2db", "3%"): no word to correct or to look up."""
    return re.fullmatch(r"[+\-]?[0-9.]+[a-z%]*", word) is not None


def _correct_spelling(text: str, vocabulary: set[str]) -> str:
    known = sorted(vocabulary)
    out = []
    for word in text.split(" "):
        if len(word) >= 4 and word not in vocabulary and not _is_amount(word):
            swapped = [word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)]  # "slwo", "celo": two letters swapped
            close = [w for w in swapped if w in vocabulary] or difflib.get_close_matches(word, known, n=1, cutoff=0.8)
            word = close[0] if close else word
        out.append(word)
    return " ".join(out)


REQUEST_OPENINGS = frozenset(word for phrase in (*UP, *DOWN, "add", "make", "turn", "put", "give", "set", "take") for word in phrase.split()[:1])


def _more_of_something_unknown(clause: str, vocabulary: set[str]) -> str | None:
    """ "more emotional", "less treble": a more or less of a word outside the reading's vocabulary
    (after spelling correction), which the rules would otherwise read as more or less of
    whatever else the clause names."""
    for match in re.finditer(r"\b(more|less)\s+([a-z]+)", clause):
        if match.group(2) not in vocabulary and match.group(2) not in ("like", "than", "or", "but", "there", "here", "please"):  # "more like a rock track"
            return match.group(0)
    return None


def _unread_request(clause: str, vocabulary: set[str]) -> bool:
    """Whether a clause that changed nothing when read with the one before is a request of its own
    about something songmill does not know ("less treble", "add more bas"): it opens as a request
    and holds a word outside the reading's vocabulary. "bring it back in" after "unmute the pad"
    says the same again; "like the sun coming up" is a remark."""
    words = clause.split()
    unknown = [w for w in words if w not in vocabulary and not _is_amount(w)]
    return bool(words) and words[0] in REQUEST_OPENINGS and bool(unknown)


def _clauses_as_typed(text: str, count: int) -> list[str]:
    """The command's clauses with their accents kept, to quote in an error ("moins de
    réverbération", not "moins de r verb ration"); the read clauses where they do not pair up."""
    typed = _clauses(_normalise(text, letters="a-zà-öø-ÿœæß"))
    return typed if len(typed) == count else _clauses(_normalise(folded(text)))


def _clauses(text: str) -> list[str]:
    parts = re.split(r"\s*,\s*|\s+and then\s+|\s+then\s+|\s+and also\s+|\s+also\s+|\s+and\s+(?!roll\b)", text)
    return [p.strip() for p in parts if p.strip() and p.strip() not in ("and", "please")]


def _has(clause: str, *phrases: str) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", clause) for p in phrases)


def _amount(clause: str) -> int:
    """0 small, 1 medium, 2 large."""
    if _has(clause, *SMALL):
        return 0
    return 2 if _has(clause.replace("too much", "too"), *LARGE) else 1  # "too much reverb" is a complaint, not a size


def _step(kind: str, clause: str) -> float:
    """The size of a change: an explicit "2 dB" / "3 bars" where a level or length is said, else the step of its amount words."""
    if kind in ("level_db", "send_db", "tilt_db"):
        given = _number(clause, unit=r"(?:db|decibels?)\b")
        if given is not None:
            return abs(given)
    return float(STEPS[kind][_amount(clause)])


def _number(clause: str, *, unit: str = "") -> float | None:
    pattern = rf"(?<![\w.])([+\-]?[0-9]+(?:\.[0-9]+)?)\s?{unit}" if unit else r"(?<![\w.])([+\-]?[0-9]+(?:\.[0-9]+)?)"
    match = re.search(pattern, clause)
    if match:
        return float(match.group(1))
    if unit:
        words = "|".join(NUMBER_WORDS)
        match = re.search(rf"\b({words})\s?{unit}", clause)
        return float(NUMBER_WORDS[match.group(1)]) if match else None
    match = re.search(rf"\b({'|'.join(NUMBER_WORDS)})\b", clause)
    return float(NUMBER_WORDS[match.group(1)]) if match else None


def _direction(clause: str) -> int:
    """+1 up, -1 down, 0 neither; a signed amount ("+2 db", "-3 db") says it by itself."""
    signed = re.search(r"(?<![\w.])([+\-])[0-9]+(?:\.[0-9]+)?\s?(?:db|decibels?|bars?|bpm|%|semitones?)?\b", clause)
    if signed:
        return 1 if signed.group(1) == "+" else -1
    up, down = _has(clause, *UP), _has(clause, *DOWN)
    if up and not down:
        return 1
    if down and not up:
        return -1
    if up and down:  # "turn down the too quiet…": take the one said first
        first_up = min(m.start() for p in UP for m in re.finditer(rf"\b{re.escape(p)}\b", clause))
        first_down = min(m.start() for p in DOWN for m in re.finditer(rf"\b{re.escape(p)}\b", clause))
        return 1 if first_up < first_down else -1
    return 0


# the words after a number that make it an amount, not a section's number ("chorus 2 dB louder")
# ("second" and "times" are not among them: "verse 2 second line", "chorus 2 times louder")
AMOUNT_UNITS = r"bars?|beats?|measures?|db|dbs|decibels?|percent|per\s+cent|bpm|semitones?|half[\s-]*steps?|steps?|tones?|seconds|secs|ms|hz|khz|cents?"


def _section(clause: str, song: SongFacts, *, by_place: bool = True) -> str | None:
    """The section label a clause names ("verse 2", "chorus" for every chorus), or None.
    `by_place`: "the end" and "the beginning" name the outro and the intro too."""
    names = [name for name, _ in song.sections]
    name_re = "|".join(sorted((re.escape(n) for n in SECTION_NAMES), key=len, reverse=True))
    match = re.search(rf"\b({'|'.join(ORDINALS)}|last|final)\s+({name_re})\b", clause)
    if match:
        name, count = match.group(2), names.count(match.group(2))
        if count == 0:
            return name  # not in the song: the operation's check names the song's sections
        last = match.group(1) in ("last", "final")
        ordinal = count if last else ORDINALS[match.group(1)]
        return name if count == 1 and (last or ordinal == 1) else f"{name} {ordinal}"  # "the second verse" of a one-verse song: named, and refused
    # "chorus 2" is the second chorus, but in "the chorus 2 dB louder" the 2 is an amount
    match = re.search(rf"(?<![\w-])({name_re})(?:\s+(?:number\s+)?([0-9]+|{'|'.join(NUMBER_WORDS)})(?!\s*(?:{AMOUNT_UNITS})\b|\s*%))?(?![\w-])", clause)
    if match:
        number = match.group(2)
        if number:
            return f"{match.group(1)} {NUMBER_WORDS.get(number, number)}"
        return match.group(1)
    if by_place and _has(clause, "the end", "the ending"):
        return "outro"
    if by_place and _has(clause, "the beginning", "the start"):
        return "intro"
    return None


def _parts(clause: str, song: SongFacts) -> list[str]:
    """The song's parts a clause names (stem names), not counting the lead voice."""
    if _has(clause, *BACKING_WORDS):
        return [p for p in song.parts if p in ("vocal-double", "vocal-harmony")]
    found = []
    for part in song.parts:
        if part.startswith("vocal-"):
            continue
        if _has(clause, part, part + "s"):
            found.append(part)
    for word, part in PART_SYNONYMS.items():
        if part in song.parts and part not in found and _has(clause, word):
            found.append(part)
    return found


def _mentions_voice(clause: str) -> bool:
    return _has(clause, *VOICE_WORDS) and not _has(clause, *BACKING_WORDS)


# ---------------------------------------------------------------- the rules, in order


def _new_chords(clause: str, song: SongFacts):
    """ "new chords for verse 2", "reharmonise the bridge": other chords under the same tune."""
    renamed = _has(clause, "reharmonise", "reharmonize")
    asked = _has(clause, "chords", "harmony", "harmonies", "progression") and _has(clause, "another", "new", "different", "fresh", "change", "other")
    if not (renamed or asked):
        return None
    return _for_one_section(clause, song, ops.NewChords, "new chords", lambda label: f"new chords for {label}")


def _new_rhythm(clause: str, song: SongFacts):
    """ "a different beat for the chorus", "new drum pattern in verse 2": another figure of the groove."""
    drums = _has(clause, "rhythm", "beat", "groove", "drum pattern", "drums pattern", "drum groove")
    if _has(clause, "melody", "tune", "vocal", "vocals", "voice", "singing"):
        return None  # "a new rhythm for the melody": a new melody, its rhythm and notes
    if not (drums and _has(clause, "another", "new", "different", "fresh", "change", "other")):
        return None
    return _for_one_section(clause, song, ops.NewRhythm, "a new beat", lambda label: f"a different beat for {label}")


def _new_melody(clause: str, song: SongFacts):
    if not (_has(clause, "melody", "tune", "notes", "melodies") and _has(clause, "another", "new", "different", "rewrite", "redo", "fresh", "change", "other")):
        return None
    return _for_one_section(clause, song, ops.NewMelody, "a new melody", lambda label: f"another melody for {label}")


def _for_one_section(clause: str, song: SongFacts, operation: Callable[..., Any], what: str, example: Callable[[str], str]) -> list:
    """`operation` for the one section the clause names; no section named is an error offering `example`s."""
    section = _section(clause, song)
    if section is None:
        raise CommandError(f"say which section gets {what}", [example(label) for label in song.labels[:3]])
    return [operation(section=_single(section, song, clause, example))]


def _key_change(clause: str, song: SongFacts):
    if _has(clause, "key change") and _has(clause, "no", "remove", "without", "get rid of", "drop", "cut", "lose", "delete", "nuke", "kill", "ditch", "scrap"):
        return [ops.KeyChange(semitones=0)]
    lifted_chorus = _has(clause, "last chorus", "final chorus") and _has(clause, "lift", "up", "higher", "raise", "modulate", "key change")
    if not (_has(clause, "key change", "modulate", "modulation") or lifted_chorus):
        return None
    semitones = _semitones(clause)
    return [ops.KeyChange(semitones=abs(semitones) if semitones else 2)]


def _semitones(clause: str) -> int | None:
    count = _number(clause, unit=r"(?:semitones?|half[ -]steps?|halfsteps?)")
    if count is not None:
        return int(count)
    count = _number(clause, unit=r"(?:whole[ -])?(?:steps?|tones?)")
    if count is not None:
        return int(count) * 2
    if _has(clause, "a semitone", "half a step", "a half step", "half step", "semitone"):
        return 1
    if _has(clause, "a step", "a whole step", "a tone", "whole step"):
        return 2
    if _has(clause, "an octave", "octave"):
        return 12
    return None


def _transpose(clause: str, song: SongFacts):
    if KEY_RE.search(clause):
        return None  # "transpose to D minor" names the key
    semitones = _semitones(clause)
    if _has(clause, "transpose") or (semitones is not None and _has(clause, "up", "down", "higher", "lower", "drop", "raise")):
        sign = -1 if _has(clause, "down", "lower", "drop") else 1
        return [ops.Transpose(semitones=sign * (semitones if semitones is not None else 2))]
    if _has(clause, "higher key", "lower key"):
        return [ops.Transpose(semitones=2 if _has(clause, "higher key") else -2)]
    return None


def _key(clause: str, song: SongFacts):
    match = KEY_RE.search(clause)
    if not match or not (_has(clause, "key", "in", "to", "into")):
        return None
    accidental = {"sharp": "#", "flat": "b", "#": "#", "b": "b"}.get(match.group(2) or "", "")
    return [ops.Key(to=f"{match.group(1).upper()}{accidental} {match.group(3)}")]


def _tempo(clause: str, song: SongFacts):
    if not _has(clause, "tempo", "bpm", "speed", "faster", "slower", "slow", "quicker", "pace", "speed up", "slow down", "uptempo", "quicker"):
        return None
    slower = _has(clause, "slower", "slow", "down", "lower", "reduce", "less", "off", "pull", "too fast", "too quick", "rushed")
    sign = -1 if slower and not _has(clause, "too slow", "dragging", "drags") else 1
    percent = _number(clause, unit=r"(?:%|percent|per cent)")
    if percent is not None:
        return [ops.Tempo(by_percent=sign * abs(percent))]
    bpm = _number(clause)
    # "slow it down to 92", "make it 96 bpm": a tempo; "down 4 bpm", "by 8", "10 bpm faster", "+5 bpm": a change
    relative = _has(clause, "by", "off", "up", "down", "faster", "slower", "quicker") or re.search(r"[+\-][0-9]", clause)
    if bpm is not None and relative and not _has(clause, "to", "at"):
        return [ops.Tempo(by_bpm=sign * abs(bpm))]
    if bpm is not None:
        return [ops.Tempo(to_bpm=abs(bpm))]
    return [ops.Tempo(by_percent=sign * _step("tempo_percent", clause))]


EXPRESSION_WORDS = {
    "vibrato": "vibrato_depth_cents",
    "breathiness": "breathiness",
    "breathier": "breathiness",
    "airier": "breathiness",
    "breath": "breathiness",
    "portamento": "portamento_s",
    "glide": "portamento_s",
    "slides": "portamento_s",
    "scoops": "portamento_s",
    "dynamics": "dynamics_range_db",
    "dynamic": "dynamics_range_db",
    "tension": "tension",
    "strained": "tension",
    "overshoot": "overshoot_cents",
}


def _expression(clause: str, song: SongFacts):
    word = next((w for w in EXPRESSION_WORDS if _has(clause, w)), None)
    if word is None:
        return None
    parameter = EXPRESSION_WORDS[word]
    if word == "vibrato" and _has(clause, "faster", "quicker", "slower", "too fast", "too slow", "more slow", "fast", "slow"):
        parameter, sign = "vibrato_rate_hz", (-1 if _has(clause, "slower", "too fast", "more slow") else 1)
    elif word in ("breathier", "airier", "strained"):
        sign = -1 if _has(clause, "less") else 1
    else:
        sign = _direction(clause.replace("deeper", "more").replace("wider", "more").replace("no ", "less ")) or 1
    if _has(clause, "no vibrato", "without vibrato"):
        return [ops.Expression(parameter=parameter, to=VOICE_EXPRESSION_LIMITS[parameter][0])]
    return [ops.Expression(parameter=parameter, by=round(sign * STEPS["expression"][_amount(clause)], 3))]


def _send(clause: str, song: SongFacts):
    effect: Literal["reverb", "delay"]
    if _has(clause, "reverb", "verb", "room", "wet", "wetter", "ambience", "space"):
        effect = "reverb"
    elif _has(clause, "echo", "delay", "echoes", "delays"):
        effect = "delay"
    elif _has(clause, "drier", "dry"):
        effect = "reverb"
    else:
        return None
    sign = -1 if _has(clause, "drier", "dry", "less", "down", "reduce", "cut", "lower", "too much", "tame", "no", "back", "drowning", "fewer") else 1
    signed = re.search(r"(?<![\w.])([+\-])[0-9]", clause)
    if signed:
        sign = 1 if signed.group(1) == "+" else -1
    parts = _parts(clause, song)
    if parts:  # "more reverb on the guitar": the guitar's own send, not the whole song's
        _song_wide(clause, song, f"a part's {effect} is", [f"{'more' if sign > 0 else 'less'} {effect} on the {p}" for p in parts])
        return [ops.PartSend(part=p, effect=effect, by_db=sign * _step("send_db", clause)) for p in parts]
    on: Literal["all", "vocal"] = "vocal" if _mentions_voice(clause) else "all"
    target = " on the voice" if on == "vocal" else ""
    _song_wide(clause, song, f"{effect} is", [f"{'more' if sign > 0 else 'less'} {effect}{target}"])
    return [ops.Send(effect=effect, on=on, by_db=sign * _step("send_db", clause))]


def _pan(clause: str, song: SongFacts):
    parts = _parts(clause, song)
    sided = parts and _has(clause, "left", "right", "centre", "center", "middle")
    if not (_has(clause, "pan", "panned") or sided):
        return None
    if not parts:
        raise CommandError("say which part to pan", [f"pan the {p} left" for p in song.parts[:3]])
    amount = 1.0 if _has(clause, "hard", "all the way", "fully") else 0.25 if _has(clause, *SMALL) else 0.5
    side = -1 if _has(clause, "left") else 1 if _has(clause, "right") else 0
    _song_wide(clause, song, "a part's pan is", [f"pan the {p} {'left' if side < 0 else 'right' if side > 0 else 'centre'}" for p in parts])
    return [ops.PartPan(part=p, pan=side * amount) for p in parts]


# Common words of the languages a label's staff may type in by habit that are no English words
# (French, Spanish, Italian, Portuguese, German, Dutch): two of them in a command that cannot be
# read say why it cannot. Letters English does not use (é, ñ, ü, ß…) say it alone.
FOREIGN_WORDS = frozenset(
    "le la les des du une plus fort moins avec pour dans sur très tres voix couplet basse "
    "el los las más mas menos por para muy voz estribillo "
    "il gli più piu meno della voce ritornello "
    "uma mais muito "
    "der und mit mehr lauter leiser weniger bitte stimme schneller langsamer "
    "het een meer zachter".split()
)


def _without_names(words: str, song: SongFacts) -> str:
    """`words` without the song's own names (its voices, sections and parts), which may carry
    accents in any language ("sing it with zoë")."""
    names = sorted({*song.identities, *song.labels, *song.parts}, key=len, reverse=True)
    for name in names:
        words = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", " ", words, flags=re.IGNORECASE)
    # a voice's name with its accent misplaced or missing ("zoé" for zoë, "chloé 2" for chloe 2) is still its name
    tokens, voices = words.split(), sorted({tuple(folded(name).split()) for name in song.identities}, key=len, reverse=True)
    kept, at = [], 0
    while at < len(tokens):
        here = [folded(t).strip(",.;:!?\"'") for t in tokens[at:]]
        length = next((len(voice) for voice in voices if tuple(here[: len(voice)]) == voice), 0)
        kept += [] if length else [tokens[at]]
        at += length or 1
    return " ".join(kept)


def _in_another_language(words: str) -> bool:
    """Whether a command (or one of its clauses) looks written in another language than English:
    accents (in the command as typed; the reading strips them), or two of FOREIGN_WORDS."""
    if re.search(r"[à-öø-ÿœß]", words.lower()):
        return True
    return sum(word in FOREIGN_WORDS for word in re.findall(r"[a-zà-ÿ]+", words.lower())) >= 2


def _song_wide(clause: str, song: SongFacts, what: str, examples: list[str], *, band_in_section: bool = False) -> None:
    """Refuse a section named for a change songmill makes to the whole song: read as the whole
    song, "louder drums in the chorus" would change more than was asked. `band_in_section`:
    offer the section's level (the whole band there) as the nearest change that does work. Only
    a section named as one counts ("at the end of each line" names no outro)."""
    section = _section(clause, song, by_place=False)
    if section is not None:
        known = section in song.labels or section in (name for name, _ in song.sections)
        if band_in_section and known:  # offered only where it works
            examples = [*examples, f"make the {section} {'quieter' if _direction(clause) < 0 else 'louder'}"]
        absent = "" if known else f"; and the song has no {section} (its sections: {', '.join(song.labels)})"
        raise CommandError(f'"{clause}": {what} set for the whole song, not in one section such as {section}{absent}', examples)


def _mute(clause: str, song: SongFacts):
    unmute = _has(clause, "unmute", "bring back", "put back", "restore")
    mute = _has(clause, "mute", "silence", "remove", "drop", "cut", "delete", "lose", "without", "no", "get rid of", "kill")
    if not (mute or unmute):
        return None
    parts = _parts(clause, song)
    if not parts and _has(clause, "backing vocals", "harmonies", "backing"):
        return None
    if not parts:
        return None
    if _section(clause, song) is not None:
        raise CommandError("a part is muted for the whole song, not in one section", [f"mute the {p}" for p in parts])
    return [ops.PartMute(part=p, muted=not unmute) for p in parts]


def _structure(clause: str, song: SongFacts):
    section = _section(clause, song)
    if section is None:
        return None
    if _has(clause, "drop", "remove", "cut", "delete", "skip", "lose", "get rid of", "without"):
        return [ops.SectionDrop(section=_single(section, song, clause, lambda label: f"drop {label}"))]
    if _has(clause, "repeat", "again", "twice", "double"):
        return [ops.SectionRepeat(section=_single(section, song, clause, lambda label: f"repeat {label}"))]
    longer = _has(clause, "longer", "lengthen", "extend", "stretch", "more long", "add")
    shorter = _has(clause, "shorter", "shorten", "trim", "more short", "take away")
    bars = _number(clause, unit="bars?")
    if not (longer or shorter) and bars is None:
        return None
    label = _single(section, song, clause, lambda label: f"make {label} longer")
    if bars is not None and not (longer or shorter):
        return [ops.SectionLength(section=label, to_bars=int(bars))]
    if bars is not None and _has(clause, "to"):
        return [ops.SectionLength(section=label, to_bars=int(bars))]
    size = int(bars) if bars is not None else int(STEPS["bars"][_amount(clause)])
    return [ops.SectionLength(section=label, by_bars=size if longer else -size)]


def _section_level(clause: str, song: SongFacts):
    section = _section(clause, song)
    if section is None or _parts(clause, song) or _mentions_voice(clause):
        return None
    sign = _direction(clause)
    if sign == 0:
        return None
    return [ops.SectionLevel(section=section, by_db=sign * _step("level_db", clause))]


def _vocal_level(clause: str, song: SongFacts):
    if not _mentions_voice(clause) or _parts(clause, song):
        return None
    sign = _direction(clause)
    if sign == 0:
        return None
    _song_wide(clause, song, "the voice's level is", ["louder vocals" if sign > 0 else "quieter vocals"])
    return [ops.VocalLevel(by_db=sign * _step("level_db", clause))]


def _part_level(clause: str, song: SongFacts):
    parts = _parts(clause, song)
    sign = _direction(clause)
    if not parts or sign == 0:
        return None
    _song_wide(clause, song, "a part's level is", [f"{'louder' if sign > 0 else 'quieter'} {p}" for p in parts], band_in_section=True)
    return [ops.PartLevel(part=p, by_db=sign * _step("level_db", clause)) for p in parts]


def _tone(clause: str, song: SongFacts):
    if (
        _has(clause, "louder master", "master louder", "louder overall", "make it louder", "louder")
        and not _parts(clause, song)
        and not _mentions_voice(clause)
    ):
        raise CommandError(
            "a master's loudness is its delivery profile's (streaming: -14 LUFS), so songmill does not make a whole track louder; "
            "change a part, the voice or a section instead",
            ["the chorus should hit harder", "louder vocals", "more drums"],
        )
    if _has(clause, "mood", "feel", "vibe"):
        return None  # "a darker mood" is a mood
    if _has(clause, "too bright", "too harsh", "too shrill", "too thin"):
        sign = -1  # a complaint reads as its remedy
    elif _has(clause, "too dark", "too dull", "too muddy", "too warm"):
        sign = 1
    elif _has(clause, "brighter", "sparkle", "more air", "crisper", "brightness", "less dull", "less muddy"):
        sign = 1
    elif _has(clause, "warmer", "warmth", "darker", "duller", "mellower", "less harsh", "less bright", "less shrill", "warm it up", "warm up"):
        sign = -1
    else:
        return None
    return [ops.MasterTone(by_db=sign * _step("tilt_db", clause))]


SINGING_WORDS = ("sing", "sings", "sung", "singing", "singer", "voice", "vocalist")
_KEYWORD_WORDS = frozenset(word for phrase in KEYWORDS for word in phrase.split())


def _identity(clause: str, song: SongFacts):
    """A voice the song's registry has, named in the clause (read folded: `folded`). A voice
    whose name is also a word the rules read ("air", a section, a part) counts only where the
    clause speaks of singing ("sing it with air", not "more air"). Two voices whose names read
    alike once folded (zoe and zoë) are refused, never one of them guessed."""
    rule_words = _KEYWORD_WORDS | {name for name, _ in song.sections} | set(song.labels) | set(song.parts)
    named = [i for i in song.identities if _has(clause, folded(i)) and (folded(i) not in rule_words or _has(clause, *SINGING_WORDS))]
    if len({folded(i) for i in named}) < len(named):
        alike = sorted(i for i in named if sum(folded(j) == folded(i) for j in named) > 1)
        raise CommandError(
            f"the song's voices {' and '.join(alike)} read alike once their accents are dropped; rename one of them in the model registry",
            [f"sing it with {i}" for i in song.identities if i not in alike][:3],
        )
    if not named:
        return None
    # "sing it with cleo in a breathy way": the style said with the voice is read too (never the
    # voice's own name read as a style, for a voice called "tender")
    style = _style(re.sub(rf"(?<![\w-]){re.escape(folded(named[0]))}(?![\w-])", " ", clause), song)
    return [ops.VoiceIdentity(identity=named[0]), *(style or [])]


def _style(clause: str, song: SongFacts):
    style = next((s for s in VOICE_STYLES if _has(clause, s)), None)
    if style is None or not _has(clause, "sing", "sings", "sung", "style", "vocal", "vocals", "voice", "delivery", "singing", "singer"):
        return None
    return [ops.VocalStyle(style=style)]


# what people call an instrument → the General MIDI instrument it is played on (any GM name works too)
INSTRUMENT_WORDS = {
    "strings": "string ensemble 1",
    "string section": "string ensemble 1",
    "violin": "violin",
    "viola": "viola",
    "cello": "cello",
    "double bass": "contrabass",
    "upright bass": "contrabass",
    "organ": "drawbar organ",
    "rock organ": "rock organ",
    "church organ": "church organ",
    "piano": "acoustic grand piano",
    "grand piano": "acoustic grand piano",
    "electric piano": "electric piano 1",
    "rhodes": "electric piano 1",
    "acoustic guitar": "acoustic guitar (steel)",
    "nylon guitar": "acoustic guitar (nylon)",
    "classical guitar": "acoustic guitar (nylon)",
    "electric guitar": "electric guitar (clean)",
    "distorted guitar": "distortion guitar",
    "guitar": "acoustic guitar (steel)",
    "harp": "orchestral harp",
    "flute": "flute",
    "clarinet": "clarinet",
    "oboe": "oboe",
    "trumpet": "trumpet",
    "trombone": "trombone",
    "french horn": "french horn",
    "horns": "brass section",
    "brass": "brass section",
    "sax": "alto sax",
    "saxophone": "alto sax",
    "choir": "choir aahs",
    "synth": "lead 2 (sawtooth)",
    "synth pad": "pad 2 (warm)",
    "bells": "glockenspiel",
    "glockenspiel": "glockenspiel",
    "marimba": "marimba",
    "vibraphone": "vibraphone",
    "vibes": "vibraphone",
    "accordion": "accordion",
    "harmonica": "harmonica",
    "banjo": "banjo",
    "harpsichord": "harpsichord",
}
_ARTICLE = r"(?:(?:a|an|some|the)\s+)?"
SWAP_RES = (
    re.compile(rf"^(?:swap|switch|change|replace|turn)\s+{_ARTICLE}(?P<part>[a-z -]+?)\s+(?:for|with|to|into)\s+{_ARTICLE}(?P<instrument>[a-z0-9 ()-]+)$"),
    re.compile(rf"^(?:use|try)\s+{_ARTICLE}(?P<instrument>[a-z0-9 ()-]+?)\s+instead\s+of\s+{_ARTICLE}(?P<part>[a-z -]+)$"),
    re.compile(rf"^play\s+{_ARTICLE}(?P<part>[a-z -]+?)\s+on\s+{_ARTICLE}(?P<instrument>[a-z0-9 ()-]+?)(?:\s+instead)?$"),
)
ADD_RE = re.compile(rf"^(?:add|bring\s+in|put\s+in|layer\s+in|layer)\s+{_ARTICLE}(?P<instrument>[a-z0-9 ()-]+?)(?:\s+(?:part|line|layer|too))?$")
ADD_PATTERNS = {
    "arpeggio": ("arpeggio", "arpeggiated", "broken"),
    "strum": ("strum", "strummed"),
    "comp": ("comp", "comping", "stabs"),
    "counter": ("counter", "countermelody"),
}


def _gm_instrument(words: str) -> str | None:
    """The GM instrument words name: an INSTRUMENT_WORDS name, or a GM name itself."""
    from songmill.core.gm import GM_PROGRAMS

    words = re.sub(r"\s+", " ", words).strip()
    if words in INSTRUMENT_WORDS:
        return INSTRUMENT_WORDS[words]
    if words.endswith("s") and words[:-1] in INSTRUMENT_WORDS:  # "cellos"
        return INSTRUMENT_WORDS[words[:-1]]
    return words if words in GM_PROGRAMS else None


def _swap_instrument(clause: str, song: SongFacts):
    for pattern in SWAP_RES:
        match = pattern.match(clause)
        if match is None:
            continue
        parts = [p for p in _parts(match["part"], song) if p != "drums"]
        if len(parts) != 1:
            return None  # "change the key to d major": not a part
        instrument = _gm_instrument(match["instrument"])
        if instrument is None:
            raise CommandError(
                f'"{match["instrument"].strip()}" is not an instrument songmill plays',
                [f"swap the {parts[0]} for {w}" for w in ("strings", "an organ", "a cello")],
            )
        return [ops.PartInstrument(part=parts[0], instrument=instrument)]
    return None


def _add_instrument(clause: str, song: SongFacts):
    match = ADD_RE.match(clause)
    if match is None:
        return None
    words = match["instrument"]
    pattern = next((p for p, cues in ADD_PATTERNS.items() if any(re.search(rf"\b{c}\b", words) for c in cues)), "sustain")
    for cues in ADD_PATTERNS.values():
        for cue in cues:
            words = re.sub(rf"\b{cue}\b", "", words)
    instrument = _gm_instrument(words)
    if instrument is None:
        return None  # "add a key change", "add more reverb": another rule's
    return [ops.AddInstrument.model_validate({"name": _added_part_name(words), "instrument": instrument, "pattern": pattern})]


def _added_part_name(words: str) -> str:
    """The stem name of an added instrument: its word ("strings"), singular ("cellos" → "cello"), as a slug."""
    words = re.sub(r"\s+", " ", words).strip()
    name = words if words in INSTRUMENT_WORDS else words.removesuffix("s")
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:32] or "added"


def _instrumentation(clause: str, song: SongFacts):
    genre = next((g for g in GENRES if _has(clause, g)), None)
    return [ops.Instrumentation(preset=genre)] if genre else None


def _mood(clause: str, song: SongFacts):
    mood = next((m for m in MOODS if _has(clause, m)), None) or next((m for w, m in MOOD_SYNONYMS.items() if _has(clause, w)), None)
    return [ops.Mood(to=mood)] if mood else None


RULES: tuple[Callable[[str, SongFacts], list | None], ...] = (
    _rewrite_line,  # before the new melody: "another line 2 for verse 1"
    _new_chords,  # before the new melody: "new chords under the same melody in verse 1"
    _new_rhythm,
    _new_melody,
    _key_change,
    _transpose,
    _key,
    _expression,  # before tempo: "faster vibrato"
    _tempo,
    _identity,
    _style,  # before the vocal level: "a more powerful vocal style"
    _swap_instrument,  # before mute: "replace the piano with strings" keeps the piano's notes
    _add_instrument,
    _send,
    _pan,
    _mute,
    _structure,
    _section_level,
    _vocal_level,
    _part_level,
    _tone,
    _instrumentation,
    _mood,
)


def _read_clause(clause: str, song: SongFacts) -> list | None:
    for rule in RULES:
        found = rule(clause, song)
        if found:
            return found
    return None


def _single(section: str, song: SongFacts, clause: str, example: Callable[[str], str]) -> str:
    """A section label that must name one section; a bare name the song has several of is ambiguous."""
    names = [n for n, _ in song.sections]
    if " " not in section.strip() and names.count(section) > 1:
        labels = [label for label in song.labels if label.startswith(section + " ")]
        raise CommandError(
            f'"{clause}": the song has {len(labels)} sections called {section} ({", ".join(labels)}); say which', [example(label) for label in labels]
        )
    return section


# ---------------------------------------------------------------- suggestions on failure


def example_commands(song: SongFacts) -> list[str]:
    """Commands that work on this song, for the nearest-command hint (and the editor's help)."""
    out = [
        "slow it down a bit",
        f"set the tempo to {round(song.tempo_bpm) - 8}",
        "speed it up a lot",
        "transpose up two semitones",
        "add a key change into the last chorus",
    ]
    out += ["less reverb on the voice", "more reverb", "more delay on the vocals", "louder vocals", "make the master brighter", "warmer", "less vibrato"]
    for label in song.labels:
        out += [
            f"another melody for {label}",
            f"new chords for {label}",
            f"a different beat for {label}",
            f"drop {label}",
            f"repeat {label}",
            f"make {label} longer",
            f"{label} should hit harder",
            f"make {label} quieter",
        ]
    for part in song.parts:
        if not part.startswith("vocal-"):
            out += [f"mute the {part}", f"make the {part} louder", f"less {part}", f"pan the {part} left"]
    out += [f"sing it with {identity}" for identity in song.identities]
    out += [f"sing it {style}" for style in VOICE_STYLES]
    out += [f"make it {mood}" for mood in MOODS] + [f"make it {genre}" for genre in GENRES]
    return out


def nearest_commands(clause: str, song: SongFacts, count: int = 3) -> list[str]:
    candidates = example_commands(song)
    scored = sorted(candidates, key=lambda c: -difflib.SequenceMatcher(None, clause, c).ratio())
    return scored[:count]
