"""Fuzzing (Hypothesis): whatever a user hands songmill — a release config, its lyrics, any other
config file, a file for `songmill qc`, a reference recording or a cover — ends in success or in
one clear sentence (exit 2 on the command line): never a traceback, a hang or a gigabyte.

Sizes: the default suite runs a modest number of cases per property; `make test-all` sets
SONGMILL_FULL=1 (10,000 release configs: structured edits and byte-level mutations of the
shipped ones, half each; 2,000 cases of every other property) and writes the counts to
benchmarks/results/fuzz.json. Cases are derandomised, so a run is reproducible and a failure names its input.

What counts as a clear sentence: a `SongmillError` (a `ConfigError`'s lines are each
`file:line: field: problem`), no Python repr or traceback in it, and a bounded length.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from songmill.core.errors import ConfigError, SongmillError
from songmill.engine.stage import PeakMemory  # resident memory sampled while a case runs

PROJECT = Path(__file__).resolve().parent.parent
FULL = os.environ.get("SONGMILL_FULL") == "1"  # make test-all
RELEASE_CASES = 5000 if FULL else 60  # per strategy (structured, bytes): 10,000 in all at full size
OTHER_CASES = 2000 if FULL else 40
AUDIO_CASES = 300 if FULL else 12
VALIDATE_LIMIT_S = 10.0
MEMORY_LIMIT_BYTES = 1 << 30
SHIPPED_RELEASES = sorted((PROJECT / "config/releases").glob("*.yaml"))
COUNTS: Counter = Counter()  # "<property> cases", "<property> refused": what benchmarks/results/fuzz.json reports

FUZZ = settings(
    derandomize=True,
    database=None,  # nothing written into the checkout
    deadline=None,  # time is checked per case against VALIDATE_LIMIT_S, a stated bound, not Hypothesis's 200 ms
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def clear_sentence(err: SongmillError) -> None:
    """Fail unless the error is what a user should see: short lines, no Python internals."""
    lines = err.problems if isinstance(err, ConfigError) else [str(err)]
    assert lines and all(line.strip() for line in lines), f"an empty message: {err!r}"
    for line in lines:
        assert "Traceback" not in line and not re.search(r"\b\w+Error\(|<class '|object at 0x", line), line
        assert len(line) <= 1200, f"a {len(line)}-character message"
        if isinstance(err, ConfigError):
            assert re.match(r"^.+:\d+: \S.*: \S", line), f"not `file:line: field: problem`: {line}"


def outcome(prop: str, action) -> str:
    """Run one case: 'ok' or 'refused' (a clear sentence); anything else fails the test."""
    COUNTS[f"{prop} cases"] += 1
    started = time.perf_counter()
    try:
        action()
        result = "ok"
    except SongmillError as err:
        clear_sentence(err)
        result = "refused"
    elapsed = time.perf_counter() - started
    assert elapsed <= VALIDATE_LIMIT_S, f"{prop}: a case took {elapsed:.1f} s"
    COUNTS[f"{prop} {result}"] += 1
    return result


@pytest.fixture(scope="module", autouse=True)
def record_counts():
    yield
    if FULL:
        (PROJECT / "benchmarks/results").mkdir(exist_ok=True)
        (PROJECT / "benchmarks/results/fuzz.json").write_text(json.dumps(dict(sorted(COUNTS.items())), indent=1) + "\n")


def validate_release(path: Path) -> None:
    from songmill.engine.configs import load_release_with_profiles

    load_release_with_profiles(path)


def written(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ byte-level mutations


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """1–8 edits of a file's bytes: flip a byte, delete a run, insert random or repeated bytes."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "repeat", "truncate"]))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "repeat":
            run = bytes(data[at : at + draw(st.integers(1, 256))])
            data[at:at] = run * draw(st.integers(1, 50))
        else:
            del data[at:]
    return bytes(data)


