"""The byte-level tokenizer of the tiny models (no download needed)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ByteTokenizer"]


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
