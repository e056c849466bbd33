"""Migration 3 parts a store whose chats all shared one community."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from faq.normalize import search_text
from storage.engine import Database
from storage.legacy_migrations import _communities_per_chat
from storage.migrations import DEFAULT_COMMUNITY
from storage.models import BridgeLink, Channel, Community, FaqEntry, Member, Message, Thread

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def test_shared_community_is_split_by_chat_and_links(db: Database) -> None:
    async with db.session() as s:
        default = await s.scalar(select(Community).where(Community.name == DEFAULT_COMMUNITY))
        assert default is not None
        default.settings = {"answer_at": 0.9}
        asker = Member(platform="telegram", user_id="1", display_name="ann")
        s.add(asker)
        channels = {
            key: Channel(community_id=default.id, platform=p, chat_id=c, thread_id=t)
            for key, (p, c, t) in {
                "tg": ("telegram", "-100", ""),
                "tg-topic": ("telegram", "-100", "7"),
                "dc": ("discord", "55", ""),
                "other": ("telegram", "-200", ""),
            }.items()
        }
        s.add_all(channels.values())
        await s.flush()
        s.add(
            BridgeLink(
                channel_a_id=channels["tg"].id, channel_b_id=channels["dc"].id, status="active"
            )
        )
        for key, channel in channels.items():
            m = Message(
                channel_id=channel.id,
                platform_message_id="1",
                member_id=asker.id,
                text=f"question in {key}?",
                sent_at=NOW,
            )
            s.add(m)
            await s.flush()
            s.add(
                Thread(
                    community_id=default.id,
                    question_message_id=m.id,
                    question_text=m.text,
                    search_text=search_text([m.text]),
                    asked_at=NOW,
                )
            )
        s.add(
            FaqEntry(
                community_id=default.id, slug="local", question="q?", answer="a", search_text="q"
            )
        )
        default_id = default.id

    async with db.engine.begin() as conn:
        await conn.run_sync(_communities_per_chat)

    async with db.session() as s:
        of = dict((await s.execute(select(Channel.chat_id, Channel.community_id))).all())
        threads = dict((await s.execute(select(Thread.question_text, Thread.community_id))).all())
        entries = (await s.execute(select(FaqEntry.community_id, FaqEntry.slug))).all()
        settings = dict((await s.execute(select(Community.id, Community.settings))).all())
    # The linked Telegram chat (with its topic) and Discord channel keep the old community.
    assert of["-100"] == of["55"] == default_id
    assert of["-200"] != default_id
    for text, community in threads.items():
        assert community == (of["-200"] if "other" in text else default_id)
    assert sorted(entries) == sorted([(default_id, "local"), (of["-200"], "local")])
    assert settings[of["-200"]] == {"answer_at": 0.9}
