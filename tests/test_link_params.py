"""LinkParams from the scenario (every field fed by name) and the one elevation-mask rule."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

import pytest

from emsfl_sim.errors import InputError
from emsfl_sim.link import LinkParams
from emsfl_sim.orbits import Site, compute_contact_plan, walker_delta
from emsfl_sim.scenario import validate_raw
from emsfl_sim.sim import schedule
from emsfl_sim.sim.schedule import DERIVED_LINK_FIELDS, link_param_names, link_params

# One value per LinkParams field that the scenario gives, each different from the LinkParams
# default (asserted below) and inside the schema's bounds, so a field the copy forgets shows up.
NON_DEFAULT_LINK = {
    "tx_power_dbm": 30.0,
    "tx_antenna_gain_dbi": 3.0,
    "rx_antenna_gain_dbi": 35.0,
    "carrier_frequency_hz": 8e9,
    "noise_temperature_k": 150.0,
    "noise_figure_db": 2.0,
    "rx_g_over_t_db_per_k": 10.0,
    "zenith_atmospheric_loss_db": 0.7,
    "shadowing_sigma_db": 3.0,
    "rain_loss_db": 1.0,
    "polarisation_loss_db": 0.2,
    "scintillation_loss_db": 0.3,
    "pointing_loss_db": 0.4,
    "other_losses_db": 0.6,
    "large_scale_fading_db": -150.0,
    "rician_k_db": 6.0,
    "rician_k_horizon_db": 1.0,
    "elevation_mask_deg": 30.0,
    "doppler_limit_hz": 5e4,
    "capacity_model": "shannon_bound",
}


def _scenario(link: dict):
    return validate_raw(
        {
            "name": "t",
            "time": {"mode": "idealised", "duration_s": 3600},
            "clusters": [{"name": "a", "lat_deg": 10, "lon_deg": 20}],
            "link": link,
        },
        file="s.yaml",
    )


def test_every_link_params_field_is_fed_from_the_scenario():
    fields = {f.name for f in dataclasses.fields(LinkParams)}
    assert set(NON_DEFAULT_LINK) == link_param_names() == fields - DERIVED_LINK_FIELDS
    defaults = LinkParams()
    for name, value in NON_DEFAULT_LINK.items():
        assert getattr(defaults, name) != value, name
    params = link_params(_scenario({**NON_DEFAULT_LINK, "bandwidth_per_device_hz": 2e6}))
    assert {name: getattr(params, name) for name in NON_DEFAULT_LINK} == NON_DEFAULT_LINK
    assert params.bandwidth_hz == 2e6
    # The derived field: 20 MHz shared equally by 4 devices is 5 MHz each.
    shared = _scenario({"total_bandwidth_hz": 2e7, "sharing": "equal_share"})
    assert link_params(shared, devices=4).bandwidth_hz == pytest.approx(5e6)


def test_a_link_params_field_without_a_scenario_field_is_an_error(monkeypatch):
    monkeypatch.setattr(schedule, "link_param_names", lambda: frozenset({"tx_power_dbm", "not_in_schema"}))
    with pytest.raises(TypeError, match="not_in_schema"):
        link_params(_scenario({}))


def _outcome(call) -> str | None:
    """None if ``call()`` succeeds, else its one-line InputError message."""
    try:
        call()
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message
        return message
    return None


@pytest.mark.parametrize("mask", [-1.0, 0.0, 45.0, 89.9, 90.0, 95.0, math.nan])
def test_one_elevation_mask_rule(mask):
    """The scenario field, LinkParams and the pass search accept exactly 0 <= mask < 90."""
    scenario = _outcome(lambda: _scenario({"elevation_mask_deg": mask}))
    link = _outcome(lambda: LinkParams(elevation_mask_deg=mask).validate(field_prefix="link."))
    search = _outcome(
        lambda: compute_contact_plan(
            walker_delta(550, 53, 2, 1, 0), [Site("a", 0.0, 0.0)], datetime(2023, 7, 18), 600.0, mask
        )
    )
    valid = 0.0 <= mask < 90.0
    assert (scenario is None) == (link is None) == (search is None) == valid
    if not valid:
        assert scenario is not None and scenario.startswith("s.yaml: link.elevation_mask_deg: ")
        assert link is not None and link.startswith("link.elevation_mask_deg: must be between 0 and 90")
