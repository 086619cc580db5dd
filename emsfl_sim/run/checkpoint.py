"""Resume inside a strategy: checkpoints at evaluation boundaries, replayed up to.

SimPy processes are generators, which cannot be saved, so a checkpoint does not
hold the event loop. It holds the *learning* state as data (the satellite's
global model, every device's LoRA, gate and optimiser state, the devices' data
streams, the contents of uploads in flight, torch's RNG) and the journal of
what every learning call returned that the event loop reads (losses and token
counts, versions after aggregation, expert relevances for splitting,
evaluations). A resumed run rebuilds the event loop by replaying it from t = 0
with the journal standing in for the learning work (:class:`JournaledEngine`,
no torch work: a replayed call returns a placeholder or its journaled value),
so the strategy's processes, the links, the uploads in flight and the recorder
reach exactly the state of the checkpoint's evaluation; there the saved learning
state is put in place of the placeholders and the run continues for real. The
metrics then equal those of an uninterrupted run.

A checkpoint stays small: tensors still identical to the initial global model
(the frozen base after gate pre-training) are saved as references to it, and a
strategy keeps one checkpoint (``<strategy>/checkpoint.pt``, replaced atomically
at each evaluation, removed when the strategy finishes).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emsfl_sim.results import atomic_write

if TYPE_CHECKING:
    from emsfl_sim.learning.engine import LearningEngine, ModelState
    from emsfl_sim.sim.engine import SimContext
    from emsfl_sim.strategies.base import Strategy

#: The checkpoint file inside a strategy's directory.
CHECKPOINT_NAME = "checkpoint.pt"
#: Bumped when the layout changes (an older checkpoint is then not used).
CHECKPOINT_FORMAT = 1


class ReplayMismatch(RuntimeError):
    """The replay of a checkpoint's journal did not reproduce the saved run."""


@dataclasses.dataclass
class Placeholder:
    """What a replayed learning call returns instead of a device state, upload or model state.

    ``version`` and ``gate_version`` are those of the global model a replayed
    aggregation produced (strategies read them for staleness).
    """

    kind: str
    version: dict[int, int] = dataclasses.field(default_factory=dict)
    gate_version: int = 0


