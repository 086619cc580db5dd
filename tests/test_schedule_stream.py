"""Issue 16: a schedule built one part of the span at a time (bounded memory) equals the one-piece schedule.

A contact plan searched over a window of the span (``compute_contact_plan(window_s=...)``)
holds the whole span's passes cut at the window's ends; the streamed schedule joins the
windows open at a part's end with their continuation. Rise and set instants are the pass
search's, which is exact to its ``tolerance_s`` (0.1 s; ``orbits/contacts.py``), so the two
schedules agree within that, window for window.
"""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest

import emsfl_sim.sim.schedule as schedule_module
from emsfl_sim.orbits import Site, compute_contact_plan
from emsfl_sim.orbits.walker import walker_delta
from emsfl_sim.scenario import load_scenario
from emsfl_sim.sim.window_stream import WindowStream

TOLERANCE_S = 0.1  # compute_contact_plan's default tolerance_s


def _sites() -> list[Site]:
    return [Site(f"s{i}", lat, lon, 0.0) for i, (lat, lon) in enumerate([(0, 0), (45, 10), (-30, 120), (50, -100)])]


def test_a_window_of_the_span_holds_the_whole_plans_passes_cut_at_its_ends():
    start = dt.datetime(2023, 7, 18)
    records = walker_delta(550.0, 53.0, 64, 8, 1, epoch_utc=start)
    whole = compute_contact_plan(records, _sites(), start, 3 * 3600.0, 25.0).passes
    for a in (0.0, 3600.0, 7200.0):
        part = compute_contact_plan(records, _sites(), start, 3 * 3600.0, 25.0, window_s=(a, a + 3600.0)).passes
        cut = whole[(whole.set_s > a) & (whole.rise_s < a + 3600.0)].copy()
        cut["rise_s"], cut["set_s"] = cut.rise_s.clip(lower=a), cut.set_s.clip(upper=a + 3600.0)
        key = ["cluster", "norad_id", "rise_s"]
        cut, part = cut.sort_values(key).reset_index(drop=True), part.sort_values(key).reset_index(drop=True)
        assert (cut[["cluster", "norad_id"]].to_numpy() == part[["cluster", "norad_id"]].to_numpy()).all()
        assert np.abs(cut.rise_s - part.rise_s).max() <= TOLERANCE_S
        assert np.abs(cut.set_s - part.set_s).max() <= TOLERANCE_S
        assert part.open_at_start.tolist() == (part.rise_s == a).tolist() or a == 0.0
        assert part.set_s.max() <= a + 3600.0 and part.rise_s.min() >= a


def test_window_outside_the_span_is_refused():
    from emsfl_sim.errors import InputError

    start = dt.datetime(2023, 7, 18)
    records = walker_delta(550.0, 53.0, 4, 2, 1, epoch_utc=start)
    with pytest.raises(InputError, match="window_s"):
        compute_contact_plan(records, _sites(), start, 3600.0, 25.0, window_s=(0.0, 7200.0))


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "s.yaml"
    sites = "\n".join(f"  - {{name: c{i}, lat_deg: {lat}, lon_deg: {lon}, devices: 2}}"
                      for i, (lat, lon) in enumerate([(0, 0), (45, 10), (-30, 120), (50, -100), (20, 40)]))
    path.write_text(f"""
name: stream
seed: 0
simulate: timeline
time: {{mode: orbital, duration_s: 43200}}
constellation: {{walker: [{{altitude_km: 550, inclination_deg: 53, planes: 12, sats_per_plane: 12, phasing: 1}}]}}
server: {{mode: constellation}}
clusters:
{sites}
training: {{round_interval_s: 600, local_steps: 1}}
output: {{formats: [parquet], plots: false, checkpoints: false}}
""")
    return load_scenario(path)


def test_one_builder_per_core_but_the_loops(monkeypatch):
    for cores, parts, workers in ((2, 28, 1), (3, 28, 2), (16, 28, 4), (16, 3, 3), (1, 28, 1), (None, 28, 1)):
        monkeypatch.setattr(schedule_module.os, "cpu_count", lambda cores=cores: cores)
        assert schedule_module.schedule_workers(parts) == workers, (cores, parts)


def test_streamed_schedule_equals_the_one_piece_schedule(scenario, monkeypatch):
    one_piece = schedule_module.build_schedule(scenario)
    assert not schedule_module.streams_schedule(scenario, one_piece.duration_s)  # 12 h: one piece
    monkeypatch.setattr(schedule_module, "STREAMED_ABOVE_S", 10800.0)
    monkeypatch.setattr(schedule_module, "SCHEDULE_CHUNK_S", 10800.0)  # four 3-hour parts
    streamed = schedule_module.build_schedule(scenario)
    assert isinstance(streamed.windows, WindowStream) and streamed.extras == {"chunk_s": 10800.0, "background": False, "workers": 0}
    assert streamed.streaming and streamed.windows.received == 0  # parts are built when they are needed
    a, b = one_piece.table(), streamed.table()
    assert len(a) == len(b) > 100
    assert (a[["cluster", "satellite"]].to_numpy() == b[["cluster", "satellite"]].to_numpy()).all()
    assert np.abs(a.start_s - b.start_s).max() <= TOLERANCE_S and np.abs(a.end_s - b.end_s).max() <= TOLERANCE_S
    # no window is cut at a part's end: a window spanning 3 h, 6 h or 9 h is one window in both
    for edge in (10800.0, 21600.0, 32400.0):
        assert ((a.start_s < edge) & (a.end_s > edge)).sum() == ((b.start_s < edge) & (b.end_s > edge)).sum() > 0
    for cluster in scenario.clusters:  # the event loop's view: each cluster's windows by start
        starts = [w.start_s for w in streamed.for_cluster(cluster.name)]
        assert starts == sorted(starts) and len(starts) == (b.cluster == cluster.name).sum()
    assert streamed.idle_fraction == pytest.approx(one_piece.idle_fraction, abs=1e-5)


def test_background_schedule_equals_the_in_process_stream(scenario, monkeypatch):
    """The parts built by two background processes (alternate parts, held windows relayed) are the parts built here, bit for bit."""
    monkeypatch.setattr(schedule_module, "STREAMED_ABOVE_S", 10800.0)
    monkeypatch.setattr(schedule_module, "SCHEDULE_CHUNK_S", 10800.0)  # the child is given the part length
    monkeypatch.setattr(schedule_module, "BACKGROUND_MIN_PAIR_DAYS", 0)  # a small case, in the background all the same
    monkeypatch.setattr(schedule_module.os, "cpu_count", lambda: 3)  # two builders (one core is the loop's)
    here = schedule_module.build_schedule(scenario)
    there = schedule_module.build_schedule(scenario, background=True)
    assert there.extras["background"] and there.extras["workers"] == 2 and there.streaming
    first = [w.start_s for w in itertools.islice(there.for_cluster("c0"), 3)]  # the loop's use
    assert first == [w.start_s for w in itertools.islice(here.for_cluster("c0"), 3)]
    assert there.windows.received == 1 and there.streaming  # the first part only, so far
    a, b = here.table(), there.table()
    assert there.windows.received == 4 and not there.streaming
    assert len(a) > 100 and a.equals(b)
