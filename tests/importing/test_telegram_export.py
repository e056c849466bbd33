"""Reading Telegram Desktop exports: every variant of the format's history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.importing.records import ImportFileError
from bot.importing.telegram_export import chat_id_of, read, user_id_of
from tests.importing.exports import SUPERGROUP, tg_chat, tg_message, write


def test_text_dates_authors_replies_and_service(tmp_path: Path) -> None:
    path = write(
        tmp_path / "result.json",
        tg_chat(
            [
                tg_message(1, "plain text", at=1_700_000_000),
                tg_message(
                    "2",
                    ["see ", {"type": "link", "text": "https://x.nl"}, " ok"],
                    who=None,
                    who_id="user9",
                    reply_to_message_id=1,
                ),
                {
                    "id": 3,
                    "type": "message",
                    "date": "2021-03-04T05:06:07Z",
                    "from": "Old",
                    "from_id": 77,
                    "text": "old export",
                },
                {
                    "id": 4,
                    "type": "message",
                    "date": "2021-03-04T05:06:07",
                    "from": "Old",
                    "from_id": "channel55",
                    "text": "no zone",
                    "forwarded_from": None,
                },
                {
                    "id": 5,
                    "type": "service",
                    "date": "2021-03-04T05:06:07",
                    "actor": "A",
                    "actor_id": "user1",
                    "action": "invite_members",
                    "members": ["B"],
                    "text": "",
                },
                tg_message(6, "cross-chat", reply_to_message_id=9, reply_to_peer_id="channel1"),
            ]
        ),
    )
    got = list(read(path))
    assert [m.message_id for m in got] == ["1", "2", "3", "4", "6"]
    first, second, old, nozone, cross = got
    assert first.channel.chat_id == f"-100{SUPERGROUP}" and first.channel.title == "Expats NL"
    assert first.sent_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert second.text == "see https://x.nl ok"
    assert second.author_id == "9" and second.author_name == "Deleted Account"
    assert second.reply_to == "1"
    assert old.sent_at == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC) and old.author_id == "77"
    assert nozone.sent_at == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert nozone.author_id == "-10055" and nozone.forwarded
    assert cross.reply_to is None


def test_ids_by_chat_type() -> None:
    assert chat_id_of(5, "private_group") == "-5"
    assert chat_id_of("5", "public_supergroup") == "-1005"
    assert chat_id_of(5, "personal_chat") == "5"
    assert chat_id_of(-1005, "private_supergroup") == "-1005"
    assert user_id_of("user12") == "12" and user_id_of("chat3") == "-3"
    assert user_id_of(None) is None


def test_reactions_with_and_without_reactors(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.json",
        tg_chat(
            [
                tg_message(1, "a", reactions=[{"emoji": "👍", "count": 3}]),
                tg_message(
                    2,
                    "b",
                    reactions=[
                        {
                            "type": "emoji",
                            "count": 2,
                            "emoji": "✅",
                            "recent": [{"from_id": "user4"}, {"from_id": "user5"}],
                        }
                    ],
                ),
            ]
        ),
    )
    a, b = read(path)
    assert a.reactions[0].emoji == "👍" and a.reactions[0].count == 3 and not a.reactions[0].users
    assert b.reactions[0].users == ("4", "5")


def test_forum_topics(tmp_path: Path) -> None:
    path = write(
        tmp_path / "f.json",
        tg_chat(
            [
                {
                    "id": 10,
                    "type": "service",
                    "date_unixtime": "1",
                    "date": "x",
                    "actor": "A",
                    "actor_id": "user1",
                    "action": "topic_created",
                    "title": "Housing",
                    "text": "",
                },
                tg_message(11, "in the topic", reply_to_message_id=10),
                tg_message(12, "reply in the topic", reply_to_message_id=11),
                tg_message(13, "general"),
            ]
        ),
    )
    topic, reply, general = read(path)
    assert topic.channel.thread_id == "10" and topic.reply_to is None
    assert topic.channel.title == "Housing"
    assert reply.channel.thread_id == "10" and reply.reply_to == "11"
    assert general.channel.thread_id == ""


def test_full_account_export_reads_every_chat(tmp_path: Path) -> None:
    path = write(
        tmp_path / "all.json",
        {
            "about": "Here is the data you requested.",
            "personal_information": {"user_id": 1, "first_name": "A"},
            "chats": {
                "about": "chats",
                "list": [
                    {
                        "name": "Group",
                        "type": "private_group",
                        "id": 7,
                        "messages": [tg_message(1, "in the group")],
                    },
                    {
                        "name": "Me",
                        "type": "personal_chat",
                        "id": 8,
                        "messages": [tg_message(1, "personal")],
                    },
                ],
            },
            "left_chats": {
                "about": "left",
                "list": [
                    {
                        "name": "Old",
                        "type": "public_supergroup",
                        "id": 9,
                        "messages": [tg_message(4, "left")],
                    }
                ],
            },
        },
    )
    got = [(m.channel.chat_id, m.text) for m in read(path)]
    assert got == [("-7", "in the group"), ("8", "personal"), ("-1009", "left")]


def test_truncated_file_names_the_position(tmp_path: Path) -> None:
    whole = write(
        tmp_path / "whole.json", tg_chat([tg_message(i, f"message {i}") for i in range(1, 200)])
    ).read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImportFileError) as caught:
        list(read(cut))
    err = caught.value
    assert "ends too early" in str(err) and str(cut) in str(err)
    assert err.offset == len(whole) // 2
    assert 0 < err.messages < 199


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            b'{"name": "x", "type": "private_group", "id": 1, "messages": [{"id": 1,, }]}',
            "not valid JSON",
        ),
        (b"[1, 2]", "not a JSON object"),
        (b'{"name": "x"}', "not a Telegram Desktop export"),
        (
            b'{"name": "x", "type": "private_group", "id": 1, "messages": [{"id": 1, '
            b'"type": "message", "text": "no date"}]}',
            "message 1 (id 1) cannot be read: no date",
        ),
        (b"", "ends too early"),
    ],
)
def test_malformed_files(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ImportFileError) as caught:
        list(read(path))
    assert words in str(caught.value)


def test_edit_times_author_ids_and_empty_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "result.json",
        tg_chat(
            [
                tg_message(1, "edited", edited_unixtime="1700000100", edited="x"),
                tg_message(2, "edited in an old export", edited="2023-11-14T22:15:00"),
                tg_message(3, "never edited", who_id=None, reactions=[]),
                tg_message(4, "empty author id", who=None, who_id=""),
                tg_message(5, "a chat's id", who_id="chat12", reactions=None),
                tg_message(6, None, who_id=12.0),
            ]
        ),
    )
    got = list(read(path))
    assert [m.edited_at for m in got[:3]] == [
        datetime.fromtimestamp(1_700_000_100, UTC),
        datetime(2023, 11, 14, 22, 15, tzinfo=UTC),
        None,
    ]
    assert [m.author_id for m in got] == ["1", "1", None, None, "-12", "12"]
    assert [m.author_name for m in got[2:4]] == ["Alice", "unknown"]
    assert all(m.reactions == () for m in got)
    assert got[5].text == ""
