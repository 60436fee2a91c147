"""`songmill feedback …` and `songmill models …`: listener feedback, and model versions.

songmill feedback import FILE... [--layout NAME] [--json]   exit 0, 1 when any row was rejected, 2 unusable file
songmill feedback report [--html FILE] [--json]            per-track measures, per-attribute posteriors
songmill feedback simulate --nights N [--tracks T] [--refine] [--json]
songmill feedback review ISRC [--rating N] [--approve|--reject] [--comment C] [--user U]
songmill feedback queue [--json]                            the review queue
songmill feedback experiment NAME [--json]                  an A/B experiment's effect
songmill models versions NAME                               refined versions, which is in use, history
songmill models refine NAME [--method full|lora] [--no-promote]
songmill models promote NAME VERSION [--force]
songmill models rollback NAME VERSION
songmill models add NAME --from PATH --licence L [--commercial] [--backend B] [--sha256 H] [--reference]
songmill models pull NAME                                   a known model at its pinned revision (models/known-models.yaml)
songmill models list [--json]                               every registered model, checked: ok, missing, or failing its hash
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from songmill.core.errors import SongmillError
from songmill.core.paths import config_file
from songmill.core.store import atomic_write_bytes
from songmill.engine.cli_output import table_console

feedback_app = typer.Typer(no_args_is_help=True, help="Listener feedback: import exports, report, simulate, review.")
models_app = typer.Typer(no_args_is_help=True, help="Models: add and pull, list and check; refine from feedback, promote, roll back.")
err_console = Console(stderr=True)
EXIT_REJECTED, EXIT_INVALID = 1, 2


def _fail(err: SongmillError, code: int = EXIT_INVALID) -> None:
    err_console.print(f"[red]error:[/red] {escape(str(err))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _catalogue():
    from songmill.catalogue import Catalogue

    try:
        return Catalogue.open()
    except SongmillError as err:
        _fail(err)


@feedback_app.command("import")
def feedback_import(
    files: list[Path] = typer.Argument(..., help="Analytics exports (CSV/TSV, optionally .gz)."),
    layout: str | None = typer.Option(None, "--layout", help="The layout (distrokid, play-log); default: read from the header."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Import listener events; print what was imported, skipped as duplicates and rejected."""
    from songmill.feedback.ingest import import_file, rematch_unknown

    catalogue = _catalogue()
    results = []
    for path in files:
        try:
            results.append(import_file(path, catalogue, layout=layout))
        except SongmillError as err:
            _fail(err)
    rematch_unknown(catalogue)
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        for result in results:
            print(result.summary())
    if any(r.rejected_count for r in results):
        raise typer.Exit(EXIT_REJECTED)


