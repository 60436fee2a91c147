"""The model registry: hash check, missing files, licences."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from models.registry import ModelRegistry, tree_sha256
from songmill.core.errors import ConfigError, SongmillError


def registry(tmp_path: Path, *, sha: str, commercial: bool = True, path: str = "weights.safetensors") -> ModelRegistry:
    file = tmp_path / "registry.yaml"
    file.write_text(
        textwrap.dedent(f"""\
        models:
          tiny:
            version: "1"
            backend: torch-safetensors
            path: {path}
            sha256: '{sha}'
            licence: {"CC0-1.0" if commercial else "CC-BY-NC-4.0"}
            commercial_use: {str(commercial).lower()}
            install_hint: run train.py
        """)
    )
    return ModelRegistry.load(file)


def test_resolves_a_verified_file(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"weights")
    reg = registry(tmp_path, sha=hashlib.sha256(b"weights").hexdigest())
    assert reg.resolve("tiny", commercial=True) == tmp_path / "weights.safetensors"
    assert reg.get("tiny").provenance()["version"] == "1"


def test_hash_mismatch_is_refused(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"tampered")
    reg = registry(tmp_path, sha=hashlib.sha256(b"weights").hexdigest())
    with pytest.raises(SongmillError, match=r"model 'tiny' file .*weights.safetensors fails its hash check"):
        reg.resolve("tiny", commercial=False)


def test_missing_file_names_what_to_install(tmp_path):
    reg = registry(tmp_path, sha="0" * 64)
    with pytest.raises(SongmillError, match=r"model 'tiny' file .* is missing; run train.py"):
        reg.resolve("tiny", commercial=False)


def test_non_commercial_model_cannot_feed_a_commercial_profile(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"weights")
    reg = registry(tmp_path, sha=hashlib.sha256(b"weights").hexdigest(), commercial=False)
    with pytest.raises(SongmillError, match="not licensed for commercial use"):
        reg.resolve("tiny", commercial=True)
    assert reg.resolve("tiny", commercial=False).exists()


def test_unknown_model_lists_the_registered_ones(tmp_path):
    reg = registry(tmp_path, sha="0" * 64)
    with pytest.raises(SongmillError, match=r"model 'big' is not in the model registry .* \(registered: tiny\)"):
        reg.get("big")


def test_folder_models_are_hashed_file_by_file(tmp_path):
    folder = tmp_path / "pipeline"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text("{}")
    (folder / "model_index.json").write_text("{}")
    reg = registry(tmp_path, sha=tree_sha256(folder), path="pipeline")
    assert reg.resolve("tiny", commercial=True) == folder
    (folder / "unet" / "extra.bin").write_bytes(b"x")
    reg2 = registry(tmp_path, sha=reg.get("tiny").sha256, path="pipeline")
    with pytest.raises(SongmillError, match="fails its hash check"):
        reg2.resolve("tiny", commercial=True)


def test_bad_registry_file_is_a_config_error(tmp_path):
    file = tmp_path / "registry.yaml"
    file.write_text("models:\n  tiny:\n    version: 1\n    sha256: nothex\n")
    with pytest.raises(ConfigError) as err:
        ModelRegistry.load(file)
    assert any(line.startswith(f"{file}:4: models.tiny.sha256:") for line in err.value.problems)


def test_shipped_soundfont_entry_verifies():
    reg = ModelRegistry.load()
    assert reg.resolve("fluidr3-gm", commercial=True).name == "FluidR3_GM.sf2"


def test_voice_identities_are_registered_and_versioned():
    reg = ModelRegistry.load()
    assert sorted(reg.identities) == ["ava", "ben", "cleo", "dean"]
    for name, identity in reg.identities.items():
        assert identity.version and reg.get(identity.voice).backend == "onnx-vits", name
        low, high = identity.range
        assert high - low >= 12, name  # at least an octave to write a melody in
    assert len({i.formant_shift for i in reg.identities.values()}) == 4  # four different singers


def test_an_identity_whose_range_is_upside_down_is_named(tmp_path):
    file = tmp_path / "registry.yaml"
    file.write_text("models: {}\nidentities:\n  zoe:\n    version: '1'\n    voice: joe\n    range: [70, 60]\n")
    with pytest.raises(ConfigError) as err:
        ModelRegistry.load(file)
    assert any(line.startswith(f"{file}:4: identities.zoe:") and "range [70, 60] must be [lowest, highest] MIDI note" in line for line in err.value.problems), (
        err.value.problems
    )


def test_identities_that_read_alike_once_folded_are_refused(tmp_path):
    """The editor reads "sing it with zoe" for a voice called zoë: two identities whose names fold
    alike could never be told apart by a command, so the registry refuses them, naming both."""
    file = tmp_path / "registry.yaml"
    file.write_text(
        "models: {}\nidentities:\n  zoe:\n    version: '1'\n    voice: joe\n    range: [55, 76]\n  Zoë:\n    version: '1'\n    voice: joe\n    range: [57, 79]\n"
    )
    with pytest.raises(ConfigError) as err:
        ModelRegistry.load(file)
    assert any(
        line.startswith(f"{file}:3: identities:") and "zoe and Zoë read alike once accents and case are dropped" in line and "rename one of them" in line
        for line in err.value.problems
    ), err.value.problems
    file.write_text(file.read_text().replace("Zoë", "chloë"))  # told apart: loads
    assert sorted(ModelRegistry.load(file).identities) == ["chloë", "zoe"]
