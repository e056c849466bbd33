"""Text on its way out of copss: cleaned of invisible and control characters, and split into
chunks a platform accepts, at readable boundaries.

Every adapter passes what it posts (text and author names) through :func:`outgoing_text` and
:func:`outgoing_name` in its send and edit paths, whatever feature wrote the text: members'
words reach other people through copss (bridged copies, quoted answers), and nothing copss
posts may reorder what follows it, hide text, or drive a terminal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

FENCE = "```"

# -- cleaning ---------------------------------------------------------------------------------

#: C0 controls but tab and newline, DEL, C1 controls.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
#: Bidi embeddings, overrides, isolates and marks (they reorder the text that follows).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
#: Zero-width and invisible formatting characters (U+200C/U+200D: see :func:`_keep_joiner`).
_INVISIBLE = "\u00ad\u180e\u200b-\u200d\u2060-\u2065\u206a-\u206f\ufeff\ufff9-\ufffb"
#: Tag characters (invisible ASCII look-alikes, except in subdivision flags).
_TAGS = "\U000e0000-\U000e007f"
#: A subdivision flag such as England's: a black flag, tag letters or digits, a cancel tag.
_FLAG = "\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,30}\U000e007f"
_OUT = re.compile(f"(?P<flag>{_FLAG})|\r\n?|[\u2028\u2029]|[{_CONTROLS}{_BIDI}{_INVISIBLE}{_TAGS}]")
#: Fillers that render as nothing and make a name look blank (Hangul fillers).
_BLANK_NAME = re.compile("[\u115f\u1160\u3164\uffa0]")
_SPACES = re.compile(r"\s+")
ZWNJ, ZWJ = "\u200c", "\u200d"
#: Emoji modifiers a ZWJ may follow inside an emoji sequence: variation selector 16 and the
#: five skin tones.
_EMOJI_TAILS = frozenset("\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")


def _emoji(char: str) -> bool:
    return unicodedata.category(char) == "So"


def _joining_letter(char: str) -> bool:
    # Arabic, Syriac, Thaana, N'Ko and the Indic scripts (U+0600-U+0DFF) and the Arabic
    # presentation forms: scripts whose spelling uses ZWNJ/ZWJ to break or force a join.
    code = ord(char)
    in_script = 0x0600 <= code <= 0x0DFF or 0xFB50 <= code <= 0xFDFF or 0xFE70 <= code <= 0xFEFC
    return in_script and unicodedata.category(char)[0] in "LM"


def _keep_joiner(text: str, at: int) -> bool:
    """Whether the ZWJ or ZWNJ at ``at`` belongs to the text rather than hiding in it: a ZWJ
    between two emoji (a family 👨‍👩‍👧, a rainbow flag), or either joiner between two letters of
    a script that spells with it (Persian, Hindi). Anywhere else (between Latin letters, at an
    edge) it only splits a word invisibly, e.g. to slip past a filter."""
    if at == 0 or at + 1 >= len(text):
        return False
    before = at - 1
    after = text[at + 1]
    if text[at] == ZWJ:
        while before > 0 and text[before] in _EMOJI_TAILS:
            before -= 1
        if _emoji(text[before]) and _emoji(after):
            return True
    return _joining_letter(text[at - 1]) and _joining_letter(after)


def _clean(match: re.Match[str]) -> str:
    found = match.group(0)
    if match.group("flag") is not None:
        return found
    if found[0] in "\r\u2028\u2029":
        return "\n"
    if found in (ZWJ, ZWNJ) and _keep_joiner(match.string, match.start()):
        return found
    return ""


def outgoing_text(text: str) -> str:
    """``text`` as copss may post it: without control characters (ESC, BEL, DEL, C1; tab and
    newline stay, a carriage return or line separator becomes a newline), bidi controls,
    zero-width and invisible formatting characters, or tag characters. Emoji sequences
    (ZWJ families, subdivision flags) and joiners that Arabic and Indic spelling needs are
    kept; letters, accents, emoji and line breaks are untouched."""
    return _OUT.sub(_clean, text)


def outgoing_name(name: str) -> str:
    """A display name as copss may show it: :func:`outgoing_text`, then on one line (tabs and
    newlines become spaces, runs of space one) without blank-looking fillers; ``?`` when
    nothing visible is left of a name that was not empty."""
    cleaned = _SPACES.sub(" ", _BLANK_NAME.sub("", outgoing_text(name))).strip()
    return cleaned or ("?" if name else "")


# -- splitting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One chunk of a split text: what to post, where in the source text it ends, and what
    the next chunk must begin with (a code block reopened, when ``code_fences`` is set)."""

    text: str
    end: int
    carry: str = ""


