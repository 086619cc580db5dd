"""The batched schedule step (windows -> geometry -> capacity) equals the one-window-at-a-time one, bit for bit.

Also the schedule's per-cluster idle fraction (summary ``cluster_idle_fraction_mean``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from emsfl_sim.link import LinkParams, PassCapacity, pass_capacity
from emsfl_sim.link.fading import ergodic_spectral_efficiency, segment_spectral_efficiency
from emsfl_sim.link.packed_capacity import packed_pass_capacities
from emsfl_sim.orbits.server import _best_per_sample
from emsfl_sim.rng import rng
from emsfl_sim.scenario import load_scenario
from emsfl_sim.sim import schedule as sched
from emsfl_sim.sim.constellation import load_constellation
from emsfl_sim.sim.schedule import LinkSchedule, LinkWindow
from emsfl_sim.sim.window_links import window_links, window_times

_CAPACITY_ARRAYS = ("_t", "_c", "_slope", "_cum_bits")


def _same_capacity(a: PassCapacity, b: PassCapacity) -> bool:
    arrays = all(np.array_equal(getattr(a, n), getattr(b, n)) for n in _CAPACITY_ARRAYS)
    return arrays and a.shadowing_db == b.shadowing_db and a.max_doppler_hz == b.max_doppler_hz


@pytest.mark.parametrize("step", [10.0, 7.3, 0.1])
def test_window_times_are_union1d_of_arange(step):
    g = np.random.default_rng(0)
    n = 3000
    start = np.round(g.uniform(0, 7 * 86400, n), int(g.integers(0, 9)))
    duration = np.concatenate([g.exponential(40, n - 600), g.uniform(0, 1e-6, 200), np.zeros(200),
                               g.integers(1, 30, 200) * step])
    end = start + duration
    t, offsets = window_times(start, end, step)
    assert offsets[0] == 0 and offsets[-1] == t.size
    for i in range(n):
        ref = np.union1d(np.arange(float(start[i]), float(end[i]), step), [start[i], end[i]])
        assert np.array_equal(ref, t[offsets[i] : offsets[i + 1]]), i


def test_segment_spectral_efficiency_is_per_segment_table():
    g = np.random.default_rng(1)
    lengths = np.concatenate([g.integers(2, 64, 300), g.integers(64, 150, 20), [63, 64, 2]])
    snr = 10.0 ** g.uniform(-4, 4, lengths.sum())
    snr[g.integers(0, snr.size, 30)] = 1e-7  # below the table: quadrature inside a table segment
    k = 10.0 ** g.uniform(-1, 3, snr.size)
    k[g.integers(0, snr.size, 10)] = np.inf
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    out = segment_spectral_efficiency(snr, k, offsets)
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        assert np.array_equal(out[a:b], ergodic_spectral_efficiency(snr[a:b], k[a:b], method="table"))


def test_pass_capacities_are_per_pass():
    g = np.random.default_rng(2)
    params = LinkParams(rician_k_horizon_db=2.0, shadowing_sigma_db=3.0, elevation_mask_deg=25.0)
    lengths = np.concatenate([g.integers(2, 20, 200), g.integers(60, 120, 10)])
    t = np.concatenate([np.sort(g.uniform(0, 600, n)) + 1000.0 * i for i, n in enumerate(lengths)])
    geometry = {"t_s": t, "elevation_deg": g.uniform(20, 90, t.size), "range_km": g.uniform(550, 1200, t.size),
                "range_rate_km_s": g.uniform(-7, 7, t.size)}
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    shadow = g.normal(0, 3, lengths.size)
    packed = packed_pass_capacities(geometry, offsets, params, shadow, devices_sharing=2)
    caps = [packed.capacity(i) for i in range(len(packed))]
    for i, cap in enumerate(caps):
        a, b = offsets[i], offsets[i + 1]
        one = pass_capacity(pd.DataFrame({k: v[a:b] for k, v in geometry.items()}), params, None, 2,
                            shadowing_db=float(shadow[i]))
        assert _same_capacity(cap, one), i
        assert cap.completion_time(float(t[a]), 1e3) == one.completion_time(float(t[a]), 1e3)


def _scenario(tmp_path):
    sites = [{"name": f"c{i}", "lat_deg": lat, "lon_deg": lon, "devices": d}
             for i, (lat, lon, d) in enumerate([(48.0, 11.0, 3), (-33.0, 151.0, 5), (35.0, 139.0, 3)])]
    data = {"name": "batch", "seed": 3, "simulate": "timeline",
            "time": {"mode": "orbital", "duration_s": 3 * 3600.0},
            "constellation": {"walker": [{"altitude_km": 550, "inclination_deg": 53, "planes": 6,
                                          "sats_per_plane": 6, "phasing": 1}]},
            "server": {"mode": "constellation"}, "clusters": sites,
            "link": {"shadowing_sigma_db": 4.0, "total_bandwidth_hz": 20e6, "sharing": "equal_share"},
            "training": {"round_interval_s": 600, "local_steps": 1}, "strategy": {"expert_groups": None}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_scenario(path)


def test_window_links_equal_one_window_at_a_time(tmp_path, monkeypatch):
    scenario = _scenario(tmp_path)
    records = load_constellation(scenario)
    plan = sched.contact_plan(scenario, records)
    windows_df = sched.server_windows(scenario, plan, records[0])
    assert len(windows_df) > 20 and windows_df["end_s"].sub(windows_df["start_s"]).min() < 64 * 10.0
    monkeypatch.setattr("emsfl_sim.sim.window_links.WINDOW_BATCH", 7)  # several batches
    devices = {c.name: c.devices for c in scenario.clusters}
    params_of = {d: sched.link_params(scenario, d) for d in set(devices.values())}
    batched = list(window_links(scenario, plan, windows_df, params_of))
    assert len(batched) == len(windows_df)
    for w, row in zip(batched, windows_df.itertuples(index=False), strict=True):
        geometry = sched.window_geometry(plan, row, scenario.time.geometry_step_s)
        params = sched.link_params(scenario, devices[row.cluster])
        cap = pass_capacity(geometry, params, rng(scenario.seed, "shadowing", row.cluster, round(row.start_s, 3)))
        assert (w.cluster, w.start_s, w.end_s, w.satellite) == (row.cluster, row.start_s, row.end_s, row.satellite)
        assert w.max_elevation_deg == float(np.nanmax(geometry["elevation_deg"]))
        assert _same_capacity(w.capacity, cap)
        assert cap.shadowing_db != 0.0


def test_best_per_sample_is_the_last_after_lexsort():
    g = np.random.default_rng(4)
    for trial in range(200):
        n, samples = int(g.integers(1, 2000)), int(g.integers(1, 300))
        sample_of = g.integers(0, samples, n)
        score = np.round(g.normal(size=n), int(g.integers(0, 3)))  # ties
        score[g.integers(0, n, 3 * (trial % 2))] = np.nan
        score[g.integers(0, n, 3 * (trial % 3 == 0))] = -0.0
        order = np.lexsort((score, sample_of))
        last = np.ones(n, dtype=bool)
        last[:-1] = sample_of[order][1:] != sample_of[order][:-1]
        present, best = _best_per_sample(score, sample_of, samples)
        assert np.array_equal(present, sample_of[order][last]) and np.array_equal(best, order[last])


def test_elevations_are_sample_arrays_in_chunks(tmp_path):
    scenario = _scenario(tmp_path)
    plan = sched.contact_plan(scenario, load_constellation(scenario))
    g = np.random.default_rng(5)
    n = 5000
    isite, isat = g.integers(0, 3, n), g.integers(0, 36, n)
    t = np.round(g.uniform(0, 3 * 3600.0, n), 1)  # repeated times share one rotation angle
    ref = plan.sample_arrays(isite, isat, t)["elevation_deg"]
    assert np.array_equal(plan.elevations(isite, isat, t, chunk=777), ref)


def test_cluster_idle_fraction_mean_by_hand():
    def window(cluster, a, b):
        return LinkWindow(cluster, a, b, "S", PassCapacity.constant(a, b, 1.0))

    # a: [0, 10] and [5, 20] overlap (20 s connected of 100); b: [50, 60], [90, 110] clipped at 100 (20 s); c: none
    windows = [window("a", 0.0, 10.0), window("a", 5.0, 20.0), window("b", 50.0, 60.0), window("b", 90.0, 110.0)]
    schedule = LinkSchedule(windows, 100.0, 100.0, ["a", "b", "c"], "orbital")
    assert schedule.cluster_idle_fraction_mean == pytest.approx((0.8 + 0.8 + 1.0) / 3)
    assert schedule.idle_fraction == pytest.approx(1.0 - 0.4)  # no cluster connected: 60 of 100 s
    state = schedule.__getstate__()
    assert "_idle_stats" not in state  # the cache is not pickled
