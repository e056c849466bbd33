"""Sentence embeddings for semantic matching: a small ONNX model run on onnxruntime.

A model lives in a folder, ``<data_dir>/models/<name>/``, holding

- ``model.onnx``: a transformer encoder (BERT / XLM-R family) whose first output is either the
  token states ``(batch, tokens, dim)`` or an already pooled sentence embedding ``(batch, dim)``;
  its inputs are read from the graph (``input_ids``, ``attention_mask`` and, when present,
  ``token_type_ids``);
- ``tokenizer.json``: the Hugging Face ``tokenizers`` file that goes with it;
- ``copss-model.json`` (optional): how to use it, e.g.
  ``{"name": "multilingual-e5-small", "pooling": "mean", "max_length": 512, "prefix": "query: "}``.
  ``pooling`` is ``mean`` (average of the token states under the attention mask; what
  all-MiniLM-L6-v2, paraphrase-multilingual-MiniLM-L12-v2 and multilingual-e5-small use) or
  ``cls`` (the first token's state); ``max_length`` is where inputs are truncated (tokens,
  default 256); ``prefix`` is put before every text (multilingual-e5-small was trained with
  ``"query: "`` before both sides of a symmetric comparison, which is what matching one question
  against another is; the MiniLM models take none); ``name`` names the model in
  :attr:`OnnxEmbedder.model_id` (default: the folder's name).

:func:`ensure_model` puts a known model into its folder on first use, downloading the two files
from the model's Hugging Face repository; :meth:`OnnxEmbedder.load` loads a folder and
:meth:`OnnxEmbedder.encode` turns texts into unit-length float32 vectors, so a dot product is
the cosine similarity. Encoding blocks (callers run it in a worker thread; onnxruntime and the
tokenizer release the GIL while they work).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import json
import logging
import os
import platform
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "copss-model.json"
#: Where :func:`ensure_model` downloads from unless told otherwise (tests pass a loopback URL).
HF_BASE_URL = "https://huggingface.co"
#: Texts per model run, at most; texts are sorted by token count first so a batch holds
#: similar lengths (a batch is padded to its longest text).
BATCH_SIZE = 32
#: Padded tokens per model run, at most: bounds the memory one run takes (attention grows with
#: batch x length^2), e.g. 32 questions of 64 tokens, or 8 texts cut at 256.
MAX_BATCH_TOKENS = 2048
#: Padded tokens per real token in a batch, at most. Unbounded, a batch of 32 questions of
#: 12-44 tokens cost 8.4 ms of CPU per question, more than one at a time (6-7 ms); at 1.1 it
#: is 4.9 ms (smaller batches of similar length; docs/benchmarks.md).
MAX_PADDING = 1.1
#: Tokens per text unless copss-model.json says otherwise (what all-MiniLM-L6-v2 was tuned with).
DEFAULT_MAX_LENGTH = 256
#: Characters kept per token of ``max_length`` before tokenising: it bounds the tokenizer's
#: work on a hostile megabyte of text. Real text has 3-6 characters per token, so only text
#: past the first ``max_length`` tokens is cut; a text of 100-character nonsense words (each a
#: single [UNK]) may keep fewer tokens than it could, which is no loss.
CHARS_PER_TOKEN = 64
#: onnxruntime threads inside one model run. Measured on 2 cores (docs/benchmarks.md): with 2
#: the median question was ~20% faster at load 1.4 but its p99 doubled, and with other
#: work on the machine every question takes about twice as long as with 1, which also leaves
#: the other core to the event loop and the lexical matcher.
INTRA_OP_THREADS = 1
POOLINGS = ("mean", "cls")
#: Inputs copss knows how to fill; anything else the graph asks for makes the model unusable.
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ModelUnavailable(Exception):
    """No usable model: the one-line message says which and why (missing, corrupt, offline)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into sentence vectors; what the index and the ranking depend on."""

    #: Stable id of the model and its exact weights, e.g. ``all-MiniLM-L6-v2:1a2b3c4d5e6f``;
    #: vectors stored under another id are stale.
    model_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``(len(texts), dim)`` float32 rows of unit length; blocking; ``(0, dim)`` for none."""
        ...


