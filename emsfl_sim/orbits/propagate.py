"""Grid states of a chunk of satellites: SGP4 on every n-th sample, a degree-7 Lagrange fill in between.

SGP4 (``SatrecArray``) is the costliest step of a large contact plan, so it can run
on a coarse grid only: every ``every``-th sample of the uniform search grid (plus
four coarse samples before the start and after the end, and the span's end when it
is off the grid).  The grid's positions come from the degree-7 Lagrange polynomial
through the eight nearest coarse ITRS positions (closed-form weights, two small matrix
products per chunk) and its velocities from that polynomial's derivative, so they are
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


@lru_cache(maxsize=16)
def _fill_matrices(every: int, coarse_step: float) -> tuple[np.ndarray, np.ndarray]:
    """(24, 3 every) matrices taking 8 coarse ITRS positions (x, y, z each) to the fill's positions and velocities."""
    wp, wv = lagrange7_weights(every)
    eye = np.eye(3)
    return np.kron(wp.T, eye), np.kron(wv.T / coarse_step, eye)


def _fill(pc: np.ndarray, every: int, coarse_step: float, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities (n, n_cells * every, 3) of the fill from the coarse positions ``pc`` (n, C, 3).

    Interval ``c`` of the fine grid uses the coarse nodes ``c .. c + 7``, the 24 consecutive
    numbers ``pc[i].ravel()[3 c : 3 c + 24]``: a (n, n_cells, 24) window table and two
    small matrix products give every offset at once.  The products are stacked per
    satellite ((n_cells, 24) x (24, 3 every) each): small enough that OpenBLAS runs them on
    one thread (one large product is split over threads, several times slower on a
    loaded machine).
    """
    n = len(pc)
    item = pc.itemsize
    windows = np.ascontiguousarray(np.lib.stride_tricks.as_strided(
        pc, shape=(n, n_cells, 24), strides=(pc.strides[0], 3 * item, item), writeable=False
    ))  # a copy: BLAS cannot take overlapping rows
    mp, mv = _fill_matrices(every, coarse_step)
    return (windows @ mp).reshape(n, n_cells * every, 3), (windows @ mv).reshape(n, n_cells * every, 3)


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
    p, v = _fill(np.ascontiguousarray(p_all[:, : len(coarse_t)]), every, coarse_step, n_cells)
    if n_cells * every == n_uniform and not len(extra_t):
        return p, v, np.asarray(bad.any(axis=1))
    p_grid = np.concatenate((p[:, :n_uniform], p_all[:, len(coarse_t) :]), axis=1)
    v_grid = np.concatenate((v[:, :n_uniform], v_all[:, len(coarse_t) :]), axis=1)
    return p_grid, v_grid, np.asarray(bad.any(axis=1))


def grid_positions(chunk: Sequence[Satrec], first_cell: int, n_cells: int, every: int, step_s: float,
                   clock: Clock) -> np.ndarray:
    """ITRS positions (km), (n, n_cells * every, 3), of ``chunk`` at ``t_k = k * step_s``.

    ``k = first_cell * every .. (first_cell + n_cells) * every - 1``: the cells ``first_cell ..``
    of the coarse grid ``every * step_s``, where SGP4 runs (``SatrecArray``, plus four coarse
    samples on each side); the samples in between come from the degree-7 fill of
    :func:`grid_states`, positions only.  ``every = 1``: SGP4 on every sample.  A propagation
    error makes the samples whose stencil uses it NaN.
    """
    coarse_step = every * step_s
    if every <= 1:
        coarse_t = step_s * np.arange(first_cell, first_cell + n_cells, dtype=float)
    else:
        coarse_t = coarse_step * np.arange(first_cell - 3, first_cell + n_cells + 5, dtype=float)
    jd, fr = clock.sgp4_times(coarse_t)
    e, r, _ = SatrecArray(list(chunk)).sgp4(jd, fr)
    r[e != 0] = np.nan
    theta, _ = clock.theta(coarse_t)
    c, s = np.cos(theta), np.sin(theta)
    pc = np.stack((c * r[..., 0] + s * r[..., 1], -s * r[..., 0] + c * r[..., 1], r[..., 2]), axis=-1)
    if every <= 1:
        return pc
    n = len(pc)
    item = pc.itemsize
    windows = np.ascontiguousarray(np.lib.stride_tricks.as_strided(
        pc, shape=(n, n_cells, 24), strides=(pc.strides[0], 3 * item, item), writeable=False
    ))
    mp, _ = _fill_matrices(every, coarse_step)
    return (windows @ mp).reshape(n, n_cells * every, 3)
