"""Importing into a store: threads as live capture stores them, idempotent, attached to the
live chat's community, nothing written from a broken file, found by a running copss; on
SQLite and on PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text

from bot.importing import run, telegram_export
from bot.importing.gcpolicy import collector_paused
from bot.importing.records import ImportedMessage, ImportFileError
from bot.importing.run import first_pass, import_file
from bot.importing.threads import ThreadBuilder, Verdict
from bot.importing.writer import Writer
from faq.matcher import LexicalMatcher
from storage.engine import Database
from storage.models import Answer, Channel, Community, Member, Message, Thread
from storage.repos.conversation import ConversationRepo
from storage.repos.search import SearchRepo
from tests.conftest import Harness
from tests.engines import ENGINES, postgres_database, store_on
from tests.importing.exports import (
    SUPERGROUP,
    bike_history,
    mixed_history,
    tg_chat,
    tg_message,
    write,
)
from tests.test_cli import copss as run_copss

TABLES = (Community, Channel, Member, Message, Thread, Answer)


async def counts(db: Database) -> dict[str, int]:
    async with db.session() as s:
        found = {
            t.__tablename__: int(await s.scalar(select(func.count()).select_from(t)) or 0)
            for t in TABLES
        }
        if db.is_sqlite:
            found["search_fts"] = int(await s.scalar(text("SELECT count(*) FROM search_fts")) or 0)
    return found


async def find(db: Database, question: str) -> Thread | None:
    """The thread the matcher ranks first for ``question`` in the imported chat's community."""
    async with db.session() as s:
        community = await s.scalar(
            select(Channel.community_id).where(Channel.chat_id == f"-100{SUPERGROUP}")
        )
        matches = await LexicalMatcher().match(SearchRepo(s), question, community_id=community)
        if not matches or matches[0].kind != "thread":
            return None
        return await s.get(Thread, matches[0].ref_id)


async def test_threads_answers_solved_and_reimport(store: Database, tmp_path: Path) -> None:
    path = write(tmp_path / "result.json", tg_chat(bike_history()))
    stats = await import_file(store, "telegram", path)
    assert (stats.read, stats.messages, stats.questions, stats.answers) == (6, 6, 2, 2)
    async with store.session() as s:
        threads = {t.question_text: t for t in (await s.scalars(select(Thread))).all()}
        milk = threads["Where can I buy cheap oat milk near Utrecht Centraal?"]
        bike = threads["How do I register my bicycle against theft in Amsterdam?"]
        # Solved by the asker's thanks in reply, and by the asker's ✅ on an unthreaded answer.
        assert milk.status == "solved" and bike.status == "solved"
        assert milk.accepted_answer_id is not None and bike.accepted_answer_id is not None
        assert milk.search_text and "oat" in milk.search_text
        answer = await s.get(Answer, bike.accepted_answer_id)
        assert answer is not None
        said = await s.get(Message, answer.message_id)
        assert said is not None and said.platform_message_id == "6"
        assert bike.first_answer_at == said.sent_at
        if store.is_sqlite:
            fts = text("SELECT rowid FROM search_fts WHERE search_fts MATCH 'oat'")
            assert [r[0] for r in await s.execute(fts)] == [milk.id * 2]
    found = await find(store, "where to buy cheap oat milk in utrecht centraal?")
    assert found is not None and found.id == milk.id
    before = await counts(store)
    again = await import_file(store, "telegram", path)
    assert (again.messages, again.questions, again.answers, again.solved) == (0, 0, 0, 0)
    assert await counts(store) == before


async def test_attaches_to_the_live_chats_community(store: Database, tmp_path: Path) -> None:
    chat = f"-100{SUPERGROUP}"
    async with store.session() as s:
        live = await ConversationRepo(s).ensure_channel("telegram", chat, None)
        community = live.community_id
        # A question captured live that the history answers.
        member = await ConversationRepo(s).ensure_member("telegram", "3", "Carol")
        msg, _ = await ConversationRepo(s).add_message(
            live,
            "2",
            member,
            "Where can I buy cheap oat milk near Utrecht Centraal?",
            datetime(2023, 11, 14, 22, 14, 20, tzinfo=UTC),
        )
        s.add(
            Thread(
                community_id=community,
                question_message_id=msg.id,
                question_text=msg.text,
                search_text="buy cheap oat milk",
                status="open",
                asked_at=msg.sent_at,
                tags=[],
            )
        )
    before = await counts(store)
    stats = await import_file(
        store, "telegram", write(tmp_path / "r.json", tg_chat(bike_history()))
    )
    assert stats.channels == 0 and stats.messages == 5
    after = await counts(store)
    assert after["community"] == before["community"] and after["channel"] == before["channel"]
    async with store.session() as s:
        assert set((await s.scalars(select(Thread.community_id))).all()) == {community}
        live_thread = await s.scalar(select(Thread).where(Thread.question_message_id == msg.id))
        assert live_thread is not None and live_thread.status == "solved"
        assert await s.scalar(select(func.count(Thread.id))) == 2


