"""An in-memory index of sentence embeddings (one per model), searched by cosine similarity.

Documents are threads and FAQ entries, each kept under ``(kind, ref_id)`` with the community
that may see it (``None`` for the global starter entries). Rows are grouped by community and
kind, so a query touches only its community's threads and entries plus the global entries,
as the lexical search does (``storage/repos/search.py``); without a community it sees every
community's threads and the global entries.

Each group is searched exactly (a float32 matrix product) while it is small, and through a
usearch HNSW graph (float16) once it holds more than :data:`HNSW_ABOVE` vectors. Measured on
this machine (``bench/vectors.py``, docs/benchmarks.md; 384 dimensions): exact search costs
~0.07 ms per thousand vectors (1.4 ms at 20,000, 8 ms at 100,000, 77 ms at a million, and
float32 needs 1.5 GB there); HNSW answers in 0.9 ms at 100,000 and 1.6 ms at a million with
recall@10 0.999 and 0.995, in ~30% less memory, but building its graph is slow: 47 s per
100,000 vectors and 870 s for a million on two (busy) cores, which is what a large store's
start-up costs. A group that has become HNSW stays so until the index is rebuilt.

The index does not know whether a thread has answers or a community overrides a global entry:
callers filter what :meth:`VectorIndex.search` returns through the store (as the lexical path
does), so they should ask for a generous ``k``. Documents that must never be served (a deleted
question, an entry that only hides a global one) are kept aside with ``searchable=False``.

All methods may be called from worker threads: one lock guards the structures (the matrix
product and the HNSW search release the GIL, so an event loop never waits on a search it did
not start unless it changes the index at that moment).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from usearch.index import Index

#: Vectors in one group (a community's threads, its entries, the global entries) above which
#: the group is searched through HNSW instead of exactly.
HNSW_ABOVE = 20_000
#: HNSW graph degree ("M"). Questions cluster tightly (askings of one question), and with the
#: usual 16 some clusters end up unreachable: 2.5-3.5% of first neighbours were missed at
#: 10,000 vectors whatever the search depth; 32 finds them (bench/vectors.py) for 120-250 MB
#: more at a million vectors.
HNSW_CONNECTIVITY = 32
#: Search depth when adding ("efConstruction") and querying ("ef"); measured in
#: ``bench/vectors.py`` for recall against exact search and for build time.
HNSW_EXPANSION_ADD = 128
HNSW_EXPANSION_SEARCH = 256

KINDS = ("thread", "faq")

Vector = npt.NDArray[np.float32]
Hit = tuple[str, int, float]


def _unit(vectors: npt.ArrayLike, dim: int) -> Vector:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {matrix.shape}")
    # The embedder returns unit rows, but float16 storage moves their norms by ~1e-3: the
    # index keeps exact unit vectors so that inner products are cosines.
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


def _usearch_index() -> type[Index]:
    """usearch's ``Index`` class, imported on first need (small stores never need it).

    usearch's wheel carries its own copy of the C++ standard library and exports that copy's
    locale facet ids as process-wide (GNU unique) symbols: imported before onnxruntime, it
    makes onnxruntime crash as it loads (SIGSEGV in ``std::codecvt``; usearch 2.26.6,
    onnxruntime 1.32.0). Loading onnxruntime first, when it is installed, keeps the system
    library's ids for both; the other way round both work (``tests/faq/test_vector_index.py``).
    """
    with contextlib.suppress(ImportError):
        importlib.import_module("onnxruntime")
    from usearch.index import Index

    return Index


class _Group:
    """The vectors of one (community, kind): exact while small, HNSW once large."""

    def __init__(self, dim: int, hnsw_above: int) -> None:
        self.dim = dim
        self.hnsw_above = hnsw_above
        self.n = 0
        self.ids = np.zeros(0, dtype=np.int64)
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self.pos: dict[int, int] = {}
        self.hnsw: Index | None = None

    def __len__(self) -> int:
        return self.n

    def _reserve(self, extra: int) -> None:
        # Capacity doubles, so adding one row at a time costs amortised O(dim), not a copy of
        # the whole matrix per add.
        need = self.n + extra
        if need <= len(self.ids):
            return
        capacity = max(64, len(self.ids) * 2, need)
        matrix = np.empty((capacity, self.dim), dtype=np.float32)
        matrix[: self.n] = self.matrix[: self.n]
        ids = np.empty(capacity, dtype=np.int64)
        ids[: self.n] = self.ids[: self.n]
        self.matrix, self.ids = matrix, ids

    def upsert(self, ref_ids: npt.NDArray[np.int64], vectors: Vector) -> None:
        if self.hnsw is not None:
            self._hnsw_upsert(ref_ids, vectors)
            return
        fresh: list[int] = []
        for i, ref in enumerate(ref_ids.tolist()):
            row = self.pos.get(ref)
            if row is None:
                fresh.append(i)
            else:
                self.matrix[row] = vectors[i]
        if not fresh:
            return
        # The same id twice in one call: the last vector wins.
        last = {int(ref_ids[i]): i for i in fresh}
        take = np.fromiter(last.values(), dtype=np.int64, count=len(last))
        if self.n + len(take) > self.hnsw_above:
            self._to_hnsw(ref_ids[take], vectors[take])
            return
        self._reserve(len(take))
        start = self.n
        self.matrix[start : start + len(take)] = vectors[take]
        self.ids[start : start + len(take)] = ref_ids[take]
        for offset, ref in enumerate(ref_ids[take].tolist()):
            self.pos[ref] = start + offset
        self.n += len(take)

    def remove(self, ref_id: int) -> bool:
        if self.hnsw is not None:
            return self._hnsw_remove(ref_id)
        row = self.pos.pop(ref_id, None)
        if row is None:
            return False
        last = self.n - 1
        if row != last:
            # Swap the last row into the hole: rows stay dense, nothing else moves.
            moved = int(self.ids[last])
            self.matrix[row] = self.matrix[last]
            self.ids[row] = moved
            self.pos[moved] = row
        self.n = last
        return True

    def get(self, ref_id: int) -> Vector | None:
        if self.hnsw is not None:
            if not self.hnsw.contains(ref_id):
                return None
            return np.asarray(self.hnsw.get(ref_id), dtype=np.float32).reshape(self.dim)
        row = self.pos.get(ref_id)
        return None if row is None else self.matrix[row].copy()

    def get_many(self, ref_ids: Sequence[int]) -> list[Vector | None]:
        """The vectors of many documents at once (None where absent): one call into usearch
        instead of two per document, which cost more than the search itself for the hundred
        candidates a question ranks."""
        if self.hnsw is None:
            rows = [self.pos.get(ref) for ref in ref_ids]
            return [None if row is None else self.matrix[row].copy() for row in rows]
        if not ref_ids:
            return []
        found = self.hnsw.get(np.asarray(ref_ids, dtype=np.uint64))
        assert isinstance(found, tuple)
        return [
            None if v is None else np.asarray(v, dtype=np.float32).reshape(self.dim) for v in found
        ]

    def search(self, query: Vector, k: int) -> tuple[npt.NDArray[np.int64], Vector]:
        if self.n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.hnsw is not None:
            return self._hnsw_search(query, k)
        # numpy's own loop, not BLAS: single-threaded (OpenBLAS would start a thread pool that
        # spins on the core the encoder needs) and, measured here, faster than one-thread
        # sgemv at these sizes (docs/benchmarks.md).
        scores = np.einsum("ij,j->i", self.matrix[: self.n], query)
        top = np.argpartition(-scores, k - 1)[:k] if k < self.n else np.arange(self.n)
        order = top[np.argsort(-scores[top], kind="stable")]
        return self.ids[order].copy(), scores[order]

    # HNSW (usearch): keys are the ref ids, the group fixes the kind and community.

    def _to_hnsw(self, ref_ids: npt.NDArray[np.int64], vectors: Vector) -> None:
        index = _usearch_index()(
            ndim=self.dim,
            metric="ip",
            dtype="f16",
            connectivity=HNSW_CONNECTIVITY,
            expansion_add=HNSW_EXPANSION_ADD,
            expansion_search=HNSW_EXPANSION_SEARCH,
        )
        if self.n:
            index.add(self.ids[: self.n].astype(np.uint64), self.matrix[: self.n])
        self.hnsw = index
        self.matrix = np.zeros((0, self.dim), dtype=np.float32)
        self.ids = np.zeros(0, dtype=np.int64)
        self.pos = {}
        self._hnsw_upsert(ref_ids, vectors)

    def _hnsw_upsert(self, ref_ids: npt.NDArray[np.int64], vectors: Vector) -> None:
        index = self.hnsw
        assert index is not None
        last = {int(ref): i for i, ref in enumerate(ref_ids.tolist())}
        keys = np.fromiter(last.keys(), dtype=np.uint64, count=len(last))
        rows = np.fromiter(last.values(), dtype=np.int64, count=len(last))
        present = np.asarray(index.contains(keys), dtype=bool).reshape(-1)
        if present.any():
            # usearch refuses a key it holds: replace means remove, then add.
            index.remove(keys[present])
        index.add(keys, vectors[rows])
        self.n += int(len(keys) - present.sum())

    def _hnsw_remove(self, ref_id: int) -> bool:
        index = self.hnsw
        assert index is not None
        if not index.contains(ref_id):
            return False
        index.remove(ref_id)
        self.n -= 1
        return True

    def _hnsw_search(self, query: Vector, k: int) -> tuple[npt.NDArray[np.int64], Vector]:
        index = self.hnsw
        assert index is not None
        found = index.search(query, min(k, self.n))
        keys = np.asarray(found.keys, dtype=np.int64).reshape(-1)
        # usearch's inner-product distance is 1 - dot.
        scores = (1.0 - np.asarray(found.distances, dtype=np.float32).reshape(-1)).astype(
            np.float32
        )
        return keys, scores


@dataclass(frozen=True)
class _Place:
    community_id: int | None
    searchable: bool


class VectorIndex:
    """The embeddings of one model, searchable per community (see the module docstring)."""

    def __init__(self, model_id: str, dim: int | None = None, *, hnsw_above: int = HNSW_ABOVE):
        """``dim`` may be left out: the first vector added sets it."""
        self.model_id = model_id
        self.dim = dim
        self.hnsw_above = hnsw_above
        self._groups: dict[tuple[int | None, str], _Group] = {}
        self._places: dict[str, dict[int, _Place]] = {kind: {} for kind in KINDS}
        #: Vectors of documents that are not served, kept so that they can be served again
        #: without being embedded anew.
        self._aside: dict[tuple[str, int], Vector] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Documents that can be served."""
        with self._lock:
            return sum(len(g) for g in self._groups.values())

    def __contains__(self, key: object) -> bool:
        """Whether ``(kind, ref_id)`` is in the index (served or kept aside)."""
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        kind, ref_id = key
        with self._lock:
            return ref_id in self._places.get(kind, {})

    def place(self, kind: str, ref_id: int) -> tuple[int | None, bool] | None:
        """Where a document is served (its community, and whether it is searchable)."""
        with self._lock:
            found = self._places.get(kind, {}).get(ref_id)
        return None if found is None else (found.community_id, found.searchable)

    def set_expansion_search(self, ef: int) -> None:
        """Search depth of the HNSW groups ("ef"): higher finds more of the true nearest
        neighbours and costs more per search (``bench/vectors.py`` measures both)."""
        with self._lock:
            for group in self._groups.values():
                if group.hnsw is not None:
                    # usearch declares the setter apart from the getter; mypy misses it.
                    group.hnsw.expansion_search = ef  # type: ignore[misc]

    def memory_bytes(self) -> int:
        """About how much memory the vectors and graphs take (not the Python bookkeeping)."""
        with self._lock:
            total = sum(v.nbytes for v in self._aside.values())
            for group in self._groups.values():
                if group.hnsw is not None:
                    total += int(group.hnsw.memory_usage)
                else:
                    total += group.matrix.nbytes + group.ids.nbytes
            return total

    def groups(self) -> dict[str, int]:
        """How many groups are searched exactly and how many through HNSW."""
        with self._lock:
            hnsw = sum(1 for g in self._groups.values() if g.hnsw is not None)
            return {"exact": len(self._groups) - hnsw, "hnsw": hnsw}

    def add(
        self,
        kind: str,
        ref_id: int,
        community_id: int | None,
        vector: npt.ArrayLike,
        *,
        searchable: bool = True,
    ) -> None:
        """Add a document or replace its vector, community and ``searchable`` flag."""
        self.add_many([kind], [ref_id], [community_id], np.asarray(vector)[None, :], [searchable])

    def add_many(
        self,
        kinds: Sequence[str],
        ref_ids: Sequence[int] | npt.NDArray[np.int64],
        community_ids: Sequence[int | None],
        vectors: npt.ArrayLike,
        searchable: Sequence[bool] | None = None,
    ) -> None:
        """Add or replace many documents at once (row ``i`` of ``vectors`` for document
        ``i``); far cheaper per document than :meth:`add` for a large group."""
        with self._lock:
            self._add_locked(kinds, ref_ids, community_ids, vectors, searchable)

    def _add_locked(
        self,
        kinds: Sequence[str],
        ref_ids: Sequence[int] | npt.NDArray[np.int64],
        community_ids: Sequence[int | None],
        vectors: npt.ArrayLike,
        searchable: Sequence[bool] | None,
    ) -> None:
        n = len(kinds)
        if not (len(ref_ids) == len(community_ids) == n):
            raise ValueError("kinds, ref_ids and community_ids must have the same length")
        flags = [True] * n if searchable is None else list(searchable)
        if len(flags) != n:
            raise ValueError("searchable must have one flag per document")
        if n == 0:
            return
        for i in range(n):
            _check(kinds[i], community_ids[i])
        raw = np.asarray(vectors, dtype=np.float32)
        dim = self.dim if self.dim is not None else int(raw.shape[-1])
        matrix = _unit(raw, dim)
        if matrix.shape[0] != n:
            raise ValueError(f"{n} documents but {matrix.shape[0]} vectors")
        self.dim = dim
        ids = np.asarray(ref_ids, dtype=np.int64)
        batches: dict[tuple[int | None, str], list[int]] = {}
        for i in range(n):
            kind, ref, community = kinds[i], int(ids[i]), community_ids[i]
            place = self._places[kind].get(ref)
            if place is not None and (place.community_id, place.searchable) != (
                community,
                flags[i],
            ):
                # Moving to another group (or aside): out of the old one first. A document
                # staying in its group is replaced in place by the group's upsert.
                self._take_out(kind, ref)
            self._places[kind][ref] = _Place(community, flags[i])
            if flags[i]:
                batches.setdefault((community, kind), []).append(i)
            else:
                self._aside[(kind, ref)] = matrix[i].copy()
        for key, rows in batches.items():
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(dim, self.hnsw_above)
            take = np.asarray(rows, dtype=np.int64)
            group.upsert(ids[take], matrix[take])

    def remove(self, kind: str, ref_id: int) -> bool:
        """Forget a document; returns whether it was there."""
        with self._lock:
            found = self._take_out(kind, ref_id)
            self._places.get(kind, {}).pop(ref_id, None)
            return found

    def set_searchable(self, kind: str, ref_id: int, searchable: bool) -> bool:
        """Serve a document again, or stop serving it, without its vector; returns whether
        the document is in the index."""
        with self._lock:
            place = self._places.get(kind, {}).get(ref_id)
            if place is None:
                return False
            if place.searchable == searchable:
                return True
            vector = self._vector(kind, ref_id, place)
            if vector is None:
                return False
            self._add_locked([kind], [ref_id], [place.community_id], vector[None, :], [searchable])
            return True

    def move(self, kind: str, ref_id: int, community_id: int | None) -> bool:
        """Serve a document in another community (after communities are linked or split);
        returns whether the document is in the index."""
        with self._lock:
            place = self._places.get(kind, {}).get(ref_id)
            if place is None:
                return False
            if place.community_id == community_id:
                return True
            vector = self._vector(kind, ref_id, place)
            if vector is None:
                return False
            self._add_locked([kind], [ref_id], [community_id], vector[None, :], [place.searchable])
            return True

    def search(self, vector: npt.ArrayLike, community_id: int | None, k: int = 50) -> list[Hit]:
        """The ``k`` documents closest to ``vector`` by cosine, best first, as
        ``(kind, ref_id, cosine)``: the community's threads and its own and the global FAQ
        entries; with ``community_id`` None, every community's threads and the global
        entries (as the operator's ``copss ask`` searches)."""
        if k <= 0:
            return []
        with self._lock:
            if self.dim is None:
                return []
            query = _unit(vector, self.dim)[0]
            if community_id is None:
                keys = [key for key in self._groups if key[1] == "thread"]
            else:
                keys = [(community_id, "thread"), (community_id, "faq")]
            keys.append((None, "faq"))
            hits: list[Hit] = []
            for key in keys:
                group = self._groups.get(key)
                if group is None:
                    continue
                ids, scores = group.search(query, k)
                kind = key[1]
                hits.extend(zip([kind] * len(ids), ids.tolist(), scores.tolist(), strict=True))
        hits.sort(key=lambda hit: -hit[2])
        return hits[:k]

    def vectors(self, keys: Sequence[tuple[str, int]]) -> list[Vector | None]:
        """The stored unit vector of each document ``(kind, ref_id)`` (None if not in the
        index)."""
        with self._lock:
            return self._vectors_locked(keys)

    def cosines(self, vector: npt.ArrayLike, keys: Sequence[tuple[str, int]]) -> list[float | None]:
        """The cosine of ``vector`` with each stored document ``(kind, ref_id)`` (None for
        one not in the index): the semantic evidence for candidates found lexically."""
        with self._lock:
            if self.dim is None or not keys:
                return [None] * len(keys)
            query = _unit(vector, self.dim)[0]
            stored = self._vectors_locked(keys)
        present = [(i, v) for i, v in enumerate(stored) if v is not None]
        out: list[float | None] = [None] * len(keys)
        if present:
            matrix = np.stack([v for _, v in present])
            for (i, _), c in zip(present, (matrix @ query).tolist(), strict=True):
                out[i] = c
        return out

    def _vectors_locked(self, keys: Sequence[tuple[str, int]]) -> list[Vector | None]:
        # Caller holds the lock. Fetched group by group, each in one call.
        out: list[Vector | None] = [None] * len(keys)
        wanted: dict[tuple[int | None, str], list[tuple[int, int]]] = {}
        for i, (kind, ref_id) in enumerate(keys):
            place = self._places.get(kind, {}).get(ref_id)
            if place is None:
                continue
            if not place.searchable:
                out[i] = self._aside.get((kind, ref_id))
            else:
                wanted.setdefault((place.community_id, kind), []).append((i, ref_id))
        for group_key, items in wanted.items():
            group = self._groups.get(group_key)
            if group is None:
                continue
            for (i, _), v in zip(items, group.get_many([r for _, r in items]), strict=True):
                out[i] = v
        return out

    def _vector(self, kind: str, ref_id: int, place: _Place) -> Vector | None:
        if not place.searchable:
            return self._aside.get((kind, ref_id))
        group = self._groups.get((place.community_id, kind))
        return None if group is None else group.get(ref_id)

    def _take_out(self, kind: str, ref_id: int) -> bool:
        # Caller holds the lock. Removes the vector from wherever it is; the place stays.
        place = self._places.get(kind, {}).get(ref_id)
        if place is None:
            return False
        if not place.searchable:
            self._aside.pop((kind, ref_id), None)
            return True
        group = self._groups.get((place.community_id, kind))
        if group is not None:
            group.remove(ref_id)
            if len(group) == 0 and group.hnsw is None:
                del self._groups[(place.community_id, kind)]
        return True


def _check(kind: str, community_id: int | None) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if kind == "thread" and community_id is None:
        raise ValueError("a thread always belongs to a community")
