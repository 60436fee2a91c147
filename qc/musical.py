"""Musical metrics of a track: does the audio and the song say what the spec asked for?

    metrics = measure_musical(master, rate, score=score, lyrics=lyrics, vocal=lead, explicit=False)
    metrics.to_dict()            # columns of the metrics table the suites judge (None: not measured)

- tempo: librosa's beat tracker on the master; the tempo is the slope of the beat times against
  their beat numbers (a fit over the whole song, so it is not quantised to the onset frames).
  The error against the spec is taken half/double-time aware: a song at 104 BPM detected at
  52 or 208 is on tempo, one detected at 109 is 4.8 % off.
- key: Albrecht & Shanahan's key profiles (2013, trained on a corpus of popular and classical
  music) correlated with the mean constant-Q chroma of the master — on the test suite's 36
  rendered masters they named every key, where Krumhansl–Kessler's took a dominant-heavy folk
  song in G major (six renders of it) for D major;
  scored against the spec's key the MIREX way: 1 the same key, 0.5 a fifth away, 0.3 the
  relative key, 0.2 the parallel key, 0 anything else. Modes fold into major/minor (dorian is
  a minor key for this purpose). With key changes, the key sounding longest is the spec's.
- dry vocal: pitch against the score's melody (`qc.vocal.pitch_report`, vibrato-centred cents)
  and the share of note changes sung within 50 ms of the note, from WORLD's DIO + StoneMask
  (fast enough for every render; the tests and `make bench` use the slower Harvest).
- lyrics: syllables without a note, choruses that do not repeat, rhyme pairs that do not rhyme.
- explicit language: the sung words against better-profanity's word list (MIT), less the
  everyday words `config/qc.yaml` names under `musical.not_explicit` (god, hell, kill…),
  counted only when the release is not flagged explicit.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from songmill.core.audio import SAMPLE_RATE_HZ, channel_mean, resample
from songmill.core.collector import collector_paused
from songmill.core.music import parse_key
from songmill.core.quiet import warnings_silenced
from songmill.core.score import Score

if TYPE_CHECKING:
    from qc.vocal import F0Memo

ANALYSIS_RATE_HZ = 22050
HOP = 512  # 23 ms frames for onsets and chroma
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_MODES = {"minor", "aeolian", "dorian", "phrygian", "locrian"}
# Albrecht & Shanahan (2013), "The use of large corpora to train a new type of key-finding
# algorithm", Music Perception 31(1): pitch-class distributions, tonic first
MAJOR_PROFILE = np.array([0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081])
MINOR_PROFILE = np.array([0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052])
NOTE_CHANGE_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class MusicalMetrics:
    tempo_bpm: float | None = None  # detected
    tempo_error_pct: float | None = None  # against the spec, half/double-time aware
    key_detected: str | None = None  # e.g. "A minor"
    key_score: float | None = None  # MIREX score against the spec's key (1 = the same key)
    vocal_median_cents: float | None = None  # dry lead vocal against the melody, vibrato-centred
    vocal_p90_cents: float | None = None
    vocal_voiced_share: float | None = None  # of the frames inside sung notes
    note_changes_on_time: float | None = None  # share of note changes sung within 50 ms
    unsung_syllables: int | None = None
    chorus_problems: int | None = None
    rhyme_misses: int | None = None  # rhyme pairs of the scheme whose words do not rhyme
    explicit_words: int | None = None  # explicit words sung in a release not flagged explicit
    explicit_found: tuple[str, ...] = ()  # which words (for the reason)

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------- librosa

_LIBROSA_IMPORT = threading.Lock()


def import_librosa():  # noqa: ANN202 - the librosa module (imported lazily: it takes seconds)
    """librosa, its beat tracker's numba code read from the on-disk cache like the rest of it.

    librosa 0.11 compiles one function of its beat tracker (`__beat_local_score`) with
    `cache=False`, so every process that imported `librosa.beat` compiled it again: 1.8 CPU
    seconds in each gate (each render, each Airflow qc task, each edit). The import runs with
    numba's `guvectorize` asked to cache, which changes where the machine code comes from and
    not what it computes (scripts/warm_numba_cache.py writes the cache at setup)."""
    import sys

    with _LIBROSA_IMPORT, collector_paused():  # two threads never patch numba at once; nothing to collect in an import
        if "librosa.beat" not in sys.modules:
            import numba

            original_guvectorize = numba.guvectorize
            numba.guvectorize = functools.partial(_cached_guvectorize, original_guvectorize)
            try:
                import librosa.beat  # noqa: F401 - imported here for its numba functions
            finally:
                numba.guvectorize = original_guvectorize
    import librosa

    return librosa


def _cached_guvectorize(guvectorize, *args, **options):  # noqa: ANN001, ANN002, ANN003, ANN202 - numba's own signature
    return guvectorize(*args, **{**options, "cache": True})


# ------------------------------------------------------------------------------------- tempo


def _mono(samples: np.ndarray, rate: int) -> np.ndarray:

    mono = np.asarray(samples, dtype=np.float32)
    mono = channel_mean(mono)
    return resample(mono, from_hz=rate, to_hz=ANALYSIS_RATE_HZ) if rate != ANALYSIS_RATE_HZ else mono


ANALYSIS_PIECE_S = 240  # longer audio is analysed in pieces this long (whole hops): librosa's spectra of a 20-minute file take gigabytes


def _pieces(mono: np.ndarray) -> list[np.ndarray]:
    """The signal whole, or in ANALYSIS_PIECE_S pieces when longer (a song of up to 4 minutes is heard whole)."""
    size = int(ANALYSIS_PIECE_S * ANALYSIS_RATE_HZ) // (HOP * 4) * (HOP * 4)
    if len(mono) <= size:
        return [mono]
    return [mono[start : start + size] for start in range(0, len(mono), size) if len(mono[start : start + size]) >= HOP * 8]


def detect_tempo(mono: np.ndarray, expected_bpm: float | None = None) -> float | None:
    """Beats per minute of a mono signal at ANALYSIS_RATE_HZ; None when no steady beat is found.

    `expected_bpm`, the tempo claimed for the master, is where the beat tracker starts looking
    (librosa's `start_bpm`, a prior an octave wide): the question is whether the master moves at
    that tempo. From its default of 120 the tracker locked fast songs onto two thirds or half of
    their beat (176 → 117.5, 192 → 128 BPM in the config grid); a master 6 % off still reads 6 % off."""
    librosa = import_librosa()
    found, offset_s = [], 0.0
    for piece in _pieces(mono):  # a long file's beats are tracked a piece at a time, then fitted as one line
        envelope = librosa.onset.onset_strength(y=piece, sr=ANALYSIS_RATE_HZ, hop_length=HOP)
        _, times = librosa.beat.beat_track(onset_envelope=envelope, sr=ANALYSIS_RATE_HZ, hop_length=HOP, units="time", start_bpm=float(expected_bpm or 120.0))
        found.append(times + offset_s)
        offset_s += len(piece) / ANALYSIS_RATE_HZ
    beats = np.concatenate(found)
    if len(beats) < 8:
        return None
    gaps = np.diff(beats)
    period = float(np.median(gaps))
    numbers = np.concatenate(([0], np.cumsum(np.round(gaps / period))))  # a skipped beat counts as two
    return 60.0 / float(np.polyfit(numbers, beats, 1)[0])


def tempo_error_pct(detected: float, expected: float) -> float:
    """Percent off `expected`, forgiving a beat tracker locked to half or double time."""
    return min(abs(detected * factor - expected) / expected * 100 for factor in (0.5, 1.0, 2.0))


# --------------------------------------------------------------------------------------- key


def detect_key(mono: np.ndarray) -> str:
    """The best-correlating major or minor key of the mean chroma, e.g. "A minor"."""
    librosa = import_librosa()
    sums, frames = np.zeros(12), 0
    for piece in _pieces(mono):
        piece_chroma = librosa.feature.chroma_cqt(y=piece, sr=ANALYSIS_RATE_HZ, hop_length=HOP * 4)
        sums, frames = sums + piece_chroma.sum(axis=1), frames + piece_chroma.shape[1]
    chroma = sums / frames
    best = max(
        (
            (np.corrcoef(chroma, np.roll(profile, tonic))[0, 1], f"{PITCH_NAMES[tonic]} {mode}")
            for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE))
            for tonic in range(12)
        )
    )
    return best[1]


def _tonic_and_mode(key: str) -> tuple[int, str]:
    parsed = parse_key(key)
    return parsed.tonic_pitch_class, "minor" if parsed.mode in MINOR_MODES else "major"


def key_score(detected: str, expected: str) -> float:
    """MIREX key score: 1 same, 0.5 a fifth apart (same mode), 0.3 relative, 0.2 parallel, else 0."""
    (d_pc, d_mode), (e_pc, e_mode) = _tonic_and_mode(detected), _tonic_and_mode(expected)
    if d_mode == e_mode:
        return 1.0 if d_pc == e_pc else 0.5 if (d_pc - e_pc) % 12 in (5, 7) else 0.0
    relative = (e_pc + 3) % 12 if e_mode == "minor" else (e_pc - 3) % 12
    return 0.3 if d_pc == relative else 0.2 if d_pc == e_pc else 0.0


def main_key(score: Score) -> str:
    """The key that sounds longest (the home key, unless a modulation outlasts it)."""
    bounds = [(0.0, score.key)] + [(c.beat, c.key) for c in sorted(score.key_changes, key=lambda c: c.beat)]
    lasting: dict[str, float] = {}
    for (start, key), (end, _) in zip(bounds, bounds[1:] + [(score.end_beat, "")]):
        lasting[key] = lasting.get(key, 0.0) + max(end - start, 0.0)
    return max(lasting, key=lambda k: lasting[k])


# ------------------------------------------------------------------------------------- vocal


def vocal_figures(vocal: np.ndarray, rate: int, score: Score, memo: F0Memo | None = None) -> dict:
    """The dry lead vocal against the tune; `memo` keeps the F0 readings (DIO's, and Harvest's of
    qc.vocal.harvest_near) by the samples they read, so the figures are the same with or without it."""
    from qc.vocal import confirm_voicing, measure_f0_fast, pitch_report, recheck_octave_errors, transition_errors_s

    lead = np.asarray(vocal, dtype=np.float32)
    lead = lead[:, 0] if lead.ndim == 2 else lead
    notes = score.part("melody").notes
    measured = recheck_octave_errors(measure_f0_fast(lead, rate, memo), lead, rate, notes, memo)
    pitch = pitch_report(lead, rate, notes, measured, voicing=confirm_voicing(measured, lead, rate, notes, memo))
    changes = np.abs(transition_errors_s(lead, rate, notes, measured=measured))
    return {
        "vocal_median_cents": round(pitch.median_abs_cents, 2),
        "vocal_p90_cents": round(pitch.p90_abs_cents, 2),
        "vocal_voiced_share": round(pitch.voiced_share, 4),
        "note_changes_on_time": round(float(np.mean(changes <= NOTE_CHANGE_TOLERANCE_S)), 4) if len(changes) else None,
    }


# ------------------------------------------------------------------------------------ lyrics


@functools.cache
def explicit_wordlist() -> frozenset[str]:
    """better-profanity's list (single words and phrases, lower case)."""
    import better_profanity

    path = Path(better_profanity.__file__).with_name("profanity_wordlist.txt")
    return frozenset(line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def explicit_words(text: str, not_explicit: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The explicit words and phrases in `text`, in order of first use."""
    words = re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower().replace("’", "'"))
    joined = " " + " ".join(words) + " "
    found = []
    for entry in sorted(explicit_wordlist() - set(not_explicit)):
        if (" " in entry and f" {entry} " in joined) or entry in words:
            found.append(entry)
    return sorted(found, key=lambda w: joined.find(f" {w} "))


def lyric_figures(score: Score, lyrics, *, explicit: bool, not_explicit: set[str]) -> dict:
    from qc.songwriting import chorus_problems, rhyme_pairs, unsung_syllables
    from songmill.core.phonetics import words_rhyme

    if lyrics.source == "instrumental":
        return {}
    text = "\n".join(line.text for section in lyrics.sections for line in section.lines)
    found = explicit_words(text, not_explicit)
    return {
        "unsung_syllables": unsung_syllables(score, lyrics),
        "chorus_problems": len(chorus_problems(score, lyrics)),
        "rhyme_misses": sum(1 for a, b in rhyme_pairs(lyrics) if not words_rhyme(a, b)),
        "explicit_words": 0 if explicit else len(found),
        "explicit_found": tuple(found) if not explicit else (),
    }


# ----------------------------------------------------------------------------------- all of it


def measure_musical(
    master: np.ndarray,
    rate: int,
    *,
    tempo_bpm: float | None = None,
    key: str | None = None,
    score: Score | None = None,
    lyrics=None,
    vocal: np.ndarray | None = None,
    vocal_rate: int = SAMPLE_RATE_HZ,
    explicit: bool = False,
    not_explicit: set[str] | frozenset[str] = frozenset(),
) -> MusicalMetrics:
    """Measure what the inputs allow: tempo and key need the master and the spec's tempo / key
    (from `score` when given); vocal figures need the dry lead vocal and the score; lyric
    figures need the lyrics and the score."""
    if score is not None:
        tempo_bpm = tempo_bpm or score.tempo_map[0].bpm
        key = key or main_key(score)
    figures: dict = {}
    if tempo_bpm or key:
        with warnings_silenced():  # librosa's and numba's own deprecation chatter
            mono = _mono(master, rate)
            if tempo_bpm:
                detected = detect_tempo(mono, tempo_bpm)
                figures["tempo_bpm"] = round(detected, 2) if detected else None
                figures["tempo_error_pct"] = round(tempo_error_pct(detected, tempo_bpm), 2) if detected else 100.0
            if key:
                figures["key_detected"] = detect_key(mono)
                figures["key_score"] = key_score(figures["key_detected"], key)
    if score is not None and vocal is not None:
        figures.update(vocal_figures(vocal, vocal_rate, score))
    if score is not None and lyrics is not None:
        figures.update(lyric_figures(score, lyrics, explicit=explicit, not_explicit=set(not_explicit)))
    return MusicalMetrics(**figures)
