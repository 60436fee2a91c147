"""Every kind of config file goes through the one loader (songmill.core.config.load_config): a
file that does not parse, has an unknown field or a wrong type gives the same one-line
`file:line: field: what is wrong` error, `songmill validate` exits 2 with it, and nothing is
written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

# (config file, a top-level key whose value to break, a line to add with an unknown field)
KINDS = {
    "profiles.yaml": "profiles",
    "delivery.yaml": "identifiers",
    "production.yaml": "defaults",
    "arrangements.yaml": "presets",
    "qc.yaml": "regeneration",
    "catalogue.yaml": "tracks_per_night",
}
# name → (how to break the text given the key, the error line's pattern after `file:line: ` given the key)
BREAKAGES = {
    "unparsable": (lambda text, key: text + "\n  - : [unclosed\n", lambda key: r"\(yaml\): .+ \(the file must be valid YAML\)"),
    "unknown field": (lambda text, key: text + "\ncolour: blue\n", lambda key: r"colour: unknown field \(allowed: .+\)"),
    "wrong type": (lambda text, key: re.sub(rf"(?m)^{key}:.*(\n[ #-].*|\n(?=\n|[ #-]))*", f"{key}: [1, 2]", text, count=1), lambda key: rf"{key}\S*: .+"),
}


def validate_with(config_dir: Path, *, registry: Path | None = None, in_process: bool = True) -> subprocess.CompletedProcess:
    """`songmill validate` of the debug release with `config_dir` as the config folder: in this
    process through typer's runner (fast), or as the user runs it (`in_process=False`)."""
    env = {"SONGMILL_CONFIG_DIR": str(config_dir), **({"SONGMILL_MODEL_REGISTRY": str(registry)} if registry else {})}
    args = ["validate", str(PROJECT / "config/releases/debug.yaml")]
    if not in_process:
        return subprocess.run([sys.executable, "-m", "songmill", *args], capture_output=True, text=True, cwd=PROJECT, env={**os.environ, **env})
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        result = CliRunner().invoke(app, args)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def config_copy(tmp_path, test_config_dir):
    folder = tmp_path / "config"
    shutil.copytree(test_config_dir, folder)
    return folder


