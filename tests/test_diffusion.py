"""The diffusion backends, with tiny randomly initialised pipelines built here (no download):
saved to a local folder, registered with their hash, chosen by the track config, and run
through the same `instruments` stage code as real weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from songmill.core.audio import read_wav
from songmill.core.errors import SongmillError
from songmill.engine.runner import render
from tests.conftest import PROJECT, write_registry_with

WORDS = "[UNK] <pad> </s> a an the and of in on to with piano guitar bass drums pad strings pop rock folk BPM major minor verse chorus bridge intro outro sparse full".split()


def tiny_tokenizer(max_length: int):
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="<pad>", eos_token="</s>", model_max_length=max_length)


def tiny_stable_audio(folder: Path) -> Path:
    import torch
    from diffusers import AutoencoderOobleck, CosineDPMSolverMultistepScheduler, StableAudioDiTModel, StableAudioPipeline, StableAudioProjectionModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    transformer = StableAudioDiTModel(
        sample_size=256,
        in_channels=3,
        num_layers=2,
        attention_head_dim=4,
        num_key_value_attention_heads=2,
        out_channels=3,
        cross_attention_dim=4,
        time_proj_dim=8,
        global_states_input_dim=8,
        cross_attention_input_dim=4,
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=6,
        downsampling_ratios=[1, 2],
        decoder_channels=3,
        decoder_input_channels=3,
        audio_channels=2,
        channel_multiples=[2, 4],
        sampling_rate=16,
    )
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(WORDS), d_model=4, d_kv=2, d_ff=8, num_layers=1, num_heads=2))
    projection = StableAudioProjectionModel(text_encoder_dim=4, conditioning_dim=4, min_value=0, max_value=32)
    scheduler = CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction", sigma_data=1.0, sigma_schedule="exponential")
    pipeline = StableAudioPipeline(
        vae=vae, text_encoder=text_encoder, projection_model=projection, tokenizer=tiny_tokenizer(16), transformer=transformer, scheduler=scheduler
    )
    pipeline.save_pretrained(folder)
    return folder


def tiny_ace_step(folder: Path) -> Path:
    import torch
    from diffusers import AceStepPipeline, AutoencoderOobleck, FlowMatchEulerDiscreteScheduler
    from diffusers.models.transformers.ace_step_transformer import AceStepTransformer1DModel
    from diffusers.pipelines.ace_step import AceStepConditionEncoder
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(0)
    transformer = AceStepTransformer1DModel(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        in_channels=24,
        audio_acoustic_hidden_dim=8,
        patch_size=2,
        rope_theta=10000.0,
        sliding_window=16,
    )
    text_encoder = Qwen3Model(
        Qwen3Config(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            vocab_size=len(WORDS),
            max_position_embeddings=4096,
        )
    )
    condition_encoder = AceStepConditionEncoder(
        hidden_size=32,
        intermediate_size=64,
        text_hidden_dim=32,
        timbre_hidden_dim=8,
        num_lyric_encoder_hidden_layers=2,
        num_timbre_encoder_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        rope_theta=10000.0,
        sliding_window=16,
    )
    # 25 latent frames a second, hop 2: 50 samples a second
    vae = AutoencoderOobleck(
        encoder_hidden_size=6,
        downsampling_ratios=[1, 2],
        decoder_channels=3,
        decoder_input_channels=8,
        audio_channels=2,
        channel_multiples=[2, 4],
        sampling_rate=50,
    )
    pipeline = AceStepPipeline(
        transformer=transformer,
        condition_encoder=condition_encoder,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_tokenizer(4096),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0),
    )
    pipeline.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusion")
    return {
        "tiny-stable-audio": ("diffusers-stable-audio", tiny_stable_audio(root / "stable-audio")),
        "tiny-ace-step": ("diffusers-ace-step", tiny_ace_step(root / "ace-step")),
    }


@pytest.fixture
def registry(tiny_models, tmp_path, monkeypatch) -> Path:
    extra = {name: {"backend": backend, "path": str(folder), "inference_steps": 2} for name, (backend, folder) in tiny_models.items()}
    path = write_registry_with(extra, tmp_path / "registry.yaml")
    monkeypatch.setenv("SONGMILL_MODEL_REGISTRY", str(path))
    return path


def config_with(tmp_path: Path, model: str, seconds: int = 40) -> Path:
    """The demo cut to `seconds`, its instruments from `model` (a tiny random pipeline in the
    registry). Not the debug release: random stems must still leave the gate a tempo and key to
    hear, and the demo's 40 s with its seed does."""
    config = tmp_path / f"{model}.yaml"
    config.write_text(
        (PROJECT / "config/releases/demo.yaml")
        .read_text()
        .replace("    seed: 7", f"    seed: 7\n    instruments_model: {model}")
        .replace("target_duration_s: 180", f"target_duration_s: {seconds}")
    )
    return config


