"""The automatic mix: stems → one stereo 48 kHz mix and the decisions that made it.

    stems = [StemFile(path, role) for ...]            # read in turn: converted to 48 kHz, at most stereo (logged)
    result = mix_stems(stems, score, preset.mix)     # MixResult: audio (frames, 2) float32, decisions

(`load_stem(path, role)` reads one now; the mix takes either.)

What a mix engineer does, in order, each decision written to `decisions`:

1. **Clean-up.** A high-pass on every stem by role (bass and kick keep their low end); on the
   lead vocal a de-esser (the 5–9 kHz band turned down where it spikes) and a compressor.
2. **Gain staging.** Each instrument stem's loudness (BS.1770, on the stem alone) is set to the
   genre's balance relative to the drums; the backing vocals keep their level under the lead.
3. **Room for the voice.** While the lead sings, the 1–4 kHz band of chords, pads and lines is
   cut by `vocal_carve_db` (a dynamic, zero-phase band cut); pads and bass duck under the vocal
   or the kick where the genre wants it (the kick's times come from the score's drum part).
4. **Section automation.** Instruments follow the section energy: quiet verses, full choruses.
5. **Panning** by role, constant power; two stems of one role go to opposite sides.
6. **The vocal on top.** The lead-and-backing bus is set to `vocal_over_instrumental_lu` above the
   instrumental bus, both measured while the voice sings.
7. **Sends.** A reverb and a tempo-synced delay (pedalboard) on send buses, filtered returns.
8. **Bus.** A gentle bus compressor, then the mix is set to −20 LUFS (headroom for mastering).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pedalboard
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, lfilter, sosfilt

from songmill.core import loudness
from songmill.core.audio import SAMPLE_RATE_HZ, channel_mean, read_wav, resample, wav_frames
from songmill.core.errors import SongmillError
from songmill.core.parallel import worked_ahead
from songmill.core.score import Score
from songmill.core.sections import sections_named
from songmill.core.spec import MixEdit
from songmill.production.presets import MixPreset

log = logging.getLogger(__name__)

MIX_RATE_HZ = SAMPLE_RATE_HZ
MIX_LUFS = -20.0  # the mix's integrated loudness: 6+ dB of headroom for the master
DRUMS_REFERENCE_LUFS = -24.0  # instrument stems are balanced around this before the bus moves
KICK_PITCHES = (35, 36)  # General MIDI acoustic bass drum, bass drum 1
VOCAL_ACTIVE_WITHIN_DB = 35.0  # the lead "sings" where its 20 ms RMS is within this of its loudest
CARVE_ROLES = ("chords", "pad", "counter", "line")
CARVE_BAND_HZ = (1000.0, 4000.0)
SIBILANCE_BAND_HZ = (5000.0, 9000.0)
DE_ESS_RATIO, DE_ESS_MAX_DB = 4.0, 8.0
VOCAL_COMPRESSOR = {"ratio": 3.0, "attack_ms": 5.0, "release_ms": 80.0}
BUS_COMPRESSOR = {"attack_ms": 30.0, "release_ms": 150.0}
AUTOMATION_RAMP_S = 0.5
DUCK_ATTACK_S, DUCK_RELEASE_S = 0.01, 0.15
REVERB_WIDTH = 0.7  # a wide but not fully decorrelated room keeps the master's phase reading high
RETURN_BAND_HZ = {"reverb": (200.0, 9000.0), "delay": (300.0, 6000.0)}
VOCAL_ROLES = ("vocal", "backing")


@dataclass
class Stem:
    """One stem as the mix receives it."""

    name: str  # e.g. "piano", "vocal-lead"
    role: str  # one of presets.ROLES
    audio: np.ndarray  # (frames, 1 or 2) float32 at MIX_RATE_HZ
    conversions: list[str] = field(default_factory=list)  # what was done to make it fit (logged)

    def load(self) -> Stem:  # what the mix asks of a stem, held or on file (StemFile)
        return self

    def frames(self) -> int:
        return self.audio.shape[0]


@dataclass
class MixResult:
    audio: np.ndarray  # (frames, 2) float32, 48 kHz
    decisions: dict
    buses: dict[str, np.ndarray]  # "vocals", "instrumental": the dry buses at the mix's final gain (for measuring)


def load_stem(path: Path, role: str, *, name: str | None = None) -> Stem:
    """Read a stem WAV; a wrong sample rate or channel count is converted and logged.

    Raises
    ------
    SongmillError : the file is unreadable, has no samples, or holds nothing but silence.
    """
    path = Path(path)
    name = name or path.stem.removeprefix("stem-")
    audio, rate = read_wav(path)
    if audio.shape[0] == 0:
        raise SongmillError(f"stem {path.name} is empty (no samples); re-render the stage that wrote it")
    if not np.isfinite(audio).all():
        raise SongmillError(f"stem {path.name} is corrupt (it holds NaN or infinite samples); re-render the stage that wrote it")
    if float(np.max(audio)) <= 1e-6 and float(np.min(audio)) >= -1e-6:
        raise SongmillError(f"stem {path.name} is silent (no sample above -120 dBFS); re-render the stage that wrote it")
    conversions = []
    if audio.shape[1] > 2:
        conversions.append(f"down-mixed {audio.shape[1]} channels to stereo")
        audio = np.stack([channel_mean(audio[:, 0::2]), channel_mean(audio[:, 1::2])], axis=1)
    if rate != MIX_RATE_HZ:
        conversions.append(f"resampled from {rate} Hz to {MIX_RATE_HZ} Hz")
        audio = resample(audio, from_hz=rate, to_hz=MIX_RATE_HZ)
    for note in conversions:
        log.warning("stem %s: %s", path.name, note)
    return Stem(name, role, np.ascontiguousarray(audio, dtype=np.float32), conversions)


@dataclass(frozen=True)
class StemFile:
    """A stem the mix reads only shortly before its turn (at most PREPARE_THREADS stems ahead),
    and lets go of once it is in the buses: a three-minute stereo stem is 68 MB, and holding
    every stem of a song at once was a fifth of the render's peak memory. Read with `load_stem`
    (the same checks and conversions); `name` defaults as load_stem's does."""

    path: Path
    role: str
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.path.stem.removeprefix("stem-"))

    def load(self) -> Stem:
        return load_stem(self.path, self.role, name=self.name)

    def frames(self) -> int:
        """Its length at MIX_RATE_HZ, from the file's chunk headers (read whole only when its rate
        differs, or when it is damaged: load_stem then says what is wrong with it)."""
        try:
            frames, rate = wav_frames(self.path)
        except SongmillError:
            return self.load().audio.shape[0]
        return frames if rate == MIX_RATE_HZ else self.load().audio.shape[0]


