"""The per-track stage graph that both runners execute (DESIGN.md §1).

Only stages that exist are registered; each later capability adds its stage here.

    form     spec → form.json        sections, bar counts, energy (the score skeleton)
    lyrics   form.json → lyrics.json  provided, or written from theme and mood (rules or an LM)
    compose  form.json + lyrics.json → score.json, score.mid, score.musicxml
    instruments  score.json + lyrics.json → arrangement.json, stem-<part>.wav (48 kHz float; an
                 ACE-Step model writes one stereo stem-full-mix.wav instead)
    vocals   score.json → vocal-lead.wav (the dry lead vocal; none for an instrumental),
             vocal-double.wav, vocal-harmony.wav (chorus backing), vocals.json
    mix      every stem → mix.wav (48 kHz float stereo), mix.json (the mix decisions)
    master   mix.wav → master-<profile>.wav per delivery profile (watermarked where it asks), master.json
    qc       master-<profile>.wav, vocal-lead.wav → qc.json: every profile's verdict, each metric against its bar;
             fingerprint.json (chromaprint + melody n-grams, for the duplicate check)
             (the runner stops a track that fails here: quarantine, or a new seed)
    export   master-<profile>.wav → export-<profile>[-clip]-<format>.<ext> per profile format
             (untagged: tags, names and the DDEX message come at release level), export.json
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

# Only light modules at import: the graph is read by the CLI and at Airflow DAG-parse
# time. Each stage imports its models (torch, onnxruntime, FluidSynth helpers) when it runs.
from models.composition.form import song_form
from models.instruments.arrangement import load_presets
from models.registry import ModelRegistry
from songmill.core.audio import SAMPLE_RATE_HZ, read_wav, write_wav
from songmill.core.errors import SongmillError
from songmill.core.lyric_blocks import form_from_blocks, parse_blocks
from songmill.core.score import Score
from songmill.engine.stage import HeadStart, Stage, StageContext, StageGraph, TrackJob

log = logging.getLogger(__name__)

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
    song_form(**_form_arguments(ctx.params)).save_json(ctx.output("form.json"))


def _form_arguments(params: dict) -> dict:
    return params | ({"structure": [tuple(s) for s in params["structure"]]} if params["structure"] is not None else {})


def provided_lyrics_problem(job: TrackJob) -> str | None:
    """Why the track's own lyrics do not fit its form — a block with no section to sing it, a
    section with no block, a line with more syllables than its phrase carries — or None. The
    lyrics stage would stop the track on it; checked with the config, it is a config problem
    (`songmill validate`, and a render before any work). Costs a form and a syllabification."""
    track = job.track
    if not track.lyrics or track.voice is None:
        return None
    from models.lyrics.songwriter import provided_lyrics

    try:  # the form itself may not be made from them (lyrics with no structure give the form)
        form = song_form(**_form_arguments(_form_params(job)), say_how_far=False)
        provided_lyrics(form, track.lyrics, title=track.title, where="lyrics")
    except SongmillError as err:
        return str(err).removeprefix(f"track {job.number} ({track.title}) ")  # the config's line says which track
    return None


FORM = Stage(
    name="form",
    version="2",
    inputs=(),
    outputs=("form.json",),
    params=_form_params,
    run=_run_form,
    description="song form: sections, bar counts and energy fitted to the target duration",
)


def _lyrics_params(job: TrackJob) -> dict:
    track = job.track
    return {
        "title": track.title,
        "theme": track.theme,
        "mood": track.mood,
        "genre": job.spec.instrumentation_of(track),
        "provided": track.lyrics,
        "instrumental": track.voice is None,
        "lyrics_model": track.lyrics_model,
        "batch_index": job.index,
        "batch_size": len(job.spec.tracks),
    } | _replaced_lines_params(job)


def _replaced_lines_params(job: TrackJob) -> dict:
    """The editor's replaced lyric lines ({section label: {line: words}}) and lines the writer
    writes again ({section label: {line: seed}}), in the key only when set."""
    lines = {label: {str(n): words for n, words in sorted(edit.lines.items())} for label, edit in job.track.sections.items() if edit.lines}
    rewrites = {label: {str(n): seed for n, seed in sorted(edit.rewrite.items())} for label, edit in job.track.sections.items() if edit.rewrite}
    return ({"replaced_lines": lines} if lines else {}) | ({"rewritten_lines": rewrites} if rewrites else {})


def _lyrics_models(job: TrackJob) -> tuple[str, ...]:
    track = job.track
    return (track.lyrics_model,) if track.lyrics_model and track.lyrics_written else ()


def _run_lyrics(ctx: StageContext) -> None:
    from models.lyrics.songwriter import write_lyrics

    p = ctx.params
    form = Score.load_json(ctx.input("form.json"))
    lm_name = _lyrics_models(ctx.job)
    lm_dir = ctx.model(lm_name[0]) if lm_name else None
    lyrics = write_lyrics(
        form,
        title=p["title"],
        theme=p["theme"],
        mood=p["mood"],
        genre=p["genre"],
        provided=p["provided"],
        instrumental=p["instrumental"],
        rng=ctx.rng(),
        batch_index=p["batch_index"],
        batch_size=p["batch_size"],
        lm_dir=lm_dir,
        lm_name=lm_name[0] if lm_name else None,
        seed=ctx.job.seed,
        where=_where(ctx.job),
    )
    if p.get("replaced_lines") or p.get("rewritten_lines"):
        from models.lyrics.writer import replace_lines, rewritten_lines
        from songmill.core.sections import sections_named

        names, where = [s.name for s in form.sections], _where(ctx.job)

        def by_index(edits: dict) -> dict[int, dict[int, Any]]:
            return {
                index: {int(n): value for n, value in lines.items()} for label, lines in edits.items() for index in sections_named(label, names, where=where)
            }

        words = by_index(p.get("replaced_lines", {}))
        written = rewritten_lines(
            lyrics, by_index(p.get("rewritten_lines", {})), title=p["title"], theme=p["theme"], mood=p["mood"], genre=p["genre"], where=where
        )
        for index, lines in written.items():
            words.setdefault(index, {}).update(lines)
        lyrics = replace_lines(lyrics, words, where=where)
    lyrics.save_json(ctx.output("lyrics.json"))


LYRICS = Stage(
    name="lyrics",
    version="2",  # 2: a chorus longer or shorter than the first sings its lines cut short or begun again; fast songs plan fewer syllables
    inputs=("form.json",),
    outputs=("lyrics.json",),
    params=_lyrics_params,
    run=_run_lyrics,
    optional_models=_lyrics_models,
    gpu_when=lambda job: bool(_lyrics_models(job)),
    description="lyrics: provided and syllabified, or written with metre and rhyme (rules or a local LM)",
)


def _compose_params(job: TrackJob) -> dict:
    track = job.track
    return {
        "genre": job.spec.instrumentation_of(track),
        "identity": track.voice.identity if track.voice else None,
        # the identity's range from the registry, so re-registering a range re-composes
        "voice_range": ModelRegistry.load().voice_range(track.voice.identity if track.voice else None),
        "key_change": track.key_change,
        "credits": _lead_sheet_credits(job),
    } | _melody_seed_params(job)


def _lead_sheet_credits(job: TrackJob) -> dict:
    """What the printed lead sheet credits, from the release: its artist, the rights line, the AI disclosure."""
    release = job.spec.release
    made = release.ai_disclosure.generated
    disclosure = ""
    if release.ai_disclosure.contains_ai and made:
        listed = ", ".join(made[:-1]) + f" and {made[-1]}" if len(made) > 1 else made[0]
        disclosure = f"{listed[0].upper()}{listed[1:]} generated with AI (songmill)"
    return {"composer": release.artist, "lyricist": release.artist, "rights": f"℗ {release.p_line}", "disclosure": disclosure}


def _melody_seed_params(job: TrackJob) -> dict:
    """The sections written again with their own seed, and a DAW's MIDI edit (the song editor's);
    only when there are any, so an unedited track keeps its cache key."""
    from songmill.core.store import file_sha256

    seeds = {label: edit.melody_seed for label, edit in job.track.sections.items() if edit.melody_seed is not None}
    chords = {label: edit.chords_seed for label, edit in job.track.sections.items() if edit.chords_seed is not None}
    rhythms = {label: edit.rhythm_seed for label, edit in job.track.sections.items() if edit.rhythm_seed is not None}
    override = job.track.score_override
    if override and not Path(override).is_file():
        raise SongmillError(f"track {job.number}'s score override {override} is missing; import the DAW's MIDI again (songmill daw import)")
    return (
        ({"melody_seeds": seeds} if seeds else {})
        | ({"chord_seeds": chords} if chords else {})
        | ({"rhythm_seeds": rhythms} if rhythms else {})
        | ({"score_override": {"path": override, "sha256": file_sha256(Path(override))}} if override else {})
    )


def _section_seeds(form: Score, seeds_by_label: dict[str, int], where: str) -> dict[int, int]:
    from songmill.core.sections import sections_named

    names = [s.name for s in form.sections]
    return {index: seed for label, seed in seeds_by_label.items() for index in sections_named(label, names, where=where)}


def _run_compose(ctx: StageContext) -> None:
    from songmill.core.collector import collector_paused

    with collector_paused():  # torch's and music21's imports: nothing to collect in them
        from models.composition.compose import compose
        from models.composition.melody_model import load_melody_model
        from songmill.core.lyrics import Lyrics
        from songmill.core.score_export import LeadSheetCredits, write_midi, write_musicxml

    form = Score.load_json(ctx.input("form.json"))
    lyrics = Lyrics.load_json(ctx.input("lyrics.json"))
    model = load_melody_model(ctx.model(MELODY_MODEL))
    low, high = ctx.params["voice_range"]
    score, adaptations = compose(
        form,
        lyrics,
        genre=ctx.params["genre"],
        voice_range=(low, high),
        model=model,
        rng=ctx.rng(),
        key_change_semitones=ctx.params["key_change"],
        melody_seeds=_section_seeds(form, ctx.params.get("melody_seeds", {}), f"track {ctx.job.number} ({ctx.job.track.title})"),
        chord_seeds=_section_seeds(form, ctx.params.get("chord_seeds", {}), f"track {ctx.job.number} ({ctx.job.track.title})"),
        rhythm_seeds=_section_seeds(form, ctx.params.get("rhythm_seeds", {}), f"track {ctx.job.number} ({ctx.job.track.title})"),
    )
    if not score.parts:
        raise SongmillError("compose produced no parts")
    if "score_override" in ctx.params:  # the song as composed, with the DAW's melody, bass and chords
        from songmill.core.score_export import read_midi_override

        score = read_midi_override(Path(ctx.params["score_override"]["path"]), score)
    score.save_json(ctx.output("score.json"))
    write_midi(score, ctx.output("score.mid"))
    write_musicxml(score, ctx.output("score.musicxml"), credits=LeadSheetCredits(**ctx.params["credits"]))


COMPOSE = Stage(
    name="compose",
    version="4",  # 4: the drums and the bass draw from streams of their own sections (an edit elsewhere leaves them)  # 3: the lead sheet a musician reads (key spelling, hyphens, ties at beats, rehearsal marks, credits)  # 2: such a chorus repeats the first one's melody line by line; no syllable slot under 0.12 s
    inputs=("form.json", "lyrics.json"),
    outputs=("score.json", "score.mid", "score.musicxml"),
    params=_compose_params,
    run=_run_compose,
    models=(MELODY_MODEL,),
    description="harmony, melody (trained GRU under rules), bass, drums and comping → score JSON, MIDI, MusicXML",
)

SOUNDFONT = "fluidr3-gm"


def _instruments_params(job: TrackJob) -> dict:
    preset_name = job.spec.instrumentation_of(job.track)
    presets = load_presets()
    preset = presets.presets.get(preset_name)
    return {
        "preset": preset_name,
        "instrumental": job.track.voice is None,
        "mood": job.track.mood,
        # the preset's content, so editing config/arrangements.yaml re-renders what it changes
        "preset_content": preset.model_dump(mode="json", by_alias=True) if preset else None,
        "lead": presets.lead.get(preset_name),
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "instruments_model": job.track.instruments_model,
    } | ({"edit": job.track.instruments.model_dump(mode="json")} if not job.track.instruments.is_empty() else {})  # in the key only when set


def _instruments_models(job: TrackJob) -> tuple[str, ...]:
    return (job.track.instruments_model or SOUNDFONT,)


def _run_instruments(ctx: StageContext) -> None:
    from models.instruments.arrangement import arrange
    from models.instruments.builders import render_instruments
    from songmill.core.lyrics import Lyrics
    from songmill.engine.stem_store import StoredStems, stem_namespace

    p = ctx.params
    score = Score.load_json(ctx.input("score.json"))
    arrangement = arrange(score, p["preset"], instrumental=p["instrumental"], edit=p.get("edit"))
    model_name = p["instruments_model"] or SOUNDFONT
    entry = ctx.registry.get(model_name)
    with contextlib.ExitStack() as scope:
        memo = None
        if ctx.store is not None and entry.backend == "soundfont":  # parts rendered before are read back (stem_store)
            from models.instruments.soundfont import renderer_identity

            namespace = stem_namespace(INSTRUMENTS.version, entry.sha256, renderer_identity(), p["sample_rate_hz"])
            memo = scope.enter_context(StoredStems(ctx.store, namespace))
        stems, backend_decisions = render_instruments(
            arrangement,
            score,
            Lyrics.load_json(ctx.input("lyrics.json")),
            backend=entry.backend,
            model_path=ctx.model(model_name),
            model_name=model_name,
            genre=p["preset"],
            mood=p["mood"],
            seed=ctx.job.seed,
            sample_rate_hz=p["sample_rate_hz"],
            inference_steps=entry.inference_steps,
            memo=memo,
        )
        for name, samples in stems.items():
            write_wav(ctx.output(f"stem-{name}.wav"), samples, p["sample_rate_hz"])
        if memo is not None:  # not in arrangement.json: the stage's output depends on its inputs only, not on the store
            memo.keep({name: ctx.output(f"stem-{name}.wav") for name in stems})
            log.info(
                "track %s: %d of %d instrument stems rendered, %d read back from an earlier render",
                ctx.job.number,
                len(stems) - memo.found,
                len(stems),
                memo.found,
            )
    decisions = {**arrangement.decisions, "sample_rate_hz": p["sample_rate_hz"], **backend_decisions}
    if backend_decisions.get("full_mix"):
        for decision in decisions["instruments"]:
            decision["stem"] = None  # one mix instead of stems
    decisions["frames"] = len(next(iter(stems.values()))) if stems else 0
    decisions["stems"] = [f"stem-{name}.wav" for name in stems]
    ctx.output("arrangement.json").write_text(json.dumps(decisions, indent=1), encoding="utf-8")


INSTRUMENTS = Stage(
    name="instruments",
    version="1",
    inputs=("score.json", "lyrics.json"),
    outputs=("arrangement.json",),
    output_glob="stem-*.wav",
    params=_instruments_params,
    run=_run_instruments,
    optional_models=_instruments_models,
    gpu_when=lambda job: job.track.instruments_model is not None,
    description="arrangement by genre preset, then one stem per part: FluidSynth (default) or a diffusion model "
    "(Stable Audio stems, or an ACE-Step full mix); 48 kHz float on the score's timeline",
)


def _vocals_params(job: TrackJob) -> dict:
    voice = job.track.voice
    if voice is None:
        return {"sings": False}
    from models.voice.expression import resolve_style

    registry = ModelRegistry.load()
    identity = registry.identity(voice.identity)
    style, expression = resolve_style(voice.style, job.track.mood, voice.expression.model_dump() if voice.expression else None)
    return {
        "sings": True,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "identity": identity.provenance(),  # name, version and timbre: a new version re-sings
        "style": style,
        "expression": expression.to_dict(),
        "backing": voice.backing,
        "voice_model": voice.model or identity.voice,
    }


def _vocals_models(job: TrackJob) -> tuple[str, ...]:
    voice = job.track.voice
    if voice is None:
        return ()
    return (voice.model or ModelRegistry.load().identity(voice.identity).voice,)


def _run_vocals(ctx: StageContext) -> None:
    if not ctx.params["sings"]:
        return  # an instrumental: no vocal stem (never a silent file)
    from models.instruments.soundfont import stem_frames
    from models.voice.builders import build_singer
    from models.voice.expression import Expression
    from models.voice.singer import BACKING_MIX, Timbre, sing
    from songmill.engine.phrase_store import StoredPhrases, remember_phrases, sung_namespace

    p = ctx.params
    identity = p["identity"]
    score = Score.load_json(ctx.input("score.json"))
    singer = build_singer(backend=ctx.registry.get(p["voice_model"]).backend, model_path=ctx.model(p["voice_model"]), model_name=p["voice_model"])
    timbre = Timbre(identity["formant_shift"], identity["tilt_db_per_octave"], identity["breathiness"])
    # phrases sung in an earlier render of this song are read back from its stems (phrase_store)
    namespace = sung_namespace(VOCALS.version, ctx.registry.get(p["voice_model"]).provenance(), ctx.model(p["voice_model"]), p["sample_rate_hz"])
    reuse = StoredPhrases(ctx.store) if ctx.store is not None else None
    try:
        vocals = sing(
            score,
            singer,
            frames=stem_frames(score, p["sample_rate_hz"]),
            seed=int(ctx.rng().integers(0, 2**31)),
            expression=Expression(**p["expression"]),
            timbre=timbre,
            voice_range=tuple(identity["range"]),
            identity=identity["name"],
            backing=p["backing"],
            reuse=reuse,
            namespace=namespace,
        )
    finally:
        if reuse is not None:
            reuse.close()
    write_wav(ctx.output("vocal-lead.wav"), vocals.lead, p["sample_rate_hz"])
    stems = {"lead": {"file": "vocal-lead.wav", "gain_db": 0.0, "pan": 0.0}}
    for name, audio in vocals.backing.items():
        write_wav(ctx.output(f"vocal-{name}.wav"), audio, p["sample_rate_hz"])
        stems[name] = {"file": f"vocal-{name}.wav", **BACKING_MIX[name]}
    if ctx.store is not None:  # not in vocals.json: the stage's output depends on its inputs only, not on the store
        remember_phrases(ctx.store, vocals.phrases, {name: ctx.output(f"vocal-{name}.wav") for name in stems})
        log.info(
            "track %s: %d of %d phrases sung, the rest read back from an earlier render",
            ctx.job.number,
            len(vocals.phrases) - (reuse.found if reuse else 0),
            len(vocals.phrases),
        )
    decisions = {
        "identity": identity,
        "style": p["style"],
        "expression": p["expression"],
        "backend": singer.backend,
        "voice_model": p["voice_model"],
        "stems": stems,
        "adaptations": vocals.decisions,
    }
    ctx.output("vocals.json").write_text(json.dumps(decisions, indent=1), encoding="utf-8")


VOCALS = Stage(
    name="vocals",
    version="6",  # 6: a phrase's speech seeded by what it says, a line sung again spoken once; 5: backing takes panned phrase by phrase, phrases sung before read back
    inputs=("score.json",),
    outputs=(),
    output_glob="vocal*",
    params=_vocals_params,
    run=_run_vocals,
    optional_models=_vocals_models,
    queue="gpu",  # a neural voice (and, where registered, a neural singing model) on every track with a voice
    description="lead vocal and chorus backing (double, harmony): the neural voice speaking our phone timings, "
    "sung with WORLD in the identity's timbre and the style's expression, 48 kHz",
)


def _mix_params(job: TrackJob) -> dict:
    from songmill.production.presets import load_production_presets

    genre = job.spec.instrumentation_of(job.track)
    # the preset's content, so editing config/production.yaml re-mixes what it changes
    params = {"genre": genre, "preset": load_production_presets().for_genre(genre).mix.model_dump(mode="json")}
    if not job.track.mix.is_empty():  # the song editor's changes; absent when none, so the cache key stays
        params["edit"] = job.track.mix.model_dump(mode="json")
    return params


def _run_mix(ctx: StageContext) -> None:
    from songmill.core.spec import MixEdit
    from songmill.production.mix import StemFile, mix_stems, stem_roles
    from songmill.production.presets import MixPreset

    roles = stem_roles(json.loads(ctx.input("arrangement.json").read_text(encoding="utf-8")))
    stems = []
    for name, path in sorted(ctx.inputs.items()):
        if name.startswith("stem-"):
            role = roles.get(name)
            if role is None:
                raise SongmillError(f"stem {name} is not in the track's arrangement.json; re-render the instruments stage")
            stems.append(StemFile(path, role, name=name.removeprefix("stem-").removesuffix(".wav")))
        elif name.startswith("vocal-") and name.endswith(".wav"):
            stems.append(StemFile(path, "vocal" if name == "vocal-lead.wav" else "backing", name=name.removesuffix(".wav")))
    score = Score.load_json(ctx.input("score.json"))
    edit = MixEdit.model_validate(ctx.params["edit"]) if "edit" in ctx.params else None
    result = mix_stems(stems, score, MixPreset.model_validate(ctx.params["preset"]), edit=edit)
    write_wav(ctx.output("mix.wav"), result.audio, result.decisions["sample_rate_hz"])
    ctx.output("mix.json").write_text(json.dumps({"genre": ctx.params["genre"], **result.decisions}, indent=1), encoding="utf-8")


MIX = Stage(
    name="mix",
    version="1",
    inputs=("score.json", "arrangement.json"),
    input_globs=("stem-*.wav", "vocal*"),
    outputs=("mix.wav", "mix.json"),
    params=_mix_params,
    run=_run_mix,
    description="automatic mix (pedalboard): gain staging to the genre's balance, high-passes, vocal de-essing and "
    "compression, a 1–4 kHz carve and ducking under the voice, section automation, reverb and "
    "tempo-synced delay sends, bus compression; 48 kHz float stereo",
)


def master_targets(job: TrackJob) -> list[dict]:
    """One mastering target per delivery profile of the release: loudness, ceiling, tonal target
    (a reference recording's, else the genre's: in album mode the release genre's, so every
    track heads for the same tone), width and glue."""
    from songmill.core.profiles import load_profiles
    from songmill.core.store import file_sha256
    from songmill.production.presets import load_production_presets

    spec, track = job.spec, job.track
    profiles = load_profiles()
    tone_genre = spec.release.genre if spec.release.mastering == "album" else spec.instrumentation_of(track)
    preset = load_production_presets().for_genre(tone_genre).master
    targets = []
    for name in spec.release.profiles:
        profile = profiles[name]
        reference = track.reference or profile.reference
        targets.append(
            {
                "profile": name,
                "loudness_lufs": profile.loudness_lufs,
                "ceiling_dbtp": profile.true_peak_dbtp,
                "tone_db": list(preset.tone_db),
                "tone_source": f"genre {tone_genre}",
                "reference": {"path": reference, "sha256": file_sha256(Path(reference))} if reference else None,
                "width": preset.width,
                "glue_ratio": preset.glue_ratio,
                "watermark": profile.watermark,
            }
            | ({"tilt_db": track.master.tilt_db} if track.master.tilt_db else {})  # the editor's "brighter"/"warmer"
        )
    return targets


WATERMARK_MODEL = "perth-implicit"


def _master_models(job: TrackJob) -> tuple[str, ...]:
    from songmill.core.profiles import load_profiles

    profiles = load_profiles()
    return (WATERMARK_MODEL,) if any(profiles[name].watermark for name in job.spec.release.profiles) else ()


def _run_master(ctx: StageContext) -> None:
    from songmill.production.master import MasterResult, master

    mix, rate = read_wav(ctx.input("mix.wav"))
    references: dict[str, dict] = {}
    done: dict[tuple, MasterResult] = {}  # profiles that ask for the same master share one pass
    report: dict[str, dict[str, Any]] = {"profiles": {}}
    for spec in ctx.params["targets"]:
        target = master_target(spec, references)
        marker = _watermarker(ctx) if spec["watermark"] else None
        key = (target.loudness_lufs, target.ceiling_dbtp, target.tone_db, target.width, target.glue_ratio, target.reference, spec["watermark"])
        if key not in done:
            done[key] = master(mix, rate, target, mark=marker.mark if marker else None)
        result = done[key]
        write_wav(ctx.output(f"master-{spec['profile']}.wav"), result.audio, rate)
        report["profiles"][spec["profile"]] = {
            **result.decisions,
            "profile": spec["profile"],
            "file": f"master-{spec['profile']}.wav",
            "reference": references[spec["reference"]["path"]] | {"file": spec["reference"]["path"]} if spec["reference"] else None,
        }
    ctx.output("master.json").write_text(json.dumps(report, indent=1), encoding="utf-8")


def master_target(spec: dict, references: dict[str, dict]):  # noqa: ANN201 - a MasterTarget (songmill.production loads pedalboard)
    """The `MasterTarget` of one of `master_targets`' entries. A reference recording is measured
    once into `references` (its path → its loudness and tone), which profiles share."""
    from songmill.production.master import MasterTarget, reference_profile, tilted

    loudness_lufs, tone_db, tone_source = spec["loudness_lufs"], spec["tone_db"], spec["tone_source"]
    if spec["reference"]:
        path = spec["reference"]["path"]
        measured = references.setdefault(path, reference_profile(Path(path)))
        tone_db, tone_source = measured["tone_db"], f"reference {Path(path).name}"
        if loudness_lufs == "reference":
            loudness_lufs = measured["loudness_lufs"]
    return MasterTarget(
        spec["profile"],
        loudness_lufs,
        spec["ceiling_dbtp"],
        tuple(tilted(tone_db, spec.get("tilt_db", 0.0))),
        tone_source,
        spec["width"],
        spec["glue_ratio"],
        reference=bool(spec["reference"]),
    )


def _watermarker(ctx: StageContext):  # noqa: ANN202 - models.watermark loads torch; imported when a profile marks
    from models.watermark.perth import load_watermarker

    return load_watermarker(ctx.model(WATERMARK_MODEL))


MASTER = Stage(
    name="master",
    version="3",  # 3: the provenance watermark before the limiter
    inputs=("mix.wav",),
    outputs=("master.json",),
    output_glob="master-*.wav",
    params=lambda job: {"targets": master_targets(job)},
    optional_models=_master_models,
    run=_run_master,
    description="one master per delivery profile: tonal balance toward the genre (or a reference), glue "
    "compression, width with mono bass, the provenance watermark (PerthNet) where the profile asks, loudness to the profile target through a true-peak limiter",
)


def _qc_params(job: TrackJob) -> dict:
    from qc.suites import load_qc_settings, load_suite
    from songmill.core.profiles import load_profiles

    profiles = load_profiles()
    settings = load_qc_settings()
    # the suites and bars themselves: editing a suite or config/qc.yaml re-judges
    return {
        "profiles": {name: {"profile": profiles[name].audio_fields(), "suite": load_suite(name)} for name in job.spec.release.profiles},
        "bars": settings.technical.model_dump(mode="json"),
        "musical": settings.musical.model_dump(mode="json"),
        "explicit": job.spec.release.explicit,
    }


# failures a new seed cannot fix: the profile's format, and (for lyrics the user gave) the words
FIXED_BY_CONFIG = {"sample_rate_hz", "channels"}
LYRIC_METRICS = {"unsung_syllables", "chorus_problems", "rhyme_misses", "explicit_words"}


def _run_qc(ctx: StageContext) -> None:
    import dataclasses

    from models.instruments.soundfont import stem_frames
    from qc.duplicates import track_print
    from qc.musical import main_key, measure_musical
    from qc.suites import MusicalBars, QCSettings, TechnicalBars, judge
    from qc.technical import TechnicalMetrics
    from songmill.core.lyrics import Lyrics
    from songmill.core.profiles import DeliveryProfile

    score = Score.load_json(ctx.input("score.json"))
    settings = QCSettings(technical=TechnicalBars.model_validate(ctx.params["bars"]), musical=MusicalBars.model_validate(ctx.params["musical"]))
    first_profile = sorted(ctx.params["profiles"])[0]
    first = f"master-{first_profile}.wav"  # every master is the same music: one musical measurement
    lyrics = Lyrics.load_json(ctx.input("lyrics.json"))
    # the watermark's reading (torch, outside the GIL) and each master's technical metrics (numpy
    # and scipy, mostly outside it) run beside the musical measurements, on a core of their own
    digests = {name: ctx.sha256(f"master-{name}.wav") for name in ctx.params["profiles"]}  # known from the refs: no master read to hash it
    marks: dict[str, Future] = {}
    technical: dict[str, Future] = {}  # profiles whose masters are the same file share one measurement
    marked = [name for name, entry in ctx.params["profiles"].items() if entry["profile"]["watermark"]]
    # loaded before this stage's own reading thread starts: its first load swaps modules in
    # sys.modules (export, which may run beside the gate, imports neither perth nor torchaudio)
    marker = _watermarker(ctx) if marked else None
    with ThreadPoolExecutor(max_workers=2) as beside:
        for name in marked:
            digest = digests[name]
            if digest not in marks:
                marks[digest] = beside.submit(_read_mark, marker, ctx.input(f"master-{name}.wav"))
        for name in ctx.params["profiles"]:
            if digests[name] not in technical:
                technical[digests[name]] = beside.submit(_master_metrics, ctx.input(f"master-{name}.wav"))
        musical = measure_musical(
            *read_wav(ctx.input(first)), score=score, lyrics=lyrics, explicit=ctx.params["explicit"], not_explicit=set(settings.musical.not_explicit)
        )
        if "vocal-lead.wav" in ctx.inputs:
            musical = dataclasses.replace(musical, **_vocal_figures(ctx, score))
    expected = {"tempo_bpm": score.tempo_map[0].bpm, "key": main_key(score)}
    report: dict[str, Any] = {"passed": True, "musical": musical.to_dict(), "expected": expected, "profiles": {}}
    measured: dict[str, TechnicalMetrics] = {}  # profiles whose masters are the same file share one measurement
    for name, entry in ctx.params["profiles"].items():
        digest = digests[name]
        if digest not in measured:
            metrics = technical[digest].result()
            rate = metrics.sample_rate_hz
            expected_s = stem_frames(score, rate) / rate  # the song and its release tail
            # a marked master's mark must read back from it (its digest differs from an unmarked one's)
            mark_score = marks[digest].result().median_score if entry["profile"]["watermark"] else None
            measured[digest] = dataclasses.replace(metrics, duration_error_s=round(abs(metrics.duration_s - expected_s), 3), watermark_score=mark_score)
        metrics = dataclasses.replace(measured[digest], file=f"master-{name}.wav")
        [verdict] = judge([metrics], name, DeliveryProfile.model_validate(entry["profile"]), musical=musical, expected=expected, settings=settings)
        report["profiles"][name] = {**verdict.to_dict(), "metrics": metrics.to_dict()}
        report["passed"] = report["passed"] and verdict.passed
    failed = {c["metric"] for verdict in report["profiles"].values() for c in verdict["checks"] if not c["passed"]}
    fixed = FIXED_BY_CONFIG | (LYRIC_METRICS if lyrics.source == "provided" else set())
    report["regenerable"] = not (failed & fixed)  # a new seed cannot fix the profile's format or the user's own lyrics
    ctx.output("qc.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print_ = track_print(ctx.input(first), score)
    ctx.output("fingerprint.json").write_text(json.dumps({**print_.to_dict(), "master": first, "master_sha256": digests[first_profile]}), encoding="utf-8")


def _master_metrics(path: Path):  # noqa: ANN202 - a qc.technical.TechnicalMetrics (qc is imported when the gate runs)
    """The technical metrics of one master. Its samples (68 MB for the demo) live in this frame
    only: Great Expectations' judging leaves a reference cycle that holds the gate's frame, and
    with it whatever the gate's own locals hold, until Python's next full collection."""
    from qc.technical import measure

    return measure(*read_wav(path))


def _qc_head_start(ctx: StageContext) -> None:
    """What the gate can do before the masters exist (`songmill.engine.head_start`): read the dry
    lead vocal against the score's melody, kept for the gate to read back (`_vocal_figures`)."""
    _vocal_figures(ctx, Score.load_json(ctx.input("score.json")))


