"""Contact plans: every pass of every satellite over every ground cluster.

Method (all steps vectorised with numpy; no Python loop per pass):

1. Propagate a chunk of satellites at once with sgp4's ``SatrecArray`` on a
   coarse time grid (``step_s``), positions *and* velocities in TEME.
2. Rotate TEME -> ITRS with Skyfield's own GMST-1982 angle (``theta_GMST1982``,
   the rotation Skyfield's ``EarthSatellite`` uses; UT1 from the builtin
   timescale; no polar motion, as in Skyfield without IERS files).  The ITRS
   velocity includes the Earth-rotation term, so it is the true derivative of
   the Earth-fixed position.
3. Screen all (satellite, site, sample) triples with small matrix products
   of unit vectors (float32): a satellite can only be above the mask when its geocentric
   angle from the site is below the coverage half-angle for that mask and
   altitude.  The cut-off is widened by the angle the satellite moves in half
   a step (plus 0.2 deg for geodetic vs geocentric vertical), so **a pass
   between two samples cannot be missed**: its nearest sample is always a
   candidate.  Runs of candidates are dilated by one sample on each side,
   whose elevation is then known to be below the mask.
4. On candidate samples compute the exact topocentric elevation (WGS84
   geodetic site, ENU frame).  Crossings are (a) sign changes of
   ``sin(el) - sin(mask)`` between samples and (b) *hidden passes*: every
   discrete local maximum of elevation is refined inside the neighbouring
   interval its slope points to (bisection on the sign of the derivative); a
   maximum below the mask at both ends of the interval but above it inside
   yields a rise/set pair around the peak.
   The same refined maxima give the culmination times and maximum elevations.
5. Crossings are located by vectorised bisection on a cubic Hermite
   interpolant of the exact SGP4 positions and velocities at the grid (in
   closed form per interval, so a million crossings cost a few numpy passes).
   The interpolation error of every satellite is measured against exact SGP4
   at interval midpoints (x4 safety); where it could move a crossing by more
   than ``tolerance_s/8`` (grazing passes with a flat elevation curve) the
   crossing gets an exact SGP4 evaluation and a Newton correction, and any
   correction above ``tolerance_s/2`` is re-solved by bisection on exact SGP4.
   Maxima within the error bound of the mask are likewise decided on exact
   SGP4.  Counters are in ``plan.diagnostics``.  At the default 60 s step the
   error is ~0.3 m for LEO (~1e-4 s in time), so the exact checks are rare.

Passes in progress at the start or still open at the end are clipped to the
scenario span and flagged ``open_at_start`` / ``open_at_end``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sgp4.api import Satrec, SatrecArray, jday

from emsfl_sim.errors import InputError
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

_GEODETIC_MARGIN_RAD = math.radians(0.2)  # geodetic vs geocentric vertical differ by <= 0.193 deg
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Site:
    """A ground cluster location (WGS84 geodetic)."""

    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0


# ----------------------------------------------------------------------------- time and frames


class _Clock:
    """Scenario seconds -> SGP4 times (UTC Julian date) and the TEME->ITRS angle (UT1).

    UT1-UTC comes from Skyfield's builtin timescale, sampled hourly and
    interpolated (it changes by milliseconds per day).
    """

    def __init__(self, start_utc: datetime, duration_s: float) -> None:
        from skyfield.api import load

        start = _as_utc(start_utc)
        self.start_utc = start
        sec = start.second + start.microsecond * 1e-6
        self.jd, self.fr = jday(start.year, start.month, start.day, start.hour, start.minute, sec)
        ts = load.timescale(builtin=True)
        n = max(2, int(duration_s // 3600.0) + 2)
        self._dut1_t = np.linspace(0.0, max(float(duration_s), 1.0), n)
        t = ts.utc(start.year, start.month, start.day, start.hour, start.minute, sec + self._dut1_t)
        self._dut1_s = np.asarray(t.dut1, dtype=float)

    def sgp4_times(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t_s = np.ascontiguousarray(t_s, dtype=float)
        return np.full(t_s.shape, self.jd), self.fr + t_s / 86400.0

    def theta(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """GMST-1982 angle (rad) and its rate (rad/s) at scenario times."""
        from skyfield.sgp4lib import theta_GMST1982

        dut1 = np.interp(t_s, self._dut1_t, self._dut1_s)
        theta, theta_dot = theta_GMST1982(self.jd, self.fr + (np.asarray(t_s) + dut1) / 86400.0)
        return theta, theta_dot / 86400.0

    def utc(self, t_s) -> pd.Series | pd.Timestamp:
        base = pd.Timestamp(self.start_utc)
        return base + pd.to_timedelta(np.asarray(t_s, dtype=float), unit="s")


def _teme_to_itrs(theta: np.ndarray, omega: np.ndarray, r: np.ndarray, v: np.ndarray):
    """Rotate TEME position/velocity (..., 3) by R_z(-theta); add the Earth-rotation term.

    Same maths as Skyfield's ``TEME_to_ITRF`` without polar motion.
    """
    c, s = np.cos(theta), np.sin(theta)
    x = c * r[..., 0] + s * r[..., 1]
    y = -s * r[..., 0] + c * r[..., 1]
    vx = c * v[..., 0] + s * v[..., 1] + omega * y
    vy = -s * v[..., 0] + c * v[..., 1] - omega * x
    return np.stack((x, y, r[..., 2]), axis=-1), np.stack((vx, vy, v[..., 2]), axis=-1)


@dataclass(frozen=True)
class _SiteArrays:
    pos_km: np.ndarray  # (S, 3) ITRS
    up: np.ndarray
    east: np.ndarray
    north: np.ndarray
    sin_mask: np.ndarray  # (S,)
    mask_rad: np.ndarray

    @classmethod
    def build(cls, sites: Sequence[Site], masks_deg: np.ndarray) -> _SiteArrays:
        from skyfield.api import wgs84

        pos = np.array([wgs84.latlon(s.lat_deg, s.lon_deg, elevation_m=s.alt_m).itrs_xyz.km for s in sites])
        lat = np.radians([s.lat_deg for s in sites])
        lon = np.radians([s.lon_deg for s in sites])
        up = np.stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)), axis=1)
        east = np.stack((-np.sin(lon), np.cos(lon), np.zeros_like(lon)), axis=1)
        north = np.stack((-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)), axis=1)
        mask = np.radians(masks_deg)
        return cls(pos, up, east, north, np.sin(mask), mask)


def _topocentric(p: np.ndarray, v: np.ndarray | None, site: _SiteArrays, isite: np.ndarray):
    """Elevation, azimuth (deg), range (km) and range rate (km/s) of ITRS states from sites."""
    d = p - site.pos_km[isite]
    rng = np.sqrt(np.einsum("ij,ij->i", d, d))
    el = np.degrees(np.arcsin(np.clip(np.einsum("ij,ij->i", d, site.up[isite]) / rng, -1.0, 1.0)))
    az = (
        np.degrees(
            np.arctan2(
                np.einsum("ij,ij->i", d, site.east[isite]), np.einsum("ij,ij->i", d, site.north[isite])
            )
        )
        % 360.0
    )
    rr = None if v is None else np.einsum("ij,ij->i", d, v) / rng  # site is fixed in ITRS
    return el, az, rng, rr


def _exact_states(satrecs: Sequence[Satrec], isat: np.ndarray, t_s: np.ndarray, clock: _Clock):
    """Exact SGP4 ITRS states for arbitrary (satellite, time) pairs; one sgp4 call per satellite."""
    n = len(t_s)
    p = np.full((n, 3), np.nan)
    v = np.full((n, 3), np.nan)
    if n == 0:
        return p, v
    order = np.argsort(isat, kind="stable")
    s_sorted = isat[order]
    t_sorted = np.ascontiguousarray(t_s[order], dtype=float)
    jd, fr = clock.sgp4_times(t_sorted)
    cuts = np.flatnonzero(np.diff(s_sorted)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [n]))
    r_teme = np.empty((n, 3))
    v_teme = np.empty((n, 3))
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        e, r, vv = satrecs[int(s_sorted[a])].sgp4_array(jd[a:b], fr[a:b])
        r[e != 0] = np.nan
        r_teme[a:b] = r
        v_teme[a:b] = vv
    theta, omega = clock.theta(t_sorted)
    pi, vi = _teme_to_itrs(theta, omega, r_teme, v_teme)
    p[order] = pi
    v[order] = vi
    return p, v


def _exact_g(satrecs, isat_global, isite, t_s, clock, site: _SiteArrays) -> np.ndarray:
    """sin(elevation) - sin(mask) on exact SGP4 geometry (NaN -> -2, i.e. not visible)."""
    p, _ = _exact_states(satrecs, isat_global, t_s, clock)
    d = p - site.pos_km[isite]
    g = np.einsum("ij,ij->i", d, site.up[isite]) / np.sqrt(np.einsum("ij,ij->i", d, d)) - site.sin_mask[isite]
    return np.nan_to_num(g, nan=-2.0)


# ----------------------------------------------------------------------------- per-chunk search


class _IntervalPoly:
    """``sin(el) - sin(mask)`` inside one grid interval, from a cubic Hermite interpolant.

    With ``s in [0, 1]`` the interpolated relative position is the cubic
    ``d(s) = a0 + a1 s + a2 s^2 + a3 s^3`` (from exact SGP4 positions and
    velocities at both ends), so ``d.up`` is a cubic and ``|d|^2`` a sextic:
    11 coefficients per interval, after which every evaluation is a few
    Horner steps on flat arrays (no gathers), which is what makes refining a
    million crossings cheap.  Position error is ~0.3 m at 60 s for LEO.
    """

    def __init__(self, p, v, grid, site: _SiteArrays, isat, isite, k) -> None:
        self.t0 = grid[k]
        self.h = grid[k + 1] - self.t0
        hh = self.h[:, None]
        n_t = p.shape[1]
        flat = isat * n_t + k
        pf, vf = p.reshape(-1, 3), v.reshape(-1, 3)
        p0, p1 = pf[flat], pf[flat + 1]
        v0, v1 = vf[flat] * hh, vf[flat + 1] * hh
        a = (p0 - site.pos_km[isite], v0, 3.0 * (p1 - p0) - 2.0 * v0 - v1, 2.0 * (p0 - p1) + v0 + v1)
        up = site.up[isite]
        self.num = np.stack([np.einsum("ij,ij->i", ai, up) for ai in a])  # (4, m), low order first
        dd = {(i, j): np.einsum("ij,ij->i", a[i], a[j]) for i in range(4) for j in range(i, 4)}
        self.den = np.stack(
            [
                dd[0, 0],
                2 * dd[0, 1],
                2 * dd[0, 2] + dd[1, 1],
                2 * (dd[0, 3] + dd[1, 2]),
                2 * dd[1, 3] + dd[2, 2],
                2 * dd[2, 3],
                dd[3, 3],
            ]
        )
        self.sin_mask = site.sin_mask[isite]

    def take(self, idx: np.ndarray) -> _IntervalPoly:
        out = object.__new__(_IntervalPoly)
        out.t0, out.h, out.sin_mask = self.t0[idx], self.h[idx], self.sin_mask[idx]
        out.num, out.den = self.num[:, idx], self.den[:, idx]
        return out

    @staticmethod
    def _horner(c: np.ndarray, s: np.ndarray) -> np.ndarray:
        out = c[-1].copy()
        for ci in c[-2::-1]:
            out *= s
            out += ci
        return out

    @staticmethod
    def _dhorner(c: np.ndarray, s: np.ndarray) -> np.ndarray:
        n = len(c) - 1
        out = n * c[-1]
        for i in range(n - 1, 0, -1):
            out = out * s + i * c[i]
        return out

    def g(self, s: np.ndarray) -> np.ndarray:
        g = self._horner(self.num, s) / np.sqrt(self._horner(self.den, s)) - self.sin_mask
        return np.nan_to_num(g, nan=-2.0)

    def range_km(self, s: np.ndarray) -> np.ndarray:
        return np.sqrt(self._horner(self.den, s))

    def dg_dt(self, s: np.ndarray) -> np.ndarray:
        """Time derivative of ``g`` (1/s)."""
        num, den = self._horner(self.num, s), self._horner(self.den, s)
        dnum, dden = self._dhorner(self.num, s), self._dhorner(self.den, s)
        return (dnum * den - 0.5 * num * dden) / den**1.5 / self.h

    def time(self, s: np.ndarray) -> np.ndarray:
        return self.t0 + s * self.h


def _n_halvings(width: float, tol: float) -> int:
    """Bisection steps to shrink ``width`` below ``tol``.

    Taken from the grid step, not from the batch, so results do not depend on
    how satellites are chunked or spread over workers.
    """
    return int(np.ceil(np.log2(max(width / tol, 1.0)))) + 1


def _bisect(fn, a: np.ndarray, b: np.ndarray, rising: np.ndarray, n_iter: int) -> np.ndarray:
    """Vectorised bisection for where ``fn`` crosses 0 upwards (``rising``) or downwards in [a, b]."""
    a, b = a.copy(), b.copy()
    for _ in range(n_iter):
        m = 0.5 * (a + b)
        move_b = (fn(m) >= 0) == rising
        b = np.where(move_b, m, b)
        a = np.where(move_b, a, m)
    return 0.5 * (a + b)


def _peak(poly: _IntervalPoly, n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximum of ``g`` over each interval by bisection on the sign of its derivative.

    Elevation is unimodal within one grid interval for the orbits we handle
    (a LEO pass lasts several steps, higher orbits move slower).
    Returns ``(s, g)`` at the maximum.
    """
    m = len(poly.h)
    a, b = np.zeros(m), np.ones(m)
    d0, d1 = poly.dg_dt(a), poly.dg_dt(b)
    for _ in range(n_iter):
        mid = 0.5 * (a + b)
        rising = poly.dg_dt(mid) > 0
        a = np.where(rising, mid, a)
        b = np.where(rising, b, mid)
    s = np.where(d0 <= 0, 0.0, np.where(d1 >= 0, 1.0, 0.5 * (a + b)))
    return s, poly.g(s)


