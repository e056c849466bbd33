"""Benchmark thank-you detection (``faq.gratitude``) against the labelled replies.

Usage::

    python -m bench.thanks [--errors]

Reads ``tests/faq/data/thanks_dev.jsonl`` (the rules were tuned on it) and
``tests/faq/data/thanks_heldout.jsonl`` (written before the rules, never tuned on; see the
README there). Prints precision, recall and F1 per split, overall and per language, for
``faq.gratitude.is_thanks`` and, from the same run, for the keyword regex copss used before
(``OLD_THANKS``), then the mean time per reply. ``--errors`` also lists every misclassified
reply with its reason.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bench.detection import Example, Scores
from faq.gratitude import detect_thanks, is_thanks

DATA = Path(__file__).resolve().parents[1] / "tests" / "faq" / "data"
ROUNDS = 50
SPLITS = {"dev": DATA / "thanks_dev.jsonl", "held-out": DATA / "thanks_heldout.jsonl"}

#: The keyword search bot/features/qa.py used before faq.gratitude, kept for comparison.
OLD_THANKS = re.compile(
    r"\b(thanks|thank you|thx|ty|cheers|solved|bedankt|dank je|dankjewel|dank u|top)\b",
    re.IGNORECASE,
)


def load(path: Path) -> list[Example]:
    """Read a JSONL file of ``{"text", "label", "lang"}`` objects."""
    examples = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("label"), bool) or row.get("lang") not in {"en", "nl"}:
            raise ValueError(f"{path}:{lineno}: bad row {row!r}")
        examples.append(Example(label=row["label"], lang=row["lang"], text=row["text"]))
    return examples


def score(pairs: Iterable[tuple[Example, bool]]) -> Scores:
    """Count true/false positives/negatives over (example, prediction) pairs."""
    tp = fp = fn = tn = 0
    for example, predicted in pairs:
        if predicted and example.label:
            tp += 1
        elif predicted:
            fp += 1
        elif example.label:
            fn += 1
        else:
            tn += 1
    return Scores(tp, fp, fn, tn)


def old_is_thanks(text: str) -> bool:
    """The previous rule: any thank-you keyword anywhere."""
    return OLD_THANKS.search(text) is not None


def table(splits: dict[str, list[Example]], judges: dict[str, Callable[[str], bool]]) -> list[str]:
    """Rows of precision/recall/F1 per judge, split and language."""
    lines = [
        f"{'judge':<10} {'split':<9} {'lang':<4} {'n':>4} {'pos':>4} {'TP':>3} {'FP':>3} "
        f"{'FN':>3} {'TN':>3} {'precision':>9} {'recall':>6} {'F1':>6}"
    ]
    for judge, fn in judges.items():
        for split, examples in splits.items():
            results = [(ex, fn(ex.text)) for ex in examples]
            for lang in ("all", "en", "nl"):
                s = score(r for r in results if lang == "all" or r[0].lang == lang)
                lines.append(
                    f"{judge:<10} {split:<9} {lang:<4} {s.total:>4} {s.tp + s.fn:>4} {s.tp:>3} "
                    f"{s.fp:>3} {s.fn:>3} {s.tn:>3} {s.precision:>9.3f} {s.recall:>6.3f} "
                    f"{s.f1:>6.3f}"
                )
    return lines


def errors(splits: dict[str, list[Example]]) -> list[str]:
    """Every reply faq.gratitude gets wrong, with its reason."""
    lines = []
    for split, examples in splits.items():
        for ex in examples:
            verdict = detect_thanks(ex.text)
            if verdict.is_thanks != ex.label:
                kind = "FP" if verdict.is_thanks else "FN"
                lines.append(f"  {kind} {split:<9} [{ex.lang}] {verdict.reason:<36} {ex.text}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.thanks",
        description="Score faq.gratitude and the old keyword regex on the labelled replies.",
    )
    parser.add_argument("--errors", action="store_true", help="list misclassified replies")
    args = parser.parse_args(argv)
    splits = {name: load(path) for name, path in SPLITS.items()}
    print("\n".join(table(splits, {"gratitude": is_thanks, "old regex": old_is_thanks})))
    texts = [ex.text for examples in splits.values() for ex in examples]
    started = time.perf_counter()
    for _ in range(ROUNDS):
        for text in texts:
            detect_thanks(text)
    per_reply = (time.perf_counter() - started) / (ROUNDS * len(texts))
    print(f"\nfaq.gratitude: {per_reply * 1e6:.1f} µs per reply (mean of {ROUNDS} rounds)")
    if args.errors:
        wrong = errors(splits)
        print(f"\nfaq.gratitude misclassified: {len(wrong)}")
        print("\n".join(wrong))
    return 0


if __name__ == "__main__":
    sys.exit(main())
