"""Resume inside a strategy: checkpoints at evaluations, the journal replay, and a real kill -9."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emsfl_sim.learning.data.stream import DeviceDataStream
from emsfl_sim.run.checkpoint import CHECKPOINT_NAME, Checkpointer, JournaledEngine, ReplayMismatch
from emsfl_sim.run.runner import run_scenario
from emsfl_sim.scenario import load_scenario
from tests.fakes import write_yaml
from tests.test_run_e2e import TINY

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ["baseline", "emsfl", "emsfl_enhanced"]
WALL = ["wall_s", "learning_wall_s", "overhead_wall_s", "overhead_fraction"]

# Three cycles, an evaluation every half cycle and rounds that need several passes' worth of training:
# checkpoints fall between rounds, uploads and gate periods of every strategy.
RESUMABLE = copy.deepcopy(TINY) | {"name": "tiny-resume", "seed": 3}
RESUMABLE["time"] = {"mode": "idealised", "orbital_cycles": 3, "slot_duration_s": 600}
RESUMABLE["evaluation"] = {"every_cycles": 0.5, "target_accuracy": 0.2}


def _tables(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(directory / "metrics.csv"), pd.read_csv(directory / "events.csv")


def test_stream_state_round_trip_continues_the_same_order() -> None:
    a = DeviceDataStream(list(range(7)), 3, np.random.default_rng(1))
    for _ in range(4):
        a.next_batch()
    b = DeviceDataStream(list(range(7)), 3, np.random.default_rng(99))
    b.load_state_dict(a.state_dict())
    assert [a.next_batch() for _ in range(10)] == [b.next_batch() for _ in range(10)]
    assert (a.samples_seen, a.unique_fraction) == (b.samples_seen, b.unique_fraction)


def test_replay_answers_from_the_journal_and_refuses_another_order() -> None:
    class Engine:
        def evaluate(self, *_: object) -> dict:
            raise AssertionError("a replayed call must not reach the engine")

    engine = JournaledEngine(Engine(), [("aggregate", ({0: 2}, 1)), ("evaluate", {"accuracy": 0.5})])  # type: ignore[arg-type]
    state = engine.aggregate(None, [])
    assert (state.version, state.gate_version) == ({0: 2}, 1)
    assert engine.evaluate(None, None) == {"accuracy": 0.5}
    assert not engine.replaying
    with pytest.raises(ReplayMismatch, match="journal is aggregate"):
        JournaledEngine(Engine(), [("aggregate", ({}, 0)), ("evaluate", {})]).train_local()  # type: ignore[arg-type]
    with pytest.raises(ReplayMismatch, match="ends with its evaluation"):
        JournaledEngine(Engine(), [("aggregate", ({}, 0))])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """An uninterrupted run of every strategy, with a copy of each strategy's third checkpoint."""
    tmp = tmp_path_factory.mktemp("resume")
    scenario = load_scenario(write_yaml(tmp, RESUMABLE))
    saved: dict[str, bytes] = {}
    original = Checkpointer.save
    counts: dict[Path, int] = {}

    def save(self: Checkpointer, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        counts[self.path] = counts.get(self.path, 0) + 1
        if counts[self.path] == 3:  # at 1.0 cycle: mid-run for every strategy
            saved[self.path.parent.name] = self.path.read_bytes()

    mp = pytest.MonkeyPatch()
    mp.setattr(Checkpointer, "save", save)
    try:
        run_scenario(scenario, out=tmp / "run", progress=False, log=lambda _: None)
    finally:
        mp.undo()
    return tmp / "run", saved


def test_a_finished_strategy_leaves_no_checkpoint(full_run: tuple[Path, dict[str, bytes]]) -> None:
    directory, saved = full_run
    assert sorted(saved) == STRATEGIES
    for name in STRATEGIES:
        assert not (directory / name / CHECKPOINT_NAME).exists()


@pytest.mark.parametrize("name", STRATEGIES)
def test_resuming_from_a_mid_run_checkpoint_gives_the_uninterrupted_results(
        full_run: tuple[Path, dict[str, bytes]], name: str, tmp_path: Path) -> None:
    directory, saved = full_run
    crashed = tmp_path / "run"
    shutil.copytree(directory, crashed)
    (crashed / name / "summary.json").unlink()  # as a crash leaves it: no summary, a checkpoint
    (crashed / name / CHECKPOINT_NAME).write_bytes(saved[name])
    lines: list[str] = []
    scenario = load_scenario(write_yaml(tmp_path, RESUMABLE))
    run_scenario(scenario, strategies=[name], out=crashed, progress=False, log=lines.append)
    assert any(f"{name}: resuming from the checkpoint at" in line for line in lines), lines
    assert not any("running the strategy from the start" in line for line in lines), lines
    for before, after in zip(_tables(directory / name), _tables(crashed / name), strict=True):
        pd.testing.assert_frame_equal(before, after)
    old = pd.read_json(directory / name / "summary.json", typ="series").drop(WALL)
    new = pd.read_json(crashed / name / "summary.json", typ="series").drop(WALL)
    pd.testing.assert_series_equal(old, new)


def test_an_unusable_checkpoint_is_reported_and_the_strategy_reruns(
        full_run: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    directory, _ = full_run
    crashed = tmp_path / "run"
    shutil.copytree(directory, crashed)
    (crashed / "emsfl" / "summary.json").unlink()
    (crashed / "emsfl" / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    lines: list[str] = []
    run_scenario(load_scenario(write_yaml(tmp_path, RESUMABLE)), strategies=["emsfl"], out=crashed,
                 progress=False, log=lines.append)
    assert any("is unreadable" in line and "from the start" in line for line in lines), lines
    pd.testing.assert_frame_equal(_tables(directory / "emsfl")[0], _tables(crashed / "emsfl")[0])


# A run long enough (about 10 s of training on 2 cores) to be killed between two evaluations.
KILLABLE = copy.deepcopy(RESUMABLE) | {"name": "tiny-kill", "strategy": {"names": ["emsfl"]}}
KILLABLE["time"] = {"mode": "idealised", "orbital_cycles": 8, "slot_duration_s": 600}
KILLABLE["evaluation"] = {"every_cycles": 1, "target_accuracy": 0.2}
KILLABLE["training"] = {"local_steps": 2, "batch_size": 4, "round_interval_s": 60}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from emsfl_sim.cli.main import main; raise SystemExit(main())", *args]


def test_kill_9_in_the_middle_of_a_strategy_then_rerun_gives_the_same_metrics(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, KILLABLE)
    t0 = time.perf_counter()
    run_scenario(load_scenario(path), out=tmp_path / "whole", progress=False, log=lambda _: None)
    whole_s = time.perf_counter() - t0
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(_cli("run", str(path), "--out", str(out)), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / "emsfl" / "metrics.csv.part"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and len(part.read_text().splitlines()) >= 4 and (out / "emsfl" / CHECKPOINT_NAME).exists():
            break  # header + 3 evaluations (0, 1 and 2 cycles of 8) and their checkpoint
        time.sleep(0.05)
    time.sleep(0.3)  # into the next evaluation interval
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "emsfl" / "summary.json").exists(), "the run finished before the kill"
    t1 = time.perf_counter()
    rerun = subprocess.run(_cli("run", str(path), "--out", str(out)), env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=600)
    resumed_s = time.perf_counter() - t1
    assert rerun.returncode == 0, rerun.stderr
    assert "emsfl: resuming from the checkpoint at" in rerun.stderr + rerun.stdout, rerun.stderr
    for before, after in zip(_tables(tmp_path / "whole" / "emsfl"), _tables(out / "emsfl"), strict=True):
        pd.testing.assert_frame_equal(before, after)
    print(f"uninterrupted {whole_s:.1f} s, resumed rerun {resumed_s:.1f} s")


# Constellation mode with a sync delay: the per-satellite models and the aggregations still travelling
# between satellites are part of the checkpoint.
SYNCED = copy.deepcopy(TINY) | {"name": "tiny-sync", "seed": 2}
SYNCED["time"] = {"mode": "orbital", "duration_s": 14400}
SYNCED["constellation"] = {"walker": [{"altitude_km": 1200, "inclination_deg": 87.9, "planes": 2,
                                        "sats_per_plane": 2, "phasing": 1}]}
SYNCED["server"] = {"mode": "constellation", "model_sync_delay_s": 1800}
SYNCED["clusters"] = [
    {"name": "a", "lat_deg": 48, "lon_deg": 11, "devices": 1, "domain": "astronomy"},
    {"name": "b", "lat_deg": 40, "lon_deg": -105, "devices": 1, "domain": "law"},
    {"name": "c", "lat_deg": 35, "lon_deg": 139, "devices": 1, "domain": "medicine"},
]
SYNCED["strategy"] = {"names": ["emsfl"]}
SYNCED["training"] = {"local_steps": 1, "batch_size": 4, "round_interval_s": 600}
SYNCED["evaluation"] = {"every_s": 1800, "target_accuracy": 0.2}


def test_resume_keeps_the_satellites_models_in_flight(tmp_path: Path) -> None:
    scenario = load_scenario(write_yaml(tmp_path, SYNCED))
    saved: list[bytes] = []
    original = Checkpointer.save

    def save(self: Checkpointer, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        if len(saved) < 5:
            saved.append(self.path.read_bytes())

    mp = pytest.MonkeyPatch()
    mp.setattr(Checkpointer, "save", save)
    try:
        run_scenario(scenario, out=tmp_path / "run", progress=False, log=lambda _: None)
    finally:
        mp.undo()
    events = pd.read_csv(tmp_path / "run" / "emsfl" / "events.csv")
    assert (events["event"] == "stale_model").any()  # the delay matters in this run
    (tmp_path / "run" / "emsfl" / "summary.json").unlink()
    (tmp_path / "run" / "emsfl" / CHECKPOINT_NAME).write_bytes(saved[4])  # at 2 h of 4
    whole = _tables(tmp_path / "run" / "emsfl")
    lines: list[str] = []
    run_scenario(scenario, out=tmp_path / "run", progress=False, log=lines.append)
    assert any("emsfl: resuming from the checkpoint at 2.00 h" in line for line in lines), lines
    assert not any("from the start" in line for line in lines), lines
    for before, after in zip(whole, _tables(tmp_path / "run" / "emsfl"), strict=True):
        pd.testing.assert_frame_equal(before, after)


def test_checkpoints_off_writes_none(tmp_path: Path) -> None:
    data = copy.deepcopy(RESUMABLE) | {"strategy": {"names": ["emsfl"]}}
    data["output"] = dict(data["output"], checkpoints=False)
    saves: list[Path] = []
    original = Checkpointer.save

    def save(self: Checkpointer, *args: object, **kwargs: object) -> None:
        saves.append(self.path)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    mp = pytest.MonkeyPatch()
    mp.setattr(Checkpointer, "save", save)
    try:
        run_scenario(load_scenario(write_yaml(tmp_path, data)), out=tmp_path / "run", progress=False,
                     log=lambda _: None)
    finally:
        mp.undo()
    assert saves == []  # with checkpoints on, every evaluation saves (the fixture above copies the third)
