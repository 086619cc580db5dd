"""Link windows that arrive in parts while the event loop runs.

A schedule built in parts (:func:`~emsfl_sim.sim.schedule.streamed_parts`) is a sequence of
:class:`~emsfl_sim.sim.window_table.WindowTable` parts in time order. A :class:`WindowStream`
takes them from an iterator as they are needed: :meth:`WindowStream.for_cluster` moves to
the next part when a cluster's windows in the current one are used up, so the event loop
can run part ``d`` while the next is still being built (in a second process, see
:mod:`emsfl_sim.sim.background`). Anything that needs every window (``len``, indexing,
:meth:`WindowStream.parts`) waits for the rest.

Per cluster, windows stay in start order across parts: a window still open at a part's end
is moved to the next part, where it is the cluster's first window (at most one window of a
cluster is open at any instant).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from emsfl_sim.sim.window_table import LinkWindow, WindowTable


class WindowStream(Sequence[LinkWindow]):
    """Windows from ``source``, one :class:`WindowTable` part at a time, kept once received.

    Parameters
    ----------
    source
        The parts in time order (a generator, or the items of a background process).
    """

    def __init__(self, source: Iterator[WindowTable]) -> None:
        self._source: Iterator[WindowTable] | None = source
        self._parts: list[WindowTable] = []

    @property
    def complete(self) -> bool:
        """Whether every part has been received."""
        return self._source is None

    @property
    def received(self) -> int:
        """Parts received so far."""
        return len(self._parts)

    def _receive(self) -> bool:
        """Take the next part from the source; False when there is none."""
        if self._source is None:
            return False
        part = next(self._source, None)
        if part is None:
            self._source = None
            return False
        self._parts.append(part)
        return True

    def _part(self, i: int) -> WindowTable | None:
        """Part ``i``, waiting for it; None past the last part."""
        while len(self._parts) <= i:
            if not self._receive():
                return None
        return self._parts[i]

    def parts(self) -> list[WindowTable]:
        """Every part (waits for the rest)."""
        while self._receive():
            pass
        return list(self._parts)

    def for_cluster(self, cluster: str) -> Iterator[LinkWindow]:
        """The windows of one cluster by start, across parts, each part taken when reached."""
        i = 0
        while (part := self._part(i)) is not None:
            yield from part.for_cluster(cluster)
            i += 1

    # ------------------------------------------------------------ Sequence
    def __len__(self) -> int:
        return sum(len(p) for p in self.parts())

    @overload
    def __getitem__(self, i: int) -> LinkWindow: ...

    @overload
    def __getitem__(self, i: slice) -> list[LinkWindow]: ...

    def __getitem__(self, i: int | slice) -> LinkWindow | list[LinkWindow]:
        parts = self.parts()
        n = sum(len(p) for p in parts)
        if isinstance(i, slice):
            return [_window_at(parts, j) for j in range(*i.indices(n))]
        if not -n <= i < n:
            raise IndexError(f"window {i} of {n}")
        return _window_at(parts, i % n)

    def __iter__(self) -> Iterator[LinkWindow]:
        for part in self.parts():
            yield from part

    def __bool__(self) -> bool:
        return any(len(p) for p in self.parts())

    def __getstate__(self) -> dict[str, Any]:
        # A generator (or a background process) does not pickle: a pickled stream is complete.
        return {"_source": None, "_parts": self.parts()}


def _window_at(parts: list[WindowTable], i: int) -> LinkWindow:
    """Window ``i`` (``0 <= i <`` the windows of all parts) of the parts end to end."""
    for part in parts:
        if i < len(part):
            return part[i]
        i -= len(part)
    raise IndexError(f"window {i} past the parts' end")


def table_parts(windows: Sequence[LinkWindow]) -> list[WindowTable] | None:
    """The packed parts of ``windows`` (a stream's parts, or a table as one part); None for a list of objects."""
    if isinstance(windows, WindowStream):
        return windows.parts()
    if isinstance(windows, WindowTable):
        return [windows]
    return None
