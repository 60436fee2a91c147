"""Every config file songmill reads, checked together (what `songmill validate` runs first), and
a release config checked against what it names. Light at import: Airflow's DAG files use it.

Each file has one loader, and every loader goes through `songmill.core.config.load_config`, so a
file that does not parse, has an unknown field or a wrong type is reported the same way:
`file:line: field.path: what is wrong (what is allowed)`. (config/airflow.yaml is Airflow's
and is checked when the DAGs are parsed.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from songmill.core.errors import ConfigError, SongmillError
from songmill.core.spec import ReleaseSpec, load_release


def _checks() -> tuple[Callable[[], list[str]], ...]:
    """A check of each project config file (each reads its default path): the lines it finds, or
    its loader's ConfigError. delivery.yaml's also says which signing files it names are missing."""
    from models.instruments.arrangement import load_presets
    from models.registry import ModelRegistry
    from qc.suites import load_qc_settings
    from songmill.core.profiles import load_profiles
    from songmill.engine.planning import load_catalogue_plan
    from songmill.feedback.experiments import load_experiments
    from songmill.production.presets import load_production_presets
    from songmill.release.settings import missing_signing_files

    loaders = (load_profiles, load_production_presets, load_presets, load_qc_settings, load_catalogue_plan, load_experiments, ModelRegistry.load)
    return (*(_loads(load) for load in loaders), missing_signing_files)


def _loads(load: Callable[[], object]) -> Callable[[], list[str]]:
    def check() -> list[str]:
        load()  # a file that loads has nothing more to say
        return []

    return check


def config_problems() -> list[str]:
    """One line per problem in the project's config files (none: every file is valid)."""
    problems: list[str] = []
    for check in _checks():
        try:
            problems += check()
        except ConfigError as err:
            problems += err.problems
    return problems


def lyrics_problems(config_path: Path, spec: ReleaseSpec, *, tracks: list[int] | None = None) -> list[str]:
    """One `file:line: tracks[i].lyrics: …` line per track whose own lyrics do not fit its form
    (`track_stages.provided_lyrics_problem`), of `tracks` (0-based) or every track. Not part of
    `load_release_with_profiles`, which Airflow's DAG files call: it syllabifies every line."""
    from songmill.core.config import load_yaml
    from songmill.engine.stage import TrackJob
    from songmill.engine.track_stages import provided_lyrics_problem

    indices = range(len(spec.tracks)) if tracks is None else tracks  # 0-based; None: every track
    found = [(i, provided_lyrics_problem(TrackJob(spec, i, seed=0, commercial=False))) for i in indices]
    if not any(problem for _, problem in found):
        return []
    _, locator = load_yaml(Path(config_path))
    return [
        locator.problem(("tracks", i, "lyrics_file"), f"{spec.tracks[i].lyrics_file}: {problem}")
        if spec.tracks[i].lyrics_file
        else locator.problem(("tracks", i, "lyrics"), problem)
        for i, problem in found
        if problem
    ]


def release_warnings(config_path: Path, spec: ReleaseSpec) -> list[str]:
    """What is allowed but most likely a slip, one line each (`songmill validate` and a render
    say them, and go on): two tracks of the release with the same title."""
    from collections import defaultdict

    numbers_of: dict[str, list[int]] = defaultdict(list)  # a title, as stores compare them → its track numbers
    for number, track in enumerate(spec.tracks, start=1):
        numbers_of[track.title.casefold()].append(number)
    warnings = []
    for numbers in (n for n in numbers_of.values() if len(n) > 1):
        shown = spec.tracks[numbers[0] - 1].title
        warnings.append(
            f"{config_path}: tracks {', '.join(map(str, numbers[:-1]))} and {numbers[-1]} share the title {shown!r}; stores list them by title, so give each its own "
            "(a part or version in it: 'Low Tide (Reprise)')"
        )
    return warnings


def load_release_with_profiles(config_path: Path) -> tuple[ReleaseSpec, dict]:
    """The release config checked against everything it names: delivery profiles and the model
    registry's voice identities (an unreadable registry is reported by the stage that needs it)."""
    from models.registry import ModelRegistry
    from songmill.core.profiles import load_profiles

    profiles = load_profiles()
    try:
        registry: ModelRegistry | None = ModelRegistry.load()
    except SongmillError:
        registry = None
    identities = set(registry.identities) if registry is not None else None
    checks = (lambda spec: model_problems(spec, registry, profiles)) if registry is not None else None
    return load_release(config_path, profile_names=set(profiles), voice_identities=identities, checks=checks), profiles


def model_problems(spec: ReleaseSpec, registry, profiles: dict) -> list[tuple[tuple, str]]:  # noqa: ANN001 - a ModelRegistry
    """The models a track names, against the registry: one it does not hold, one whose backend
    cannot do that work (a language model as the instruments), one whose licence keeps it out of
    a commercial profile the release delivers to. (Its files and hash: checked by the stage.)"""
    from models.registry import LYRICS_BACKENDS, STEM_BACKENDS

    takes = {"lyrics_model": LYRICS_BACKENDS, "instruments_model": STEM_BACKENDS}  # the backends each field's stage runs
    commercial = [name for name in spec.release.profiles if name in profiles and profiles[name].commercial]
    problems = []
    for i, track in enumerate(spec.tracks):
        for field, backends in takes.items():
            name = getattr(track, field)
            if field == "lyrics_model" and not track.lyrics_written:
                continue  # never loaded
            if name is not None:
                problem = _model_problem(name, field, backends, registry, commercial)
                problems += [(("tracks", i, field), problem)] if problem else []
    return problems


def _model_problem(name: str, field: str, backends: tuple[str, ...], registry, commercial: list[str]) -> str | None:  # noqa: ANN001
    entry = registry.entries.get(name)
    suitable = sorted(n for n, e in registry.entries.items() if e.backend in backends)
    if entry is None:
        return f"'{name}' is not in the model registry {registry.source} ({field} takes: {', '.join(suitable) or 'none yet; songmill models add'})"
    if entry.backend not in backends:
        return f"'{name}' is a {entry.backend} model; {field} takes a {' or '.join(backends)} model ({', '.join(suitable) or 'none registered'})"
    if commercial and not entry.commercial_use:
        return (
            f"'{name}' ({entry.licence}) is not licensed for commercial use and the release goes to the commercial profile {commercial[0]}; "
            "choose another model or non-commercial profiles"
        )
    return None
