"""Bad inputs that used to end in a traceback or a misleading message: one line each (issue 13).

Fast: no test here starts a simulation; the checks run before any work, and the
few later failures are provoked with monkeypatch.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emsfl_sim.cli.main import EXIT_BROKEN_PIPE, main

from .conftest import REPO
from .test_report import make_run_dir

QUICKSTART = REPO / "scenarios" / "quickstart.yaml"
WALKER = ["tle", "walker", "--altitude-km", "550", "--inclination-deg", "53", "--planes", "2",
          "--sats-per-plane", "1"]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("error: "), err
    return err.removeprefix("error: ")


def scenario(tmp_path: Path, text: str) -> Path:
    """A scenario extending the quickstart with ``text`` (YAML) on top."""
    path = tmp_path / "s.yaml"
    path.write_text(f"extends: {QUICKSTART}\n{text}")
    return path


# ------------------------------------------------------------------ 1. output paths
def test_output_paths_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    run_dir = make_run_dir(tmp_path / "run", {"baseline": 7200.0, "emsfl": 3600.0})
    cases = [
        (["contacts", str(QUICKSTART), "-o", f"{blocker}/p.csv"], "--output"),
        ([*WALKER, "-o", f"{blocker}/sub/w.tle"], "--output"),
        (["report", str(run_dir), "-o", f"{blocker}/r.html"], "--output"),
        (["run", str(QUICKSTART), "--out", f"{blocker}/run", "--no-progress"], "--out"),
    ]
    for argv, option in cases:
        assert main(argv) == 1, argv
        line = one_error_line(capsys)
        assert f": {option}: {blocker} is a file, not a folder" in line and "choose another path" in line, line
    assert main(["run", str(QUICKSTART), "--out", str(blocker), "--no-progress"]) == 1
    assert one_error_line(capsys) == f"{blocker}: --out: is a file, not a folder; give a folder path " \
        "(or remove the file)"
    assert main([*WALKER, "-o", str(tmp_path)]) == 1
    assert "is a folder, not a file; give a file name inside it" in one_error_line(capsys)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "ro"))

    with monkeypatch.context() as m:  # not writable: found before the model is built
        m.setattr("tempfile.mkstemp", denied)
        assert main(["run", str(QUICKSTART), "--out", str(tmp_path / "ro"), "--no-progress"]) == 1
        assert one_error_line(capsys).startswith(f"{tmp_path / 'ro'}: --out: permission denied; choose a path")

    def full(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    with monkeypatch.context() as m:  # a full disk while writing: one line at the CLI boundary
        m.setattr(Path, "write_text", full)
        assert main([*WALKER, "-o", str(tmp_path / "w.tle")]) == 1
        assert one_error_line(capsys) == f"{tmp_path / 'w.tle'}: no space left on the device; free some space " \
            "or choose a path on another disk"


# ------------------------------------------------------------------ 2. device
def test_cuda_device_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["run", str(QUICKSTART), "--set", "training.device=cuda", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(argv) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"{QUICKSTART}: training.device: cuda requested but ") and "use auto" in line
    assert "or cpu" in line and not (tmp_path / "r").exists()  # refused before any work


# ------------------------------------------------------------------ 3. checkpoints
def test_corrupt_config_json_and_checkpoint_without_weights(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    corrupt, empty = tmp_path / "corrupt", tmp_path / "empty"
    corrupt.mkdir()
    empty.mkdir()
    (corrupt / "config.json").write_text('{"model_type": "mixtral",')
    (empty / "config.json").write_text(json.dumps({"model_type": "mixtral"}))
    for ckpt, expected in ((corrupt, f"{corrupt / 'config.json'}: model.checkpoint_path: is not valid JSON"),
                           (empty, f"{empty}: model.checkpoint_path: has a config.json but no weights")):
        path = scenario(tmp_path, f"model: {{checkpoint_path: {ckpt}, preset: null}}\n")
        assert main(["run", str(path), "--out", str(tmp_path / "r"), "--no-progress"]) == 1
        assert one_error_line(capsys).startswith(expected)


# ------------------------------------------------------------------ 4. config overrides
@pytest.mark.parametrize(("override", "field"), [
    ("{hidden_size: -4}", "config_overrides.hidden_size: must be a positive integer (got -4)"),
    ("{num_hidden_layers: two}", "config_overrides.num_hidden_layers: must be a positive integer (got 'two')"),
])
def test_config_overrides_that_crash_the_build(override: str, field: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, f"model: {{config_overrides: {override}}}\n")
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--no-progress"]) == 1
    assert one_error_line(capsys) == f"{path}: model.{field}"


# ------------------------------------------------------------------ 5. output.directory template
def test_output_directory_with_an_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, "output: {directory: 'runs/{nme}'}\n")
    assert main(["run", str(path), "--no-progress"]) == 1
    assert one_error_line(capsys) == f"{path}: output.directory: unknown key {{nme}} in 'runs/{{nme}}'; the " \
        "allowed keys are {name}, {seed} (write {{ and }} for literal braces)"


# ------------------------------------------------------------------ 6. encodings
def test_latin1_binary_and_folder_scenarios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin, binary = tmp_path / "latin.yaml", tmp_path / "binary.yaml"
    latin.write_bytes("name: ok\ndescription: caf\xe9\n".encode("latin-1"))
    binary.write_bytes(b"\x7fELF\x02\x01\x00\x00\xff\xfe")
    assert main(["validate", str(latin)]) == 1
    assert one_error_line(capsys) == f"{latin}: line 2: not UTF-8 text (byte 0xe9); a scenario must be a UTF-8 " \
        "YAML text file (re-save it as UTF-8)"
    assert main(["validate", str(binary)]) == 1
    assert one_error_line(capsys).startswith(f"{binary}: line 1: a binary file; ")
    assert main(["validate", str(tmp_path)]) == 1  # a folder is not "not found"
    assert one_error_line(capsys).startswith(f"{tmp_path}: is a folder, not a scenario file; give a .yaml file")


# ------------------------------------------------------------------ 7. sweep workers
def test_sweep_with_negative_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(QUICKSTART), "--workers", "-1"]) == 1
    assert one_error_line(capsys) == "--workers: must be at least 1 (got -1); leave it out to use every CPU"


# ------------------------------------------------------------------ 8. broken pipe
def test_closed_stdout_pipe_exits_quietly() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "emsfl_sim.cli.main", "validate", str(QUICKSTART),
                             str(QUICKSTART)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader went away before the first line (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# ------------------------------------------------------------------ 9. misleading messages
@pytest.mark.parametrize(("item", "message"), [
    ("time.start_utc=not-a-date", "time.start_utc: expected an ISO 8601 UTC time such as 2023-07-18T00:00:00Z"),
    ("time.contact_step_s=0", "time.contact_step_s: must be greater than 0 and at most 600 seconds (got 0)"),
    ("constellation.walker.0.altitude_km=50",
     "constellation.walker[0].altitude_km: must be greater than 100 and less than 40000 km (got 50)"),
])
def test_bounds_and_datetimes_say_what_to_use(item: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contacts", str(QUICKSTART), "--set", item]) == 1
    assert one_error_line(capsys).startswith(f"{QUICKSTART}: {message}")


def test_tle_walker_errors_name_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tle", "walker", "--altitude-km", "550", "--inclination-deg", "53", "--planes", "1",
            "--sats-per-plane", "1"]  # the default --phasing 1 needs at least 2 planes
    assert main(argv) == 1
    assert one_error_line(capsys) == "--phasing: phasing factor F must satisfy 0 <= F < --planes (1) (got 1)"
    assert main([*WALKER, "--first-norad-id", "99999"]) == 1
    assert one_error_line(capsys).startswith("--first-norad-id: catalogue numbers 99999..100000")


# ------------------------------------------------------------------ 10. report
def test_report_sentence_and_figure_names(tmp_path: Path) -> None:
    from emsfl_sim.report.report import build_report, report_markdown

    report = build_report(make_run_dir(tmp_path / "a", {"baseline": None, "emsfl": 3600.0}))
    assert "EMS-FL reached 0.5 in 1.00 h; baseline did not reach it (final accuracy" in report.findings[0]
    assert "either" not in report.findings[0]
    report = build_report(make_run_dir(tmp_path / "b", {"baseline": None, "emsfl": None}))
    assert "baseline did not reach it either" in report.findings[0]
    out = tmp_path / "reports"
    report_markdown(tmp_path / "a", out, "first.md")
    report_markdown(tmp_path / "b", out, "second.md")
    first, second = (out / "first-accuracy.png").read_bytes(), (out / "second-accuracy.png").read_bytes()
    assert first != second and "](first-accuracy.png)" in (out / "first.md").read_text()
