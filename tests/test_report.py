"""Reports: HTML and markdown from run and sweep directories.

Hand-made directories with known numbers check the text (times, ratios) and the
self-contained HTML; one real tiny run checks that the report reads what the
runner writes.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from emsfl_sim.cli.main import main
from emsfl_sim.errors import InputError
from emsfl_sim.report.report import build_report, report_markdown, write_html_report
from emsfl_sim.scenario import scenario_to_yaml, validate_raw
from tests.fakes import PNG_MAGIC
from tests.test_sweep import tiny_raw


def make_run_dir(folder: Path, times_s: dict[str, float | None]) -> Path:
    """A run directory with two strategies whose accuracy crosses 0.5 at the given times."""
    folder.mkdir(parents=True)
    (folder / "scenario.yaml").write_text(scenario_to_yaml(validate_raw(tiny_raw())))
    (folder / "run.json").write_text(json.dumps({"duration_s": 14400.0, "cycle_s": 1200.0}))
    rows = []
    for name, t in times_s.items():
        times = [0.0, 3600.0, 7200.0, 10800.0, 14400.0]
        acc = [0.1 if (t is None or x < t) else 0.6 for x in times]
        metrics = pd.DataFrame({"time_s": times, "cycle": [x / 1200 for x in times], "accuracy": acc,
                                "strategy": name})
        (folder / name).mkdir()
        metrics.to_csv(folder / name / "metrics.csv", index=False)
        events = pd.DataFrame({"time_s": [500.0, 900.0], "cluster": ["a", "b"],
                               "event": ["upload_complete", "upload_interrupted"]})
        events.to_csv(folder / name / "events.csv", index=False)
        rows.append({"strategy": name, "time_to_target_s": t, "cycles_to_target": None if t is None else t / 1200,
                     "final_accuracy": acc[-1], "best_accuracy": max(acc),
                     "uplink_mb": 10.0 if name == "baseline" else 4.0, "peak_device_memory_mb": 100.0})
    pd.DataFrame(rows).to_csv(folder / "comparison.csv", index=False)
    links = pd.DataFrame({"cluster": ["a", "b"], "satellite": ["S", "S"], "start_s": [0.0, 600.0],
                          "end_s": [600.0, 1200.0], "duration_s": [600.0, 600.0]})
    links.to_csv(folder / "links.csv", index=False)
    return folder


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]


def test_run_report_states_times_and_ratio(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", {"baseline": 7200.0, "emsfl": 3600.0})
    path = write_html_report(run)
    assert path == run / "report.html"
    page = path.read_text()
    assert "EMS-FL reached 0.5 in 1.00 h vs baseline 2.00 h (ratio 0.50)" in page
    assert "uplink 4 MB vs 10 MB (ratio 0.40)" in page
    assert "<table" in page and "time to target (h)" in page and "tiny-sweep" in page
    pngs = images(page)
    assert len(pngs) == 2 and all(p.startswith(PNG_MAGIC) for p in pngs)  # accuracy + link timeline
    # Self-contained: nothing loaded from elsewhere.
    assert not re.search(r"(src|href)=['\"](?!data:)", page)


def test_run_report_when_a_strategy_misses_the_target(tmp_path: Path) -> None:
    report = build_report(make_run_dir(tmp_path / "run", {"baseline": None, "emsfl": 10800.0}))
    assert report.findings[0].startswith("EMS-FL reached 0.5 in 3.00 h; baseline did not reach it")
    report = build_report(make_run_dir(tmp_path / "run2", {"baseline": 3600.0, "emsfl": None}))
    assert report.findings[0].startswith("EMS-FL did not reach 0.5 within 4.0 h (final accuracy 0.1)")


def make_sweep_dir(folder: Path) -> Path:
    """A sweep directory: 2 learning rates x 2 seeds, EMS-FL at 0.5x (lr 0.1) and 0.25x (lr 0.2) the baseline's time."""
    folder.mkdir(parents=True)
    rows = []
    index = 0
    for lr, ratio in ((0.1, 0.5), (0.2, 0.25)):
        for seed in (0, 1):
            point = f"p{index:03d}-training.learning_rate={lr}-seed={seed}"
            base_t = 3600.0 * (seed + 1)
            for name, t in (("baseline", base_t), ("emsfl", base_t * ratio)):
                rows.append({"point": point, "index": index, "training.learning_rate": lr, "seed": seed,
                             "strategy": name, "status": "ok", "error": None, "time_to_target_s": t,
                             "final_accuracy": 0.6 + lr, "idle_fraction": 0.1 * seed})
            index += 1
    rows.append({"point": "p004-training.learning_rate=-1-seed=0", "index": 4, "training.learning_rate": -1.0,
                 "seed": 0, "strategy": "baseline", "status": "error", "error": "s.yaml: training.learning_rate: bad"})
    pd.DataFrame(rows).to_csv(folder / "sweep.csv", index=False)
    (folder / "sweep.json").write_text(json.dumps({"mode": "product", "seeds": [0, 1],
                                                   "parameters": {"training.learning_rate": [0.1, 0.2, -1.0]}}))
    (folder / "scenario.yaml").write_text(scenario_to_yaml(validate_raw(tiny_raw())))
    return folder


def test_sweep_report_numbers_figures_and_failures(tmp_path: Path) -> None:
    sweep = make_sweep_dir(tmp_path / "sweep")
    report = build_report(sweep)
    assert report.kind == "sweep"
    text = "\n".join(report.findings)
    assert "5 points, 4 finished, 1 failed." in text
    assert "EMS-FL reached 0.5 in 4/4 points" in text
    # Ratios 0.5, 0.5, 0.25, 0.25: median 0.375.
    assert "EMS-FL took 0.38x the baseline's time (median over 4 points, range 0.25-0.50)" in text
    assert "0.1: 0.75 h vs 1.50 h (ratio 0.50); 0.2: 0.38 h vs 1.50 h (ratio 0.25)" in text
    captions = [f.caption for f in report.figures]
    assert any("vs training.learning_rate" in c for c in captions)
    assert any("idle fraction" in c for c in captions)
    page = write_html_report(sweep, tmp_path / "x" / "r.html").read_text()
    assert "s.yaml: training.learning_rate: bad" in page and "Failed points" in page
    assert all(p.startswith(PNG_MAGIC) for p in images(page)) and len(images(page)) == len(report.figures)


def test_markdown_report_writes_pngs_it_links(tmp_path: Path) -> None:
    sweep = make_sweep_dir(tmp_path / "sweep")
    path = report_markdown(sweep)
    assert path == sweep / "report" / "report.md"
    text = path.read_text()
    assert "| point | training.learning_rate | seed | strategy | status |" in text
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert linked and all((path.parent / name).read_bytes().startswith(PNG_MAGIC) for name in linked)


def test_report_of_other_folder_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(InputError, match="neither a run directory"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_report_of_a_real_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from emsfl_sim.run.runner import run_scenario

    scenario = validate_raw(tiny_raw())
    run_scenario(scenario, out=tmp_path / "run", progress=False, log=lambda m: None)
    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "r.html")]) == 0
    assert "report:" in capsys.readouterr().out
    page = (tmp_path / "r.html").read_text()
    assert "EMS-FL" in page and "<table" in page and len(images(page)) == 2
    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "md" / "run.md")]) == 0
    assert (tmp_path / "md" / "run.md").exists() and (tmp_path / "md" / "run-accuracy.png").exists()
