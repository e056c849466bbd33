"""A store built by importing several exports, dumped row by row as the database holds it.

``snapshot.json`` is the dump the import wrote before its storage was rewritten for speed;
``test_snapshot.py`` checks that the import still writes exactly those rows (ids, texts, stored
timestamp strings, statuses, the search index). After a deliberate change to what is stored,
write a new one with ``.venv/bin/python -m tests.importing.snapshot`` and say why in the commit.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text, update

from bot.importing.run import import_file
from storage.engine import Database, sqlite_url
from storage.migrations import upgrade
from storage.models import Community, Thread
from storage.repos.conversation import ConversationRepo
from tests.importing.exports import SUPERGROUP, mixed_history, tg_chat, write

GOLDEN = Path(__file__).with_name("snapshot.json")
TABLES = ("community", "channel", "member", "message", "thread", "answer")
#: Columns set to the time of writing, not taken from the export: only their form is kept.
_NOW_COLUMNS = {("community", "created_at"), ("member", "created_at")}
_STORED_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


def _dce(channel: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"guild": {"id": "500", "name": "Expats"}, "channel": channel, "messages": messages}


def _dce_message(mid: str, content: str, author: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "type": "Reply" if "reference" in extra else "Default",
        "timestamp": f"2024-01-02T03:{int(mid) % 60:02d}:05.678+01:00",
        "content": content,
        "author": {"id": author, "name": f"user{author}", "isBot": author == "99"},
        **extra,
    }


def _discord_export() -> dict[str, Any]:
    ref = {"messageId": "1", "channelId": "600", "guildId": "500"}
    checked = [{"emoji": {"name": "✅"}, "count": 1, "users": [{"id": "10"}]}]
    return _dce(
        {"id": "600", "type": "GuildTextChat", "name": "help"},
        [
            _dce_message("1", "Where do I get a BSN as a student?", "10"),
            _dce_message("2", "At the gemeente desk, bring your contract.", "11", reference=ref),
            _dce_message("3", "I'm the bot, beep", "99"),
            _dce_message("4", "Does anyone know a good GP in Delft", "12"),
            _dce_message("5", "Zorgkaart lists GPs in Delft that take patients", "11"),
            _dce_message("6", "thanks, that worked!", "12"),
            _dce_message("7", "Can I pay the parking permit monthly?", "13"),
            _dce_message(
                "8",
                "Yes, monthly works",
                "11",
                reference={"messageId": "7", "channelId": "600", "guildId": "500"},
                reactions=checked,
            ),
        ],
    )


async def build(folder: Path) -> dict[str, Any]:
    """Import the exports into a fresh store in ``folder`` and return its dump."""
    db = Database(sqlite_url(folder / "copss.db"))
    try:
        await upgrade(db)
        await _live_state(db)
        stats = []
        main = write(folder / "main.json", tg_chat(mixed_history(360), type="private_supergroup"))
        stats.append(await import_file(db, "telegram", main, batch=50))
        other = {
            "chats": {
                "list": [{"name": "Other", "type": "private_group", "id": 77, "messages": []}]
            },
            "left_chats": {
                "list": [
                    {
                        "name": "Left",
                        "type": "public_supergroup",
                        "id": 88,
                        "messages": mixed_history(120, seed=3),
                    }
                ]
            },
        }
        second = write(folder / "second.json", other)
        stats.append(await import_file(db, "telegram", second))
        discord = write(folder / "discord.json", _discord_export())
        stats.append(await import_file(db, "discord", discord, batch=3))
        stats.append(await import_file(db, "telegram", main, batch=7))
        return {"stats": [asdict(s) for s in stats], **await dump(db)}
    finally:
        await db.close()


async def _live_state(db: Database) -> None:
    # The chat is served live: its community has synonyms of its own, one member opted out,
    # and a question the export also holds was captured live.
    chat = f"-100{SUPERGROUP}"
    async with db.session() as s:
        repo = ConversationRepo(s)
        live = await repo.ensure_channel("telegram", chat, None)
        await s.execute(
            update(Community)
            .where(Community.id == live.community_id)
            .values(settings={"synonyms": [["gp", "huisarts", "family doctor"]]})
        )
        opted = await repo.ensure_member("telegram", "9", "Nine")
        opted.opted_out = True
        asker = await repo.ensure_member("telegram", "2", "Two")
        msg, _ = await repo.add_message(
            live,
            "3",
            asker,
            "Where do I register my address in Amsterdam?",
            datetime(2023, 11, 14, 22, 20, tzinfo=UTC),
        )
        s.add(
            Thread(
                community_id=live.community_id,
                question_message_id=msg.id,
                question_text=msg.text,
                search_text="register address amsterdam",
                status="open",
                asked_at=msg.sent_at,
                tags=[],
            )
        )


async def dump(db: Database) -> dict[str, Any]:
    """Every row of the conversation tables and the search index, as stored."""
    out: dict[str, Any] = {}
    async with db.session() as s:
        for table in TABLES:
            result = await s.execute(text(f"SELECT * FROM {table} ORDER BY id"))
            columns = list(result.keys())
            rows = []
            for row in result:
                values = list(row)
                for i, column in enumerate(columns):
                    if (table, column) in _NOW_COLUMNS and _STORED_TIME.fullmatch(str(values[i])):
                        values[i] = "<time of writing>"
                rows.append(values)
            out[table] = {"columns": columns, "rows": rows}
        fts = await s.execute(text("SELECT rowid, text FROM search_fts ORDER BY rowid"))
        out["search_fts"] = [list(r) for r in fts]
    return out


def _main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        snapshot = asyncio.run(build(Path(folder)))
    GOLDEN.write_text(json.dumps(snapshot, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    _main()