class RecentVectors:
    """An :class:`Embedder` that remembers the vectors of the last ``size`` texts it encoded.

    A new question is encoded once to be stored and once to be matched, a moment apart; the
    second time is a look-up. Safe to call from several worker threads."""

    def __init__(self, embedder: Embedder, size: int = 256) -> None:
        self.embedder = embedder
        self.model_id = embedder.model_id
        self.dim = embedder.dim
        self.size = size
        self._recent: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Rows for ``texts``, encoding only those not seen lately."""
        with self._lock:
            known = {t: self._recent[t] for t in texts if t in self._recent}
            for text in known:
                self._recent.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = self.embedder.encode(missing)
            with self._lock:
                for text, row in zip(missing, fresh, strict=True):
                    known[text] = row
                    self._recent[text] = row
                while len(self._recent) > self.size:
                    self._recent.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([known[t] for t in texts]).astype(np.float32, copy=False)


@dataclass(frozen=True)
class KnownModel:
    """Where a model copss knows by name comes from and how it is used."""

    repo: str
    #: Local file name -> path inside the repository.
    files: dict[str, str] = field(
        default_factory=lambda: {TOKENIZER_FILE: TOKENIZER_FILE, MODEL_FILE: "onnx/model.onnx"}
    )
    pooling: str = "mean"
    max_length: int = DEFAULT_MAX_LENGTH
    prefix: str = ""
    revision: str = "main"
    #: Languages the model was trained on (ISO 639-1 codes); ``None`` for many. A question in
    #: another language is ranked mainly on its words (``faq.semantic``).
    languages: frozenset[str] | None = None


#: Models copss can fetch by their short name. A name of the form ``owner/repo`` that is not
#: listed here is fetched the same way (``onnx/model.onnx`` + ``tokenizer.json``, mean pooling).
KNOWN_MODELS: dict[str, KnownModel] = {
    # English; 384 dims, 90 MB. The default.
    "all-MiniLM-L6-v2": KnownModel(
        "sentence-transformers/all-MiniLM-L6-v2", max_length=256, languages=frozenset({"en"})
    ),
    # 50+ languages including Dutch; 384 dims, 470 MB; trained with 128-token inputs.
    "paraphrase-multilingual-MiniLM-L12-v2": KnownModel(
        "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2", max_length=128
    ),
    # ~100 languages; 384 dims, 470 MB; needs the "query: " prefix on every text.
    "multilingual-e5-small": KnownModel(
        "intfloat/multilingual-e5-small", max_length=512, prefix="query: "
    ),
}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _one_line(text: object, limit: int = 300) -> str:
    """An exception or message squeezed onto one line (reasons go into one log line)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def model_folder(data_dir: Path, name: str) -> Path:
    """Where model ``name`` lives: ``<data_dir>/models/<name made safe as a folder name>``."""
    safe = _UNSAFE.sub("_", name).strip("._-")
    if not safe:
        raise ModelUnavailable(f"not a usable model name: {name!r}")
    return Path(data_dir) / "models" / safe


# --------------------------------------------------------------------------------------------
# Loading and encoding


