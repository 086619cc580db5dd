"""Issue 13: nonsense that used to validate, and what ``validate`` must catch before a run.

Fast: only ``load_scenario``, ``emsfl-sim validate``/``contacts``/``tle`` up to their
first error, and the TLE loading; no run.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from emsfl_sim.cli.main import main
from emsfl_sim.errors import InputError
from emsfl_sim.orbits.checks import dedupe_norad_ids, exclude_unpropagatable, skipped_warning
from emsfl_sim.orbits.tle import load_tle_file_report, parse_tle_text
from emsfl_sim.scenario import load_scenario

from .conftest import REPO

QUICKSTART = REPO / "scenarios" / "quickstart.yaml"
L1 = "1 44713U 19074A   23198.31707558  .00000584  00000+0  58057-4 0  9994"
L2 = "2 44713  53.0547 204.8335 0000977  90.1304 269.9797 15.06399147203267"
START = datetime(2023, 7, 18, tzinfo=timezone.utc)


def scenario_file(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"extends: {QUICKSTART}\n{body}")
    return path


def load_error(tmp_path: Path, body: str) -> str:
    with pytest.raises(InputError) as info:
        load_scenario(scenario_file(tmp_path, body))
    text = str(info.value)
    assert "\n" not in text
    return text


def validate_error(tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["validate", str(scenario_file(tmp_path, body))]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1
    return lines[0]


def _checksum(line: str) -> str:
    total = sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68])
    return line[:68] + str(total % 10)


def tle(name: str, norad: int, ecc: str = "0000977", mean_motion: str = "15.06399147") -> str:
    line1 = _checksum(L1[:2] + f"{norad:05d}" + L1[7:])
    line2 = _checksum(L2[:2] + f"{norad:05d}" + L2[7:26] + ecc + L2[33:52] + f"{mean_motion:>11}" + L2[63:])
    return f"{name}\n{line1}\n{line2}\n"


@pytest.mark.parametrize("body, pattern", [
    ("time: {duration_s: .inf}", r"time\.duration_s: must be a finite number in seconds; \.inf and \.nan"),
    ("time: {duration_s: .nan}", r"time\.duration_s: must be a finite number"),
    ("clusters: [{name: a, lat_deg: 0, lon_deg: 0, devices: 1000000000}]",
     r"clusters\[0\]\.devices: 1000000000 devices is more than the limit of 10000 per cluster"),
    ("clusters: [{name: a, lat_deg: 0, lon_deg: 0, devices: true}]",
     r"clusters\[0\]\.devices: expected a number or text, got true"),
    ("training: {local_steps: false}", r"training\.local_steps: expected a number or text, got false"),
    ("seeds: [0, true]", r"seeds\[1\]: expected a number or text, got true"),
    ("name: a\nname: b", r"line 3: invalid YAML: duplicate key 'name' \(first at line 2\)"),
    ("model: {preset: null}", r"model\.preset: is null and no other model source is given"),
])
def test_nonsense_no_longer_validates(tmp_path: Path, body: str, pattern: str) -> None:
    assert re.search(pattern, load_error(tmp_path, body))


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    text = load_error(tmp_path, "\n".join(lines))
    assert "expands to more than 100000 values through its aliases" in text
    many = "a: &a 1\n" + "\n".join(f"k{i}: *a" for i in range(101))
    assert "more than 100 aliases" in load_error(tmp_path, many)


def test_validate_catches_names_a_run_would_fail_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "clusters: [{name: a, lat_deg: 0, lon_deg: 0, compute_profile: h900}]":
            "clusters[0].compute_profile: unknown compute profile 'h900'; use one of h100",
        "clusters: [{name: a, lat_deg: 0, lon_deg: 0, domain: klingon}]":
            "clusters[0].domain: unknown mcqa domain 'klingon'; use one of astronomy",
        "model: {lora: {targets: [q_proj]}}":
            "model.lora.targets: target 'q_proj' matches no expert parameter of mixtral; use some of gate_up_proj",
        "model: {config_overrides: {hiden_size: 64}}":
            "model.config_overrides.hiden_size: 'hiden_size' is no field of MixtralConfig; did you mean 'hidden_size'?",
        "sweep: {parameters: {training.learning_rate: [0.001, -1]}}":
            "sweep point p001-training.learning_rate=-1: training.learning_rate: must be greater than 0",
    }
    for body, expected in cases.items():
        assert expected in validate_error(tmp_path, body, capsys), body


def test_walker_raan_spread_and_contacts_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tle", "walker", "--altitude-km", "550", "--inclination-deg", "53", "--planes", "4",
                 "--sats-per-plane", "1", "--raan-spread-deg", "90"]) == 1
    assert "RAAN spread must be 360 (Walker delta) or 180 (star) degrees (got 90)" in \
        capsys.readouterr().err
    assert main(["contacts", str(QUICKSTART), "-o", str(tmp_path / "plan.xlsx")]) == 1
    assert "--output: unknown table format '.xlsx'; name the file .parquet or .csv" in capsys.readouterr().err
    assert not (tmp_path / "plan.xlsx").exists()


def test_skipped_duplicate_and_unpropagatable_tles(tmp_path: Path) -> None:
    path = tmp_path / "x.tle"
    path.write_text(tle("GOOD-1", 44713) + "BROKEN\n1 xx\n2 yy\n" + tle("GOOD-1-AGAIN", 44713)
                    + tle("ZERO-MM", 50000, mean_motion="0.00000000") + tle("FAST", 50001, mean_motion="30.00000000")
                    + tle("ECC", 50002, ecc="9990000"))
    records, reasons = load_tle_file_report(path, skip_bad=True)
    warning = skipped_warning(str(path), reasons)
    assert warning is not None and warning.startswith(f"{path}: skipped 1 bad TLE entry: line 5: TLE line 1 has 4")
    records, warning = dedupe_norad_ids(records)
    assert [r.name for r in records] == ["GOOD-1", "ZERO-MM", "FAST", "ECC"]
    assert warning is not None and "44713 ('GOOD-1-AGAIN' at" in warning
    kept, warning = exclude_unpropagatable(records, START, 43200.0)
    assert [r.name for r in kept] == ["GOOD-1"]
    assert warning is not None and warning.startswith("excluded 3 satellites SGP4 cannot propagate")
    assert "ZERO-MM (NORAD 50000): mean motion is 0 rev/day" in warning
    assert "FAST (NORAD 50001): mrt is less than 1.0" in warning
    assert "ECC (NORAD 50002): " in warning
    with pytest.raises(InputError, match="SGP4 cannot propagate any of the 1 satellites"):
        exclude_unpropagatable(parse_tle_text(tle("ZERO-MM", 50000, mean_motion="0.00000000"))[0], START, 600.0)
