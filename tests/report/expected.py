"""The report's figures computed straight from the SQLite file with plain SQL and Python,
independently of bot.report: the tests compare the two."""

from __future__ import annotations

import math
import re
import sqlite3
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _official(text: str) -> bool:
    # The test data's official links: a host that is one of these or ends in ".<domain>".
    hosts = re.findall(r"(?:https?://)?((?:[a-z0-9-]+\.)+[a-z]{2,})", text, re.I)
    return any(
        h.lower().removeprefix("www.") in {"amsterdam.nl", "belastingdienst.nl", "ind.nl", "rdw.nl"}
        for h in hosts
    )


class Expected:
    """Rows of one community read with SQL (weeks by SQLite's own date arithmetic)."""

    def __init__(self, path: Path, community: int, now: datetime) -> None:
        con = sqlite3.connect(path)
        monday = "date({0}, 'weekday 0', '-6 days')"
        human = "u.is_bot = 0 AND m.deleted = 0"
        n = now.strftime("%Y-%m-%d %H:%M:%S.%f")
        self.messages = con.execute(
            f"SELECT m.member_id, c.platform, {monday.format('m.sent_at')} FROM message m "
            "JOIN channel c ON c.id = m.channel_id JOIN member u ON u.id = m.member_id "
            f"WHERE c.community_id = ? AND {human} AND m.origin IS NULL AND m.sent_at <= ?",
            (community, n),
        ).fetchall()
        self.firsts = con.execute(
            f"SELECT u.id, c.platform, {monday.format('MIN(m.sent_at)')}, "
            "(julianday(MAX(m.sent_at)) - julianday(MIN(m.sent_at))) * 24 FROM message m "
            "JOIN channel c ON c.id = m.channel_id JOIN member u ON u.id = m.member_id "
            f"WHERE c.community_id = ? AND {human} AND m.origin IS NULL GROUP BY u.id "
            "HAVING MIN(m.sent_at) <= ?",
            (community, n),
        ).fetchall()
        self.questions = con.execute(
            f"SELECT t.id, c.platform, m.member_id, {monday.format('t.asked_at')}, t.status, "
            "t.asked_at, c.chat_id, m.platform_message_id FROM thread t "
            "JOIN message m ON m.id = t.question_message_id JOIN channel c ON c.id = m.channel_id "
            f"JOIN member u ON u.id = m.member_id WHERE t.community_id = ? AND {human} "
            "AND t.status != 'deleted' AND t.asked_at <= ?",
            (community, n),
        ).fetchall()
        self.answers = con.execute(
            f"SELECT a.thread_id, m.member_id, c.platform, {monday.format('a.answered_at')}, "
            "m.text, a.answered_at FROM answer a JOIN thread t ON t.id = a.thread_id "
            "JOIN message m ON m.id = a.message_id JOIN channel c ON c.id = m.channel_id "
            f"JOIN member u ON u.id = m.member_id WHERE t.community_id = ? AND {human} "
            "AND t.status != 'deleted' AND a.answered_at <= ?",
            (community, n),
        ).fetchall()
        con.close()
        self.first_answer: dict[int, datetime] = {}
        for tid, *_, at in self.answers:
            if tid not in self.first_answer or _t(at) < self.first_answer[tid]:
                self.first_answer[tid] = _t(at)

    def answered(self, thread: int, status: str) -> bool:
        return thread in self.first_answer or status == "solved"

    def figures(self, platform: str | None = None, week: str | None = None) -> dict[str, Any]:
        """The figures of the community (or one platform of it), of all time or one week
        (its Monday, ``YYYY-MM-DD``)."""

        def keep(p: str, w: str) -> bool:
            return platform in (None, p) and week in (None, w)

        msgs = [m for m in self.messages if keep(m[1], m[2])]
        news = [f for f in self.firsts if keep(f[1], f[2])]
        qs = [q for q in self.questions if keep(q[1], q[3])]
        ans = [a for a in self.answers if keep(a[2], a[3])]
        per: dict[int, int] = {}
        for a in ans:
            per[a[1]] = per.get(a[1], 0) + 1
        ranked = sorted(per.values(), reverse=True)
        k = max(1, math.ceil(len(ranked) / 10))
        answered = [q for q in qs if self.answered(q[0], q[4])]
        solved = [q for q in qs if q[4] == "solved"]
        waits = [
            max(0.0, (self.first_answer[q[0]] - _t(q[5])).total_seconds() / 3600)
            for q in qs
            if q[0] in self.first_answer
        ]
        official = [a for a in ans if _official(a[4])]
        return {
            "members_active": len({m[0] for m in msgs}),
            "askers": len({q[2] for q in qs}),
            "answerers": len(per),
            "answers": len(ans),
            "top_answerers_share": sum(ranked[:k]) / len(ans) if ans else None,
            "newcomers": len(news),
            "newcomers_returned": sum(1 for f in news if f[3] >= 24),
            "questions": len(qs),
            "answered": len(answered),
            "solved": len(solved),
            "unanswered": len(qs) - len(answered),
            "answered_share": len(answered) / len(qs) if qs else None,
            "solved_share": len(solved) / len(qs) if qs else None,
            "median_hours_to_first_answer": statistics.median(waits) if waits else None,
            "official_answers": len(official),
            "official_share": len(official) / len(ans) if ans else None,
        }

    def hours(self, platform: str | None = None) -> tuple[list[int], list[int]]:
        asked = [0] * 24
        given = [0] * 24
        for q in self.questions:
            if platform in (None, q[1]):
                asked[_t(q[5]).hour] += 1
        for a in self.answers:
            if platform in (None, a[2]):
                given[_t(a[5]).hour] += 1
        return asked, given

    def backlog(self) -> list[tuple[int, str | None]]:
        """(thread id, link) of the unanswered questions, newest first."""
        waiting = [q for q in self.questions if not self.answered(q[0], q[4])]
        waiting.sort(key=lambda q: (q[5], q[0]), reverse=True)
        out = []
        for q in waiting:
            link = None
            if q[1] == "telegram" and q[6].startswith("-100"):
                link = f"https://t.me/c/{q[6][4:]}/{q[7]}"
            elif q[1] == "discord":
                link = f"https://discord.com/channels/999/{q[6]}/{q[7]}"
            out.append((q[0], link))
        return out
