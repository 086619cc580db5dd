"""ISO UTC strings of simulated times, as pandas writes them, one at a time or many at once.

The events table has a ``utc`` column: ``(start + pd.to_timedelta(t, unit="s")).isoformat()``
for each event time ``t``. Through pandas that costs more than the event it labels, so
:class:`UtcStrings` formats it by hand with pandas' rules:

- seconds to nanoseconds as ``Timedelta(t, unit="s")`` does: ``int(t) * 10**9 +
  int(round(t - int(t), 9) * 1e9)`` (Python's correctly rounded ``round``);
- the fraction as ``Timestamp.isoformat``: none, 6 digits when the nanoseconds are whole
  microseconds, else 9.

:meth:`UtcStrings.many` does the same for an array: ``round`` becomes ``np.rint`` of
``frac * 1e9``, which equals Python's rounding except within an ulp of a half nanosecond;
those values (and any outside ``0 <= t < 1e9`` s or a start without a time zone) go through
pandas. Both paths are checked against pandas on probe values when the formatter is made;
if they disagree (another pandas), pandas formats every string.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

_UNIX = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NS = 1_000_000_000
#: Times whose ``isoformat`` both fast paths must reproduce (fractions of 0, 6 and 9 digits, a
#: carry into the next second, days and weeks).
PROBES_S = (0.0, 1e-9, 0.1, 0.5, 1.25, 59.999999999, 59.9999999996, 3600.0000005, 86399.123456789, 123456.7,
            604800.000001)


def _pandas_ns(time_s: float) -> int:
    """The float seconds -> integer nanoseconds rule of pandas (``Timedelta(time_s, unit="s")``)."""
    whole = int(time_s)
    return whole * _NS + int(round(time_s - whole, 9) * 1e9)


def _fraction(sub_ns: int) -> str:
    """The fraction of ``Timestamp.isoformat`` for ``sub_ns`` nanoseconds past the second."""
    if not sub_ns:
        return ""
    return f".{sub_ns // 1000:06d}" if sub_ns % 1000 == 0 else f".{sub_ns:09d}"


class UtcStrings:
    """``(start_utc + pd.to_timedelta(t, unit="s")).isoformat()`` for simulated times ``t``.

    Parameters
    ----------
    start_utc
        The scenario start (anything ``pd.Timestamp`` accepts).
    """

    def __init__(self, start_utc: Any) -> None:
        self.start_utc = pd.Timestamp(start_utc)
        self._base_ns: int | None = None
        self._minute = -1
        self._prefix = ""
        if self.start_utc.tz is not None:
            self._base_ns = (self.start_utc.to_pydatetime() - _UNIX) // pd.Timedelta(1, "ns")
            probes = np.array(PROBES_S)
            expected = [self._pandas(t) for t in PROBES_S]
            if [self.one(t) for t in PROBES_S] != expected or self.many(probes) != expected:
                self._base_ns = None

    def _pandas(self, time_s: float) -> str:
        return (self.start_utc + pd.to_timedelta(time_s, unit="s")).isoformat()

    def _text(self, total_ns: int) -> str:
        """The string of ``total_ns`` since the Unix epoch; the ``YYYY-MM-DDTHH:MM:`` of the last minute is kept."""
        sec, sub = divmod(total_ns, _NS)
        minute, second = divmod(sec, 60)
        if minute != self._minute:  # events come in time order: nearly every string reuses it
            self._minute = minute
            self._prefix = datetime.fromtimestamp(minute * 60, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:")
        return f"{self._prefix}{second:02d}{_fraction(sub)}+00:00"

    def one(self, time_s: float) -> str:
        """The string of one simulated time."""
        if self._base_ns is not None and 0.0 <= time_s < 1e10:
            return self._text(self._base_ns + _pandas_ns(float(time_s)))
        return self._pandas(time_s)

    def many(self, times_s: np.ndarray) -> list[str]:
        """The strings of many simulated times (vectorised; equal to :meth:`one` of each)."""
        t = np.asarray(times_s, dtype=float)
        if self._base_ns is None:
            return [self._pandas(x) for x in t.tolist()]
        fast = (t >= 0.0) & (t < 1e9)  # 1e9 s keeps the nanoseconds since 1970 within int64
        inside = np.where(fast, t, 0.0)
        whole = inside.astype(np.int64)
        scaled = (inside - whole) * 1e9
        fast &= np.abs(scaled - np.floor(scaled) - 0.5) > 1e-6  # rint == Python's round away from a half
        sub = ((np.rint(scaled) / 1e9) * 1e9).astype(np.int64)  # int(round(frac, 9) * 1e9)
        total = self._base_ns + whole * _NS + sub
        seconds = np.datetime_as_string(total.astype("datetime64[ns]").astype("datetime64[s]"), unit="s")
        out = [f"{s}{_fraction(u)}+00:00" for s, u in zip(seconds.tolist(), (total % _NS).tolist(), strict=True)]
        for i in np.flatnonzero(~fast).tolist():
            out[i] = self.one(float(t[i]))
        return out
