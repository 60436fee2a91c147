"""Model refinement from feedback: the gate that refuses a worse model, promotion and rollback
(byte for byte), a refined lyrics LM, and the simulation that shows the loop learns."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from models.composition.melody_model import load_melody_model, save_melody_model
from models.registry import ModelRegistry
from models.versions import VersionStore
from songmill.core.errors import SongmillError
from songmill.engine.track_stages import MELODY_MODEL

CORPUS_FILES = 30  # a fifth of the benchmark's corpus: enough to tell a damaged model


def _kept_melodies(count: int = 6):
    """Melodies of the model in use, weighted as if listeners kept the more stepwise ones."""
    from models.training.refine_melody import eval_song, sung_melodies
    from songmill.core.melodic import melodic_features

    model = load_melody_model(ModelRegistry.load().resolve(MELODY_MODEL, commercial=True))
    scores = sung_melodies(model, eval_song(), count, first_seed=0)
    return [(s, 1.0 + 4 * max(melodic_features(s)["step_share"] - 0.4, 0.0)) for s in scores]


def _preference():
    from songmill.feedback.measures import PreferenceModel

    return PreferenceModel(0.5, {"step_share": 0.4, "leap_share": -0.2, "repeat_share": 0.0, "mean_interval": -0.05}, 24)


def _compose_bytes() -> bytes:
    """The compose stage's score for one seed with the melody model the registry resolves now."""
    from models.composition.compose import compose
    from models.training.refine_melody import eval_song

    song = eval_song()
    model = load_melody_model(ModelRegistry.load().resolve(MELODY_MODEL, commercial=True))
    score, _ = compose(song.form, song.lyrics, genre="pop", voice_range=(53, 72), model=model, rng=np.random.default_rng(5))
    return score.to_json().encode()


@pytest.mark.long
def test_a_damaged_model_is_refused_and_cannot_be_promoted(tmp_path):
    from songmill.feedback.evaluation import refine_melody

    base_path = ModelRegistry.load().resolve(MELODY_MODEL, commercial=True)
    damaged = load_melody_model(base_path)
    torch.manual_seed(3)
    with torch.no_grad():
        for parameter in damaged.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)  # deliberately damaged
    result = refine_melody(base_path, _kept_melodies(), _preference(), corpus_files=CORPUS_FILES, out=tmp_path / "damaged.safetensors", candidate=damaged)
    evaluation = result["evaluation"]
    assert evaluation["verdict"] == "refuse"
    assert any(r.startswith("heldout_nll regresses") for r in evaluation["reasons"])
    assert evaluation["candidate"]["heldout_nll"] > evaluation["in_use"]["heldout_nll"] + 0.05

    store = VersionStore()
    store.add(MELODY_MODEL, "1.0+r1", tmp_path / "damaged.safetensors", {**result, "base_version": "1.0"}, "# damaged\n")
    with pytest.raises(SongmillError) as err:
        store.promote(MELODY_MODEL, "1.0+r1", by="test", reason="try", base_version="1.0")
    assert "was not accepted by its evaluation (preference" in str(err.value) and "heldout_nll regresses" in str(err.value) and "--force" in str(err.value)
    assert ModelRegistry.load().get(MELODY_MODEL).version == "1.0"  # nothing changed


def test_promote_then_rollback_restores_the_previous_output_byte_for_byte(tmp_path):
    from models.training.refine_melody import FineTune, corpus_tunes, fine_tune, split_corpus, training_set

    before = _compose_bytes()
    base = load_melody_model(ModelRegistry.load().resolve(MELODY_MODEL, commercial=True))
    x, y, _ = training_set(_kept_melodies(4), split_corpus(corpus_tunes(CORPUS_FILES))[0])
    refined, figures = fine_tune(base, x, y, FineTune(epochs=1))
    assert figures["trainable_parameters"] == sum(p.numel() for p in base.parameters())
    save_melody_model(refined, tmp_path / "melody.safetensors", {})
    from songmill.core.store import file_sha256

    lineage = {"sha256": file_sha256(tmp_path / "melody.safetensors"), "base_version": "1.0", "evaluation": {"verdict": "promote", "reasons": []}}
    store = VersionStore()
    store.add(MELODY_MODEL, "1.0+r1", tmp_path / "melody.safetensors", lineage, "# refined\n")
    env = {"SONGMILL_VAR_DIR": str(tmp_path / "var")}
    import os

    run = lambda *a: subprocess.run([sys.executable, "-m", "songmill", "models", *a], capture_output=True, text=True, env={**os.environ, **env})  # noqa: E731
    promoted = run("promote", MELODY_MODEL, "1.0+r1")
    assert promoted.returncode == 0 and promoted.stdout.strip() == f"{MELODY_MODEL}: 1.0+r1 in use"
    assert ModelRegistry.load().get(MELODY_MODEL).version == "1.0+r1"  # stages, cache keys and provenance name it
    after = _compose_bytes()
    assert after != before
    rolled = run("rollback", MELODY_MODEL, "1.0")
    assert rolled.returncode == 0 and rolled.stdout.strip() == f"{MELODY_MODEL}: 1.0 in use"
    assert _compose_bytes() == before  # the previous version's output, byte for byte
    listing = json.loads(run("versions", MELODY_MODEL, "--json").stdout)
    assert [h["action"] for h in listing["history"]] == ["promote", "rollback"] and listing["in_use"] == "1.0"
    missing = run("rollback", MELODY_MODEL, "9.9")
    assert missing.returncode == 2 and "has no version '9.9'" in missing.stderr and "1.0+r1" in missing.stderr

    (store.folder(MELODY_MODEL, "1.0+r1") / "melody.safetensors").write_bytes(b"tampered")  # a changed file is caught by its hash
    store.promote(MELODY_MODEL, "1.0+r1", by="test", reason="again", base_version="1.0")
    with pytest.raises(SongmillError, match="fails its hash check"):
        ModelRegistry.load().resolve(MELODY_MODEL, commercial=True)