def _fits(text: str, end: int, limit: int, measure: Callable[[str], int]) -> bool:
    return measure(text[:end]) <= limit


def _longest_prefix(text: str, limit: int, measure: Callable[[str], int]) -> int:
    # measure() grows with the prefix, so a binary search finds the longest prefix that fits.
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(text, mid, limit, measure):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _boundary(chunk: str) -> int:
    # Prefer a paragraph, then a line, then a word break in the second half of the chunk.
    for sep in ("\n\n", "\n", " "):
        at = chunk.rfind(sep)
        if at >= len(chunk) // 2:
            return at + len(sep)
    return len(chunk)


#: Variation selectors, emoji skin tones and tag characters: they belong to the character
#: before them.
_EXTENDERS = re.compile("[\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f\u20e3]")
_REGIONAL = re.compile("[\U0001f1e6-\U0001f1ff]")


def _inside_cluster(text: str, at: int) -> bool:
    """Whether a cut before ``text[at]`` would split what a reader sees as one character: an
    accent from its letter, a skin tone or variation selector from its emoji, an emoji ZWJ
    sequence (a family), or the two letters of a flag."""
    if at <= 0 or at >= len(text):
        return False
    after, before = text[at], text[at - 1]
    if after == ZWJ or before == ZWJ or _EXTENDERS.match(after):
        return True
    if unicodedata.category(after).startswith("M"):
        return True
    if _REGIONAL.match(after) and _REGIONAL.match(before):
        run = 0
        while at - run - 1 >= 0 and _REGIONAL.match(text[at - run - 1]):
            run += 1
        return run % 2 == 1
    return False


def _cut(body: str, end: int, least: int) -> int:
    """Where to end a chunk of ``body`` that fits up to ``end``: a readable boundary, else the
    last place at or before ``end`` that splits no character a reader sees as one (unless
    that leaves less than ``least``)."""
    cut = max(least, _boundary(body[:end]))
    if cut < end:
        return cut  # after a separator: never inside a character
    back = cut
    while back > least and _inside_cluster(body, back):
        back -= 1
    return back if back > least or not _inside_cluster(body, back) else cut


def split_pieces(
    text: str,
    limit: int,
    *,
    measure: Callable[[str], int] = len,
    code_fences: bool = False,
    first_limit: int | None = None,
    start: int = 0,
    carry: str = "",
) -> list[Piece]:
    """Split ``text[start:]`` into pieces whose ``measure`` is at most ``limit`` (the first
    at most ``first_limit``, e.g. the room a heading leaves).

    Nothing is dropped: joining the pieces gives the text back (plus fence markers when
    ``code_fences`` is set, which closes an open ``` block at the end of a piece and reopens it
    at the start of the next, so no piece breaks the platform's markdown). A send that stopped
    part-way goes on with ``start`` and ``carry`` from the last piece it posted, and gets the
    same pieces as the first attempt would have.
    """
    rest = text[start:]
    if not rest:
        return [] if start else [Piece(text, len(text))]
    reserve = len(FENCE) + 1 if code_fences else 0
    pieces: list[Piece] = []
    reopen = carry
    offset = start
    while rest:
        room = first_limit if first_limit is not None and not pieces else limit
        body = reopen + rest
        if measure(body) <= room:
            pieces.append(Piece(body, len(text)))
            break
        end = _longest_prefix(body, room - reserve, measure)
        cut = _cut(body, end, len(reopen) + 1)
        chunk = body[:cut]
        consumed = cut - len(reopen)
        rest = rest[consumed:]
        offset += consumed
        if code_fences and chunk.count(FENCE) % 2 == 1:
            chunk = chunk.rstrip("\n") + "\n" + FENCE
            reopen = FENCE + "\n"
        else:
            reopen = ""
        pieces.append(Piece(chunk, offset, reopen))
    return pieces


def split_text(
    text: str,
    limit: int,
    *,
    measure: Callable[[str], int] = len,
    code_fences: bool = False,
) -> list[str]:
    """Split ``text`` into chunks whose ``measure`` is at most ``limit`` (see
    :func:`split_pieces`)."""
    return [p.text for p in split_pieces(text, limit, measure=measure, code_fences=code_fences)]
