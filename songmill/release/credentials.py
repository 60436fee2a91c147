"""Content Credentials: a signed C2PA manifest in every delivered file (c2pa-python).

    credentials = load_credentials(settings.signing, where="config/delivery.yaml")  # checked, or SongmillError
    embed_manifest(path, manifest, credentials)      # in place (WAV, FLAC, MP3, M4A, JPEG) or path.c2pa beside it (Opus)
    check = read_credentials(path, trust_anchors=credentials.trust_anchors_pem)
    check.state                                       # "trusted" | "valid" | "invalid" | "absent"

The signing key and its certificate chain are the label's: `signing:` in the delivery settings
names each as a path (relative to that file) or `env:NAME`, an environment variable holding a
path or the PEM text itself. Nothing of them lives in the repository. Before anything is signed
the chain is checked: the signing certificate is within its validity period, is not a CA, has
the digitalSignature key usage and the emailProtection extended key usage, and belongs to the
private key. (The C2PA specification also names documentSigning and its own claim-signing usage,
but c2pa-python 0.38's verifier rejects a certificate with only those: measured, so refused here
with a sentence rather than by c2pa mid-delivery.)

c2pa 0.38 embeds in WAV, FLAC, MP3, M4A and JPEG. It cannot embed in Ogg Opus, so an Opus file
gets a sidecar manifest `<file>.c2pa` beside it (the manifest's hash still binds the Opus bytes;
the delivery's checksums and provenance.json list it). Embedding in an MP3 rewrites its ID3 tag
without the SYLT frame (synced lyrics; measured, any encoding or ID3 version), so an MP3 that
carries synced lyrics gets a sidecar too, and keeps its lyrics.

`write_test_credentials(folder)` makes a throw-away CA and signing certificate for tests and
`make demo` (its names say so); never sign a real release with it.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from songmill.core.errors import SongmillError

EMBEDDABLE = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".jpg": "image/jpeg"}
SIDECAR = {".opus"}  # c2pa cannot embed in these: the manifest goes to <file>.c2pa
SIDECAR_SUFFIX = ".c2pa"
# A sidecar's hash binds the file's bytes as they are: signed and read as opaque data, so c2pa's
# own container handler (which rewrites an MP3's ID3 tag as it hashes) never touches them.
OPAQUE = "application/octet-stream"

# The extended key usage c2pa 0.38 accepts on a claim signer (of those C2PA 2.1 §14.5.1 lists).
EMAIL_PROTECTION, DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36"
SIGNING_USAGES = {EMAIL_PROTECTION: "emailProtection"}

CredentialState = Literal["trusted", "valid", "invalid", "absent"]


class SigningSettings(BaseModel):
    """`signing:` in the delivery settings: the label's C2PA signing key and certificate chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    certificate_chain: Annotated[str, Field(min_length=1)]  # PEM: the signing certificate first, then its issuers
    private_key: Annotated[str, Field(min_length=1)]  # PEM (PKCS#8), unencrypted
    trust_anchors: str | None = None  # PEM of the roots `verify` trusts; default: the chain's last certificate
    timestamp_url: str | None = None  # an RFC 3161 time-stamp authority, where the label has one


@dataclass(frozen=True)
class Credentials:
    """A checked signing key and chain, ready for c2pa."""

    chain_pem: bytes
    key_pem: bytes
    algorithm: str  # c2pa's name: es256, es384, es512, ps256, ed25519
    trust_anchors_pem: bytes
    subject: str
    not_after: dt.datetime
    timestamp_url: str | None = None


@dataclass
class CredentialCheck:
    """What c2pa's reader found in (or beside) a file."""

    state: CredentialState
    failures: list[str] = field(default_factory=list)  # validation codes, e.g. assertion.dataHash.mismatch
    manifest: dict | None = None  # the active manifest
    sidecar: bool = False

    def to_dict(self) -> dict:
        return {"state": self.state, "failures": self.failures, "sidecar": self.sidecar}


def _read_secret(value: str, *, what: str, base: Path) -> bytes:
    """A PEM from a path or from `env:NAME` (a variable holding a path or the PEM itself)."""
    if value.startswith("env:"):
        name = value[4:]
        text = os.environ.get(name)
        if not text:
            raise SongmillError(f"the {what} comes from the environment variable {name}, which is not set; set it to the PEM file's path or its text")
        if "-----BEGIN" in text:
            return text.encode()
        value = text
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        raise SongmillError(f"the {what} {path} does not exist; point signing.{what.replace(' ', '_')} at the label's PEM file")
    return path.read_bytes()


