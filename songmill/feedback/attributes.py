"""What made a track, in the terms listener feedback is measured by (`measures.ATTRIBUTES`)."""

from __future__ import annotations

from songmill.core.melodic import melodic_features
from songmill.core.score import Score
from songmill.feedback.measures import tempo_band


def mode_of(key: str) -> str:
    """'A minor' → 'minor'; modes other than major and minor are named as they are ('dorian')."""
    return key.split()[-1].lower() if " " in key else "major"


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
        "mode": mode_of(track.key),
        "identity": track.voice.identity if track.voice else "instrumental",
        "style": (vocals or {}).get("style") or (track.voice.style if track.voice else None) or "",
        "melody_model": models.get("melody-gru-celtic", ""),
        "models": models,
    }


def melody_of(score_path) -> dict | None:
    if score_path is None:
        return None
    return melodic_features(Score.load_json(score_path))
