"""The pass search of one chunk of satellites: screening, crossings, hidden passes, culminations.

Steps 3-5 of the method in :mod:`emsfl_sim.orbits.contacts`, for satellites whose
ITRS states are known on the coarse grid:

- :func:`~emsfl_sim.orbits.screen.candidates` screens (satellite, site, sample) triples
  by geocentric angle (all pairs, or only the pairs near each other).
- On the candidate samples the exact elevation gives sign changes of
  ``sin(el) - sin(mask)``; the sample just outside a run of candidates is below the
  mask (the screen's margin), so a run starting or ending above it gives a crossing
  in the interval before or after it without evaluating that sample.  Every discrete
  local maximum of a run is refined inside the interval its slope points to, which
  finds *hidden passes* (above the mask only between two samples) and the culminations.
- Crossings are bisected on the closed-form Hermite interpolant
  (:class:`~emsfl_sim.orbits.interpolant.IntervalPoly`); those the interpolation
  error could move by more than ``tol/8`` are corrected on exact SGP4 (Newton), or
  re-solved by bisection on exact SGP4 when the correction exceeds ``tol/2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from sgp4.api import Satrec

from emsfl_sim.orbits.frames import Clock, SiteArrays, exact_g
from emsfl_sim.orbits.interpolant import IntervalPoly, bisect, n_halvings, peak
from emsfl_sim.orbits.screen import candidates

#: (satellite, site, sample) triples per block of :func:`search_chunk`: blocks of ~64 satellites
#: for 100 sites and a day at 60 s, whose working arrays stay in cache (about 10 % faster than
#: the ~230 satellites a chunk holds; results do not depend on it).
_BLOCK_SAMPLES = 10_000_000


@dataclass
class ChunkResult:
    """Passes found in one chunk (arrays of equal length) and the search's counters."""

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

    @classmethod
    def empty(cls) -> ChunkResult:
        """No passes."""
        ints, floats, flags = np.empty(0, dtype=int), np.empty(0), np.empty(0, dtype=bool)
        return cls(ints, ints, floats, floats, floats, floats, flags, flags)

    def shifted(self, offset_s: float) -> ChunkResult:
        """The same passes with ``offset_s`` added to their times."""
        return replace(self, rise_s=self.rise_s + offset_s, set_s=self.set_s + offset_s, culm_s=self.culm_s + offset_s)

    @classmethod
    def concatenate(cls, parts: Sequence[ChunkResult]) -> ChunkResult:
        """The passes of several results, in order, and their summed counters."""
        if len(parts) == 1:
            return parts[0]
        arrays = ("isat", "isite", "rise_s", "set_s", "culm_s", "culm_g", "open_start", "open_end")
        counters = ("n_fallback", "n_unpaired", "n_exact_checks")
        out = cls.empty()
        for f in arrays:
            setattr(out, f, np.concatenate([getattr(r, f) for r in parts]))
        for f in counters:
            setattr(out, f, int(sum(getattr(r, f) for r in parts)))
        return out


# ----------------------------------------------------------------------------- working state


