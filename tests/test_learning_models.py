"""Model sources, adapters and meta-device counting (emsfl_sim.learning.models)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM, MixtralForCausalLM

from emsfl_sim.errors import InputError
from emsfl_sim.learning.merge import dense_config
from emsfl_sim.learning.models import build_model
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.pretrain import gate_pretrain
from emsfl_sim.learning.systems import (
    LLAMA3_8B_X3_MOE_CONFIG,
    MIXTRAL_8X7B_CONFIG,
    count_parameters_meta,
    flops_per_token,
    lora_payload_bytes,
)


@pytest.mark.parametrize(
    "preset, E, k, H, inter", [("tiny", 4, 1, 128, 256), ("small", 8, 2, 256, 512)]
)
def test_presets_shapes(preset, E, k, H, inter):
    model, ad = build_model(ModelSpec(preset=preset), seed=0)
    assert (ad.num_experts, ad.top_k, ad.num_layers) == (E, k, 4)
    assert len(ad.moe_layers(model)) == 4
    for layer in ad.expert_parameters(model):
        assert tuple(layer["gate_up_proj"].shape) == (E, 2 * inter, H)
        assert tuple(layer["down_proj"].shape) == (E, H, inter)
    assert all(tuple(w.shape) == (E, H) for w in ad.router_weights(model))
    assert model.config.vocab_size == 259


def test_seeded_build_is_deterministic():
    a, _ = build_model(ModelSpec(), seed=3)
    b, _ = build_model(ModelSpec(), seed=3)
    c, _ = build_model(ModelSpec(), seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["model.embed_tokens.weight"], sc["model.embed_tokens.weight"])


def test_top_k_above_experts_is_input_error():
    with pytest.raises(InputError, match="top_k"):
        build_model(ModelSpec(top_k=5), seed=0)


def test_set_top_k_changes_routing():
    model, ad = build_model(ModelSpec(preset="small"), seed=0)
    ad.set_top_k(model, 3)
    assert model.config.num_experts_per_tok == 3
    assert all(b.gate.top_k == 3 for b in ad.moe_layers(model))
    with pytest.raises(InputError):
        ad.set_top_k(model, 9)


def _tiny_dense(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(dense_config("tiny", num_hidden_layers=2)).eval()


def test_checkpoint_without_moe_layers_names_path(tmp_path):
    path = tmp_path / "dense"
    _tiny_dense(0).save_pretrained(path)
    with pytest.raises(InputError) as err:
        build_model(ModelSpec(checkpoint_path=str(path)), seed=0)
    msg = str(err.value)
    assert str(path) in msg and "has no MoE layers" in msg and "dense_checkpoints" in msg


def test_moe_checkpoint_roundtrip(tmp_path):
    model, _ = build_model(ModelSpec(), seed=1)
    model.save_pretrained(tmp_path / "moe")
    loaded, ad = build_model(ModelSpec(checkpoint_path=str(tmp_path / "moe")), seed=99)
    x = torch.randint(0, 259, (2, 12))
    with torch.no_grad():
        assert torch.allclose(model(input_ids=x).logits, loaded(input_ids=x).logits, atol=1e-6)
    assert ad.num_experts == 4


def test_moe_from_identical_dense_models_equals_dense(tmp_path):
    """Experts that are copies of one dense FFN: any routing gives the dense model's output."""
    dense = _tiny_dense(0)
    dense.save_pretrained(tmp_path / "d")
    spec = ModelSpec(dense_checkpoints=[str(tmp_path / "d")] * 3, top_k=1)
    moe, ad = build_model(spec, seed=0)
    assert isinstance(moe, MixtralForCausalLM) and ad.num_experts == 3
    x = torch.randint(0, 259, (2, 16))
    with torch.no_grad():
        assert torch.allclose(moe(input_ids=x).logits, dense(input_ids=x).logits, atol=1e-5)


