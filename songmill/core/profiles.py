"""Delivery profiles (`config/profiles.yaml`): what each distribution target receives."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from songmill.core.config import load_yaml, validate_config
from songmill.core.errors import ConfigError
from songmill.core.paths import config_dir

LOSSY_RATE_HZ = {"mp3": 44100, "m4a": 44100, "opus": 48000}  # a lossy format's rate when the profile names none


class AudioFormat(BaseModel):
    """One encoded file per track. Lossless formats state rate and depth; lossy ones a bitrate."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    container: Literal["wav", "flac", "mp3", "m4a", "opus"]
    sample_rate_hz: Literal[44100, 48000, 96000] | None = None
    bit_depth: Literal[16, 24] | None = None
    bitrate_kbps: Annotated[int, Field(ge=32, le=512)] | None = None

    @model_validator(mode="after")
    def _complete(self) -> "AudioFormat":
        lossless = self.container in ("wav", "flac")
        if lossless and (self.sample_rate_hz is None or self.bit_depth is None):
            raise ValueError(f"a {self.container} format needs sample_rate_hz and bit_depth")
        if not lossless and self.bitrate_kbps is None:
            raise ValueError(f"a {self.container} format needs bitrate_kbps")
        return self


def _dpid(value: str) -> str:
    """A DDEX Party ID as DDEX issues them: PADPIDA, ten digits (the date issued and a number),
    a check character. The ERN schema takes any PADPIDA… string, so a typo would be sent."""
    if not re.fullmatch(r"PADPIDA\d{10}[0-9A-Z]", value):
        raise ValueError(f"{value!r} is not a DDEX Party ID: PADPIDA, ten digits and a check character (PADPIDA2014120301U), as DDEX issued it to the party")
    return value


DPID = Annotated[str, AfterValidator(_dpid)]  # a DDEX Party ID


class Party(BaseModel):
    """A DDEX message party: who sends a release, or the distributor who receives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=200)]
    dpid: DPID


class Deal(BaseModel):
    """The commercial terms a profile's DDEX message offers (DDEX allowed values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    commercial_models: Annotated[
        list[Literal["SubscriptionModel", "AdvertisementSupportedModel", "PayAsYouGoModel", "FreeOfChargeModel"]], Field(min_length=1)
    ] = ["SubscriptionModel", "AdvertisementSupportedModel"]
    use_types: Annotated[
        list[Literal["Stream", "OnDemandStream", "NonInteractiveStream", "PermanentDownload", "ConditionalDownload", "Download"]], Field(min_length=1)
    ] = ["OnDemandStream", "NonInteractiveStream"]
    territories: Annotated[list[Annotated[str, Field(pattern=r"^(Worldwide|[A-Z]{2})$")]], Field(min_length=1)] = ["Worldwide"]


DELIVERY_ONLY_FIELDS = {"recipient", "deal", "destination", "content_credentials"}


class DeliveryProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str
    commercial: bool = True  # a non-commercial model may not feed a commercial profile
    loudness_lufs: Annotated[float, Field(ge=-30, le=-5)] | Literal["reference"]  # "reference": the reference recording's loudness
    true_peak_dbtp: Annotated[float, Field(ge=-6, le=0)]
    lossy_true_peak_dbtp: Annotated[float, Field(ge=-6, le=0)] = -0.5  # MP3/AAC/Opus files, as decoded (codec overshoot)
    formats: Annotated[list[AudioFormat], Field(min_length=1)]
    preview_clip_s: Annotated[float, Field(gt=0, le=90)] | None = None  # also deliver a clip this long
    reference: str | None = None  # a recording whose tone (and loudness, with loudness_lufs: reference) masters match; relative to config/
    destination: str | None = None  # a folder (relative to `render --out`) or s3://bucket/prefix; None: <out>/<profile>
    recipient: Party | None = None  # the distributor the DDEX message goes to; None: no DDEX recipient named (an error at delivery)
    deal: Deal = Deal()
    # provenance: the inaudible mark in every master (detected again in every delivered file), and
    # whether a signed C2PA manifest must be in every file (required: no signing key, no delivery)
    watermark: bool = True
    content_credentials: Literal["required", "optional", "off"] = "optional"

    def audio_fields(self) -> dict:
        """The profile as the stages that make and judge audio see it (their cache keys): without
        what only packaging reads, so a new recipient, deal, destination or signing policy
        re-delivers without re-judging or re-encoding a song."""
        return self.model_dump(mode="json", exclude=DELIVERY_ONLY_FIELDS)

    @model_validator(mode="after")
    def _reference_for_loudness(self) -> "DeliveryProfile":
        if self.loudness_lufs == "reference" and self.reference is None:
            raise ValueError("loudness_lufs: reference needs a reference recording (add reference: path/to/file)")
        return self


class ProfileSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    profiles: dict[str, DeliveryProfile]


def load_profiles(path: str | Path | None = None) -> dict[str, DeliveryProfile]:
    """Load `profiles.yaml`; problems are reported as `file:line: field.path: what is wrong`."""
    path = Path(path or config_dir() / "profiles.yaml")
    data, locator = load_yaml(path)
    profiles = validate_config(data, locator, ProfileSet).profiles
    resolved, problems = {}, []
    for name, profile in profiles.items():
        if profile.reference is not None:
            reference = (path.parent / profile.reference).resolve()
            if not reference.is_file():
                problems.append(locator.problem(("profiles", name, "reference"), f"'{profile.reference}' does not exist (a path relative to {path.parent})"))
            profile = profile.model_copy(update={"reference": str(reference)})
        resolved[name] = profile
    if problems:
        raise ConfigError(problems)
    return resolved