def test_the_planning_simulation_learns_the_hidden_tastes():
    from songmill.feedback.simulate import simulate_nights

    result = simulate_nights(8, tracks=12)
    assert result["last_nights_share"] > result["prior_share"] + 0.15
    assert len(result["curve"]) == 8 and result["choices_last_night"]


@pytest.mark.slow
def test_one_refinement_cycle_moves_the_preferred_melodic_feature_and_passes_the_gate(tmp_path):
    from songmill.feedback.simulate import simulate_refinement

    result = simulate_refinement(out_dir=tmp_path)
    assert result["step_share"]["refined"] > result["step_share"]["in_use"] + 0.02
    assert result["evaluation"]["verdict"] == "promote", result["evaluation"]["reasons"]

    # and a song composed by the refined model passes the render's QC gate
    from songmill.core.store import file_sha256
    from songmill.engine.runner import render
    from tests.conftest import DEBUG

    candidate = tmp_path / "candidate.safetensors"
    VersionStore().add(MELODY_MODEL, "1.0+r1", candidate, {"sha256": file_sha256(candidate), "evaluation": result["evaluation"]}, "# refined\n")
    config = tmp_path / "debug-refined.yaml"
    config.write_text(DEBUG.read_text().replace("  profiles: [streaming]", f"  profiles: [streaming]\n  model_versions: {{{MELODY_MODEL}: '1.0+r1'}}"))
    report = json.loads(render(config, out_dir=tmp_path / "dist", seed=11).read_text())
    [track] = report["tracks"]
    assert track["status"] == "rendered" and all(v["passed"] for v in track["qc"]["profiles"].values())
    assert any(s["stage"] == "compose" and "1.0+r1" in json.dumps(s) for s in track["stages"])


def test_an_experiment_arm_renders_with_a_pinned_model_version(tmp_path):
    """A/B between model versions: the arm pins the release's `model_versions`, and the registry
    the stages use resolves that version (path, hash, provenance), whatever is promoted."""
    from songmill.catalogue import Catalogue
    from songmill.core.store import file_sha256
    from songmill.feedback.experiments import Experiment, apply_experiments

    base_path = ModelRegistry.load().resolve(MELODY_MODEL, commercial=True)
    store = VersionStore()
    store.add(MELODY_MODEL, "1.0+r1", base_path, {"sha256": file_sha256(base_path), "evaluation": {"verdict": "promote", "reasons": []}}, "# copy\n")
    experiment = Experiment(arms={"A": {"model_versions": {MELODY_MODEL: "1.0"}}, "B": {"model_versions": {MELODY_MODEL: "1.0+r1"}}})
    catalogue = Catalogue.open(f"sqlite:///{tmp_path / 'c.db'}")
    seen = {}
    for day in range(1, 9):
        config = {"release": {"id": f"nightly-2026-12-{day:02d}"}, "tracks": [{"mood": "hopeful"}]}
        [applied] = apply_experiments(catalogue, config, {"melody-ab": experiment})
        seen[applied["arm"]] = config["release"]["model_versions"][MELODY_MODEL]
        assert "model_versions" not in config["tracks"][0]
    assert seen == {"A": "1.0", "B": "1.0+r1"}
    pinned = ModelRegistry.load().pinned({MELODY_MODEL: "1.0+r1"})
    assert pinned.get(MELODY_MODEL).version == "1.0+r1" and pinned.resolve(MELODY_MODEL, commercial=True).parent.name == "1.0+r1"
    assert ModelRegistry.load().get(MELODY_MODEL).version == "1.0"  # what is in use is unchanged
    with pytest.raises(SongmillError) as err:
        ModelRegistry.load().pinned({MELODY_MODEL: "7"})
    assert str(err.value) == f"release.model_versions asks for {MELODY_MODEL} version '7', which is not registered (versions: 1.0, 1.0+r1)"


def test_a_refinement_learned_from_too_few_tracks_is_not_promoted():
    """Every later render sings with the model in use: a candidate that wins on the feedback of
    three tracks (a preference line through any three points) is kept, not put in use."""
    from songmill.feedback.evaluation import MIN_FEEDBACK_TRACKS, enough_evidence

    verdict, reasons = enough_evidence(3, "promote", [])
    assert verdict == "refuse" and reasons == [
        f"learned from 3 tracks' feedback; promoting needs at least {MIN_FEEDBACK_TRACKS} "
        "(the candidate is kept as a version: `songmill models promote NAME VERSION --force` puts it in use by hand)"
    ]
    assert enough_evidence(MIN_FEEDBACK_TRACKS, "promote", []) == ("promote", [])
    assert enough_evidence(24, "refuse", ["preference does not beat"]) == ("refuse", ["preference does not beat"])
