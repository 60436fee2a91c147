"""DDEX ERN 4.3.2: the NewReleaseMessage a distributor ingests, validated against the schema.

    xml = new_release_message(package, profile_name, profile, sender, created=now)
    validate(xml)          # raises SongmillError listing the schema's complaints

The message (ReleaseProfileVersionId "Audio") carries: a header from the sender (config/
delivery.yaml) to the profile's recipient, a `TestMessage` when the delivery identity is a test
one (`MessageControlType`, else `LiveMessage`); the artist and label as parties; one
SoundRecording per track (ISRC, title, display artist, P-line, duration, parental warning,
`ContainsAI` and one `GenerativeAI` contributor per AI-made part the config names) whose
technical details list every delivered audio file with its SHA-256 and size (preview clips as
clip details); the cover as a FrontCoverImage; the release (ICPN, genre, label, dates, its
tracks in a disc group with the cover linked) plus a TrackRelease per track; and one deal per
release and track release from the profile's `deal` terms, starting on the release date.

The schema is DDEX's ERN 4.3.2 `release-notification.xsd` with the allowed-value sets it imports,
vendored as package data in `songmill/release/schemas/ddex/` (source and DDEX's licence terms in
its README.md); `SONGMILL_DDEX_SCHEMA` points at another copy. A message that does not validate is
never delivered.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from lxml import etree

from songmill.core.disclosure import AIStatement, track_statement
from songmill.core.errors import SongmillError
from songmill.core.paths import config_file
from songmill.core.profiles import DeliveryProfile, Party

ERN_NAMESPACE = "http://ddex.net/xml/ern/432"
AVS_VERSION_ID = "9"  # the allowed-value-sets version the schema ships with
# Packaged with songmill (pyproject package-data); the import of ../allowed-value-sets.xsd resolves beside it.
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "ddex" / "ern432" / "release-notification.xsd"

RELEASE_TYPES = {"single": "Single", "ep": "EP", "album": "Album"}
# The AI disclosure's parts → DDEX contributor roles (avs:ContributorRole).
AI_ROLES = {
    "lyrics": "Lyricist",
    "composition": "Composer",
    "arrangement": "Arranger",
    "vocals": "LeadVocalist",
    "instruments": "Programmer",
    "mixing": "MixingEngineer",
    "mastering": "MasteringEngineer",
}
CODECS = {"wav": ("WAV", "PCM"), "flac": (None, "FLAC"), "mp3": (None, "MP3"), "m4a": ("MP4", "AAC"), "opus": ("Ogg", "Opus")}
STANDARD_CODECS = {"PCM", "FLAC", "MP3", "AAC"}  # Opus is not in avs:AudioCodecType: UserDefined


@dataclass(frozen=True)
class PackagedFile:
    """A file in the delivery folder, as the DDEX message and the manifest describe it."""

    path: str  # relative to the release folder, with '/' separators
    sha256: str
    bytes: int
    container: str | None = None  # audio only
    codec: str | None = None
    sample_rate_hz: int | None = None
    bit_depth: int | None = None
    bitrate_kbps: int | None = None
    channels: int | None = None
    duration_s: float | None = None
    clip_start_s: float | None = None  # a preview clip's start in the track


@dataclass(frozen=True)
class PackagedTrack:
    number: int
    title: str
    isrc: str
    duration_s: float
    has_vocals: bool
    audio: list[PackagedFile]  # full-length files
    clips: list[PackagedFile] = field(default_factory=list)
    ai: AIStatement | None = None  # the recording's AI disclosure (None: from the release's contains_ai/ai_parts)
    edited_from_isrc: str | None = None  # a song editor's new recording: the one it is an edited version of


@dataclass(frozen=True)
class PackagedRelease:
    upc: str
    title: str
    artist: str
    label: str
    type: str  # single | ep | album
    date: dt.date
    genre: str
    p_line: str
    c_line: str
    explicit: bool
    contains_ai: bool
    ai_parts: tuple[str, ...]
    tracks: list[PackagedTrack]
    cover: PackagedFile
    cover_px: int = 3000


def missing_identity(release: PackagedRelease | None, profile_name: str, profile: DeliveryProfile, sender: Party | None) -> str | None:
    """Why a message cannot be addressed (no sender DPID, no recipient, a track without an ISRC), or None."""
    if sender is None:
        return f"{config_file('delivery.yaml')} names no sender (add sender: {{name: …, dpid: PADPIDA…}}, your DDEX Party ID)"
    if profile.recipient is None:
        return f"profile '{profile_name}' names no recipient (add recipient: {{name: …, dpid: PADPIDA…}} to it in {config_file('profiles.yaml')})"
    if release is not None and any(t.isrc is None for t in release.tracks):
        return f"a track has no ISRC (give tracks[].isrc, or isrc_country and isrc_registrant in {config_file('delivery.yaml')})"
    return None


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration: 177.522 → 'PT2M57.522S'."""
    minutes, rest = divmod(round(seconds, 3), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"PT{hours}H{minutes}M{rest:.3f}S" if hours else f"PT{minutes}M{rest:.3f}S"


def _split_line(text: str, fallback_year: int) -> tuple[int, str]:
    """'2026 Songmill Records' → (2026, 'Songmill Records')."""
    head, _, tail = text.partition(" ")
    if head.isdigit() and len(head) == 4 and tail:
        return int(head), tail
    return fallback_year, text


class _Builder:
    def __init__(self, root: etree._Element):
        self.root = root

    @staticmethod
    def add(parent, tag: str, text=None, **attributes):
        element = etree.SubElement(parent, tag, {k: str(v) for k, v in attributes.items()})
        if text is not None:
            element.text = str(text)
        return element


def new_release_message(
    release: PackagedRelease, profile_name: str, profile: DeliveryProfile, sender: Party | None, *, created: dt.datetime, test_message: bool = False
) -> bytes:
    """The NewReleaseMessage for one release and one delivery profile, as UTF-8 XML bytes."""
    reason = missing_identity(release, profile_name, profile, sender)
    if reason or sender is None or profile.recipient is None:  # missing_identity gives a reason for both
        raise SongmillError(f"no DDEX message for profile '{profile_name}': {reason}")
    add = _Builder.add
    root = etree.Element(
        f"{{{ERN_NAMESPACE}}}NewReleaseMessage",
        nsmap={"ern": ERN_NAMESPACE},
        attrib={"AvsVersionId": AVS_VERSION_ID, "LanguageAndScriptCode": "en", "ReleaseProfileVersionId": "Audio"},
    )
    _header(root, release, profile_name, sender, profile.recipient, created, test_message)
    parties = add(root, "PartyList")
    for reference, name in (("PArtist", release.artist), ("PLabel", release.label)):
        party = add(parties, "Party")
        add(party, "PartyReference", reference)
        add(add(party, "PartyName"), "FullName", name)
    resources = add(root, "ResourceList")
    for track in release.tracks:
        _sound_recording(resources, release, track)
    _image(resources, release, sender)
    _releases(add(root, "ReleaseList"), release, sender)
    _deals(add(root, "DealList"), release, profile)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _header(root, release: PackagedRelease, profile_name: str, sender: Party, recipient: Party, created: dt.datetime, test_message: bool) -> None:
    add = _Builder.add
    header = add(root, "MessageHeader")
    add(header, "MessageThreadId", f"{release.upc}-{profile_name}")
    digest = hashlib.sha256(f"{release.upc}:{profile_name}:{created.isoformat()}".encode()).hexdigest()[:24]
    add(header, "MessageId", digest)
    for tag, party in (("MessageSender", sender), ("MessageRecipient", recipient)):
        element = add(header, tag)
        add(element, "PartyId", party.dpid)
        add(add(element, "PartyName"), "FullName", party.name)
    add(header, "MessageCreatedDateTime", created.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
    add(header, "MessageControlType", "TestMessage" if test_message else "LiveMessage")


def track_disclosure(release: PackagedRelease, track: PackagedTrack) -> AIStatement:
    """The recording's AI disclosure: the packaged one, or one from the release's parts."""
    if track.ai is not None:
        return track.ai
    return track_statement(contains_ai=release.contains_ai, generated=release.ai_parts, has_vocals=track.has_vocals, lyrics_provided=False)


def _contains_ai(release: PackagedRelease) -> str:
    """The release's ContainsAI: All when every recording is all AI, None when none has any, else Partly."""
    verdicts = {track_disclosure(release, track).contains_ai for track in release.tracks}
    return verdicts.pop() if len(verdicts) == 1 else "Partly"


def _display_artist(parent, sequence: int = 1) -> None:
    artist = _Builder.add(parent, "DisplayArtist", SequenceNumber=sequence)
    _Builder.add(artist, "ArtistPartyReference", "PArtist")
    _Builder.add(artist, "DisplayArtistRole", "MainArtist")


def _titles(parent, title: str) -> None:
    _Builder.add(parent, "DisplayTitleText", title)
    _Builder.add(_Builder.add(parent, "DisplayTitle"), "TitleText", title)


def _rights_line(parent, tag: str, text: str, symbol: str, release: PackagedRelease) -> None:
    """A PLine (℗, the recording) or CLine (©, the artwork and text) from '2026 Songmill Records'."""
    year, company = _split_line(text, release.date.year)
    line = _Builder.add(parent, tag)
    _Builder.add(line, "Year", year)
    _Builder.add(line, f"{tag}Company", company)
    _Builder.add(line, f"{tag}Text", f"{symbol} {year} {company}")


def _p_line(parent, release: PackagedRelease) -> None:
    _rights_line(parent, "PLine", release.p_line, "℗", release)


def _c_line(parent, release: PackagedRelease) -> None:
    _rights_line(parent, "CLine", release.c_line, "©", release)


def _delivery_file(parent, file: PackagedFile) -> None:
    add = _Builder.add
    element = add(parent, "DeliveryFile")
    add(element, "Type", "AudioFile")
    container, codec = CODECS[cast(str, file.container)]  # an audio file names its container
    if container:
        add(element, "ContainerFormat", container)
    if codec in STANDARD_CODECS:
        add(element, "AudioCodecType", codec)
    else:
        add(element, "AudioCodecType", "UserDefined", UserDefinedValue=codec)
    if file.bitrate_kbps:
        add(element, "BitRate", file.bitrate_kbps, UnitOfMeasure="kbps")
    add(element, "NumberOfChannels", file.channels)
    add(element, "SamplingRate", file.sample_rate_hz, UnitOfMeasure="Hz")
    if file.bit_depth:
        add(element, "BitsPerSample", file.bit_depth)
    add(element, "Duration", iso_duration(cast(float, file.duration_s)))  # an audio file has a duration
    _file(element, file)


def _file(parent, file: PackagedFile) -> None:
    add = _Builder.add
    element = add(parent, "File")
    add(element, "URI", file.path)
    digest = add(element, "HashSum")
    add(digest, "Algorithm", "SHA-256")
    add(digest, "HashSumValue", file.sha256)
    add(element, "FileSize", file.bytes)


def _sound_recording(resources, release: PackagedRelease, track: PackagedTrack) -> None:
    add = _Builder.add
    recording = add(resources, "SoundRecording")
    add(recording, "ResourceReference", f"A{track.number}")
    add(recording, "Type", "MusicalWorkSoundRecording")
    edition = add(recording, "SoundRecordingEdition")
    add(add(edition, "ResourceId"), "ISRC", track.isrc)
    _p_line(edition, release)
    for index, file in enumerate(track.audio, start=1):
        details = add(edition, "TechnicalDetails")
        add(details, "TechnicalResourceDetailsReference", f"T{track.number}-{index}")
        _delivery_file(details, file)
        add(details, "IsClip", "false")
    for index, clip in enumerate(track.clips, start=1):
        details = add(edition, "TechnicalDetails")
        reference = f"T{track.number}-clip-{index}"
        add(details, "TechnicalResourceDetailsReference", reference)
        add(details, "IsClip", "true")
        clip_details = add(details, "ClipDetails")
        add(clip_details, "TechnicalResourceDetailsReference", f"{reference}-details")
        add(clip_details, "ClipType", "Preview")
        timing = add(clip_details, "Timing")
        add(timing, "StartPoint", f"{clip.clip_start_s:.3f}")
        add(timing, "DurationUsed", iso_duration(cast(float, clip.duration_s)))  # a clip has a duration
        add(clip_details, "ExpressionType", "Instructive")
        _delivery_file(clip_details, clip)
    _titles(recording, track.title)
    add(recording, "DisplayArtistName", release.artist)
    _display_artist(recording)
    disclosure = track_disclosure(release, track)
    if disclosure.contains_ai != "None":
        for sequence, part in enumerate(disclosure.generated, start=1):
            contributor = add(recording, "Contributor", SequenceNumber=sequence)
            add(contributor, "SpecialContributor", "GenerativeAI")
            add(add(contributor, "Role"), "Value", AI_ROLES[part])
            add(contributor, "AiContribution", "All")
    add(recording, "Duration", iso_duration(track.duration_s))
    add(recording, "ParentalWarningType", "Explicit" if release.explicit else "NotExplicit")
    if track.edited_from_isrc:  # an edited version replacing a recording delivered before (not in this message)
        related = add(recording, "RelatedResource")
        add(related, "ResourceRelationshipType", "IsEditedVersionOf")
        add(add(related, "ResourceId"), "ISRC", track.edited_from_isrc)
    add(recording, "ContainsAI", disclosure.contains_ai)
    add(recording, "HasVocalPerformance", str(track.has_vocals).lower())
    add(recording, "IsInstrumental", str(not track.has_vocals).lower())


def _image(resources, release: PackagedRelease, sender: Party) -> None:
    add = _Builder.add
    image = add(resources, "Image")
    add(image, "ResourceReference", "A0")
    add(image, "Type", "FrontCoverImage")
    add(add(image, "ResourceId"), "ProprietaryId", f"{release.upc}-cover", Namespace=f"DPID:{sender.dpid}")
    _c_line(image, release)
    add(image, "ContainsAI", "All" if release.contains_ai else "None")
    details = add(image, "TechnicalDetails")
    add(details, "TechnicalResourceDetailsReference", "T0")
    add(details, "ImageCodecType", "JPEG")
    add(details, "ImageHeight", release.cover_px, UnitOfMeasure="Pixel")
    add(details, "ImageWidth", release.cover_px, UnitOfMeasure="Pixel")
    add(details, "ColorDepth", 24)
    _file(details, release.cover)


def _genre(parent, genre: str) -> None:
    _Builder.add(_Builder.add(parent, "DisplayGenre"), "GenreText", genre.replace("-", " ").title().replace(" ", "-") if "-" in genre else genre.title())


def _releases(releases, release: PackagedRelease, sender: Party) -> None:
    add = _Builder.add
    main = add(releases, "Release")
    add(main, "ReleaseReference", "R0")
    add(main, "ReleaseType", RELEASE_TYPES[release.type])
    add(add(main, "ReleaseId"), "ICPN", release.upc)
    _titles(main, release.title)
    add(main, "DisplayArtistName", release.artist)
    _display_artist(main)
    add(main, "ReleaseLabelReference", "PLabel")
    _p_line(main, release)
    _c_line(main, release)
    add(main, "Duration", iso_duration(sum(t.duration_s for t in release.tracks)))
    _genre(main, release.genre)
    add(main, "ReleaseDate", release.date.isoformat())
    add(main, "ParentalWarningType", "Explicit" if release.explicit else "NotExplicit")
    group = add(main, "ResourceGroup")  # one disc: the tracks in order, the cover linked
    add(group, "SequenceNumber", 1)
    for position, track in enumerate(release.tracks, start=1):
        item = add(group, "ResourceGroupContentItem")
        add(item, "SequenceNumber", position)
        add(item, "ReleaseResourceReference", f"A{track.number}")
    add(group, "LinkedReleaseResourceReference", "A0", LinkDescription="CoverArt")
    add(main, "ContainsAI", _contains_ai(release))
    for track in release.tracks:
        single = add(releases, "TrackRelease")
        add(single, "ReleaseReference", f"R{track.number}")
        add(add(single, "ReleaseId"), "ProprietaryId", f"{release.upc}-{track.isrc}", Namespace=f"DPID:{sender.dpid}")
        _titles(single, track.title)
        add(single, "ReleaseResourceReference", f"A{track.number}")
        add(single, "ReleaseLabelReference", "PLabel")
        _genre(single, release.genre)


def _deals(deals, release: PackagedRelease, profile: DeliveryProfile) -> None:
    add = _Builder.add
    references = ["R0"] + [f"R{t.number}" for t in release.tracks]
    for reference in references:
        release_deal = add(deals, "ReleaseDeal")
        add(release_deal, "DealReleaseReference", reference)
        terms = add(add(release_deal, "Deal"), "DealTerms")
        for territory in profile.deal.territories:
            add(terms, "TerritoryCode", territory)
        add(add(terms, "ValidityPeriod"), "StartDate", release.date.isoformat())
        for model in profile.deal.commercial_models:
            add(terms, "CommercialModelType", model)
        for use in profile.deal.use_types:
            add(terms, "UseType", use)


def _parser() -> etree.XMLParser:
    """The one XML parser songmill uses: no entity expansion, no DTD loaded, nothing fetched from
    the network, no huge trees. An XML external entity (XXE) is never resolved."""
    return etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)


def _refuse_doctype(document: etree._ElementTree, what: str) -> None:
    """Neither a DDEX message nor its schema has a DOCTYPE; one that does is where entities hide."""
    if document.docinfo.doctype:
        raise SongmillError(f"{what} declares a DOCTYPE, which songmill never reads (it is how XML external entities get in); remove it")


@functools.lru_cache(maxsize=1)
def _schema(path: str) -> etree.XMLSchema:
    try:
        document = etree.parse(path, _parser())
        _refuse_doctype(document, f"the DDEX schema {path}")
        return etree.XMLSchema(document)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as err:
        raise SongmillError(
            f"the DDEX schema {path} is not a usable XML schema ({err}); set SONGMILL_DDEX_SCHEMA to an ERN 4.3.2 release-notification.xsd"
        ) from None
    except OSError:
        raise SongmillError(
            f"the DDEX schema {path} is missing; set SONGMILL_DDEX_SCHEMA to an ERN 4.3.2 release-notification.xsd, or unset it to use the one songmill ships"
        ) from None


def schema_path() -> Path:
    """`SONGMILL_DDEX_SCHEMA`, else the schema packaged with songmill (SCHEMA_PATH)."""
    return Path(os.environ.get("SONGMILL_DDEX_SCHEMA") or SCHEMA_PATH)


def validate(xml: bytes, *, what: str = "the DDEX message") -> None:
    """Raise SongmillError naming the first schema violations when `xml` is not a valid ERN 4.3.2 message."""
    schema = _schema(str(schema_path()))
    try:
        document = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as err:
        raise SongmillError(f"{what} is not well-formed XML ({err}); it was not delivered") from None
    _refuse_doctype(document.getroottree(), what)
    if not schema.validate(document):
        problems = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:5])
        raise SongmillError(f"{what} does not validate against {schema_path().name} ({problems}); it was not delivered")


@functools.lru_cache(maxsize=8)
def _shipped_schema(path: str) -> etree.XMLSchema:
    document = etree.parse(path, _parser())
    _refuse_doctype(document, f"the schema {path}")
    return etree.XMLSchema(document)


def validate_against(xml: bytes, schema: Path, *, what: str) -> None:
    """`xml` against another schema songmill ships (the DAWproject's), through the same hardened
    parser as the DDEX message; SongmillError names the first violation."""
    compiled = _shipped_schema(str(schema))
    try:
        document = etree.fromstring(xml, _parser())
    except etree.XMLSyntaxError as err:
        raise SongmillError(f"{what} is not well-formed XML ({err})") from None
    _refuse_doctype(document.getroottree(), what)
    if not compiled.validate(document):
        first = compiled.error_log[0]
        raise SongmillError(f"{what} would not match its schema (line {first.line}: {first.message})")