def unset_variables(signing: SigningSettings) -> list[str]:
    """The `env:NAME` variables the settings name that this process does not have."""
    values = (signing.certificate_chain, signing.private_key, signing.trust_anchors or "")
    return [v[4:] for v in values if v.startswith("env:") and not os.environ.get(v[4:])]


def usable_credentials(signing: SigningSettings | None) -> tuple[Credentials | None, str | None]:
    """The checked credentials a settings file names, or (None, why it names none usable). A key
    that is named but unusable (missing file, expired, wrong usage) raises: that is an error, not
    a reason. Validity is checked against the clock (a signature is made now)."""
    if signing is None:
        return None, "the delivery settings name no signing key (signing: {certificate_chain: …, private_key: …})"
    unset = unset_variables(signing)
    if unset:
        return None, f"the signing key's environment variable {unset[0]} is not set"
    return load_credentials(signing, base=Path.cwd(), where="the delivery settings' signing:"), None


def load_credentials(signing: SigningSettings, *, base: Path, where: str, now: dt.datetime | None = None) -> Credentials:
    """Read and check the label's signing key and chain; SongmillError naming what is wrong."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    now = now or dt.datetime.now(dt.UTC)
    chain_pem = _read_secret(signing.certificate_chain, what="certificate chain", base=base)
    key_pem = _read_secret(signing.private_key, what="private key", base=base)
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise SongmillError(
            f"the signing certificate chain named in {where} is not PEM certificates; give the signing certificate then its issuers, PEM-encoded"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise SongmillError(f"the signing private key named in {where} is not an unencrypted PEM private key") from None
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    if leaf.not_valid_after_utc < now:
        raise SongmillError(f"the signing certificate '{subject}' ({where}) expired on {leaf.not_valid_after_utc:%Y-%m-%d}; renew it with your CA")
    if leaf.not_valid_before_utc > now:
        raise SongmillError(f"the signing certificate '{subject}' ({where}) is not valid until {leaf.not_valid_before_utc:%Y-%m-%d}")
    _check_usage(leaf, subject, where)
    public = leaf.public_key()
    if public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise SongmillError(f"the signing private key ({where}) does not belong to the signing certificate '{subject}'; give the pair's key")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(key.curve.name)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = "ed25519"
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = "ps256"
    else:
        algorithm = None
    if algorithm is None:
        raise SongmillError(f"the signing key ({where}) is of a kind C2PA cannot sign with; use an EC P-256/P-384/P-521, Ed25519 or RSA key")
    anchors = (
        _read_secret(signing.trust_anchors, what="trust anchors", base=base) if signing.trust_anchors else chain[-1].public_bytes(serialization.Encoding.PEM)
    )
    return Credentials(chain_pem, key_pem, algorithm, anchors, subject, leaf.not_valid_after_utc, signing.timestamp_url)


def _check_usage(leaf, subject: str, where: str) -> None:  # noqa: ANN001 - a cryptography x509.Certificate
    from cryptography import x509

    def extension(kind):  # noqa: ANN001, ANN202
        try:
            return leaf.extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None

    constraints = extension(x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise SongmillError(f"the signing certificate '{subject}' ({where}) is a CA certificate; sign with an end-entity certificate the CA issued")
    usage = extension(x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise SongmillError(f"the signing certificate '{subject}' ({where}) lacks the digitalSignature key usage C2PA requires")
    extended = extension(x509.ExtendedKeyUsage)
    found = {oid.dotted_string for oid in extended} if extended is not None else set()
    if not found & set(SIGNING_USAGES):
        raise SongmillError(
            f"the signing certificate '{subject}' ({where}) has no extended key usage C2PA accepts "
            f"({', '.join(SIGNING_USAGES.values())}); have your CA issue one with emailProtection"
        )


def _signer(credentials: Credentials):  # noqa: ANN202 - c2pa.Signer
    import c2pa

    info = c2pa.C2paSignerInfo(credentials.algorithm, credentials.chain_pem, credentials.key_pem, credentials.timestamp_url)
    return c2pa.Signer.from_info(info)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def embed_manifest(path: Path, manifest: dict, credentials: Credentials, *, sidecar: bool = False) -> Path:
    """Sign `manifest` over the file's bytes: embedded in place, or written to `<file>.c2pa` where
    the container cannot hold one (or `sidecar`). Returns the file that now carries it."""
    import c2pa

    if path.suffix not in EMBEDDABLE and path.suffix not in SIDECAR:
        raise SongmillError(f"{path.name}: no Content Credentials for {path.suffix} files (C2PA here covers {', '.join(sorted({*EMBEDDABLE, *SIDECAR}))})")
    try:
        builder = c2pa.Builder(manifest)
        if sidecar or path.suffix in SIDECAR:
            builder.set_no_embed()
            with open(path, "rb") as source:
                manifest_bytes = builder.sign(_signer(credentials), OPAQUE, source, io.BytesIO())
            sidecar_path(path).write_bytes(manifest_bytes)
            return sidecar_path(path)
        signed = path.with_name(f".{path.name}.signing")
        with open(path, "rb") as source, open(signed, "w+b") as target:
            builder.sign(_signer(credentials), EMBEDDABLE[path.suffix], source, target)
        os.replace(signed, path)
        return path
    except c2pa.C2paError as err:
        path.with_name(f".{path.name}.signing").unlink(missing_ok=True)
        raise SongmillError(f"{path.name}: the Content Credentials could not be embedded ({_short(err)}); nothing was delivered") from None


def read_credentials(path: Path, *, trust_anchors: bytes | None = None) -> CredentialCheck:
    """Read and validate the C2PA manifest in `path` (or in `<path>.c2pa`)."""
    import c2pa

    settings: dict[str, dict] = {"verify": {"verify_trust": trust_anchors is not None}}
    if trust_anchors is not None:
        settings["trust"] = {"trust_anchors": trust_anchors.decode()}
    context = c2pa.Context(settings=c2pa.Settings.from_dict(settings))
    sidecar = sidecar_path(path)
    try:
        with open(path, "rb") as stream:
            if sidecar.is_file():
                reader = c2pa.Reader(OPAQUE, stream, manifest_data=sidecar.read_bytes(), context=context)
            elif path.suffix in EMBEDDABLE:
                reader = c2pa.Reader.try_create(EMBEDDABLE[path.suffix], stream, context=context)
            else:
                reader = None
    except c2pa.C2paError as err:
        return CredentialCheck("invalid", [_short(err)], sidecar=sidecar.is_file())
    if reader is None:
        return CredentialCheck("absent")
    state = (reader.get_validation_state() or "Invalid").lower()
    results = reader.get_validation_results() or {}
    failures = [f["code"] for f in results.get("activeManifest", {}).get("failure", [])]
    if trust_anchors is None:  # without anchors an untrusted signer is expected: the rest must hold
        failures = [code for code in failures if code != "signingCredential.untrusted"]
    checked: CredentialState = "trusted" if state == "trusted" else "valid" if state == "valid" and not failures else "invalid"
    return CredentialCheck(checked, failures, reader.get_active_manifest(), sidecar=sidecar.is_file())


def _short(err: Exception) -> str:
    return re.sub(r"\s+", " ", str(err)).strip()[:200]


def manifest_assertion(manifest: dict | None, label: str) -> dict | None:
    """The data of a manifest's assertion by label (e.g. org.songmill.provenance), or None."""
    for assertion in (manifest or {}).get("assertions", []):
        if assertion.get("label") == label:
            return assertion.get("data")
    return None


