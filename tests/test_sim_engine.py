"""Trace tests of the SimPy engine and the strategies with a fake learning engine (tests/fakes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from emsfl_sim.sim.recorder import Recorder
from tests.fakes import constant_schedule, inside_window, run_toy, windows_of


@pytest.mark.parametrize("strategy", ["baseline", "emsfl", "emsfl_enhanced"])
def test_no_upload_completes_without_link(tmp_path: Path, strategy: str) -> None:
    events, _, summary = run_toy(tmp_path, strategy)
    uploads = events[events["event"].isin(["upload_start", "upload_complete"])]
    assert len(uploads) > 0 and summary["uplink_bytes"] > 0  # otherwise both checks hold vacuously
    for row in uploads.itertuples():
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


@pytest.mark.parametrize("strategy", ["baseline", "emsfl"])
def test_a_run_without_contacts_says_so_in_its_summary(tmp_path: Path, strategy: str) -> None:
    empty = constant_schedule({"a": [], "b": [], "c": []}, 2000.0)
    _, _, summary = run_toy(tmp_path, strategy, schedule=empty)
    assert summary["aggregations"] == 0
    assert len(summary["warnings"]) == 1 and summary["warnings"][0].startswith("no contacts")


def test_a_run_whose_uploads_never_arrive_says_so(tmp_path: Path) -> None:
    # 20 kbit/s: EMS-FL's 1 MB expert uploads never fit in a pass and restart each time;
    # the baseline cannot fit round + upload either
    _, _, summary = run_toy(tmp_path, "baseline", rate_bps=2e3)
    assert summary["aggregations"] == 0 and summary["warnings"][0].startswith("no aggregation")
    _, _, ok = run_toy(tmp_path / "ok", "baseline")
    assert ok["warnings"] == []


def _with_gpus(strategy: str, gpus: int | None) -> Any:
    from emsfl_sim.scenario.schema import Scenario
    from tests.fakes import scenario_for

    data = scenario_for(strategy).model_dump()
    data["clusters"][0]["gpus"] = gpus  # cluster a: 2 devices
    return Scenario.model_validate(data)


@pytest.mark.parametrize("strategy", ["baseline", "emsfl"])
def test_gpu_queueing_serialises_the_rounds_of_devices_beyond_the_gpu_count(tmp_path: Path, strategy: str) -> None:
    _, free, free_summary = run_toy(tmp_path / "free", strategy, scenario=_with_gpus(strategy, None))
    _, one, summary = run_toy(tmp_path / "one", strategy, scenario=_with_gpus(strategy, 1))
    _, two, _ = run_toy(tmp_path / "two", strategy, scenario=_with_gpus(strategy, 2))

    def a_rounds(engine: Any) -> list[tuple[float, str]]:
        return [(t, d) for kind, (t, d, *_) in engine.calls if kind == "train" and d.startswith("a/")]

    # one GPU per device (2) is the same as no pool: both devices finish each round together
    assert a_rounds(two) == a_rounds(free)
    free_times = [t for t, _ in a_rounds(free)]
    assert free_times[0::2] == free_times[1::2]
    # one GPU for two devices: the second device's round ends one round (100 s) after the first
    first = a_rounds(one)[:2]
    assert [d for _, d in first] == ["a/0", "a/1"] and first[1][0] - first[0][0] == pytest.approx(100.0)
    pool = summary["gpu_pools"]["a"]
    assert pool["gpus"] == 1 and pool["mean_queue_s"] > 0 and pool["max_queue_s"] == pytest.approx(100.0)
    assert 0 < pool["busy_fraction"] <= 1
    assert "a" not in free_summary["gpu_pools"] and "b" not in summary["gpu_pools"]


def _two_satellite_run(tmp_path: Path, delay_s: float | None) -> tuple[Any, Any, dict]:
    """Cluster a on SAT1 in [0, 300], cluster b on SAT2 from 250: b starts from SAT2's model."""
    from emsfl_sim.link import PassCapacity
    from emsfl_sim.scenario.schema import Scenario
    from emsfl_sim.sim.schedule import LinkSchedule, LinkWindow
    from tests.fakes import scenario_for

    data = scenario_for("baseline").model_dump()
    data["server"] = {"mode": "constellation", "model_sync_delay_s": delay_s}
    spans = [("a", 0, 300, "SAT1"), ("b", 250, 550, "SAT2"), ("b", 1400, 1700, "SAT2")]
    windows = [LinkWindow(c, s, e, sat, PassCapacity.constant(s, e, 8e5)) for c, s, e, sat in spans]
    schedule = LinkSchedule(windows, cycle_s=900.0, duration_s=2000.0, clusters=["a", "b", "c"], mode="test")
    return run_toy(tmp_path, "baseline", schedule=schedule, scenario=Scenario.model_validate(data))