def _qc_head_start_needed(ctx: StageContext) -> bool:
    return not ctx.is_remembered(VOCAL_FIGURES, _vocal_figures_depend_on(ctx, Score.load_json(ctx.input("score.json"))))


QC = Stage(
    name="qc",
    version="5",  # 5: choruses line by line, the tempo prior, voicing confirmed by Harvest, note changes within their notes
    inputs=("score.json", "lyrics.json", "master.json"),
    input_globs=("master-*.wav", "vocal*"),
    outputs=("qc.json", "fingerprint.json"),
    params=_qc_params,
    optional_models=_master_models,
    run=_run_qc,
    head_start=HeadStart(inputs=("score.json", "vocal-lead.wav"), run=_qc_head_start, needed=_qc_head_start_needed),  # an instrumental has none
    description="the gate: technical metrics of every master (loudness, peaks, clipping, DC, phase, silence, "
    "format, duration against the score, the watermark read back) and musical ones (tempo, key, the dry vocal against the score, "
    "lyrics, explicit words) judged by the profile's Great Expectations suite; the track's fingerprint",
)


VOCAL_FIGURES = "vocal figures"  # what `_vocal_figures` keeps its result as


def _vocal_figures(ctx: StageContext, score: Score) -> dict:
    """The dry lead vocal against the score's melody (`qc.musical.vocal_figures`, the slowest of
    the gate's measurements): only the voice and the tune decide it, so a version whose mix,
    master or profiles changed reads it back from the store instead of measuring again."""
    from qc.musical import vocal_figures

    def measured() -> dict:  # the vocal is read only when its figures are not kept
        return vocal_figures(*read_wav(ctx.input("vocal-lead.wav")), score, StoredF0(ctx.store) if ctx.store is not None else None)

    return ctx.remembered(VOCAL_FIGURES, _vocal_figures_depend_on(ctx, score), measured)


