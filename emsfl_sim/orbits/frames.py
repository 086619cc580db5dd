"""Time and reference frames of the pass search: scenario clock, TEME -> ITRS, sites, topocentric geometry.

Scenario seconds become SGP4 times (UTC Julian dates) and Skyfield's GMST-1982
angle (``theta_GMST1982``, the rotation Skyfield's ``EarthSatellite`` uses; UT1
from the builtin timescale; no polar motion, as in Skyfield without IERS files).
Ground sites are WGS84 geodetic points with their local ENU frames; elevation,
azimuth, range and range rate are computed in ITRS, where the sites are fixed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sgp4.api import Satrec, jday

from emsfl_sim.orbits.tle import _as_utc


@dataclass(frozen=True)
class Site:
    """A ground cluster location (WGS84 geodetic)."""

    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0


class Clock:
    """Scenario seconds -> SGP4 times (UTC Julian date) and the TEME->ITRS angle (UT1).

    UT1-UTC comes from Skyfield's builtin timescale, sampled hourly and
    interpolated (it changes by milliseconds per day).

    Parameters
    ----------
    start_utc
        Scenario start (naive = UTC).
    duration_s
        Span the UT1-UTC table must cover.
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
        #: added to every time given (a clock counting from a later instant; :meth:`shifted`)
        self.offset_s = 0.0

    def shifted(self, offset_s: float) -> Clock:
        """A copy counting from ``offset_s`` scenario seconds: its ``t`` is the original's ``t + offset_s``.

        A search of one part of the span uses it; at offsets that are whole seconds the
        times it hands to SGP4 are this clock's, bit for bit.
        """
        out = copy.copy(self)
        out.offset_s = self.offset_s + float(offset_s)
        return out

    def sgp4_times(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Julian date and fraction (UTC) for sgp4's ``sgp4_array`` at scenario times."""
        t_s = np.ascontiguousarray(t_s, dtype=float) + self.offset_s
        return np.full(t_s.shape, self.jd), self.fr + t_s / 86400.0

    def theta(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """GMST-1982 angle (rad) and its rate (rad/s) at scenario times."""
        from skyfield.sgp4lib import theta_GMST1982

        t_s = np.asarray(t_s, dtype=float) + self.offset_s
        dut1 = np.interp(t_s, self._dut1_t, self._dut1_s)
        theta, theta_dot = theta_GMST1982(self.jd, self.fr + (t_s + dut1) / 86400.0)
        return theta, theta_dot / 86400.0

    def utc(self, t_s: np.ndarray) -> pd.DatetimeIndex:
        """UTC timestamps of scenario times (the values of ``start + pd.to_timedelta(t_s, unit="s")``)."""
        base = pd.Timestamp(self.start_utc)
        t_s = np.asarray(t_s, dtype=float) + self.offset_s
        if not (np.all(np.isfinite(t_s)) and np.all(t_s >= 0.0) and np.all(t_s < 9e9)):
            return base + pd.to_timedelta(t_s, unit="s")
        # pandas' own float -> ns rule (whole seconds, then the fraction rounded to 9 digits and
        # truncated), on integers: ~10x faster than the float path for a million passes
        whole = np.trunc(t_s)
        ns = whole.astype(np.int64) * 1_000_000_000 + (np.round(t_s - whole, 9) * 1e9).astype(np.int64)
        return base + pd.to_timedelta(ns, unit="ns")


def teme_to_itrs(
    theta: np.ndarray, omega: np.ndarray, r: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate TEME position/velocity (..., 3) by R_z(-theta); add the Earth-rotation term.

    Same maths as Skyfield's ``TEME_to_ITRF`` without polar motion.  The ITRS
    velocity is the true derivative of the Earth-fixed position.
    """
    c, s = np.cos(theta), np.sin(theta)
    x = c * r[..., 0] + s * r[..., 1]
    y = -s * r[..., 0] + c * r[..., 1]
    vx = c * v[..., 0] + s * v[..., 1] + omega * y
    vy = -s * v[..., 0] + c * v[..., 1] - omega * x
    return np.stack((x, y, r[..., 2]), axis=-1), np.stack((vx, vy, v[..., 2]), axis=-1)


@dataclass(frozen=True)
class SiteArrays:
    """Sites as arrays: ITRS positions (S, 3), ENU unit vectors and elevation masks."""

    pos_km: np.ndarray  # (S, 3) ITRS
    up: np.ndarray
    east: np.ndarray
    north: np.ndarray
    sin_mask: np.ndarray  # (S,)
    mask_rad: np.ndarray

    @classmethod
    def build(cls, sites: Sequence[Site], masks_deg: np.ndarray) -> SiteArrays:
        """Arrays of ``sites`` (WGS84 positions from Skyfield) with one mask per site."""
        from skyfield.api import wgs84

        pos = np.array([wgs84.latlon(s.lat_deg, s.lon_deg, elevation_m=s.alt_m).itrs_xyz.km for s in sites])
        lat = np.radians([s.lat_deg for s in sites])
        lon = np.radians([s.lon_deg for s in sites])
        up = np.stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)), axis=1)
        east = np.stack((-np.sin(lon), np.cos(lon), np.zeros_like(lon)), axis=1)
        north = np.stack((-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)), axis=1)
        mask = np.radians(masks_deg)
        return cls(pos, up, east, north, np.sin(mask), mask)


def topocentric(
    p: np.ndarray, v: np.ndarray | None, site: SiteArrays, isite: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
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


def exact_states(
    satrecs: Sequence[Satrec], isat: np.ndarray, t_s: np.ndarray, clock: Clock
) -> tuple[np.ndarray, np.ndarray]:
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
    error = np.empty(n, dtype=np.uint8)
    # one sgp4 call per satellite; the per-call numpy work kept to the copies (many calls are a few samples)
    for a, b, i in zip(starts.tolist(), ends.tolist(), s_sorted[starts].tolist(), strict=True):
        error[a:b], r_teme[a:b], v_teme[a:b] = satrecs[i].sgp4_array(jd[a:b], fr[a:b])
    r_teme[error != 0] = np.nan
    theta, omega = clock.theta(t_sorted)
    pi, vi = teme_to_itrs(theta, omega, r_teme, v_teme)
    p[order] = pi
    v[order] = vi
    return p, v


def exact_g(
    satrecs: Sequence[Satrec],
    isat_global: np.ndarray,
    isite: np.ndarray,
    t_s: np.ndarray,
    clock: Clock,
    site: SiteArrays,
) -> np.ndarray:
    """sin(elevation) - sin(mask) on exact SGP4 geometry (NaN -> -2, i.e. not visible)."""
    p, _ = exact_states(satrecs, isat_global, t_s, clock)
    d = p - site.pos_km[isite]
    g = np.einsum("ij,ij->i", d, site.up[isite]) / np.sqrt(np.einsum("ij,ij->i", d, d)) - site.sin_mask[isite]
    return np.nan_to_num(g, nan=-2.0)
