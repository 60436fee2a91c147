"""The provenance watermark: what survives, what it falsely finds, what it changes, what it costs.

    python benchmarks/bench_watermark.py            # → benchmarks/results/watermark.json and a table

Material, all made here (nothing downloaded):
- songs: 24 multi-instrument pieces from random MIDI through FluidSynth (FluidR3 GM: piano,
  guitars, strings, brass, synths, bass and GM drums), 20 s each, at −14 LUFS as masters are;
- speech: espeak-ng reading sentences; noise: white, pink and brown at three levels; pure tones
  from 55 Hz to 8 kHz; silence and near-silence (−90 dBFS dither).

Robustness: every song is marked (the master chain's `mark`, before a −1 dBTP limiter, as the
master stage does) and then attacked: MP3 128/320 k, AAC 256 k, Opus 96/160 k, resampling to
44.1 kHz, ±3 dB gain, a 10-second excerpt (a store's preview is 30 s; our songs are 20 s), and a
mix with another song at −10 dB. Detection rate per attack at the shipped threshold.
False positives: every unmarked piece (songs, speech, noise, tones, silence) — at least 100.
Audibility: integrated loudness and true peak before and after, the spectral difference per
octave band, and the peer QC figures (phase correlation, mono-fold loss, DC) of both.
Cost: seconds to mark and to detect per song-minute on one core.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SONGS, SONG_S, RATE = 24, 20.0, 48000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PROGRAMS = [0, 4, 24, 25, 29, 33, 38, 40, 48, 52, 56, 61, 73, 80, 81, 88, 89, 95]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please deliver the masters to the distributor before midnight.",
    "A watermark should be heard by no one and found by everyone who looks.",
    "Every release carries its own story of how it was made.",
    "Turn left at the lighthouse and follow the river to the sea.",
    "Numbers one through twenty, counted slowly and clearly.",
    "She sells sea shells by the sea shore on sunny afternoons.",
    "The committee will meet again on Thursday to review the budget.",
]


def random_song(path: Path, seed: int) -> None:
    import mido

    rng = random.Random(seed)
    mid = mido.MidiFile(ticks_per_beat=480)
    bpm = rng.choice([72, 96, 112, 128, 150])
    beats = int(SONG_S * bpm / 60)
    root = rng.randint(40, 52)
    scale = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.5 else [0, 2, 3, 5, 7, 8, 10]
    for channel, role in enumerate(("chords", "melody", "bass")):
        track = mido.MidiTrack()
        mid.tracks.append(track)
        if channel == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
        track.append(mido.Message("program_change", channel=channel, program=rng.choice(PROGRAMS), time=0))
        events = []
        for beat in range(0, beats, 1 if role == "melody" else 2):
            degree = rng.randrange(7)
            base = root + (12 if role == "chords" else 24 if role == "melody" else -12)
            notes = [base + scale[degree]] + (
                [base + scale[(degree + 2) % 7] + 12 * ((degree + 2) // 7), base + scale[(degree + 4) % 7] + 12 * ((degree + 4) // 7)]
                if role == "chords"
                else []
            )
            for n in notes:
                events.append((beat * 480, "on", n, rng.randint(60, 100)))
                events.append(((beat + (1 if role == "melody" else 2)) * 480 - 10, "off", n, 0))
        if rng.random() < 0.7:  # drums on channel 10
            for beat in range(beats):
                for n in [36] if beat % 2 == 0 else [38]:
                    events.append((beat * 480, "on9", n, 100))
                    events.append((beat * 480 + 200, "off9", n, 0))
                events.append((beat * 480 + 240, "on9", 42, 70))
                events.append((beat * 480 + 400, "off9", 42, 0))
        events.sort(key=lambda e: (e[0], e[1].startswith("off")))
        now = 0
        for tick, kind, note, velocity in events:
            ch = 9 if kind.endswith("9") else channel
            msg = "note_on" if kind.startswith("on") else "note_off"
            track.append(mido.Message(msg, channel=ch, note=note, velocity=velocity, time=tick - now))
            now = tick
    midi = path.with_suffix(".mid")
    mid.save(midi)
    subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(path), "-r", str(RATE), str(SOUNDFONT), str(midi)], check=True, capture_output=True)


def at_lufs(x: np.ndarray, lufs: float) -> np.ndarray:
    from songmill.core.loudness import integrated_lufs

    return (x * 10 ** ((lufs - integrated_lufs(x, RATE)) / 20)).astype(np.float32)


def load(path: Path) -> np.ndarray:
    from songmill.core.audio import decode

    x, _ = decode(path, sample_rate_hz=RATE, channels=2)
    return x[: int(SONG_S * RATE)]


def encode_decode(x: np.ndarray, folder: Path, codec: list[str], suffix: str) -> np.ndarray:
    from songmill.core.audio import decode, write_wav

    source, encoded = folder / "attack.wav", folder / f"attack{suffix}"
    write_wav(source, x, RATE)
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(source), *codec, str(encoded)], check=True)
    y, _ = decode(encoded, sample_rate_hz=RATE, channels=2)
    return y


def attacks(x: np.ndarray, other: np.ndarray, folder: Path) -> dict[str, tuple[np.ndarray, int]]:
    from songmill.core.audio import resample

    n = min(len(x), len(other))
    return {
        "none": (x, RATE),
        "mp3 128k": (encode_decode(x, folder, ["-c:a", "libmp3lame", "-b:a", "128k"], ".mp3"), RATE),
        "mp3 320k": (encode_decode(x, folder, ["-c:a", "libmp3lame", "-b:a", "320k"], ".mp3"), RATE),
        "aac 256k": (encode_decode(x, folder, ["-c:a", "aac", "-b:a", "256k"], ".m4a"), RATE),
        "opus 96k": (encode_decode(x, folder, ["-c:a", "libopus", "-b:a", "96k"], ".opus"), RATE),
        "opus 160k": (encode_decode(x, folder, ["-c:a", "libopus", "-b:a", "160k"], ".opus"), RATE),
        "resample 44.1k": (resample(x, from_hz=RATE, to_hz=44100), 44100),
        "gain +3 dB": (np.clip(x * 10 ** (3 / 20), -1, 1), RATE),
        "gain -3 dB": (x * 10 ** (-3 / 20), RATE),
        "10 s excerpt": (x[int(5 * RATE) : int(15 * RATE)], RATE),
        "mixed with a song at -10 dB": (x[:n] + other[:n] * 10 ** (-10 / 20), RATE),
    }


def unmarked_material(songs: list[np.ndarray], folder: Path) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(7)
    t = np.arange(int(12 * RATE)) / RATE
    material: dict[str, list[np.ndarray]] = {"songs": [], "speech": [], "noise": [], "tones": [], "silence": []}
    for song in songs:  # each song at two levels: as mastered and quiet
        material["songs"] += [song, at_lufs(song, -30)]
    for i, sentence in enumerate(SENTENCES * 3):
        wav = folder / f"speech{i}.wav"
        voice = ["en-us", "en-gb", "en-us+f3"][i % 3]
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(140 + 10 * (i % 4)), "-w", str(wav), " ".join([sentence] * 3)], check=True)
        material["speech"].append(at_lufs(load(wav), -20))
    for slope in (0.0, -0.5, -1.0):  # white, pink and brown noise
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        freqs = np.maximum(np.fft.rfftfreq(len(t), 1 / RATE), 1.0)
        noise = np.fft.irfft(spectrum * freqs**slope, len(t))
        for level in (-40, -25, -14):
            for _ in range(2):
                material["noise"].append(at_lufs(np.stack([noise, np.roll(noise, 999)], 1).astype(np.float32), level))
    for freq in (55, 110, 220, 440, 1000, 2000, 4000, 8000):
        for level in (-30, -12):
            tone = (10 ** (level / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)
            material["tones"].append(np.stack([tone, tone], 1))
    for level in (None, -90):
        for _ in range(3):
            quiet = np.zeros((len(t), 2), np.float32) if level is None else (10 ** (level / 20) * rng.standard_normal((len(t), 2))).astype(np.float32)
            material["silence"].append(quiet)
    return material


def audibility(original: np.ndarray, marked: np.ndarray) -> dict:
    from qc.technical import measure
    from songmill.core import loudness

    before, after = measure(original, RATE), measure(marked, RATE)
    bands_before, bands_after = loudness.octave_balance_db(original, RATE), loudness.octave_balance_db(marked, RATE)
    difference = marked - original
    return {
        "integrated_lufs_change": round(after.integrated_lufs - before.integrated_lufs, 3),
        "true_peak_change_db": round(after.true_peak_dbtp - before.true_peak_dbtp, 3),
        "mark_snr_db": round(float(10 * np.log10(np.sum(original.astype(np.float64) ** 2) / max(np.sum(difference.astype(np.float64) ** 2), 1e-20))), 2),
        "octave_band_change_db": [round(float(a - b), 2) for a, b in zip(bands_after, bands_before, strict=True)],
        "phase_correlation": [before.phase_correlation, after.phase_correlation],
        "mono_fold_loss_lu": [before.mono_fold_loss_lu, after.mono_fold_loss_lu],
        "dc_offset": [before.dc_offset, after.dc_offset],
    }


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from models.registry import ModelRegistry
    from models.watermark.perth import load_watermarker
    from songmill.core.loudness import OCTAVE_CENTRES_HZ
    from songmill.production.limiter import normalise

    marker = load_watermarker(ModelRegistry.load().resolve("perth-implicit", commercial=True))
    results: dict = {"songs": SONGS, "song_s": SONG_S}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        songs = []
        for i in range(SONGS):
            random_song(folder / f"song{i}.wav", seed=i)
            songs.append(at_lufs(load(folder / f"song{i}.wav"), -14))
        mark_s, marked_songs, heard = 0.0, [], []
        for song in songs:
            start = time.process_time()
            marked = marker.mark(song, RATE)
            mark_s += time.process_time() - start
            limited, _ = normalise(marked, RATE, target_lufs=-14.0, ceiling_dbtp=-1.0)
            plain, _ = normalise(song, RATE, target_lufs=-14.0, ceiling_dbtp=-1.0)
            marked_songs.append(limited)
            heard.append(audibility(plain, limited))
        scores: dict[str, list[dict]] = {}
        detect_s, detected_minutes = 0.0, 0.0
        for i, song in enumerate(marked_songs):
            for name, (audio, rate) in attacks(song, songs[(i + 1) % SONGS], folder).items():
                start = time.process_time()
                reading = marker.detect(audio, rate)
                detect_s += time.process_time() - start
                detected_minutes += len(audio) / rate / 60
                scores.setdefault(name, []).append(reading.to_dict())
        false_positives = {}
        for kind, pieces in unmarked_material(songs, folder).items():
            false_positives[kind] = [marker.detect(piece, RATE).to_dict() for piece in pieces]
    results["robustness"] = {
        name: {"detected": sum(r["detected"] for r in rows) / len(rows), "median_score_min": min(r["median_score"] for r in rows)}
        for name, rows in scores.items()
    }
    results["false_positives"] = {
        kind: {"excerpts": len(rows), "detected": sum(r["detected"] for r in rows), "median_score_max": max(r["median_score"] for r in rows)}
        for kind, rows in false_positives.items()
    }
    results["false_positive_excerpts"] = sum(v["excerpts"] for v in results["false_positives"].values())
    results["audibility"] = {
        "integrated_lufs_change_max_abs": max(abs(h["integrated_lufs_change"]) for h in heard),
        "true_peak_change_db_max": max(h["true_peak_change_db"] for h in heard),
        "mark_snr_db_median": float(np.median([h["mark_snr_db"] for h in heard])),
        "octave_bands_hz": list(OCTAVE_CENTRES_HZ),
        "octave_band_change_db_mean": [round(float(np.mean(col)), 2) for col in zip(*(h["octave_band_change_db"] for h in heard), strict=True)],
        "octave_band_change_db_max_abs": [round(float(np.max(np.abs(col))), 2) for col in zip(*(h["octave_band_change_db"] for h in heard), strict=True)],
        "phase_correlation_change_max_abs": max(abs(h["phase_correlation"][1] - h["phase_correlation"][0]) for h in heard),
        "mono_fold_loss_change_max_abs_lu": max(abs(h["mono_fold_loss_lu"][1] - h["mono_fold_loss_lu"][0]) for h in heard),
    }
    results["cost"] = {
        "mark_cpu_s_per_song_minute": round(mark_s / (SONGS * SONG_S / 60), 2),
        "detect_cpu_s_per_audio_minute": round(detect_s / detected_minutes, 2),
    }
    results["raw"] = {"attacks": scores, "false_positives": false_positives}
    out = ROOT / "benchmarks" / "results" / "watermark.json"
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"{'attack':32} detected  lowest median score")
    for name, row in results["robustness"].items():
        print(f"{name:32} {row['detected']:7.0%}  {row['median_score_min']:.3f}")
    print(f"\nfalse positives over {results['false_positive_excerpts']} unmarked excerpts:")
    for kind, row in results["false_positives"].items():
        print(f"  {kind:10} {row['detected']}/{row['excerpts']}  (highest median score {row['median_score_max']:.3f})")
    print("\naudibility:", json.dumps({k: v for k, v in results["audibility"].items()}))
    print("cost:", results["cost"])
    print(out)


if __name__ == "__main__":
    main()
