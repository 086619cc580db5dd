"""Many pass capacities at once, in shared arrays: the batched step "windows -> capacity".

:func:`packed_pass_capacities` computes, bit for bit, what one
:func:`~emsfl_sim.link.capacity.pass_capacity` call per pass gives, for a batch of passes
laid end to end; :class:`PackedCapacities` keeps them in a few arrays (about 200 bytes a
pass instead of 2 kB as objects) and hands out a :class:`PassCapacity` on demand, which a
schedule of millions of link windows needs (issue 16).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsfl_sim.errors import InputError
from emsfl_sim.link.capacity import GEOMETRY_COLUMNS, PassCapacity, _capacity_columns, _check_devices
from emsfl_sim.link.params import LinkParams


@dataclass(frozen=True)
class PackedCapacities:
    """Many :class:`PassCapacity` laid end to end in shared arrays (about 200 bytes a pass instead of 2 kB).

    Pass ``i`` is samples ``offsets[i]:offsets[i + 1]`` of ``t_s``, ``capacity_bps`` and
    ``cum_bits``; ``slope`` has one entry per sample, the last of each pass unused.
    """

    t_s: np.ndarray
    capacity_bps: np.ndarray
    slope: np.ndarray
    cum_bits: np.ndarray
    offsets: np.ndarray
    shadowing_db: np.ndarray
    max_doppler_hz: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def capacity(self, i: int) -> PassCapacity:
        """Pass ``i`` as a PassCapacity (read-only views of the shared arrays)."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return PassCapacity._from_arrays(self.t_s[a:b], self.capacity_bps[a:b], self.slope[a : b - 1],
                                         self.cum_bits[a:b], float(self.shadowing_db[i]),
                                         float(self.max_doppler_hz[i]))

    @property
    def total_bytes(self) -> np.ndarray:
        """Bytes each pass can carry."""
        return self.pass_bytes(np.arange(len(self)))

    def pass_bytes(self, index: np.ndarray) -> np.ndarray:
        """Bytes passes ``index`` can carry (``total_bytes[index]``, the others left alone); a scalar for one."""
        return self.cum_bits[self.offsets[np.asarray(index) + 1] - 1] / 8.0

    @classmethod
    def concat(cls, parts: list[PackedCapacities]) -> PackedCapacities:
        """The passes of ``parts`` in order, in one set of arrays.

        ``parts`` is emptied, so each part's arrays are freed once copied (a streamed
        schedule's parts are most of its memory; copying them all first would double it).
        """
        if not parts:
            empty = np.empty(0)
            return cls(empty, empty, empty, empty, np.zeros(1, dtype=np.int64), empty, empty)
        shift = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([parts[0].offsets[:1]] + [p.offsets[1:] + k for p, k in zip(parts, shift, strict=True)])
        names = ("t_s", "capacity_bps", "slope", "cum_bits", "shadowing_db", "max_doppler_hz")
        columns = {name: [getattr(p, name) for p in parts] for name in names}
        parts.clear()
        arrays = {name: concat_emptying(columns[name]) for name in names}
        for name in names[:4]:
            arrays[name].setflags(write=False)
        return cls(offsets=offsets, **arrays)

    def take(self, index: np.ndarray) -> PackedCapacities:
        """The passes ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        lengths = np.diff(self.offsets)[index]
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        rows = np.repeat(self.offsets[index] - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
        t, c, slope, cum = (a[rows] for a in (self.t_s, self.capacity_bps, self.slope, self.cum_bits))
        for a in (t, c, slope, cum):
            a.setflags(write=False)
        return PackedCapacities(t, c, slope, cum, offsets, self.shadowing_db[index], self.max_doppler_hz[index])


def packed_pass_capacities(
    geometry: dict[str, np.ndarray],
    offsets: np.ndarray,
    params: LinkParams,
    shadowing_db: np.ndarray,
    devices_sharing: int = 1,
) -> PackedCapacities:
    """:func:`~emsfl_sim.link.capacity.pass_capacity` of many passes at once, bit for bit the one-pass calls.

    Parameters
    ----------
    geometry:
        Columns ``t_s, elevation_deg, range_km, range_rate_km_s`` of all passes end to end.
    offsets:
        Pass ``i`` is samples ``offsets[i]:offsets[i + 1]`` (``len(offsets) = passes + 1``).
    params:
        Link parameters shared by the passes.
    shadowing_db:
        The shadowing gain of each pass (drawn by the caller, one per pass).
    devices_sharing:
        As in :func:`~emsfl_sim.link.capacity.pass_capacity`.
    """
    missing = [c for c in GEOMETRY_COLUMNS if c not in geometry]
    if missing:
        raise InputError(f"missing columns {missing} (need {list(GEOMETRY_COLUMNS)})", field="geometry")
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    if lengths.size == 0:
        return PackedCapacities.concat([])
    if int(lengths.min()) < 2:
        raise InputError(f"needs at least 2 samples per pass (got {int(lengths.min())})", field="geometry")
    _check_devices(devices_sharing)
    params.validate()
    shadow = np.asarray(shadowing_db, dtype=float)
    arrays = _capacity_columns(np.asarray(geometry["elevation_deg"], dtype=float),
                               np.asarray(geometry["range_km"], dtype=float),
                               np.asarray(geometry["range_rate_km_s"], dtype=float),
                               params, np.repeat(shadow, lengths), devices_sharing, offsets)
    t = np.array(geometry["t_s"], dtype=float)
    c = arrays["capacity_bps"]
    starts = offsets[:-1]
    max_doppler = np.maximum.reduceat(np.abs(arrays["doppler_hz"]), starts)
    dt = np.diff(t)
    inner = np.ones(dt.size, dtype=bool)
    inner[offsets[1:-1] - 1] = False  # the differences across two passes
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(c)) and np.all(dt[inner] > 0) and np.all(c >= 0)):
        for a, b in zip(starts.tolist(), offsets[1:].tolist(), strict=True):
            PassCapacity(t[a:b], c[a:b])  # raises the one-pass error
    with np.errstate(divide="ignore", invalid="ignore"):  # the differences across passes are dropped
        slope = np.append(np.diff(c) / dt, 0.0)
    cum = _cumulative_bits(0.5 * (c[1:] + c[:-1]) * dt, starts, lengths)
    for a in (t, c, slope, cum):
        a.setflags(write=False)
    return PackedCapacities(t, c, slope, cum, offsets, shadow, max_doppler)


def _cumulative_bits(areas: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per pass ``[0, cumsum(areas of the pass)]`` laid out like the samples (cumsum row by row, as one pass's)."""
    cum = np.zeros(areas.size + 1)
    for n in np.unique(lengths).tolist():
        rows = starts[lengths == n]
        idx = rows[:, None] + np.arange(n - 1)
        cum[idx + 1] = np.cumsum(areas[idx], axis=1)
    return cum


def concat_emptying(arrays: list[np.ndarray], dtype: type = np.float64) -> np.ndarray:
    """``np.concatenate(arrays)`` (no arrays: a 0-length ``dtype`` array), emptying the list.

    The inputs are freed as soon as nothing else holds them: joining the parts of a large
    schedule one column at a time never holds two copies of all of it.
    """
    out = np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)
    arrays.clear()
    return out
