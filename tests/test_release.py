"""Release: encoded files, tags read back by ffprobe and mutagen, the cover, identifiers, the DDEX
message validated against the ERN 4.3.2 schema with lxml, atomic delivery (killed mid-way), S3."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from lxml import etree
from PIL import Image

from songmill.catalogue import Catalogue
from songmill.core import loudness
from songmill.core.audio import decode, read_wav, resample
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.ids import make_gtin13, make_isrc, validate_isrc, validate_upc
from songmill.core.paths import safe_name
from songmill.core.profiles import load_profiles
from songmill.core.score import Score
from songmill.core.spec import load_release
from songmill.core.store import file_sha256
from songmill.engine.runner import render
from songmill.release import ddex
from songmill.release.artwork import load_cover
from songmill.release.deliver import MANIFEST, deliver_local, deliver_s3, delivery_lock, staging_folder, verify_folder, write_manifest
from songmill.release.settings import load_delivery_settings
from songmill.release.tags import read_sylt
from tests.conftest import DEBUG, PROJECT, render_release_text
from tests.test_production import ebur128

SCHEMA = ddex.SCHEMA_PATH  # the schema packaged with songmill (songmill/release/schemas/ddex)
ERN = "{http://ddex.net/xml/ern/432}"

# A sung track and an instrumental, delivered to three profiles: every container songmill writes.
RELEASE = """
release:
  id: release-test
  title: Night Ferry
  artist: Marlow & the Tide
  label: Songmill Records
  type: ep
  date: 2027-03-05
  genre: pop
  p_line: 2027 Songmill Records
  c_line: 2027 Songmill Records
  explicit: false
  ai_disclosure: {contains_ai: true, generated: [lyrics, composition, vocals, mixing, mastering]}
  profiles: [streaming, apple, preview]
tracks:
  - title: Night Ferry
    theme: the last boat across the bay
    mood: hopeful
    tempo: 104
    key: A minor
    target_duration_s: 36
    voice: {identity: ava, style: bright}
    seed: 7
  - title: Harbour Wall
    theme: a quiet harbour before dawn
    mood: calm
    tempo: 92
    key: D major
    target_duration_s: 30
    instrumentation: folk
    seed: 3