def instrument_role(decision: dict) -> str:
    """The mix role of an arranged instrument (config/arrangements.yaml source and pattern)."""
    if decision["source"] in ("drums", "bass"):
        return decision["source"]
    if decision["source"] == "melody":
        return "line"
    return {"sustain": "pad", "counter": "counter"}.get(decision["pattern"], "chords")


def stem_roles(arrangement: dict) -> dict[str, str]:
    """Stem file name → role, from the instruments stage's arrangement.json."""
    if arrangement.get("full_mix"):
        return {"stem-full-mix.wav": "full-mix"}
    return {d["stem"]: instrument_role(d) for d in arrangement["instruments"] if d.get("stem")}


# ---------------------------------------------------------------- signal helpers
# Inside the mix, audio is channel-first, (channels, frames) float32: rows are contiguous, which is
# what scipy's filters and pedalboard want, and a pan is two scaled adds.


def _filter(kind: str, corner, rate: int, order: int = 2) -> np.ndarray:
    """Butterworth second-order sections, float32 like the audio (4× faster than float64)."""
    return butter(order, corner, kind, fs=rate, output="sos").astype(np.float32)


def _high_pass(x: np.ndarray, hz: float, rate: int) -> np.ndarray:
    return sosfilt(_filter("highpass", hz, rate), x, axis=-1)


