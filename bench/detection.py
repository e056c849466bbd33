"""Benchmark the question detector against a labelled TSV file.

Usage::

    python -m bench.detection [TSV]

The TSV has a header line ``label<TAB>lang<TAB>text``; ``label`` is ``Q``
(asks for information/help) or ``N``, ``lang`` is ``en`` or ``nl``, and a
literal ``\\n`` in ``text`` stands for a line break.  The default file is
``tests/data/questions_labelled.tsv``.

Prints precision, recall and F1 overall and per language, the confusion
counts, and every misclassified message with the detector's reason.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from faq.detect import Detection, detect_question

DEFAULT_TSV = Path(__file__).resolve().parents[1] / "tests" / "data" / "questions_labelled.tsv"


@dataclass(frozen=True)
class Example:
    """One labelled message."""

    label: bool
    lang: str
    text: str


@dataclass(frozen=True)
class Scores:
    """Confusion counts and derived metrics for a set of examples."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        """Share of detected questions that are questions (1.0 if none detected)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Share of questions that were detected (1.0 if there are none)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def total(self) -> int:
        """Number of examples scored."""
        return self.tp + self.fp + self.fn + self.tn


def load_examples(path: Path) -> list[Example]:
    """Read a ``label<TAB>lang<TAB>text`` file (with header) into examples."""
    examples: list[Example] = []
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if header != ["label", "lang", "text"]:
            raise ValueError(f"{path}: unexpected header {header!r}")
        for lineno, raw in enumerate(handle, start=2):
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            label, lang, text = line.split("\t", 2)
            if label not in {"Q", "N"}:
                raise ValueError(f"{path}:{lineno}: bad label {label!r}")
            examples.append(Example(label == "Q", lang, text.replace("\\n", "\n")))
    return examples


def score(pairs: Iterable[tuple[Example, Detection]]) -> Scores:
    """Count true/false positives/negatives over (example, detection) pairs."""
    tp = fp = fn = tn = 0
    for example, detection in pairs:
        if detection.is_question and example.label:
            tp += 1
        elif detection.is_question:
            fp += 1
        elif example.label:
            fn += 1
        else:
            tn += 1
    return Scores(tp, fp, fn, tn)


def _row(name: str, s: Scores) -> str:
    return (
        f"{name:<8} {s.total:>5} {s.tp + s.fn:>4} {s.tp:>4} {s.fp:>4} {s.fn:>4} {s.tn:>4}"
        f" {s.precision:>9.3f} {s.recall:>7.3f} {s.f1:>6.3f}"
    )


def report(examples: Sequence[Example]) -> str:
    """Run the detector over *examples* and return the printable report."""
    results = [(ex, detect_question(ex.text)) for ex in examples]
    lines = [
        f"{'subset':<8} {'n':>5} {'Q':>4} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4}"
        f" {'precision':>9} {'recall':>7} {'F1':>6}",
        _row("all", score(results)),
    ]
    for lang in sorted({ex.lang for ex in examples}):
        lines.append(_row(lang, score(r for r in results if r[0].lang == lang)))
    wrong = [(ex, det) for ex, det in results if ex.label != det.is_question]
    lines.append("")
    lines.append(f"misclassified: {len(wrong)}")
    for ex, det in wrong:
        kind = "FN" if ex.label else "FP"
        text = ex.text.replace("\n", "\\n")
        lines.append(f"  {kind} [{ex.lang}] {det.reason:<40} {text}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.detection",
        description="Score faq.detect against a labelled TSV file.",
    )
    parser.add_argument("tsv", nargs="?", type=Path, default=DEFAULT_TSV, help="labelled TSV file")
    args = parser.parse_args(argv)
    print(report(load_examples(args.tsv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
