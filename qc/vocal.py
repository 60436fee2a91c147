"""Measurements of a dry vocal against its score (DESIGN.md §6: vocal pitch and timing).

The pitch is measured from the audio by WORLD's Harvest at 16 kHz (5 ms frames), a different
estimator from the DIO the singer analyses speech with. Frames count from 80 ms after each
note starts (past the glide into it) to 50 ms before it ends.

Vibrato is part of singing in tune: listeners hear the centre of the swing as the note. So the
deviation is measured on the pitch averaged over `VIBRATO_WINDOW_S` (about one vibrato cycle)
wherever a note is long enough for that; the raw frame-by-frame figures are reported too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from songmill.core.quiet import warnings_silenced
from songmill.core.score import Note

MEASURE_RATE_HZ = 16000
FRAME_S = 0.005
HARVEST_VERSION = 1  # part of a kept answer's key: raise it when the Harvest call below changes
DIO_VERSION = 1  # likewise for the DIO + StoneMask call, and for the resampling before it (its key hashes the samples as given)
VIBRATO_WINDOW_S = 0.2  # one cycle at 5 Hz (singers' vibrato: 4.5–7 Hz)


@dataclass
class PitchReport:
    median_abs_cents: float  # vibrato-centred
    p90_abs_cents: float  # vibrato-centred
    voiced_share: float  # of the frames inside sung notes
    frames: int
    raw_median_abs_cents: float = 0.0  # frame by frame, vibrato included
    raw_p90_abs_cents: float = 0.0


_last_input: dict[tuple[str, int], np.ndarray] = {}  # the last vocal resampled, by its bytes' digest and rate


def _world_input(vocal: np.ndarray, rate: int):
    """(pyworld, the vocal at MEASURE_RATE_HZ as float64), what every WORLD analysis here takes.
    The gate reads one vocal three ways (DIO, then Harvest on octave and voicing suspects), so
    the last vocal's resampling is kept: the same bytes are resampled once (about 0.9 CPU-s a song)."""
    from songmill.core.audio import resample

    with warnings_silenced():  # pyworld imports pkg_resources
        import pyworld
    samples = np.ascontiguousarray(vocal, dtype=np.float32)
    key = (hashlib.blake2b(samples.tobytes(), digest_size=16).hexdigest() + str(samples.shape), rate)
    x = _last_input.get(key)
    if x is None:
        x = resample(samples, from_hz=rate, to_hz=MEASURE_RATE_HZ).astype(np.float64)
        _last_input.clear()
        _last_input[key] = x
    return pyworld, x


