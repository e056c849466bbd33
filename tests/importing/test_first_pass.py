"""The first pass (``check``) reads a file exactly as the import's second pass (``read``) will:
the same count for a good file, the same error at the same message for a bad one. Were it to
pass a file the second pass then fails on, batches would be written before the failure. The
messages it keeps (which the import stores instead of reading the file again) are those
``read`` yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.importing import discord_export, telegram_export
from bot.importing.records import RECORD_BYTES, FirstPass, ImportedMessage, ImportFileError
from bot.importing.run import count, first_pass
from tests.importing.exports import mixed_history, tg_chat, tg_message, write

Reader = Callable[[Path], Iterator[ImportedMessage]]


def outcome(function: Callable[[], Any]) -> Any:
    """What a reading gives: its result, or its error's message."""
    try:
        return function()
    except ImportFileError as exc:
        return f"error: {exc}"


def both(read: Reader, check: Callable[[Path], int], path: Path) -> tuple[Any, Any]:
    return outcome(lambda: len(list(read(path)))), outcome(lambda: check(path))


def good(i: int) -> dict[str, Any]:
    return tg_message(i, f"message {i}", at=1_700_000_000 + i)


TELEGRAM_BAD_MESSAGES = {
    "no id": {"type": "message", "date_unixtime": "1700000000", "text": "x"},
    "no date": {"id": 99, "type": "message", "text": "x"},
    "unix time not a number": good(99) | {"date_unixtime": "soon"},
    "unix time a list": good(99) | {"date_unixtime": [1]},
    "unix time out of range": good(99) | {"date_unixtime": "99999999999999"},
    "iso date wrong": {"id": 99, "type": "message", "date": "yesterday", "text": "x"},
    "edited wrong": good(99) | {"edited_unixtime": "later"},
    "reaction count not a number": good(99) | {"reactions": [{"emoji": "✅", "count": "a"}]},
    "reactors not a list": good(99) | {"reactions": [{"emoji": "✅", "count": 1, "recent": 5}]},
}


@pytest.mark.parametrize("bad", sorted(TELEGRAM_BAD_MESSAGES))
def test_telegram_check_fails_where_read_fails(tmp_path: Path, bad: str) -> None:
    messages = [good(i) for i in range(1, 40)] + [TELEGRAM_BAD_MESSAGES[bad], good(41)]
    path = write(tmp_path / "bad.json", tg_chat(messages))
    read, check = both(telegram_export.read, telegram_export.check, path)
    assert isinstance(read, str) and "message 40 " in read, read
    assert check == read


def test_telegram_check_counts_what_read_yields(tmp_path: Path) -> None:
    # Service messages, topics, forwards, replies, list texts, a whole account.
    history = mixed_history(300)
    history.insert(5, {"id": 9000, "type": "service", "action": "topic_created", "title": "T"})
    history.insert(9, good(9001) | {"reply_to_message_id": 9000, "forwarded_from": "X"})
    single = write(tmp_path / "one.json", tg_chat(history))
    account = write(
        tmp_path / "all.json",
        {
            "chats": {"list": [tg_chat(history[:50], id=5), tg_chat(history[50:], id=6)]},
            "left_chats": {"list": [tg_chat([good(1)], id=7, type="private_group")]},
        },
    )
    for path in (single, account):
        read, check = both(telegram_export.read, telegram_export.check, path)
        assert isinstance(read, int) and read > 250
        assert check == read == count("telegram", path)


def dce_file(path: Path, messages: list[dict[str, Any]]) -> Path:
    return write(
        path,
        {
            "guild": {"id": "500", "name": "Expats"},
            "channel": {"id": "600", "type": "GuildTextChat", "name": "help"},
            "messages": messages,
        },
    )


def dce(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(i),
        "type": "Default",
        "timestamp": "2024-01-02T03:04:05.678+01:00",
        "content": f"message {i}",
        "author": {"id": "10", "name": "ten", "isBot": False},
        **extra,
    }


