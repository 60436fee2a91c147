"""Song form: sections with bar counts and an energy curve, fitted to a target duration.

Later stages read `Section.energy` (0–1) for arrangement density and dynamics. Bar counts are
musical sizes (2, 4, 8, 12, 16), every chorus is the same length (it repeats), and sections
whose bars the config fixes are kept as written.
"""

from __future__ import annotations

import logging

from songmill.core.music import parse_time_signature
from songmill.core.score import Score, Section, TempoChange

log = logging.getLogger("songmill.form")

POP_FORM = ("intro", "verse", "pre-chorus", "chorus", "verse", "chorus", "bridge", "chorus", "outro")
DEFAULT_FORMS = {
    "pop": POP_FORM,
    "synthpop": POP_FORM,
    "rock": ("intro", "verse", "chorus", "verse", "chorus", "solo", "bridge", "chorus", "outro"),
    "ballad": ("intro", "verse", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    "folk": ("intro", "verse", "chorus", "verse", "chorus", "instrumental", "verse", "chorus", "outro"),
    "hip-hop": ("intro", "chorus", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
}

DEFAULT_BARS = {"intro": 4, "verse": 8, "pre-chorus": 4, "chorus": 8, "post-chorus": 4, "bridge": 8, "breakdown": 4, "solo": 8, "instrumental": 8, "outro": 4}
GENRE_BARS = {"hip-hop": {"verse": 16}}

# The sizes a section may take: connective sections stay shorter than verses and choruses.
# Fast tempos need long sections (a 32-bar chorus at 170 BPM lasts 45 s).
ALLOWED_BARS: dict[str, tuple[int, ...]] = {name: (2, 4, 8, 16) for name in ("intro", "outro", "pre-chorus", "post-chorus", "breakdown")}
ALLOWED_BARS.update({name: (4, 8, 12, 16, 24, 32) for name in ("verse", "chorus", "bridge", "solo", "instrumental")})

BASE_ENERGY = {
    "intro": 0.30,
    "verse": 0.45,
    "pre-chorus": 0.60,
    "chorus": 0.85,
    "post-chorus": 0.75,
    "bridge": 0.55,
    "breakdown": 0.35,
    "solo": 0.70,
    "instrumental": 0.60,
    "outro": 0.30,
}


def plan_bars(names: list[str], fixed: list[int | None], *, genre: str, bar_s: float, target_s: float) -> list[int]:
    """Bar counts per section whose total duration is as near `target_s` as musical sizes allow.

    Sections of the same name move together (every chorus keeps one length); `fixed` entries
    (from the config) never change.
    """
    defaults = {**DEFAULT_BARS, **GENRE_BARS.get(genre, {})}
    free = [n for n, f in zip(names, fixed) if f is None]
    if not free:
        return [int(f) for f in fixed if f is not None]  # every entry is fixed
    fixed_bars = sum(f for f in fixed if f is not None)
    target_bars = target_s / bar_s
    scale = max(target_bars - fixed_bars, 1) / sum(defaults[n] for n in free)
    group_bars = {n: min(ALLOWED_BARS[n], key=lambda b: (abs(b - defaults[n] * scale), b)) for n in dict.fromkeys(free)}
    counts = {n: free.count(n) for n in group_bars}

    def error(bars: dict[str, int]) -> float:
        return abs(fixed_bars + sum(bars[n] * counts[n] for n in bars) - target_bars)

    while True:  # greedy: move one group one size up or down while it brings us nearer
        best, best_error = None, error(group_bars)
        for name in group_bars:
            sizes = ALLOWED_BARS[name]
            i = sizes.index(group_bars[name])
            for j in (i - 1, i + 1):
                if 0 <= j < len(sizes):
                    trial = {**group_bars, name: sizes[j]}
                    if error(trial) < best_error - 1e-9:
                        best, best_error = trial, error(trial)
        if best is None:
            break
        group_bars = best
    return [int(f) if f is not None else group_bars[n] for n, f in zip(names, fixed)]


def energy_curve(names: list[str]) -> list[float]:
    """Energy per section: a base by section kind, rising with each repeat; the last chorus peaks."""
    seen: dict[str, int] = {}
    energies = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        energies.append(min(1.0, BASE_ENERGY[name] + 0.05 * (seen[name] - 1)))
    if "chorus" in names:
        energies[len(names) - 1 - names[::-1].index("chorus")] = 1.0
    return [round(e, 3) for e in energies]


def song_form(
    *,
    title: str,
    genre: str,
    key: str,
    time_signature: str,
    tempo_bpm: float,
    target_duration_s: float,
    structure: list[tuple[str, int | None]] | None,
    say_how_far: bool = True,
) -> Score:
    """The score skeleton of a song: key, meter, tempo map and sections (no parts yet).
    `say_how_far`: warn when the form cannot come near the target duration (the form stage does;
    a check of the config before the render builds the same form and says nothing)."""
    if structure:
        names, fixed = [n for n, _ in structure], [b for _, b in structure]
    else:
        names = list(DEFAULT_FORMS[genre])
        fixed = [None] * len(names)
        log.info("no structure given: using the %s default form %s", genre, " ".join(names))
    bar_s = parse_time_signature(time_signature).quarter_notes_per_bar * 60.0 / tempo_bpm
    bars = plan_bars(names, fixed, genre=genre, bar_s=bar_s, target_s=target_duration_s)
    if say_how_far:
        _warn_when_far_from_target(title, names, sum(bars) * bar_s, target_duration_s, tempo_bpm)
    sections, start = [], 0
    for name, count, energy in zip(names, bars, energy_curve(names)):
        sections.append(Section(name=name, start_bar=start, bars=count, energy=energy))
        start += count
    return Score(title=title, key=key, time_signature=time_signature, tempo_map=[TempoChange(beat=0.0, bpm=tempo_bpm)], sections=sections)


FAR_FROM_TARGET = 0.25  # a planned length this share away from the target is reported


def _warn_when_far_from_target(title: str, names: list[str], planned_s: float, target_s: float, tempo_bpm: float) -> None:
    """Say so when musical sizes cannot bring the form near `target_duration_s` (nine sections
    of at least 2 or 4 bars cannot make 30 s at 104 BPM): the song is rendered at the planned
    length, and the warning says what would change it."""
    if abs(planned_s - target_s) <= FAR_FROM_TARGET * target_s:
        return
    shorter = planned_s > target_s
    log.warning(
        "%s: its %d sections last %.0f s at %g BPM %s, against a target_duration_s of %.0f s; %s",
        title,
        len(names),
        planned_s,
        tempo_bpm,
        "at their shortest musical sizes" if shorter else "at their longest musical sizes",
        target_s,
        "give a structure with fewer sections (or a faster tempo) for a shorter song" if shorter else "give a structure with more sections for a longer song",
    )
