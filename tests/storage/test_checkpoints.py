"""Where catching up starts in each channel: after the newest message a member wrote (copss's
own replies do not count), or where an unfinished catch-up had to start, whichever is older;
counting the events stored and not handled yet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.engine import Database
from storage.repos.conversation import OWN_USER_ID, ConversationRepo, resume_after
from tests.engines import ENGINES, store_on

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


@pytest.mark.parametrize("engine", ENGINES)
async def test_checkpoints_count_members_and_unfinished_catch_ups(
    engine: str, tmp_path: Path
) -> None:
    async with store_on(engine, tmp_path) as db:
        async with db.session() as s:
            repo = ConversationRepo(s)
            general = await repo.ensure_channel("discord", "10", None)
            lobby = await repo.ensure_channel("discord", "11", None)
            forum = await repo.ensure_channel("discord", "12", "13")
            await repo.ensure_channel("discord", "14", None)  # nothing said there
            alice = await repo.ensure_member("discord", "100", "Alice")
            copss = await repo.ensure_member("discord", OWN_USER_ID, "copss", is_bot=True)
            other = await repo.ensure_member("telegram", "100", "Anna")
            tg = await repo.ensure_channel("telegram", "-5", None)
            await repo.add_message(general, "1000", alice, "hi", NOW)
            await repo.add_message(general, "1010", copss, "copss's answer", NOW)  # newest
            await repo.add_message(lobby, "990", alice, "hello", NOW)
            await repo.add_message(lobby, "995", None, "a forgotten member's", NOW)
            await repo.add_message(forum, "1020", copss, "only copss spoke here", NOW)
            await repo.add_message(tg, "7", other, "telegram", NOW)

        assert await resumes(db, "discord") == {("10", None, "1000"), ("11", None, "995")}

        # A catch-up starts in general after 900 and in the forum thread after 1015: those
        # count until it has read them, also where members' messages are newer.
        async with db.session() as s:
            await ConversationRepo(s).begin_catch_up(
                "discord", [("10", None, "900"), ("12", "13", "1015"), ("11", None, "999")]
            )
        found = await resumes(db, "discord")
        assert found == {("10", None, "900"), ("11", None, "995"), ("12", "13", "1015")}

        async with db.session() as s:
            await ConversationRepo(s).end_catch_up("discord", "10", None)
            await ConversationRepo(s).end_catch_up("discord", "12", "13")
        assert await resumes(db, "telegram") == {("-5", None, "7")}
        assert await resumes(db, "discord") == {("10", None, "1000"), ("11", None, "995")}


async def resumes(db: Database, platform: str) -> set[tuple[str, str | None, str | None]]:
    async with db.read() as s:
        rows = await ConversationRepo(s).checkpoints(platform)
    return {(chat, thread, resume_after(newest, note)) for chat, thread, newest, note in rows}
