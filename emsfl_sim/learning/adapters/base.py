"""The adapter interface, with the layout transformers 5 shares across its MoE families.

Every family emsfl-sim supports stores, in decoder layer ``i``, an MoE block at
``model.layers[i].mlp`` with a top-k router ``mlp.gate`` (``weight [E, H]``, returning
``(logits, weights, indices)``) and fused experts ``mlp.experts`` (``gate_up_proj [E, 2I, H]``,
``down_proj [E, H, I]``). A family module states what differs: its config and model
classes, its router class, the config fields of the expert count and expert width, and
any parameters inside the block that are not routed experts (shared experts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
from torch import nn
from transformers import PretrainedConfig

from emsfl_sim.errors import InputError


def unwrap(module: nn.Module) -> nn.Module:
    """Strip PEFT wrappers (``base_layer`` chains) from a module."""
    while isinstance(getattr(module, "base_layer", None), nn.Module):
        module = cast(nn.Module, module.base_layer)
    return module


#: Config fields that count things or size tensors: a positive integer each.
POSITIVE_CONFIG_FIELDS = frozenset({
    "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "num_local_experts",
    "num_experts", "num_experts_per_tok",
})


def check_config_values(values: dict[str, Any], field: str) -> None:
    """InputError naming ``FIELD.KEY`` for a size or count that is not a positive integer.

    transformers accepts ``hidden_size: -4`` and the model build fails later with a
    tensor error; this says which value is wrong before any work.
    """
    for key, value in values.items():
        if key in POSITIVE_CONFIG_FIELDS and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"must be a positive integer (got {value!r})", field=f"{field}.{key}")
        if key.endswith("_size") and key not in POSITIVE_CONFIG_FIELDS and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and value < 0:
            raise InputError(f"must not be negative (got {value!r})", field=f"{field}.{key}")


def model_head(model: nn.Module) -> str:
    """``"classification"`` for a sequence-classification model (a ``score`` head), else ``"lm"``.

    PEFT wrappers forward attribute lookups to the wrapped model, so this works on them too.
    """
    return "classification" if hasattr(model, "score") and not hasattr(model, "lm_head") else "lm"


def check_top_k(top_k: int, num_experts: int, file: str | None = None) -> None:
    """InputError unless ``1 <= top_k <= num_experts``."""
    if not 1 <= int(top_k) <= int(num_experts):
        raise InputError(
            f"top_k must be between 1 and the number of experts ({num_experts}); got {top_k}",
            file=file,
            field="model.top_k",
        )


class MoEAdapter:
    """What emsfl-sim needs to know about an MoE architecture.

    Expert parameters are *fused* 3-D tensors with the expert index first; expert ``e`` of a
    layer is ``param[e]``. Works on plain and PEFT-wrapped models.
    """

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[PretrainedConfig]]
    model_class: ClassVar[type[nn.Module]]
    router_class: ClassVar[type[nn.Module]]
    #: transformers' sequence-classification class of the family (``model.head: classification``);
    #: None where transformers has none
    classification_class: ClassVar[type[nn.Module] | None] = None
    #: the config field holding the number of routed experts
    num_experts_field: ClassVar[str] = "num_experts"
    #: the config field holding one routed expert's FFN width
    expert_width_field: ClassVar[str] = "intermediate_size"
    #: names of the fused expert parameters
    expert_param_names: ClassVar[tuple[str, ...]] = ("gate_up_proj", "down_proj")
    #: submodules of the MoE block that every token uses (shared experts): backbone for EMS-FL
    shared_expert_modules: ClassVar[tuple[str, ...]] = ()
    #: whether presets set pad/bos/eos ids to the byte tokenizer's (Mixtral keeps transformers'
    #: defaults, so its pre-trained caches and published numbers stay what they were)
    preset_token_ids: ClassVar[bool] = True

    def __init__(self, config: PretrainedConfig) -> None:
        self.config = config

    # ------------------------------------------------------------------ config
    @property
    def num_experts(self) -> int:
        """Routed experts per MoE layer."""
        return int(getattr(self.config, self.num_experts_field))

    @property
    def top_k(self) -> int:
        """Experts each token uses."""
        return int(self.config.num_experts_per_tok)

    @property
    def num_layers(self) -> int:
        """Decoder layers (all of them MoE layers in the supported configs)."""
        return int(self.config.num_hidden_layers)

    @property
    def expert_width(self) -> int:
        """One routed expert's FFN width ``I``."""
        return int(getattr(self.config, self.expert_width_field))

    @classmethod
    def preset_config(cls, sizes: dict[str, Any], overrides: dict[str, Any]) -> PretrainedConfig:
        """The family's config for a preset's sizes (hidden, FFN, layers, heads, experts, top-k).

        Parameters
        ----------
        sizes
            ``hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
            num_key_value_heads, num_experts, top_k, vocab_size`` (family-neutral names) and
            ``pad_token_id, bos_token_id, eos_token_id`` (the tokenizer's).
        overrides
            Config fields in this family's own names, applied last.
        """
        kw = cls.preset_fields(sizes)
        kw.update(vocab_size=sizes["vocab_size"], max_position_embeddings=1024, tie_word_embeddings=False)
        if cls.preset_token_ids:
            kw.update({k: sizes[k] for k in ("pad_token_id", "bos_token_id", "eos_token_id")})
        check_config_values(overrides, "model.config_overrides")
        kw.update(overrides)
        return cls.make_config(kw)

    @classmethod
    def preset_fields(cls, sizes: dict[str, Any]) -> dict[str, Any]:
        """The family's config fields for family-neutral preset sizes."""
        return {
            "hidden_size": sizes["hidden_size"],
            cls.expert_width_field: sizes["intermediate_size"],
            "num_hidden_layers": sizes["num_hidden_layers"],
            "num_attention_heads": sizes["num_attention_heads"],
            "num_key_value_heads": sizes["num_key_value_heads"],
            cls.num_experts_field: sizes["num_experts"],
            "num_experts_per_tok": sizes["top_k"],
        }

    @classmethod
    def make_config(cls, data: dict[str, Any] | PretrainedConfig) -> PretrainedConfig:
        """The family's config from a config.json-style dict (``rope_theta`` accepted)."""
        if isinstance(data, PretrainedConfig):
            return data
        kw = {k: v for k, v in data.items() if k not in ("model_type", "architectures", "transformers_version")}
        if "rope_theta" in kw:
            kw.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": float(kw.pop("rope_theta"))})
        try:
            cfg = cls.config_class(**kw)
        except (ValueError, TypeError) as exc:  # transformers' own checks of the values
            raise InputError(f"transformers rejects this {cls.name} config ({str(exc).splitlines()[0]}); "
                             "check model.config and model.config_overrides") from None
        check_top_k(cfg.num_experts_per_tok, getattr(cfg, cls.num_experts_field))
        return cfg

    def local_config(self, experts: Sequence[int]) -> PretrainedConfig:
        """Config of a model holding only ``experts`` (top-k capped at their number)."""
        cfg = self.config_class.from_dict(self.config.to_dict())
        setattr(cfg, self.num_experts_field, len(experts))
        cfg.num_experts_per_tok = min(self.top_k, len(experts))
        cfg._experts_implementation = self.config._experts_implementation
        return cfg

    @classmethod
    def head_class(cls, head: str = "lm") -> type[nn.Module]:
        """The model class of a head: ``lm`` (causal LM) or ``classification`` (one-line InputError if none)."""
        if head == "lm":
            return cls.model_class
        if head != "classification":
            raise InputError(f"unknown head {head!r}; use lm or classification", field="model.head")
        if cls.classification_class is None:
            raise InputError(f"transformers has no sequence-classification class for {cls.name}; use "
                             "model.architecture: mixtral or qwen2_moe, or model.head: lm", field="model.head")
        return cls.classification_class

    def build(self, config: PretrainedConfig | None = None, head: str = "lm") -> nn.Module:
        """A model of this family with the given head (random weights; on the current default device)."""
        return self.head_class(head)(config if config is not None else self.config)

    # ------------------------------------------------------------------ modules
    # transformers' modules are typed as nn.Module, whose attributes read as Tensor | Module: the
    # layer, block and router accessors return Any and the class docstring states the layout.
    def decoder(self, model: nn.Module) -> Any:
        """The decoder (the module holding ``layers``) of a plain or PEFT-wrapped model."""
        m: Any = model
        # PeftModel -> LoraModel -> XForCausalLM -> XModel
        for attr in ("base_model", "model"):
            while hasattr(m, attr) and not hasattr(m, "layers"):
                m = getattr(m, attr)
        if not hasattr(m, "layers"):
            raise InputError("model has no decoder layers", field="model")
        return m

    def moe_layers(self, model: nn.Module) -> list[Any]:
        """The MoE blocks in layer order."""
        return [layer.mlp for layer in self.decoder(model).layers if hasattr(layer.mlp, "experts")]

    def moe_layer_names(self, model: nn.Module) -> list[str]:
        """Canonical state-dict prefixes of the MoE blocks, e.g. ``model.layers.0.mlp``."""
        return [f"model.layers.{i}.mlp" for i, layer in enumerate(self.decoder(model).layers)
                if hasattr(layer.mlp, "experts")]

    def routers(self, model: nn.Module) -> list[Any]:
        """The router (gate) module of each MoE layer."""
        return [blk.gate for blk in self.moe_layers(model)]

    def set_router(self, model: nn.Module, layer: int, router: nn.Module) -> None:
        """Replace the router module of MoE layer ``layer``."""
        self.moe_layers(model)[layer].gate = router

    def experts_module(self, block: Any) -> Any:
        """The (possibly PEFT-wrapped) experts module of a MoE block."""
        return block.experts

    def router_weights(self, model: nn.Module) -> list[nn.Parameter]:
        """The router weight ``[E, H]`` of each MoE layer."""
        return [cast(Any, unwrap(r)).weight for r in self.routers(model)]

    def expert_parameters(self, model: nn.Module) -> list[dict[str, nn.Parameter]]:
        """Per layer, the fused expert parameters ``{name: Parameter[E, ...]}``."""
        out = []
        for blk in self.moe_layers(model):
            base = unwrap(self.experts_module(blk))
            out.append({n: getattr(base, n) for n in self.expert_param_names})
        return out

    def shared_expert_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """Parameters of the shared experts (every token uses them; empty for routed-only families)."""
        return [p for blk in self.moe_layers(model) for name in self.shared_expert_modules
                for p in getattr(blk, name).parameters()]

    def expert_slice(self, param: torch.Tensor, experts: Sequence[int]) -> torch.Tensor:
        """Rows of a fused expert tensor (copy) for ``experts``, in that order."""
        return param.detach()[list(experts)].clone()

    def set_top_k(self, model: nn.Module, top_k: int) -> None:
        """Change the number of experts each token uses (config and modules)."""
        check_top_k(top_k, self.num_experts)
        self.config.num_experts_per_tok = int(top_k)
        for blk in self.moe_layers(model):
            if hasattr(blk, "top_k"):
                blk.top_k = int(top_k)
            cast(Any, unwrap(blk.gate)).top_k = int(top_k)