def test_moe_from_dense_expert_mapping_and_hidden_router(tmp_path):
    paths = []
    for e in range(3):
        _tiny_dense(e).save_pretrained(tmp_path / f"d{e}")
        paths.append(str(tmp_path / f"d{e}"))
    prompts = [["stars and comets"], ["court ruling", "the judge said"], ["boil the pasta"]]
    spec = ModelSpec(dense_checkpoints=paths, base_index=1, router_init="hidden", expert_prompts=prompts, top_k=2)
    moe, ad = build_model(spec, seed=0)
    dense = [LlamaForCausalLM.from_pretrained(p) for p in paths]
    for i, layer in enumerate(ad.expert_parameters(moe)):
        for e, d in enumerate(dense):
            mlp = d.model.layers[i].mlp
            assert torch.equal(layer["gate_up_proj"][e], torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
            assert torch.equal(layer["down_proj"][e], mlp.down_proj.weight)
    # backbone from the base (index 1)
    assert torch.equal(moe.model.embed_tokens.weight, dense[1].model.embed_tokens.weight)
    assert torch.equal(moe.model.layers[0].self_attn.q_proj.weight, dense[1].model.layers[0].self_attn.q_proj.weight)
    # hidden init, layer 0: the hidden state entering layer 0 is the last token's embedding
    # (independent reference: mean of those embeddings, normalised)
    emb = dense[1].model.embed_tokens.weight
    w0 = ad.router_weights(moe)[0]
    for e, pr in enumerate(prompts):
        last = [ord(p[-1]) for p in pr]
        ref = emb[last].mean(0)
        assert torch.allclose(w0[e], ref / ref.norm(), atol=1e-5)
    assert torch.allclose(ad.router_weights(moe)[1].norm(dim=-1), torch.ones(3), atol=1e-5)


def test_hidden_router_needs_prompts(tmp_path):
    _tiny_dense(0).save_pretrained(tmp_path / "d")
    with pytest.raises(InputError, match="expert_prompts|prompts"):
        build_model(ModelSpec(dense_checkpoints=[str(tmp_path / "d")] * 2, router_init="hidden"), seed=0)


def test_gate_pretrain_changes_only_routers():
    model, ad = build_model(ModelSpec(), seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(0, 256, (4, 24), generator=g)}
    batch["labels"] = batch["input_ids"].clone()
    losses = gate_pretrain(model, ad, iter([batch] * 20), steps=20, lr=5e-2)
    assert len(losses) == 20 and all(torch.isfinite(torch.tensor(losses)))
    for n, p in model.named_parameters():
        changed = not torch.equal(p, before[n])
        assert changed == (".mlp.gate." in n), n
        assert p.requires_grad == flags[n]  # flags restored


# ---- meta-device counting: published parameter counts are the independent reference
def test_llama3_8b_x3_counts():
    c = count_parameters_meta(LLAMA3_8B_X3_MOE_CONFIG)
    H, inter, L = 4096, 14336, 32
    assert c["per_expert"] == L * 3 * H * inter
    assert c["router"] == L * 3 * H
    # active params without the router = Llama-3-8B's published size 8,030,261,248: half the
    # "total_size" 16,060,522,496 bytes (bf16) in model.safetensors.index.json of
    # meta-llama/Meta-Llama-3-8B on the Hugging Face hub; the same number follows from its config.json
    # (vocab 128256, hidden 4096, FFN 14336, 32 layers, 8 KV heads, untied embeddings)
    assert c["active_per_token"] - c["router"] == 8_030_261_248


def test_mixtral_8x7b_total():
    # mistralai/Mixtral-8x7B-v0.1 has 46,702,792,704 parameters: half the "total_size" 93,405,585,408
    # bytes (bf16) in model.safetensors.index.json of mistralai/Mixtral-8x7B-Instruct-v0.1 (same shapes)
    # on the Hugging Face hub; the same number follows from the config.json (vocab 32000, hidden 4096,
    # FFN 14336, 32 layers, 8 experts, 8 KV heads, untied embeddings)
    assert count_parameters_meta(MIXTRAL_8X7B_CONFIG)["total"] == 46_702_792_704


def test_lora_payload_one_expert_llama3_8b_x3_by_hand():
    r, H, inter, L = 4, 4096, 14336, 32
    # fused gate_up [2I, H]: A r*H, B 2I*r; down [H, I]: A r*I, B H*r (PEFT layout)
    per_layer = r * H + 2 * inter * r + r * inter + H * r
    expected = L * per_layer * 2  # bf16
    got = lora_payload_bytes(LLAMA3_8B_X3_MOE_CONFIG, rank=4, experts=[0], dtype_bytes=2)
    assert got == expected == 13_107_200
    # /work/shared/design/EMS-FL.md sec. 3 "Reference numbers": "A rank-4 LoRA of one 8B expert is 10-20 MB"
    assert 10e6 <= got <= 20e6
    assert lora_payload_bytes(LLAMA3_8B_X3_MOE_CONFIG, rank=4, experts=[0, 2], dtype_bytes=2) == 2 * expected


def test_count_from_config_json_path(tmp_path):
    import json

    p = tmp_path / "config.json"
    p.write_text(json.dumps(MIXTRAL_8X7B_CONFIG))
    assert count_parameters_meta(p)["total"] == 46_702_792_704  # Mixtral-8x7B, source in test_mixtral_8x7b_total
    dense = dict(MIXTRAL_8X7B_CONFIG)
    dense.pop("num_local_experts")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "config.json").write_text(json.dumps(dense))
    with pytest.raises(InputError, match="has no MoE layers"):
        count_parameters_meta(tmp_path / "d")


