"""report.html: one self-contained page (inline CSS and SVG, no scripts, nothing fetched).

A Content-Security-Policy in the page forbids every script and every outside resource, so
the page shows the same offline as online and a browser never loads anything for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from bot.report import charts
from bot.report.metrics import ALL, CommunityHealth, Figures
from bot.report.output import Report

#: How many waiting questions the page lists per community (report.json has them all).
BACKLOG_SHOWN = 50
#: How many of the latest weeks with any activity the weekly table shows.
WEEKS_SHOWN = 26

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;padding:0 1em;
color:#222;background:#fff}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
.note{color:#666;font-size:.9em}svg{max-width:100%;height:auto;display:block;margin:.6em 0}
ol.backlog li{margin:.2em 0}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} h"


#: The summary table's rows: label and how to show the figure.
_ROWS: list[tuple[str, Callable[[Figures], str]]] = [
    ("Members active", lambda f: str(f.members_active)),
    ("Askers", lambda f: str(f.askers)),
    ("Answerers", lambda f: str(f.answerers)),
    ("Answers given", lambda f: str(f.answers)),
    ("Answers by the top 10% of answerers", lambda f: _pct(f.top_answerers_share)),
    ("Newcomers", lambda f: str(f.newcomers)),
    ("… who came back", lambda f: f"{f.newcomers_returned} ({_pct(_ratio(f))})"),
    ("Questions asked", lambda f: str(f.questions)),
    ("Answered", lambda f: f"{f.answered} ({_pct(f.answered_share)})"),
    ("Solved", lambda f: f"{f.solved} ({_pct(f.solved_share)})"),
    ("Median time to a first answer", lambda f: _hours(f.median_hours_to_first_answer)),
    ("Answers citing an official source", lambda f: _pct(f.official_share)),
]


def _ratio(f: Figures) -> float | None:
    return f.newcomers_returned / f.newcomers if f.newcomers else None


def _summary(health: CommunityHealth) -> str:
    scopes = [ALL, *health.platforms]
    head = "".join(f"<th>{escape(s)}</th>" for s in scopes)
    body = "".join(
        f"<tr><td>{escape(label)}</td>"
        + "".join(f"<td>{escape(show(health.figures[s]))}</td>" for s in scopes)
        + "</tr>"
        for label, show in _ROWS
    )
    return f"<table><tr><th>figure</th>{head}</tr>{body}</table>"


def _weekly_table(weekly: Sequence[Figures]) -> str:
    busy = [f for f in weekly if f.members_active or f.questions or f.answers]
    shown = busy[::-1][:WEEKS_SHOWN]
    rows = "".join(
        f"<tr><td>{f.start}</td><td>{f.members_active}</td><td>{f.askers}</td>"
        f"<td>{f.answerers}</td><td>{f.newcomers}</td><td>{f.questions}</td>"
        f"<td>{_pct(f.answered_share)}</td><td>{_pct(f.solved_share)}</td>"
        f"<td>{_hours(f.median_hours_to_first_answer)}</td><td>{_pct(f.official_share)}</td></tr>"
        for f in shown
    )
    return (
        f"<p class='note'>The latest {len(shown)} weeks with activity; report.json has every "
        "week.</p><table><tr><th>week of</th><th>active</th><th>askers</th><th>answerers</th>"
        "<th>newcomers</th><th>questions</th><th>answered</th><th>solved</th>"
        f"<th>first answer</th><th>official</th></tr>{rows}</table>"
    )


def _backlog(health: CommunityHealth) -> str:
    if not health.backlog:
        return "<p>Every question has an answer.</p>"
    items = []
    for w in health.backlog[:BACKLOG_SHOWN]:
        question = escape(w.question if len(w.question) <= 200 else w.question[:199] + "…")
        text = f'<a href="{escape(w.link)}">{question}</a>' if w.link else question
        items.append(
            f"<li>{text} <span class='note'>({escape(w.platform)}, "
            f"{w.asked_at:%Y-%m-%d %H:%M} UTC)</span></li>"
        )
    more = len(health.backlog) - BACKLOG_SHOWN
    tail = f"<p class='note'>… and {more} more in report.json.</p>" if more > 0 else ""
    return f"<ol class='backlog'>{''.join(items)}</ol>{tail}"


def _topics(health: CommunityHealth) -> str:
    rows = health.topics[ALL]
    if not rows:
        return "<p>No question matched a topic of the knowledge base.</p>"
    table = "".join(
        f"<tr><td>{escape(t.topic)}</td><td>{t.questions}</td><td>{t.answered}</td></tr>"
        for t in rows
    )
    chart = charts.topics(rows, f"topics-{health.community_id}")
    return (
        f"{chart}<table><tr><th>topic</th><th>questions</th><th>answered</th></tr>{table}</table>"
    )


def _silent_hours(hours: Sequence[int]) -> str:
    if not hours:
        return "someone answered in every hour of the day"
    return ", ".join(f"{h:02d}:00" for h in hours)


def _community(health: CommunityHealth) -> str:
    cid = health.community_id
    weekly = health.weekly[ALL]
    parts = [
        f"<h2 id='community-{cid}'>Community {cid}: {escape(health.name)}</h2>",
        f"<p class='note'>Platforms: {escape(', '.join(health.platforms) or 'none')}</p>",
        _summary(health),
    ]
    if weekly:
        parts += [
            "<h3>Over time</h3>",
            charts.questions_per_week(weekly, f"q-{cid}"),
            charts.people_per_week(weekly, f"p-{cid}"),
            charts.first_answer_per_week(weekly, f"f-{cid}"),
            _weekly_table(weekly),
        ]
    hours = health.hours[ALL]
    parts += [
        "<h3>Hours of the day</h3>",
        charts.by_hour(hours, f"h-{cid}"),
        f"<p>Hours (UTC) in which nobody answered: {_silent_hours(hours.without_answers)}.</p>",
        "<h3>Topics</h3>",
        _topics(health),
        f"<h3>Waiting for an answer ({len(health.backlog)})</h3>",
        _backlog(health),
    ]
    return "\n".join(parts)


_DEFINITIONS = """
<h2>What the figures mean</h2>
<ul class='note'>
<li>Only members count: never a bot, copss's own messages, copies relayed from a linked chat,
or deleted messages and questions.</li>
<li>Members active: wrote at least one message. Askers: asked at least one question.
Answerers: answered at least one (a reply to a question, in its thread, or to a bridged copy
of it; the asker's own replies are not answers).</li>
<li>Top 10% of answerers: the share of all answers given by the most active tenth of the
answerers (at least one person). High means the community leans on a few people.</li>
<li>Newcomers: members whose first message in this community (ever) falls in the period; they
came back when they wrote again at least 24 hours after that first message.</li>
<li>Answered: a member answered the question, or it was marked solved. Solved: the asker
reacted ✅ or said thanks, or an admin marked it solved. Time to a first answer: from the
question to the first member's answer, by the week the question was asked.</li>
<li>Topics: the knowledge base's tags, normalised with the community's synonyms, found in the
question. Official sources: answers that link to one of the configured domains.</li>
<li>Weeks start on Monday 00:00 UTC; hours are UTC.</li>
</ul>
"""


def render(report: Report) -> str:
    """The whole page."""
    since = f"since {report.since:%Y-%m-%d}" if report.since else "all history"
    index = "".join(
        f"<li><a href='#community-{h.community_id}'>{escape(h.name)}</a></li>"
        for h in report.communities
    )
    body = "\n".join(_community(h) for h in report.communities) or "<p>No communities yet.</p>"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>copss community health</title><style>{_CSS}</style></head><body>"
        "<h1>Community health</h1>"
        f"<p class='note'>{since}, as of {report.generated_at:%Y-%m-%d %H:%M} UTC. Official "
        f"sources: {escape(', '.join(report.official_domains))}.</p>"
        f"<ul>{index}</ul>{body}{_DEFINITIONS}</body></html>\n"
    )
