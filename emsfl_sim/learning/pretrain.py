"""Pre-training: tiny dense domain models, the synthetic MoE backbone, and router supervision.

Stands in for the reference's pre-trained LLMs: a tiny model trained for a few hundred
steps on the synthetic domains behaves like a pre-trained one (it knows the templates
and routes each domain to its experts), so fine-tuning has something to adapt.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from emsfl_sim.learning.adapters.base import MoEAdapter
from emsfl_sim.learning.merge import dense_config
from emsfl_sim.learning.modelspec import seeded
from emsfl_sim.rng import torch_seed


def pretrain_dense(
    batches: Iterable[dict[str, torch.Tensor]],
    steps: int,
    lr: float = 3e-3,
    seed: int = 0,
    preset: str = "tiny",
    vocab_size: int = 259,
    save_to: str | Path | None = None,
    init_from: nn.Module | None = None,
    train_only: str | None = None,
    domain_probe_weight: float = 0.0,
    num_domains: int = 0,
    **config_overrides: Any,
) -> nn.Module:
    """Train a tiny dense Llama on ``batches`` (language-model loss) for ``steps`` steps.

    Used to make per-domain dense models to merge into an MoE (paper experiment 1). With
    ``init_from`` the dense model starts from that model's weights (shared backbone, so the
    merged MoE's attention fits every expert). ``train_only`` (e.g. ``".mlp."``) trains only the
    parameters whose names contain it, so the shared attention stays what the merge uses.
    Saved with ``save_pretrained`` if ``save_to``.

    With ``domain_probe_weight > 0`` the batches are ``(lm_batch, domain [B])`` pairs and
    the loss adds that weight x the cross-entropy of a linear domain probe on every
    layer's FFN input (all real tokens). A pre-trained LLM's hidden states carry what kind
    of text they read (a linear probe recovers it); a tiny byte-level model trained for a
    few hundred steps does not, so its merged router could not tell the domains apart.
    The probes are discarded: they only shape the hidden states the router later reads.
    """
    from transformers import LlamaForCausalLM

    model: Any
    if init_from is not None:
        model = LlamaForCausalLM(cast(Any, init_from).config)
        model.load_state_dict(init_from.state_dict())
    else:
        with seeded(torch_seed(seed, "dense_init")):
            model = LlamaForCausalLM(dense_config(preset, vocab_size, **config_overrides))
    model.train()
    params = [p for n, p in model.named_parameters() if train_only is None or train_only in n]
    for n, p in model.named_parameters():
        p.requires_grad_(train_only is None or train_only in n)
    probes: list[nn.Linear] = []
    captured: list[torch.Tensor] = []
    hooks = []
    if domain_probe_weight > 0:
        if num_domains < 2:
            raise ValueError("domain probes need num_domains >= 2")
        with seeded(torch_seed(seed, "domain_probe")):
            probes = [nn.Linear(model.config.hidden_size, num_domains, bias=False) for _ in model.model.layers]
        hooks = [layer.mlp.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
                 for layer in model.model.layers]
        params = params + [w for pr in probes for w in pr.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = warmup_cosine(opt, steps)
    it = iter(batches)
    try:
        for _ in range(steps):
            item: Any = next(it)
            captured.clear()
            batch, domain = item if probes else (item, None)
            loss = model(**batch).loss
            if probes:
                logits = [pr(h.reshape(-1, h.shape[-1])) for pr, h in zip(probes, captured, strict=True)]
                assert domain is not None  # probes need (batch, domain) pairs
                loss = loss + domain_probe_weight * token_label_ce(logits, batch["attention_mask"], domain)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    finally:
        for h in hooks:
            h.remove()
    model.eval()
    if save_to is not None:
        model.save_pretrained(save_to)
    return model


def warmup_cosine(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The pre-training schedule: linear warm-up over 10% of ``steps``, cosine decay to 10%.

    Steadier than a constant rate at a few hundred steps.
    """
    warmup = max(1, steps // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * t / max(1, steps)))))


def token_label_ce(flat_logits: Sequence[torch.Tensor], attention_mask: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """Mean over ``flat_logits`` (each ``[B*T, C]``) of the token-to-class cross-entropy.

    Every real token (``attention_mask``) is pushed towards its sample's class ``labels [B]``.
    """
    keep = attention_mask.reshape(-1).bool()
    target = labels.to(keep.device)[:, None].expand(-1, attention_mask.shape[1]).reshape(-1)[keep]
    losses = [F.cross_entropy(lg[keep].float(), target) for lg in flat_logits]
    total = losses[0]
    for loss in losses[1:]:  # the order of sum(): bit-identical to earlier results
        total = total + loss
    return total / len(flat_logits)


def gate_pretrain(
    model: nn.Module,
    adapter: MoEAdapter,
    batches: Iterable[dict[str, torch.Tensor]],
    steps: int,
    lr: float = 1e-2,
) -> list[float]:
    """Train only the routers on a shared mixed-domain sample; returns the loss per step.

    Everything else keeps its ``requires_grad`` flag restored afterwards.
    """
    saved = {id(p): p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    routers = adapter.router_weights(model)
    for w in routers:
        w.requires_grad_(True)
    opt = torch.optim.AdamW(routers, lr=lr, weight_decay=0.0)
    was_training = model.training
    model.train()
    losses = []
    it = iter(batches)
    try:
        for _ in range(steps):
            batch = next(it)
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    finally:
        for p in model.parameters():
            p.requires_grad_(saved.get(id(p), False))
        model.train(was_training)
    return losses


# --------------------------------------------------------------------------- synthetic pre-training

#: bump when the pre-training recipe or its data change (invalidates cached weights)
PRETRAIN_VERSION = 2
#: entities per domain in the pre-training corpus (more than fine-tuning's 16, so the
#: backbone learns to read any entity name rather than memorising a few)
PRETRAIN_FACTS_PER_DOMAIN = 16


class RecordingRouter(nn.Module):
    """Router wrapper for pre-training: routes as the wrapped router does and keeps its logits.

    The logits (``last_logits``) feed the router-supervision loss of
    :func:`pretrain_backbone`; the wrapped router stays a submodule, so its weight trains.
    """

    def __init__(self, router: nn.Module) -> None:
        super().__init__()
        self.inner = router
        self.last_logits: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> Any:
        """Route as the wrapped router does, keeping its logits."""
        out = self.inner(hidden_states)
        self.last_logits = out[0]
        return out


def _logits(router: RecordingRouter) -> torch.Tensor:
    """The logits the router recorded in the last forward pass."""
    assert router.last_logits is not None, "a forward pass records the logits before the loss reads them"
    return router.last_logits


@contextlib.contextmanager
def recording_routers(model: nn.Module, adapter: MoEAdapter) -> Iterator[list[RecordingRouter]]:
    """Route through :class:`RecordingRouter` wrappers for the block; restore routers and grad flags after.

    Every parameter's ``requires_grad`` is put back as it was, whatever the block changes.
    """
    flags = {id(p): p.requires_grad for p in model.parameters()}
    originals = adapter.routers(model)
    routers = [RecordingRouter(r) for r in originals]
    for i, r in enumerate(routers):
        adapter.set_router(model, i, r)
    try:
        yield routers
    finally:
        for i, r in enumerate(originals):
            adapter.set_router(model, i, r)
        for p in model.parameters():
            p.requires_grad_(flags[id(p)])


def align_routers(
    model: nn.Module,
    adapter: MoEAdapter,
    batches: Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]],
    steps: int,
    lr: float = 1e-2,
) -> list[float]:
    """Supervised gate pre-training: teach the routers which expert each sample belongs to.

    ``batches`` yields ``(lm_batch, expert_index [B])``; the loss is the cross-entropy of
    every router's logits on the real tokens towards the sample's expert. Only the router
    weights train. Used for MoEs merged from dense domain models (expert e = domain e),
    whose top-1 routers get no gradient from the language-model loss (Mixtral renormalises
    the single routing weight to 1). Returns the losses.
    """
    losses: list[float] = []
    it = iter(batches)
    with recording_routers(model, adapter) as routers:
        weights: list[torch.Tensor] = [cast(Any, r.inner).weight for r in routers]
        for p in model.parameters():
            p.requires_grad_(False)
        for w in weights:
            w.requires_grad_(True)
        opt = torch.optim.AdamW(weights, lr=lr, weight_decay=0.0)
        for _ in range(int(steps)):
            batch, expert = next(it)
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss = token_label_ce([_logits(r) for r in routers], batch["attention_mask"], expert)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
    return losses


def domain_experts(domain_index: int, num_experts: int, top_k: int) -> list[int]:
    """The experts a synthetic domain is pre-trained on: ``(d * k + j) mod E`` for ``j < k``.

    Top-1 with 4 experts: domain d -> expert ``d mod 4``; top-2 with 8 experts: domain 0
    -> (0, 1), domain 1 -> (2, 3), ...
    """
    return [(domain_index * top_k + j) % num_experts for j in range(top_k)]


def _pretrain_corpus(seed: int) -> list[tuple[int, Any]]:
    """(domain index, example) pairs: every synthetic domain through all its templates."""
    from emsfl_sim.learning.data import SYNTHETIC_DOMAINS, make_pretrain_examples

    return [(d, ex) for d, dom in enumerate(SYNTHETIC_DOMAINS)
            for ex in make_pretrain_examples(dom, 512, seed, PRETRAIN_FACTS_PER_DOMAIN)]


def _router_loss(routers: Sequence[RecordingRouter], attention_mask: torch.Tensor, index: torch.Tensor,
                 num_experts: int) -> torch.Tensor:
    """Mean over layers of the cross-entropy of router logits (real tokens) towards the domain's experts."""
    k = index.shape[1]
    keep = attention_mask.reshape(-1).bool()
    target = torch.zeros(len(index), num_experts, device=index.device).scatter_(1, index, 1.0 / k)[keep]
    rl = sum(torch.nn.functional.cross_entropy(_logits(r)[keep].float(), target) for r in routers)
    return rl / len(routers)  # type: ignore[return-value]  # sum() of tensors is a tensor


def pretrain_backbone(
    model: nn.Module,
    adapter: MoEAdapter,
    seed: int,
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 16,
    router_loss_weight: float = 1.0,
) -> list[float]:
    """Pre-train a tiny MoE (all parameters) on the synthetic domains; returns the losses.

    Stands in for the reference's experts built from domain-specialised dense models plus
    a pre-trained gate, so that a tiny preset behaves like a pre-trained LLM:

    * corpus: every synthetic MCQA domain through all its templates, with facts
      *disjoint* from those fine-tuning asks about (:func:`~emsfl_sim.learning.data.
      make_pretrain_examples` for ``seed``; use the scenario seed for both), so the
      backbone learns the templates, answer words and how to carry an entity to the
      answer position, and fine-tuning must still learn every fact;
    * loss: language-model loss on the answers plus ``router_loss_weight`` x the mean
      over layers of the cross-entropy between each router's logits (all real tokens)
      and the domain's experts :func:`domain_experts` (uniform over them for top-k > 1).
      The model routes with its own routers throughout, so training and use agree; the
      supervision makes them route each domain to its experts (and the experts
      specialise). Without it a top-1 Mixtral router gets no gradient at all: its
      single top-k weight is renormalised to exactly 1.

    AdamW, linear warm-up over 10% of the steps, cosine decay to 10% of ``lr``. Batches
    come from a seeded stream, so the result is a deterministic function of the config,
    ``seed`` and the arguments (on a given machine and thread count).
    """
    from emsfl_sim.learning.data import SYNTHETIC_DOMAINS, ByteTokenizer, make_lm_batch
    from emsfl_sim.rng import rng as named_rng

    E, k = adapter.num_experts, adapter.top_k
    tok = ByteTokenizer()
    corpus = _pretrain_corpus(seed)
    experts = torch.tensor([domain_experts(d, E, k) for d in range(len(SYNTHETIC_DOMAINS))])
    g = named_rng(seed, "pretrain", "batches")
    dev = next(model.parameters()).device
    params = [p for p in model.parameters()]
    was_training = model.training
    losses: list[float] = []
    with recording_routers(model, adapter) as routers, seeded(torch_seed(seed, "pretrain")):
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        sched = warmup_cosine(opt, steps)
        model.train()
        try:
            for _ in range(int(steps)):
                pick = g.choice(len(corpus), size=min(batch_size, len(corpus)), replace=False)
                batch = make_lm_batch([corpus[i][1] for i in pick], tok, 96, dev)
                dom = torch.tensor([corpus[i][0] for i in pick])
                seq = batch["input_ids"].shape[1]
                index = experts[dom][:, None, :].expand(-1, seq, -1).reshape(-1, k).to(dev)
                loss = model(**batch).loss
                if router_loss_weight:
                    loss = loss + router_loss_weight * _router_loss(routers, batch["attention_mask"], index, E)
                loss.backward()
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
        finally:
            model.train(was_training)
    return losses


