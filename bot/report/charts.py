"""Charts of the report, drawn by matplotlib's SVG backend into inline ``<svg>`` markup.

Text stays text (``svg.fonttype: none``) so the charts are small and sharp; each chart gets
its own ``svg.hashsalt`` so the ids matplotlib makes (clip paths) never repeat between the
charts of one page.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bot.report.metrics import Figures, Hours, Topic

_ID = re.compile(r'\b(id)="([^"#]+)"')
_REF = re.compile(r'((?:xlink:)?href="|url\()#([^")]+)')
_BLUE, _ORANGE, _GREEN, _GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#bbbbbb"
_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _svg(fig: Figure, salt: str) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    # Inline markup: no XML declaration or DOCTYPE (which names an external DTD).
    text = text[text.index("<svg") :]
    # matplotlib numbers its groups per figure (figure_1, axes_1, ...): prefix every id, and
    # every reference to one, so that ids stay unique on a page of several charts.
    text = _ID.sub(lambda m: f'{m.group(1)}="{salt}-{m.group(2)}"', text)
    return _REF.sub(lambda m: f"{m.group(1)}#{salt}-{m.group(2)}", text)


def _figure(width: float = 7.5, height: float = 2.6) -> Figure:
    with matplotlib.rc_context(_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _labels(weeks: Sequence[date]) -> list[str]:
    return [w.strftime("%d %b") for w in weeks]


def _thin_ticks(ax: Axes, labels: list[str]) -> None:
    step = max(1, math.ceil(len(labels) / 8))
    positions = list(range(0, len(labels), step))
    ax.set_xticks(positions, [labels[i] for i in positions])


def questions_per_week(weekly: Sequence[Figures], salt: str) -> str:
    """Stacked bars: answered and unanswered questions per week."""
    weeks = [f.start for f in weekly if f.start]
    labels = _labels(weeks)
    x = list(range(len(weekly)))
    answered = [f.answered for f in weekly]
    fig = _figure()
    ax = fig.add_subplot()
    ax.bar(x, answered, color=_GREEN, label="answered")
    ax.bar(x, [f.unanswered for f in weekly], bottom=answered, color=_GREY, label="unanswered")
    ax.set_ylabel("questions")
    ax.set_title("Questions per week (week starting)", loc="left")
    _thin_ticks(ax, labels)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, salt)


def people_per_week(weekly: Sequence[Figures], salt: str) -> str:
    """Lines: members active, askers and answerers per week."""
    labels = _labels([f.start for f in weekly if f.start])
    x = list(range(len(weekly)))
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(x, [f.members_active for f in weekly], color=_BLUE, marker="o", label="active")
    ax.plot(x, [f.askers for f in weekly], color=_ORANGE, marker="o", label="askers")
    ax.plot(x, [f.answerers for f in weekly], color=_GREEN, marker="o", label="answerers")
    ax.set_ylabel("members")
    ax.set_ylim(bottom=0)
    ax.set_title("Members per week", loc="left")
    _thin_ticks(ax, labels)
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, salt)


def first_answer_per_week(weekly: Sequence[Figures], salt: str) -> str:
    """Line: median hours to a first answer per week (gaps where nothing was answered)."""
    labels = _labels([f.start for f in weekly if f.start])
    x = list(range(len(weekly)))
    hours = [
        f.median_hours_to_first_answer
        if f.median_hours_to_first_answer is not None
        else float("nan")
        for f in weekly
    ]
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(x, hours, color=_BLUE, marker="o")
    ax.set_ylabel("hours")
    ax.set_ylim(bottom=0)
    ax.set_title("Median time to a first answer, by week asked", loc="left")
    _thin_ticks(ax, labels)
    return _svg(fig, salt)


def by_hour(hours: Hours, salt: str) -> str:
    """Bars: questions asked and answers given per hour of the day (UTC)."""
    x = list(range(24))
    fig = _figure()
    ax = fig.add_subplot()
    ax.bar([h - 0.2 for h in x], hours.questions, width=0.4, color=_ORANGE, label="questions")
    ax.bar([h + 0.2 for h in x], hours.answers, width=0.4, color=_GREEN, label="answers")
    for h in hours.without_answers:
        ax.axvspan(h - 0.5, h + 0.5, color="#f3d6d6", zorder=0)
    ax.set_xticks(x, [f"{h:02d}" for h in x])
    ax.set_xlabel("hour of the day (UTC); shaded: nobody answered")
    ax.set_title("Questions and answers by hour", loc="left")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, salt)


def topics(rows: Sequence[Topic], salt: str, limit: int = 12) -> str:
    """Horizontal bars: questions per topic (the most asked), answered part in green."""
    shown = list(rows[:limit])[::-1]
    fig = _figure(height=max(1.6, 0.28 * len(shown) + 0.8))
    ax = fig.add_subplot()
    y = list(range(len(shown)))
    ax.barh(y, [t.questions for t in shown], color=_GREY, label="asked")
    ax.barh(y, [t.answered for t in shown], color=_GREEN, label="answered")
    ax.set_yticks(y, [t.topic for t in shown])
    ax.set_title("Topics", loc="left")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, salt)