ENVELOPE_BLOCK = 48  # 1 ms at 48 kHz: envelopes and gain curves are worked out per block


def _block_rms(x: np.ndarray) -> np.ndarray:
    """RMS per ENVELOPE_BLOCK samples (channels averaged), float32; the last block may be short."""
    power = np.mean(np.square(x), axis=0) if x.ndim == 2 else np.square(x)
    blocks = -(-len(power) // ENVELOPE_BLOCK)
    padded = np.zeros(blocks * ENVELOPE_BLOCK, dtype=np.float32)
    padded[: len(power)] = power
    return np.sqrt(padded.reshape(blocks, ENVELOPE_BLOCK).mean(axis=1))


def _per_sample(curve: np.ndarray, frames: int) -> np.ndarray:
    """A per-block curve drawn per sample, float32: linear from each block's start to the next's."""
    curve = np.asarray(curve, dtype=np.float32)
    step = np.diff(curve, append=curve[-1:])
    ramp = np.arange(ENVELOPE_BLOCK, dtype=np.float32) / ENVELOPE_BLOCK
    return (curve[:, None] + step[:, None] * ramp).reshape(-1)[:frames]


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    return uniform_filter1d(x, window, mode="nearest") if window > 1 else x


def _db_to_gain(db: np.ndarray) -> np.ndarray:
    """dB → linear gain, float32 (exp in single precision: a tenth of the cost of 10 ** x)."""
    return np.exp(np.asarray(db, dtype=np.float32) * np.float32(np.log(10) / 20))


def _db(x: float) -> float:
    return float(20 * np.log10(x)) if x > 0 else float("-inf")


def _lufs(x: np.ndarray, rate: int) -> float:
    return loudness.integrated_lufs(x.T, rate)


def vocal_activity(lead: np.ndarray, rate: int) -> np.ndarray:
    """0…1 per sample (float32): where the lead vocal (channels, frames) sings — 20 ms RMS within
    VOCAL_ACTIVE_WITHIN_DB of its loudest — with a 10 ms rise and a 150 ms fall so cuts and
    ducks breathe with the phrase."""
    block_rate = rate / ENVELOPE_BLOCK
    rms = _smooth(_block_rms(lead), int(0.02 * block_rate))
    active = (rms > rms.max() * 10 ** (-VOCAL_ACTIVE_WITHIN_DB / 20)).astype(np.float32)
    release = np.exp(-1.0 / (DUCK_RELEASE_S * block_rate))
    held = lfilter(np.array([1 - release], np.float32), np.array([1, -release], np.float32), active)  # the fall
    curve = np.clip(_smooth(np.maximum(active, held), int(DUCK_ATTACK_S * block_rate)), 0.0, 1.0)
    return _per_sample(curve, lead.shape[-1])


def kick_envelope(score: Score, frames: int, rate: int) -> np.ndarray:
    """0…1 per sample: 1 at each kick of the score's drum part, falling over DUCK_RELEASE_S."""
    block_rate = rate / ENVELOPE_BLOCK
    impulses = np.zeros(-(-frames // ENVELOPE_BLOCK), dtype=np.float32)
    for part in score.parts:
        if part.is_drum:
            for note in part.notes:
                index = int(note.start_s * block_rate)
                if note.pitch in KICK_PITCHES and index < len(impulses):
                    impulses[index] = 1.0
    release = np.exp(-1.0 / (DUCK_RELEASE_S * block_rate))
    envelope = np.minimum(lfilter(np.array([1.0], np.float32), np.array([1, -release], np.float32), impulses), 1.0)
    return _per_sample(_smooth(envelope, int(DUCK_ATTACK_S * block_rate)), frames)


def band_pass(low_hz: float, high_hz: float, rate: int) -> np.ndarray:
    """A biquad band-pass with 0 dB at its centre (RBJ cookbook) spanning low–high: x − k·band(x)
    is then a peaking cut of the band by 1 − k, boosting nowhere — a dynamic EQ when k moves."""
    centre = np.sqrt(low_hz * high_hz)
    octaves = np.log2(high_hz / low_hz)
    w0 = 2 * np.pi * centre / rate
    alpha = np.sin(w0) * np.sinh(np.log(2) / 2 * octaves * w0 / np.sin(w0))
    b = np.array([alpha, 0.0, -alpha]) / (1 + alpha)
    a = np.array([1 + alpha, -2 * np.cos(w0), 1 - alpha]) / (1 + alpha)
    return np.concatenate([b, a])[None, :].astype(np.float32)


def de_ess(vocal: np.ndarray, rate: int) -> tuple[np.ndarray, dict]:
    """Turn the sibilance band down where it spikes above its own 90th percentile (ratio 4:1, at
    most 8 dB), as a dynamic peaking cut: the rest of the voice is untouched."""
    band = sosfilt(band_pass(*SIBILANCE_BAND_HZ, rate), vocal, axis=-1)
    envelope = _smooth(_block_rms(band), 5)  # 5 ms
    sounding = envelope[envelope > envelope.max() * 1e-3]
    threshold = float(np.percentile(sounding, 90)) if sounding.size else 1.0
    over = np.maximum(envelope / np.float32(threshold), 1.0)
    gain = np.maximum(over ** np.float32(1 / DE_ESS_RATIO - 1), np.float32(10 ** (-DE_ESS_MAX_DB / 20)))
    gain = _per_sample(_smooth(gain, 3), vocal.shape[-1])
    out = vocal - band * (1 - gain)
    return out, {
        "band_hz": list(SIBILANCE_BAND_HZ),
        "threshold_dbfs": round(_db(threshold), 1),
        "ratio": DE_ESS_RATIO,
        "max_reduction_db": round(-_db(float(gain.min())), 1),
        "active_share": round(float(np.mean(gain < 0.98)), 4),
    }


def compress_vocal(vocal: np.ndarray, rate: int, active: np.ndarray) -> tuple[np.ndarray, dict]:
    """A 3:1 compressor whose threshold sits 3 dB over the voice's RMS while it sings."""
    singing = vocal[:, active > 0.5]
    rms_db = _db(float(np.sqrt(np.mean(np.square(singing, dtype=np.float64))))) if singing.size else -30.0
    threshold = rms_db + 3.0
    compressor = pedalboard.Compressor(threshold_db=threshold, **VOCAL_COMPRESSOR)
    return compressor(vocal, rate), {"threshold_dbfs": round(threshold, 1), **VOCAL_COMPRESSOR}


def carve(x: np.ndarray, rate: int, activity: np.ndarray, depth_db: float) -> np.ndarray:
    """Cut the 1–4 kHz band by `depth_db` where `activity` is 1 (a dynamic peaking cut)."""
    band = sosfilt(band_pass(*CARVE_BAND_HZ, rate), x, axis=-1)
    return x - band * (np.float32(1 - 10 ** (-depth_db / 20)) * activity)


def pan_gains(position: float) -> tuple[float, float]:
    """Constant-power left and right gains for a position (-1 left … +1 right)."""
    angle = (position + 1) * np.pi / 4
    return float(np.cos(angle)), float(np.sin(angle))


def _add_panned(bus: np.ndarray, x: np.ndarray, position: float, gain: float, *, scratch: np.ndarray) -> None:
    """bus += x panned: a mono stem by constant power, a stereo one by balance (0 = as it is).
    `scratch`: a float32 buffer at least x's length that the scaled channel is written into
    (the same floats as a new array each time, without allocating 34 MB twice per call)."""
    left, right = pan_gains(position)
    if x.shape[0] == 1:
        channels, scales = (x[0], x[0]), (gain * left, gain * right)
    else:
        scale = (1.0, 1.0) if position == 0 else (left * np.sqrt(2), right * np.sqrt(2))
        channels, scales = (x[0], x[1]), (gain * scale[0], gain * scale[1])
    for side, (channel, factor) in enumerate(zip(channels, scales, strict=True)):
        if channel.dtype != np.float32:  # a float64 stem: its product in float64 then added, as it always was
            bus[side] += channel * np.float32(factor)
        else:
            scaled = scratch[: len(channel)]
            np.multiply(channel, np.float32(factor), out=scaled)
            bus[side] += scaled


def section_gain_db(score: Score, frames: int, rate: int, swing_db: float, offsets_db: dict[str, float] | None = None) -> tuple[np.ndarray, list[dict]]:
    """Per-sample instrument gain following the section energy: `swing_db` between the quietest and
    the loudest section, centred on 0 dB, with AUTOMATION_RAMP_S ramps at the boundaries.
    `offsets_db`: section label ("chorus 2", or "chorus" for all) → dB on top (the editor's)."""
    sections = score.sections
    if not sections:
        return np.zeros(frames, dtype=np.float32), []
    energies = np.array([s.energy for s in sections])
    spread = energies.max() - energies.min()
    gains = swing_db * ((energies - energies.min()) / spread - 0.5) if spread > 0 else np.zeros(len(sections))
    names = [s.name for s in sections]
    for label, offset in (offsets_db or {}).items():
        for index in sections_named(label, names, where="the mix's song"):
            gains[index] += offset
    starts = [score.seconds_at(s.start_bar * score.beats_per_bar) for s in sections]
    knots_t, knots_g = [], []
    for i, (start, gain) in enumerate(zip(starts, gains)):
        begin = start + (AUTOMATION_RAMP_S / 2 if i else 0.0)
        end = (starts[i + 1] - AUTOMATION_RAMP_S / 2) if i + 1 < len(starts) else frames / rate
        knots_t += [begin, max(end, begin)]
        knots_g += [gain, gain]
    curve = np.interp(np.arange(frames) / rate, knots_t, knots_g).astype(np.float32)
    plan = [{"section": s.name, "start_s": round(t, 2), "energy": s.energy, "gain_db": round(float(g), 2)} for s, t, g in zip(sections, starts, gains)]
    return curve, plan


def _loudness_where(x: np.ndarray, rate: int, mask: np.ndarray) -> float:
    """Integrated loudness (BS.1770 gating) of the frames where `mask` is true, joined end to end
    after K-weighting the whole bus (so no filter restarts at the joins)."""
    if np.count_nonzero(mask) <= rate:
        return float("-inf")
    return loudness.gated_lufs(loudness.k_weighted_power(x.T, rate)[mask], rate)


def _return(bus: np.ndarray, rate: int, effect, kind: str) -> np.ndarray:
    return sosfilt(_filter("bandpass", RETURN_BAND_HZ[kind], rate), effect(bus, rate), axis=-1)


# ---------------------------------------------------------------- the mix


def mix_stems(stems: Sequence[Stem | StemFile], score: Score, preset: MixPreset, *, rate: int = MIX_RATE_HZ, edit: MixEdit | None = None) -> MixResult:
    """Mix `stems` (see the module docstring); every stem must be at `rate`. A `StemFile` is read
    shortly before its turn comes (the stage passes files: less memory). `edit`: the song editor's changes
    on top of the preset (a part's level, pan or mute, the vocal level, the sends, a section's level)."""
    edit = edit or MixEdit()
    names = {s.name for s in stems}
    unknown = sorted(set(edit.parts) - names)
    if unknown:
        raise SongmillError(f"the mix has no part {', '.join(unknown)} (its parts: {', '.join(sorted(names))})")
    stems = [s for s in stems if not (s.name in edit.parts and edit.parts[s.name].muted)]
    if not stems:
        raise SongmillError("there are no stems to mix")
    frames = max(s.frames() for s in stems)
    lead_file = next((s for s in stems if s.role == "vocal"), None)
    lead = lead_file.load() if lead_file is not None else None  # read first: its activity shapes the others
    has_lead = lead is not None
    activity = vocal_activity(_fit(lead.audio, frames), rate) if lead is not None else np.zeros(frames, dtype=np.float32)
    kick = kick_envelope(score, frames, rate) if any(d.under == "kick" for d in preset.duck.values()) else None
    automation, plan = section_gain_db(score, frames, rate, preset.automation_db, edit.sections_db)
    side_of_role: dict[str, int] = {}
    silent = lambda: np.zeros((2, frames), dtype=np.float32)  # noqa: E731
    buses = {"vocal": silent(), "instrument": silent(), "carved": silent()}  # carved: the band cut applies
    sends = {group: {"reverb": silent(), "delay": silent()} for group in ("vocal", "instrument")}
    duck_gains: dict[tuple, np.ndarray] = {}
    carving = has_lead and preset.vocal_carve_db > 0
    scratch = np.empty(frames, dtype=np.float32)  # where _add_panned scales a stem's channel before adding it
    lead_gain_db, decisions = None, []

    # the lead first: the backing takes follow its gain. Each stem's own processing (read, clean-up,
    # loudness) is independent of the others' and runs PREPARE_THREADS stems ahead on threads;
    # the buses take the stems in this order, so the sums are the same floats as one at a time.
    ordered = sorted(stems, key=lambda s: s.role != "vocal")
    read_already = [lead] if lead is not None else []  # taken by its preparation, then let go of like the other stems
    lead = None

    def prepare(item: Stem | StemFile) -> tuple[Stem, np.ndarray, slice, dict[str, Any]]:
        stem = read_already.pop() if item is lead_file and read_already else item.load()
        return (stem, *_cleaned(stem, frames, rate, preset, activity, measure=not (stem.role == "backing" and has_lead)))

    with worked_ahead(prepare, ordered, threads=PREPARE_THREADS, name="mix-stem") as prepared:
        for stem, x, span, made in prepared:
            group = "vocal" if stem.role in VOCAL_ROLES else "instrument"
            if stem.role == "backing" and lead_gain_db is not None:
                gain_db = lead_gain_db  # the takes keep the level the vocals stage set under the lead
            elif stem.role == "vocal":
                gain_db = lead_gain_db = DRUMS_REFERENCE_LUFS - made["loudness_lufs"]  # set on top in step 6
            elif stem.role == "backing":
                gain_db = DRUMS_REFERENCE_LUFS - made["loudness_lufs"]
            else:
                gain_db = DRUMS_REFERENCE_LUFS + preset.balance_lu.get(stem.role, 0.0) - made["loudness_lufs"]
            part = edit.parts.get(stem.name)
            if part is not None and part.gain_db:
                gain_db += part.gain_db
                made["edit_gain_db"] = part.gain_db
            made["gain_db"] = round(gain_db, 2)
            duck = preset.duck.get(stem.role)
            if duck and (has_lead or duck.under == "kick"):
                key = (duck.under, duck.depth_db)
                if key not in duck_gains:
                    trigger = activity if duck.under == "vocal" else cast(np.ndarray, kick)  # kick is made whenever a duck is under it
                    duck_gains[key] = _db_to_gain(-duck.depth_db * trigger)
                x = x * duck_gains[key][span]
                made["duck"] = duck.model_dump()
            position = preset.pan.get(stem.role, 0.0)
            side = side_of_role[stem.role] = -side_of_role.get(stem.role, -1)  # 1, -1, 1, … per role
            position *= side
            if part is not None and part.pan is not None:
                position = part.pan
            made["pan"] = round(position, 2)
            fader = 10 ** (gain_db / 20)
            if stem.role in CARVE_ROLES and carving:
                _add_panned(buses["carved"][:, span], x, position, fader, scratch=scratch)  # the cut is linear: one pass over the group's sum
                made["vocal_carve_db"] = preset.vocal_carve_db
            else:
                _add_panned(buses[group][:, span], x, position, fader, scratch=scratch)
            for kind, effect in (("reverb", preset.reverb), ("delay", preset.delay)):
                if stem.role in effect.send_db:
                    send_db = effect.send_db[stem.role] + _send_edit_db(edit, kind, group) + (getattr(part, f"{kind}_db") if part is not None else 0.0)
                    _add_panned(sends[group][kind][:, span], x, position, fader * 10 ** (send_db / 20), scratch=scratch)
                    made[f"{kind}_send_db"] = round(send_db, 2)
            decisions.append(made)
            del stem, x
    del scratch

    # Below, a bus, send or curve is let go of (popped, deleted) once nothing more needs it: each
    # is 34–68 MB for a three-minute song, and the mix is the render's peak of memory.
    instrument_bus = buses["instrument"]
    carved = buses.pop("carved")
    if carving:
        instrument_bus += carve(carved, rate, activity, preset.vocal_carve_db)
    del carved
    # section automation rides the whole instrumental (and its sends) — the voice stays put
    automation_gain = _db_to_gain(automation)
    del automation
    instrument_bus *= automation_gain
    for kind in ("reverb", "delay"):
        sends["instrument"][kind] *= automation_gain
    del automation_gain, duck_gains
    vocal_bus = buses["vocal"]
    on_top = _vocal_on_top(vocal_bus, instrument_bus, activity, rate, preset.vocal_over_instrumental_lu + edit.vocal_db) if has_lead else None
    vocal_gain = np.float32(10 ** (on_top["correction_db"] / 20)) if on_top else np.float32(1.0)
    vocal_bus *= vocal_gain
    send_sums = sends.pop("instrument")  # the vocal sends join them, at the vocal's new level
    for kind, vocal_send in sends.pop("vocal").items():
        send_sums[kind] += vocal_send * vocal_gain
    delay_s = preset.delay.beats * 60.0 / score.tempo_map[0].bpm
    reverb = pedalboard.Reverb(room_size=preset.reverb.room_size, damping=0.5, wet_level=1.0, dry_level=0.0, width=REVERB_WIDTH)
    delay = pedalboard.Delay(delay_seconds=delay_s, feedback=preset.delay.feedback, mix=1.0)
    # the two returns are independent and pedalboard and sosfilt leave the GIL: the reverb's is
    # made on a thread while this one makes the delay's
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mix-return") as beside:
        reverb_return = beside.submit(_return, send_sums.pop("reverb"), rate, reverb, "reverb")
        delay_return = _return(send_sums.pop("delay"), rate, delay, "delay")
        mixed = instrument_bus + vocal_bus + reverb_return.result() + delay_return
    del reverb_return, delay_return
    sample = mixed[:, ::4]  # every 4th frame is plenty for a level
    if on_top:
        sample = sample[:, activity[::4] > 0.5]  # the level while the voice sings
    bus_threshold = _db(float(np.sqrt(np.mean(np.square(sample), dtype=np.float64)))) + 6.0
    mixed = pedalboard.Compressor(threshold_db=bus_threshold, ratio=preset.bus_ratio, **BUS_COMPRESSOR)(mixed, rate)
    level_db = MIX_LUFS - _lufs(mixed, rate)
    final = np.float32(10 ** (level_db / 20))
    mixed *= final
    summary = {
        "sample_rate_hz": rate,
        "frames": frames,
        "stems": decisions,
        "automation": plan,
        "vocal_on_top": on_top,
        "edit": edit.model_dump(mode="json") if not edit.is_empty() else None,
        "sends": {
            "reverb": {"room_size": preset.reverb.room_size},
            "delay": {"beats": preset.delay.beats, "seconds": round(delay_s, 4), "feedback": preset.delay.feedback},
        },
        "bus": {
            "compressor": {"threshold_dbfs": round(bus_threshold, 1), "ratio": preset.bus_ratio, **BUS_COMPRESSOR},
            "gain_db": round(level_db, 2),
            "integrated_lufs": MIX_LUFS,
            "sample_peak_dbfs": round(loudness.sample_peak_dbfs(mixed), 2),
        },
    }
    vocal_bus *= final
    instrument_bus *= final
    return MixResult(mixed.T, summary, {"vocals": vocal_bus.T, "instrumental": instrument_bus.T})


def _send_edit_db(edit: MixEdit, kind: str, group: str) -> float:
    """The editor's change to a reverb or delay send: every send's, plus the voices' own."""
    if kind == "reverb":
        return edit.reverb_db + (edit.vocal_reverb_db if group == "vocal" else 0.0)
    return edit.delay_db + (edit.vocal_delay_db if group == "vocal" else 0.0)


def _vocal_on_top(vocal_bus: np.ndarray, instrument_bus: np.ndarray, activity: np.ndarray, rate: int, target_lu: float) -> dict | None:
    """Measure both buses while the voice sings and return the vocal correction that puts the
    vocal `target_lu` over the instrumental."""
    singing = activity > 0.5
    vocal_lufs = _loudness_where(vocal_bus, rate, singing)
    instrumental_lufs = _loudness_where(instrument_bus, rate, singing)
    if not (np.isfinite(vocal_lufs) and np.isfinite(instrumental_lufs)):
        return None
    correction = target_lu - (vocal_lufs - instrumental_lufs)
    return {
        "target_lu": target_lu,
        "before_lu": round(vocal_lufs - instrumental_lufs, 2),
        "correction_db": round(correction, 2),
        "measured_lu": round(vocal_lufs + correction - instrumental_lufs, 2),
        "singing_s": round(float(np.count_nonzero(singing)) / rate, 1),
    }


def _sounding(audio: np.ndarray, frames: int, rate: int) -> tuple[np.ndarray, slice]:
    """The stretch of a stem from its first to its last sound (plus SPAN_TAIL_S for filter tails),
    channel-first, and where it sits in the mix. Filtering silence changes nothing, so the mix
    only processes this stretch."""
    block = 480 * audio.shape[1]  # 10 ms blocks: the span starts and ends on a block edge
    flat = audio[:frames].reshape(-1)
    whole = len(flat) // block * block
    peaks = np.abs(flat[:whole].reshape(-1, block)).max(axis=1) if whole else np.zeros(0, np.float32)
    if len(flat) > whole:
        peaks = np.append(peaks, np.abs(flat[whole:]).max())
    sounding = np.flatnonzero(peaks > 1e-7)
    first, last = (int(sounding[0]) * 480, (int(sounding[-1]) + 1) * 480) if sounding.size else (0, 0)
    span = slice(first, min(last + int(SPAN_TAIL_S * rate), frames))
    x = np.zeros((audio.shape[1], span.stop - span.start), dtype=np.float32)
    x[:, : min(audio.shape[0], span.stop) - span.start] = audio[span.start : span.stop].T
    return x, span


SPAN_TAIL_S = 0.5
PREPARE_THREADS = 2  # stems cleaned at a time: the mix runs alone in its wave, so a core is free


def _cleaned(stem: Stem, frames: int, rate: int, preset: MixPreset, activity: np.ndarray, *, measure: bool) -> tuple[np.ndarray, slice, dict[str, Any]]:
    """A stem's own processing, before it meets the others (step 1, and step 2's measurement):
    the stretch that sounds, its high-pass, the lead's de-esser and compressor, and (`measure`)
    its loudness. Returns the stretch, where it sits and the decisions so far."""
    x, span = _sounding(stem.audio, frames, rate)  # work on the part that sounds: stems rest a lot
    made: dict[str, Any] = {"stem": stem.name, "role": stem.role, "conversions": stem.conversions}
    if stem.role in preset.high_pass_hz:
        x = _high_pass(x, preset.high_pass_hz[stem.role], rate)
        made["high_pass_hz"] = preset.high_pass_hz[stem.role]
    if stem.role == "vocal":
        x, made["de_ess"] = de_ess(x, rate)
        x, made["compressor"] = compress_vocal(x, rate, activity[span])
    if measure:
        made["loudness_lufs"] = round(_lufs(x, rate), 2)
    return x, span, made


def _fit(audio: np.ndarray, frames: int) -> np.ndarray:
    """A stem channel-first, padded with silence to the mix's length (tails may differ)."""
    out = np.zeros((audio.shape[1], frames), dtype=np.float32)
    out[:, : min(frames, audio.shape[0])] = audio[:frames].T
    return out
