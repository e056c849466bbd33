"""Reading DiscordChatExporter exports: channels, threads, replies, reactions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.importing.discord_export import read
from bot.importing.records import ImportFileError
from tests.importing.exports import write


def dce_message(mid: str, content: str, author: str = "10", **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "id": mid,
        "type": "Default",
        "timestamp": "2024-01-02T03:04:05.678+01:00",
        "timestampEdited": None,
        "isPinned": False,
        "content": content,
        "author": {
            "id": author,
            "name": f"user{author}",
            "discriminator": "0000",
            "nickname": f"Nick {author}",
            "isBot": False,
        },
        "attachments": [],
        "embeds": [],
        "reactions": [],
        "mentions": [],
    }
    m.update(extra)
    return m


def dce(channel: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "guild": {"id": "500", "name": "Expats", "iconUrl": ""},
        "channel": channel,
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-02-01T00:00:00+00:00",
        "messages": messages,
        "messageCount": len(messages),
    }


def test_channel_export(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        dce(
            {
                "id": "600",
                "type": "GuildTextChat",
                "categoryId": "1",
                "category": "General",
                "name": "help",
                "topic": None,
            },
            [
                dce_message("1", "Where do I get a BSN?"),
                dce_message(
                    "2",
                    "At the gemeente.",
                    author="11",
                    type="Reply",
                    reference={"messageId": "1", "channelId": "600", "guildId": "500"},
                    reactions=[
                        {
                            "emoji": {"id": "", "name": "✅", "code": "white_check_mark"},
                            "count": 1,
                            "users": [{"id": "10", "name": "user10"}],
                        }
                    ],
                ),
                dce_message("3", "Alice joined.", type="GuildMemberJoin"),
                {
                    **dce_message("4", "bot says"),
                    "author": {"id": "12", "name": "b", "isBot": True},
                },
            ],
        ),
    )
    q, a, bot = read(path)
    assert q.channel.key == ("discord", "600", "") and q.channel.title == "guild:500"
    assert q.author_name == "Nick 10" and q.reply_to is None
    assert q.sent_at == datetime(2024, 1, 2, 2, 4, 5, 678000, tzinfo=UTC)
    assert a.reply_to == "1" and a.reactions[0].emoji == "✅" and a.reactions[0].users == ("10",)
    assert bot.is_bot


def test_thread_export_lands_under_its_parent(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.json",
        dce(
            {
                "id": "700",
                "type": "GuildPublicThread",
                "categoryId": "600",
                "category": "help",
                "name": "BSN question",
                "topic": None,
            },
            [
                dce_message("701", "You need an appointment.", author="11"),
                dce_message(
                    "702", "fwd", author="12", reference={"type": "Forward", "messageId": "5"}
                ),
            ],
        ),
    )
    answer, forward = read(path)
    assert answer.channel.key == ("discord", "600", "700")
    # As live: a message in a thread answers the message the thread was opened from.
    assert answer.reply_to == "700"
    assert forward.forwarded


def test_forum_post_opening_message_carries_the_title(tmp_path: Path) -> None:
    path = write(
        tmp_path / "f.json",
        dce(
            {
                "id": "800",
                "type": "GuildPublicThread",
                "categoryId": "650",
                "category": "forum",
                "name": "How to get a BSN?",
                "topic": None,
            },
            [dce_message("800", "I just arrived."), dce_message("801", "gemeente", author="11")],
        ),
    )
    opening, reply = read(path)
    assert opening.text == "How to get a BSN?\nI just arrived." and opening.reply_to is None
    assert reply.reply_to == "800"


def test_truncated_and_malformed(tmp_path: Path) -> None:
    whole = write(
        tmp_path / "w.json",
        dce(
            {"id": "600", "type": "GuildTextChat", "name": "help"},
            [dce_message(str(i), f"m {i}") for i in range(1, 100)],
        ),
    ).read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(whole[:-40])
    with pytest.raises(ImportFileError, match="ends too early"):
        list(read(cut))
    nochannel = write(tmp_path / "n.json", {"messages": []})
    with pytest.raises(ImportFileError, match='no "channel"'):
        list(read(nochannel))
