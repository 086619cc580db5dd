"""Timeline-only runs: no torch, and the same link, upload and aggregation events as a learning run."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emsfl_sim.errors import InputError
from emsfl_sim.run.runner import run_scenario
from emsfl_sim.scenario import load_scenario
from tests.fakes import write_yaml
from tests.test_run_e2e import TINY

REPO = Path(__file__).resolve().parents[1]
#: The events a timeline run must reproduce exactly (learning-only fields, e.g. losses, left out).
SHARED_EVENTS = ["link_up", "link_down", "upload_start", "upload_complete", "upload_interrupted",
                 "upload_restarted", "aggregation", "gate_update", "aggregation_skipped", "local_round",
                 "round_skipped", "round_abandoned", "splitting", "gate_period_start", "masked_period_start",
                 "gate_period_timeout"]
COLUMNS = ["time_s", "event", "cluster", "device", "bytes", "bytes_total", "experts", "satellite"]

SCENARIO = copy.deepcopy(TINY) | {"name": "tiny-timeline", "seed": 4}
SCENARIO["strategy"] = dict(SCENARIO["strategy"], expert_groups={"a": [0, 2], "b": [1, 3]})


def _events(path: Path) -> pd.DataFrame:
    events = pd.read_csv(path)
    events = events[events["event"].isin(SHARED_EVENTS)].reset_index(drop=True)
    return events[COLUMNS]


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("timeline")
    learning = load_scenario(write_yaml(tmp, SCENARIO, "learning.yaml"))
    run_scenario(learning, out=tmp / "learning", progress=False, log=lambda _: None)
    timeline = load_scenario(write_yaml(tmp, SCENARIO | {"simulate": "timeline"}, "timeline.yaml"))
    run_scenario(timeline, out=tmp / "timeline", progress=False, log=lambda _: None)
    return tmp / "learning", tmp / "timeline"


@pytest.mark.parametrize("strategy", ["baseline", "emsfl", "emsfl_enhanced"])
def test_timeline_and_learning_runs_share_their_events(both_runs: tuple[Path, Path], strategy: str) -> None:
    learning, timeline = both_runs
    a, b = _events(learning / strategy / "events.csv"), _events(timeline / strategy / "events.csv")
    assert len(a) > 10 and set(a["event"]) >= {"link_up", "upload_complete", "aggregation", "local_round"}
    pd.testing.assert_frame_equal(a, b)


def test_a_timeline_summary_has_no_accuracy_and_says_why(both_runs: tuple[Path, Path]) -> None:
    learning, timeline = both_runs
    for name in ("baseline", "emsfl"):
        old = json.loads((learning / name / "summary.json").read_text())
        new = json.loads((timeline / name / "summary.json").read_text())
        assert new["simulate"] == "timeline" and new["final_accuracy"] is None
        for key in ("uplink_bytes", "completed_uploads", "interrupted_uploads", "aggregations", "local_rounds",
                    "optimizer_steps", "samples_seen", "mean_staleness", "passes"):
            assert new[key] == old[key], key


def test_a_timeline_run_never_imports_torch(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, SCENARIO | {"simulate": "timeline"})
    code = ("import sys\n"
            "from emsfl_sim.cli.main import main\n"
            f"assert main(['run', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}]) in (0, None)\n"
            "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft'))\n"
            "assert not leaked, leaked[:5]\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "emsfl" / "events.csv").exists()


def test_fixed_expert_groups_must_cover_every_expert(tmp_path: Path) -> None:
    bad = copy.deepcopy(SCENARIO) | {"simulate": "timeline"}
    bad["strategy"]["expert_groups"] = {"a": [0], "b": [1]}
    with pytest.raises(InputError, match="strategy.expert_groups"):
        run_scenario(load_scenario(write_yaml(tmp_path, bad)), strategies=["emsfl"], out=tmp_path / "o",
                     progress=False, log=lambda _: None)
    overlapping = copy.deepcopy(SCENARIO)
    overlapping["strategy"]["expert_groups"] = {"a": [0, 1], "b": [1, 2, 3]}
    with pytest.raises(InputError, match="groups are disjoint"):
        load_scenario(write_yaml(tmp_path, overlapping, "overlap.yaml"))
