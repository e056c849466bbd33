"""Judging a history's messages quickly, with the verdicts live capture would give.

An import judges every message of a history: is it a question (:func:`faq.detect.
detect_question`), and which words does it share with recent questions
(:func:`faq.normalize.search_terms`). Both are written for one message at a time; here they
get fast paths that give the same results, checked against the originals by
``tests/importing/test_words.py``:

- :func:`asks`: ``detect_question`` finds a question only by a question mark or by a cue
  word (an interrogative opener such as "how" or "kan", a request such as "anyone know" or
  "graag advies", a tag such as ", right"); a message with neither is not a question, and
  most chat is such. Its cue words are found by one search of the lower-cased text.
- :func:`terms`: ``search_terms`` without the Unicode normalisation that ASCII text (most
  text) does not need, and with synonym look-ups only at words that start a synonym phrase.
"""

from __future__ import annotations

import re
from typing import Final
from weakref import WeakKeyDictionary

from faq import detect
from faq.detect import detect_question
from faq.normalize import (
    _MENTION,
    _URL,
    _WORD,
    DEFAULT,
    MAX_TEXT_CHARS,
    Synonyms,
    _split_apostrophe,
    clean,
    is_term,
)


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


#: For each request cue of :mod:`faq.detect` (by its key), words one of which every match
#: of its pattern holds as a whole word (bounded by anything but an ASCII letter or digit).
REQUEST_WORDS: Final[dict[str, frozenset[str]]] = {
    key: _set(words)
    for key, words in {
        "anyone know": "know knows",
        "can someone": "can could would will",
        "someone please": "please pls plz",
        "any advice": "any",
        "i wonder": "wonder wondering",
        "looking for advice": "looking searching",
        "need help": "need needs needed want could",
        "help needed": "help",
        "please advise": "please pls plz",
        "recommendations welcome": "welcome appreciated wanted needed",
        "tips please": "please pls plz",
        "thanks in advance": "advance tia",
        "not sure how": "how where whether if what which who when why",
        "trying to understand": "trying struggling",
        "confused about": "confused lost",
        "question": "question",
        "weet iemand": "iemand",
        "iemand ervaring met": "iemand",
        "ik vraag me af": "af",
        "wie weet": "wie",
        "graag advies": "graag welkom gevraagd gezocht nodig gewenst",
        "alvast bedankt": "alvast",
        "ik weet niet hoe": "niet geen",
        "ik zoek advies": "zoek zoeken",
        "vraagje": "vraagje vraag",
    }.items()
}
#: Words the interrogative-phrase and tag-question patterns need ("isn" of "isn't it").
PHRASE_WORDS: Final = _set(
    "how what where when why which hoe wat waar wanneer waarom welke hoeveel wie "
    "right correct toch klopt niet not isn"
)


def _opener_words() -> frozenset[str]:
    # Every word _opener can accept as a sentence's first: taken from detect's own lists, so
    # a word added there is a cue here too. "don't" is found as "don" (the apostrophe
    # bounds it).
    words = (
        detect._EN_WH
        | detect._EN_AUX_PERSON_ONLY
        | detect._EN_AUX_FULL
        | detect._EN_ANYONE
        | detect._NL_WH
        | detect._NL_VERB_OPENERS
        | {"am", "iemand"}
    )
    return frozenset(w.split("'")[0] for w in words)


CUE_WORDS: Final = _opener_words() | PHRASE_WORDS | frozenset().union(*REQUEST_WORDS.values())
# Detection's cleaning only ever puts spaces where it removes something, so a word it judges
# is, in the raw text, a whole run of ASCII letters and digits (or part of a longer run of
# other letters, which a search of ASCII runs also finds).
_ASCII_RUN: Final = re.compile(r"[a-z0-9]+")


def asks(text: str) -> bool:
    """``detect_question(text).is_question``, without judging a message that has neither a
    question mark nor a cue word, and in short for plain text with a question mark."""
    if "?" not in text and "？" not in text and "¿" not in text:
        if CUE_WORDS.isdisjoint(_ASCII_RUN.findall(text.lower())):
            return False
    elif _plain_question(text):
        return True
    return detect_question(text).is_question


