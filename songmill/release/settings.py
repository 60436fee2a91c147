"""Release-wide delivery settings (`config/delivery.yaml`): the DDEX sender and identifier series.

The sender's DDEX Party ID and the ISRC registrant code are a label's own, issued by DDEX and by
its national ISRC agency; the repository ships none. Without a sender, deliveries carry no DDEX
message; without a registrant, `isrc: auto` tracks carry no ISRC (and so no DDEX message either).
`SONGMILL_DELIVERY_CONFIG` points at another file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from songmill.errors import ConfigError
from songmill.paths import config_dir
from songmill.profiles import Party
from songmill.spec import describe_errors
from songmill.yamlfile import load_yaml


class IdentifierSeries(BaseModel):
    """Where `isrc: auto` and `upc: auto` numbers come from (counters live in the catalogue)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    isrc_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    isrc_registrant: Annotated[str, Field(pattern=r"^[A-Z0-9]{3}$")] | None = None
    gs1_company_prefix: Annotated[str, Field(pattern=r"^\d{6,11}$")]

    @model_validator(mode="after")
    def _registrant_whole(self) -> "IdentifierSeries":
        if (self.isrc_country is None) != (self.isrc_registrant is None):
            raise ValueError("isrc_country and isrc_registrant go together (give both, or neither)")
        return self


class DeliverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sender: Party | None = None  # the label sending DDEX messages; None: no DDEX message
    identifiers: IdentifierSeries


def load_delivery_settings(path: Path | None = None) -> DeliverySettings:
    """Load `delivery.yaml` (default: the config folder's); problems as `file:line: field: what is wrong`."""
    path = Path(path or os.environ.get("SONGMILL_DELIVERY_CONFIG") or config_dir() / "delivery.yaml")
    data, locator = load_yaml(path)
    try:
        return DeliverySettings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, locator, DeliverySettings)) from None
