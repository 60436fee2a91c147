"""Every valid config renders: the config grid of benchmarks/bench_grid.py, one test per point.

240 one-track releases across the six genres, twelve tonics, major and minor (and the other
modes on a sample), 40–240 BPM, the four voices and instrumentals, three structures (one with a
half chorus) and lengths of 30 and 45 s. Each must render into a song or a gate verdict with its
reasons — never a stage failure — and the gate must reject its master when it is claimed two
semitones off its key or re-timed 6 % fast. Slow (about 25 s a point): `make test-all` runs it;
`make bench` reports the share that renders and the gate's false-reject rate.
"""

from __future__ import annotations

import sys

import pytest

from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "benchmarks"))
from bench_grid import grid, judge_point  # noqa: E402

pytestmark = pytest.mark.slow
POINTS = grid()


@pytest.mark.parametrize("index", range(len(POINTS)), ids=[f"{i:03d}-{p['genre']}-{p['key'].replace(' ', '-')}-{p['tempo']}" for i, p in enumerate(POINTS)])
def test_every_grid_config_renders_and_its_master_claimed_off_key_or_off_tempo_is_rejected(index, tmp_path, monkeypatch):
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(tmp_path / "var"))
    row = judge_point(POINTS[index], index, tmp_path)
    assert row["rendered"], row.get("error")
    assert row["mis_keyed_rejected"] and row["retimed_rejected"], row
