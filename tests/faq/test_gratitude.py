"""Thank-you detection (faq.gratitude): the labelled replies, the hard cases, and the asker's
reply through the console harness."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bench.thanks import OLD_THANKS, SPLITS, Example, load, score
from faq.gratitude import MAX_CHARS, Gratitude, detect_thanks, is_thanks
from storage.models import Thread
from tests.conftest import Harness

# --- labelled replies -----------------------------------------------------------


def _judged(examples: list[Example], lang: str | None = None) -> list[tuple[Example, bool]]:
    return [(ex, is_thanks(ex.text)) for ex in examples if lang is None or ex.lang == lang]


def test_labelled_sets_are_balanced_and_disjoint() -> None:
    dev, held_out = load(SPLITS["dev"]), load(SPLITS["held-out"])
    assert len(dev) + len(held_out) >= 80
    for examples in (dev, held_out):
        for lang in ("en", "nl"):
            rows = [ex for ex in examples if ex.lang == lang]
            positives = sum(ex.label for ex in rows)
            assert len(rows) >= 25 and 0.4 <= positives / len(rows) <= 0.6, lang
    assert not {ex.text.casefold() for ex in dev} & {ex.text.casefold() for ex in held_out}


def test_held_out_precision_and_recall_floor() -> None:
    # The held-out replies were written before the rules and never tuned on. On the first run
    # all 64 were right; the floors leave room for the same-author optimism of that figure.
    held_out = load(SPLITS["held-out"])
    overall = score(_judged(held_out))
    assert overall.precision >= 0.95, overall
    assert overall.recall >= 0.90, overall
    for lang in ("en", "nl"):
        s = score(_judged(held_out, lang))
        assert s.precision >= 0.90, (lang, s)
        assert s.recall >= 0.85, (lang, s)


def test_dev_set_is_all_right() -> None:
    wrong = [ex.text for ex, got in _judged(load(SPLITS["dev"])) if got != ex.label]
    assert wrong == []


def test_old_keyword_regex_falls_below_the_floor() -> None:
    held_out = load(SPLITS["held-out"])
    old = score((ex, OLD_THANKS.search(ex.text) is not None) for ex in held_out)
    assert old.precision < 0.7 and old.recall < 0.85, old


# --- hard cases -------------------------------------------------------------------

# Every one of these contains a word the old keyword regex fired on.
MUST_NOT_OLD_FIRED = [
    "no thanks",
    "still not solved",
    "top floor?",
    "thanks but it still doesn't work",
    "still not solved, thanks anyway?",
    "thanks? did anyone get a reply from the gemeente?",
    "thanks in advance!",
    "Thank you, but I'm not eligible for it",
    "nee dank je",
    "bedankt, maar het werkt nog steeds niet",
    "alvast bedankt!",
    "toch bedankt",
    "dank je, maar wat als ik nog geen BSN heb?",
    "top 3 supermarkten in Utrecht?",
]
MUST_NOT_OTHER = [
    "niet opgelost",
    "nog steeds niet",
    "is it solved now?",
    "didn't work, same error",
    "het lukt nog steeds niet",
    "I would appreciate any other ideas",
    "ok, I'll try tomorrow and let you know if it works",
    "> Thanks, that worked!\nnot for me, still getting the error",
    "Thanks a lot 🙄",
    "",
]
MUST = [
    "Thanks, that worked!",
    "thx!!",
    "ty",
    "Cheers mate",
    "Much appreciated 🙏",
    "that did the trick",
    "Solved, it was my VPN",
    "Top!",
    "top",
    "dankjewel 🙏",
    "Dank u wel",
    "dank je wel, het is gelukt",
    "opgelost",
    "werkt nu, merci",
    "🙏",
    "Took ages but it worked, thanks",
    "**Thanks!** <@123>",
]


@pytest.mark.parametrize("text", MUST_NOT_OLD_FIRED)
def test_must_not_where_the_old_regex_fired(text: str) -> None:
    assert OLD_THANKS.search(text), "the old rule marked this solved"
    assert not is_thanks(text), detect_thanks(text)


@pytest.mark.parametrize("text", MUST_NOT_OTHER)
def test_must_not(text: str) -> None:
    assert not is_thanks(text), detect_thanks(text)


@pytest.mark.parametrize("text", MUST)
def test_must(text: str) -> None:
    assert is_thanks(text), detect_thanks(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no thanks", Gratitude(False, "declined 'no thanks'")),
        ("still not solved", Gratitude(False, "not solved 'still'")),
        ("niet opgelost", Gratitude(False, "not solved 'opgelost'")),
        ("alvast bedankt", Gratitude(False, "thanks that does not close 'alvast'")),
        ("thanks? anyone?", Gratitude(False, "thanks in a question")),
        ("Thanks, but that's only for EU citizens", Gratitude(False, "caveat 'but'")),
        ("top floor?", Gratitude(False, "no closing signal")),
        ("Thanks, that worked!", Gratitude(True, "thanks 'thanks'")),
        ("het is gelukt", Gratitude(True, "solved 'gelukt'")),
        ("Top!", Gratitude(True, "standalone 'top'")),
    ],
)
def test_reasons(text: str, expected: Gratitude) -> None:
    assert detect_thanks(text) == expected


def test_gratitude_is_frozen() -> None:
    result = detect_thanks("thanks!")
    with pytest.raises(AttributeError):
        result.is_thanks = False  # type: ignore[misc]


def test_only_the_start_of_a_long_reply_is_judged() -> None:
    assert is_thanks("thanks " + "x" * 1_000_000)
    assert not is_thanks("x" * MAX_CHARS + " thanks")


def test_hostile_input_stays_fast() -> None:
    for text in ("no thanks " * 100_000, "still " * 200_000, "? " * 300_000, "🙏" * 100_000):
        started = time.perf_counter()
        detect_thanks(text)
        assert time.perf_counter() - started < 0.1, text[:20]


# --- the asker's reply through the console harness ------------------------------


async def _status(copss: Harness) -> str | None:
    async with copss.db.session() as s:
        return await s.scalar(select(Thread.status))


async def test_asker_reply_solves_only_on_a_real_thank_you(copss: Harness) -> None:
    q = await copss.say("Does anyone know where to get a parking permit in Haarlem?", "alice")
    a = await copss.say("Apply online on the gemeente Haarlem site under Parkeren.", "bob", q)
    assert await _status(copss) == "answered"

    await copss.say("still not solved, thanks anyway?", "alice", a)
    assert await _status(copss) == "answered"
    await copss.say("no thanks", "alice", a)
    assert await _status(copss) == "answered"
    await copss.say("top floor?", "alice", q)
    assert await _status(copss) == "answered"
    await copss.say("Thanks, that worked!", "carol", a)  # not the asker
    assert await _status(copss) == "answered"

    await copss.say("Thanks, that worked!", "alice", a)
    assert await _status(copss) == "solved"