def _vocal_figures_depend_on(ctx: StageContext, score: Score) -> dict:
    """What the dry vocal's figures depend on: the vocal's bytes and the score's melody (its notes)."""
    melody = json.dumps([note.model_dump(mode="json") for note in score.part("melody").notes], sort_keys=True)
    return {"vocal-lead.wav": ctx.sha256("vocal-lead.wav"), "melody": hashlib.sha256(melody.encode()).hexdigest()}


class StoredF0:
    """`qc.vocal.F0Memo` in the artifact store's records: a vocal with one section sung again
    has only that section's stretches read by Harvest again (the rest are the same samples), and
    the QC report draws the gate's DIO reading of the vocal instead of measuring it again."""

    def __init__(self, store):  # noqa: ANN001 - an ArtifactStore
        self.store = store

    def get(self, key: str) -> list[float] | None:
        try:
            record = self.store.get_record(key)
            return [float(v) for v in record["f0_hz"]] if record is not None else None
        except (SongmillError, OSError, ValueError, KeyError, TypeError):
            return None  # a damaged record: the reading is made again

    def put(self, key: str, f0: list[float]) -> None:
        """Best effort: a reading that cannot be kept is made again when next needed (the QC
        report writes here after the delivery, which a store hiccup must not fail)."""
        try:
            self.store.put_record(key, {"f0_hz": f0})
        except (SongmillError, OSError) as err:
            log.warning("an F0 reading was not kept in the store (%s); it will be measured again when needed", err)


