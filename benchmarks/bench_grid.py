"""The config grid: does every valid config render, and does the gate pass the good songs?

    python benchmarks/bench_grid.py                 # the whole grid: 216 + 24 modal = 240 songs
    python benchmarks/bench_grid.py --sample 24     # a sample spread across it

The grid's 216 core points are 6 genres × 12 tonics × 3 tempo bands (slow 40–88, middle
96–136, fast 144–240 BPM), major or minor alternating (so both modes meet every genre and
tonic), a voice of its own (the four identities, and an instrumental every ninth point), and a
form of its own: most have one of three structures (10–12 bars, with pre-chorus and bridge in
one), every fifth has no structure but a length of 30 or 45 s for the form planner to fill.
Another 24 points are the spec's other modes (dorian, mixolydian, lydian, phrygian) in every
genre. Each point is a one-track release with a seed of its own.

For each it records whether it rendered, whether the gate passed its first render (what a false
reject costs), every check that failed and why; then it judges the rendered master twice more
as a broken pipeline would hand it over — claimed two semitones off its key, and re-timed 6 %
fast — which the gate must reject every time. Rows go to `benchmarks/results/grid.jsonl` as they
finish, the summary to `benchmarks/results/grid.json`. Timings and rates belong here, never in
the test suite (DESIGN: speed and memory in benchmarks/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GENRES = ("pop", "rock", "synthpop", "folk", "ballad", "hip-hop")
TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
TEMPO_BANDS = {  # BPM: each band's tempi are spread over the points that fall in it
    "slow": (40, 52, 64, 72, 80, 88),
    "middle": (96, 104, 112, 120, 128, 136),
    "fast": (144, 160, 176, 192, 216, 240),
}
OTHER_MODES = ("dorian", "mixolydian", "lydian", "phrygian")
MOODS = {"pop": "hopeful", "rock": "defiant", "synthpop": "dreamy", "folk": "nostalgic", "ballad": "tender", "hip-hop": "energetic"}
VOICES = ("ava", "ben", "cleo", "dean")
STRUCTURES = (  # 12, 12 and 10 bars
    "[{name: intro, bars: 2}, {name: verse, bars: 4}, {name: chorus, bars: 4}, {name: outro, bars: 2}]",
    "[{name: verse, bars: 4}, {name: chorus, bars: 4}, {name: verse, bars: 2}, {name: chorus, bars: 2}]",
    "[{name: verse, bars: 2}, {name: pre-chorus, bars: 2}, {name: chorus, bars: 2}, {name: bridge, bars: 2}, {name: chorus, bars: 2}]",
)


def grid() -> list[dict]:
    """Every grid point (genre, key, tempo, voice, form, seed), in a fixed order."""
    points = []
    for g, genre in enumerate(GENRES):
        for t, tonic in enumerate(TONICS):
            for band, tempi in TEMPO_BANDS.items():
                index = len(points)
                mode = "major" if index % 2 == 0 else "minor"  # both modes meet every genre and tonic
                points.append(_point(index, genre, f"{tonic} {mode}", tempi[(5 * t + g) % len(tempi)], band))
    for g, genre in enumerate(GENRES):  # the spec's other modes, on a sample
        for m, mode in enumerate(OTHER_MODES):
            index = len(points)
            points.append(_point(index, genre, f"{TONICS[(5 * index) % 12]} {mode}", TEMPO_BANDS["middle"][(g + m) % 6], "middle"))
    return points


def _point(index: int, genre: str, key: str, tempo: int, band: str) -> dict:
    voice = None if index % 9 == 8 else VOICES[index % 4]
    form = {"target_duration_s": (30, 45)[index % 2]} if index % 5 == 4 else {"structure": index % len(STRUCTURES)}
    return {"genre": genre, "key": key, "tempo": tempo, "band": band, "voice": voice, **form, "seed": 1000 + index}


def config_text(point: dict, index: int) -> str:
    form = f"structure: {STRUCTURES[point['structure']]}" if "structure" in point else f"target_duration_s: {point['target_duration_s']}"
    voice = f"voice: {{identity: {point['voice']}}}" if point["voice"] else "# an instrumental: no voice"
    return f"""release:
  id: grid-{index:03d}
  title: Grid {index}
  artist: The Songmill Collective
  label: Songmill Records
  type: single
  date: 2026-12-04
  genre: {point["genre"]}
  p_line: 2026 Songmill Records
  c_line: 2026 Songmill Records
  profiles: [streaming]
