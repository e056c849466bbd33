"""A tiny sentence encoder made on the spot, for tests that must run offline and fast.

:func:`make_tiny_model` writes a model folder as copss expects one (``model.onnx``,
``tokenizer.json``, optionally ``copss-model.json``): a WordPiece tokenizer built with the
``tokenizers`` library from a small vocabulary, and an ONNX graph built with ``onnx.helper``
that looks like a transformer encoder from outside: token (and segment) embeddings, a
masked-mean context mixed into every token, so a token's state depends on the rest of the text
exactly as in a real encoder, where padding must be masked out, and a projection. Its output is
``last_hidden_state`` ``(batch, tokens, dim)`` or, with ``pooled=True``, a sentence embedding
``(batch, dim)``. Weights are fixed by a seed, so two folders made alike are byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
_WORD_LIST = (
    "where how what when can do i you my the a an to in at of for is it be with and or not "
    "register gemeente municipality residence permit ind bsn number tax return belasting "
    "dienst health insurance zorgverzekering huisarts doctor bike train ov chipkaart rent "
    "house housing deposit landlord bank account digid recycle paint amsterdam utrecht "
    "groningen rotterdam den haag delft job salary 30 ruling visa partner kids school"
)
WORDS = _WORD_LIST.split()
PIECES = ["##s", "##ing", "##ed", "##er", "##ly"]
VOCAB: dict[str, int] = {token: i for i, token in enumerate([*SPECIAL, *WORDS, *PIECES])}
DIM = 8


def make_tokenizer(*, padding: bool = False) -> Tokenizer:
    """A BERT-style WordPiece tokenizer over :data:`VOCAB` that adds [CLS] and [SEP].

    ``padding`` stores padding and truncation to fixed lengths in the file, as some real
    tokenizer.json files do (all-MiniLM-L6-v2's pads and cuts at 128); copss must use its own."""
    tokenizer = Tokenizer(models.WordPiece(VOCAB, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])],
    )
    if padding:
        tokenizer.enable_padding(pad_id=VOCAB["[PAD]"], pad_token="[PAD]", length=24)
        tokenizer.enable_truncation(max_length=12)
    return tokenizer


def make_graph(*, token_type_ids: bool = True, pooled: bool = False, seed: int = 7) -> bytes:
    """The serialised ONNX model (opset 17)."""
    rng = np.random.default_rng(seed)
    vocab = len(VOCAB)
    inits = [
        numpy_helper.from_array(rng.normal(size=(vocab, DIM)).astype(np.float32), "word_emb"),
        numpy_helper.from_array(
            (rng.normal(size=(DIM, DIM)) / np.sqrt(DIM)).astype(np.float32), "proj"
        ),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
    ]
    batch_seq = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, batch_seq),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, batch_seq),
    ]
    nodes = [helper.make_node("Gather", ["word_emb", "input_ids"], ["words"], axis=0)]
    token_states = "words"
    if token_type_ids:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, batch_seq))
        inits.append(
            numpy_helper.from_array(rng.normal(size=(2, DIM)).astype(np.float32), "type_emb")
        )
        nodes += [
            helper.make_node("Gather", ["type_emb", "token_type_ids"], ["types"], axis=0),
            helper.make_node("Add", ["words", "types"], ["embedded"]),
        ]
        token_states = "embedded"
    nodes += [
        # mask (b, s) -> (b, s, 1) float
        helper.make_node("Unsqueeze", ["attention_mask", "axis2"], ["mask3"]),
        helper.make_node("Cast", ["mask3"], ["maskf"], to=TensorProto.FLOAT),
        # context = sum(states * mask) / sum(mask) over the sequence: (b, 1, d)
        helper.make_node("Mul", [token_states, "maskf"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=1),
        helper.make_node("ReduceSum", ["maskf", "axis1"], ["count"], keepdims=1),
        helper.make_node("Div", ["summed", "count"], ["context"]),
        helper.make_node("Add", [token_states, "context"], ["mixed"]),
        helper.make_node("MatMul", ["mixed", "proj"], ["projected"]),
        helper.make_node("Tanh", ["projected"], ["hidden"]),
    ]
    if pooled:
        nodes += [
            helper.make_node("Mul", ["hidden", "maskf"], ["hidden_masked"]),
            helper.make_node("ReduceSum", ["hidden_masked", "axis1"], ["pooled_sum"], keepdims=0),
            helper.make_node("ReduceSum", ["maskf", "axis1"], ["pooled_count"], keepdims=0),
            helper.make_node("Div", ["pooled_sum", "pooled_count"], ["sentence_embedding"]),
        ]
        outputs = [
            helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", DIM])
        ]
    else:
        nodes.append(helper.make_node("Identity", ["hidden"], ["last_hidden_state"]))
        outputs = [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", DIM]
            )
        ]
    graph = helper.make_graph(nodes, "tiny_encoder", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="copss-tests"
    )
    # An IR version every onnxruntime of the last years reads.
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_tiny_model(
    folder: Path,
    *,
    settings: dict[str, Any] | None = None,
    token_type_ids: bool = True,
    pooled: bool = False,
    tokenizer_padding: bool = False,
    seed: int = 7,
) -> Path:
    """Write a tiny model into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    make_tokenizer(padding=tokenizer_padding).save(str(folder / "tokenizer.json"))
    (folder / "model.onnx").write_bytes(
        make_graph(token_type_ids=token_type_ids, pooled=pooled, seed=seed)
    )
    if settings is not None:
        (folder / "copss-model.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder


def reference_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    """What the tiny model should give, computed with numpy one text at a time (no padding).

    Independent of the code under test: it reads the weights from the ONNX file and the
    token ids from the tokenizer and redoes the arithmetic of :func:`make_graph`."""
    model = onnx.load(str(folder / "model.onnx"))
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    settings_path = folder / "copss-model.json"
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    tokenizer.enable_truncation(max_length=settings.get("max_length", 256))
    prefix = settings.get("prefix", "")
    rows = []
    for text in texts:
        ids = np.array(tokenizer.encode(prefix + text).ids)
        states = weights["word_emb"][ids]
        if "type_emb" in weights:
            states = states + weights["type_emb"][0]
        mixed = states + states.mean(axis=0)
        hidden = np.tanh(mixed @ weights["proj"])
        pooled = hidden[0] if settings.get("pooling") == "cls" else hidden.mean(axis=0)
        rows.append(pooled / np.linalg.norm(pooled))
    return np.array(rows, dtype=np.float32)
