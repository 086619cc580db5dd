"""The streaming dense -> MoE merge (emsfl_sim.learning.merge_stream) of real-format Llama checkpoints."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import LlamaForCausalLM

from emsfl_sim.errors import InputError
from emsfl_sim.learning.merge import build_moe_from_dense, dense_config
from emsfl_sim.learning.merge_stream import (
    CACHE_PREFIX,
    INDEX_NAME,
    PROVENANCE_NAME,
    MergeOptions,
    has_safetensors,
    merge_key,
    merged_checkpoint,
    write_merged_checkpoint,
)
from emsfl_sim.learning.models import build_model
from emsfl_sim.learning.modelspec import ModelSpec

PROMPTS = [["stars and comets"], ["court ruling", "the judge said"], ["boil the pasta"]]


def _save_dense(path: Path, seed: int, sharded: bool = False, **overrides) -> str:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(dense_config("tiny", num_hidden_layers=2, **overrides)).eval()
    model.save_pretrained(path, **(dict(max_shard_size="200KB") if sharded else {}))
    return str(path)


def _dense_dirs(root: Path, **overrides) -> list[str]:
    # the base (index 1) is sharded: backbone and experts are read through its index
    return [_save_dense(root / f"d{e}", e, sharded=e == 1, **overrides) for e in range(3)]


@pytest.fixture(scope="module")
def dense_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    paths = _dense_dirs(tmp_path_factory.mktemp("dense"))
    assert (Path(paths[1]) / INDEX_NAME).is_file() and len(list(Path(paths[1]).glob("*.safetensors"))) > 2
    return paths


def _stored_tensors(directory: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    out = {}
    for shard in directory.glob("*.safetensors"):
        with safe_open(shard, framework="pt") as f:
            for k in f.keys():
                s = f.get_slice(k)
                out[k] = (tuple(s.get_shape()), s.get_dtype())
    return out


def test_streamed_merge_of_llama_checkpoints_maps_experts_and_backbone(dense_dirs: list[str], tmp_path: Path) -> None:
    out = write_merged_checkpoint(dense_dirs, tmp_path / "moe", MergeOptions(base_index=1))
    moe, ad = build_model(ModelSpec(checkpoint_path=str(out)), seed=0)
    assert ad.name == "mixtral" and ad.num_experts == 3 and ad.top_k == 1
    dense = [LlamaForCausalLM.from_pretrained(p) for p in dense_dirs]
    for i, layer in enumerate(ad.expert_parameters(moe)):
        for e, d in enumerate(dense):
            mlp = d.model.layers[i].mlp
            assert torch.equal(layer["gate_up_proj"][e], torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
            assert torch.equal(layer["down_proj"][e], mlp.down_proj.weight)
    merged = moe.state_dict()
    backbone = {k: t for k, t in dense[1].state_dict().items() if ".mlp." not in k}
    assert len(backbone) > 10
    assert all(torch.equal(merged[k], t) for k, t in backbone.items())
    assert all(tuple(w.shape) == (3, 128) for w in ad.router_weights(moe))
    x = torch.randint(0, 259, (2, 12))
    with torch.no_grad():
        assert torch.isfinite(moe(input_ids=x).logits).all()


@pytest.mark.parametrize("router_init, dtype, tied", [("random", "float32", False), ("hidden", "float32", False),
                                                      ("random", "bfloat16", True)])
def test_cached_streamed_merge_equals_the_in_memory_merge(tmp_path: Path, router_init: str, dtype: str,
                                                          tied: bool) -> None:
    paths = _dense_dirs(tmp_path / "dense", tie_word_embeddings=tied)
    prompts = PROMPTS if router_init == "hidden" else None
    spec = ModelSpec(dense_checkpoints=paths, base_index=1, router_init=router_init, expert_prompts=prompts, top_k=2,
                     dtype=dtype, cache_dir=str(tmp_path / "cache"))
    moe, _ = build_model(spec, seed=5)
    assert moe.emsfl_merge["cached"] is False
    ref = build_moe_from_dense(paths, base_index=1, router_init=router_init, expert_prompts=prompts, top_k=2, seed=5,
                               dtype=getattr(torch, dtype))
    a, b = moe.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    assert all(a[k].dtype == getattr(torch, dtype) and torch.equal(a[k], b[k]) for k in a)
    again, _ = build_model(spec, seed=5)
    assert again.emsfl_merge["cached"] is True and again.emsfl_merge["path"] == moe.emsfl_merge["path"]
    assert all(torch.equal(t, a[k]) for k, t in again.state_dict().items())


def test_written_checkpoint_is_what_transformers_5_writes(dense_dirs: list[str], tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    base = tmp_path / "base"
    _save_dense(base, 1)
    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", "court", "ruling"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(base)
    paths = [dense_dirs[0], str(base), dense_dirs[2]]
    out = write_merged_checkpoint(paths, tmp_path / "moe", MergeOptions(base_index=1, top_k=2))
    moe, _ = build_model(ModelSpec(checkpoint_path=str(out)), seed=0)
    moe.save_pretrained(tmp_path / "resaved", save_original_format=False)  # transformers 5's own layout
    assert _stored_tensors(out) == _stored_tensors(tmp_path / "resaved")
    assert "model.layers.1.mlp.experts.gate_up_proj" in _stored_tensors(out)
    index = json.loads((out / INDEX_NAME).read_text())
    shards = sorted(out.glob("*.safetensors"))
    assert len(shards) == 1 + 2 + 1  # the embeddings, one per layer, the final norm and LM head
    assert set(index["weight_map"].values()) == {s.name for s in shards}
    assert index["metadata"]["total_size"] == sum(p.numel() * p.element_size() for p in moe.state_dict().values())
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / name).read_bytes() == (base / name).read_bytes()
    assert AutoTokenizer.from_pretrained(out)("court ruling")["input_ids"][-2:] == [4, 5]
    assert json.loads((out / PROVENANCE_NAME).read_text())["paths"] == [str(Path(p).resolve()) for p in paths]
    assert json.loads((out / "config.json").read_text())["num_experts_per_tok"] == 2


def test_tensors_are_read_one_at_a_time(dense_dirs: list[str], tmp_path: Path, monkeypatch) -> None:
    import safetensors

    real, state = safetensors.safe_open, {"open": 0, "most": 0, "reads": 0}

    @contextlib.contextmanager
    def counting(*args, **kwargs):
        state["open"] += 1
        state["most"] = max(state["most"], state["open"])
        try:
            with real(*args, **kwargs) as f:
                yield f
        finally:
            state["open"] -= 1
        state["reads"] += 1

    monkeypatch.setattr(safetensors, "safe_open", counting)
    write_merged_checkpoint(dense_dirs, tmp_path / "moe", MergeOptions(base_index=1))
    assert state["most"] == 1 and state["reads"] > 2 * 3 * 3


def test_merge_cache_key_follows_files_and_options(dense_dirs: list[str], tmp_path: Path) -> None:
    rand, hidden = MergeOptions(base_index=1), MergeOptions(base_index=1, router_init="hidden",
                                                            expert_prompts=tuple(tuple(p) for p in PROMPTS))
    key = merge_key(dense_dirs, rand)
    assert merge_key(dense_dirs, MergeOptions(base_index=1, seed=1)) != key
    assert merge_key(dense_dirs, MergeOptions(base_index=0)) != key
    assert merge_key(dense_dirs, MergeOptions(base_index=1, dtype="bfloat16")) != key
    assert merge_key(dense_dirs, hidden) == merge_key(dense_dirs, MergeOptions(**{**hidden.__dict__, "seed": 9}))
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(dense_dirs[2], copy)  # copy2 keeps mtimes: the same merge
    assert merge_key([*dense_dirs[:2], str(copy)], rand) == key
    shard = next(copy.glob("*.safetensors"))
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1))
    assert merge_key([*dense_dirs[:2], str(copy)], rand) != key


def test_merge_without_cache_is_temporary(dense_dirs: list[str], tmp_path: Path) -> None:
    with merged_checkpoint(dense_dirs, MergeOptions(), None) as merged:
        assert merged.temporary and not merged.cached and (merged.path / INDEX_NAME).is_file()
    assert not merged.path.exists()
    moe, ad = build_model(ModelSpec(dense_checkpoints=dense_dirs, cache_dir=""), seed=0)
    assert moe.emsfl_merge["path"] is None and ad.num_experts == 3
    cache = tmp_path / "cache"
    with merged_checkpoint(dense_dirs, MergeOptions(), cache) as merged:
        assert merged.path.parent == cache and merged.path.name.startswith(CACHE_PREFIX)
    assert [p.name for p in cache.iterdir()] == [merged.path.name]  # no half-written directories left


def test_stale_merges_of_vanished_temporary_models_are_pruned(tmp_path: Path) -> None:
    gone = _dense_dirs(tmp_path / "gone")
    cache = tmp_path / "cache"
    with merged_checkpoint(gone, MergeOptions(), cache) as old:
        pass
    import shutil

    shutil.rmtree(tmp_path / "gone")
    with merged_checkpoint(_dense_dirs(tmp_path / "kept"), MergeOptions(), cache) as new:
        pass
    assert not old.path.exists() and new.path.exists()


def test_bad_dense_checkpoints_are_one_line_errors(dense_dirs: list[str], tmp_path: Path) -> None:
    wide = _save_dense(tmp_path / "wide", 0, intermediate_size=320)
    with pytest.raises(InputError) as err:
        build_model(ModelSpec(dense_checkpoints=[dense_dirs[0], wide], cache_dir=str(tmp_path / "c")), seed=0)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{wide}: model.dense_checkpoints: ") and "intermediate" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((Path(dense_dirs[0]) / "config.json").read_text())
    with pytest.raises(InputError, match="has no safetensors weights"):
        write_merged_checkpoint([dense_dirs[0], str(empty)], tmp_path / "m", MergeOptions())
    with pytest.raises(InputError, match="is not a model directory"):
        write_merged_checkpoint([str(tmp_path / "nowhere")], tmp_path / "m2", MergeOptions())
    with pytest.raises(InputError, match="expert_prompts|prompts"):
        write_merged_checkpoint(dense_dirs, tmp_path / "m3", MergeOptions(router_init="hidden"))
    assert has_safetensors(dense_dirs[1]) and has_safetensors(empty)
    (empty / "pytorch_model.bin").write_bytes(b"")
    assert not has_safetensors(empty)  # PyTorch weights: build_model merges those in memory


def test_every_strategy_runs_through_the_cli_on_a_merge_of_real_format_llamas(tmp_path: Path) -> None:
    """Three tiny safetensors Llamas (the base with a 200-token BPE tokenizer) merged and run end to end."""
    from emsfl_sim.cli.main import main
    from tests.fakes import write_yaml
    from tests.test_real_checkpoint import VOCAB, scenario, train_tokenizer

    tok = train_tokenizer()
    dense = [_save_dense(tmp_path / f"llama{e}", e, vocab_size=VOCAB, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2) for e in range(3)]
    tok.save_pretrained(dense[0])
    raw = scenario(None, ["baseline", "emsfl", "emsfl_enhanced"])
    raw["model"] = {"preset": None, "dense_checkpoints": dense, "top_k": 1, "gate_pretrain_steps": 2,
                    "cache_dir": str(tmp_path / "cache"), "lora": {"rank": 4, "alpha": 8}}
    path = write_yaml(tmp_path, raw)
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    for name in ("baseline", "emsfl", "emsfl_enhanced"):
        summary = json.loads((tmp_path / "run" / name / "summary.json").read_text())
        assert summary["uplink_bytes"] > 0 and summary["aggregations"] > 0
    merged = list((tmp_path / "cache").glob("moe-merged-*"))
    assert len(merged) == 1 and (merged[0] / "tokenizer.json").is_file()  # written once, with the base's tokenizer
