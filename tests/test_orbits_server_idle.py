"""Server selection, idle statistics and the timeline plot."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from emsfl_sim.errors import InputError
from emsfl_sim.orbits import (
    WINDOW_COLUMNS,
    Site,
    compute_contact_plan,
    idle_statistics,
    link_windows,
    orbital_period_s,
    parse_tle_text,
    plot_timeline,
    walker_delta,
)
from emsfl_sim.orbits.idle import _merge
from tests.fakes import ISS_TLE, PNG_MAGIC

SITES = [Site("north", 60.0, 10.0), Site("equator", 0.0, 30.0), Site("south", -40.0, 140.0)]
START = datetime(2023, 7, 18, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def plan():
    # Iridium-like star shell: several satellites visible at a time at high latitude.
    recs = walker_delta(780, 86.4, 66, 6, 2, raan_spread_deg=180.0, name_prefix="IRI")
    return compute_contact_plan(recs, SITES, START, 4 * 3600.0, 10.0)


def test_single_server_windows_are_its_passes(plan):
    sat = plan.passes.satellite.iloc[0]
    w = link_windows(plan, "single", satellite=sat)
    assert list(w.columns) == WINDOW_COLUMNS
    mine = plan.passes[plan.passes.satellite == sat]
    assert len(w) == len(mine) and set(w.satellite) == {sat}
    assert np.allclose(np.sort(w.start_s), np.sort(mine.rise_s))
    by_id = link_windows(plan, "single", satellite=int(mine.norad_id.iloc[0]))
    pd.testing.assert_frame_equal(by_id, w)
    with pytest.raises(
        InputError, match=r"server\.satellite: server satellite 'NOPE' not found; available e\.g\. IRI-"
    ):
        link_windows(plan, "single", satellite="NOPE")
    with pytest.raises(InputError, match="mode must be"):
        link_windows(plan, "relay")


def _union(df, a="start_s", b="end_s"):
    return _merge(df[[a, b]].to_numpy(dtype=float))


@pytest.mark.parametrize("handover", ["highest_elevation", "sticky"])
def test_constellation_windows_cover_union_without_overlap(plan, handover):
    w = link_windows(plan, "constellation", handover=handover)
    for c in [s.name for s in SITES]:
        wc = w[w.cluster == c].sort_values("start_s")
        pc = plan.passes[plan.passes.cluster == c]
        assert (wc.start_s.to_numpy()[1:] >= wc.end_s.to_numpy()[:-1] - 1e-6).all()  # no overlap
        assert np.allclose(_union(wc), _union(pc, "rise_s", "set_s"), atol=1e-6)
        # Every window lies inside a pass of its satellite.
        for _, row in wc.iterrows():
            p = pc[
                (pc.satellite == row.satellite)
                & (pc.rise_s <= row.start_s + 1e-6)
                & (pc.set_s >= row.end_s - 1e-6)
            ]
            assert len(p) == 1


def test_highest_elevation_serves_the_highest_satellite(plan):
    w = link_windows(plan, "constellation", handover="highest_elevation", handover_tolerance_s=0.5)
    gen = np.random.default_rng(0)
    checked = 0
    for _, row in w[w.end_s - w.start_s > 5].sample(40, random_state=1).iterrows():
        t = gen.uniform(row.start_s + 1.0, row.end_s - 1.0)
        vis = plan.passes[
            (plan.passes.cluster == row.cluster) & (plan.passes.rise_s <= t) & (plan.passes.set_s > t)
        ]
        el = [plan.sample(row.cluster, s, [t]).elevation_deg[0] for s in vis.satellite]
        assert vis.satellite.iloc[int(np.argmax(el))] == row.satellite
        checked += 1
    assert checked == 40


def test_sticky_switches_only_at_sets_and_hands_over_less(plan):
    sticky = link_windows(plan, "constellation", handover="sticky")
    best = link_windows(plan, "constellation", handover="highest_elevation")
    assert len(sticky) <= len(best)
    ends = plan.passes.set_s.to_numpy()
    assert all(np.min(np.abs(ends - e)) < 1e-6 for e in sticky.end_s)


def test_score_callable(plan):
    # Prefer the highest catalogue number among visible satellites.
    w = link_windows(plan, "constellation", handover=lambda g: g["norad_id"].to_numpy())
    for _, row in w.iterrows():
        t = 0.5 * (row.start_s + row.end_s)
        vis = plan.passes[
            (plan.passes.cluster == row.cluster) & (plan.passes.rise_s <= t) & (plan.passes.set_s > t)
        ]
        assert row.norad_id == vis.norad_id.max()


def test_highest_capacity_uses_score(plan):
    nearest = link_windows(
        plan, "constellation", handover="highest_capacity", score=lambda g: -g["range_km"].to_numpy()
    )
    highest = link_windows(plan, "constellation", handover=lambda g: -g["range_km"].to_numpy())
    pd.testing.assert_frame_equal(nearest, highest)
    with pytest.raises(InputError, match="needs a capacity score function"):
        link_windows(plan, "constellation", handover="highest_capacity")


def test_idle_statistics_by_hand():
    windows = pd.DataFrame(
        {
            "cluster": ["a", "a", "a", "b"],
            "start_s": [0.0, 10.0, 50.0, 15.0],
            "end_s": [20.0, 30.0, 60.0, 55.0],
        }
    )
    st = idle_statistics(windows, ["a", "b", "c"], 100.0, orbital_period_s=50.0)
    a, b, c = (st.per_cluster.set_index("cluster").loc[x] for x in "abc")
    # a: [0, 30] + [50, 60] = 40 s connected; gaps 20 and 40.
    assert a.connected_fraction == pytest.approx(0.4) and a.passes == 2 and a.passes_per_orbit == 1.0
    assert np.allclose(st.gaps_s["a"], [20.0, 40.0]) and a.max_gap_s == 40.0 and a.mean_gap_s == 30.0
    assert b.idle_fraction == pytest.approx(0.6)
    assert c.connected_fraction == 0.0 and c.max_gap_s == 100.0
    # Timeline: 0-15 one (a), 15-30 two, 30-50 one (b), 50-55 two, 55-60 one (a), 60-100 none.
    assert st.fraction_none == pytest.approx(0.40)
    assert st.fraction_multiple == pytest.approx(0.20)
    assert st.fraction_one == pytest.approx(0.40)
    assert np.allclose(st.gaps_none_s, [40.0])


def test_idle_statistics_from_plan(plan):
    w = link_windows(plan, "constellation")
    st = idle_statistics(w, [s.name for s in SITES], plan.duration_s)
    assert st.fraction_none + st.fraction_one + st.fraction_multiple == pytest.approx(1.0)
    assert ((st.per_cluster.connected_fraction >= 0) & (st.per_cluster.connected_fraction <= 1)).all()
    assert np.isnan(st.per_cluster.passes_per_orbit).all()


def test_orbital_period():
    rec = parse_tle_text("\n".join(ISS_TLE[1:]))[0][0]
    # one day over the TLE's mean motion (line 2, columns 53-63: 15.72125391 rev/day)
    assert orbital_period_s(rec) == pytest.approx(86400.0 / 15.72125391)


def test_plot_timeline(plan, tmp_path):
    out = plot_timeline(plan.passes, tmp_path / "t.png")
    assert out.stat().st_size > 5000 and out.read_bytes().startswith(PNG_MAGIC)
    windows = plot_timeline(link_windows(plan, "constellation"), tmp_path / "w.png")  # no colour column
    assert windows == tmp_path / "w.png"
    assert windows.stat().st_size > 5000 and windows.read_bytes().startswith(PNG_MAGIC)  # a real image
