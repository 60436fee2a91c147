"""Diffusion backends for the `instruments` stage, through diffusers, from local weights only.

* `stable-audio` (`StableAudioPipeline`, registry backend `diffusers-stable-audio`): one stem per
  arranged instrument; each section it plays in is generated from a text prompt (instrument,
  pattern, genre, mood, tempo, key) for exactly that section's length, then placed on the
  song's timeline. Sections longer than the model's window are generated in pieces.
* `ace-step` (`AceStepPipeline`, ACE-Step 1.5, registry backend `diffusers-ace-step`): the whole
  song as one stereo mix from the caption, the lyrics, BPM, key, meter and duration; later
  stages master and check it like any mix.

Both load from the folder the model registry names (hash-checked before loading), run on the
GPU when there is one and on the CPU otherwise, and return 48 kHz float audio on the score's
timeline. Tests run them with tiny randomly initialised pipelines built in the test.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from models.instruments.arrangement import Arrangement
from models.instruments.soundfont import stem_frames
from songmill.core.audio import SAMPLE_RATE_HZ, resample
from songmill.core.errors import SongmillError
from songmill.core.lyrics import Lyrics
from songmill.core.score import Score

log = logging.getLogger("songmill.diffusion")

BACKENDS = {"diffusers-stable-audio": "StableAudioPipeline", "diffusers-ace-step": "AceStepPipeline"}
STABLE_AUDIO_STEPS, ACE_STEP_STEPS = 100, 8
ACE_STEP_LATENT_HZ = 25  # 48 kHz audio, 1920-sample VAE hop
# Words a prompt uses for each pattern.
PATTERN_WORDS = {
    "as-written": "",
    "comp": "chords",
    "strum": "strummed chords",
    "power": "power chords",
    "arpeggio": "arpeggios",
    "sustain": "sustained chords",
    "counter": "a slow counter-melody",
    "double": "melody",
    "lead": "lead melody",
}


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_pipeline(folder: Path, *, backend: str, model_name: str):
    """The diffusers pipeline saved in `folder` (already hash-checked by the registry)."""
    import diffusers
    import torch

    if backend not in BACKENDS:
        raise SongmillError(f"model '{model_name}' has backend '{backend}'; the instruments stage runs {', '.join(BACKENDS)} or the soundfont")
    pipeline_class = getattr(diffusers, BACKENDS[backend])
    if not (Path(folder) / "model_index.json").is_file():
        raise SongmillError(f"diffusion model '{model_name}' folder {folder} is incomplete: it has no model_index.json (save it with save_pretrained)")
    try:
        pipeline = pipeline_class.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True, dtype=torch.float16 if device() == "cuda" else torch.float32
        )
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise SongmillError(f"diffusion model '{model_name}' folder {folder} is incomplete or damaged: {str(err).splitlines()[0]}") from None
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device())


def _generator(seed: int):
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)


def stable_audio_stems(
    pipeline, arrangement: Arrangement, score: Score, *, genre: str, mood: str, seed: int, steps: int = STABLE_AUDIO_STEPS
) -> dict[str, np.ndarray]:
    """One mono stem per arranged instrument, generated section by section."""
    rate = float(pipeline.vae.config.sampling_rate)
    window_s = pipeline.transformer.config.sample_size * pipeline.vae.hop_length / rate
    frames = stem_frames(score)
    bar = score.beats_per_bar
    stems = {}
    for number, part in enumerate(arrangement.parts):
        decision = next(d for d in arrangement.decisions["instruments"] if d["name"] == part.name)
        stem = np.zeros(frames, dtype=np.float32)
        for index, section in enumerate(score.sections):
            if section.name not in decision["sections"]:
                continue
            start_s = score.seconds_at(section.start_bar * bar)
            end_s = score.seconds_at((section.start_bar + section.bars) * bar)
            prompt = (
                f"{part.instrument} {PATTERN_WORDS.get(decision['pattern'], '')}, {genre}, {mood}, "
                f"{score.tempo_map[0].bpm:g} BPM, {score.key_at(section.start_bar * bar)}, "
                f"{'sparse' if section.energy < 0.5 else 'full'} {section.name}"
            ).replace(" ,", ",")
            for piece in range(math.ceil((end_s - start_s) / window_s - 1e-9)):
                piece_start = start_s + piece * window_s
                length = min(window_s, end_s - piece_start)
                audio = pipeline(
                    prompt, audio_end_in_s=length, num_inference_steps=steps, generator=_generator(seed + 1009 * number + 101 * index + piece)
                ).audios[0]
                mono = resample(audio.float().cpu().numpy().mean(axis=0), from_hz=rate)
                begin = int(round(piece_start * SAMPLE_RATE_HZ))
                count = min(len(mono), int(round(length * SAMPLE_RATE_HZ)), frames - begin)
                stem[begin : begin + count] = mono[:count]
        stems[part.name] = stem
    return stems


def lyrics_text(lyrics: Lyrics) -> str:
    """Tagged lyrics for ACE-Step, one [section] block per sung section in form order."""
    blocks = []
    for section in lyrics.sections:
        blocks.append(f"[{section.name}]\n" + "\n".join(line.text for line in section.lines))
    return "\n\n".join(blocks)


def ace_step_mix(pipeline, score: Score, lyrics: Lyrics, *, caption: str, seed: int, steps: int = ACE_STEP_STEPS) -> np.ndarray:
    """The whole song as a stereo (frames, 2) mix at 48 kHz, on the score's timeline."""
    duration = score.duration_s
    # ACE-Step works in 25 Hz latent frames, patched in pairs: ask for a whole number of pairs
    frames_25hz = math.ceil(duration * ACE_STEP_LATENT_HZ)
    model_duration = (frames_25hz + frames_25hz % 2) / ACE_STEP_LATENT_HZ
    output = pipeline(
        prompt=caption,
        lyrics=lyrics_text(lyrics),
        audio_duration=model_duration,
        num_inference_steps=steps,
        bpm=int(round(score.tempo_map[0].bpm)),
        keyscale=score.key,
        timesignature=str(score.meter.numerator),
        generator=_generator(seed),
    )
    audio = output.audios[0].float().cpu().numpy().T  # (samples, channels)
    rate = float(pipeline.vae.config.sampling_rate)
    made_s = len(audio) / rate
    if abs(made_s - model_duration) > 0.05 * model_duration:
        raise SongmillError(f"the ACE-Step model returned {made_s:.1f} s of audio for a {model_duration:.1f} s request; check its VAE sampling rate")
    stereo = resample(audio if audio.shape[1] == 2 else np.repeat(audio[:, :1], 2, axis=1), from_hz=rate)
    frames = stem_frames(score)
    mix = np.zeros((frames, 2), dtype=np.float32)
    song = min(frames, len(stereo), int(round(duration * SAMPLE_RATE_HZ)))  # the song; the tail stays silent
    mix[:song] = stereo[:song]
    return mix
