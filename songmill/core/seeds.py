"""Seeds: every random choice in songmill starts from a seed derived from names, so the same
config and seed give the same song on any machine and in any process.

    derive_seed("demo-single", 0, "")          # 31-bit int from sha256("demo-single:0:")
    derive_seed(seed, "compose", bits=64)      # a wider seed for numpy's generator
"""

from __future__ import annotations

import hashlib

MAX_SEED = 2**31  # seeds in configs and on the command line are 0 ≤ seed < MAX_SEED


def derive_seed(*parts: object, bits: int = 31) -> int:
    """A seed of `bits` bits (31, 32 or 64) from the parts joined with ':' and hashed (sha256).

    31 bits fit every library's seed type (and the spec's `seed` field); use the same bits as
    the caller always has, or the songs it seeds change."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[: (bits + 7) // 8], "big") & ((1 << bits) - 1)