@dataclass(frozen=True)
class _Chunk:
    """What the steps of one chunk's search share (``p``, ``v``: ITRS states on ``grid``)."""

    sat_offset: int
    satrecs_all: Sequence[Satrec]
    p: np.ndarray
    v: np.ndarray
    grid: np.ndarray
    site: SiteArrays
    clock: Clock
    tol: float
    interp_err_km: np.ndarray
    n_t: int
    n_site: int
    duration: float
    h_max: float

    def exact_g(self, isat_local: np.ndarray, isite: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        """``sin(el) - sin(mask)`` on exact SGP4 for local satellite indices."""
        return exact_g(self.satrecs_all, isat_local + self.sat_offset, isite, t_s, self.clock, self.site)


@dataclass(frozen=True)
class _Samples:
    """Candidate samples, sorted by (satellite, site, time), in runs of consecutive grid samples.

    The sample just before and after a run is no candidate, so it is below the mask (the
    screen's margin covers the mask, the orbit's height and the motion in half a step): it
    needs no geometry.
    """

    pair: np.ndarray  # local_sat * S + site
    ik: np.ndarray  # grid index
    isat: np.ndarray
    isite: np.ndarray
    g: np.ndarray  # sin(el) - sin(mask)
    run_start: np.ndarray
    run_end: np.ndarray
    up: np.ndarray


@dataclass
class _Brackets:
    """Intervals known to hold one crossing: rising (rise) or falling (set)."""

    poly: list[IntervalPoly] = field(default_factory=list)
    a: list[np.ndarray] = field(default_factory=list)
    b: list[np.ndarray] = field(default_factory=list)
    rise: list[np.ndarray] = field(default_factory=list)
    pair: list[np.ndarray] = field(default_factory=list)

    def add(self, poly: IntervalPoly, a: np.ndarray, b: np.ndarray, rise: np.ndarray, pair: np.ndarray) -> None:
        self.poly.append(poly)
        self.a.append(a)
        self.b.append(b)
        self.rise.append(rise)
        self.pair.append(pair)


@dataclass(frozen=True)
class _Peaks:
    """Refined local maxima of elevation, one per (pair, interval)."""

    pair: np.ndarray
    t: np.ndarray
    g: np.ndarray
    s: np.ndarray
    poly: IntervalPoly
    closed: np.ndarray  # below the mask at both ends of the interval
    n_exact: int


@dataclass(frozen=True)
class _Crossings:
    """Crossing times with their brackets and the interpolant's slope and range there."""

    t: np.ndarray
    t_a: np.ndarray
    t_b: np.ndarray
    dgdt: np.ndarray
    range_km: np.ndarray
    rise: np.ndarray
    pair: np.ndarray


@dataclass(frozen=True)
class _Passes:
    """Rise/set pairs per (satellite, site) pair; ``open_*``: the edge is a span edge."""

    rise_s: np.ndarray
    set_s: np.ndarray
    pair: np.ndarray
    open_rise: np.ndarray
    open_set: np.ndarray
    n_unpaired: int


# ----------------------------------------------------------------------------- steps


def _elevation_samples(ctx: _Chunk, flat: np.ndarray) -> _Samples:
    """Exact elevation (on the grid states) at the candidate samples, and their runs."""
    pair, ik = np.divmod(flat, ctx.n_t)
    isat, isite = np.divmod(pair, ctx.n_site)
    # np.take gathers rows several times faster than fancy indexing
    d = np.take(ctx.p.reshape(-1, 3), isat * ctx.n_t + ik, axis=0) - np.take(ctx.site.pos_km, isite, axis=0)
    du = np.einsum("ij,ij->i", d, np.take(ctx.site.up, isite, axis=0))
    g = np.nan_to_num(du / np.sqrt(np.einsum("ij,ij->i", d, d)) - ctx.site.sin_mask[isite], nan=-2.0)
    n_e = len(ik)
    run_start = np.ones(n_e, dtype=bool)
    run_start[1:] = (flat[1:] != flat[:-1] + 1) | (ik[1:] == 0)  # flat runs on across pairs at the grid's end
    run_end = np.ones(n_e, dtype=bool)
    run_end[:-1] = run_start[1:]
    return _Samples(pair, ik, isat, isite, g, run_start, run_end, g >= 0.0)


def _slope(ctx: _Chunk, isat: np.ndarray, isite: np.ndarray, ik: np.ndarray) -> np.ndarray:
    """Sign of d(sin el)/dt at grid samples (its numerator): which neighbouring interval holds a maximum."""
    flat_e = isat * ctx.n_t + ik
    d = np.take(ctx.p.reshape(-1, 3), flat_e, axis=0) - np.take(ctx.site.pos_km, isite, axis=0)
    dv = np.take(ctx.v.reshape(-1, 3), flat_e, axis=0)
    up = np.take(ctx.site.up, isite, axis=0)
    return np.einsum("ij,ij->i", dv, up) * np.einsum("ij,ij->i", d, d) - np.einsum(
        "ij,ij->i", d, up
    ) * np.einsum("ij,ij->i", d, dv)


def _sign_change_brackets(ctx: _Chunk, smp: _Samples, br: _Brackets) -> None:
    """Sign changes between consecutive samples of a run (interval ``ik[e]``) and at its edges.

    The samples just outside a run are below the mask, so a run that starts (ends) above
    it rises (sets) in the interval before (after) it, unless that edge is the span's.
    """
    inner = np.flatnonzero(~smp.run_end[:-1] & (smp.up[:-1] != smp.up[1:]))
    first = np.flatnonzero(smp.run_start & smp.up & (smp.ik > 0))
    last = np.flatnonzero(smp.run_end & smp.up & (smp.ik < ctx.n_t - 1))
    e = np.concatenate((inner, first, last))
    k = np.concatenate((smp.ik[inner], smp.ik[first] - 1, smp.ik[last]))
    rise = np.concatenate((smp.up[inner + 1], np.ones(len(first), bool), np.zeros(len(last), bool)))
    poly_sc = IntervalPoly(ctx.p, ctx.v, ctx.grid, ctx.site, smp.isat[e], smp.isite[e], k)
    br.add(poly_sc, np.zeros(len(e)), np.ones(len(e)), rise, smp.pair[e])


def _refine_maxima(ctx: _Chunk, smp: _Samples) -> _Peaks:
    """Discrete local maxima (run ends included), refined within the interval the slope points to.

    Maxima of closed intervals within the interpolation error of the mask are
    decided on exact SGP4 (grazing passes).
    """
    g, ik, pair = smp.g, smp.ik, smp.pair
    prev_g = np.concatenate(([-np.inf], g[:-1]))
    prev_g[smp.run_start] = -np.inf
    next_g = np.concatenate((g[1:], [-np.inf]))
    next_g[smp.run_end] = -np.inf
    pk = np.flatnonzero((g >= prev_g) & (g > next_g))
    slope = _slope(ctx, smp.isat[pk], smp.isite[pk], ik[pk])
    k_int = np.clip(np.where(slope > 0, ik[pk], ik[pk] - 1), 0, ctx.n_t - 2)
    poly_pk = IntervalPoly(ctx.p, ctx.v, ctx.grid, ctx.site, smp.isat[pk], smp.isite[pk], k_int)
    s_pk, g_pk = peak(poly_pk, n_halvings(ctx.h_max, ctx.tol))
    t_pk = poly_pk.time(s_pk)
    better = g[pk] > g_pk  # keep the sample if it is higher (numerical ties at interval ends)
    t_pk = np.where(better, ctx.grid[ik[pk]], t_pk)
    g_pk = np.where(better, g[pk], g_pk)
    closed = (poly_pk.g(np.zeros(len(pk))) < 0.0) & (poly_pk.g(np.ones(len(pk))) < 0.0)
    g_err = 4.0 * ctx.interp_err_km[smp.isat[pk]] / poly_pk.range_km(s_pk)
    near = np.flatnonzero(closed & (np.abs(g_pk) <= g_err))
    if len(near):
        g_pk[near] = ctx.exact_g(smp.isat[pk][near], smp.isite[pk][near], t_pk[near])
    return _Peaks(pair[pk], t_pk, g_pk, s_pk, poly_pk, closed, len(near))


def _hidden_pass_brackets(pk: _Peaks, br: _Brackets) -> None:
    """Hidden passes: below the mask at both ends of the interval, above it at the peak."""
    hid = np.flatnonzero(pk.closed & (pk.g >= 0.0))
    if not len(hid):
        return
    poly_h = pk.poly.take(hid)
    for a_, b_, rise_ in ((0.0, pk.s[hid], True), (pk.s[hid], 1.0, False)):
        br.add(
            poly_h,
            np.broadcast_to(a_, hid.shape).astype(float),
            np.broadcast_to(b_, hid.shape).astype(float),
            np.full(len(hid), rise_),
            pk.pair[hid],
        )


def _interpolated_crossings(ctx: _Chunk, br: _Brackets) -> _Crossings:
    """Bisection of every bracket on the interpolant, to ``tol/8``."""
    t_x_parts, ta_parts, tb_parts, slope_parts, rng_parts = [], [], [], [], []
    for poly, a_, b_, rise_ in zip(br.poly, br.a, br.b, br.rise, strict=True):
        s = bisect(poly.g_sign, a_, b_, rise_, n_halvings(ctx.h_max, ctx.tol / 8.0))
        t_x_parts.append(poly.time(s))
        ta_parts.append(poly.time(a_))
        tb_parts.append(poly.time(b_))
        slope_parts.append(poly.dg_dt(s))
        rng_parts.append(poly.range_km(s))
    return _Crossings(
        t=np.concatenate(t_x_parts),
        t_a=np.concatenate(ta_parts),
        t_b=np.concatenate(tb_parts),
        dgdt=np.concatenate(slope_parts),
        range_km=np.concatenate(rng_parts),
        rise=np.concatenate(br.rise),
        pair=np.concatenate(br.pair),
    )


def _correct_on_exact_sgp4(ctx: _Chunk, cr: _Crossings) -> tuple[int, int]:
    """Check crossings the interpolation error could move; return (exact checks, exact bisections).

    Time error from interpolation <= (error in g) / |slope|, with |dg| <= 2 |dpos| / range.
    Crossings whose bound exceeds tol/8 (grazing passes) get one exact SGP4 evaluation and a
    Newton correction; a correction above tol/2 sends the crossing to exact bisection.
    ``cr.t`` is updated in place.
    """
    x_sat, x_site = np.divmod(cr.pair, ctx.n_site)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_err = 2.0 * ctx.interp_err_km[x_sat] / cr.range_km / np.abs(cr.dgdt)
    check = np.flatnonzero(~(t_err <= ctx.tol / 8.0))
    good = np.ones(len(cr.t), dtype=bool)
    if len(check):
        g_exact = ctx.exact_g(x_sat[check], x_site[check], cr.t[check])
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = -g_exact / cr.dgdt[check]
        ok = np.isfinite(corr) & (np.abs(corr) <= 0.5 * ctx.tol)
        cr.t[check[ok]] = np.clip(cr.t[check[ok]] + corr[ok], cr.t_a[check[ok]], cr.t_b[check[ok]])
        good[check[~ok]] = False
    bad = np.flatnonzero(~good)
    if len(bad):
        b_sat, b_site = x_sat[bad], x_site[bad]
        cr.t[bad] = bisect(
            lambda t: ctx.exact_g(b_sat, b_site, t),
            cr.t_a[bad],
            cr.t_b[bad],
            cr.rise[bad],
            n_halvings(ctx.h_max, ctx.tol / 2.0),
        )
    return len(check), len(bad)


def _pair_events(ctx: _Chunk, smp: _Samples, cr: _Crossings) -> _Passes:
    """Crossings plus open edges (above the mask at the first / last grid sample) paired rise -> set."""
    os_ = np.flatnonzero((smp.ik == 0) & smp.up)
    oe_ = np.flatnonzero((smp.ik == ctx.n_t - 1) & smp.up)
    ev_pair = np.concatenate((cr.pair, smp.pair[os_], smp.pair[oe_]))
    ev_t = np.concatenate((cr.t, np.zeros(len(os_)), np.full(len(oe_), ctx.duration)))
    ev_rise = np.concatenate((cr.rise, np.ones(len(os_), bool), np.zeros(len(oe_), bool)))
    ev_open = np.concatenate((np.zeros(len(cr.t), bool), np.ones(len(os_) + len(oe_), bool)))
    # Sort by pair then time, a set before a rise at the same instant; pair rise -> set.
    # (pair, time) as one float key, as in _culminations: a 2-key lexsort is ~10x faster than 3 keys.
    span = ctx.duration + 10.0 * ctx.h_max
    order = np.lexsort((ev_rise, ev_pair * span + ev_t))
    ev_pair, ev_t, ev_rise, ev_open = ev_pair[order], ev_t[order], ev_rise[order], ev_open[order]
    is_pass = np.zeros(len(ev_t), dtype=bool)
    if len(ev_t) > 1:
        is_pass[:-1] = ev_rise[:-1] & ~ev_rise[1:] & (ev_pair[:-1] == ev_pair[1:])
    first = np.flatnonzero(is_pass)
    return _Passes(
        rise_s=ev_t[first],
        set_s=ev_t[first + 1],
        pair=ev_pair[first],
        open_rise=ev_open[first],
        open_set=ev_open[first + 1],
        n_unpaired=len(ev_t) - 2 * len(first),
    )


def _culminations(ctx: _Chunk, ps: _Passes, pk: _Peaks) -> tuple[np.ndarray, np.ndarray]:
    """Time and ``g`` of the highest refined maximum inside each pass."""
    span = ctx.duration + 10.0 * ctx.h_max
    rise_key = ps.pair * span + ps.rise_s
    set_key = ps.pair * span + ps.set_s
    cand_pk = np.flatnonzero(pk.g >= 0.0)
    pk_key = pk.pair[cand_pk] * span + pk.t[cand_pk]
    j = np.searchsorted(rise_key, pk_key + ctx.tol, side="right") - 1
    inside = (
        (j >= 0) & (pk_key <= np.take(set_key, np.maximum(j, 0), mode="clip") + ctx.tol)
        if len(set_key)
        else j < -1
    )
    j, sel = j[inside], cand_pk[inside]
    culm_g = np.full(len(ps.rise_s), -np.inf)
    culm_t = 0.5 * (ps.rise_s + ps.set_s)
    if len(j) and np.all(j[1:] > j[:-1]):  # one maximum per pass (the usual case): no sort
        culm_g[j] = pk.g[sel]
        culm_t[j] = pk.t[sel]
    elif len(j):
        o = np.lexsort((pk.g[sel], j))  # last entry per pass is its highest maximum
        j, sel = j[o], sel[o]
        last = np.ones(len(j), dtype=bool)
        last[:-1] = j[1:] != j[:-1]
        culm_g[j[last]] = pk.g[sel[last]]
        culm_t[j[last]] = pk.t[sel[last]]
    missing = np.flatnonzero(~np.isfinite(culm_g))
    if len(missing):  # defensive: sample the pass on exact SGP4 and take the best point
        _sample_culminations(ctx, ps, missing, culm_t, culm_g)
    return np.clip(culm_t, ps.rise_s, ps.set_s), culm_g


def _sample_culminations(
    ctx: _Chunk, ps: _Passes, missing: np.ndarray, culm_t: np.ndarray, culm_g: np.ndarray
) -> None:
    """Best of 33 exact SGP4 samples through each pass in ``missing`` (in place)."""
    ms, mi = np.divmod(ps.pair[missing], ctx.n_site)
    grid_s = np.linspace(0.0, 1.0, 33)
    tt = ps.rise_s[missing, None] + grid_s[None, :] * (ps.set_s - ps.rise_s)[missing, None]
    gg = ctx.exact_g(np.repeat(ms, 33), np.repeat(mi, 33), tt.ravel())
    best = gg.reshape(-1, 33).argmax(axis=1)
    culm_t[missing] = tt[np.arange(len(missing)), best]
    culm_g[missing] = gg.reshape(-1, 33)[np.arange(len(missing)), best]


# ----------------------------------------------------------------------------- entry point


def search_chunk(
    sat_offset: int,
    satrecs_all: Sequence[Satrec],
    p: np.ndarray,
    v: np.ndarray,
    grid: np.ndarray,
    site: SiteArrays,
    clock: Clock,
    tol: float,
    interp_err_km: np.ndarray,
    screen: str = "sparse",
) -> ChunkResult:
    """Passes of one chunk of satellites (``p``, ``v``: ITRS states on ``grid``).

    Parameters
    ----------
    sat_offset
        Global index of the chunk's first satellite in ``satrecs_all``.
    satrecs_all
        All satellites (exact SGP4 checks index them globally).
    p, v
        ITRS positions (km) and velocities (km/s) of the chunk on the grid, (n, T, 3).
    grid
        Sample times, seconds since the scenario start.
    site, clock
        The sites and the scenario clock.
    tol
        Rise/set tolerance (s).
    interp_err_km
        Bound on the Hermite interpolation error per satellite; it decides which
        crossings and near-mask maxima need checking on exact SGP4.
    screen
        ``"sparse"`` or ``"dense"`` (:func:`~emsfl_sim.orbits.screen.candidates`); same result.

    Returns
    -------
    ChunkResult
        The chunk's passes, satellites indexed globally.
    """
    h_max = float(np.max(np.diff(grid)))
    n_block = max(1, int(_BLOCK_SAMPLES // max(1, p.shape[1] * len(site.sin_mask))))
    parts = [
        _search_block(_Chunk(
            sat_offset + a, satrecs_all, p[a : a + n_block], v[a : a + n_block], grid, site, clock, tol,
            interp_err_km[a : a + n_block], n_t=p.shape[1], n_site=len(site.sin_mask), duration=float(grid[-1]),
            h_max=h_max,
        ), screen)
        for a in range(0, len(p), n_block)
    ]
    return ChunkResult.concatenate(parts)


def _search_block(ctx: _Chunk, screen: str) -> ChunkResult:
    """:func:`search_chunk` on a block of satellites (``ctx.p``, ``ctx.v``) small enough to stay in cache."""
    flat = candidates(ctx.p, ctx.v, ctx.h_max, ctx.site, screen)
    if len(flat) == 0:
        return ChunkResult.empty()
    smp = _elevation_samples(ctx, flat)
    del flat
    brackets = _Brackets()
    _sign_change_brackets(ctx, smp, brackets)
    peaks = _refine_maxima(ctx, smp)
    _hidden_pass_brackets(peaks, brackets)
    crossings = _interpolated_crossings(ctx, brackets)
    n_checks, n_fallback = _correct_on_exact_sgp4(ctx, crossings)
    passes = _pair_events(ctx, smp, crossings)
    culm_t, culm_g = _culminations(ctx, passes, peaks)
    out_sat, out_site = np.divmod(passes.pair, ctx.n_site)
    return ChunkResult(
        isat=out_sat + ctx.sat_offset,
        isite=out_site,
        rise_s=passes.rise_s,
        set_s=passes.set_s,
        culm_s=culm_t,
        culm_g=culm_g,
        open_start=passes.open_rise & (passes.rise_s <= 0.0),
        open_end=passes.open_set & (passes.set_s >= ctx.duration),
        n_fallback=n_fallback,
        n_unpaired=int(passes.n_unpaired),
        n_exact_checks=peaks.n_exact + n_checks,
    )
