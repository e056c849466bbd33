"""Which language a chat question is in, cheaply: Dutch, English, or not known.

Semantic matching needs to know when a question is in a language its sentence-embedding model
was not trained on (all-MiniLM-L6-v2 is English-only: a Dutch question against English threads
ranks worse by cosine than by plain BM25). Chat questions are short, so the detector counts
function words, which nearly every sentence has and which differ between the two languages;
words both languages use ("in", "is", "was", "over", "me") count for neither. A few Dutch
spellings English never has ("ij", "oe", "aa" inside a word; "-tje"; "sch" at the start) break
ties in texts with no function word. It takes microseconds and needs no data files.
"""

from __future__ import annotations

import re
from typing import Literal

from faq.embedding import KNOWN_MODELS
from faq.normalize import clean

Language = Literal["nl", "en"]

_DUTCH_TEXT = """
    de het een en of op aan te van voor met bij als om dat die dit deze er zijn ben waren
    heb heeft hebben ik je jij jou jouw u uw wij ze zij hij mijn ons onze hoe wat waar wanneer
    waarom wie welke welk kan kun kunt kunnen moet moeten mag mogen weet weten iemand iets
    niet geen wel ook nog maar dan dus zo mij naar uit tot nu al alle veel meer want toch
    eens graag alvast hallo hoi mensen jullie zou zouden wil wilt willen wordt worden word
    krijg krijgt krijgen doe doet doen ga gaat gaan heel echt waarvoor hoeveel hoelang
    daar hier nodig zelf terug vraag vragen bedankt dank alstublieft svp iedereen ergens
    omdat wanneer welke hun hen haar zich zelfs sinds tussen onder tegen zonder binnen
"""
_ENGLISH_TEXT = """
    the a an and or but if of to on at by for with from as into about after before are
    were be been being am do does did doing have has having will would shall should can
    could may might must i my we our us you your he him his she her it its they them their
    this that these those there what which who whom whose when where why how any some
    anyone someone know please thanks thank hi hello hey guys so just also too very really
    get got getting need needs want way not no yes both each such than then again out up
    down off under above below between through during until while because let ok okay
    anything something everything im ive youre dont doesnt didnt isnt cant wont
"""
#: Dutch function words and chat filler that are not English words too.
DUTCH_WORDS: frozenset[str] = frozenset(_DUTCH_TEXT.split())
#: English function words and chat filler that are not Dutch words too.
ENGLISH_WORDS: frozenset[str] = frozenset(_ENGLISH_TEXT.split())
# Words spelled the same in both languages carry no evidence either way.
_SHARED = DUTCH_WORDS & ENGLISH_WORDS
_DUTCH_ONLY = DUTCH_WORDS - _SHARED
_ENGLISH_ONLY = ENGLISH_WORDS - _SHARED
#: Letter patterns common in Dutch words and rare in English ones ("huurtoeslag",
#: "rijbewijs", "gemeentehuis", "kindje", "schrijven").
_DUTCH_SPELLING = re.compile(r"ij|oe[^s]|aa|uu|tje\b|^sch")
#: At most this many words are looked at: enough to decide, bounded for any message.
MAX_WORDS = 64


def detect(text: str) -> Language | None:
    """``"nl"`` or ``"en"`` when the text's words say so, ``None`` when they do not (no
    function words either way, or as many of each)."""
    words = clean(text).split()[:MAX_WORDS]
    dutch = sum(w in _DUTCH_ONLY for w in words)
    english = sum(w in _ENGLISH_ONLY for w in words)
    if dutch == english:
        # No function words (or a tie): Dutch spellings decide, at least two of them.
        spelled = sum(bool(_DUTCH_SPELLING.search(w)) for w in words if len(w) > 3)
        if dutch == 0 and spelled >= 2:
            return "nl"
        return None
    return "nl" if dutch > english else "en"


def outside(languages: frozenset[str] | None, text: str) -> bool:
    """Whether ``text`` is in a language a model that knows ``languages`` was not trained on
    (``None``: the model's languages are not known, or it knows many; never outside)."""
    if languages is None:
        return False
    language = detect(text)
    return language is not None and language not in languages


def model_languages(model_id: str) -> frozenset[str] | None:
    """The languages of the model ``model_id`` (``<name>:<digest>``) from its
    :data:`faq.embedding.KNOWN_MODELS` entry; ``None`` when it knows many or is not listed."""
    known = KNOWN_MODELS.get(model_id.split(":", 1)[0])
    return known.languages if known is not None else None
