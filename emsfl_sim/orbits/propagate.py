"""Grid states of a chunk of satellites: SGP4 on every n-th sample, a degree-7 Lagrange fill in between.

SGP4 (``SatrecArray``) is the costliest step of a large contact plan, so it can run
on a coarse grid only: every ``every``-th sample of the uniform search grid (plus
four coarse samples before the start and after the end, and the span's end when it
is off the grid).  The grid's positions come from the degree-7 Lagrange polynomial
through the eight nearest coarse ITRS positions (closed-form weights, one small matrix
product per chunk) and its velocities from that polynomial's derivative, so they are
consistent with the positions: SGP4's own velocities differ from the derivative of
its positions by 1-3 cm/s, which would cost more accuracy than the fill.  The fill's
error grows with ``(n H)^8`` for mean motion ``n`` and coarse step ``H``: about 2 mm
in position for Starlink at ``H = 120 s``, 4 cm at 180 s, 0.4 m at 240 s, against the
~0.3 m of the cubic interpolant the pass search uses between 60 s samples.  The
search still measures the interpolation error against exact SGP4
(:func:`~emsfl_sim.orbits.workers.interpolation_error_km`), so a bad fit only costs
exact checks, never a wrong crossing.

A propagation error (decayed satellite) at a coarse sample makes the samples whose
stencil uses it NaN (up to four coarse steps around it), as SGP4 errors do on the grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.ndimage import correlate1d
from sgp4.api import Satrec, SatrecArray

from emsfl_sim.orbits.frames import Clock, teme_to_itrs

_NODES = np.arange(-3.0, 5.0)  # coarse stencil around the interval [0, 1]


@lru_cache(maxsize=16)
def lagrange7_weights(every: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the degree-7 Lagrange interpolant at offsets ``f / every`` (f = 0 .. every - 1).

    Returns
    -------
    tuple of numpy.ndarray
        ``(wp, wv)``, each (every, 8): a sample's position is ``wp @ [p(-3), ..., p(4)]``
        and ``H`` times its velocity ``wv @ (the same)``, with ``H`` the coarse step.
    """
    powers = np.arange(8)
    vander = _NODES[None, :] ** powers[:, None]  # (power, node)
    s = np.arange(every) / every
    rhs_p = s[None, :] ** powers[:, None]
    rhs_v = np.zeros_like(rhs_p)
    rhs_v[1:] = powers[1:, None] * s[None, :] ** (powers[1:, None] - 1)
    return np.linalg.solve(vander, rhs_p).T, np.linalg.solve(vander, rhs_v).T


def _propagate(
    chunk: Sequence[Satrec], t_s: np.ndarray, clock: Clock
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact SGP4 ITRS states (n, len(t_s), 3) and the error flags (n, len(t_s))."""
    jd, fr = clock.sgp4_times(t_s)
    e, r, v = SatrecArray(list(chunk)).sgp4(jd, fr)
    bad = e != 0
    r[bad] = np.nan
    theta, omega = clock.theta(t_s)
    p_itrs, v_itrs = teme_to_itrs(theta, omega, r, v)
    return p_itrs, v_itrs, bad


def grid_states(
    chunk: Sequence[Satrec], grid: np.ndarray, step_s: float, clock: Clock, every: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ITRS positions (km) and velocities (km/s) of ``chunk`` on ``grid``, (n, T, 3).

    Parameters
    ----------
    chunk
        The satellites.
    grid
        ``k * step_s`` for ``k = 0 .. U - 1``, possibly followed by the span's end.
    step_s
        The grid step.
    clock
        The scenario clock.
    every
        SGP4 on every ``every``-th sample; 1: SGP4 on every sample.

    Returns
    -------
    tuple of numpy.ndarray
        ``(p, v, bad)``; ``bad`` (n,): the satellite had an SGP4 error on a propagated sample.
    """
    if every <= 1:
        p, v, bad = _propagate(chunk, grid, clock)
        return p, v, np.asarray(bad.any(axis=1))
    n_t = len(grid)
    n_uniform = int(np.sum(np.abs(grid - step_s * np.arange(n_t)) <= 1e-9 * step_s))
    n_cells = -(-n_uniform // every)  # coarse intervals covering the uniform samples
    coarse_step = every * step_s
    coarse_t = coarse_step * np.arange(-3, n_cells + 5)
    extra_t = grid[n_uniform:]  # the span's end when it is off the grid
    p_all, v_all, bad = _propagate(chunk, np.concatenate((coarse_t, extra_t)), clock)
    pc = p_all[:, : len(coarse_t)]
    n = len(chunk)
    wp, wv = lagrange7_weights(every)
    p = np.empty((n, n_cells, every, 3))
    v = np.empty((n, n_cells, every, 3))
    for f in range(every):  # one pass of an 8-tap filter over the coarse samples per offset
        # correlate1d: out[m] = sum_j w[j] pc[m + j - 4], so interval c (nodes c .. c+7) is out[c + 4]
        p[:, :, f] = correlate1d(pc, wp[f], axis=1, mode="nearest")[:, 4 : 4 + n_cells]
        v[:, :, f] = correlate1d(pc, wv[f] / coarse_step, axis=1, mode="nearest")[:, 4 : 4 + n_cells]
    p, v = p.reshape(n, -1, 3)[:, :n_uniform], v.reshape(n, -1, 3)[:, :n_uniform]
    p_grid = np.concatenate((p, p_all[:, len(coarse_t) :]), axis=1)
    v_grid = np.concatenate((v, v_all[:, len(coarse_t) :]), axis=1)
    return p_grid, v_grid, np.asarray(bad.any(axis=1))