@dataclass
class _ChunkResult:
    isat: np.ndarray  # global satellite index
    isite: np.ndarray
    rise_s: np.ndarray
    set_s: np.ndarray
    culm_s: np.ndarray
    culm_g: np.ndarray
    open_start: np.ndarray
    open_end: np.ndarray
    n_fallback: int = 0
    n_unpaired: int = 0
    n_exact_checks: int = 0


def _candidates(p: np.ndarray, v: np.ndarray, h_max: float, site: _SiteArrays) -> np.ndarray:
    """Flat indices into (satellite, site, time) of samples where a pass could be near.

    A satellite at geocentric radius ``r`` is above elevation ``e`` (geocentric)
    from a site at radius ``R`` only within the central angle
    ``acos(R cos e / r) - e``.  Widened by the angle travelled in half a step,
    every pass has at least one candidate sample.
    """
    n_sat, n_t, _ = p.shape
    r = np.sqrt(np.einsum("ntk,ntk->nt", p, p))
    finite = np.isfinite(r)
    ok_sat = finite.any(axis=1)
    r_safe = np.where(finite, r, 1.0)
    r_max = np.where(finite, r, 0.0).max(axis=1)
    # Angular rate of the direction to the satellite: |v x r| / r^2 <= |v| / r (cheaper, an upper bound).
    rate = np.where(finite, np.sqrt(np.einsum("ntk,ntk->nt", v, v)) / r_safe, 0.0).max(axis=1)
    site_r = np.linalg.norm(site.pos_km, axis=1)
    mask_geoc = site.mask_rad - _GEODETIC_MARGIN_RAD
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_arg = np.clip(site_r[None, :] * np.cos(mask_geoc)[None, :] / r_max[:, None], -1.0, 1.0)
    lam = np.arccos(cos_arg) - mask_geoc[None, :]
    # 1.25: the angular rate between samples can exceed its sampled maximum (eccentric orbits);
    # 1e-3 rad covers float32 rounding of the dot products.
    cut = lam + 1.25 * rate[:, None] * (0.5 * h_max) + 1e-3
    cos_cut = np.where(ok_sat[:, None], np.cos(np.minimum(cut, np.pi)), 2.0).astype(np.float32)
    unit_t = np.ascontiguousarray((p / r_safe[..., None]).transpose(0, 2, 1), dtype=np.float32)  # (n, 3, T)
    unit_t[~np.broadcast_to(finite[:, None, :], unit_t.shape)] = 0.0
    site_dir = (site.pos_km / site_r[:, None]).astype(np.float32)
    dots = np.matmul(site_dir[None], unit_t)  # (n, S, T), one small BLAS product per satellite
    cand = dots > cos_cut[:, :, None]
    del dots
    return np.flatnonzero(cand)  # C order: sorted by (satellite, site, time)


