"""The comparison is fair: data per device, windows at t = 0, round accounting, upload
content, the enhanced gate period, gate aggregation by deltas (design note 5.4).

Each test names the point of the "trustworthy comparison" issue it guards; they use the
fake engine of tests/fakes.py except where the real learning engine is the subject.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.learning import LearningEngine, LoraSpec, ModelSpec, TrainSpec, make_domain_examples
from emsfl_sim.learning.data import DeviceDataStream
from emsfl_sim.rng import rng
from emsfl_sim.sim.engine import SimContext, UploadRequest
from emsfl_sim.sim.recorder import Recorder
from emsfl_sim.sim.schedule import LinkSchedule, build_schedule
from tests.fakes import constant_schedule, run_toy, scenario_for


# ------------------------------------------------------------------ 1: data per device
def test_a_device_stream_walks_its_shard_in_reshuffled_epochs() -> None:
    stream = DeviceDataStream(list(range(8)), 4, rng(0, "batches", "d"))
    first = stream.next_batch() + stream.next_batch()
    assert sorted(first) == list(range(8)) and stream.unique_fraction == 1.0  # one epoch: every sample once
    second = stream.next_batch() + stream.next_batch()
    assert sorted(second) == list(range(8)) and second != first  # reshuffled, not replayed
    assert stream.samples_seen == 16 and stream.epochs == 2.0


def test_baseline_data_order_survives_the_model_reset_of_every_round(tmp_path: Path) -> None:
    _, engine, summary = run_toy(tmp_path, "baseline")
    drawn = engine.batches["a/0"]
    assert len(drawn) >= 8, "the baseline device of cluster a trains at least two rounds"
    ref = DeviceDataStream([f"a/0#{k}" for k in range(8)], 4, rng(0, "batches", "a/0"))
    assert drawn == [ref.next_batch() for _ in drawn]  # one stream across rounds, never restarted
    assert drawn[:4] != drawn[4:8]  # round 2 does not repeat round 1's batches
    for key in ("local_rounds", "optimizer_steps", "tokens_processed", "samples_seen", "unique_samples_fraction"):
        assert key in summary
    assert summary["optimizer_steps"] == 4 * summary["local_rounds"]  # local_steps = 4


def test_the_real_engine_continues_a_device_stream_across_resets() -> None:
    eng = LearningEngine(ModelSpec(preset="tiny"), LoraSpec(rank=2, alpha=4),
                         TrainSpec(batch_size=4, max_len=48, local_steps=1), seed=0)
    state = eng.initial_state()
    examples = make_domain_examples("law", 8, seed=0)
    stream = eng.data_stream("c/0", examples)
    for _ in range(4):  # a baseline device: a fresh model state from the global model every round
        dev = eng.new_device("c/0", state, [0], train_gate=False, masked=False)
        eng.train_local(dev, stream, 1, train_gate=False)
    assert stream.samples_seen == 16 and stream.unique_fraction == 1.0


# -------------------------------------------------------------- 2: a window open at t = 0
def test_baseline_uses_a_window_open_at_t0(tmp_path: Path) -> None:
    events, _, _ = run_toy(tmp_path, "baseline")
    first = events[(events["cluster"] == "a") & (events["event"] == "aggregation")]
    assert len(first) and first["time_s"].min() < 300.0  # a's first window is [0, 300]


# ------------------------------------------------------------------ 3: round accounting
def _idealised(strategy: str, cycles: int = 3, **training: object) -> tuple[object, object]:
    scenario = scenario_for(strategy, **training)
    scenario.time.duration_s = cycles * 3 * 600.0  # 3 clusters x 600 s slots per cycle
    return scenario, build_schedule(scenario)


@pytest.mark.parametrize("strategy", ["baseline", "emsfl", "emsfl_enhanced"])
def test_idealised_time_gives_one_round_per_slot(tmp_path: Path, strategy: str) -> None:
    scenario, schedule = _idealised(strategy)
    events, engine, summary = run_toy(tmp_path, strategy, schedule=schedule)
    slots = len(schedule.windows)  # 3 clusters x 3 cycles, no idle slots
    assert slots == 9
    trains = [args for kind, args in engine.calls if kind == "train"]
    if strategy == "baseline":
        # the connected cluster trains once per slot (its devices), the others idle
        assert summary["aggregations"] == slots
        per_slot = {int(t // 600) for t, *_ in trains}
        assert per_slot == set(range(slots))
    else:
        # every cluster trains its experts once per slot: M = 3 rounds per cycle per device
        for device in ("a/0", "a/1", "b/0", "b/1", "c/0"):
            times = [t for t, d, *_ in trains if d == device]
            assert [int(t // 600) for t in times] == list(range(slots)), (device, times)


def test_rounds_per_slot_multiplies_the_rounds_and_must_fit(tmp_path: Path) -> None:
    _, schedule = _idealised("emsfl", cycles=1, rounds_per_slot=3)
    _, engine, _ = run_toy(tmp_path, "emsfl", schedule=schedule, rounds_per_slot=3)
    times = [t for kind, (t, d, *_) in engine.calls if kind == "train" and d == "b/0"]
    assert len(times) == 9  # 3 slots x 3 rounds
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="round_interval_s"):
        _idealised("emsfl", cycles=1, rounds_per_slot=10)  # a 100 s round in 60 s: refused by validate


def test_a_compute_model_round_that_does_not_fit_its_slot_share_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emsfl_sim.strategies.base import Strategy

    _, schedule = _idealised("emsfl", cycles=1, rounds_per_slot=10, round_interval_s=None)
    monkeypatch.setattr(Strategy, "round_duration_s", lambda self, *a: 100.0)  # as if from the compute model
    with pytest.raises(InputError, match="rounds_per_slot"):
        run_toy(tmp_path / "x", "emsfl", schedule=schedule, rounds_per_slot=10, round_interval_s=None)


def test_rounds_per_slot_is_refused_in_orbital_time() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="rounds_per_slot"):
        s = scenario_for("emsfl").model_dump()
        s["time"] = {"mode": "orbital", "duration_s": 100}
        s["training"]["rounds_per_slot"] = 2
        type(scenario_for("emsfl")).model_validate(s)


# ------------------------------------------------------------------ 6: upload content
def _two_pass_upload(tmp_path: Path, second_key: int) -> tuple[SimContext, list, list]:
    schedule = constant_schedule({"a": [(0.0, 10.0), (100.0, 200.0)]}, 300.0)
    ctx = SimContext(schedule, Recorder(tmp_path, "x", "2023-07-18T00:00:00Z", ["csv"]))
    snapshots: list[str] = []
    results: list = []

    def snap(tag: str):  # noqa: ANN202
        return lambda: snapshots.append(tag) or tag

    def proc():  # noqa: ANN202
        # 2 MB at 0.8 Mbit/s needs 20 s: the 10 s pass carries 1 MB
        r1 = yield from ctx.upload_all("a", [UploadRequest("d", 2_000_000, 1, snap("v1"))], "experts")
        yield ctx.wait_link_up("a")
        r2 = yield from ctx.upload_all("a", [UploadRequest("d", 2_000_000, second_key, snap("v2"))], "experts")
        results.extend(r1 + r2)

    ctx.env.process(proc())
    ctx.run(300.0)
    return ctx, results, snapshots


def test_an_unchanged_upload_resumes_with_the_content_sent_first(tmp_path: Path) -> None:
    ctx, (r1, r2), snapshots = _two_pass_upload(tmp_path, second_key=1)
    assert not r1.completed and r1.bytes_sent == 1_000_000
    assert r2.completed and r2.bytes_sent == 1_000_000 and r2.content == "v1"
    assert snapshots == ["v1"] and ctx.wasted_uplink_bytes == 0


def test_a_changed_upload_restarts_and_counts_the_wasted_bytes(tmp_path: Path) -> None:
    ctx, (r1, r2), snapshots = _two_pass_upload(tmp_path, second_key=2)
    assert r2.completed and r2.bytes_sent == 2_000_000 and r2.content == "v2"  # what arrives was sent whole
    assert snapshots == ["v1", "v2"] and ctx.wasted_uplink_bytes == 1_000_000
    assert ctx.uplink_bytes == 3_000_000


def test_emsfl_never_aggregates_experts_it_did_not_send(tmp_path: Path) -> None:
    # 1 MB experts at 20 kbit/s need 400 s, more than a 300 s pass; EMS-FL trains between
    # passes, so each pass restarts the upload and no expert aggregation can happen.
    events, engine, summary = run_toy(tmp_path, "emsfl", rate_bps=2e4)
    assert (events["event"] == "upload_restarted").any()
    assert not ((events["event"] == "aggregation") & (events["detail"].str.startswith("experts"))).any()
    restarted = events[events["event"] == "upload_restarted"]["bytes"].sum()
    assert summary["wasted_uplink_mb"] == pytest.approx(restarted / 1e6)
    aggregates = [args for kind, args in engine.calls if kind == "aggregate"]
    assert aggregates  # the gate is still aggregated, so the check below is not vacuous
    for args in aggregates:
        assert all(trained <= engine.trained[dev] for dev, trained in args[3])


# ------------------------------------------------------------------ 7: enhanced gate period
def _periodic(cycles: int, c_window_s: float) -> LinkSchedule:
    spans = {"a": [], "b": [], "c": []}
    for k in range(cycles):
        t = 900.0 * k
        spans["a"].append((t, t + 300.0))
        spans["b"].append((t + 300.0, t + 600.0))
        spans["c"].append((t + 600.0, t + 600.0 + c_window_s))
    return constant_schedule(spans, 900.0 * cycles)


def test_enhanced_gate_period_ends_by_time_when_a_cluster_cannot_do_its_gate_round(tmp_path: Path) -> None:
    # c's 100 s windows never hold a 100 s gate round: the gate period must end by time
    events, engine, summary = run_toy(tmp_path, "emsfl_enhanced", schedule=_periodic(12, 100.0),
                                      strategy_cfg={"enhanced_gate_timeout_cycles": 2})
    trains = [args for kind, args in engine.calls if kind == "train"]
    gate_rounds_a = sorted({t for t, d, _, g in trains if g and d.startswith("a/")})
    assert len(gate_rounds_a) >= 2, gate_rounds_a  # several gate periods, not a stall after the first
    assert summary["gate_period_timeouts"] >= 1 and summary["gate_periods"] >= 2
    assert (events["event"] == "gate_period_timeout").any()


def test_an_interrupted_gate_upload_is_not_counted_and_its_gate_not_adopted(tmp_path: Path) -> None:
    # gate round [0, 100] s, then 100 kB at 50 kbit/s need 16 s: the window ends at 110.5 s
    schedule = constant_schedule({"a": [(0.0, 110.5)], "b": [(300.0, 600.0)], "c": [(600.0, 900.0)]}, 900.0, 5e4)
    events, engine, _ = run_toy(tmp_path, "emsfl", schedule=schedule)
    assert ((events["event"] == "upload_interrupted") & (events["cluster"] == "a")).any()
    assert not ((events["event"] == "gate_update") & (events["cluster"] == "a")).any()
    synced = {args[1] for kind, args in engine.calls if kind == "sync_gate" and args[1].startswith("a/")}
    dropped = {args[1] for kind, args in engine.calls if kind == "drop_gate" and args[1].startswith("a/")}
    assert not synced and dropped == {"a/0", "a/1"}


# ------------------------------------------------------------------ 8: gate by deltas
def test_two_clusters_gate_rounds_from_one_version_both_count() -> None:
    eng = LearningEngine(ModelSpec(preset="tiny", top_k=2), LoraSpec(rank=2, alpha=4),
                         TrainSpec(batch_size=4, max_len=48, local_steps=1), seed=0)
    g0 = eng.initial_state()
    ups = []
    for name, domain in (("A/0", "law"), ("B/0", "medicine")):  # both start from version g0
        dev = eng.new_device(name, g0, [0], train_gate=True, masked=False)
        eng.train_local(dev, make_domain_examples(domain, 8, seed=0), 2, train_gate=True)
        ups.append(eng.make_upload(dev, [], include_gate=True))
    after = eng.aggregate(eng.aggregate(g0, [ups[0]]), [ups[1]])  # overlapping contacts, one after the other
    for k, w0 in g0.gate.items():
        expected = w0 + (ups[0].tensors["gate"][k] - w0) + (ups[1].tensors["gate"][k] - w0)
        assert torch.allclose(after.gate[k], expected, atol=1e-6), k
        assert not torch.allclose(after.gate[k], ups[1].tensors["gate"][k])  # not overwritten by the later one


# ------------------------------------------------------- exact ordered event logs
def _two_cluster_idealised(strategy: str) -> tuple[object, object]:
    from emsfl_sim.scenario.schema import Scenario

    scenario = Scenario.model_validate({
        "name": "trace", "seed": 3, "time": {"mode": "idealised", "duration_s": 1200, "slot_duration_s": 600},
        "clusters": [{"name": "a", "lat_deg": 0, "lon_deg": 0, "devices": 1},
                     {"name": "b", "lat_deg": 0, "lon_deg": 90, "devices": 1}],
        "strategy": {"names": [strategy], "split_every_cycles": 100},
        "training": {"round_interval_s": 100.0, "local_steps": 1},
        "evaluation": {"every_s": 1200}, "output": {"formats": ["csv"], "plots": False, "checkpoints": False},
    })
    return scenario, build_schedule(scenario)


def _trace(events: object) -> list[tuple]:
    def text(v: object) -> str:
        return v if isinstance(v, str) else ""

    return [(round(r.time_s, 3), r.event, text(r.cluster), text(r.device), text(r.detail))
            for r in events.itertuples()]  # type: ignore[attr-defined]


def test_exact_event_log_of_emsfl_in_two_idealised_slots(tmp_path: Path) -> None:
    # 2 clusters x 1 device, 600 s slots, 100 s rounds, 3 fake experts (a owns 0 and 2, b owns 1);
    # upload times: the payloads of tests/fakes.py (gate 100 kB, expert 1 MB) at the idealised rate,
    # emsfl_sim.sim.schedule.idealised_rate_bps (default LinkParams at 45 deg over a 550 km orbit:
    # 21.84 Mbit/s), i.e. 0.037 s for the gate and 0.366 s for one expert
    scenario, schedule = _two_cluster_idealised("emsfl")
    events, _, _ = run_toy(tmp_path, "emsfl", schedule=schedule, scenario=scenario)
    assert _trace(events) == [
        (0.0, "splitting", "", "", "a:0,2; b:1"),
        (0.0, "link_up", "a", "", ""),  # open at t = 0: a's connected phase starts at once
        (100.0, "local_round", "a", "a/0", "loss=1.0000 gate=1"),  # nothing to upload yet: the gate round
        (100.0, "upload_start", "a", "a/0", "gate"),
        (100.0, "local_round", "b", "b/0", "loss=1.0000 gate=0"),  # b trains its expert while disconnected
        (100.037, "upload_complete", "a", "a/0", "gate"),
        (100.037, "gate_update", "a", "", "gate devices=1"),
        (600.0, "link_down", "a", "", ""),  # link changes come before the rounds of the new slot
        (600.0, "link_up", "b", "", ""),
        (600.0, "upload_start", "b", "b/0", "experts"),
        (600.366, "upload_complete", "b", "b/0", "experts"),
        (600.366, "aggregation", "b", "", "experts devices=1"),
        (700.0, "local_round", "a", "a/0", "loss=1.0000 gate=0"),  # one round per slot, aligned to it
        (700.366, "local_round", "b", "b/0", "loss=1.0000 gate=1"),
        (700.366, "upload_start", "b", "b/0", "gate"),
        (700.403, "upload_complete", "b", "b/0", "gate"),
        (700.403, "gate_update", "b", "", "gate devices=1"),
        (1200.0, "link_down", "b", "", ""),
    ]


def test_exact_event_log_of_the_baseline_in_two_idealised_slots(tmp_path: Path) -> None:
    # the baseline uploads the global model (3.1 MB, tests/fakes.py) at the idealised 21.84 Mbit/s: 1.136 s
    scenario, schedule = _two_cluster_idealised("baseline")
    events, _, _ = run_toy(tmp_path, "baseline", schedule=schedule, scenario=scenario)
    assert _trace(events) == [
        (0.0, "link_up", "a", "", ""),
        (100.0, "local_round", "a", "a/0", "loss=1.0000 gate=1"),  # the window at t = 0 is used
        (100.0, "upload_start", "a", "a/0", "experts+gate"),
        (101.136, "upload_complete", "a", "a/0", "experts+gate"),
        (101.136, "aggregation", "a", "", "experts+gate devices=1"),
        (600.0, "link_down", "a", "", ""),  # one round per slot: the rest of the slot is idle
        (600.0, "link_up", "b", "", ""),
        (700.0, "local_round", "b", "b/0", "loss=1.0000 gate=1"),
        (700.0, "upload_start", "b", "b/0", "experts+gate"),
        (701.136, "upload_complete", "b", "b/0", "experts+gate"),
        (701.136, "aggregation", "b", "", "experts+gate devices=1"),
        (1200.0, "link_down", "b", "", ""),
    ]
