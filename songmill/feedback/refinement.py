"""The refinement cycle: kept melodies → a fine-tuned candidate → evaluated → registered → maybe promoted.

    summary = refine_from_feedback(catalogue)        # what the weekly refinement DAG runs

The candidate is always registered as a new version (lineage, model card), promoted or not, so a
refused refinement can be read and argued with; only a version whose evaluation says "promote"
is put in use (`models.versions.VersionStore.promote`). Every track records the version that
made it (`track_attributes.melody_model`, and `artifact_models` per artifact).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

from sqlalchemy import select

from songmill.catalogue import Catalogue
from songmill.catalogue.schema import Artifact
from songmill.core.errors import SongmillError
from songmill.core.score import Score
from songmill.core.store import ArtifactRef, open_store
from songmill.feedback.measures import fit_preference, track_measures

MELODY_MODEL = "melody-gru-celtic"  # the same name as engine.track_stages.MELODY_MODEL


def kept_artifacts(catalogue: Catalogue, name: str, workdir: Path) -> tuple[list[tuple[Path, float]], list]:
    """(file, weight) of artifact `name` (e.g. score.json) for each track listeners kept
    (completion at or above the catalogue's rate; weight = its rate over the catalogue's), and
    every track's measures."""
    measures = [m for m in track_measures(catalogue) if m.completion_trials]
    if not measures:
        raise SongmillError("no listener feedback with completions in the catalogue yet; import an export first (songmill feedback import)")
    mean = sum(m.completions for m in measures) / sum(m.completion_trials for m in measures)
    store = open_store()
    kept = []
    with catalogue.session() as s:
        for m in measures:
            rate = m.completion_rate or 0.0
            if rate < mean:
                continue
            artifact = s.scalar(select(Artifact).where(Artifact.track_id == m.track_id, Artifact.name == name).order_by(Artifact.id.desc()))
            if artifact is None:
                continue
            path = store.get_file(ArtifactRef(artifact.name, artifact.sha256, artifact.bytes, artifact.uri), workdir / f"{m.track_id}-{name}")
            kept.append((path, rate / mean))
    return kept, measures


def kept_melodies(catalogue: Catalogue, workdir: Path) -> tuple[list[tuple[Score, float]], object]:
    """(score, weight) of each kept track, and the preference model fitted on every track."""
    kept, measures = kept_artifacts(catalogue, "score.json", workdir)
    return [(Score.load_json(path), weight) for path, weight in kept], fit_preference(measures)


def model_card(name: str, version: str, lineage: dict) -> str:
    ev = lineage["evaluation"]
    rows = "\n".join(
        f"| {k} | {ev['in_use'][k]} | {ev['candidate'][k]} |"
        for k in ("heldout_nll", "in_scale", "chord_tone", "diversity", "duplicate_rate", "preference", "step_share")
    )
    return f"""# {name} {version}

Refined by songmill from listener feedback on {lineage["created_at"]}.

- Base version: {lineage["base_version"]} (sha256 {lineage["base_sha256"][:16]}…)
- Training data: {lineage["training_data"]["kept_melodies"]} kept melodies (weighted by how much they were kept) and
  {lineage["training_data"]["corpus_tunes"]} tunes of Ryan's Mammoth Collection (1883, public domain);
  snapshot sha256 {lineage["training_data"]["snapshot_sha256"]}
- Fine-tune: {json.dumps(lineage["hyper_parameters"])}
- Licence: as the base model's registry entry; the kept melodies are songmill's own output.

## Evaluation (20 seeds of one fixed song; held-out corpus tunes)

| figure | in use | this version |
|---|---|---|
{rows}

Verdict: **{ev["verdict"]}**{(" — " + "; ".join(ev["reasons"])) if ev["reasons"] else ""}
"""


