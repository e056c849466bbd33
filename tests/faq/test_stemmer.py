"""The Python Porter stemmer agrees with SQLite's FTS5 ``porter`` tokenizer."""

from __future__ import annotations

import re
import sqlite3

from faq.kb import starter_entries
from faq.normalize import clean
from storage.stemmer import stem

WORDS = """
caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled
sized hopping tanned falling hissing fizzed failing filing happy sky relational conditional
rational valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli
vietnamization predication operator feudalism decisiveness hopefulness callousness formaliti
sensitiviti sensibiliti triplicate formative formalize electriciti electrical hopeful goodness
revival allowance inference airliner gyroscopic adjustable defensible irritant replacement
adjustment dependent adoption homologou communism activate angulariti homologous effective
bowdlerize probate rate cease controll roll generalizations oscillators registering
registration municipality gemeente burgerservicenummer toeslagen unfriended strikethrough
straße naïve øresunds 2000qr 3days mp3s 10years yes ayes a ab abs les ing ed
"""


def _sqlite_stems(words: list[str]) -> dict[str, str]:
    con = sqlite3.connect(":memory:")
    con.execute(
        "CREATE VIRTUAL TABLE f USING fts5(t, tokenize = 'porter unicode61 remove_diacritics 0')"
    )
    con.execute("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'instance')")
    con.executemany("INSERT INTO f(rowid, t) VALUES (?, ?)", list(enumerate(words, 1)))
    by_row = dict(con.execute("SELECT doc, term FROM v"))
    con.close()
    return {w: by_row[i] for i, w in enumerate(words, 1)}


def test_stems_match_sqlite_porter() -> None:
    words = set(WORDS.split())
    for entry in starter_entries():
        for text in (entry.question, *entry.aliases, entry.answer):
            words.update(w for w in re.split(r"[^\w]+", clean(text)) if w)
    ordered = sorted(words)
    expected = _sqlite_stems(ordered)
    wrong = {w: (stem(w), expected[w]) for w in ordered if stem(w) != expected[w]}
    assert wrong == {}
