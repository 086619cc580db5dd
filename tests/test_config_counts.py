"""The torch-free counts of config_counts equal the meta-device counts of systems.py."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from emsfl_sim.errors import InputError
from emsfl_sim.learning import config_counts as cc
from emsfl_sim.learning import trained_counts as tc

systems = pytest.importorskip("emsfl_sim.learning.systems")


def _preset_dict(name: str, arch: str) -> dict[str, Any]:
    return cc.preset_config(name, arch)


#: every systems config, the tiny preset of each family, the small Mixtral preset, and variants
#: that exercise the other config fields (tied head, dense Qwen layers, biases, head_dim)
CASES: dict[str, dict[str, Any]] = {
    **systems.SYSTEMS_CONFIGS,
    "tiny-mixtral": _preset_dict("tiny", "mixtral"),
    "tiny-qwen2_moe": _preset_dict("tiny", "qwen2_moe"),
    "tiny-olmoe": _preset_dict("tiny", "olmoe"),
    "small-mixtral": _preset_dict("small", "mixtral"),
    "tiny-qwen-sparse": {**_preset_dict("tiny", "qwen2_moe"), "decoder_sparse_step": 2, "mlp_only_layers": [3],
                         "intermediate_size": 96, "shared_expert_intermediate_size": 48, "qkv_bias": False,
                         "tie_word_embeddings": True},
    "tiny-olmoe-bias": {**_preset_dict("tiny", "olmoe"), "attention_bias": True, "num_key_value_heads": 1},
    "tiny-mixtral-headdim": {**_preset_dict("tiny", "mixtral"), "head_dim": 48, "tie_word_embeddings": True},
    "mixtral-defaults": {"model_type": "mixtral", "num_hidden_layers": 2},
    "olmoe-defaults": {"model_type": "olmoe", "num_hidden_layers": 2},
    "qwen2_moe-defaults": {"model_type": "qwen2_moe", "num_hidden_layers": 2},
}

OTHER_TARGETS = [("down_proj",), ("gate_up_proj",)]


@cache
def _meta_counts(name: str) -> dict[str, int]:
    return dict(systems.count_parameters_meta(CASES[name]))


@cache
def _meta_lora(name: str, rank: int, targets: tuple[str, ...]) -> int:
    return int(systems.lora_parameters_per_expert(CASES[name], rank, targets))


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameter_counts_match_meta_model(name: str) -> None:
    assert cc.count_parameters(CASES[name]) == _meta_counts(name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_shape_matches_adapter(name: str) -> None:
    _, ad = systems.meta_model(CASES[name])
    cfg = CASES[name]
    assert (cc.num_experts(cfg), cc.top_k(cfg), cc.num_layers(cfg)) == (ad.num_experts, ad.top_k, ad.num_layers)
    model, _ = systems.meta_model(cfg)
    assert len(cc.moe_shape(cfg).moe_layers) == len(ad.moe_layers(model))


@pytest.mark.parametrize("rank", [4, 16])
@pytest.mark.parametrize("name", sorted(CASES))
def test_lora_per_expert_matches_peft_slices(name: str, rank: int) -> None:
    for targets in [cc.DEFAULT_TARGETS, *OTHER_TARGETS]:
        assert cc.lora_parameters_per_expert(CASES[name], rank, targets) == _meta_lora(name, rank, targets), targets


@pytest.mark.parametrize("name", ["mixtral-8x7b", "qwen1.5-moe-a2.7b", "tiny-olmoe", "tiny-qwen-sparse"])
def test_payload_bytes_match(name: str) -> None:
    cfg = CASES[name]
    variants: list[dict[str, Any]] = [dict(), dict(rank=16, experts=(0, 2), include_gate=True, dtype_bytes=4),
                                      dict(targets=("down_proj",), experts=(1,), include_gate=True)]
    for kw in variants:
        assert cc.lora_payload_bytes(cfg, **kw) == systems.lora_payload_bytes(cfg, **kw), kw
    model, ad = systems.meta_model(cfg)
    assert cc.router_parameters(cfg) == sum(w.numel() for w in ad.router_weights(model))


FLOP_CASES = [((), False, False), ((), True, False), ((0,), False, False), ((0, 1), True, False),
              ((0,), False, True), ((0, 1), True, True), ((0, 1, 2), False, True)]


@pytest.mark.parametrize("rank", [4, 16])
@pytest.mark.parametrize("name", sorted(CASES))
def test_flops_match(name: str, rank: int) -> None:
    cfg = CASES[name]
    for experts, gate, masked in FLOP_CASES:
        for seq_len in (128, 512):
            ours = tc.flops_per_token(cfg, experts, gate, masked, lora_rank=rank, seq_len=seq_len)
            ref = systems.flops_per_token(cfg, experts, gate, masked, lora_rank=rank, seq_len=seq_len)
            assert ours == ref, (experts, gate, masked, seq_len)


def test_mixtral_8x7b_by_hand() -> None:
    # mistralai/Mixtral-8x7B-v0.1: hidden 4096, intermediate 14336, 32 layers, 8 experts, top-2,
    # 32 heads, 8 KV heads (head_dim 128), vocab 32000, untied head
    cfg = systems.MIXTRAL_8X7B_CONFIG
    h, i, n_layers, n_exp, v = 4096, 14336, 32, 8, 32000
    per_expert = 3 * h * i * n_layers  # gate, up, down of one expert in every layer
    attention = h * 4096 + 2 * h * 1024 + 4096 * h
    total = n_layers * (attention + 2 * h + n_exp * h) + n_exp * per_expert + 2 * v * h + h
    counts = cc.count_parameters(cfg)
    assert counts["per_expert"] == per_expert == 5_637_144_576
    assert counts["total"] == total == 46_702_792_704  # the published "46.7B"
    assert counts["router"] == n_layers * n_exp * h
    # rank-4 LoRA of one expert: gate_up_proj A [4, H] + B [2I, 4], down_proj A [4, I] + B [H, 4]
    assert cc.lora_parameters_per_expert(cfg, 4) == n_layers * 4 * ((h + 2 * i) + (i + h)) == 6_553_600


def test_defaults_are_the_transformers_class_defaults() -> None:
    import transformers

    classes = {"mixtral": transformers.MixtralConfig, "qwen2_moe": transformers.Qwen2MoeConfig,
               "olmoe": transformers.OlmoeConfig}
    for mt, cls in classes.items():
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key, value in cc.CONFIG_DEFAULTS[mt].items():
            assert defaults[key] == value, (mt, key)


def test_presets_match_models_preset_config() -> None:
    from emsfl_sim.learning.adapters import adapter_class
    from emsfl_sim.learning.data import ByteTokenizer
    from emsfl_sim.learning.models import preset_config
    from emsfl_sim.learning.modelspec import PRESETS, ModelSpec

    assert cc.PRESETS == PRESETS
    tok = ByteTokenizer()
    assert cc.BYTE_TOKEN_IDS == dict(pad_token_id=tok.pad_id, bos_token_id=tok.bos_id, eos_token_id=tok.eos_id)
    for arch in cc.CONFIG_DEFAULTS:
        for preset in PRESETS:
            variants: list[dict[str, Any]] = [
                dict(), dict(num_experts=6, top_k=3, vocab_size=300, overrides={"num_hidden_layers": 2})]
            for kw in variants:
                spec = ModelSpec(preset=preset, architecture=arch, num_experts=kw.get("num_experts"),
                                 top_k=kw.get("top_k"), vocab_size=int(kw.get("vocab_size", 259)),
                                 config_overrides=dict(kw.get("overrides", {})))
                ref = preset_config(spec)
                ours = adapter_class(arch).make_config(cc.preset_config(preset, arch, **kw))
                assert ours.to_dict() == ref.to_dict(), (arch, preset, kw)
                assert cc.count_parameters(cc.preset_config(preset, arch, **kw)) == systems.count_parameters_meta(ref)


def test_config_objects_and_paths(tmp_path: Path) -> None:
    cfg = systems.QWEN15_MOE_A27B_CONFIG
    expected = cc.count_parameters(cfg)
    assert cc.count_parameters(systems.load_config(cfg)) == expected  # a PretrainedConfig (to_dict)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert cc.count_parameters(tmp_path) == expected
    assert cc.count_parameters(str(tmp_path / "config.json")) == expected


def test_bad_inputs() -> None:
    cfg = _preset_dict("tiny", "mixtral")
    with pytest.raises(InputError, match="unknown MoE architecture"):
        cc.count_parameters({"model_type": "llama"})
    with pytest.raises(InputError, match="top_k"):
        cc.count_parameters({**cfg, "num_experts_per_tok": 5})
    with pytest.raises(InputError, match="positive integer"):
        cc.count_parameters({**cfg, "hidden_size": -4})
    with pytest.raises(InputError, match="matches no fused expert parameter"):
        cc.lora_parameters_per_expert(cfg, 4, ("q_proj",))
    with pytest.raises(InputError, match="rank"):
        cc.lora_parameters_per_expert(cfg, 0)
    with pytest.raises(IndexError):
        cc.lora_payload_bytes(cfg, experts=(4,))


def test_import_does_not_load_torch() -> None:
    code = ("import sys, emsfl_sim.learning.config_counts as m, emsfl_sim.learning.trained_counts; "
            "bad = [n for n in ('torch', 'transformers', 'peft') if n in sys.modules]; "
            "assert not bad, bad; print(m.count_parameters(m.preset_config('tiny'))['total'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 0