def write_test_credentials(folder: Path, *, valid_days: int = 30, expired: bool = False, usage: str = EMAIL_PROTECTION) -> dict[str, Path]:
    """A throw-away CA and a signing certificate it issued, for tests and the demo only.

    Returns {"chain": …, "key": …, "ca": …} PEM paths in `folder` (created; the key mode 600).
    `expired` backdates the signing certificate; `usage` sets its one extended key usage."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "songmill test credentials (not a real signer)")]
        )

    def usages(*, signer: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
            key_cert_sign=not signer, crl_sign=not signer, encipher_only=False, decipher_only=False,
        )  # fmt: skip

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("songmill test CA")).issuer_name(name("songmill test CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=400)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(usages(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    start = now - dt.timedelta(days=60 if expired else 1)
    end = now - dt.timedelta(days=30) if expired else now + dt.timedelta(days=valid_days)
    leaf = (
        x509.CertificateBuilder().subject_name(name("songmill test signer")).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True).add_extension(usages(signer=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ObjectIdentifier(usage)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = {"chain": folder / "chain.pem", "key": folder / "signer.key", "ca": folder / "ca.pem"}
    pem = serialization.Encoding.PEM
    paths["chain"].write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    paths["ca"].write_bytes(ca.public_bytes(pem))
    paths["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths["key"].chmod(0o600)
    return paths