"""


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    """RELEASE rendered and delivered once for the module, without the watermark (the test config):
    test_provenance reads the mark back from every container, here formats, tags and DDEX."""
    return render_release_text(RELEASE, tmp_path_factory.mktemp("release"))


def _folder(report: dict, profile: str) -> Path:
    return Path(next(d["destination"] for d in report["deliveries"] if d["profile"] == profile))


def _ffprobe_tags(path: Path) -> dict:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=format_name:format_tags:stream=codec_name,sample_rate,bits_per_raw_sample,bits_per_sample,channels:stream_tags",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = json.loads(out)
    tags = {k.lower(): v for k, v in info["format"].get("tags", {}).items()}
    audio = next(s for s in info["streams"] if s["codec_name"] not in ("mjpeg", "png"))
    tags.update({k.lower(): v for k, v in audio.get("tags", {}).items()})  # Ogg keeps comments on the stream
    return {"tags": tags, "stream": audio, "format": info["format"]["format_name"]}


def validate_with_lxml(xml: bytes) -> list[str]:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    ok = schema.validate(etree.fromstring(xml))
    return [] if ok else [str(e) for e in schema.error_log]


# ---------------------------------------------------------------- DDEX


def test_every_profiles_ddex_message_validates_and_its_files_have_the_stated_hashes(delivered):
    assert {d["profile"] for d in delivered["deliveries"]} == {"streaming", "apple", "preview"}
    for delivery in delivered["deliveries"]:
        folder = Path(delivery["destination"])
        xml = (folder / f"{delivered['upc']}.xml").read_bytes()
        assert validate_with_lxml(xml) == []
        document = etree.fromstring(xml)
        files = document.findall(".//File")
        assert len(files) >= 3  # two tracks and the cover at least
        for element in files:
            path = folder / element.findtext("URI")
            assert path.is_file()
            assert file_sha256(path) == element.findtext("HashSum/HashSumValue")
            assert path.stat().st_size == int(element.findtext("FileSize"))
        assert document.findtext(".//Release/ReleaseId/ICPN") == delivered["upc"]
        assert [e.text for e in document.findall(".//SoundRecording/SoundRecordingEdition/ResourceId/ISRC")] == [
            delivered["isrcs"]["1"],
            delivered["isrcs"]["2"],
        ]
        assert document.findtext(".//Release/ContainsAI") == "Partly"  # not every part is declared machine-made
        roles = {e.text for e in document.findall(".//SoundRecording[ResourceReference='A1']/Contributor/Role/Value")}
        assert roles == {"Lyricist", "Composer", "LeadVocalist", "MixingEngineer", "MasteringEngineer"}
        instrumental = document.find(".//SoundRecording[ResourceReference='A2']")
        assert instrumental.findtext("IsInstrumental") == "true"
        assert "LeadVocalist" not in {e.text for e in instrumental.findall("Contributor/Role/Value")}
        deal = document.find(".//ReleaseDeal/Deal/DealTerms")
        assert deal.findtext("ValidityPeriod/StartDate") == "2027-03-05"
        assert document.findtext("MessageHeader/MessageRecipient/PartyId").startswith("PADPIDA")


def test_an_invalid_message_is_refused_with_the_schemas_reason():
    broken = (
        b'<?xml version="1.0"?><ern:NewReleaseMessage xmlns:ern="http://ddex.net/xml/ern/432" '
        b'AvsVersionId="9" LanguageAndScriptCode="en"><MessageHeader/></ern:NewReleaseMessage>'
    )
    with pytest.raises(SongmillError, match=r"does not validate against release-notification.xsd \(line 1: .*MessageHeader"):
        ddex.validate(broken)


def test_unusual_titles_stay_in_the_message_and_never_reach_a_file_name():
    title = "Ünder/../the 🌊 " + "x" * 280
    release = ddex.PackagedRelease(
        upc=make_gtin13("0200000", 5),
        title=title,
        artist="CON",
        label="Songmill Records",
        type="single",
        date=dt.date(2027, 1, 1),
        genre="hip-hop",
        p_line="2027 Songmill Records",
        c_line="2027 Songmill Records",
        explicit=True,
        contains_ai=False,
        ai_parts=(),
        cover=ddex.PackagedFile("resources/x.jpg", "0" * 64, 1),
        tracks=[
            ddex.PackagedTrack(
                1,
                title,
                make_isrc("AA", "6Q7", 2027, 1),
                61.0,
                True,
                [ddex.PackagedFile("resources/x_01_001.flac", "1" * 64, 2, "flac", "flac", 44100, 16, None, 2, 61.0)],
            )
        ],
    )
    profile = load_profiles()["streaming"]
    xml = ddex.new_release_message(release, "streaming", profile, load_delivery_settings().sender, created=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert validate_with_lxml(xml) == []
    assert etree.fromstring(xml).findtext(".//Release/DisplayTitleText") == title
    assert etree.fromstring(xml).findtext(".//Release/ParentalWarningType") == "Explicit"
    for text, expected in (
        ("a/b", "a-b"),
        ("..", "untitled"),
        ("🌊🌊", "untitled"),
        ("CON", "untitled-con"),
        ("Ünder/../the 🌊", "under-the"),
        ("Café Nuit / Ørsted", "cafe-nuit-orsted"),
        ("Straße", "strasse"),
    ):
        assert safe_name(text) == expected
    assert len(safe_name("x" * 300)) == 80
    from songmill.release.artwork import cover_jpeg, generate_cover

    with Image.open(__import__("io").BytesIO(cover_jpeg(generate_cover(title, "CON", "dark", seed=1)))) as cover:
        assert cover.size == (3000, 3000)  # the title shrinks to fit; glyphs the font lacks do not stop it


# ---------------------------------------------------------------- files and tags


def test_ffprobe_reads_title_artist_isrc_and_lyrics_from_every_file(delivered):
    isrc = delivered["isrcs"]["1"]
    seen = set()
    for profile in ("streaming", "apple", "preview"):
        for path in sorted((_folder(delivered, profile) / "resources").glob(f"{delivered['upc']}_01_001*")):
            if path.suffix in (".lrc", ".c2pa"):  # synced lyrics; a C2PA manifest beside its file
                continue
            probe = _ffprobe_tags(path)
            tags = probe["tags"]
            assert tags["title"] == "Night Ferry" and tags["artist"] == "Marlow & the Tide", path.name
            assert (tags.get("isrc") or tags.get("tsrc")) == isrc, path.name
            lyrics = tags.get("lyrics") or tags.get("lyrics-eng")
            assert lyrics and len(lyrics.splitlines()) > 4, path.name
            seen.add(path.suffix)
    assert seen == {".flac", ".wav", ".m4a", ".mp3", ".opus"}


def test_every_file_tag_and_manifest_says_the_ddex_messages_ai_disclosure(delivered):
    from songmill.core.disclosure import parse_tag
    from songmill.release.credentials import manifest_assertion, read_credentials
    from songmill.release.provenance import DISCLOSURE_LABEL
    from songmill.release.tags import read_ai_disclosure

    checked = set()
    for profile in ("streaming", "apple", "preview"):
        folder = _folder(delivered, profile)
        recordings = etree.parse(str(next(folder.glob("*.xml")))).findall(".//SoundRecording")
        provenance = json.loads((folder / "provenance.json").read_text())
        for recording, track in zip(recordings, provenance["tracks"], strict=True):
            said = track["ai_disclosure"]
            roles = {c.findtext("Role/Value") for c in recording.findall("Contributor") if c.findtext("SpecialContributor") == "GenerativeAI"}
            assert recording.findtext("ContainsAI") == said["contains_ai"]
            assert roles == {ddex.AI_ROLES[part] for part, origin in said["parts"].items() if origin == "ai"}
            for entry in track["files"]:
                path = folder / entry["path"]
                assert parse_tag(read_ai_disclosure(path)).to_dict() == said, path.name
                assert manifest_assertion(read_credentials(path).manifest, DISCLOSURE_LABEL) == said, path.name
                checked.add(path.suffix)
    # the EP names five AI parts, so both recordings are Partly AI; the instrumental has no vocals or lyrics
    assert [t["ai_disclosure"]["contains_ai"] for t in provenance["tracks"]] == ["Partly", "Partly"]
    assert provenance["tracks"][1]["ai_disclosure"]["parts"]["vocals"] == "none"
    assert checked == {".flac", ".wav", ".m4a", ".mp3", ".opus"}


def test_mutagen_reads_the_syllable_timings_of_the_score(delivered):
    mp3 = _folder(delivered, "preview") / "resources" / f"{delivered['upc']}_01_001.mp3"
    sylt = read_sylt(mp3)
    score = Score.load_json(Path(delivered["tracks"][0]["artifacts"]["score.json"]["path"]))
    melody = [n for n in next(p for p in score.parts if p.role == "melody").notes if n.syllable and not n.melisma]
    assert len(sylt) == len(melody) > 20
    for (text, ms), note in zip(sylt, sorted(melody, key=lambda n: n.start_s)):
        assert text.strip() == note.syllable.text and ms == round(note.start_s * 1000)
    lrc = (mp3.with_suffix(".lrc")).read_text().splitlines()
    files = delivered["tracks"][0]["export"]["files"]
    first = next(f for f in files if f["profile"] == "preview" and not f["clip"])  # the DDEX message's duration is its first file's
    minutes, seconds = divmod(int(first["duration_s"]), 60)
    assert f"[length:{minutes:02d}:{seconds:02d}]" in lrc  # the delivered file's length (it was the song's, without its 2 s tail)
    lines = [line for line in lrc if line[1:3].isdigit()]
    lyrics = json.loads(Path(delivered["tracks"][0]["artifacts"]["lyrics.json"]["path"]).read_text())
    assert [line.split("]", 1)[1] for line in lines] == [ln["text"] for s in lyrics["sections"] for ln in s["lines"]]
    assert not (_folder(delivered, "preview") / "resources" / f"{delivered['upc']}_01_002.lrc").exists()  # instrumental


def test_lossless_files_are_the_master_dithered_at_their_rate_and_depth(delivered):
    track = delivered["tracks"][0]
    master, rate = read_wav(Path(track["artifacts"]["master-streaming.wav"]["path"]))
    flac = _folder(delivered, "streaming") / "resources" / f"{delivered['upc']}_01_001.flac"
    probe = _ffprobe_tags(flac)["stream"]
    assert (probe["sample_rate"], probe["bits_per_raw_sample"]) == ("44100", "16")
    decoded, _ = decode(flac, sample_rate_hz=44100)
    error = decoded - resample(master, from_hz=rate, to_hz=44100, method="soxr")
    assert 20 * np.log10(np.sqrt(np.mean(error**2))) == pytest.approx(-96.3, abs=1.5)  # TPDF dither at 16 bits, no more
    wav = _folder(delivered, "apple") / "resources" / f"{delivered['upc']}_01_001.wav"
    probe = _ffprobe_tags(wav)["stream"]
    assert (probe["sample_rate"], probe["bits_per_sample"]) == ("48000", 24)
    apple_master, _ = read_wav(Path(track["artifacts"]["master-apple.wav"]["path"]))
    assert np.abs(decode(wav, sample_rate_hz=48000)[0] - apple_master).max() < 3 / 2**23


def test_lossy_files_hold_loudness_and_stay_under_the_lossy_ceiling_by_ffmpeg(delivered):
    profiles = load_profiles()
    for profile, suffix in (("apple", ".m4a"), ("preview", ".mp3"), ("preview", ".opus")):
        path = _folder(delivered, profile) / "resources" / f"{delivered['upc']}_01_001{suffix}"
        measured = ebur128(path)
        assert measured["true_peak"] <= profiles[profile].lossy_true_peak_dbtp, path.name
        assert measured["integrated"] == pytest.approx(profiles[profile].loudness_lufs, abs=0.6), path.name
    opus = _ffprobe_tags(_folder(delivered, "preview") / "resources" / f"{delivered['upc']}_01_001.opus")
    assert opus["tags"]["r128_track_gain"] == str(
        round((-23 - next(f for f in delivered["tracks"][0]["export"]["files"] if f["file"] == "export-preview-160k.opus")["integrated_lufs"]) * 256)
    )


def test_preview_clips_are_30_seconds_from_before_the_first_chorus_and_faded(delivered):
    track = delivered["tracks"][0]
    score = Score.load_json(Path(track["artifacts"]["score.json"]["path"]))
    chorus = next(s for s in score.sections if s.name == "chorus")
    chorus_s = score.seconds_at(chorus.start_bar * score.beats_per_bar)
    clip = track["export"]["clips"]["preview"]
    assert clip["start_s"] == pytest.approx(max(0.0, min(chorus_s - 5.0, track["duration_s"] - 30)), abs=0.01)
    path = _folder(delivered, "preview") / "resources" / f"{delivered['upc']}_01_001_preview.mp3"
    audio, _ = decode(path, sample_rate_hz=44100)
    assert len(audio) / 44100 == pytest.approx(30.0, abs=0.1)
    edge = lambda part: float(np.sqrt(np.mean(part**2)))  # noqa: E731
    body = edge(audio[44100 * 10 : 44100 * 20])
    assert edge(audio[:441]) < body / 30 and edge(audio[-441:]) < body / 30  # faded in and out
    assert _ffprobe_tags(path)["tags"]["title"] == "Night Ferry"
    # its synced lyrics are what it sings, timed from its own start (they were the whole song's, 23 s ahead)
    sung = [(text, ms) for text, ms in read_sylt(path.with_name(path.name.replace("_preview", "")))]
    start_ms = round(clip["start_s"] * 1000)
    assert read_sylt(path) == [(text, ms - start_ms) for text, ms in sung if start_ms <= ms < start_ms + 30_000] != []
    # and it is no louder than the profile asks, by ffmpeg's meter (a chorus alone read 1.7 LU above it)
    target = load_profiles()["preview"].loudness_lufs
    for clip_file in (path, path.with_suffix(".opus")):
        assert ebur128(clip_file)["integrated"] <= target + 0.5, clip_file.name


def test_a_clip_louder_than_its_profile_is_turned_down_to_it_and_a_quieter_one_left_alone():
    from songmill.core.loudness import integrated_lufs
    from songmill.release.encode import no_louder_than

    rate = 44100
    t = np.arange(30 * rate) / rate
    tone = np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)
    loud = tone * np.float32(10 ** ((-10 - integrated_lufs(tone, rate)) / 20))  # a chorus at -10 LUFS
    assert integrated_lufs(no_louder_than(loud, rate, -14.0), rate) == pytest.approx(-14.0, abs=0.05)
    quiet = loud * np.float32(10 ** (-10 / 20))  # -20 LUFS: raising it could pass the master's ceiling
    assert np.array_equal(no_louder_than(quiet, rate, -14.0), quiet)


def test_the_cover_is_a_3000_pixel_rgb_jpeg_and_tags_carry_it(delivered):
    resources = _folder(delivered, "streaming") / "resources"
    with Image.open(resources / f"{delivered['upc']}.jpg") as cover:
        assert (cover.format, cover.mode, cover.size) == ("JPEG", "RGB", (3000, 3000))
        assert np.asarray(cover).std() > 10  # a picture, not a flat fill
    with Image.open(resources / f"{delivered['upc']}_thumbnail.jpg") as thumb:
        assert thumb.size == (600, 600)
    from mutagen.flac import FLAC

    [picture] = FLAC(resources / f"{delivered['upc']}_01_001.flac").pictures
    assert (picture.type, picture.width, picture.mime) == (3, 3000, "image/jpeg")


def test_the_manifest_verifies_with_sha256sum_and_lists_every_file(delivered):
    for delivery in delivered["deliveries"]:
        folder = Path(delivery["destination"])
        result = subprocess.run(["sha256sum", "--quiet", "-c", MANIFEST], cwd=folder, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert verify_folder(folder) == []
        assert file_sha256(folder / MANIFEST) == delivery["manifest_sha256"]
        assert not list(folder.parent.glob(".staging-*"))
    listed = {row["path"] for row in delivered["delivered"]}
    assert all(Path(p).is_file() for p in listed) and len(listed) == len(delivered["delivered"])


def test_the_catalogue_records_identifiers_and_deliveries(delivered, tmp_path):
    catalogue = Catalogue.open(f"sqlite:///{Path(delivered['catalogue'].removeprefix('sqlite:///'))}")
    rows = catalogue.deliveries("release-test")
    listed = subprocess.run(
        [sys.executable, "-m", "songmill", "catalogue", "deliveries", "release-test", "--json"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, "SONGMILL_DATABASE_URL": delivered["catalogue"]},
    )
    assert listed.returncode == 0 and json.loads(listed.stdout) == rows
    assert {r["profile"] for r in rows} == {"streaming", "apple", "preview"} and all(r["upc"] == delivered["upc"] for r in rows)
    assert validate_upc(delivered["upc"]) == delivered["upc"]
    assert [validate_isrc(i) for i in delivered["isrcs"].values()] == list(delivered["isrcs"].values())


# ---------------------------------------------------------------- identifiers


def test_isrcs_and_upcs_are_allocated_once_and_never_reused(tmp_path):
    catalogue = Catalogue.open(f"sqlite:///{tmp_path / 'c.db'}")
    spec = load_release(PROJECT / "config/releases/harbour-lights-ep.yaml")
    catalogue.upsert_release(spec, config_path="x", config_sha256="0" * 64)
    tracks = [catalogue.upsert_track(spec.release.id, n, title=f"t{n}", seed=n) for n in (1, 2)]
    args = dict(given="auto", country="AA", registrant="6Q7", year=2027)
    first = [catalogue.track_isrc(t, **args) for t in tracks]
    assert first == ["AA6Q72700001", "AA6Q72700002"]
    assert [catalogue.track_isrc(t, **args) for t in tracks] == first  # kept, not re-issued
    upc = catalogue.release_upc(spec.release.id, given="auto", company_prefix="0200000")
    assert upc == make_gtin13("0200000", 1) and catalogue.release_upc(spec.release.id, given="auto", company_prefix="0200000") == upc
    third = catalogue.upsert_track(spec.release.id, 3, title="t3", seed=3)
    with pytest.raises(SongmillError, match="ISRC AA6Q72700001 already belongs to track 1 of release harbour-lights-ep"):
        catalogue.track_isrc(third, **{**args, "given": "AA6Q72700001"})
    assert catalogue.track_isrc(third, **args) == "AA6Q72700003"


def test_an_identifier_given_by_hand_is_skipped_by_the_series_that_would_reach_it(tmp_path):
    """A config may give a release or track a number of the series `auto` draws from (a label's
    own earlier ISRC, say); the series steps over it rather than handing it out a second time.
    Until 2026-12-05 it did, and the second release's delivery replaced the first's folder."""
    catalogue = Catalogue.open(f"sqlite:///{tmp_path / 'c.db'}")
    spec = load_release(PROJECT / "config/releases/harbour-lights-ep.yaml")
    catalogue.upsert_release(spec, config_path="x", config_sha256="0" * 64)
    by_hand, *autos = [catalogue.upsert_track(spec.release.id, n, title=f"t{n}", seed=n) for n in (1, 2, 3)]
    args = dict(country="AA", registrant="6Q7", year=2027)
    assert catalogue.track_isrc(by_hand, given="AA6Q72700001", **args) == "AA6Q72700001"
    assert [catalogue.track_isrc(t, given="auto", **args) for t in autos] == ["AA6Q72700002", "AA6Q72700003"]
    other = spec.model_copy(update={"release": spec.release.model_copy(update={"id": "another-ep"})})
    catalogue.upsert_release(other, config_path="y", config_sha256="1" * 64)
    assert catalogue.release_upc(spec.release.id, given=make_gtin13("0200000", 1), company_prefix="0200000") == make_gtin13("0200000", 1)
    assert catalogue.release_upc("another-ep", given="auto", company_prefix="0200000") == make_gtin13("0200000", 2)
    fields = dict(parent=None, operations=[], added=[], command=None, author="t", reason=None, config_sha256="0" * 64, seed=1, track_spec={})
    catalogue.add_version(spec.release.id, 1, **fields, artifacts={}, recomputed=[], measures={}, folder="v", run_id=None)
    catalogue.track_isrc(catalogue.upsert_track(spec.release.id, 4, title="t4", seed=4), given="AA6Q72700005", **args)  # the next one, by hand
    assert catalogue.version_isrc(spec.release.id, 1, 1, **args) == "AA6Q72700004"  # an edited version: the same series
    assert catalogue.track_isrc(catalogue.upsert_track(spec.release.id, 5, title="t5", seed=5), given="auto", **args) == "AA6Q72700006"
    with pytest.raises(SongmillError, match="ISRC AA6Q72700004 already belongs to version 1 of track 1 of release harbour-lights-ep"):
        catalogue.track_isrc(catalogue.upsert_track(spec.release.id, 6, title="t6", seed=6), given="AA6Q72700004", **args)


def test_a_upc_refused_for_one_release_is_not_kept_for_it(tmp_path):
    """A user gave a single the EP's UPC; the delivery was refused, they wrote `upc: auto` as told,
    and the next render delivered the single under the EP's UPC, over the EP's folder: the
    refused UPC had been recorded for the single before it was checked."""
    catalogue = Catalogue.open(f"sqlite:///{tmp_path / 'c.db'}")
    ep = load_release(PROJECT / "config/releases/harbour-lights-ep.yaml")
    catalogue.upsert_release(ep, config_path="x", config_sha256="0" * 64)
    taken = catalogue.release_upc(ep.release.id, given="auto", company_prefix="0200000")
    single = ep.model_copy(update={"release": ep.release.model_copy(update={"id": "a-single", "upc": taken})})
    catalogue.upsert_release(single, config_path="y", config_sha256="1" * 64)
    with pytest.raises(SongmillError, match=f"UPC {taken} already belongs to release harbour-lights-ep in the catalogue"):
        catalogue.release_upc("a-single", given=taken, company_prefix="0200000")
    catalogue.upsert_release(single.model_copy(update={"release": single.release.model_copy(update={"upc": "auto"})}), config_path="y", config_sha256="2" * 64)
    assert catalogue.release_upc("a-single", given="auto", company_prefix="0200000") == make_gtin13("0200000", 2)  # its own
    # a catalogue an older songmill wrote holds the refused UPC for the single: `auto` gives it its own still
    from songmill.catalogue.schema import Release

    with catalogue.session() as s, s.begin():
        s.get(Release, "a-single").upc = taken
    assert catalogue.release_upc("a-single", given="auto", company_prefix="0200000") == make_gtin13("0200000", 3)
    assert catalogue.release_upc(ep.release.id, given="auto", company_prefix="0200000") == taken  # the EP keeps the one it delivered under


def test_an_identifier_the_catalogue_gave_elsewhere_is_refused_before_any_work(tmp_path, monkeypatch):
    """A config that gives its release another release's UPC, or a track another track's ISRC,
    was rendered whole and then refused at delivery (exit 1); it is refused first, at its lines."""
    from songmill.engine.runner import start_release

    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    catalogue = Catalogue.open()
    ep = load_release(PROJECT / "config/releases/harbour-lights-ep.yaml")
    catalogue.upsert_release(ep, config_path="x", config_sha256="0" * 64)
    upc = catalogue.release_upc(ep.release.id, given="auto", company_prefix="0200000")
    isrc = catalogue.track_isrc(catalogue.upsert_track(ep.release.id, 1, title="t1", seed=1), given="auto", country="AA", registrant="6Q7", year=2027)
    catalogue.close()
    text = DEBUG.read_text().replace("upc: auto", f'upc: "{upc}"').replace("isrc: auto", f"isrc: {isrc}")
    config = tmp_path / "debug.yaml"
    config.write_text(text)
    lines = text.splitlines()
    upc_line, isrc_line = lines.index(f'  upc: "{upc}"') + 1, lines.index(f"    isrc: {isrc}") + 1
    with pytest.raises(ConfigError) as caught:
        start_release(config, out_dir=tmp_path / "dist")
    assert caught.value.problems == [
        f"{config}:{upc_line}: release.upc: UPC {upc} already belongs to release harbour-lights-ep in the catalogue; an identifier is never reused (give this one its own, or 'auto')",
        f"{config}:{isrc_line}: tracks[0].isrc: ISRC {isrc} already belongs to track 1 of release harbour-lights-ep in the catalogue; an identifier is never reused (give this one its own, or 'auto')",
    ]
    assert not (tmp_path / "dist").exists()


def test_a_delivery_folder_of_another_release_is_never_replaced(tmp_path):
    """The same UPC issued twice (a new catalogue beside the old output folder): the second
    release's delivery is refused before it writes, and the first one's folder is as it was."""
    from songmill.release.package import _check_folder_is_this_releases

    folder = tmp_path / "streaming" / "0200000000011"
    folder.mkdir(parents=True)
    (folder / "provenance.json").write_text(json.dumps({"release": {"id": "harbour-lights-ep", "upc": "0200000000011"}}))
    _check_folder_is_this_releases(folder, "harbour-lights-ep", "0200000000011")  # its own: replaced as a redelivery
    _check_folder_is_this_releases(tmp_path / "streaming" / "0200000000028", "a-single", "0200000000028")  # nothing there yet
    with pytest.raises(
        SongmillError,
        match=r"0200000000011 holds release 'harbour-lights-ep', delivered under UPC 0200000000011, which the catalogue now gives 'a-single'; a UPC belongs to one release",
    ):
        _check_folder_is_this_releases(folder, "a-single", "0200000000011")


def test_identifier_builders_make_valid_codes():
    assert make_isrc("GB", "A1B", 2026, 42) == "GBA1B2600042"
    assert make_gtin13("400638", 133393) == "4006381333931"  # a real EAN-13 (GS1 example)
    assert validate_upc(make_gtin13("0200000", 12345)) == "0200000123451"
    with pytest.raises(ValueError, match="designation 100000 is outside"):
        make_isrc("GB", "A1B", 2026, 100000)


# ---------------------------------------------------------------- bad input


def _config(tmp_path: Path, **release_extra) -> Path:
    text = (PROJECT / "config/releases/demo.yaml").read_text()
    for key, value in release_extra.items():
        text = text.replace("  profiles: [streaming, preview]", f"  profiles: [streaming, preview]\n  {key}: {value}")
    path = tmp_path / "release.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "size,mode,message",
    [
        ((1200, 800), "RGB", "is 1200×800 pixels (a cover must be square and at least 3000×3000)"),
        ((1400, 1400), "RGB", "is 1400×1400 pixels"),
    ],
)
def test_a_cover_of_the_wrong_size_is_named_at_its_line(tmp_path, size, mode, message):
    Image.new(mode, size, (10, 20, 30)).save(tmp_path / "cover.png")
    with pytest.raises(ConfigError, match=r"release.yaml:\d+: release.cover: 'cover.png' " + message.replace("(", r"\(").replace(")", r"\)")):
        load_release(_config(tmp_path, cover="cover.png"))


def test_a_provided_cover_in_cmyk_or_with_alpha_becomes_3000_rgb(tmp_path):
    Image.new("CMYK", (3000, 3000), (0, 50, 100, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("RGBA", (3600, 3600), (200, 10, 10, 128)).save(tmp_path / "alpha.png")
    for name in ("cmyk.jpg", "alpha.png"):
        spec = load_release(_config(tmp_path, cover=name))
        image = load_cover(Path(spec.release.cover))
        assert (image.mode, image.size) == ("RGB", (3000, 3000))
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match=r"release.cover: 'junk.jpg' is not an image"):
        load_release(_config(tmp_path, cover="junk.jpg"))


def test_a_profile_without_a_recipient_cannot_build_a_message():
    profile = load_profiles()["streaming"].model_copy(update={"recipient": None})
    with pytest.raises(SongmillError, match="no DDEX message for profile 'streaming': profile 'streaming' names no recipient"):
        ddex.new_release_message(None, "streaming", profile, load_delivery_settings().sender, created=dt.datetime.now())


@pytest.mark.long
def test_without_a_configured_identity_the_release_goes_out_without_ddex_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SONGMILL_CONFIG_DIR", str(PROJECT / "config"))  # as shipped: no sender, registrant, recipients
    config = DEBUG  # not the demo: only the demo has the demonstration identity
    report = json.loads(render(config, out_dir=tmp_path / "dist").read_text())
    [delivery] = report["deliveries"]
    assert "config/delivery.yaml names no sender" in delivery["ddex_skipped"]
    folder = Path(delivery["destination"])
    assert not list(folder.glob("*.xml")) and verify_folder(folder) == []
    assert report["isrcs"] == {"1": None}
    flac = folder / "resources" / f"{report['upc']}_01_001.flac"
    tags = _ffprobe_tags(flac)["tags"]
    assert tags["title"] == "Little Lanterns" and "isrc" not in tags


def test_a_missing_master_stops_the_export_naming_the_profile(tmp_path):
    from songmill.engine.stage import StageContext, TrackJob
    from songmill.engine.track_stages import EXPORT

    spec = load_release(PROJECT / "config/releases/demo.yaml")
    job = TrackJob(spec, 0, 7, True)
    context = StageContext(EXPORT, job, EXPORT.params(job), {"score.json": tmp_path / "s", "lyrics.json": tmp_path / "l"}, tmp_path, None)
    with pytest.raises(SongmillError, match=r"track 1 \(Paper Lanterns\) has no master for profile 'streaming' \(master-streaming.wav\)"):
        EXPORT.run(context)


@pytest.mark.long
def test_a_delivery_that_fails_leaves_the_old_folder_and_nothing_half_written(tmp_path, monkeypatch):
    config = DEBUG  # one short track, one profile: what is under test is the delivery
    first = json.loads(render(config, out_dir=tmp_path / "dist").read_text())
    folder = _folder(first, "streaming")
    before = {p: file_sha256(p) for p in folder.rglob("*") if p.is_file()}

    real = ddex.new_release_message
    monkeypatch.setattr(ddex, "new_release_message", lambda *a, **k: real(*a, **k).replace(b"ISRC>", b"Isrc>"))
    with pytest.raises(SongmillError, match=r"delivery failed: the DDEX message for profile 'streaming' does not validate"):
        render(config, out_dir=tmp_path / "dist")
    assert {p: file_sha256(p) for p in folder.rglob("*") if p.is_file()} == before
    assert not list(folder.parent.glob(".staging-*"))
    report = json.loads((tmp_path / "dist" / "debug-single" / "run-report.json").read_text())
    assert report["status"] == "failed" and report["delivered"] == [] and "does not validate" in report["delivery_error"]


# ---------------------------------------------------------------- atomic delivery

DELIVER_AND_DIE = r"""
import os, shutil, signal, sys
from pathlib import Path
from songmill.release import deliver
dest, payload, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if os.environ.get("NO_EXCHANGE"):
    deliver._exchange = lambda a, b: False
