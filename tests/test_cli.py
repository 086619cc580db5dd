"""The command line: the parser, ``--set`` overrides and one-line errors (no simulation runs here)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
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
                 ["idle", "a.yaml", "--grid", "10", "20", "-o", "d", "--set", "a=1"],
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
                            "valid keys: alt_m, compute_profile, devices, domain, gpus, lat_deg, lon_deg, name"),
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


def test_idle_prints_and_writes_tables_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "idle"
    assert main(["idle", str(QUICKSTART), "-o", str(out), "--set", "time.duration_s=7200"]) == 0
    text = capsys.readouterr().out
    assert "1 satellites (single server) x 3 clusters over 2.0 h" in text
    assert "time with no cluster connected:" in text and "gap lengths:" in text
    for stem in ("idle_summary", "idle_clusters", "idle_gaps", "idle_gap_histogram"):
        assert (out / f"{stem}.csv").is_file() or (out / f"{stem}.parquet").is_file(), stem
    for png in ("connected_map.png", "gap_histograms.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG"), png
    summary = pd.read_csv(out / "idle_summary.csv") if (out / "idle_summary.csv").is_file() else \
        pd.read_parquet(out / "idle_summary.parquet")
    row = summary.set_index("scope").loc["no_cluster"]
    assert row.fraction_none + row.fraction_one + row.fraction_multiple == pytest.approx(1.0)


def test_idle_on_a_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grid"
    assert main(["idle", str(QUICKSTART), "--grid", "45", "90", "-o", str(out), "--set", "time.duration_s=3600"]) == 0
    text = capsys.readouterr().out
    assert "x 16 virtual clusters (grid 45 x 90 deg)" in text and "connected fraction per latitude row" in text
    clusters = pd.read_csv(out / "idle_clusters.csv") if (out / "idle_clusters.csv").is_file() else \
        pd.read_parquet(out / "idle_clusters.parquet")
    assert len(clusters) == 16 and sorted(set(clusters.lat_deg)) == [-67.5, -22.5, 22.5, 67.5]


@pytest.mark.parametrize(("argv", "message"), [
    (["--grid", "0", "10"], "--grid: latitude step must be > 0 and <= 180 degrees (got 0)"),
    (["--grid", "10", "361"], "--grid: longitude step must be > 0 and <= 360 degrees (got 361)"),
    (["--set", "time.mode=idealised"], f"{QUICKSTART}: time.mode: idle needs time.mode: orbital"),
])
def test_idle_bad_input_is_one_line(argv: list[str], message: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["idle", str(QUICKSTART), "-o", str(tmp_path / "x"), *argv]) == 1
    assert one_error_line(capsys).startswith(message)
    assert not (tmp_path / "x").exists()  # refused before any work


def test_idle_output_in_the_way_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["idle", str(QUICKSTART), "-o", str(blocker)]) == 1
    assert one_error_line(capsys).startswith(f"{blocker}: --output: is a file, not a folder")
