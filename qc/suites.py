"""Great Expectations suites: one per delivery profile, judging the technical metrics table.

    verdicts = judge([metrics], profile_name, profile)   # list[Verdict], one per file (row)

Each suite is a GX 1.x ExpectationSuite stored as JSON in `qc/suites/<profile>.json` (edit it
to tighten or relax a bar; `python -m qc.suites` rewrites them from `SUITE`). Bars that depend
on the profile are Expectation Parameters (`{"$PARAMETER": "loudness_min_lufs"}`), filled from
`config/profiles.yaml` and `config/qc.yaml` at validation time, so one suite serves the profile
as its targets change. The metrics table is a pandas DataFrame, one row per audio file, run
in-process through GX's ephemeral context (the Airflow provider for GX cannot co-install with
Airflow 3.3.2).

GX is imported only when a suite runs: it is a heavy import, and `import great_expectations`
trips `-W error` on one of its own DeprecationWarnings, which we silence around the import.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field

from qc.musical import MusicalMetrics
from qc.technical import TechnicalMetrics
from songmill.core.audio import SAMPLE_RATE_HZ
from songmill.core.collector import collector_paused
from songmill.core.config import load_config
from songmill.core.errors import SongmillError
from songmill.core.paths import PROJECT_ROOT, config_dir
from songmill.core.profiles import LOSSY_RATE_HZ, DeliveryProfile
from songmill.core.quiet import warnings_silenced

SUITES_DIR = PROJECT_ROOT / "qc" / "suites"


def suites_dir() -> Path:
    """`SONGMILL_QC_SUITES` (a folder of `<profile>.json`), else `qc/suites/`."""
    import os

    return Path(os.environ.get("SONGMILL_QC_SUITES") or SUITES_DIR)


class QCSuiteError(SongmillError):
    """A suite or the QC settings cannot be used (a broken file): not a failed track."""


class TechnicalBars(BaseModel):
    """`config/qc.yaml`: the bars the suites take as parameters (besides the profile's own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    loudness_tolerance_lu: Annotated[float, Field(gt=0, le=3)] = 0.5
    max_dc_offset: Annotated[float, Field(gt=0, le=0.1)] = 0.001  # −60 dBFS
    min_phase_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.2
    max_mono_fold_loss_lu: Annotated[float, Field(gt=0, le=20)] = 6.0
    max_leading_silence_s: Annotated[float, Field(ge=0, le=30)] = 2.0
    max_trailing_silence_s: Annotated[float, Field(ge=0, le=60)] = 10.0
    max_silence_gaps: Annotated[int, Field(ge=0)] = 0
    max_duration_error_s: Annotated[float, Field(gt=0)] = 1.0  # master against the score (render gate only)
    min_watermark_score: Annotated[float, Field(gt=0, le=1)] = 0.65  # a marked master's median window score (models/watermark/perth.py's DETECTION_THRESHOLD)
    channels: list[int] = [2]


class MusicalBars(BaseModel):
    """`config/qc.yaml` `musical:` the bars of the musical checks (qc/musical.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_tempo_error_pct: Annotated[float, Field(gt=0, le=50)] = 2.0  # half/double-time aware
    min_key_score: Annotated[float, Field(ge=0, le=1)] = 1.0  # MIREX: 1 same key, 0.5 fifth, 0.3 relative, 0.2 parallel
    max_vocal_median_cents: Annotated[float, Field(gt=0)] = 15.0
    max_vocal_p90_cents: Annotated[float, Field(gt=0)] = 50.0
    min_vocal_voiced_share: Annotated[float, Field(ge=0, le=1)] = 0.8
    min_note_changes_on_time: Annotated[float, Field(ge=0, le=1)] = 0.9  # within 50 ms of the note
    max_unsung_syllables: Annotated[int, Field(ge=0)] = 0
    max_chorus_problems: Annotated[int, Field(ge=0)] = 0
    max_rhyme_misses: Annotated[int, Field(ge=0)] = 0
    not_explicit: list[str] = []  # words of the explicit list that do not make a song explicit by themselves


class DuplicateBars(BaseModel):
    """`config/qc.yaml` `duplicates:` how alike two tracks may be (qc/duplicates.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_audio_similarity: Annotated[float, Field(gt=0.5, le=1)] = 0.85  # chromaprint, 1 − bit error rate
    max_melody_overlap: Annotated[float, Field(gt=0, le=1)] = 0.5  # share of 5-note interval patterns


class Regeneration(BaseModel):
    """How often the render gate re-seeds a track whose QC failed before quarantining it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 2  # renders of a track in all, the first included


class QCSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    technical: TechnicalBars = TechnicalBars()
    musical: MusicalBars = MusicalBars()
    duplicates: DuplicateBars = DuplicateBars()
    regeneration: Regeneration = Regeneration()


@functools.cache
def _load_settings(path: str) -> QCSettings:
    return load_config(path, QCSettings)


def load_qc_settings(path: Path | None = None) -> QCSettings:
    path = Path(path or config_dir() / "qc.yaml")
    return _load_settings(str(path)) if path.is_file() else QCSettings()


# The shape of every profile's suite: (expectation type, its kwargs). "$name" values are
# Expectation Parameters filled by `parameters()`.
SUITE: list[tuple[str, dict[str, Any]]] = [
    ("expect_column_values_to_be_between", {"column": "integrated_lufs", "min_value": "$loudness_min_lufs", "max_value": "$loudness_max_lufs"}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "true_peak_ceiling_dbtp", "column_B": "true_peak_dbtp", "or_equal": True}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "true_peak_ceiling_dbtp", "column_B": "sample_peak_dbfs", "or_equal": True}),
    ("expect_column_values_to_be_between", {"column": "clipped_runs", "max_value": 0}),
    ("expect_column_values_to_be_between", {"column": "dc_offset", "max_value": "$max_dc_offset"}),
    ("expect_column_values_to_be_between", {"column": "phase_correlation", "min_value": "$min_phase_correlation"}),
    ("expect_column_values_to_be_between", {"column": "mono_fold_loss_lu", "max_value": "$max_mono_fold_loss_lu"}),
    ("expect_column_values_to_be_between", {"column": "leading_silence_s", "max_value": "$max_leading_silence_s"}),
    ("expect_column_values_to_be_between", {"column": "trailing_silence_s", "max_value": "$max_trailing_silence_s"}),
    ("expect_column_values_to_be_between", {"column": "silence_gaps", "max_value": "$max_silence_gaps"}),
    ("expect_column_values_to_be_between", {"column": "duration_error_s", "max_value": "$max_duration_error_s"}),
    ("expect_column_values_to_be_between", {"column": "watermark_score", "min_value": "$min_watermark_score"}),
    ("expect_column_values_to_be_in_set", {"column": "sample_rate_hz", "value_set": "$sample_rates_hz"}),
    ("expect_column_values_to_be_in_set", {"column": "channels", "value_set": "$channels"}),
    # musical: measured where the spec is known (the render gate; `songmill qc --tempo/--key`)
    ("expect_column_values_to_be_between", {"column": "tempo_error_pct", "max_value": "$max_tempo_error_pct"}),
    ("expect_column_values_to_be_between", {"column": "key_score", "min_value": "$min_key_score"}),
    ("expect_column_values_to_be_between", {"column": "vocal_median_cents", "max_value": "$max_vocal_median_cents"}),
    ("expect_column_values_to_be_between", {"column": "vocal_p90_cents", "max_value": "$max_vocal_p90_cents"}),
    ("expect_column_values_to_be_between", {"column": "vocal_voiced_share", "min_value": "$min_vocal_voiced_share"}),
    ("expect_column_values_to_be_between", {"column": "note_changes_on_time", "min_value": "$min_note_changes_on_time"}),
    ("expect_column_values_to_be_between", {"column": "unsung_syllables", "max_value": "$max_unsung_syllables"}),
    ("expect_column_values_to_be_between", {"column": "chorus_problems", "max_value": "$max_chorus_problems"}),
    ("expect_column_values_to_be_between", {"column": "rhyme_misses", "max_value": "$max_rhyme_misses"}),
    ("expect_column_values_to_be_between", {"column": "explicit_words", "max_value": 0}),
]


def suite_document(profile_name: str) -> dict:
    """The suite file's content for a profile (GX's ExpectationSuite JSON)."""

    def value(v):
        return {"$PARAMETER": v[1:]} if isinstance(v, str) and v.startswith("$") else v

    return {
        "name": f"songmill-technical-{profile_name}",
        "meta": {"profile": profile_name, "written_by": "python -m qc.suites"},
        "expectations": [{"type": kind, "kwargs": {k: value(v) for k, v in kwargs.items()}} for kind, kwargs in SUITE],
    }


def parameters(profile: DeliveryProfile, bars: TechnicalBars, musical: MusicalBars | None = None) -> dict:
    """The Expectation Parameters of a profile's suite."""
    musical = musical or MusicalBars()
    target = profile.loudness_lufs
    rates = {f.sample_rate_hz for f in profile.formats if f.sample_rate_hz} | {SAMPLE_RATE_HZ}  # its files, and the master
    if any(f.bitrate_kbps for f in profile.formats):
        rates |= set(LOSSY_RATE_HZ.values())
    return {
        "loudness_min_lufs": target - bars.loudness_tolerance_lu if target != "reference" else -70.0,
        "loudness_max_lufs": target + bars.loudness_tolerance_lu if target != "reference" else 0.0,
        "max_dc_offset": bars.max_dc_offset,
        "min_phase_correlation": bars.min_phase_correlation,
        "max_mono_fold_loss_lu": bars.max_mono_fold_loss_lu,
        "max_leading_silence_s": bars.max_leading_silence_s,
        "max_trailing_silence_s": bars.max_trailing_silence_s,
        "max_silence_gaps": bars.max_silence_gaps,
        "max_duration_error_s": bars.max_duration_error_s,
        "min_watermark_score": bars.min_watermark_score,
        "sample_rates_hz": sorted(rates),
        "channels": bars.channels,
        **musical.model_dump(exclude={"not_explicit"}),
    }


def load_suite(profile_name: str, folder: Path | None = None) -> dict:
    """A profile's suite file, parsed; QCSuiteError naming the file when it cannot be used."""
    folder = folder or suites_dir()
    path = folder / f"{profile_name}.json"
    if not path.is_file():
        raise QCSuiteError(f"there is no QC suite for profile '{profile_name}' ({path}); write one with `python -m qc.suites`")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        kinds = [e["type"] for e in document["expectations"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise QCSuiteError(f"QC suite {path} does not parse ({err}); fix it or rewrite it with `python -m qc.suites`") from None
    if not kinds:
        raise QCSuiteError(f"QC suite {path} has no expectations; a gate that checks nothing passes everything")
    return document


@dataclass
class Check:
    """One expectation's outcome for one file."""

    metric: str
    passed: bool
    value: float | int | None
    bar: dict  # e.g. {"min": -14.5, "max": -13.5}
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"metric": self.metric, "passed": self.passed, "value": self.value, "bar": self.bar, "reason": self.reason}


@dataclass
class Verdict:
    file: str
    profile: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [cast(str, c.reason) for c in self.checks if not c.passed]  # _check gives every failed check a reason

    def to_dict(self) -> dict:
        return {"file": self.file, "profile": self.profile, "passed": self.passed, "reasons": self.reasons, "checks": [c.to_dict() for c in self.checks]}


def _gx():
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # never phone home
    with warnings_silenced(), collector_paused():  # GX's own DeprecationWarnings at import (fatal under -W error); nothing to collect in an import
        import great_expectations as gx
    return gx


def _context(gx):
    """An in-memory GX context: no files, no analytics, no progress bars on the terminal."""
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def _rows(metrics: list[TechnicalMetrics], profile: DeliveryProfile, musical: dict) -> list[dict]:
    rows = []
    for m in metrics:
        lossy = m.bit_depth is None
        rows.append({**m.to_dict(), **musical, "true_peak_ceiling_dbtp": profile.lossy_true_peak_dbtp if lossy else profile.true_peak_dbtp})
    return rows


def judge(
    metrics: list[TechnicalMetrics],
    profile_name: str,
    profile: DeliveryProfile,
    *,
    musical: MusicalMetrics | None = None,
    expected: dict | None = None,
    settings: QCSettings | None = None,
    suites: Path | None = None,
) -> list[Verdict]:
    """Run the profile's suite over the metrics table; one Verdict per file, every check with its
    value, its bar and, when it fails, the reason in words.

    `musical`: the track's musical metrics (the same for every file of it); `expected`: what the
    spec asked for, for the reasons (`tempo_bpm`, `key`)."""
    import pandas as pd

    settings = settings or load_qc_settings()
    suites = suites or suites_dir()
    document = load_suite(profile_name, suites)
    params = parameters(profile, settings.technical, settings.musical)
    extra = musical.to_dict() if musical else {}
    extra["explicit_found"] = ", ".join(extra.get("explicit_found") or ())
    extra.update({f"expected_{k}": v for k, v in (expected or {}).items()})
    rows = _rows(metrics, profile, extra)
    gx = _gx()
    context = _context(gx)
    asset = context.data_sources.add_pandas("songmill-qc").add_dataframe_asset("technical-metrics")
    batch = asset.add_batch_definition_whole_dataframe("files").get_batch(batch_parameters={"dataframe": pd.DataFrame(rows)})
    try:
        suite = gx.ExpectationSuite(
            name=document["name"], expectations=[gx.expectations.registry.get_expectation_impl(e["type"])(**e["kwargs"]) for e in document["expectations"]]
        )
    except Exception as err:  # an unknown expectation type or a bad argument in an edited suite
        raise QCSuiteError(f"QC suite for profile '{profile_name}' cannot be built ({err}); fix {suites / (profile_name + '.json')}") from None
    result = batch.validate(suite, expectation_parameters=params, result_format="COMPLETE")
    verdicts = [Verdict(file=r["file"], profile=profile_name) for r in rows]
    for outcome in result.results:
        kwargs = _resolved(outcome.expectation_config.kwargs, params)
        failed_rows = set(outcome.result.get("unexpected_index_list") or [])
        for index, row in enumerate(rows):
            if _unmeasured(outcome.expectation_config.type, kwargs, row):
                continue  # e.g. no score to hold the duration against: the check does not apply
            check = _check(outcome.expectation_config.type, kwargs, row, passed=outcome.success or index not in failed_rows)
            verdicts[index].checks.append(check)
    return verdicts


def _unmeasured(kind: str, kwargs: dict, row: dict) -> bool:
    column = kwargs.get("column_B") if kind == "expect_column_pair_values_a_to_be_greater_than_b" else kwargs.get("column")
    return row.get(column) is None


def _resolved(kwargs: dict, params: dict) -> dict:
    return {k: params[v["$PARAMETER"]] if isinstance(v, dict) and "$PARAMETER" in v else v for k, v in kwargs.items()}


UNITS = {
    "integrated_lufs": "LUFS",
    "true_peak_dbtp": "dBTP",
    "sample_peak_dbfs": "dBFS",
    "dc_offset": "",
    "phase_correlation": "",
    "mono_fold_loss_lu": "LU",
    "leading_silence_s": "s",
    "trailing_silence_s": "s",
    "silence_gaps": "gaps",
    "clipped_runs": "clipped runs",
    "sample_rate_hz": "Hz",
    "channels": "channels",
    "duration_error_s": "s off the score",
    "watermark_score": "(median watermark score of the 10-s windows)",
    "tempo_error_pct": "%",
    "vocal_median_cents": "cents",
    "vocal_p90_cents": "cents",
    "vocal_voiced_share": "of the sung frames voiced",
    "note_changes_on_time": "of the note changes within 50 ms",
    "unsung_syllables": "syllables without a note",
    "chorus_problems": "choruses that do not repeat the first",
    "rhyme_misses": "rhyme pairs that do not rhyme",
}


def _musical_reason(metric: str, row: dict, limit) -> str | None:
    """The reasons of the musical checks that need more than the number to be understood."""
    if metric == "tempo_error_pct":
        expected = f"{row['expected_tempo_bpm']:g}" if row.get("expected_tempo_bpm") else "?"
        return (
            f"tempo {row['tempo_bpm']:g} BPM is {row['tempo_error_pct']:g} % off the spec's {expected} BPM (bar {limit:g} %, half/double time allowed)"
            if row.get("tempo_bpm")
            else f"no steady beat found to measure the tempo against the spec's {expected} BPM"
        )
    if metric == "key_score":
        return (
            f"detected key {row['key_detected']} is not the spec's {row.get('expected_key', '?')} "
            f"(key score {row['key_score']:g}, bar {limit:g}; 0.5 a fifth, 0.3 relative, 0.2 parallel)"
        )
    if metric == "explicit_words":
        return f"explicit words in a release not flagged explicit: {row['explicit_found']} (set release.explicit: true, or change the lyrics)"
    return None


def _check(kind: str, kwargs: dict, row: dict, *, passed: bool) -> Check:
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        metric, ceiling = kwargs["column_B"], row[kwargs["column_A"]]
        value = row[metric]
        reason = None if passed else f"{metric} {value:g} {UNITS[metric]} is above the ceiling of {ceiling:g}"
        return Check(metric, passed, value, {"max": ceiling}, reason)
    metric = kwargs["column"]
    value = row[metric]
    if kind == "expect_column_values_to_be_in_set":
        allowed = kwargs["value_set"]
        reason = None if passed else f"{metric} {value} is not one of {', '.join(map(str, allowed))}"
        return Check(metric, passed, value, {"in": list(allowed)}, reason)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    bar = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    reason = None
    if not passed:
        where = "below" if low is not None and value < low else "above"
        limit = low if where == "below" else high
        reason = _musical_reason(metric, row, limit) or f"{metric} {value:g} {UNITS.get(metric, '')} is {where} the bar of {limit:g}".replace("  ", " ")
    return Check(metric, passed, value, bar, reason)


def write_suites(profiles: dict[str, DeliveryProfile], folder: Path = SUITES_DIR) -> list[Path]:
    """Write every profile's suite file (the shape in SUITE)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in profiles:
        path = folder / f"{name}.json"
        path.write_text(json.dumps(suite_document(name), indent=1) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    from songmill.core.profiles import load_profiles

    for path in write_suites(load_profiles()):
        print(path)
