"""Full-parameter training (``training.mode: full``), the shared part and the classification head (issue 14)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from emsfl_sim.errors import InputError
from emsfl_sim.learning import aggregate as agg
from emsfl_sim.learning import trained_counts as tc
from emsfl_sim.learning.data import make_classification_examples
from emsfl_sim.learning.engine import LearningEngine
from emsfl_sim.learning.lora import LoraSpec
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.systems_configs import SYSTEMS_CONFIGS
from emsfl_sim.learning.train import TrainSpec
from emsfl_sim.run.checkpoint import CHECKPOINT_NAME, Checkpointer
from emsfl_sim.run.runner import run_scenario
from emsfl_sim.scenario import load_scenario
from tests.fakes import write_yaml

OVERRIDES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
#: the small preset with OVERRIDES, as config_counts reads it (8 experts, top-2, byte vocabulary)
CONFIG = {"model_type": "mixtral", "vocab_size": 259, "hidden_size": 32, "intermediate_size": 64,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 8,
          "num_experts_per_tok": 2, "max_position_embeddings": 1024, "tie_word_embeddings": False}
EXPERT_PARAMS = ("gate_up_proj", "down_proj")


def _engine(mode: str = "full", shared: str = "gate_backbone", head: str = "classification") -> LearningEngine:
    spec = ModelSpec(preset="small", config_overrides=dict(OVERRIDES), head=head, num_labels=2)
    train = TrainSpec(mode=mode, shared=shared, batch_size=4, max_len=48, learning_rate=1e-2)
    return LearningEngine(spec, LoraSpec(), train, seed=0, device="cpu")


def _examples(n: int = 16) -> list:
    return make_classification_examples("negation", n, seed=0)


def _requiring_grad(engine: LearningEngine, dev, train_gate: bool) -> set[str]:
    """Names of the model parameters that require a gradient during the device's first step."""
    seen: set[str] = set()
    model, _, _ = engine.model_for(dev)

    def hook(module: torch.nn.Module, args: object) -> None:
        if not seen:
            seen.update(n for n, p in module.named_parameters() if p.requires_grad)

    handle = model.register_forward_pre_hook(hook)
    try:
        engine.train_local(dev, _examples(), 2, train_gate)
    finally:
        handle.remove()
    return seen


def _kind(name: str) -> str:
    if ".mlp.experts." in name:
        return "experts"
    return "router" if ".mlp.gate." in name else "backbone"


def test_full_mode_gradients_reach_exactly_the_trained_parts() -> None:
    eng = _engine()
    state = eng.initial_state()
    dev = eng.new_device("d", state, [1, 3], train_gate=False, masked=False)
    assert sorted(dev.lora) == [1, 3] and dev.gate is None  # the device copies only what it trains
    # Disconnected round: only the fused expert tensors take gradients (of them, the device keeps its slices).
    assert {_kind(n) for n in _requiring_grad(eng, dev, False)} == {"experts"}
    for e in (1, 3):  # its experts moved (a layer whose expert no token picked keeps a zero gradient)
        assert any(not torch.equal(dev.lora[e][k], w) for k, w in state.experts[e].items()), e
    params = dict(eng.model.named_parameters())
    for i, layer in enumerate(eng.adapter.expert_parameters(eng.model)):  # the others stayed as they were
        for pname, p in layer.items():
            for e in (0, 2, 4, 5, 6, 7):
                assert torch.equal(p[e], state.experts[e][f"layers.{i}.{pname}"]), (e, i, pname)
    for name, p in params.items():  # the model holds the snapshot everywhere but the device's experts
        if _kind(name) == "backbone":
            assert torch.equal(p, state.gate["backbone." + name]), name
    # Connected round: routers and the whole backbone (attention, norms, embeddings, score head) train too.
    connected = eng.new_device("c", state, [1, 3], train_gate=True, masked=False)
    names = _requiring_grad(eng, connected, True)
    assert {_kind(n) for n in names} == {"experts", "router", "backbone"}
    assert {n for n in params if _kind(n) == "backbone"} <= names and "score.weight" in names
    assert connected.gate is not None
    assert not torch.equal(connected.gate["backbone.score.weight"], state.gate["backbone.score.weight"])
    assert not torch.equal(connected.gate["layers.0.gate"], state.gate["layers.0.gate"])
    assert eng.initial_state() is state and all(s is state.experts[e] for e, s in eng.initial_state().experts.items())