@pytest.mark.long
def test_stable_audio_writes_a_stem_per_instrument_through_the_stage(registry, tmp_path):
    report = json.loads(render(config_with(tmp_path, "tiny-stable-audio"), out_dir=tmp_path / "dist").read_text())
    [track] = report["tracks"]
    arrangement = track["arrangement"]
    assert arrangement["backend"] == "diffusers-stable-audio" and arrangement["model"] == "tiny-stable-audio"
    assert arrangement["device"] in ("cpu", "cuda")
    [model] = next(s for s in track["stages"] if s["stage"] == "instruments")["models"]
    assert model["name"] == "tiny-stable-audio"
    assert arrangement["inference_steps"] == 2
    for decision in arrangement["instruments"]:
        if not decision["stem"]:
            continue
        samples, rate = read_wav(Path(track["artifacts"][decision["stem"]]["path"]))
        assert rate == 48000 and len(samples) == arrangement["frames"] and np.isfinite(samples).all()
        assert np.abs(samples).max() > 0  # the model wrote sound where the instrument plays
    assert abs(arrangement["frames"] - (track["duration_s"] + 2.0) * 48000) < 48  # the song plus the tail


@pytest.mark.long
def test_ace_step_writes_one_full_mix_through_the_stage(registry, tmp_path):
    report = json.loads(render(config_with(tmp_path, "tiny-ace-step"), out_dir=tmp_path / "dist").read_text())
    [track] = report["tracks"]
    arrangement = track["arrangement"]
    assert arrangement["backend"] == "diffusers-ace-step" and arrangement["stems"] == ["stem-full-mix.wav"]
    assert "pop, hopeful" in arrangement["caption"]
    samples, rate = read_wav(Path(track["artifacts"]["stem-full-mix.wav"]["path"]))
    assert rate == 48000 and samples.shape == (arrangement["frames"], 2) and np.isfinite(samples).all()
    assert np.abs(samples[: int(track["duration_s"] * 48000)]).max() > 0


def test_a_diffusion_folder_that_changed_fails_its_hash_check(registry, tiny_models, tmp_path):
    folder = tiny_models["tiny-stable-audio"][1]
    extra = folder / "stray.txt"
    extra.write_text("x")
    try:
        with pytest.raises(SongmillError) as err:
            render(config_with(tmp_path, "tiny-stable-audio"), out_dir=tmp_path / "dist")
    finally:
        extra.unlink()
    assert f"failed at stage instruments: model 'tiny-stable-audio' file {folder} fails its hash check" in str(err.value)


def test_an_incomplete_diffusion_folder_is_named(tiny_models, tmp_path):
    from models.instruments.diffusion import load_pipeline

    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["tiny-stable-audio"][1], broken)
    shutil.rmtree(broken / "transformer")
    with pytest.raises(SongmillError) as err:
        load_pipeline(broken, backend="diffusers-stable-audio", model_name="broken")
    assert str(err.value).startswith(f"diffusion model 'broken' folder {broken} is incomplete or damaged:")
    (broken / "model_index.json").unlink()
    with pytest.raises(SongmillError) as err:
        load_pipeline(broken, backend="diffusers-stable-audio", model_name="broken")
    assert str(err.value) == f"diffusion model 'broken' folder {broken} is incomplete: it has no model_index.json (save it with save_pretrained)"


def test_a_missing_diffusion_folder_is_named(registry, tmp_path):
    entries = yaml.safe_load(registry.read_text())
    entries["models"]["tiny-stable-audio"]["path"] = str(tmp_path / "nowhere")
    registry.write_text(yaml.safe_dump(entries))
    with pytest.raises(SongmillError) as err:
        render(config_with(tmp_path, "tiny-stable-audio"), out_dir=tmp_path / "dist")
    assert f"model 'tiny-stable-audio' file {tmp_path / 'nowhere'} is missing" in str(err.value)


def test_stages_that_run_a_neural_model_ask_for_the_gpu_queue(tmp_path):
    from songmill.core.spec import load_release
    from songmill.engine.stage import TrackJob
    from songmill.engine.track_stages import COMPOSE, INSTRUMENTS, LYRICS

    diffusion = TrackJob(load_release(config_with(tmp_path, "tiny-ace-step")), 0, 7, True)
    plain = TrackJob(load_release(PROJECT / "config/releases/demo.yaml"), 0, 7, True)
    assert INSTRUMENTS.queue_for(diffusion) == "gpu" and INSTRUMENTS.queue_for(plain) == "default"
    assert LYRICS.queue_for(plain) == COMPOSE.queue_for(plain) == "default"
