"""The per-track stage graph that both runners execute (DESIGN.md §1).

Only stages that exist are registered; each later capability adds its stage here.
Today: `form` (song form → `form.json`, the score skeleton).
"""

from __future__ import annotations

from models.composition.form import song_form
from songmill.stages import Stage, StageContext, StageGraph, TrackJob


def _form_params(job: TrackJob) -> dict:
    track = job.track
    return {
        "title": track.title,
        "genre": job.spec.instrumentation_of(track),
        "key": track.key,
        "time_signature": track.time_signature,
        "tempo_bpm": track.tempo,
        "target_duration_s": track.target_duration_s,
        "structure": [(s.name, s.bars) for s in track.structure] if track.structure else None,
    }


def _run_form(ctx: StageContext) -> None:
    params = dict(ctx.params)
    if params["structure"] is not None:
        params["structure"] = [tuple(s) for s in params["structure"]]
    song_form(**params).save_json(ctx.output("form.json"))


FORM = Stage(
    name="form", version="1", inputs=(), outputs=("form.json",), params=_form_params, run=_run_form,
    description="song form: sections, bar counts and energy fitted to the target duration",
)

TRACK_STAGES = StageGraph()
TRACK_STAGES.add(FORM)
