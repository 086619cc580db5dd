"""Build the learning world of a scenario: one engine, the federated data, payloads, FLOPs.

This is where the scenario meets learning/ (strategies/ is the one package
allowed to join the simulator and the learning code). Everything here is done
once per ``emsfl-sim run`` and shared by all strategies.

Systems model
-------------
``model.systems_model`` names a real architecture (``llama3-8b-x3``,
``mixtral-8x7b``, ``qwen1.5-moe-a2.7b``, ``olmoe-1b-7b``; ``learning.systems.SYSTEMS_CONFIGS``) whose LoRA payload sizes and training FLOPs time the
simulation, computed on the meta device without weights, while the tiny proxy
model does the learning on CPU. Without it, payloads and FLOPs are those of the
learning model itself.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from emsfl_sim.errors import InputError
from emsfl_sim.scenario import Scenario
from emsfl_sim.strategies.base import LearningWorld, Payloads

if TYPE_CHECKING:  # torch-backed types, imported lazily at run time
    import torch

    from emsfl_sim.learning.data import FederatedData
    from emsfl_sim.learning.engine import LearningEngine
    from emsfl_sim.learning.modelspec import ModelSpec


def cluster_domains(scenario: Scenario) -> list[tuple[str, str]]:
    """(cluster, home domain) pairs; clusters without a domain take the task's domains in turn."""
    from emsfl_sim.learning.data import domain_names

    names = domain_names(scenario.data.task)
    return [(c.name, c.domain or names[i % len(names)]) for i, c in enumerate(scenario.clusters)]


SpecT = TypeVar("SpecT")

#: fields of the learning specs that no scenario section holds (set by the learning code itself)
SPEC_ONLY_FIELDS = {
    "ModelSpec": {"base_index", "expert_prompts", "vocab_size", "num_labels"},  # num_labels: from the data
    "TrainSpec": {"grad_clip", "momentum", "weight_decay"},
    "LoraSpec": set(),
}


