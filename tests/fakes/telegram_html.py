"""Telegram's ``parse_mode=HTML``, parsed the way the Bot API server (tdlib's ``parse_html``)
parses it, so the fake refuses exactly what Telegram refuses, with the same error text.

What Telegram does, and this module with it:

* Only the tags ``a b strong i em u ins s strike del span tg-spoiler tg-emoji code pre
  blockquote`` exist (case-insensitive); any other start tag, also ``<br>``, ``<br/>``, ``<3``
  or a lone ``<`` followed by a space, is refused: ``Unsupported start tag "br" at byte offset
  N`` (N counts UTF-8 bytes of the sent text up to the ``<``).
* A ``<`` with no ``>`` after its tag name is ``Unclosed start tag at byte offset N``; an end
  tag with no open tag is ``Unexpected end tag at byte offset N``; an end tag that does not
  close the innermost open tag is ``Unmatched end tag at byte offset N, expected "</b>",
  found "</i>"``; a tag left open is ``Can't find end tag corresponding to start tag "b"``.
* ``<span>`` needs ``class="tg-spoiler"``; attributes need ``=`` and a value.
* Only ``&lt; &gt; &amp; &quot;`` and numeric references (``&#60;``, ``&#x3c;``) are decoded,
  the ``;`` being optional; anything else after ``&`` (a bare ``&``, ``&nbsp;``) stays as
  typed. So a bare ``&`` is accepted and ``&nbsp;`` shows as the six characters.
* What is left (the text without tags, references decoded) is what the reader sees and what
  the 4096 limit counts, in UTF-16 code units; entities carry UTF-16 offsets and lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The start tags Telegram's HTML mode knows.
HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "tg-emoji": "custom_emoji",
    "pre": "pre",
    "code": "code",
    "blockquote": "blockquote",
    "a": "text_link",
}
_NAMED = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
_SPACE = frozenset(b" \t\r\n\v\0")


class HTMLParseError(ValueError):
    """Telegram could not parse the HTML; ``str()`` is the part of the error description after
    ``"Bad Request: can't parse entities: "``."""


@dataclass
class Parsed:
    """What Telegram keeps of an HTML message: its text and its entities (UTF-16 units)."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (Telegram's unit for lengths and offsets)."""
    return len(text.encode("utf-16-le")) // 2


def _decode_reference(raw: bytes, pos: int) -> tuple[str, int] | None:
    """The character of the reference starting with ``&`` at ``pos`` and where it ends, or
    None where Telegram keeps the ``&`` as typed."""
    end = pos + 1
    value = 0
    if raw[end : end + 1] == b"#":
        end += 1
        hexadecimal = raw[end : end + 1] == b"x"
        if hexadecimal:
            end += 1
        digits = b"0123456789abcdefABCDEF" if hexadecimal else b"0123456789"
        while end < len(raw) and raw[end] in digits:
            value = value * (16 if hexadecimal else 10) + int(chr(raw[end]), 16)
            end += 1
            if value >= 0x10FFFF:
                return None
        if value == 0 or end - pos >= 10 or 0xD800 <= value <= 0xDFFF:
            return None
        char = chr(value)
    else:
        while end < len(raw) and chr(raw[end]).isascii() and chr(raw[end]).isalpha():
            end += 1
        named = _NAMED.get(raw[pos + 1 : end])
        if named is None:
            return None
        char = named
    if raw[end : end + 1] == b";":
        end += 1
    return char, end


@dataclass
class _Open:
    tag: str
    argument: str
    offset: int  # UTF-16 units of kept text before the tag


