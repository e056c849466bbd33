"""ensure_model: first-start download of a model into the data folder, against loopback HTTP
servers started here (one that serves the tiny model's files as the Hugging Face hub lays
them out, one port where nothing listens, one that never answers)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from faq.embedding import KNOWN_MODELS, ModelUnavailable, OnnxEmbedder, ensure_model
from tests.faq.tiny_model import make_tiny_model

REPO = KNOWN_MODELS["all-MiniLM-L6-v2"].repo


@dataclass
class Hub:
    """A loopback stand-in for the model host: ``files`` maps URL paths to bytes.

    Like the real host it sends large (LFS) files through a redirect to a storage path
    (``/cdn/...``) and answers ``Range: bytes=N-`` there with 206 and Content-Range (unless
    ``honour_range`` is off), unknown paths with 404, a range past the end with 416.
    ``cut_after`` closes the connection after that many body bytes of model.onnx."""

    files: dict[str, bytes]
    honour_range: bool = True
    cut_after: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def resolved(self, path: str) -> str:
        """The path a file's bytes are finally served from (after the redirect)."""
        return "/cdn" + path if path.endswith("/model.onnx") else path


def _serve(hub: Hub) -> Iterator[Hub]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            wanted = self.headers.get("Range")
            hub.requests.append((self.path, wanted))
            if self.path in hub.files and hub.resolved(self.path) != self.path:
                self.send_response(302)
                self.send_header("Location", hub.resolved(self.path))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = {hub.resolved(path): data for path, data in hub.files.items()}.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "9")
                self.end_headers()
                self.wfile.write(b"not found")
                return
            start = 0
            if wanted and hub.honour_range:
                assert wanted.startswith("bytes=") and wanted.endswith("-")
                start = int(wanted[len("bytes=") : -1])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            part = body[start:]
            self.send_header("Content-Length", str(len(part)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if hub.cut_after is not None and self.path.endswith("/model.onnx"):
                self.wfile.write(part[: hub.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def tiny_files(tmp_path: Path) -> dict[str, bytes]:
    folder = make_tiny_model(tmp_path / "source")
    return {
        "model.onnx": (folder / "model.onnx").read_bytes(),
        "tokenizer.json": (folder / "tokenizer.json").read_bytes(),
    }


def _hub_files(repo: str, files: dict[str, bytes]) -> dict[str, bytes]:
    return {
        f"/{repo}/resolve/main/onnx/model.onnx": files["model.onnx"],
        f"/{repo}/resolve/main/tokenizer.json": files["tokenizer.json"],
    }


@pytest.fixture
def hub(tiny_files: dict[str, bytes]) -> Iterator[Hub]:
    yield from _serve(Hub(_hub_files(REPO, tiny_files)))


@pytest.fixture
def closed_port() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _one_line(exc: pytest.ExceptionInfo[ModelUnavailable]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


async def test_first_start_downloads_the_model_with_progress(
    tmp_path: Path, hub: Hub, tiny_files: dict[str, bytes]
) -> None:
    seen: list[tuple[int, int]] = []
    loop_thread: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        loop_thread.append(threading.get_ident())

    folder = await ensure_model("all-MiniLM-L6-v2", tmp_path, progress=progress, base_url=hub.url)
    assert folder == tmp_path / "models" / "all-MiniLM-L6-v2"
    for name, data in tiny_files.items():
        assert (folder / name).read_bytes() == data
    assert not list(folder.glob("*.part"))
    assert json.loads((folder / "copss-model.json").read_text()) == {
        "name": "all-MiniLM-L6-v2",
        "pooling": "mean",
        "max_length": 256,
        "prefix": "",
        "source": f"{REPO}@main",
    }
    assert sorted(path for path, _ in hub.requests) == sorted(
        {*hub.files, *(hub.resolved(path) for path in hub.files)}
    )

    total = sum(len(data) for data in tiny_files.values())
    assert seen[0] == (0, total)
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert {t for _, t in seen} == {total}
    assert set(loop_thread) == {threading.get_ident()}  # on the event loop, not the worker

    embedder = OnnxEmbedder.load(folder)
    assert embedder.model_id.startswith("all-MiniLM-L6-v2:")
    assert embedder.encode(["where do I register?"]).shape == (1, embedder.dim)

    # Second start: the folder is used as it is, nothing is fetched.
    hub.requests.clear()
    assert await ensure_model("all-MiniLM-L6-v2", tmp_path, base_url=hub.url) == folder
    assert hub.requests == []


async def test_offline_is_one_line_and_leaves_no_half_files(
    tmp_path: Path, closed_port: str
) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        await ensure_model("all-MiniLM-L6-v2", tmp_path, base_url=closed_port)
    text = _one_line(caught)
    assert text.startswith("cannot download all-MiniLM-L6-v2: ")
    assert "refused" in text.lower()
    folder = tmp_path / "models" / "all-MiniLM-L6-v2"
    assert not (folder / "model.onnx").exists()
    assert not (folder / "tokenizer.json").exists()
    assert not list(folder.glob("*.part"))


async def test_a_server_that_never_answers_times_out_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # accepts connections, never reads or answers
        port = silent.getsockname()[1]
        with pytest.raises(ModelUnavailable) as caught:
            await ensure_model(
                "all-MiniLM-L6-v2", tmp_path, base_url=f"http://127.0.0.1:{port}", timeout=0.3
            )
    text = _one_line(caught)
    assert text.startswith("cannot download all-MiniLM-L6-v2: ")
    assert "timed out" in text


async def test_already_present_folder_needs_no_network(tmp_path: Path, closed_port: str) -> None:
    prepared = make_tiny_model(tmp_path / "models" / "all-MiniLM-L6-v2")
    assert await ensure_model("all-MiniLM-L6-v2", tmp_path, base_url=closed_port) == prepared
    # A known model's settings are added when the files were put there without them.
    assert json.loads((prepared / "copss-model.json").read_text())["max_length"] == 256
    e5 = make_tiny_model(tmp_path / "models" / "multilingual-e5-small")
    assert await ensure_model("multilingual-e5-small", tmp_path, fetch=False) == e5
    assert OnnxEmbedder.load(e5).settings.prefix == "query: "
    # Settings already there are kept.
    custom = make_tiny_model(tmp_path / "models" / "all-MiniLM-L6-v2", settings={"name": "mine"})
    await ensure_model("all-MiniLM-L6-v2", tmp_path, fetch=False)
    assert json.loads((custom / "copss-model.json").read_text()) == {"name": "mine"}
    # Also a model copss does not know, put there by hand.
    own = make_tiny_model(tmp_path / "models" / "our-model")
    assert await ensure_model("our-model", tmp_path, fetch=False) == own


async def test_missing_and_fetching_off(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        await ensure_model("all-MiniLM-L6-v2", tmp_path, fetch=False)
    assert _one_line(caught).startswith("model all-MiniLM-L6-v2 is not in ")
    assert not (tmp_path / "models").exists()


async def test_unknown_name_says_which_names_are_known(tmp_path: Path, closed_port: str) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        await ensure_model("no-such-model", tmp_path, base_url=closed_port)
    text = _one_line(caught)
    assert "all-MiniLM-L6-v2" in text
    assert "owner/repo" in text


async def test_missing_file_on_the_server_is_one_line(tmp_path: Path, hub: Hub) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        await ensure_model("sentence-transformers/not-there", tmp_path, base_url=hub.url)
    text = _one_line(caught)
    assert text.startswith("cannot download sentence-transformers/not-there: HTTP 404")


async def test_an_interrupted_download_resumes_with_a_range_request(
    tmp_path: Path, tiny_files: dict[str, bytes]
) -> None:
    model = tiny_files["model.onnx"]
    cut = len(model) // 3
    for hub in _serve(Hub(_hub_files(REPO, tiny_files), cut_after=cut)):
        with pytest.raises(ModelUnavailable) as caught:
            await ensure_model("all-MiniLM-L6-v2", tmp_path, base_url=hub.url)
        assert _one_line(caught).startswith("cannot download all-MiniLM-L6-v2: ")
    folder = tmp_path / "models" / "all-MiniLM-L6-v2"
    assert not (folder / "model.onnx").exists()  # never half a file under the real name
    kept = (folder / "model.onnx.part").read_bytes()
    assert 0 < len(kept) < len(model)
    assert model.startswith(kept)

    seen: list[tuple[int, int]] = []
    for hub in _serve(Hub(_hub_files(REPO, tiny_files))):
        await ensure_model(
            "all-MiniLM-L6-v2",
            tmp_path,
            base_url=hub.url,
            progress=lambda done, total: seen.append((done, total)),
        )
        # The range is asked of the hub and kept across its redirect to the storage path.
        ranges = dict(hub.requests)
        model_path = f"/{REPO}/resolve/main/onnx/model.onnx"
        assert ranges[model_path] == f"bytes={len(kept)}-"
        assert ranges[hub.resolved(model_path)] == f"bytes={len(kept)}-"
    for name, data in tiny_files.items():
        assert (folder / name).read_bytes() == data
    assert not list(folder.glob("*.part"))
    # tokenizer.json was complete after the first run: only the model is counted, from
    # what the first run kept.
    assert seen[0] == (len(kept), len(model))
    assert seen[-1] == (len(model), len(model))
    OnnxEmbedder.load(folder)


async def test_a_server_that_ignores_the_range_starts_the_file_over(
    tmp_path: Path, tiny_files: dict[str, bytes]
) -> None:
    folder = tmp_path / "models" / "all-MiniLM-L6-v2"
    folder.mkdir(parents=True)
    (folder / "model.onnx.part").write_bytes(b"stale bytes of some other file")
    for hub in _serve(Hub(_hub_files(REPO, tiny_files), honour_range=False)):
        await ensure_model("all-MiniLM-L6-v2", tmp_path, base_url=hub.url)
    assert (folder / "model.onnx").read_bytes() == tiny_files["model.onnx"]


async def test_a_part_file_longer_than_the_file_starts_over(
    tmp_path: Path, tiny_files: dict[str, bytes]
) -> None:
    folder = tmp_path / "models" / "all-MiniLM-L6-v2"
    folder.mkdir(parents=True)
    (folder / "model.onnx.part").write_bytes(b"x" * (len(tiny_files["model.onnx"]) + 10))
    for hub in _serve(Hub(_hub_files(REPO, tiny_files))):
        await ensure_model("all-MiniLM-L6-v2", tmp_path, base_url=hub.url)
    assert (folder / "model.onnx").read_bytes() == tiny_files["model.onnx"]


async def test_known_multilingual_model_gets_its_prefix_and_length(
    tmp_path: Path, tiny_files: dict[str, bytes]
) -> None:
    repo = KNOWN_MODELS["multilingual-e5-small"].repo
    for hub in _serve(Hub(_hub_files(repo, tiny_files))):
        folder = await ensure_model("multilingual-e5-small", tmp_path, base_url=hub.url)
    embedder = OnnxEmbedder.load(folder)
    assert embedder.settings.prefix == "query: "
    assert embedder.settings.max_length == 512
    assert embedder.model_id.startswith("multilingual-e5-small:")


async def test_two_tasks_asking_at_once_download_once(
    tmp_path: Path, hub: Hub, tiny_files: dict[str, bytes]
) -> None:
    first, second = await asyncio.gather(
        ensure_model("all-MiniLM-L6-v2", tmp_path, base_url=hub.url),
        ensure_model("all-MiniLM-L6-v2", tmp_path, base_url=hub.url),
    )
    assert first == second
    assert len(hub.requests) == len(tiny_files) + 1  # model.onnx is redirected once
    assert (first / "model.onnx").read_bytes() == tiny_files["model.onnx"]