def spec_from_sections(cls: type[SpecT], *sections: BaseModel, **extra: Any) -> SpecT:
    """The dataclass ``cls`` filled from the same-named fields of pydantic ``sections`` (copies).

    Every field of ``cls`` that a section holds is taken from it, so a new setting needs
    no hand copy here; lists and mappings are copied (the spec never aliases the scenario).
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for section in sections:
        values.update({k: copy.deepcopy(getattr(section, k)) for k in type(section).model_fields if k in names})
    values.update(extra)
    return cls(**values)


def check_model_architecture(scenario: Scenario) -> str:
    """``model.architecture`` if it names a registered MoE family (one-line InputError otherwise)."""
    from emsfl_sim.learning.adapters import check_architecture

    return check_architecture(scenario.model.architecture, scenario.source_file)


#: ``MoEAdapter.expert_param_names`` of every registered family (their fused expert
#: parameters). LoRA targets among these are known good without importing a family
#: module (torch); any other name is checked against the family's adapter.
COMMON_EXPERT_PARAMS: tuple[str, ...] = ("gate_up_proj", "down_proj")


def check_scenario_names(scenario: Scenario) -> None:
    """Every name a run would look up later, checked now (one-line InputError): what ``validate`` adds.

    Compute profiles, synthetic data domains (when no data files are given), LoRA targets
    and ``model.config_overrides`` keys. The last two import the family's transformers
    classes only when needed (targets outside :data:`COMMON_EXPERT_PARAMS`, non-empty
    overrides without a checkpoint), so an ordinary ``validate`` stays fast.
    """
    import difflib

    from emsfl_sim.errors import InputError
    from emsfl_sim.run.timeline_counts import check_model_shape

    file = scenario.source_file
    from emsfl_sim.sim.compute import check_compute_profiles

    check_compute_profiles(scenario)
    check_model_shape(scenario)
    check_data_files(scenario)
    named = [(i, c.domain) for i, c in enumerate(scenario.clusters) if c.domain is not None]
    if named and not scenario.data.jsonl_files:
        from emsfl_sim.learning.data import domain_names  # the data package (torch): only for named domains

        known = domain_names(scenario.data.task)
        for index, domain in named:
            if domain not in known:
                raise InputError(f"unknown {scenario.data.task} domain {domain!r}; use one of {', '.join(known)} "
                                 "(or give data.jsonl_files)", file, f"clusters[{index}].domain")
    m = scenario.model
    family = None
    unknown = [t for t in m.lora.targets if t not in COMMON_EXPERT_PARAMS]
    if unknown:
        family = _adapter(scenario)
        names = family.expert_param_names
        for target in unknown:
            if target not in names:
                raise InputError(f"target {target!r} matches no expert parameter of {m.architecture}; use some of "
                                 f"{', '.join(names)}", file, "model.lora.targets")
    if m.config_overrides and not m.checkpoint_path:
        family = family or _adapter(scenario)
        valid = {*family.config_class().to_dict(), *getattr(family.config_class, "attribute_map", {}), "rope_theta"}
        for key in m.config_overrides:
            if key not in valid:
                close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"see transformers' {family.config_class.__name__}"
                raise InputError(f"{key!r} is no field of {family.config_class.__name__}; {hint}", file,
                                 f"model.config_overrides.{key}")


def _adapter(scenario: Scenario) -> Any:
    from emsfl_sim.learning.adapters import adapter_class

    return adapter_class(check_model_architecture(scenario), scenario.source_file)


def model_spec(scenario: Scenario) -> ModelSpec:
    """The learning ModelSpec of a scenario."""
    from emsfl_sim.learning.modelspec import ModelSpec

    check_model_architecture(scenario)
    return spec_from_sections(ModelSpec, scenario.model)


def dense_domain_spec(scenario: Scenario, domains: list[str], directory: str | Path,
                      log: Callable[[str], None]) -> ModelSpec:
    """The ModelSpec of a merge of one dense model per domain (``model.dense_from_domains``)."""
    from emsfl_sim.learning.dense_domains import DenseDomainRecipe, dense_domain_models
    from emsfl_sim.learning.pretrain_cache import cache_dir

    m = scenario.model
    recipe = DenseDomainRecipe(seed=scenario.seed, task=scenario.data.task, domains=tuple(domains),
                               steps=m.dense_pretrain_steps, lr=m.pretrain_lr, batch_size=m.pretrain_batch_size,
                               max_len=scenario.data.max_len, probe_weight=m.dense_probe_weight,
                               preset=m.preset or "tiny")
    spec = model_spec(scenario)
    models = dense_domain_models(recipe, directory, cache_dir(spec), log)
    spec.dense_checkpoints, spec.router_init, spec.expert_prompts = models.paths, "hidden", models.prompts
    spec.preset = None
    return spec


def align_merged_routers(engine: LearningEngine, data: FederatedData, scenario: Scenario,
                         log: Callable[[str], None]) -> None:
    """Supervised gate pre-training of a dense-domain merge on the shared gate sample."""
    import torch

    from emsfl_sim.learning.data import iterate_batches, make_lm_batch
    from emsfl_sim.learning.pretrain import align_routers
    from emsfl_sim.rng import rng

    index = {d: e for e, d in enumerate(data.domains)}
    examples = [ex for ex in data.gate if ex.domain in index]

    def batches() -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        for b in iterate_batches(examples, scenario.training.batch_size, rng(scenario.seed, "gate-align")):
            yield (make_lm_batch(b, engine.tokenizer, scenario.data.max_len, engine.device),
                   torch.tensor([index[ex.domain] for ex in b]))

    losses = align_routers(engine.model, engine.adapter, batches(), scenario.model.gate_pretrain_steps,
                           lr=scenario.training.gate_learning_rate or 1e-2)
    log(f"gate pre-training (router supervision by domain): {len(losses)} steps, "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")


def federated_data(scenario: Scenario) -> FederatedData:
    """The scenario's federated data: synthetic domains, or the user's MCQA files (``data.jsonl_files``)."""
    from emsfl_sim.learning.data import build_federated_data

    d = scenario.data
    return build_federated_data(
        task=d.task,
        clusters=cluster_domains(scenario),
        devices_per_cluster={c.name: c.devices for c in scenario.clusters},
        samples_per_device=d.samples_per_device,
        trial_samples_per_cluster=d.trial_samples_per_cluster,
        gate_samples=d.gate_samples,
        test_samples_per_domain=d.test_samples_per_domain,
        mode=d.partition,
        alpha=d.dirichlet_alpha,
        seed=scenario.seed,
        jsonl_files=d.data_files() or None,  # the user's MCQA files replace the synthetic data
        test_fraction=d.test_fraction,
    )


def check_data_files(scenario: Scenario) -> None:
    """Read and split ``data.jsonl_files`` as a run would (rows, answers, domains, counts): one-line InputErrors."""
    if not scenario.data.jsonl_files:
        return
    try:
        federated_data(scenario)
    except InputError as exc:
        raise (exc if exc.file else exc.with_file(scenario.source_file or "")) from None


def build_learning_world(scenario: Scenario, log: Callable[[str], None] = print,
                         work_dir: str | Path | None = None) -> LearningWorld:
    """Engine (one base model), data, gate pre-training, payload sizes and the FLOPs model."""
    import time

    from emsfl_sim.learning.engine import LearningEngine
    from emsfl_sim.learning.lora import LoraSpec
    from emsfl_sim.learning.train import TrainSpec

    t0 = time.perf_counter()
    d, t = scenario.data, scenario.training
    data = federated_data(scenario)
    lora = spec_from_sections(LoraSpec, scenario.model.lora, targets=tuple(scenario.model.lora.targets))
    train = spec_from_sections(TrainSpec, t, d)
    import torch

    if t.cpu_threads:
        torch.set_num_threads(t.cpu_threads)
    spec = model_spec(scenario)
    if spec.head == "classification":  # one class per option of the task (its label words)
        spec.num_labels = max(len(x.options) for domain in data.test.values() for x in domain)
    if scenario.model.dense_from_domains:
        import tempfile

        folder = work_dir or tempfile.mkdtemp(prefix="emsfl-dense-")
        spec = dense_domain_spec(scenario, list(data.domains), folder, log)
    engine = LearningEngine(spec, lora, train, scenario.seed, device=t.device)
    if scenario.model.dense_from_domains and scenario.model.gate_pretrain_steps:
        # Before the initial state is taken: the merged routers learn which expert each
        # domain's samples belong to (expert e was built from domain e's dense model).
        align_merged_routers(engine, data, scenario, log)
    state = engine.initial_state()
    if scenario.model.gate_pretrain_steps and not scenario.model.dense_from_domains:
        state = engine.pretrain_gate(state, data.gate, scenario.model.gate_pretrain_steps,
                                     lr=t.gate_learning_rate or 1e-2)
    payloads, flops = _systems(scenario, engine)
    world = LearningWorld(
        scenario=scenario,
        engine=engine,
        data=data,
        initial_state=state,
        payloads=payloads,
        flops_model=flops,
        tokens_per_round=float(t.simulated_tokens_per_round or t.local_steps * t.batch_size * d.max_len),
    )
    info = engine.pretrain_info
    if info:
        how = f"from cache {info['path']}" if info["cached"] else f"in {info['wall_s']:.1f} s"
        log(f"pre-trained backbone: {info['steps']} steps {how}")
    merge = engine.merge_info
    if merge:
        where = merge["path"] or "a temporary directory"
        how = "from cache" if merge["cached"] else f"written in {merge['wall_s']:.1f} s to"
        log(f"dense -> MoE merge: {how} {where}")
    log(f"learning world: {engine.num_experts} experts top-{engine.top_k} on {engine.device}, "
        f"{sum(len(s) for shards in data.train.values() for s in shards)} training samples, "
        f"payload/expert {payloads.per_expert_bytes / 1e6:.3f} MB"
        f"{' (' + scenario.model.systems_model + ')' if scenario.model.systems_model else ''}, "
        f"built in {time.perf_counter() - t0:.1f} s")
    return world


def _systems(scenario: Scenario, engine: LearningEngine) -> tuple[Payloads, Callable[[list[int], bool, bool], float]]:
    """Payload sizes and FLOPs per token: of the systems model if set, else of the learning model."""
    name = scenario.model.systems_model
    if name is None:
        per_expert = engine.payload_bytes([0], False)
        gate = engine.payload_bytes([0], True) - per_expert
        payloads = Payloads(per_expert, gate, per_expert * engine.num_experts + gate)
        return payloads, engine.flops_per_token
    from emsfl_sim.run.timeline_counts import systems_model_timing

    return systems_model_timing(scenario, engine.num_experts)