@feedback_app.command("report")
def feedback_report_command(
    html: Path | None = typer.Option(None, "--html", help="Also write the report as one HTML page here."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Per-track completion, skip, save and rating; per-attribute posteriors with shrinkage."""
    from songmill.engine.planning import load_catalogue_plan
    from songmill.feedback.report import feedback_report, report_html

    try:
        report = feedback_report(_catalogue(), prior_plays=load_catalogue_plan().feedback.prior_plays)
    except SongmillError as err:
        _fail(err)
    if html:
        if html.is_dir():
            _fail(SongmillError(f"--html {html} is a folder; give the path of the HTML file to write (such as {html / 'feedback.html'})"))
        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(html, report_html(report).encode("utf-8"))
        except OSError as err:  # a file where a folder should be, no permission
            _fail(SongmillError(f"--html {html} cannot be written ({err.strerror or err}); give a path in a folder you can write"))
    if as_json:
        print(json.dumps(report, indent=1))
        return
    console = table_console()
    # completion is of the streams whose rows say whether they finished (a play log's; a sales report's do not)
    table = Table("release", "#", "title", "ISRC", "streams", "completion (of)", "skip<30s", "save", "rating", "verdict", title="Tracks")
    pct = lambda v: "—" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for t in report["tracks"]:
        table.add_row(
            t["release_id"],
            str(t["number"]),
            t["title"],
            t["isrc"] or "",
            str(t["streams"]),
            f"{pct(t['completion_rate'])} ({t['completion_streams']})" if t["completion_streams"] else "—",
            pct(t["skip_rate"]),
            pct(t["save_rate"]),
            str(t["rating"] or "—"),
            t["verdict"] or "",
        )
    console.print(table)
    for attribute, rows in report["attributes"].items():
        table = Table(
            "value",
            "streams (of)",
            "raw",
            "posterior",
            "90% interval",
            title=f"completion by {attribute} (catalogue {pct(report['catalogue_completion_rate'])}; streams that report completion)",
        )
        for r in rows:
            table.add_row(r["value"], str(r["streams"]), pct(r["raw_rate"]), pct(r["posterior_mean"]), f"{pct(r['interval_90'][0])}–{pct(r['interval_90'][1])}")
        console.print(table)
    if report["unknown_isrcs"]:
        print(f"kept aside (ISRCs the catalogue does not know): {', '.join(f'{k} ({v} rows)' for k, v in sorted(report['unknown_isrcs'].items()))}")
    if html:
        print(html)


@feedback_app.command("simulate")
def feedback_simulate(
    nights: int = typer.Option(30, "--nights", min=1, max=3650, help="Nights to simulate (planning only, no audio)."),
    tracks: int = typer.Option(12, "--tracks", min=1, max=40, help="Tracks a night."),
    refine: bool = typer.Option(False, "--refine", help="Also run one refinement cycle of the melody model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A synthetic population with hidden tastes: does the plan learn them?"""
    from songmill.feedback.simulate import simulate_nights, simulate_refinement

    try:
        result = {"planning": simulate_nights(nights, tracks=tracks)}
        if refine:
            result["refinement"] = simulate_refinement()
    except SongmillError as err:
        _fail(err)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    planning = result["planning"]
    print(
        f"preferred share of planned choices: prior {planning['prior_share']:.3f}; first {planning['window']} nights {planning['first_nights_share']:.3f}; last {planning['window']} nights {planning['last_nights_share']:.3f}"
    )
    print("curve: " + " ".join(f"{c['preferred_share']:.2f}" for c in planning["curve"]))
    if refine:
        r = result["refinement"]
        print(
            f"refinement: step share {r['step_share']['in_use']} → {r['step_share']['refined']}; verdict {r['evaluation']['verdict']} {'; '.join(r['evaluation']['reasons'])}"
        )


@feedback_app.command("review")
def feedback_review(
    track: str = typer.Argument(..., help="The track's ISRC (or catalogue id)."),
    rating: int | None = typer.Option(None, "--rating", help="1 (poor) to 5 (great)."),
    approve: bool = typer.Option(False, "--approve", help="Approve the track for delivery."),
    reject: bool = typer.Option(False, "--reject", help="Withhold the track from delivery."),
    comment: str | None = typer.Option(None, "--comment"),
    user: str | None = typer.Option(None, "--user", help="Who gives the verdict (default: the login name)."),
) -> None:
    """Rate, approve or reject a track (the same store as the plugin's review queue)."""
    from songmill.feedback.review import record_verdict

    if approve and reject:
        _fail(SongmillError("--approve and --reject contradict each other; give one"))
    verdict = "approve" if approve else "reject" if reject else None
    try:
        row = record_verdict(_catalogue(), track, user=user or getpass.getuser(), rating=rating, verdict=verdict, comment=comment)
    except SongmillError as err:
        _fail(err)
    which = f"{row['title']} ({row['isrc']})" if row["isrc"] else f"{row['title']} (no ISRC yet)"
    print(f"recorded for {which}: " + ", ".join(x for x in (f"rating {rating}" if rating else "", verdict or "") if x))


@feedback_app.command("queue")
def feedback_queue(as_json: bool = typer.Option(False, "--json")) -> None:
    """The review queue: tracks whose predicted appeal is least certain."""
    from songmill.feedback.review import review_queue

    rows = review_queue(_catalogue())
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    if not rows:  # filled by the nightly DAG after each batch, not by a render by hand
        print(
            "the review queue is empty: after each nightly batch, its tracks whose predicted appeal is least certain are queued here "
            f"({config_file('catalogue.yaml')}'s review_per_night); `songmill feedback review ISRC …` gives any track a verdict"
        )
        return
    table = Table("release", "#", "title", "ISRC", "predicted", "±", "status")
    for r in rows:
        table.add_row(r["release_id"], str(r["number"]), r["title"], r["isrc"] or "", f"{r['predicted_appeal']:.3f}", f"{r['uncertainty']:.3f}", r["status"])
    table_console().print(table)


@feedback_app.command("experiment")
def feedback_experiment(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """An A/B experiment's arms and effect (difference with 95 % interval, P(B beats A))."""
    from songmill.feedback.experiments import experiment_report

    try:
        report = experiment_report(_catalogue(), name)
    except SongmillError as err:
        _fail(err)
    print(json.dumps(report, indent=None if not as_json else 1))


@models_app.command("versions")
def models_versions(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """A model's refined versions, which one is in use, and the promotion history."""
    from models.registry import ModelRegistry
    from models.versions import VersionStore

    try:
        registry = ModelRegistry.load()
        entry = registry.get(name)
    except SongmillError as err:
        _fail(err)
    store = VersionStore()
    found: dict = {
        "name": name,
        "in_use": entry.version,
        "registry_version": registry.base_version(name),
        "versions": [{"version": v, "verdict": (store.lineage(name, v).get("evaluation") or {}).get("verdict")} for v in store.versions(name)],
        "history": store.history(name),
    }
    if as_json:
        print(json.dumps(found, indent=1))
        return
    print(f"{name}: in use {found['in_use']} (registry's own {found['registry_version']})")
    for v in found["versions"]:
        print(f"  {v['version']}: evaluation {v['verdict']}")
    for h in found["history"]:
        print(f"  {h['at']} {h['action']} {h['from']} → {h['version']} by {h['by']}: {h['reason']}")


@models_app.command("refine")
def models_refine(
    name: str = typer.Argument("melody-gru-celtic"),
    method: str = typer.Option("full", "--method", help="full (every weight) or lora (PEFT adapters on the linear head)."),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="Promote the candidate when its evaluation accepts it."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Refine a model from the catalogue's feedback: train, evaluate, register, promote if it wins."""
    from songmill.feedback.refinement import MELODY_MODEL, refine_from_feedback, refine_lyrics_from_feedback

    if method not in ("full", "lora"):  # before the feedback is read: the request itself is wrong
        _fail(SongmillError(f"--method {method!r} is not a fine-tune method (full or lora)"))
    try:
        if name == MELODY_MODEL:
            result = refine_from_feedback(_catalogue(), method=method, promote=promote, by=getpass.getuser())
        else:
            result = refine_lyrics_from_feedback(_catalogue(), name, promote=promote, by=getpass.getuser())
    except SongmillError as err:
        _fail(err)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"{result['name']} {result['version']} (from {result['base_version']}): {result['verdict']}"
        + (f" — {'; '.join(result['reasons'])}" if result["reasons"] else "")
    )
    evaluation = result["evaluation"]
    for figure, now in evaluation.get("in_use", {}).items():  # the evidence the verdict rests on, in use → candidate
        then = evaluation.get("candidate", {}).get(figure)
        if isinstance(now, float) and isinstance(then, float):
            print(f"  {figure}: {now:g} → {then:g}")
    print("promoted: now in use" if result["promoted"] else "not promoted: the version in use stays")


def _version_action(action: str, name: str, version: str, force: bool = False) -> None:
    from models.registry import ModelRegistry
    from models.versions import VersionStore

    try:
        registry = ModelRegistry.load()
        registry.get(name)
        base = registry.base_version(name)
        store = VersionStore()
        if action == "promote":
            store.promote(name, version, by=getpass.getuser(), reason="songmill models promote" + (" --force" if force else ""), base_version=base, force=force)
        else:
            store.rollback(name, version, by=getpass.getuser(), reason="songmill models rollback", base_version=base)
        now = ModelRegistry.load().get(name).version
    except SongmillError as err:
        _fail(err)
    print(f"{name}: {now} in use")


@models_app.command("promote")
def models_promote(name: str = typer.Argument(...), version: str = typer.Argument(...), force: bool = typer.Option(False, "--force")) -> None:
    """Put a version in use (refused when its evaluation refused it, unless --force)."""
    _version_action("promote", name, version, force)


@models_app.command("rollback")
def models_rollback(
    name: str = typer.Argument(...), version: str = typer.Argument(..., help="The version to go back to (the registry's own, e.g. 1.0, or a refined one).")
) -> None:
    """Go back to an earlier version; tracks rendered after it sound as they did with it."""
    _version_action("rollback", name, version)


@models_app.command("add")
def models_add(
    name: str = typer.Argument(..., help="The registry name (lower case, digits, . _ -)."),
    source: Path = typer.Option(..., "--from", help="The model's folder (as save_pretrained wrote it) or file (.sf2)."),
    licence: str = typer.Option(..., "--licence", help="The licence it is published under."),
    commercial: bool = typer.Option(False, "--commercial", help="The licence allows commercial releases."),
    backend: str = typer.Option(None, "--backend", help="The backend that runs it (detected from the folder when not given)."),
    version: str = typer.Option("1", "--version"),
    sha256: str = typer.Option(None, "--sha256", help="The tree hash the folder must have (as `models list --json` prints it)."),
    reference: bool = typer.Option(False, "--reference", help="Register the folder where it is instead of copying it under var/model-store."),
    replace: bool = typer.Option(False, "--replace", help="Put it in the place of the model registered under this name (its file gone, or a new release)."),
) -> None:
    """Register a model you have: hash its tree, copy it under the models folder, write the registry entry."""
    from models.install import add_model, licence_note, registry_file

    try:
        entry = add_model(
            name, source, licence=licence, commercial=commercial, backend=backend, version=version, expected_sha256=sha256, reference=reference, replace=replace
        )
    except SongmillError as err:
        _fail(err)
    print(f"{entry.name} {entry.version} ({entry.backend}, {entry.licence}{', commercial use' if entry.commercial_use else ', not for commercial releases'})")
    print(f"sha256 {entry.sha256} at {entry.path}; registered in {registry_file()}")
    note = licence_note(entry.licence, entry.commercial_use)
    if note:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


@models_app.command("pull")
def models_pull(
    name: str = typer.Argument(..., help="A model from models/known-models.yaml."),
    replace: bool = typer.Option(False, "--replace", help="Put it in the place of the model registered under this name."),
) -> None:
    """Download a known model at its pinned revision from the Hugging Face Hub, then add it."""
    from models.install import pull_model, registry_file

    try:
        entry = pull_model(name, replace=replace)
    except SongmillError as err:
        _fail(err)
    print(f"{entry.name} {entry.version} ({entry.backend}, {entry.licence}); sha256 {entry.sha256} at {entry.path}; registered in {registry_file()}")


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every registered model, each checked (file there, hash as registered); exit 1 when any is not."""
    from models.registry import ModelRegistry

    try:
        registry = ModelRegistry.load()
    except SongmillError as err:
        _fail(err)
    rows = []
    for name, entry in sorted(registry.entries.items()):
        try:
            registry.resolve(name, commercial=False)
            state = "ok"
        except SongmillError as err:
            state = str(err)
        rows.append(
            {
                "name": name,
                "version": entry.version,
                "backend": entry.backend,
                "licence": entry.licence,
                "commercial_use": entry.commercial_use,
                "sha256": entry.sha256,
                "path": entry.path,
                "state": state,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        for row in rows:
            print(f"{row['name']} {row['version']} {row['backend']}: {row['state']}")
    if any(row["state"] != "ok" for row in rows):
        raise typer.Exit(EXIT_REJECTED)
