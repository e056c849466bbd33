"""Every command on the console harness (the console user is an admin)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import MetaData, select, text

from bot.features.commands import all_commands
from storage.models import AuditLog, BridgeLink, FaqEntry, Member, Thread
from tests.conftest import Harness


async def test_help_lists_every_command(copss: Harness) -> None:
    reply = await copss.command("help")
    for cmd in all_commands():
        if cmd.name != "help":
            assert cmd.usage in reply.text


async def test_unknown_command_suggests_closest(copss: Harness) -> None:
    reply = await copss.command("stast")
    assert "Did you mean 'stats'?" in reply.text


async def test_ask_searches_without_opening_thread(copss: Harness) -> None:
    reply = await copss.command("ask", "how do I apply for DigiD")
    assert "DigiD" in reply.text and "https://" in reply.text
    reply = await copss.command("ask")
    assert "Usage: ask TEXT" in reply.text
    async with copss.db.session() as s:
        assert await s.scalar(select(Thread)) is None


async def test_solved_by_asker_accepts_answer(copss: Harness) -> None:
    q = await copss.say("Does anyone know a notary in Delft who speaks English?", "alice")
    a = await copss.say("Notariskantoor Delft Centrum does, ask for Mr. Jansen.", "bob", q)
    reply = await copss.command("solved", user="carol")
    assert "Usage" in reply.text  # not a reply to anything
    await copss.console.command("solved", user="alice", reply_to=a)
    await copss.settle()
    reply = await copss.console.pop(1)
    assert "Marked solved with that answer accepted" in reply.text
    async with copss.db.session() as s:
        thread = await s.scalar(select(Thread))
        assert thread is not None and thread.status == "solved" and thread.accepted_answer_id


async def test_unsolved_reopens(copss: Harness) -> None:
    q = await copss.say("Is there an English speaking dentist in Breda?", "alice")
    a = await copss.say("Tandarts Breda Zuid speaks English.", "bob", q)
    await copss.console.react(a, "✅", user="alice")
    await copss.console.command("unsolved", reply_to=q)
    await copss.settle()
    assert "answered again" in (await copss.console.pop(1)).text
    async with copss.db.session() as s:
        assert (await s.scalar(select(Thread.status))) == "answered"


async def test_optout_stops_recording_and_optin_resumes(copss: Harness) -> None:
    assert "no longer record" in (await copss.command("optout", user="dora")).text
    await copss.say("How do I get a BSN number?", "dora")
    assert copss.said() == []
    async with copss.db.session() as s:
        assert await s.scalar(select(Thread)) is None
    assert "again" in (await copss.command("optin", user="dora")).text
    await copss.say("How do I get a BSN number?", "dora")
    assert len(copss.said()) == 1


async def test_forget_me_leaves_no_row_naming_member(copss: Harness) -> None:
    q = await copss.say("Which gym in Utrecht has a sauna and is open late?", "zoltan")
    await copss.say("Basic-Fit Utrecht Centrum is open till 23:00.", "bob", q)
    b = await copss.say("Where can I find a late gym with sauna in Utrecht?", "carol")
    z = await copss.say("Try the SportCity in Leidsche Rijn, it has a sauna.", "zoltan", b)
    await copss.console.react(z, "👍", user="zoltan")
    await copss.settle()
    copss.said()
    reply = await copss.command("forget", "me", user="zoltan")
    assert "erased 2 of your messages, 1 of your questions" in reply.text
    async with copss.db.session() as s:
        assert await s.scalar(select(Member).where(Member.user_id == "zoltan")) is None
        meta = MetaData()
        await s.run_sync(lambda sync: meta.reflect(sync.connection()))
        for table in meta.tables.values():
            if table.name.startswith("search_"):
                continue
            rows = (await s.execute(select(table))).all()
            for row in rows:
                assert "zoltan" not in json.dumps([str(v) for v in row]).casefold(), table.name
        if copss.db.is_sqlite:  # PostgreSQL indexes the rows checked above
            fts = (await s.execute(text("SELECT text FROM search_fts"))).scalars().all()
            assert not any("sauna" in t and "late" in t and "open" in t for t in fts)
    assert "usage" in (await copss.command("forget", "everything", user="x")).text.casefold()


async def test_faq_admin_commands(copss: Harness) -> None:
    add = "bike-theft | What do I do if my bike is stolen? | Report it online. | https://www.politie.nl/"
    assert "Added" in (await copss.command("faq", f"add {add}")).text
    assert "exists already" in (await copss.command("faq", f"add {add}")).text
    assert "four parts" in (await copss.command("faq", "add x | y")).text
    assert "https://" in (await copss.command("faq", "add a-b | q | a | http://x")).text
    assert (
        "Updated aliases"
        in (await copss.command("faq", "edit bike-theft aliases fiets gestolen; bike stolen")).text
    )
    assert "not a date" in (await copss.command("faq", "edit bike-theft reviewed soon")).text
    shown = (await copss.command("faq", "show bike-theft")).text
    assert "fiets gestolen" in shown and "politie.nl" in shown
    await copss.say("my fiets gestolen, what should I do?", "alice")
    [reply] = copss.said()
    assert "Report it online" in reply.text
    listed = (await copss.command("faq", "list")).text
    assert "bike-theft" in listed and "bsn" in listed.casefold()
    assert "Every FAQ entry" in (await copss.command("faq", "stale")).text
    await copss.command("faq", "edit bike-theft reviewed 2020-01-01")
    assert "bike-theft" in (await copss.command("faq", "stale")).text
    assert "Removed" in (await copss.command("faq", "remove bike-theft")).text
    assert "no FAQ entry" in (await copss.command("faq", "show bike-theft")).text
    assert "Which FAQ action" in (await copss.command("faq", "frobnicate")).text


async def test_threshold_show_set_validate(copss: Harness) -> None:
    assert "0.82" in (await copss.command("threshold")).text
    assert "Set the suggest level to 0.30" in (await copss.command("threshold", "suggest 0.3")).text
    assert "between 0 and 1" in (await copss.command("threshold", "answer 7")).text
    assert "must not exceed" in (await copss.command("threshold", "answer 0.2")).text
    assert "0.30" in (await copss.command("threshold")).text


async def test_synonyms_extend_matching(copss: Harness) -> None:
    q = await copss.say("Where is the IND desk for biometrics?", "alice")
    await copss.say("At the Expatcenter on the Zuidas, book online first.", "bob", q)
    await copss.say("Which immigratiedienst office takes biometrics?", "carol")
    before = copss.said()
    reply = await copss.command("synonyms", "add ind, immigratiedienst, immigration service")
    assert "re-indexed" in reply.text
    assert "immigratiedienst" in (await copss.command("synonyms")).text
    await copss.say("Which immigration service office takes biometrics?", "dave")
    after = copss.said()
    assert any("Zuidas" in r.text for r in after)
    assert not any("Zuidas" in r.text for r in before)
    assert "No synonym group" in (await copss.command("synonyms", "remove nothing")).text
    assert "updated" in (await copss.command("synonyms", "remove ind")).text


async def test_stats_audit_and_export(copss: Harness, tmp_path: Path) -> None:
    q = await copss.say("How late does the Albert Heijn at Utrecht Centraal close?", "alice")
    await copss.say("It closes at 22:00 every day.", "bob", q)
    stats = (await copss.command("stats")).text
    assert "Questions: 1; answered: 1 (100%)" in stats
    assert "Median time to a first answer" in stats
    exported = (await copss.command("export")).text
    assert "answered questions" in exported
    files = sorted((tmp_path / "exports").iterdir())
    assert [f.suffix for f in files] == [".json", ".md"]
    data = json.loads(files[0].read_text())
    assert data["threads"][0]["answers"] == ["It closes at 22:00 every day."]
    assert len(data["faq"]) >= 40
    assert "## Answered questions" in files[1].read_text()
    # Members' words are readable by the operator only.
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    log = (await copss.command("audit")).text
    assert "stats" in log and "export" in log
    async with copss.db.session() as s:
        rows = (await s.scalars(select(AuditLog))).all()
    assert {r.command for r in rows} >= {"stats", "export"}
    assert all(r.actor.startswith("console:you") for r in rows)


async def test_link_needs_confirmation_from_other_side(copss: Harness) -> None:
    reply = await copss.command("link", "telegram:-100555")
    assert "must confirm" in reply.text and "link console:console" in reply.text
    listed = (await copss.command("links")).text
    assert "telegram:-100555 (pending)" in listed
    assert "Name the other side" in (await copss.command("link", "nowhere")).text
    assert "Unlinked" in (await copss.command("unlink", "telegram:-100555")).text
    assert "not linked" in (await copss.command("unlink", "telegram:-100555")).text
    async with copss.db.session() as s:
        assert await s.scalar(select(BridgeLink)) is None


async def test_delete_everywhere_marks_deleted(copss: Harness) -> None:
    q = await copss.say("Is the Rijksmuseum free with a museumkaart this month?", "alice")
    await copss.console.command("delete", "everywhere", reply_to=q)
    await copss.settle()
    assert "1 place" in (await copss.console.pop(1)).text
    async with copss.db.session() as s:
        thread = await s.scalar(select(Thread))
    assert thread is not None and thread.status == "deleted"


async def test_rate_limit_and_repeats(copss: Harness) -> None:
    first = await copss.command("ask", "how do I get a BSN")
    assert "BSN" in first.text
    await copss.console.command("ask", "how do I get a BSN", user="you")
    await copss.settle()
    assert copss.said() == []  # the same answer is not repeated
    for i in range(9):
        await copss.console.command("ask", f"digid question {i}", user="spammer")
    await copss.settle()
    said = copss.said()
    assert sum("faster than I can answer" in r.text for r in said) == 1
    assert len(said) == 7  # six answers, one warning; the rest ignored


async def test_invisible_characters_stripped_before_parsing(copss: Harness) -> None:
    reply = await copss.command("he\u200blp\u202e")
    assert "Commands:" in reply.text


async def test_faq_entries_in_store(copss: Harness) -> None:
    async with copss.db.session() as s:
        count = len((await s.scalars(select(FaqEntry))).all())
    assert count >= 40


async def test_faq_list_cuts_long_questions_at_a_word(copss: Harness) -> None:
    long = "How do I register at the municipality when I move to the Netherlands with children?"
    await copss.command("faq", f"add long-one | {long} | Like this. | https://example.nl/x")
    listed = (await copss.command("faq", "list")).text
    [line] = [ln for ln in listed.splitlines() if "long-one" in ln]
    shown = line.split(" — ", 1)[1]
    assert shown.endswith("…") and long.startswith(shown[:-1])
    assert long[len(shown) - 1] == " "  # the cut falls between words
