"""Build the learning world of a scenario: one engine, the federated data, payloads, FLOPs.

This is where the scenario meets learning/ (strategies/ is the one package
allowed to join the simulator and the learning code). Everything here is done
once per ``emsfl-sim run`` and shared by all strategies.

Systems model
-------------
``model.systems_model`` names a real architecture (``llama3-8b-x3``,
``mixtral-8x7b``) whose LoRA payload sizes and training FLOPs time the
simulation, computed on the meta device without weights, while the tiny proxy
model does the learning on CPU. Without it, payloads and FLOPs are those of the
learning model itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emsfl_sim.scenario import Scenario
from emsfl_sim.strategies.base import LearningWorld, Payloads

SYSTEMS_MODELS = ("llama3-8b-x3", "mixtral-8x7b")
#: bump when the dense-domain pre-training recipe changes (invalidates cached dense models)
DENSE_RECIPE_VERSION = 2


def systems_config(name: str) -> dict[str, Any]:
    """The transformers config dict of a named systems model."""
    from emsfl_sim.learning.models import LLAMA3_8B_X3_MOE_CONFIG, MIXTRAL_8X7B_CONFIG

    return {"llama3-8b-x3": LLAMA3_8B_X3_MOE_CONFIG, "mixtral-8x7b": MIXTRAL_8X7B_CONFIG}[name]


def cluster_domains(scenario: Scenario) -> list[tuple[str, str]]:
    """(cluster, home domain) pairs; clusters without a domain take the task's domains in turn."""
    from emsfl_sim.learning.data import domain_names

    names = domain_names(scenario.data.task)
    return [(c.name, c.domain or names[i % len(names)]) for i, c in enumerate(scenario.clusters)]


def model_spec(scenario: Scenario) -> Any:
    """The learning ModelSpec of a scenario."""
    from emsfl_sim.learning.models import ModelSpec

    m = scenario.model
    return ModelSpec(
        preset=m.preset,
        config_overrides=dict(m.config_overrides),
        checkpoint_path=m.checkpoint_path,
        dense_checkpoints=list(m.dense_checkpoints),
        router_init=m.router_init,
        num_experts=m.num_experts,
        top_k=m.top_k,
        dtype=m.dtype,
        architecture=m.architecture,
        pretrain_steps=m.pretrain_steps,
        pretrain_lr=m.pretrain_lr,
        pretrain_batch_size=m.pretrain_batch_size,
        cache_dir=m.cache_dir,
        router_weighting=m.router_weighting,
    )


