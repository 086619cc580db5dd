"""Server selection: turn a contact plan into link windows per cluster.

``single``: one satellite is the FL server; its passes are the windows.

``constellation``: any satellite above the mask can serve.  Per cluster the
windows are the union of all passes, split at handovers.  Satellites are compared on
ONE common time grid ``t_k = k * handover_step_s`` (the scenario's
``time.geometry_step_s``), shared by every cluster, plus the exact rise and set
instants (issue 16: before, each pass had its own grid from its rise and switches
were bisected on the exact elevations; now handovers between satellites that stay
visible fall on the common grid, rise and set times stay exact).  Rules:

- ``"highest_elevation"`` (default): the visible satellite with the highest elevation
  serves from each grid sample to the next (or to its set); when it sets between two
  samples, the highest visible one at that instant takes over (exact SGP4).  Positions
  are computed once per time chunk for all clusters
  (:mod:`~emsfl_sim.orbits.handover_grid`).
- ``"sticky"``: stay on the serving satellite until it sets, then switch to the
  visible satellite with the highest elevation at that instant (fewest handovers).
- ``"highest_capacity"`` with ``score=`` given, or a callable
  ``score(geometry) -> array`` as ``handover``: maximise ``score`` over a geometry
  DataFrame (columns ``cluster, satellite, norad_id`` plus
  :data:`~emsfl_sim.orbits.plan.GEOMETRY_COLUMNS`), e.g. a link-budget capacity for
  ``highest_capacity``, sampled on exact SGP4 per cluster at the common grid samples
  inside the passes and at every rise and set; a sample's choice holds until the next
  sample (or its set).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from emsfl_sim.errors import InputError
from emsfl_sim.orbits.handover_grid import best_per_sample as _best_per_sample
from emsfl_sim.orbits.handover_grid import highest_elevation_windows
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
    handover_step_s:
        Step of the common grid on which satellites are compared (``time.geometry_step_s``).
    score:
        Score function for ``"highest_capacity"``: receives a geometry DataFrame
        (``cluster, satellite, norad_id`` + geometry columns), returns one value per row.
    """
    if mode == "single":
        passes = plan.passes
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
    if not (handover_step_s > 0):
        raise InputError(f"handover_step_s must be > 0 s (got {handover_step_s})")
    if handover == "highest_elevation":
        out = highest_elevation_windows(plan, handover_step_s) if plan.pass_count else _empty()
        return out.sort_values(["start_s", "cluster"]).reset_index(drop=True)
    frames = []
    for cluster, group in plan.passes.groupby("cluster", sort=False):
        if callable(handover):
            frames.append(_best_by_score(plan, cluster, group, handover, handover_step_s))
        else:
            frames.append(_sticky(plan, cluster, group))
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


def _best_by_score(plan: ContactPlan, cluster: str, group: pd.DataFrame, score_of: Score,
                   step_s: float) -> pd.DataFrame:
    """Always serve the visible satellite with the highest score (common grid samples plus every rise and set)."""
    group = group.sort_values("rise_s").reset_index(drop=True)
    rise, set_ = group["rise_s"].to_numpy(), group["set_s"].to_numpy()
    sat_idx = _sat_index(plan, group)
    site = plan.site_index(cluster)
    # Sample times: the common grid k * step_s inside each pass plus every rise and set.
    ts = [step_s * np.arange(np.ceil(r / step_s), np.ceil(s / step_s)) for r, s in zip(rise, set_, strict=True)]
    t = np.unique(np.concatenate([*ts, rise, set_]))
    # Visible passes at each sample (half-open [rise, set) so a set hands over at once).
    lo = np.searchsorted(t, rise, side="left")
    hi = np.searchsorted(t, set_, side="left")
    counts = hi - lo
    row_of = np.repeat(np.arange(len(group)), counts)
    sample_of = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    geo = plan.sample_many(np.full(len(row_of), site), sat_idx[row_of], t[sample_of])
    geo.insert(0, "cluster", cluster)
    geo.insert(1, "satellite", group["satellite"].to_numpy()[row_of])
    geo.insert(2, "norad_id", group["norad_id"].to_numpy()[row_of])
    score = np.asarray(score_of(geo), dtype=float)
    best_sample, best = _best_per_sample(score, sample_of, len(t))
    best_row = row_of[best]
    # Each sample's choice holds until the next sample or its pass's set.
    t_s = t[best_sample]
    nxt = np.concatenate((t[best_sample[1:]], [np.inf]))
    return _segments(cluster, group, best_row, t_s, np.minimum(nxt, set_[best_row]))
