"""The facade the simulator calls: one base model, many simulated devices.

:class:`LearningEngine` builds ONE MoE with PEFT LoRA on its experts. The global model
(and every stale copy a cluster holds) is a :class:`ModelState`: expert weights per
expert index and the router weights, copy-on-write per expert, so snapshots that differ
in one expert share all other tensors. A device (:class:`DeviceState`) is its snapshot
plus small device-owned tensors (its experts' LoRA factors, optionally a gate copy) and
their optimisers; :meth:`LearningEngine.train_local` swaps them into the one model (or
into a cached local model holding only the device's experts, for enhanced EMS-FL).

State layout: ``experts[e]["layers.{i}.{param}"]`` is expert e's fused-parameter slice in
MoE layer i (``gate_up_proj [2I, H]``, ``down_proj [H, I]``); with the ``factors`` rule it
also holds ``"layers.{i}.{param}.lora_A" [r, in]`` and ``".lora_B" [out, r]``. The gate is
``gate["layers.{i}.gate"] [E, H]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from emsfl_sim.learning import aggregate as agg
from emsfl_sim.learning.adapters.base import MoEAdapter, model_head
from emsfl_sim.learning.data import DeviceDataStream, Tokenizer, make_classification_batch, make_lm_batch
from emsfl_sim.learning.lora import (
    ADAPTER_NAME,
    LoraSpec,
    _slices,
    apply_lora,
    expert_lora_state,
    fresh_expert_lora,
    load_expert_lora_state,
    lora_scaling,
    lora_wrappers,
)
from emsfl_sim.learning.masking import build_local_model
from emsfl_sim.learning.models import build_model, model_tokenizer
from emsfl_sim.learning.modelspec import ModelSpec, resolve_device
from emsfl_sim.learning.pretrain import gate_pretrain
from emsfl_sim.learning.shared_part import backbone_parameters, load_shared_state, shared_state
from emsfl_sim.learning.states import DeviceState, ModelState, Tensors, Upload
from emsfl_sim.learning.systems import flops_per_token
from emsfl_sim.learning.train import (
    TrainResult,
    TrainSpec,
    bind_backbone,
    bind_expert_weights,
    bind_gate,
    bind_lora,
    enable_gradient_checkpointing,
    leaf_copy,
    local_train,
    make_optimizer,
)
from emsfl_sim.rng import rng as named_rng
from emsfl_sim.rng import torch_seed

__all__ = ["LearningEngine", "ModelState", "DeviceState", "Upload", "Tensors"]


class LearningEngine:
    """One frozen base MoE shared by all simulated devices of a process.

    Parameters
    ----------
    model_spec, lora_spec, train_spec:
        Model source, LoRA hyper-parameters, local training settings.
    seed:
        Scenario seed (model init, LoRA init, batch order derive from it).
    device:
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    upload_dtype:
        dtype whose size counts for payloads (default: the model's dtype).
    """

    def __init__(
        self,
        model_spec: ModelSpec,
        lora_spec: LoraSpec,
        train_spec: TrainSpec,
        seed: int,
        device: str = "auto",
        upload_dtype: torch.dtype | None = None,
    ) -> None:
        self.model_spec, self.lora_spec, self.train_spec, self.seed = model_spec, lora_spec, train_spec, int(seed)
        self.device = resolve_device(device)
        base, adapter = build_model(model_spec, seed, self.device)
        if train_spec.gradient_checkpointing:
            enable_gradient_checkpointing(base)
        #: synthetic pre-training of a preset: {"steps", "cached", "wall_s", "loss", "path"}; None if off
        self.pretrain_info: dict | None = getattr(base, "emsfl_pretrain", None)
        #: dense -> MoE merge of ``dense_checkpoints``: {"path", "cached", "wall_s"}; None if not merged
        self.merge_info: dict | None = getattr(base, "emsfl_merge", None)
        self.adapter: MoEAdapter = adapter
        #: the model's own tokenizer (a checkpoint's; the byte tokenizer for presets)
        self.tokenizer: Tokenizer = model_tokenizer(model_spec, base, train_spec.prompt_format)
        #: whether the model has a classification head (labels, argmax) instead of the LM head
        self.classification = model_head(base) == "classification"
        if self.classification:  # the head reads the last token that is not padding
            cast(Any, base).config.pad_token_id = self.tokenizer.pad_id
        #: full mode: experts train their weights (no LoRA anywhere: never loaded, never sent)
        self.full = train_spec.mode == "full"
        self.model: nn.Module = base if self.full else apply_lora(base, adapter, lora_spec,
                                                                  seed=torch_seed(seed, "lora_init_model"))
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.scaling = 1.0 if self.full else lora_scaling(self.model)
        self.model_dtype = next(self.model.parameters()).dtype
        self.upload_dtype = upload_dtype or self.model_dtype
        self._local: dict[tuple[int, ...], tuple[nn.Module, MoEAdapter]] = {}
        self._loaded: dict[int, dict[int, Tensors]] = {}  # id(model) -> expert -> state dict loaded
        self._backbone: dict[int, dict[str, nn.Parameter]] = {}  # id(model) -> backbone parameters by name
        self._initial: ModelState | None = None

    # ------------------------------------------------------------------ properties
    @property
    def num_experts(self) -> int:
        """Routed experts per MoE layer."""
        return self.adapter.num_experts

    @property
    def top_k(self) -> int:
        """Experts each token uses."""
        return self.adapter.top_k

    @property
    def factors_rule(self) -> bool:
        """Whether LoRA factors are averaged separately (``lora_aggregation: factors``)."""
        return not self.full and self.train_spec.lora_aggregation == "factors"

    @property
    def trains_shared(self) -> bool:
        """Whether anything shared trains in a gate round (``training.shared`` is not ``none``)."""
        return self.train_spec.shared != "none"

    # ------------------------------------------------------------------ states
    def initial_state(self) -> ModelState:
        """The global model as built (experts' weights, routers; fresh LoRA factors under ``factors``)."""
        if self._initial is None:
            experts: dict[int, Tensors] = {e: {} for e in range(self.num_experts)}
            for i, params in enumerate(self.adapter.expert_parameters(self.model)):
                for name, p in params.items():
                    for e in range(self.num_experts):
                        experts[e][f"layers.{i}.{name}"] = p.detach()[e].clone()
            if self.factors_rule:
                for e in range(self.num_experts):
                    experts[e].update(self._fresh_lora(e, 0))
            gate = shared_state(self.model, self.adapter, self.train_spec.shared)
            self._initial = ModelState(experts, gate, {e: 0 for e in range(self.num_experts)}, 0)
        return self._initial

    def pretrain_gate(self, state: ModelState, examples: Sequence, steps: int, lr: float = 1e-2) -> ModelState:
        """Gate pre-training on a shared mixed sample: returns ``state`` with trained routers."""
        self._load_state(self.model, list(range(self.num_experts)), state)
        batches = self._batches(examples, named_rng(self.seed, "gate_pretrain"))
        gate_pretrain(self.model, self.adapter, batches, steps, lr)
        return state.updated(gate=shared_state(self.model, self.adapter, self.train_spec.shared))

    # ------------------------------------------------------------------ devices
    def _fresh_lora(self, expert: int, version: int, salt: str = "") -> Tensors:
        # the same (expert, version) gives the same A on every device: devices of a cluster agree
        return fresh_expert_lora(self.model, expert, torch_seed(self.seed, "lora_init", expert, version, salt))

    def _device_lora(self, snapshot: ModelState, experts: Sequence[int]) -> dict[int, Tensors]:
        out = {}
        for e in experts:
            st = snapshot.experts[e]
            if self.full:  # the device trains a copy of the expert's weights
                init = st
            elif self.factors_rule and any(".lora_" in k for k in st):
                init = {k: v for k, v in st.items() if ".lora_" in k}
            else:
                init = self._fresh_lora(e, snapshot.version[e])
            out[e] = leaf_copy(init, self.device)
        return out

    def new_device(
        self,
        name: str,
        snapshot: ModelState,
        experts: Sequence[int] | None,
        train_gate: bool,
        masked: bool,
    ) -> DeviceState:
        """A device training ``experts`` (all if None) with fresh LoRA (B=0) on ``snapshot``."""
        ex = list(range(self.num_experts)) if experts is None else sorted(int(e) for e in experts)
        if not ex or min(ex) < 0 or max(ex) >= self.num_experts or len(set(ex)) != len(ex):
            raise ValueError(f"device {name}: experts must be distinct indices in [0, {self.num_experts}); got {ex}")
        if masked and train_gate:
            raise ValueError(f"device {name}: a masked (enhanced) device does not train the gate")
        dev = DeviceState(name, snapshot, ex, bool(masked), bool(train_gate))
        self._reset_device(dev, snapshot)
        return dev

    def _reset_device(self, dev: DeviceState, snapshot: ModelState) -> None:
        dev.snapshot = snapshot
        dev.lora = self._device_lora(snapshot, dev.experts)
        dev.opt_lora = make_optimizer([t for s in dev.lora.values() for t in s.values()], self.train_spec)
        dev.gate, dev.opt_gate = None, None
        dev.syncs += 1

    def sync_device(self, dev: DeviceState, snapshot: ModelState) -> None:
        """The device receives the global model: experts, gate and LoRA restart from it."""
        self._reset_device(dev, snapshot)

    def sync_gate(self, dev: DeviceState, snapshot: ModelState) -> None:
        """The device receives only the gate of ``snapshot`` (its LoRA training continues)."""
        dev.snapshot = dev.snapshot.with_gate_of(snapshot)
        dev.gate, dev.opt_gate = None, None

    def drop_local_gate(self, dev: DeviceState) -> None:
        """The device discards its locally trained gate and keeps its snapshot's (the last it received)."""
        dev.gate, dev.opt_gate = None, None

    def set_experts(self, dev: DeviceState, experts: Sequence[int], snapshot: ModelState) -> None:
        """Re-split: the device now trains ``experts`` starting from ``snapshot``."""
        dev.experts = sorted(int(e) for e in experts)
        self._reset_device(dev, snapshot)

    # ------------------------------------------------------------------ models
    def local_model(self, experts: Sequence[int]) -> tuple[nn.Module, MoEAdapter]:
        """The cached local model holding only ``experts`` (LoRA applied, backbone shared)."""
        key = tuple(sorted(int(e) for e in experts))
        if key not in self._local:
            local, ad = build_local_model(self.model, self.adapter, key)
            if self.train_spec.gradient_checkpointing:
                enable_gradient_checkpointing(local)
            if not self.full:
                local = apply_lora(local, ad, self.lora_spec, seed=torch_seed(self.seed, "lora_init_local", *key))
            for p in local.parameters():
                p.requires_grad_(False)
            local.eval()
            self._local[key] = (local, ad)
        return self._local[key]

    def model_for(self, dev: DeviceState) -> tuple[nn.Module, MoEAdapter, list[int]]:
        """``(model, adapter, global expert index of each model expert)`` a device trains on."""
        if dev.masked:
            m, ad = self.local_model(dev.experts)
            return m, ad, list(dev.experts)
        return self.model, self.adapter, list(range(self.num_experts))

    @torch.no_grad()
    def _load_state(
        self,
        model: nn.Module,
        index: list[int],
        state: ModelState,
        gate: Tensors | None = None,
        adapter: MoEAdapter | None = None,
    ) -> None:
        """Write ``state``'s experts (model expert j = global ``index[j]``), gate and LoRA into ``model``."""
        ad = adapter or self.adapter
        loaded = self._loaded.setdefault(id(model), {})
        params = ad.expert_parameters(model)
        wrappers: list[Any] | None = None  # one walk of the module tree per call, not one per expert
        for j, e in enumerate(index):
            st = state.experts[e]
            if loaded.get(j) is not st:  # copy-on-write: unchanged experts are not copied again
                for i, layer in enumerate(params):
                    for name, p in layer.items():
                        p[j].copy_(st[f"layers.{i}.{name}"])
                loaded[j] = st
            if self.full:
                continue
            if self.factors_rule and any(".lora_" in k for k in st):
                load_expert_lora_state(model, j, st)
            else:
                if wrappers is None:
                    wrappers = list(lora_wrappers(model).values())
                for wrapper in wrappers:
                    _, cb = _slices(wrapper, j)
                    cast(Any, wrapper).lora_B[ADAPTER_NAME].weight[cb] = 0.0
        g = gate if gate is not None else state.gate
        for i, w in enumerate(ad.router_weights(model)):
            w.copy_(g[f"layers.{i}.gate"][index])
        if self.train_spec.shared == "gate_backbone":
            load_shared_state(self._backbone_of(model), g)

    def _backbone_of(self, model: nn.Module) -> dict[str, nn.Parameter]:
        if id(model) not in self._backbone:
            self._backbone[id(model)] = backbone_parameters(model)
        return self._backbone[id(model)]

    def make_batch(self, examples: Sequence) -> dict[str, torch.Tensor]:
        """A training batch of ``examples`` for the model's head (LM: answer tokens; classification: labels)."""
        if self.classification:
            return make_classification_batch(examples, self.tokenizer, self.train_spec.max_len, self.device)
        return make_lm_batch(examples, self.tokenizer, self.train_spec.max_len, self.device)

    def _batches(self, examples: Sequence, rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        from emsfl_sim.learning.data import iterate_batches

        for b in iterate_batches(list(examples), self.train_spec.batch_size, rng):
            yield self.make_batch(b)

    # ------------------------------------------------------------------ training
    def data_stream(self, name: str, examples: Sequence) -> DeviceDataStream:
        """The seeded batch stream of device ``name`` over ``examples`` (reshuffled epochs)."""
        return DeviceDataStream(examples, self.train_spec.batch_size, named_rng(self.seed, "batches", name))

    def train_local(self, dev: DeviceState, data: DeviceDataStream | Sequence, steps: int,
                    train_gate: bool) -> TrainResult:
        """``steps`` local steps of the device's experts (and the gate if asked).

        ``data`` is the device's :class:`DeviceDataStream` (it lives with the simulated
        device, so a model reset does not restart the data order), or plain examples, for
        which the device state keeps one stream across calls.
        """
        if not len(data):
            raise ValueError(f"device {dev.name} has no training examples")
        if not isinstance(data, DeviceDataStream):
            if dev.stream is None or dev.stream.examples != list(data):
                dev.stream = self.data_stream(dev.name, data)
            data = dev.stream
        if dev.masked and train_gate:
            raise ValueError(f"device {dev.name}: a masked (enhanced) device does not train the gate")
        if train_gate and not self.trains_shared:
            raise ValueError(f"device {dev.name}: training.shared is none, nothing shared trains")
        model, ad, index = self.model_for(dev)
        if train_gate and dev.gate is None:
            dev.gate = leaf_copy(dev.snapshot.gate, self.device)
            lr = self.train_spec.gate_learning_rate or self.train_spec.learning_rate
            dev.opt_gate = make_optimizer(list(dev.gate.values()), self.train_spec, lr)
        self._load_state(model, index, dev.snapshot, gate=dev.gate, adapter=ad)
        local_of = {e: j for j, e in enumerate(index)}
        if self.full:
            bindings = [b for e in dev.experts for b in bind_expert_weights(ad, model, local_of[e], dev.lora[e])]
        else:
            bindings = [b for e in dev.experts for b in bind_lora(model, local_of[e], dev.lora[e])]
        assert dev.opt_lora is not None  # created with the device's LoRA state
        optimizers: list[torch.optim.Optimizer] = [dev.opt_lora]
        if train_gate:
            assert dev.gate is not None and dev.opt_gate is not None  # created above
            bindings += bind_gate(model, ad, dev.gate) + bind_backbone(self._backbone_of(model), dev.gate)
            optimizers.append(dev.opt_gate)
        own = [local_of[e] for e in dev.experts]
        # full weights: only the device's slices are pulled out; LoRA: factor gradients of other experts are zeroed
        mask = None if self.full or len(own) == len(index) else own
        batches = (self.make_batch(data.next_batch()) for _ in range(int(steps)))
        res = local_train(
            model,
            bindings,
            optimizers,
            batches,
            int(steps),
            self.train_spec.grad_clip,
            mask_experts=mask,
            max_batch_tokens=self.train_spec.max_batch_tokens,
        )
        if self.full:  # the model now holds the device's expert weights, not the snapshot's
            loaded = self._loaded.get(id(model), {})
            for j in own:
                loaded.pop(j, None)
        dev.num_samples = len(data)
        return res

    # ------------------------------------------------------------------ uploads / aggregation
    def _bytes(self, n: int) -> int:
        return int(n) * torch.empty((), dtype=self.upload_dtype).element_size()

    def make_upload(self, dev: DeviceState, experts: Sequence[int], include_gate: bool) -> Upload:
        """The device's LoRA factors of ``experts`` and (if asked) its gate, with their size."""
        ex = [int(e) for e in experts]
        missing = [e for e in ex if e not in dev.lora]
        if missing:
            raise ValueError(f"device {dev.name} does not train experts {missing}")
        tensors: dict = {"experts": {e: {k: v.detach().clone() for k, v in dev.lora[e].items()} for e in ex}}
        numel = sum(t.numel() for s in tensors["experts"].values() for t in s.values())
        if include_gate:
            g = dev.gate if dev.gate is not None else dev.snapshot.gate
            tensors["gate"] = {k: v.detach().clone() for k, v in g.items()}
            numel += sum(t.numel() for t in tensors["gate"].values())
        else:
            tensors["gate"] = {}
        return Upload(ex, bool(include_gate), tensors, int(dev.num_samples), self._bytes(numel), dev.name,
                      gate_base=dev.snapshot.gate if include_gate else None,
                      expert_base={e: dev.snapshot.experts[e] for e in ex} if self.full else None)

    def aggregate(self, state: ModelState, uploads: Sequence[Upload]) -> ModelState:
        """Expert-wise (exact or factors rule) and gate aggregation weighted by sample counts.

        Both are by deltas against what each device started from: a device's expert LoRA
        is a delta by construction, and its gate counts as ``gate - gate_base``, so two
        clusters that trained the gate from the same version at once both count (the
        later one does not overwrite the earlier one).
        """
        expert_ups = [(u.tensors["experts"], u.num_samples) for u in uploads if u.experts]
        new_experts: dict[int, Tensors] = {}
        if expert_ups and self.full:
            new_experts = agg.aggregate_experts_full(
                state.experts, [(u.tensors["experts"], u.expert_base or {}, u.num_samples) for u in uploads if u.experts])
        elif expert_ups:
            if self.factors_rule:
                new_experts = agg.aggregate_experts_factors(state.experts, expert_ups)
            else:
                new_experts = agg.aggregate_experts_exact(state.experts, expert_ups, self.scaling)
        gate_ups = [(u.tensors["gate"], u.gate_base if u.gate_base is not None else state.gate, u.num_samples)
                    for u in uploads if u.include_gate]
        gate = agg.aggregate_gate_deltas(state.gate, gate_ups) if gate_ups else None
        return state.updated(new_experts, gate)

    # ------------------------------------------------------------------ evaluation / splitting
    def load_global(self, state: ModelState) -> nn.Module:
        """Load ``state`` into the full model (unmasked gate) and return it."""
        self._load_state(self.model, list(range(self.num_experts)), state)
        return self.model

    def evaluate(self, state: ModelState, test_by_domain: Mapping[str, Sequence]) -> dict:
        """Accuracy/loss globally and per domain of the global model ``state``."""
        from emsfl_sim.learning.evaluate import evaluate_by_domain, evaluate_labels_by_domain

        if self.classification:
            return evaluate_labels_by_domain(self.load_global(state), self.tokenizer, test_by_domain,
                                             max_len=self.train_spec.max_len)
        return evaluate_by_domain(self.load_global(state), self.tokenizer, test_by_domain)

    def expert_relevance(self, state: ModelState, trial_examples: Sequence) -> np.ndarray:
        """Relevance ``p[E]`` (share of routing decisions) of ``state``'s experts for a trial set."""
        from emsfl_sim.learning.splitting import expert_relevance

        model = self.load_global(state)
        if self.classification:  # the decoder returns the router logits; the prompt alone is what the model reads
            return expert_relevance(self.adapter.decoder(model), self.tokenizer, trial_examples, self.top_k,
                                    prompt_only=True)
        return expert_relevance(model, self.tokenizer, trial_examples, self.top_k)

    # ------------------------------------------------------------------ systems numbers
    def payload_bytes(self, experts: Sequence[int], include_gate: bool) -> int:
        """Upload size of what a device trains of ``experts`` (LoRA factors or weights) plus the shared part if asked.

        Counted from the tensors a device uploads (:meth:`make_upload`); the shared part is
        0 bytes under ``training.shared: none`` (nothing shared trains, nothing is sent).
        """
        if self.full:
            per_expert = sum(t.numel() for t in self.initial_state().experts[0].values())
        else:
            per_expert = sum(t.numel() for t in expert_lora_state(self.model, 0).values())
        numel = per_expert * len(list(experts))
        if include_gate and self.trains_shared:
            numel += sum(t.numel() for t in self.initial_state().gate.values())
        return self._bytes(numel)

    def flops_per_token(self, experts: Sequence[int], train_gate: bool, masked: bool) -> float:
        """Training FLOPs per token of a local step (see :func:`models.flops_per_token`)."""
        return flops_per_token(
            self.adapter.config,
            list(experts),
            train_gate,
            masked,
            lora_rank=self.lora_spec.rank,
            seq_len=self.train_spec.max_len,
            mode=self.train_spec.mode,
            shared=self.train_spec.shared,
        )
