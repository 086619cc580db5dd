"""Geometric screen of the pass search: which (satellite, site, sample) triples could be near a pass.

A satellite at geocentric radius ``r`` is above elevation ``e`` (geocentric) from a
site at radius ``R`` only within the Earth-central angle ``acos(R cos e / r) - e``
between the satellite's direction and the site's.  Widened by the angle the
satellite travels in half a step (x1.25), by 0.2 deg for geodetic vs geocentric
vertical and by 1e-3 rad for float32 rounding, every pass has at least one
candidate sample (:func:`screen_cuts`).

Two screens apply that same per-(satellite, site) cut and return the same samples:

- ``"dense"`` (:func:`candidates_dense`): one small matrix product of unit vectors
  per satellite over all sites and samples; cost and memory grow with
  satellites x sites x samples.
- ``"sparse"`` (:func:`candidates_sparse`, the default): satellite directions are
  binned into cubic cells of the unit sphere; a :class:`scipy.spatial.cKDTree` of
  the site directions lists, once per chunk, the sites within the largest cut's
  chord (plus the cell's half-diagonal) of each cell; only those (sample, site)
  pairs are tested with the exact cut.  Cost grows with the pairs actually near
  each other (satellites x samples plus pairs in view), not with all pairs.

Both return flat indices into (satellite, site, sample), sorted.  They differ at most
in a few samples whose float32 dot product rounds differently at the cut; such a sample
lies beyond the coverage angle by the motion margin (its elevation is below the mask,
and it is no local maximum that matters), so the plans are equal
(``tests/test_orbits_contacts.py`` checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from emsfl_sim.orbits.frames import SiteArrays

#: Screens :func:`candidates` accepts.
SCREENS = ("sparse", "dense")

_GEODETIC_MARGIN_RAD = math.radians(0.2)  # geodetic vs geocentric vertical differ by <= 0.193 deg
_MAX_CELLS_PER_AXIS = 128  # 2M cells at most (16 MB of int32 tables)
_CHORD_QUANTUM = 0.01  # the cell tables' chord is rounded up to this (few tables per plan)


@dataclass(frozen=True)
class Cuts:
    """The screen's inputs for one chunk of satellites.

    Attributes
    ----------
    cos_cut
        (n, S) float32 cosine of the cut angle per (satellite, site); 2 (never) for a
        satellite without any finite position.
    unit
        (n, T, 3) float32 unit vectors of the satellites' ITRS positions (0 where not finite).
    finite
        (n, T) whether the position is finite.
    site_dir
        (S, 3) float32 unit vectors of the sites' ITRS positions.
    max_cut_rad
        Largest cut angle over the chunk's satellites with finite positions and the sites.
    """

    cos_cut: np.ndarray
    unit: np.ndarray
    finite: np.ndarray
    site_dir: np.ndarray
    max_cut_rad: float


def screen_cuts(p: np.ndarray, v: np.ndarray, h_max: float, site: SiteArrays) -> Cuts:
    """Cut angle per (satellite, site) and the unit vectors both screens compare.

    Parameters
    ----------
    p, v
        ITRS positions (km) and velocities (km/s) of a chunk of satellites, (n, T, 3).
    h_max
        Largest grid step (s).
    site
        The sites.

    Returns
    -------
    Cuts
    """
    r = np.sqrt(np.einsum("ntk,ntk->nt", p, p))
    finite = np.isfinite(r)
    all_finite = bool(finite.all())
    speed = np.sqrt(np.einsum("ntk,ntk->nt", v, v))
    if all_finite:  # the usual case: no masking passes over (n, T)
        ok_sat = np.ones(len(r), dtype=bool)
        r_safe, r_max = r, r.max(axis=1)
        # Angular rate of the direction to the satellite: |v x r| / r^2 <= |v| / r (cheaper, an upper bound).
        rate = (speed / r).max(axis=1)
    else:
        ok_sat = finite.any(axis=1)
        r_safe = np.where(finite, r, 1.0)
        r_max = np.where(finite, r, 0.0).max(axis=1)
        rate = np.where(finite, speed / r_safe, 0.0).max(axis=1)
    site_r = np.linalg.norm(site.pos_km, axis=1)
    mask_geoc = site.mask_rad - _GEODETIC_MARGIN_RAD
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_arg = np.clip(site_r[None, :] * np.cos(mask_geoc)[None, :] / r_max[:, None], -1.0, 1.0)
    lam = np.arccos(cos_arg) - mask_geoc[None, :]
    # 1.25: the angular rate between samples can exceed its sampled maximum (eccentric orbits);
    # 1e-3 rad covers float32 rounding of the dot products.
    cut = np.minimum(lam + 1.25 * rate[:, None] * (0.5 * h_max) + 1e-3, np.pi)
    cos_cut = np.where(ok_sat[:, None], np.cos(cut), 2.0).astype(np.float32)
    unit = np.empty(p.shape, dtype=np.float32)  # written in float32 directly (no float64 temporary)
    np.multiply(p, (1.0 / r_safe)[..., None], out=unit, casting="same_kind")
    if not all_finite:
        unit[~finite] = 0.0
    site_dir = (site.pos_km / site_r[:, None]).astype(np.float32)
    max_cut = float(cut[ok_sat].max()) if ok_sat.any() else 0.0
    return Cuts(cos_cut, unit, finite, site_dir, max_cut)


def candidates_dense(cuts: Cuts) -> np.ndarray:
    """Flat indices into (satellite, site, sample) from all-pairs dot products (sorted)."""
    unit_t = np.ascontiguousarray(cuts.unit.transpose(0, 2, 1))  # (n, 3, T)
    dots = np.matmul(cuts.site_dir[None], unit_t)  # (n, S, T), one small BLAS product per satellite
    cand = dots > cuts.cos_cut[:, :, None]
    del dots
    return np.flatnonzero(cand)  # C order: sorted by (satellite, site, time)


@dataclass(frozen=True)
class _CellLists:
    """Sites that may lie within the chord of any direction in each cell (CSR over cells)."""

    side: float
    per_axis: int
    count: np.ndarray  # (per_axis**3,) int32
    start: np.ndarray  # (per_axis**3,) int32, into sites
    sites: np.ndarray  # int64

    @classmethod
    def build(cls, site_dir: np.ndarray, chord: float) -> _CellLists:
        """Cells of side ~chord/8 over [-1, 1]^3; per cell the sites within chord + half-diagonal."""
        from scipy.spatial import cKDTree

        m = int(min(_MAX_CELLS_PER_AXIS, max(1, math.ceil(2.0 / max(chord / 8.0, 1e-9)))))
        side = 2.0 / m
        half_diag = 0.5 * math.sqrt(3.0) * side
        axis = -1.0 + side * (np.arange(m) + 0.5)
        cx, cy, cz = np.meshgrid(axis, axis, axis, indexing="ij")
        centres = np.stack((cx.ravel(), cy.ravel(), cz.ravel()), axis=1)
        shell = np.flatnonzero(np.abs(np.linalg.norm(centres, axis=1) - 1.0) <= half_diag + 1e-6)
        reach = chord + half_diag + 1e-5
        pairs = cKDTree(centres[shell]).sparse_distance_matrix(
            cKDTree(site_dir.astype(np.float64)), reach, output_type="ndarray"
        )
        order = np.lexsort((pairs["j"], pairs["i"]))  # by cell, then site
        cell = shell[pairs["i"][order]]
        count = np.bincount(cell, minlength=m**3).astype(np.int32)
        start = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int32)
        return cls(side, m, count, start, pairs["j"][order].astype(np.int64))

    def keys(self, unit: np.ndarray) -> np.ndarray:
        """Cell index of unit vectors (..., 3)."""
        ijk = ((unit + np.float32(1.0)) * np.float32(1.0 / self.side)).astype(np.int32)
        np.clip(ijk, 0, self.per_axis - 1, out=ijk)
        return (ijk[..., 0] * self.per_axis + ijk[..., 1]) * self.per_axis + ijk[..., 2]


@lru_cache(maxsize=4)  # at most 4 x 16 MB
def _cell_lists(site_bytes: bytes, n_site: int, chord_quanta: int) -> _CellLists:
    """:meth:`_CellLists.build` for sites given as float32 bytes and a chord in quanta."""
    site_dir = np.frombuffer(site_bytes, dtype=np.float32).reshape(n_site, 3)
    return _CellLists.build(site_dir, chord_quanta * _CHORD_QUANTUM)


def candidates_sparse(cuts: Cuts) -> np.ndarray:
    """Flat indices into (satellite, site, sample) of the pairs near each other only (sorted).

    The samples of :func:`candidates_dense` (up to float32 rounding at the cut): the
    cells only pre-select sites within the largest cut's chord; each pre-selected pair
    is then tested with its own float32 cut.
    """
    n, n_t = cuts.finite.shape
    n_site = len(cuts.site_dir)
    if cuts.max_cut_rad <= 0.0:
        return np.empty(0, dtype=np.int64)
    if cuts.max_cut_rad >= 0.5 * np.pi:  # wide cuts (high orbits): most pairs are candidates anyway
        return candidates_dense(cuts)
    chord = 2.0 * math.sin(0.5 * cuts.max_cut_rad) + 1e-5  # + float32 rounding of the unit vectors
    # rounded up, so chunks of similar satellites share one table
    cells = _cell_lists(cuts.site_dir.tobytes(), len(cuts.site_dir), math.ceil(chord / _CHORD_QUANTUM))
    all_finite = bool(cuts.finite.all())
    point = None if all_finite else np.flatnonzero(cuts.finite.ravel())  # sat * T + k, sorted
    unit = cuts.unit.reshape(-1, 3) if point is None else np.take(cuts.unit.reshape(-1, 3), point, axis=0)
    key = cells.keys(unit)
    cnt = cells.count[key]
    total = int(cnt.sum(dtype=np.int64))
    if total == 0:
        return np.empty(0, dtype=np.int64)
    # pre-selected pairs (sample, site) in sample order; the sites of a sample are
    # cells.sites[start[key] : start[key] + cnt], i.e. repeat(start - first pair of the sample) + pair number
    rep = np.repeat(np.arange(len(unit), dtype=np.int64), cnt)
    first = np.cumsum(cnt, dtype=np.int64) - cnt
    isite = cells.sites[np.repeat(cells.start[key] - first, cnt) + np.arange(total)]
    del key, cnt, first
    u = np.take(unit, rep, axis=0)  # several times faster than fancy indexing
    s_dir = np.take(cuts.site_dir, isite, axis=0)
    dots = u[:, 0] * s_dir[:, 0] + u[:, 1] * s_dir[:, 1] + u[:, 2] * s_dir[:, 2]
    del u, s_dir
    idx = rep if point is None else point[rep]  # sat * T + k
    sat = idx // n_t
    pair = sat * n_site + isite
    keep = dots > np.take(cuts.cos_cut.ravel(), pair)
    flat = (pair * n_t + (idx - sat * n_t))[keep]
    flat.sort()
    return flat


def candidates(p: np.ndarray, v: np.ndarray, h_max: float, site: SiteArrays, screen: str = "sparse") -> np.ndarray:
    """Flat indices into (satellite, site, time) of samples where a pass could be near.

    Parameters
    ----------
    p, v
        ITRS positions (km) and velocities (km/s) of a chunk of satellites, (n, T, 3).
    h_max
        Largest grid step (s).
    site
        The sites.
    screen
        ``"sparse"`` (cells and a k-d tree: cost grows with the pairs in view) or
        ``"dense"`` (all pairs); both give the same plan.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices ``(satellite * S + site) * T + sample``.
    """
    cuts = screen_cuts(p, v, h_max, site)
    if screen == "dense":
        return candidates_dense(cuts)
    if screen == "sparse":
        return candidates_sparse(cuts)
    raise ValueError(f"unknown screen {screen!r}; use one of {', '.join(SCREENS)}")
