"""`songmill models add`, `pull` and `list`, through the command as a user runs it, with a tiny
random diffusers pipeline built here (no download): the folder is hashed, copied, registered with
the registry file's comments kept, and loads through the instruments backend from where it was
copied. `pull` runs against an empty Hugging Face cache offline, an unreachable Hub, and a cache
that holds the pinned revision. Every refusal leaves the registry file byte-identical."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.registry import DEFAULT_REGISTRY, tree_sha256
from tests.conftest import PROJECT
from tests.servers import free_port

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory) -> Path:
    from tests.test_diffusion import tiny_stable_audio

    return tiny_stable_audio(tmp_path_factory.mktemp("tiny") / "tiny-stable-audio")


@pytest.fixture
def home(tmp_path) -> dict[str, str]:
    """An environment with its own registry (the shipped one, comments and all), models folder
    and Hugging Face cache; returns the environment for the command."""
    shipped = DEFAULT_REGISTRY.read_text()
    registry = tmp_path / "registry.yaml"
    registry.write_text(shipped.replace("path: composition/", f"path: {DEFAULT_REGISTRY.parent}/composition/"))
    known = tmp_path / "known-models.yaml"
    known.write_text(
        "models:\n"
        "  tiny-audio:\n"
        f"    repo_id: songmill-test/tiny-audio\n    revision: {REVISION}\n    backend: diffusers-stable-audio\n"
        "    licence: Apache-2.0\n    commercial_use: true\n    size_gb: 0.001\n"
    )
    return {
        **os.environ,
        "SONGMILL_MODEL_REGISTRY": str(registry),
        "SONGMILL_MODELS_DIR": str(tmp_path / "models"),
        "SONGMILL_KNOWN_MODELS": str(known),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def songmill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "songmill", *args], env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT)


def one_sentence(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_add_copies_hashes_and_registers_a_pipeline_that_then_loads(home, tiny_pipeline):
    registry = Path(home["SONGMILL_MODEL_REGISTRY"])
    registry.chmod(0o644)
    result = songmill(home, "models", "add", "my-audio", "--from", str(tiny_pipeline), "--licence", "Apache-2.0", "--commercial")
    assert registry.stat().st_mode & 0o777 == 0o644  # still readable by the workers' user
    assert result.returncode == 0, result.stderr
    copied = Path(home["SONGMILL_MODELS_DIR"]) / "my-audio"
    digest = tree_sha256(tiny_pipeline)
    assert tree_sha256(copied) == digest and f"sha256 {digest}" in result.stdout
    text = registry.read_text()
    assert "# The model registry: every model, soundfont and voice songmill may load." in text  # comments kept
    assert "perth-implicit:" in text and "identities:" in text

    from models.instruments.diffusion import load_pipeline
    from models.registry import ModelRegistry

    loaded = ModelRegistry.load(registry)
    entry = loaded.get("my-audio")
    assert (entry.backend, entry.licence, entry.commercial_use, entry.sha256) == ("diffusers-stable-audio", "Apache-2.0", True, digest)
    pipeline = load_pipeline(loaded.resolve("my-audio", commercial=True), backend=entry.backend, model_name="my-audio")
    assert type(pipeline).__name__ == "StableAudioPipeline"

    listed = songmill(home, "models", "list", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert {row["name"]: row["state"] for row in json.loads(listed.stdout)}["my-audio"] == "ok"

    # a weight changed on disk afterwards: list says which model and exits 1
    weights = next(copied.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    after = songmill(home, "models", "list")
    assert after.returncode == 1 and "my-audio" in after.stdout and "fails its hash check" in after.stdout


@pytest.mark.parametrize(
    "damage, args, expected",
    [
        ("none", ["--sha256", "0" * 64], "fails its hash check (sha256"),
        ("none", ["--sha256", "abc"], "--sha256 'abc' is not a sha256 (64 hexadecimal digits"),
        ("pickle", [], "holds no .safetensors weights (it has"),
        ("component", [], "lacks the pipeline's component folder vae; the download is incomplete"),
        ("class", [], "describes a diffusers FluxPipeline; songmill runs StableAudioPipeline and AceStepPipeline only"),
        ("none", ["--licence", " "], "--licence is empty"),
        # a licence that forbids commercial use never feeds a commercial release
        ("none", ["--licence", "CC-BY-NC-4.0", "--commercial"], "the licence 'CC-BY-NC-4.0' forbids commercial use; leave out --commercial"),
        ("none", ["--licence", "research only", "--commercial"], "the licence 'research only' forbids commercial use"),
        ("taken", [], "model 'fluidr3-gm' is already in the model registry"),
        ("missing", [], "does not exist"),
    ],
)
def test_add_refuses_in_one_sentence_and_writes_nothing(home, tiny_pipeline, tmp_path, damage, args, expected):
    source = tmp_path / "source"
    shutil.copytree(tiny_pipeline, source)
    name = "fluidr3-gm" if damage == "taken" else "broken-audio"
    if damage == "pickle":
        for weights in source.rglob("*.safetensors"):
            weights.rename(weights.with_suffix(".bin"))
    elif damage == "component":
        shutil.rmtree(source / "vae")
    elif damage == "class":
        index = json.loads((source / "model_index.json").read_text())
        (source / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxPipeline"}))
    elif damage == "missing":
        shutil.rmtree(source)
    registry = Path(home["SONGMILL_MODEL_REGISTRY"])
    before = registry.read_bytes()
    licence = [] if "--licence" in args else ["--licence", "Apache-2.0"]
    result = songmill(home, "models", "add", name, "--from", str(source), *licence, *args)
    assert result.returncode == 2 and expected in one_sentence(result), result.stderr
    assert registry.read_bytes() == before
    models = Path(home["SONGMILL_MODELS_DIR"])
    assert not models.exists() or not any(models.iterdir())


def test_pull_offline_says_how_to_download_elsewhere(home):
    result = songmill({**home, "HF_HUB_OFFLINE": "1"}, "models", "pull", "tiny-audio")
    line = one_sentence(result)
    assert result.returncode == 2
    assert (
        "the Hub is out of reach" in line
        and f"--revision {REVISION}" in line
        and "songmill models add tiny-audio --from DIR --licence 'Apache-2.0' --commercial" in line
    )


def test_pull_with_the_hub_unreachable_says_so(home):
    result = songmill({**home, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}, "models", "pull", "tiny-audio")  # nothing listens there
    assert result.returncode == 2 and "songmill models add tiny-audio" in one_sentence(result)


def test_pull_of_an_unknown_name_lists_the_known_ones(home):
    result = songmill(home, "models", "pull", "no-such-model")
    assert result.returncode == 2 and "'no-such-model' is not a model songmill models pull knows (it knows tiny-audio)" in one_sentence(result)
    result = songmill(home, "models", "pull", "songmill-test/tiny-audio")  # the Hub's name for it
    assert result.returncode == 2 and "(did you mean 'tiny-audio'? it knows tiny-audio)" in one_sentence(result)


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        ("stable-audio-open", "stable-audio-open-1.0"),  # no version said
        ("stabilityai/stable-audio-open-1.0", "stable-audio-open-1.0"),  # the Hub repository
        ("ACE-Step", "ace-step-1.5"),
        ("qwen2.5-0.5b-instruc", "qwen2.5-0.5b-instruct"),
        ("musicgen", None),
    ],
)
def test_a_known_model_misnamed_is_offered_by_its_name(said, meant):
    from models.install import _meant, known_models

    assert _meant(said, known_models()) == meant


@pytest.mark.parametrize("offline", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "unreachable"}], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_pull_takes_the_pinned_revision_from_the_cache_and_registers_it(home, tiny_pipeline, offline):
    snapshot = Path(home["HF_HOME"]) / "hub" / "models--songmill-test--tiny-audio" / "snapshots" / REVISION
    shutil.copytree(tiny_pipeline, snapshot)
    if offline.get("HF_ENDPOINT") == "unreachable":  # no offline switch set: the Hub just does not answer
        offline = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    started = time.monotonic()
    result = songmill({**home, **offline}, "models", "pull", "tiny-audio")
    assert time.monotonic() - started < 15  # the cache at once: huggingface_hub's own retries take 23 s before it looks there
    assert result.returncode == 0, result.stderr
    from models.registry import ModelRegistry

    entry = ModelRegistry.load(home["SONGMILL_MODEL_REGISTRY"]).get("tiny-audio")
    assert entry.version == REVISION[:12] and entry.sha256 == tree_sha256(tiny_pipeline) and entry.backend == "diffusers-stable-audio"
    assert "songmill-test/tiny-audio at 0123456789ab" in entry.install_hint


def test_the_known_models_file_pins_every_model_to_a_commit():
    from models.install import known_models

    known = known_models()
    assert {"stable-audio-open-1.0", "ace-step-1.5"} <= set(known) and any(m.backend == "transformers" for m in known.values())
    assert all(len(m.revision) == 40 for m in known.values())


def test_the_fix_models_list_prints_for_a_missing_model_works(home, tiny_pipeline, tmp_path):
    """A registered model whose files are gone: `models list` names the command that puts them
    back, and that command (`--replace`) does; a replacement that fails leaves the old copy."""
    added = songmill(home, "models", "add", "my-audio", "--from", str(tiny_pipeline), "--licence", "Apache-2.0")
    assert added.returncode == 0, added.stderr
    copied = Path(home["SONGMILL_MODELS_DIR"]) / "my-audio"
    shutil.rmtree(copied)
    listed = songmill(home, "models", "list")
    assert listed.returncode == 1 and "songmill models add my-audio --from <folder> --licence 'Apache-2.0' --replace" in listed.stdout
    again = songmill(home, "models", "add", "my-audio", "--from", str(tiny_pipeline), "--licence", "Apache-2.0")
    assert again.returncode == 2 and "add --replace to put this one in its place" in one_sentence(again)
    replaced = songmill(home, "models", "add", "my-audio", "--from", str(tiny_pipeline), "--licence", "Apache-2.0", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert tree_sha256(copied) == tree_sha256(tiny_pipeline) and songmill(home, "models", "list").returncode == 0
    broken = tmp_path / "broken"
    shutil.copytree(tiny_pipeline, broken)
    shutil.rmtree(broken / "vae")
    registry = Path(home["SONGMILL_MODEL_REGISTRY"]).read_bytes()
    failed = songmill(home, "models", "add", "my-audio", "--from", str(broken), "--licence", "Apache-2.0", "--replace")
    assert failed.returncode == 2 and "lacks the pipeline's component folder vae" in one_sentence(failed)
    assert Path(home["SONGMILL_MODEL_REGISTRY"]).read_bytes() == registry and tree_sha256(copied) == tree_sha256(tiny_pipeline)


def test_a_permissive_licence_registered_for_non_commercial_use_is_pointed_out(home, tiny_pipeline):
    """MIT without --commercial: registered as asked (non-commercial), with a note saying what
    that means; the fix it names, and the registry's own hint, keep --commercial."""
    added = songmill(home, "models", "add", "my-audio", "--from", str(tiny_pipeline), "--licence", "MIT")
    assert added.returncode == 0, added.stderr
    assert "not for commercial releases" in added.stdout
    assert "note: MIT allows commercial use, but the model is registered for non-commercial releases only" in " ".join(added.stderr.split())
    replaced = songmill(home, "models", "add", "my-audio", "--from", str(tiny_pipeline), "--licence", "MIT", "--commercial", "--replace")
    assert replaced.returncode == 0 and "note:" not in replaced.stderr
    import yaml

    registry = yaml.safe_load(Path(home["SONGMILL_MODEL_REGISTRY"]).read_text())
    assert registry["models"]["my-audio"]["install_hint"] == "songmill models add my-audio --from <folder> --licence 'MIT' --commercial --replace"


def test_a_registry_named_but_not_made_yet_is_said_so_then_made_by_add(home, tiny_pipeline, tmp_path):
    env = {**home, "SONGMILL_MODEL_REGISTRY": str(tmp_path / "fresh" / "registry.yaml")}
    listed = songmill(env, "models", "list")
    assert listed.returncode == 2
    assert "the model registry SONGMILL_MODEL_REGISTRY names does not exist yet; `songmill models add` or `models pull` creates it" in one_sentence(listed)
    added = songmill(env, "models", "add", "my-audio", "--from", str(tiny_pipeline), "--licence", "Apache-2.0", "--commercial")
    assert added.returncode == 0, added.stderr
    listed = songmill(env, "models", "list")
    assert "my-audio" in listed.stdout and "fluidr3-gm" in listed.stdout  # made from the shipped one, with the new entry
