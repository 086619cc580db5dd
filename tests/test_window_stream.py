"""Issue 16: windows that arrive in day parts (WindowStream) and parts built in a second process (background)."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator

import pytest

from emsfl_sim.errors import InputError
from emsfl_sim.sim.background import can_start_child, iterate_in_child
from emsfl_sim.sim.window_stream import WindowStream, table_parts
from emsfl_sim.sim.window_table import WindowTable
from tests.test_window_table import _table


def _parts() -> list[WindowTable]:
    # Parts in time order (the second part's windows start after the first's): 100 s per window.
    first, second = _table(6, 1, ("a", "b")), _table(5, 2, ("b", "c"))
    shifted = WindowTable(second.cluster_names, second.cluster_codes, second.satellite_names,
                          second.satellite_codes, second.start_s + 1e4, second.end_s + 1e4,
                          second.max_elevation_deg, second.capacities)
    return [first, shifted]


def test_stream_takes_parts_when_a_cluster_needs_them():
    taken: list[int] = []

    def source() -> Iterator[WindowTable]:
        for i, part in enumerate(_parts()):
            taken.append(i)
            yield part

    stream = WindowStream(source())
    assert stream.received == 0 and not stream.complete
    a = stream.for_cluster("a")
    assert next(a).cluster == "a" and taken == [0]  # the first part only
    b = list(stream.for_cluster("b"))  # b has windows in both parts: the second is taken
    assert taken == [0, 1] and [w.start_s for w in b] == sorted(w.start_s for w in b)
    assert len(b) == 3 + 3 and stream.complete  # b's last window: the source was asked for a third part
    assert len(stream) == 11
    whole = [w.start_s for p in _parts() for w in p]
    assert [w.start_s for w in stream] == whole and stream[-1].start_s == whole[-1]
    assert [w.start_s for w in stream[5:7]] == whole[5:7] and bool(stream)
    with pytest.raises(IndexError):
        stream[11]
    assert [w.cluster for w in stream.for_cluster("c")] == ["c"] * 2
    assert list(stream.for_cluster("nobody")) == []
    assert table_parts(stream) == stream.parts() and table_parts(stream.parts()[0]) == stream.parts()[:1]


def test_a_stream_pickles_complete():
    stream = WindowStream(iter(_parts()))
    copy = pickle.loads(pickle.dumps(stream))
    assert copy.complete and copy.received == 2 and [w.start_s for w in copy] == [w.start_s for w in stream]
    assert not bool(WindowStream(iter(())))


def _numbers(n: int) -> Iterator[int]:
    for i in range(n):
        yield i * i


def _fails_after(n: int) -> Iterator[int]:
    yield from range(n)
    raise InputError("bad TLE", "x.tle", "line 3")


def _dies() -> Iterator[int]:
    yield 1
    time.sleep(1.0)  # the queue's feeder thread sends the item first
    os._exit(3)  # killed without an exception (as by the out-of-memory killer)


def test_background_items_errors_and_a_dead_child():
    assert can_start_child()
    assert list(iterate_in_child(_numbers, 5)) == [0, 1, 4, 9, 16]
    items = iterate_in_child(_fails_after, 2)
    assert [next(items), next(items)] == [0, 1]
    with pytest.raises(InputError) as info:
        next(items)
    assert str(info.value) == "x.tle: line 3: bad TLE"  # the one line the CLI prints
    assert any("in the background process" in note for note in info.value.__notes__)
    items = iterate_in_child(_dies)
    assert next(items) == 1
    with pytest.raises(RuntimeError, match=r"exited \(code 3\)"):
        next(items)
