"""A fake learning engine and toy worlds for trace tests of the event loop and the strategies,
plus the small plain helpers several test modules share (pytest fixtures live in conftest.py).

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
import yaml

from emsfl_sim.link import PassCapacity
from emsfl_sim.run.runner import run_strategy
from emsfl_sim.scenario.schema import Scenario
from emsfl_sim.sim.engine import SimContext
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
    device: str = ""
    trained: int = 0  # the device's local rounds when the snapshot was taken (what was sent)


@dataclass
class FakeEngine:
    """Counts calls; accuracy grows with the number of aggregated expert updates."""

    num_experts: int = 3
    device: str = "cpu"
    calls: list[tuple[str, Any]] = field(default_factory=list)
    now: Any = None  # set to a callable returning simulated time
    batches: dict[str, list[list[Any]]] = field(default_factory=dict)  # device -> batches drawn, in order
    trained: dict[str, int] = field(default_factory=dict)  # device -> local rounds so far

    def new_device(self, name: str, state: FakeState, experts: list[int], train_gate: bool, masked: bool) -> FakeDevice:
        return FakeDevice(name, list(experts), train_gate, masked)

    def data_stream(self, name: str, examples: list) -> Any:
        from emsfl_sim.learning.data import DeviceDataStream
        from emsfl_sim.rng import rng

        return DeviceDataStream(examples, 4, rng(0, "batches", name))

    def train_local(self, dev: FakeDevice, stream: Any, steps: int, train_gate: bool) -> Any:
        self.calls.append(("train", (self.now(), dev.name, tuple(dev.experts), train_gate)))
        for _ in range(steps):
            self.batches.setdefault(dev.name, []).append(stream.next_batch())
        self.trained[dev.name] = self.trained.get(dev.name, 0) + 1

        @dataclass
        class R:
            loss: float = 1.0
            steps: int = 0
            tokens: int = 0

        return R(steps=steps, tokens=10 * steps)

    def sync_gate(self, dev: FakeDevice, state: FakeState) -> None:
        self.calls.append(("sync_gate", (self.now(), dev.name)))
        dev.train_gate = False

    def drop_local_gate(self, dev: FakeDevice) -> None:
        self.calls.append(("drop_gate", (self.now(), dev.name)))
        dev.train_gate = False

    def make_upload(self, dev: FakeDevice, experts: list[int], include_gate: bool) -> FakeUpload:
        return FakeUpload(list(experts), include_gate, dev.name, self.trained.get(dev.name, 0))

    def aggregate(self, state: FakeState, uploads: list[FakeUpload]) -> FakeState:
        version = dict(state.version)
        for e in uploads[0].experts:
            version[e] = version.get(e, 0) + 1
        self.calls.append(("aggregate", (self.now(), tuple(uploads[0].experts), uploads[0].include_gate,
                                         tuple((u.device, u.trained) for u in uploads))))
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
    data.train = {c.name: [[f"{c.name}/{i}#{k}" for k in range(8)] for i in range(c.devices)]
                  for c in scenario.clusters}
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


def scenario_for(strategy: str, strategy_cfg: dict | None = None, **training: Any) -> Scenario:
    return Scenario.model_validate({
        "name": "toy",
        "seed": 3,
        "time": {"mode": "idealised", "duration_s": 4000},
        "clusters": [{"name": "a", "lat_deg": 0, "lon_deg": 0, "devices": 2},
                     {"name": "b", "lat_deg": 0, "lon_deg": 90, "devices": 2},
                     {"name": "c", "lat_deg": 0, "lon_deg": 180, "devices": 1}],
        "strategy": {"names": [strategy], "split_every_cycles": 100, "enhanced_expert_cycles": 1,
                     "enhanced_gate_rounds": 1, **(strategy_cfg or {})},
        "training": {"round_interval_s": 100.0, **training},
        "evaluation": {"every_s": 500},
        "output": {"formats": ["csv"], "plots": False, "checkpoints": False},  # fakes hold no tensors to save
    })


def constant_schedule(spans: dict[str, list[tuple[float, float]]], duration_s: float, rate_bps: float = 8e5,
                      cycle_s: float = 900.0) -> LinkSchedule:
    """A test schedule: each cluster's (start_s, end_s) windows at one constant rate (clusters in dict order)."""
    windows = [LinkWindow(c, s, e, "SAT", PassCapacity.constant(s, e, rate_bps)) for c, ss in spans.items()
               for s, e in ss]
    return LinkSchedule(windows, cycle_s=cycle_s, duration_s=duration_s, clusters=list(spans), mode="test")


def toy_schedule(rate_bps: float = 8e5) -> LinkSchedule:
    """Windows: a [0, 300] and [900, 1200]; b [300, 600] and [1200, 1500]; c [600, 700] (too short)."""
    spans = {"a": [(0, 300), (900, 1200)], "b": [(300, 600), (1200, 1500)], "c": [(600, 700)]}
    return constant_schedule(spans, 2000.0, rate_bps)


def run_toy(tmp_path: Path, strategy: str, rate_bps: float = 8e5, schedule: LinkSchedule | None = None,
            strategy_cfg: dict | None = None, scenario: Scenario | None = None,
            **training: Any) -> tuple[pd.DataFrame, FakeEngine, dict]:
    scenario = scenario or scenario_for(strategy, strategy_cfg, **training)
    engine = FakeEngine()
    world = make_world(scenario, engine)
    schedule = schedule or toy_schedule(rate_bps)
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


# ------------------------------------------------------------ shared plain helpers
#: The 8-byte PNG file signature (PNG specification, ISO/IEC 15948:2004, sec. 5.2).
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: ISS (ZARYA), epoch 2008 day 264.51782528 (valid checksums): the worked example of the
#: Wikipedia article "Two-line element set" (not in the installed sgp4 package's docs or data).
ISS_TLE = (
    "ISS (ZARYA)",
    "1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927",
    "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537",
)


def write_yaml(folder: Path, data: dict, name: str = "s.yaml") -> Path:
    """``data`` as YAML in ``folder/name`` (a scenario file for load_scenario or the CLI)."""
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return path


def rician_ergodic_quad(snr: float, k: float) -> float:
    """E[log2(1 + snr X)] by adaptive quadrature over the Rician power pdf
    f(x) = (K+1) e^{-K-(K+1)x} I0(2 sqrt(K(K+1)x)), written with i0e for stability.

    The independent reference of docs/link-model.md sec. 2 (``scipy.integrate.quad`` over the
    pdf with ``scipy.special.i0e``), against which the code's MGF quadrature is checked.
    """
    import math

    from scipy import integrate, special

    def f(x: float) -> float:
        z = 2.0 * math.sqrt(k * (k + 1.0) * x)
        pdf = (k + 1.0) * math.exp(-((math.sqrt((k + 1.0) * x) - math.sqrt(k)) ** 2)) * special.i0e(z)
        return math.log2(1.0 + snr * x) * pdf

    return integrate.quad(f, 0, np.inf, limit=400, epsabs=0, epsrel=1e-11)[0]


def tiny_mixtral(top_k: int) -> Any:
    """A random 2-layer, 4-expert Mixtral over the byte vocabulary (259), seeded (torch seed 0), in eval mode."""
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    cfg = MixtralConfig(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                        num_experts_per_tok=top_k, max_position_embeddings=256)
    return MixtralForCausalLM(cfg).eval()
