"""Admin commands for the curated knowledge base: faq add|edit|remove|show|list|stale, export."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from bot.features.commands.base import Command, Invocation, UsageError, split_words
from faq.normalize import search_text
from storage.models import Answer, FaqEntry, Message, Thread
from storage.repos.faq import FaqRepo

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,99}$")
FIELDS = ("question", "answer", "source", "aliases", "tags", "reviewed", "expires")
FAQ_USAGE = (
    "faq add SLUG | QUESTION | ANSWER | SOURCE_URL  ·  faq edit SLUG FIELD VALUE  ·  "
    "faq remove SLUG  ·  faq show SLUG  ·  faq list  ·  faq stale"
)


def _slug(value: str) -> str:
    slug = value.strip().casefold()
    if not _SLUG.match(slug):
        raise UsageError(f"'{value[:40]}' is not a valid slug (lowercase letters, digits, -).")
    return slug


def _url(value: str) -> str:
    url = value.strip()
    if not url.startswith("https://") or " " in url or len(url) > 500:
        raise UsageError("The source must be an https:// link to an official page.")
    return url


def _date(value: str) -> date:
    if value.strip().casefold() == "today":
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise UsageError(f"'{value[:20]}' is not a date; use YYYY-MM-DD or 'today'.") from exc


async def _find(inv: Invocation, slug: str) -> FaqEntry:
    repo = FaqRepo(inv.ctx.session)
    entry = await repo.by_slug(inv.community.id, slug) or await repo.by_slug(None, slug)
    if entry is None:
        raise UsageError(f"There is no FAQ entry '{slug}'. 'faq list' shows them all.")
    return entry


def _reindex(inv: Invocation, entry: FaqEntry) -> None:
    entry.search_text = search_text([entry.question, *entry.aliases], inv.settings.synonyms)


async def _add(inv: Invocation, rest: str) -> str:
    parts = [p.strip() for p in rest.split("|")]
    if len(parts) != 4 or not all(parts):
        raise UsageError("'faq add' needs four parts separated by |.")
    slug, question, answer, url = _slug(parts[0]), parts[1], parts[2], _url(parts[3])
    repo = FaqRepo(inv.ctx.session)
    if await repo.by_slug(inv.community.id, slug) or await repo.by_slug(None, slug):
        raise UsageError(f"'{slug}' exists already; use 'faq edit'.")
    entry = FaqEntry(
        community_id=inv.community.id,
        slug=slug,
        question=question,
        aliases=[],
        answer=answer,
        source_url=url,
        tags=[],
        reviewed_at=datetime.now(UTC).date(),
    )
    _reindex(inv, entry)
    inv.ctx.session.add(entry)
    return f"Added FAQ entry '{slug}'."


async def _edit(inv: Invocation, rest: str) -> str:
    slug_text, field, value = split_words(rest, 3)
    if field not in FIELDS or not value:
        raise UsageError(f"Say which field to change: one of {', '.join(FIELDS)}, then the value.")
    entry = await _find(inv, _slug(slug_text))
    if field == "question":
        entry.question = value
    elif field == "answer":
        entry.answer = value
    elif field == "source":
        entry.source_url = _url(value)
    elif field == "aliases":
        entry.aliases = [a.strip() for a in value.split(";") if a.strip()]
    elif field == "tags":
        entry.tags = [t.strip() for t in value.split(",") if t.strip()]
    elif field == "reviewed":
        entry.reviewed_at = _date(value)
    else:
        entry.expires_at = _date(value)
    _reindex(inv, entry)
    return f"Updated {field} of '{entry.slug}'."


async def _remove(inv: Invocation, rest: str) -> str:
    entry = await _find(inv, _slug(rest))
    await inv.ctx.session.delete(entry)
    return f"Removed FAQ entry '{entry.slug}'."


async def _show(inv: Invocation, rest: str) -> str:
    e = await _find(inv, _slug(rest))
    return (
        f"[{e.slug}] {e.question}\n{e.answer}\nSource: {e.source_url or '-'}\n"
        f"Aliases: {'; '.join(e.aliases) or '-'}\nTags: {', '.join(e.tags) or '-'}\n"
        f"Reviewed: {e.reviewed_at or 'never'}; expires: {e.expires_at or '-'}; "
        f"feedback +{e.helpful}/-{e.not_helpful}"
    )


async def _list(inv: Invocation, rest: str) -> str:
    entries = await FaqRepo(inv.ctx.session).all(inv.community.id)
    if not entries:
        return "The FAQ is empty. Add entries with 'faq add'."
    lines = [f"{len(entries)} FAQ entries:"]
    lines += [f"  {e.slug} — {e.question[:80]}" for e in entries]
    return "\n".join(lines)


async def _stale(inv: Invocation, rest: str) -> str:
    stale = await FaqRepo(inv.ctx.session).stale(datetime.now(UTC).date(), inv.community.id)
    if not stale:
        return "Every FAQ entry was reviewed within the last year and none has expired."
    lines = [f"{len(stale)} entries need a review:"]
    lines += [f"  {e.slug} — reviewed {e.reviewed_at or 'never'}" for e in stale]
    return "\n".join(lines)


_SUBCOMMANDS = {
    "add": _add,
    "edit": _edit,
    "remove": _remove,
    "show": _show,
    "list": _list,
    "stale": _stale,
}


async def faq(inv: Invocation) -> str:
    """``faq SUBCOMMAND ...``."""
    sub, rest = split_words(inv.args, 2)
    handler = _SUBCOMMANDS.get(sub.casefold())
    if handler is None:
        raise UsageError("Which FAQ action? One of: " + ", ".join(_SUBCOMMANDS) + ".")
    if sub.casefold() not in ("list", "stale") and not rest:
        raise UsageError(f"'faq {sub}' needs more: see the usage below.")
    return await handler(inv, rest)


async def knowledge_base(inv: Invocation) -> dict[str, Any]:
    """The community's knowledge base: curated entries and answered threads."""
    s = inv.ctx.session
    entries = await FaqRepo(s).all(inv.community.id)
    rows = await s.execute(
        select(Thread, Message.text)
        .join(Answer, Answer.thread_id == Thread.id)
        .join(Message, Answer.message_id == Message.id)
        .where(
            Thread.community_id == inv.community.id,
            Thread.status.in_(("answered", "solved")),
            Message.deleted.is_(False),
        )
        .order_by(Thread.id, Answer.votes.desc(), Answer.id)
    )
    threads: dict[int, dict[str, Any]] = {}
    for thread, answer in rows.all():
        item = threads.setdefault(
            thread.id,
            {
                "question": thread.question_text,
                "status": thread.status,
                "asked_at": thread.asked_at.date().isoformat(),
                "answers": [],
            },
        )
        item["answers"].append(answer)
    return {
        "community": inv.community.name,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "faq": [
            {
                "slug": e.slug,
                "question": e.question,
                "aliases": e.aliases,
                "answer": e.answer,
                "source_url": e.source_url,
                "tags": e.tags,
                "reviewed_at": e.reviewed_at.isoformat() if e.reviewed_at else None,
            }
            for e in entries
        ],
        "threads": list(threads.values()),
    }


