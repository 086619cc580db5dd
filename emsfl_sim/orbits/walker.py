"""Walker-delta constellation shells as valid TLEs (via sgp4's own sgp4init/export_tle).

Pattern i:T/P/F: ``T`` satellites in ``P`` equally spaced planes (RAAN spread 360
deg for delta, 180 deg for star patterns), ``S = T/P`` per plane, phasing
factor ``F``.  Satellite ``i`` of plane ``j`` has

    RAAN_j = j * spread / P
    M_ij   = i * 360 / S + j * F * 360 / T
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from sgp4.api import WGS72, Satrec
from sgp4.earth_gravity import wgs72
from sgp4.exporter import export_tle

from emsfl_sim.errors import InputError
from emsfl_sim.orbits.tle import TleRecord, _as_utc, _epoch_from_line1

DEFAULT_EPOCH_UTC = datetime(2023, 7, 18, tzinfo=timezone.utc)
_SGP4_EPOCH0 = datetime(1949, 12, 31, tzinfo=timezone.utc)  # sgp4init's epoch origin


def _mean_motion_rad_min(altitude_km: float, inclination_deg: float) -> float:
    """Kozai mean motion (rad/min) whose SGP4 mean semi-major axis is R_e + altitude.

    Starts from Kepler's law with WGS72 mu for a circular orbit, then corrects
    for SGP4's J2 (Kozai -> Brouwer) conversion by a short fixed-point
    iteration on ``satrec.a``, so the recovered mean altitude matches to metres.
    """
    target_a_er = (wgs72.radiusearthkm + altitude_km) / wgs72.radiusearthkm
    n = math.sqrt(wgs72.mu / (wgs72.radiusearthkm + altitude_km) ** 3) * 60.0
    for _ in range(6):
        sat = Satrec()
        sat.sgp4init(WGS72, "i", 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.radians(inclination_deg), 0.0, n, 0.0)
        n *= (sat.a / target_a_er) ** 1.5  # a ~ n^(-2/3)
    return n


def _check_pattern(
    altitude_km: float,
    inclination_deg: float,
    total_satellites: int,
    planes: int,
    phasing: int,
    raan_spread_deg: float,
    first_norad_id: int,
) -> None:
    """Raise :class:`InputError` for an impossible Walker pattern (see :func:`walker_delta`)."""
    if not 100.0 < altitude_km < 40000.0:  # also refuses inf and nan; the scenario's WalkerShell has the same bounds
        raise InputError(f"altitude must be a finite number between 100 and 40000 km (got {altitude_km})",
                         field="altitude_km")
    if not 0.0 <= inclination_deg <= 180.0:
        raise InputError(
            f"inclination must be between 0 and 180 degrees (got {inclination_deg})", field="inclination_deg"
        )
    if total_satellites < 1 or planes < 1:
        raise InputError(
            f"need at least one plane and one satellite (got T={total_satellites}, P={planes})",
            field="planes",
        )
    if total_satellites % planes:
        raise InputError(
            f"planes ({planes}) must divide the total number of satellites ({total_satellites}); "
            f"e.g. use {total_satellites - total_satellites % planes} or {total_satellites + planes - total_satellites % planes} satellites",
            field="planes",
        )
    if not 0 <= phasing < planes:
        raise InputError(
            f"phasing factor F must satisfy 0 <= F < planes ({planes}) (got {phasing})", field="phasing"
        )
    if raan_spread_deg not in (180.0, 360.0):  # the conventions; other spreads leave a gap between planes
        raise InputError(
            f"RAAN spread must be 360 (Walker delta) or 180 (star) degrees (got {raan_spread_deg:g}); "
            "other spreads leave an uncovered gap of RAAN and are no Walker pattern",
            field="raan_spread_deg",
        )
    last_id = first_norad_id + total_satellites - 1
    if first_norad_id < 1 or last_id > 99999:
        raise InputError(
            f"catalogue numbers {first_norad_id}..{last_id} must lie within 1..99999; lower first_norad_id",
            field="first_norad_id",
        )


def _circular_tle(
    norad: int, epoch_days: float, inclination_deg: float, mean_anomaly_rad: float, n_rad_min: float, raan_rad: float
) -> tuple[str, str]:
    """TLE lines of a circular orbit from sgp4's own ``sgp4init`` and ``export_tle``."""
    sat = Satrec()
    sat.sgp4init(
        WGS72,
        "i",
        norad,
        epoch_days,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        math.radians(inclination_deg),
        mean_anomaly_rad,
        n_rad_min,
        raan_rad,
    )
    sat.classification = "U"
    line1, line2 = export_tle(sat)
    return line1, line2


def walker_delta(
    altitude_km: float,
    inclination_deg: float,
    total_satellites: int,
    planes: int,
    phasing: int,
    raan_spread_deg: float = 360.0,
    epoch_utc: datetime = DEFAULT_EPOCH_UTC,
    name_prefix: str = "WALKER",
    first_norad_id: int = 90000,
) -> list[TleRecord]:
    """Generate a Walker i:T/P/F shell of circular orbits.

    Parameters
    ----------
    altitude_km:
        Mean altitude above the WGS72 equatorial radius (SGP4 mean semi-major axis minus R_e).
    inclination_deg:
        Orbit inclination, 0-180.
    total_satellites, planes, phasing:
        T, P and F of the pattern; P must divide T and 0 <= F < P.
    raan_spread_deg:
        360 for a Walker delta, 180 for a star (polar) pattern.
    epoch_utc:
        Element epoch (naive = UTC).
    name_prefix:
        Names are ``PREFIX-Ppp-Sss`` (plane, slot, 1-based).
    first_norad_id:
        Catalogue numbers are consecutive from here (all must stay <= 99999).

    Returns
    -------
    list of TleRecord, plane by plane.
    """
    _check_pattern(altitude_km, inclination_deg, total_satellites, planes, phasing, raan_spread_deg, first_norad_id)
    epoch = _as_utc(epoch_utc)
    epoch_days = (epoch - _SGP4_EPOCH0).total_seconds() / 86400.0
    n_rad_min = _mean_motion_rad_min(altitude_km, inclination_deg)
    per_plane = total_satellites // planes
    records: list[TleRecord] = []
    for j in range(planes):
        raan = math.radians((j * raan_spread_deg / planes) % 360.0)
        for i in range(per_plane):
            mean_anomaly = math.radians(
                (i * 360.0 / per_plane + j * phasing * 360.0 / total_satellites) % 360.0
            )
            norad = first_norad_id + j * per_plane + i
            line1, line2 = _circular_tle(norad, epoch_days, inclination_deg, mean_anomaly, n_rad_min, raan)
            name = f"{name_prefix}-P{j + 1:02d}-S{i + 1:02d}"
            records.append(TleRecord(name, line1, line2, norad, _epoch_from_line1(line1), "<walker>", 0))
    return records


def walker_tle_text(
    altitude_km: float,
    inclination_deg: float,
    total_satellites: int,
    planes: int,
    phasing: int,
    raan_spread_deg: float = 360.0,
    epoch_utc: datetime = DEFAULT_EPOCH_UTC,
    name_prefix: str = "WALKER",
    first_norad_id: int = 90000,
) -> str:
    """3LE text of :func:`walker_delta` (LF line endings, trailing newline)."""
    records = walker_delta(
        altitude_km,
        inclination_deg,
        total_satellites,
        planes,
        phasing,
        raan_spread_deg,
        epoch_utc,
        name_prefix,
        first_norad_id,
    )
    return "".join(r.to_tle_text() for r in records)