def test_full_weights_aggregate_to_the_sample_weighted_mean() -> None:
    g = torch.Generator().manual_seed(0)
    W0 = {"layers.0.down_proj": torch.randn(3, 4, generator=g)}
    W1 = {"layers.0.down_proj": torch.randn(3, 4, generator=g)}
    W2 = {"layers.0.down_proj": torch.randn(3, 4, generator=g)}
    out = agg.aggregate_experts_full({5: W0}, [({5: W1}, {5: W0}, 1.0), ({5: W2}, {5: W0}, 3.0)])
    hand = (1.0 * W1["layers.0.down_proj"] + 3.0 * W2["layers.0.down_proj"]) / 4.0
    torch.testing.assert_close(out[5]["layers.0.down_proj"], hand, rtol=0, atol=1e-6)
    # a stale upload counts by its change against the version it started from
    base = {"layers.0.down_proj": torch.randn(3, 4, generator=g)}
    out = agg.aggregate_experts_full({5: W0}, [({5: W1}, {5: base}, 2.0)])
    torch.testing.assert_close(out[5]["layers.0.down_proj"],
                               W0["layers.0.down_proj"] + W1["layers.0.down_proj"] - base["layers.0.down_proj"])


def test_engine_aggregates_two_devices_full_weights_by_samples() -> None:
    eng = _engine(shared="gate")
    state = eng.initial_state()
    a = eng.new_device("a", state, [2], train_gate=False, masked=False)
    b = eng.new_device("b", state, [2], train_gate=False, masked=False)
    eng.train_local(a, _examples(8), 2, False)
    eng.train_local(b, make_classification_examples("compare", 24, seed=0), 2, False)
    ups = [eng.make_upload(a, [2], False), eng.make_upload(b, [2], False)]
    assert [u.num_samples for u in ups] == [8, 24]
    new = eng.aggregate(state, ups)
    assert new.version[2] == 1 and new.version[0] == 0 and new.experts[0] is state.experts[0]
    for key in state.experts[2]:
        hand = (8 * a.lora[2][key] + 24 * b.lora[2][key]) / 32
        torch.testing.assert_close(new.experts[2][key], hand.detach(), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("mode", "shared"), [("full", "gate_backbone"), ("full", "gate"), ("full", "none"),
                                              ("lora", "gate_backbone")])
def test_payloads_are_the_uploaded_tensors_and_the_config_counts(mode: str, shared: str) -> None:
    eng = _engine(mode, shared)
    dev = eng.new_device("d", eng.initial_state(), [0, 4], train_gate=shared != "none", masked=False)
    eng.train_local(dev, _examples(), 1, shared != "none")
    up = eng.make_upload(dev, [0, 4], include_gate=shared != "none")
    sent = sum(t.numel() for s in up.tensors["experts"].values() for t in s.values())
    sent += sum(t.numel() for t in up.tensors["gate"].values())
    assert up.payload_bytes == 4 * sent == eng.payload_bytes([0, 4], True)
    assert eng.payload_bytes([0, 4], True) == tc.upload_payload_bytes(
        CONFIG, 2, True, mode=mode, shared=shared, dtype_bytes=4, head="classification", num_labels=2)


def test_one_mixtral_8x7b_expert_by_hand() -> None:
    # mistralai/Mixtral-8x7B-v0.1 config.json (learning/systems_configs.py): hidden_size 4096,
    # intermediate_size 14336, num_hidden_layers 32; one expert per layer is w1, w3 [14336, 4096] and
    # w2 [4096, 14336] (transformers' gate_up_proj [2I, H] + down_proj [H, I]), sent in bfloat16.
    cfg = SYSTEMS_CONFIGS["mixtral-8x7b"]
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]) == (4096, 14336, 32)
    per_layer = 2 * 14336 * 4096 + 4096 * 14336
    assert tc.expert_parameters(cfg, "full") == 32 * per_layer == 5_637_144_576  # "about 5.6 B" (design note)
    assert tc.upload_payload_bytes(cfg, 1, False, mode="full", dtype_bytes=2) == 11_274_289_152
    # the routers: 32 layers x [8, 4096]
    assert tc.shared_parameters(cfg, "gate") == 32 * 8 * 4096


def test_shared_none_trains_and_sends_nothing_shared() -> None:
    eng = _engine(shared="none")
    assert not eng.trains_shared
    assert eng.payload_bytes([0], True) == eng.payload_bytes([0], False)
    dev = eng.new_device("d", eng.initial_state(), [0], train_gate=False, masked=False)
    with pytest.raises(ValueError, match="nothing shared trains"):
        eng.train_local(dev, _examples(), 1, True)


