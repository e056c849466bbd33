"""What a handler may use while handling one event, and the outbox row conventions it shares
with the sender."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import Progress
from bot.events import ChannelRef, Outgoing
from storage.models import OutboxMessage
from storage.repos.queues import OutboxRepo

if TYPE_CHECKING:
    from bot.core import Hub

#: The outbox row ``meta`` key holding the chunks of a message as they are posted (see
#: :class:`adapters.base.Progress`), so a retry, also after a restart, goes on where it stopped
#: and every chunk is known once it is sent.
CHUNKS = "chunks"
#: Delivery policies of an outbox row (``OutboxMessage.delivery``) for a send that may or may
#: not have arrived: sent again, or not (see docs/reliability.md).
AT_LEAST_ONCE = "at_least_once"
AT_MOST_ONCE = "at_most_once"


class OutboxMeta(TypedDict, total=False):
    """What an outbox row's ``meta`` (JSON) may hold, by the part of copss that reads it."""

    #: The row edits or deletes an earlier message instead of posting one.
    action: Literal["edit", "delete"]
    #: The platform id of the message an edit or delete acts on (its first chunk) ...
    message_id: str
    #: ... and of every chunk of it as queued (the sender's prepare hook brings it up to date).
    message_ids: list[str]
    #: The chunks posted so far (:data:`CHUNKS`, :class:`adapters.base.Progress` as a record).
    chunks: dict[str, Any]
    #: The suggestions this reply shows (``suggestion.bot_message_id`` is set once it is sent).
    suggestion_ids: list[int]
    #: The threads a command's reply quotes (``ask``): forgetting the member who asked or
    #: answered one of them takes the reply back (bot.features.privacy).
    quoted_threads: list[int]
    #: A bridged copy: the channel it goes to, the stored original it copies, the original it
    #: answers (its copy on the target side is replied to), and the copy an edit/delete acts on.
    target_channel_id: int
    copy_of: int
    reply_original_id: int
    copy_id: int


def sent_chunks(row: OutboxMessage) -> list[str]:
    """The platform ids of every chunk of the message a row posted or edited, first first."""
    ids = Progress.from_record(row.meta.get(CHUNKS)).ids
    if ids:
        return ids
    return [row.platform_message_id] if row.platform_message_id else []


@dataclass
class Context:
    """What a handler may use while handling one event; ``session`` is its transaction."""

    hub: Hub
    session: AsyncSession
    queued: list[OutboxMessage] = field(default_factory=list)
    #: Platforms whose senders are woken once this transaction is committed.
    woken: set[str] = field(default_factory=set)

    def wake(self, platform: str) -> None:
        """Wake the platform's sender after the commit (e.g. rows put back in the queue)."""
        self.woken.add(platform)

    async def send(
        self,
        out: Outgoing,
        *,
        key: str | None = None,
        meta: OutboxMeta | None = None,
        delivery: str | None = None,
    ) -> OutboxMessage | None:
        """Queue a message in this transaction; ``key`` makes it queued at most once.
        ``delivery``: what a send that may or may not have arrived leads to; by default a
        bridged copy (it names an author) is sent again, copss's own words are not.

        Returns None, queuing nothing, when the chat already has ``hub.chat_backlog`` rows
        waiting (its platform refuses or floods it for long): the queue stays bounded, its
        rows keep their order and the other chats are not affected (one log line per chat
        every ten minutes)."""
        c = out.channel
        if self.hub.chat_backlog:
            waiting = await OutboxRepo(self.session).backlog(c.platform, c.chat_id)
            if waiting >= self.hub.chat_backlog:
                self.hub.note_full(c, waiting)
                return None
        row = OutboxMessage(
            dedup_key=key,
            platform=out.channel.platform,
            chat_id=out.channel.chat_id,
            thread_id=out.channel.thread_id or "",
            text=out.text,
            reply_to=out.reply_to,
            as_name=out.as_name,
            origin=out.origin,
            meta=dict(meta or {}),
            delivery=delivery or (AT_LEAST_ONCE if out.as_name else AT_MOST_ONCE),
        )
        added = await OutboxRepo(self.session).add(row)
        if added is not None:
            self.queued.append(added)
            self.woken.add(added.platform)
        return added

    #: Platform answers known for this run of the handlers: (channel key, user id) → admin.
    facts: dict[tuple[str, str], bool] = field(default_factory=dict)
    #: The handlers ran over this event before and stopped to ask the platform something:
    #: in-memory bookkeeping (rate limits) was done then and is not done again.
    again: bool = False

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """The config allow-list, else the platform's answer, asked outside the transaction:
        when it is not known yet, the handlers stop here (the transaction is rolled back),
        the platform is asked with no transaction open, and the handlers run again."""
        if self.hub.configured_admin(channel, user_id):
            return True
        known = self.facts.get((channel.key(), user_id))
        if known is None:
            raise AskPlatform(channel, user_id)
        return known


class AskPlatform(BaseException):
    """Raised by a handler's :meth:`Context.is_admin` when the platform has not been asked
    yet: a platform call (Telegram getChatMember, Discord REST) never runs inside the
    handlers' transaction. A BaseException, so that a handler's ``except Exception`` does not
    swallow it; the dispatcher catches it."""

    def __init__(self, channel: ChannelRef, user_id: str) -> None:
        super().__init__(f"is {user_id} an admin of {channel.key()}?")
        self.channel = channel
        self.user_id = user_id