def dense_domain_experts(scenario: Scenario, domains: list[str], directory: Any, log: Callable[[str], None]) -> Any:
    """Paper experiment 1 in miniature: one tiny dense Llama per domain, merged into an MoE.

    A shared backbone is first pre-trained on all domains, then each domain's model
    continues on its own domain (FFN only), so the merged MoE's attention fits every
    expert. For MCQA the pre-training text is the preset recipe's corpus: every template,
    entities *disjoint* from the fine-tuning fact table, so the dense experts know their
    domain's language and phrasings, not the answers (an earlier version drew a second
    fine-tuning-style table, which reused some fine-tuning entities with other answers and
    left out each domain's test phrasing). The router starts from the mergekit ``hidden``
    method on each domain's prompts. The dense models are cached like the pre-trained
    presets (``model.cache_dir``), keyed by the recipe, seed and torch version.
    """
    import hashlib
    import json
    from pathlib import Path

    import torch

    from emsfl_sim.learning.data import (
        SYNTHETIC_DOMAINS,
        ByteTokenizer,
        iterate_batches,
        make_domain_examples,
        make_lm_batch,
        make_pretrain_examples,
    )
    from emsfl_sim.learning.models import PRETRAIN_FACTS_PER_DOMAIN, cache_dir, pretrain_dense
    from emsfl_sim.rng import rng, stable_int

    task, steps, max_len = scenario.data.task, scenario.model.dense_pretrain_steps, scenario.data.max_len
    pre_seed = stable_int(scenario.seed, "dense-pretrain-facts") % (2**31)
    tok = ByteTokenizer()
    batch_size = scenario.model.pretrain_batch_size
    lr = scenario.model.pretrain_lr

    probe = scenario.model.dense_probe_weight
    all_domains = list(SYNTHETIC_DOMAINS) if task == "mcqa" else list(domains)
    all_domains += [d for d in domains if d not in all_domains]
    index = {d: i for i, d in enumerate(all_domains)}

    def batches(examples: list[Any], name: str, labelled: bool = False) -> Any:
        for b in iterate_batches(examples, batch_size, rng(scenario.seed, "dense-batches", name)):
            batch = make_lm_batch(b, tok, max_len)
            yield (batch, torch.tensor([index[ex.domain] for ex in b])) if labelled else batch

    directory = Path(directory)

    def corpus(d: str, n: int) -> list[Any]:
        if task == "mcqa":
            # every template, entities disjoint from fine-tuning's (as the preset pre-training)
            return make_pretrain_examples(d, n, scenario.seed, PRETRAIN_FACTS_PER_DOMAIN)
        return make_domain_examples(d, n, pre_seed, task, "train")

    prompts = [[ex.prompt for ex in make_domain_examples(d, 32, pre_seed, task, "trial")] for d in domains]
    spec = model_spec(scenario)
    recipe = dict(version=DENSE_RECIPE_VERSION, seed=scenario.seed, task=task, domains=list(domains), steps=steps,
                  lr=lr, batch=batch_size, max_len=max_len, probe=probe, preset=scenario.model.preset or "tiny",
                  facts=PRETRAIN_FACTS_PER_DOMAIN, torch=torch.__version__)
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:20]
    root = cache_dir(spec)
    cached = root / f"dense-{key}" if root is not None else None
    if cached is not None and (cached / "complete").exists():
        paths = [str(cached / f"dense-{d}") for d in domains]
        log(f"dense domain experts from cache {cached}")
    else:
        # the shared base reads every synthetic domain (as the preset backbone does)
        mixed = [ex for d in all_domains for ex in corpus(d, 512)]
        # The shared base learns all domains and, through linear domain probes, to keep the
        # domain readable in its hidden states, which the merged router then reads.
        base = pretrain_dense(batches(mixed, "base", labelled=probe > 0), steps, lr=lr, seed=scenario.seed,
                              preset=scenario.model.preset or "tiny", domain_probe_weight=probe,
                              num_domains=len(all_domains))
        paths = []
        for d in domains:
            path = directory / f"dense-{d}"
            # Only the FFN specialises: the merged MoE keeps the base's attention for every expert.
            pretrain_dense(batches(corpus(d, 512), d), max(1, steps // 2), lr=lr, seed=scenario.seed,
                           init_from=base, save_to=path, train_only=".mlp.")
            paths.append(str(path))
        log(f"built {len(paths)} dense domain experts ({steps} shared + {max(1, steps // 2)} own pre-training "
            f"steps) in {directory}")
        if cached is not None:
            _store_dense(directory, domains, cached, log)
    spec.dense_checkpoints, spec.router_init, spec.expert_prompts = paths, "hidden", prompts
    spec.preset = None
    return spec


def _store_dense(directory: Any, domains: list[str], target: Any, log: Callable[[str], None]) -> None:
    """Copy freshly built dense models into the cache (copy, then rename: never half-written)."""
    import shutil
    import tempfile
    from pathlib import Path

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + "-"))
        for d in domains:
            shutil.copytree(Path(directory) / f"dense-{d}", tmp / f"dense-{d}")
        (tmp / "complete").touch()
        try:
            tmp.rename(target)
        except OSError:  # another run stored it first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:  # an unwritable cache only costs the rebuild next time
        log(f"dense domain experts not cached ({exc})")


