"""The QC report: one self-contained HTML file per release, for people.

    write_qc_report(run_report, Path("dist/demo-single/qc-report.html"))

Per track: the verdict of every profile with each metric against its bar (failed ones first, with
their reasons), the renders the gate turned down, and four plots of the first profile's master —
the waveform, a spectrogram, short-term loudness over time with the profile's target, and the
dry vocal's pitch over the score's melody notes. Plots are PNGs drawn by matplotlib (Agg, no
display) and embedded as data URIs, so the file can be mailed or attached to a ticket as is.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from qc.vocal import F0Memo
from songmill.core.audio import channel_mean, read_wav
from songmill.core.store import atomic_write_bytes

PLOT_SIZE_IN = (9.0, 2.2)
PLOT_DPI = 80


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(title: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=PLOT_SIZE_IN)
    axes.set_title(title, fontsize=9, loc="left")
    axes.set_ylabel(ylabel, fontsize=8)
    axes.set_xlabel("time (s)", fontsize=8)
    axes.tick_params(labelsize=7)
    return figure, axes


def waveform_plot(samples: np.ndarray, rate: int) -> str:
    """Min/max envelope of the mid signal, one column per 20 ms."""
    mono = channel_mean(samples)
    step = max(1, int(rate * 0.02))
    count = len(mono) // step
    blocks = mono[: count * step].reshape(count, step)
    times = np.arange(count) * step / rate
    figure, axes = _figure("waveform", "amplitude")
    axes.fill_between(times, blocks.min(axis=1), blocks.max(axis=1), color="#3060a0", linewidth=0)
    axes.set_ylim(-1, 1)
    axes.set_xlim(0, len(mono) / rate)
    return _png(figure)


SPECTROGRAM_FRAME, SPECTROGRAM_HOP_S, SPECTROGRAM_TOP_HZ = 4096, 0.05, 20000.0
SPECTROGRAM_BINS_PER_ROW = 4  # 47 Hz rows at 48 kHz: 426 rows under 20 kHz for a plot 176 pixels tall
SPECTROGRAM_CHUNK_FRAMES = 256  # frames transformed at a time (4 MB of float32 at 4096 points)


def spectrogram_db(samples: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """The spectrogram the report draws: (frames, rows) of dBFS (float32) and the top row's upper
    frequency (Hz). SPECTROGRAM_FRAME-point Hann frames of the mid every SPECTROGRAM_HOP_S, each
    row the loudest of SPECTROGRAM_BINS_PER_ROW neighbouring bins up to SPECTROGRAM_TOP_HZ (the
    plot has fewer pixels than bins; the loudest, not the mean, so a tone reads its level), a
    full-scale sine at 0 dBFS. Worked a chunk of frames at a time: the whole song's frames at
    once were the render's largest allocation (about 0.75 GB with the plot's colour mapping)."""
    mono = channel_mean(samples)
    size, hop = SPECTROGRAM_FRAME, max(1, int(rate * SPECTROGRAM_HOP_S))
    window = np.hanning(size).astype(np.float32)
    full_scale = (window.sum(dtype=np.float64) / 2) ** 2  # a full-scale sine's power in its bin
    bins = int(np.count_nonzero(np.fft.rfftfreq(size, 1 / rate) <= SPECTROGRAM_TOP_HZ))
    rows = bins // SPECTROGRAM_BINS_PER_ROW
    frames = np.lib.stride_tricks.sliding_window_view(mono, size)[::hop] if len(mono) >= size else np.zeros((0, size), np.float32)
    db = np.empty((len(frames), rows), dtype=np.float32)
    for first in range(0, len(frames), SPECTROGRAM_CHUNK_FRAMES):
        chunk = frames[first : first + SPECTROGRAM_CHUNK_FRAMES] * window
        power = np.square(np.abs(np.fft.rfft(chunk, axis=1)[:, : rows * SPECTROGRAM_BINS_PER_ROW]))
        loudest = power.reshape(len(chunk), rows, SPECTROGRAM_BINS_PER_ROW).max(axis=2)
        db[first : first + len(chunk)] = 10 * np.log10(loudest / full_scale + 1e-12)
    return db, rows * SPECTROGRAM_BINS_PER_ROW * rate / size


def spectrogram_plot(samples: np.ndarray, rate: int) -> str:
    """Magnitude in dBFS (`spectrogram_db`), up to 20 kHz on a linear axis."""
    db, top_hz = spectrogram_db(samples, rate)
    figure, axes = _figure("spectrogram", "frequency (kHz)")
    image = axes.imshow(db.T, origin="lower", aspect="auto", cmap="magma", vmin=-110, vmax=-10, extent=(0, len(samples) / rate, 0, top_hz / 1000))
    figure.colorbar(image, ax=axes, pad=0.01).ax.tick_params(labelsize=7)
    return _png(figure)


def loudness_plot(samples: np.ndarray, rate: int, target_lufs: float | None) -> str:
    """Short-term loudness (3 s windows every 0.1 s, BS.1770) with the profile's target."""
    from songmill.core.loudness import short_term_lufs

    short = short_term_lufs(samples, rate)
    times = 3.0 + np.arange(len(short)) * 0.1
    figure, axes = _figure("short-term loudness", "LUFS")
    axes.plot(times, np.maximum(short, -60), color="#207040", linewidth=1, label="short-term")
    if target_lufs is not None:
        axes.axhline(target_lufs, color="#c03030", linestyle="--", linewidth=1, label=f"target {target_lufs:g} LUFS")
    axes.set_ylim(-40, 0)
    axes.legend(fontsize=7, loc="lower right")
    return _png(figure)


