"""Reading a large JSON export as a stream (ijson), with the position of any fault.

``json.load`` would hold a whole export in memory (a few GB for a big community); ijson's C
backend hands over one message object at a time about as fast. The chat's own fields come
before its messages in both formats, so a short first pass reads them and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ijson

from bot.importing.records import ImportFileError

#: Bytes read at a time.
BUFFER = 64 * 1024


def header(path: Path, stop_at: frozenset[str]) -> tuple[dict[str, Any], str | None]:
    """The top-level fields that come before the first key in ``stop_at`` (the first pass),
    and that key (None when the file has none). Raises :class:`ImportFileError` for a file
    that is not a JSON object."""
    found: dict[str, Any] = {}
    with path.open("rb") as f:
        try:
            builder: ijson.ObjectBuilder | None = None
            current = ""
            for prefix, event, value in ijson.parse(f, use_float=True, buf_size=BUFFER):
                if prefix == "":
                    if event == "map_key":
                        if builder is not None:
                            found[current] = builder.value
                            builder = None
                        if value in stop_at:
                            return found, str(value)
                        current = str(value)
                    elif event == "end_map":
                        break
                    elif event != "start_map":
                        raise ImportFileError(
                            str(path), "not a JSON object", offset=f.tell(), messages=0
                        )
                    continue
                if builder is None:
                    builder = ijson.ObjectBuilder()
                builder.event(event, value)
        except ijson.JSONError as exc:
            raise ImportFileError(str(path), _reason(exc), offset=f.tell(), messages=0) from exc
    if builder is not None:
        found[current] = builder.value
    return found, None


def items(
    path: Path,
    prefix: str,
    count: Callable[[], int],
    rewrite: Callable[[Iterator[tuple[str, str, Any]]], Iterator[tuple[str, str, Any]]]
    | None = None,
) -> Iterator[dict[str, Any]]:
    """Every object at ``prefix`` (``messages.item``), in file order. ``count`` says how many
    messages the caller has read, for the error a broken file raises. ``rewrite`` may watch
    (and rename) the parser's events on their way, at some cost in speed."""
    with path.open("rb") as f:
        try:
            source: Any = f
            if rewrite is not None:
                source = rewrite(ijson.parse(f, use_float=True, buf_size=BUFFER))
            for item in ijson.items(source, prefix, use_float=True, buf_size=BUFFER):
                if not isinstance(item, dict):
                    raise ImportFileError(
                        str(path),
                        f"a message is not an object: {item!r:.60}",
                        offset=f.tell(),
                        messages=count(),
                    )
                yield item
        except ijson.JSONError as exc:
            raise ImportFileError(
                str(path), _reason(exc), offset=f.tell(), messages=count()
            ) from exc
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                str(path), "not UTF-8 text", offset=f.tell(), messages=count()
            ) from exc


def _reason(exc: Exception) -> str:
    # yajl's message: "parse error: premature EOF" plus lines pointing into the text.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "premature EOF" in first:
        return "the file ends too early (cut short?): " + first
    return "not valid JSON: " + first
