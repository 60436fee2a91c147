"""Release-wide delivery settings (`config/delivery.yaml`): the DDEX sender and identifier series.

The sender's DDEX Party ID and the ISRC registrant code are a label's own, issued by DDEX and by
its national ISRC agency; the repository ships none. Without a sender, deliveries carry no DDEX
message; without a registrant, `isrc: auto` tracks carry no ISRC (and so no DDEX message either).
`SONGMILL_DELIVERY_CONFIG` points at another file.

    settings = load_delivery_settings(release_id="demo-single")

`identities` maps a release id to another settings file (relative to the one naming it) that
delivers that release instead: the shipped config gives the demo single `demo-identity.yaml`, a
demonstration identity (`test_identity: true`) whose DDEX messages are TestMessages addressed to
its own `recipient`. Every other release id gets the file's own identity, or none."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from songmill.core.config import Locator, load_yaml, validate_config
from songmill.core.errors import ConfigError
from songmill.core.paths import config_dir, config_file
from songmill.core.profiles import DeliveryProfile, Party
from songmill.release.credentials import SigningSettings


class IdentifierSeries(BaseModel):
    """Where `isrc: auto` and `upc: auto` numbers come from (counters live in the catalogue)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    isrc_country: str | None = None
    isrc_registrant: str | None = None
    gs1_company_prefix: Annotated[str, Field(pattern=r"^\d{6,11}$")]

    @field_validator("isrc_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value == "UK":  # ISO 3166-1 reserves UK; the United Kingdom's ISRCs begin GB
            raise ValueError("'UK' is not an ISRC country code: the United Kingdom's is GB (ISO 3166-1)")
        if not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError(f"{value!r} is not an ISRC country code: two capital letters, the ISO 3166-1 code of your ISRC agency's country (GB, US, DE)")
        return value

    @field_validator("isrc_registrant")
    @classmethod
    def _registrant(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Z0-9]{3}", value):
            raise ValueError(f"{value!r} is not an ISRC registrant code: three capital letters or digits, as your ISRC agency issued it (6Q7)")
        return value

    @model_validator(mode="after")
    def _registrant_whole(self) -> "IdentifierSeries":
        if (self.isrc_country is None) != (self.isrc_registrant is None):
            raise ValueError("isrc_country and isrc_registrant go together (give both, or neither)")
        return self


class DeliverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    test_identity: bool = False  # a demonstration identity: its DDEX messages are TestMessages
    sender: Party | None = None  # the label sending DDEX messages; None: no DDEX message
    recipient: Party | None = None  # test identities only: every message goes here, whatever the profile names
    identifiers: IdentifierSeries
    identities: dict[str, str] = {}  # release id → the settings file that delivers that release instead
    signing: SigningSettings | None = None  # the label's C2PA signing key and chain (paths relative to this file, or env:NAME)

    @field_validator("recipient")
    @classmethod
    def _recipient_for_tests_only(cls, value: Party | None, info: ValidationInfo) -> Party | None:
        if value is not None and not info.data.get("test_identity"):
            raise ValueError(
                f"only a test identity (test_identity: true) addresses every message to one recipient; give each profile its recipient in {config_file('profiles.yaml')}"
            )
        return value

    def addressing(self, profile: DeliveryProfile) -> DeliveryProfile:
        """The profile as this identity's messages address it: a test identity's recipient replaces its own."""
        return profile if self.recipient is None else profile.model_copy(update={"recipient": self.recipient})


def _load(path: Path) -> tuple[DeliverySettings, Locator]:
    data, locator = load_yaml(path)
    settings = validate_config(data, locator, DeliverySettings)
    if settings.signing is not None:  # relative key and certificate paths are relative to this file
        resolved = {
            name: value if value is None or value.startswith("env:") or Path(value).is_absolute() else str((path.parent / value).resolve())
            for name, value in settings.signing.model_dump().items()
            if name in ("certificate_chain", "private_key", "trust_anchors")
        }
        settings = settings.model_copy(update={"signing": settings.signing.model_copy(update=resolved)})
    return settings, locator


def missing_signing_files(path: Path | None = None) -> list[str]:
    """`songmill validate`'s check of the signing files `delivery.yaml` names (and each identity
    file it names): one line for each that does not exist on this machine, said before a render
    rather than at its delivery. Only here: a machine that never signs (`verify`, a scheduler)
    need not hold the label's key. `delivery.yaml`'s own problems raise ConfigError, as its
    loader does; an identity file's are lines of their own."""
    path = _settings_path(path)
    settings, locator = _load(path)
    problems = _missing_files(path, settings, locator)
    for release_id, name in sorted(settings.identities.items()):
        try:
            identity = _identity_file(path, locator, release_id, name)
            problems += _missing_files(identity, *_load(identity))
        except ConfigError as err:
            problems += err.problems
    return problems


def _settings_path(path: Path | None) -> Path:
    """`path`, else SONGMILL_DELIVERY_CONFIG, else the config folder's delivery.yaml."""
    return Path(path or os.environ.get("SONGMILL_DELIVERY_CONFIG") or config_dir() / "delivery.yaml")


def _identity_file(path: Path, locator: Locator, release_id: str, name: str) -> Path:
    """The identity file `path`'s `identities` names for `release_id`; ConfigError when it is not there."""
    identity = path.parent / name
    if not identity.is_file():
        raise ConfigError([locator.problem(("identities", release_id), f"'{name}' does not exist (a delivery settings file, relative to {path.name})")])
    return identity


def _missing_files(path: Path, settings: DeliverySettings, locator: Locator) -> list[str]:
    what = {"certificate_chain": "the label's PEM certificates", "private_key": "the label's PEM private key", "trust_anchors": "PEM trust anchors"}
    named = settings.signing.model_dump() if settings.signing is not None else {}
    problems = []
    for field, value in named.items():
        if field not in what or not value:
            continue
        if value.startswith("env:"):  # unset: this machine delivers unsigned and says why; set, it must name a file
            given = os.environ.get(value[4:])
            # a variable may hold the PEM text itself (credentials read either): only a path is checked, and never shown otherwise
            if given and "-----BEGIN" not in given and "\n" not in given and not Path(given).is_file():
                problems.append(locator.problem(("signing", field), f"{value} names {given}, which does not exist ({what[field]}); fix {value[4:]}"))
        elif not Path(value).is_file():
            problems.append(locator.problem(("signing", field), f"{value} does not exist ({what[field]}: a path relative to {path.name}, or env:NAME)"))
    return problems


def load_delivery_settings(path: Path | None = None, *, release_id: str | None = None) -> DeliverySettings:
    """Load `delivery.yaml` (default: the config folder's), or the file its `identities` names for
    `release_id`; problems as `file:line: field: what is wrong`."""
    path = _settings_path(path)
    settings, locator = _load(path)
    chosen = settings.identities.get(release_id) if release_id is not None else None
    if chosen is None or release_id is None:
        return settings
    identity_path = _identity_file(path, locator, release_id, chosen)
    identity, identity_locator = _load(identity_path)
    if identity.identities:
        raise ConfigError(
            [identity_locator.problem(("identities",), f"an identity file names no further identities (it delivers '{release_id}' for {path.name})")]
        )
    return identity