DISCORD_BAD_MESSAGES = {
    "no id": {"type": "Default", "timestamp": "2024-01-02T03:04:05+01:00", "author": {}},
    "no timestamp": dce(99) | {"timestamp": None},
    "timestamp wrong": dce(99, timestamp="the second of January"),
    "edited wrong": dce(99, timestampEdited="later"),
    "reaction count not a number": dce(99, reactions=[{"emoji": {"name": "✅"}, "count": "a"}]),
    "reactors not a list": dce(99, reactions=[{"emoji": {"name": "✅"}, "count": 1, "users": 5}]),
}


@pytest.mark.parametrize("bad", sorted(DISCORD_BAD_MESSAGES))
def test_discord_check_fails_where_read_fails(tmp_path: Path, bad: str) -> None:
    messages = [dce(i) for i in range(1, 40)] + [DISCORD_BAD_MESSAGES[bad], dce(41)]
    path = dce_file(tmp_path / "bad.json", messages)
    read, check = both(discord_export.read, discord_export.check, path)
    assert isinstance(read, str) and "message 40 " in read, read
    assert check == read


def test_discord_check_counts_what_read_yields(tmp_path: Path) -> None:
    messages = [dce(i) for i in range(1, 30)]
    messages += [dce(30, type="ChannelPinnedMessage"), dce(31, reference={"messageId": "2"})]
    messages += [dce(32, reference={"messageId": "3", "type": "Forward"})]
    path = dce_file(tmp_path / "ok.json", messages)
    read, check = both(discord_export.read, discord_export.check, path)
    assert read == 31
    assert check == read == count("discord", path)


def test_a_cut_file_fails_both_passes_alike(tmp_path: Path) -> None:
    whole = write(tmp_path / "w.json", tg_chat(mixed_history(200))).read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    read, check = both(telegram_export.read, telegram_export.check, cut)
    assert isinstance(read, str) and "ends too early" in read
    assert check == read


def kept_by(check: Callable[[Path, FirstPass | None], int], path: Path) -> list[ImportedMessage]:
    first = FirstPass(2**30)
    assert check(path, first) == first.count
    kept = first.take()
    assert kept is not None
    messages = list(kept)
    assert first.take() is None, "handed over once"
    return messages


def test_the_messages_kept_are_those_read_yields(tmp_path: Path) -> None:
    history = mixed_history(300)
    history.insert(5, {"id": 9000, "type": "service", "action": "topic_created", "title": "T"})
    history.insert(9, good(9001) | {"reply_to_message_id": 9000, "forwarded_from": "X"})
    history.insert(12, good(9002) | {"reply_to_message_id": 9000})
    single = write(tmp_path / "one.json", tg_chat(history))
    account = write(
        tmp_path / "all.json",
        {
            "chats": {"list": [tg_chat(history[:50], id=5), tg_chat(history[50:], id=6)]},
            "left_chats": {"list": [tg_chat([good(1)], id=7, type="private_group")]},
        },
    )
    for path in (single, account):
        kept = kept_by(telegram_export.check, path)
        assert len(kept) > 250
        assert kept == list(telegram_export.read(path))
    messages = [dce(i) for i in range(1, 30)] + [dce(31, reference={"messageId": "2"})]
    messages += [dce(32, reference={"messageId": "3", "type": "Forward"})]
    path = dce_file(tmp_path / "ok.json", messages)
    assert kept_by(discord_export.check, path) == list(discord_export.read(path))


def test_past_its_budget_the_first_pass_keeps_nothing_and_counts_on(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", tg_chat(mixed_history(300)))
    total = count("telegram", path)
    assert total > 250
    small = first_pass("telegram", path, keep=RECORD_BYTES * 50)
    assert small.count == total and not small.building and small.take() is None
    assert first_pass("telegram", path, keep=0).take() is None
    whole = first_pass("telegram", path)
    assert whole.count == total
    assert len(list(whole.take() or ())) == total