def measure_f0(vocal: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(F0 in Hz per 5 ms frame, 0 = unvoiced; frame times in s)."""
    pyworld, x = _world_input(vocal, rate)
    return pyworld.harvest(x, MEASURE_RATE_HZ, frame_period=FRAME_S * 1000, f0_floor=60.0, f0_ceil=1000.0)


def measure_f0_fast(vocal: np.ndarray, rate: int, memo: F0Memo | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Like `measure_f0` with WORLD's DIO refined by StoneMask: about 14× faster than Harvest
    (2.7 s against 39 s for a three-minute vocal), for the render gate. On the demo's vocal it
    reads 3.5 / 19 cents (median / p90) where Harvest reads 2.4 / 17.

    `memo`: readings kept by the digest of the samples read, so the QC report's pitch plot draws
    the curve the gate measured instead of measuring the vocal a second time (3 CPU-s a song)."""
    key = None
    if memo is not None:
        samples = np.ascontiguousarray(vocal, dtype=np.float32)
        key = f"dio-{DIO_VERSION}-{rate}-{len(samples)}-{hashlib.sha256(samples.tobytes()).hexdigest()}"
        known = memo.get(key)
        if known is not None:
            f0 = np.asarray(known, dtype=np.float64)
            return f0, np.arange(len(f0), dtype=np.float64) * (FRAME_S * 1000) / 1000.0  # DIO's own frame times, op for op
    pyworld, x = _world_input(vocal, rate)
    f0, times = pyworld.dio(x, MEASURE_RATE_HZ, f0_floor=60.0, f0_ceil=1000.0, frame_period=FRAME_S * 1000)
    f0 = pyworld.stonemask(x, f0, times, MEASURE_RATE_HZ)
    if memo is not None and key is not None:
        memo.put(key, f0.tolist())  # JSON floats read back exactly (repr round-trips)
    return f0, times


OCTAVE_SUSPECT_CENTS = 600  # a note whose DIO reading sits half an octave or more off is measured again by Harvest
VOICING_SUSPECT_SHARE = 0.8  # a note DIO hears voiced for less of its frames has its voicing confirmed by Harvest
NEAR_NOTE_CENTS = 300  # a Harvest frame confirms the voice when it is this near the note
CONTEXT_S = 0.2  # audio either side of a note that Harvest also reads


def recheck_octave_errors(
    measured: tuple[np.ndarray, np.ndarray], vocal: np.ndarray, rate: int, notes: list[Note], memo: F0Memo | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """DIO now and then locks onto the second harmonic for a whole note (a B3 read as B4: +1200
    cents), which would fail a song sung in tune. Where a note's DIO reading sits
    `OCTAVE_SUSPECT_CENTS` or more off, that note's span is measured again by Harvest, the slower
    estimator, from the audio alone; the score only says where to look. A note really sung an
    octave off reads an octave off by both and still fails."""
    f0, times = measured
    suspects = [note for note in notes if _median_cents_off(f0, times, note) >= OCTAVE_SUSPECT_CENTS]
    if not suspects:
        return measured  # the usual case: no second resample of the vocal, no Harvest
    harvest = harvest_near(vocal, rate, suspects, len(f0), memo)
    f0 = f0.copy()
    for note in suspects:
        span = _note_frames(note, len(f0))
        f0[span] = harvest[span]
    return f0, times


def confirm_voicing(measured: tuple[np.ndarray, np.ndarray], vocal: np.ndarray, rate: int, notes: list[Note], memo: F0Memo | None = None) -> np.ndarray:
    """Which frames the voice sounds in: DIO's voicing, confirmed by Harvest on the notes DIO
    hears voiced for less than `VOICING_SUSPECT_SHARE` of their measured frames.

    DIO drops the voicing of short notes: in the config grid's songs at 144–240 BPM it heard
    notes under 0.25 s 57–65 % voiced where Harvest hears 97–99 %, and failed songs sung in tune
    at the voiced-share bar. Harvest calls some consonant noise voiced too, with a pitch anywhere,
    so one of its frames counts only when its pitch is within `NEAR_NOTE_CENTS` of the note: a
    random pitch lands there one time in eight, so a voice that does not sing still reads
    unvoiced. The pitch figures keep DIO's frames; only the voiced share reads this."""
    f0, times = measured
    voiced = f0 > 0
    suspects = [note for note in notes if _voiced_share(voiced, times, note) < VOICING_SUSPECT_SHARE]
    if not suspects:
        return voiced
    harvest = harvest_near(vocal, rate, suspects, len(f0), memo)
    for note in suspects:
        span = _note_frames(note, len(f0))
        hz = harvest[span]
        with np.errstate(divide="ignore", invalid="ignore"):
            near = (hz > 0) & (np.abs(1200 * np.log2(np.where(hz > 0, hz, 1.0) / _hz(note.pitch))) <= NEAR_NOTE_CENTS)
        voiced[span] |= near
    return voiced


class F0Memo(Protocol):
    """F0 readings (Harvest's, DIO's) kept by the digest of the samples read (the gate's caller
    keeps them in the artifact store): a vocal whose one section changed is read by Harvest again
    there only, and the QC report draws the gate's DIO curve without reading the vocal again."""

    def get(self, key: str) -> list[float] | None: ...
    def put(self, key: str, f0: list[float]) -> None: ...


def harvest_near(vocal: np.ndarray, rate: int, notes: list[Note], frames: int, memo: F0Memo | None = None) -> np.ndarray:
    """Harvest's F0 on the frame grid around `notes` (each with `CONTEXT_S` either side; notes
    whose stretches overlap are read in one piece, so no audio is read twice); 0 elsewhere.
    `memo`: answers for stretches whose samples were read before — Harvest is deterministic, so
    the same samples give the same F0, and the polyphase resampling leaves a stretch's samples as
    they were wherever the vocal around it did not change."""
    pyworld, x = _world_input(vocal, rate)
    f0 = np.zeros(frames)
    for first, last in _stretches(notes, frames):
        segment = np.ascontiguousarray(x[int(first * FRAME_S * MEASURE_RATE_HZ) : int((last + 1) * FRAME_S * MEASURE_RATE_HZ)])
        key = f"harvest-{HARVEST_VERSION}-{hashlib.sha256(segment.tobytes()).hexdigest()}"
        known = memo.get(key) if memo is not None else None
        if known is not None:
            harvest = np.asarray(known, dtype=np.float64)
        else:
            harvest, _ = pyworld.harvest(segment, MEASURE_RATE_HZ, frame_period=FRAME_S * 1000, f0_floor=60.0, f0_ceil=1000.0)
            if memo is not None:
                memo.put(key, harvest.tolist())  # JSON floats read back exactly (repr round-trips)
        count = min(len(harvest), last + 1 - first)
        f0[first : first + count] = harvest[:count]
    return f0


def _stretches(notes: list[Note], frames: int) -> list[tuple[int, int]]:
    stretches: list[tuple[int, int]] = []
    for note in sorted(notes, key=lambda n: n.start_s):
        first = max(int(round((note.start_s - CONTEXT_S) / FRAME_S)), 0)  # on the frame grid, with context either side
        last = min(int(round((note.start_s + note.duration_s + CONTEXT_S) / FRAME_S)), frames - 1)
        if stretches and first <= stretches[-1][1]:
            stretches[-1] = (stretches[-1][0], max(stretches[-1][1], last))
        else:
            stretches.append((first, last))
    return stretches


def _note_frames(note: Note, frames: int) -> slice:
    """The note's whole span on the frame grid."""
    return slice(max(int(round(note.start_s / FRAME_S)), 0), min(int(round((note.start_s + note.duration_s) / FRAME_S)) + 1, frames))


def _measured_window(times: np.ndarray, note: Note) -> np.ndarray:
    """The frames a note is judged on: from 80 ms after it starts (past the glide into it) to 50 ms before it ends."""
    return (times >= note.start_s + 0.08) & (times < note.start_s + note.duration_s - 0.05)


def _median_cents_off(f0: np.ndarray, times: np.ndarray, note: Note) -> float:
    span = _measured_window(times, note) & (f0 > 0)
    return float(abs(np.median(1200 * np.log2(f0[span] / _hz(note.pitch))))) if span.any() else 0.0


def _voiced_share(voiced: np.ndarray, times: np.ndarray, note: Note) -> float:
    window = _measured_window(times, note)
    return float(voiced[window].mean()) if window.any() else 1.0


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def pitch_report(
    vocal: np.ndarray, rate: int, notes: list[Note], measured: tuple[np.ndarray, np.ndarray] | None = None, voicing: np.ndarray | None = None
) -> PitchReport:
    """`measured`: `measure_f0(vocal, rate)` when the caller has it already (Harvest is slow);
    `voicing`: which frames count as voiced for the voiced share (default: where `measured` has a pitch)."""
    f0, times = measured or measure_f0(vocal, rate)
    heard = f0 > 0 if voicing is None else voicing
    raw, centred, inside, voiced = [], [], 0, 0
    window = int(round(VIBRATO_WINDOW_S / FRAME_S))
    for note in notes:
        frames = _measured_window(times, note)
        sounding = frames & (f0 > 0)
        inside, voiced = inside + int(frames.sum()), voiced + int((frames & heard).sum())
        cents = 1200 * np.log2(f0[sounding] / _hz(note.pitch))
        raw.append(np.abs(cents))
        if len(cents) >= window and sounding[frames].all():  # a long, unbroken note: its vibrato centre
            centred.append(np.abs(np.convolve(cents, np.ones(window) / window, mode="valid")))
        else:
            centred.append(np.abs(cents))
    # no voiced frame at all (a voice that never sings): as far off as can be, not a crash
    raw_all = np.concatenate(raw) if raw and sum(map(len, raw)) else np.array([np.inf])
    centred_all = np.concatenate(centred) if centred and sum(map(len, centred)) else np.array([np.inf])
    return PitchReport(
        float(np.median(centred_all)),
        float(np.percentile(centred_all, 90)),
        voiced / max(inside, 1),
        inside,
        float(np.median(raw_all)),
        float(np.percentile(raw_all, 90)),
    )


def transition_errors_s(
    vocal: np.ndarray, rate: int, notes: list[Note], *, min_interval: int = 2, measured: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """For each legato step of at least `min_interval` semitones, when the sung pitch crosses
    half-way to the new note and stays on the new side (over the voiced frames from 150 ms before
    to 150 ms after the note starts, within the two notes), minus when the note starts (seconds).
    "Stays" keeps a one-frame tracking glitch at a consonant from counting as the note change.
    "Within the two notes": at 240 BPM an eighth lasts 125 ms, and a window running on into the
    next note saw the pitch leave again, so the change never "stayed" and was left out of the
    count altogether (on one 240-BPM song 12 of its 18 changes were counted, 83 % on time; all 18
    are now, 72 % on time)."""
    f0, times = measured or measure_f0(vocal, rate)
    errors = []
    for before, after in zip(notes, notes[1:]):
        if abs(after.pitch - before.pitch) < min_interval or after.start_s - (before.start_s + before.duration_s) > 0.1:
            continue
        begin, end = max(after.start_s - 0.15, before.start_s), min(after.start_s + 0.15, after.start_s + after.duration_s)
        window = (times >= begin) & (times < end)
        hz, at = f0[window], times[window]
        voiced = hz > 0
        if voiced.sum() < 5:
            continue
        halfway = 100 * (after.pitch - before.pitch) / 2
        cents_from_old = 1200 * np.log2(hz[voiced] / _hz(before.pitch))
        past = np.sign(cents_from_old - halfway) == np.sign(halfway)
        not_past = np.flatnonzero(~past)
        first = not_past[-1] + 1 if len(not_past) else 0
        if first < len(past) - 1:  # it got there (and it is not the window's last frame)
            errors.append(at[voiced][first] - after.start_s)
    return np.array(errors)


def air_db(vocal: np.ndarray, rate: int, above_hz: float = 11000.0) -> float:
    """Energy above `above_hz` relative to the whole signal, dB (-inf when there is none)."""
    spectrum = np.abs(np.fft.rfft(np.asarray(vocal, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(vocal), 1 / rate)
    high = spectrum[freqs > above_hz].sum()
    return float(10 * np.log10(high / spectrum.sum())) if high > 0 else float("-inf")


def mean_envelope_db(vocal: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies Hz, mean spectral envelope dB) over the voiced frames, measured at 16 kHz
    with Harvest and CheapTrick (pitch-adaptive, so the harmonics do not show)."""
    pyworld, x = _world_input(vocal, rate)
    f0, times = pyworld.harvest(x, MEASURE_RATE_HZ, frame_period=FRAME_S * 1000, f0_floor=60.0, f0_ceil=1000.0)
    envelope = pyworld.cheaptrick(x, f0, times, MEASURE_RATE_HZ)
    freqs = np.linspace(0, MEASURE_RATE_HZ / 2, envelope.shape[1])
    return freqs, 10 * np.log10(envelope[f0 > 0].mean(axis=0) + 1e-20)


def formant_ratio(reference: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray], low_hz: float = 200.0, high_hz: float = 5000.0) -> float:
    """The frequency scale that best maps the reference's mean envelope onto the other's
    (1.2: the other's formants sit 20 % higher), by correlation on a log-frequency axis after
    removing each envelope's overall tilt."""
    grid = np.geomspace(low_hz, high_hz, 400)

    def shape(envelope, scale=1.0):
        values = np.interp(grid / scale, *envelope)
        fit = np.polyval(np.polyfit(np.log(grid), values, 1), np.log(grid))
        centred = values - fit
        return centred / (np.linalg.norm(centred) or 1.0)

    target = shape(other)
    ratios = np.geomspace(0.7, 1.45, 300)
    scores = [float(np.dot(shape(reference, r), target)) for r in ratios]
    return float(ratios[int(np.argmax(scores))])