async def test_topic_joins_the_chat_community_and_new_chat_gets_its_own(
    store: Database, tmp_path: Path
) -> None:
    async with store.session() as s:
        live = await ConversationRepo(s).ensure_channel("telegram", "-5", None)
    path = write(
        tmp_path / "two.json",
        {
            "chats": {
                "about": "",
                "list": [
                    {
                        "name": "Known",
                        "type": "private_group",
                        "id": 5,
                        "messages": [
                            tg_message(1, "How do I apply for a parking permit in Utrecht?")
                        ],
                    },
                    {
                        "name": "New",
                        "type": "private_group",
                        "id": 6,
                        "messages": [
                            tg_message(1, "How do I apply for a parking permit in Utrecht?")
                        ],
                    },
                ],
            }
        },
    )
    await import_file(store, "telegram", path)
    async with store.session() as s:
        rows = {c: k for c, k in await s.execute(select(Channel.chat_id, Channel.community_id))}
    assert rows["-5"] == live.community_id and rows["-6"] != live.community_id


async def test_opted_out_members_are_left_out(store: Database, tmp_path: Path) -> None:
    async with store.session() as s:
        m = await ConversationRepo(s).ensure_member("telegram", "2", "Bob")
        m.opted_out = True
    stats = await import_file(
        store, "telegram", write(tmp_path / "r.json", tg_chat(bike_history()))
    )
    assert stats.skipped == 2
    async with store.session() as s:
        ids = set((await s.scalars(select(Message.platform_message_id))).all())
    assert ids == {"2", "4", "5", "6"}


async def test_broken_file_writes_nothing(store: Database, tmp_path: Path) -> None:
    whole = write(tmp_path / "w.json", tg_chat(bike_history() * 1)).read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(whole[: len(whole) - 30])
    before = await counts(store)
    with pytest.raises(ImportFileError, match="ends too early"):
        await import_file(store, "telegram", cut)
    assert await counts(store) == before


async def test_an_export_the_first_pass_kept_is_not_read_again(
    store: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "r.json", tg_chat(mixed_history(200)))
    checked = first_pass("telegram", path)
    path.unlink()  # the import stores what the first pass kept
    stats = await import_file(store, "telegram", path, checked=checked)
    assert stats.read == checked.count > 150
    whole = await counts(store)
    # An export too large to keep is read again, and stores the same.
    monkeypatch.setattr(run, "KEEP", 0)
    again = write(tmp_path / "again.json", tg_chat(mixed_history(200)))
    async with store_on("sqlite" if store.is_sqlite else "postgres", tmp_path / "b") as other:
        checked = first_pass("telegram", again)
        assert checked.take() is None
        assert (await import_file(other, "telegram", again, checked=checked)).read == stats.read
        assert await counts(other) == whole


async def test_import_into_the_store_of_a_running_copss(copss: Harness, tmp_path: Path) -> None:
    # copss keeps answering on its store while a history goes in, batch by batch.
    other = write(tmp_path / "other.json", tg_chat(mixed_history(1000), id=SUPERGROUP + 1))
    importing = asyncio.create_task(import_file(copss.db, "telegram", other, batch=5))
    await asyncio.sleep(0)
    await copss.say("How do I get a BSN number?", user="alice")
    assert not importing.done(), "the import was still under way"
    replies = copss.said()
    # On PostgreSQL the answer may wait for a retry of its handler (a deadlock or
    # serialization failure beside the import's inserts re-runs it after a short wait).
    for _ in range(200):
        if replies:
            break
        await asyncio.sleep(0.1)
        replies = copss.said()
    assert replies, "copss answered while the import ran"
    assert (await importing).messages > 900
    path = write(tmp_path / "result.json", tg_chat(bike_history()))
    stats = await import_file(copss.db, "telegram", path, batch=2)
    assert stats.questions == 2
    async with copss.db.session() as s:
        community = await s.scalar(
            select(Channel.community_id).where(Channel.chat_id == f"-100{SUPERGROUP}")
        )
        matches = await LexicalMatcher().match(
            SearchRepo(s),
            "where to buy cheap oat milk in utrecht centraal?",
            community_id=community,
        )
        top = await s.get(Thread, matches[0].ref_id)
    assert matches[0].kind == "thread" and top is not None and "oat milk" in top.question_text


