"""A real-format checkpoint brings its own tokenizer (issue 15, part A).

The checkpoint is written here as a real one is laid out: a small Mixtral saved with
``save_pretrained`` (safetensors) and a BPE tokenizer trained on the spot with the
``tokenizers`` library, saved as a fast tokenizer. Its vocabulary (200) is below 256, so
the byte tokenizer of the presets could not feed it (byte ids up to 258 would index past
the embedding). Every strategy runs through ``emsfl-sim run`` on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from emsfl_sim.cli.main import main
from emsfl_sim.errors import InputError
from emsfl_sim.learning.data import (
    ByteTokenizer,
    Example,
    HFTokenizer,
    domain_names,
    encode_prompt_option,
    load_checkpoint_tokenizer,
    make_domain_examples,
)
from emsfl_sim.learning.evaluate import score_options
from tests.fakes import write_yaml

VOCAB = 200
CHAT = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}")


def train_tokenizer(metaspace: bool = True, chat_template: str | None = None) -> Any:
    """A BPE tokenizer (vocabulary VOCAB) trained on the synthetic MCQA texts, as transformers' fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [f"{ex.prompt} {' '.join(ex.options)}" for d in domain_names("mcqa")
             for ex in make_domain_examples(d, 40, seed=0)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # Metaspace (SentencePiece style): the space before a word is part of its first token
    tok.pre_tokenizer = pre_tokenizers.Metaspace() if metaspace else pre_tokenizers.Whitespace()
    tok.decoder = decoders.Metaspace() if metaspace else decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=list("abcdefghijklmnopqrstuvwxyz0123456789?.,:;'-"))
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    if chat_template:
        fast.chat_template = chat_template
    assert len(fast) == VOCAB
    return fast


def write_checkpoint(path: Path, vocab_size: int = VOCAB, tokenizer: Any | None = None) -> Path:
    """A tiny Mixtral (hidden 64, 2 layers, 4 experts, top-1) saved as safetensors, with ``tokenizer``."""
    from transformers import MixtralConfig, MixtralForCausalLM

    cfg = MixtralConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=1,
                        max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    MixtralForCausalLM(cfg).save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-mixtral", tokenizer=tokenizer)


def scenario(checkpoint: Path | None, names: list[str], **data: Any) -> dict:
    """A tiny idealised scenario on ``checkpoint`` (loaded as a real one: preset null)."""
    model: dict[str, Any] = {"preset": None, "checkpoint_path": str(checkpoint), "gate_pretrain_steps": 2,
                             "lora": {"rank": 4, "alpha": 8}}
    if checkpoint is None:
        model = {"preset": "tiny"}
    return {
        "name": "real-checkpoint",
        "seed": 1,
        "time": {"mode": "idealised", "orbital_cycles": 2, "slot_duration_s": 600},
        "clusters": [{"name": "a", "lat_deg": 48, "lon_deg": 11, "devices": 2, "domain": "astronomy"},
                     {"name": "b", "lat_deg": 40, "lon_deg": -105, "devices": 1, "domain": "law"}],
        "model": model,
        "data": {"samples_per_device": 8, "test_samples_per_domain": 4, "trial_samples_per_cluster": 4,
                 "gate_samples": 8, "max_len": 48, **data},
        "training": {"local_steps": 1, "batch_size": 4, "round_interval_s": 250},
        "strategy": {"names": names, "enhanced_expert_cycles": 1, "enhanced_gate_rounds": 1},
        "evaluation": {"every_cycles": 1, "target_accuracy": 0.2},
        "output": {"plots": False, "formats": ["csv"]},
    }


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The run's error: one line (the lines before it are the run's log)."""
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and len(errors) == 1 and err.endswith(errors[0]), err
    return errors[0]


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Records the engine's tokenizer and every token id its model's embedding is fed."""
    import emsfl_sim.learning.engine as engine_module

    seen: dict[str, Any] = {"ids": set()}
    original = engine_module.model_tokenizer

    def recording(spec: Any, model: torch.nn.Module, prompt_format: str = "plain") -> Any:
        tok = original(spec, model, prompt_format)
        seen["tokenizer"] = tok
        model.get_input_embeddings().register_forward_pre_hook(  # type: ignore[operator]
            lambda _module, args: seen["ids"].update(args[0].unique().tolist()))
        return tok

    monkeypatch.setattr(engine_module, "model_tokenizer", recording)
    return seen


def test_every_strategy_runs_on_a_real_format_checkpoint(tmp_path: Path, checkpoint: Path,
                                                         fed: dict[str, Any]) -> None:
    names = ["baseline", "emsfl", "emsfl_enhanced"]
    path = write_yaml(tmp_path, scenario(checkpoint, names))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    for name in names:
        metrics = pd.read_csv(tmp_path / "out" / name / "metrics.csv")
        assert len(metrics) == 3 and metrics["accuracy"].between(0, 1).all()
        summary = json.loads((tmp_path / "out" / name / "summary.json").read_text())
        assert summary["uplink_bytes"] > 0
    tok = fed["tokenizer"]
    assert isinstance(tok, HFTokenizer) and tok.vocab_size == VOCAB
    assert Path(tok.tokenizer.name_or_path) == checkpoint
    # every id the model was fed is the checkpoint tokenizer's (the byte tokenizer's reach 258)
    assert fed["ids"] and max(fed["ids"]) < VOCAB
    assert {tok.bos_id, tok.eos_id, tok.pad_id} <= fed["ids"]
    text = "what kind of star is kyrvex?"
    assert tok.tokenizer.decode(tok.encode(text, add_bos=False)) == text