def align_merged_routers(engine: Any, data: Any, scenario: Scenario, log: Callable[[str], None]) -> None:
    """Supervised gate pre-training of a dense-domain merge on the shared gate sample."""
    import torch

    from emsfl_sim.learning.data import iterate_batches, make_lm_batch
    from emsfl_sim.learning.models import align_routers
    from emsfl_sim.rng import rng

    index = {d: e for e, d in enumerate(data.domains)}
    examples = [ex for ex in data.gate if ex.domain in index]

    def batches() -> Any:
        for b in iterate_batches(examples, scenario.training.batch_size, rng(scenario.seed, "gate-align")):
            yield (make_lm_batch(b, engine.tokenizer, scenario.data.max_len, engine.device),
                   torch.tensor([index[ex.domain] for ex in b]))

    losses = align_routers(engine.model, engine.adapter, batches(), scenario.model.gate_pretrain_steps,
                           lr=scenario.training.gate_learning_rate or 1e-2)
    log(f"gate pre-training (router supervision by domain): {len(losses)} steps, "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")


def build_learning_world(scenario: Scenario, log: Callable[[str], None] = print,
                         work_dir: Any = None) -> LearningWorld:
    """Engine (one base model), data, gate pre-training, payload sizes and the FLOPs model."""
    import time

    from emsfl_sim.learning.data import build_federated_data
    from emsfl_sim.learning.engine import LearningEngine
    from emsfl_sim.learning.lora import LoraSpec
    from emsfl_sim.learning.train import TrainSpec

    t0 = time.perf_counter()
    d, t = scenario.data, scenario.training
    data = build_federated_data(
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
    )
    lora = LoraSpec(rank=scenario.model.lora.rank, alpha=scenario.model.lora.alpha,
                    targets=tuple(scenario.model.lora.targets))
    train = TrainSpec(learning_rate=t.learning_rate, optimizer=t.optimizer, local_steps=t.local_steps,
                      batch_size=t.batch_size, max_len=d.max_len, lora_aggregation=t.lora_aggregation,
                      gate_learning_rate=t.gate_learning_rate)
    import torch

    if t.cpu_threads:
        torch.set_num_threads(t.cpu_threads)
    spec = model_spec(scenario)
    if scenario.model.dense_from_domains:
        import tempfile

        folder = work_dir or tempfile.mkdtemp(prefix="emsfl-dense-")
        spec = dense_domain_experts(scenario, list(data.domains), folder, log)
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
    log(f"learning world: {engine.num_experts} experts top-{engine.top_k} on {engine.device}, "
        f"{sum(len(s) for shards in data.train.values() for s in shards)} training samples, "
        f"payload/expert {payloads.per_expert_bytes / 1e6:.3f} MB"
        f"{' (' + scenario.model.systems_model + ')' if scenario.model.systems_model else ''}, "
        f"built in {time.perf_counter() - t0:.1f} s")
    return world


def _systems(scenario: Scenario, engine: Any) -> tuple[Payloads, Callable[[list[int], bool, bool], float]]:
    """Payload sizes and FLOPs per token: of the systems model if set, else of the learning model."""
    name = scenario.model.systems_model
    if name is None:
        per_expert = engine.payload_bytes([0], False)
        gate = engine.payload_bytes([0], True) - per_expert
        payloads = Payloads(per_expert, gate, per_expert * engine.num_experts + gate)
        return payloads, engine.flops_per_token
    from emsfl_sim.learning.models import flops_per_token, lora_payload_bytes

    cfg = systems_config(name)
    lora = scenario.model.lora
    per_expert = lora_payload_bytes(cfg, rank=lora.rank, experts=[0], targets=lora.targets, dtype_bytes=2)
    gate = lora_payload_bytes(cfg, rank=lora.rank, experts=[], targets=lora.targets, dtype_bytes=2,
                              include_gate=True)
    sys_experts = int(cfg["num_local_experts"])
    payloads = Payloads(per_expert, gate, per_expert * sys_experts + gate)
    proxy_experts = engine.num_experts

    def flops(experts: list[int], train_gate: bool, masked: bool) -> float:
        # Map the share of the proxy's experts onto the systems model's experts.
        n = max(1, round(len(experts) * sys_experts / proxy_experts)) if experts else 0
        return flops_per_token(cfg, list(range(n)), train_gate, masked, lora_rank=lora.rank,
                               seq_len=scenario.data.max_len)

    return payloads, flops
