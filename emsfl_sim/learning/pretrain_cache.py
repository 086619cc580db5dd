"""The on-disk cache of pre-trained weights: one key function, one atomic write, read-only homes tolerated."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import PretrainedConfig

from emsfl_sim.learning.adapters import adapter_for
from emsfl_sim.learning.modelspec import ModelSpec
from emsfl_sim.learning.pretrain import PRETRAIN_FACTS_PER_DOMAIN, PRETRAIN_VERSION, pretrain_backbone
from emsfl_sim.results import atomic_write


def cache_dir(spec: ModelSpec) -> Path | None:
    """The directory of cached pre-trained presets (None: caching off)."""
    d = spec.cache_dir if spec.cache_dir is not None else os.environ.get("EMSFL_CACHE")
    if d is None:
        d = str(Path.home() / ".cache" / "emsfl-sim")
    return Path(d).expanduser() if d and d.lower() not in ("off", "none", "0") else None


def pretrain_key(config: PretrainedConfig, spec: ModelSpec, seed: int) -> str:
    """Hash of everything the pre-trained weights depend on (config, seed, recipe, version)."""
    cfg = {k: v for k, v in config.to_dict().items() if k not in ("transformers_version", "_name_or_path")}
    blob = json.dumps(
        dict(config=cfg, seed=int(seed), steps=int(spec.pretrain_steps), lr=float(spec.pretrain_lr),
             batch=int(spec.pretrain_batch_size), facts=PRETRAIN_FACTS_PER_DOMAIN, version=PRETRAIN_VERSION),
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def pretrained_preset(model: nn.Module, spec: ModelSpec, seed: int) -> dict[str, Any]:
    """Pre-train a freshly built preset model in place, or load its weights from the cache.

    Sets and returns ``model.emsfl_pretrain`` = ``{"steps", "cached", "wall_s", "loss",
    "path"}``. A cache that cannot be read or written is skipped (the model is then
    pre-trained in memory), so read-only homes work.
    """
    t0 = time.perf_counter()
    adapter = adapter_for(model)
    config: Any = cast(Any, model).config
    d = cache_dir(spec)
    path = d / f"pretrained-{spec.preset}-{pretrain_key(config, spec, seed)}.pt" if d else None
    info: dict[str, Any] = dict(steps=int(spec.pretrain_steps), cached=False, loss=float("nan"),
                                path=str(path) if path else None)
    if path is not None and path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            info.update(cached=True, loss=float(state.get("loss", float("nan"))))
        except Exception:  # a corrupt or foreign file: pre-train again
            info["cached"] = False
    if not info["cached"]:
        losses = pretrain_backbone(model, adapter, seed, spec.pretrain_steps, spec.pretrain_lr,
                                   spec.pretrain_batch_size)
        info["loss"] = float(sum(losses[-10:]) / len(losses[-10:])) if losses else float("nan")
        if path is not None:
            state = {"model": model.state_dict(), "loss": info["loss"]}
            try:  # concurrent runs never see a half-written file
                atomic_write(path, lambda handle: torch.save(state, handle))
            except OSError:  # read-only or full: keep the in-memory result
                info["path"] = None
    model.eval()
    info["wall_s"] = time.perf_counter() - t0
    cast(Any, model).emsfl_pretrain = info
    return info


