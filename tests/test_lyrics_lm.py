"""The LM lyrics backend with a tiny, randomly initialised GPT-2 built here (no download):
loaded from a local directory named in the model registry, hash-checked, and constrained to
the syllable targets and rhyme scheme whatever the random model prefers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from models.composition.form import song_form
from models.lyrics.songwriter import write_lyrics
from qc.songwriting import rhyme_ratio
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.lyrics import Lyrics
from songmill.engine.runner import render
from tests.conftest import PROJECT, TINY_LM_VOCABULARY, build_tiny_lm, write_registry_with


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lyrics-lm"))


@pytest.fixture
def registry_with_lm(tiny_lm, tmp_path, monkeypatch) -> Path:
    """A registry file with the shipped models plus the tiny LM, used by the renders below."""
    path = write_registry_with({"tiny-lyrics-lm": {"backend": "transformers", "path": str(tiny_lm)}}, tmp_path / "registry.yaml")
    monkeypatch.setenv("SONGMILL_MODEL_REGISTRY", str(path))
    return path


def form():
    return song_form(title="Paper Lanterns", genre="pop", key="A minor", time_signature="4/4", tempo_bpm=104, target_duration_s=120, structure=None)


def test_a_random_lm_still_writes_lines_with_exact_syllables_and_rhymes(tiny_lm):
    lyrics = write_lyrics(
        form(),
        title="Paper Lanterns",
        theme="lanterns over the river",
        mood="hopeful",
        genre="pop",
        provided=None,
        instrumental=False,
        rng=np.random.default_rng(1),
        lm_dir=tiny_lm,
        lm_name="tiny-lyrics-lm",
        seed=1,
    )
    assert lyrics.source == "lm" and lyrics.model == "tiny-lyrics-lm"
    vocabulary = set(TINY_LM_VOCABULARY)
    lm_lines = 0
    for section in lyrics.sections:
        for line in section.lines:
            if line.text == lyrics.hook:
                continue
            assert len(line.syllables) == line.target_syllables, line.text
            if all(w.text in vocabulary for w in line.words):
                lm_lines += 1
    assert lm_lines >= 0.8 * sum(len(s.lines) for s in lyrics.sections if s.name != "chorus")
    assert rhyme_ratio(lyrics) >= 0.8
    choruses = [[ln.text for ln in s.lines] for s in lyrics.sections if s.name == "chorus"]
    assert all(c == choruses[0] for c in choruses) and "Paper Lanterns" in lyrics.hook


@pytest.mark.long
def test_the_lyrics_stage_loads_the_lm_named_in_the_config_through_the_registry(registry_with_lm, tmp_path):
    config = tmp_path / "lm.yaml"
    config.write_text((PROJECT / "config/releases/debug.yaml").read_text().replace("    seed: 1", "    seed: 1\n    lyrics_model: tiny-lyrics-lm"))
    report = json.loads(render(config, out_dir=tmp_path / "dist").read_text())
    track = report["tracks"][0]
    lyrics = Lyrics.load_json(Path(track["artifacts"]["lyrics.json"]["path"]))
    assert lyrics.source == "lm"
    [model] = next(s for s in track["stages"] if s["stage"] == "lyrics")["models"]
    assert model["name"] == "tiny-lyrics-lm" and model["sha256"] == yaml.safe_load(registry_with_lm.read_text())["models"]["tiny-lyrics-lm"]["sha256"]


def test_an_lm_folder_that_changed_fails_its_hash_check(registry_with_lm, tiny_lm, tmp_path):
    config = tmp_path / "lm.yaml"
    config.write_text((PROJECT / "config/releases/demo.yaml").read_text().replace("    seed: 7", "    seed: 7\n    lyrics_model: tiny-lyrics-lm"))
    extra = tiny_lm / "notes.txt"
    extra.write_text("tampered")
    try:
        with pytest.raises(SongmillError) as err:
            render(config, out_dir=tmp_path / "dist")
    finally:
        extra.unlink()
    assert "failed at stage lyrics: model 'tiny-lyrics-lm' file" in str(err.value)
    assert "fails its hash check" in str(err.value)


def test_an_unregistered_lyrics_model_is_named_in_the_error(tmp_path):
    """Named with the config, at its line, before anything renders."""
    config = tmp_path / "lm.yaml"
    config.write_text((PROJECT / "config/releases/demo.yaml").read_text().replace("    seed: 7", "    seed: 7\n    lyrics_model: no-such-lm"))
    with pytest.raises(ConfigError) as err:
        render(config, out_dir=tmp_path / "dist")
    assert "tracks[0].lyrics_model: 'no-such-lm' is not in the model registry" in str(err.value)
    assert not (tmp_path / "dist").exists()
