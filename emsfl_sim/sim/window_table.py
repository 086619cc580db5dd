"""Link windows: one window as an object, and many in packed columns.

A :class:`LinkWindow` is what the event loop works with. A schedule of a large
constellation has millions of them (Starlink x 1000 clusters x 7 days: about 14.6 M),
2 kB each as objects; :class:`WindowTable` keeps them in columns and the capacities in
:class:`~emsfl_sim.link.packed_capacity.PackedCapacities` (about 200 bytes a window) and
makes the objects only when the loop reaches them (:meth:`WindowTable.for_cluster`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, overload

import numpy as np
import pandas as pd

from emsfl_sim.link import PassCapacity
from emsfl_sim.link.packed_capacity import PackedCapacities, concat_emptying


@dataclass
class LinkWindow:
    """One continuous link segment of a cluster with the server."""

    cluster: str
    start_s: float
    end_s: float
    satellite: str
    capacity: PassCapacity
    max_elevation_deg: float = float("nan")

    @property
    def duration_s(self) -> float:
        """Length of the window."""
        return self.end_s - self.start_s

    @property
    def total_bytes(self) -> float:
        """Bytes per device the whole window can carry."""
        return self.capacity.total_bytes


class PackedLinkWindow(LinkWindow):
    """Window ``index`` of a :class:`WindowTable`: its :class:`PassCapacity` is made on first use.

    Most windows of a large constellation never carry an upload; the link process needs only
    their times, satellite and :attr:`total_bytes` (read from the packed arrays, the same value).
    It pickles as a plain :class:`LinkWindow`.
    """

    #: Bytes per device the whole window can carry (``capacity.total_bytes``, read from the packed
    #: arrays without making the capacity; given by the table, a column at a time).
    total_bytes: float = float("nan")  # LinkWindow's property, an attribute here

    def __init__(self, cluster: str, start_s: float, end_s: float, satellite: str, capacities: PackedCapacities,
                 index: int, max_elevation_deg: float, total_bytes: float) -> None:
        self.cluster, self.start_s, self.end_s, self.satellite = cluster, start_s, end_s, satellite
        self.max_elevation_deg, self.total_bytes = max_elevation_deg, total_bytes
        self._capacities, self._index = capacities, index
        self._capacity: PassCapacity | None = None

    @property  # a field of LinkWindow, made on first use here
    def capacity(self) -> PassCapacity:
        """The window's capacity through the pass."""
        if self._capacity is None:
            self._capacity = self._capacities.capacity(self._index)
        return self._capacity

    @capacity.setter
    def capacity(self, value: PassCapacity) -> None:
        self._capacity = value

    def __reduce__(self) -> tuple[Any, ...]:
        return (LinkWindow, (self.cluster, self.start_s, self.end_s, self.satellite, self.capacity,
                             self.max_elevation_deg))


