"""The command line: the parser, ``--set`` overrides and one-line errors (no simulation runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emsfl_sim.cli.common import parse_set_options
from emsfl_sim.cli.main import build_parser, main
from emsfl_sim.errors import InputError

from .conftest import REPO

QUICKSTART = REPO / "scenarios" / "quickstart.yaml"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("error: "), err
    return err.removeprefix("error: ")


def test_parser_has_every_command() -> None:
    parser = build_parser()
    for argv in (["validate", "a.yaml"], ["show", "a.yaml"], ["contacts", "a.yaml", "--set", "a=1"],
                 ["link-budget", "a.yaml"], ["run", "a.yaml", "--set", "a=1"], ["sweep", "a.yaml"],
                 ["report", "dir"], ["tle", "walker", "--altitude-km", "550", "--inclination-deg", "53",
                                     "--planes", "1", "--sats-per-plane", "1"], ["tle", "check", "x.tle"]):
        assert callable(parser.parse_args(argv).func), argv


def test_parse_set_options_values_are_yaml() -> None:
    assert parse_set_options(["a.b=1", "c=[1, 2]", "d=x", "e=", "f=a=b"]) == {
        "a.b": 1, "c": [1, 2], "d": "x", "e": None, "f": "a=b"}
    with pytest.raises(InputError, match=r"^--set: expects FIELD=VALUE"):
        parse_set_options(["clusters.0.devices"])
    with pytest.raises(InputError, match=r"^--set name: the value '\[1,2' is not valid YAML"):
        parse_set_options(["name=[1,2"])


def test_contacts_with_a_list_index_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contacts", str(QUICKSTART), "--set", "clusters.0.devices=3", "--set", "link.elevation_mask_deg=15"]) == 0
    out = capsys.readouterr().out
    assert "3 clusters" in out and "mask 15 deg" in out


@pytest.mark.parametrize(("item", "message"), [
    ("clusters.5.devices=3", "--set clusters.5.devices: index 5 is out of range: clusters has 3 entries (use 0 to 2)"),
    ("clusters.0.device=3", "--set clusters.0.device: unknown key 'device' in clusters.0; did you mean 'devices'? "
                            "valid keys: alt_m, compute_profile, devices, domain, lat_deg, lon_deg, name"),
    ("link.tx_power_dbm.x=1", "--set link.tx_power_dbm.x: link.tx_power_dbm holds a value, not a section"),
    ("clusters.0.devices=abc", "clusters[0].devices: expected an integer (got 'abc')"),
])
def test_bad_set_values_are_one_line(item: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contacts", str(QUICKSTART), "--set", item]) == 1
    assert one_error_line(capsys).startswith(f"{QUICKSTART}: {message}")


def test_bad_set_syntax_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["link-budget", str(QUICKSTART), "--no-passes", "--set", "clusters.0.devices"]) == 1
    assert one_error_line(capsys).startswith("--set: expects FIELD=VALUE")


def test_validate_and_run_check_strategy_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"extends": str(QUICKSTART), "strategy": {"names": ["emsfl", "fedavg"]}}))
    assert main(["validate", str(path)]) == 1
    assert one_error_line(capsys) == (f"{path}: strategy.names: unknown strategy 'fedavg'; "
                                      "use one of baseline, emsfl, emsfl_enhanced")
    assert main(["run", str(QUICKSTART), "--strategy", "fedavg", "--out", str(tmp_path / "run")]) == 1
    assert one_error_line(capsys) == "--strategy: unknown strategy 'fedavg'; use one of baseline, emsfl, emsfl_enhanced"
    assert main(["run", str(QUICKSTART), "--set", "strategy.names=[nope]", "--out", str(tmp_path / "run")]) == 1
    assert one_error_line(capsys).startswith(f"{QUICKSTART}: strategy.names: unknown strategy 'nope'")
    assert not (tmp_path / "run").exists()  # refused before any work
