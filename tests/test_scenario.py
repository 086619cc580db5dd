"""Scenario loading: every bad-input class gives one line naming file, field path and expectation."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emsfl_sim.cli.main import main
from emsfl_sim.errors import InputError
from emsfl_sim.scenario import apply_overrides, check_override_path, load_scenario, validate_raw
from emsfl_sim.scenario.schema import PRESET_EXPERTS

from .conftest import REPO

MINIMAL = {
    "name": "t",
    "seed": 1,
    "time": {"mode": "idealised", "duration_s": 3600},
    "clusters": [{"name": "a", "lat_deg": 10, "lon_deg": 20}],
}


def write(tmp_path: Path, data: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def with_(base: dict, dotted: str, value: object) -> dict:
    import copy

    out = copy.deepcopy(base)
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def error_of(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_scenario(path)
    text = str(info.value)
    assert "\n" not in text, "errors must be one line"
    assert text.startswith(str(path) + ": "), text
    return text


def test_minimal_scenario_loads(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MINIMAL))
    assert scenario.name == "t"
    assert scenario.link.elevation_mask_deg == 25.0
    assert scenario.source_file == str(tmp_path / "s.yaml")


@pytest.mark.parametrize(
    ("dotted", "value", "pattern"),
    [
        # unknown field, with the closest valid name suggested
        ("link.elevation_mask", 30, r": link\.elevation_mask: unknown field; did you mean 'elevation_mask_deg'\?$"),
        ("tim", {}, r": tim: unknown field; did you mean 'time'\?$"),
        # wrong type / unit
        ("link.tx_power_dbm", "high", r": link\.tx_power_dbm: expected a number in dBm \(got 'high'\)$"),
        ("link.carrier_frequency_hz", "2 GHz", r": link\.carrier_frequency_hz: expected a number in Hz"),
        # impossible elevation
        ("link.elevation_mask_deg", 95, r": link\.elevation_mask_deg: must be between 0 and 90 degrees \(got 95\)$"),
        ("link.elevation_mask_deg", -5, r": link\.elevation_mask_deg: must be between 0 and 90 degrees \(got -5\)$"),
        ("link.elevation_mask_deg", 90, r": link\.elevation_mask_deg: an elevation mask of 90 degrees leaves no contact"),
        # negative durations
        ("time.duration_s", -10, r": time\.duration_s: must be greater than 0 seconds \(got -10\)$"),
        ("time.contact_step_s", 0, r": time\.contact_step_s: must be greater than 0 and at most 600 seconds \(got 0\)$"),
        # top-k larger than the number of experts
        ("model.top_k", 5, r": model\.top_k: 5 is larger than the number of experts \(4\); use top_k <= 4$"),
        # strategy names: any string here (the registry is checked at run time), but each once
        ("strategy.names", ["emsfl", "emsfl"], r": strategy\.names: strategy 'emsfl' is listed twice"),
        ("strategy.names", [], r": strategy\.names: is empty; give at least one strategy name"),
    ],
)
def test_bad_field_messages(tmp_path: Path, dotted: str, value: object, pattern: str) -> None:
    text = error_of(write(tmp_path, with_(MINIMAL, dotted, value)))
    assert re.search(pattern, text), text


def test_duration_and_cycles_conflict_after_extends(tmp_path: Path) -> None:
    write(tmp_path, with_(MINIMAL, "time.duration_s", 7200), "base.yaml")
    child = {"extends": "base.yaml", "time": {"orbital_cycles": 3}}
    text = error_of(write(tmp_path, child, "child.yaml"))
    assert text.endswith(": time.orbital_cycles: give either duration_s or orbital_cycles; set the other to null")


def test_latitude_out_of_range(tmp_path: Path) -> None:
    data = with_(MINIMAL, "clusters", [{"name": "a", "lat_deg": 91, "lon_deg": 0}])
    text = error_of(write(tmp_path, data))
    assert text.endswith(": clusters[0].lat_deg: must be between -90 and 90 degrees (got 91)")


def test_missing_tle_file(tmp_path: Path) -> None:
    data = with_(MINIMAL, "time.mode", "orbital")
    data["constellation"] = {"tle_files": ["nope.tle"]}
    text = error_of(write(tmp_path, data))
    assert re.search(r": constellation\.tle_files\[0\]: \S*nope\.tle not found; paths are relative to the scenario file$", text)


def test_empty_constellation(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, with_(MINIMAL, "time.mode", "orbital")))
    assert ": constellation: constellation is empty; give tle_files or walker shells" in text


def test_walker_phasing(tmp_path: Path) -> None:
    data = with_(MINIMAL, "constellation.walker", {"altitude_km": 550, "inclination_deg": 53, "planes": 4,
                                                   "sats_per_plane": 2, "phasing": 4})
    text = error_of(write(tmp_path, data))
    assert text.endswith(": constellation.walker[0].phasing: must be < planes (4) (got 4)")


def test_duplicate_cluster(tmp_path: Path) -> None:
    data = with_(MINIMAL, "clusters", [{"name": "a", "lat_deg": 0, "lon_deg": 0}] * 2)
    assert error_of(write(tmp_path, data)).endswith(": clusters[1].name: duplicate cluster name 'a'; names must be unique")


def test_extends_merges_and_resolves_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "x.tle").write_text("")
    base = with_(MINIMAL, "link.rician_k_db", 3.0)
    base["constellation"] = {"tle_files": ["x.tle"]}
    write(tmp_path, base, "base.yaml")
    child = {"extends": "../base.yaml", "name": "child", "link": {"elevation_mask_deg": 40}}
    scenario = load_scenario(write(tmp_path / "sub", child, "child.yaml"))
    assert scenario.name == "child"
    assert scenario.link.elevation_mask_deg == 40
    assert scenario.link.rician_k_db == 3.0  # merged from the parent
    assert scenario.constellation.tle_files == [str((tmp_path / "x.tle").resolve())]


def test_extends_cycle(tmp_path: Path) -> None:
    write(tmp_path, {"extends": "b.yaml", "name": "a"}, "a.yaml")
    write(tmp_path, {"extends": "a.yaml", "name": "b"}, "b.yaml")
    with pytest.raises(InputError) as info:
        load_scenario(tmp_path / "a.yaml")
    assert str(info.value).endswith(": extends: extends cycle: a.yaml -> b.yaml -> a.yaml; remove one of the extends")


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nclusters: [\n")
    text = str(pytest.raises(InputError, load_scenario, path).value)
    assert re.match(rf"{re.escape(str(path))}: line \d+: invalid YAML", text)


def test_sweep_block_validated(tmp_path: Path) -> None:
    data = dict(MINIMAL, sweep={"parameters": {"link.elevation_mask": [10, 20]}})
    assert ("sweep.parameters.link.elevation_mask: unknown key 'elevation_mask' in link; "
            "did you mean 'elevation_mask_deg'? valid keys: ") in error_of(write(tmp_path, data))
    data = dict(MINIMAL, sweep={"parameters": {"link.elevation_mask_deg": []}})
    assert error_of(write(tmp_path, data)).endswith(
        ": sweep.parameters.link.elevation_mask_deg: has no values; give a non-empty list"
    )


def test_preset_expert_table_matches_learning() -> None:
    from emsfl_sim.learning.modelspec import PRESETS

    for name, experts in PRESET_EXPERTS.items():
        assert PRESETS[name]["num_experts"] == experts


def test_shipped_scenarios_validate() -> None:
    files = sorted((REPO / "scenarios").glob("*.yaml"))
    assert files
    for file in files:
        load_scenario(file)


def test_show_prints_merged_extends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(REPO / "scenarios" / "quickstart.yaml")]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["name"] == "quickstart"
    assert shown["model"]["preset"] == "tiny"  # from base-tiny.yaml
    assert len(shown["clusters"]) == 3


def test_cli_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, with_(MINIMAL, "link.elevation_mask_deg", 95))
    proc = subprocess.run(
        [sys.executable, "-m", "emsfl_sim.cli.main", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(f"error: {path}: link.elevation_mask_deg: must be between 0 and 90")


def test_validate_parses_tles_and_finds_the_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.tle").write_text(
        "ISS\n1 25544U 98067A   23198.50000000  .00016717  00000+0  30292-3 0  9991\n"
        "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.5002563740550\n"
    )
    data = with_(MINIMAL, "time.mode", "orbital")
    data["constellation"] = {"tle_files": ["bad.tle"]}
    assert main(["validate", str(write(tmp_path, data))]) == 1
    assert "bad.tle: line 2: checksum is 1, expected 8" in capsys.readouterr().err
    data["constellation"] = {"walker": {"altitude_km": 550, "inclination_deg": 53, "planes": 1, "sats_per_plane": 1}}
    data["server"] = {"satellite": "NOPE"}
    assert main(["validate", str(write(tmp_path, data, "s2.yaml"))]) == 1
    err = capsys.readouterr().err
    assert "s2.yaml: server.satellite: server satellite 'NOPE' not found in the constellation" in err


# ------------------------------------------------------------------ dotted overrides
def test_unknown_strategy_is_a_run_layer_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emsfl_sim.run.runner import check_strategy_names

    path = write(tmp_path, with_(MINIMAL, "strategy.names", ["emsfl", "fedavg"]))
    scenario = load_scenario(path)  # the schema sits below strategies/: any name passes here
    with pytest.raises(InputError) as info:
        check_strategy_names(scenario.strategy.names, scenario.source_file)
    assert str(info.value) == (f"{path}: strategy.names: unknown strategy 'fedavg'; "
                               "use one of baseline, emsfl, emsfl_enhanced")
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {info.value}"


def test_override_nested_path_and_missing_section() -> None:
    raw = copy.deepcopy(MINIMAL)
    out = apply_overrides(raw, {"link.elevation_mask_deg": 40, "time.duration_s": 60.0})
    assert out["link"] == {"elevation_mask_deg": 40} and out["time"]["duration_s"] == 60.0
    assert raw == MINIMAL  # the input is not changed
    assert validate_raw(out).link.elevation_mask_deg == 40


def test_override_list_index_broadcast_and_one_walker_shell() -> None:
    raw = with_(MINIMAL, "clusters", [{"name": "a", "lat_deg": 0, "lon_deg": 0},
                                      {"name": "b", "lat_deg": 1, "lon_deg": 1}])
    raw["constellation"] = {"walker": {"altitude_km": 550, "inclination_deg": 53, "planes": 1, "sats_per_plane": 1}}
    out = apply_overrides(raw, {"clusters.1.devices": 5, "clusters.alt_m": 10.0, "constellation.walker.0.planes": 2})
    scenario = validate_raw(out)
    assert [c.devices for c in scenario.clusters] == [2, 5]
    assert [c.alt_m for c in scenario.clusters] == [10.0, 10.0]
    assert scenario.constellation.walker[0].planes == 2


def test_override_new_keys_only_where_the_schema_allows_them() -> None:
    out = apply_overrides(MINIMAL, {"model.config_overrides.rope_scaling.factor": 2.0,
                                    "data.jsonl_files.astronomy": "a.jsonl",
                                    "sweep.parameters.link.elevation_mask_deg": [10, 20]})
    assert out["model"]["config_overrides"] == {"rope_scaling": {"factor": 2.0}}
    assert out["data"]["jsonl_files"] == {"astronomy": "a.jsonl"}
    assert out["sweep"]["parameters"] == {"link.elevation_mask_deg": [10, 20]}  # its keys are paths
    with pytest.raises(InputError) as info:
        apply_overrides(MINIMAL, {"link.elevation_mask": 3}, file="s.yaml", label="--set ")
    text = str(info.value)
    assert text.startswith("s.yaml: --set link.elevation_mask: unknown key 'elevation_mask' in link; "
                           "did you mean 'elevation_mask_deg'? valid keys: bandwidth_per_device_hz, ")
    assert "tx_power_dbm" in text and "\n" not in text
    with pytest.raises(InputError, match=r": clustrs\.0\.devices: unknown key 'clustrs' at the top level; did you mean "
                                         r"'clusters'\? valid keys: clusters, constellation, "):
        apply_overrides(MINIMAL, {"clustrs.0.devices": 3}, file="s.yaml")


@pytest.mark.parametrize(("dotted", "message"), [
    ("clusters.1.devices", "clusters.1.devices: index 1 is out of range: clusters has 1 entry (use 0 to 0)"),
    ("clusters.-1.devices", "clusters.-1.devices: index -1 is negative; indices count from 0"),
    ("constellation.walker.0.planes", "index 0 is out of range: constellation.walker has no entries"),
    ("link.tx_power_dbm.x", "link.tx_power_dbm.x: link.tx_power_dbm holds a value, not a section, so it has "
                            "no 'x'; set link.tx_power_dbm itself"),
    ("name.first", "name.first: name holds a value, not a section"),
    ("clusters.devices.x", "clusters.N.devices holds a value, not a section"),
    ("constellation.tle_files.x", "constellation.tle_files is a list; give an index such as constellation.tle_files.0"),
    ("clusters..devices", "clusters..devices: empty part in the path"),
])
def test_override_bad_paths_are_one_line(dotted: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        apply_overrides(MINIMAL, {dotted: 1}, file="s.yaml")
    text = str(info.value)
    assert text.startswith("s.yaml: ") and message in text and "\n" not in text, text


def test_override_through_a_value_in_the_file() -> None:
    raw = {**copy.deepcopy(MINIMAL), "link": 5}
    with pytest.raises(InputError, match=r"s\.yaml: link\.rain_loss_db: link is a number \(5\), not a mapping"):
        apply_overrides(raw, {"link.rain_loss_db": 1.0}, file="s.yaml")


def test_override_value_errors_name_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(InputError) as info:
        load_scenario(path, {"clusters.0.devices": "three"}, label="--set ")
    assert str(info.value) == f"{path}: clusters[0].devices: expected an integer (got 'three')"
    with pytest.raises(InputError) as info:
        load_scenario(path, {"link.elevation_mask_deg": 95})
    assert str(info.value).startswith(f"{path}: link.elevation_mask_deg: must be between 0 and 90 degrees")


def test_schema_only_path_check() -> None:
    check_override_path("clusters.7.devices")  # list lengths are only known per scenario
    check_override_path("constellation.walker.planes")
    with pytest.raises(InputError, match=r"^sweep\.parameters\.clusters\.0\.device: unknown key 'device' in "
                                         r"clusters\.0; did you mean 'devices'\?"):
        check_override_path("clusters.0.device", label="sweep.parameters.")
