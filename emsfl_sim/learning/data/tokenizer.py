"""Tokenizers: the byte-level one of the tiny presets and a checkpoint's own (transformers).

Every model is fed by *its* tokenizer: a preset by :class:`ByteTokenizer` (no download),
a checkpoint directory by the tokenizer saved next to its weights
(:func:`load_checkpoint_tokenizer`, wrapped in :class:`HFTokenizer`). Both satisfy
:class:`Tokenizer`, which is all the batching, evaluation and splitting code uses.

Prompt formats (``data.prompt_format``): ``plain`` gives the model ``bos + prompt + " "``
and the option continues it; ``chat_template`` renders the prompt as the user turn of the
tokenizer's chat template (with the generation prompt) and the option is the assistant's
reply. Only a transformers tokenizer with a template can do the latter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from emsfl_sim.errors import InputError

__all__ = ["PROMPT_FORMATS", "Tokenizer", "ByteTokenizer", "HFTokenizer", "byte_tokenizer", "dense_tokenizer",
           "has_tokenizer_files", "load_checkpoint_tokenizer"]

#: values of ``data.prompt_format``
PROMPT_FORMATS = ("plain", "chat_template")

#: files of which at least one makes a directory hold a tokenizer (transformers' names)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")


class Tokenizer(Protocol):
    """What the learning code needs of a tokenizer (ids, specials, the prompt an option continues)."""

    @property
    def pad_id(self) -> int:
        """Id used for right padding (never a label, always masked)."""
        ...

    @property
    def bos_id(self) -> int | None:
        """Begin-of-sequence id, or None if the tokenizer has none."""
        ...

    @property
    def eos_id(self) -> int:
        """End-of-sequence id (the last trained token of an answer)."""
        ...

    @property
    def vocab_size(self) -> int:
        """Number of ids (every id is below it)."""
        ...

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids of ``text`` without special tokens, preceded by ``bos_id`` if asked and it exists."""
        ...

    def prompt_text(self, prompt: str) -> tuple[str, bool]:
        """The text an option continues for ``prompt`` and whether ``bos_id`` precedes it."""
        ...


class ByteTokenizer:
    """Byte-level tokenizer: ids 0-255 are UTF-8 bytes, then pad, bos, eos.

    Tiny models are built with ``vocab_size`` (259) so that no download is needed.
    """

    pad_id: int = 256
    bos_id: int = 257
    eos_id: int = 258
    vocab_size: int = 259

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids of ``text`` (UTF-8 bytes), optionally preceded by ``bos_id``."""
        ids = list(text.encode("utf-8"))
        return [self.bos_id, *ids] if add_bos else ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special ids are dropped, invalid UTF-8 is replaced."""
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")

    def prompt_text(self, prompt: str) -> tuple[str, bool]:
        """``(prompt + " ", True)``: the plain format (the byte tokenizer has no chat template)."""
        return prompt + " ", True


