"""Checks of a loaded constellation: skipped TLE entries, duplicate NORAD ids, SGP4 errors.

The rules (each reported as a ``warning:`` line, never silently):

* **Skipped entries** (``constellation.skip_bad_tle: true``): one warning per file with
  the count and the first :data:`SHOWN_REASONS` reasons.
* **Duplicate NORAD ids** (the same satellite in two files, or twice in one): the first
  record in file order is kept and the others are dropped, so no satellite's passes are
  counted twice; the warning names the ids and where each copy came from.
* **SGP4 errors** (eccentricity out of range, mean motion <= 0 or too high, decayed
  orbits): every satellite is propagated over the simulated span (start, every
  :data:`PROPAGATION_CHECK_STEP_S` and the end); one that SGP4 cannot propagate at any
  of these times is excluded, listed with its name, NORAD id and SGP4's error text
  (:data:`sgp4.api.SGP4_ERRORS`). When no satellite remains, that is an InputError.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sgp4.api import SGP4_ERRORS, Satrec, SatrecArray

from emsfl_sim.errors import InputError
from emsfl_sim.orbits.frames import Clock
from emsfl_sim.orbits.tle import TleRecord

#: Reasons of skipped entries shown in a warning (the count covers all).
SHOWN_REASONS = 3
#: Satellites named in one warning about duplicates or SGP4 errors (the count covers all).
SHOWN_SATELLITES = 5
#: Spacing of the times at which every satellite is test-propagated.
PROPAGATION_CHECK_STEP_S = 1800.0


def skipped_warning(source: str, reasons: Sequence[str]) -> str | None:
    """The warning about the entries skipped in ``source`` (None when none were)."""
    if not reasons:
        return None
    shown = "; ".join(reasons[:SHOWN_REASONS])
    more = f"; and {len(reasons) - SHOWN_REASONS} more" if len(reasons) > SHOWN_REASONS else ""
    return f"{source}: skipped {len(reasons)} bad TLE entr{'y' if len(reasons) == 1 else 'ies'}: " \
           f"{shown}{more}"


def dedupe_norad_ids(records: Sequence[TleRecord]) -> tuple[list[TleRecord], str | None]:
    """Keep the first record of each NORAD id; the warning names the dropped copies (None if none)."""
    first: dict[int, TleRecord] = {}
    dropped: list[TleRecord] = []
    for record in records:
        if record.norad_id in first:
            dropped.append(record)
        else:
            first[record.norad_id] = record
    if not dropped:
        return list(first.values()), None

    def where(r: TleRecord) -> str:
        return f"{r.source}:{r.line_number}" if r.line_number else r.source

    listed = ", ".join(f"{r.norad_id} ({r.name!r} at {where(r)}, kept {where(first[r.norad_id])})"
                       for r in dropped[:SHOWN_SATELLITES])
    more = f" and {len(dropped) - SHOWN_SATELLITES} more" if len(dropped) > SHOWN_SATELLITES else ""
    return list(first.values()), (f"dropped {len(dropped)} duplicate NORAD id{'s' if len(dropped) > 1 else ''} "
                                  f"(the first record of each is kept): {listed}{more}")


def _mean_motion(record: TleRecord) -> float:
    try:
        return float(record.line2[52:63])
    except ValueError:
        return 0.0


def propagation_errors(records: Sequence[TleRecord], start_utc: datetime, duration_s: float) -> dict[int, str]:
    """Index -> SGP4's error text for each record that cannot be propagated over the span."""
    errors: dict[int, str] = {}
    usable: list[int] = []
    for index, record in enumerate(records):
        if not _mean_motion(record) > 0:
            errors[index] = "mean motion is 0 rev/day (no orbit)"
        else:
            usable.append(index)
    if not usable:
        return errors
    times = np.unique(np.append(np.arange(0.0, max(duration_s, 0.0), PROPAGATION_CHECK_STEP_S), duration_s))
    jd, fr = Clock(start_utc, max(duration_s, 1.0)).sgp4_times(times)
    sats = SatrecArray([Satrec.twoline2rv(records[i].line1, records[i].line2) for i in usable])
    codes, _, _ = sats.sgp4(jd, fr)
    for row, index in enumerate(usable):
        bad = codes[row][codes[row] != 0]
        if len(bad):
            errors[index] = SGP4_ERRORS.get(int(bad[0]), f"SGP4 error {int(bad[0])}")
    return errors


def exclude_unpropagatable(records: Sequence[TleRecord], start_utc: datetime, duration_s: float,
                           file: str | None = None) -> tuple[list[TleRecord], str | None]:
    """The records SGP4 can propagate over the span, and a warning listing the excluded ones.

    Raises
    ------
    InputError
        When no satellite can be propagated.
    """
    errors = propagation_errors(records, start_utc, duration_s)
    if not errors:
        return list(records), None
    listed = "; ".join(f"{records[i].name} (NORAD {records[i].norad_id}): {text}"
                       for i, text in list(errors.items())[:SHOWN_SATELLITES])
    more = f"; and {len(errors) - SHOWN_SATELLITES} more" if len(errors) > SHOWN_SATELLITES else ""
    if len(errors) == len(records):
        raise InputError(f"SGP4 cannot propagate any of the {len(records)} satellites over the simulated span: "
                         f"{listed}{more}; fix or replace the TLEs", file=file, field="constellation")
    kept = [r for i, r in enumerate(records) if i not in errors]
    return kept, (f"excluded {len(errors)} satellite{'s' if len(errors) > 1 else ''} SGP4 cannot propagate over "
                  f"the simulated span (treated as never visible): {listed}{more}")
