"""Issue 16: windows that arrive in day parts (WindowStream) and parts built in a second process (background)."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator

import pytest

from emsfl_sim.errors import InputError
from emsfl_sim.sim.background import Relay, can_start_child, iterate_in_children
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


def _numbers(n: int, relay: Relay) -> Iterator[int]:
    for i in relay.items(n):
        yield i * i


def _fails_after(n: int, relay: Relay) -> Iterator[int]:
    yield from relay.items(n)
    raise InputError("bad TLE", "x.tle", "line 3")


def _dies(relay: Relay) -> Iterator[int]:
    yield 1
    time.sleep(1.0)  # the queue's feeder thread sends the item first
    os._exit(3)  # killed without an exception (as by the out-of-memory killer)


def test_background_items_errors_and_a_dead_child():
    assert can_start_child()
    assert list(iterate_in_children(_numbers, 5, workers=1)) == [0, 1, 4, 9, 16]
    items = iterate_in_children(_fails_after, 2, workers=1)
    assert [next(items), next(items)] == [0, 1]
    with pytest.raises(InputError) as info:
        next(items)
    assert str(info.value) == "x.tle: line 3: bad TLE"  # the one line the CLI prints
    assert any("in the background process" in note for note in info.value.__notes__)
    items = iterate_in_children(_dies, workers=1)
    assert next(items) == 1
    with pytest.raises(RuntimeError, match=r"exited \(code 3\)"):
        next(items)


def _running_sums(n: int, relay: Relay) -> Iterator[tuple[int, int]]:
    """Item d is (d, sum of 0..d): each item needs the one before (the carry) from the other worker."""
    for d in relay.items(n):
        total = (relay.receive(d) or 0) + d
        relay.send(d, n, total)
        yield relay.index, total


def _relay_fails_at(n: int, bad: int, relay: Relay) -> Iterator[int]:
    for d in relay.items(n):
        relay.send(d, n, relay.receive(d))
        if d == bad:
            raise InputError("bad part", "x.tle", "line 9")
        yield d


def test_children_take_turns_and_relay_the_carry_in_item_order():
    sums = [sum(range(d + 1)) for d in range(7)]
    assert [t for _, t in _running_sums(7, Relay())] == sums  # one worker in-process keeps the carry
    items = list(iterate_in_children(_running_sums, 7, workers=2))
    assert items == [(d % 2, t) for d, t in enumerate(sums)]  # alternate workers, the parent in item order
    assert [t for _, t in iterate_in_children(_running_sums, 5, workers=3)] == sums[:5]
    assert [t for _, t in iterate_in_children(_running_sums, 2, workers=1)] == sums[:2]
    failing = iterate_in_children(_relay_fails_at, 6, 3, workers=2)  # the second worker's second part
    assert [next(failing) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(InputError) as info:
        next(failing)
    assert str(info.value) == "x.tle: line 9: bad part"


def _forever(relay: Relay) -> Iterator[int]:
    d = relay.index
    while True:
        yield d
        d += relay.count


_KILLED_PARENT = """
import multiprocessing, os, signal, sys
sys.path.insert(0, {root!r})
from tests.test_window_stream import _forever
from emsfl_sim.sim.background import iterate_in_children
items = iterate_in_children(_forever, workers=2, ahead=1)
next(items)
print(" ".join(str(c.pid) for c in multiprocessing.active_children()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no finally, no terminate: the children are orphans
"""


def test_children_of_a_killed_parent_exit_instead_of_waiting_forever():
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", _KILLED_PARENT.format(root=root)], capture_output=True, text=True,
                         timeout=120).stdout.split()
    pids = [int(p) for p in out]
    assert len(pids) == 2

    def alive(pid: int) -> bool:  # an exited orphan nobody reaps is a zombie ("Z"): not alive
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        stat = Path(f"/proc/{pid}/stat")
        return not (stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")

    deadline = time.monotonic() + 30.0  # each child notices at its next put (every POLL_S = 2 s)
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids)