@given(data=st.data())
@settings(FUZZ, max_examples=RELEASE_CASES)
def test_release_configs_mutated_byte_by_byte_validate_or_are_refused_in_one_sentence(data):
    source = data.draw(st.sampled_from(SHIPPED_RELEASES))
    with tempfile.TemporaryDirectory() as folder:
        path = written(Path(folder), source.name, data.draw(mutated(source.read_bytes())))
        with PeakMemory() as memory:
            outcome("release config (bytes)", lambda: validate_release(path))
        assert memory.grew < MEMORY_LIMIT_BYTES


# ------------------------------------------------------------------ structured edits

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=400, max_size=900),
    st.sampled_from(["auto", "", " ", "A minor", "4/4", "ava", "streaming", "2026-02-30", "../../etc/passwd", "/dev/zero", "\u202eevil", "\u200b"]),
    st.lists(st.integers(-5, 300), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
)


def _paths(node, prefix=()):
    """Every key path into a parsed YAML document (mappings and lists)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


@st.composite
def edited_document(draw, document: dict) -> dict:
    """1–4 edits of a parsed config: a value replaced by an odd one, a key removed, a key added."""
    import copy

    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        kind = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if kind == "replace":
            parent[path[-1]] = draw(ODD_VALUES)
        elif kind == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(ODD_VALUES)
        else:
            parent.append(draw(ODD_VALUES))
    return doc


@given(data=st.data())
@settings(FUZZ, max_examples=RELEASE_CASES)
def test_release_configs_with_odd_values_validate_or_are_refused_in_one_sentence(data):
    source = data.draw(st.sampled_from(SHIPPED_RELEASES))
    doc = data.draw(edited_document(yaml.safe_load(source.read_text())))
    with tempfile.TemporaryDirectory() as folder:
        path = written(Path(folder), source.name, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode())
        outcome("release config (structured)", lambda: validate_release(path))


# ------------------------------------------------------------------ lyrics

TRICKY = st.sampled_from(
    [
        "\u200b",
        "\u200d",
        "\ufeff",
        "\u202e",
        "\u2067",
        "\u0645\u0631\u062d\u0628\u0627",
        "\u05e9\u05dc\u05d5\u05dd",
        "🎤🔥",
        "👩‍👩‍👧",
        "\x07",
        "\x1b[31m",
        "\x7f",
        "[",
        "]",
        "[verse]",
        "ŝ̷̛",
        "\t",
    ]
)
LYRIC_LINE = st.lists(st.one_of(TRICKY, st.text(max_size=12), st.sampled_from(["la", "love", "night", "river", "oh"])), min_size=1, max_size=12).map(" ".join)


def debug_track_with(lyrics: str, folder: Path, *, structure: bool = True) -> Path:
    doc = yaml.safe_load((PROJECT / "config/releases/debug.yaml").read_text())
    doc["tracks"][0]["lyrics"] = lyrics
    if not structure:
        doc["tracks"][0].pop("structure")
    path = Path(folder) / "lyrics.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def lyrics_text(blocks: list[tuple[str, list[str]]]) -> str:
    return "\n".join(f"[{name}]\n" + "\n".join(lines) for name, lines in blocks)


LYRICS = st.lists(
    st.tuples(st.sampled_from(["verse", "chorus", "bridge", "verse 2", "Chorus", "outro", "hook", ""]), st.lists(LYRIC_LINE, min_size=0, max_size=6)),
    min_size=1,
    max_size=5,
).map(lyrics_text)


@given(lyrics=LYRICS, structure=st.booleans())
@settings(FUZZ, max_examples=OTHER_CASES)
def test_lyrics_with_any_unicode_validate_or_are_refused_in_one_sentence(lyrics, structure):
    with tempfile.TemporaryDirectory() as folder:
        path = debug_track_with(lyrics, Path(folder), structure=structure)
        outcome("lyrics", lambda: validate_release(path))


def written_lyrics_of(path: Path):
    """What render does with lyrics that validate: the form, lyrics and compose stages for real."""
    from models.registry import ModelRegistry
    from songmill.core.store import default_store_spec, open_store
    from songmill.engine.configs import load_release_with_profiles
    from songmill.engine.stage import TrackJob, run_stage
    from songmill.engine.track_stages import TRACK_STAGES

    spec, _ = load_release_with_profiles(path)
    job, store, registry, refs = TrackJob(spec, 0, 1, True), open_store(default_store_spec()), ModelRegistry.load(), {}
    for stage in TRACK_STAGES.stages:
        if stage.name in ("form", "lyrics", "compose"):
            refs.update(run_stage(stage, job, refs, store=store, registry=registry).outputs)
    return refs


@given(lines=st.lists(LYRIC_LINE, min_size=1, max_size=4), chorus=st.lists(LYRIC_LINE, min_size=1, max_size=4))
@settings(FUZZ, max_examples=AUDIO_CASES)
def test_lyrics_that_validate_are_composed_or_refused_in_one_sentence(lines, chorus):
    """Past validate: the lyrics meet the melody (syllables, phrases) in the real stages."""
    with tempfile.TemporaryDirectory() as folder:
        path = debug_track_with(lyrics_text([("verse", lines), ("chorus", chorus)]), Path(folder))
        try:
            validate_release(path)
        except ConfigError:
            return
        outcome("lyrics (composed)", lambda: written_lyrics_of(path))


@pytest.mark.parametrize(
    "lyrics, structure, expected",
    [
        ("[verse]\n" + "\n".join(["we sail the river home tonight"] * 20_000), True, "more than 64 lines"),
        ("[verse]\n" + "\n".join(["we sail the river home tonight"] * 20_000), False, "more than 64 lines"),
        ("[verse]\n" + "la " * 1700 + "\n[chorus]\nla la la", True, "is 5099 characters long; a sung line has at most 300"),
        ("[verse]\n\u200b\u200d\ufeff\n[chorus]\n\u202eoh oh", True, None),
    ],
    ids=["20000-lines", "20000-lines-no-structure", "5000-character-line", "zero-width-and-rtl"],
)
def test_lyrics_too_long_for_any_song_are_refused_by_validate(tmp_path, lyrics, structure, expected):
    """Found by fuzzing: a verse of 20,000 lines passed `songmill validate` (render then failed
    deep in the lyrics stage); now validate says why in one line, naming the line."""
    path = debug_track_with(lyrics, tmp_path, structure=structure)
    if expected is None:
        assert outcome("lyrics", lambda: validate_release(path)) in ("ok", "refused")
        return
    with pytest.raises(ConfigError) as raised:
        validate_release(path)
    [problem] = raised.value.problems
    assert expected in problem and problem.startswith(f"{path}:")


# ------------------------------------------------------------------ every other config file

OTHER_CONFIGS = {
    "profiles.yaml": "songmill.core.profiles:load_profiles",
    "delivery.yaml": "songmill.release.settings:load_delivery_settings",
    "production.yaml": "songmill.production.presets:load_production_presets",
    "arrangements.yaml": "models.instruments.arrangement:load_presets",
    "qc.yaml": "qc.suites:load_qc_settings",
    "catalogue.yaml": "songmill.engine.planning:load_catalogue_plan",
    "experiments.yaml": "songmill.feedback.experiments:load_experiments",
    "airflow.yaml": "operators.settings:load_airflow_settings",
    "registry.yaml": "models.registry:ModelRegistry.load",
    "demo-identity.yaml": "songmill.release.settings:load_delivery_settings",
}


def loader(name: str):
    import importlib

    module, _, attribute = OTHER_CONFIGS[name].partition(":")
    target = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


@pytest.fixture(scope="module")
def config_copies(tmp_path_factory):
    """The shipped config files side by side (delivery.yaml names demo-identity.yaml beside it)."""
    folder = tmp_path_factory.mktemp("configs")
    for name in OTHER_CONFIGS:
        source = PROJECT / ("models" if name == "registry.yaml" else "config") / name
        (folder / name).write_bytes(source.read_bytes())
    return folder


@given(data=st.data())
@settings(FUZZ, max_examples=OTHER_CASES)
def test_every_other_config_file_mutated_loads_or_is_refused_in_one_sentence(data, config_copies):
    name = data.draw(st.sampled_from(sorted(OTHER_CONFIGS)))
    original = (config_copies / name).read_bytes()
    edit = data.draw(st.sampled_from(["bytes", "structured"]))
    if edit == "bytes":
        changed = data.draw(mutated(original))
    else:
        changed = yaml.safe_dump(data.draw(edited_document(yaml.safe_load(original))), allow_unicode=True, sort_keys=False).encode()
    with tempfile.TemporaryDirectory(dir=config_copies) as folder:
        for other in OTHER_CONFIGS:
            (Path(folder) / other).write_bytes((config_copies / other).read_bytes())
        path = written(Path(folder), name, changed)
        if name == "demo-identity.yaml":  # an identity file is read through delivery.yaml, for the release it names
            outcome(f"config {name}", lambda: loader(name)(Path(folder) / "delivery.yaml", release_id="demo-single"))
        else:
            outcome(f"config {name}", lambda: loader(name)(path))


# ------------------------------------------------------------------ audio: qc, references, covers


def run_qc(path: Path, *extra: str):
    """`songmill qc` in this process; (exit code, output). A raised exception is a traceback."""
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    result = CliRunner().invoke(app, ["qc", str(path), "--profile", "streaming", *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"songmill qc {path.name} raised {result.exception!r}") from result.exception
    return result.exit_code, result.output


def assert_qc_answered(path: Path, *extra: str) -> int:
    COUNTS["songmill qc cases"] += 1
    code, output = run_qc(path, *extra)
    assert code in (0, 1, 2), output
    if code == 2:
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in output, output
        COUNTS["songmill qc refused"] += 1
    else:
        COUNTS["songmill qc ok"] += 1  # judged: a pass or a fail with its reasons
    return code


@pytest.fixture(scope="module")
def bad_audio(tmp_path_factory):
    """Files no one should hand to `songmill qc`, and what each must get."""
    import subprocess

    import numpy as np
    import soundfile

    folder = tmp_path_factory.mktemp("audio")
    tone = (np.sin(np.arange(48000 * 4) / 48000 * 2 * np.pi * 440) * 0.3).astype(np.float32)
    soundfile.write(folder / "good.wav", np.stack([tone, tone], axis=1), 48000, subtype="FLOAT")
    good = (folder / "good.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(good[:30_000])
    (folder / "wrong-header.wav").write_bytes(b"RIFX" + good[4:])
    (folder / "zero-length.wav").write_bytes(b"")
    nan = np.stack([tone, tone], axis=1)
    nan[1000:1100] = np.nan
    soundfile.write(folder / "nan.wav", nan, 48000, subtype="FLOAT")
    soundfile.write(folder / "eight-channels.wav", np.repeat(tone[:, None], 8, axis=1), 48000, subtype="FLOAT")
    import wave

    with wave.open(str(folder / "one-hertz.wav"), "wb") as one_hertz:
        one_hertz.setnchannels(1), one_hertz.setsampwidth(2), one_hertz.setframerate(1)
        one_hertz.writeframes(np.zeros(200, dtype="<i2").tobytes())
    # six hours of near silence: a small file whose decoded samples would need gigabytes
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "21600", "-c:a", "flac", str(folder / "six-hours.flac")],
        check=True,
    )
    (folder / "a-directory").mkdir()
    return folder


BAD_AUDIO = {
    "truncated.wav": "is 0.16 s long",
    "wrong-header.wav": "cannot be read",
    "zero-length.wav": "is empty (0 bytes)",
    "nan.wav": "holds NaN or infinite samples (the first at 0.021 s)",
    "one-hertz.wav": "has a sample rate of 1 Hz; give audio at 8000 Hz or more",
    "six-hours.flac": "is 360 minutes long; songmill reads at most 20 minutes",
    "a-directory": "is not a regular file (a folder or a device)",
    "/dev/zero": "is not a regular file (a folder or a device)",
    "/dev/null": "is not a regular file (a folder or a device)",
}


@pytest.mark.parametrize("name", list(BAD_AUDIO))
def test_songmill_qc_refuses_unusable_audio_in_one_sentence(bad_audio, name):
    path = Path(name) if name.startswith("/") else bad_audio / name
    with PeakMemory() as memory:
        code = assert_qc_answered(path)
    assert code == 2
    assert memory.grew < MEMORY_LIMIT_BYTES


def test_songmill_qc_judges_eight_channels_rather_than_failing(bad_audio):
    code, output = run_qc(bad_audio / "eight-channels.wav")
    assert code == 1 and "channels 8 is not one of 2" in output


@given(data=st.data())
@settings(FUZZ, max_examples=AUDIO_CASES)
def test_songmill_qc_of_mutated_audio_answers_or_refuses_in_one_sentence(data, bad_audio):
    good = (bad_audio / "good.wav").read_bytes()
    head, body = good[:200], good[200:]  # mostly the header, where a reader is most easily fooled
    changed = data.draw(mutated(head)) + (body if data.draw(st.booleans()) else data.draw(mutated(body[:4000])))
    with tempfile.TemporaryDirectory() as folder:
        assert_qc_answered(written(Path(folder), "mutated.wav", changed))


@pytest.mark.parametrize("name", [n for n in BAD_AUDIO if n != "zero-length.wav"] + ["zero-length.wav"])
def test_a_bad_reference_is_refused_by_validate_or_by_the_master_stage_in_one_sentence(bad_audio, tmp_path, name):
    """A release's `reference:` names each bad file: validate refuses what is not a file; the
    master stage's reader refuses the rest in one sentence (found: /dev/zero was 'does not exist')."""
    from songmill.production.master import reference_profile

    path = Path(name) if name.startswith("/") else bad_audio / name
    doc = yaml.safe_load((PROJECT / "config/releases/debug.yaml").read_text())
    doc["tracks"][0]["reference"] = str(path)
    config = tmp_path / "with-reference.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    if outcome("reference", lambda: validate_release(config)) == "refused":
        with pytest.raises(ConfigError) as raised:
            validate_release(config)
        if path.exists():
            assert "is not a regular file (a folder or a device)" in raised.value.problems[0]
        return
    with PeakMemory() as memory:
        assert outcome("reference (read)", lambda: reference_profile(path)) == "refused"
    assert memory.grew < MEMORY_LIMIT_BYTES


