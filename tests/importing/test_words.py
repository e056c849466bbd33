"""The import's fast judging gives exactly the verdicts of faq.detect and faq.normalize."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.import_speed import generate
from bot.importing import words
from bot.importing.telegram_export import read
from faq import detect
from faq.detect import detect_question
from faq.index_text import thread_search_text
from faq.normalize import DEFAULT, Synonyms, search_terms
from tests.importing.exports import CHATTER, QUESTIONS, mixed_history, tg_chat, write

TESTS = Path(__file__).parents[1]


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def corpus(tmp_path: Path) -> list[str]:
    """Chat texts from every labelled set the project has, the detector's own test cases,
    the import tests' exports and the benchmark's synthetic export."""
    texts = list(QUESTIONS + CHATTER)
    for line in (TESTS / "data" / "questions_labelled.tsv").read_text("utf-8").splitlines()[1:]:
        texts.append(line.split("\t", 2)[2])
    for name in ("thanks_dev.jsonl", "thanks_heldout.jsonl"):
        for line in (TESTS / "faq" / "data" / name).read_text("utf-8").splitlines():
            texts.append(json.loads(line)["text"])
    texts += _strings(json.loads((TESTS / "data" / "dutch_probe.json").read_text("utf-8")))
    tree = ast.parse((TESTS / "faq" / "test_detect.py").read_text("utf-8"))
    texts += [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    export = tmp_path / "bench.json"
    generate(export, 300)
    texts += [m.text for m in read(export)]
    texts += [m.text for m in read(write(tmp_path / "mixed.json", tg_chat(mixed_history(300))))]
    return sorted(set(texts))


def variants(text: str) -> list[str]:
    """The text and what chat does to texts like it: no question mark, other case, a
    greeting or emoji around it, curly apostrophes, markup, line breaks, quotes, mentions,
    links, commands, accents, cut short, very long."""
    plain = text.replace("?", "").replace("？", "").replace("¿", "")
    return [
        text,
        plain,
        text.lower(),
        text.upper(),
        plain.lower(),
        "hi all, " + plain,
        "Good morning! " + text,
        text + " 🙂",
        "🙂" + plain,
        text.replace("'", "’"),
        plain.replace("'", "’"),
        f"**{text}**",
        f"_{plain}_",
        plain.replace(" ", "\n"),
        text.replace(" ", "  \t"),
        "> someone said this\n" + plain,
        "@bob " + plain,
        "<@123> " + text,
        text + " https://www.example.nl/a?b=1",
        plain + " www.example.nl/?x",
        "/ask " + text,
        "é" + plain,
        plain + "➀",
        plain.replace("o", "ö"),
        text[: len(text) // 2],
        plain[: len(plain) // 3],
        "? " + plain,
        plain + " ??",
        plain + " (?)",
        ", ".join([plain, "right"]),
        (plain + " ") * 300,
    ]


def test_asks_is_detect_question(tmp_path: Path) -> None:
    texts = [v for t in corpus(tmp_path) for v in variants(t)]
    assert len(texts) > 20_000
    differ = [t for t in texts if words.asks(t) != detect_question(t).is_question]
    assert differ == []
    # Both sides of the fast paths are taken: many texts are not judged in full.
    skipped = sum(
        1 for t in texts if "?" not in t and words.CUE_WORDS.isdisjoint(t.lower().split())
    )
    assert skipped > 1000


def test_a_message_without_cues_is_not_judged_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    def judged(text: str) -> detect.Detection:
        raise AssertionError(f"judged in full: {text}")

    monkeypatch.setattr(words, "detect_question", judged)
    for text in ("good morning all", "thanks, that worked!", "same here, bunq helped me"):
        assert not words.asks(text)
    assert words.asks("How do I register my bike against theft in district 5?")
    with pytest.raises(AssertionError, match="judged in full"):
        words.asks("Is it possible to register online")


def test_every_request_cue_has_its_words() -> None:
    # A request cue added to faq.detect needs its words here, or the fast path would miss it.
    assert set(words.REQUEST_WORDS) == {key for key, _, _ in detect._REQUEST_SPECS}


@pytest.mark.parametrize(
    "synonyms",
    [
        DEFAULT,
        DEFAULT.extended(
            [["gp", "huisarts", "family doctor"], ["bsn", "sofi nummer"], ["o'clock", "oclock"]]
        ),
    ],
    ids=["built-in", "community"],
)
def test_terms_are_search_terms(tmp_path: Path, synonyms: Synonyms) -> None:
    texts = [v for t in corpus(tmp_path) for v in variants(t)[:20]]
    texts += ["", "   ", "family doctor family", "sofi nummer?", "I'm here, it's Google's"]
    texts += ["at 9 oclock", "sofi nummer sofi", "the family doctor's bsn", "OCLOCK www.x.nl"]
    for text in texts:
        assert words.terms(text, synonyms) == search_terms(text, synonyms), text
        assert words.search_text(text, synonyms) == thread_search_text(text, synonyms), text
