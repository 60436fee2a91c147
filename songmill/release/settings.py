"""Release-wide delivery settings (`config/delivery.yaml`): the DDEX sender and identifier series."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from songmill.errors import ConfigError
from songmill.paths import config_dir
from songmill.profiles import Party
from songmill.spec import describe_errors
from songmill.yamlfile import load_yaml


class IdentifierSeries(BaseModel):
    """Where `isrc: auto` and `upc: auto` numbers come from (counters live in the catalogue)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    isrc_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    isrc_registrant: Annotated[str, Field(pattern=r"^[A-Z0-9]{3}$")]
    gs1_company_prefix: Annotated[str, Field(pattern=r"^\d{6,11}$")]


class DeliverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sender: Party
    identifiers: IdentifierSeries


def load_delivery_settings(path: Path | None = None) -> DeliverySettings:
    """Load `delivery.yaml` (default: the config folder's); problems as `file:line: field: what is wrong`."""
    path = Path(path or config_dir() / "delivery.yaml")
    data, locator = load_yaml(path)
    try:
        return DeliverySettings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, locator, DeliverySettings)) from None
