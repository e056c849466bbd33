"""``stats`` in chat: the last 30 days of the report's figures, as plain SQL finds them."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from tests.conftest import Harness


def _sql(path: Path, query: str) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute(query).fetchone()[0])
    finally:
        con.close()


async def test_stats_gives_the_reports_figures(copss: Harness, tmp_path: Path) -> None:
    q1 = await copss.say("Which supermarket sells cheap oat milk near Utrecht Centraal?", "alice")
    await copss.say("Lidl at Vredenburg, and see https://www.rijksoverheid.nl/oat", "bob", q1)
    await copss.say("Thanks, found it!", "alice", q1 + 1)
    q2 = await copss.say("Where can I park my bike overnight near Utrecht Centraal?", "carol")
    await copss.say("The Stationsplein garage, it is free for 24 hours.", "dave", q2)
    await copss.say("Does anyone know a good Dutch course in Utrecht for beginners?", "erin")
    copss.said()
    reply = (await copss.command("stats")).text
    db = tmp_path / "copss.db"
    human = "JOIN member u ON u.id = m.member_id WHERE u.is_bot = 0 AND m.deleted = 0"
    active = _sql(db, f"SELECT COUNT(DISTINCT m.member_id) FROM message m {human}")
    questions = _sql(
        db,
        "SELECT COUNT(*) FROM thread t JOIN message m ON m.id = t.question_message_id "
        f"{human} AND t.status != 'deleted'",
    )
    assert questions == 3 and active == 5  # copss's own replies are not a member's
    assert f"Questions: {questions}; answered: 2 (67%); solved: 1; still open: 1." in reply
    assert f"Members active in 30 days: {active}." in reply
    # bob and dave answered once each: the top 10% (one person) gave half of the answers.
    assert "Askers: 3; answerers: 2; the top 10% of answerers gave 50% of 2 answers" in reply
    assert "50% cite an official source" in reply
    assert "Newcomers: 5, 0 came back." in reply
    hours = re.search(r"Hours \(UTC\) nobody answered: ([0-9, -]+)\.", reply)
    assert hours is not None and hours.group(1).count("-") >= 1
    assert "Suggestions rated helpful: 0" in reply
