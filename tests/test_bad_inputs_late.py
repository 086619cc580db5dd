"""Bad inputs found by the second campaign (experiments/bad_inputs): each a one-line error or a warning, early.

Validate catches what a run would hit later (model shape, data rows, memory), checkpoint
folders that are files or hold corrupt weights, impossible numbers, and `tle check`
reports orbits SGP4 cannot propagate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emsfl_sim.cli.main import main

from .conftest import REPO
from .fakes import ISS_TLE
from .test_bad_inputs_errors import QUICKSTART, one_error_line, scenario


@pytest.mark.parametrize(("text", "expected"), [
    ("model: {config_overrides: {num_attention_heads: 3}}",
     "model.config_overrides.num_attention_heads: 3 attention heads do not divide hidden_size 128; use a divisor"),
    ("model: {config_overrides: {num_key_value_heads: 3}}",
     "model.config_overrides.num_key_value_heads: 3 key-value heads do not divide the 4 attention heads"),
    ("model: {config_overrides: {num_experts_per_tok: 9}}",
     "model.config_overrides.num_experts_per_tok: top_k must be between 1 and the number of experts (4); got 9"),
    ("model: {preset: null, config: {}}", "model.config: has no model_type, so transformers would build its default"),
    ("output: {directory: 'runs/{name.nope}'}", "output.directory: a key with an attribute or index in"),
    ("data: {samples_per_device: 100000000000}", "data.samples_per_device: "),
    ("model: {lora: {targets: []}}", "model.lora.targets: is empty"),
])
def test_validate_catches_what_the_run_would_hit(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                                 expected: str) -> None:
    path = scenario(tmp_path, text)
    assert main(["validate", str(path)]) == 1
    assert one_error_line(capsys).startswith(f"{path}: {expected}")


def test_validate_reads_the_data_files_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"question": f"q{i}", "options": ["a", "b"], "answer": 5 if i == 3 else 0, "domain": "d"}
            for i in range(10)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ntime: {mode: idealised}\ndata: {jsonl_files: [d.jsonl]}\n"
                    "clusters: [{name: a, lat_deg: 0, lon_deg: 0, domain: d}]\n")
    assert main(["validate", str(path)]) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"{tmp_path / 'd.jsonl'}:4: answer: 5 is out of range for 2 options"), line


def test_a_model_larger_than_memory_is_refused_before_building_it(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, "model: {preset: null, config: mixtral-8x7b}\ntraining: {device: cpu}")
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--no-progress"]) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"{path}: model: the model has 46.70 B parameters, 186.8 GB in float32"), line


@pytest.mark.parametrize("case", ["file", "garbage-weights", "bad-json"])
def test_checkpoint_folders_that_cannot_load_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          case: str) -> None:
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text('{"model_type": "mixtral"' + ("}" if case != "bad-json" else ""))
    (ck / "model.safetensors").write_text("garbage")
    target = ck / "config.json" if case == "file" else ck
    path = scenario(tmp_path, f"model: {{preset: null, checkpoint_path: {target}}}")
    assert main(["validate", str(path)]) == 1
    line = one_error_line(capsys)
    expected = {"file": f"{ck / 'config.json'}: model.checkpoint_path: is a file; give the folder",
                "garbage-weights": f"{ck / 'model.safetensors'}: model.checkpoint_path: is not a valid safetensors",
                "bad-json": f"{ck / 'config.json'}: model.checkpoint_path: is not valid JSON"}[case]
    assert line.startswith(expected), line


def _with_checksum(line: str) -> str:
    """A TLE line with its checksum digit recomputed (digits summed, '-' counts 1, modulo 10)."""
    body = line[:68]
    return body + str(sum(int(c) if c.isdigit() else (c == "-") for c in body) % 10)


def test_tle_check_reports_orbits_sgp4_cannot_propagate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, line1, line2 = ISS_TLE
    dead1 = _with_checksum(line1[:2] + "50000" + line1[7:])
    dead2 = _with_checksum(line2[:2] + "50000" + line2[7:52] + " 0.00000000" + line2[63:])  # mean motion 0
    path = tmp_path / "sats.tle"
    path.write_text(f"{name}\n{line1}\n{line2}\nDEAD\n{dead1}\n{dead2}\n")
    assert main(["tle", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "2 satellites, 0 skipped, 1 not propagatable" in captured.out, captured
    assert "DEAD (NORAD 50000): mean motion is 0 rev/day" in captured.err


def test_a_start_years_from_every_tle_epoch_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "iss.tle").write_text("\n".join(ISS_TLE) + "\n")
    path = scenario(tmp_path, "constellation: {tle_files: [iss.tle], walker: []}\nserver: {satellite: null}\n"
                              "time: {start_utc: '2031-01-01T00:00:00Z'}")
    assert main(["validate", str(path)]) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"{path}: time.start_utc: scenario time 2031-01-01T00:00:00Z is 22.3 years from every "
                           "TLE epoch"), line


@pytest.mark.parametrize(("argv", "expected"), [
    (["tle", "walker", "--altitude-km", "inf", "--inclination-deg", "53", "--planes", "1", "--sats-per-plane", "1"],
     "--altitude-km: altitude must be a finite number between 100 and 40000 km (got inf)"),
    (["link-budget", str(QUICKSTART), "--altitude-km", "-1"],
     "--altitude-km: must be a finite number between 100 and 40000 km (got -1.0)"),
    (["run", str(QUICKSTART), "--set", "time.start_utc=2023-13-01"],
     "--set time.start_utc: the value '2023-13-01' is not a valid date or time (month must be in 1..12)"),
    (["run", str(QUICKSTART), "--set", "time.duration_s=1e300"],
     f"{QUICKSTART}: time.duration_s: 1e+300 s is longer than the limit"),
    (["run", str(QUICKSTART), "--set", "time.start_utc=12345678901234"],
     f"{QUICKSTART}: time.start_utc: 12345678901234 is a number; give an ISO 8601 UTC time"),
    (["report", "{tmp}/file.txt"], "{tmp}/file.txt: is a file, not a results folder"),
    (["tle", "check", "{tmp}"], "{tmp}: is a folder, not a TLE file; give a file inside it"),
])
def test_impossible_values_and_wrong_kinds_of_path_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                argv: list[str], expected: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 1
    line = one_error_line(capsys)
    assert line.startswith(expected.replace("{tmp}", str(tmp_path))), line


def test_a_folder_given_as_a_tle_file_in_a_scenario_is_not_reported_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tles").mkdir()
    path = scenario(tmp_path, "constellation: {tle_files: [tles], walker: []}")
    assert main(["validate", str(path)]) == 1
    line = one_error_line(capsys)
    assert line == (f"{path}: constellation.tle_files[0]: {tmp_path / 'tles'} is a folder, not a TLE file; "
                    "give a file inside it"), line


def test_two_walker_shells_get_distinct_catalogue_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, "constellation:\n  walker:\n"
                              "    - {altitude_km: 550, inclination_deg: 53, planes: 1, sats_per_plane: 1}\n"
                              "    - {altitude_km: 600, inclination_deg: 53, planes: 1, sats_per_plane: 1, "
                              "name_prefix: B}\nserver: {satellite: B-P01-S01}\n")
    assert main(["validate", str(path)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_a_run_without_evaluation_after_t0_warns_once_and_marks_the_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "scenarios" / "quickstart.yaml"
    out = tmp_path / "r"
    argv = ["run", str(path), "--strategy", "baseline", "--out", str(out), "--no-progress",
            "--set", "time.duration_s=3600", "--set", "evaluation.every_s=100000"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "no evaluation after t = 0: evaluation.every_s (100000 s)" in warnings[0], err
    summary = json.loads((out / "baseline" / "summary.json").read_text())
    assert any(w.startswith("no evaluation after t = 0") for w in summary["warnings"])


@pytest.mark.parametrize(("text", "expected"), [
    ("server: {model_sync_delay_s: 60}", "server.model_sync_delay_s: only constellation mode has several server"),
    ("training: {devices_per_round: 0}", "training.devices_per_round: "),
    ("clusters: [{name: a, lat_deg: 0, lon_deg: 0, gpus: 0}]", "clusters[0].gpus: "),
    ("strategy: {expert_groups: {europe: [0, 1], americas: [1], asia: [2, 3]}}",
     "strategy.expert_groups: expert 1 is in the groups of 'europe' and 'americas'; groups are disjoint"),
])
def test_the_new_settings_refuse_bad_values_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       text: str, expected: str) -> None:
    path = scenario(tmp_path, text)
    assert main(["validate", str(path)]) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"{path}: {expected}"), line
