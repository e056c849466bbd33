"""Splitting long text into chunks a platform accepts, at readable boundaries."""

from __future__ import annotations

from collections.abc import Callable

FENCE = "```"


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


def split_text(
    text: str,
    limit: int,
    *,
    measure: Callable[[str], int] = len,
    code_fences: bool = False,
) -> list[str]:
    """Split ``text`` into chunks whose ``measure`` is at most ``limit``.

    Nothing is dropped: joining the chunks gives the text back (plus fence markers when
    ``code_fences`` is set, which closes an open ``` block at the end of a chunk and reopens it
    at the start of the next, so no chunk breaks the platform's markdown).
    """
    if measure(text) <= limit:
        return [text]
    reserve = len(FENCE) + 1 if code_fences else 0
    chunks: list[str] = []
    rest = text
    reopen = ""
    while rest:
        body = reopen + rest
        if measure(body) <= limit:
            chunks.append(body)
            break
        end = _longest_prefix(body, limit - reserve, measure)
        cut = max(len(reopen) + 1, _boundary(body[:end]))
        chunk = body[:cut]
        consumed = cut - len(reopen)
        rest = rest[consumed:]
        if code_fences and chunk.count(FENCE) % 2 == 1:
            chunk = chunk.rstrip("\n") + "\n" + FENCE
            reopen = FENCE + "\n"
        else:
            reopen = ""
        chunks.append(chunk)
    return chunks
