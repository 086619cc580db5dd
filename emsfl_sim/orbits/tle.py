"""Two-line element (TLE) input: parsing, validation, filtering and conversion.

Accepted layouts: 3LE (a name line before each element pair, optionally with
Space-Track's ``0 `` prefix) and 2LE (element pairs only), LF or CRLF line
endings, blank lines, ``#`` comment lines, and extra whitespace-separated
columns after column 69 (as in sgp4's ``SGP4-VER.TLE``).  Every problem is an
:class:`~emsfl_sim.errors.InputError` naming the file and line and the fix.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sgp4.api import Satrec
from sgp4.io import compute_checksum

from emsfl_sim.errors import InputError, not_a_file

TLE_LINE_LENGTH = 69

# Fixed-column numeric fields checked before handing lines to sgp4 (whose C++
# parser silently reads garbage as zeros).  (start, end, label), 0-based.
_LINE1_FIELDS = ((18, 32, "epoch"), (33, 43, "first derivative of mean motion"))
_LINE2_FIELDS = (
    (8, 16, "inclination"),
    (17, 25, "right ascension of the ascending node"),
    (26, 33, "eccentricity"),
    (34, 42, "argument of perigee"),
    (43, 51, "mean anomaly"),
    (52, 63, "mean motion"),
)


@dataclass(frozen=True)
class TleRecord:
    """One validated element set.

    Attributes
    ----------
    name:
        Name line (stripped), or ``"NORAD <id>"`` for 2LE input.
    line1, line2:
        The two element lines, exactly 69 characters each.
    norad_id:
        Catalogue number (alpha-5 numbers decoded to integers).
    epoch_utc:
        Element epoch, timezone-aware UTC.
    source:
        File the record came from (``"<string>"`` for text).
    line_number:
        1-based line number of ``line1`` in ``source``.
    """

    name: str
    line1: str
    line2: str
    norad_id: int
    epoch_utc: datetime
    source: str = "<string>"
    line_number: int = 0

    def to_tle_text(self) -> str:
        """The record as 3LE text (name, line 1, line 2, each ending in LF)."""
        return f"{self.name}\n{self.line1}\n{self.line2}\n"


def _epoch_from_line1(line1: str) -> datetime:
    """Epoch of a TLE: two-digit year (57-99 -> 19xx) plus fractional day of year."""
    year = int(line1[18:20])
    year += 1900 if year >= 57 else 2000
    day = float(line1[20:32])
    return datetime(year, 1, 1, tzinfo=timezone.utc) + timedelta(days=day - 1.0)


def _check_element_line(line: str, which: str, number: int, check_checksums: bool) -> str | None:
    """Return why ``line`` is not a valid TLE line ``which`` ("1"/"2"), or None."""
    if len(line) < TLE_LINE_LENGTH:
        return (
            f"TLE line {which} has {len(line)} characters, expected {TLE_LINE_LENGTH} "
            "(truncated line?); restore the full line"
        )
    if len(line) > TLE_LINE_LENGTH and not line[TLE_LINE_LENGTH].isspace():
        return (
            f"TLE line {which} has {len(line)} characters, expected {TLE_LINE_LENGTH}; "
            "remove the extra characters after column 69"
        )
    if line[1] != " ":
        return f"TLE line {which} must start with '{which} ' (got {line[:2]!r})"
    fields = _LINE1_FIELDS if which == "1" else _LINE2_FIELDS
    for start, end, label in fields:
        text = line[start:end].strip()
        if label == "eccentricity":
            text = "0." + text
        try:
            float(text)
        except ValueError:
            return (
                f"columns {start + 1}-{end} ({label}) hold {line[start:end]!r}, which is not a number; "
                "check the line is not shifted or corrupted"
            )
    last = line[TLE_LINE_LENGTH - 1]
    if not last.isdigit():
        return f"checksum (column 69) is {last!r}, expected a digit; restore the full line"
    if check_checksums:
        expected = compute_checksum(line)
        if int(last) != expected:
            return (
                f"checksum is {last}, expected {expected}; fix the last digit or skip bad entries "
                "(constellation.skip_bad_tle: true in a scenario, --skip-bad with emsfl-sim tle check)"
            )
    return None


def _is_blank_or_comment(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def _element_set(
    line1: str,
    line2: str,
    number: int,
    number2: int,
    name: str | None,
    source: str,
    check_checksums: bool,
) -> TleRecord | tuple[str, int]:
    """The record of lines 1 and 2 (on lines ``number``, ``number2``), or (why not, line number)."""
    problem = _check_element_line(line1, "1", number, check_checksums)
    if problem:
        return problem, number
    problem = _check_element_line(line2, "2", number2, check_checksums)
    if problem:
        return problem, number2
    line1, line2 = line1[:TLE_LINE_LENGTH], line2[:TLE_LINE_LENGTH]
    if line1[2:7] != line2[2:7]:
        return (
            f"catalogue number {line2[2:7].strip()!r} does not match {line1[2:7].strip()!r} "
            f"on line {number}; the two lines belong to different satellites",
            number2,
        )
    try:
        satrec = Satrec.twoline2rv(line1, line2)
        epoch = _epoch_from_line1(line1)
    except (ValueError, RuntimeError) as exc:  # pragma: no cover - guarded by field checks
        return f"sgp4 cannot read this element set ({exc})", number
    norad_id = int(satrec.satnum)
    return TleRecord(name if name is not None else f"NORAD {norad_id}", line1, line2, norad_id, epoch, source, number)


class _TleReader:
    """One pass over the lines of a TLE text: name lines, element pairs, and the bad entries."""

    def __init__(self, lines: list[str], source: str, skip_bad: bool, check_checksums: bool) -> None:
        self.lines = lines
        self.source = source
        self.skip_bad = skip_bad
        self.check_checksums = check_checksums
        self.records: list[TleRecord] = []
        self.reasons: list[str] = []  # "line N: why" of each skipped entry
        self.pending_name: tuple[str, int] | None = None

    def bad(self, message: str, number: int) -> None:
        """Raise for a bad entry on line ``number``, or count it when skipping bad entries."""
        if not self.skip_bad:
            raise InputError(message, file=self.source, field=f"line {number}")
        self.reasons.append(f"line {number}: {message}")

    def read(self) -> list[TleRecord]:
        """All valid records, in file order."""
        i, n = 0, len(self.lines)
        while i < n:
            raw = self.lines[i].rstrip()
            number = i + 1
            i += 1
            if _is_blank_or_comment(raw):
                continue
            if raw.startswith("1 "):
                i = self._element_lines(raw, number, i)
            elif raw.startswith("2 "):
                self.bad("TLE line 2 without a line 1 before it; restore the missing line 1", number)
                self.pending_name = None
            else:
                self._name_line(raw, number)
        if self.pending_name is not None:
            self.bad(
                f"name {self.pending_name[0]!r} is not followed by TLE lines; remove it or restore the element set",
                self.pending_name[1],
            )
        return self.records

    def _element_lines(self, line1: str, number: int, i: int) -> int:
        """Read the element set whose line 1 is on line ``number``; return the index to continue at."""
        j = i  # the next non-blank, non-comment line must be line 2
        while j < len(self.lines) and _is_blank_or_comment(self.lines[j]):
            j += 1
        if j >= len(self.lines) or not self.lines[j].startswith("2 "):
            where = number if j >= len(self.lines) else j + 1
            self.bad(
                f"expected TLE line 2 (starting '2 ') after line 1 on line {number}; the element set is incomplete",
                where,
            )
            self.pending_name = None
            return i
        name_info, self.pending_name = self.pending_name, None
        name = name_info[0] if name_info else None
        result = _element_set(line1, self.lines[j].rstrip(), number, j + 1, name, self.source, self.check_checksums)
        if isinstance(result, TleRecord):
            self.records.append(result)
        else:
            self.bad(*result)
        return j + 1

    def _name_line(self, raw: str, number: int) -> None:
        if self.pending_name is not None:
            prev_name, prev_number = self.pending_name
            self.bad(
                f"expected TLE line 1 (starting '1 ') after the name {prev_name!r} on line "
                f"{prev_number}, got {raw.strip()[:30]!r}; is this a TLE file?",
                number,
            )
        name = raw.strip()
        if name.startswith("0 "):  # Space-Track 3LE name prefix
            name = name[2:].strip()
        self.pending_name = (name, number)


def parse_tle_text(
    text: str,
    source: str = "<string>",
    skip_bad: bool = False,
    check_checksums: bool = True,
) -> tuple[list[TleRecord], int]:
    """Parse TLE text (3LE or 2LE, LF or CRLF).

    Parameters
    ----------
    text:
        File contents.
    source:
        Name used in error messages and stored in each record.
    skip_bad:
        Skip invalid entries (counted) instead of raising.
    check_checksums:
        Verify the modulo-10 checksum of each line.  sgp4's own verification
        file contains deliberately bad checksums; everything else should keep this on.

    Returns
    -------
    (records, n_skipped)
        The reasons of the skipped entries are in :func:`parse_tle_report`.

    Raises
    ------
    InputError
        ``SOURCE: line N: what is wrong; the fix`` for the first bad entry (unless
        ``skip_bad``), for empty text, or for text with no TLE in it.
    """
    records, reasons = parse_tle_report(text, source, skip_bad, check_checksums)
    return records, len(reasons)


def parse_tle_report(
    text: str,
    source: str = "<string>",
    skip_bad: bool = False,
    check_checksums: bool = True,
) -> tuple[list[TleRecord], list[str]]:
    """Like :func:`parse_tle_text`, with ``"line N: why"`` for each skipped entry instead of their count."""
    lines = text.splitlines()  # handles LF, CRLF and CR
    if not any(line.strip() for line in lines):
        raise InputError(
            "file is empty; expected TLE element sets (optional name line, then lines '1 ...' and '2 ...')",
            file=source,
        )
    reader = _TleReader(lines, source, skip_bad, check_checksums)
    records = reader.read()
    if not records:
        skipped = len(reader.reasons)
        raise InputError(
            "no valid TLE found; expected element sets of lines starting '1 ' and '2 ' "
            f"(69 characters each){f' ({skipped} bad entries skipped)' if skipped else ''}",
            file=source,
        )
    return records, reader.reasons


def load_tle_file(
    path: str | Path,
    skip_bad: bool = False,
    check_checksums: bool = True,
) -> list[TleRecord]:
    """Load and validate a TLE file; see :func:`parse_tle_text`.

    Bad entries raise :class:`InputError` unless ``skip_bad`` (then they are
    skipped; the count is in :func:`load_tle_file_with_count`).
    """
    return load_tle_file_with_count(path, skip_bad, check_checksums)[0]


def load_tle_file_with_count(
    path: str | Path,
    skip_bad: bool = False,
    check_checksums: bool = True,
) -> tuple[list[TleRecord], int]:
    """Like :func:`load_tle_file` but also return the number of skipped entries."""
    records, reasons = load_tle_file_report(path, skip_bad, check_checksums)
    return records, len(reasons)


def load_tle_file_report(
    path: str | Path,
    skip_bad: bool = False,
    check_checksums: bool = True,
) -> tuple[list[TleRecord], list[str]]:
    """Like :func:`load_tle_file` but also return ``"line N: why"`` for each skipped entry."""
    path = Path(path)
    if (problem := not_a_file(path, "TLE file", "check the path (relative paths are from the scenario file)")):
        raise InputError(problem, file=path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InputError("not a text file; expected a TLE file (3LE/2LE text)", file=path) from None
    return parse_tle_report(text, source=str(path), skip_bad=skip_bad, check_checksums=check_checksums)


def filter_records(
    records: Sequence[TleRecord],
    name_patterns: str | Iterable[str] | None = None,
    norad_ids: Iterable[int] | None = None,
) -> list[TleRecord]:
    """Keep records whose name matches any fnmatch pattern or whose id is listed.

    With neither filter given, all records are returned.  Name matching is
    case-insensitive (``"starlink-1*"`` matches ``STARLINK-1007``).
    """
    if name_patterns is None and norad_ids is None:
        return list(records)
    patterns = [name_patterns] if isinstance(name_patterns, str) else list(name_patterns or [])
    patterns = [p.upper() for p in patterns]
    ids = {int(x) for x in norad_ids} if norad_ids is not None else set()
    return [
        r
        for r in records
        if r.norad_id in ids or any(fnmatch.fnmatchcase(r.name.upper(), p) for p in patterns)
    ]


def _as_utc(when: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def epoch_age_days(records: Sequence[TleRecord], when_utc: datetime) -> list[float]:
    """Signed days from each record's epoch to ``when_utc``."""
    when = _as_utc(when_utc)
    return [(when - r.epoch_utc).total_seconds() / 86400.0 for r in records]