def _search_chunk(
    sat_offset: int,
    satrecs_all: Sequence[Satrec],
    p: np.ndarray,
    v: np.ndarray,
    grid: np.ndarray,
    site: _SiteArrays,
    clock: _Clock,
    tol: float,
    interp_err_km: np.ndarray,
) -> _ChunkResult:
    """Passes of one chunk of satellites (``p``, ``v``: ITRS states on ``grid``).

    ``interp_err_km`` bounds the Hermite interpolation error per satellite; it
    decides which crossings and near-mask maxima need checking on exact SGP4.
    """
    n_sat, n_t, _ = p.shape
    n_site = len(site.sin_mask)
    duration = float(grid[-1])
    h_max = float(np.max(np.diff(grid)))
    empty = _ChunkResult(*(np.empty(0, dtype=int),) * 2, *(np.empty(0),) * 4, *(np.empty(0, dtype=bool),) * 2)

    # --- 3. screening, then dilate each run of candidates by one sample on each side ---------
    flat = _candidates(p, v, h_max, site)
    if len(flat) == 0:
        return empty
    start = np.ones(len(flat), dtype=bool)
    start[1:] = flat[1:] != flat[:-1] + 1
    end = np.ones(len(flat), dtype=bool)
    end[:-1] = start[1:]
    k_of = flat % n_t
    add_before = start & (k_of > 0)
    add_after = end & (k_of < n_t - 1)
    pos = np.arange(len(flat)) + np.cumsum(add_before) + np.concatenate(([0], np.cumsum(add_after)[:-1]))
    full = np.empty(len(flat) + int(add_before.sum()) + int(add_after.sum()), dtype=np.int64)
    full[pos] = flat
    full[pos[add_before] - 1] = flat[add_before] - 1
    full[pos[add_after] + 1] = flat[add_after] + 1
    del flat, start, end, k_of, add_before, add_after, pos
    pair, ik = np.divmod(full, n_t)  # pair = local_sat * S + site
    isat, isite = np.divmod(pair, n_site)
    del full

    # --- 4. exact elevation at the samples ----------------------------------------------------
    flat_e = isat * n_t + ik
    d = p.reshape(-1, 3)[flat_e] - site.pos_km[isite]
    dv = v.reshape(-1, 3)[flat_e]
    del flat_e
    rng2 = np.einsum("ij,ij->i", d, d)
    du = np.einsum("ij,ij->i", d, site.up[isite])
    g = np.nan_to_num(du / np.sqrt(rng2) - site.sin_mask[isite], nan=-2.0)
    # sign of d(sin el)/dt at the sample: which neighbouring interval holds a maximum
    slope = np.einsum("ij,ij->i", dv, site.up[isite]) * rng2 - du * np.einsum("ij,ij->i", d, dv)
    del d, dv, rng2, du
    n_e = len(ik)
    run_start = np.ones(n_e, dtype=bool)
    run_start[1:] = (pair[1:] != pair[:-1]) | (ik[1:] != ik[:-1] + 1)
    run_end = np.ones(n_e, dtype=bool)
    run_end[:-1] = run_start[1:]
    up = g >= 0.0

    # Sign changes between consecutive samples of a run: interval ik[e].
    sc = np.flatnonzero(~run_end[:-1] & (up[:-1] != up[1:]))
    poly_sc = _IntervalPoly(p, v, grid, site, isat[sc], isite[sc], ik[sc])
    br_poly = [poly_sc]
    br_a, br_b = [np.zeros(len(sc))], [np.ones(len(sc))]
    br_rise = [up[sc + 1]]
    br_pair = [pair[sc]]

    # Discrete local maxima (run ends included) -> refined within the interval the slope points to.
    prev_g = np.concatenate(([-np.inf], g[:-1]))
    prev_g[run_start] = -np.inf
    next_g = np.concatenate((g[1:], [-np.inf]))
    next_g[run_end] = -np.inf
    pk = np.flatnonzero((g >= prev_g) & (g > next_g))
    k_int = np.clip(np.where(slope[pk] > 0, ik[pk], ik[pk] - 1), 0, n_t - 2)
    # Duplicate samples (runs sharing a dilation sample) can select the same interval twice.
    key = pair[pk] * n_t + k_int
    _, uniq = np.unique(key, return_index=True)
    pk, k_int = pk[uniq], k_int[uniq]
    poly_pk = _IntervalPoly(p, v, grid, site, isat[pk], isite[pk], k_int)
    s_pk, g_pk = _peak(poly_pk, _n_halvings(h_max, tol))
    t_pk = poly_pk.time(s_pk)
    better = g[pk] > g_pk  # keep the sample if it is higher (numerical ties at interval ends)
    t_pk = np.where(better, grid[ik[pk]], t_pk)
    g_pk = np.where(better, g[pk], g_pk)
    pk_pair = pair[pk]

    # Hidden passes: below the mask at both ends of the interval, above it inside.  Maxima
    # within the interpolation error of the mask are decided on exact SGP4 (grazing passes).
    closed = (poly_pk.g(np.zeros(len(pk))) < 0.0) & (poly_pk.g(np.ones(len(pk))) < 0.0)
    g_err = 4.0 * interp_err_km[isat[pk]] / poly_pk.range_km(s_pk)
    near = np.flatnonzero(closed & (np.abs(g_pk) <= g_err))
    if len(near):
        g_pk[near] = _exact_g(
            satrecs_all, isat[pk][near] + sat_offset, isite[pk][near], t_pk[near], clock, site
        )
    n_exact = len(near)
    hid = np.flatnonzero(closed & (g_pk >= 0.0))
    if len(hid):
        poly_h = poly_pk.take(hid)
        for a_, b_, rise_ in ((0.0, s_pk[hid], True), (s_pk[hid], 1.0, False)):
            br_poly.append(poly_h)
            br_a.append(np.broadcast_to(a_, hid.shape).astype(float))
            br_b.append(np.broadcast_to(b_, hid.shape).astype(float))
            br_rise.append(np.full(len(hid), rise_))
            br_pair.append(pk_pair[hid])

    # --- 5. crossings: bisection on the interpolant, checked against exact SGP4 -------------
    t_x_parts, ta_parts, tb_parts, slope_parts, rng_parts = [], [], [], [], []
    for poly, a_, b_, rise_ in zip(br_poly, br_a, br_b, br_rise, strict=True):
        s = _bisect(poly.g, a_, b_, rise_, _n_halvings(h_max, tol / 8.0))
        t_x_parts.append(poly.time(s))
        ta_parts.append(poly.time(a_))
        tb_parts.append(poly.time(b_))
        slope_parts.append(poly.dg_dt(s))
        rng_parts.append(poly.range_km(s))
    t_x = np.concatenate(t_x_parts)
    t_a, t_b = np.concatenate(ta_parts), np.concatenate(tb_parts)
    dgdt = np.concatenate(slope_parts)
    ev_rise = np.concatenate(br_rise)
    ev_pair = np.concatenate(br_pair)
    x_sat, x_site = np.divmod(ev_pair, n_site)
    # Time error from interpolation <= (error in g) / |slope|, with |dg| <= 2 |dpos| / range.
    # Crossings whose bound exceeds tol/8 (grazing passes) get one exact SGP4 evaluation and a
    # Newton correction; a correction above tol/2 sends the crossing to exact bisection.
    with np.errstate(divide="ignore", invalid="ignore"):
        t_err = 2.0 * interp_err_km[x_sat] / np.concatenate(rng_parts) / np.abs(dgdt)
    check = np.flatnonzero(~(t_err <= tol / 8.0))
    good = np.ones(len(t_x), dtype=bool)
    if len(check):
        g_exact = _exact_g(satrecs_all, x_sat[check] + sat_offset, x_site[check], t_x[check], clock, site)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = -g_exact / dgdt[check]
        ok = np.isfinite(corr) & (np.abs(corr) <= 0.5 * tol)
        t_x[check[ok]] = np.clip(t_x[check[ok]] + corr[ok], t_a[check[ok]], t_b[check[ok]])
        good[check[~ok]] = False
    n_exact += len(check)
    bad = np.flatnonzero(~good)
    if len(bad):
        b_sat, b_site = x_sat[bad] + sat_offset, x_site[bad]
        t_x[bad] = _bisect(
            lambda t: _exact_g(satrecs_all, b_sat, b_site, t, clock, site),
            t_a[bad],
            t_b[bad],
            ev_rise[bad],
            _n_halvings(h_max, tol / 2.0),
        )

    # Open passes: above the mask at the first / last grid sample.
    os_ = np.flatnonzero((ik == 0) & up)
    oe_ = np.flatnonzero((ik == n_t - 1) & up)
    ev_pair = np.concatenate((ev_pair, pair[os_], pair[oe_]))
    ev_t = np.concatenate((t_x, np.zeros(len(os_)), np.full(len(oe_), duration)))
    ev_rise = np.concatenate((ev_rise, np.ones(len(os_), bool), np.zeros(len(oe_), bool)))
    ev_open = np.concatenate((np.zeros(len(t_x), bool), np.ones(len(os_) + len(oe_), bool)))
    # Sort by pair then time, a set before a rise at the same instant; pair rise -> set.
    order = np.lexsort((ev_rise, ev_t, ev_pair))
    ev_pair, ev_t, ev_rise, ev_open = ev_pair[order], ev_t[order], ev_rise[order], ev_open[order]
    is_pass = np.zeros(len(ev_t), dtype=bool)
    if len(ev_t) > 1:
        is_pass[:-1] = ev_rise[:-1] & ~ev_rise[1:] & (ev_pair[:-1] == ev_pair[1:])
    first = np.flatnonzero(is_pass)
    n_unpaired = len(ev_t) - 2 * len(first)
    rise_s, set_s = ev_t[first], ev_t[first + 1]
    p_pair = ev_pair[first]

    # Culmination: the highest refined maximum inside each pass.
    span = duration + 10.0 * h_max
    rise_key = p_pair * span + rise_s
    set_key = p_pair * span + set_s
    cand_pk = np.flatnonzero(g_pk >= 0.0)
    pk_key = pk_pair[cand_pk] * span + t_pk[cand_pk]
    j = np.searchsorted(rise_key, pk_key + tol, side="right") - 1
    inside = (
        (j >= 0) & (pk_key <= np.take(set_key, np.maximum(j, 0), mode="clip") + tol)
        if len(set_key)
        else j < -1
    )
    j, sel = j[inside], cand_pk[inside]
    culm_g = np.full(len(first), -np.inf)
    culm_t = 0.5 * (rise_s + set_s)
    if len(j):
        o = np.lexsort((g_pk[sel], j))  # last entry per pass is its highest maximum
        j, sel = j[o], sel[o]
        last = np.ones(len(j), dtype=bool)
        last[:-1] = j[1:] != j[:-1]
        culm_g[j[last]] = g_pk[sel[last]]
        culm_t[j[last]] = t_pk[sel[last]]
    missing = np.flatnonzero(~np.isfinite(culm_g))
    if len(missing):  # defensive: sample the pass on exact SGP4 and take the best point
        ms, mi = np.divmod(p_pair[missing], n_site)
        grid_s = np.linspace(0.0, 1.0, 33)
        tt = rise_s[missing, None] + grid_s[None, :] * (set_s - rise_s)[missing, None]
        gg = _exact_g(satrecs_all, np.repeat(ms + sat_offset, 33), np.repeat(mi, 33), tt.ravel(), clock, site)
        best = gg.reshape(-1, 33).argmax(axis=1)
        culm_t[missing] = tt[np.arange(len(missing)), best]
        culm_g[missing] = gg.reshape(-1, 33)[np.arange(len(missing)), best]
    culm_t = np.clip(culm_t, rise_s, set_s)
    out_sat, out_site = np.divmod(p_pair, n_site)
    return _ChunkResult(
        isat=out_sat + sat_offset,
        isite=out_site,
        rise_s=rise_s,
        set_s=set_s,
        culm_s=culm_t,
        culm_g=culm_g,
        open_start=ev_open[first] & (rise_s <= 0.0),
        open_end=ev_open[first + 1] & (set_s >= duration),
        n_fallback=len(bad),
        n_unpaired=int(n_unpaired),
        n_exact_checks=n_exact,
    )


