"""Measured properties of a written song (score + lyrics): the songwriting quality bars.

Each function takes the artifacts and returns a number or a list of problems, so tests,
benchmarks and the QC gate judge songs the same way.

* `in_scale_ratio`: melody notes whose pitch class is in the key sounding at that moment.
* `strong_beat_chord_tone_ratio`: melody notes on strong beats (the downbeat, and the middle
  of a 4/4 bar) that belong to the chord sounding then.
* `rhyme_ratio`: pairs of lines that share a scheme letter and whose last words rhyme.
* `unsung_syllables`, `chorus_problems`: every syllable has a note; every chorus repeats.
* `interval_ngram_overlap`: the share of one melody's 4-note interval patterns found in another.
"""

from __future__ import annotations

from itertools import combinations

from songmill.core.lyrics import Lyrics, LyricSection
from songmill.core.music import metric_strength, parse_key
from songmill.core.phonetics import words_rhyme
from songmill.core.phrasing import phrase_spans
from songmill.core.score import Note, Score


def melody_notes(score: Score) -> list[Note]:
    return score.part("melody").notes


def in_scale_ratio(score: Score) -> float:
    notes = melody_notes(score)
    if not notes:
        return 1.0
    inside = sum(1 for n in notes if n.pitch % 12 in parse_key(score.key_at(n.start_beat)).scale_pitch_classes)
    return inside / len(notes)


def strong_beat_notes(score: Score) -> list[Note]:
    meter = score.meter
    bar = score.beats_per_bar
    return [n for n in melody_notes(score) if metric_strength(round(n.start_beat % bar, 6) % bar, meter.numerator, meter.denominator) <= 1]


def strong_beat_chord_tone_ratio(score: Score) -> float:
    strong = strong_beat_notes(score)
    if not strong:
        return 1.0

    def chord_pcs(beat: float) -> set[int]:
        for chord in score.chords:
            if chord.start_beat <= beat + 1e-6 < chord.start_beat + chord.duration_beats:
                return {p % 12 for p in chord.pitches}
        return set()

    return sum(1 for n in strong if n.pitch % 12 in chord_pcs(n.start_beat)) / len(strong)


def rhyme_pairs(lyrics: Lyrics) -> list[tuple[str, str]]:
    """(last word, last word) for consecutive lines sharing a scheme letter, in every section."""
    pairs = []
    for section in lyrics.sections:
        last_by_letter: dict[str, str] = {}
        for line in section.lines:
            if line.rhyme is None:
                continue
            if line.rhyme in last_by_letter:
                pairs.append((last_by_letter[line.rhyme], line.last_word))
            last_by_letter[line.rhyme] = line.last_word
    return pairs


def rhyme_ratio(lyrics: Lyrics) -> float:
    pairs = rhyme_pairs(lyrics)
    return sum(1 for a, b in pairs if words_rhyme(a, b)) / len(pairs) if pairs else 1.0


def unsung_syllables(score: Score, lyrics: Lyrics) -> int:
    """Syllables of the lyrics that no melody note sings (0 when every syllable has a note)."""
    expected = sum(len(line.syllables) for section in lyrics.sections for line in section.lines)
    sung = sum(1 for n in melody_notes(score) if n.syllable is not None and not n.melisma)
    return max(expected - sung, 0)


def chorus_problems(score: Score, lyrics: Lyrics) -> list[str]:
    """Choruses whose words or melody differ from the first chorus. A chorus longer or shorter
    than the first repeats it when it sings the first's lines in order, cut short or begun again,
    each to the melody that line had in the first chorus."""
    choruses = [s for s in lyrics.sections if s.name == "chorus"]
    problems: list[str] = []
    if not choruses:
        return problems
    first_words = [ln.text for ln in choruses[0].lines]
    first_tunes = _line_tunes(score, choruses[0])
    for chorus in choruses[1:]:
        expected = [first_words[i % len(first_words)] for i in range(len(chorus.lines))]
        if [ln.text for ln in chorus.lines] != expected:
            problems.append(f"chorus at section {chorus.form_index + 1} has other words than the first chorus")
        elif not score.key_changes and any(tune != first_tunes[i % len(first_tunes)] for i, tune in enumerate(_line_tunes(score, chorus))):
            problems.append(f"chorus at section {chorus.form_index + 1} has another melody than the first chorus")
    return problems


def _line_tunes(score: Score, section: LyricSection) -> list[list[tuple[float, int]]]:
    """Each sung line's melody: (beat from the line's start, MIDI pitch) of the notes in its phrase."""
    notes = melody_notes(score)
    spans = phrase_spans(score.sections[section.form_index], len(section.lines), score)
    return [[(round(n.start_beat - begin, 4), n.pitch) for n in notes if begin <= n.start_beat < end] for begin, end in spans]


def interval_ngrams(score: Score, n: int = 4) -> set[tuple[int, ...]]:
    """The melody's n-note interval patterns (n-1 intervals each): transposition-free."""
    pitches = [note.pitch for note in melody_notes(score)]
    intervals = [b - a for a, b in zip(pitches, pitches[1:])]
    return {tuple(intervals[i : i + n - 1]) for i in range(len(intervals) - n + 2)}


def interval_ngram_overlap(first: Score, second: Score, n: int = 4) -> float:
    """Share of the smaller set of n-grams found in the other (0 = nothing shared, 1 = all)."""
    a, b = interval_ngrams(first, n), interval_ngrams(second, n)
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def max_pairwise_overlap(scores: list[Score], n: int = 4) -> float:
    return max((interval_ngram_overlap(x, y, n) for x, y in combinations(scores, 2)), default=0.0)
