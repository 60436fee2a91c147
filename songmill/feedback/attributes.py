"""What made a track, in the terms listener feedback is measured by (`measures.ATTRIBUTES`)."""

from __future__ import annotations

from songmill.core.music import parse_key
from songmill.feedback.measures import tempo_band


def track_attributes(spec, number: int, *, vocals: dict | None, models: dict[str, str]) -> dict:
    """The attributes of track `number` (1-based) of a release spec.

    `vocals` is the vocals stage's decisions (the style actually sung: a track that names none
    gets its mood's); `models` maps model name → version, for every model its stages used."""
    track = spec.tracks[number - 1]
    return {
        "genre": spec.release.genre,
        "preset": spec.instrumentation_of(track),
        "mood": track.mood,
        "tempo_band": tempo_band(track.tempo),
        "tempo_bpm": track.tempo,
        "mode": parse_key(track.key).mode,  # 'A minor', 'Am' → minor; 'D dorian' → dorian
        "identity": track.voice.identity if track.voice else "instrumental",
        "style": (vocals or {}).get("style") or (track.voice.style if track.voice else None) or "",
        "melody_model": models.get("melody-gru-celtic", ""),
        "models": models,
    }
