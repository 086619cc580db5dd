"""Constellation-mode server selection on the common grid (issue 16): against a one-instant-at-a-time reference."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from emsfl_sim.orbits import Site, compute_contact_plan, link_windows, walker_delta
from emsfl_sim.orbits.frames import exact_states
from emsfl_sim.orbits.handover_grid import highest_elevation_windows
from emsfl_sim.orbits.propagate import grid_positions

START = datetime(2023, 7, 18, tzinfo=timezone.utc)
STEP = 10.0


@pytest.fixture(scope="module")
def plan():
    sites = [Site("north", 60.0, 10.0), Site("equator", 0.0, 30.0), Site("south", -40.0, 140.0)]
    recs = walker_delta(780, 86.4, 66, 6, 2, raan_spread_deg=180.0, name_prefix="IRI")
    return compute_contact_plan(recs, sites, START, 3 * 3600.0, 10.0)


def test_grid_positions_match_exact_sgp4(plan):
    satrecs, _, clock = plan.runtime()
    chunk = satrecs[:7]
    pos = grid_positions(chunk, 5, 4, 12, STEP, clock)  # samples k = 60 .. 107
    t = STEP * np.arange(60, 108)
    for i in range(len(chunk)):
        exact, _ = exact_states(chunk, np.full(t.shape, i), t, clock)
        assert np.max(np.abs(pos[i] - exact)) < 1e-5  # km: the fill is within a centimetre
    same = grid_positions(chunk, 5, 4, 1, STEP * 12, clock)  # every = 1: SGP4 on the samples themselves
    for i in range(len(chunk)):
        exact, _ = exact_states(chunk, np.full(4, i), STEP * 12 * np.arange(5, 9), clock)
        assert np.array_equal(same[i], exact)


def _reference(plan, cluster):
    """The rule of issue 16 one instant at a time: grid samples, and the set or rise instants between them."""
    passes = plan.passes[plan.passes.cluster == cluster].reset_index(drop=True)
    rise, set_ = passes.rise_s.to_numpy(), passes.set_s.to_numpy()

    def best(t):
        vis = np.flatnonzero((rise <= t) & (set_ > t))
        if len(vis) <= 1:
            return vis[0] if len(vis) else None
        el = [plan.sample(cluster, int(passes.norad_id[i]), [t]).elevation_deg[0] for i in vis]
        return vis[int(np.argmax(el))]

    segments = []
    for k in range(int(np.ceil(plan.duration_s / STEP)) + 1):
        t0, t1 = k * STEP, (k + 1) * STEP
        t, serving = t0, best(t0)
        while t < t1:
            if serving is None:  # nothing up: the first pass to rise in the step serves
                later = np.flatnonzero((rise > t) & (rise < t1))
                if len(later) == 0:
                    break
                t = float(rise[later].min())
                serving = best(t)
                continue
            end = min(t1, float(set_[serving]))
            segments.append((int(passes.norad_id[serving]), t, end))
            t, serving = end, (best(end) if end < t1 else None)
    merged = []
    for sat, a, b in segments:
        if merged and merged[-1][0] == sat and abs(merged[-1][2] - a) < 1e-9:
            merged[-1] = (sat, merged[-1][1], b)
        else:
            merged.append((sat, a, b))
    return merged


def test_common_grid_windows_equal_the_reference(plan):
    w = link_windows(plan, "constellation", handover="highest_elevation", handover_step_s=STEP)
    for site in plan.sites:
        mine = w[w.cluster == site.name].sort_values("start_s")
        ref = _reference(plan, site.name)
        assert len(mine) == len(ref) > 10
        assert mine.norad_id.tolist() == [r[0] for r in ref]
        assert np.allclose(mine.start_s, [r[1] for r in ref], rtol=0, atol=1e-9)
        assert np.allclose(mine.end_s, [r[2] for r in ref], rtol=0, atol=1e-9)


def test_chunks_do_not_change_the_windows(plan):
    whole = highest_elevation_windows(plan, STEP)
    for chunk_s in (120.0, 700.0):
        pd.testing.assert_frame_equal(highest_elevation_windows(plan, STEP, chunk_s=chunk_s), whole)


def test_other_steps_and_no_passes(plan):
    coarse = link_windows(plan, "constellation", handover_step_s=30.0)
    switches = coarse.sort_values(["cluster", "start_s"])
    off_grid = switches[switches.start_s % 30.0 != 0.0]
    edges = set(plan.passes.rise_s) | set(plan.passes.set_s)
    assert all(t in edges for t in off_grid.start_s)  # off the 30 s grid only at a rise or a set
    empty = link_windows(plan.__class__(plan.passes.iloc[:0], plan.start_utc, plan.duration_s, plan.sites,
                                        plan.elevation_mask_deg, plan.records), "constellation")
    assert len(empty) == 0 and list(empty.columns) == list(coarse.columns)