# ----------------------------------------------------------------------------- public API


def _interpolation_error_km(chunk, p, v, grid, clock: _Clock, n_probe: int = 12) -> np.ndarray:
    """Per-satellite bound on the Hermite interpolation error (km).

    Exact SGP4 at the midpoints of ``n_probe`` intervals spread over the span
    (where the cubic Hermite error kernel peaks), compared with the
    interpolant; the maximum is multiplied by 4 for safety.
    """
    n_t = len(grid)
    k = np.unique(np.linspace(0, n_t - 2, min(n_probe, n_t - 1)).astype(int))
    h = (grid[k + 1] - grid[k])[None, :, None]
    t_mid = 0.5 * (grid[k] + grid[k + 1])
    jd, fr = clock.sgp4_times(t_mid)
    e, r, vv = SatrecArray(chunk).sgp4(jd, fr)
    r[e != 0] = np.nan
    theta, omega = clock.theta(t_mid)
    exact, _ = _teme_to_itrs(theta, omega, r, vv)
    interp = 0.5 * (p[:, k] + p[:, k + 1]) + h * (v[:, k] - v[:, k + 1]) / 8.0
    err = np.linalg.norm(exact - interp, axis=-1)
    err = np.where(np.isfinite(err), err, 1.0)  # propagation errors: force exact checks
    return 4.0 * err.max(axis=1) + 1e-6


