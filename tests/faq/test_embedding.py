"""The embedding runtime on a tiny model made on the spot: real onnxruntime and tokenizers,
no network (downloads come from loopback servers started here)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from faq.embedding import (
    BATCH_SIZE,
    Embedder,
    ModelUnavailable,
    OnnxEmbedder,
    model_folder,
)
from tests.faq.tiny_model import DIM, make_graph, make_tiny_model, reference_vectors

TEXTS = [
    "Where can I register at the gemeente?",
    "How do I get a BSN number?",
    "bike",
    "",
    "Which health insurance (zorgverzekering) do you have and is the huisarts included?",
]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny_model(tmp_path / "models" / "tiny")


@pytest.fixture
def embedder(tiny: Path) -> OnnxEmbedder:
    return OnnxEmbedder.load(tiny)


def test_encode_gives_unit_float32_rows_that_match_the_models_arithmetic(
    tiny: Path, embedder: OnnxEmbedder
) -> None:
    vectors = embedder.encode(TEXTS)
    assert isinstance(embedder, Embedder)
    assert embedder.dim == DIM
    assert vectors.shape == (len(TEXTS), DIM)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # The reference redoes the graph's arithmetic in numpy, one text at a time, unpadded.
    np.testing.assert_allclose(vectors, reference_vectors(tiny, TEXTS), atol=1e-5)
    # Different texts give different vectors; the same text the same one.
    assert float(vectors[0] @ vectors[1]) < 0.999
    np.testing.assert_array_equal(embedder.encode([TEXTS[0]])[0], embedder.encode(TEXTS[:1])[0])


def test_empty_input_gives_zero_rows_of_the_right_width(embedder: OnnxEmbedder) -> None:
    empty = embedder.encode([])
    assert empty.shape == (0, DIM)
    assert empty.dtype == np.float32
    assert embedder.encode(()).shape == (0, DIM)


def test_one_string_is_refused_rather_than_read_as_characters(embedder: OnnxEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.encode("where do I register?")  # type: ignore[arg-type]


def test_a_text_encodes_the_same_alone_and_beside_a_longer_one(embedder: OnnxEmbedder) -> None:
    short = "bsn"
    longer = "where can i register my residence permit at the gemeente in amsterdam " * 5
    alone = embedder.encode([short])[0]
    batched = embedder.encode([longer, short, "bike"])
    np.testing.assert_allclose(batched[1], alone, atol=1e-6)
    np.testing.assert_allclose(batched[0], embedder.encode([longer])[0], atol=1e-6)


def test_order_is_kept_across_many_batches(tiny: Path) -> None:
    embedder = OnnxEmbedder.load(tiny, batch_size=4)
    words = ["bike", "train", "rent house deposit landlord", "tax", "the digid of my partner"]
    texts = [" ".join(words[: 1 + i % 5]) + f" {'kids ' * (i % 7)}" for i in range(3 * BATCH_SIZE)]
    together = embedder.encode(texts)
    one_by_one = np.vstack([embedder.encode([text]) for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)


def test_a_ten_thousand_word_text_is_truncated_to_max_length(tmp_path: Path) -> None:
    folder = make_tiny_model(tmp_path / "m", settings={"max_length": 16})
    embedder = OnnxEmbedder.load(folder)
    words = ["bike", "train", "rent", "tax", "bank", "visa", "school", "doctor"]
    huge = " ".join(words[i % len(words)] for i in range(10_000))
    started = time.perf_counter()
    vector = embedder.encode([huge])[0]
    assert time.perf_counter() - started < 2
    # [CLS] + 14 words + [SEP] = 16 tokens: only the first 14 words count.
    head = " ".join(words[i % len(words)] for i in range(14))
    np.testing.assert_allclose(vector, embedder.encode([head])[0], atol=1e-6)
    # ...and the 14th still does.
    shorter = " ".join(words[i % len(words)] for i in range(13))
    assert float(vector @ embedder.encode([shorter])[0]) < 0.9999


def test_default_max_length_is_256_tokens(embedder: OnnxEmbedder) -> None:
    assert embedder.settings.max_length == 256
    text = " ".join(["bike"] * 254)
    np.testing.assert_allclose(
        embedder.encode([text + " train train"])[0], embedder.encode([text])[0], atol=1e-6
    )


@pytest.mark.parametrize(
    "text",
    [
        "🇳🇱🚲🌷 where do I register? 👩‍👩‍👧",
        "nul\x00in the\x00middle",
        "\x00" * 500,
        "lone surrogate \ud800 here",
        "zero\u200bwidth\u200d joiners\ufeff",
        "right-to-left \u202e gemeente \u202c",
        "ｆｕｌｌｗｉｄｔｈ ＢＳＮ",
        "combining e\u0301\u0301\u0301\u0301",
        "中文 العربية हिन्दी русский",
        "\n\t\r  ",
        "a" * 5000,
        "\U0010ffff\ue000",
    ],
)
def test_odd_unicode_gives_a_finite_unit_vector(embedder: OnnxEmbedder, text: str) -> None:
    vector = embedder.encode([text, "bike"])[0]
    assert np.isfinite(vector).all()
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_model_id_names_the_model_and_the_exact_weights(tmp_path: Path) -> None:
    a = OnnxEmbedder.load(make_tiny_model(tmp_path / "a"))
    digest = hashlib.sha256((tmp_path / "a" / "model.onnx").read_bytes()).hexdigest()
    assert a.model_id == f"a:{digest[:12]}"
    named = OnnxEmbedder.load(make_tiny_model(tmp_path / "b", settings={"name": "tiny-en"}))
    assert named.model_id == f"tiny-en:{digest[:12]}"
    other_weights = OnnxEmbedder.load(
        make_tiny_model(tmp_path / "c", settings={"name": "tiny-en"}, seed=8)
    )
    assert other_weights.model_id.startswith("tiny-en:")
    assert other_weights.model_id != named.model_id


def test_prefix_from_settings_is_put_before_every_text(tmp_path: Path) -> None:
    plain = OnnxEmbedder.load(make_tiny_model(tmp_path / "plain"))
    folder = make_tiny_model(tmp_path / "e5", settings={"prefix": "query: "})
    prefixed = OnnxEmbedder.load(folder)
    assert prefixed.settings.prefix == "query: "
    vectors = prefixed.encode(TEXTS)
    np.testing.assert_allclose(vectors, reference_vectors(folder, TEXTS), atol=1e-5)
    np.testing.assert_allclose(vectors, plain.encode(["query: " + t for t in TEXTS]), atol=1e-6)
    assert not np.allclose(vectors, plain.encode(TEXTS), atol=1e-3)


def test_cls_pooling(tmp_path: Path) -> None:
    folder = make_tiny_model(tmp_path / "m", settings={"pooling": "cls"})
    vectors = OnnxEmbedder.load(folder).encode(TEXTS)
    np.testing.assert_allclose(vectors, reference_vectors(folder, TEXTS), atol=1e-5)


def test_a_model_that_outputs_pooled_sentence_embeddings(tmp_path: Path) -> None:
    pooled = OnnxEmbedder.load(make_tiny_model(tmp_path / "p", pooled=True))
    tokens = OnnxEmbedder.load(make_tiny_model(tmp_path / "t"))
    assert pooled.dim == DIM
    # The graph pools as copss would, so the vectors agree.
    np.testing.assert_allclose(pooled.encode(TEXTS), tokens.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(
        pooled.encode(["bsn", "a much longer question about the residence permit"])[0],
        pooled.encode(["bsn"])[0],
        atol=1e-6,
    )


def test_inputs_are_read_from_the_graph_and_stored_padding_and_truncation_are_ignored(
    tmp_path: Path,
) -> None:
    folder = make_tiny_model(tmp_path / "m", token_type_ids=False, tokenizer_padding=True)
    embedder = OnnxEmbedder.load(folder)
    texts = [*TEXTS, " ".join(["bike"] * 40)]  # longer than the file's 12 and 24 tokens
    vectors = embedder.encode(texts)
    np.testing.assert_allclose(vectors, reference_vectors(folder, texts), atol=1e-5)
    # Cut at the file's 12 tokens it would be [CLS] + 10 words + [SEP]:
    cut = embedder.encode([" ".join(["bike"] * 10)])[0]
    assert np.abs(vectors[-1] - cut).max() > 1e-3


def test_long_and_short_texts_in_one_call_equal_one_by_one(embedder: OnnxEmbedder) -> None:
    words = ["rent", "house", "deposit", "landlord", "amsterdam", "tax", "bsn", "visa"]
    texts = [
        " ".join(words[(i + k) % len(words)] for k in range(1 + (i * 37) % 300)) for i in range(60)
    ]
    together = embedder.encode(texts)
    one_by_one = np.vstack([embedder.encode([text]) for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)


def test_encoding_from_several_threads_at_once(embedder: OnnxEmbedder) -> None:
    expected = embedder.encode(TEXTS)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                results.append(embedder.encode(TEXTS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 80
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


# --- folders that are not usable models --------------------------------------------------


def _reason(folder: Path) -> str:
    with pytest.raises(ModelUnavailable) as caught:
        OnnxEmbedder.load(folder)
    reason = str(caught.value)
    assert "\n" not in reason
    assert len(reason) < 500
    return reason


def test_missing_folder(tmp_path: Path) -> None:
    assert "no model folder" in _reason(tmp_path / "nothing")


def test_missing_tokenizer(tiny: Path) -> None:
    (tiny / "tokenizer.json").unlink()
    assert _reason(tiny) == f"tokenizer.json missing in {tiny}"


def test_missing_model(tiny: Path) -> None:
    (tiny / "model.onnx").unlink()
    assert _reason(tiny) == f"model.onnx missing in {tiny}"


def test_corrupt_model(tiny: Path) -> None:
    (tiny / "model.onnx").write_bytes(b"this is not a protobuf \x00\xff" * 50)
    reason = _reason(tiny)
    assert reason.startswith(f"cannot load {tiny / 'model.onnx'}: ")


def test_half_downloaded_model(tiny: Path) -> None:
    data = (tiny / "model.onnx").read_bytes()
    (tiny / "model.onnx").write_bytes(data[: len(data) // 2])
    assert _reason(tiny).startswith(f"cannot load {tiny / 'model.onnx'}: ")


def test_empty_model_file(tiny: Path) -> None:
    (tiny / "model.onnx").write_bytes(b"")
    assert str(tiny / "model.onnx") in _reason(tiny)


def test_corrupt_tokenizer(tiny: Path) -> None:
    (tiny / "tokenizer.json").write_text('{"model": {"type": "WordPiece"', encoding="utf-8")
    assert _reason(tiny).startswith(f"cannot read {tiny / 'tokenizer.json'}: ")


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ("{not json", "cannot read"),
        ("[1, 2]", "expected a JSON object"),
        ('{"pooling": "max"}', "'pooling' must be one of mean, cls"),
        ('{"max_length": "long"}', "'max_length' must be an integer"),
        ('{"max_length": 1}', "'max_length' must be an integer"),
        ('{"prefix": 3}', "'prefix' must be a string"),
        ('{"name": ""}', "'name' must be a non-empty string"),
    ],
)
def test_bad_settings(tiny: Path, settings: str, says: str) -> None:
    (tiny / "copss-model.json").write_text(settings, encoding="utf-8")
    reason = _reason(tiny)
    assert "copss-model.json" in reason
    assert says in reason


def test_a_graph_that_wants_an_input_copss_cannot_give(tiny: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(make_graph())
    model.graph.input.append(
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "sequence"])
    )
    (tiny / "model.onnx").write_bytes(model.SerializeToString())
    assert "'position_ids'" in _reason(tiny)


def test_a_graph_whose_output_is_not_an_embedding(tiny: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(make_graph())
    graph = model.graph
    graph.node.append(helper.make_node("ReduceSum", ["hidden"], ["total"], keepdims=0))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("total", TensorProto.FLOAT, []))
    (tiny / "model.onnx").write_bytes(model.SerializeToString())
    reason = _reason(tiny)
    assert "expected (batch, tokens, dim) or (batch, dim)" in reason


# --- where models live ------------------------------------------------------------------


def test_model_folder_is_a_safe_name_under_models(tmp_path: Path) -> None:
    assert model_folder(tmp_path, "all-MiniLM-L6-v2") == tmp_path / "models" / "all-MiniLM-L6-v2"
    assert (
        model_folder(tmp_path, "sentence-transformers/all-MiniLM-L6-v2")
        == tmp_path / "models" / "sentence-transformers_all-MiniLM-L6-v2"
    )
    for hostile in ("../../etc", "/etc/passwd", "a/../../b", "..\\..\\x", "~root"):
        folder = model_folder(tmp_path, hostile)
        assert folder.parent == tmp_path / "models"
        assert folder.name not in ("", ".", "..")
    for empty in ("", "..", "/", "..."):
        with pytest.raises(ModelUnavailable):
            model_folder(tmp_path, empty)


def test_tiny_model_files_are_reproducible(tmp_path: Path) -> None:
    a = make_tiny_model(tmp_path / "a")
    b = make_tiny_model(tmp_path / "b")
    for name in ("model.onnx", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert json.loads((a / "tokenizer.json").read_text())["model"]["type"] == "WordPiece"


def test_large_calls_hand_freed_memory_back_and_single_questions_do_not(
    embedder: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faq.embedding

    calls: list[int] = []
    monkeypatch.setattr(faq.embedding, "_malloc_trim", lambda pad: calls.append(pad) or 1)
    embedder.encode(["where do I register?"])
    assert calls == []
    embedder.encode([" ".join(["bike"] * 200)] * 8)  # 8 x 202 padded tokens
    assert calls == [0]