def _read_mark(marker, path: Path):  # noqa: ANN001, ANN202 - a Watermarker and its WatermarkReading (models.watermark loads torch)
    samples, rate = read_wav(path)
    return marker.detect(samples, rate)


def _export_params(job: TrackJob) -> dict:
    from songmill.core.profiles import load_profiles

    profiles = load_profiles()
    # each profile whole, so the stage builds the real profile from its params (nothing invented)
    return {"profiles": {name: profiles[name].audio_fields() for name in job.spec.release.profiles}, "sings": job.track.voice is not None}


def _run_export(ctx: StageContext) -> None:
    from songmill.core.lyrics import Lyrics
    from songmill.core.profiles import DeliveryProfile
    from songmill.release.encode import export_profile, preview_window
    from songmill.release.tags import synced_lyrics

    missing = [name for name in ctx.params["profiles"] if f"master-{name}.wav" not in ctx.inputs]
    if missing:
        raise SongmillError(
            f"track {ctx.job.number} ({ctx.job.track.title}) has no master for profile '{missing[0]}' (master-{missing[0]}.wav); re-render its master stage"
        )
    score = Score.load_json(ctx.input("score.json"))
    lyrics = Lyrics.load_json(ctx.input("lyrics.json"))
    sections = [(s.name, score.seconds_at(s.start_bar * score.beats_per_bar), s.energy) for s in score.sections]
    report: dict[str, Any] = {"files": [], "clips": {}}
    # profiles whose masters are the same file (the same loudness and tone: one master pass) read
    # it once and resample it once a rate; it is let go of after the last profile that uses it
    digests = {name: ctx.sha256(f"master-{name}.wav") for name in ctx.params["profiles"]}
    users_left = Counter(digests.values())
    shared: dict[str, tuple[np.ndarray, int, dict[int, np.ndarray]]] = {}  # digest → (master, its rate, it at each rate made)
    for name, fields in ctx.params["profiles"].items():
        profile = DeliveryProfile.model_validate(fields)
        digest = digests[name]
        if digest not in shared:
            master, rate = read_wav(ctx.input(f"master-{name}.wav"))
            shared[digest] = (master, rate, {rate: master})
        master, rate, at_rates = shared[digest]
        clip = preview_window(sections, len(master) / rate, profile.preview_clip_s) if profile.preview_clip_s else None
        if clip:
            report["clips"][name] = {"start_s": clip[0], "end_s": clip[1]}
        seed = int(ctx.rng().integers(0, 2**31))
        files = export_profile(master, rate, name, profile, ctx.workdir, seed=seed, clip=clip, resampled=at_rates)
        report["files"] += [f.to_dict() for f in files]
        users_left[digest] -= 1
        if not users_left[digest]:  # its last profile: freed before the next master is read
            del shared[digest], master, at_rates
    sung = ctx.params["sings"] and lyrics.source != "instrumental"
    lines = (
        [(line.text, [s.text for s in line.syllables]) for section in sorted(lyrics.sections, key=lambda s: s.form_index) for line in section.lines]
        if sung
        else []
    )
    report["lyrics"] = "\n\n".join("\n".join(ln.text for ln in section.lines) for section in lyrics.sections) if sung else None
    report["synced_lyrics"] = synced_lyrics(score, lines).to_dict()
    report["has_vocals"] = sung
    report["duration_s"] = round(score.duration_s, 3)
    report["bpm"] = round(score.tempo_map[0].bpm)
    report["key"] = score.key
    ctx.output("export.json").write_text(json.dumps(report, indent=1), encoding="utf-8")


EXPORT = Stage(
    name="export",
    version="1",
    inputs=("score.json", "lyrics.json", "master.json"),
    input_globs=("master-*.wav",),
    outputs=("export.json",),
    output_glob="export-*",
    params=_export_params,
    run=_run_export,
    description="delivery files per profile from its master: WAV/FLAC dithered (SoX resampler where the rate "
    "differs), MP3/AAC/Opus checked for codec overshoot, 30-second preview clips; synced lyrics",
)

TRACK_STAGES = StageGraph()
TRACK_STAGES.add(FORM)
TRACK_STAGES.add(LYRICS)
TRACK_STAGES.add(COMPOSE)
TRACK_STAGES.add(INSTRUMENTS)
TRACK_STAGES.add(VOCALS)
TRACK_STAGES.add(MIX)
TRACK_STAGES.add(MASTER)
TRACK_STAGES.add(QC)
TRACK_STAGES.add(EXPORT)