def test_enhanced_full_device_holds_only_its_experts() -> None:
    eng = _engine()
    dev = eng.new_device("m", eng.initial_state(), [5, 6], train_gate=False, masked=True)
    eng.train_local(dev, _examples(), 2, False)
    model, adapter, index = eng.model_for(dev)
    assert index == [5, 6] and adapter.num_experts == 2
    assert all(p.shape[0] == 2 for layer in adapter.expert_parameters(model) for p in layer.values())
    assert not any("lora" in n for n, _ in model.named_parameters())  # full mode loads no LoRA anywhere
    up = eng.make_upload(dev, [5, 6], False)
    new = eng.aggregate(eng.initial_state(), [up])
    assert new.version[5] == new.version[6] == 1
    for key in new.experts[5]:
        torch.testing.assert_close(new.experts[5][key], dev.lora[5][key].detach(), rtol=0, atol=1e-6)


TINY_CLS = {
    "name": "tiny-cls", "seed": 1,
    "time": {"mode": "idealised", "orbital_cycles": 2, "slot_duration_s": 600},
    "clusters": [{"name": "a", "lat_deg": 48.1, "lon_deg": 11.6, "devices": 2, "domain": "same_entity"},
                 {"name": "b", "lat_deg": 39.7, "lon_deg": -105.0, "devices": 2, "domain": "negation"}],
    "model": {"preset": "small", "config_overrides": dict(OVERRIDES), "head": "classification"},
    "data": {"task": "classification", "samples_per_device": 12, "test_samples_per_domain": 16},
    "training": {"mode": "full", "shared": "gate_backbone", "local_steps": 2, "batch_size": 4,
                 "round_interval_s": 300},
    "strategy": {"names": ["baseline", "emsfl", "emsfl_enhanced"], "split_every_cycles": 1,
                 "enhanced_expert_cycles": 1, "enhanced_gate_rounds": 1},
    "evaluation": {"every_cycles": 0.5, "target_accuracy": 0.6},
    "output": {"plots": False},
}


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, dict[str, bytes]]:
    """A classification-head run in full mode of every strategy, with each strategy's second checkpoint."""
    tmp = tmp_path_factory.mktemp("cls")
    saved: dict[str, bytes] = {}
    counts: dict[Path, int] = {}
    original = Checkpointer.save

    def save(self: Checkpointer, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        counts[self.path] = counts.get(self.path, 0) + 1
        if counts[self.path] == 2:
            saved[self.path.parent.name] = self.path.read_bytes()

    mp = pytest.MonkeyPatch()
    mp.setattr(Checkpointer, "save", save)
    try:
        table = run_scenario(load_scenario(write_yaml(tmp, TINY_CLS)), out=tmp / "run", progress=False,
                             log=lambda _: None)
    finally:
        mp.undo()
    return tmp / "run", table, saved


def test_a_classification_head_run_end_to_end_on_every_strategy(cls_run) -> None:
    directory, table, _ = cls_run
    assert list(table["strategy"]) == ["baseline", "emsfl", "emsfl_enhanced"]
    for name in table["strategy"]:
        metrics = pd.read_csv(directory / name / "metrics.csv")
        for col in ("accuracy", "accuracy/same_entity", "accuracy/negation"):
            assert metrics[col].between(0, 1).all(), (name, col)
        assert (metrics["n"] == 32).all()
        events = pd.read_csv(directory / name / "events.csv")
        assert "aggregation" in set(events["event"]) or "gate_update" in set(events["event"])
        summary = json.loads((directory / name / "summary.json").read_text())
        assert summary["peak_device_memory_mb"] > 0
    events = pd.read_csv(directory / "emsfl" / "events.csv")
    assert (events["event"] == "gate_update").sum() > 0  # the shared part (gate + backbone) travels
    peak = table.set_index("strategy")["peak_device_memory_mb"]
    assert peak["emsfl_enhanced"] < peak["emsfl"] < peak["baseline"]  # full mode: memory still honest


def test_full_mode_resumes_from_a_mid_run_checkpoint(cls_run, tmp_path: Path) -> None:
    directory, _, saved = cls_run
    crashed = tmp_path / "run"
    shutil.copytree(directory, crashed)
    (crashed / "emsfl" / "summary.json").unlink()
    (crashed / "emsfl" / CHECKPOINT_NAME).write_bytes(saved["emsfl"])
    lines: list[str] = []
    run_scenario(load_scenario(write_yaml(tmp_path, TINY_CLS)), strategies=["emsfl"], out=crashed,
                 progress=False, log=lines.append)
    assert any("resuming from the checkpoint at" in line for line in lines), lines
    for table in ("metrics.csv", "events.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(directory / "emsfl" / table), pd.read_csv(crashed / "emsfl" / table))


@pytest.mark.parametrize(("changes", "message"), [
    ({"model": {"preset": "tiny", "lora": {"rank": 8}}}, "model.lora: LoRA settings are not used"),
    ({"data": {"task": "mcqa"}}, "a classification head needs labels"),
    ({"model": {"preset": "small", "head": "classification", "pretrain_steps": 10}}, "pretrain_steps"),
])
def test_settings_that_full_mode_or_the_head_cannot_use_are_refused(tmp_path: Path, changes: dict,
                                                                     message: str) -> None:
    raw = copy.deepcopy(TINY_CLS)
    for section, values in changes.items():
        raw[section] = {**raw[section], **values}
    with pytest.raises(InputError, match=message):
        load_scenario(write_yaml(tmp_path, raw))


REPO = Path(__file__).resolve().parents[1]


def test_mixtral_8x7b_full_expert_uploads_resume_over_many_passes_and_the_bytes_add_up(tmp_path: Path) -> None:
    """The systems case of scenarios/mixtral-8x7b-full-uploads.yaml as a 12-day timeline run (no torch)."""
    scenario = load_scenario(REPO / "scenarios" / "mixtral-8x7b-full-uploads.yaml",
                             overrides={"simulate": "timeline", "time.duration_s": 12 * 86400.0})
    run_scenario(scenario, out=tmp_path / "run", progress=False, log=lambda _: None)
    events = pd.read_csv(tmp_path / "run" / "emsfl" / "events.csv")
    uploads = events[events["event"].isin(["upload_interrupted", "upload_complete"])
                     & events["detail"].astype(str).str.startswith("experts")]
    jobs = 0
    for _, rows in uploads.groupby("device"):
        sent = 0.0
        interrupted = 0
        for row in rows.itertuples():
            sent += row.bytes
            if row.event == "upload_interrupted":
                interrupted += 1
                continue
            assert sent == row.bytes_total  # every byte of the snapshot arrived, across the passes
            assert row.bytes_total >= tc.upload_payload_bytes(SYSTEMS_CONFIGS["mixtral-8x7b"], 1, False, mode="full")
            assert interrupted >= 10  # one expert (11.27 GB) needs more than ten 0.7 GB passes
            jobs += 1
            sent, interrupted = 0.0, 0
    assert jobs >= 1
    aggregations = events[events["event"] == "aggregation"]
    # each aggregation takes the completed jobs of its cluster's devices ("experts devices=N")
    assert aggregations["detail"].str.extract(r"devices=(\d+)")[0].astype(int).sum() == jobs
    baseline = pd.read_csv(tmp_path / "run" / "baseline" / "events.csv")
    assert "upload_start" not in set(baseline["event"]) and (baseline["event"] == "round_skipped").any()


@pytest.mark.parametrize("shared", ["gate_backbone", "none"])
def test_timeline_and_learning_payloads_agree_in_full_mode(tmp_path: Path, shared: str) -> None:
    from emsfl_sim.run.timeline_counts import timeline_systems
    from emsfl_sim.run.world import build_learning_world

    raw = copy.deepcopy(TINY_CLS)
    raw["training"] = {**raw["training"], "shared": shared}
    scenario = load_scenario(write_yaml(tmp_path, raw))
    world = build_learning_world(scenario, log=lambda _: None)
    assert timeline_systems(scenario).payloads == world.payloads
    assert world.payloads.gate_bytes == (0 if shared == "none" else world.engine.payload_bytes([], True))


def test_payloads_command_shows_why_full_expert_upload_is_infeasible(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from emsfl_sim.cli.main import main

    out = tmp_path / "payloads.csv"
    assert main(["payloads", str(REPO / "scenarios" / "mixtral-8x7b-full-uploads.yaml"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "median pass volume per device" in printed and "mixtral-8x7b" in printed
    table = pd.read_csv(out).set_index(["model", "strategy", "upload"])
    expert = 11_274_289_152  # test_one_mixtral_8x7b_expert_by_hand
    routers = 2 * 32 * 8 * 4096  # bfloat16 x 32 layers x [8, 4096]
    base = table.loc[("mixtral-8x7b", "baseline", "experts+shared")]
    assert (base["experts"], base["bytes"]) == (8, 8 * expert + routers)
    ems = table.loc[("mixtral-8x7b", "emsfl", "experts")]
    assert (ems["experts"], ems["bytes"]) == (3, 3 * expert)  # ceil(8 experts / 3 clusters)
    assert ems["passes_needed"] > 10 and base["passes_needed"] > 8 * ems["passes_needed"] / 3 - 1e-9
    assert table.loc[("tiny mixtral preset", "emsfl", "shared"), "bytes"] == 4 * 4 * 4 * 128  # fp32 routers