class HFTokenizer:
    """A transformers tokenizer seen as a :class:`Tokenizer`.

    Parameters
    ----------
    tokenizer:
        A ``PreTrainedTokenizerBase`` (``AutoTokenizer.from_pretrained``).
    prompt_format:
        ``"plain"`` or ``"chat_template"`` (the tokenizer must have a chat template).

    ``pad_id`` is the tokenizer's pad token, else its eos token; ``bos_id`` is None when
    the tokenizer has no bos token. ``encode`` never adds the tokenizer's own special
    tokens (some append eos), so prompts and options concatenate as the code expects.
    """

    def __init__(self, tokenizer: Any, prompt_format: str = "plain") -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise InputError(f"must be one of {', '.join(PROMPT_FORMATS)} (got {prompt_format!r})",
                             field="data.prompt_format")
        if prompt_format == "chat_template" and not getattr(tokenizer, "chat_template", None):
            raise InputError("chat_template needs a tokenizer with a chat template and the checkpoint's has none; "
                             "use prompt_format: plain", field="data.prompt_format")
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        if eos is None:
            eos = pad
        if eos is None:
            raise InputError("the checkpoint's tokenizer has neither an eos nor a pad token; give it an eos token "
                             "(tokenizer.eos_token = ...) and save it again", field="model.checkpoint_path")
        self._pad, self._eos, self._bos = int(pad), int(eos), tokenizer.bos_token_id

    @property
    def pad_id(self) -> int:
        """The pad token's id (the eos token's when the tokenizer has no pad token)."""
        return self._pad

    @property
    def bos_id(self) -> int | None:
        """The bos token's id, None when the tokenizer has none."""
        return None if self._bos is None else int(self._bos)

    @property
    def eos_id(self) -> int:
        """The eos token's id (the pad token's when the tokenizer has no eos token)."""
        return self._eos

    @property
    def vocab_size(self) -> int:
        """All ids including added tokens (``len(tokenizer)``)."""
        return len(self.tokenizer)

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Ids of ``text`` without the tokenizer's automatic specials; ``bos_id`` first if asked and present."""
        ids = [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]
        return [self._bos, *ids] if add_bos and self._bos is not None else ids

    def prompt_text(self, prompt: str) -> tuple[str, bool]:
        """``plain``: ``(prompt + " ", True)``; ``chat_template``: the rendered user turn (its specials in the text)."""
        if self.prompt_format == "plain":
            return prompt + " ", True
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)
        return str(text), False


def has_tokenizer_files(path: str | Path) -> bool:
    """Whether directory ``path`` holds any of transformers' tokenizer files."""
    return any((Path(path) / name).is_file() for name in TOKENIZER_FILES)


def load_checkpoint_tokenizer(path: str | Path, embedding_size: int, prompt_format: str = "plain",
                              field: str = "model.checkpoint_path") -> HFTokenizer:
    """The tokenizer saved in checkpoint directory ``path`` (``AutoTokenizer``, local files only).

    One-line :class:`InputError` (``field``) when the directory has no tokenizer files, the
    tokenizer does not load, or its vocabulary (``len(tokenizer)``) exceeds the model's
    ``embedding_size`` (its ids would index past the embedding matrix).
    """
    if not has_tokenizer_files(path):
        raise InputError(f"has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...); a checkpoint brings its "
                         "own tokenizer: save it next to the weights (tokenizer.save_pretrained(path))",
                         file=path, field=field)
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"the tokenizer does not load ({first}); save a transformers tokenizer in the "
                         "checkpoint directory", file=path, field=field) from None
    if len(tok) > embedding_size:
        raise InputError(f"the tokenizer has {len(tok)} tokens but the model's embedding has {embedding_size} rows; "
                         "use the tokenizer the checkpoint was trained with", file=path, field=field)
    return HFTokenizer(tok, prompt_format)


def byte_tokenizer(embedding_size: int, prompt_format: str = "plain", field: str = "model.preset",
                   file: str | Path | None = None) -> ByteTokenizer:
    """The byte tokenizer for a model without tokenizer files (presets, the project's tiny dense models).

    One-line :class:`InputError` for ``prompt_format: chat_template`` (the byte tokenizer
    has no template) and for an embedding smaller than its 259 ids.
    """
    if prompt_format != "plain":
        raise InputError(f"{prompt_format} needs a checkpoint whose tokenizer has a chat template; the byte "
                         "tokenizer of the presets has none: use prompt_format: plain", field="data.prompt_format")
    tok = ByteTokenizer()
    if embedding_size < tok.vocab_size:
        raise InputError(f"no tokenizer files and the model's embedding has {embedding_size} rows, fewer than the "
                         f"byte tokenizer's {tok.vocab_size}; save the model's tokenizer next to its weights",
                         file=file, field=field)
    return tok


def dense_tokenizer(path: str | Path, embedding_size: int, prompt_format: str = "plain") -> Tokenizer:
    """The tokenizer of a dense merge's base checkpoint ``path``; the byte tokenizer if it has no tokenizer files."""
    if has_tokenizer_files(path):
        return load_checkpoint_tokenizer(path, embedding_size, prompt_format, field="model.dense_checkpoints")
    return byte_tokenizer(embedding_size, prompt_format, field="model.dense_checkpoints", file=path)