def assert_one_line_error(result: subprocess.CompletedProcess, path: Path, pattern: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: {pattern}", lines[0]), lines[0]


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_broken_config_file_is_one_line_naming_file_line_and_field(config_copy, name, breakage):
    path = config_copy / name
    before = {p: p.read_bytes() for p in config_copy.rglob("*") if p.is_file() and p != path}
    edit, pattern = BREAKAGES[breakage]
    path.write_text(edit(path.read_text(), KINDS[name]))
    assert_one_line_error(validate_with(config_copy), path, pattern(KINDS[name]))
    assert {p: p.read_bytes() for p in config_copy.rglob("*") if p.is_file() and p != path} == before  # nothing written


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_model_registry_is_one_line_too(config_copy, tmp_path, breakage):
    registry = tmp_path / "registry.yaml"
    edit, pattern = BREAKAGES[breakage]
    registry.write_text(edit((PROJECT / "models/registry.yaml").read_text(), "identities"))
    assert_one_line_error(validate_with(config_copy, registry=registry), registry, pattern("identities"))


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_airflow_settings_file_is_one_line_too(tmp_path, breakage):
    from operators.settings import load_airflow_settings
    from songmill.core.errors import ConfigError

    path = tmp_path / "airflow.yaml"
    edit, pattern = BREAKAGES[breakage]
    path.write_text(edit((PROJECT / "config/airflow.yaml").read_text(), "connections"))
    with pytest.raises(ConfigError) as err:
        load_airflow_settings(path)
    assert len(err.value.problems) == 1 and re.fullmatch(rf"{re.escape(str(path))}:\d+: {pattern('connections')}", err.value.problems[0])


def test_the_shipped_config_files_are_valid(test_config_dir):
    result = validate_with(test_config_dir)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("valid")


def test_the_user_sees_the_same_line_and_exit_2_from_the_command(config_copy):
    path = config_copy / "profiles.yaml"
    path.write_text(path.read_text() + "\ncolour: blue\n")
    assert_one_line_error(validate_with(config_copy, in_process=False), path, r"colour: unknown field \(allowed: .+\)")


def test_a_file_read_again_gives_its_new_text_and_the_callers_own_copy(tmp_path):
    """load_yaml keeps the parse of a text (a render reads the registry in every stage): a file
    edited between two reads gives its new content, a caller changing what it got changes
    nothing for the next, and a line number still comes from the file as it is."""
    from songmill.core.config import load_yaml

    path = tmp_path / "settings.yaml"
    path.write_text("tempo: 120\nparts: [bass, drums]\n")
    first, _ = load_yaml(path)
    first["parts"].append("harp")
    first["tempo"] = 60
    again, _ = load_yaml(path)
    assert again == {"tempo": 120, "parts": ["bass", "drums"]}
    path.write_text("# a comment first\ntempo: 96\nparts: [bass]\n")
    edited, locator = load_yaml(path)
    assert edited == {"tempo": 96, "parts": ["bass"]} and locator.line(("tempo",)) == 2


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        (
            "profiles.yaml",
            "    watermark:",
            "    watermak:",
            r"profiles\.\w+\.watermak: unknown field \(did you mean 'watermark'\?\) \(allowed: description, .+\)",
        ),
        ("profiles.yaml", "    loudness_lufs:", "    lufs:", r"profiles\.\w+\.lufs: unknown field \(did you mean 'loudness_lufs'\?\) \(allowed: .+\)"),
        ("delivery.yaml", "  private_key:", "  key:", r"signing\.key: unknown field \(did you mean 'private_key'\?\) \(allowed: .+\)"),
    ],
)
def test_a_misspelled_field_under_a_named_entry_is_answered_with_the_one_meant(config_copy, name, old, new, expected):
    """A profile is a named entry of a mapping (profiles.streaming): its fields are known there too."""
    path = config_copy / name
    text = path.read_text()
    if old not in text:  # the shipped profiles leave the watermark at its default: write it, misspelled
        assert name == "profiles.yaml" and old == "    watermark:"
        text = text.replace("    loudness_lufs:", "    watermark: true\n    loudness_lufs:", 1)
    path.write_text(text.replace(old, new, 1))
    result = validate_with(config_copy)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert any(re.fullmatch(rf"{re.escape(str(path))}:\d+: {expected}", line) for line in result.stdout.splitlines()), result.stdout


def test_validate_names_a_signing_file_that_does_not_exist(config_copy):
    """A render would get through every stage and fail at its delivery: validate says it first."""
    path = config_copy / "delivery.yaml"
    text = path.read_text()
    assert "  private_key: " in text  # the tests' throw-away key, which exists
    path.write_text(re.sub(r"(?m)^  private_key: .*$", "  private_key: keys/label.pem", text))
    result = validate_with(config_copy)
    missing = config_copy / "keys" / "label.pem"
    assert_one_line_error(
        result,
        path,
        rf"signing\.private_key: {re.escape(str(missing))} does not exist \(the label's PEM private key: a path relative to delivery\.yaml, or env:NAME\)",
    )


def test_validate_names_a_signing_variable_that_names_no_file(config_copy, monkeypatch):
    """env:NAME unset is a machine that delivers unsigned (and says why); set to a path that is
    not there, it is a mistake validate names, as for a path written in the file."""
    path = config_copy / "delivery.yaml"
    path.write_text(re.sub(r"(?m)^  private_key: .*$", "  private_key: env:SONGMILL_TEST_LABEL_KEY", path.read_text()))
    monkeypatch.delenv("SONGMILL_TEST_LABEL_KEY", raising=False)
    assert validate_with(config_copy).returncode == 0  # unset: nothing to check here
    pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv("SONGMILL_TEST_LABEL_KEY", pem)  # the key itself, which credentials also read: nothing to check, never shown
    shown = validate_with(config_copy)
    assert shown.returncode == 0 and "PRIVATE KEY" not in shown.stdout + shown.stderr
    monkeypatch.setenv("SONGMILL_TEST_LABEL_KEY", "/nope/label.pem")
    assert_one_line_error(
        validate_with(config_copy),
        path,
        r"signing\.private_key: env:SONGMILL_TEST_LABEL_KEY names /nope/label\.pem, which does not exist \(the label's PEM private key\); fix SONGMILL_TEST_LABEL_KEY",
    )
