"""`songmill verify FILE`: is this recording ours, and what made it?

    result = verify_file(Path("copy.mp3"), catalogue)      # Verification
    result.verdict     # "ours" | "not ours" | "unreadable"   (exit 0 | 1 | 2)

Three independent witnesses, so a copy stripped of one still answers:

1. **Content Credentials**: the C2PA manifest in the file (or `<file>.c2pa` beside it), validated
   by c2pa's reader against the label's trust anchors; valid, invalid or absent.
2. **Watermark**: PerthNet's mark in the audio (it survives MP3, AAC and Opus encoding). PerthNet
   is a public model, so the mark says "marked by a PerthNet user", not "ours" on its own.
3. **Fingerprint**: chromaprint of the audio against every track in the catalogue, each render
   and each version the song editor made (an excerpt is looked for anywhere in each track). A
   match names the release, track, ISRC, the run that made that version (and the editor's version
   with its operations, when an edit made it), its models and the release's deliveries.

The file is ours when the fingerprint matches a catalogue track, or when a manifest that
validates against our trust anchors names a release in the catalogue.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from qc.duplicates import TrackPrint, chromaprint, excerpt_similarity
from qc.suites import load_qc_settings
from songmill.catalogue import Catalogue
from songmill.core.audio import probe
from songmill.core.errors import AudioInputError, SongmillError
from songmill.release.credentials import manifest_assertion, read_credentials, usable_credentials
from songmill.release.provenance import PROVENANCE_LABEL
from songmill.release.settings import DeliverySettings, load_delivery_settings

EXIT_CODES = {"ours": 0, "not ours": 1, "unreadable": 2}
MIN_MATCH_S = 8.0  # shorter audio gives chromaprint too little to tell songs apart


@dataclass
class Verification:
    file: str
    verdict: str  # ours | not ours | unreadable
    reason: str
    credentials: dict | None = None  # state, failures, and the songmill claim when there is one
    watermark: dict | None = None
    fingerprint: dict | None = None  # best similarity, and the catalogue track it matched
    track: dict | None = None  # the catalogue's record of the matched track
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict:
        return asdict(self)


def trust_anchors(settings: DeliverySettings | None = None) -> bytes | None:
    """The trust anchors of every identity we sign with (the delivery settings' own and each file
    its `identities` names, where its key is available), or None when none names a usable key."""
    settings = settings or load_delivery_settings()
    identities = [settings, *(load_delivery_settings(release_id=release_id) for release_id in settings.identities)]
    usable = [usable_credentials(identity.signing)[0] for identity in identities]
    return b"".join(dict.fromkeys(credentials.trust_anchors_pem for credentials in usable if credentials)) or None


def verify_path(path: Path) -> Verification:
    """`songmill verify` and the plugin's endpoint: the catalogue, our trust anchors and the
    watermark reader, set up for one file."""
    from songmill.engine.runner import watermark_detector

    catalogue = Catalogue.open()
    try:
        return verify_file(path, catalogue, anchors=trust_anchors(), detect=watermark_detector(commercial=False))
    finally:
        catalogue.close()


def verify_file(path: Path, catalogue: Catalogue, *, anchors: bytes | None = None, detect=None) -> Verification:  # noqa: ANN001 - detect: a watermark detector
    """Identify one audio file (see the module docstring)."""
    try:
        probe(path, what="file")
    except AudioInputError as err:
        return Verification(str(path), "unreadable", str(err))
    result = Verification(str(path), "not ours", "")
    found = read_credentials(path, trust_anchors=anchors)
    claim = manifest_assertion(found.manifest, PROVENANCE_LABEL)
    result.credentials = {**found.to_dict(), "claim": claim}
    if found.state == "invalid":  # a manifest there, which no longer vouches for these bytes
        why = ", ".join(found.failures) or "it does not validate"
        changed = " (the file was changed after it was signed)" if any("dataHash" in code for code in found.failures) else ""
        result.notes.append(f"its Content Credentials do not hold ({why}){changed}: this is not the file as it was delivered")
    if detect is not None:
        try:
            result.watermark = detect(path)
        except (ValueError, SongmillError) as err:
            result.notes.append(f"the watermark could not be read: {err}")
    try:
        prints, duration_s = chromaprint(path)
    except SongmillError as err:
        return Verification(
            str(path),
            "unreadable",
            f"{path} cannot be decoded as audio to its end, so it is damaged or truncated ({err})",
            result.credentials,
            result.watermark,
        )
    if duration_s < MIN_MATCH_S:
        result.notes.append(f"{duration_s:.1f} s of audio is too short to fingerprint (at least {MIN_MATCH_S:g} s)")
    else:
        result.fingerprint = _best_match(prints, catalogue)
    if result.fingerprint and result.fingerprint["matched"]:
        track = result.fingerprint["track"]
        result.track = catalogue.track_record(track["release_id"], track["number"], run_id=track["run_id"])
        edited = _edited_version(catalogue, track, track_isrc=(result.track or {}).get("isrc"))
        if result.track is not None and edited is not None:
            result.track["version"] = edited
        where = f" version {edited['number']}" if edited else ""
        result.verdict, result.reason = "ours", f"the audio matches {track['release_id']} track {track['number']} ({track['title']}){where} in the catalogue"
        return result
    claimed = catalogue.track_record(claim["release_id"], claim.get("track_number") or 1) if found.state == "trusted" and claim else None
    if claim and claimed:
        result.track = claimed
        result.verdict, result.reason = "ours", f"its Content Credentials, signed by our key, name {claim['release_id']}"
    else:
        result.reason = "no catalogue track sounds like it" + (" and it carries no manifest of ours" if found.state != "trusted" else "")
        if result.watermark and result.watermark.get("detected"):
            result.notes.append(
                "PerthNet's decoder reads a watermark in it: AI-generated audio marked by some PerthNet user, not one of our tracks"
                " — or a steady tone, which PerthNet also reads as marked (10 of the 16 we tried)"
            )
    return result


def _best_match(prints, catalogue: Catalogue) -> dict:  # noqa: ANN001 - a chromaprint array
    bar = load_qc_settings().duplicates.max_audio_similarity
    best: tuple[float, dict | None] = (0.0, None)
    for track, stored in catalogue.every_print():
        similarity = excerpt_similarity(prints, TrackPrint.from_dict(stored).subprints())
        if similarity > best[0]:
            best = (similarity, track)
    return {"similarity": round(best[0], 3), "bar": bar, "matched": best[0] >= bar, "track": best[1] if best[0] >= bar else None}


def _edited_version(catalogue: Catalogue, track: dict, *, track_isrc: str | None) -> dict | None:
    """The song editor's version a matched print was made by (None for a render of the config):
    its number, the operations since the config, the words they came from, and the ISRC it goes
    out under — the track's (`track_isrc`) when the edit made no new recording (a remaster), else
    its recording's own, once a delivery gave it one (None before that)."""
    from songmill.engine.edit_delivery import recording_version

    if track.get("version") is None:
        return None
    versions = {v["number"]: v for v in catalogue.versions(track["release_id"], track["number"])}
    version = versions.get(track["version"])
    if version is None:
        return None
    recording = recording_version(versions, version["number"])
    isrc = track_isrc if recording is None else versions[recording]["isrc"]
    return {**{k: version[k] for k in ("number", "operations", "command", "author", "created_at")}, "isrc": isrc, "new_recording": recording is not None}