def test_the_sync_delay_decides_which_model_version_a_cluster_receives(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes import FakeEngine

    starts: list[tuple[float, str, dict[int, int]]] = []
    original = FakeEngine.new_device

    def new_device(self: FakeEngine, name: str, state: Any, *args: Any) -> Any:
        starts.append((self.now(), name, dict(state.version)))
        return original(self, name, state, *args)

    monkeypatch.setattr(FakeEngine, "new_device", new_device)
    late, _, _ = _two_satellite_run(tmp_path / "late", 1000.0)
    late_starts, starts[:] = list(starts), []
    instant, _, _ = _two_satellite_run(tmp_path / "instant", 0.0)
    a_aggregated = late[(late["event"] == "aggregation") & (late["cluster"] == "a")]["time_s"]
    assert len(a_aggregated) and a_aggregated.min() < 250  # a's update exists before b's first round

    def b_versions(at: list[tuple[float, str, dict[int, int]]], t: float) -> set[int]:
        return {v for time_s, name, version in at if name.startswith("b/") and time_s == t for v in version.values()}

    assert b_versions(starts, 250.0) == {1}  # instant sync: b starts from a's aggregated experts
    assert b_versions(late_starts, 250.0) == {0}  # 1000 s delay: SAT2 still holds the initial model
    stale = late[late["event"] == "stale_model"]
    assert set(stale["cluster"]) == {"b"} and set(stale["satellite"]) == {"SAT2"}
    assert stale["time_s"].min() == pytest.approx(250.0) and (stale["time_s"] < 1400).all()
    assert instant[instant["event"] == "stale_model"].empty
    # at 1400 s (> 110 + 1000) SAT2 has received a's aggregations as well as b's own
    assert min(b_versions(late_starts, 1400.0)) >= len(a_aggregated)


def _with_devices_per_round(strategy: str, k: int | None, seed: int = 3, devices: int = 4) -> Any:
    from emsfl_sim.scenario.schema import Scenario
    from tests.fakes import scenario_for

    data = scenario_for(strategy).model_dump()
    data["seed"] = seed
    data["clusters"][0]["devices"] = devices
    data["training"]["devices_per_round"] = k
    return Scenario.model_validate(data)


@pytest.mark.parametrize("strategy", ["baseline", "emsfl"])
def test_devices_per_round_trains_a_seeded_subset_each_round(tmp_path: Path, strategy: str) -> None:
    def rounds(run: str, k: int | None, seed: int = 3) -> dict[float, list[str]]:
        _, engine, _ = run_toy(tmp_path / run, strategy, scenario=_with_devices_per_round(strategy, k, seed))
        out: dict[float, list[str]] = {}
        for kind, (t, device, *_) in engine.calls:
            if kind == "train" and device.startswith("a/"):
                out.setdefault(t, []).append(device)
        return out

    every = rounds("all", None)
    two = rounds("two", 2)
    assert all(len(devs) == 4 for devs in every.values())
    assert two and all(len(devs) == 2 and len(set(devs)) == 2 for devs in two.values())
    assert set(two) <= set(every)  # the same round times: sampling changes who trains, not when
    assert rounds("again", 2) == two  # seeded
    other = rounds("seed", 2, seed=11)
    assert other != two and set(other) == set(two)
    assert len({tuple(d) for d in two.values()}) > 1  # drawn anew each round


def test_the_loop_collects_garbage_less_often_and_restores_the_threshold(tmp_path: Path) -> None:
    import gc

    from emsfl_sim.sim.engine import LOOP_GC_THRESHOLD, SimContext

    ctx = SimContext(constant_schedule({"a": [(0.0, 1.0)]}, 2.0), Recorder(tmp_path, "x", "2023-07-18T00:00:00Z", ["csv"]))
    seen: list[int] = []

    def probe() -> Any:
        yield ctx.env.timeout(1.0)
        seen.append(gc.get_threshold()[0])

    ctx.env.process(probe())
    before = gc.get_threshold()
    ctx.run(until=2.0)
    assert seen == [LOOP_GC_THRESHOLD] and gc.get_threshold() == before