_FORK_STATE: dict | None = None


def _run_chunk(state: dict, a: int) -> tuple[_ChunkResult, int]:
    """Propagate satellites ``a .. a + chunk`` on the grid and search their passes."""
    satrecs = state["satrecs"]
    chunk = satrecs[a : a + state["chunk"]]
    e, r, v = SatrecArray(chunk).sgp4(state["jd"], state["fr"])
    bad = e != 0
    r[bad] = np.nan
    p_itrs, v_itrs = _teme_to_itrs(state["theta"], state["omega"], r, v)
    del r, v
    grid, clock = state["grid"], state["clock"]
    err_km = _interpolation_error_km(chunk, p_itrs, v_itrs, grid, clock)
    res = _search_chunk(a, satrecs, p_itrs, v_itrs, grid, state["site"], clock, state["tol"], err_km)
    return res, int(bad.any(axis=1).sum())


def _run_chunk_forked(a: int) -> tuple[_ChunkResult, int]:
    return _run_chunk(_FORK_STATE, a)


def _validate(records, sites, duration_s, masks, step_s, tolerance_s) -> np.ndarray:
    if not records:
        raise InputError("no satellites: the TLE selection is empty; check the file and filters")
    if not sites:
        raise InputError("no ground clusters given; add at least one site")
    names = [s.name for s in sites]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"cluster names must be unique (repeated: {', '.join(dup)})")
    for s in sites:
        if not -90.0 <= s.lat_deg <= 90.0:
            raise InputError(f"latitude of {s.name!r} must be between -90 and 90 degrees (got {s.lat_deg})")
        if not -180.0 <= s.lon_deg <= 360.0:
            raise InputError(
                f"longitude of {s.name!r} must be between -180 and 360 degrees (got {s.lon_deg})"
            )
    if not duration_s > 0:
        raise InputError(f"duration must be > 0 s (got {duration_s})")
    if not step_s > 0:
        raise InputError(f"step_s must be > 0 s (got {step_s})")
    if not tolerance_s > 0:
        raise InputError(f"tolerance_s must be > 0 s (got {tolerance_s})")
    mask_arr = np.atleast_1d(np.asarray(masks, dtype=float))
    if mask_arr.size == 1:
        mask_arr = np.full(len(sites), float(mask_arr[0]))
    if mask_arr.size != len(sites):
        raise InputError(
            f"elevation mask: give one value or one per cluster ({len(sites)}), got {mask_arr.size}"
        )
    if np.any(mask_arr < -5.0) | np.any(mask_arr >= 90.0):
        raise InputError(f"elevation mask must be between -5 and 90 degrees (got {mask_arr.tolist()})")
    return mask_arr


