"""Industry identifiers: ISRC (ISO 3901) and UPC/EAN-13 (GTIN) validation."""

from __future__ import annotations

import re

from songmill.core.config import shown

_ISRC = re.compile(r"^([A-Z]{2})-?([A-Z0-9]{3})-?(\d{2})-?(\d{5})$")


def validate_isrc(value: str) -> str:
    """Return the ISRC in its compact 12-character form, or raise ValueError."""
    match = _ISRC.match(str(value).upper())
    if not match:
        raise ValueError(f"{shown(value)} is not an ISRC (CC-XXX-YY-NNNNN: country, registrant, year, designation) or 'auto'")
    return "".join(match.groups())


def gtin_check_digit(digits: str) -> int:
    """GS1 check digit for the digits before it (UPC-A: 11 digits, EAN-13: 12)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def validate_upc(value: str) -> str:
    """Return a valid UPC-A (12 digits) or EAN-13 (13 digits), or raise ValueError."""
    text = str(value).strip()
    if not re.fullmatch(r"\d{12,13}", text):
        raise ValueError(f"{shown(value)} is not a UPC (12 digits) or EAN-13 (13 digits), or 'auto'")
    if gtin_check_digit(text[:-1]) != int(text[-1]):
        raise ValueError(f"{shown(value)} has a wrong check digit (expected {gtin_check_digit(text[:-1])})")
    return text


def make_isrc(country: str, registrant: str, year: int, designation: int) -> str:
    """The compact ISRC for a registrant's `designation`-th recording of a year.

    >>> make_isrc("QZ", "SGM", 2026, 7)
    'QZSGM2600007'
    """
    if not 0 <= designation <= 99999:
        raise ValueError(f"ISRC designation {designation} is outside 0–99999 (the registrant's year is full)")
    return validate_isrc(f"{country}{registrant}{year % 100:02d}{designation:05d}")


def make_gtin13(company_prefix: str, item: int) -> str:
    """An EAN-13 (GTIN-13) from a GS1 company prefix and an item reference, with its check digit.

    >>> make_gtin13("0200000", 42)
    '0200000000424'
    """
    width = 12 - len(company_prefix)
    if not company_prefix.isdigit() or width < 1:
        raise ValueError(f"GS1 company prefix {company_prefix!r} must be 1–11 digits")
    if not 0 <= item < 10**width:
        raise ValueError(f"item reference {item} does not fit the {width} digits prefix {company_prefix} leaves")
    body = f"{company_prefix}{item:0{width}d}"
    return body + str(gtin_check_digit(body))
