"""The `songmill` command (typer). Contracts in DESIGN.md §3.

songmill validate PATH...                     exit 0 valid, 2 with one line per problem
songmill render CONFIG [--out DIR] [--jobs N] [--track N] [--seed S]
                                              last line printed: the run report's path
songmill qc AUDIO --profile NAME [--tempo BPM] [--key KEY] [--json]
                                              exit 0 pass, 1 fail (reasons), 2 unusable input
songmill verify FILE [--json]                 ours (exit 0), not ours (1), unreadable (2): manifest, watermark, fingerprint
songmill credentials test-ca DIR              a throw-away CA and signing certificate (tests and the demo only)
songmill catalogue ls                         releases in the catalogue
songmill catalogue deliveries RELEASE         where a release was delivered
songmill catalogue check [--repair] [--json]  catalogue, store and delivery folders compared (exit 0 agree, 1 not)
songmill feedback …, songmill models …        listener feedback and model versions (cli_feedback.py)
songmill edit|history|undo|redo|switch|diff   the song editor (cli_editor.py)
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer
import typer.rich_utils
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from songmill.core.errors import ConfigError, InputError, SongmillError
from songmill.engine.cli_editor import register as register_editor
from songmill.engine.cli_feedback import feedback_app, models_app
from songmill.engine.cli_output import table_console

# Piped or captured, Rich lays `--help` out 80 columns wide and cuts long option names
# ("--match-referen…"): give typer's help a width of its own there (a terminal keeps its own;
# set here, not in the environment, so no child process or later test inherits it)
if not sys.stdout.isatty() and not os.environ.get("COLUMNS") and typer.rich_utils.MAX_WIDTH is None:
    typer.rich_utils.MAX_WIDTH = 140

app = typer.Typer(add_completion=False, no_args_is_help=True, help="songmill: AI song production line.")
catalogue_app = typer.Typer(no_args_is_help=True, help="Look into the catalogue.")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(feedback_app, name="feedback")
app.add_typer(models_app, name="models")
register_editor(app)  # edit, history, undo, redo, switch, diff
err_console = Console(stderr=True)

EXIT_FAILED, EXIT_INVALID = 1, 2


def _fail(err: SongmillError, code: int = EXIT_FAILED) -> None:
    """Print the error's sentence and exit with `code`; an argument the command cannot use (an
    InputError) exits EXIT_INVALID whatever the command."""
    code = EXIT_INVALID if isinstance(err, InputError) else code
    err_console.print(f"[red]error:[/red] {escape(str(err))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _log_level() -> int:
    """SONGMILL_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR), else WARNING; an unknown name is said once."""
    name = os.environ.get("SONGMILL_LOG_LEVEL", "WARNING").upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        err_console.print(f"SONGMILL_LOG_LEVEL={name} is not a log level (DEBUG, INFO, WARNING, ERROR); logging warnings", markup=False, highlight=False)
        return logging.WARNING
    return level


@app.command()
def validate(paths: list[Path] = typer.Argument(None, help="Release config files.")) -> None:
    """Check the project's config files and the release configs given; print `file:line: field:
    problem` lines and exit 2 if any is invalid."""
    from songmill.engine.configs import config_problems, load_release_with_profiles, lyrics_problems, release_warnings

    paths = paths or []
    problems = config_problems()
    for path in paths if not problems else []:  # a broken profile or registry would be reported for every release
        try:
            spec, _ = load_release_with_profiles(path)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        problems += lyrics_problems(path, spec)
        for warning in release_warnings(path, spec):
            err_console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    for line in problems:
        print(line)
    if problems:
        raise typer.Exit(EXIT_INVALID) from None
    print(f"the project's config files and {len(paths)} release config{'s' if len(paths) != 1 else ''} valid")


@app.command()
def render(
    config: Path = typer.Argument(..., help="The release config (YAML)."),
    out: Path = typer.Option(Path("dist"), "--out", help="Output folder; the report goes to OUT/<release-id>/."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Tracks rendered at once."),
    track: int | None = typer.Option(None, "--track", help="Render only track N (1-based)."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Re-seed every track from this base seed."),
    redeliver: bool = typer.Option(
        False, "--redeliver", help="Replace an earlier delivery of this release even though its audio differs (recorded in the catalogue)."
    ),
) -> None:
    """Render a release; the last line printed is the path of its run-report.json."""
    from songmill.engine.runner import render as render_release

    logging.basicConfig(level=_log_level(), format="%(levelname)s %(name)s: %(message)s")
    try:
        report = render_release(config, out_dir=out, jobs=jobs, track=track, seed=seed, console=err_console, redeliver=redeliver)
    except ConfigError as err:
        for line in err.problems:
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    except SongmillError as err:
        _fail(err)
    print(report)


@app.command("qc")
def qc_command(
    audio: Path = typer.Argument(..., help="An audio file (WAV, FLAC, MP3, M4A, Opus, anything ffmpeg reads)."),
    profile: str = typer.Option(..., "--profile", help="The delivery profile whose bars apply (config/profiles.yaml)."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict, every check and the metrics as JSON."),
    tempo: float | None = typer.Option(None, "--tempo", min=20, max=400, help="Also check the detected tempo against this BPM (half/double time allowed)."),
    key: str | None = typer.Option(None, "--key", help="Also check the detected key against this one, e.g. 'A minor'."),
) -> None:
    """Run the technical gate on an audio file: exit 0 pass, 1 fail (with the reasons), 2 when the
    file, the profile or a suite cannot be used at all. With --tempo / --key, the musical checks
    of tempo and key run too."""
    from qc.musical import ANALYSIS_RATE_HZ, measure_musical
    from qc.suites import judge
    from qc.technical import decode, measure_file, probe
    from songmill.core.music import parse_key
    from songmill.core.profiles import load_profiles

    try:
        profiles = load_profiles()
        if profile not in profiles:
            raise SongmillError(f"'{profile}' is not a delivery profile (profiles: {', '.join(sorted(profiles))})")
        if key is not None:
            try:
                parse_key(key)
            except ValueError as err:
                raise SongmillError(f"--key: {err}") from None
        metrics = measure_file(audio)
        # tempo and key are heard in mono at the analysis rate: decoded so, after the stereo samples are gone (memory)
        mono = decode(audio, channels=1, sample_rate_hz=ANALYSIS_RATE_HZ, stream=probe(audio)) if tempo or key else None
        musical = measure_musical(*mono, tempo_bpm=tempo, key=key) if mono else None
        [verdict] = judge([metrics], profile, profiles[profile], musical=musical, expected={"tempo_bpm": tempo, "key": key})
    except ConfigError as err:
        for line in err.problems:
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    except SongmillError as err:
        _fail(err, EXIT_INVALID)  # a broken input is never mistaken for a failed track
    if as_json:
        print(json.dumps({**verdict.to_dict(), "metrics": metrics.to_dict(), "musical": musical.to_dict() if musical else None}, indent=1))
    else:
        print(f"{'PASS' if verdict.passed else 'FAIL'} {audio} (profile {profile})")
        for reason in verdict.reasons:
            print(f"  - {reason}")
    raise typer.Exit(0 if verdict.passed else EXIT_FAILED)


@app.command()
def verify(
    file: Path = typer.Argument(..., help="An audio file: a delivered one, a copy, or anything else."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole finding as JSON."),
) -> None:
    """Say whether an audio file is one of ours: its Content Credentials, its watermark and its
    fingerprint against the catalogue. Exit 0 ours, 1 not ours, 2 unreadable."""
    from songmill.engine.verify import verify_path

    try:
        result = verify_path(file)
    except SongmillError as err:
        _fail(err, EXIT_INVALID)
    if as_json:
        print(json.dumps(result.to_dict(), indent=1))
        raise typer.Exit(result.exit_code)
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"{escape(str(file))}: [bold]{result.verdict}[/bold] — {escape(result.reason)}")
    if result.credentials:
        claim = result.credentials.get("claim") or {}
        named = f", naming {claim.get('release_id')} track {claim.get('track_number')} ISRC {claim.get('isrc')}" if claim else ""
        failures = f" ({', '.join(result.credentials['failures'])})" if result.credentials.get("failures") else ""
        out.print(f"  content credentials: {result.credentials['state']}{escape(failures)}{escape(named)}")
    if result.watermark:
        out.print(f"  watermark: {'detected' if result.watermark['detected'] else 'not detected'} (median window score {result.watermark['median_score']:.2f})")
    if result.fingerprint:
        out.print(f"  fingerprint: best similarity {result.fingerprint['similarity']:.3f} (bar {result.fingerprint['bar']:g})")
    if result.track:
        t = result.track
        out.print(
            f"  track: {escape(t['release_id'])} #{t['number']} {escape(t['title'])}, ISRC {t['isrc'] or '-'}, run {t['run_id']}, rendered {t['rendered_at'] or '-'}"
        )
        if t.get("version"):  # a version the song editor made
            v = t["version"]
            words = f' ("{v["command"]}")' if v["command"] else ""
            isrc = v["isrc"] or "none yet (a new recording, not delivered since the edit)"
            out.print(f"  edited version {v['number']} by {escape(v['author'])} on {v['created_at']}{escape(words)}, ISRC {isrc}")
        out.print("  models: " + escape(", ".join(f"{m['name']} {m['version']} ({m['licence']})" for m in t["models"])))
        shown = t["deliveries"][-3:]  # the release's, newest last: which of them carried this very file is the catalogue's lineage
        if shown:
            out.print(f"  the release's deliveries ({'the last 3 of ' if len(t['deliveries']) > 3 else ''}{len(t['deliveries'])}):")
        for d in shown:
            out.print(f"    {d['profile']} UPC {d['upc']} on {d['delivered_at']}")
    for note in result.notes:
        out.print(f"  note: {escape(note)}")
    raise typer.Exit(result.exit_code)


credentials_app = typer.Typer(no_args_is_help=True, help="Content Credentials signing keys.")
app.add_typer(credentials_app, name="credentials")


@credentials_app.command("test-ca")
def credentials_test_ca(folder: Path = typer.Argument(..., help="Where to write chain.pem, signer.key and ca.pem.")) -> None:
    """Make a throw-away CA and a signing certificate it issued (30 days), for tests and the demo.
    Never sign a real release with it: give the label's own key in config/delivery.yaml."""
    from songmill.release.credentials import write_test_credentials

    for kind, path in write_test_credentials(folder).items():
        print(f"{kind}: {path}")


@catalogue_app.command("ls")
def catalogue_ls(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the releases in the catalogue (SONGMILL_DATABASE_URL, else var/catalogue.db)."""
    from songmill.catalogue import Catalogue

    try:
        rows = Catalogue.open().releases()
    except SongmillError as err:
        _fail(err)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("release", "title", "artist", "type", "date", "tracks", "runs", "last run")
    for r in rows:
        table.add_row(
            r["id"],
            r["title"],
            r["artist"],
            r["type"],
            r["date"],
            str(r["tracks"]),
            str(r["runs"]),
            f"{r['last_run']} {r['last_run_at']}" if r["last_run"] else "-",
        )
    table_console().print(table)


@catalogue_app.command("deliveries")
def catalogue_deliveries(
    release: str = typer.Argument(..., help="The release id."), as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")
) -> None:
    """List where a release was delivered: profile, destination, UPC, manifest hash, when, and
    which earlier delivery each one replaced (and why, when its audio changed)."""
    from songmill.catalogue import Catalogue

    try:
        catalogue = Catalogue.open()
        try:
            rows = catalogue.deliveries(release)
            known = bool(rows) or release in {r["id"] for r in catalogue.releases()}
        finally:
            catalogue.close()
    except SongmillError as err:
        _fail(err)
    if not known:
        _fail(SongmillError(f"the catalogue has no release '{release}' (songmill catalogue ls lists the releases it has)"), EXIT_INVALID)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("#", "profile", "destination", "UPC", "files", "manifest sha256", "delivered at", "replaces")
    for r in rows:
        replaces = f"#{r['replaces']}" + (f": {r['replaced_because']}" if r["replaced_because"] else "") if r["replaces"] else ""
        table.add_row(str(r["id"]), r["profile"], r["destination"], r["upc"], str(r["files"]), r["manifest_sha256"][:16], r["delivered_at"], replaces)
    table_console().print(table)


@catalogue_app.command("check")
def catalogue_check(
    repair: bool = typer.Option(False, "--repair", help="Fix what can be fixed safely (interrupted runs, quarantine, leftovers)."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Compare the catalogue, the artifact store and the delivery folders; print every
    disagreement. Exit 0 when all agree (or --repair fixed everything), 1 when a disagreement
    is left, 2 when the catalogue or the store cannot be opened."""
    from songmill.catalogue import Catalogue
    from songmill.core.store import open_store
    from songmill.engine.consistency import REMEDIES, check, quarantined

    try:
        store = open_store()
        findings = check(Catalogue.open(), store, repair=repair)
    except SongmillError as err:
        _fail(err, EXIT_INVALID)
    left, set_aside = [f for f in findings if not f.repaired], quarantined(store)
    if as_json:
        print(json.dumps({"findings": [f.to_dict() for f in findings], "left": len(left), "quarantined_blobs": set_aside}, indent=1))
    else:
        out = Console(highlight=False, soft_wrap=True)
        for f in findings:
            state = "repaired" if f.repaired else (f"--repair: {f.repair}" if f.repair else f"needs you: {REMEDIES.get(f.kind, 'look into it')}")
            out.print(f"{f.kind}: {f.subject} — {f.detail} [{state}]", markup=False)
        out.print(f"{len(findings)} disagreement(s), {len(findings) - len(left)} repaired, {len(left)} left; {set_aside} blob(s) in quarantine", markup=False)
    raise typer.Exit(1 if left else 0)


INTERRUPTED = (
    "interrupted (Ctrl-C): a render or edit under way is marked failed in the catalogue and nothing half-written is kept;"
    " the same command again takes every stage already finished from the cache\n"
)


def _say_interrupted(signum: int, frame: object) -> None:
    """Ctrl-C: say what becomes of the work, start no more stages, then stop as Python does
    (typer exits 130 in silence). Written straight to the descriptor: the main thread may be
    inside a write to stderr."""
    from songmill.engine.stage import STOP  # imported already by main()

    STOP.set()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), INTERRUPTED.encode())
    raise KeyboardInterrupt


def _interrupt_lost_in_a_finaliser(unraisable: Any) -> None:
    """`sys.unraisablehook`: Python cannot raise in a finaliser or a weakref callback, so a Ctrl-C
    that lands in one is dropped and printed as "Exception ignored" with a traceback. Dropped in
    silence instead: the stop flag is set, so the next stage to start, or the release steps,
    raise it where it can be handled (raising it again here, or later from a timer, could cut
    short the cleanup of the interrupt already under way). Any other exception there is
    reported as Python reports it."""
    from songmill.engine.stage import STOP

    if isinstance(unraisable.exc_value, KeyboardInterrupt) and STOP.is_set():
        return
    sys.__unraisablehook__(unraisable)


def _no_collection_at_exit() -> None:
    """An exit handler (registered as `main()` starts, so it runs after the handlers registered
    later and before those of modules imported earlier, such as `logging`'s, which close what
    they hold explicitly): every object the garbage collector tracks moves to its permanent
    generation, which the collections of Python's own shutdown skip. A command that rendered
    has imported music21, torch, librosa and Great Expectations, about 830,000 tracked objects,
    and those collections walked them all for nothing: 1.6–1.9 s between the command's last line
    and its exit (an edit, 2026-12-05). The memory is the system's again at exit either way. The
    one thing skipped is finalising objects still held in reference cycles: songmill's files and
    temporary folders are closed and removed by `with` blocks, never left to the collector."""
    gc.freeze()


def main() -> None:
    from songmill.engine.stage import flush_denormals

    atexit.register(_no_collection_at_exit)
    flush_denormals()  # before any thread starts: every thread of the command inherits it
    signal.signal(signal.SIGINT, _say_interrupted)
    sys.unraisablehook = _interrupt_lost_in_a_finaliser
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