def register_candidate(registry, name: str, out: Path, result: dict, *, card, promote: bool, by: str, reason: str) -> dict:
    """Keep a refined candidate as the model's next version (lineage, `card(name, version,
    lineage)` as its model card), promote it when its evaluation said so; what happened."""
    from models.versions import VersionStore

    store, entry = VersionStore(), registry.get(name)
    version = store.next_version(name, entry.version)
    lineage = {
        **result,
        "name": name,
        "base_version": entry.version,
        "base_sha256": entry.sha256,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    store.add(name, version, out, lineage, card(name, version, lineage))
    verdict = result["evaluation"]["verdict"]
    promoted = bool(promote and verdict == "promote")
    if promoted:
        store.promote(name, version, by=by, reason=reason, base_version=registry.base_version(name))
    return {
        "name": name,
        "version": version,
        "base_version": entry.version,
        "verdict": verdict,
        "reasons": result["evaluation"]["reasons"],
        "promoted": promoted,
        "evaluation": result["evaluation"],
    }


def refine_from_feedback(
    catalogue: Catalogue, *, method: str = "full", corpus_files: int = 120, promote: bool = True, by: str = "songmill refine", candidate=None
) -> dict:
    """Refine the melody model in use from the catalogue's feedback; register, and promote if it
    wins. `candidate` evaluates a given model instead of training one (a damaged model's test)."""
    from models.registry import ModelRegistry
    from models.training.refine_melody import FineTune
    from songmill.feedback.evaluation import refine_melody

    registry = ModelRegistry.load()
    base_path = registry.resolve(MELODY_MODEL, commercial=False)
    with tempfile.TemporaryDirectory(prefix="songmill-refine-") as folder:
        kept, preference = kept_melodies(catalogue, Path(folder))
        if not kept:
            raise SongmillError("no kept track has a score in the artifact store; render and deliver tracks, then import their feedback")
        out = Path(folder) / "melody.safetensors"
        result = refine_melody(base_path, kept, preference, settings=FineTune(method=method), corpus_files=corpus_files, out=out, candidate=candidate)
        return register_candidate(
            registry, MELODY_MODEL, out, result, card=model_card, promote=promote, by=by, reason="won on preference without regressing a gate figure"
        ) | {"training": result["training"]}


def refine_lyrics_from_feedback(catalogue: Catalogue, name: str, *, promote: bool = True, by: str = "songmill refine", epochs: int = 3) -> dict:
    """Refine the registered lyrics LM `name` (backend transformers) on the kept tracks' lyrics."""
    from models.registry import ModelRegistry
    from models.training.refine_lyrics import refine_lyrics_lm
    from models.training.refine_melody import eval_song
    from songmill.core.lyrics import Lyrics
    from songmill.feedback.evaluation import enough_evidence

    registry = ModelRegistry.load()
    entry = registry.get(name)
    if entry.backend != "transformers":
        raise SongmillError(f"model '{name}' is a {entry.backend} model, not a lyrics LM (backend transformers); refine it with its own path")
    base_dir = registry.resolve(name, commercial=False)
    reference = [line.text for section in eval_song().lyrics.sections for line in section.lines]
    with tempfile.TemporaryDirectory(prefix="songmill-refine-") as folder:
        kept_files, _ = kept_artifacts(catalogue, "lyrics.json", Path(folder))
        kept = [([line.text for section in Lyrics.load_json(path).sections for line in section.lines], weight) for path, weight in kept_files]
        if not kept:
            raise SongmillError("no kept track has lyrics in the artifact store; render and deliver sung tracks, then import their feedback")
        out = Path(folder) / base_dir.name
        result = refine_lyrics_lm(base_dir, kept, reference, out=out, epochs=epochs)
        evaluation = result["evaluation"]
        evaluation["verdict"], evaluation["reasons"] = enough_evidence(len(kept), evaluation["verdict"], evaluation["reasons"])
        return register_candidate(
            registry,
            name,
            out,
            result,
            card=lambda n, v, lineage: (
                f"# {n} {v}\n\nRefined from {lineage['base_version']} on {len(kept)} kept tracks' lyrics.\n\n{json.dumps(lineage['evaluation'], indent=1)}\n"
            ),
            promote=promote,
            by=by,
            reason="kept-lines NLL lower without regressing the reference NLL",
        )
