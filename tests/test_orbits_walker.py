"""Walker-delta shells (emsfl_sim.orbits.walker) checked with sgp4 and Skyfield."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from sgp4.api import SatrecArray, jday
from skyfield.api import EarthSatellite, load

from emsfl_sim.errors import InputError
from emsfl_sim.orbits import parse_tle_text, to_satrecs, walker_delta, walker_tle_text
from tests.conftest import REPO

EPOCH = datetime(2023, 7, 18, tzinfo=timezone.utc)
# WGS72 constants as sgp4 uses them: sgp4.earth_gravity.wgs72.radiusearthkm (6378.135) and .mu (398600.8).
R_EARTH_WGS72_KM = 6378.135


def _teme_at_epoch(records, seconds):
    jd, fr = jday(2023, 7, 18, 0, 0, 0)
    e, r, v = SatrecArray(to_satrecs(records)).sgp4(
        np.full(len(seconds), jd), fr + np.asarray(seconds) / 86400.0
    )
    assert not e.any()
    return r, v


def test_text_has_valid_checksums_and_skyfield_reads_it():
    text = walker_tle_text(550, 53, 24, 6, 1, epoch_utc=EPOCH, name_prefix="T")
    recs, skipped = parse_tle_text(text)  # checksums verified here
    assert skipped == 0 and len(recs) == 24
    assert recs[0].name == "T-P01-S01" and recs[-1].name == "T-P06-S04"
    assert [r.norad_id for r in recs] == list(range(90000, 90024))
    assert all(r.epoch_utc == EPOCH for r in recs)
    ts = load.timescale(builtin=True)
    sat = EarthSatellite(recs[5].line1, recs[5].line2, recs[5].name, ts)
    # Skyfield's own propagation agrees with sgp4 on the same lines.
    t = ts.utc(2023, 7, 18, 1)
    r_sky = sat.at(t).position.km
    assert np.linalg.norm(r_sky) == pytest.approx(
        np.linalg.norm(_teme_at_epoch(recs[5:6], [3600.0])[0][0, 0]), abs=1e-6
    )


@pytest.mark.parametrize("alt_km, inc_deg", [(550.0, 53.0), (1200.0, 87.9), (780.0, 86.4)])
def test_altitude_and_inclination_recovered(alt_km, inc_deg):
    recs = walker_delta(alt_km, inc_deg, 1, 1, 0, epoch_utc=EPOCH)
    t = np.arange(0.0, 3 * 7200.0, 20.0)
    r, v = _teme_at_epoch(recs, t)
    radius = np.linalg.norm(r[0], axis=1)
    # "Altitude" is SGP4's mean (Brouwer) semi-major axis minus R_e: recovered to metres.
    assert to_satrecs(recs)[0].a * R_EARTH_WGS72_KM - R_EARTH_WGS72_KM == pytest.approx(alt_km, abs=0.01)
    # Independent: the propagated geocentric radius averages to it within the J2
    # short-period offset (a few km, largest for polar orbits).
    assert radius.mean() - R_EARTH_WGS72_KM == pytest.approx(alt_km, abs=6.0)
    # Kepler's law on the TLE mean motion (WGS72 mu) lands within ~10 km (Kozai vs Brouwer).
    n_rad_s = float(recs[0].line2[52:63]) * 2 * np.pi / 86400.0
    assert (398600.8 / n_rad_s**2) ** (1 / 3) - R_EARTH_WGS72_KM == pytest.approx(alt_km, abs=15.0)
    h = np.cross(r[0], v[0])
    inc = np.degrees(np.arccos(h[:, 2] / np.linalg.norm(h, axis=1)))
    assert inc.mean() == pytest.approx(inc_deg, abs=0.02)
    assert np.ptp(radius) < 20.0  # circular


def test_plane_and_phase_geometry():
    T, P, F = 24, 6, 2
    spread = 180.0
    recs = walker_delta(780, 86.4, T, P, F, raan_spread_deg=spread, epoch_utc=EPOCH)
    r, v = _teme_at_epoch(recs, [0.0])
    r, v = r[:, 0], v[:, 0]
    h = np.cross(r, v)
    h /= np.linalg.norm(h, axis=1)[:, None]
    raan = np.degrees(np.arctan2(h[:, 0], -h[:, 1])) % 360.0
    node = np.stack((np.cos(np.radians(raan)), np.sin(np.radians(raan)), np.zeros(T)), axis=1)
    ahead = np.cross(h, node)
    u = np.degrees(np.arctan2(np.einsum("ij,ij->i", r, ahead), np.einsum("ij,ij->i", r, node))) % 360.0
    S = T // P
    j = np.repeat(np.arange(P), S)
    i = np.tile(np.arange(S), P)
    expected_raan = j * spread / P
    expected_u = (i * 360.0 / S + j * F * 360.0 / T) % 360.0
    # SGP4 at epoch includes J2 short-period terms: allow a few hundredths of a degree.
    assert np.allclose((raan - expected_raan + 180) % 360 - 180, 0.0, atol=0.05)
    assert np.allclose((u - expected_u + 180) % 360 - 180, 0.0, atol=0.2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(total_satellites=25, planes=6),
            "planes \\(6\\) must divide the total number of satellites \\(25\\)",
        ),
        (dict(phasing=6), "0 <= F < planes \\(6\\)"),
        (dict(altitude_km=-1.0), "altitude must be a finite number between 100 and 40000 km"),
        (dict(inclination_deg=181.0), "between 0 and 180"),
        (dict(first_norad_id=99990), "must lie within 1..99999"),
    ],
)
def test_validation(kwargs, message):
    args = dict(altitude_km=550.0, inclination_deg=53.0, total_satellites=24, planes=6, phasing=1)
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        walker_delta(**args)


@pytest.mark.parametrize(
    "name, alt, inc, P, S, F, spread, prefix",
    [
        ("starlink-like-72x22-550km-53deg.tle", 550, 53.0, 72, 22, 1, 360.0, "STARLINK-LIKE"),
        ("oneweb-like-18x36-1200km-87.9deg.tle", 1200, 87.9, 18, 36, 1, 180.0, "ONEWEB-LIKE"),
        ("iridium-like-6x11-780km-86.4deg.tle", 780, 86.4, 6, 11, 2, 180.0, "IRIDIUM-LIKE"),
    ],
)
def test_shipped_shells_match_their_commands(name, alt, inc, P, S, F, spread, prefix):
    """The files in tle/ are exactly what the documented command produces."""
    path = REPO / "tle" / name
    assert path.read_text() == walker_tle_text(alt, inc, P * S, P, F, spread, EPOCH, prefix)
    assert f"-o tle/{name}" in (REPO / "tle" / "README.md").read_text()
