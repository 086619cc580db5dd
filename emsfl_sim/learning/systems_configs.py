"""The real MoE architectures ``model.systems_model`` and ``model.config`` can name, as config dicts.

Plain data, no torch: ``learning/systems.py`` builds them on the meta device and
``learning/config_counts.py`` counts them analytically (timeline runs).
"""

from __future__ import annotations

from typing import Any

#: A Mixtral-style MoE made of three Llama-3-8B models (the reference's 3x8B setting; values
#: from meta-llama/Meta-Llama-3-8B config.json: hidden 4096, intermediate 14336, 32 layers,
#: 32 heads, 8 KV heads, vocab 128256, rope_theta 500000).
LLAMA3_8B_X3_MOE_CONFIG: dict[str, Any] = dict(
    model_type="mixtral",
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    tie_word_embeddings=False,
    num_local_experts=3,
    num_experts_per_tok=1,
)

#: mistralai/Mixtral-8x7B-v0.1 config.json.
MIXTRAL_8X7B_CONFIG: dict[str, Any] = dict(
    model_type="mixtral",
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=32768,
    rms_norm_eps=1e-5,
    rope_theta=1e6,
    tie_word_embeddings=False,
    num_local_experts=8,
    num_experts_per_tok=2,
)

#: Qwen/Qwen1.5-MoE-A2.7B config.json (the Qwen2-MoE family: 60 routed experts of width 1408,
#: top-4 without renormalisation, one shared expert of width 5632 in every layer).
QWEN15_MOE_A27B_CONFIG: dict[str, Any] = dict(
    model_type="qwen2_moe",
    vocab_size=151936,
    hidden_size=2048,
    intermediate_size=5632,
    moe_intermediate_size=1408,
    shared_expert_intermediate_size=5632,
    num_hidden_layers=24,
    num_attention_heads=16,
    num_key_value_heads=16,
    max_position_embeddings=8192,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    tie_word_embeddings=False,
    decoder_sparse_step=1,
    num_experts=60,
    num_experts_per_tok=4,
    norm_topk_prob=False,
)

#: allenai/OLMoE-1B-7B-0924 config.json (routed experts only: 64 experts of width 1024, top-8).
OLMOE_1B_7B_CONFIG: dict[str, Any] = dict(
    model_type="olmoe",
    vocab_size=50304,
    hidden_size=2048,
    intermediate_size=1024,
    num_hidden_layers=16,
    num_attention_heads=16,
    num_key_value_heads=16,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=False,
    num_experts=64,
    num_experts_per_tok=8,
    norm_topk_prob=False,
    pad_token_id=1,
    bos_token_id=None,
    eos_token_id=50279,
)

#: The real architectures ``model.systems_model`` can name (payloads and FLOPs without weights).
SYSTEMS_CONFIGS: dict[str, dict[str, Any]] = {
    "llama3-8b-x3": LLAMA3_8B_X3_MOE_CONFIG,
    "mixtral-8x7b": MIXTRAL_8X7B_CONFIG,
    "qwen1.5-moe-a2.7b": QWEN15_MOE_A27B_CONFIG,
    "olmoe-1b-7b": OLMOE_1B_7B_CONFIG,
}
