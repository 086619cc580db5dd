"""``emsfl-sim tle``: generate Walker shells and check TLE files."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from emsfl_sim.errors import InputError


def _parse_utc(text: str, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"expected an ISO 8601 UTC time such as 2023-07-18T00:00:00Z (got {text!r})",
                         field=field) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def run_tle(args: argparse.Namespace) -> int:
    """Dispatch ``tle walker`` and ``tle check``."""
    if args.tle_command == "walker":
        return _walker(args)
    return _check(args)


def _walker(args: argparse.Namespace) -> int:
    from emsfl_sim.cli.common import check_writable_file

    if args.output:
        check_writable_file(args.output, "--output")
    try:
        text = _walker_text(args)
    except InputError as exc:  # name the option, not the Python argument
        option = f"--{exc.field.replace('_', '-')}" if exc.field and " " not in exc.field else exc.field
        message = exc.message.replace("< planes", "< --planes").replace("lower first_norad_id",
                                                                         "lower --first-norad-id")
        raise InputError(message, file=exc.file, field=option) from None
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        n = args.planes * args.sats_per_plane
        print(f"wrote {n} satellites ({args.inclination_deg}:{n}/{args.planes}/{args.phasing}) to {args.output}")
    else:
        print(text, end="")
    return 0


def _walker_text(args: argparse.Namespace) -> str:
    from emsfl_sim.orbits import walker_tle_text

    return walker_tle_text(
        altitude_km=args.altitude_km,
        inclination_deg=args.inclination_deg,
        total_satellites=args.planes * args.sats_per_plane,
        planes=args.planes,
        phasing=args.phasing,
        raan_spread_deg=args.raan_spread_deg,
        epoch_utc=_parse_utc(args.epoch, "--epoch"),
        name_prefix=args.name_prefix,
        first_norad_id=args.first_norad_id,
    )


def _check(args: argparse.Namespace) -> int:
    import sys

    from emsfl_sim.orbits.checks import (
        SHOWN_SATELLITES,
        dedupe_norad_ids,
        propagation_errors,
        skipped_warning,
    )
    from emsfl_sim.orbits.tle import load_tle_file_report

    for file in args.files:
        records, reasons = load_tle_file_report(file, skip_bad=args.skip_bad)
        skipped = len(reasons)
        epochs = sorted(r.epoch_utc for r in records)
        # orbits SGP4 cannot propagate (eccentricity out of range, decayed, no mean motion), over the
        # day after the latest epoch: they parse, but a run would have to exclude them
        errors = propagation_errors(records, epochs[-1], 86400.0) if records else {}
        listed = "; ".join(f"{records[i].name} (NORAD {records[i].norad_id}): {text}"
                           for i, text in list(errors.items())[:SHOWN_SATELLITES])
        more = f"; and {len(errors) - SHOWN_SATELLITES} more" if len(errors) > SHOWN_SATELLITES else ""
        orbit_warning = (f"{file}: {len(errors)} satellite{'s' if len(errors) > 1 else ''} SGP4 cannot propagate "
                         f"over the day after the latest epoch (a run excludes them): {listed}{more}") if errors else None
        for warning in (skipped_warning(file, reasons), dedupe_norad_ids(records)[1], orbit_warning):
            if warning is not None:
                print(f"warning: {warning}", file=sys.stderr)
        span = f"epochs {epochs[0]:%Y-%m-%d %H:%M} .. {epochs[-1]:%Y-%m-%d %H:%M} UTC" if epochs else "no epochs"
        bad = f", {len(errors)} not propagatable" if errors else ""
        print(f"{file}: {len(records)} satellites, {skipped} skipped{bad}, {span}")
    return 0
