"""Admin commands for the curated knowledge base: faq add|edit|remove|show|list|stale, export."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bot.features.answers import shorten
from bot.features.commands.base import Command, Invocation, UsageError, split_words
from bot.features.indexing import embed_document, index_entry
from faq.kb import KbEntry, KnowledgeBaseError, as_fields, parse_entry, validate_slug
from storage.models import Answer, FaqEntry, Message, Thread
from storage.private_files import write_private
from storage.repos.faq import FaqRepo

FIELDS = ("question", "answer", "source", "aliases", "tags", "reviewed", "expires")
FAQ_USAGE = (
    "faq add SLUG | QUESTION | ANSWER | SOURCE_URL  ·  faq edit SLUG FIELD VALUE  ·  "
    "faq remove SLUG  ·  faq show SLUG  ·  faq list  ·  faq stale"
)
#: The chat field names and the knowledge-base file's.
_FILE_FIELD = {"source": "source_url", "reviewed": "reviewed_at", "expires": "expires_at"}


def _valid(raw: dict[str, Any]) -> KbEntry:
    # The same rules as `copss kb load`: one validator for files and chat.
    try:
        return parse_entry(raw, "That entry")
    except KnowledgeBaseError as exc:
        raise UsageError(str(exc)) from exc


def _slug(value: str) -> str:
    try:
        return validate_slug(value.strip().casefold(), "That entry")
    except KnowledgeBaseError as exc:
        raise UsageError(str(exc)) from exc


def _date(value: str) -> str:
    return datetime.now(UTC).date().isoformat() if value.strip().casefold() == "today" else value


def _raw(entry: FaqEntry) -> dict[str, Any]:
    return {"slug": entry.slug, **as_fields(entry)}


async def _find(inv: Invocation, slug: str) -> FaqEntry:
    entry = await FaqRepo(inv.ctx.session).effective(inv.community.id, slug)
    if entry is None:
        raise UsageError(f"There is no FAQ entry '{slug}'. 'faq list' shows them all.")
    return entry


async def _own_copy(inv: Invocation, entry: FaqEntry) -> FaqEntry:
    """The community's own row for ``entry``: a global entry is never changed from chat; the
    community gets its own copy that overrides it here."""
    if entry.community_id is not None:
        return entry
    repo = FaqRepo(inv.ctx.session)
    own = await repo.by_slug(inv.community.id, entry.slug)
    if own is None:
        own = FaqEntry(community_id=inv.community.id, slug=entry.slug, **as_fields(entry))
        inv.ctx.session.add(own)
    else:
        for key, value in as_fields(entry).items():
            setattr(own, key, value)
    own.hidden = False
    return own


async def _embed(inv: Invocation, entry: FaqEntry) -> None:
    await inv.ctx.session.flush()  # the entry needs its id
    await embed_document(inv.ctx.session, inv.services.matcher, "faq", entry.id)


async def _add(inv: Invocation, rest: str) -> str:
    parts = [p.strip() for p in rest.split("|")]
    if len(parts) != 4 or not all(parts):
        raise UsageError("'faq add' needs four parts separated by |.")
    valid = _valid(
        {
            "slug": parts[0].casefold(),
            "question": parts[1],
            "answer": parts[2],
            "source_url": parts[3],
            "reviewed_at": datetime.now(UTC).date(),
        }
    )
    repo = FaqRepo(inv.ctx.session)
    if await repo.effective(inv.community.id, valid.slug) is not None:
        raise UsageError(f"'{valid.slug}' exists already; use 'faq edit'.")
    entry = await repo.by_slug(inv.community.id, valid.slug)
    if entry is None:  # else the community's row that hid a global entry is reused
        entry = FaqEntry(community_id=inv.community.id, slug=valid.slug)
        inv.ctx.session.add(entry)
    for key, value in as_fields(valid).items():
        setattr(entry, key, value)
    entry.hidden = False
    await index_entry(inv.ctx.session, entry)
    await _embed(inv, entry)
    return f"Added FAQ entry '{valid.slug}'."


async def _edit(inv: Invocation, rest: str) -> str:
    slug_text, field, value = split_words(rest, 3)
    if field not in FIELDS or not value:
        raise UsageError(f"Say which field to change: one of {', '.join(FIELDS)}, then the value.")
    found = await _find(inv, _slug(slug_text))
    raw = _raw(found)
    new: Any = value
    if field == "aliases":
        new = [a.strip() for a in value.split(";") if a.strip()]
    elif field == "tags":
        new = [t.strip() for t in value.split(",") if t.strip()]
    elif field in ("reviewed", "expires"):
        new = _date(value)
    raw[_FILE_FIELD.get(field, field)] = new
    valid = _valid(raw)
    entry = await _own_copy(inv, found)
    for key, val in as_fields(valid).items():
        setattr(entry, key, val)
    await index_entry(inv.ctx.session, entry)
    await _embed(inv, entry)
    shared = " (for this community; the shared starter entry is unchanged)"
    return f"Updated {field} of '{entry.slug}'{shared if found.community_id is None else ''}."


async def _remove(inv: Invocation, rest: str) -> str:
    slug = _slug(rest)
    entry = await _find(inv, slug)
    repo = FaqRepo(inv.ctx.session)
    if await repo.by_slug(None, slug) is None:
        await inv.ctx.session.delete(entry)
        return f"Removed FAQ entry '{slug}'."
    # A global entry stays for everyone else: this community keeps a row that hides it.
    own = await _own_copy(inv, entry)
    own.hidden, own.search_text = True, ""
    await _embed(inv, own)
    return f"Removed FAQ entry '{slug}' for this community (other communities keep it)."


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
    lines += [f"  {e.slug} — {shorten(e.question, 80)}" for e in entries]
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
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    # Community names are "platform:chat id": keep them safe as file names.
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", inv.community.name).strip("_") or "community"
    base = folder / f"{name}-{stamp}"
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    # Members' words: readable by the operator only.
    write_private(json_path, json.dumps(kb, ensure_ascii=False, indent=2))
    write_private(md_path, to_markdown(kb))
    return (
        f"Exported {len(kb['faq'])} FAQ entries and {len(kb['threads'])} answered questions "
        f"to {json_path} and {md_path}."
    )


KNOWLEDGE_COMMANDS = [
    Command("faq", FAQ_USAGE, "manage the curated FAQ", True, faq),
    Command("export", "export", "export the knowledge base as JSON and Markdown", True, export),
]
