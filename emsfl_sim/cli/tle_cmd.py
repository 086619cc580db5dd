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
    from emsfl_sim.orbits import walker_tle_text

    text = walker_tle_text(
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
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        n = args.planes * args.sats_per_plane
        print(f"wrote {n} satellites ({args.inclination_deg}:{n}/{args.planes}/{args.phasing}) to {args.output}")
    else:
        print(text, end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    from emsfl_sim.orbits.tle import load_tle_file_with_count

    for file in args.files:
        records, skipped = load_tle_file_with_count(file, skip_bad=args.skip_bad)
        epochs = sorted(r.epoch_utc for r in records)
        span = f"epochs {epochs[0]:%Y-%m-%d %H:%M} .. {epochs[-1]:%Y-%m-%d %H:%M} UTC" if epochs else "no epochs"
        print(f"{file}: {len(records)} satellites, {skipped} skipped, {span}")
    return 0