def epoch_warnings(
    records: Sequence[TleRecord],
    when_utc: datetime,
    max_age_days: float = 14.0,
) -> list[str]:
    """Warnings for epochs more than ``max_age_days`` from ``when_utc``.

    Returns at most one summary line (empty list when all epochs are close),
    naming the count and the worst record, since SGP4 errors grow by roughly
    1-3 km per day away from the epoch.
    """
    if not records:
        return []
    ages = epoch_age_days(records, when_utc)
    far = [(abs(a), a, r) for a, r in zip(ages, records, strict=True) if abs(a) > max_age_days]
    if not far:
        return []
    _, worst_age, worst = max(far, key=lambda x: x[0])
    when = _as_utc(when_utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        f"{len(far)} of {len(records)} TLEs have epochs more than {max_age_days:g} days from {when} "
        f"(worst: {worst.name} epoch {worst.epoch_utc:%Y-%m-%d}, {abs(worst_age):.1f} days "
        f"{'before' if worst_age > 0 else 'after'}); SGP4 accuracy decays away from the epoch, "
        "use TLEs closer to the scenario time"
    ]


def check_epoch_span(
    records: Sequence[TleRecord],
    when_utc: datetime,
    max_days: float = 365.0,
    source: str | Path | None = None,
) -> None:
    """Raise :class:`InputError` when *every* epoch is more than ``max_days`` from ``when_utc``.

    A scenario years away from all its TLEs is almost certainly a typo in the
    start time or the wrong TLE file; SGP4 output there is meaningless.
    """
    if not records:
        return
    ages = epoch_age_days(records, when_utc)
    if min(abs(a) for a in ages) <= max_days:
        return
    epochs = sorted(r.epoch_utc for r in records)
    years = min(abs(a) for a in ages) / 365.25
    when = _as_utc(when_utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise InputError(
        f"scenario time {when} is {years:.1f} years from every TLE epoch "
        f"({epochs[0]:%Y-%m-%d} to {epochs[-1]:%Y-%m-%d}); SGP4 is meaningless that far from the epoch: "
        "use TLEs near the scenario time or move the start time",
        file=source,
    )


def to_satrecs(records: Sequence[TleRecord]) -> list[Satrec]:
    """sgp4 ``Satrec`` objects (WGS72, as the TLEs were fitted) for the records."""
    return [Satrec.twoline2rv(r.line1, r.line2) for r in records]


def to_earth_satellites(records: Sequence[TleRecord], ts=None) -> list:
    """Skyfield ``EarthSatellite`` objects; ``ts`` defaults to the builtin timescale (no network)."""
    from skyfield.api import EarthSatellite, load

    if ts is None:
        ts = load.timescale(builtin=True)
    return [EarthSatellite(r.line1, r.line2, r.name, ts) for r in records]