@dataclass(frozen=True)
class WindowTable(Sequence[LinkWindow]):
    """Link windows in columns; ``table[i]`` is window ``i`` as a new :class:`LinkWindow`.

    ``cluster_codes`` and ``satellite_codes`` index ``cluster_names`` and ``satellite_names``.
    """

    cluster_names: tuple[str, ...]
    cluster_codes: np.ndarray
    satellite_names: tuple[str, ...]
    satellite_codes: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    max_elevation_deg: np.ndarray
    capacities: PackedCapacities

    def __len__(self) -> int:
        return len(self.start_s)

    @overload
    def __getitem__(self, i: int) -> LinkWindow: ...

    @overload
    def __getitem__(self, i: slice) -> list[LinkWindow]: ...

    def __getitem__(self, i: int | slice) -> LinkWindow | list[LinkWindow]:
        if isinstance(i, slice):
            return [self._window(j) for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} of {len(self)}")
        return self._window(i % len(self))

    def __iter__(self) -> Iterator[LinkWindow]:
        return (self._window(i) for i in range(len(self)))

    def _window(self, i: int) -> LinkWindow:
        caps = self.capacities
        return PackedLinkWindow(self.cluster_names[int(self.cluster_codes[i])], float(self.start_s[i]),
                                float(self.end_s[i]), self.satellite_names[int(self.satellite_codes[i])],
                                caps, i, float(self.max_elevation_deg[i]), float(caps.pass_bytes(np.asarray(i))))

    def for_cluster(self, cluster: str) -> Iterator[LinkWindow]:
        """The windows of one cluster by start, each made when reached (the event loop's use)."""
        if cluster not in self.cluster_names:
            return iter(())
        code = self.cluster_names.index(cluster)
        order, cuts = self._by_cluster
        rows = order[cuts[code] : cuts[code + 1]]
        # The cluster's columns as lists at once: the same floats as indexing row by row, cheaper.
        names, caps = self.satellite_names, self.capacities
        totals = caps.pass_bytes(rows)
        return (PackedLinkWindow(cluster, start, end, names[sat], caps, i, el, total)
                for i, start, end, sat, el, total in zip(
                    rows.tolist(), self.start_s[rows].tolist(), self.end_s[rows].tolist(),
                    self.satellite_codes[rows].tolist(), self.max_elevation_deg[rows].tolist(), totals.tolist(),
                    strict=True))

    @cached_property
    def _by_cluster(self) -> tuple[np.ndarray, np.ndarray]:
        """Window rows sorted by (cluster, start), and where each cluster's run begins (one sort, not one scan per cluster)."""
        order = np.lexsort((self.start_s, self.cluster_codes))
        cuts = np.searchsorted(self.cluster_codes[order], np.arange(len(self.cluster_names) + 1))
        return order, cuts

    @property
    def clusters(self) -> np.ndarray:
        """The cluster name of each window."""
        return np.asarray(self.cluster_names, dtype=object)[self.cluster_codes]

    @property
    def satellites(self) -> np.ndarray:
        """The satellite name of each window."""
        return np.asarray(self.satellite_names, dtype=object)[self.satellite_codes]

    def frame(self) -> pd.DataFrame:
        """``cluster, satellite, start_s, end_s, duration_s, max_elevation_deg, bytes_per_device``, one row a window."""
        return pd.DataFrame({"cluster": self.clusters, "satellite": self.satellites, "start_s": self.start_s,
                             "end_s": self.end_s, "duration_s": self.end_s - self.start_s,
                             "max_elevation_deg": self.max_elevation_deg,
                             "bytes_per_device": self.capacities.total_bytes})

    @classmethod
    def concat(cls, parts: list[WindowTable]) -> WindowTable:
        """The windows of ``parts`` in order (names merged; codes renumbered); ``parts`` is emptied.

        Each part's arrays are freed once copied, so joining a schedule's parts does not hold
        two copies of it.
        """
        clusters = tuple(dict.fromkeys(n for p in parts for n in p.cluster_names))
        satellites = tuple(dict.fromkeys(n for p in parts for n in p.satellite_names))
        c_index = {n: i for i, n in enumerate(clusters)}
        s_index = {n: i for i, n in enumerate(satellites)}
        cluster_codes = [_recode(p.cluster_codes, p.cluster_names, c_index) for p in parts]
        satellite_codes = [_recode(p.satellite_codes, p.satellite_names, s_index) for p in parts]
        columns = {name: [getattr(p, name) for p in parts] for name in ("start_s", "end_s", "max_elevation_deg")}
        capacities = [p.capacities for p in parts]
        parts.clear()
        return cls(clusters, concat_emptying(cluster_codes, np.int32),
                   satellites, concat_emptying(satellite_codes, np.int32),
                   concat_emptying(columns["start_s"]), concat_emptying(columns["end_s"]),
                   concat_emptying(columns["max_elevation_deg"]), PackedCapacities.concat(capacities))


def _recode(codes: np.ndarray, names: tuple[str, ...], index: dict[str, int]) -> np.ndarray:
    """``codes`` into ``names`` as codes into the merged names (``index``)."""
    lookup = np.array([index[n] for n in names], dtype=np.int32)
    return lookup[codes] if len(codes) else np.empty(0, dtype=np.int32)
