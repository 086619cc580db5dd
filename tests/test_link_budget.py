"""Link budget: geometry, path loss, noise, SNR, the reference parameter set, input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emsfl_sim.errors import InputError
from emsfl_sim.link import (
    REFERENCE_LINK_PARAMS,
    LinkParams,
    PassCapacity,
    atmospheric_loss_db,
    check_elevation,
    free_space_path_loss_db,
    link_budget_table,
    mean_snr_db,
    noise_power_dbm,
    pass_capacity,
    rician_k_db,
    slant_range_km,
)
from tests.fakes import rician_ergodic_quad

R_KM = 6371.0  # mean Earth radius of the spherical model (docs/link-model.md sec. 1, slant-range row)


def textbook_fspl_db(d_km: float, f_ghz: float) -> float:
    """FSPL = 92.45 + 20 log10(f/GHz) + 20 log10(d/km) (e.g. Pratt, Bostian & Allnutt,
    *Satellite Communications*, ch. 4; 92.45 = 20 log10(4 pi 1e12 / c))."""
    return 92.45 + 20 * math.log10(f_ghz) + 20 * math.log10(d_km)


def sma_slant_range_km(elev_deg: float, alt_km: float) -> float:
    """Slant range via the nadir angle and the law of sines (Wertz, SMAD, sec. 5.2),
    independent of the law-of-cosines form in the code."""
    e = math.radians(elev_deg)
    nadir = math.asin(R_KM * math.cos(e) / (R_KM + alt_km))
    central = math.pi / 2 - e - nadir
    return R_KM * math.sin(central) / math.sin(nadir) if nadir > 0 else alt_km


# ----------------------------------------------------------------- geometry
def test_fspl_textbook_value_at_2ghz_41418km():
    # 190.8 dB is the target quoted by issue 4 (the link-layer brief), which is not kept in the
    # repository and appears in neither docs/link-model.md nor the design note: no traceable
    # source. The traceable check is the second one, the textbook closed form (Pratt, Bostian &
    # Allnutt, ch. 4; see textbook_fspl_db), which gives 190.81 dB.
    fspl = float(free_space_path_loss_db(41_418.0, 2e9))
    assert fspl == pytest.approx(190.8, abs=0.05)
    assert fspl == pytest.approx(textbook_fspl_db(41_418.0, 2.0), abs=0.005)


def test_fspl_scales_20db_per_decade():
    d = np.array([100.0, 1000.0, 10_000.0])
    fspl = free_space_path_loss_db(d, 2e9)
    np.testing.assert_allclose(np.diff(fspl), 20.0, atol=1e-9)


def test_slant_range_limits_and_independent_formula():
    h = 600.0
    assert float(slant_range_km(90.0, h)) == pytest.approx(h, abs=1e-9)
    assert float(slant_range_km(0.0, h)) == pytest.approx(math.sqrt((R_KM + h) ** 2 - R_KM**2), rel=1e-12)
    elevs = np.array([5.0, 10.0, 25.0, 45.0, 70.0, 89.0])
    got = slant_range_km(elevs, h)
    want = [sma_slant_range_km(e, h) for e in elevs]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.all(np.diff(got) < 0)  # shorter as the satellite climbs


def test_atmospheric_loss_one_over_sin():
    np.testing.assert_allclose(atmospheric_loss_db([90.0, 30.0], 0.5), [0.5, 1.0], rtol=1e-12)
    assert np.isfinite(atmospheric_loss_db(0.0, 0.5))  # floored, not infinite


def test_noise_power_ktb():
    # kTB with k = 1.380649e-23 J/K (exact in the 2019 SI; CODATA 2018): 5 MHz at 290 K is
    # -106.99 dBm (-174 dBm/Hz + 67 dB), the "-107.0 dBm" of docs/link-model.md sec. 1 (noise assumptions).
    n = float(noise_power_dbm(5e6, 290.0))
    assert n == pytest.approx(-107.0, abs=0.02)
    assert n == pytest.approx(10 * math.log10(1.380649e-23 * 290 * 5e6 / 1e-3), abs=1e-9)
    # Noise figure: T_sys = T + (F-1) 290 K, so at T = 290 K it adds exactly NF dB.
    assert float(noise_power_dbm(5e6, 290.0, 3.0)) == pytest.approx(n + 3.0, abs=1e-9)
    # A cold antenna (50 K) with a 1 dB noise figure: T_sys = 50 + 0.2589 * 290 = 125.09 K.
    t_sys = 50 + (10**0.1 - 1) * 290
    assert float(noise_power_dbm(1.0, 50.0, 1.0)) == pytest.approx(
        10 * math.log10(1.380649e-20 * t_sys), abs=1e-9
    )


def test_mean_snr_hand_computation():
    p = LinkParams(rain_loss_db=1.0, other_losses_db=0.5)
    elev, h = 45.0, 600.0
    d = sma_slant_range_km(elev, h)
    fspl = textbook_fspl_db(d, 2.0)
    atm = 0.5 / math.sin(math.radians(elev))
    rx = 23.0 + 0.0 + 40.0 - fspl - atm - 1.0 - 0.5
    noise = 10 * math.log10(1.380649e-23 * 290 * 5e6 * 1e3)
    got = float(mean_snr_db(p, elev, slant_range_km(elev, h)))
    # 0.01 dB: the textbook constant 92.45 is rounded.
    assert got == pytest.approx(rx - noise, abs=0.01)
    # Shadowing is a gain in dB, added one for one.
    assert float(mean_snr_db(p, elev, d, shadowing_db=-3.0)) == pytest.approx(got - 3.0, abs=0.01)


def test_g_over_t_mode_matches_gain_and_temperature():
    gain = LinkParams(noise_temperature_k=150.0, noise_figure_db=2.0)
    t_sys = 150.0 + (10**0.2 - 1) * 290
    gt = LinkParams(rx_g_over_t_db_per_k=40.0 - 10 * math.log10(t_sys))
    np.testing.assert_allclose(mean_snr_db(gt, 40.0, 900.0), mean_snr_db(gain, 40.0, 900.0), atol=1e-9)


def test_elevation_dependent_k_factor():
    # K in dB linear from the horizon value at the mask to rician_k_db at zenith, clipped
    # (docs/link-model.md sec. 2): 30 deg -> 2, 60 deg (halfway) -> 7, 90 deg -> 12 dB.
    p = LinkParams(rician_k_db=12.0, rician_k_horizon_db=2.0, elevation_mask_deg=30.0)
    np.testing.assert_allclose(rician_k_db(p, [30.0, 60.0, 90.0, 10.0]), [2.0, 7.0, 12.0, 2.0])
    np.testing.assert_allclose(rician_k_db(LinkParams(), [30.0, 80.0]), [10.0, 10.0])


# ------------------------------------------------- the reference parameter set
def test_reference_parameters_rate_and_pass_volume_by_hand():
    """23 dBm, 40 dBi, -160 dB large-scale fading, 5 MHz per device (EMS-FL reference).

    Source of the inputs and of "about 5 Mbit/s per device, about 300 MB per 10-minute
    connected phase": /work/shared/design/EMS-FL.md sec. 3 "Link model", bullet "Reference
    numbers". Noise assumption and the hand computation below: docs/link-model.md sec. 5
    "The reference numbers and the noise assumption" (thermal noise at 290 K plus a 10 dB
    receiver noise figure, i.e. -164 dBm/Hz):
    P_rx = 23 + 40 - 160 = -97 dBm; N = -173.98 + 10 + 66.99 = -96.99 dBm; SNR = -0.015 dB;
    Shannon bound 5e6 * log2(1 + 0.9967) = 4.99 Mbit/s; ergodic (Rician K = 10 dB) 4.84 Mbit/s;
    10-minute pass 4.84e6 * 600 / 8 = 363 MB.
    """
    p = REFERENCE_LINK_PARAMS
    rx_dbm = 23.0 + 40.0 - 160.0
    noise_dbm = 10 * math.log10(1.380649e-23 * 290.0 * 10.0 * 5e6 * 1e3)  # F = 10 dB at T = 290 K
    snr = 10 ** ((rx_dbm - noise_dbm) / 10)
    shannon = 5e6 * math.log2(1 + snr)
    ergodic = 5e6 * rician_ergodic_quad(snr, 10.0)
    assert shannon == pytest.approx(4.99e6, rel=1e-3)
    assert 4.5e6 < ergodic < shannon

    # The same through the link layer: a 10-minute pass (fixed large-scale fading makes
    # capacity independent of elevation above the mask).
    import pandas as pd

    t = np.arange(0.0, 601.0)
    elev = 25.0 + 60.0 * np.sin(np.pi * t / 600.0)
    geo = pd.DataFrame(
        {
            "t_s": t,
            "elevation_deg": elev,
            "range_km": slant_range_km(elev, 600.0),
            "range_rate_km_s": np.zeros_like(t),
        }
    )
    cap = pass_capacity(geo, p)
    assert cap.mean_rate_bps == pytest.approx(ergodic, rel=1e-5)
    volume_mb = cap.total_bytes / 1e6
    assert volume_mb == pytest.approx(ergodic * 600 / 8 / 1e6, rel=1e-5)
    # EMS-FL.md sec. 3: "about 300 MB" per pass and "about 5 Mbit/s" (5e6 * 600 / 8 = 375 MB):
    # docs/link-model.md sec. 5 notes the two figures differ by 21 %, so both ends are allowed.
    assert 300.0 <= volume_mb <= 375.0
    shannon_cap = pass_capacity(geo, p.replace(capacity_model="shannon_bound"))
    assert shannon_cap.total_bytes / 1e6 == pytest.approx(shannon * 600 / 8 / 1e6, rel=1e-9)

    # Without the noise figure (plain -174 dBm/Hz) the same budget gives SNR 10 dB and
    # 16.7 Mbit/s (docs/link-model.md sec. 5): 3.3x the reference, which is why the 10 dB
    # noise figure is assumed. Reference value: the Rician quadrature above at that SNR.
    plain = p.replace(noise_figure_db=0.0)
    plain_snr = 10 ** ((rx_dbm - (noise_dbm - 10.0)) / 10)
    assert float(mean_snr_db(plain, 45.0)) == pytest.approx(10.0, abs=0.02)
    assert pass_capacity(geo, plain).mean_rate_bps == pytest.approx(5e6 * rician_ergodic_quad(plain_snr, 10.0), rel=1e-5)


def test_budget_table_rows_consistent():
    table = link_budget_table(LinkParams(), 45.0, altitude_km=600.0, range_rate_km_s=-5.0)
    v = dict(zip(table["item"], table["value"], strict=True))
    assert list(table.columns) == ["item", "value", "unit"]
    assert v["EIRP"] == pytest.approx(23.0)
    assert v["Received power"] == pytest.approx(
        v["EIRP"]
        - v["Free-space path loss"]
        - v["Atmospheric loss"]
        - v["Other losses"]
        + v["Rx antenna gain"]
    )
    assert v["Mean SNR"] == pytest.approx(v["Received power"] - v["Noise power"])
    assert v["Mean SNR"] == pytest.approx(float(mean_snr_db(LinkParams(), 45.0, slant_range_km(45.0, 600.0))))
    assert v["Ergodic capacity (Rician)"] < v["AWGN / Shannon-bound capacity"]
    assert v["Doppler shift"] > 0  # approaching
    fixed = link_budget_table(REFERENCE_LINK_PARAMS, 60.0)
    assert "Large-scale fading (fixed gain)" in set(fixed["item"])
    assert "Free-space path loss" not in set(fixed["item"])


def test_constant_capacity_matches_budget_table():
    table = link_budget_table(REFERENCE_LINK_PARAMS, 50.0, pass_duration_s=600.0)
    v = dict(zip(table["item"], table["value"], strict=True))
    cap = PassCapacity.constant(0.0, 600.0, v["Capacity used (ergodic)"] * 1e6)
    assert cap.total_bytes / 1e6 == pytest.approx(v["Volume per 10-min pass at this elevation"])


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"bandwidth_hz": -5.0}, "bandwidth_hz", "must be > 0 Hz (got -5)"),
        ({"carrier_frequency_hz": 0.0}, "carrier_frequency_hz", "must be > 0 Hz"),
        ({"elevation_mask_deg": 95.0}, "elevation_mask_deg", "between 0 and 90"),
        ({"elevation_mask_deg": -1.0}, "elevation_mask_deg", "between 0 and 90"),
        ({"noise_figure_db": -1.0}, "noise_figure_db", ">= 0 dB"),
        ({"large_scale_fading_db": 160.0}, "large_scale_fading_db", "e.g. -160"),
        ({"capacity_model": "magic"}, "capacity_model", "ergodic"),
        ({"doppler_limit_hz": 0.0}, "doppler_limit_hz", "> 0 Hz"),
        ({"rain_loss_db": -2.0}, "rain_loss_db", "positive number"),
        ({"rician_k_db": float("nan")}, "rician_k_db", "number in dB"),
    ],
)
def test_validate_names_the_field(changes, field, text):
    with pytest.raises(InputError) as info:
        LinkParams(**changes).validate(field_prefix="link.")
    assert info.value.field == f"link.{field}"
    assert text in str(info.value)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"link.{field}: ")


def test_defaults_and_reference_are_valid():
    # Rayleigh (K = -inf dB) is allowed; validate() returns the parameters themselves.
    for params in (LinkParams(), REFERENCE_LINK_PARAMS, LinkParams(rician_k_db=float("-inf"))):
        assert params.validate() is params
    with pytest.raises(InputError):  # and the check does reject: the same call on a bad set fails
        LinkParams(bandwidth_hz=0.0).validate()


def test_elevation_below_mask_is_an_input_error():
    p = LinkParams(elevation_mask_deg=25.0)
    check_elevation(25.0, p)
    check_elevation([30.0, 90.0], p)
    for bad in (10.0, 91.0, float("nan")):
        with pytest.raises(InputError, match="elevation_deg: must be between the elevation mask 25 deg"):
            check_elevation(bad, p)
    with pytest.raises(InputError, match="elevation_deg"):
        link_budget_table(p, 10.0, altitude_km=600.0)


def test_geometry_function_errors():
    with pytest.raises(InputError, match="carrier_frequency_hz: must be > 0 Hz"):
        free_space_path_loss_db(1000.0, 0.0)
    with pytest.raises(InputError, match="bandwidth_hz: must be > 0 Hz"):
        noise_power_dbm(-5e6)
    with pytest.raises(InputError, match="elevation_deg"):
        slant_range_km(-5.0, 600.0)
    with pytest.raises(InputError, match="altitude_km"):
        slant_range_km(45.0, -600.0)
    with pytest.raises(InputError, match="range_km"):
        mean_snr_db(LinkParams(), 45.0)  # no range and no fixed large-scale fading
