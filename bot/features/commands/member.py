"""Commands for every member: help, ask, solved, forget me, optout, optin."""

from __future__ import annotations

from bot.features.answers import compose, find_answer
from bot.features.commands.base import Command, Invocation, UsageError
from bot.features.indexing import matcher_for
from bot.features.privacy import forget_member
from storage.models import Answer, Message, Thread
from storage.repos.conversation import ConversationRepo
from storage.repos.threads import ThreadRepo


def help_command(commands: list[Command]) -> Command:
    """``help``: lists the commands (built last, so it can see them all)."""

    async def run(inv: Invocation) -> str:
        is_admin = await inv.ctx.is_admin(inv.event.channel, inv.event.author.user_id)
        lines = ["copss remembers this community's answers. Commands:"]
        for cmd in commands:
            if cmd.admin and not is_admin:
                continue
            lines.append(f"  {cmd.usage} — {cmd.summary}{' (admins)' if cmd.admin else ''}")
        lines.append("Ask a question in the chat and copss points you to earlier answers.")
        return "\n".join(lines)

    return Command("help", "help", "what copss can do", False, run)


async def ask(inv: Invocation) -> str:
    """Search the community's threads and the FAQ without opening a thread."""
    if not inv.args:
        raise UsageError("Tell me what to look for, e.g. ask how do I get a BSN")
    matcher = matcher_for(inv.services.matcher, inv.settings.synonyms)
    found = await find_answer(
        inv.ctx.session,
        matcher,
        inv.settings.gate,
        inv.args,
        community_id=inv.community.id,
        limit=inv.settings.gate.max_suggestions + 3,
    )
    decision = found.decision
    if decision.mode == "quiet":
        return "I found nothing on that yet. Ask the community — someone may know!"
    text, shown = await compose(inv.ctx.session, decision)
    inv.quoted += [m.ref_id for m in shown if m.kind == "thread"]
    return text or "I found nothing on that yet."


async def thread_for_reply(inv: Invocation) -> tuple[Thread | None, int | None]:
    """The thread the command replies to (its question or one of its answers), and the
    answer id when it replies to an answer."""
    if inv.event.reply_to is None:
        return None, None
    e = inv.event.channel
    target = await ConversationRepo(inv.ctx.session).find_message(
        e.platform, e.chat_id, inv.event.reply_to
    )
    if target is None:
        return None, None
    threads = ThreadRepo(inv.ctx.session)
    thread = await threads.by_question(target.id)
    if thread is not None:
        return thread, None
    answer = await threads.answer_for_message(target.id)
    if answer is None:
        return None, None
    return await threads.get(answer.thread_id), answer.id


async def _asker_id(inv: Invocation, thread: Thread) -> int | None:
    if thread.question_message_id is None:
        return None
    question = await inv.ctx.session.get(Message, thread.question_message_id)
    return question.member_id if question else None


async def solved(inv: Invocation) -> str:
    """The asker (or an admin) marks a question solved, optionally accepting an answer."""
    thread, answer_id = await thread_for_reply(inv)
    if thread is None or thread.status == "deleted":
        raise UsageError("Reply to your question, or to the answer that solved it, with 'solved'.")
    is_asker = await _asker_id(inv, thread) == inv.member.id
    if not is_asker and not await inv.ctx.is_admin(inv.event.channel, inv.event.author.user_id):
        return "Only the person who asked (or an admin) can mark this question solved."
    threads = ThreadRepo(inv.ctx.session)
    answer = await inv.ctx.session.get(Answer, answer_id) if answer_id is not None else None
    await threads.mark_solved(thread, answer)
    accepted = " with that answer accepted" if answer else ""
    return f"Marked solved{accepted}. Thanks — this helps the next person who asks."


async def forget(inv: Invocation) -> str:
    """Erase everything stored about the member."""
    if inv.args.casefold() != "me":
        raise UsageError("To erase everything copss stored about you, send: forget me")
    report = await forget_member(inv.ctx, inv.member)
    return report


async def optout(inv: Invocation) -> str:
    """Stop recording the member's messages."""
    inv.member.opted_out = True
    return (
        "Done: copss will no longer record your messages or answer your questions here. "
        "Send 'optin' to undo, or 'forget me' to also erase what was stored before."
    )


async def optin(inv: Invocation) -> str:
    """Start recording the member's messages again."""
    inv.member.opted_out = False
    return "Welcome back: copss records your questions and answers again."


MEMBER_COMMANDS = [
    Command("ask", "ask TEXT", "search the community's answers and the FAQ", False, ask),
    Command(
        "solved",
        "solved (as a reply to your question or to the answer that solved it)",
        "mark a question solved",
        False,
        solved,
    ),
    Command("forget", "forget me", "erase everything copss stored about you", False, forget),
    Command("optout", "optout", "stop copss recording your messages", False, optout),
    Command("optin", "optin", "let copss record your messages again", False, optin),
]