@asynccontextmanager
async def cli_store(engine: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The store ``copss`` commands use: the SQLite file in COPSS_HOME, or a fresh
    PostgreSQL database (COPSS_DATABASE_URL)."""
    if engine == "sqlite":
        yield
        return
    async with postgres_database() as db:
        monkeypatch.setenv("COPSS_DATABASE_URL", db.url.render_as_string(hide_password=False))
        yield


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
async def test_copss_import_then_ask_finds_the_thread(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with cli_store(engine, monkeypatch):
        await asyncio.to_thread(_import_then_ask, tmp_path)


def _import_then_ask(tmp_path: Path) -> None:
    path = write(tmp_path / "result.json", tg_chat(bike_history()))
    out = run_copss(tmp_path, "import", "telegram", str(path))
    assert out.returncode == 0, out.stderr
    assert "6 messages read, 6 new; 2 questions, 2 answers, 2 solved" in out.stdout
    again = run_copss(tmp_path, "import", "telegram", str(path), "--quiet")
    assert "0 new; 0 questions, 0 answers, 0 solved" in again.stdout
    asked = run_copss(tmp_path, "ask", "where to buy cheap oat milk in utrecht centraal?", "--json")
    assert asked.returncode == 0, asked.stderr
    first = json.loads(asked.stdout)["matches"][0]
    assert first["kind"] == "thread" and "oat milk" in first["title"]


@pytest.mark.slow
def test_copss_import_of_a_truncated_file_says_where(tmp_path: Path) -> None:
    whole = write(tmp_path / "w.json", tg_chat(bike_history())).read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(whole[:-30])
    out = run_copss(tmp_path, "import", "telegram", str(cut))
    assert out.returncode == 2
    assert "ends too early" in out.stderr and "near byte" in out.stderr
    assert "nothing was imported" in out.stderr
    assert not (tmp_path / "home" / "copss.db").exists()


async def test_a_failed_batch_stops_the_import_and_a_rerun_completes_it(
    store: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write that fails stops the import with its error, the batches before it stay, and
    # importing again adds the rest.
    path = write(tmp_path / "mixed.json", tg_chat(mixed_history(200)))
    stored = Writer._store
    calls = []

    def failing(
        self: Writer, conn: Connection, batch: list[ImportedMessage], v: list[Verdict]
    ) -> None:
        calls.append(len({m.message_id for m in batch}))
        if len(calls) == 3:
            raise RuntimeError("disk full")
        stored(self, conn, batch, v)

    monkeypatch.setattr(Writer, "_store", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        await import_file(store, "telegram", path, batch=40)
    assert len(calls) == 3
    async with store.session() as s:
        kept = await s.scalar(select(func.count(Message.id)))
    assert kept == calls[0] + calls[1]
    monkeypatch.setattr(Writer, "_store", stored)
    rest = await import_file(store, "telegram", path, batch=40)
    assert rest.messages > 0
    whole = await counts(store)

    async with store_on("sqlite" if store.is_sqlite else "postgres", tmp_path / "clean") as clean:
        await import_file(clean, "telegram", path, batch=40)
        assert await counts(clean) == whole


async def test_the_collector_is_paused_during_an_import_only(
    store: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gc.isenabled()
    seen = []
    feed = ThreadBuilder.feed
    parse = telegram_export._parse

    def watched(self: ThreadBuilder, m: ImportedMessage) -> Verdict:
        seen.append(("judging", gc.isenabled()))
        return feed(self, m)

    def read(*args: Any) -> ImportedMessage | None:
        seen.append(("reading", gc.isenabled()))
        return parse(*args)

    monkeypatch.setattr(ThreadBuilder, "feed", watched)
    monkeypatch.setattr(telegram_export, "_parse", read)
    path = write(tmp_path / "r.json", tg_chat(bike_history()))
    await import_file(store, "telegram", path)
    assert {"judging", "reading"} == {what for what, _ in seen}
    assert not any(enabled for _, enabled in seen)
    assert gc.isenabled()
    # Paused before (by the caller), paused after.
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