tracks:
  - title: Grid Song {index}
    theme: lanterns over the river at night
    mood: {MOODS[point["genre"]]}
    tempo: {point["tempo"]}
    key: {point["key"]}
    {form}
    {voice}
    seed: {point["seed"]}
"""


def transposed(key: str, semitones: int) -> str:
    from qc.musical import PITCH_NAMES
    from songmill.core.music import parse_key

    parsed = parse_key(key)
    return f"{PITCH_NAMES[(parsed.tonic_pitch_class + semitones) % 12]} {parsed.mode}"


def judge_point(point: dict, index: int, work: Path) -> dict:
    """Render one grid point and judge its master as handed over, mis-keyed and re-timed; its
    audio is deleted afterwards (the row keeps what was measured)."""
    try:
        return _judge(point, index, work)
    finally:
        _forget(index, work)


def _judge(point: dict, index: int, work: Path) -> dict:
    import numpy as np

    from qc.musical import measure_musical
    from songmill.core.audio import read_wav, resample
    from songmill.core.errors import SongmillError
    from songmill.engine.runner import render

    config = work / f"grid-{index:03d}.yaml"
    config.write_text(config_text(point, index))
    row = {**point, "rendered": False}
    try:
        report = json.loads(render(config, out_dir=work / "dist", store_spec=str(work / f"store-{index:03d}")).read_text())
    except SongmillError as err:
        report_path = work / "dist" / f"grid-{index:03d}" / "run-report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        row["error"] = str(err).split(" (report:")[0]
    if report is None:
        return row
    for delivery in report.get("deliveries", []):  # the delivered files are not judged here
        shutil.rmtree(delivery["destination"], ignore_errors=True)
    [track] = report["tracks"]
    row["rendered"] = track.get("status") in ("rendered", "delivered", "quarantined") or bool(track.get("qc"))
    row["first_render_failed"] = [reason for attempt in track.get("qc_attempts") or [] for reason in attempt["reasons"]][:4]
    row["quarantined"] = bool(track.get("qc_reasons"))
    master_path = Path(track["artifacts"]["master-streaming.wav"]["path"]) if "master-streaming.wav" in track.get("artifacts", {}) else None
    if master_path is None:
        return row
    master, rate = read_wav(master_path)
    mis_keyed = measure_musical(master, rate, key=transposed(point["key"], 2))
    retimed = resample(master, from_hz=rate * 1.06, to_hz=rate)  # 6 % faster (and higher), as a wrong resample would
    faster = measure_musical(np.asarray(retimed), rate, tempo_bpm=point["tempo"])
    row["mis_keyed_rejected"] = (mis_keyed.key_score or 0) < 1.0
    row["retimed_rejected"] = (faster.tempo_error_pct or 0) > 2.0
    return row


def _forget(index: int, work: Path) -> None:
    """Delete a judged point's audio (its store and its release folder): about 150 MB a song,
    which over the whole grid filled the disk."""
    shutil.rmtree(work / f"store-{index:03d}", ignore_errors=True)
    shutil.rmtree(work / "dist" / f"grid-{index:03d}", ignore_errors=True)


def _check_of(reason: str) -> str:
    """The check a gate reason names: 'streaming: vocal_p90_cents 1152 …' → vocal_p90_cents; key reasons → key."""
    text = reason.split(": ", 1)[-1]
    return "key" if text.startswith("detected key") else text.split(" ")[0]


def summarise(rows: list[dict]) -> dict:
    """The grid's figures: the share that renders (every point) and the gate's false rejects,
    for the major/minor core and the modal sample apart."""
    rendered = [r for r in rows if r["rendered"]]
    return {
        "configs": len(rows),
        "rendered_share": round(len(rendered) / len(rows), 3) if rows else None,
        "not_rendered": [{k: r[k] for k in ("genre", "key", "tempo", "voice", "error") if k in r} for r in rows if not r["rendered"]],
        "major_minor": _gate_figures([r for r in rendered if r["key"].split()[1] in ("major", "minor")]),
        "other_modes": _gate_figures([r for r in rendered if r["key"].split()[1] not in ("major", "minor")]),
    }


def _gate_figures(rendered: list[dict]) -> dict:
    first_fail = [r for r in rendered if r.get("first_render_failed")]
    causes = Counter(_check_of(reason) for r in first_fail for reason in r["first_render_failed"])
    key_tempo = [r for r in first_fail if any(_check_of(x) in ("key", "tempo") for x in r["first_render_failed"])]
    judged = [r for r in rendered if "mis_keyed_rejected" in r]
    return {
        "songs": len(rendered),
        "first_render_rejected_share": round(len(first_fail) / len(rendered), 3) if rendered else None,
        "key_or_tempo_false_reject_share": round(len(key_tempo) / len(rendered), 3) if rendered else None,
        "rejected_checks": dict(causes.most_common()),
        "quarantined": sum(1 for r in rendered if r.get("quarantined")),
        "mis_keyed_rejected_share": round(sum(r["mis_keyed_rejected"] for r in judged) / len(judged), 3) if judged else None,
        "retimed_rejected_share": round(sum(r["retimed_rejected"] for r in judged) / len(judged), 3) if judged else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=0, help="judge this many grid points, spread across the grid (0: all)")
    parser.add_argument("--only", default="", help="judge only these grid indices (comma-separated, or FIRST-LAST), e.g. to re-check the ones that failed")
    parser.add_argument("--rows", type=Path, help="write the rows here (default results/grid.jsonl, or grid-sample.jsonl for a part)")
    parser.add_argument(
        "--summarise", nargs="+", type=Path, metavar="ROWS", help="no rendering: summarise rows files (parts run side by side) into results/grid.json"
    )
    args = parser.parse_args()
    if args.summarise:
        rows = sorted((json.loads(line) for path in args.summarise for line in path.read_text().splitlines() if line.strip()), key=lambda r: r["index"])
        summary = summarise(rows)
        (ROOT / "benchmarks" / "results" / "grid.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
        print(json.dumps(summary, indent=1))
        return
    points = grid()
    chosen = list(enumerate(points))
    if args.sample:  # a stride coprime with the grid's size walks across genres, tonics, modes and tempi at once
        chosen = [(j, points[j]) for j in sorted({(i * 37) % len(points) for i in range(args.sample)})]
    if args.only:
        first, _, last = args.only.partition("-")
        indices = range(int(first), int(last) + 1) if last else [int(i) for i in args.only.split(",")]
        chosen = [(i, points[i]) for i in indices]
    results = ROOT / "benchmarks" / "results"
    rows_file = args.rows or results / ("grid.jsonl" if not (args.sample or args.only) else "grid-sample.jsonl")
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="songmill-grid-") as folder, rows_file.open("w") as rows_out:
        import os

        os.environ["SONGMILL_VAR_DIR"] = str(Path(folder) / "var")  # a throw-away catalogue, shared by the points
        for index, point in chosen:
            row = {"index": index, **judge_point(point, index, Path(folder))}
            rows.append(row)
            rows_out.write(json.dumps(row) + "\n")
            rows_out.flush()
            print(
                f"{index:3d} {point['genre']:8s} {point['key']:14s} {point['tempo']:3d} BPM {point['voice'] or 'none':4s}: "
                f"{'rendered' if row['rendered'] else 'NOT RENDERED: ' + row.get('error', '?')}"
                f"{'; first render rejected: ' + '; '.join(row['first_render_failed']) if row.get('first_render_failed') else ''}",
                flush=True,
            )
    summary = {**summarise(rows), "wall_s": round(time.perf_counter() - start, 1)}
    if not (args.sample or args.only):
        (results / "grid.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