class JournaledEngine:
    """The learning engine as the event loop sees it: records small results, or replays them.

    Recording (the default), each call runs on the real engine and its result's
    event-loop-visible part is appended to :attr:`journal`. Given ``replay`` (a saved
    journal, which ends with the checkpoint's evaluation), the calls return the
    journaled values and placeholders instead, in order, until the journal is used up;
    then recording resumes (the caller restores the saved state at that evaluation).
    Attributes other than the journaled calls are the real engine's.
    """

    def __init__(self, engine: LearningEngine, replay: list[tuple[str, Any]] | None = None) -> None:
        self._engine = engine
        self.journal: list[tuple[str, Any]] = []
        self._replay = list(replay) if replay else None
        if self._replay and self._replay[-1][0] != "evaluate":
            raise ReplayMismatch("a checkpoint's journal ends with its evaluation")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    @property
    def replaying(self) -> bool:
        """Whether calls are still answered from the saved journal."""
        return self._replay is not None

    def _replayed(self, call: str) -> Any:
        assert self._replay is not None
        entry = self._replay[len(self.journal)]
        if entry[0] != call:
            raise ReplayMismatch(f"call {len(self.journal) + 1} of the journal is {entry[0]}, the replay made {call}")
        self.journal.append(entry)
        if len(self.journal) == len(self._replay):
            self._replay = None  # used up, at the checkpoint's evaluation: real calls from here on
        return entry[1]

    def new_device(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`LearningEngine.new_device` (replayed: a placeholder)."""
        if self.replaying:
            self._replayed("new_device")
            return Placeholder("device")
        self.journal.append(("new_device", None))
        return self._engine.new_device(*args, **kwargs)

    def train_local(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`LearningEngine.train_local` (journaled: its :class:`TrainResult`)."""
        if self.replaying:
            return self._replayed("train_local")
        result = self._engine.train_local(*args, **kwargs)
        self.journal.append(("train_local", result))
        return result

    def make_upload(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`LearningEngine.make_upload` (replayed: a placeholder)."""
        if self.replaying:
            self._replayed("make_upload")
            return Placeholder("upload")
        self.journal.append(("make_upload", None))
        return self._engine.make_upload(*args, **kwargs)

    def aggregate(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`LearningEngine.aggregate` (journaled: the versions of the new global model)."""
        if self.replaying:
            version, gate_version = self._replayed("aggregate")
            return Placeholder("model", dict(version), int(gate_version))
        state = self._engine.aggregate(*args, **kwargs)
        self.journal.append(("aggregate", (dict(state.version), int(state.gate_version))))
        return state

    def sync_gate(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`LearningEngine.sync_gate` (replayed: nothing)."""
        self._side_effect("sync_gate", self._engine.sync_gate, args, kwargs)

    def drop_local_gate(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`LearningEngine.drop_local_gate` (replayed: nothing)."""
        self._side_effect("drop_local_gate", self._engine.drop_local_gate, args, kwargs)

    def _side_effect(self, call: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        if self.replaying:
            self._replayed(call)
            return
        self.journal.append((call, None))
        fn(*args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> dict:
        """:meth:`LearningEngine.evaluate` (journaled: the metrics)."""
        if self.replaying:
            return dict(self._replayed("evaluate"))
        result = self._engine.evaluate(*args, **kwargs)
        self.journal.append(("evaluate", dict(result)))
        return result

    def expert_relevance(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`LearningEngine.expert_relevance` (journaled: the relevance matrix)."""
        if self.replaying:
            return self._replayed("expert_relevance").copy()
        result = self._engine.expert_relevance(*args, **kwargs)
        self.journal.append(("expert_relevance", result.copy()))
        return result


class _InitialRef:
    """Stands for a tensor dict of the initial global model in a saved checkpoint."""

    def __init__(self, key: str) -> None:
        self.key = key


class _Packer:
    """Replaces the initial model's tensor dicts by references, keeping shared objects shared."""

    def __init__(self, initial: ModelState) -> None:
        self._by_id = {id(d): f"expert{e}" for e, d in initial.experts.items()}
        self._by_id[id(initial.gate)] = "gate"
        self._by_key = {f"expert{e}": d for e, d in initial.experts.items()} | {"gate": initial.gate}
        self._memo: dict[int, Any] = {}

    def tensors(self, d: Any) -> Any:
        key = self._by_id.get(id(d))
        return _InitialRef(key) if key is not None else d

    def untensors(self, d: Any) -> Any:
        return self._by_key[d.key] if isinstance(d, _InitialRef) else d

    def state(self, state: ModelState) -> ModelState:
        if id(state) not in self._memo:
            self._memo[id(state)] = dataclasses.replace(
                state, experts={e: self.tensors(d) for e, d in state.experts.items()}, gate=self.tensors(state.gate))
        return self._memo[id(state)]

    def unstate(self, state: ModelState) -> ModelState:
        if id(state) not in self._memo:
            self._memo[id(state)] = dataclasses.replace(
                state, experts={e: self.untensors(d) for e, d in state.experts.items()},
                gate=self.untensors(state.gate))
        return self._memo[id(state)]

    def any(self, value: Any, pack: bool) -> Any:
        """A device state or upload with its model-state and gate references (un)packed."""
        from emsfl_sim.learning.engine import ModelState

        if value is None or not dataclasses.is_dataclass(value) or isinstance(value, type):
            return value
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if isinstance(item, ModelState):
                changes[f.name] = self.state(item) if pack else self.unstate(item)
            elif f.name == "gate_base" and item is not None:
                changes[f.name] = self.tensors(item) if pack else self.untensors(item)
            elif f.name == "expert_base" and item is not None:  # full mode: the experts an upload started from
                changes[f.name] = {e: self.tensors(d) if pack else self.untensors(d) for e, d in item.items()}
        return dataclasses.replace(value, **changes) if changes else value


def initial_fingerprint(initial: ModelState) -> str:
    """A digest of the initial global model's values (a checkpoint must resume on the same one)."""
    digest = hashlib.sha256()
    tensors = [t for _, d in sorted(initial.experts.items()) for _, t in sorted(d.items())]
    tensors += [t for _, t in sorted(initial.gate.items())]
    for t in tensors:
        digest.update(f"{float(t.double().sum()):.17g},{float(t.double().abs().sum()):.17g};".encode())
    return digest.hexdigest()[:16]


def _counters(strategy: Strategy, ctx: SimContext) -> list[float]:
    """Numbers the replay must reproduce exactly (a cheap check that it did)."""
    return [ctx.now, ctx.recorder.event_count, len(ctx.recorder.metrics), ctx.uplink_bytes,
            ctx.completed_uploads, ctx.interrupted_uploads, strategy.aggregations, strategy.local_rounds,
            strategy.tokens_processed, len(strategy.staleness)]


class Checkpointer:
    """Saves, loads and restores one strategy's checkpoint (``<strategy>/checkpoint.pt``)."""

    def __init__(self, directory: Path, initial: ModelState) -> None:
        self.path = Path(directory) / CHECKPOINT_NAME
        self.initial = initial
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """:func:`initial_fingerprint` of the initial model (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = initial_fingerprint(self.initial)
        return self._fingerprint

    def save(self, strategy: Strategy, ctx: SimContext, engine: JournaledEngine) -> None:
        """Write the checkpoint of the current instant (right after an evaluation)."""
        import torch

        packer = _Packer(self.initial)
        devices = [d for ds in strategy.devices.values() for d in ds]
        data = {
            "format": CHECKPOINT_FORMAT,
            "initial": self.fingerprint,
            "time_s": ctx.now,
            "counters": _counters(strategy, ctx),
            "journal": engine.journal,
            "global": packer.state(strategy.state),
            "devices": {d.name: packer.any(d.state, True) for d in devices},
            "streams": {d.name: d.stream.state_dict() for d in devices},
            "uploads": {k: packer.any(v, True) for k, v in ctx.upload_contents().items()},
            "views": _views_data(strategy, packer),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        atomic_write(self.path, lambda handle: torch.save(data, handle))

    def load(self, device: Any = "cpu") -> tuple[dict[str, Any] | None, str]:
        """The saved checkpoint (tensors on ``device``), or None and why it cannot be used ("" if none).

        Loading maps every tensor at once, so a device's optimiser still holds the very
        tensors of its LoRA.
        """
        import torch

        if not self.path.is_file():
            return None, ""
        try:
            data = torch.load(self.path, map_location=device, weights_only=False)
        except Exception as exc:  # a truncated or foreign file: not resumable, never fatal
            return None, f"unreadable ({type(exc).__name__})"
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            return None, "written by another version of the checkpoint format"
        if data.get("initial") != self.fingerprint:
            return None, "made on another initial model"
        return data, ""

    def restore(self, data: dict[str, Any], strategy: Strategy, ctx: SimContext) -> None:
        """Put the saved learning state in place of the replay's placeholders (at the saved instant).

        Raises
        ------
        ReplayMismatch
            When the replay did not reach the saved state (counters, versions, devices, uploads).
        """
        import torch

        if _counters(strategy, ctx) != data["counters"]:
            raise ReplayMismatch(f"replayed counters {_counters(strategy, ctx)} != saved {data['counters']}")
        packer = _Packer(self.initial)
        state = packer.unstate(data["global"])
        if state.version != strategy.state.version or state.gate_version != strategy.state.gate_version:
            raise ReplayMismatch("replayed model versions differ from the saved ones")
        for dev in (d for ds in strategy.devices.values() for d in ds):
            saved = data["devices"].get(dev.name)
            if (saved is None) != (dev.state is None):
                raise ReplayMismatch(f"device {dev.name} holds a model in one run and none in the other")
            dev.state = packer.any(saved, False)
            dev.stream.load_state_dict(data["streams"][dev.name])
        strategy.state = state
        saved_views = data.get("views")
        if (saved_views is None) != (strategy.views is None):
            raise ReplayMismatch("one run keeps per-satellite models and the other does not")
        if strategy.views is not None and saved_views is not None:
            if sorted(saved_views["log"]) != sorted(strategy.views.log):
                raise ReplayMismatch("the replayed satellite aggregations differ from the saved ones")
            unpacked = _unpack_views(saved_views, packer)
            strategy.views.views = unpacked["views"]
            for index, uploads in unpacked["log"].items():
                strategy.views.log[index].uploads = uploads
        try:
            ctx.restore_upload_contents({k: packer.any(v, False) for k, v in data["uploads"].items()}, Placeholder)
        except LookupError as exc:
            raise ReplayMismatch(str(exc)) from None
        torch.set_rng_state(data["torch_rng"].cpu())
        if data.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in data["cuda_rng"]])

    def remove(self) -> None:
        """Delete the checkpoint (the strategy finished, or it cannot be used)."""
        self.path.unlink(missing_ok=True)



def _views_data(strategy: Strategy, packer: _Packer) -> dict[str, Any] | None:
    """The per-satellite models and the uploads of aggregations still travelling (None without views)."""
    views = strategy.views
    if views is None:
        return None
    return {"views": {sat: packer.state(st) for sat, st in views.views.items()},
            "log": {i: [packer.any(u, True) for u in agg.uploads] for i, agg in views.log.items()}}


def _unpack_views(data: dict[str, Any], packer: _Packer) -> dict[str, Any]:
    return {"views": {sat: packer.unstate(st) for sat, st in data["views"].items()},
            "log": {i: [packer.any(u, False) for u in ups] for i, ups in data["log"].items()}}
