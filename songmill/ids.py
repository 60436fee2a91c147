"""Industry identifiers: ISRC (ISO 3901) and UPC/EAN-13 (GTIN) validation."""

from __future__ import annotations

import re

_ISRC = re.compile(r"^([A-Z]{2})-?([A-Z0-9]{3})-?(\d{2})-?(\d{5})$")


def validate_isrc(value: str) -> str:
    """Return the ISRC in its compact 12-character form, or raise ValueError."""
    match = _ISRC.match(str(value).upper())
    if not match:
        raise ValueError(f"'{value}' is not an ISRC (CC-XXX-YY-NNNNN: country, registrant, year, designation) or 'auto'")
    return "".join(match.groups())


def gtin_check_digit(digits: str) -> int:
    """GS1 check digit for the digits before it (UPC-A: 11 digits, EAN-13: 12)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def validate_upc(value: str) -> str:
    """Return a valid UPC-A (12 digits) or EAN-13 (13 digits), or raise ValueError."""
    text = str(value).strip()
    if not re.fullmatch(r"\d{12,13}", text):
        raise ValueError(f"'{value}' is not a UPC (12 digits) or EAN-13 (13 digits), or 'auto'")
    if gtin_check_digit(text[:-1]) != int(text[-1]):
        raise ValueError(f"'{value}' has a wrong check digit (expected {gtin_check_digit(text[:-1])})")
    return text