@dataclass(frozen=True)
class ModelSettings:
    """The contents of copss-model.json, with defaults."""

    name: str
    pooling: str = "mean"
    max_length: int = DEFAULT_MAX_LENGTH
    prefix: str = ""

    @classmethod
    def read(cls, folder: Path) -> ModelSettings:
        """Read ``folder/copss-model.json`` if there is one; raise ModelUnavailable if bad."""
        path = folder / SETTINGS_FILE
        if not path.exists():
            return cls(name=folder.name)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelUnavailable(f"cannot read {path}: {_one_line(exc)}") from exc
        if not isinstance(raw, dict):
            raise ModelUnavailable(f"{path}: expected a JSON object")
        name = raw.get("name", folder.name)
        pooling = raw.get("pooling", "mean")
        max_length = raw.get("max_length", DEFAULT_MAX_LENGTH)
        prefix = raw.get("prefix", "")
        if not isinstance(name, str) or not name.strip():
            raise ModelUnavailable(f"{path}: 'name' must be a non-empty string")
        if pooling not in POOLINGS:
            raise ModelUnavailable(f"{path}: 'pooling' must be one of {', '.join(POOLINGS)}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ModelUnavailable(f"{path}: 'max_length' must be an integer of at least 2")
        if not isinstance(prefix, str):
            raise ModelUnavailable(f"{path}: 'prefix' must be a string")
        return cls(name=name.strip(), pooling=pooling, max_length=max_length, prefix=prefix)


def _file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _pad_id(tokenizer: Any) -> int:
    """The tokenizer's own padding token, else the usual one of BERT or XLM-R vocabularies.

    The value matters little (padded positions are masked out of attention and pooling), but
    the real pad token keeps the inputs what the model saw in training."""
    configured = tokenizer.padding
    if configured:
        return int(configured["pad_id"])
    for token in ("[PAD]", "<pad>"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0


#: After a call that ran this many padded tokens or more, freed memory is handed back to the
#: system (see _release_freed_memory). A single question is ~20 tokens and is not worth it.
RELEASE_AFTER_TOKENS = 1024


def _find_malloc_trim() -> Callable[[int], int] | None:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return cast("Callable[[int], int]", trim)


_malloc_trim = _find_malloc_trim()


def _release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``; else nothing).

    With onnxruntime's arena off, a batch's buffers are malloc'ed and freed per run, but glibc
    keeps freed heap memory resident (and, after the first large free, stops mapping large
    blocks separately), so resident memory ratchets up to the largest batch's worth and stays.
    Measured with all-MiniLM-L6-v2 after bulk encoding and 64 texts of 256 tokens
    (docs/benchmarks.md): 258 MB resident without this, 176-177 MB with it, at no measurable
    cost (fixing glibc's mmap threshold instead kept 202-208 MB but cost 15-25% on bulk CPU;
    onnxruntime's arena held 310-320 MB)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _storable(text: str) -> str:
    """``text`` as the tokenizer accepts it: lone surrogates (not UTF-8) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


class OnnxEmbedder:
    """An :class:`Embedder` running an ONNX sentence encoder on onnxruntime's CPU provider.

    Safe to call from several threads at once (onnxruntime sessions and tokenizers are)."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        settings: ModelSettings,
        model_id: str,
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._pad_id = _pad_id(tokenizer)
        tokenizer.enable_truncation(max_length=settings.max_length)
        # Padding is done per batch in encode (a tokenizer.json may carry a fixed length).
        tokenizer.no_padding()
        self.settings = settings
        self.model_id = model_id
        self.batch_size = batch_size
        self._inputs: dict[str, Any] = {}
        for spec in session.get_inputs():
            if spec.name not in KNOWN_INPUTS:
                raise ModelUnavailable(
                    f"model.onnx needs an input copss cannot give: {spec.name!r} "
                    f"(it gives {', '.join(KNOWN_INPUTS)})"
                )
            self._inputs[spec.name] = np.int32 if spec.type == "tensor(int32)" else np.int64
        if "input_ids" not in self._inputs:
            raise ModelUnavailable("model.onnx has no 'input_ids' input")
        outputs = [spec.name for spec in session.get_outputs()]
        # A graph exported with its pooling layer names the pooled output; otherwise the first
        # output is the token states (last_hidden_state).
        self._output = "sentence_embedding" if "sentence_embedding" in outputs else outputs[0]
        self.dim = 0
        self.dim = int(self._forward(self._tokenize([""])).shape[1])

    @classmethod
    def load(
        cls,
        folder: Path,
        *,
        threads: int = INTRA_OP_THREADS,
        batch_size: int = BATCH_SIZE,
    ) -> OnnxEmbedder:
        """Load the model in ``folder``; raise :class:`ModelUnavailable` with a one-line reason.

        The model is tried on one text before this returns, so a graph that loads but cannot
        run (wrong inputs, wrong output shape) is refused here, not on the first question."""
        import onnxruntime as ort  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        folder = Path(folder)
        if not folder.is_dir():
            raise ModelUnavailable(f"no model folder {folder}")
        model_path = folder / MODEL_FILE
        tokenizer_path = folder / TOKENIZER_FILE
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise ModelUnavailable(f"{path.name} missing in {folder}")
        settings = ModelSettings.read(folder)
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises plain Exception for a malformed file
            raise ModelUnavailable(f"cannot read {tokenizer_path}: {_one_line(exc)}") from exc

        options = ort.SessionOptions()
        # onnxruntime's arena keeps the peak of the largest batch for the life of the process;
        # without it, buffers go to malloc and encode hands them back after large calls.
        options.enable_cpu_mem_arena = False
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise
        try:
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's errors share no useful base class
            raise ModelUnavailable(f"cannot load {model_path}: {_one_line(exc)}") from exc
        model_id = f"{settings.name}:{_file_digest(model_path)[:12]}"
        try:
            return cls(session, tokenizer, settings, model_id, batch_size=batch_size)
        except ModelUnavailable as exc:
            raise ModelUnavailable(f"{model_path}: {exc}") from exc
        except Exception as exc:
            raise ModelUnavailable(
                f"{model_path} does not run as a sentence encoder: {_one_line(exc)}"
            ) from exc

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length float32 vectors, one row per text, in order; ``(0, dim)`` for none.

        Texts longer than the model's ``max_length`` tokens are truncated. A text is encoded
        the same whatever else is in the batch (padding is masked out). Blocking."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        token_ids = self._tokenize(texts)
        lengths = [len(ids) for ids in token_ids]
        # Texts of similar length go together: a batch is padded to its longest text, and the
        # model's work grows with the padded size.
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        start = padded = 0
        while start < len(order):
            end = start + 1
            real = lengths[order[start]]
            while end < len(order) and end - start < self.batch_size:
                padded = (end - start + 1) * lengths[order[end]]
                if padded > MAX_BATCH_TOKENS or padded > MAX_PADDING * (real + lengths[order[end]]):
                    break
                real += lengths[order[end]]
                end += 1
            chunk = order[start:end]
            out[chunk] = self._forward([token_ids[i] for i in chunk])
            padded += len(chunk) * lengths[order[end - 1]]
            start = end
        if padded >= RELEASE_AFTER_TOKENS:
            _release_freed_memory()
        return out

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        limit = self.settings.max_length * CHARS_PER_TOKEN
        prefix = self.settings.prefix
        prepared = [prefix + _storable(text[:limit]) for text in texts]
        return [encoding.ids for encoding in self._tokenizer.encode_batch(prepared)]

    def _forward(self, token_ids: Sequence[list[int]]) -> npt.NDArray[np.float32]:
        """One model run over texts already tokenised: padded, run, pooled, normalised."""
        width = max(1, max(len(ids) for ids in token_ids))
        ids = np.full((len(token_ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for row, text_ids in enumerate(token_ids):
            ids[row, : len(text_ids)] = text_ids
            mask[row, : len(text_ids)] = 1
        feed: dict[str, npt.NDArray[Any]] = {}
        for name, dtype in self._inputs.items():
            if name == "input_ids":
                feed[name] = ids.astype(dtype, copy=False)
            elif name == "attention_mask":
                feed[name] = mask.astype(dtype, copy=False)
            else:  # token_type_ids: one segment
                feed[name] = np.zeros_like(ids, dtype=dtype)
        (result,) = self._session.run([self._output], feed)
        states = np.asarray(result, dtype=np.float32)
        if states.ndim == 3 and states.shape[:2] == ids.shape:
            if self.settings.pooling == "cls":
                pooled = states[:, 0, :]
            else:
                weights = mask[:, :, None].astype(np.float32)
                counts = np.maximum(weights.sum(axis=1), 1.0)
                pooled = (states * weights).sum(axis=1) / counts
        elif states.ndim == 2 and states.shape[0] == len(token_ids):
            pooled = states
        else:
            raise ModelUnavailable(
                f"model output {self._output!r} has shape {states.shape} for input "
                f"{ids.shape}; expected (batch, tokens, dim) or (batch, dim)"
            )
        if self.dim and pooled.shape[1] != self.dim:
            raise ModelUnavailable(f"model output {self._output!r} has shape {pooled.shape}")
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        # A text with no tokens at all (only possible with a tokenizer that adds no [CLS]/[SEP])
        # pools to zeros; it stays a zero row, similar to nothing, instead of NaN.
        return np.ascontiguousarray(pooled / np.where(norms > 0, norms, 1.0), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Fetching


def _has_model(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file() and (folder / TOKENIZER_FILE).is_file()


def _source(name: str) -> KnownModel | None:
    known = KNOWN_MODELS.get(name)
    if known is not None:
        return known
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*", name):
        return KnownModel(name)
    return None


class _Progress:
    """Adds up bytes over all files of a model; reports at most every 1% (and at the end)."""

    def __init__(self, report: Callable[[int, int], None] | None, total: int, done: int) -> None:
        self._report = report
        self.total = total
        self.done = done
        self._last = -1

    def add(self, count: int, *, final: bool = False) -> None:
        self.done += count
        if self._report is None:
            return
        step = max(self.total // 100, 1 << 16)
        if final or self._last < 0 or self.done - self._last >= step:
            self._last = self.done
            self._report(self.done, self.total)


@dataclass
class _Transfer:
    """One file being fetched: where it goes, the open response, and the bytes already kept."""

    path: Path
    response: Any
    have: int
    size: int  # whole file, 0 if the server did not say

    @property
    def part(self) -> Path:
        return self.path.with_name(self.path.name + ".part")


def _open(url: str, part: Path, timeout: float) -> tuple[Any, int]:
    """Open ``url``, asking for the bytes after those already in ``part``; (response, kept)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "copss"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:
            raise
        # The range is past the end: the .part is not a prefix of this file; start over.
        exc.close()
        part.unlink()
        return _open(url, part, timeout)
    if have and response.status != 206:  # the server ignored the range: start over
        have = 0
    return response, have


def _download(
    source: KnownModel,
    folder: Path,
    base_url: str,
    report: Callable[[int, int], None] | None,
    timeout: float,
) -> None:
    """Fetch every missing file of ``source`` into ``folder``, blocking.

    Each file is written to ``<file>.part`` and renamed when complete, so the folder never
    holds half a model file; a ``.part`` left by an interrupted run is resumed with an HTTP
    Range request (or started over if the server ignores the range)."""
    folder.mkdir(parents=True, exist_ok=True)
    transfers: list[_Transfer] = []
    try:
        # Every response is opened before any body is read so the total size is known before
        # the first byte is counted; the smallest file is then read first.
        for local, remote in source.files.items():
            path = folder / local
            if path.is_file():
                continue
            url = (
                f"{base_url.rstrip('/')}/{source.repo}/resolve/"
                f"{urllib.parse.quote(source.revision, safe='')}/{remote}"
            )
            response, have = _open(url, path.with_name(path.name + ".part"), timeout)
            length = int(response.headers.get("Content-Length") or 0)
            transfers.append(_Transfer(path, response, have, have + length if length else 0))
        transfers.sort(key=lambda t: t.size)
        progress = _Progress(report, sum(t.size for t in transfers), sum(t.have for t in transfers))
        progress.add(0, final=True)  # the starting point: 0, or what earlier runs kept
        for transfer in transfers:
            with transfer.part.open("ab" if transfer.have else "wb") as fh:
                while chunk := transfer.response.read(1 << 16):
                    fh.write(chunk)
                    progress.add(len(chunk))
                fh.flush()
                os.fsync(fh.fileno())
            transfer.response.close()
            got = transfer.part.stat().st_size
            if transfer.size and got != transfer.size:
                raise OSError(f"{transfer.path.name}: got {got} of {transfer.size} bytes")
            os.replace(transfer.part, transfer.path)
        progress.add(0, final=True)
    finally:
        for transfer in transfers:
            transfer.response.close()


def _write_settings(folder: Path, name: str, source: KnownModel) -> None:
    path = folder / SETTINGS_FILE
    if path.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "name": name,
        "pooling": source.pooling,
        "max_length": source.max_length,
        "prefix": source.prefix,
        "source": f"{source.repo}@{source.revision}",
    }
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


_download_lock = threading.Lock()


async def ensure_model(
    name: str,
    data_dir: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    fetch: bool = True,
    base_url: str = HF_BASE_URL,
    timeout: float = 30.0,
) -> Path:
    """The folder holding model ``name``, downloading it there first if it is missing.

    A folder that already holds ``model.onnx`` and ``tokenizer.json`` is used without any
    network (a model prepared by hand or by ``bench/prepare_model.py``); for a known model
    ``copss-model.json`` is added there if it is missing.
    Otherwise, when ``fetch`` is true and ``name`` is in :data:`KNOWN_MODELS` or is a Hugging
    Face ``owner/repo``, the files are downloaded from ``base_url`` over HTTPS, with
    ``copss-model.json`` written first; ``progress(done_bytes, total_bytes)`` is called on the
    event loop as bytes arrive (``total_bytes`` is 0 if the server gives no sizes). An
    interrupted download resumes where it stopped on the next call.

    Raises :class:`ModelUnavailable` with one line: ``cannot download <name>: <cause>`` when the
    server cannot be reached or refuses, or saying why nothing was fetched."""
    folder = model_folder(data_dir, name)
    source = _source(name)
    if _has_model(folder):
        if source is not None and name in KNOWN_MODELS:
            # Files put there by hand: without the settings a model that needs a prefix
            # (multilingual-e5-small) would quietly encode worse.
            await asyncio.to_thread(_write_settings, folder, name, source)
        return folder
    if source is None:
        raise ModelUnavailable(
            f"model {name!r} is not in {folder} and copss does not know where to fetch it "
            f"(known: {', '.join(KNOWN_MODELS)}, or a Hugging Face owner/repo)"
        )
    if not fetch:
        raise ModelUnavailable(f"model {name} is not in {folder} (fetching is off)")
    loop = asyncio.get_running_loop()
    report: Callable[[int, int], None] | None = None
    if progress is not None:
        callback = progress

        def on_loop(done: int, total: int) -> None:
            # Called from the download thread; the caller's callback runs on the event loop.
            loop.call_soon_threadsafe(callback, done, total)

        report = on_loop

    def work() -> None:
        # One download per process at a time: two tasks asking for the same model would
        # otherwise write the same .part file.
        with _download_lock:
            if _has_model(folder):
                return
            _write_settings(folder, name, source)
            _download(source, folder, base_url, report, timeout)

    try:
        await asyncio.to_thread(work)
    except urllib.error.HTTPError as exc:
        raise ModelUnavailable(
            f"cannot download {name}: HTTP {exc.code} {_one_line(exc.reason)} for {exc.url}"
        ) from exc
    except urllib.error.URLError as exc:
        raise ModelUnavailable(f"cannot download {name}: {_one_line(exc.reason)}") from exc
    except (OSError, ValueError) as exc:  # timeouts, resets, a full disk, a bad base URL
        raise ModelUnavailable(f"cannot download {name}: {_one_line(exc)}") from exc
    log.info("model %s downloaded into %s", name, folder)
    return folder