def to_markdown(kb: dict[str, Any]) -> str:
    """The exported knowledge base as Markdown."""
    out = [f"# Knowledge base of {kb['community']}", "", f"Exported {kb['exported_at']}.", ""]
    out += ["## FAQ", ""]
    for e in kb["faq"]:
        out += [f"### {e['question']}", "", e["answer"], ""]
        if e["source_url"]:
            out += [f"Source: <{e['source_url']}>", ""]
    out += ["## Answered questions", ""]
    for t in kb["threads"]:
        out += [f"### {t['question']}", "", f"*{t['status']}, asked {t['asked_at']}*", ""]
        out += [f"- {a}" for a in t["answers"]] + [""]
    return "\n".join(out)


async def export(inv: Invocation) -> str:
    """Write the knowledge base as JSON and Markdown files."""
    kb = await knowledge_base(inv)
    folder = inv.services.export_dir
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = folder / f"{inv.community.name}-{stamp}"
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    json_path.write_text(json.dumps(kb, ensure_ascii=False, indent=2), encoding="utf-8")
    md_path.write_text(to_markdown(kb), encoding="utf-8")
    return (
        f"Exported {len(kb['faq'])} FAQ entries and {len(kb['threads'])} answered questions "
        f"to {json_path} and {md_path}."
    )


KNOWLEDGE_COMMANDS = [
    Command("faq", FAQ_USAGE, "manage the curated FAQ", True, faq),
    Command("export", "export", "export the knowledge base as JSON and Markdown", True, export),
]
