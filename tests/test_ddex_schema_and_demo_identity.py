"""The DDEX ERN 4.3.2 schema ships inside songmill; the demo single is delivered under a
demonstration identity (TestMessage, example ISRCs) while every other release still refuses to
invent a label's identity."""

from __future__ import annotations

import datetime as dt
import shutil
import tomllib
from pathlib import Path

import pytest
from lxml import etree

import songmill
from songmill.core.errors import ConfigError, SongmillError
from songmill.core.ids import make_gtin13, make_isrc
from songmill.core.profiles import load_profiles
from songmill.release import ddex
from songmill.release.settings import DeliverySettings, load_delivery_settings
from tests.conftest import PROJECT

XS = "{http://www.w3.org/2001/XMLSchema}"


@pytest.fixture()
def shipped_config(monkeypatch) -> Path:
    """The repository's config/ as shipped (the session's test config adds a sender to delivery.yaml)."""
    monkeypatch.setenv("SONGMILL_CONFIG_DIR", str(PROJECT / "config"))
    monkeypatch.delenv("SONGMILL_DELIVERY_CONFIG", raising=False)
    monkeypatch.delenv("SONGMILL_DDEX_SCHEMA", raising=False)
    return PROJECT / "config"


def demo_message(config: Path) -> tuple[bytes, DeliverySettings, list[str]]:
    """The demo single's DDEX message for the streaming profile, built as package.py builds it but
    from synthetic files (no render): (xml, the settings used, the track ISRCs)."""
    settings = load_delivery_settings(release_id="demo-single")
    ids = settings.identifiers
    isrcs = [make_isrc(ids.isrc_country, ids.isrc_registrant, 2026, n) for n in (1, 2)]
    flac = ddex.PackagedFile("resources/x_01_001.flac", "1" * 64, 2, "flac", "flac", 44100, 16, None, 2, 61.0)
    release = ddex.PackagedRelease(
        upc=make_gtin13(ids.gs1_company_prefix, 1),
        title="Paper Lanterns",
        artist="The Songmill Collective",
        label="Songmill Records",
        type="ep",
        date=dt.date(2026, 12, 4),
        genre="pop",
        p_line="2026 Songmill Records",
        c_line="2026 Songmill Records",
        explicit=False,
        contains_ai=True,
        ai_parts=("lyrics", "composition"),
        cover=ddex.PackagedFile("resources/x.jpg", "0" * 64, 1),
        tracks=[ddex.PackagedTrack(n, f"Track {n}", isrc, 61.0, True, [flac]) for n, isrc in enumerate(isrcs, start=1)],
    )
    profile = settings.addressing(load_profiles(config / "profiles.yaml")["streaming"])
    xml = ddex.new_release_message(
        release, "streaming", profile, settings.sender, created=dt.datetime(2026, 12, 1, tzinfo=dt.UTC), test_message=settings.test_identity
    )
    return xml, settings, isrcs


# ---------------------------------------------------------------- the packaged schema


def test_the_schema_in_use_is_the_one_packaged_with_songmill(shipped_config):
    path = ddex.schema_path()
    package = Path(songmill.__file__).resolve().parent
    assert path == ddex.SCHEMA_PATH and path.is_file() and path.resolve().is_relative_to(package)
    # its import of the allowed-value sets resolves inside the package too
    imports = etree.parse(str(path)).getroot().findall(f"{XS}import")
    assert [i.get("schemaLocation") for i in imports] == ["../allowed-value-sets.xsd"]
    assert (path.parent / "../allowed-value-sets.xsd").resolve().is_file()
    assert "DDEX" in (path.parents[1] / "README.md").read_text(encoding="utf-8")
    # an installed songmill carries them (setuptools package data)
    package_data = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert {"*.xsd", "*.md"} <= set(package_data)


def test_songmill_ddex_schema_points_at_another_copy(shipped_config, tmp_path, monkeypatch):
    xml, _, _ = demo_message(shipped_config)
    ddex.validate(xml)  # the packaged schema accepts the TestMessage
    copy = tmp_path / "ddex"
    shutil.copytree(ddex.SCHEMA_PATH.parents[1], copy)
    avs = copy / "allowed-value-sets.xsd"  # a copy whose MessageControlType knows no TestMessage
    avs.write_text(avs.read_text(encoding="utf-8").replace('value="TestMessage"', 'value="OtherMessage"'), encoding="utf-8")
    monkeypatch.setenv("SONGMILL_DDEX_SCHEMA", str(copy / "ern432" / "release-notification.xsd"))
    assert ddex.schema_path() == copy / "ern432" / "release-notification.xsd"
    with pytest.raises(SongmillError, match=r"does not validate against release-notification.xsd .*MessageControlType"):
        ddex.validate(xml)
    monkeypatch.setenv("SONGMILL_DDEX_SCHEMA", str(tmp_path / "nowhere.xsd"))
    with pytest.raises(SongmillError, match=r"nowhere.xsd is missing; set SONGMILL_DDEX_SCHEMA"):
        ddex.validate(xml)


