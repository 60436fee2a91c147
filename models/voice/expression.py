"""How a line is sung: named styles, each a documented set of expression parameters.

    style = resolve_style(track.voice.style, track.mood, track.voice.expression)

A track names a style (`voice.style`), or its `mood` picks one (`MOOD_STYLES`); any parameter
can then be overridden in the config (`voice.expression`). The singer reads only the resolved
`Expression`, so the style a song was sung with is recorded in full in `vocals.json`.

| parameter | unit | what it does |
|---|---|---|
| vibrato_rate_hz | Hz | vibrato speed on long notes |
| vibrato_depth_cents | cents | vibrato half-swing (peak deviation from the note) |
| vibrato_delay_s | s | straight tone before the vibrato starts |
| vibrato_fade_s | s | time the vibrato takes to reach full depth |
| portamento_s | s | glide from the previous note's pitch into a new one |
| overshoot_cents | cents | how far the glide passes the new note before settling (≈ 80 ms) |
| dynamics_range_db | dB | loudness span between the quietest and loudest notes (velocity and section energy) |
| breathiness | 0–1 | air mixed into sung vowels above 1 kHz (aperiodicity floor) |
| tension | −1–1 | spectral tilt: +1 pressed and bright (+3 dB per octave above 500 Hz), −1 soft and dark |
| timing_feel_s | s | vowels land this much after (+, laid back) or before (−) the beat |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Expression:
    vibrato_rate_hz: float
    vibrato_depth_cents: float
    vibrato_delay_s: float
    vibrato_fade_s: float
    portamento_s: float
    overshoot_cents: float
    dynamics_range_db: float
    breathiness: float
    tension: float
    timing_feel_s: float

    def to_dict(self) -> dict:
        return asdict(self)


STYLES: dict[str, Expression] = {
    # soft, close, a little air, late vowels, slow narrow vibrato
    "tender": Expression(5.0, 20.0, 0.35, 0.30, 0.08, 0.0, 6.0, 0.25, -0.5, 0.015),
    # forward and brisk: quick glides with a small overshoot, on top of the beat
    "bright": Expression(5.8, 25.0, 0.25, 0.20, 0.04, 15.0, 8.0, 0.05, 0.5, -0.005),
    # slow wide vibrato, long glides, behind the beat, darker
    "melancholic": Expression(4.8, 30.0, 0.40, 0.35, 0.09, 0.0, 8.0, 0.15, -0.3, 0.025),
    # pressed and loud: fast deep vibrato early, overshooting attacks, wide dynamics
    "powerful": Expression(6.0, 40.0, 0.20, 0.15, 0.05, 25.0, 12.0, 0.0, 1.0, 0.0),
    # airy, dark, little vibrato
    "breathy": Expression(5.2, 15.0, 0.35, 0.30, 0.07, 0.0, 6.0, 0.55, -0.8, 0.01),
}

MOOD_STYLES = {
    "tender": "tender",
    "calm": "tender",
    "bright": "bright",
    "hopeful": "bright",
    "playful": "bright",
    "melancholic": "melancholic",
    "nostalgic": "melancholic",
    "dark": "melancholic",
    "powerful": "powerful",
    "energetic": "powerful",
    "defiant": "powerful",
    "dreamy": "breathy",
}


def resolve_style(style: str | None, mood: str, overrides: dict | None = None) -> tuple[str, Expression]:
    """(style name, its parameters with the config's overrides applied)."""
    name = style or MOOD_STYLES.get(mood, "bright")
    expression = STYLES[name]
    changes = {key: float(value) for key, value in (overrides or {}).items() if value is not None}
    return name, replace(expression, **changes)
