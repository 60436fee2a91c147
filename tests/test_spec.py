"""Release configs: valid ones load; each kind of mistake is one line naming file, line and field."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from songmill.core.errors import ConfigError
from songmill.core.spec import load_release, track_seed
from tests.conftest import PROJECT

SONGMILL = [sys.executable, "-m", "songmill"]

GOOD = textwrap.dedent("""\
    release:
      id: test-release
      title: Test
      artist: Tester
      label: Test Label
      type: single
      date: 2026-12-01
      genre: pop
      p_line: 2026 Test Label
      c_line: 2026 Test Label
      profiles: [streaming]
    tracks:
      - title: One
        theme: a test of the spec
        mood: calm
        tempo: 100
        key: C major
    """)


def write(tmp_path: Path, text: str, name: str = "release.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def validate(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*SONGMILL, "validate", *map(str, paths)], capture_output=True, text=True, cwd=PROJECT)


def test_shipped_configs_validate():
    result = validate(*sorted((PROJECT / "config/releases").glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_tracks_with_one_title_are_valid_but_said(tmp_path):
    second = "  - title: one\n    theme: the same again\n    mood: calm\n    tempo: 100\n    key: C major\n"
    path = write(tmp_path, GOOD.replace("type: single", "type: ep") + second)
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert f"warning: {path}: tracks 1 and 2 share the title 'One'; stores list them by title, so give each its own" in said


def test_tempo_400_exits_2_naming_file_line_and_field(tmp_path):
    path = write(tmp_path, GOOD.replace("tempo: 100", "tempo: 400"))
    result = validate(path)
    assert result.returncode == 2
    assert result.stdout.strip() == f"{path}:16: tracks[0].tempo: 400 is outside 40–240 BPM"


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("    mood: calm\n", "    mood: calm\n    colour: red\n", "tracks[0].colour: unknown field (allowed: title, theme, mood"),
        ("tempo: 100", "tempo: fast", "tracks[0].tempo: 'fast' is not a number"),
        ("tempo: 100", "tempo: true", "tracks[0].tempo: true is not a number (BPM, 40–240)"),  # not YAML's true taken as 1 BPM
        ("title: Test", "title: 2026-12-04", "release.title: '2026-12-04' must be text (put it in quotes)"),  # not datetime.date(2026, 12, 4)
        ("key: C major", "key: H major", "tracks[0].key: 'H major' is not a key"),
        ("genre: pop", "genre: polka", "release.genre: 'polka' is not a known genre (allowed: pop, rock"),
        ("date: 2026-12-01", "date: someday", "release.date: 'someday' is not a date (write YYYY-MM-DD)"),
        ("date: 2026-12-01", "date: 2026-13-45", "release.date: '2026-13-45' is not a date (write YYYY-MM-DD)"),  # YAML's own date, impossible
        ("date: 2026-12-01", "date: 2026-02-30", "release.date: '2026-02-30' is not a date (write YYYY-MM-DD)"),
        ("id: test-release", "id: ../../etc", "release.id: '../../etc' would escape the output folder"),
        ("    key: C major\n", "    key: C major\n    isrc: GB-123\n", "tracks[0].isrc: 'GB-123' is not an ISRC"),
        ("genre: pop\n", "genre: pop\n  upc: '036000291453'\n", "release.upc: '036000291453' has a wrong check digit (expected 2)"),
        ("profiles: [streaming]", "profiles: [streaming, vinyl]", "release.profiles[1]: 'vinyl' is not a delivery profile"),
        ("theme: a test of the spec", "theme: '  '", "tracks[0].theme: is empty"),
        (
            "    key: C major\n",
            "    key: C major\n    lyrics: |\n      [verse]\n      hello\n      [chourus]\n      hi\n",
            "tracks[0].lyrics: lyrics line 3: '[chourus]' is not a section tag (did you mean 'chorus'?) (allowed: ",
        ),
        (
            "    key: C major\n",
            "    key: C major\n    structure: [intro, verse, coda]\n",
            "tracks[0].structure[2].name: 'coda' is not a known section (allowed: ",
        ),
        (
            "    key: C major\n",
            "    key: C major\n    structure: [intro, chrous]\n",
            "tracks[0].structure[1].name: 'chrous' is not a known section (did you mean 'chorus'?)",
        ),
        ("    key: C major\n", "    key: C major\n    time_signature: 4/5\n", "tracks[0].time_signature: '4/5' is not a time signature"),
        ("  title: Test\n", "", "release.title: is required"),
        (
            "    key: C major\n",
            "    key: C major\n    voice: {identity: ava}\n    structure: [intro, verse, outro]\n    lyrics: |\n      [verse]\n      hello\n      [bridge]\n      hi\n",
            "tracks[0]: lyrics line 3: the [bridge] block has no matching section in the structure (intro, verse, outro)",
        ),
        ("    key: C major\n", "    key: C major\n    key_change: 7\n", "tracks[0].key_change: 7 is outside 0–4 semitones"),
        ("    key: C major\n", "    key: C major\n    lyrics_model: ../weights\n", "tracks[0].lyrics_model: '../weights' does not match"),
        (
            "    key: C major\n",
            "    key: C major\n    lyrics: |\n      [verse]\n      hello\n",
            "tracks[0]: lyrics are given but the track has no voice (an instrumental sings nothing); add a voice or remove the lyrics",
        ),
        ("    mood: calm\n", "    mood: calm\n    bpm: 96\n", "tracks[0].bpm: unknown field (did you mean 'tempo'?) (allowed: title, theme"),
        ("genre: pop", "genre: pop\n  genere: rock", "release.genere: unknown field (did you mean 'genre'?) (allowed: id, title"),
    ],
)
def test_each_mistake_is_one_clear_line(tmp_path, old, new, expected):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_release(path, profile_names={"streaming", "preview"})
    [line] = err.value.problems
    file_part, line_number, message = line.split(":", 2)
    assert file_part == str(path) and int(line_number) >= 1
    assert message.strip().startswith(expected), line


def test_error_line_points_at_the_value(tmp_path):
    path = write(tmp_path, GOOD.replace("genre: pop", "genre: polka"))
    with pytest.raises(ConfigError) as err:
        load_release(path)
    assert err.value.problems[0].startswith(f"{path}:8: release.genre:")


def test_unreadable_yaml_names_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace("tempo: 100", "tempo: [100"))
    result = validate(path)
    assert result.returncode == 2
    assert result.stdout.startswith(f"{path}:") and "(yaml)" in result.stdout


def test_a_key_without_its_colon_is_named_on_its_own_line(tmp_path):
    path = write(tmp_path, GOOD.replace("mood: calm", "mood calm"))
    result = validate(path)
    assert result.returncode == 2
    assert result.stdout.strip() == f"{path}:15: (yaml): could not find expected ':' (the file must be valid YAML)"  # "mood calm" is line 15


def test_missing_file_is_named(tmp_path):
    result = validate(tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert result.stdout.strip() == f"{tmp_path / 'nope.yaml'}:1: (file): does not exist (give the path of a YAML file)"


def test_a_single_has_at_most_three_tracks(tmp_path):
    track = GOOD.split("tracks:\n")[1]
    path = write(tmp_path, GOOD + track * 3)
    with pytest.raises(ConfigError, match="a single has at most 3 tracks, this one has 4"):
        load_release(path)


def test_track_seeds_are_stable_and_overridable():
    spec = load_release(PROJECT / "config/releases/harbour-lights-ep.yaml")
    assert track_seed(spec, 0) == 11  # the config's own seed
    assert track_seed(spec, 0, 5) == track_seed(spec, 0, 5) != track_seed(spec, 1, 5)
    assert track_seed(spec, 0, 5) != track_seed(spec, 0, 6)


def test_key_spellings_normalise():
    from songmill.core.music import parse_key

    assert str(parse_key("Am")) == "A minor"
    assert str(parse_key("f# dorian")) == "F# dorian"
    assert parse_key("Bb major").tonic_pitch_class == 10


def test_an_impossible_date_in_a_text_field_is_kept_as_the_text_written(tmp_path):
    """YAML reads 2026-02-30 as a timestamp; where a field takes text, it is that text."""
    release = load_release(write(tmp_path, GOOD.replace("p_line: 2026 Test Label", "p_line: 2026-02-30")), profile_names={"streaming", "preview"})
    assert release.release.p_line == "2026-02-30"


LYRICS = "[verse]\nthe lamps are lit along the quay\n[chorus]\ncome home, come home to me\n"


def test_lyrics_from_a_file_beside_the_config_are_read_as_if_written_inline(tmp_path):
    (tmp_path / "words").mkdir()
    (tmp_path / "words" / "one.txt").write_text(LYRICS, encoding="utf-8")
    voiced = GOOD + "    voice: {identity: ben}\n"
    spec = load_release(write(tmp_path, voiced + "    lyrics_file: words/one.txt\n"))
    inline = load_release(write(tmp_path, voiced + "    lyrics: |\n" + textwrap.indent(LYRICS, "      "), name="inline.yaml"))
    assert spec.tracks[0].lyrics == inline.tracks[0].lyrics == LYRICS
    assert spec.tracks[0].lyrics_file == "words/one.txt"  # where the words came from, as written


def test_lyrics_given_twice_is_said_with_the_files_other_problems_and_an_empty_lyrics_is_not_twice(tmp_path):
    (tmp_path / "one.txt").write_text(LYRICS, encoding="utf-8")
    voiced = GOOD.replace("tempo: 100", "tempo: 400") + "    voice: {identity: ben}\n    lyrics_file: one.txt\n"
    result = validate(write(tmp_path, voiced + '    lyrics: "[bridge]\\nla la\\n"\n'))
    assert result.returncode == 2
    said = result.stdout.strip().splitlines()
    assert len(said) == 2 and "tracks[0].lyrics_file: the track gives its lyrics inline too" in said[0] and "tracks[0].tempo: 400" in said[1], said
    empty = validate(write(tmp_path, GOOD + "    voice: {identity: ben}\n    lyrics_file: one.txt\n    lyrics:\n", name="empty.yaml"))
    assert empty.returncode == 0, empty.stdout  # `lyrics:` with nothing after it gives none


@pytest.mark.parametrize(
    ("lyrics_file", "contents", "extra", "expected"),
    [
        ("words/none.txt", None, "", "'words/none.txt' does not exist (a path relative to release.yaml)"),
        ("words", None, "", "'words' is not a regular file (a folder or a device); give a text file of lyrics with [section] tags"),
        ("one.txt", b"\xff\xfe[verse]\n", "", "'one.txt' is not UTF-8 text; save it as UTF-8"),
        ("one.txt", b"[chrous]\nla la\n", "", "'one.txt': lyrics line 1: '[chrous]' is not a section tag (did you mean 'chorus'?) (allowed: "),
        ("one.txt", LYRICS.encode(), '    lyrics: "[verse]\\nla la\\n"\n', "the track gives its lyrics inline too; keep one of lyrics and lyrics_file"),
        # inline lyrics that would not fit the structure: said to be given twice, not that they do not fit
        ("one.txt", LYRICS.encode(), '    lyrics: "[bridge]\\nla la\\n"\n', "the track gives its lyrics inline too; keep one of lyrics and lyrics_file"),
    ],
)
def test_a_lyrics_file_that_cannot_be_sung_is_one_line_naming_it(tmp_path, lyrics_file, contents, extra, expected):
    (tmp_path / "words").mkdir()
    if contents is not None:
        (tmp_path / lyrics_file).write_bytes(contents)
    path = write(tmp_path, GOOD + "    voice: {identity: ben}\n" + extra + f"    lyrics_file: {lyrics_file}\n")
    result = validate(path)
    assert result.returncode == 2
    [line] = result.stdout.strip().splitlines()
    assert line.startswith(f"{path}:{19 + bool(extra)}: tracks[0].lyrics_file: {expected}"), line


@pytest.mark.parametrize(
    ("field", "model", "expected"),
    [
        ("lyrics_model", "nosuch-lm", "'nosuch-lm' is not in the model registry"),
        ("instruments_model", "melody-gru-celtic", "'melody-gru-celtic' is a torch-safetensors model; instruments_model takes a soundfont or"),
        ("lyrics_model", "nc-lm", "'nc-lm' (CC-BY-NC-4.0) is not licensed for commercial use and the release goes to the commercial profile streaming"),
    ],
)
def test_a_model_a_track_names_is_checked_against_the_registry_before_any_render(tmp_path, field, model, expected):
    """The models a track names: one the registry does not hold, one of a backend that cannot do
    that work, one a commercial profile may not use. `validate` and `render` say so at the line."""
    import os

    registry = tmp_path / "registry.yaml"  # the shipped one and a non-commercial LM (its files are the stage's to check, not the config's)
    nc_lm = (
        "  nc-lm:\n    version: '1'\n    backend: transformers\n    path: /nowhere\n    sha256: '"
        + "0" * 64
        + "'\n    licence: CC-BY-NC-4.0\n    commercial_use: false\n\n"
    )
    registry.write_text((PROJECT / "models" / "registry.yaml").read_text().replace("models:\n", "models:\n" + nc_lm, 1))
    path = write(tmp_path, GOOD + f"    voice: {{identity: ben}}\n    {field}: {model}\n")
    env = {**os.environ, "SONGMILL_MODEL_REGISTRY": str(registry)}
    for command in (["validate", str(path)], ["render", str(path), "--out", str(tmp_path / "dist")]):
        result = subprocess.run([*SONGMILL, *command], capture_output=True, text=True, cwd=PROJECT, env=env)
        assert result.returncode == 2, result.stderr
        [line] = (result.stdout if command[0] == "validate" else result.stderr).strip().splitlines()
        assert line.startswith(f"{path}:19: tracks[0].{field}: {expected}"), line
    assert not (tmp_path / "dist").exists()
    if field == "lyrics_model":  # a track with lyrics of its own never loads its lyrics model: not checked
        given = write(tmp_path, GOOD + f'    voice: {{identity: ben}}\n    {field}: {model}\n    lyrics: "[verse]\\nla la\\n"\n', name="given.yaml")
        assert subprocess.run([*SONGMILL, "validate", str(given)], capture_output=True, text=True, cwd=PROJECT, env=env).returncode == 0


def test_lyrics_given_as_a_files_path_point_to_lyrics_file(tmp_path):
    path = write(tmp_path, GOOD + "    voice: {identity: ben}\n    lyrics: words/river-road.txt\n")
    result = validate(path)
    assert result.returncode == 2
    assert result.stdout.strip() == (
        f"{path}:19: tracks[0].lyrics: 'words/river-road.txt' looks like a file's path; write the lyrics here under [section] tags, "
        "or read them from the file with lyrics_file"
    )


def test_lyrics_that_cannot_make_a_form_are_one_line_not_a_traceback(tmp_path):
    """No structure: the form comes from the lyrics' tags, and a line before the first tag is a
    config problem at the lyrics' line (it was a traceback from `validate` once it checked the fit)."""
    path = write(tmp_path, GOOD + '    voice: {identity: ben}\n    lyrics: "hello there\\n[verse]\\nla la\\n"\n')
    result = validate(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stdout.strip() == (
        f"{path}:19: tracks[0].lyrics: lyrics line 1: 'hello there' comes before any section tag; start the lyrics with a tag such as [verse]"
    )


def test_a_lyrics_file_saved_with_a_byte_order_mark_reads_as_without(tmp_path):
    (tmp_path / "notepad.txt").write_bytes(("\ufeff" + LYRICS).encode("utf-8"))  # what Windows Notepad writes
    spec = load_release(write(tmp_path, GOOD + "    voice: {identity: ben}\n    lyrics_file: notepad.txt\n"))
    assert spec.tracks[0].lyrics == LYRICS and spec.tracks[0].lyrics_file == "notepad.txt"  # kept as written
