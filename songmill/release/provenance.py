"""What made each delivered file, said in the file and beside it, and checked before delivery.

    record = TrackProvenance(...)                     # models, ingredients, AI disclosure of one track
    manifest = audio_manifest(release, record, title) # the C2PA manifest definition for its files
    problems = check_delivered_file(path, expected, credentials=…, detect=…)

Every delivered audio file carries: a signed C2PA manifest (where the label has a signing key),
whose `c2pa.actions` says how it was made (IPTC digital source type `trainedAlgorithmicMedia`, or
`compositeWithTrainedAlgorithmicMedia` when the user's own lyrics or a reference recording went
in) and whose `org.songmill.provenance` assertion names the release, track, ISRC and every model
(name, version, sha256, licence); the same AI disclosure as the DDEX message and the file's
AI_DISCLOSURE tag (`org.songmill.ai_disclosure`); and the inaudible watermark in its audio.
`provenance.json` at the top of each delivery folder says all of it again, per track, with the
licence audit: every model, soundfont and voice that touched each track, its licence, source
and whether commercial use is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from songmill import __version__
from songmill.core.disclosure import AIStatement, parse_tag
from songmill.release.credentials import CredentialCheck, Credentials, manifest_assertion, read_credentials
from songmill.release.tags import read_ai_disclosure

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED, COMPOSITE, ALGORITHMIC = IPTC + "trainedAlgorithmicMedia", IPTC + "compositeWithTrainedAlgorithmicMedia", IPTC + "algorithmicMedia"
PROVENANCE_LABEL, DISCLOSURE_LABEL = "org.songmill.provenance", "org.songmill.ai_disclosure"
PROVENANCE_FILE = "provenance.json"

WatermarkDetector = Callable[[Path], dict]  # a delivered file → {"detected": bool, "median_score": …}


@dataclass(frozen=True)
class Ingredient:
    """Something a person gave that went into the track (by hash, never the content itself)."""

    kind: str  # "lyrics" | "reference recording"
    sha256: str
    name: str = ""


@dataclass(frozen=True)
class TrackProvenance:
    release_id: str
    number: int
    title: str
    isrc: str | None
    upc: str
    disclosure: AIStatement
    models: tuple[dict, ...]  # registry provenance: name, version, sha256, licence, commercial_use, backend, source
    voice_identity: dict | None = None  # name and version of the singer identity
    ingredients: tuple[Ingredient, ...] = ()

    @property
    def source_type(self) -> str:
        return COMPOSITE if self.ingredients else TRAINED

    def assertion(self) -> dict:
        return {
            "release_id": self.release_id,
            "track_number": self.number,
            "isrc": self.isrc,
            "upc": self.upc,
            "models": [{k: m.get(k) for k in ("name", "version", "sha256", "licence")} for m in self.models],
            "voice_identity": self.voice_identity,
            "ingredients": [asdict(i) for i in self.ingredients],
        }


INGREDIENT_FORMATS = {"lyrics": "text/plain", "reference recording": "application/octet-stream"}


def _manifest(title: str, actions: list[dict], assertions: list[dict], ingredients: tuple[Ingredient, ...] = ()) -> dict:
    manifest = {
        "claim_generator_info": [{"name": "songmill", "version": __version__}],
        "title": title,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}, *assertions],
    }
    if ingredients:  # what a person gave, by hash only: the manifest never carries their words or audio
        manifest["ingredients"] = [
            {"title": f"{i.kind}: {i.name}", "format": INGREDIENT_FORMATS[i.kind], "relationship": "inputTo", "instance_id": f"sha256:{i.sha256}"}
            for i in ingredients
        ]
    return manifest


def audio_manifest(track: TrackProvenance, file_name: str) -> dict:
    """The C2PA manifest definition of one delivered audio file of a track."""
    action = {"action": "c2pa.created", "digitalSourceType": track.source_type, "softwareAgent": {"name": "songmill", "version": __version__}}
    return _manifest(
        file_name,
        [action],
        [{"label": PROVENANCE_LABEL, "data": track.assertion()}, {"label": DISCLOSURE_LABEL, "data": track.disclosure.to_dict()}],
        track.ingredients,
    )


def cover_manifest(release_id: str, upc: str, file_name: str, *, generated: bool) -> dict:
    """The cover's manifest: drawn by songmill's own code (algorithmic, no trained model), or the label's."""
    action: dict = {"action": "c2pa.created", "softwareAgent": {"name": "songmill", "version": __version__}}
    if generated:
        action["digitalSourceType"] = ALGORITHMIC
    else:
        action["description"] = "the cover the release config names, resized and re-encoded"
    return _manifest(
        file_name, [action], [{"label": PROVENANCE_LABEL, "data": {"release_id": release_id, "upc": upc, "cover": "generated" if generated else "supplied"}}]
    )