PITCH_ZOOM_S = 15.0  # the close-up: the first seconds of singing, where notes and curve can be told apart


def pitch_plot(vocal: np.ndarray, rate: int, notes, memo: F0Memo | None = None) -> str:
    """The dry vocal's F0 (DIO + StoneMask) in MIDI note numbers over the melody's notes: the
    whole song above, the first PITCH_ZOOM_S seconds of singing below. `memo`: where the gate
    kept its reading of this vocal (read again when it is not there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qc.vocal import measure_f0_fast

    f0, times = measure_f0_fast(vocal[:, 0] if vocal.ndim == 2 else vocal, rate, memo)
    voiced = f0 > 0
    midi = np.full_like(f0, np.nan)
    midi[voiced] = 69 + 12 * np.log2(f0[voiced] / 440.0)
    figure, (whole, close) = plt.subplots(2, 1, figsize=(PLOT_SIZE_IN[0], PLOT_SIZE_IN[1] * 2))
    first = min((n.start_s for n in notes), default=0.0)
    for axes, window in ((whole, None), (close, (first - 0.5, first + PITCH_ZOOM_S))):
        # one collection for all the notes: a line each cost matplotlib ~4 ms (a song has hundreds)
        axes.hlines(
            [n.pitch for n in notes],
            [n.start_s for n in notes],
            [n.start_s + n.duration_s for n in notes],
            colors="#4080ff",
            alpha=0.45,
            linewidth=6,
            capstyle="butt",
        )
        axes.plot(times, midi, color="#c05000", linewidth=0.7)
        axes.set_ylabel("MIDI note", fontsize=8)
        axes.tick_params(labelsize=7)
        if notes:
            axes.set_ylim(min(n.pitch for n in notes) - 3, max(n.pitch for n in notes) + 3)
        if window:
            axes.set_xlim(*window)
    whole.set_title(f"dry vocal pitch (orange) over the score's notes (blue); below, the first {PITCH_ZOOM_S:g} s of singing", fontsize=9, loc="left")
    close.set_xlabel("time (s)", fontsize=8)
    return _png(figure)


def _checks_table(verdict: dict) -> str:
    rows = []
    for check in sorted(verdict["checks"], key=lambda c: c["passed"]):
        bar = ", ".join(f"{k} {v}" for k, v in check["bar"].items())
        mark = "pass" if check["passed"] else "FAIL"
        rows.append(
            f"<tr class='{mark.lower()}'><td>{mark}</td><td>{html.escape(check['metric'])}</td>"
            f"<td>{html.escape(str(check['value']))}</td><td>{html.escape(bar)}</td>"
            f"<td>{html.escape(check['reason'] or '')}</td></tr>"
        )
    return "<table><tr><th></th><th>metric</th><th>value</th><th>bar</th><th>reason</th></tr>" + "".join(rows) + "</table>"


def _track_section(track: dict, targets: dict[str, float | None], memo: F0Memo | None) -> str:
    status = track["status"]
    parts = [f"<section class='track'><h2>{track['number']:02d} {html.escape(track['title'])} <span class='{status}'>{status}</span></h2>"]
    if track.get("error"):
        parts.append(f"<p class='reason'>failed at stage {html.escape(str(track['failed_stage']))}: {html.escape(track['error'])}</p>")
    for reason in track.get("qc_reasons") or []:
        parts.append(f"<p class='reason'>{html.escape(reason)}</p>")
    for attempt in track.get("qc_attempts") or []:
        parts.append(f"<p class='attempt'>render with seed {attempt['seed']} turned down: {html.escape('; '.join(attempt['reasons']))}</p>")
    qc = track.get("qc") or {}
    for name, verdict in qc.get("profiles", {}).items():
        parts.append(f"<h3>profile {html.escape(name)}: {'passed' if verdict['passed'] else 'failed'}</h3>")
        parts.append(_checks_table(verdict))
    parts += _plots(track, targets, memo)
    parts.append("</section>")
    return "\n".join(parts)


def _plots(track: dict, targets: dict[str, float | None], memo: F0Memo | None) -> list[str]:
    from songmill.core.score import Score

    artifacts = track.get("artifacts") or {}
    masters = sorted(name for name in artifacts if name.startswith("master-") and name.endswith(".wav"))
    if not masters:
        return []
    profile = masters[0][len("master-") : -len(".wav")]
    samples, rate = read_wav(Path(artifacts[masters[0]]["path"]))
    images = [
        ("waveform", waveform_plot(samples, rate)),
        ("spectrogram", spectrogram_plot(samples, rate)),
        ("loudness", loudness_plot(samples, rate, targets.get(profile))),
    ]
    if "vocal-lead.wav" in artifacts and "score.json" in artifacts:
        vocal, vocal_rate = read_wav(Path(artifacts["vocal-lead.wav"]["path"]))
        notes = Score.load_json(Path(artifacts["score.json"]["path"])).part("melody").notes
        images.append(("pitch", pitch_plot(vocal, vocal_rate, notes, memo)))
    return [f"<p class='plots-of'>plots of master-{html.escape(profile)}.wav</p>"] + [
        f"<img class='plot' alt='{name}' data-plot='{name}' src='{uri}'>" for name, uri in images
    ]


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }
td, th { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left; }
tr.fail td { background: #fde8e8; } .reason { color: #a00000; } .attempt { color: #805000; }
.rendered { color: #207040; } .quarantined, .failed { color: #a00000; } img.plot { display: block; margin: 4px 0; }
"""


