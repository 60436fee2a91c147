"""The instruments room's builder: which renderer turns a track's arrangement into stems, chosen
by the registry backend of the model the track names (audiocraft's builders, in small).

    stems, decisions = render_instruments(arrangement, score, lyrics, backend="soundfont",
                                          model_path=sf2, model_name="fluidr3-gm", genre="pop",
                                          mood="hopeful", seed=7, sample_rate_hz=48000)

`stems` maps a stem name to (frames, 2) float32 audio; `decisions` says what rendered them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.instruments.arrangement import Arrangement
from models.registry import STEM_BACKENDS
from songmill.core.errors import SongmillError
from songmill.core.lyrics import Lyrics
from songmill.core.score import Score

if TYPE_CHECKING:
    from models.instruments.soundfont import StemMemo


def render_instruments(
    arrangement: Arrangement,
    score: Score,
    lyrics: Lyrics,
    *,
    backend: str,
    model_path: Path,
    model_name: str,
    genre: str,
    mood: str,
    seed: int,
    sample_rate_hz: int,
    inference_steps: int | None = None,
    memo: StemMemo | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The stems of `arrangement` from the backend's renderer, and the decisions to record.
    `memo`: stems of earlier renders by part (the soundfont backend reads a part it holds back
    instead of rendering it; its keys must name the soundfont).

    Raises
    ------
    SongmillError : the backend cannot render instruments, or its model folder is incomplete.
    """
    if backend == "soundfont":
        from models.instruments.soundfont import render_stems

        stems = render_stems(arrangement, score, soundfont=model_path, sample_rate_hz=sample_rate_hz, memo=memo)
        return stems, {"backend": "soundfont"}
    if backend not in STEM_BACKENDS:
        raise SongmillError(f"model '{model_name}' has backend '{backend}', which cannot render instruments (use one of {', '.join(STEM_BACKENDS)})")
    from models.instruments import diffusion

    pipeline = diffusion.load_pipeline(model_path, backend=backend, model_name=model_name)
    steps = inference_steps or (diffusion.ACE_STEP_STEPS if backend == "diffusers-ace-step" else diffusion.STABLE_AUDIO_STEPS)
    decisions: dict[str, Any] = {"backend": backend, "model": model_name, "device": diffusion.device(), "inference_steps": steps}
    if backend == "diffusers-ace-step":
        caption = f"{genre}, {mood}, " + ", ".join(part.instrument for part in arrangement.parts)
        decisions.update(caption=caption, full_mix=True)
        return {"full-mix": diffusion.ace_step_mix(pipeline, score, lyrics, caption=caption, seed=seed, steps=steps)}, decisions
    return diffusion.stable_audio_stems(pipeline, arrangement, score, genre=genre, mood=mood, seed=seed, steps=steps), decisions