def compute_contact_plan(
    records: Sequence[TleRecord],
    sites: Sequence[Site],
    start_utc: datetime,
    duration_s: float,
    elevation_mask_deg: float | Sequence[float] = 25.0,
    step_s: float = 60.0,
    tolerance_s: float = 0.1,
    satellite_chunk: int | None = None,
    workers: int = 1,
) -> ContactPlan:
    """All passes of ``records`` over ``sites`` in ``[start, start + duration]``.

    Parameters
    ----------
    records:
        Satellites (TLEs).
    sites:
        Ground clusters; their names become the ``cluster`` column.
    start_utc:
        Scenario start (naive = UTC).
    duration_s:
        Span to search.
    elevation_mask_deg:
        Minimum elevation, one value or one per site.
    step_s:
        Coarse propagation step.  It does not decide which passes are found
        (the screening margin grows with the step, so none is missed); it
        trades screening cost against interpolation accuracy.  60 s keeps the
        Hermite interpolant within about a metre for LEO.  Capped at 2 % of
        the shortest orbital period (``diagnostics["step_s_used"]``).
    tolerance_s:
        Rise/set times are within this of the exact SGP4 crossing.
    satellite_chunk:
        Satellites per batch (bounds memory); default sizes batches to ~250 MB.
    workers:
        Processes working on batches in parallel (fork; POSIX only).  Results do
        not depend on it.

    Returns
    -------
    ContactPlan
    """
    masks = _validate(records, sites, duration_s, elevation_mask_deg, step_s, tolerance_s)
    duration_s = float(duration_s)
    clock = _Clock(start_utc, duration_s)
    site = _SiteArrays.build(sites, masks)
    satrecs = to_satrecs(records)
    # Keep the step within 2 % of the shortest orbital period (~7 deg of arc, 115 s for a
    # 95-minute LEO) so elevation stays unimodal within an interval and the interpolant accurate.
    min_period_s = min(2.0 * math.pi / max(s.no_kozai, 1e-9) * 60.0 for s in satrecs)
    step_s = min(float(step_s), max(0.02 * min_period_s, 1.0))
    grid = np.arange(0.0, duration_s, step_s)
    if duration_s - grid[-1] > 1e-6:
        grid = np.append(grid, duration_s)
    n_t = len(grid)
    if satellite_chunk is None:
        # per satellite: float32 dot products + bools (S*T*7 bytes) and float64 states (T*48)
        per_sat = n_t * (len(sites) * 7 + 64)
        satellite_chunk = int(max(1, min(len(records), 250e6 // per_sat)))
    jd, fr = clock.sgp4_times(grid)
    theta, omega = clock.theta(grid)
    state = dict(
        satrecs=satrecs,
        jd=jd,
        fr=fr,
        theta=theta,
        omega=omega,
        grid=grid,
        site=site,
        clock=clock,
        tol=tolerance_s,
        chunk=satellite_chunk,
    )
    starts = list(range(0, len(satrecs), satellite_chunk))
    n_workers = max(1, min(int(workers or 1), len(starts)))
    if n_workers == 1:
        outputs = [_run_chunk(state, a) for a in starts]
    else:
        # Fork so workers inherit the state without pickling it; results are small arrays.
        global _FORK_STATE
        _FORK_STATE = state
        try:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
                outputs = list(pool.map(_run_chunk_forked, starts))
        finally:
            _FORK_STATE = None
    results = [res for res, _ in outputs]
    n_prop_err = sum(n for _, n in outputs)

    cat = {
        f: np.concatenate([getattr(res, f) for res in results])
        for f in ("isat", "isite", "rise_s", "set_s", "culm_s", "culm_g", "open_start", "open_end")
    }
    sat_names = np.array([rec.name for rec in records], dtype=object)
    sat_ids = np.array([rec.norad_id for rec in records], dtype=np.int64)
    site_names = np.array([s.name for s in sites], dtype=object)
    max_el = np.degrees(np.arcsin(np.clip(cat["culm_g"] + site.sin_mask[cat["isite"]], -1.0, 1.0)))
    passes = pd.DataFrame(
        {
            "cluster": site_names[cat["isite"]],
            "satellite": sat_names[cat["isat"]],
            "norad_id": sat_ids[cat["isat"]],
            "rise_s": cat["rise_s"],
            "culmination_s": cat["culm_s"],
            "set_s": cat["set_s"],
            "rise_utc": clock.utc(cat["rise_s"]),
            "culmination_utc": clock.utc(cat["culm_s"]),
            "set_utc": clock.utc(cat["set_s"]),
            "max_elevation_deg": max_el,
            "duration_s": cat["set_s"] - cat["rise_s"],
            "open_at_start": cat["open_start"],
            "open_at_end": cat["open_end"],
        }
    )
    order = np.lexsort((cat["isat"], cat["isite"], cat["rise_s"]))
    passes = passes.iloc[order].reset_index(drop=True)
    passes["cluster"] = passes["cluster"].astype(str)
    passes["satellite"] = passes["satellite"].astype(str)
    diagnostics = {
        "n_satellites": len(records),
        "n_sites": len(sites),
        "n_grid_samples": n_t,
        "step_s_used": step_s,
        "satellites_with_propagation_errors": n_prop_err,
        "crossings_resolved_on_exact_sgp4": int(sum(r.n_fallback for r in results)),
        "unpaired_events": int(sum(r.n_unpaired for r in results)),
        "exact_sgp4_checks": int(sum(r.n_exact_checks for r in results)),
    }
    plan = ContactPlan(
        passes=passes,
        start_utc=clock.start_utc,
        duration_s=duration_s,
        sites=list(sites),
        elevation_mask_deg=masks.tolist(),
        records=list(records),
        step_s=float(step_s),
        tolerance_s=float(tolerance_s),
        diagnostics=diagnostics,
    )
    plan._satrecs = satrecs
    plan._site_arrays = site
    plan._clock = clock
    return plan


@dataclass
class ContactPlan:
    """Passes of satellites over clusters, plus exact geometry on request.

    Attributes
    ----------
    passes:
        One row per pass, columns :data:`PASS_COLUMNS`, sorted by ``rise_s``.
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
    """

    passes: pd.DataFrame
    start_utc: datetime
    duration_s: float
    sites: list[Site]
    elevation_mask_deg: list[float]
    records: list[TleRecord] | None = None
    step_s: float = 60.0
    tolerance_s: float = 0.1
    diagnostics: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._satrecs: list[Satrec] | None = None
        self._site_arrays: _SiteArrays | None = None
        self._clock: _Clock | None = None

    # -- lookups -------------------------------------------------------------------------------
    def mask_for(self, cluster: str) -> float:
        """Elevation mask (deg) of a cluster."""
        return self.elevation_mask_deg[self.site_index(cluster)]

    def site_index(self, cluster: str) -> int:
        for i, s in enumerate(self.sites):
            if s.name == cluster:
                return i
        raise InputError(
            f"cluster {cluster!r} not in the contact plan; available: {', '.join(s.name for s in self.sites)}"
        )

    def satellite_index(self, satellite: str | int) -> int:
        """Index into :attr:`records` of a satellite given by name or NORAD id."""
        if self.records is None:
            raise InputError(
                "this contact plan has no TLE records; pass records= to read_parquet to sample geometry"
            )
        for i, r in enumerate(self.records):
            if (
                isinstance(satellite, (int, np.integer)) and r.norad_id == int(satellite)
            ) or r.name == satellite:
                return i
        examples = ", ".join(r.name for r in self.records[:3])
        raise InputError(f"satellite {satellite!r} not found; available e.g. {examples}")

    def _ensure_runtime(self) -> None:
        if self.records is None:
            raise InputError(
                "this contact plan has no TLE records; pass records= to read_parquet to sample geometry"
            )
        if self._satrecs is None:
            self._satrecs = to_satrecs(self.records)
        if self._site_arrays is None:
            self._site_arrays = _SiteArrays.build(
                self.sites, np.asarray(self.elevation_mask_deg, dtype=float)
            )
        if self._clock is None:
            self._clock = _Clock(self.start_utc, self.duration_s)

    # -- geometry ------------------------------------------------------------------------------
    def sample_many(self, isite: np.ndarray, isat: np.ndarray, t_s: np.ndarray) -> pd.DataFrame:
        """Exact geometry for arrays of (site index, satellite index, time); vectorised."""
        self._ensure_runtime()
        isite = np.asarray(isite, dtype=int)
        isat = np.asarray(isat, dtype=int)
        t_s = np.asarray(t_s, dtype=float)
        p, v = _exact_states(self._satrecs, isat, t_s, self._clock)
        el, az, rng, rr = _topocentric(p, v, self._site_arrays, isite)
        return pd.DataFrame(
            {"t_s": t_s, "elevation_deg": el, "azimuth_deg": az, "range_km": rng, "range_rate_km_s": rr}
        )

    def sample(self, cluster: str, satellite: str | int, t_s) -> pd.DataFrame:
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
        if self.records is None:
            self._ensure_runtime()
        for i, r in enumerate(self.records):
            if r.norad_id == int(row["norad_id"]) and r.name == row["satellite"]:
                return i
        return self.satellite_index(int(row["norad_id"]))

    # -- files ---------------------------------------------------------------------------------
    def _metadata(self) -> dict:
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
