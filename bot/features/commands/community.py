"""Admin commands for the community: threshold, synonyms, stats, audit, unsolved, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from bot.events import Outgoing
from bot.features.bridge import queue_copy_deletions
from bot.features.commands.base import Command, Invocation, UsageError, split_words
from bot.features.commands.member import thread_for_reply
from bot.features.commands.outbox import in_community
from bot.features.indexing import reindex_community
from bot.features.settings import (
    ANSWER_AT,
    LEARNED,
    SUGGEST_AT,
    SYNONYMS,
    learned_answer_at,
    update_settings,
)
from bot.report.metrics import ALL, community_health
from bot.report.official import OfficialSources
from faq.normalize import clean
from storage.models import (
    AuditLog,
    Channel,
    Message,
    OutboxMessage,
    Suggestion,
)
from storage.repos.conversation import ConversationRepo
from storage.repos.threads import ThreadRepo

LEVELS = {"answer": ANSWER_AT, "suggest": SUGGEST_AT}
#: The period ``stats`` sums up (``copss report`` has every week).
STATS_PERIOD = timedelta(days=30)


def _describe_levels(inv: Invocation) -> str:
    # A level set in chat wins over the config file's; say which one is in force and why.
    gate, defaults = inv.settings.gate, inv.services.gate
    raw = inv.community.settings or {}
    parts = []
    learned = learned_answer_at(raw, defaults)
    for word, key in LEVELS.items():
        now = getattr(gate, key)
        config = getattr(defaults, key)
        if key in raw:
            where = f"set in this chat; the default is {config:.2f}"
        elif key == ANSWER_AT and learned is not None:
            where = (
                f"learned from {raw[LEARNED]['labels']} ✅/❌ in this community; "
                f"the default is {config:.2f}"
            )
        else:
            where = "the default"
        parts.append(f"{word} {now:.2f} ({where})")
    scale = (
        "the cosine similarity of the question's and the match's sentence embeddings"
        if defaults.basis == "cosine"
        else "copss's confidence in the match"
    )
    return (
        f"copss answers outright above the answer level and suggests links above the suggest "
        f"level, both on {scale}: {'; '.join(parts)}. The default is the config file's "
        "level, else the one calibrated for the matcher in use; once members have marked "
        "enough of copss's replies ✅ or ❌, the answer level is learned from them (within "
        "0.10 of the default); a level set here wins over both; 'threshold reset' goes back "
        "to the default."
    )


async def threshold(inv: Invocation) -> str:
    """Show or set the community's confidence gate."""
    gate = inv.settings.gate
    if not inv.args:
        return _describe_levels(inv)
    if inv.args.strip().casefold() == "reset":
        # Back to the default: the levels set here and the one learned so far (learning goes
        # on with the next feedback).
        dropped = {*LEVELS.values(), LEARNED}
        kept = {k: v for k, v in (inv.community.settings or {}).items() if k not in dropped}
        inv.community.settings = kept
        defaults = inv.services.gate
        return (
            f"Back to the default levels: answer {defaults.answer_at:.2f}, "
            f"suggest {defaults.suggest_at:.2f}."
        )
    which, value = split_words(inv.args, 2)
    key = LEVELS.get(which.casefold())
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if key is None or not 0.0 <= number <= 1.0:
        raise UsageError("Give 'answer' or 'suggest' and a number between 0 and 1.")
    answer_at = number if key == ANSWER_AT else gate.answer_at
    suggest_at = number if key == SUGGEST_AT else gate.suggest_at
    if suggest_at > answer_at:
        raise UsageError(f"The suggest level ({suggest_at}) must not exceed answer ({answer_at}).")
    update_settings(inv.community, **{key: number})
    return f"Set the {which.casefold()} level to {number:.2f}."


