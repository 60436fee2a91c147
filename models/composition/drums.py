"""Drum patterns per genre (General MIDI percussion), varied by section, with fills into
section changes and humanised timing and velocity.

Patterns are strings over a sixteenth-note grid, one character per sixteenth: `x` a hit,
`o` a soft (ghost) hit, `.` nothing. A section's energy picks the layer: quiet sections keep
only time (hats or ride), verses the groove, choruses the full kit with a crash on the one.
"""

from __future__ import annotations

import numpy as np

from models.composition.streams import ending_stream, section_streams
from songmill.core.score import Note, Part, Score, Section

KICK, SIDE_STICK, SNARE, CLAP, HAT, OPEN_HAT, CRASH, RIDE, TAMBOURINE = 36, 37, 38, 39, 42, 46, 49, 51, 54
TOMS = (50, 48, 47, 45, 43)  # high → low
HUMANISE_S = 0.008  # standard deviation of timing offsets, seconds
VELOCITY_SPREAD = 7

# genre → layer → {drum: 16-step pattern} for 4/4 bars.
GROOVES_4 = {
    "pop": {
        "groove": {KICK: "x.......x.x.....", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."},
        "full": {KICK: "x.....x.x.......", SNARE: "....x.......x...", OPEN_HAT: "..x...x...x...x.", HAT: "x...x...x...x..."},
    },
    "rock": {
        "groove": {KICK: "x.......x.......", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."},
        "full": {KICK: "x.....x.x.x.....", SNARE: "....x.......x...", RIDE: "x.x.x.x.x.x.x.x."},
    },
    "synthpop": {
        "groove": {KICK: "x...x...x...x...", CLAP: "....x.......x...", HAT: "..x...x...x...x."},
        "full": {KICK: "x...x...x...x...", CLAP: "....x.......x...", OPEN_HAT: "..x...x...x...x.", HAT: "xoxoxoxoxoxoxoxo"},
    },
    "folk": {
        "groove": {KICK: "x.......x.......", SIDE_STICK: "....x.......x...", TAMBOURINE: "x.x.x.x.x.x.x.x."},
        "full": {KICK: "x.....x.x.......", SNARE: "....x.......x...", TAMBOURINE: "x.x.x.x.x.x.x.x."},
    },
    "ballad": {
        "groove": {KICK: "x.........x.....", SIDE_STICK: "....x.......x...", HAT: "x...x...x...x..."},
        "full": {KICK: "x.........x.....", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."},
    },
    "hip-hop": {
        "groove": {KICK: "x......x..x.....", SNARE: "....x.......x...", HAT: "x.x.x.x.x.x.x.x."},
        "full": {KICK: "x......x..x..x..", SNARE: "....x.......x...", HAT: "xxxxxxxxxxxxxxxx", CLAP: "............x..."},
    },
}
TIMEKEEPER = {"rock": RIDE, "folk": TAMBOURINE}  # what quiet sections keep (default: closed hat)
PROGRAM = 0  # GM drum kit "Standard" (channel 10)


def _grid_pattern(pattern: dict[int, str], steps: int) -> dict[int, str]:
    """Fit a 16-step pattern to a bar of `steps` sixteenths (3/4: 12, 6/8: 12, 2/4: 8)."""
    return {drum: (hits * 2)[:steps] if steps > 16 else hits[:steps] for drum, hits in pattern.items()}


def _odd_meter(steps: int, layer: str, compound: bool) -> dict[int, str]:
    """Kick on the one, backbeat on the other beats, hats on every beat subdivision."""
    beat = 6 if compound else 4
    kick = "".join("x" if i == 0 else "." for i in range(steps))
    snare = "".join("x" if i % beat == 0 and i > 0 else "." for i in range(steps))
    hats = "".join("x" if i % 2 == 0 else "." for i in range(steps))
    return {KICK: kick, (SNARE if layer == "full" else SIDE_STICK): snare, HAT: hats}


def _layer(section: Section) -> str:
    if section.energy < 0.4:
        return "time"
    return "full" if section.energy >= 0.75 else "groove"


def drum_part(score: Score, genre: str, rng: np.random.Generator, *, rhythm_seeds: dict[int, int] | None = None) -> Part:
    """The drums; a section in `rhythm_seeds` (index → seed) plays another figure of its groove
    (`another_figure`): the song editor's "a different beat for verse 2"."""
    meter = score.meter
    steps = int(round(score.beats_per_bar * 4))
    compound = meter.denominator == 8 and meter.numerator % 3 == 0
    grooves = GROOVES_4.get(genre, GROOVES_4["pop"])
    timekeeper = TIMEKEEPER.get(genre, HAT)
    bpm = score.tempo_map[0].bpm
    jitter_beats = HUMANISE_S * bpm / 60.0
    notes: list[Note] = []
    streams, ending = section_streams(score, rng), ending_stream(rng)  # a section's feel is its own (an edit elsewhere leaves it)

    def hit(drum: int, beat: float, velocity: int) -> None:  # draws from the stream of what is being played (`draws`, below)
        offset = float(draws.normal(0.0, jitter_beats)) if beat > 0 else abs(float(draws.normal(0.0, jitter_beats)))
        vel = int(np.clip(velocity + draws.integers(-VELOCITY_SPREAD, VELOCITY_SPREAD + 1), 1, 127))
        notes.append(Note(pitch=drum, start_beat=max(beat + offset, 0.0), duration_beats=0.25, velocity=vel))

    for index, section in enumerate(score.sections):
        draws = streams[index]
        layer = _layer(section)
        if meter.numerator == 4 and meter.denominator == 4:
            pattern = grooves["full" if layer == "full" else "groove"]
        else:
            pattern = _odd_meter(steps, layer, compound)
        if layer == "time":
            pattern = {timekeeper: "".join("x" if i % 4 == 0 else "." for i in range(steps))}
        pattern = _grid_pattern(pattern, steps)
        if rhythm_seeds and index in rhythm_seeds:
            pattern = another_figure(pattern, steps, np.random.default_rng(rhythm_seeds[index]))
        level = 0.7 + 0.4 * section.energy
        next_section = score.sections[index + 1] if index + 1 < len(score.sections) else None
        fill = next_section is not None and next_section.name != section.name and section.energy >= 0.4
        for bar in range(section.bars):
            bar_beat = (section.start_bar + bar) * score.beats_per_bar
            last_bar = bar == section.bars - 1
            fill_from = steps - (8 if section.energy >= 0.75 else 4) if last_bar and fill else steps
            if bar == 0 and layer == "full":
                hit(CRASH, bar_beat, int(110 * level))
            for drum, hits in pattern.items():
                for step, symbol in enumerate(hits):
                    if symbol == "." or step >= fill_from:
                        continue
                    accent = 1.0 if step % 4 == 0 else 0.85
                    velocity = int((100 if symbol == "x" else 55) * level * accent)
                    hit(drum, bar_beat + step * 0.25, velocity)
            if fill_from < steps:
                _fill(hit, bar_beat, fill_from, steps, level, draws)
    draws = ending
    if score.sections:  # the ending: one crash and kick on the final downbeat
        end = score.total_bars * score.beats_per_bar
        hit(CRASH, end, int(100 * (0.7 + 0.4 * score.sections[-1].energy)))
        hit(KICK, end, int(100 * (0.7 + 0.4 * score.sections[-1].energy)))
    notes.sort(key=lambda n: (n.start_beat, n.pitch))
    return Part(name="drums", role="drums", program=PROGRAM, is_drum=True, notes=notes)


BACKBEAT = (SNARE, CLAP, SIDE_STICK)
CYMBALS = (HAT, OPEN_HAT, RIDE, TAMBOURINE)


def another_figure(pattern: dict[int, str], steps: int, rng: np.random.Generator) -> dict[int, str]:
    """The same groove with another figure: the kick moved or doubled on other eighths and the
    cymbal on another subdivision (quarters, eighths, off-beats, sixteenths), drawn by `rng`;
    the backbeat stays, so the song keeps its feel. Always differs from `pattern`."""
    kicks: list[str | None] = [*_kick_figures(pattern, steps)] if KICK in pattern else [None]
    first_cymbal = next((drum for drum in pattern if drum in CYMBALS), None)
    cymbals: list[tuple[int, str] | None] = [(first_cymbal, figure) for figure in _cymbal_figures(steps)] if first_cymbal is not None else [None]
    options: list[dict[int, str]] = []
    for kick in kicks:
        for ride in cymbals:
            varied = dict(pattern) | ({KICK: kick} if kick is not None else {}) | (dict([ride]) if ride is not None else {})
            if varied != pattern:
                options.append(varied)
    return options[int(rng.integers(0, len(options)))] if options else pattern


def _kick_figures(pattern: dict[int, str], steps: int) -> list[str]:
    """Kicks on the one and on one or two other eighths that the backbeat leaves free."""
    snares = {i for drum, hits in pattern.items() if drum in BACKBEAT for i, symbol in enumerate(hits) if symbol != "."}
    free = [i for i in range(2, steps, 2) if i not in snares]
    figures = {tuple(sorted({0, a})) for a in free} | {tuple(sorted({0, a, b})) for a in free for b in free if a < b}
    return ["".join("x" if i in figure else "." for i in range(steps)) for figure in sorted(figures)]


def _cymbal_figures(steps: int) -> list[str]:
    return [
        "".join("x" if i % 4 == 0 else "." for i in range(steps)),  # quarters
        "".join("x" if i % 2 == 0 else "." for i in range(steps)),  # eighths
        "".join("x" if i % 4 == 2 else "." for i in range(steps)),  # off-beats
        "".join("x" if i % 2 == 0 else "o" for i in range(steps)),  # sixteenths, the in-between ones soft
    ]


def _fill(hit, bar_beat: float, start: int, steps: int, level: float, rng: np.random.Generator) -> None:
    """Sixteenths down the toms (or snare) from `start` to the bar's end, rising in velocity."""
    count = steps - start
    use_toms = rng.random() < 0.6
    for i, step in enumerate(range(start, steps)):
        drum = TOMS[min(i * len(TOMS) // count, len(TOMS) - 1)] if use_toms else SNARE
        if not use_toms and i % 2 and rng.random() < 0.3:
            continue
        hit(drum, bar_beat + step * 0.25, int((70 + 40 * i / count) * level))
        if i == 0:
            hit(KICK, bar_beat + step * 0.25, int(90 * level))