def test_chat_template_run(tmp_path: Path, fed: dict[str, Any]) -> None:
    ckpt = write_checkpoint(tmp_path / "chat", tokenizer=train_tokenizer(chat_template=CHAT))
    path = write_yaml(tmp_path, scenario(ckpt, ["baseline"], prompt_format="chat_template"))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert len(pd.read_csv(tmp_path / "out" / "baseline" / "metrics.csv")) == 3
    assert fed["tokenizer"].prompt_format == "chat_template" and max(fed["ids"]) < VOCAB


def test_checkpoint_without_tokenizer_files_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_checkpoint(tmp_path / "no-tok")
    path = write_yaml(tmp_path, scenario(ckpt, ["baseline"]))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = one_error_line(capsys)
    assert "model.checkpoint_path" in err and "no tokenizer files" in err and "save_pretrained" in err


def test_tokenizer_larger_than_embedding_is_one_line(tmp_path: Path, tokenizer: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_checkpoint(tmp_path / "small-emb", vocab_size=VOCAB - 50, tokenizer=tokenizer)
    path = write_yaml(tmp_path, scenario(ckpt, ["baseline"]))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = one_error_line(capsys)
    assert "model.checkpoint_path" in err and f"{VOCAB} tokens" in err and f"{VOCAB - 50} rows" in err


def test_chat_template_is_refused_for_the_byte_tokenizer_and_for_no_template(
        tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_yaml(tmp_path, scenario(None, ["baseline"], prompt_format="chat_template"))
    assert main(["validate", str(path)]) == 1
    err = one_error_line(capsys)
    assert "data.prompt_format" in err and "byte tokenizer" in err
    with pytest.raises(InputError, match=r"^data.prompt_format: chat_template needs a tokenizer with a chat"):
        load_checkpoint_tokenizer(checkpoint, VOCAB, "chat_template")


def test_chat_template_prompt_is_the_user_turn_and_the_option_the_reply(tmp_path: Path) -> None:
    fast = train_tokenizer(chat_template=CHAT)
    ckpt = tmp_path / "chat"
    fast.save_pretrained(ckpt)
    tok = load_checkpoint_tokenizer(ckpt, VOCAB, "chat_template")
    text, bos = tok.prompt_text("what kind of star is kyrvex?")
    assert (text, bos) == ("<s>user: what kind of star is kyrvex?</s>assistant:", False)
    p, o = encode_prompt_option(tok, "what kind of star is kyrvex?", "dwarf")
    assert p == tok.encode(text, add_bos=False) and tok.tokenizer.decode(p).endswith("assistant:")
    assert p[0] == tok.bos_id and p.count(tok.bos_id) == 1  # the template's bos, not a second one
    assert tok.tokenizer.decode(o) == "dwarf"


def _context_free_lm(vocab: int) -> torch.nn.Module:
    """A 'model' whose next-token distribution is the same fixed one at every position."""

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.linspace(-3.0, 3.0, vocab) ** 2)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            logits = self.bias.expand(*input_ids.shape, vocab)
            return type("Out", (), {"logits": logits})()

    return Fixed()


@pytest.mark.parametrize("metaspace", [True, False])
def test_option_scores_use_only_the_option_tokens(metaspace: bool, tmp_path: Path) -> None:
    fast = train_tokenizer(metaspace=metaspace)
    fast.save_pretrained(tmp_path / "tok")
    tok = load_checkpoint_tokenizer(tmp_path / "tok", VOCAB)
    ex = Example("law", "mcqa", "which doctrine covers brogra?", ("lease", "fraud", "court", "bonds"), 3)
    model = _context_free_lm(VOCAB)
    logp = torch.log_softmax(model.bias.detach().double(), -1).numpy()
    scores = score_options(model, tok, [ex])[0]
    prompt_ids = {tuple(encode_prompt_option(tok, ex.prompt, opt)[0]) for opt in ex.options}
    assert len(prompt_ids) == 1  # every option is conditioned on the same prompt ids
    # Metaspace merges the prompt's trailing space into the option's first token, so the
    # option is tokenized on its own; Whitespace keeps the boundary and the joint encoding is used
    text, bos = tok.prompt_text(ex.prompt)
    p0 = list(next(iter(prompt_ids)))
    joint_kept = [tok.encode(text + opt, add_bos=bos)[: len(p0)] == p0 for opt in ex.options]
    assert not any(joint_kept) if metaspace else all(joint_kept)
    for opt, score in zip(ex.options, scores, strict=True):
        p, o = encode_prompt_option(tok, ex.prompt, opt)
        assert tok.tokenizer.decode(o).strip() == opt  # the option's tokens, none of the prompt's
        assert score == pytest.approx(np.mean(logp[o]), abs=1e-5)
    # a longer option is not penalised for its length: the mean, not the sum
    assert np.isfinite(scores).all()


def test_byte_tokenizer_encoding_is_unchanged() -> None:
    tok = ByteTokenizer()
    for prompt, option in [("what kind of star is kyrvex?", "dwarf"), ("q", ""), ("é?", "ü")]:
        p, o = encode_prompt_option(tok, prompt, option)
        assert p == [tok.bos_id, *(prompt + " ").encode()] and o == list(option.encode())
