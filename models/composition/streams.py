"""Random streams of a song's own sections, so that an edit of one section leaves the others' draws alone.

A part that draws as it goes (the drums' timing and velocity, the bass's approach notes) from one
stream for the whole song makes every section after an edit different: drop the bridge and the
choruses after it get other draws. Instead each section draws from a stream of its own, named by
the section's name and its occurrence ("chorus", 3rd) and a base the part draws once from its
generator (which `compose` splits off for it before anything is drawn) — so dropping the bridge
leaves chorus 3 its own drums, only earlier in time.
"""

from __future__ import annotations

import zlib

import numpy as np

from songmill.core.score import Score


def section_streams(score: Score, rng: np.random.Generator) -> list[np.random.Generator]:
    """One generator per section of `score`, in order, from one draw of `rng`."""
    base = int(rng.integers(0, 2**63 - 1))
    seen: dict[str, int] = {}
    streams = []
    for section in score.sections:
        seen[section.name] = seen.get(section.name, 0) + 1
        streams.append(np.random.default_rng([base, zlib.crc32(section.name.encode("utf-8")), seen[section.name]]))
    return streams


def ending_stream(rng: np.random.Generator) -> np.random.Generator:
    """A stream for what a part plays after its last section (the drums' final hit): its own,
    so it depends neither on how much the sections drew nor on how many there are."""
    return np.random.default_rng([int(rng.integers(0, 2**63 - 1)), zlib.crc32(b"the end")])
