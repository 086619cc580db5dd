"""Server selection: turn a contact plan into link windows per cluster.

``single``: one satellite is the FL server; its passes are the windows.

``constellation``: any satellite above the mask can serve.  Per cluster the
windows are the union of all passes, split at handovers.  Rules:

- ``"highest_elevation"`` (default): at every moment the visible satellite with
  the highest elevation serves.  Elevations are sampled on exact SGP4 every
  ``handover_step_s`` (plus every rise and set); a switch between two samples
  is placed by bisection on the exact elevation difference of the two
  satellites, to ``handover_tolerance_s``.
- ``"sticky"``: stay on the serving satellite until it sets, then switch to the
  visible satellite with the highest elevation at that instant (fewest handovers).
- ``"highest_capacity"`` with ``score=`` given, or a callable
  ``score(geometry) -> array`` as ``handover``: like ``highest_elevation`` but
  maximising ``score`` over a geometry DataFrame (columns ``cluster, satellite,
  norad_id`` plus :data:`~emsfl_sim.orbits.plan.GEOMETRY_COLUMNS`), e.g. a
  link-budget capacity for ``highest_capacity``.  Switch times are then placed
  to within one sampling step (midpoint).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from emsfl_sim.errors import InputError
from emsfl_sim.orbits.plan import ContactPlan

WINDOW_COLUMNS = ["cluster", "satellite", "norad_id", "start_s", "end_s"]
Score = Callable[[pd.DataFrame], np.ndarray]


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(dtype=t)
            for c, t in zip(WINDOW_COLUMNS, [str, str, "int64", float, float], strict=True)
        }
    )


def link_windows(
    plan: ContactPlan,
    mode: str = "single",
    satellite: str | int | None = None,
    handover: str | Score = "highest_elevation",
    handover_step_s: float = 10.0,
    handover_tolerance_s: float = 0.5,
    score: Score | None = None,
) -> pd.DataFrame:
    """Link windows ``cluster, satellite, norad_id, start_s, end_s`` sorted by start.

    Parameters
    ----------
    plan:
        The contact plan.
    mode:
        ``"single"`` (needs ``satellite``: name or NORAD id) or ``"constellation"``.
    handover:
        Constellation rule: ``"highest_elevation"``, ``"sticky"``, ``"highest_capacity"``
        (needs ``score``) or a score callable.
    handover_step_s, handover_tolerance_s:
        Sampling step for comparing satellites, and accuracy of switch times.
    score:
        Score function for ``"highest_capacity"``: receives a geometry DataFrame
        (``cluster, satellite, norad_id`` + geometry columns), returns one value per row.
    """
    passes = plan.passes
    if mode == "single":
        if satellite is None:
            raise InputError(
                "server mode 'single' needs a satellite (name or NORAD id)", field="server.satellite"
            )
        sel = _select_satellite(passes, plan, satellite)
        out = passes.loc[sel, ["cluster", "satellite", "norad_id", "rise_s", "set_s"]]
        out = out.rename(columns={"rise_s": "start_s", "set_s": "end_s"})
        return out.sort_values(["start_s", "cluster"]).reset_index(drop=True)
    if mode != "constellation":
        raise InputError(
            f"server mode must be 'single' or 'constellation' (got {mode!r})", field="server.mode"
        )
    if handover == "highest_capacity":
        if score is None:
            raise InputError(
                "handover 'highest_capacity' needs a capacity score function (score=...) from the link layer",
                field="server.handover",
            )
        handover = score
    if not (callable(handover) or handover in ("highest_elevation", "sticky")):
        raise InputError(
            f"handover must be 'highest_elevation', 'highest_capacity', 'sticky' or a score function (got {handover!r})",
            field="server.handover",
        )
    frames = []
    for cluster, group in passes.groupby("cluster", sort=False):
        if handover == "sticky":
            frames.append(_sticky(plan, cluster, group))
        else:
            frames.append(
                _best_by_score(plan, cluster, group, handover, handover_step_s, handover_tolerance_s)
            )
    frames = [f for f in frames if len(f)]
    if not frames:
        return _empty()
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["start_s", "cluster"]).reset_index(drop=True)


def _select_satellite(passes: pd.DataFrame, plan: ContactPlan, satellite: str | int) -> pd.Series:
    if isinstance(satellite, (int, np.integer)) or (isinstance(satellite, str) and satellite.isdigit()):
        sel = passes["norad_id"] == int(satellite)
    else:
        sel = passes["satellite"] == satellite
    if sel.any():
        return sel
    known = plan.records if plan.records is not None else None
    if known is not None and any(r.name == satellite or str(r.norad_id) == str(satellite) for r in known):
        return sel  # a valid satellite that simply never passes over any cluster
    names = list(dict.fromkeys(passes["satellite"]))[:3] or ([r.name for r in known[:3]] if known else [])
    raise InputError(
        f"server satellite {satellite!r} not found; available e.g. {', '.join(names)}",
        field="server.satellite",
    )


def _sat_index(plan: ContactPlan, group: pd.DataFrame) -> np.ndarray:
    lookup = {(r.name, r.norad_id): i for i, r in enumerate(plan.records or [])}
    return np.array(
        [lookup[(s, int(n))] for s, n in zip(group["satellite"], group["norad_id"], strict=True)], dtype=int
    )


def _segments(
    cluster: str, group: pd.DataFrame, choice: np.ndarray, t: np.ndarray, t_end: np.ndarray
) -> pd.DataFrame:
    """Merge consecutive samples served by the same pass (row of ``group``) into windows."""
    if len(choice) == 0:
        return _empty()
    new = np.ones(len(choice), dtype=bool)
    new[1:] = (choice[1:] != choice[:-1]) | (t[1:] > t_end[:-1] + 1e-9)
    starts = np.flatnonzero(new)
    ends = np.concatenate((starts[1:], [len(choice)])) - 1
    rows = group.iloc[choice[starts]]
    return pd.DataFrame(
        {
            "cluster": cluster,
            "satellite": rows["satellite"].to_numpy(),
            "norad_id": rows["norad_id"].to_numpy(),
            "start_s": t[starts],
            "end_s": t_end[ends],
        }
    )


def _sticky(plan: ContactPlan, cluster: str, group: pd.DataFrame) -> pd.DataFrame:
    """Stay on a satellite until it sets; then take the highest visible one (exact elevation)."""
    group = group.sort_values("rise_s").reset_index(drop=True)
    rise, set_ = group["rise_s"].to_numpy(), group["set_s"].to_numpy()
    sat_idx = _sat_index(plan, group) if plan.records is not None else None
    site = plan.site_index(cluster)
    rows: list[tuple[int, float, float]] = []
    t = float(rise.min()) if len(rise) else 0.0
    current = -1
    while True:
        visible = np.flatnonzero((rise <= t + 1e-9) & (set_ > t + 1e-9))
        if len(visible) == 0:
            later = np.flatnonzero(rise > t + 1e-9)
            if len(later) == 0:
                break
            t = float(rise[later].min())
            continue
        if len(visible) == 1 or sat_idx is None:
            pick = visible[np.argmax(set_[visible])] if sat_idx is None else visible[0]
        else:
            geo = plan.sample_many(np.full(len(visible), site), sat_idx[visible], np.full(len(visible), t))
            pick = visible[int(np.nanargmax(geo["elevation_deg"].to_numpy()))]
        if pick == current:  # numerical guard
            break
        rows.append((int(pick), t, float(set_[pick])))
        current = pick
        t = float(set_[pick])
    if not rows:
        return _empty()
    pick, start, end = map(np.asarray, zip(*rows, strict=True))
    sel = group.iloc[pick]
    return pd.DataFrame(
        {
            "cluster": cluster,
            "satellite": sel["satellite"].to_numpy(),
            "norad_id": sel["norad_id"].to_numpy(),
            "start_s": start,
            "end_s": end,
        }
    )


def _best_by_score(
    plan: ContactPlan, cluster: str, group: pd.DataFrame, handover: str | Score, step_s: float, tol_s: float
) -> pd.DataFrame:
    """Always serve the best visible satellite (highest elevation or highest score)."""
    group = group.sort_values("rise_s").reset_index(drop=True)
    rise, set_ = group["rise_s"].to_numpy(), group["set_s"].to_numpy()
    sat_idx = _sat_index(plan, group)
    site = plan.site_index(cluster)
    # Sample times: a regular grid inside each pass plus every rise and set.
    ts = [np.arange(r, s, step_s) for r, s in zip(rise, set_, strict=True)]
    t = np.unique(np.concatenate([*ts, rise, set_]))
    # Visible passes at each sample (half-open [rise, set) so a set hands over at once).
    lo = np.searchsorted(t, rise, side="left")
    hi = np.searchsorted(t, set_, side="left")
    counts = hi - lo
    row_of = np.repeat(np.arange(len(group)), counts)
    sample_of = (
        np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])
        if len(group)
        else np.empty(0, int)
    )
    geo = plan.sample_many(np.full(len(row_of), site), sat_idx[row_of], t[sample_of])
    if callable(handover):
        geo.insert(0, "cluster", cluster)
        geo.insert(1, "satellite", group["satellite"].to_numpy()[row_of])
        geo.insert(2, "norad_id", group["norad_id"].to_numpy()[row_of])
        score = np.asarray(handover(geo), dtype=float)
    else:
        score = geo["elevation_deg"].to_numpy()
    # Best row per sample: sort by (sample, score) and keep the last of each sample.
    order = np.lexsort((score, sample_of))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sample_of[order][1:] != sample_of[order][:-1]
    best_sample = sample_of[order][last]
    best_row = row_of[order][last]
    # Each sample's choice holds until the next sample or its pass's set.
    t_s = t[best_sample]
    nxt = np.concatenate((t[best_sample[1:]], [np.inf]))
    t_end = np.minimum(nxt, set_[best_row])
    if not callable(handover):
        t_s, t_end = _refine_switches(plan, site, sat_idx, best_row, t_s, t_end, set_, tol_s)
    return _segments(cluster, group, best_row, t_s, t_end)


def _refine_switches(plan, site, sat_idx, row, t_s, t_end, set_, tol_s):
    """Move each elevation handover from the sample grid to the crossing of the two elevations."""
    t_s, t_end = t_s.copy(), t_end.copy()
    sw = np.flatnonzero(
        (row[1:] != row[:-1]) & (np.abs(t_s[1:] - t_end[:-1]) < 1e-9) & (set_[row[:-1]] > t_s[1:] + 1e-9)
    )
    if len(sw) == 0:
        return t_s, t_end
    a, b = t_s[sw], t_s[sw + 1]
    old, new = sat_idx[row[sw]], sat_idx[row[sw + 1]]
    # The new satellite might not be visible at ``a``; its rise is a lower bound, handled by
    # clipping: bisection only on the elevation difference inside [a, b].
    for _ in range(int(np.ceil(np.log2(max(float(np.max(b - a, initial=1.0)) / tol_s, 1.0)))) + 1):
        m = 0.5 * (a + b)
        e_old = plan.sample_many(np.full(len(m), site), old, m)["elevation_deg"].to_numpy()
        e_new = plan.sample_many(np.full(len(m), site), new, m)["elevation_deg"].to_numpy()
        new_better = e_new > e_old
        b = np.where(new_better, m, b)
        a = np.where(new_better, a, m)
    switch = 0.5 * (a + b)
    # The new satellite cannot start before its own rise.
    t_end[sw] = switch
    t_s[sw + 1] = switch
    return t_s, t_end
