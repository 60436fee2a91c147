"""The song editor's commands (registered on the `songmill` app by cli.py).

songmill edit CONFIG --track N (--command "…" | --spoken REC.wav | --match-reference REF.wav | --operations OPS.json) [--out DIR] [--dry-run] [--author A] [--reason R] [--lm MODEL] [--no-audition]
                      renders the new version; last line printed: its edit-report.json
                      (on stderr as soon as the new mix is mastered: its audition's path, the
                      first profile's master before the gate and the watermark)
                      (--dry-run: the parsed operations as JSON, nothing rendered; exit 2 with
                      the nearest commands when the words cannot be read; --operations: a
                      version's recorded operations, seeds and all, make that version again)
songmill history CONFIG --track N [--json]    every version, its operations, which is current
songmill undo CONFIG --track N [--out DIR]    the previous version current again (files from the store)
songmill redo CONFIG --track N [--out DIR]    the version undo set aside
songmill switch CONFIG --track N --version V  any version current
songmill diff CONFIG --track N A B [--json]   spec, score sections, changed files and measures
songmill preview CONFIG --track N A B [--section S]   loudness-matched A/B excerpts of two versions
songmill suggest CONFIG --track N [--json] [--apply K] ranked edits with their reasons and measurements
songmill daw export CONFIG --track N [--version V]     stems, MIDI, .dawproject and .rpp of a version
songmill daw import CONFIG MIDI --track N               a DAW's MIDI edit (melody, bass) as a new version
songmill deliver CONFIG [--out DIR]           the release delivered again with each track's current
                      version (an edited recording gets its own ISRC; DDEX says what it edits)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console

from songmill.core.errors import ConfigError, SongmillError

EXIT_FAILED, EXIT_INVALID = 1, 2
err_console = Console(stderr=True)


def _fail(err: SongmillError) -> None:
    from songmill.engine.editing import GateFailed

    if isinstance(err, ConfigError):
        for line in err.problems:
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_FAILED if isinstance(err, GateFailed) else EXIT_INVALID) from None


TRACK = typer.Option(..., "--track", min=1, help="The track (1-based).")
OUT = typer.Option(Path("dist"), "--out", help="Output folder; versions go to OUT/<release-id>/edits/track-NN/.")


def edit_command(
    config: Path = typer.Argument(..., help="The release config (YAML) the track was rendered from."),
    track: int = TRACK,
    command: str | None = typer.Option(None, "--command", "-c", help='What to change, in English: "slow it down to 92", "less reverb on the voice".'),
    spoken: Path | None = typer.Option(None, "--spoken", help="A recording (WAV, FLAC) of the command said aloud, instead of --command."),
    match: Path | None = typer.Option(None, "--match-reference", help="Match the master's tone to this recording (a remaster), instead of --command."),
    operations_file: Path | None = typer.Option(
        None, "--operations", help="A JSON file of typed operations (as `history --json` lists a version's `added`, seeds and all), instead of --command."
    ),
    out: Path = OUT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the parsed operations as JSON and render nothing."),
    author: str | None = typer.Option(None, "--author", help="Who made the edit (default: the user name)."),
    reason: str | None = typer.Option(None, "--reason", help="Why, kept in the history."),
    lm: str | None = typer.Option(None, "--lm", help="A transformers model from the registry reads the words instead of the rule parser."),
    audition: bool = typer.Option(
        True, "--audition/--no-audition", help="Write the new mix, mastered but not yet gated or watermarked, as soon as it exists, and print its path."
    ),
) -> None:
    """Change a rendered track; the last line printed is the new version's edit-report.json.
    Before it, as soon as the new mix exists, the path of its audition: the first profile's master
    without the watermark and before the gate, to listen to while the version is finished."""
    from songmill.editor.operations import operations_to_json
    from songmill.engine import editing

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        given = sum(request is not None for request in (command, spoken, match, operations_file))
        if given != 1:
            raise SongmillError(
                f"give {'only ' if given > 1 else ''}one of --command (typed), --spoken (a recording), --match-reference (a recording to match the master to) "
                "or --operations (a JSON file)"
            )
        if operations_file is not None:
            typed = _operations_in(operations_file)
            if dry_run:  # checked against the track as it stands, as a typed command's are
                print(json.dumps(operations_to_json(editing.check_edit(config, track, operations=typed)), indent=1))
                return
            result = editing.edit(config, track=track, operations=typed, out_dir=out, author=author, reason=reason, audition=audition, on_audition=_heard)
            _said(result)
            return
        if match is not None:
            if dry_run:
                raise SongmillError("--dry-run reads a command; --match-reference has nothing to parse (leave --dry-run out)")
            result = editing.match_reference(config, track=track, reference=match, out_dir=out, author=author, reason=reason)
            err_console.print(f"version {result.version}: master matched to {match.name}; recomputed {', '.join(result.recomputed)}", markup=False)
            print(result.report_path)
            return
        if spoken is not None:
            command = editing.heard_command(config, track, spoken)
            err_console.print(f"heard: {command}", markup=False, highlight=False)
        assert command is not None
        if dry_run:
            print(json.dumps(operations_to_json(editing.parse_for_track(config, track, command, lm=lm)), indent=1))
            return
        result = editing.edit(config, track=track, command=command, out_dir=out, author=author, reason=reason, lm=lm, audition=audition, on_audition=_heard)
    except SongmillError as err:
        _fail(err)
    _said(result)


def _said(result) -> None:  # noqa: ANN001 - an editing.EditResult
    """What an edit made, then its report's path last (as `render` prints its report's)."""
    err_console.print(
        f"version {result.version}: {', '.join(op.describe() for op in result.operations)}; recomputed {', '.join(result.recomputed) or 'nothing'} "
        f"({len(result.cached)} stage(s) from the cache) in {result.wall_s:.1f} s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    print(result.report_path)


def _operations_in(path: Path) -> list:
    """The typed operations a JSON file holds (a list, or one version of `history --json`)."""
    from songmill.editor.operations import operations_from_json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SongmillError(f"--operations {path}: cannot be read ({err.strerror or err})") from None
    except ValueError as err:
        raise SongmillError(
            f"--operations {path}: not JSON ({err}); give a list of operations as `songmill history --json` shows a version's `added`"
        ) from None
    if isinstance(data, dict) and "added" in data:  # a version copied whole from the history
        data = data["added"]
    return operations_from_json(data, where=str(path))


def _heard(path: Path) -> None:
    """Said as soon as an edit's audition is written (from the thread that wrote it)."""
    err_console.print(f"audition (not yet gated or watermarked): {path}", markup=False, highlight=False, soft_wrap=True)


