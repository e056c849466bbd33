"""The in-memory vector index: community scoping like the lexical search, updates, and HNSW
agreeing with exact search."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from faq.vector_index import VectorIndex
from tests.fakes.embedder import HashingEmbedder

EMBEDDER = HashingEmbedder(dim=64)


def vec(text: str) -> npt.NDArray[np.float32]:
    return EMBEDDER.vector(text)


def corpus() -> VectorIndex:
    """Community 1 and 2 each ask about bikes; 1 and the global set have an entry on it."""
    index = VectorIndex("hashing-test:1")
    index.add("thread", 10, 1, vec("where can i park my bike in utrecht"))
    index.add("thread", 11, 1, vec("how do i register at the gemeente"))
    index.add("thread", 20, 2, vec("where can i park my bike in groningen"))
    index.add("faq", 100, 1, vec("bike parking near the station"))
    index.add("faq", 200, 2, vec("bike parking rules in groningen"))
    index.add("faq", 300, None, vec("where to park a bike"))
    return index


def refs(hits: list[tuple[str, int, float]]) -> list[tuple[str, int]]:
    return [(kind, ref) for kind, ref, _ in hits]


def test_search_sees_own_community_and_global_entries_only() -> None:
    index = corpus()
    hits = index.search(vec("where can i park my bike"), 1, k=10)
    assert set(refs(hits)) == {("thread", 10), ("thread", 11), ("faq", 100), ("faq", 300)}
    # Best first, scores are cosines of unit vectors.
    scores = [s for _, _, s in hits]
    assert scores == sorted(scores, reverse=True)
    assert refs(hits)[0] == ("thread", 10)
    assert all(-1.0001 <= s <= 1.0001 for s in scores)
    assert set(refs(index.search(vec("bike"), 2, k=10))) == {
        ("thread", 20),
        ("faq", 200),
        ("faq", 300),
    }
    # A community with nothing of its own still sees the global entries.
    assert refs(index.search(vec("bike"), 99, k=10)) == [("faq", 300)]


def test_search_without_community_sees_every_thread_and_global_entries() -> None:
    hits = corpus().search(vec("park bike"), None, k=10)
    assert set(refs(hits)) == {("thread", 10), ("thread", 11), ("thread", 20), ("faq", 300)}


def test_k_limits_and_exact_scores() -> None:
    index = corpus()
    query = vec("where can i park my bike in utrecht")
    hits = index.search(query, 1, k=2)
    assert len(hits) == 2
    assert hits[0][:2] == ("thread", 10)
    assert hits[0][2] == pytest.approx(1.0, abs=1e-5)
    assert index.search(query, 1, k=0) == []
    assert VectorIndex("empty").search(query, 1) == []


def test_update_remove_searchable_and_move() -> None:
    index = corpus()
    assert len(index) == 6
    # Replacing a vector: the thread now matches another question.
    index.add("thread", 11, 1, vec("where can i park my bike in utrecht"))
    assert len(index) == 6
    top = index.search(vec("where can i park my bike in utrecht"), 1, k=2)
    assert {r for _, r, _ in top} == {10, 11}
    assert index.remove("thread", 10) is True
    assert index.remove("thread", 10) is False
    assert ("thread", 10) not in index
    assert ("thread", 10) not in refs(index.search(vec("bike"), 1, k=10))
    # Not served, yet kept: serving it again needs no new vector.
    assert index.set_searchable("faq", 300, False) is True
    assert ("faq", 300) in index
    assert index.place("faq", 300) == (None, False)
    assert ("faq", 300) not in refs(index.search(vec("park a bike"), 1, k=10))
    assert ("faq", 300) not in refs(index.search(vec("park a bike"), None, k=10))
    assert index.set_searchable("faq", 300, True) is True
    assert refs(index.search(vec("where to park a bike"), 1, k=1)) == [("faq", 300)]
    # Communities linked: thread 20 now belongs to community 1.
    assert index.move("thread", 20, 1) is True
    assert ("thread", 20) in refs(index.search(vec("groningen bike"), 1, k=10))
    assert ("thread", 20) not in refs(index.search(vec("groningen bike"), 2, k=10))
    assert index.move("thread", 999, 1) is False
    # Added as not searchable from the start.
    index.add("thread", 30, 2, vec("deleted question"), searchable=False)
    assert ("thread", 30) not in refs(index.search(vec("deleted question"), 2, k=10))


def test_bad_input_is_refused() -> None:
    index = VectorIndex("m", 4)
    with pytest.raises(ValueError, match="dimension 4"):
        index.add("thread", 1, 1, np.ones(5, dtype=np.float32))
    with pytest.raises(ValueError, match="kind"):
        index.add("answer", 1, 1, np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="community"):
        index.add("thread", 1, None, np.ones(4, dtype=np.float32))
    assert len(index) == 0


def test_adding_one_at_a_time_grows_in_place() -> None:
    # Amortised growth: the group's matrix is reallocated when it doubles, not on every add.
    index = VectorIndex("m", 8)
    rng = np.random.default_rng(1)
    reallocations = 0
    matrix = None
    for i in range(1000):
        index.add("thread", i, 1, rng.normal(size=8).astype(np.float32))
        current = index._groups[(1, "thread")].matrix
        if current is not matrix:
            reallocations += 1
            matrix = current
    assert reallocations <= 6
    assert len(index) == 1000
    # Removing swaps the last row into the hole; every remaining vector is still found.
    for i in range(0, 1000, 2):
        index.remove("thread", i)
    group = index._groups[(1, "thread")]
    assert len(group) == 500
    assert sorted(group.ids[: group.n].tolist()) == list(range(1, 1000, 2))


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> npt.NDArray[np.float32]:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, n: int, dim: int) -> npt.NDArray[np.float32]:
    """Unit vectors around a few hundred topics (sentence embeddings cluster by subject)."""
    centres = unit_rows(rng, max(1, n // 20), dim)
    rows = centres[rng.integers(0, len(centres), n)] + 0.35 * unit_rows(rng, n, dim)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_hnsw_agrees_with_exact_search() -> None:
    rng = np.random.default_rng(7)
    n, dim = 4000, 64
    data = clustered(rng, n, dim)
    exact = VectorIndex("m", dim, hnsw_above=10**9)
    hnsw = VectorIndex("m", dim, hnsw_above=1000)
    communities = [1] * n
    exact.add_many(["thread"] * n, np.arange(n), communities, data)
    hnsw.add_many(["thread"] * n, np.arange(n), communities, data)
    assert exact.groups() == {"exact": 1, "hnsw": 0}
    assert hnsw.groups() == {"exact": 0, "hnsw": 1}
    queries = data[rng.integers(0, n, 100)] + 0.2 * unit_rows(rng, 100, dim)
    found = total = 0
    for q in queries:
        truth = exact.search(q, 1, k=10)
        approx = hnsw.search(q, 1, k=10)
        assert len(approx) == 10
        found += len({r for _, r, _ in truth} & {r for _, r, _ in approx})
        total += 10
        # Scores are cosines either way (float16 in the graph: within ~1e-2).
        scores = dict((r, s) for _, r, s in truth)
        for _, ref, score in approx:
            if ref in scores:
                assert score == pytest.approx(scores[ref], abs=1e-2)
    assert found / total >= 0.95


def test_hnsw_group_takes_updates_and_removals() -> None:
    rng = np.random.default_rng(11)
    n, dim = 1500, 32
    data = unit_rows(rng, n, dim)
    index = VectorIndex("m", dim, hnsw_above=1000)
    for start in range(0, n, 100):
        # Crosses the threshold part-way: the group turns into HNSW and keeps everything.
        index.add_many(
            ["thread"] * 100, np.arange(start, start + 100), [1] * 100, data[start : start + 100]
        )
    assert index.groups()["hnsw"] == 1
    assert len(index) == n
    assert index.search(data[5], 1, k=1)[0][:2] == ("thread", 5)
    # Replace vector 5 with vector 6's: both now answer the same query.
    index.add("thread", 5, 1, data[6])
    assert len(index) == n
    assert {r for _, r, _ in index.search(data[6], 1, k=2)} == {5, 6}
    assert index.remove("thread", 6) is True
    assert len(index) == n - 1
    assert index.search(data[6], 1, k=1)[0][:2] == ("thread", 5)
    # Moving out of the HNSW group and back keeps the vector.
    assert index.set_searchable("thread", 5, False)
    assert 5 not in {r for _, r, _ in index.search(data[6], 1, k=5)}
    assert index.set_searchable("thread", 5, True)
    assert index.search(data[6], 1, k=1)[0][:2] == ("thread", 5)


def test_a_large_index_does_not_break_loading_the_encoder() -> None:
    # usearch ships its own C++ standard library; imported before onnxruntime, onnxruntime
    # crashes as it loads. A fresh process, since this one may have loaded either already.
    pytest.importorskip("onnxruntime")
    script = (
        "import numpy as np\n"
        "from faq.vector_index import VectorIndex\n"
        "index = VectorIndex('m', 8, hnsw_above=10)\n"
        "rows = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)\n"
        "index.add_many(['thread'] * 50, np.arange(50), [1] * 50, rows)\n"
        "assert index.groups()['hnsw'] == 1\n"
        "import onnxruntime\n"
        "onnxruntime.SessionOptions()\n"
        "print(index.search(rows[3], 1, k=1)[0][1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "3"


@pytest.mark.parametrize("hnsw_above", [10**9, 10])
def test_vectors_and_cosines_of_known_documents(hnsw_above: int) -> None:
    rng = np.random.default_rng(5)
    rows = unit_rows(rng, 40, 16)
    index = VectorIndex("m", 16, hnsw_above=hnsw_above)
    index.add_many(["thread"] * 40, np.arange(40), [1] * 40, rows)
    index.add("faq", 7, None, rows[3], searchable=False)
    got = index.vectors([("thread", 5), ("faq", 7), ("thread", 99), ("faq", 5)])
    assert got[0] is not None and got[1] is not None
    assert got[2] is None and got[3] is None
    # Exact groups keep float32; HNSW groups float16 (within ~1e-3).
    np.testing.assert_allclose(got[0], rows[5], atol=2e-3)
    np.testing.assert_allclose(got[1], rows[3], atol=1e-6)
    cos = index.cosines(rows[5] * 3.0, [("thread", 5), ("thread", 6), ("thread", 99)])
    assert cos[0] == pytest.approx(1.0, abs=2e-3)
    assert cos[1] == pytest.approx(float(rows[5] @ rows[6]), abs=2e-3)
    assert cos[2] is None
    assert VectorIndex("empty").cosines(rows[0], [("thread", 1)]) == [None]


def test_cosines_of_many_hnsw_documents_read_them_in_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faq.vector_index import _usearch_index

    rng = np.random.default_rng(6)
    rows = unit_rows(rng, 60, 16)
    index = VectorIndex("m", 16, hnsw_above=10)
    index.add_many(["thread"] * 60, np.arange(60), [1] * 60, rows)
    assert index.groups() == {"exact": 0, "hnsw": 1}
    usearch_index = _usearch_index()
    calls = []
    real_get = usearch_index.get

    def counting_get(self: object, keys: object, dtype: object = None) -> object:
        calls.append(keys)
        return real_get(self, keys, dtype)  # type: ignore[arg-type]

    monkeypatch.setattr(usearch_index, "get", counting_get)
    keys = [("thread", i) for i in range(50)] + [("thread", 99)]
    cos = index.cosines(rows[0], keys)
    # A question's hundred candidates cost one call into usearch, not two per candidate.
    assert len(calls) == 1
    assert cos[0] == pytest.approx(1.0, abs=2e-3)
    assert cos[7] == pytest.approx(float(rows[0] @ rows[7]), abs=2e-3)
    assert cos[-1] is None
