"""Issue 16: link windows in packed columns (WindowTable, PackedCapacities) give the windows the objects did."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from emsfl_sim.link import LinkParams
from emsfl_sim.link.packed_capacity import PackedCapacities, packed_pass_capacities
from emsfl_sim.sim.window_table import LinkWindow, PackedLinkWindow, WindowTable


def _packed(n: int, seed: int) -> PackedCapacities:
    g = np.random.default_rng(seed)
    lengths = g.integers(2, 7, n)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    t = np.concatenate([100.0 * i + np.cumsum(g.uniform(1, 10, k)) for i, k in enumerate(lengths)])
    geometry = {"t_s": t, "elevation_deg": g.uniform(20, 80, t.size), "range_km": g.uniform(600, 2000, t.size),
                "range_rate_km_s": g.uniform(-7, 7, t.size)}
    return packed_pass_capacities(geometry, offsets, LinkParams(), g.normal(0, 2, n))


def _table(n: int, seed: int, clusters: tuple[str, ...]) -> WindowTable:
    caps = _packed(n, seed)
    starts = np.array([caps.capacity(i).start_s for i in range(n)])
    ends = np.array([caps.capacity(i).end_s for i in range(n)])
    codes = (np.arange(n) % len(clusters)).astype(np.int32)
    return WindowTable(clusters, codes, ("S1", "S2"), (np.arange(n) % 2).astype(np.int32), starts, ends,
                       np.full(n, 45.0), caps)


def test_take_and_concat_keep_each_capacity():
    a, b = _packed(9, 1), _packed(5, 2)
    joined = PackedCapacities.concat([a, b])
    order = np.array([13, 0, 4, 9, 2])
    picked = joined.take(order)
    for k, i in enumerate(order.tolist()):
        src = a.capacity(i) if i < 9 else b.capacity(i - 9)
        got = picked.capacity(k)
        assert np.array_equal(got.t_s, src.t_s) and np.array_equal(got.rate_samples_bps, src.rate_samples_bps)
        assert got.completion_time(src.start_s, 1e5) == src.completion_time(src.start_s, 1e5)
        assert (got.shadowing_db, got.max_doppler_hz) == (src.shadowing_db, src.max_doppler_hz)
    assert picked.total_bytes.tolist() == [picked.capacity(k).total_bytes for k in range(len(order))]
    assert len(PackedCapacities.concat([])) == 0


def test_window_table_indexing_grouping_and_concat():
    t1, t2 = _table(7, 4, ("a", "b")), _table(4, 5, ("b", "c"))
    parts = [t1, t2]
    table = WindowTable.concat(parts)
    assert parts == []  # emptied: a streamed schedule's parts are freed as they are copied
    assert len(table) == 11 and table.cluster_names == ("a", "b", "c")
    windows = list(table)
    assert [w.cluster for w in windows] == ["a", "b"] * 3 + ["a"] + ["b", "c"] * 2
    assert table[-1].cluster == "c" and [w.start_s for w in table[2:4]] == [w.start_s for w in windows[2:4]]
    with pytest.raises(IndexError):
        table[11]
    for name in ("a", "b", "c"):
        got = list(table.for_cluster(name))
        assert [w.start_s for w in got] == sorted(w.start_s for w in windows if w.cluster == name)
        # each window's total bytes, given a cluster's column at a time, is its capacity's, bit for bit
        assert [w.total_bytes for w in got] == [w.capacity.total_bytes for w in got]
    assert list(table.for_cluster("nobody")) == []
    frame = table.frame()
    assert frame["bytes_per_device"].tolist() == [w.capacity.total_bytes for w in windows]
    assert frame["satellite"].tolist() == [w.satellite for w in windows]


def test_a_packed_window_makes_its_capacity_on_first_use():
    table = _table(5, 3, ("a",))
    window = table[2]
    assert isinstance(window, PackedLinkWindow) and window._capacity is None
    expected = table.capacities.capacity(2)
    assert window.total_bytes == expected.total_bytes and window._capacity is None  # read from the columns
    capacity = window.capacity
    assert window.capacity is capacity and np.array_equal(capacity.t_s, expected.t_s)
    assert capacity.completion_time(expected.start_s, 1e5) == expected.completion_time(expected.start_s, 1e5)
    back = pickle.loads(pickle.dumps(window))  # a plain LinkWindow, without the table's arrays
    assert type(back) is LinkWindow and back.total_bytes == window.total_bytes
    assert (back.cluster, back.start_s, back.end_s, back.satellite) == (window.cluster, window.start_s,
                                                                         window.end_s, window.satellite)
