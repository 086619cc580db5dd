"""Trace tests of the SimPy engine and the strategies with a fake learning engine.

The fake engine records every call with the simulated time, so the tests can
assert the protocol of each strategy (who trains when, what is uploaded, when
the satellite aggregates) without torch work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from emsfl_sim.link import PassCapacity
from emsfl_sim.scenario.schema import Scenario
from emsfl_sim.sim.engine import SimContext
from emsfl_sim.sim.recorder import Recorder
from emsfl_sim.sim.runner import run_strategy
from emsfl_sim.sim.schedule import LinkSchedule, LinkWindow
from emsfl_sim.strategies import LearningWorld, Payloads


@dataclass
class FakeState:
    version: dict[int, int]
    gate_version: int = 0


@dataclass
class FakeDevice:
    name: str
    experts: list[int]
    train_gate: bool
    masked: bool
    samples: int = 0


@dataclass
class FakeUpload:
    experts: list[int]
    include_gate: bool


@dataclass
class FakeEngine:
    """Counts calls; accuracy grows with the number of aggregated expert updates."""

    num_experts: int = 3
    calls: list[tuple[str, Any]] = field(default_factory=list)
    now: Any = None  # set to a callable returning simulated time

    def new_device(self, name: str, state: FakeState, experts: list[int], train_gate: bool, masked: bool) -> FakeDevice:
        return FakeDevice(name, list(experts), train_gate, masked)

    def train_local(self, dev: FakeDevice, examples: list, steps: int, train_gate: bool) -> Any:
        self.calls.append(("train", (self.now(), dev.name, tuple(dev.experts), train_gate)))

        @dataclass
        class R:
            loss: float = 1.0

        return R()

    def sync_gate(self, dev: FakeDevice, state: FakeState) -> None:
        dev.train_gate = False

    def make_upload(self, dev: FakeDevice, experts: list[int], include_gate: bool) -> FakeUpload:
        return FakeUpload(list(experts), include_gate)

    def aggregate(self, state: FakeState, uploads: list[FakeUpload]) -> FakeState:
        version = dict(state.version)
        for e in uploads[0].experts:
            version[e] = version.get(e, 0) + 1
        self.calls.append(("aggregate", (self.now(), tuple(uploads[0].experts), uploads[0].include_gate)))
        return FakeState(version, state.gate_version + int(uploads[0].include_gate))

    def evaluate(self, state: FakeState, test: Any) -> dict[str, float]:
        return {"accuracy": min(1.0, 0.25 + 0.05 * sum(state.version.values())), "loss": 1.0}

    def expert_relevance(self, state: FakeState, trial: Any) -> np.ndarray:
        k = int(trial)  # the fake "trial set" of cluster k is just k
        p = np.full(self.num_experts, 0.05)
        p[k % self.num_experts] = 1.0
        return p / p.sum()


def make_world(scenario: Scenario, engine: FakeEngine) -> LearningWorld:
    data = type("D", (), {})()
    data.train = {c.name: [[0] * 8 for _ in range(c.devices)] for c in scenario.clusters}
    data.trial = {c.name: i for i, c in enumerate(scenario.clusters)}
    data.test = {}
    world = LearningWorld(
        scenario=scenario,
        engine=engine,
        data=data,
        initial_state=FakeState({e: 0 for e in range(engine.num_experts)}),
        payloads=Payloads(per_expert_bytes=1_000_000, gate_bytes=100_000, global_model_bytes=3_100_000),
        flops_model=lambda experts, gate, masked: 1.0,
        tokens_per_round=1.0,
        peak_memory_mb={"baseline": 1.0, "emsfl": 1.0, "emsfl_enhanced": 1.0},  # no torch in these tests
    )
    return world


def scenario_for(strategy: str, **training: Any) -> Scenario:
    return Scenario.model_validate({
        "name": "toy",
        "seed": 3,
        "time": {"mode": "idealised", "duration_s": 4000},
        "clusters": [{"name": "a", "lat_deg": 0, "lon_deg": 0, "devices": 2},
                     {"name": "b", "lat_deg": 0, "lon_deg": 90, "devices": 2},
                     {"name": "c", "lat_deg": 0, "lon_deg": 180, "devices": 1}],
        "strategy": {"names": [strategy], "split_every_cycles": 100, "enhanced_expert_cycles": 1,
                     "enhanced_gate_rounds": 1},
        "training": {"round_interval_s": 100.0, **training},
        "evaluation": {"every_s": 500},
        "output": {"formats": ["csv"], "plots": False},
    })


def toy_schedule(rate_bps: float = 8e5) -> LinkSchedule:
    """Windows: a [0, 300] and [900, 1200]; b [300, 600] and [1200, 1500]; c [600, 700] (too short)."""
    spans = {"a": [(0, 300), (900, 1200)], "b": [(300, 600), (1200, 1500)], "c": [(600, 700)]}
    windows = [LinkWindow(c, s, e, "SAT", PassCapacity.constant(s, e, rate_bps)) for c, ss in spans.items()
               for s, e in ss]
    return LinkSchedule(windows, cycle_s=900.0, duration_s=2000.0, clusters=["a", "b", "c"], mode="test")


def run_toy(tmp_path: Path, strategy: str, rate_bps: float = 8e5, **training: Any) -> tuple[pd.DataFrame, FakeEngine, dict]:
    scenario = scenario_for(strategy, **training)
    engine = FakeEngine()
    world = make_world(scenario, engine)
    schedule = toy_schedule(rate_bps)
    import emsfl_sim.sim.engine as eng

    original = eng.SimContext.__init__

    def patched(self: SimContext, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        engine.now = lambda: float(self.env.now)

    eng.SimContext.__init__ = patched  # type: ignore[method-assign]
    try:
        summary = run_strategy(scenario, schedule, world, strategy, tmp_path / strategy, progress=False)
    finally:
        eng.SimContext.__init__ = original  # type: ignore[method-assign]
    events = pd.read_csv(tmp_path / strategy / "events.csv")
    return events, engine, summary


def windows_of(cluster: str) -> list[tuple[float, float]]:
    return [(w.start_s, w.end_s) for w in toy_schedule().for_cluster(cluster)]


def inside_window(cluster: str, t: float) -> bool:
    return any(s - 1e-9 <= t <= e + 1e-9 for s, e in windows_of(cluster))


@pytest.mark.parametrize("strategy", ["baseline", "emsfl", "emsfl_enhanced"])
def test_no_upload_completes_without_link(tmp_path: Path, strategy: str) -> None:
    events, _, summary = run_toy(tmp_path, strategy)
    for row in events[events["event"].isin(["upload_start", "upload_complete"])].itertuples():
        assert inside_window(row.cluster, row.time_s), row
    # conservation: bytes counted by the engine = bytes of completed + interrupted uploads
    moved = events[events["event"].isin(["upload_complete", "upload_interrupted"])]["bytes"].sum()
    assert moved == summary["uplink_bytes"]


def test_baseline_trains_only_while_connected(tmp_path: Path) -> None:
    _, engine, summary = run_toy(tmp_path, "baseline")
    trains = [args for kind, args in engine.calls if kind == "train"]
    assert trains, "baseline never trained"
    for t, device, experts, gate in trains:
        cluster = device.split("/")[0]
        assert inside_window(cluster, t), (t, device)
        assert experts == (0, 1, 2) and gate
    # cluster c's 100 s window cannot hold a 100 s round: it never trains
    assert not any(d.startswith("c/") for _, d, _, _ in trains)
    assert summary["aggregations"] > 0


def test_emsfl_gate_only_when_connected_and_experts_always(tmp_path: Path) -> None:
    events, engine, _ = run_toy(tmp_path, "emsfl")
    trains = [args for kind, args in engine.calls if kind == "train"]
    gate_rounds = [a for a in trains if a[3]]
    assert gate_rounds, "no gate round happened"
    for t, device, _, _ in gate_rounds:
        assert inside_window(device.split("/")[0], t)
    offline = [a for a in trains if not inside_window(a[1].split("/")[0], a[0])]
    assert offline, "EMS-FL must train while disconnected"
    # the protocol of one contact: experts upload -> aggregation -> gate round -> gate upload -> gate update
    a = events[(events["cluster"] == "a") & (events["time_s"] >= 900) & (events["time_s"] <= 1200)]
    kinds = [k for k in a["event"] if k in {"upload_complete", "aggregation", "gate_update", "local_round"}]
    first = kinds.index("aggregation")
    assert kinds[:first] == ["upload_complete", "upload_complete"]
    assert "gate_update" in kinds[first:]
    assert a[a["event"] == "splitting"].empty  # splitting is logged without a cluster


def test_groups_partition_experts(tmp_path: Path) -> None:
    events, _, summary = run_toy(tmp_path, "emsfl")
    groups = summary["final_groups"]
    flat = sorted(e for g in groups.values() for e in g)
    assert flat == [0, 1, 2]


def test_interrupted_upload_resumes_next_pass(tmp_path: Path) -> None:
    # 1 MB experts at 20 kbit/s need 400 s: more than a 300 s pass.
    events, _, summary = run_toy(tmp_path, "emsfl", rate_bps=2e4)
    cut = events[events["event"] == "upload_interrupted"]
    assert len(cut) > 0
    assert summary["interrupted_uploads"] == len(cut)
    for row in cut.itertuples():
        # an interruption happens exactly at the end of a window of that cluster
        assert any(abs(row.time_s - e) < 1e-6 for _, e in windows_of(row.cluster))
    done = events[(events["event"] == "upload_complete") & (events["cluster"] == "a")]
    assert len(done) > 0 and (done["bytes"] < 1_000_000).all()  # the remainder after resuming


def test_enhanced_masks_first_then_tunes_gate(tmp_path: Path) -> None:
    _, engine, _ = run_toy(tmp_path, "emsfl_enhanced")
    trains = [args for kind, args in engine.calls if kind == "train"]
    early_gate = [a for a in trains if a[3] and a[0] < 900.0]
    assert not early_gate, "no gate training during the masked phase (first cycle)"
    assert any(a[3] for a in trains), "the gate is tuned after the masked phase"


def test_same_seed_same_tables(tmp_path: Path) -> None:
    e1, _, s1 = run_toy(tmp_path / "1", "emsfl")
    e2, _, s2 = run_toy(tmp_path / "2", "emsfl")
    pd.testing.assert_frame_equal(e1.drop(columns=["utc"]), e2.drop(columns=["utc"]))
    m1 = pd.read_csv(tmp_path / "1" / "emsfl" / "metrics.csv")
    m2 = pd.read_csv(tmp_path / "2" / "emsfl" / "metrics.csv")
    pd.testing.assert_frame_equal(m1, m2)


def test_recorder_is_incremental(tmp_path: Path) -> None:
    rec = Recorder(tmp_path, "x", "2023-07-18T00:00:00Z", ["csv"])
    rec.event(1.0, "link_up", "a")
    rec.metric({"time_s": 0.0, "accuracy": 0.3})
    # before close, the rows are already on disk
    assert "link_up" in (tmp_path / "events.csv.part").read_text()
    assert "0.3" in (tmp_path / "metrics.csv.part").read_text()
    rec.close({"ok": True})
    assert not (tmp_path / "events.csv.part").exists()
    assert (tmp_path / "summary.json").exists()
