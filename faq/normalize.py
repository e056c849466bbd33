"""Text normalisation for matching.

``clean`` keeps the words a person wrote (casefolded, accents, URLs, mentions, emoji and markup
removed); ``search_terms`` further maps synonyms to one canonical term, resolves English
contractions and possessives, drops English and Dutch stop words, and is used for retrieval
only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"<[@#][!&]?\d+>|<a?:\w+:\d+>|(?<!\w)@\w+")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
# Bidi controls and zero-width characters are invisible and only ever used to disguise text.
_INVISIBLE = dict.fromkeys(
    [
        0x200B,
        0x200C,
        0x200D,
        0x200E,
        0x200F,
        0x2060,
        0xFEFF,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
)

# Function words and chat filler only: words like "all", "only" or "more" look empty but decide
# between similar questions ("delete all my mail"), and BM25's IDF already discounts them.
_STOP_WORDS_TEXT = """
a an the and or but if of to in on at by for with from as into about over after before
is are was were be been being am do does did doing have has had having will would shall
should can could may might must i me my we our us you your he him his she her it its
they them their this that these those there here what which who whom whose when where
why how any some anyone anybody someone somebody know knows please thanks thank hi hello
hey guys so just also too very really get got getting need needs want wants way does not
no yes
both each few such than then once again further nor out up down off under above below
between through during until while because let lets ok okay pls plz thx regards dear folks
everyone everybody ask asking asked tell anything something everything
im ive youre dont doesnt didnt isnt arent wasnt cant wont wouldnt shouldnt couldnt
de het een en of in op aan te van voor met bij als om dat die dit deze er is zijn
ben was waren heb heeft hebben had ik je jij u we wij ze zij hij het mijn jouw uw ons
onze hoe wat waar wanneer waarom wie welke welk kan kun kunnen moet moeten mag mogen
weet iemand iets niet geen wel ook nog maar dan dus zo
me mij m'n mn z'n zn naar uit over door tot nu al alle veel meer want toch even eens
graag alvast hallo hoi mensen jullie zou zouden wil willen wordt worden word
"""
STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS_TEXT.split())

#: Built-in synonym groups; the first term of each group is the canonical one.
DEFAULT_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("bsn", "burgerservicenummer", "citizen service number", "sofinummer", "sofi number"),
    ("allowance", "toeslag", "toeslagen", "benefit"),
    ("gemeente", "municipality", "city hall", "town hall", "gemeentehuis"),
    ("register", "registration", "inschrijving", "inschrijven", "registreren"),
    ("health insurance", "zorgverzekering", "healthcare insurance"),
    ("tax return", "aangifte", "belastingaangifte", "income tax return"),
    ("tax office", "belastingdienst", "tax authority", "tax authorities"),
    ("gp", "huisarts", "general practitioner", "family doctor"),
    ("driving licence", "driving license", "rijbewijs", "drivers license"),
    ("residence permit", "verblijfsvergunning", "verblijfsdocument"),
    ("rent", "huur"),
    ("landlord", "verhuurder"),
    ("unemployment", "ww", "werkloosheid"),
    ("pension", "aow", "pensioen"),
)


#: Only this many characters of a text are normalised (Telegram's whole limit, more than
#: Discord's): matching and indexing cost stays bounded whatever a member pastes.
MAX_TEXT_CHARS = 4096
#: A "word" longer than this is not one (a pasted hash, a key held down): search terms drop it.
MAX_TERM_CHARS = 40
#: Characters normalised at a time by :func:`_nfkc_head`.
_NFKC_PIECE = 512


def _nfkc_head(text: str, limit: int) -> str:
    """The first ``limit`` characters of NFKC ``text``, normalised a piece at a time: one
    character can expand to eighteen (U+FDFA), so normalising all of it could cost 18 times
    what is kept. (A piece boundary can leave a letter and its accent uncomposed; ``clean``
    decomposes and drops accents anyway.)"""
    out: list[str] = []
    size = 0
    for start in range(0, min(len(text), limit), _NFKC_PIECE):
        piece = unicodedata.normalize("NFKC", text[start : start + _NFKC_PIECE])
        out.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return "".join(out)[:limit]


def clean(text: str) -> str:
    """Casefolded words of ``text`` (its first :data:`MAX_TEXT_CHARS` characters) joined by
    single spaces, without accents, URLs, mentions, emoji or markup."""
    text = _nfkc_head(text, MAX_TEXT_CHARS).translate(_INVISIBLE)
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_WORD.findall(text)).replace("’", "'")


def strip_invisible(text: str) -> str:
    """``text`` without bidi controls and zero-width characters."""
    return text.translate(_INVISIBLE)


class Synonyms:
    """Maps phrases to canonical terms (longest phrase first)."""

    def __init__(self, groups: Iterable[Iterable[str]] = DEFAULT_SYNONYMS) -> None:
        self._map: dict[tuple[str, ...], str] = {}
        for group in groups:
            terms = [clean(t) for t in group if clean(t)]
            if not terms:
                continue
            canonical = terms[0]
            for term in terms:
                self._map[tuple(term.split())] = canonical
        self._longest = max((len(k) for k in self._map), default=1)

    def extended(self, groups: Iterable[Iterable[str]]) -> Synonyms:
        """A copy with more groups (a community's own list)."""
        merged = Synonyms(())
        merged._map = dict(self._map)
        extra = Synonyms(groups)
        merged._map.update(extra._map)
        merged._longest = max(self._longest, extra._longest)
        return merged

    def as_mapping(self) -> Mapping[tuple[str, ...], str]:
        """Phrase (as a word tuple) to canonical term."""
        return self._map

    def apply(self, words: list[str]) -> list[str]:
        """Replace every known phrase in ``words`` with its canonical term."""
        out: list[str] = []
        i = 0
        while i < len(words):
            for size in range(min(self._longest, len(words) - i), 0, -1):
                canonical = self._map.get(tuple(words[i : i + size]))
                if canonical is not None:
                    out.extend(canonical.split())
                    i += size
                    break
            else:
                out.append(words[i])
                i += 1
        return out


DEFAULT = Synonyms()


#: Endings of English contractions; the word before them is what carries meaning ("google's"
#: -> "google"). ``n't`` words are negated auxiliaries, all stop words, and are dropped.
_CONTRACTION_TAILS = frozenset({"s", "d", "ll", "re", "ve", "m"})


def _split_apostrophe(word: str) -> list[str]:
    # The index tokenizer splits at apostrophes, so a term with one would be searched as two
    # words: resolve contractions and possessives here, keep other parts ("o'clock") apart.
    if "'" not in word or word in STOP_WORDS:
        return [word]
    head, tail = word.split("'", 1)
    if tail == "t":
        return []
    if tail in _CONTRACTION_TAILS:
        return [head]
    return [head, tail]


def search_terms(text: str, synonyms: Synonyms = DEFAULT) -> list[str]:
    """Content words of ``text`` for retrieval: cleaned, synonyms mapped, contractions and
    possessives resolved, stop words and words over :data:`MAX_TERM_CHARS` dropped,
    duplicates removed (first occurrence kept)."""
    words = synonyms.apply(clean(text).split())
    seen: dict[str, None] = {}
    for word in words:
        for part in _split_apostrophe(word):
            if is_term(part):
                seen.setdefault(part, None)
    return list(seen)


def is_term(word: str) -> bool:
    """Whether a cleaned word is kept as a search term: not a stop word, not a lone letter,
    not longer than :data:`MAX_TERM_CHARS`."""
    return (
        word not in STOP_WORDS and (len(word) > 1 or word.isdigit()) and len(word) <= MAX_TERM_CHARS
    )


def search_text(parts: Iterable[str], synonyms: Synonyms = DEFAULT) -> str:
    """The indexed form of a document: each part's terms on its own line."""
    return "\n".join(" ".join(search_terms(p, synonyms)) for p in parts if p.strip())
