"""The Porter (1980) stemmer, as SQLite's FTS5 ``porter`` tokenizer applies it.

The search index stems every word it stores; the Python side of the matcher (term coverage,
document-frequency look-ups in ``fts5vocab``) has to see the same stems, or a query word and the
indexed word it matched look different. Written from the published algorithm (M.F. Porter, "An
algorithm for suffix stripping", 1980) and checked against SQLite's tokenizer by
``tests/faq/test_stemmer.py``.
"""

from __future__ import annotations

from functools import lru_cache

_VOWELS = frozenset("aeiou")

#: Words shorter than this, or longer than the last bound, pass through unstemmed (as in FTS5).
_MIN_LEN = 3
_MAX_LEN = 64


def _is_consonant(word: str, i: int) -> bool:
    ch = word[i]
    if ch in _VOWELS:
        return False
    if ch == "y":
        # "y" is a vowel after a consonant ("happy"), a consonant at the start or after a vowel.
        return i == 0 or not _is_consonant(word, i - 1)
    return True


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]: the number of vowel-consonant sequences."""
    m = 0
    previous_vowel = False
    for i in range(len(stem)):
        consonant = _is_consonant(stem, i)
        if consonant and previous_vowel:
            m += 1
        previous_vowel = not consonant
    return m


def _has_vowel(stem: str) -> bool:
    return any(not _is_consonant(stem, i) for i in range(len(stem)))


def _double_consonant(stem: str) -> bool:
    return len(stem) >= 2 and stem[-1] == stem[-2] and _is_consonant(stem, len(stem) - 1)


def _cvc(stem: str) -> bool:
    """Ends consonant-vowel-consonant, the last not w, x or y ("hop", not "snow")."""
    n = len(stem)
    return (
        n >= 3
        and _is_consonant(stem, n - 3)
        and not _is_consonant(stem, n - 2)
        and _is_consonant(stem, n - 1)
        and stem[-1] not in "wxy"
    )


def _step1a(w: str) -> str:
    if w.endswith("sses"):
        return w[:-2]
    if w.endswith("ies"):
        return w[:-2]
    if w.endswith("ss"):
        return w
    if w.endswith("s"):
        return w[:-1]
    return w


def _step1b(w: str) -> str:
    if w.endswith("eed"):
        return w[:-1] if _measure(w[:-3]) > 0 else w
    for suffix in ("ed", "ing"):
        if w.endswith(suffix):
            stem = w[: -len(suffix)]
            if not _has_vowel(stem):
                return w
            if stem.endswith(("at", "bl", "iz")):
                return stem + "e"
            if _double_consonant(stem) and stem[-1] not in "lsz":
                return stem[:-1]
            if _measure(stem) == 1 and _cvc(stem):
                return stem + "e"
            return stem
    return w


def _step1c(w: str) -> str:
    if w.endswith("y") and _has_vowel(w[:-1]):
        return w[:-1] + "i"
    return w


# Longest suffix first within each group: only the first suffix that ends the word is tried.
_STEP2 = (
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("logi", "log"),
)
_STEP3 = (
    ("icate", "ic"),
    ("ative", ""),
    ("alize", "al"),
    ("iciti", "ic"),
    ("ical", "ic"),
    ("ful", ""),
    ("ness", ""),
)
_STEP4 = (
    "al",
    "ance",
    "ence",
    "er",
    "ic",
    "able",
    "ible",
    "ant",
    "ement",
    "ment",
    "ent",
    "ion",
    "ou",
    "ism",
    "ate",
    "iti",
    "ous",
    "ive",
    "ize",
)


def _replace(w: str, rules: tuple[tuple[str, str], ...], min_measure: int) -> str:
    matching = [(s, r) for s, r in rules if w.endswith(s)]
    if not matching:
        return w
    suffix, replacement = max(matching, key=lambda sr: len(sr[0]))
    stem = w[: -len(suffix)]
    return stem + replacement if _measure(stem) > min_measure else w


def _step4(w: str) -> str:
    matching = [s for s in _STEP4 if w.endswith(s)]
    if not matching:
        return w
    suffix = max(matching, key=len)
    stem = w[: -len(suffix)]
    if _measure(stem) <= 1:
        return w
    if suffix == "ion" and not stem.endswith(("s", "t")):
        return w
    return stem


def _step5(w: str) -> str:
    if w.endswith("e"):
        stem = w[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _cvc(stem)):
            w = stem
    if w.endswith("ll") and _measure(w) > 1:
        w = w[:-1]
    return w


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Porter stem of a lowercase word (as FTS5's ``porter`` tokenizer would index it)."""
    if word.isascii():
        return _stem_ascii(word)
    # FTS5 stems UTF-8 bytes, every byte outside a-z counting as a consonant: work on one
    # character per byte so that "straße" loses its "e" exactly as in the index.
    return _stem_ascii(word.encode().decode("latin-1")).encode("latin-1").decode(errors="replace")


def _stem_ascii(word: str) -> str:
    if not _MIN_LEN <= len(word) <= _MAX_LEN:
        return word
    w = _step1a(word)
    w = _step1b(w)
    w = _step1c(w)
    w = _replace(w, _STEP2, 0)
    w = _replace(w, _STEP3, 0)
    w = _step4(w)
    return _step5(w)
