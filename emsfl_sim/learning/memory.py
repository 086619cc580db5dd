"""Peak memory of one local training step of a device: what it holds, trains and computes.

Peak = *resident* bytes (unique storages of the tensors the device's model holds:
weights, LoRA factors, the device's own trainable copies) + the *step's* peak of
additional live tensors (activations saved for backward, gradients, temporaries,
optimiser state created in the step).

How the step's peak is measured:

* CUDA: ``torch.cuda.max_memory_allocated() - memory_allocated()`` around the step, after
  ``reset_peak_memory_stats`` (the caching allocator's exact byte count).
* CPU: a ``TorchDispatchMode`` counts every tensor storage created by an ATen op during the
  step and releases it when the last tensor using it dies (weak references; PyTorch keeps a
  tensor's Python object alive while autograd still references it, so activations saved
  for backward stay counted). This isolates the step from everything else in the process
  (the simulator's other models, Python, allocator caches), which process RSS cannot do for
  models of a few MB. Outputs that alias an input (views, in-place ops) are not new memory.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorCounter(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the mode and still alive."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage ptr -> [nbytes, live tensor count]
        self.current = 0
        self.peak = 0

    def _release(self, ptr: int) -> None:
        ent = self.live.get(ptr)
        if ent is None:
            return
        ent[1] -= 1
        if ent[1] <= 0:
            self.current -= ent[0]
            del self.live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor) and t.device.type != "meta"
        }
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            st = t.untyped_storage()
            ptr = st.data_ptr()
            if ptr == 0 or ptr in inputs:
                continue
            ent = self.live.get(ptr)
            if ent is None:
                self.live[ptr] = [st.nbytes(), 1]
                self.current += st.nbytes()
                self.peak = max(self.peak, self.current)
            else:
                ent[1] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def measure_step_peak_bytes(step: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes of memory allocated by ``step()`` above what was allocated before it."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        step()
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev) - before)
    counter = LiveTensorCounter()
    with counter:
        step()
    return int(counter.peak)


def resident_bytes(modules: Iterable[torch.nn.Module], tensors: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the unique storages held by ``modules`` (parameters, buffers) and ``tensors``."""
    seen: dict[int, int] = {}
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return int(sum(seen.values()))


@dataclass
class MemoryReport:
    """Peak memory of one local training step of one device."""

    label: str
    experts: list[int]
    resident_bytes: int
    step_bytes: int
    method: str

    @property
    def peak_bytes(self) -> int:
        """Resident plus the step's peak."""
        return self.resident_bytes + self.step_bytes


def measure_training_memory(engine: Any, examples: Sequence[Any], experts: Sequence[int] | None,
                            train_gate: bool, masked: bool, label: str = "") -> MemoryReport:
    """Peak memory of one local step of a device that trains ``experts`` (None: all).

    Parameters
    ----------
    engine
        The :class:`~emsfl_sim.learning.engine.LearningEngine` (one base model).
    examples
        The device's training examples (``engine.train_spec`` sets batch size and length).
    experts
        The experts the device trains; None trains all of them.
    train_gate
        Whether the gate trains too.
    masked
        Whether the device holds a local model of only ``experts`` (masked gate).
    label
        What the report is called (e.g. the strategy's name).
    """
    if masked and not experts:
        raise ValueError("a masked device needs its experts")
    state = engine.initial_state()
    dev = engine.new_device(f"mem-{label or 'device'}", state, None if experts is None else list(experts),
                            train_gate=train_gate, masked=masked)
    model, _, _ = engine.model_for(dev)  # builds (and caches) the local model outside the measurement
    own = [t for s in dev.lora.values() for t in s.values()]
    peak = measure_step_peak_bytes(lambda: engine.train_local(dev, examples, 1, train_gate), engine.device)
    gate = list(dev.gate.values()) if dev.gate is not None else []
    res = resident_bytes([model], own + gate)
    method = "cuda.max_memory_allocated" if engine.device.type == "cuda" else "dispatch-mode live-storage counter"
    return MemoryReport(label, list(dev.experts), res, peak, method)