@dataclass
class FileCheck:
    """What the delivery's provenance check found in one file."""

    path: str
    credentials: dict | None = None
    watermark: dict | None = None
    tag_disclosure: str | None = None
    problems: list[str] = field(default_factory=list)


def check_delivered_file(
    path: Path, *, disclosure: AIStatement | None, credentials: Credentials | None, detect: WatermarkDetector | None, relative: str
) -> FileCheck:
    """Read a staged file back as a store would: its manifest (validated), its AI_DISCLOSURE tag,
    its watermark. Problems are sentences naming the file; none means it may be delivered."""
    check = FileCheck(relative)
    if credentials is not None:
        found: CredentialCheck = read_credentials(path, trust_anchors=credentials.trust_anchors_pem)
        check.credentials = found.to_dict()
        if found.state not in ("trusted", "valid"):
            reason = ", ".join(found.failures) or "no manifest"
            check.problems.append(f"{relative}: its Content Credentials do not validate ({found.state}: {reason})")
        elif disclosure is not None and manifest_assertion(found.manifest, DISCLOSURE_LABEL) != disclosure.to_dict():
            check.problems.append(f"{relative}: the AI disclosure in its C2PA manifest differs from the DDEX message's")
    if disclosure is not None:
        check.tag_disclosure = read_ai_disclosure(path)
        if check.tag_disclosure is None or parse_tag(check.tag_disclosure) != disclosure:
            check.problems.append(f"{relative}: its AI_DISCLOSURE tag ({check.tag_disclosure!r}) differs from the DDEX message's disclosure")
    if detect is not None:
        check.watermark = detect(path)
        if not check.watermark["detected"]:
            check.problems.append(
                f"{relative}: the watermark was not detected (median window score {check.watermark['median_score']:g}); the master may have been replaced after QC"
            )
    return check


def licence_audit(models: list[dict], *, commercial: bool) -> list[dict]:
    """Every model, soundfont and voice of a track, with its licence and whether the delivery's
    profiles may use it (a commercial profile needs commercial_use)."""
    return [
        {
            "name": m["name"],
            "kind": {"soundfont": "soundfont", "onnx-vits": "voice", "perthnet": "watermark"}.get(m.get("backend", ""), "model"),
            "version": m["version"],
            "sha256": m["sha256"],
            "licence": m["licence"],
            "source": m.get("source", ""),
            "commercial_use": m.get("commercial_use"),
            "allowed": bool(m.get("commercial_use")) or not commercial,
        }
        for m in models
    ]


def provenance_document(*, release: dict, profile: dict, tracks: list[dict], cover: dict, signed_by: str | None, unsigned_reason: str | None) -> bytes:
    """`provenance.json`: the release, the profile, and per track its files and what made them."""
    document = {
        "provenance_version": 1,
        "generator": {"name": "songmill", "version": __version__},
        "release": release,
        "profile": profile,
        "content_credentials": {"signed_by": signed_by, "unsigned_reason": unsigned_reason},
        "cover": cover,
        "tracks": tracks,
    }
    return (json.dumps(document, indent=1, sort_keys=False) + "\n").encode()