def _provenance_section(deliveries: list[dict]) -> str:
    """Per delivery: who signed its Content Credentials (or why none), and per track the licence
    audit and each file's manifest, watermark and AI-disclosure readings."""
    if not deliveries:
        return ""
    parts = ["<section class='provenance'><h2>Provenance and licences</h2>"]
    for delivery in deliveries:
        parts.append(
            f"<h3>profile {html.escape(delivery['profile'])}</h3><p>content credentials: {html.escape(str(delivery.get('content_credentials', '-')))}</p>"
        )
        for track in delivery.get("provenance") or []:
            rows = "".join(
                f"<tr><td>{html.escape(m['name'])}</td><td>{html.escape(m['kind'])}</td><td>{html.escape(m['version'])}</td>"
                f"<td>{html.escape(m['licence'])}</td><td>{'yes' if m['commercial_use'] else 'no'}</td><td class='{'pass' if m['allowed'] else 'fail'}'>"
                f"{'allowed' if m['allowed'] else 'refused'}</td></tr>"
                for m in track["licences"]
            )
            files = "".join(
                f"<tr><td>{html.escape(f['path'])}</td><td>{html.escape((f.get('credentials') or {}).get('state', 'unsigned'))}"
                f"{' (sidecar)' if f.get('sidecar') else ''}</td><td>{_watermark_cell(f.get('watermark'))}</td><td>{html.escape(f.get('tag_disclosure') or '-')}</td></tr>"
                for f in track["files"]
            )
            parts.append(
                f"<h4>{track['number']:02d} {html.escape(track['title'])}: AI {html.escape(track['ai_disclosure']['contains_ai'])}</h4>"
                f"<table><tr><th>model</th><th>kind</th><th>version</th><th>licence</th><th>commercial use</th><th>this profile</th></tr>{rows}</table>"
                f"<table><tr><th>file</th><th>content credentials</th><th>watermark</th><th>AI_DISCLOSURE tag</th></tr>{files}</table>"
            )
    parts.append("</section>")
    return "".join(parts)


def _watermark_cell(reading: dict | None) -> str:
    if not reading:
        return "not checked"
    return f"{'detected' if reading['detected'] else 'NOT detected'} ({reading['median_score']:.2f})"


def write_qc_report(run_report: dict, path: Path, *, targets: dict[str, float | None] | None = None, f0_memo: F0Memo | None = None) -> Path:
    """Write the release's QC report (atomically); returns its path. `targets`: each profile's
    loudness target in LUFS (None for "reference"); `f0_memo`: the gate's vocal pitch readings
    (songmill.engine.track_stages.StoredF0), drawn instead of measured again."""
    release = run_report["release"]
    tracks = run_report["tracks"]
    passed = sum(1 for t in tracks if t["status"] == "rendered")
    head = (
        f"<h1>QC report: {html.escape(release['title'])} — {html.escape(release['artist'])}</h1>"
        f"<p>release <code>{html.escape(release['id'])}</code>, run {run_report.get('run_id')}, "
        f"{run_report.get('started_at', '')}: {passed} of {len(tracks)} track(s) passed the gate.</p>"
    )
    body = "\n".join(_track_section(t, targets or {}, f0_memo) for t in tracks) + _provenance_section(run_report.get("deliveries") or [])
    data = json.dumps([t.get("qc") for t in tracks]).replace("<", "\\u003c")  # the verdicts, machine-readable
    document = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>QC {html.escape(release['id'])}</title>"
        f"<style>{STYLE}</style></head><body>{head}\n{body}\n"
        f"<script type='application/json' id='qc-data'>{data}</script>"
        f"</body></html>"
    )
    atomic_write_bytes(path, document.encode("utf-8"))
    return path
