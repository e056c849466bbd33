"""A deterministic stand-in for a sentence encoder: words hashed into a fixed-size vector.

It keeps the real embedder's contract (``faq.embedding.Embedder``): float32 ``(n, dim)`` rows
of unit length, ``(0, dim)`` for no text, a sequence of texts (a bare string is refused), and
it blocks like the real one (so callers must run it in a worker thread). Texts sharing words
have a high cosine; the same text always gives the same vector. ``gate`` lets a test hold an
encode call in progress to cancel around it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Bag of hashed words, L2-normalised."""

    def __init__(self, dim: int = 32, model_id: str = "hashing-test:1") -> None:
        self.dim = dim
        self.model_id = model_id
        #: Texts encoded so far, per call.
        self.calls: list[list[str]] = []
        #: When set, calls after the first ``open_calls`` wait for it before returning.
        self.gate: threading.Event | None = None
        self.open_calls = 0
        #: Set when a call is waiting at the gate.
        self.waiting = threading.Event()
        self._lock = threading.Lock()

    @property
    def encoded(self) -> int:
        """Texts encoded so far."""
        with self._lock:
            return sum(len(c) for c in self.calls)

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        """The vector of one text."""
        out = np.zeros(self.dim, dtype=np.float32)
        for word in _WORD.findall(text.casefold()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self.dim
            sign = 1.0 if digest[4] & 1 else -1.0
            out[slot] += sign
        norm = float(np.linalg.norm(out))
        return out / norm if norm > 0 else out

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit rows, one per text; blocking."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        with self._lock:
            self.calls.append(list(texts))
            held = self.gate is not None and len(self.calls) > self.open_calls
        if held:
            assert self.gate is not None
            self.waiting.set()
            self.gate.wait(10)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.vector(t) for t in texts]).astype(np.float32)
