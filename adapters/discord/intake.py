"""Taking Discord's events in.

What members say, edit, delete and react, and the slash commands they give, translated into
copss events and fed to the hub one at a time, in the order Discord sent them; after a new
gateway session, what was said while copss was away (catching up), and what was edited or
deleted meanwhile among the messages it stored lately. copss's own messages are never read in.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import discord

from adapters.base import CatchUpRead, Checkpoints, EventSink, SinkUnavailable, StoredMessages
from adapters.discord.client import ENABLE_MESSAGE_CONTENT, CopssClient
from adapters.discord.translate import (
    PLATFORM,
    catch_up_plan,
    changed_event,
    channel_of,
    command_event,
    content_intent_granted,
    content_withheld,
    delete_events,
    edit_event,
    message_event,
    reaction_event,
    thread_delete_event,
)
from adapters.discord.webhooks import Webhooks
from bot.events import ChannelDeleteEvent, ChannelRef, DeleteEvent, Event

log = logging.getLogger(__name__)

#: A unit of intake work, run in order by one task: translate something and feed the sink.
Job = Callable[[EventSink], Awaitable[None]]

#: Catching up also re-reads, per channel, the messages copss stored lately and applies the
#: edits and deletes made while it was away: those of the last ``RECHECK_DAYS`` days, at most
#: the newest ``RECHECK_MESSAGES`` of them, whichever are fewer. A week covers any ordinary
#: downtime; 200 keeps it to a few history pages of 100 per channel. Older messages are not
#: re-read (an edit or delete of those while copss was down is missed).
RECHECK_DAYS = 7
RECHECK_MESSAGES = 200
#: Intake jobs kept waiting while the store takes no events. Beyond that new events are
#: dropped until the store takes events again; then what was said meanwhile is read back from
#: the channels' history (catching up), as after downtime.
MAX_WAITING = 1000
#: Jobs at most whose events are handed to the hub together.
TOGETHER = 500
#: Discord's error code for a channel (or thread) that no longer exists.
UNKNOWN_CHANNEL = 10003


class Intake:
    """An ordered queue of intake jobs and the jobs themselves.

    The client's event handlers only :meth:`enqueue` (see :class:`CopssClient`); :meth:`run`
    takes the jobs one after another, so events reach the sink in the order they came. The
    jobs waiting together (a burst) have their events stored together, in one transaction
    where the hub can (group commit), instead of one transaction per event.
    """

    def __init__(self, client: CopssClient, webhooks: Webhooks) -> None:
        self.client = client
        self.webhooks = webhooks
        #: Set once the newest gateway session has read what was said while none listened.
        self.caught_up = asyncio.Event()
        # (job, whether it runs alone); ``_waiting`` is set while there are any.
        self._jobs: deque[tuple[Job, bool]] = deque()
        self._waiting = asyncio.Event()
        # Parents of threads seen only by id; a thread never moves to another channel.
        self._places: dict[int, ChannelRef] = {}
        self._warned_withheld = False
        # Where catching up learns what the store holds, and tells it a channel is read
        # (from the last catch-up).
        self._sources: (
            tuple[Checkpoints | None, StoredMessages | None, CatchUpRead | None] | None
        ) = None
        # Set while new events are dropped (too many waiting): a catch-up is queued.
        self._dropping = False

    @property
    def waiting(self) -> int:
        """Jobs queued and not taken yet."""
        return len(self._jobs)

    def enqueue(self, job: Job, *, alone: bool = False) -> None:
        """Queue a job behind the ones already waiting (synchronously: nothing overtakes).
        ``alone``: the job needs each event stored before it goes on (catching up), so it
        is not run together with others.

        While the store takes no events the jobs wait; beyond :data:`MAX_WAITING` new ones are
        dropped and one catch-up is queued instead, which reads them back from history."""
        if self._dropping:
            return
        if len(self._jobs) >= MAX_WAITING and self._sources is not None:
            self._dropping = True
            log.error(
                "discord: %d events wait for the store; taking no more until it takes them "
                "(what is said meanwhile is read back from history then)",
                len(self._jobs),
            )
            checkpoints, stored, read = self._sources
            job, alone = lambda sink: self.catch_up(checkpoints, sink, stored, read), True
        self._jobs.append((job, alone))
        self._waiting.set()

    async def run(self, sink: EventSink) -> None:
        """Run the queued jobs in order, feeding ``sink``, until cancelled. Events the store
        could not take are offered again after the wait the hub asks for, the jobs behind
        them waiting (nothing is lost, nothing overtakes)."""
        while True:
            if not self._jobs:
                self._waiting.clear()
                await self._waiting.wait()
                continue
            job, alone = self._jobs.popleft()
            if alone:
                await self._run_alone(job, sink)
                continue
            # The jobs waiting behind it, up to the next that must run alone.
            jobs = [job]
            while self._jobs and len(jobs) < TOGETHER and not self._jobs[0][1]:
                jobs.append(self._jobs.popleft()[0])
            await self._run_together(jobs, sink)

    async def _run_alone(self, job: Job, sink: EventSink) -> None:
        failures = 0
        while True:
            try:
                await job(sink)
            except SinkUnavailable as exc:
                failures += 1
                self._log_refused(exc)
                await asyncio.sleep(exc.retry_after)
                continue
            except Exception:
                # One bad job must not stop the ones behind it.
                log.exception("discord: could not take in an event")
            if failures:
                log.info("discord: the store takes events again (after %d failures)", failures)
            return

    async def _run_together(self, jobs: list[Job], sink: EventSink) -> None:
        """Translate the jobs' events in order, then hand them to the sink all at once (the
        hub stores concurrent calls in call order). From the first event not stored on, they
        are offered again after the wait; those stored meanwhile the inbox drops as copies."""
        events: list[Event] = []

        async def collect(event: Event) -> None:
            events.append(event)

        for job in jobs:
            try:
                await job(collect)
            except Exception:
                log.exception("discord: could not take in an event")
        failures = 0
        while events:
            results = await asyncio.gather(*(sink(e) for e in events), return_exceptions=True)
            refused: SinkUnavailable | None = None
            for n, result in enumerate(results):
                if isinstance(result, SinkUnavailable):
                    refused = result
                    events = events[n:]
                    break
                if isinstance(result, BaseException):
                    log.error("discord: could not take in an event", exc_info=result)
            if refused is None:
                break
            failures += 1
            self._log_refused(refused)
            await asyncio.sleep(refused.retry_after)
        if failures:
            log.info("discord: the store takes events again (after %d failures)", failures)

    def _log_refused(self, exc: SinkUnavailable) -> None:
        log.error(
            "discord: event not stored (%s); %d more waiting, retrying in %gs",
            exc,
            len(self._jobs),
            exc.retry_after,
        )

    # -- events ---------------------------------------------------------------------------------

    async def read(
        self, message: discord.Message, channel: ChannelRef | None = None
    ) -> Event | None:
        """The event of a member's message; None for copss's own and for withheld text."""
        if self.webhooks.mine(message):
            return None
        if content_withheld(message):
            self._warn_withheld()
            return None
        place = channel or await self.place(message.channel, message.channel.id)
        return message_event(message, place, self.client.bot_view)

    async def take_message(self, message: discord.Message, sink: EventSink) -> None:
        """Feed a new message."""
        event = await self.read(message)
        if event is not None:
            await sink(event)

    async def take_edit(self, payload: discord.RawMessageUpdateEvent, sink: EventSink) -> None:
        """Feed an edit of a member's message."""
        message = payload.message
        if self.webhooks.mine(message):
            return
        place = await self.place(message.channel, payload.channel_id)
        event = edit_event(message, place, self.client.bot_view)
        if event is not None:
            await sink(event)

    async def take_delete(self, channel_id: int, ids: set[int], sink: EventSink) -> None:
        """Feed the deletion of one or more messages."""
        place = await self.place(None, channel_id)
        for event in delete_events(place, ids, None):
            await sink(event)

    async def take_thread_delete(
        self, payload: discord.RawThreadDeleteEvent, sink: EventSink
    ) -> None:
        """Feed the deletion of a thread or forum post, with every message in it."""
        self._places.pop(payload.thread_id, None)
        await sink(thread_delete_event(payload))

    async def take_reaction(self, payload: discord.RawReactionActionEvent, sink: EventSink) -> None:
        """Feed a reaction added or removed by anyone but the bot."""
        if payload.user_id == self.client.bot_view.bot_id:
            return
        place = await self.place(None, payload.channel_id)
        await sink(reaction_event(payload, place, self.client.get_user(payload.user_id)))

    async def take_command(
        self,
        interaction: discord.Interaction,
        name: str,
        text: str | None,
        sink: EventSink,
        *,
        private: bool = False,
    ) -> None:
        """Feed a slash command (``private``: its answer is for the member alone)."""
        place = await self.place(interaction.channel, interaction.channel_id or 0)
        await sink(command_event(interaction, name, text, place, private=private))

    async def place(self, channel: discord.abc.Snowflake | None, channel_id: int) -> ChannelRef:
        """The ChannelRef of a channel, asking Discord for a thread's parent when neither the
        event nor the cache tells it."""
        found = channel_of(channel) or channel_of(self.client.get_channel(channel_id))
        if found is not None:
            return found
        known = self._places.get(channel_id)
        if known is not None:
            return known
        try:
            fetched = await self.client.fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.warning("discord: channel %s is unknown to copss and Discord: %s", channel_id, exc)
            return ChannelRef(PLATFORM, str(channel_id))
        found = channel_of(fetched) or ChannelRef(PLATFORM, str(channel_id))
        self._places[channel_id] = found
        return found

    def _warn_withheld(self) -> None:
        if self._warned_withheld:
            log.debug("discord: another message arrived without its text")
            return
        self._warned_withheld = True
        granted = content_intent_granted(self.client.application_flags)
        log.warning(
            "discord: a server message arrived without its text, so copss cannot read it. "
            "Discord withholds message text from bots without the Message Content intent "
            "(the application's settings %s it). Such messages are not stored. %s",
            "show" if granted else "do not show",
            ENABLE_MESSAGE_CONTENT,
        )

    # -- catching up ----------------------------------------------------------------------------

    async def catch_up(
        self,
        checkpoints: Checkpoints | None,
        sink: EventSink,
        stored: StoredMessages | None = None,
        read: CatchUpRead | None = None,
    ) -> None:
        """Feed what was said while no gateway session listened, oldest first per channel
        (a parent channel before its threads, so questions come before their answers), and
        the edits and deletes made meanwhile to the messages ``stored`` lately (see
        :data:`RECHECK_DAYS`); a thread that is gone is fed as deleted. Each channel read to
        the end (or found deleted) is told to ``read``."""
        self.caught_up.clear()
        self._sources = (checkpoints, stored, read)
        # New events are queued again: this reads everything up to now.
        self._dropping = False
        try:
            known = await checkpoints() if checkpoints is not None else []
            plan = catch_up_plan(known, self._readable())
            since = datetime.now(UTC) - timedelta(days=RECHECK_DAYS)
            seen: set[int] = set()
            totals = [0, 0, 0]
            for place, after in plan:
                recent = await stored(place, since, RECHECK_MESSAGES) if stored else []
                window = {int(mid): text for mid, text in recent if mid.isdigit()}
                *counts, read_all = await self._read_history(place, after, window, seen, sink)
                totals = [a + b for a, b in zip(totals, counts, strict=True)]
                if read_all and read is not None:
                    await self._note_read(read, place)
            if plan:
                log.info(
                    "discord: caught up on %d message(s) in %d channel(s); %d edited and %d "
                    "deleted meanwhile",
                    totals[0],
                    len(plan),
                    totals[1],
                    totals[2],
                )
        finally:
            self.caught_up.set()

    def _readable(self) -> list[ChannelRef]:
        """Text channels and active threads (forum posts too) whose history copss may read."""
        places: list[ChannelRef] = []
        for guild in self.client.guilds:
            me = guild.me
            channels: list[discord.TextChannel | discord.Thread] = [
                *guild.text_channels,
                *guild.threads,
            ]
            for channel in channels:
                perms = channel.permissions_for(me)
                place = channel_of(channel)
                if place is not None and perms.read_message_history and perms.view_channel:
                    places.append(place)
        return places

    async def _read_history(
        self,
        place: ChannelRef,
        after: int,
        window: dict[int, str],
        seen: set[int],
        sink: EventSink,
    ) -> tuple[int, int, int, bool]:
        """Read a channel's history from the oldest message of ``window`` (the stored id and
        text of its recent messages) or else after ``after``: feed the messages after
        ``after``, an edit for each stored one that says something else now, and a delete
        for each stored one that is gone. Returns (new, edited, deleted, whether the whole
        history up to now was read, or the channel is gone)."""
        raw_id = place.thread_id or place.chat_id
        if not raw_id.isdigit():
            return 0, 0, 0, True
        start = min([after, *(mid - 1 for mid in window)])
        fed = edited = 0
        present: set[int] = set()
        try:
            channel: object = self.client.get_channel(int(raw_id))
            if channel is None and window and place.thread_id is not None:
                # An archived thread is not cached; reading it as itself keeps a forum post's
                # title in its opening message's text, as copss stored it.
                channel = await self.client.fetch_channel(int(raw_id))
            if channel is None:
                channel = self.client.get_partial_messageable(int(raw_id))
            if not isinstance(channel, discord.abc.Messageable):
                return 0, 0, 0, False
            history = channel.history(limit=None, after=discord.Object(start), oldest_first=True)
            async for message in history:
                present.add(message.id)
                if message.id in window:
                    change = self._changed(message, place, window[message.id])
                    if change is not None:
                        await sink(change)
                        edited += 1
                    continue
                if message.id <= after or message.id in seen:
                    continue
                seen.add(message.id)
                event = await self.read(message, place)
                if event is not None:
                    await sink(event)
                    fed += 1
        except discord.NotFound as exc:
            if exc.code != UNKNOWN_CHANNEL:
                log.warning("discord: could not catch up in %s: %s", place.key(), exc)
                return fed, edited, 0, False
            # Deleted while copss was away, with everything in it.
            log.info("discord: %s was deleted while copss was away", place.key())
            await sink(ChannelDeleteEvent(place))
            return fed, edited, len(window), True
        except discord.HTTPException as exc:
            # Access lost: nothing to read there (and, the history unread, nothing counts as
            # deleted); the rest still counts. The channel's note stays: when access comes
            # back, a catch-up reads it from there.
            log.warning("discord: could not catch up in %s: %s", place.key(), exc)
            return fed, edited, 0, False
        gone = sorted(set(window) - present)
        for mid in gone:
            await sink(DeleteEvent(place, str(mid)))
        return fed, edited, len(gone), True

    async def _note_read(self, read: CatchUpRead, place: ChannelRef) -> None:
        """Tell the store a channel is read; should it fail, the next catch-up reads the
        channel again from the old note (what it feeds twice, the inbox drops)."""
        try:
            await read(place)
        except Exception as exc:
            log.warning("discord: could not note %s as caught up: %s", place.key(), exc)

    def _changed(self, message: discord.Message, place: ChannelRef, stored: str) -> Event | None:
        """The edit a stored message had while copss was away, if any."""
        if self.webhooks.mine(message) or content_withheld(message):
            return None
        return changed_event(message, place, self.client.bot_view, stored)