def history_command(config: Path = typer.Argument(..., help="The release config."), track: int = TRACK, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every version of the track with its operations and why; * marks the current one, "from vN"
    a version made from another than the one before it (after an undo), "(undone)" one set aside."""
    from songmill.engine import editing

    try:
        data = editing.history(config, track=track)
    except SongmillError as err:
        _fail(err)
    if as_json:
        print(json.dumps(data, indent=1))
        return
    if not data["versions"]:
        print(f"track {track} of {data['release']} has no versions yet (songmill edit makes them, once songmill render has made the track)")
        return
    for v in data["versions"]:
        mark = "*" if v["number"] == data["current"] else " "
        ops = "; ".join(OPERATION_WORDS.get(op["op"]) or editing.described([op]) for op in v["added"])
        what = f"{v['command']} (read as {ops})" if v["command"] else ops or "as the config renders it"
        branch = f"  from v{v['parent']}" if v["parent"] is not None and v["parent"] != v["number"] - 1 else ""
        undone = "  (undone)" if v["number"] in data["undone"] else ""
        why = f"  why: {v['reason']}" if v["reason"] else ""
        print(f"{mark} v{v['number']}  {v['created_at']}  {v['author']}  {what}{branch}{undone}{why}  (recomputed: {', '.join(v['recomputed']) or 'nothing'})")


OPERATION_WORDS = {
    "score_override": "a MIDI edited in a DAW (songmill daw import)",
    "master_reference": "the master matched to a reference",
}  # operations no command words


def undo_command(config: Path = typer.Argument(..., help="The release config."), track: int = TRACK, out: Path = OUT) -> None:
    """Make the previous version current again; prints the folder of its files."""
    _move("undo", config, track, out)


def redo_command(config: Path = typer.Argument(..., help="The release config."), track: int = TRACK, out: Path = OUT) -> None:
    """Make the version the last undo set aside current again."""
    _move("redo", config, track, out)


def _move(which: str, config: Path, track: int, out: Path) -> None:
    from songmill.engine import editing

    try:
        result = getattr(editing, which)(config, track=track, out_dir=out)
    except SongmillError as err:
        _fail(err)
    err_console.print(f"version {result['current']} is current", markup=False, highlight=False)
    print(result["folder"])


def switch_command(
    config: Path = typer.Argument(..., help="The release config."),
    track: int = TRACK,
    version: int = typer.Option(..., "--version", min=1, help="The version to make current."),
    out: Path = OUT,
) -> None:
    """Make any version current; its files are copied from the store (nothing is rendered)."""
    from songmill.engine import editing

    try:
        result = editing.switch(config, track=track, version=version, out_dir=out)
    except SongmillError as err:
        _fail(err)
    print(result["folder"])


def diff_command(
    config: Path = typer.Argument(..., help="The release config."),
    track: int = TRACK,
    a: int = typer.Argument(..., help="A version."),
    b: int = typer.Argument(..., help="Another version."),
) -> None:
    """What changed between two versions (JSON): the spec, the sections whose notes changed,
    the files that differ and the measured loudness, tempo and key."""
    from songmill.engine import editing

    try:
        print(json.dumps(editing.diff(config, track=track, a=a, b=b), indent=1))
    except SongmillError as err:
        _fail(err)


def preview_command(
    config: Path = typer.Argument(..., help="The release config."),
    track: int = TRACK,
    a: int = typer.Argument(..., help="A version."),
    b: int = typer.Argument(..., help="Another version."),
    section: str | None = typer.Option(None, "--section", help='The section to hear ("chorus 2"); default: the first one whose notes changed.'),
    out: Path = OUT,
) -> None:
    """Loudness-matched A/B excerpts (20–30 s) of two versions around one section; prints the two files."""
    from songmill.engine import editing

    try:
        if a == b:  # two identical excerpts would say nothing (the editor page offers no such pair)
            raise SongmillError(f"both versions to compare are version {a}; give two different versions (songmill history {config} --track {track} lists them)")
        result = editing.ab_preview(config, track=track, a=a, b=b, section=section, out_dir=out)
    except SongmillError as err:
        _fail(err)
    err_console.print(f"{result['section'] or 'the song'}: both at {result['lufs']} LUFS", markup=False, highlight=False)
    for path in result["files"]:
        print(path)


def suggest_command(
    config: Path = typer.Argument(..., help="The release config."),
    track: int = TRACK,
    as_json: bool = typer.Option(False, "--json"),
    apply: int | None = typer.Option(None, "--apply", min=1, help="Apply suggestion K (1 = the first) as an edit."),
    out: Path = OUT,
    author: str | None = typer.Option(None, "--author", help="Who applied it (default: the user name)."),
    reason: str | None = typer.Option(None, "--reason", help="Why, kept in the history (default: the suggestion's own reason)."),
    audition: bool = typer.Option(True, "--audition/--no-audition", help="As for songmill edit: the new mix's audition, as soon as it exists."),
) -> None:
    """Ranked edits for the track's current version, each with its reason and the measurement behind
    it; --apply K makes suggestion K an edit (the last line printed is its edit-report.json)."""
    from songmill.editor.operations import operations_from_json
    from songmill.engine import editing

    try:
        found = editing.suggestions(config, track=track, out_dir=out)
        if apply is not None:
            count = len(found["suggestions"])
            if not count:
                why = (
                    "the ones its measurements call for were tried before without effect"
                    if found["tried_in_vain"]
                    else "every measurement is where it should be"
                )
                raise SongmillError(f"version {found['version']} has no suggestions to apply ({why})")
            if apply > count:
                raise SongmillError(f"version {found['version']} has {count} suggestion(s); --apply takes 1–{count}")
            chosen = found["suggestions"][apply - 1]
            result = editing.edit(
                config,
                track=track,
                operations=operations_from_json([chosen["operation"]]),
                out_dir=out,
                author=author,
                reason=reason or chosen["reason"],
                audition=audition,
                on_audition=_heard,
            )
            _said(result)
            return
    except SongmillError as err:
        _fail(err)
    if as_json:
        print(json.dumps(found, indent=1))
        return
    if not found["suggestions"]:
        print(f"version {found['version']}: nothing to suggest" + ("" if found["tried_in_vain"] else " (every measurement is where it should be)"))
    for number, item in enumerate(found["suggestions"], start=1):
        print(f"{number}. {item['reason']}")
    for note in found["tried_in_vain"]:
        print(f"- {note}")


daw_app = typer.Typer(no_args_is_help=True, help="A DAW session of a track: stems, MIDI, DAWproject and REAPER projects.")


@daw_app.command("export")
def daw_export_command(
    config: Path = typer.Argument(..., help="The release config."),
    track: int = TRACK,
    version: int | None = typer.Option(None, "--version", min=1, help="The version (default: the current one)."),
    out: Path = OUT,
) -> None:
    """Write the stems (24-bit WAV), the MIDI with its tempo map, a .dawproject and a REAPER .rpp; prints the folder."""
    from songmill.engine import editing

    try:
        result = editing.daw_export(config, track=track, version=version, out_dir=out)
    except SongmillError as err:
        _fail(err)
    err_console.print(
        f"version {result['version']}: {len(result['stems'])} stems, {Path(result['dawproject']).name}, {Path(result['reaper']).name}", markup=False
    )
    print(result["folder"])


@daw_app.command("import")
def daw_import_command(
    config: Path = typer.Argument(..., help="The release config."),
    midi: Path = typer.Argument(..., help="The MIDI file edited in the DAW (exported by songmill daw export, same tempo, lyric events kept)."),
    track: int = TRACK,
    out: Path = OUT,
    reason: str | None = typer.Option(None, "--reason", help="Why, kept in the history."),
) -> None:
    """Render a version whose melody, bass and chords come from the edited MIDI; prints its edit-report.json."""
    from songmill.engine import editing

    try:
        result = editing.daw_import(config, track=track, midi=midi, out_dir=out, reason=reason)
    except SongmillError as err:
        _fail(err)
    err_console.print(f"version {result.version}: recomputed {', '.join(result.recomputed)}", markup=False)
    print(result.report_path)


def deliver_command(config: Path = typer.Argument(..., help="The release config."), out: Path = OUT) -> None:
    """Deliver the release again with each track's current version; prints the delivery report's path last."""
    from songmill.engine.edit_delivery import deliver_current

    try:
        result = deliver_current(config, out_dir=out)
    except SongmillError as err:
        _fail(err)
    for row in result["tracks"]:
        which = f"version {row['version']}" if row["version"] else "its last render"
        isrc = (
            f"ISRC {row['isrc']}, an edited version of {row['edited_from_isrc']}"
            if row["isrc"]
            else "no ISRC: no registrant is configured"
            if row.get("without_isrc")
            else "the track's ISRC"
        )
        err_console.print(f"track {row['number']}: {which} ({isrc})", markup=False, highlight=False)
    from songmill.core.profiles import load_profiles
    from songmill.release.package import unsigned_reasons

    for delivery in result["deliveries"]:
        err_console.print(f"delivered to {delivery['destination']}", markup=False, highlight=False)
    for _, why in unsigned_reasons(result["deliveries"], load_profiles()):
        err_console.print(f"warning: delivered without Content Credentials: {why}", markup=False, highlight=False, soft_wrap=True)
    print(result["report_path"])


def register(app: typer.Typer) -> None:
    app.command("edit")(edit_command)
    app.command("history")(history_command)
    app.command("undo")(undo_command)
    app.command("redo")(redo_command)
    app.command("switch")(switch_command)
    app.command("diff")(diff_command)
    app.command("preview")(preview_command)
    app.command("suggest")(suggest_command)
    app.add_typer(daw_app, name="daw")
    app.command("deliver")(deliver_command)
