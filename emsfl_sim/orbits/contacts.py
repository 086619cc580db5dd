"""Contact plans: every pass of every satellite over every ground cluster.

Method (all steps vectorised with numpy; no Python loop per pass):

1. Propagate a chunk of satellites at once with sgp4's ``SatrecArray`` on a
   coarse time grid (``step_s``), positions *and* velocities in TEME.  By default
   SGP4 runs on every 4th sample only (``sgp4_every``); the samples in between
   come from a degree-7 Lagrange fill of the ITRS positions, with velocities
   from its derivative (:mod:`~emsfl_sim.orbits.propagate`; for Starlink 2 mm at
   2 x 60 s, 0.4 m at 4 x 60 s).
2. Rotate TEME -> ITRS with Skyfield's own GMST-1982 angle (``theta_GMST1982``,
   the rotation Skyfield's ``EarthSatellite`` uses; UT1 from the builtin
   timescale; no polar motion, as in Skyfield without IERS files).  The ITRS
   velocity includes the Earth-rotation term, so it is the true derivative of
   the Earth-fixed position.
3. Screen (satellite, site, sample) triples by geocentric angle
   (:mod:`~emsfl_sim.orbits.screen`): a satellite can only be above the mask when
   its angle from the site is below the coverage half-angle for that mask and
   altitude.  The cut-off is widened by the angle the satellite moves in half
   a step (plus 0.2 deg for geodetic vs geocentric vertical), so **a pass
   between two samples cannot be missed**: its nearest sample is always a
   candidate.  The default ``screen="sparse"`` bins satellite directions into
   cells and lists per cell (k-d tree of the sites) the sites within reach, so
   only pairs near each other are tested; ``"dense"`` tests all pairs with small
   float32 matrix products.  Both give the same plan.  A sample outside the
   screen lies beyond the widened cut, so its elevation is below the mask and
   only the screened samples need an elevation.
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
   error is ~0.3 m for LEO (~1e-4 s in time), so the exact checks are rare
   (under 1 % of the passes of a full Starlink day with ``sgp4_every=4``).

Passes in progress at the start or still open at the end are clipped to the
scenario span (or to ``window_s``, the part of it a streamed schedule searches) and
flagged ``open_at_start`` / ``open_at_end``.

Where the steps live: this module checks the inputs, builds the grid and the
pass table; :mod:`~emsfl_sim.orbits.workers` propagates chunks (steps 1, 2, with
:mod:`~emsfl_sim.orbits.propagate`) and runs them in parallel;
:mod:`~emsfl_sim.orbits.screen` is step 3; :mod:`~emsfl_sim.orbits.frames` holds the clock, frames and
exact SGP4 geometry; :mod:`~emsfl_sim.orbits.pass_search` steps 4-5 with the
interpolant of :mod:`~emsfl_sim.orbits.interpolant`; :mod:`~emsfl_sim.orbits.plan`
the resulting :class:`~emsfl_sim.orbits.plan.ContactPlan` and its files.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from sgp4.api import Satrec

from emsfl_sim.errors import InputError
from emsfl_sim.orbits.frames import Clock, Site, SiteArrays
from emsfl_sim.orbits.pass_search import ChunkResult
from emsfl_sim.orbits.plan import ContactPlan, PassCodes
from emsfl_sim.orbits.screen import SCREENS
from emsfl_sim.orbits.tle import TleRecord, to_satrecs
from emsfl_sim.orbits.workers import SearchState, run_chunks

#: Elevation masks the pass search accepts, degrees: ``0 <= mask < 90`` (90 leaves no contact).
#: The same rule as the scenario field ``link.elevation_mask_deg``, which is validated there.
MASK_RANGE_DEG = (0.0, 90.0)


def _check_sites(sites: Sequence[Site]) -> None:
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


def _masks_per_site(masks: float | Sequence[float], n_sites: int) -> np.ndarray:
    """One mask per site, each in :data:`MASK_RANGE_DEG` (90 excluded)."""
    mask_arr = np.atleast_1d(np.asarray(masks, dtype=float))
    if mask_arr.size == 1:
        mask_arr = np.full(n_sites, float(mask_arr[0]))
    if mask_arr.size != n_sites:
        raise InputError(f"elevation mask: give one value or one per cluster ({n_sites}), got {mask_arr.size}")
    low, high = MASK_RANGE_DEG
    if not np.all((mask_arr >= low) & (mask_arr < high)):
        raise InputError(
            f"elevation mask must be between {low:g} and {high:g} degrees, {high:g} excluded "
            f"(got {mask_arr.tolist()})"
        )
    return mask_arr


def _validate(
    records: Sequence[TleRecord],
    sites: Sequence[Site],
    duration_s: float,
    masks: float | Sequence[float],
    step_s: float,
    tolerance_s: float,
    screen: str = "sparse",
    sgp4_every: int = 1,
) -> np.ndarray:
    """Check the inputs of :func:`compute_contact_plan`; return one mask per site."""
    if screen not in SCREENS:
        raise InputError(f"unknown screen {screen!r}; use one of {', '.join(SCREENS)}")
    if isinstance(sgp4_every, bool) or not isinstance(sgp4_every, (int, np.integer)) or sgp4_every < 1:
        raise InputError(f"sgp4_every must be an integer >= 1 (got {sgp4_every!r})")
    if not records:
        raise InputError("no satellites: the TLE selection is empty; check the file and filters")
    _check_sites(sites)
    if not duration_s > 0:
        raise InputError(f"duration must be > 0 s (got {duration_s})")
    if not step_s > 0:
        raise InputError(f"step_s must be > 0 s (got {step_s})")
    if not tolerance_s > 0:
        raise InputError(f"tolerance_s must be > 0 s (got {tolerance_s})")
    return _masks_per_site(masks, len(sites))


def _time_grid(satrecs: Sequence[Satrec], duration_s: float, step_s: float) -> tuple[np.ndarray, float]:
    """The coarse grid (end included) and the step used.

    The step is kept within 2 % of the shortest orbital period (~7 deg of arc, 115 s for a
    95-minute LEO) so elevation stays unimodal within an interval and the interpolant accurate.
    """
    min_period_s = min(2.0 * math.pi / max(s.no_kozai, 1e-9) * 60.0 for s in satrecs)
    step_s = min(float(step_s), max(0.02 * min_period_s, 1.0))
    grid = np.arange(0.0, duration_s, step_s)
    if duration_s - grid[-1] > 1e-6:
        grid = np.append(grid, duration_s)
    return grid, step_s


def _default_chunk(n_t: int, n_sites: int, n_records: int, screen: str = "dense") -> int:
    """Satellites per batch: ~250 MB of working memory (dense screen), ~100 MB (sparse screen)."""
    if screen == "dense":
        # per satellite: float32 dot products + bools (S*T*7 bytes) and float64 states (T*48)
        return int(max(1, min(n_records, 250e6 // (n_t * (n_sites * 7 + 64)))))
    # float64 states and float32 unit vectors, and the pre-selected pairs (a few per cent of
    # S*T, ~40 bytes each); smaller batches stay in cache, which is faster than large ones
    return int(max(1, min(n_records, 100e6 // (n_t * (n_sites * 2 + 96)))))


def _sorted_pass_arrays(results: Sequence[ChunkResult], n_records: int) -> dict[str, np.ndarray]:
    """The chunks' passes as arrays, sorted by rise, site, satellite (the pass table's row order)."""
    cat = {
        f: np.concatenate([getattr(res, f) for res in results])
        for f in ("isat", "isite", "rise_s", "set_s", "culm_s", "culm_g", "open_start", "open_end")
    }
    order = np.lexsort((cat["isite"] * n_records + cat["isat"], cat["rise_s"]))  # rise, site, satellite
    return {f: x[order] for f, x in cat.items()}  # sorted before the frame is built (cheaper than iloc)


def _pass_table(
    cat: dict[str, np.ndarray],
    records: Sequence[TleRecord],
    sites: Sequence[Site],
    site: SiteArrays,
    clock: Clock,
) -> pd.DataFrame:
    """The sorted passes (:func:`_sorted_pass_arrays`) as one table, columns :data:`~emsfl_sim.orbits.plan.PASS_COLUMNS`."""
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
    passes["cluster"] = passes["cluster"].astype(str)
    passes["satellite"] = passes["satellite"].astype(str)
    return passes


def _diagnostics(
    state: SearchState, n_records: int, n_sites: int, outputs: Sequence[tuple[ChunkResult, int]]
) -> dict[str, object]:
    """``plan.diagnostics``: problem size, search settings, propagation errors and the search's counters."""
    return {
        "n_satellites": n_records,
        "n_sites": n_sites,
        "n_grid_samples": len(state.grid),
        "screen": state.screen,
        "sgp4_every": int(state.sgp4_every),
        "step_s_used": state.step_s,
        "satellites_with_propagation_errors": sum(n for _, n in outputs),
        **_search_counters([res for res, _ in outputs]),
    }