# ---------------------------------------------------------------- the demo identity


def test_the_demo_single_gets_a_test_message_with_isrcs_that_the_schema_accepts(shipped_config):
    xml, settings, isrcs = demo_message(shipped_config)
    assert settings.test_identity and "not a real party" in settings.sender.name
    ddex.validate(xml)
    document = etree.fromstring(xml)
    header = document.find("MessageHeader")
    assert header.findtext("MessageControlType") == "TestMessage"
    assert header.findtext("MessageSender/PartyId") == settings.sender.dpid
    assert header.findtext("MessageRecipient/PartyId") == settings.recipient.dpid  # the profile names none
    assert "not a real party" in header.findtext("MessageRecipient/PartyName/FullName")
    found = [e.text for e in document.findall(".//SoundRecording/SoundRecordingEdition/ResourceId/ISRC")]
    assert found == isrcs and all(isrc.startswith("AA6Q726") for isrc in isrcs)


def test_a_real_release_still_gets_no_invented_identity(shipped_config):
    for release_id in ("release-test", None):
        settings = load_delivery_settings(release_id=release_id)
        assert settings.sender is None and settings.recipient is None and not settings.test_identity
        assert settings.identifiers.isrc_country is None and settings.identifiers.isrc_registrant is None
        profile = settings.addressing(load_profiles(shipped_config / "profiles.yaml")["streaming"])
        assert "names no sender" in ddex.missing_identity(None, "streaming", profile, settings.sender)
    assert set(load_delivery_settings().identities) == {"demo-single"}  # the demo, and no other release


# ---------------------------------------------------------------- bad input


def _settings_files(folder: Path, identity: str) -> Path:
    (folder / "delivery.yaml").write_text('identifiers:\n  gs1_company_prefix: "0200000"\nidentities:\n  demo-single: demo-identity.yaml\n')
    (folder / "demo-identity.yaml").write_text(identity)
    return folder / "delivery.yaml"


def test_an_unknown_field_in_an_identity_file_is_one_line_naming_file_and_line(tmp_path):
    path = _settings_files(
        tmp_path, 'test_identity: true\nsender: {name: Demo, dpid: PADPIDA0000000000D}\nisrc_prefix: AA6Q7\nidentifiers: {gs1_company_prefix: "0200000"}\n'
    )
    assert load_delivery_settings(path).sender is None  # other releases never read the identity file
    with pytest.raises(ConfigError) as caught:
        load_delivery_settings(path, release_id="demo-single")
    assert caught.value.problems == [
        f"{tmp_path / 'demo-identity.yaml'}:3: isrc_prefix: unknown field (allowed: test_identity, sender, recipient, identifiers, identities, signing)"
    ]


def test_a_recipient_for_every_profile_is_for_test_identities_only_and_identity_files_must_exist(tmp_path):
    path = _settings_files(
        tmp_path,
        'sender: {name: Demo, dpid: PADPIDA0000000000D}\nrecipient: {name: Store, dpid: PADPIDA0000000001D}\nidentifiers: {gs1_company_prefix: "0200000"}\n',
    )
    with pytest.raises(ConfigError, match=r"demo-identity.yaml:2: recipient: only a test identity \(test_identity: true\)"):
        load_delivery_settings(path, release_id="demo-single")
    (tmp_path / "demo-identity.yaml").unlink()
    with pytest.raises(ConfigError, match=r"delivery.yaml:4: identities.demo-single: 'demo-identity.yaml' does not exist"):
        load_delivery_settings(path, release_id="demo-single")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            'sender: {name: Tidewater, dpid: PADPIDA123}\nidentifiers: {gs1_company_prefix: "0200000"}\n',
            "1: sender.dpid: 'PADPIDA123' is not a DDEX Party ID: PADPIDA, ten digits and a check character (PADPIDA2014120301U)",
        ),
        (
            'identifiers: {gs1_company_prefix: "0200000", isrc_country: UK, isrc_registrant: TWR}\n',
            "1: identifiers.isrc_country: 'UK' is not an ISRC country code: the United Kingdom's is GB (ISO 3166-1)",
        ),
        (
            'identifiers: {gs1_company_prefix: "0200000", isrc_country: GB, isrc_registrant: TW}\n',
            "1: identifiers.isrc_registrant: 'TW' is not an ISRC registrant code: three capital letters or digits, as your ISRC agency issued it",
        ),
    ],
)
def test_a_malformed_party_id_or_isrc_prefix_is_one_sentence_not_a_pattern(tmp_path, settings, expected):
    """A DPID the ERN schema would take (any PADPIDA… string) but DDEX never issued, and an ISRC
    prefix no agency issues: refused in words, not as a regular expression."""
    path = tmp_path / "delivery.yaml"
    path.write_text(settings)
    with pytest.raises(ConfigError) as caught:
        load_delivery_settings(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:{expected}"), problem
