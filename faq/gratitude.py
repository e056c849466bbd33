"""Decide whether an asker's reply closes their question with a thank-you (English or Dutch).

The asker's reply under an answer marks the thread solved only when it really thanks for the
help or says the problem is solved. A bare keyword search gets this wrong in both directions
of meaning: "no thanks", "thanks but it still doesn't work", "still not solved", "alvast
bedankt", "top floor?" all contain a thank-you or "solved" word. This module holds the
rule-based judge: pure Python, no state, linear in the length of the message, and it only
looks at the first :data:`MAX_CHARS` characters.

The rules applied by :func:`detect_thanks`, in order:

1. Quoted lines (``> ...``) are someone else's words and are dropped when the reply has text
   of its own; URLs, mentions and markup go (:func:`faq.detect.clean_text`); the rest is
   casefolded and accents are removed. Sentences end at ``. ! ? ;``, line breaks and emoji;
   commas split a sentence into clauses.
2. A sarcasm marker (🙄, 😒, ``/s``) means no.
3. A failure means no: a negated "work/help/solve/fix" word ("doesn't work", "not solved",
   "werkt niet", "niet opgelost", "lukt nog steeds niet"), "still"/"nog steeds" followed by a
   negation or the same error, "no luck", "geen succes", "same error", "already tried",
   "al geprobeerd", "even worse".
4. A declined thank-you ("no thanks", "nee dank je") means no.
5. Closing signals are collected: a thank-you ("thanks", "thank you", "thx", "ty", "cheers",
   "much appreciated", "bedankt", "dank je wel", "dankjewel", "dank u", "merci", common typos);
   a solved statement ("that worked", "works now", "did the trick", "solved", "sorted",
   "opgelost", "het is gelukt", "werkt nu", "heeft geholpen"), unless it is conditional
   ("if it works", "hopelijk werkt het"); a standalone exclamation ("Top!", "Perfect!",
   "Super"), never "top floor?"; or a thank-you emoji (🙏 ✅ 👍) in a reply without a question.
   A thank-you or solved word inside a sentence that ends with "?" does not count ("thanks?
   did anyone ...", "is it solved?"): a reply that is itself a new question leaves the thread
   open. A thank-you that does not close ("thanks in advance", "thanks anyway", "thanks for
   trying", "alvast bedankt", "toch bedankt", "bedankt voor niks") does not count either.
6. Unless the reply also says the problem is solved ("took ages, but it worked", "opgelost,
   maar via een omweg"), a caveat after the thank-you ("thanks, but ...", "bedankt, maar ...",
   "unfortunately", "helaas") or a thank-you that does not close means no.

Each result carries a short ``reason`` so that misfires can be inspected (see
``bench/thanks.py``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final

from faq.detect import clean_text

__all__ = ["MAX_CHARS", "Gratitude", "detect_thanks", "is_thanks"]

#: Only this many characters of a reply are judged: a thank-you comes early, and the bound keeps
#: a pasted wall of text cheap.
MAX_CHARS: Final = 500


@dataclass(frozen=True)
class Gratitude:
    """Outcome of :func:`detect_thanks`.

    Attributes:
        is_thanks: ``True`` if the reply closes the question (thanks or "solved").
        reason: Short explanation, e.g. ``"thanks 'bedankt'"``, ``"solved 'worked'"``,
            ``"declined 'no thanks'"``, ``"not solved 'still'"``, ``"caveat 'but'"``,
            ``"thanks in a question"``, ``"thanks that does not close 'alvast'"`` or
            ``"no closing signal"``.
    """

    is_thanks: bool
    reason: str


# --------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# One-word thank-yous, including the usual typos and chat spellings.
_THANK_WORDS: Final = _set(
    """
    thanks thank thanx thnx thx thxx tnx thnks thks tks thnaks thansk thakns thaks
    thankyou thanku ty tyvm tysm cheers appreciated grateful thankful
    bedankt bedank dank dankje dankjewel dankjwl dankuwel danku dankjullie dankbaar
    merci mercikes mercie danke gracias
    """
)
# "thankss", "thaaanks", "bedanktt".
_THANK_RE: Final = re.compile(r"th+a+n+k+s+|than+x+|bedank+t+|dankje+|dankjewe+l+")
# "thank god" is an exclamation, not a thank-you to anyone in the chat.
_THANK_NOT_NEXT: Final = _set("god goodness heavens heaven lord fuck")
_APPRECIATE_NEXT: Final = _set("it that this the your you u ya all everything")
# "I'd appreciate", "would be appreciated", "any help appreciated": asking, not thanking.
_WOULD: Final = _set("would i'd id we'd will be any")

_DECLINE: Final = _set("no nah nope nee neen")
# Thank-yous that do not close: in advance, anyway, for trying, for nothing.
_PENDING_BEFORE: Final = _set("alvast voorbaat toch evengoed alsnog geval sowieso anyway anyways")
_PENDING_AFTER: Final = _set(
    "advance anyway anyways anyhow though trying nothing niks niets alvast voorbaat evengoed"
)

# Words of "it worked" and friends: a negation before (or, in Dutch, after) them is a failure.
_EN_SUCCESS: Final = _set(
    """
    work works worked working help helps helped helping helpful solve solves solved resolve
    resolved fix fixes fixed sort sorted succeed succeeded
    """
)
_NL_SUCCESS: Final = _set(
    """
    werkt werkte werken gewerkt helpt hielp helpen geholpen lukt lukte lukken gelukt opgelost
    oplossen gefixt gefixed
    """
)
_NEGATORS: Final = _set(
    """
    not no never nothing hardly cannot nor neither dont doesnt didnt isnt wasnt arent werent
    cant couldnt wont wouldnt hasnt havent hadnt aint
    niet geen nooit niks niets nergens nauwelijks nee
    """
)
_CONDITIONAL: Final = _set(
    """
    if when once whether until hopefully hope hoping would could might may should will
    als zodra hopelijk hoop mocht zou kan moet gaat
    """
)
# Who or what "worked": "it worked", "that helps", "het werkt", "dat hielp".
_SUCCESS_SUBJECTS: Final = _set(
    """
    it that this which everything all both finally it's its that's thats now
    het dat dit alles allebei eindelijk nu
    """
)
# "works now", "worked like a charm", "werkt weer".
_SUCCESS_NEXT: Final = _set(
    """
    now like perfectly fine great again thanks thx ty out it already nu weer prima perfect
    bedankt
    """
)
# "fixed price", "sorted by date": only these contexts make "fixed"/"sorted" a solved statement.
_STATE_BEFORE: Final = _set(
    "all it it's its is was got get that's thats problem issue already finally now"
)
_HELPFUL_BEFORE: Final = _set("very super so really most extremely incredibly too")
_NL_PERFECT_AUX: Final = _set("heeft hebben had is me het dat enorm echt goed")

# "still not", "still the same error", "nog steeds geen".
_STILL_BAD: Final = _NEGATORS | _set(
    """
    doesn't don't didn't can't isn't won't same getting stuck broken waiting error errors
    hetzelfde dezelfde zelfde fout foutmelding melding vast wachten wacht
    """
)
_SAME: Final = _set("same zelfde dezelfde hetzelfde")
_SAME_WHAT: Final = _set(
    "error errors problem issue message result thing fout foutmelding probleem melding resultaat"
)
_WORSE_BEFORE: Final = _set("even now only still nog alleen")

# "Top!", "Perfect.", "super" on their own; the fillers may stand beside them.
_STANDALONE: Final = _set(
    """
    top toppie topper super perfect perfecto great awesome geweldig fantastisch fantastic
    excellent brilliant wonderful amazing lovely
    """
)
_STANDALONE_FILLERS: Final = _set(
    "ah oh ooh wow echt super helemaal heel zo so really just hoor man joh mate dude nou ok oke "
    "okay gewoon absolutely dan"
)

_CAVEATS: Final = _set(
    "but however unfortunately sadly although though except helaas echter behalve jammer"
)
# Dutch "maar" and "alleen" are also particles ("probeer het maar"): a caveat only when they
# open a clause or follow the thank-you.
_CLAUSE_CAVEATS: Final = _set("maar alleen")

_THANKS_EMOJI: Final = ("🙏", "✅", "✔", "☑", "👍", "🙌")
_SARCASM_EMOJI: Final = ("🙄", "😒")
_SARCASM_TAG: Final = re.compile(r"(?<!\S)/s(?!\S)")

# Emoji end a sentence in chat ("thanks 🙏 any idea how long it takes?").
_EMOJI_SPLIT: Final = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff"
    "\ufe0e\ufe0f\u200d\u20e3\U000e0020-\U000e007f]+"
)
_TOKEN: Final = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[.!?;…]+|[,:]")
_QUOTE_LINE: Final = re.compile(r"^\s*>")


# --------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------


@dataclass
class _Sentence:
    """The words of one sentence, with the clause (comma-separated part) of each word."""

    words: list[str] = field(default_factory=list)
    clauses: list[int] = field(default_factory=list)
    question: bool = False
    exclaimed: bool = False

    def before(self, i: int, n: int) -> list[str]:
        """Up to *n* words before word *i* in the same clause, nearest last."""
        start = i
        while start > 0 and i - start < n and self.clauses[start - 1] == self.clauses[i]:
            start -= 1
        return self.words[start:i]

    def after(self, i: int, n: int) -> list[str]:
        """Up to *n* words after word *i* in the same clause."""
        end = i + 1
        while end < len(self.words) and end - i <= n and self.clauses[end] == self.clauses[i]:
            end += 1
        return self.words[i + 1 : end]

    def word(self, i: int) -> str:
        """Word *i*, or ``""`` outside the sentence."""
        return self.words[i] if 0 <= i < len(self.words) else ""


def _fold(text: str) -> str:
    """Casefold *text*, remove accents and unify apostrophes."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain.replace("’", "'").replace("‘", "'").replace("`", "'")


def _own_lines(text: str) -> list[str]:
    lines = [ln for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if ln.strip()]
    own = [ln for ln in lines if not _QUOTE_LINE.match(ln)]
    return own or lines


def _sentences(lines: list[str]) -> list[_Sentence]:
    out: list[_Sentence] = []
    for line in lines:
        for segment in _EMOJI_SPLIT.split(line):
            current = _Sentence()
            clause = 0
            for token in _TOKEN.findall(_fold(clean_text(segment))):
                if token in {",", ":"}:
                    clause += 1
                elif not token[0].isalnum():
                    current.question = "?" in token
                    current.exclaimed = not current.question
                    if current.words:
                        out.append(current)
                    current, clause = _Sentence(), 0
                else:
                    current.words.append(token)
                    current.clauses.append(clause)
            if current.words:
                out.append(current)
    return out


# --------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------


def _is_negator(word: str) -> bool:
    return word in _NEGATORS or word.endswith("n't")


def _thanks_length(s: _Sentence, i: int) -> int:
    """Number of words of the thank-you starting at word *i* (0 if there is none)."""
    w = s.words[i]
    nxt = s.word(i + 1)
    if w == "thank":
        if nxt in _THANK_NOT_NEXT:
            return 0
        return 2 if nxt in {"you", "u", "ya", "yo", "yall", "y'all"} else 1
    if w == "dank":
        return 2 if nxt in {"je", "u", "jullie", "jij"} else 1
    if w == "appreciate":
        return 2 if nxt in _APPRECIATE_NEXT else 0
    if w in _THANK_WORDS or _THANK_RE.fullmatch(w):
        return 1
    return 0


def _thanks_kind(s: _Sentence, i: int, length: int) -> tuple[str, str]:
    """How the thank-you at word *i* (``length`` words long) is meant, and the word that says
    so: ``declined``, ``pending`` (does not close), ``question`` or ``closing``."""
    prev = s.word(i - 1)
    if prev in _DECLINE:
        return "declined", prev
    if s.words[i] in {"appreciate", "appreciated"}:
        would = next((w for w in s.before(i, 3) if w in _WOULD), None)
        if would is not None:
            return "pending", would
    if prev in _PENDING_BEFORE:
        return "pending", prev
    # "thanks in advance", "bedankt voor niks", "thanks for trying": within three words after.
    after = next((w for w in s.after(i + length - 1, 3) if w in _PENDING_AFTER), None)
    if after is not None:
        return "pending", after
    if s.question:
        return "question", "?"
    return "closing", s.words[i]


def _success_word(s: _Sentence, i: int) -> bool:
    """Whether word *i* states success when not negated ("it worked", "fixed!", "opgelost")."""
    w = s.words[i]
    prev, nxt = s.word(i - 1), s.word(i + 1)
    clause_end = i + 1 >= len(s.words) or s.clauses[i + 1] != s.clauses[i]
    if w in {"solved", "resolved", "opgelost", "gelukt", "gefixt", "gefixed"}:
        return True
    if w in {"fixed", "sorted"}:
        return clause_end or prev in _STATE_BEFORE or nxt in _SUCCESS_NEXT
    if w in {
        "works",
        "worked",
        "working",
        "helps",
        "helped",
        "werkt",
        "werkte",
        "helpt",
        "hielp",
        "lukt",
        "lukte",
    }:
        return (
            prev in _SUCCESS_SUBJECTS
            or nxt in _SUCCESS_NEXT
            or (i == 0 and clause_end)
            or (i == 0 and w in {"werkt", "werkte", "lukt", "lukte"})
        )
    if w == "helpful":
        return prev in _HELPFUL_BEFORE or clause_end
    if w in {"geholpen", "gewerkt"}:
        return prev in _NL_PERFECT_AUX or i == 0
    if w == "trick":
        return prev == "the" and s.word(i - 2) in {"did", "does", "done"}
    if w in {"figured", "found"}:
        return nxt in {"it", "out"}
    if w in {"lifesaver", "legend"}:
        return True
    if w == "saved":
        return nxt in {"me", "my"}
    return False


def _negated(s: _Sentence, i: int) -> bool:
    """Whether the success word *i* is negated: before it, or after it for Dutch verbs."""
    if any(_is_negator(w) for w in s.before(i, 3)):
        return True
    if s.words[i] in _NL_SUCCESS:
        return any(w in {"niet", "geen", "nooit", "nauwelijks"} for w in s.after(i, 3))
    return False


def _failure(s: _Sentence, i: int) -> str | None:
    """A phrase at word *i* saying the problem is not solved, if there is one."""
    w = s.words[i]
    if (w in _EN_SUCCESS or w in _NL_SUCCESS) and _negated(s, i):
        if any(c in _CONDITIONAL for c in s.before(i, 3)):
            return None  # "let me know if it doesn't work"
        return w
    if w == "still" or (w == "nog" and s.word(i + 1) in {"steeds", "altijd"}):
        start = i + 1 if w == "still" else i + 2
        window = s.words[start : start + 3]
        if any(x in _STILL_BAD or x.endswith("n't") for x in window):
            return "still"
    if w == "luck" and s.word(i - 1) == "no":
        return "no luck"
    if w in {"succes", "geluk"} and s.word(i - 1) == "geen":
        return f"geen {w}"
    if w in _SAME and s.word(i + 1) in _SAME_WHAT:
        return f"{w} {s.word(i + 1)}"
    if w == "tried" and ("already" in s.before(i, 2) or "already" in s.after(i, 2)):
        return "already tried"
    if w == "geprobeerd" and "al" in s.before(i, 3):
        return "al geprobeerd"
    if w in {"worse", "erger", "slechter"} and s.word(i - 1) in _WORSE_BEFORE:
        return w
    return None


def _standalone(s: _Sentence, total_words: int) -> str | None:
    """The exclamation word if the sentence is only "Top!", "Perfect", "super hoor", ..."""
    if s.question:
        return None
    found = None
    for w in s.words:
        if w in _STANDALONE:
            found = found or w
        elif w not in _STANDALONE_FILLERS:
            return None
    if found is not None and (s.exclaimed or total_words <= 3):
        return found
    return None


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def detect_thanks(text: str) -> Gratitude:
    """Decide whether the asker's reply *text* closes their question, and say why.

    Args:
        text: The raw reply (Discord or Telegram markup allowed). Only the first
            :data:`MAX_CHARS` characters are judged.

    Returns:
        A :class:`Gratitude` with the verdict and a short reason.
    """
    lines = _own_lines(text[:MAX_CHARS])
    raw = "\n".join(lines)
    if not raw.strip():
        return Gratitude(False, "empty")
    for mark in _SARCASM_EMOJI:
        if mark in raw:
            return Gratitude(False, f"sarcasm {mark!r}")
    if _SARCASM_TAG.search(raw):
        return Gratitude(False, "sarcasm '/s'")

    sentences = _sentences(lines)
    total_words = sum(len(s.words) for s in sentences)
    # Positions are (sentence, word) pairs, compared in reading order.
    first_closing: tuple[int, int] | None = None
    closing_reason = ""
    last_success: tuple[int, int] | None = None
    caveats: list[tuple[tuple[int, int], str]] = []
    pending = in_question = False
    pending_word = ""

    for n, s in enumerate(sentences):
        thanks_span = -1  # last word index that belongs to a thank-you
        for i, w in enumerate(s.words):
            failure = _failure(s, i)
            if failure is not None:
                return Gratitude(False, f"not solved {failure!r}")
            length = _thanks_length(s, i)
            if length:
                kind, marker = _thanks_kind(s, i, length)
                if kind == "declined":
                    return Gratitude(False, f"declined '{marker} {w}'")
                if kind == "pending" and not pending:
                    pending, pending_word = True, marker
                in_question = in_question or kind == "question"
                if kind == "closing" and first_closing is None:
                    first_closing, closing_reason = (n, i), f"thanks {w!r}"
                thanks_span = i + length - 1
                continue
            if _success_word(s, i):
                conditional = any(c in _CONDITIONAL for c in s.before(i, 3))
                if not conditional and not s.question:
                    last_success = (n, i)
                    if first_closing is None:
                        first_closing, closing_reason = (n, i), f"solved {w!r}"
                continue
            opens_clause = i == 0 or s.clauses[i - 1] != s.clauses[i] or thanks_span == i - 1
            # A sentence-final "though" ("thanks though") is "anyway", judged with the thanks.
            final_though = w == "though" and i == len(s.words) - 1
            if (w in _CAVEATS and not final_though) or (w in _CLAUSE_CAVEATS and opens_clause):
                caveats.append(((n, i), w))
        if first_closing is None:
            word = _standalone(s, total_words)
            if word is not None:
                first_closing, closing_reason = (n, 0), f"standalone {word!r}"

    if first_closing is None and "?" not in raw:
        for mark in _THANKS_EMOJI:
            if mark in raw:
                first_closing, closing_reason = (len(sentences), 0), f"emoji {mark!r}"
                break
    if first_closing is None:
        if pending:
            return Gratitude(False, f"thanks that does not close {pending_word!r}")
        if in_question:
            return Gratitude(False, "thanks in a question")
        return Gratitude(False, "no closing signal")
    if last_success is None:
        # A caveat after a thank-you means the help fell short ("thanks, but I'm not
        # eligible"); a reply that also says the problem is solved closes it anyway ("took
        # ages, but it worked"; "opgelost, maar via een omweg").
        for position, word in caveats:
            if position > first_closing:
                return Gratitude(False, f"caveat {word!r}")
        if pending:
            return Gratitude(False, f"thanks that does not close {pending_word!r}")
    return Gratitude(True, closing_reason)


def is_thanks(text: str) -> bool:
    """Return ``detect_thanks(text).is_thanks``."""
    return detect_thanks(text).is_thanks
