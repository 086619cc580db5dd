"""Parameter and LoRA-payload counts of an MoE from its config dict alone (no torch).

What a device trains and sends (full weights, the shared part) and its FLOPs are in
:mod:`emsfl_sim.learning.trained_counts`.

:mod:`emsfl_sim.learning.systems` gets these numbers from a meta-device model (and PEFT);
this module computes the same integers from config.json fields, after transformers 5.x:
each layer has ``q/k/v/o_proj`` (Qwen2-MoE: ``qkv_bias``; OLMoE: ``attention_bias`` on all
four, ``q_norm [H]``, ``k_norm [(H // heads) * kv_heads]``) and two RMSNorms ``[H]``; an MoE
layer a router ``[E, H]`` and fused experts ``gate_up_proj [E, 2I, H]``, ``down_proj [E, H, I]``
(Qwen2-MoE adds ``shared_expert`` and ``shared_expert_gate [1, H]``; its ``mlp_only_layers``
and layers off ``decoder_sparse_step`` are dense MLPs); then embedding, final norm, LM head.
PEFT LoRA on ``W [E, out, in]`` gives each expert ``A [r, in]`` and ``B [out, r]``
(:mod:`emsfl_sim.learning.lora`): ``r * (H + 2I)`` on ``gate_up_proj``, ``r * (I + H)`` on
``down_proj`` per layer. ``tests/test_config_counts.py`` pins every count to the meta model.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emsfl_sim.errors import InputError

#: The fused expert parameters PEFT LoRA targets by default (``LoraSpec.targets``).
DEFAULT_TARGETS: tuple[str, ...] = ("gate_up_proj", "down_proj")

#: The fused 3-D expert parameters of every supported family (the valid LoRA targets).
EXPERT_PARAMETERS: tuple[str, ...] = ("gate_up_proj", "down_proj")

#: Defaults of the config fields that size parameters, per ``model_type``: the dataclass
#: field defaults of transformers 5.24 (``.venv/lib/python3.11/site-packages/transformers/
#: models/mixtral/configuration_mixtral.py`` ``MixtralConfig``, ``qwen2_moe/
#: configuration_qwen2_moe.py`` ``Qwen2MoeConfig``, ``olmoe/configuration_olmoe.py``
#: ``OlmoeConfig``). ``num_key_value_heads=None`` means ``num_attention_heads`` (the
#: ``__post_init__`` of Mixtral and OLMoE); ``mlp_only_layers=None`` means ``[]`` (Qwen2-MoE).
CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "mixtral": dict(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=None, tie_word_embeddings=False,
        num_experts_per_tok=2, num_local_experts=8,
    ),
    "qwen2_moe": dict(
        vocab_size=151936, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
        num_attention_heads=16, num_key_value_heads=16, tie_word_embeddings=False, decoder_sparse_step=1,
        moe_intermediate_size=1408, shared_expert_intermediate_size=5632, num_experts_per_tok=4,
        num_experts=60, mlp_only_layers=None, qkv_bias=True,
    ),
    "olmoe": dict(
        vocab_size=50304, hidden_size=2048, intermediate_size=2048, num_hidden_layers=16,
        num_attention_heads=16, num_key_value_heads=None, tie_word_embeddings=False,
        attention_bias=False, num_experts_per_tok=8, num_experts=64,
    ),
}

#: Per family: (config field of the routed-expert count, its alias in the config class's
#: ``attribute_map``, config field of one routed expert's FFN width), as in the adapters.
_FAMILY_FIELDS: dict[str, tuple[str, str, str]] = {
    "mixtral": ("num_local_experts", "num_experts", "intermediate_size"),
    "qwen2_moe": ("num_experts", "", "moe_intermediate_size"),
    "olmoe": ("num_experts", "num_local_experts", "intermediate_size"),
}

#: Tiny presets in family-neutral names: a copy of ``emsfl_sim.learning.modelspec.PRESETS``
#: (that module imports torch); ``tests/test_config_counts.py`` checks the two agree.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, num_experts=4, top_k=1),
    "small": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, num_experts=8, top_k=2),
}

#: ``pad/bos/eos`` ids of :class:`emsfl_sim.learning.data.ByteTokenizer` (256 bytes + 3 specials).
BYTE_TOKEN_IDS: dict[str, int] = {"pad_token_id": 256, "bos_token_id": 257, "eos_token_id": 258}

_SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_experts_per_tok")

ConfigInput = Mapping[str, Any] | str | Path


@dataclass(frozen=True)
class MoEShape:
    """The sizes of an MoE that its parameter counts depend on (resolved config fields).

    ``moe_layers`` are the indices of the MoE decoder layers (all but Qwen2-MoE's
    ``mlp_only_layers`` and those off its ``decoder_sparse_step``); ``dense_width`` is the
    FFN width of a dense layer, ``shared_width`` the shared expert's (Qwen2-MoE);
    ``qkv_bias``/``o_bias`` are attention biases, ``qk_norm`` OLMoE's query/key norms.
    """

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    num_experts: int
    top_k: int
    expert_width: int
    moe_layers: tuple[int, ...]
    dense_width: int = 0
    shared_width: int = 0
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    tie_word_embeddings: bool = False


def read_config(config: ConfigInput | Any) -> dict[str, Any]:
    """A plain config dict from a dict, a ``config.json`` path (or its directory) or a config object.

    Parameters
    ----------
    config
        A mapping of config.json fields, a path, or any object with ``to_dict()`` (a
        transformers ``PretrainedConfig``; transformers itself is not imported).

    Returns
    -------
    dict
        The config fields (a copy).
    """
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, (str, Path)):
        p = Path(config)
        if p.is_dir():
            p = p / "config.json"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("config file not found", file=p) from None
        if not isinstance(data, dict):
            raise InputError("must be a JSON object of config fields", file=p)
        return data
    if callable(getattr(config, "to_dict", None)):
        return dict(config.to_dict())
    raise TypeError(f"expected a config dict, a config.json path or a config object; got {type(config).__name__}")


def _field(data: Mapping[str, Any], defaults: Mapping[str, Any], key: str, alias: str = "") -> Any:
    if key in data:
        return data[key]
    if alias and alias in data:
        return data[alias]
    return defaults.get(key)


def _positive(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"must be a positive integer (got {value!r})", field=f"model.config.{key}")
    return value


def moe_shape(config: ConfigInput | Any) -> MoEShape:
    """The resolved sizes of an MoE config; missing fields take the family's transformers defaults.

    Parameters
    ----------
    config
        Config fields with ``model_type`` (default ``mixtral``, as ``systems.load_config``),
        see :func:`read_config`.

    Returns
    -------
    MoEShape
        The sizes the counts of this module are computed from.

    Raises
    ------
    InputError
        For an unregistered ``model_type``, a size that is not a positive integer, or a
        ``num_experts_per_tok`` outside ``1..num_experts``.
    """
    data = read_config(config)
    mt = str(data.get("model_type", "mixtral"))
    if mt not in CONFIG_DEFAULTS:
        raise InputError(f"unknown MoE architecture {mt!r}; use one of {', '.join(sorted(CONFIG_DEFAULTS))}",
                         field="model.architecture")
    d = CONFIG_DEFAULTS[mt]
    experts_field, alias, width_field = _FAMILY_FIELDS[mt]
    v = {k: _positive(_field(data, d, k), k) for k in _SIZE_FIELDS}
    h, heads, n_layers = v["hidden_size"], v["num_attention_heads"], v["num_hidden_layers"]
    kv = _field(data, d, "num_key_value_heads")
    kv = _positive(heads if kv is None and mt != "qwen2_moe" else kv, "num_key_value_heads")
    num_experts = _positive(_field(data, d, experts_field, alias), experts_field)
    width = _positive(_field(data, d, width_field), width_field)
    top_k = v["num_experts_per_tok"]
    if not 1 <= top_k <= num_experts:
        raise InputError(f"top_k must be between 1 and the number of experts ({num_experts}); got {top_k}",
                         field="model.top_k")
    # Mixtral: ``getattr(config, "head_dim", None) or H // heads``; the others: ``getattr(config,
    # "head_dim", H // heads)`` (their config classes have no head_dim field)
    hd = data.get("head_dim")
    head_dim = _positive(hd, "head_dim") if hd is not None or (mt != "mixtral" and "head_dim" in data) \
        else h // heads
    shape: dict[str, Any] = dict(
        model_type=mt, vocab_size=v["vocab_size"], hidden_size=h, num_layers=n_layers, num_heads=heads,
        num_kv_heads=kv, head_dim=head_dim, num_experts=num_experts, top_k=top_k, expert_width=width,
        moe_layers=tuple(range(n_layers)), tie_word_embeddings=bool(_field(data, d, "tie_word_embeddings")),
    )
    if mt == "qwen2_moe":
        only = _field(data, d, "mlp_only_layers") or []
        step = _positive(_field(data, d, "decoder_sparse_step"), "decoder_sparse_step")
        shape.update(
            moe_layers=tuple(i for i in range(n_layers) if i not in only and (i + 1) % step == 0),
            dense_width=int(_field(data, d, "intermediate_size")),
            shared_width=int(_field(data, d, "shared_expert_intermediate_size")),
            qkv_bias=bool(_field(data, d, "qkv_bias")),
        )
    elif mt == "olmoe":
        bias = bool(_field(data, d, "attention_bias"))
        shape.update(qkv_bias=bias, o_bias=bias, qk_norm=True)
    return MoEShape(**shape)


def num_experts(config: ConfigInput | Any) -> int:
    """Routed experts per MoE layer ``E`` (``num_local_experts`` / ``num_experts``), as ``MoEAdapter.num_experts``.

    Parameters
    ----------
    config
        Config fields, see :func:`read_config`.
    """
    return moe_shape(config).num_experts


def top_k(config: ConfigInput | Any) -> int:
    """Routed experts per token (``num_experts_per_tok``), as ``MoEAdapter.top_k``.

    Parameters
    ----------
    config
        Config fields, see :func:`read_config`.
    """
    return moe_shape(config).top_k


def num_layers(config: ConfigInput | Any) -> int:
    """Decoder layers, MoE or dense (``num_hidden_layers``), as ``MoEAdapter.num_layers``.

    Parameters
    ----------
    config
        Config fields, see :func:`read_config`.
    """
    return moe_shape(config).num_layers


def _attention_parameters(s: MoEShape) -> int:
    h, q, kv = s.hidden_size, s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
    n = h * q + 2 * h * kv + q * h
    n += (q + 2 * kv) if s.qkv_bias else 0
    n += h if s.o_bias else 0
    n += (h + (h // s.num_heads) * s.num_kv_heads) if s.qk_norm else 0
    return n


def count_parameters(config: ConfigInput | Any) -> dict[str, int]:
    """Parameter counts of an MoE from its config, equal to ``systems.count_parameters_meta``.

    Parameters
    ----------
    config
        Config fields, see :func:`read_config`.

    Returns
    -------
    dict
        ``total``; ``router`` (all MoE layers); ``experts`` (all routed experts);
        ``per_expert`` (one routed expert index over all MoE layers); ``shared_experts``
        (shared expert and its gate, all layers; 0 for routed-only families); ``backbone``
        (everything but routed experts and routers) and ``active_per_token``
        (``backbone + router + top_k * per_expert``).
    """
    s = moe_shape(config)
    h, n_moe = s.hidden_size, len(s.moe_layers)
    per_layer = _attention_parameters(s) + 2 * h
    router = n_moe * s.num_experts * h
    per_expert = n_moe * 3 * h * s.expert_width
    experts = s.num_experts * per_expert
    shared = n_moe * (3 * h * s.shared_width + h) if s.model_type == "qwen2_moe" else 0  # + shared_expert_gate
    dense = (s.num_layers - n_moe) * 3 * h * s.dense_width
    embeddings = s.vocab_size * h * (1 if s.tie_word_embeddings else 2)
    total = s.num_layers * per_layer + router + experts + shared + dense + embeddings + h
    backbone = total - router - experts
    return dict(total=total, backbone=backbone, router=router, experts=experts, per_expert=per_expert,
                shared_experts=shared, active_per_token=backbone + router + s.top_k * per_expert)


def router_parameters(config: ConfigInput | Any) -> int:
    """Router weights ``[E, H]`` of all MoE layers (what ``include_gate=True`` uploads).

    Parameters
    ----------
    config
        Config fields, see :func:`read_config`.

    Returns
    -------
    int
        ``len(moe_layers) * E * H``.
    """
    s = moe_shape(config)
    return len(s.moe_layers) * s.num_experts * s.hidden_size


def _targets(targets: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(targets))  # PEFT wraps a parameter named twice once
    if not out:
        raise InputError(f"no LoRA targets given; available: {list(EXPERT_PARAMETERS)}", field="lora.targets")
    for t in out:
        if t not in EXPERT_PARAMETERS:
            raise InputError(f"target {t!r} matches no fused expert parameter; available: {list(EXPERT_PARAMETERS)}",
                             field="lora.targets")
    return out


def _lora_per_expert(s: MoEShape, rank: int, targets: Iterable[str]) -> int:
    if int(rank) < 1:
        raise InputError(f"rank must be a positive integer; got {rank}", field="lora.rank")
    if not s.moe_layers:
        raise InputError("model has no MoE layers to put LoRA on", field="model")
    h, i = s.hidden_size, s.expert_width
    # W [E, out, in] -> A [r, in] + B [out, r]: gate_up_proj [E, 2I, H], down_proj [E, H, I]
    per_layer = {"gate_up_proj": h + 2 * i, "down_proj": i + h}
    return len(s.moe_layers) * int(rank) * sum(per_layer[t] for t in _targets(targets))


def lora_parameters_per_expert(config: ConfigInput | Any, rank: int = 4,
                               targets: Sequence[str] = DEFAULT_TARGETS) -> int:
    """LoRA parameters of one expert over all MoE layers (the slices ``expert_lora_state`` uploads).

    Parameters
    ----------
    config
        Config fields, see :func:`read_config`.
    rank
        LoRA rank ``r``.
    targets
        Fused expert parameters adapted (``gate_up_proj``, ``down_proj``; a repeated name counts once).

    Returns
    -------
    int
        ``len(moe_layers) * r * sum(in + out)`` over the targets, equal to
        ``systems.lora_parameters_per_expert``.
    """
    return _lora_per_expert(moe_shape(config), rank, targets)


def lora_payload_bytes(
    config: ConfigInput | Any,
    rank: int = 4,
    experts: Sequence[int] = (0,),
    targets: Sequence[str] = DEFAULT_TARGETS,
    dtype_bytes: int = 2,
    include_gate: bool = False,
) -> int:
    """Bytes of the LoRA factors of ``experts`` (all layers), plus the routers if asked.

    Parameters
    ----------
    config
        Config fields, see :func:`read_config`.
    rank, targets, experts, dtype_bytes
        LoRA rank and targets; experts uploaded (each counted as often as named); bytes per value.
    include_gate
        Add all router weights (:func:`router_parameters`).

    Returns
    -------
    int
        Equal to ``systems.lora_payload_bytes`` with the same arguments.

    Raises
    ------
    IndexError
        For an expert index outside ``0..E-1``.
    """
    s = moe_shape(config)
    per_expert = _lora_per_expert(s, rank, targets)
    for e in experts:
        if not 0 <= e < s.num_experts:
            raise IndexError(f"expert {e} out of range (model has {s.num_experts})")
    n = len(experts) * per_expert
    if include_gate:
        n += len(s.moe_layers) * s.num_experts * s.hidden_size
    return n * dtype_bytes


def preset_config(
    preset: str = "tiny",
    architecture: str = "mixtral",
    num_experts: int | None = None,
    top_k: int | None = None,
    vocab_size: int = 259,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The config dict of a tiny preset in a family, as ``models.preset_config`` builds it.

    Mirrors ``MoEAdapter.preset_config`` and the family's ``preset_fields`` (without torch):
    ``adapter.make_config(d)`` of the result is the config ``models.preset_config`` returns.

    Parameters
    ----------
    preset
        ``tiny`` or ``small``.
    architecture
        ``mixtral``, ``qwen2_moe`` or ``olmoe``.
    num_experts, top_k, vocab_size
        ``ModelSpec`` fields that replace the preset's.
    overrides
        ``model.config_overrides`` in the family's own field names, applied last.

    Returns
    -------
    dict
        Config fields with ``model_type``.
    """
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; use one of {sorted(PRESETS)}", field="model.preset")
    if architecture not in _FAMILY_FIELDS:
        raise InputError(f"unknown MoE architecture {architecture!r}; use one of "
                         f"{', '.join(sorted(_FAMILY_FIELDS))}", field="model.architecture")
    sizes = dict(PRESETS[preset])
    if num_experts is not None:
        sizes["num_experts"] = int(num_experts)
    if top_k is not None:
        sizes["top_k"] = int(top_k)
    experts_field, _, width_field = _FAMILY_FIELDS[architecture]
    kw: dict[str, Any] = {
        "model_type": architecture, "hidden_size": sizes["hidden_size"],
        width_field: sizes["intermediate_size"], "num_hidden_layers": sizes["num_hidden_layers"],
        "num_attention_heads": sizes["num_attention_heads"], "num_key_value_heads": sizes["num_key_value_heads"],
        experts_field: sizes["num_experts"], "num_experts_per_tok": sizes["top_k"],
    }
    if architecture == "qwen2_moe":
        width = sizes["intermediate_size"]
        kw.update(intermediate_size=width, shared_expert_intermediate_size=width, decoder_sparse_step=1,
                  mlp_only_layers=[], norm_topk_prob=True)
    elif architecture == "olmoe":
        kw.update(norm_topk_prob=True)
    kw.update(vocab_size=vocab_size, max_position_embeddings=1024, tie_word_embeddings=False)
    if architecture != "mixtral":
        kw.update(BYTE_TOKEN_IDS)
    kw.update(overrides or {})
    return kw