def step(name):
    print(name, flush=True)
    if name == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
with deliver.delivery_lock(dest), deliver.staging_folder(dest) as staged:
    for i, f in enumerate(sorted(payload.iterdir())):
        shutil.copyfile(f, staged / f.name)
        step(f"copied {i}")
    deliver.write_manifest(staged)
    step("manifest")
    deliver.deliver_local(staged, dest, on_step=step)
"""


def _payload(folder: Path, tag: str, files: int = 4) -> Path:
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"part{i}.bin").write_bytes((tag * 1000).encode() + os.urandom(2_000_000))
    return folder


def _state(dest: Path) -> str | None:
    """'old', 'new' or None (absent); a partial folder fails the test."""
    if not dest.exists():
        return None
    assert verify_folder(dest) == [], f"partial delivery: {verify_folder(dest)}"
    return "old" if (dest / "part0.bin").read_bytes().startswith(b"old") else "new"


@pytest.mark.parametrize("no_exchange", [False, True], ids=["renameat2", "two-renames"])
def test_killing_a_delivery_leaves_the_old_complete_folder_or_none(tmp_path, no_exchange):
    dest = tmp_path / "dist" / "streaming" / "0200000000011"
    old, new = _payload(tmp_path / "old", "old"), _payload(tmp_path / "new", "new")
    script = tmp_path / "deliver_and_die.py"
    script.write_text(DELIVER_AND_DIE)
    env = {**os.environ, "PYTHONPATH": str(PROJECT), **({"NO_EXCHANGE": "1"} if no_exchange else {})}

    def run(payload: Path, kill_at: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), str(dest), str(payload), kill_at], capture_output=True, text=True, env=env)

    assert run(old, "never").returncode == 0 and _state(dest) == "old"
    points = ["copied 0", "copied 2", "manifest", "verified", "old moved aside" if no_exchange else "swapped", "delivered"]
    for point in points:
        result = run(new, point)
        assert result.returncode == -signal.SIGKILL, result.stderr
        state = _state(dest)
        assert state in ("old", "new", None)
        if point in ("copied 0", "copied 2", "manifest", "verified"):
            assert state == "old"  # nothing had replaced it yet
        if not no_exchange:
            assert state is not None  # the exchange is atomic: never a moment without a folder
        assert run(old, "never").returncode == 0 and _state(dest) == "old"  # the next delivery cleans up and works
        assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".staging")] == []
    # and killed at arbitrary moments while it copies
    for delay in (0.05, 0.15, 0.3):
        process = subprocess.Popen([sys.executable, str(script), str(dest), str(new), "never"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert _state(dest) in ("old", "new", None)


def test_redelivery_replaces_the_folder_and_leaves_no_staging(tmp_path):
    dest = tmp_path / "out" / "0200000000011"
    for tag in ("old", "new"):
        payload = _payload(tmp_path / tag, tag, files=2)
        with delivery_lock(dest), staging_folder(dest) as staged:
            for f in payload.iterdir():
                (staged / f.name).write_bytes(f.read_bytes())
            write_manifest(staged)
            deliver_local(staged, dest)
        assert _state(dest) == tag
    assert sorted(p.name for p in dest.parent.iterdir()) == ["0200000000011"]  # no lock file stays behind


def test_deliveries_of_one_folder_never_overlap_and_leave_no_lock_file(tmp_path):
    """Six deliveries at once (threads, each its own open file): one at a time, even while each
    removes the lock file it held as it ends."""
    import threading
    import time

    dest = tmp_path / "out" / "0200000000011"
    spans: list[tuple[float, float]] = []

    def deliver_one() -> None:
        with delivery_lock(dest):
            start = time.monotonic()
            time.sleep(0.02)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=deliver_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans.sort()
    assert len(spans) == 6 and all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert list(dest.parent.iterdir()) == []


def test_a_tampered_staging_folder_is_never_delivered(tmp_path):
    dest = tmp_path / "out" / "0200000000011"
    with delivery_lock(dest), staging_folder(dest) as staged:
        (staged / "a.bin").write_bytes(b"right")
        write_manifest(staged)
        (staged / "a.bin").write_bytes(b"wrong")
        with pytest.raises(SongmillError, match=r"stopped before it replaced anything: a.bin does not match its sha256"):
            deliver_local(staged, dest)
    assert not dest.exists()


@pytest.mark.long
@pytest.mark.s3
def test_delivery_to_an_s3_bucket_points_at_a_complete_batch(tmp_path, s3_server, monkeypatch):
    from minio import Minio

    endpoint, key, secret = s3_server
    for name, value in {"SONGMILL_S3_ENDPOINT": endpoint, "SONGMILL_S3_ACCESS_KEY": key, "SONGMILL_S3_SECRET_KEY": secret}.items():
        monkeypatch.setenv(name, value)
    client = Minio(endpoint, access_key=key, secret_key=secret, secure=False)
    batches = []
    for tag in ("old", "new"):
        payload = _payload(tmp_path / tag, tag, files=2)
        staged = tmp_path / f"staged-{tag}"
        staged.mkdir()
        for f in payload.iterdir():
            (staged / f.name).write_bytes(f.read_bytes())
        write_manifest(staged)
        batches.append(deliver_s3(staged, "s3://songmill-dist/streaming", "0200000000011"))
    current = client.get_object("songmill-dist", "streaming/0200000000011/CURRENT").read().decode()
    assert batches[1].endswith(current)
    names = sorted(o.object_name for o in client.list_objects("songmill-dist", prefix="streaming/0200000000011/", recursive=True))
    assert names == sorted(
        ["streaming/0200000000011/CURRENT"] + [f"streaming/0200000000011/{current}/{n}" for n in ("checksums.sha256", "part0.bin", "part1.bin")]
    )
    manifest = client.get_object("songmill-dist", f"streaming/0200000000011/{current}/checksums.sha256").read().decode()
    for line in manifest.splitlines():
        digest, name = line.split("  ")
        body = client.get_object("songmill-dist", f"streaming/0200000000011/{current}/{name}").read()
        assert body.startswith(b"new") and __import__("hashlib").sha256(body).hexdigest() == digest


# ---------------------------------------------------------------- meters at delivery rates


def test_our_loudness_meter_agrees_with_pyloudnorm_at_44_1_khz():
    rate = 44100
    rng = np.random.default_rng(2)
    music = np.cumsum(rng.standard_normal((rate * 8, 2)), axis=0)
    music = (music - music.mean(axis=0)) / np.abs(music).max() * 0.4
    assert loudness.integrated_lufs(music, rate) == pytest.approx(pyloudnorm.Meter(rate).integrated_loudness(music), abs=0.01)


# ------------------------------------------------------------------------ redelivery


@pytest.mark.long
def test_a_release_delivered_with_other_audio_is_refused_unless_redelivered_and_the_catalogue_says_what_replaced_what(tmp_path, monkeypatch, capsys):
    """A rerun (same audio) delivers again; another seed is rendered and reported but not
    delivered over the first delivery, whose files stay as they were, until `--redeliver`; the
    catalogue records each delivery, the one it replaced and, when the audio changed, how."""
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    out = tmp_path / "dist"
    audio = lambda: {p.name: file_sha256(p) for p in (out / "streaming").rglob("*.flac")}  # noqa: E731 - the delivered audio
    render(DEBUG, out_dir=out, seed=11)
    render(DEBUG, out_dir=out, seed=11)  # a rerun: the same audio, delivered again
    first = audio()
    assert len(first) == 1

    with pytest.raises(SongmillError) as err:
        render(DEBUG, out_dir=out, seed=12)
    message = str(err.value)
    assert message.startswith("delivery failed: release 'debug-single' was delivered to profile 'streaming' on ")
    assert "and this render's audio differs (track 1 sounds different); it was not delivered over it. Render with --redeliver" in message
    assert audio() == first  # untouched
    report = json.loads((out / "debug-single" / "run-report.json").read_text())
    assert report["status"] == "failed" and report["delivered"] == [] and report["tracks"][0]["status"] == "rendered"

    assert report["changed_under_same_isrc"] == []  # nothing went out
    capsys.readouterr()
    render(DEBUG, out_dir=out, seed=12, redeliver=True)
    assert audio().keys() == first.keys() and audio() != first
    # other audio under the same ISRC: said, since a materially changed recording needs a new one
    report = json.loads((out / "debug-single" / "run-report.json").read_text())
    [kept] = report["changed_under_same_isrc"]
    assert kept["track"] == 1 and kept["isrc"] == report["isrcs"]["1"]
    printed = capsys.readouterr()
    said = " ".join((printed.out + printed.err).split())
    assert (
        f"track 1 sounds different from its delivery of {kept['delivered_at']} and went out under the same ISRC {kept['isrc']}: a materially changed recording"
        in said
    )
    catalogue = Catalogue.open()
    rows = catalogue.deliveries("debug-single")
    catalogue.close()
    assert [(r["replaces"], r["replaced_because"]) for r in rows] == [(None, None), (rows[0]["id"], None), (rows[1]["id"], "track 1 sounds different")]
    listed = subprocess.run(
        [sys.executable, "-m", "songmill", "catalogue", "deliveries", "debug-single", "--json"], capture_output=True, text=True, env=os.environ.copy()
    )
    assert listed.returncode == 0 and json.loads(listed.stdout)[-1]["replaced_because"] == "track 1 sounds different"
    # the label gives the changed recording a new ISRC, as the warning says: nothing more to say
    renamed = tmp_path / "debug.yaml"
    renamed.write_text(DEBUG.read_text().replace("isrc: auto", "isrc: AA6Q72699999"))
    render(renamed, out_dir=out, seed=13, redeliver=True)
    report = json.loads((out / "debug-single" / "run-report.json").read_text())
    assert report["isrcs"]["1"] == "AA6Q72699999" and report["changed_under_same_isrc"] == []


def test_two_formats_that_would_write_one_file_are_refused_before_encoding(tmp_path):
    """Encodes run two at a time: two formats with the same file name (MP3 320k at two rates)
    would write one file at once, so the profile is refused in one sentence, nothing written."""
    from songmill.core.errors import SongmillError
    from songmill.core.profiles import DeliveryProfile
    from songmill.release.encode import export_profile

    profile = DeliveryProfile.model_validate(
        {
            "description": "two MP3s",
            "commercial": True,
            "loudness_lufs": -14.0,
            "true_peak_dbtp": -1.0,
            "formats": [{"container": "mp3", "bitrate_kbps": 320, "sample_rate_hz": 44100}, {"container": "mp3", "bitrate_kbps": 320, "sample_rate_hz": 48000}],
        }
    )
    master = (0.1 * np.sin(2 * np.pi * 440 * np.arange(48000 * 2) / 48000)).astype(np.float32)[:, None].repeat(2, axis=1)
    with pytest.raises(SongmillError, match=r"profile 'doubled' lists two formats that both make export-doubled-320k\.mp3; remove one"):
        export_profile(master, 48000, "doubled", profile, tmp_path, seed=1, clip=None)
    assert not list(tmp_path.iterdir())


def test_profiles_of_one_master_share_its_resampling_and_make_the_same_files(tmp_path):
    """The export stage resamples a master once a rate for every profile whose master is the
    same file: the files are byte for byte those each profile makes alone."""
    from songmill.core.profiles import DeliveryProfile
    from songmill.release.encode import export_profile

    def profile(formats: list[dict]) -> DeliveryProfile:
        return DeliveryProfile.model_validate({"description": "test", "commercial": True, "loudness_lufs": -14.0, "true_peak_dbtp": -1.0, "formats": formats})

    lossy, lossless = profile([{"container": "mp3", "bitrate_kbps": 192}]), profile([{"container": "flac", "sample_rate_hz": 44100, "bit_depth": 16}])
    t = np.arange(48000 * 4) / 48000
    master = (0.2 * np.sin(2 * np.pi * 220 * t)[:, None] * np.array([1.0, 0.8])).astype(np.float32)
    alone, together = tmp_path / "alone", tmp_path / "together"
    alone.mkdir()
    together.mkdir()
    shared: dict[int, np.ndarray] = {}
    for name, made in (("web", lossy), ("cd", lossless)):
        by_itself = export_profile(master, 48000, name, made, alone, seed=3, clip=None)
        with_others = export_profile(master, 48000, name, made, together, seed=3, clip=None, resampled=shared)
        assert [f.to_dict() for f in with_others] == [f.to_dict() for f in by_itself]
        for f in by_itself:
            assert (together / f.file).read_bytes() == (alone / f.file).read_bytes(), f.file
    assert sorted(shared) == [44100, 48000]  # the MP3's 44.1 kHz copy served the FLAC too
