"""The scenario's constellation as TLE records: files and Walker shells, filtered and checked.

The first step of an orbital schedule (``emsfl_sim.sim.schedule``) and of the ``contacts``,
``idle``, ``link`` and ``validate`` commands: every bad entry is reported once, through
``warn``, with the rule that excluded it (:mod:`emsfl_sim.orbits.checks`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from emsfl_sim.scenario import Scenario


def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def load_constellation(scenario: Scenario, warn: Callable[[str], None] = _warn_stderr) -> list[Any]:
    """TLE records of the scenario's constellation (files and Walker shells, filtered).

    Skipped bad entries, duplicate NORAD ids (the first is kept) and satellites SGP4
    cannot propagate over the run (excluded) are each reported through ``warn``; the
    rules are in :mod:`emsfl_sim.orbits.checks`.
    """
    from emsfl_sim.errors import InputError
    from emsfl_sim.orbits import filter_records, walker_delta
    from emsfl_sim.orbits.checks import skipped_warning
    from emsfl_sim.orbits.tle import load_tle_file_report

    const = scenario.constellation
    records: list[Any] = []
    for path in const.tle_files:
        loaded, reasons = load_tle_file_report(path, skip_bad=const.skip_bad_tle)
        records.extend(loaded)
        if (message := skipped_warning(str(path), reasons)) is not None:
            warn(message)
    first_ids = walker_first_norad_ids([shell.total_satellites for shell in const.walker])
    for index, shell in enumerate(const.walker):
        records.extend(
            walker_delta(
                altitude_km=shell.altitude_km,
                inclination_deg=shell.inclination_deg,
                total_satellites=shell.total_satellites,
                planes=shell.planes,
                phasing=shell.phasing,
                raan_spread_deg=shell.raan_spread_deg,
                epoch_utc=shell.epoch_utc or scenario.time.start_utc,
                name_prefix=shell.name_prefix,
                first_norad_id=first_ids[index],
            )
        )
    if const.satellite_names or const.norad_ids:
        records = filter_records(records, name_patterns=const.satellite_names or None, norad_ids=const.norad_ids or None)
    if const.max_satellites:
        records = records[: const.max_satellites]
    if not records:
        raise InputError("no satellites left after filtering; check satellite_names / norad_ids",
                         file=scenario.source_file, field="constellation")
    return _checked_records(scenario, records, warn)


def walker_first_norad_ids(totals: list[int]) -> list[int]:
    """Catalogue number of each Walker shell's first satellite: consecutive ranges from 90000.

    Shells that do not all fit below 99999 from 90000 end at 99999 instead (5-digit
    catalogue numbers); the schema refuses more than 99999 satellites in all.
    """
    start = 90000 if sum(totals) <= 10000 else 100000 - sum(totals)
    firsts = []
    for total in totals:
        firsts.append(start)
        start += total
    return firsts


def check_start_near_epochs(scenario: Scenario, records: list[Any]) -> None:
    """Refuse a start years away from every TLE epoch (a typo or the wrong file): one line on ``time.start_utc``."""
    from emsfl_sim.errors import InputError
    from emsfl_sim.orbits.tle import check_epoch_span

    try:
        check_epoch_span(records, scenario.time.start_utc, source=scenario.source_file)
    except InputError as exc:
        raise InputError(exc.message, scenario.source_file, "time.start_utc") from None


def check_tle_epochs(scenario: Scenario) -> None:
    """What ``validate`` checks of the TLE files without propagating: they parse, and the start is near them."""
    from emsfl_sim.orbits.tle import load_tle_file_report

    const = scenario.constellation
    if scenario.time.mode != "orbital" or not const.tle_files:
        return
    records = [r for f in const.tle_files for r in load_tle_file_report(f, skip_bad=const.skip_bad_tle)[0]]
    check_start_near_epochs(scenario, records)


def _checked_records(scenario: Scenario, records: list[Any], warn: Callable[[str], None]) -> list[Any]:
    """``records`` without duplicate NORAD ids and without satellites SGP4 cannot propagate over the run."""
    from emsfl_sim.orbits.checks import dedupe_norad_ids, exclude_unpropagatable

    check_start_near_epochs(scenario, records)
    records, message = dedupe_norad_ids(records)
    if message is not None:
        warn(message)
    duration = scenario.time.duration_s
    if duration is None:  # orbital cycles: bound the span by the slowest satellite's period
        periods = [86400.0 / float(r.line2[52:63]) for r in records if float(r.line2[52:63] or 0) > 0]
        duration = float(scenario.time.orbital_cycles or 1) * max(periods, default=86400.0)
    records, message = exclude_unpropagatable(records, scenario.time.start_utc, float(duration),
                                              scenario.source_file)
    if message is not None:
        warn(message)
    return records