def _search_counters(results: Sequence[ChunkResult]) -> dict[str, int]:
    return {
        "crossings_resolved_on_exact_sgp4": int(sum(r.n_fallback for r in results)),
        "unpaired_events": int(sum(r.n_unpaired for r in results)),
        "exact_sgp4_checks": int(sum(r.n_exact_checks for r in results)),
    }


def _search_window(window_s: tuple[float, float] | None, duration_s: float) -> tuple[float, float]:
    """``(from_s, to_s)`` of the search: the whole span, or ``window_s`` inside it."""
    from_s, to_s = (0.0, duration_s) if window_s is None else (float(window_s[0]), float(window_s[1]))
    if not 0.0 <= from_s < to_s <= duration_s:
        raise InputError(f"window_s must lie in [0, {duration_s}] with from < to (got {window_s})")
    return from_s, to_s


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
    screen: str = "sparse",
    sgp4_every: int = 4,
    window_s: tuple[float, float] | None = None,
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
        Minimum elevation, one value or one per site, each in ``[0, 90)`` degrees.
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
    screen:
        ``"sparse"`` (default): only (satellite, site) pairs near each other are
        tested, so the cost grows with the pairs in view; ``"dense"``: all pairs
        (the method before the sparse screen).  The plans are equal.
    sgp4_every:
        SGP4 on every n-th grid sample only, the samples in between from a
        degree-7 Lagrange interpolant of the SGP4 positions around them, velocities
        from its derivative (:mod:`~emsfl_sim.orbits.propagate`): at most ~0.4 m for
        Starlink at 4 x 60 s, about what the cubic interpolant between 60 s samples
        adds; the interpolation error is measured and guarded as before;
        1: SGP4 on every sample (the method before).
    window_s:
        Search only ``(from_s, to_s)`` of the span (streamed schedules), on the whole span's
        clock; passes are cut at its ends.  ``from_s`` a multiple of ``step_s * sgp4_every``
        keeps the grid samples the whole span's.

    Returns
    -------
    ContactPlan
    """
    masks = _validate(records, sites, duration_s, elevation_mask_deg, step_s, tolerance_s, screen, sgp4_every)
    duration_s, clock = float(duration_s), Clock(start_utc, float(duration_s))
    from_s, to_s = _search_window(window_s, duration_s)
    site, satrecs = SiteArrays.build(sites, masks), to_satrecs(records)
    grid, step_s = _time_grid(satrecs, to_s - from_s, step_s)
    if satellite_chunk is None:
        satellite_chunk = _default_chunk(len(grid), len(sites), len(records), screen)
    search_clock = clock.shifted(from_s) if from_s else clock  # counts from the window's start
    state = SearchState(satrecs, grid, step_s, site, search_clock, tolerance_s, satellite_chunk, screen, sgp4_every)
    outputs = run_chunks(state, workers)
    results = [res.shifted(from_s) if from_s else res for res, _ in outputs]
    cat = _sorted_pass_arrays(results, len(records))
    plan = ContactPlan(passes=functools.partial(_pass_table, cat, list(records), list(sites), site, clock),
                       start_utc=clock.start_utc, duration_s=duration_s, sites=list(sites),
                       elevation_mask_deg=masks.tolist(), records=list(records), step_s=float(step_s),
                       tolerance_s=float(tolerance_s), diagnostics=_diagnostics(state, len(records), len(sites), outputs),
                       pass_codes=PassCodes(cat["isite"], cat["isat"], cat["rise_s"], cat["set_s"]))
    plan.attach_runtime(satrecs, site, clock)
    return plan