# What detection's cleaning removes or changes (links, mentions, Discord tokens, emoji
# shortcodes, markup, quoted lines, line breaks) starts with one of these.
_NOT_PLAIN: Final = re.compile(r"[<@:*_`~>|\n\r]|www\.", re.IGNORECASE)


def _plain_question(text: str) -> bool:
    # A one-line ASCII text with none of _NOT_PLAIN is left as it is by detection's cleaning,
    # whitespace aside; for it, detect_question says "question mark" in these steps. Any
    # other text (and any other outcome) is judged whole by the caller.
    if len(text) > detect.MAX_CHARS or not text.isascii() or _NOT_PLAIN.search(text):
        return False
    if detect._COMMAND_RE.match(text):
        return False
    cleaned = " ".join(text.split())
    if len(cleaned) < _MIN_CHARS or len(detect._words(cleaned)) < _MIN_WORDS:
        return False
    return detect._has_question_mark(cleaned)


#: detect_question's defaults, as the builder calls it.
_MIN_CHARS: Final = 12
_MIN_WORDS: Final = 3


def clean_words(text: str) -> list[str]:
    """The words of :func:`faq.normalize.clean`; for ASCII text, whose NFKC and NFKD forms
    are itself, without those normalisations."""
    if not text.isascii():
        return clean(text).split()
    text = text[:MAX_TEXT_CHARS]
    low = text.lower()
    if "://" in text or "www." in low or "<" in text or "@" in text:
        # A link or a mention may be there (each pattern needs one of these to match).
        low = _MENTION.sub(" ", _URL.sub(" ", text)).lower()
    return _WORD.findall(low)


# The first words of each synonym set's phrases: only there can a phrase start.
_FIRSTS: WeakKeyDictionary[Synonyms, tuple[frozenset[str], int]] = WeakKeyDictionary()


def _firsts(synonyms: Synonyms) -> tuple[frozenset[str], int]:
    found = _FIRSTS.get(synonyms)
    if found is None:
        phrases = synonyms.as_mapping()
        found = (
            frozenset(p[0] for p in phrases if p),
            max((len(p) for p in phrases), default=1),
        )
        _FIRSTS[synonyms] = found
    return found


def apply_synonyms(words: list[str], synonyms: Synonyms) -> list[str]:
    """:meth:`faq.normalize.Synonyms.apply`, looking up phrases only at words that start one."""
    firsts, longest = _firsts(synonyms)
    starts = [j for j, word in enumerate(words) if word in firsts]
    if not starts:
        return words
    phrases = synonyms.as_mapping()
    out: list[str] = []
    i, n = 0, len(words)
    for j in starts:
        if j < i:
            continue  # inside a phrase already replaced
        out.extend(words[i:j])
        for size in range(min(longest, n - j), 0, -1):
            canonical = phrases.get(tuple(words[j : j + size]))
            if canonical is not None:
                out.extend(canonical.split())
                i = j + size
                break
        else:
            out.append(words[j])
            i = j + 1
    out.extend(words[i:])
    return out


def terms(text: str, synonyms: Synonyms = DEFAULT) -> list[str]:
    """:func:`faq.normalize.search_terms`, by the fast paths above."""
    words = clean_words(text)
    firsts = _DEFAULT_FIRSTS if synonyms is DEFAULT else _firsts(synonyms)[0]
    if not firsts.isdisjoint(words):
        words = apply_synonyms(words, synonyms)
    if "'" not in "".join(words):
        # No apostrophe (clean leaves no other kind): no contraction or possessive to resolve.
        return list(dict.fromkeys(filter(is_term, words)))
    seen: dict[str, None] = {}
    for word in words:
        for part in _split_apostrophe(word) if "'" in word else (word,):
            if is_term(part):
                seen.setdefault(part, None)
    return list(seen)


_DEFAULT_FIRSTS: Final = _firsts(DEFAULT)[0]


def search_text(text: str, synonyms: Synonyms = DEFAULT) -> str:
    """:func:`faq.index_text.thread_search_text` of a question, by the fast paths above."""
    return " ".join(terms(text, synonyms)) if text.strip() else ""