def _write_tone_wav(path: Path) -> None:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(48000)
        out.writeframes(b"\x10\x00" * 48000)


def _png_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "name, make, expected",
    [
        ("bomb.png", lambda p: p.write_bytes(_png_claiming(100_000, 100_000)), "claims more pixels than any cover needs"),
        ("song.wav", lambda p: _write_tone_wav(p), "is not an image"),  # audio given as the cover
        ("truncated.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20), "is not an image"),
        ("empty.png", lambda p: p.write_bytes(b""), "is not an image"),
        ("folder.png", lambda p: p.mkdir(), "is not a regular file (a folder or a device)"),
        ("/dev/zero", None, "is not a regular file (a folder or a device)"),
    ],
)
def test_a_bad_cover_is_refused_by_validate_in_one_sentence(tmp_path, name, make, expected):
    """Found by fuzzing: a PNG whose header claims 10 billion pixels raised Pillow's
    DecompressionBombError through `songmill validate`."""
    from songmill.release.artwork import load_cover

    path = Path(name) if name.startswith("/") else tmp_path / name
    if make:
        make(path)
    doc = yaml.safe_load((PROJECT / "config/releases/debug.yaml").read_text())
    doc["release"]["cover"] = str(path)
    config = tmp_path / "with-cover.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as raised:
        validate_release(config)
    assert expected in raised.value.problems[0]
    clear_sentence(raised.value)
    if path.is_file():
        with pytest.raises(SongmillError) as read:
            load_cover(path)
        clear_sentence(read.value)


def test_the_command_line_gives_exit_2_and_no_traceback_for_a_fuzzed_config(tmp_path):
    """The bulk above runs the loader in-process; the command maps its refusal to exit 2 and
    prints the problem lines alone."""
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    config = tmp_path / "broken.yaml"
    config.write_bytes((PROJECT / "config/releases/demo.yaml").read_bytes()[:300] + b"\x00\xff: [")
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert all(line.startswith(str(config)) for line in result.output.strip().splitlines())