async def synonyms(inv: Invocation) -> str:
    """List, add or remove the community's synonym groups."""
    groups = [list(g) for g in inv.settings.synonym_groups]
    action, rest = split_words(inv.args, 2)
    action = action.casefold()
    if not action:
        if not groups:
            return "No community synonyms yet. Add one with: synonyms add bsn, sofinummer"
        return "Synonym groups:\n" + "\n".join(f"  {', '.join(g)}" for g in groups)
    if action == "add":
        terms = [t.strip() for t in rest.split(",") if clean(t)]
        if len(terms) < 2:
            raise UsageError("Give at least two terms separated by commas.")
        groups.append(terms)
    elif action == "remove":
        term = clean(rest)
        kept = [g for g in groups if term not in {clean(t) for t in g}]
        if len(kept) == len(groups):
            raise UsageError(f"No synonym group contains '{rest[:40]}'.")
        groups = kept
    else:
        raise UsageError("Say 'add' or 'remove'.")
    update_settings(inv.community, **{SYNONYMS: groups})
    # Only this community's own documents: the global entries keep the built-in synonyms.
    count = await reindex_community(inv.ctx.session, inv.community.id)
    return f"Synonyms updated; re-indexed {count} of this community's questions and entries."


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _hour_ranges(hours: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``00-02, 05``."""
    runs: list[list[int]] = []
    for h in hours:
        if runs and runs[-1][-1] == h - 1:
            runs[-1].append(h)
        else:
            runs.append([h])
    return ", ".join(f"{r[0]:02d}" if len(r) == 1 else f"{r[0]:02d}-{r[-1]:02d}" for r in runs)


async def stats(inv: Invocation) -> str:
    """The short community health summary: the last 30 days of ``copss report``."""
    s = inv.ctx.session
    cid = inv.community.id
    now = datetime.now(UTC)
    health = await community_health(
        s, cid, OfficialSources(inv.services.official_domains), since=now - STATS_PERIOD, now=now
    )
    f = health.figures[ALL]
    median = f.median_hours_to_first_answer
    lines = [
        f"Last 30 days. Questions: {f.questions}; answered: {f.answered} "
        f"({_pct(f.answered_share)}); solved: {f.solved}; still open: {f.unanswered}.",
        f"Median time to a first answer: {'n/a' if median is None else f'{median:.1f} h'}. "
        f"Members active in 30 days: {f.members_active}.",
        f"Askers: {f.askers}; answerers: {f.answerers}; the top 10% of answerers gave "
        f"{_pct(f.top_answerers_share)} of {f.answers} answers; "
        f"{_pct(f.official_share)} cite an official source. Newcomers: {f.newcomers}, "
        f"{f.newcomers_returned} came back.",
    ]
    silent = health.hours[ALL].without_answers
    if f.answers and silent:
        lines.append(f"Hours (UTC) nobody answered: {_hour_ranges(silent)}.")
    if len(health.platforms) > 1:
        per = [
            f"{p} {health.figures[p].questions} ({_pct(health.figures[p].answered_share)} answered)"
            for p in health.platforms
        ]
        lines.append(f"Questions per platform: {', '.join(per)}.")
    feedback = dict(
        (
            await s.execute(
                select(Suggestion.feedback, func.count(Suggestion.id))
                .join(Message, Suggestion.message_id == Message.id)
                .join(Channel, Message.channel_id == Channel.id)
                .where(Suggestion.feedback.is_not(None), Channel.community_id == cid)
                .group_by(Suggestion.feedback)
            )
        ).all()
    )
    # What copss gave up posting in this community's chats (the outbox names chats by id).
    here = in_community(cid)
    gave_up = (OutboxMessage.state == "failed", here)
    failed = await s.scalar(select(func.count(OutboxMessage.id)).where(*gave_up)) or 0
    undelivered = f"Messages copss could not deliver: {failed}"
    if failed:
        last = await s.scalar(
            select(OutboxMessage.last_error)
            .where(*gave_up)
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
        undelivered += f" (last: {(last or 'no reason recorded')[:200]})"
    dead = await s.scalar(
        select(func.count(OutboxMessage.id)).where(OutboxMessage.state == "dead", here)
    )
    lines += [
        f"Suggestions rated helpful: {feedback.get('helpful', 0)}, "
        f"not helpful: {feedback.get('not_helpful', 0)}.",
        f"{undelivered}.",
        f"Messages copss gave up on after repeated tries: {dead or 0}"
        + (" (see 'undelivered'; 'undelivered retry' sends them again)." if dead else "."),
        "Every figure by week and platform, topics and the questions waiting: copss report.",
    ]
    return "\n".join(lines)


async def audit(inv: Invocation) -> str:
    """The most recent admin actions."""
    rows = (
        await inv.ctx.session.scalars(
            select(AuditLog)
            .where(AuditLog.community_id == inv.community.id)
            .order_by(AuditLog.id.desc())
            .limit(10)
        )
    ).all()
    if not rows:
        return "No admin actions recorded yet."
    lines = ["Recent admin actions:"]
    for r in rows:
        lines.append(
            f"  {r.at:%Y-%m-%d %H:%M} {r.actor}: {r.command} {r.args[:60]} → {r.result[:80]}"
        )
    return "\n".join(lines)


async def unsolved(inv: Invocation) -> str:
    """Reopen a thread marked solved."""
    thread, _ = await thread_for_reply(inv)
    if thread is None or thread.status == "deleted":
        raise UsageError("Reply to the question (or one of its answers) with 'unsolved'.")
    thread.accepted_answer_id = None
    thread.status = "answered" if thread.first_answer_at else "open"
    return f"Reopened the question; it is {thread.status} again."


async def delete_everywhere(inv: Invocation) -> str:
    """Delete a message and all its bridged copies."""
    if inv.args.casefold() != "everywhere" or inv.event.reply_to is None:
        raise UsageError("Reply to the message to remove with: delete everywhere")
    e = inv.event.channel
    s = inv.ctx.session
    target = await ConversationRepo(s).find_message(e.platform, e.chat_id, inv.event.reply_to)
    await inv.ctx.send(
        Outgoing(e, ""),
        key=f"delete:{e.key()}:{inv.event.reply_to}",
        meta={"action": "delete", "message_id": inv.event.reply_to},
    )
    places = 1
    if target is not None:
        # Every bridged copy goes, each with every chunk it was split into.
        places += await queue_copy_deletions(inv.ctx, [target.id], "delete-copy")
        target.deleted, target.text = True, ""
        thread = await ThreadRepo(s).by_question(target.id)
        if thread is not None:
            await ThreadRepo(s).mark_deleted(thread)
        await s.execute(update(Message).where(Message.id == target.id).values(deleted=True))
    return f"Deleting the message in {places} place(s)."


COMMUNITY_COMMANDS = [
    Command(
        "threshold",
        "threshold [answer|suggest 0..1|reset]",
        "show or set the confidence levels",
        True,
        threshold,
    ),
    Command(
        "synonyms",
        "synonyms [add TERM, TERM...|remove TERM]",
        "words that mean the same",
        True,
        synonyms,
    ),
    Command(
        "unsolved",
        "unsolved (as a reply to a question)",
        "reopen a solved question",
        True,
        unsolved,
    ),
    Command(
        "delete",
        "delete everywhere (as a reply)",
        "delete a message and its bridged copies",
        True,
        delete_everywhere,
    ),
    Command("stats", "stats", "how healthy the community is", True, stats),
    Command("audit", "audit", "recent admin actions", True, audit),
]