def parse_html(text: str) -> Parsed:
    """Parse ``text`` as Telegram's HTML mode; raises :class:`HTMLParseError` with Telegram's
    wording where Telegram refuses it."""
    raw = text.encode("utf-8") + b"\0"  # tdlib reads a NUL-terminated string
    size = len(raw) - 1
    out: list[str] = []
    offset = 0  # UTF-16 units kept so far
    opened: list[_Open] = []
    entities: list[dict[str, Any]] = []
    i = 0
    plain_start = 0

    def flush(upto: int) -> None:
        nonlocal offset
        if upto > plain_start:
            chunk = raw[plain_start:upto].decode("utf-8")
            out.append(chunk)
            offset += utf16_len(chunk)

    while i < size:
        c = raw[i]
        if c == ord("&"):
            decoded = _decode_reference(raw, i)
            if decoded is not None:
                flush(i)
                out.append(decoded[0])
                offset += utf16_len(decoded[0])
                i = plain_start = decoded[1]
                continue
        if c != ord("<"):
            i += 1
            continue
        flush(i)
        begin = i
        i += 1
        if raw[i] != ord("/"):
            while raw[i] not in _SPACE and raw[i] != ord(">"):
                i += 1
            if i >= size:
                raise HTMLParseError(f"Unclosed start tag at byte offset {begin}")
            tag = raw[begin + 1 : i].decode("utf-8", "replace").lower()
            if tag not in HTML_TAGS:
                raise HTMLParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument, i = _attributes(raw, i, tag, begin)
            if tag == "span" and argument != "spoiler":
                raise HTMLParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            opened.append(_Open(tag, argument, offset))
            i += 1  # the '>'
        else:
            if not opened:
                raise HTMLParseError(f"Unexpected end tag at byte offset {begin}")
            while raw[i] not in _SPACE and raw[i] != ord(">"):
                i += 1
            name = raw[begin + 2 : i].decode("utf-8", "replace")
            while i < size and raw[i] in _SPACE:
                i += 1
            if raw[i] != ord(">"):
                raise HTMLParseError(f"Unclosed end tag at byte offset {begin}")
            top = opened.pop()
            if name and name != top.tag:
                raise HTMLParseError(
                    f"Unmatched end tag at byte offset {begin}, "
                    f'expected "</{top.tag}>", found "</{name}>"'
                )
            i += 1
            _close(top, offset, entities)
        plain_start = i
    flush(size)
    if opened:
        raise HTMLParseError(f'Can\'t find end tag corresponding to start tag "{opened[-1].tag}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return Parsed("".join(out), entities)


def _attributes(raw: bytes, i: int, tag: str, begin: int) -> tuple[str, int]:
    """Read a start tag's attributes up to its ``>``; the argument Telegram keeps (a link's
    href, a span's class after ``tg-``) and the position of the ``>``."""
    argument = ""
    size = len(raw) - 1
    while raw[i] != ord(">"):
        while i < size and raw[i] in _SPACE:
            i += 1
        if raw[i] == ord(">"):
            break
        name_start = i
        while raw[i] not in _SPACE and raw[i] != ord("="):
            i += 1
        name = raw[name_start:i].decode("utf-8", "replace")
        if not name:
            raise HTMLParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while i < size and raw[i] in _SPACE:
            i += 1
        if raw[i] != ord("="):
            raise HTMLParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {begin}"
            )
        i += 1
        while i < size and raw[i] in _SPACE:
            i += 1
        if i >= size:
            raise HTMLParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if raw[i] not in b"'\"":
            token_start = i
            while chr(raw[i]).isascii() and (chr(raw[i]).isalnum() or raw[i] in b".-"):
                i += 1
            value = raw[token_start:i].decode("ascii").lower()
            if raw[i] not in _SPACE and raw[i] != ord(">"):
                raise HTMLParseError(f"Unexpected end of name token at byte offset {token_start}")
        else:
            quote = raw[i]
            i += 1
            parts: list[str] = []
            start = i
            while i < size and raw[i] != quote:
                if raw[i] == ord("&"):
                    decoded = _decode_reference(raw, i)
                    if decoded is not None:
                        parts.append(raw[start:i].decode("utf-8", "replace") + decoded[0])
                        i = start = decoded[1]
                        continue
                i += 1
            parts.append(raw[start:i].decode("utf-8", "replace"))
            value = "".join(parts)
            if raw[i] == quote:
                i += 1
        if i >= size:
            raise HTMLParseError(f"Unclosed start tag at byte offset {begin}")
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif tag == "tg-emoji" and name == "emoji-id":
            argument = value
    return argument, i


def _close(top: _Open, offset: int, entities: list[dict[str, Any]]) -> None:
    """The entity of a closed tag (none when it enclosed nothing, as on Telegram)."""
    length = offset - top.offset
    if length <= 0:
        return
    entity: dict[str, Any] = {
        "type": _ENTITY_TYPES[top.tag],
        "offset": top.offset,
        "length": length,
    }
    if top.tag == "a":
        if not top.argument:
            return  # a link without href is dropped
        entity["url"] = top.argument
    elif top.tag == "tg-emoji":
        entity["custom_emoji_id"] = top.argument
    elif top.tag == "code" and top.argument:
        entity["language"] = top.argument
    entities.append(entity)
