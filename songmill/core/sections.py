"""What people call a song's sections: "verse 1", "chorus 2", "bridge".

A name that occurs once is labelled by itself ("bridge"); a name that occurs more than once is
numbered in order ("chorus 1", "chorus 2"). A label without a number names every section of
that name ("chorus": all of them); "bridge 1" is accepted for the only bridge.
"""

from __future__ import annotations

from collections import Counter

from songmill.core.errors import SongmillError


def section_labels(names: list[str]) -> list[str]:
    """The label of each section, in order."""
    totals, seen = Counter(names), Counter[str]()
    labels = []
    for name in names:
        seen[name] += 1
        labels.append(f"{name} {seen[name]}" if totals[name] > 1 else name)
    return labels


def sections_named(label: str, names: list[str], *, where: str = "the song") -> list[int]:
    """The 0-based indices of the sections `label` names; an unknown label is a SongmillError
    that lists the labels the song has."""
    name, _, number = label.strip().lower().rpartition(" ") if label.strip()[-1:].isdigit() else (label.strip().lower(), "", "")
    matches = [i for i, n in enumerate(names) if n == name]
    if number and matches:
        ordinal = int(number)
        matches = [matches[ordinal - 1]] if 1 <= ordinal <= len(matches) else []
    if not matches:
        raise SongmillError(f"{where} has no section {label!r} (it has: {', '.join(section_labels(names))})")
    return matches