def test_flops_per_token():
    cfg = MIXTRAL_8X7B_CONFIG
    c = count_parameters_meta(cfg)
    fwd = flops_per_token(cfg, [], False, seq_len=128)
    # The compute model stated in the docstring of emsfl_sim.learning.systems.flops_per_token (the
    # code's own definition, not an external reference): forward = 2 * N_active without the input
    # embedding (32000 x 4096) + attention scores 4 * L * seq_len * H; backward about the forward
    # again plus 2 x the trained parameters a token touches.
    n_active = c["active_per_token"] - 32000 * 4096
    assert fwd == pytest.approx(2 * n_active + 4 * 32 * 128 * 4096)
    train = flops_per_token(cfg, [0, 1], True)
    assert 2 * fwd < train < 2.1 * fwd
    # a masked device owning one expert uses 1 expert per token instead of 2
    assert flops_per_token(cfg, [0], False, masked=True) < flops_per_token(cfg, [0], False)


def test_align_routers_trains_only_routers_towards_domain_experts():
    """Supervised gate pre-training of merges: router loss falls, nothing but routers changes."""
    import numpy as np

    from emsfl_sim.learning.data import ByteTokenizer, iterate_batches, make_domain_examples, make_lm_batch
    from emsfl_sim.learning.models import build_model
    from emsfl_sim.learning.modelspec import ModelSpec
    from emsfl_sim.learning.pretrain import align_routers

    model, ad = build_model(ModelSpec(preset="tiny"), seed=0)
    tok = ByteTokenizer()
    examples = make_domain_examples("astronomy", 32, 0) + make_domain_examples("law", 32, 0)
    target = {"astronomy": 0, "law": 2}

    def batches():
        for b in iterate_batches(examples, 16, np.random.default_rng(0)):
            yield make_lm_batch(b, tok, 96), torch.tensor([target[e.domain] for e in b])

    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if ".mlp.gate." not in n}
    losses = align_routers(model, ad, batches(), steps=40, lr=3e-2)
    assert losses[-1] < losses[0] - 0.3, losses[::10]
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert all(type(r).__name__ == "MixtralTopKRouter" for r in ad.routers(model))  # wrappers removed


def test_strategy_footprints_order_payload_and_memory():
    from emsfl_sim.learning.data import make_domain_examples
    from emsfl_sim.learning.engine import LearningEngine
    from emsfl_sim.learning.lora import LoraSpec
    from emsfl_sim.learning.modelspec import ModelSpec
    from emsfl_sim.learning.train import TrainSpec
    from emsfl_sim.strategies.footprints import strategy_footprints

    eng = LearningEngine(ModelSpec(preset="tiny"), LoraSpec(rank=4, alpha=8), TrainSpec(batch_size=4, max_len=64),
                         seed=0, device="cpu")
    rows = strategy_footprints(eng, make_domain_examples("law", 16, seed=0), clusters=4)
    pay = {k: v[0] for k, v in rows.items()}
    mem = {k: v[1].peak_bytes for k, v in rows.items()}
    # baseline: 4 experts + gate; EMS-FL: 1 expert + gate; enhanced: 1 expert
    assert pay["baseline"] == eng.payload_bytes(range(4), True)
    assert pay["baseline"] > pay["emsfl"] > pay["emsfl_enhanced"] == eng.payload_bytes([0], False)
    assert mem["emsfl_enhanced"] < mem["baseline"]
