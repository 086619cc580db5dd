"""Chunked propagation and the process pool of the pass search.

Satellites are propagated a chunk at a time with sgp4's ``SatrecArray`` on the
coarse grid (positions *and* velocities in TEME, rotated to ITRS; optionally on every
n-th sample only, :mod:`~emsfl_sim.orbits.propagate`), measured for
the Hermite interpolation error and searched (:func:`~emsfl_sim.orbits.pass_search.search_chunk`).
Several workers share the read-only :class:`SearchState` by ``fork`` (POSIX only),
so nothing large is pickled; results do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from sgp4.api import Satrec, SatrecArray

from emsfl_sim.orbits.frames import Clock, SiteArrays, teme_to_itrs
from emsfl_sim.orbits.pass_search import ChunkResult, search_chunk
from emsfl_sim.orbits.propagate import grid_states


@dataclass(frozen=True)
class SearchState:
    """Everything a worker needs: all satellites, the grid, the sites and the search's settings.

    ``sgp4_every``: SGP4 on every n-th grid sample (:func:`~emsfl_sim.orbits.propagate.grid_states`);
    ``screen``: ``"sparse"`` or ``"dense"`` (:func:`~emsfl_sim.orbits.screen.candidates`).
    """

    satrecs: list[Satrec]
    grid: np.ndarray
    step_s: float
    site: SiteArrays
    clock: Clock
    tol: float
    chunk: int
    screen: str = "sparse"
    sgp4_every: int = 1


def interpolation_error_km(
    chunk: Sequence[Satrec], p: np.ndarray, v: np.ndarray, grid: np.ndarray, clock: Clock, n_probe: int = 12
) -> np.ndarray:
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
    exact, _ = teme_to_itrs(theta, omega, r, vv)
    interp = 0.5 * (p[:, k] + p[:, k + 1]) + h * (v[:, k] - v[:, k + 1]) / 8.0
    err = np.linalg.norm(exact - interp, axis=-1)
    err = np.where(np.isfinite(err), err, 1.0)  # propagation errors: force exact checks
    return 4.0 * err.max(axis=1) + 1e-6


def run_chunk(state: SearchState, a: int) -> tuple[ChunkResult, int]:
    """Propagate satellites ``a .. a + chunk`` on the grid and search their passes.

    Returns
    -------
    tuple of (ChunkResult, int)
        The passes and the number of satellites with SGP4 propagation errors.
    """
    chunk = state.satrecs[a : a + state.chunk]
    p_itrs, v_itrs, bad = grid_states(chunk, state.grid, state.step_s, state.clock, state.sgp4_every)
    err_km = interpolation_error_km(chunk, p_itrs, v_itrs, state.grid, state.clock)
    res = search_chunk(
        a, state.satrecs, p_itrs, v_itrs, state.grid, state.site, state.clock, state.tol, err_km, state.screen
    )
    return res, int(bad.sum())


_FORK_STATE: SearchState | None = None


def _run_chunk_forked(a: int) -> tuple[ChunkResult, int]:
    assert _FORK_STATE is not None, "set by run_chunks before the pool forks"
    return run_chunk(_FORK_STATE, a)


def run_chunks(state: SearchState, workers: int) -> list[tuple[ChunkResult, int]]:
    """:func:`run_chunk` for every chunk of ``state.satrecs``, in order, on up to ``workers`` processes."""
    starts = list(range(0, len(state.satrecs), state.chunk))
    n_workers = max(1, min(int(workers or 1), len(starts)))
    if n_workers == 1:
        return [run_chunk(state, a) for a in starts]
    # Fork so workers inherit the state without pickling it; results are small arrays.
    global _FORK_STATE
    _FORK_STATE = state
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
            return list(pool.map(_run_chunk_forked, starts))
    finally:
        _FORK_STATE = None
