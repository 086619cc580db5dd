"""The contact plan: a pass table with its span, sites and masks, exact geometry on request, and files.

:func:`~emsfl_sim.orbits.contacts.compute_contact_plan` builds it;
:meth:`ContactPlan.to_parquet` / :meth:`ContactPlan.read_parquet` store it with its
metadata (Parquet key-value metadata), so a read plan can sample geometry again
when given its TLE records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sgp4.api import Satrec

from emsfl_sim.errors import InputError
from emsfl_sim.orbits.frames import Clock, Site, SiteArrays, exact_states, topocentric
from emsfl_sim.orbits.tle import TleRecord, _as_utc, to_satrecs

PASS_COLUMNS = [
    "cluster",
    "satellite",
    "norad_id",
    "rise_s",
    "culmination_s",
    "set_s",
    "rise_utc",
    "culmination_utc",
    "set_utc",
    "max_elevation_deg",
    "duration_s",
    "open_at_start",
    "open_at_end",
]
GEOMETRY_COLUMNS = ["t_s", "elevation_deg", "azimuth_deg", "range_km", "range_rate_km_s"]

_NO_RECORDS = "this contact plan has no TLE records; pass records= to read_parquet to sample geometry"


@dataclass(frozen=True)
class PassCodes:
    """The passes as index arrays, one entry per row of :attr:`ContactPlan.passes` (same order).

    ``site`` indexes :attr:`ContactPlan.sites`, ``satellite`` :attr:`ContactPlan.records`;
    ``rise_s`` and ``set_s`` are the table's columns. Server selection works on these
    instead of the table's name columns.
    """

    site: np.ndarray
    satellite: np.ndarray
    rise_s: np.ndarray
    set_s: np.ndarray


class ContactPlan:
    """Passes of satellites over clusters, plus exact geometry on request.

    Attributes
    ----------
    passes:
        One row per pass, columns :data:`PASS_COLUMNS`, sorted by ``rise_s``. Given as a
        table, or as a function that builds it on first use (a computed plan: a streamed
        schedule's parts only ever use :attr:`pass_codes`, and the table's name and UTC
        columns cost about a tenth of a 1000-cluster search).
    start_utc, duration_s:
        Scenario span (``*_s`` columns are seconds since ``start_utc``).
    sites:
        The clusters, in input order.
    elevation_mask_deg:
        One mask per site (same order).
    records:
        The satellites (needed for :meth:`geometry`; absent after :meth:`read_parquet`
        unless passed back in).
    diagnostics:
        Counters from the search (crossings re-solved on exact SGP4, propagation errors).
    pass_codes:
        The passes as index arrays (:class:`PassCodes`); derived from the table when not given.
    """

    def __init__(self, passes: pd.DataFrame | Callable[[], pd.DataFrame], start_utc: datetime, duration_s: float,
                 sites: list[Site], elevation_mask_deg: list[float], records: list[TleRecord] | None = None,
                 step_s: float = 60.0, tolerance_s: float = 0.1, diagnostics: dict[str, Any] | None = None,
                 pass_codes: PassCodes | None = None) -> None:
        self._passes = passes if isinstance(passes, pd.DataFrame) else None
        self._build_passes = None if isinstance(passes, pd.DataFrame) else passes
        self.start_utc, self.duration_s = start_utc, duration_s
        self.sites, self.elevation_mask_deg, self.records = sites, elevation_mask_deg, records
        self.step_s, self.tolerance_s = step_s, tolerance_s
        self.diagnostics: dict[str, Any] = diagnostics if diagnostics is not None else {}
        self._pass_codes = pass_codes
        self._satrecs: list[Satrec] | None = None
        self._site_arrays: SiteArrays | None = None
        self._clock: Clock | None = None

    def __repr__(self) -> str:
        return (f"ContactPlan({self.pass_count} passes, {len(self.sites)} sites, start_utc={self.start_utc!r}, "
                f"duration_s={self.duration_s!r})")

    @property
    def passes(self) -> pd.DataFrame:
        """The pass table (built on first use for a computed plan)."""
        if self._passes is None:
            assert self._build_passes is not None
            self._passes, self._build_passes = self._build_passes(), None
        return self._passes

    @property
    def pass_count(self) -> int:
        """Number of passes (without building the table)."""
        return len(self._pass_codes.rise_s) if self._pass_codes is not None else len(self.passes)

    @property
    def pass_codes(self) -> PassCodes:
        """The passes as index arrays (:class:`PassCodes`), from the table when the search did not give them."""
        if self._pass_codes is None:
            passes = self.passes
            self._pass_codes = PassCodes(self._cluster_codes(passes), self._satellite_codes(passes),
                                         passes["rise_s"].to_numpy(dtype=float), passes["set_s"].to_numpy(dtype=float))
        return self._pass_codes

    def _cluster_codes(self, passes: pd.DataFrame) -> np.ndarray:
        codes, uniques = pd.factorize(passes["cluster"])
        return self.site_indices(list(uniques))[codes] if len(codes) else np.empty(0, dtype=int)

    def _satellite_codes(self, passes: pd.DataFrame) -> np.ndarray:
        """Record index of each pass: by (name, NORAD id), as the per-cluster selection matched them."""
        records = self.records_or_raise()
        norad = passes["norad_id"].to_numpy(dtype=np.int64)
        if len({int(r.norad_id) for r in records}) == len(records):  # the NORAD id names the record
            ids, inverse = np.unique(norad, return_inverse=True)
            return self.norad_indices(ids)[inverse]
        lookup = {(r.name, int(r.norad_id)): i for i, r in enumerate(records)}
        codes, uniques = pd.factorize(pd.MultiIndex.from_arrays([passes["satellite"], norad]))
        index = np.array([lookup[(str(n), int(i))] for n, i in uniques], dtype=np.int64)
        return index[codes] if len(codes) else np.empty(0, dtype=np.int64)

    def attach_runtime(self, satrecs: list[Satrec], site_arrays: SiteArrays, clock: Clock) -> None:
        """Reuse the search's sgp4 objects, site arrays and clock for geometry (saves rebuilding them)."""
        self._satrecs, self._site_arrays, self._clock = satrecs, site_arrays, clock

    # -- lookups -------------------------------------------------------------------------------
    def mask_for(self, cluster: str) -> float:
        """Elevation mask (deg) of a cluster."""
        return self.elevation_mask_deg[self.site_index(cluster)]

    def site_index(self, cluster: str) -> int:
        """Index into :attr:`sites` of a cluster given by name."""
        for i, s in enumerate(self.sites):
            if s.name == cluster:
                return i
        raise InputError(
            f"cluster {cluster!r} not in the contact plan; available: {', '.join(s.name for s in self.sites)}"
        )

    def satellite_index(self, satellite: str | int) -> int:
        """Index into :attr:`records` of a satellite given by name or NORAD id."""
        records = self._require_records()
        for i, r in enumerate(records):
            if (
                isinstance(satellite, (int, np.integer)) and r.norad_id == int(satellite)
            ) or r.name == satellite:
                return i
        examples = ", ".join(r.name for r in records[:3])
        raise InputError(f"satellite {satellite!r} not found; available e.g. {examples}")

    def _require_records(self) -> list[TleRecord]:
        if self.records is None:
            raise InputError(_NO_RECORDS)
        return self.records

    def records_or_raise(self) -> list[TleRecord]:
        """The TLE records (an :class:`~emsfl_sim.errors.InputError` when the plan has none)."""
        return self._require_records()

    def runtime(self) -> tuple[list[Satrec], SiteArrays, Clock]:
        """The sgp4 objects, site arrays and clock, built on first use (for callers that propagate)."""
        return self._runtime()

    def _runtime(self) -> tuple[list[Satrec], SiteArrays, Clock]:
        """The sgp4 objects, site arrays and clock, built on first use."""
        records = self._require_records()
        if self._satrecs is None:
            self._satrecs = to_satrecs(records)
        if self._site_arrays is None:
            self._site_arrays = SiteArrays.build(self.sites, np.asarray(self.elevation_mask_deg, dtype=float))
        if self._clock is None:
            self._clock = Clock(self.start_utc, self.duration_s)
        return self._satrecs, self._site_arrays, self._clock

    def site_indices(self, clusters: Sequence[str]) -> np.ndarray:
        """Indices into :attr:`sites` of many clusters (same rule as :meth:`site_index`; one dict)."""
        lookup: dict[str, int] = {}
        for i, s in enumerate(self.sites):
            lookup.setdefault(s.name, i)
        missing = [c for c in dict.fromkeys(clusters) if c not in lookup]
        if missing:
            self.site_index(missing[0])  # raises the one-line error
        return np.fromiter((lookup[c] for c in clusters), dtype=int, count=len(clusters))

    def norad_indices(self, norad_ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Indices into :attr:`records` of many NORAD ids (the first record of each, as :meth:`satellite_index`)."""
        lookup: dict[int, int] = {}
        for i, r in enumerate(self._require_records()):
            lookup.setdefault(int(r.norad_id), i)
        ids = [int(n) for n in np.asarray(norad_ids).tolist()]
        missing = [n for n in dict.fromkeys(ids) if n not in lookup]
        if missing:
            self.satellite_index(missing[0])  # raises the one-line error
        return np.fromiter((lookup[n] for n in ids), dtype=int, count=len(ids))

    # -- geometry ------------------------------------------------------------------------------
    def sample_arrays(self, isite: np.ndarray, isat: np.ndarray, t_s: np.ndarray) -> dict[str, np.ndarray]:
        """Exact geometry for arrays of (site index, satellite index, time) as arrays (:data:`GEOMETRY_COLUMNS`).

        Every sample is computed on its own (one sgp4 call per satellite over its samples), so a
        sample's values do not depend on the others in the call: many windows can share one call.
        """
        satrecs, site_arrays, clock = self._runtime()
        isite = np.asarray(isite, dtype=int)
        isat = np.asarray(isat, dtype=int)
        t_s = np.asarray(t_s, dtype=float)
        p, v = exact_states(satrecs, isat, t_s, clock)
        el, az, rng, rr = topocentric(p, v, site_arrays, isite)
        assert rr is not None  # the velocities were given
        return {"t_s": t_s, "elevation_deg": el, "azimuth_deg": az, "range_km": rng, "range_rate_km_s": rr}

    def elevations(self, isite: np.ndarray, isat: np.ndarray, t_s: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
        """``sample_arrays(...)["elevation_deg"]``, bit for bit, in chunks of ``chunk`` samples (bounded memory).

        Only positions are computed, and the Earth rotation angle once per distinct time.
        """
        satrecs, site_arrays, clock = self._runtime()
        isite = np.asarray(isite, dtype=int)
        isat = np.asarray(isat, dtype=int)
        t_s = np.asarray(t_s, dtype=float)
        out = np.empty(t_s.shape)
        for lo in range(0, t_s.size, chunk):
            sl = slice(lo, lo + chunk)
            out[sl] = _elevation_deg(satrecs, site_arrays, clock, isite[sl], isat[sl], t_s[sl])
        return out

    def sample_many(self, isite: np.ndarray, isat: np.ndarray, t_s: np.ndarray) -> pd.DataFrame:
        """Exact geometry for arrays of (site index, satellite index, time); vectorised."""
        return pd.DataFrame(self.sample_arrays(isite, isat, t_s))

    def sample(self, cluster: str, satellite: str | int, t_s: float | Sequence[float] | np.ndarray) -> pd.DataFrame:
        """Exact geometry of one satellite from one cluster at times ``t_s``.

        Columns :data:`GEOMETRY_COLUMNS`; range rate is positive when receding.
        """
        t_s = np.atleast_1d(np.asarray(t_s, dtype=float))
        return self.sample_many(
            np.full(t_s.shape, self.site_index(cluster)),
            np.full(t_s.shape, self.satellite_index(satellite)),
            t_s,
        )

    def geometry(self, pass_: int | pd.Series, step_s: float = 10.0) -> pd.DataFrame:
        """Exact geometry through one pass (row index or row), sampled every ``step_s``, ends included."""
        row = self.passes.loc[pass_] if not isinstance(pass_, pd.Series) else pass_
        t0, t1 = float(row["rise_s"]), float(row["set_s"])
        t = np.arange(t0, t1, step_s)
        t = np.append(t, t1) if len(t) == 0 or t1 - t[-1] > 1e-9 else t
        sat = self._pass_satellite_index(row)
        return self.sample_many(np.full(t.shape, self.site_index(row["cluster"])), np.full(t.shape, sat), t)

    def _pass_satellite_index(self, row: pd.Series) -> int:
        for i, r in enumerate(self._require_records()):
            if r.norad_id == int(row["norad_id"]) and r.name == row["satellite"]:
                return i
        return self.satellite_index(int(row["norad_id"]))

    # -- files ---------------------------------------------------------------------------------
    def _metadata(self) -> dict[str, Any]:
        return {
            "start_utc": _as_utc(self.start_utc).isoformat(),
            "duration_s": self.duration_s,
            "sites": [[s.name, s.lat_deg, s.lon_deg, s.alt_m] for s in self.sites],
            "elevation_mask_deg": list(self.elevation_mask_deg),
            "step_s": self.step_s,
            "tolerance_s": self.tolerance_s,
        }

    def to_parquet(self, path: str | Path) -> None:
        """Write the pass table; plan metadata goes into the Parquet key-value metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.passes, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"emsfl_sim.contact_plan"] = json.dumps(self._metadata()).encode()
        pq.write_table(table.replace_schema_metadata(meta), path)

    def to_csv(self, path: str | Path) -> None:
        """Write the pass table as CSV (UTC columns in ISO 8601)."""
        self.passes.to_csv(path, index=False)

    @classmethod
    def read_parquet(cls, path: str | Path, records: Sequence[TleRecord] | None = None) -> ContactPlan:
        """Read a plan written by :meth:`to_parquet`; give ``records`` to sample geometry again."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"emsfl_sim.contact_plan")
        if raw is None:
            raise InputError("not a contact plan written by emsfl-sim (metadata missing)", file=path)
        meta = json.loads(raw)
        return cls(
            passes=table.to_pandas(),
            start_utc=datetime.fromisoformat(meta["start_utc"]),
            duration_s=float(meta["duration_s"]),
            sites=[Site(*s) for s in meta["sites"]],
            elevation_mask_deg=list(meta["elevation_mask_deg"]),
            records=list(records) if records is not None else None,
            step_s=float(meta["step_s"]),
            tolerance_s=float(meta["tolerance_s"]),
        )


def _elevation_deg(satrecs: list[Satrec], site: SiteArrays, clock: Clock, isite: np.ndarray, isat: np.ndarray,
                   t_s: np.ndarray) -> np.ndarray:
    """The elevation of :func:`~emsfl_sim.orbits.frames.exact_states` + ``topocentric``, positions only.

    The same operations on the same values (sgp4 per satellite over its samples, TEME -> ITRS,
    the site's up vector), so the same bits; the rotation angle per distinct time.
    """
    n = t_s.size
    if n == 0:
        return np.empty(0)
    order = np.argsort(isat, kind="stable")
    s_sorted = isat[order]
    t_sorted = np.ascontiguousarray(t_s[order], dtype=float)
    jd, fr = clock.sgp4_times(t_sorted)
    cuts = np.flatnonzero(np.diff(s_sorted)) + 1
    r = np.empty((n, 3))
    for a, b in zip(np.concatenate(([0], cuts)).tolist(), np.concatenate((cuts, [n])).tolist(), strict=True):
        e, ra, _ = satrecs[int(s_sorted[a])].sgp4_array(jd[a:b], fr[a:b])
        ra[e != 0] = np.nan
        r[a:b] = ra
    times, inverse = np.unique(t_sorted, return_inverse=True)
    theta, _ = clock.theta(times)
    c, s = np.cos(theta)[inverse], np.sin(theta)[inverse]
    p = np.empty((n, 3))
    p[order] = np.stack((c * r[:, 0] + s * r[:, 1], -s * r[:, 0] + c * r[:, 1], r[:, 2]), axis=-1)
    d = p - site.pos_km[isite]
    rng = np.sqrt(np.einsum("ij,ij->i", d, d))
    return np.degrees(np.arcsin(np.clip(np.einsum("ij,ij->i", d, site.up[isite]) / rng, -1.0, 1.0)))
